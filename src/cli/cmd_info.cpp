// tandem info: what a model folder holds and what it will cost to run.
#include <cstdio>
#include <string>

#include "base/strings.h"
#include "cli/commands.h"
#include "kernels/cpu/isa.h"
#include "models/model.h"

namespace tandem::cli {
namespace {

std::string rope_text(const formats::RopeParams& r) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s, theta %g", r.type.c_str(), r.theta);
  std::string s = buf;
  if (r.type != "default") {
    std::snprintf(buf, sizeof buf, ", factor %g", r.factor);
    s += buf;
  }
  if (r.partial_rotary_factor != 1.0) {
    std::snprintf(buf, sizeof buf, ", partial %g", r.partial_rotary_factor);
    s += buf;
  }
  return s;
}

int run(const std::string& path) {
  auto model = models::Model::load(path);
  const auto& c = model->config();
  const auto& a = model->arch();
  auto info = model->info();
  int64_t sliding = 0;
  for (auto t : c.layer_types) sliding += t == formats::LayerType::kSliding;
  const uint64_t kv_per_token = static_cast<uint64_t>(2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim) * 4;
  std::printf("model:          %s\n", path.c_str());
  std::printf("architecture:   %s (model_type %s)\n", info.family.c_str(), c.model_type.c_str());
  std::printf("layers:         %lld (%lld sliding-window, %lld full)\n", (long long)c.num_hidden_layers,
              (long long)sliding, (long long)(c.num_hidden_layers - sliding));
  std::printf("hidden:         %lld, intermediate %lld, activation %s\n", (long long)c.hidden_size,
              (long long)c.intermediate_size, c.hidden_act.c_str());
  std::printf("heads:          %lld query, %lld key/value, head_dim %lld\n", (long long)c.num_attention_heads,
              (long long)c.num_key_value_heads, (long long)c.head_dim);
  std::printf("vocab:          %lld%s\n", (long long)c.vocab_size, c.tie_word_embeddings ? " (tied embeddings)" : "");
  std::printf("context:        %lld", (long long)c.max_position_embeddings);
  if (sliding) std::printf(", sliding window %lld", (long long)c.sliding_window.value_or(0));
  std::printf("\n");
  std::printf("rope:           %s", rope_text(c.rope.at(formats::LayerType::kFull)).c_str());
  if (sliding && c.rope.count(formats::LayerType::kSliding)) {
    std::printf("; sliding layers: %s", rope_text(c.rope.at(formats::LayerType::kSliding)).c_str());
  }
  std::printf("\n");
  std::string extras;
  if (a.qkv_bias) extras += " qkv-bias";
  if (a.qk_norm) extras += " qk-norm";
  if (a.fused_qkv) extras += " fused-qkv";
  if (a.fused_gate_up) extras += " fused-gate-up";
  if (a.sandwich_norms) extras += " sandwich-norms";
  if (a.attn_softcap > 0) extras += " attn-softcap=" + std::to_string(a.attn_softcap);
  if (a.final_softcap > 0) extras += " final-softcap=" + std::to_string(a.final_softcap);
  if (!extras.empty()) std::printf("features:      %s\n", extras.c_str());
  std::printf("parameters:     %lld (%.2f M)\n", (long long)info.params, static_cast<double>(info.params) / 1e6);
  std::printf("weights dtype:  %s\n", info.weight_dtypes.c_str());
  std::printf("weight memory:  %s\n", format_bytes(info.weight_bytes).c_str());
  std::printf("kv cache:       %s per token (f32), %s at full context\n", format_bytes(kv_per_token).c_str(),
              format_bytes(kv_per_token * static_cast<uint64_t>(c.max_position_embeddings)).c_str());
  std::printf("eos ids:        [%s]\n", join_ints(model->eos_token_ids(), ", ").c_str());
  std::printf("cpu kernels:    %s\n", std::string(kernels::isa_name(kernels::active_isa())).c_str());
  return 0;
}

}  // namespace

Runner add_info(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* c = app.add_subcommand("info", "Describe a model: architecture, shapes, parameters, memory");
  c->add_option("--model,-m", *path, "Hugging Face model folder")->required();
  return [path] { return run(*path); };
}

}  // namespace tandem::cli
