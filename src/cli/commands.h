// `tandem <command>` entry points. Each registers its subcommand on the CLI11
// app and returns the function that runs it (exit code).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>

#include "models/model.h"
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
Runner add_bench(CLI::App& app);
Runner add_quantize(CLI::App& app);
Runner add_synth(CLI::App& app);

// Sets lo.quantize from a --quantize value (empty: none); throws tandem::Error naming
// the accepted values otherwise.
void apply_quantize_flag(const std::string& value, models::LoadOptions& lo);

// --bf16-activations / --f32-activations (mutually exclusive) into an unset-by-default
// choice for models::LoadOptions::bf16_activations.
struct ActivationFlags {
  bool bf16 = false, f32 = false;
  std::optional<bool> choice() const { return bf16 ? std::optional<bool>(true) : f32 ? std::optional<bool>(false) : std::nullopt; }
};
void add_activation_flags(CLI::App* c, ActivationFlags& f);

// The chat template of a model folder; throws tandem::Error saying so when it has none.
tokenizer::ChatTemplate load_chat_template(const std::string& model_dir, std::string* bos_token,
                                           std::string* eos_token);

}  // namespace tandem::cli
