// Pipeline::run: renders each step's templates over the input and earlier outputs, turns
// them into engine requests and combines the results. Requests of one step go to the engine
// together (map chunks, classify labels) so the scheduler batches them and the prefix cache
// shares their common prompt.
#include "pipeline/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <set>

#include "pipeline/json_schema.h"

namespace tandem::pipeline {

using nlohmann::json;
using nlohmann::ordered_json;

namespace {

// Variables chat-template rendering provides itself.
const std::set<std::string>& provided_variables() {
  static const std::set<std::string> k{"bos_token", "eos_token", "add_generation_prompt", "tools",
                                       "documents"};
  return k;
}

// The plain role: content rendering the server also falls back to for models without a chat
// template.
constexpr const char* kFallbackChat =
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}";

const char* json_type(const ordered_json& v) {
  switch (v.type()) {
    case ordered_json::value_t::string:
      return "a string";
    case ordered_json::value_t::boolean:
      return "a boolean";
    case ordered_json::value_t::null:
      return "null";
    case ordered_json::value_t::array:
      return "a list";
    case ordered_json::value_t::object:
      return "an object";
    default:
      return "a number";
  }
}

struct Template {
  std::string source;
  std::optional<tokenizer::ChatTemplate> tpl;
  std::vector<tokenizer::ChatTemplate::Variable> vars;
  explicit operator bool() const { return tpl.has_value(); }
};

Template make_template(const std::string& source, const std::string& where) {
  Template t;
  t.source = source;
  if (source.empty()) return t;
  try {
    t.tpl = tokenizer::ChatTemplate::parse(source);
  } catch (const Error& e) {
    throw ConfigError(where + ": template does not parse: " + e.what());
  }
  t.vars = t.tpl->free_variables();
  return t;
}

// One engine request's results.
struct Done {
  std::string text;
  engine::FinishReason reason = engine::FinishReason::kNone;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  std::vector<float> prompt_logprobs;
};

}  // namespace

struct Pipeline::Impl {
  struct Step {
    const StepConfig* cfg;
    Template prompt, map_prompt, reduce_prompt;
    std::shared_ptr<const SchemaNode> schema;
    std::vector<std::vector<int32_t>> label_ids;
  };
  std::vector<Step> steps;
  std::shared_ptr<const VocabBytes> vocab;  // built when a step needs it
  tokenizer::ChatTemplate fallback_chat = tokenizer::ChatTemplate::parse(kFallbackChat);
};

Pipeline::Pipeline(PipelineConfig cfg, ModelHandle model, int32_t tenant)
    : cfg_(std::move(cfg)), model_(model), tenant_(tenant), impl_(std::make_unique<Impl>()) {
  TANDEM_CHECK(model_.engine && model_.tok, "a pipeline needs an engine and a tokenizer");
  const int64_t engine_ctx = model_.engine->max_context();
  if (model_.max_context <= 0 || model_.max_context > engine_ctx) model_.max_context = engine_ctx;
  for (size_t i = 0; i < cfg_.steps.size(); ++i) {
    const StepConfig& s = cfg_.steps[i];
    const std::string where = "pipeline '" + cfg_.name + "' step '" + s.name + "'";
    Impl::Step st;
    st.cfg = &s;
    st.prompt = make_template(s.prompt, where + " prompt");
    if (s.kind == StepKind::kMapReduce) {
      st.map_prompt = make_template(s.map_prompt, where + " map_prompt");
      st.reduce_prompt = make_template(s.reduce_prompt, where + " reduce_prompt");
      if (!st.map_prompt || !st.reduce_prompt)
        throw ConfigError(where + ": needs map_prompt and reduce_prompt");
    }
    if ((s.kind == StepKind::kClassify || s.kind == StepKind::kExtract) && !st.prompt) {
      throw ConfigError(where + ": needs a prompt");
    }
    if (s.kind == StepKind::kClassify) {
      if (s.labels.size() < 2) throw ConfigError(where + ": needs at least 2 labels");
      for (const auto& l : s.labels) {
        auto ids = model_.tok->encode(l, false);
        if (ids.empty()) throw ConfigError(where + ": label '" + l + "' has no tokens");
        st.label_ids.push_back(std::move(ids));
      }
    }
    if (s.kind == StepKind::kExtract) {
      try {
        st.schema = std::make_shared<const SchemaNode>(s.ordered_schema.is_null()
                                                           ? compile_schema(s.schema)
                                                           : compile_schema(s.ordered_schema));
      } catch (const SchemaError& e) {
        throw ConfigError(where + ": schema." + e.what());
      }
      if (!impl_->vocab) impl_->vocab = std::make_shared<const VocabBytes>(*model_.tok);
    }
    impl_->steps.push_back(std::move(st));
  }
}

