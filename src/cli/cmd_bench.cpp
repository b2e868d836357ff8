// tandem bench: prefill and decode throughput of a model on this machine,
// against the machine's read bandwidth measured in the same run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "base/error.h"
#include "base/strings.h"
#include "base/thread_pool.h"
#include "cli/commands.h"
#include "engine/bench.h"
#include "kernels/cpu/isa.h"
#include "models/model.h"

namespace tandem::cli {
namespace {

struct BenchArgs {
  std::string model;
  std::string quantize;
  ActivationFlags acts;
  int threads = 0;
  int64_t prompt_len = 512;
  int64_t gen = 128;
  int64_t depth = 0;
  int reps = 3;
  bool json = false;
  bool profile = false;
};

// Per operation: ms per decoded token, share of the step, and for matmuls the
// rate their matrices streamed at (against the roofline's read bandwidth).
void print_profile(const models::StepProfile& p, double read_bandwidth) {
  double total = 0;
  for (double s : p.seconds) total += s;
  const double n = static_cast<double>(std::max<int64_t>(1, p.steps));
  std::printf("\ndecode step, %lld steps profiled: %.3f ms per token\n", static_cast<long long>(p.steps),
              total / n * 1e3);
  std::printf("| operation | ms/token | share | GB/s | of read bandwidth |\n|---|---|---|---|---|\n");
  for (int op = 0; op < models::StepProfile::kCount; ++op) {
    const double s = p.seconds[op];
    if (p.bytes[op] > 0) {
      const double gbs = static_cast<double>(p.bytes[op]) / s / 1e9;
      std::printf("| %s | %.3f | %.1f%% | %.1f | %.2f |\n", models::StepProfile::name(op), s / n * 1e3,
                  100 * s / total, gbs, gbs * 1e9 / read_bandwidth);
    } else {
      std::printf("| %s | %.3f | %.1f%% | | |\n", models::StepProfile::name(op), s / n * 1e3, 100 * s / total);
    }
  }
}

nlohmann::ordered_json profile_json(const models::StepProfile& p) {
  nlohmann::ordered_json j;
  const double n = static_cast<double>(std::max<int64_t>(1, p.steps));
  for (int op = 0; op < models::StepProfile::kCount; ++op) {
    nlohmann::ordered_json o;
    o["ms_per_token"] = p.seconds[op] / n * 1e3;
    if (p.bytes[op] > 0) o["gb_s"] = static_cast<double>(p.bytes[op]) / p.seconds[op] / 1e9;
    j[models::StepProfile::name(op)] = o;
  }
  return j;
}

int run(const BenchArgs& a) {
  models::LoadOptions lo;
  apply_quantize_flag(a.quantize, lo);
  lo.bf16_activations = a.acts.choice();
  const auto t0 = std::chrono::steady_clock::now();
  auto model = models::Model::load(a.model, lo);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ThreadPool pool(a.threads);
  engine::BenchOptions bo;
  bo.prompt_len = a.prompt_len;
  bo.gen = a.gen;
  bo.reps = a.reps;
  bo.depth = a.depth;
  bo.profile = a.profile;
  const engine::BenchResult r = engine::run_bench(*model, bo, pool);
  const models::ModelInfo info = model->info();
  const std::string isa(kernels::isa_name(kernels::active_isa()));
  std::string weights = info.weight_dtypes;
  const bool has_bf16 = model->has_matrices(DType::kBF16);
  if (has_bf16) weights += model->bf16_activations() ? " (bf16 activations)" : " (f32 activations)";
  if (a.json) {
    nlohmann::ordered_json j;
    j["model"] = a.model;
    j["quantize"] = a.quantize.empty() ? nullptr : nlohmann::ordered_json(a.quantize);
    // Resolved (unset means the format's default); null when no matrix is bf16.
    j["bf16_activations"] = has_bf16 ? nlohmann::ordered_json(model->bf16_activations()) : nlohmann::ordered_json();
    j["weight_types"] = info.weight_dtypes;
    j["params"] = info.params;
    j["weight_bytes"] = info.weight_bytes;
    j["threads"] = pool.size();
    j["isa"] = isa;
    j["load_s"] = load_s;
    j["prompt_len"] = r.prompt_len;
    j["gen"] = r.gen;
    j["depth"] = r.depth;
    j["prefill_tok_s"] = r.prefill_tok_s;
    j["decode_tok_s"] = r.decode_tok_s;
    j["decode_bytes_per_token"] = r.decode_bytes;
    j["read_bandwidth_gb_s"] = r.read_bandwidth / 1e9;
    j["roofline_tok_s"] = r.roofline_tok_s;
    j["roofline_fraction"] = r.roofline_fraction;
    if (a.profile) j["decode_profile"] = profile_json(r.profile);
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  const std::string decode_col = r.depth > 0 ? "decode @" + std::to_string(r.depth) + " tok/s" : "decode tok/s";
  std::printf("| model | weights | size | threads | isa | prefill %lld tok/s | %s | bytes/token | read GB/s | "
              "roofline tok/s | decode/roofline |\n",
              static_cast<long long>(r.prompt_len), decode_col.c_str());
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::printf("| %s | %s | %s | %d | %s | %.1f | %.1f | %s | %.1f | %.1f | %.2f |\n", a.model.c_str(),
              weights.c_str(), format_bytes(info.weight_bytes).c_str(), pool.size(), isa.c_str(),
              r.prefill_tok_s, r.decode_tok_s, format_bytes(r.decode_bytes).c_str(), r.read_bandwidth / 1e9,
              r.roofline_tok_s, r.roofline_fraction);
  if (a.profile) print_profile(r.profile, r.read_bandwidth);
  return 0;
}

}  // namespace

Runner add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* c = app.add_subcommand("bench", "Measure prefill and decode throughput against the memory-bandwidth roofline");
  c->add_option("--model", a->model, "Model folder or .gguf file")->required();
  c->add_option("--quantize", a->quantize, "Quantize at load: q8_0, q6_k, q5_0, q4_k, q4_0 (or f32, f16, bf16)");
  add_activation_flags(c, a->acts);
  c->add_option("--threads", a->threads, "Threads (0: all cores)")->check(CLI::NonNegativeNumber);
  c->add_option("--prompt-len", a->prompt_len, "Prefill length in tokens")->check(CLI::PositiveNumber);
  c->add_option("--gen", a->gen, "Decoded tokens (batch 1)")->check(CLI::PositiveNumber);
  c->add_option("--depth", a->depth, "Decode after this many tokens of context (filled untimed; llama-bench -d)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--reps", a->reps, "Timed repetitions per phase (median reported)")->check(CLI::PositiveNumber);
  c->add_flag("--json", a->json, "Print one JSON object instead of a table");
  c->add_flag("--profile", a->profile,
              "After the timed runs, one more decode run timed per operation (norms, each matmul with its GB/s, "
              "attention, ...)");
  return [a] { return run(*a); };
}

}  // namespace tandem::cli
