// `tandem <command>` entry points. Each registers its subcommand on the CLI11
// app and returns the function that runs it (exit code).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "tokenizer/chat_template.h"

namespace tandem::cli {

using Runner = std::function<int()>;

Runner add_run(CLI::App& app);
Runner add_logits(CLI::App& app);
Runner add_info(CLI::App& app);
Runner add_tokenize(CLI::App& app);
Runner add_detokenize(CLI::App& app);
Runner add_render_chat(CLI::App& app);
Runner add_serve(CLI::App& app);

// The chat template of a model folder; throws tandem::Error saying so when it has none.
tokenizer::ChatTemplate load_chat_template(const std::string& model_dir, std::string* bos_token,
                                           std::string* eos_token);

}  // namespace tandem::cli