Pipeline::~Pipeline() = default;

namespace {

// Everything one run() carries between steps.
struct Run {
  const PipelineConfig& cfg;
  const ModelHandle& model;
  int32_t tenant;
  const tokenizer::ChatTemplate& fallback_chat;
  const std::atomic<bool>* cancelled;
  ordered_json vars;                 // input fields and step outputs by step name
  std::set<std::string> step_names;  // outputs so far
  RunResult result;
  bool was_cancelled = false;

  bool stop_requested() const { return cancelled != nullptr && cancelled->load(); }

  // Every variable the template reads must be given; one printed as is must be text.
  void check_inputs(const Template& t, const std::set<std::string>& local) const {
    for (const auto& v : t.vars) {
      if (local.count(v.name) || provided_variables().count(v.name)) continue;
      auto it = vars.find(v.name);
      if (it == vars.end()) throw InputError(400, v.name, "missing input field '" + v.name + "'");
      if (v.printed && !step_names.count(v.name) && !it->is_string()) {
        throw InputError(
            400, v.name,
            "input field '" + v.name + "' must be a string (got " + json_type(*it) + ")");
      }
    }
  }

  std::string render(const Template& t, const ordered_json& local = ordered_json::object()) const {
    tokenizer::ChatRenderInput in;
    in.extra = vars;
    for (const auto& [k, v] : local.items()) in.extra[k] = v;
    if (auto m = vars.find("messages"); m != vars.end() && m->is_array()) in.messages = *m;
    in.bos_token = model.bos_token;
    in.eos_token = model.eos_token;
    try {
      return t.tpl->render(in);
    } catch (const Error& e) {
      throw InputError(400, "", std::string("could not render the prompt: ") + e.what());
    }
  }

  // Prompt ids for rendered text: the user message of the chat template with chat on,
  // else the text with the tokenizer's special tokens (BOS), as /v1/completions does.
  std::vector<int32_t> prompt_ids(const std::string& text, bool chat) const {
    if (chat && model.chat != nullptr) {
      tokenizer::ChatRenderInput in;
      in.messages = ordered_json::array({{{"role", "user"}, {"content", text}}});
      in.add_generation_prompt = true;
      in.bos_token = model.bos_token;
      in.eos_token = model.eos_token;
      try {
        return model.tok->encode(model.chat->render(in), false);
      } catch (const Error& e) {
        throw InputError(400, "", std::string("could not build the prompt: ") + e.what());
      }
    }
    return model.tok->encode(text, true);
  }

