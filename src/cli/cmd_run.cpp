// tandem run: generate a continuation of a prompt.
#include <cstdio>
#include <optional>
#include <string>

#include "base/error.h"
#include "base/log.h"
#include "base/strings.h"
#include "base/thread_pool.h"
#include "cli/commands.h"
#include "engine/model_tokenizer.h"
#include "engine/generate.h"
#include "models/model.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace tandem::cli {
namespace {

struct RunArgs {
  std::string model;
  std::optional<std::string> prompt;
  std::optional<std::string> prompt_ids;
  int64_t n = 128;
  std::optional<float> temperature;
  std::optional<int32_t> top_k;
  std::optional<float> top_p;
  std::optional<float> min_p;
  std::optional<float> repetition_penalty;
  uint64_t seed = 0;
  int threads = 0;
  bool print_ids = false;
  bool ignore_eos = false;
  bool f32 = false;
  std::string quantize;
  ActivationFlags acts;
  bool chat = false;
};

int run(const RunArgs& a) {
  // Before the weights load, so a model without a template fails at once.
  std::optional<tokenizer::ChatTemplate> chat_template;
  std::string bos_token, eos_token;
  if (a.chat) chat_template = load_chat_template(a.model, &bos_token, &eos_token);
  models::LoadOptions lo;
  lo.convert_to_f32 = a.f32;
  apply_quantize_flag(a.quantize, lo);
  lo.bf16_activations = a.acts.choice();
  auto model = models::Model::load(a.model, lo);
  std::unique_ptr<tokenizer::Tokenizer> tok;
  std::vector<int32_t> prompt;
  if (a.prompt) {
    tok = engine::load_model_tokenizer(a.model);
    if (chat_template) {
      tokenizer::ChatRenderInput in;
      in.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", unescape(*a.prompt)}}});
      in.add_generation_prompt = true;
      in.bos_token = bos_token;
      in.eos_token = eos_token;
      // The template writes BOS itself; adding special tokens again would double it.
      prompt = tok->encode(chat_template->render(in), /*add_special_tokens=*/false);
    } else {
      prompt = tok->encode(unescape(*a.prompt), /*add_special_tokens=*/true);
    }
  } else {
    prompt = parse_id_list(*a.prompt_ids, "--prompt-ids");
    if (!a.print_ids) tok = engine::load_model_tokenizer(a.model);
  }

  engine::GenerateOptions go;
  go.max_new_tokens = a.n;
  go.ignore_eos = a.ignore_eos;
  go.eos_ids = model->eos_token_ids();
  // generation_config.json's sampling defaults apply when it asks for sampling;
  // explicit flags always win.
  const auto& gc = model->generation_config();
  auto& sp = go.sampling;
  if (gc.do_sample) {
    sp.temperature = static_cast<float>(gc.temperature.value_or(1.0));
    sp.top_k = static_cast<int32_t>(gc.top_k.value_or(50));
    sp.top_p = static_cast<float>(gc.top_p.value_or(1.0));
    sp.min_p = static_cast<float>(gc.min_p.value_or(0.0));
  }
  if (gc.repetition_penalty) sp.repetition_penalty = static_cast<float>(*gc.repetition_penalty);
  if (a.temperature) sp.temperature = *a.temperature;
  if (a.top_k) sp.top_k = *a.top_k;
  if (a.top_p) sp.top_p = *a.top_p;
  if (a.min_p) sp.min_p = *a.min_p;
  if (a.repetition_penalty) sp.repetition_penalty = *a.repetition_penalty;
  sp.seed = a.seed;
  engine::validate(sp);

  ThreadPool pool(a.threads);
  std::unique_ptr<tokenizer::StreamDecoder> stream;
  if (!a.print_ids) stream = std::make_unique<tokenizer::StreamDecoder>(*tok);
  auto on_token = [&](int32_t id) {
    if (stream) {
      std::string piece = stream->push(id);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    return true;
  };
  engine::GenerateResult res = engine::generate(*model, prompt, go, pool, on_token);
  if (a.print_ids) {
    std::printf("[%s]\n", join_ints(res.ids, ", ").c_str());
  } else {
    std::string rest = stream->flush();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::fputc('\n', stdout);
  }
  std::fflush(stdout);
  const double n_dec = res.ids.size() > 1 ? static_cast<double>(res.ids.size() - 1) : 0.0;
  char line[256];
  std::snprintf(line, sizeof line,
                "prompt %zu tokens in %.3f s (%.1f tok/s); generated %zu tokens, decode %.1f tok/s; finish: %s; "
                "threads %d",
                prompt.size(), res.prefill_seconds, static_cast<double>(prompt.size()) / std::max(1e-9, res.prefill_seconds),
                res.ids.size(), res.decode_seconds > 0 ? n_dec / res.decode_seconds : 0.0, res.finish_reason.c_str(),
                pool.size());
  log::info(line);
  return 0;
}

}  // namespace

Runner add_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* c = app.add_subcommand("run", "Generate a continuation of a prompt");
  c->add_option("--model,-m", a->model, "Hugging Face model folder")->required();
  auto* p = c->add_option("--prompt,-p", a->prompt, "Prompt text (\\n and \\t are expanded)");
  auto* pi = c->add_option("--prompt-ids", a->prompt_ids, "Prompt as comma-separated token ids");
  p->excludes(pi);
  c->add_option("-n,--max-tokens", a->n, "Tokens to generate")->check(CLI::NonNegativeNumber);
  c->add_option("--temperature", a->temperature, "0 = greedy");
  c->add_option("--top-k", a->top_k, "Keep the k most likely tokens (0 = off)");
  c->add_option("--top-p", a->top_p, "Nucleus sampling mass (1 = off)");
  c->add_option("--min-p", a->min_p, "Drop tokens below min_p times the top probability");
  c->add_option("--repetition-penalty", a->repetition_penalty, "Penalty on tokens already seen (1 = off)");
  c->add_option("--seed", a->seed, "Random seed for sampling");
  c->add_option("--threads,-t", a->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  c->add_flag("--print-ids", a->print_ids, "Print only a JSON array of the generated ids");
  c->add_flag("--ignore-eos", a->ignore_eos, "Keep generating past end-of-sequence tokens");
  c->add_flag("--f32", a->f32, "Convert weights to float32 at load");
  c->add_option("--quantize", a->quantize, "Quantize at load: q8_0, q6_k, q5_0, q4_k (Q4_K_M-like mix), q4_0");
  add_activation_flags(c, a->acts);
  c->add_flag("--chat", a->chat,
              "Send --prompt as one user message through the model's chat template");
  return [a, p, pi] {
    if (p->count() == 0 && pi->count() == 0) throw Error("run: give --prompt or --prompt-ids");
    if (a->chat && p->count() == 0) throw Error("run: --chat needs --prompt");
    return run(*a);
  };
}

}  // namespace tandem::cli
