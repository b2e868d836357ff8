// tandem synth: a random-weight checkpoint with the exact config and shapes of a real
// model (models/synth.h), for benchmarks and tests.
#include <chrono>
#include <cstdio>
#include <string>

#include "base/error.h"
#include "base/log.h"
#include "base/strings.h"
#include "cli/commands.h"
#include "models/synth.h"

namespace tandem::cli {
namespace {

struct SynthArgs {
  std::string preset, out, dtype = "bf16";
  uint64_t seed = 0;
  int threads = 0;
};

int run(const SynthArgs& a) {
  const models::SynthPreset& preset = models::synth_preset(a.preset);
  models::SynthOptions o;
  if (a.dtype == "bf16") {
    o.dtype = DType::kBF16;
  } else if (a.dtype == "f16") {
    o.dtype = DType::kF16;
  } else if (a.dtype == "f32") {
    o.dtype = DType::kF32;
  } else {
    throw Error("--dtype '" + a.dtype + "' is not one of bf16, f16, f32");
  }
  o.seed = a.seed;
  o.threads = a.threads;
  const auto t0 = std::chrono::steady_clock::now();
  const models::SynthReport r = models::write_synth_model(preset, a.out, o);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote:      %s\n", a.out.c_str());
  std::printf("preset:     %s (%s)\n", preset.name.c_str(), preset.config.at("model_type").get<std::string>().c_str());
  std::printf("parameters: %lld (%.2f M)\n", static_cast<long long>(r.params), static_cast<double>(r.params) / 1e6);
  std::printf("weights:    %s, %s\n", a.dtype.c_str(), format_bytes(r.bytes).c_str());
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f s", secs);
  log::info("synth: done in " + std::string(buf));
  return 0;
}

}  // namespace

Runner add_synth(CLI::App& app) {
  auto a = std::make_shared<SynthArgs>();
  CLI::App* c = app.add_subcommand("synth", "Write a random-weight checkpoint shaped like a real model");
  c->add_option("--preset", a->preset, "One of: " + models::synth_preset_list())->required();
  c->add_option("--out,-o", a->out, "Output folder")->required();
  c->add_option("--dtype", a->dtype, "bf16 (default), f16 or f32");
  c->add_option("--seed", a->seed, "Random seed (default 0)");
  c->add_option("--threads,-t", a->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  return [a] { return run(*a); };
}

}  // namespace tandem::cli
