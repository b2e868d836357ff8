// `tandem <command>` entry points. Each registers its subcommand on the CLI11
// app and returns the function that runs it (exit code).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace tandem::cli {

using Runner = std::function<int()>;

Runner add_run(CLI::App& app);
Runner add_logits(CLI::App& app);
Runner add_info(CLI::App& app);

}  // namespace tandem::cli