  std::vector<int32_t> messages_ids(const ordered_json& messages) const {
    if (!messages.is_array() || messages.empty())
      throw InputError(400, "messages", "'messages' must be a non-empty list");
    for (const auto& m : messages) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
        throw InputError(400, "messages", "each message needs a string 'role'");
      }
    }
    tokenizer::ChatRenderInput in;
    in.messages = messages;
    in.add_generation_prompt = true;
    in.bos_token = model.bos_token;
    in.eos_token = model.eos_token;
    try {
      const auto& tpl = model.chat != nullptr ? *model.chat : fallback_chat;
      return model.tok->encode(tpl.render(in), false);
    } catch (const Error& e) {
      throw InputError(400, "messages", std::string("could not build the prompt: ") + e.what());
    }
  }

  // The most prompt tokens one request of this pipeline may have (413 beyond).
  int64_t prompt_limit() const {
    int64_t lim = model.max_context - 1;
    if (cfg.max_input_tokens > 0) lim = std::min(lim, cfg.max_input_tokens);
    return lim;
  }
  // `reserve`: output tokens the step cannot do without (an extract's shortest JSON).
  void check_length(int64_t n, const std::string& field, int64_t reserve = 0) const {
    const int64_t lim = std::min(prompt_limit(), model.max_context - std::max<int64_t>(1, reserve));
    if (n > lim) {
      throw InputError(413, field,
                       "the input is " + std::to_string(n) + " tokens; pipeline '" + cfg.name +
                           "' takes at most " + std::to_string(lim));
    }
    if (n == 0) throw InputError(400, field, "the prompt is empty");
  }

  engine::RequestOptions request(std::vector<int32_t> prompt, const StepConfig& s) const {
    engine::RequestOptions o;
    o.max_tokens = std::max<int64_t>(
        0,
        std::min<int64_t>(s.max_tokens, model.max_context - static_cast<int64_t>(prompt.size())));
    o.prompt = std::move(prompt);
    o.sampling = s.sampling;
    o.stop = s.stop;
    o.tenant = tenant;
    return o;
  }

  // Runs the requests with at most kWindow of them in the engine at once, submitted together
  // so the scheduler batches them. When the engine refuses one (its queue, or this pipeline's
  // share of it, is full) while some of ours are still in it, the next of ours to finish
  // makes room and the submission is tried again: a document of hundreds of chunks throttles
  // itself instead of failing. A refusal with none of ours in the engine propagates (429).
  static constexpr size_t kWindow = 64;
  std::vector<Done> run_all(const std::vector<engine::RequestOptions>& opts) {
    const size_t n = opts.size();
    std::vector<std::shared_ptr<engine::Request>> reqs(n);
    std::vector<Done> out(n);
    size_t submitted = 0, collected = 0;
    auto cancel_all = [&] {
      for (size_t i = collected; i < submitted; ++i) reqs[i]->cancel();
    };
    while (collected < n) {
      while (submitted < n && submitted - collected < kWindow) {
        try {
          reqs[submitted] = model.engine->submit(opts[submitted]);
        } catch (const engine::Overloaded& e) {
          if (submitted == collected || e.draining()) {
            cancel_all();
            throw;
          }
          break;  // wait for one of ours, then try again
        } catch (...) {
          cancel_all();
          throw;
        }
        ++submitted;
      }
      const size_t i = collected;
      engine::Request::Output o;
      for (;;) {
        if (stop_requested()) {
          cancel_all();
          was_cancelled = true;
          return {};
        }
        const bool fin = reqs[i]->wait(std::chrono::milliseconds(50), o);
        for (auto& e : o.events) out[i].text += e.text;
        if (fin) break;
      }
      ++collected;
      out[i].reason = o.reason;
      out[i].prompt_tokens = o.prompt_tokens;
      out[i].completion_tokens = o.completion_tokens;
      out[i].prompt_logprobs = std::move(o.prompt_logprobs);
      result.prompt_tokens += o.prompt_tokens;
      result.completion_tokens += o.completion_tokens;
      if (o.reason == engine::FinishReason::kError) {
        cancel_all();
        throw Error("pipeline '" + cfg.name + "': the engine failed a request: " + o.error);
      }
      if (o.reason == engine::FinishReason::kCancelled) {
        cancel_all();
        was_cancelled = true;
        return {};
      }
    }
    return out;
  }

  void set_output(const std::string& name, json output, const json& as_variable,
                  engine::FinishReason reason) {
    result.steps[name] = output;
    result.output = std::move(output);
    result.finish_reason = engine::finish_reason_name(reason);
    vars[name] = as_variable;
    step_names.insert(name);
  }
};

std::string summaries_text(const std::vector<std::string>& parts) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) s += "\n\n";
    s += parts[i];
  }
  return s;
}

}  // namespace

