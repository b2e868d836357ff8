// tandem logits: logits at every position of a token sequence, to safetensors.
#include <string>

#include "base/log.h"
#include "base/strings.h"
#include "base/thread_pool.h"
#include "cli/commands.h"
#include "formats/safetensors.h"
#include "models/model.h"

namespace tandem::cli {
namespace {

struct LogitsArgs {
  std::string model, ids, out;
  int threads = 0;
  bool f32 = false;
  std::string quantize;
  ActivationFlags acts;
};

int run(const LogitsArgs& a) {
  std::vector<int32_t> ids = parse_id_list(a.ids, "--ids");
  models::LoadOptions lo;
  lo.convert_to_f32 = a.f32;
  apply_quantize_flag(a.quantize, lo);
  lo.bf16_activations = a.acts.choice();
  auto model = models::Model::load(a.model, lo);
  ThreadPool pool(a.threads);
  const int64_t V = model->vocab_size();
  std::vector<float> logits(ids.size() * static_cast<size_t>(V));
  models::KvCache cache = model->new_cache(static_cast<int64_t>(ids.size()));
  models::Workspace ws;
  models::SeqInput in{ids, &cache, true, logits.data()};
  model->forward(std::span<const models::SeqInput>(&in, 1), ws, pool);
  formats::write_safetensors(a.out, {{"logits", DType::kF32, {static_cast<int64_t>(ids.size()), V}, logits.data()}});
  log::info("wrote logits [" + std::to_string(ids.size()) + ", " + std::to_string(V) + "] to " + a.out);
  return 0;
}

}  // namespace

Runner add_logits(CLI::App& app) {
  auto a = std::make_shared<LogitsArgs>();
  CLI::App* c = app.add_subcommand("logits", "Write the logits at every position of --ids to a safetensors file");
  c->add_option("--model,-m", a->model, "Hugging Face model folder")->required();
  c->add_option("--ids", a->ids, "Comma-separated token ids")->required();
  c->add_option("--out,-o", a->out, "Output .safetensors file (tensor 'logits', float32 [n_ids, vocab])")->required();
  c->add_option("--threads,-t", a->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  c->add_flag("--f32", a->f32, "Convert weights to float32 at load");
  c->add_option("--quantize", a->quantize, "Quantize at load: q8_0, q6_k, q5_0, q4_k (Q4_K_M-like mix), q4_0");
  add_activation_flags(c, a->acts);
  return [a] { return run(*a); };
}

}  // namespace tandem::cli
