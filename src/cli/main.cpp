#include <cstdio>
#include <exception>
#include <map>
#include <new>

#include "base/error.h"
#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"tandem: run open-weight language models on your own machines"};
  app.require_subcommand(1);
  std::map<CLI::App*, tandem::cli::Runner> runners;
  auto add = [&](tandem::cli::Runner (*fn)(CLI::App&)) {
    size_t before = app.get_subcommands({}).size();
    auto runner = fn(app);
    runners[app.get_subcommands({}).at(before)] = runner;
  };
  add(tandem::cli::add_run);
  add(tandem::cli::add_logits);
  add(tandem::cli::add_info);
  add(tandem::cli::add_tokenize);
  add(tandem::cli::add_detokenize);
  add(tandem::cli::add_render_chat);
  add(tandem::cli::add_bench);
  add(tandem::cli::add_quantize);
  add(tandem::cli::add_synth);
  add(tandem::cli::add_serve);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, run] : runners) {
      if (sub->parsed()) return run();
    }
  } catch (const tandem::Error& e) {
    std::fprintf(stderr, "tandem: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "tandem: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tandem: error: %s\n", e.what());
    return 1;
  }
  return 1;
}