std::optional<engine::RequestOptions> Pipeline::single_request(const json& input) const {
  if (cfg_.steps.size() != 1 || cfg_.steps[0].kind != StepKind::kGenerate) return std::nullopt;
  if (!input.is_object()) throw InputError(400, "", "the input must be a JSON object");
  Run run{cfg_, model_, tenant_, impl_->fallback_chat, nullptr, ordered_json(input), {}, {}};
  const auto& st = impl_->steps[0];
  const StepConfig& s = *st.cfg;
  std::vector<int32_t> ids;
  std::string field = "input";
  if (st.prompt) {
    run.check_inputs(st.prompt, {});
    ids = run.prompt_ids(run.render(st.prompt), s.chat);
  } else if (input.contains("messages")) {
    field = "messages";
    ids = run.messages_ids(run.vars["messages"]);
  } else {
    auto it = input.find("input");
    if (it == input.end()) throw InputError(400, "input", "missing input field 'input'");
    if (!it->is_string()) throw InputError(400, "input", "input field 'input' must be a string");
    ids = model_.tok->encode(it->get<std::string>(), true);
  }
  run.check_length(static_cast<int64_t>(ids.size()), field);
  return run.request(std::move(ids), s);
}

RunResult Pipeline::run(const json& input, const std::atomic<bool>* cancelled) {
  if (!input.is_object()) throw InputError(400, "", "the input must be a JSON object");
  Run run{cfg_, model_, tenant_, impl_->fallback_chat, cancelled, ordered_json(input), {}, {}};
  const int64_t ctx = model_.max_context;
  auto cancelled_result = [&] {
    run.result.finish_reason = "cancelled";
    return std::move(run.result);
  };

  for (const auto& st : impl_->steps) {
    const StepConfig& s = *st.cfg;
    if (run.stop_requested()) return cancelled_result();
    switch (s.kind) {
      case StepKind::kGenerate: {
        std::vector<int32_t> ids;
        std::string field = "input";
        if (st.prompt) {
          run.check_inputs(st.prompt, {});
          ids = run.prompt_ids(run.render(st.prompt), s.chat);
        } else if (run.vars.contains("messages")) {
          field = "messages";
          ids = run.messages_ids(run.vars["messages"]);
        } else {
          auto it = run.vars.find("input");
          if (it == run.vars.end()) throw InputError(400, "input", "missing input field 'input'");
          if (!it->is_string())
            throw InputError(400, "input", "input field 'input' must be a string");
          ids = model_.tok->encode(it->get<std::string>(), true);
        }
        run.check_length(static_cast<int64_t>(ids.size()), field);
        std::vector<engine::RequestOptions> one;
        one.push_back(run.request(std::move(ids), s));
        auto done = run.run_all(one);
        if (run.was_cancelled) return cancelled_result();
        run.set_output(s.name, json{{"text", done[0].text}}, done[0].text, done[0].reason);
        break;
      }

      case StepKind::kMapReduce: {
        run.check_inputs(st.map_prompt, {"chunk", "chunk_index", "chunk_count"});
        run.check_inputs(st.reduce_prompt, {"summaries"});
        auto it = run.vars.find(s.input);
        if (it == run.vars.end())
          throw InputError(400, s.input, "missing input field '" + s.input + "'");
        if (!it->is_string()) {
          throw InputError(
              400, s.input,
              "input field '" + s.input + "' must be a string (got " + json_type(*it) + ")");
        }
        const std::vector<int32_t> tokens = model_.tok->encode(it->get<std::string>(), false);
        const auto n = static_cast<int64_t>(tokens.size());
        if (n == 0) throw InputError(400, s.input, "input field '" + s.input + "' is empty");
        if (cfg_.max_input_tokens > 0 && n > cfg_.max_input_tokens) {
          throw InputError(413, s.input,
                           "the input is " + std::to_string(n) + " tokens; pipeline '" + cfg_.name +
                               "' takes at most " + std::to_string(cfg_.max_input_tokens));
        }
        // Chunk size: what is left of the context after the map prompt, the output and a
        // margin for tokens that merge differently once the chunk is inside the prompt.
        const int64_t kMargin = 16;
        const auto overhead = static_cast<int64_t>(
            run.prompt_ids(run.render(st.map_prompt,
                                      {{"chunk", ""}, {"chunk_index", 0}, {"chunk_count", 1}}),
                           s.chat)
                .size());
        const int64_t max_out = std::min<int64_t>(s.max_tokens, ctx / 4);
        int64_t chunk = ctx - overhead - max_out - kMargin;
        if (s.chunk_tokens > 0) chunk = std::min(chunk, s.chunk_tokens);
        if (chunk < 16)
          throw Error("pipeline '" + cfg_.name + "' step '" + s.name +
                      "': the map prompt leaves no room for a chunk");
        const int64_t overlap = std::min(s.overlap_tokens, chunk / 2);
        std::vector<std::string> chunks;
        for (int64_t start = 0;; start += chunk - overlap) {
          const int64_t end = std::min(n, start + chunk);
          chunks.push_back(model_.tok->decode(
              std::span<const int32_t>(tokens.data() + start, static_cast<size_t>(end - start))));
          if (end == n) break;
        }
        StepConfig ms = s;
        ms.max_tokens = max_out;
        std::vector<engine::RequestOptions> maps;
        for (size_t i = 0; i < chunks.size(); ++i) {
          auto ids = run.prompt_ids(run.render(st.map_prompt, {{"chunk", chunks[i]},
                                                               {"chunk_index", i},
                                                               {"chunk_count", chunks.size()}}),
                                    s.chat);
          if (static_cast<int64_t>(ids.size()) >= ctx)
            ids.resize(static_cast<size_t>(ctx - max_out));
          maps.push_back(run.request(std::move(ids), ms));
        }
        auto mapped = run.run_all(maps);
        if (run.was_cancelled) return cancelled_result();
        std::vector<std::string> parts;
        for (auto& d : mapped) parts.push_back(std::move(d.text));

        // Reduce, hierarchically: pack summaries into groups whose reduce prompt fits, reduce
        // each group, and repeat until one output remains.
        auto reduce_ids = [&](const std::vector<std::string>& group) {
          return run.prompt_ids(
              run.render(st.reduce_prompt, {{"summaries", summaries_text(group)}}), s.chat);
        };
        auto fits = [&](const std::vector<std::string>& group) {
          return static_cast<int64_t>(reduce_ids(group).size()) + max_out <= ctx;
        };
        int rounds = 0;
        engine::FinishReason last = engine::FinishReason::kStop;
        for (;;) {
          ++rounds;
          std::vector<std::vector<std::string>> groups;
          if (fits(parts)) {
            groups.push_back(parts);
          } else {
            std::vector<std::string> cur;
            for (auto& p : parts) {
              cur.push_back(p);
              if (cur.size() > 1 && !fits(cur)) {
                cur.pop_back();
                groups.push_back(std::move(cur));
                cur = {p};
              }
            }
            if (!cur.empty()) groups.push_back(std::move(cur));
            // Groups of one make no progress: shorten the summaries instead.
            if (groups.size() == parts.size()) {
              groups.clear();
              for (size_t i = 0; i < parts.size(); i += 2) {
                std::vector<std::string> g{parts[i]};
                if (i + 1 < parts.size()) g.push_back(parts[i + 1]);
                for (auto& t : g) {
                  auto ids = model_.tok->encode(t, false);
                  if (ids.size() > static_cast<size_t>(max_out / 2))
                    ids.resize(static_cast<size_t>(max_out / 2));
                  t = model_.tok->decode(ids);
                }
                groups.push_back(std::move(g));
              }
            }
          }
          std::vector<engine::RequestOptions> reds;
          for (const auto& g : groups) {
            auto ids = reduce_ids(g);
            if (static_cast<int64_t>(ids.size()) + max_out > ctx)
              ids.resize(static_cast<size_t>(std::max<int64_t>(1, ctx - max_out)));
            reds.push_back(run.request(std::move(ids), ms));
          }
          auto reduced = run.run_all(reds);
          if (run.was_cancelled) return cancelled_result();
          parts.clear();
          for (auto& d : reduced) {
            parts.push_back(std::move(d.text));
            last = d.reason;
          }
          if (parts.size() == 1) break;
        }
        run.set_output(
            s.name, json{{"text", parts[0]}, {"chunks", chunks.size()}, {"reduce_rounds", rounds}},
            parts[0], last);
        break;
      }

      case StepKind::kClassify: {
        run.check_inputs(st.prompt, {});
        auto prompt = run.prompt_ids(run.render(st.prompt), s.chat);
        if (prompt.empty()) throw InputError(400, "", "the classify prompt is empty");
        size_t longest = 0;
        for (const auto& l : st.label_ids) longest = std::max(longest, l.size());
        run.check_length(static_cast<int64_t>(prompt.size() + longest), "input");
        std::vector<engine::RequestOptions> reqs;
        for (const auto& l : st.label_ids) {
          engine::RequestOptions o;
          o.prompt = prompt;
          o.prompt.insert(o.prompt.end(), l.begin(), l.end());
          o.max_tokens = 0;
          o.prompt_logprobs_from = static_cast<int64_t>(prompt.size());
          o.tenant = tenant_;
          reqs.push_back(std::move(o));
        }
        auto done = run.run_all(reqs);
        if (run.was_cancelled) return cancelled_result();
        std::vector<double> ll(done.size(), 0.0);
        for (size_t i = 0; i < done.size(); ++i) {
          if (done[i].prompt_logprobs.size() != st.label_ids[i].size()) {
            throw Error("pipeline '" + cfg_.name + "': the engine returned " +
                        std::to_string(done[i].prompt_logprobs.size()) +
                        " prompt logprobs for label '" + s.labels[i] + "' (expected " +
                        std::to_string(st.label_ids[i].size()) + ")");
          }
          for (float lp : done[i].prompt_logprobs) ll[i] += lp;
        }
        const double mx = *std::max_element(ll.begin(), ll.end());
        double z = 0;
        for (double v : ll) z += std::exp(v - mx);
        json probs = json::object();
        size_t best = 0;
        for (size_t i = 0; i < ll.size(); ++i) {
          probs[s.labels[i]] = std::exp(ll[i] - mx) / z;
          if (ll[i] > ll[best]) best = i;
        }
        run.set_output(s.name, json{{"label", s.labels[best]}, {"probabilities", probs}},
                       s.labels[best], engine::FinishReason::kStop);
        break;
      }

      case StepKind::kExtract: {
        run.check_inputs(st.prompt, {});
        auto prompt = run.prompt_ids(run.render(st.prompt), s.chat);
        run.check_length(static_cast<int64_t>(prompt.size()), "input", st.schema->min_bytes);
        StepConfig es = s;
        es.stop.clear();  // a stop string could cut the JSON
        auto o = run.request(std::move(prompt), es);
        auto constraint = std::make_shared<JsonConstraint>(st.schema, impl_->vocab, o.max_tokens);
        o.constraint = constraint;
        std::vector<engine::RequestOptions> one;
        one.push_back(std::move(o));
        auto done = run.run_all(one);
        if (run.was_cancelled) return cancelled_result();
        const std::string& text = constraint->text();
        if (!constraint->complete()) {
          throw Error("pipeline '" + cfg_.name + "' step '" + s.name +
                      "': the JSON output did not complete (" +
                      std::to_string(done[0].completion_tokens) + " tokens, finish reason " +
                      engine::finish_reason_name(done[0].reason) + "): " + text);
        }
        json value;
        try {
          value = json::parse(text);
        } catch (const json::exception& e) {
          throw Error("pipeline '" + cfg_.name + "' step '" + s.name +
                      "': output is not JSON: " + e.what());
        }
        std::string why;
        if (!validate(value, s.schema, &why)) {
          throw Error("pipeline '" + cfg_.name + "' step '" + s.name +
                      "': output does not match the schema: " + why);
        }
        run.set_output(s.name, json{{"json", value}}, value, engine::FinishReason::kStop);
        break;
      }
    }
  }
  return std::move(run.result);
}

}  // namespace tandem::pipeline
