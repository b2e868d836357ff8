#include "server/server.h"

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "base/error.h"
#include "base/log.h"
#include "engine/model_tokenizer.h"
#include "models/model.h"
#include "server/http_util.h"
#include "server/served.h"
#include "server/openai_request.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace tandem::server {
using namespace detail;
namespace {

using Clock = std::chrono::steady_clock;

// Models without a chat template of their own (like the demo model) are served
// with this plain one, so /v1/chat/completions works everywhere.
constexpr const char* kFallbackTemplate =
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}";




// The float32 values as little-endian bytes in base64, as OpenAI's encoding_format "base64".
std::string base64(const std::vector<float>& v) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes(v.size() * sizeof(float), '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &v[i], sizeof u);
    for (int b = 0; b < 4; ++b)
      bytes[i * 4 + static_cast<size_t>(b)] = static_cast<char>((u >> (8 * b)) & 0xff);
  }
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t chunk = 0;
    for (size_t j = 0; j < 3; ++j) {
      chunk = (chunk << 8) | (j < n ? static_cast<unsigned char>(bytes[i + j]) : 0u);
    }
    for (size_t j = 0; j < 4; ++j) out += j <= n ? kAlphabet[(chunk >> (18 - 6 * j)) & 63] : '=';
  }
  return out;
}

// Debian's cpp-httplib is compiled with a listen backlog of 5, so a burst of
// clients connecting at once overflows the accept queue and waits for SYN
// retransmits (a second or more). Listening again on the bound socket with a
// larger backlog is allowed and only changes the queue length.
void widen_backlog(int port) {
  for (int fd = 0; fd < 4096; ++fd) {
    int listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_storage addr{};
    socklen_t alen = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    int p = -1;
    if (addr.ss_family == AF_INET) p = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    if (addr.ss_family == AF_INET6) p = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    if (p == port) ::listen(fd, SOMAXCONN);
  }
}


}  // namespace


struct Server::Metrics {
  std::mutex mu;
  std::map<std::pair<std::string, int>, uint64_t> requests;  // (model, status) -> count
};

Server::Server(ServerOptions opts, ThreadPool& pool)
    : opts_(std::move(opts)),
      pool_(pool),
      http_(std::make_unique<httplib::Server>()),
      manager_(std::make_unique<runtime::ResourceManager>(opts_.manager)),
      executor_(std::make_unique<runtime::Executor>("cpu", manager_.get())),
      metrics_(std::make_unique<Metrics>()) {
  routes();
  pipeline_routes();
}

Server::~Server() {
  pipelines_.clear();
  // No engine steps from here on (a step of one engine may resize another's KV pool).
  for (auto& m : models_) {
    if (m->engine) executor_->remove(m->engine.get());
  }
  for (auto& m : models_) m->engine.reset();
}

void Server::add_model(const ModelSpec& spec, const engine::EngineOptions& eo) {
  for (const auto& m : models_) {
    if (m->name == spec.name) throw Error("two models are named '" + spec.name + "'");
  }
  auto s = std::make_unique<Served>();
  s->name = spec.name;
  s->model = models::Model::load(spec.path, spec.load);
  s->tok = engine::load_model_tokenizer(spec.path);
  if (std::filesystem::is_directory(spec.path)) {
    try {
      s->chat = tokenizer::ChatTemplate::from_model_dir(spec.path, "default", &s->bos, &s->eos);
    } catch (const Error& e) {
      log::info(spec.name + ": no usable chat template (" + e.what() +
                "); using the plain role: content template");
    }
  }
  if (!s->chat) s->chat = tokenizer::ChatTemplate::parse(kFallbackTemplate);
  engine::EngineOptions opts = eo;
  opts.policy = manager_.get();
  opts.driver = executor_.get();
  // The engine's pool is its part of the CPU's KV memory; it may grow to 4x by taking what
  // the other engines on the CPU do not need.
  opts.scheduler.kv_growth = 4;
  s->engine = std::make_unique<engine::Engine>(*s->model, s->tok.get(), opts, pool_);
  runtime::TenantSpec t;
  t.name = spec.name;
  t.engine = s->engine.get();
  t.fallback = true;
  s->tenant = manager_->add_tenant(t);
  manager_->set_engine_capacity(s->engine.get(), s->engine->stats().kv_blocks_total,
                                opts.scheduler.max_running);
  {
    engine::Engine* e = s->engine.get();
    const int64_t bs = opts.scheduler.block_size;
    const int64_t one_context = (e->max_context() + bs) / bs;
    manager_->set_engine_kv_memory(e, "cpu", e->kv_block_bytes(), one_context, e->kv_blocks_max(),
                                   [e](int64_t blocks) { e->request_kv_limit(blocks); });
  }
  executor_->add(s->engine.get());
  s->created = unix_now();
  models_.push_back(std::move(s));
}

Server::Served* Server::find(const std::string& name) {
  for (auto& m : models_) {
    if (m->name == name) return m.get();
  }
  return nullptr;
}

void Server::add_pipeline(const pipeline::PipelineConfig& cfg) {
  if (find(cfg.name) != nullptr || find_pipeline(cfg.name) != nullptr) {
    throw pipeline::ConfigError("pipeline '" + cfg.name + "': the name is taken by a model or pipeline");
  }
  Served* m = find(cfg.model);
  if (m == nullptr) throw pipeline::ConfigError("pipeline '" + cfg.name + "': no model '" + cfg.model + "'");
  runtime::TenantSpec t;
  t.name = cfg.name;
  t.cls = cfg.cls == pipeline::PipelineClass::kBatch ? 1 : 0;
  t.weight = cfg.weight;
  t.min_share = cfg.min_share;
  t.max_share = cfg.max_share;
  t.ttft_ms = cfg.ttft_ms;
  t.tpot_ms = cfg.tpot_ms;
  t.engine = m->engine.get();
  const int32_t tenant = manager_->add_tenant(t);
  m->engine->set_tenant_max_waiting(tenant, cfg.max_queue);
  pipeline::ModelHandle h;
  h.engine = m->engine.get();
  h.tok = m->tok.get();
  h.chat = m->chat ? &*m->chat : nullptr;
  h.bos_token = m->bos;
  h.eos_token = m->eos;
  h.max_context = m->engine->max_context();
  auto p = std::make_unique<ServedPipeline>();
  p->name = cfg.name;
  p->model = m;
  p->cfg = cfg;
  p->pipe = std::make_unique<pipeline::Pipeline>(cfg, h, tenant);
  pipelines_.push_back(std::move(p));
}

void Server::count(const std::string& model, int status) {
  std::lock_guard lock(metrics_->mu);
  ++metrics_->requests[{model, status}];
}



Server::Served* Server::find_or_404(const std::string& name, httplib::Response& res) {
  Served* m = find(name);
  if (m == nullptr) {
    send_json(res, 404,
              api_error(404, "the model '" + name + "' does not exist", "invalid_request_error", "model",
                        "model_not_found")
                  .to_json());
    count("", 404);
  }
  return m;
}

void Server::routes() {
  auto& h = *http_;
  h.new_task_queue = [n = opts_.http_threads] {
    return new httplib::ThreadPool(static_cast<size_t>(n));
  };
  h.set_read_timeout(opts_.read_timeout_s, 0);
  h.set_write_timeout(opts_.write_timeout_s, 0);
  h.set_keep_alive_timeout(5);
  // Stream chunks are small and latency-bound: no Nagle delay behind the client's delayed ACK.
  h.set_tcp_nodelay(true);
  h.set_payload_max_length(opts_.max_body_bytes);

  // Before the body is read: size, authentication, draining.
  h.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    auto fail = [&](const ApiError& e) {
      // The body was not read: the connection cannot carry another request.
      res.set_header("Connection", "close");
      send_error(res, e);
      count("", e.status);
      return httplib::Server::HandlerResponse::Handled;
    };
    if (req.has_header("Content-Length")) {
      const std::string cl = req.get_header_value("Content-Length");
      char* end = nullptr;
      const unsigned long long n = std::strtoull(cl.c_str(), &end, 10);
      if (end == cl.c_str() || n > opts_.max_body_bytes) {
        return fail(api_error(413,
                              "the request body is larger than the limit of " +
                                  std::to_string(opts_.max_body_bytes) + " bytes",
                              "invalid_request_error", "", "request_too_large"));
      }
    }
    const bool open = req.path == "/health" || req.path == "/metrics";
    if (!opts_.api_key.empty() && !open) {
      const std::string auth = req.get_header_value("Authorization");
      if (auth != "Bearer " + opts_.api_key) {
        return fail(api_error(401,
                              auth.empty() ? "no API key given: send 'Authorization: Bearer <key>'"
                                           : "the API key is not valid",
                              "invalid_request_error", "", "invalid_api_key"));
      }
    }
    if (draining_.load() && req.method == "POST") {
      return fail(api_error(503, "the server is shutting down", "server_error", "",
                            "server_shutting_down"));
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  h.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413) res.set_header("Connection", "close");
    ApiError e;
    e.status = res.status;
    if (res.status == 404) {
      e = api_error(404, "no such route", "invalid_request_error", "", "not_found");
    } else if (res.status == 413) {
      e = api_error(413, "the request body is too large", "invalid_request_error", "",
                    "request_too_large");
    } else {
      e.message = "HTTP error " + std::to_string(res.status);
      e.type = res.status >= 500 ? "server_error" : "invalid_request_error";
    }
    res.set_content(e.to_json(), "application/json");
    count("", res.status);
  });

  h.set_exception_handler(
      [this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        log::error("request failed: " + what);
        send_json(res, 500, api_error(500, what, "server_error").to_json());
        count("", 500);
      });

  h.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (draining_.load()) {
      send_json(res, 503, R"({"status":"draining"})");
    } else {
      send_json(res, 200, R"({"status":"ok"})");
    }
  });
  h.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(), "text/plain; version=0.0.4");
  });
  h.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    Json data = Json::array();
    for (const auto& m : models_) {
      data.push_back({{"id", m->name},
                      {"object", "model"},
                      {"created", m->created},
                      {"owned_by", "tandem"},
                      {"max_model_len", m->engine->max_context()}});
    }
    send_json(res, 200, dump(Json{{"object", "list"}, {"data", data}}));
    count("", 200);
  });
  h.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1];
    Served* m = find_or_404(name, res);
    if (m == nullptr) return;
    send_json(res, 200,
              dump(Json{{"id", m->name},
                        {"object", "model"},
                        {"created", m->created},
                        {"owned_by", "tandem"}}));
    count(m->name, 200);
  });
  h.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_completion(req, res, true);
  });
  h.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_completion(req, res, false);
  });
  h.Post("/v1/embeddings", [this](const httplib::Request& req, httplib::Response& res) {
    handle_embeddings(req, res);
  });
  h.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    handle_tokenize(req, res);
  });
  h.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    handle_detokenize(req, res);
  });
}

namespace {

// Per-choice state while a completion is produced.
struct Choice {
  std::shared_ptr<engine::Request> req;
  std::string text;
  Json logprobs_content = Json::array();  // chat: [{token, logprob, bytes, top_logprobs}]
  Json tokens = Json::array(), token_logprobs = Json::array(),
       top_logprobs = Json::array();  // completions
  bool finished = false;
  bool role_sent = false;
  engine::FinishReason reason = engine::FinishReason::kNone;
  std::string error;
  int64_t completion_tokens = 0;
};

Json bytes_of(const std::string& s) {
  Json b = Json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

}  // namespace

void Server::handle_completion(const httplib::Request& req, httplib::Response& res, bool chat) {
  auto parsed = parse_completion_request(req.body, chat ? Endpoint::kChat : Endpoint::kCompletion);
  if (auto* e = std::get_if<ApiError>(&parsed)) {
    send_error(res, *e);
    count("", e->status);
    return;
  }
  const CompletionRequest& r = std::get<CompletionRequest>(parsed);
  // `model` names a served model or a pipeline (whose requests are its tenant's).
  ServedPipeline* pipe = find_pipeline(r.model);
  Served* m = pipe != nullptr ? pipeline_model(*pipe) : find_or_404(r.model, res);
  if (m == nullptr) return;
  const std::string model_name = pipe != nullptr ? r.model : m->name;
  auto reply_error = [&](const ApiError& e) {
    send_error(res, e);
    count(model_name, e.status);
  };
  std::optional<engine::RequestOptions> base;  // a pipeline's generate step for this input
  if (pipe != nullptr) {
    if (!chat && r.prompt_is_ids) {
      return reply_error(api_error(400, "a pipeline takes a text prompt, not token ids",
                                   "invalid_request_error", "prompt"));
    }
    try {
      base = single_request(*pipe, pipeline_input(r, chat));
    } catch (const pipeline::InputError& e) {
      return reply_error(api_error(e.status(), e.what(), "invalid_request_error",
                                   e.field() == "input" && chat ? "messages" : e.field()));
    } catch (const Error& e) {
      return reply_error(api_error(400, e.what(), "invalid_request_error"));
    }
    if (!base) return pipeline_completion(*pipe, r, chat, res);
  }

  // Prompt ids.
  std::vector<int32_t> prompt;
  try {
    if (base) {
      prompt = base->prompt;
    } else if (chat) {
      tokenizer::ChatRenderInput in;
      in.messages = r.messages;
      in.add_generation_prompt = true;
      in.bos_token = m->bos;
      in.eos_token = m->eos;
      prompt = m->tok->encode(m->chat->render(in), /*add_special_tokens=*/false);
    } else if (r.prompt_is_ids) {
      prompt = r.prompt_ids;
    } else {
      prompt = m->tok->encode(r.prompt, /*add_special_tokens=*/true);
    }
  } catch (const Error& e) {
    return reply_error(api_error(400, std::string("could not build the prompt: ") + e.what(),
                                 "invalid_request_error", chat ? "messages" : "prompt"));
  }
  const int64_t ctx = m->engine->max_context();
  const auto n_prompt = static_cast<int64_t>(prompt.size());
  const char* prompt_param = chat ? "messages" : "prompt";
  if (n_prompt == 0)
    return reply_error(
        api_error(400, "the prompt is empty", "invalid_request_error", prompt_param));
  if (n_prompt >= ctx) {
    return reply_error(api_error(400,
                                 "This model's maximum context length is " + std::to_string(ctx) +
                                     " tokens. However, your prompt has " +
                                     std::to_string(n_prompt) +
                                     " tokens, which leaves no room to generate.",
                                 "invalid_request_error", prompt_param, "context_length_exceeded"));
  }
  int64_t max_tokens = ctx - n_prompt;
  if (r.max_tokens) {
    if (n_prompt + *r.max_tokens > ctx) {
      return reply_error(api_error(
          400,
          "This model's maximum context length is " + std::to_string(ctx) +
              " tokens. However, you requested " + std::to_string(n_prompt + *r.max_tokens) +
              " tokens (" + std::to_string(n_prompt) + " in the prompt, " +
              std::to_string(*r.max_tokens) + " for the completion).",
          "invalid_request_error", "max_tokens", "context_length_exceeded"));
    }
    max_tokens = *r.max_tokens;
  }

  // Submit n choices; they share the prompt's blocks through the prefix cache.
  std::vector<Choice> choices(static_cast<size_t>(r.n));
  const uint64_t base_seed =
      r.seed ? *r.seed
             : (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  try {
    for (int32_t i = 0; i < r.n; ++i) {
      engine::RequestOptions o;
      if (base) {
        // The pipeline's step sets the sampling; the request may set the length and stops.
        o = *base;
        if (!r.max_tokens) max_tokens = std::min(max_tokens, base->max_tokens);
        if (r.seed) o.sampling.seed = *r.seed + static_cast<uint64_t>(i);
      } else {
        o.tenant = m->tenant;
        o.sampling.temperature = r.temperature;
        o.sampling.top_p = r.top_p;
        o.sampling.top_k = r.top_k;
        o.sampling.min_p = r.min_p;
        o.sampling.repetition_penalty = r.repetition_penalty;
        o.sampling.seed = base_seed + static_cast<uint64_t>(i);
      }
      o.prompt = prompt;
      o.max_tokens = max_tokens;
      if (!base || !r.stop.empty()) o.stop = r.stop;
      o.ignore_eos = r.ignore_eos;
      o.top_logprobs = r.logprobs ? r.top_logprobs : -1;
      choices[static_cast<size_t>(i)].req = m->engine->submit(std::move(o));
    }
  } catch (const engine::Overloaded& e) {
    for (auto& c : choices) {
      if (c.req) c.req->cancel();
    }
    return reply_error(e.draining()
                           ? api_error(503, e.what(), "server_error", "", "server_shutting_down")
                           : api_error(429, e.what(), "rate_limit_error", "", "queue_full"));
  } catch (const Error& e) {
    for (auto& c : choices) {
      if (c.req) c.req->cancel();
    }
    return reply_error(api_error(400, e.what(), "invalid_request_error"));
  }

  const std::string id = random_id(chat ? "chatcmpl-" : "cmpl-");
  const int64_t created = unix_now();
  tokenizer::Tokenizer* tok = m->tok.get();

  // Folds new events into a choice; returns the text delta and, for streams, this delta's logprobs.
  auto absorb = [tok, chat](Choice& c, const engine::Request::Output& out, Json* delta_lp) {
    std::string delta;
    for (const auto& ev : out.events) {
      delta += ev.text;
      if (c.req->options().top_logprobs >= 0) {
        const std::string piece = tok->decode(std::span<const int32_t>(&ev.token, 1), false);
        if (chat) {
          Json top = Json::array();
          for (const auto& t : ev.top) {
            const std::string tp = tok->decode(std::span<const int32_t>(&t.id, 1), false);
            top.push_back({{"token", tp}, {"logprob", t.logprob}, {"bytes", bytes_of(tp)}});
          }
          Json item = {{"token", piece},
                       {"logprob", ev.logprob},
                       {"bytes", bytes_of(piece)},
                       {"top_logprobs", top}};
          c.logprobs_content.push_back(item);
          if (delta_lp) delta_lp->push_back(item);
        } else {
          Json top = Json::object();
          for (const auto& t : ev.top)
            top[tok->decode(std::span<const int32_t>(&t.id, 1), false)] = t.logprob;
          c.tokens.push_back(piece);
          c.token_logprobs.push_back(ev.logprob);
          c.top_logprobs.push_back(top);
          if (delta_lp) {
            (*delta_lp)["tokens"].push_back(piece);
            (*delta_lp)["token_logprobs"].push_back(ev.logprob);
            (*delta_lp)["top_logprobs"].push_back(top);
          }
        }
      }
    }
    c.text += delta;
    c.completion_tokens = out.completion_tokens;
    if (out.finished) {
      c.finished = true;
      c.reason = out.reason;
      c.error = out.error;
    }
    return delta;
  };

  auto usage = [n_prompt](const std::vector<Choice>& cs) {
    int64_t out = 0;
    for (const auto& c : cs) out += c.completion_tokens;
    return Json{
        {"prompt_tokens", n_prompt}, {"completion_tokens", out}, {"total_tokens", n_prompt + out}};
  };

  if (!r.stream) {
    struct Active {  // counted while waiting, for the drain
      std::atomic<int64_t>& n;
      explicit Active(std::atomic<int64_t>& a) : n(a) { ++n; }
      ~Active() { --n; }
    } active(active_);
    engine::Request::Output out;
    for (auto& c : choices) {
      while (!c.finished) {
        c.req->wait(std::chrono::milliseconds(200), out);
        absorb(c, out, nullptr);
      }
    }
    for (const auto& c : choices) {
      if (c.reason == engine::FinishReason::kError ||
          c.reason == engine::FinishReason::kCancelled) {
        const bool shutting = draining_.load();
        return reply_error(api_error(shutting ? 503 : 500,
                                     c.error.empty() ? "the request was cancelled" : c.error,
                                     "server_error", "", shutting ? "server_shutting_down" : ""));
      }
    }
    Json arr = Json::array();
    for (size_t i = 0; i < choices.size(); ++i) {
      const Choice& c = choices[i];
      Json item = {{"index", i}};
      if (chat) {
        item["message"] = {{"role", "assistant"}, {"content", c.text}};
        item["logprobs"] = r.logprobs ? Json{{"content", c.logprobs_content}} : Json(nullptr);
      } else {
        item["text"] = c.text;
        item["logprobs"] = r.logprobs ? Json{{"tokens", c.tokens},
                                             {"token_logprobs", c.token_logprobs},
                                             {"top_logprobs", c.top_logprobs}}
                                      : Json(nullptr);
      }
      item["finish_reason"] = engine::finish_reason_name(c.reason);
      arr.push_back(item);
    }
    Json body = {{"id", id},           {"object", chat ? "chat.completion" : "text_completion"},
                 {"created", created}, {"model", model_name},
                 {"choices", arr},     {"usage", usage(choices)}};
    send_json(res, 200, dump(body));
    count(model_name, 200);
    return;
  }

  // Streaming: server-sent events, one chunk per new piece of text.
  struct StreamState {
    std::vector<Choice> choices;
    bool done = false;
  };
  auto st = std::make_shared<StreamState>();
  st->choices = std::move(choices);
  ++active_;
  count(model_name, 200);
  const bool include_usage = r.include_usage;
  const bool want_lp = r.logprobs;
  auto chunk = [=](Json choices_arr) {
    return Json{{"id", id},
                {"object", chat ? "chat.completion.chunk" : "text_completion"},
                {"created", created},
                {"model", model_name},
                {"choices", std::move(choices_arr)}};
  };
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [=, this](size_t, httplib::DataSink& sink) {
        auto send = [&](const Json& j) {
          const std::string s = "data: " + dump(j) + "\n\n";
          return sink.write(s.data(), s.size());
        };
        if (st->done) return false;
        engine::Request::Output out;
        bool all_finished = true;
        for (size_t i = 0; i < st->choices.size(); ++i) {
          Choice& c = st->choices[i];
          if (chat && !c.role_sent) {
            c.role_sent = true;
            if (!send(chunk(Json::array({{{"index", i},
                                          {"delta", {{"role", "assistant"}, {"content", ""}}},
                                          {"logprobs", nullptr},
                                          {"finish_reason", nullptr}}}))))
              return false;
          }
          if (c.finished) continue;
          c.req->wait(std::chrono::milliseconds(st->choices.size() > 1 ? 20 : 200), out);
          Json lp = chat ? Json::array()
                         : Json{{"tokens", Json::array()},
                                {"token_logprobs", Json::array()},
                                {"top_logprobs", Json::array()}};
          const std::string delta = absorb(c, out, want_lp ? &lp : nullptr);
          if (c.finished && (c.reason == engine::FinishReason::kError ||
                             c.reason == engine::FinishReason::kCancelled)) {
            const bool shutting = draining_.load();
            ApiError e = api_error(shutting ? 503 : 500,
                                   c.error.empty() ? "the request was cancelled" : c.error,
                                   "server_error", "", shutting ? "server_shutting_down" : "");
            const std::string s = "data: " + e.to_json() + "\n\ndata: [DONE]\n\n";
            sink.write(s.data(), s.size());
            st->done = true;
            sink.done();
            return true;
          }
          if (!delta.empty() || (want_lp && !out.events.empty()) || c.finished) {
            Json item = {{"index", i}};
            if (chat) {
              item["delta"] =
                  delta.empty() && c.finished ? Json::object() : Json{{"content", delta}};
              item["logprobs"] = want_lp ? Json{{"content", lp}} : Json(nullptr);
            } else {
              item["text"] = delta;
              item["logprobs"] = want_lp ? lp : Json(nullptr);
            }
            item["finish_reason"] =
                c.finished ? Json(engine::finish_reason_name(c.reason)) : Json(nullptr);
            Json j = chunk(Json::array({item}));
            if (include_usage) j["usage"] = nullptr;
            if (!send(j)) return false;
          }
          if (!c.finished) all_finished = false;
        }
        if (all_finished) {
          if (include_usage) {
            Json j = chunk(Json::array());
            j["usage"] = usage(st->choices);
            if (!send(j)) return false;
          }
          const std::string end = "data: [DONE]\n\n";
          if (!sink.write(end.data(), end.size())) return false;
          st->done = true;
          sink.done();
        }
        return true;
      },
      [st, this](bool) {
        // Also when the client left: cancel whatever still runs, freeing its blocks.
        for (auto& c : st->choices) {
          if (!c.finished) c.req->cancel();
        }
        --active_;
      });
}

void Server::handle_embeddings(const httplib::Request& req, httplib::Response& res) {
  auto parsed = parse_embedding_request(req.body);
  if (auto* e = std::get_if<ApiError>(&parsed)) {
    send_error(res, *e);
    count("", e->status);
    return;
  }
  const EmbeddingRequest& r = std::get<EmbeddingRequest>(parsed);
  Served* m = find_or_404(r.model, res);
  if (m == nullptr) return;
  std::vector<std::vector<int32_t>> inputs = r.id_lists;
  if (!r.as_ids) {
    for (const auto& t : r.texts) inputs.push_back(m->tok->encode(t, true));
  }
  const int64_t ctx = m->engine->max_context();
  const int64_t H = m->model->config().hidden_size;
  Json data = Json::array();
  int64_t total = 0;
  models::Workspace ws;
  std::vector<float> hidden;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto& ids = inputs[i];
    const auto n = static_cast<int64_t>(ids.size());
    if (n == 0 || n > ctx) {
      const ApiError e = api_error(400,
                                   "input " + std::to_string(i) + " has " + std::to_string(n) +
                                       " tokens; this model's maximum context length is " +
                                       std::to_string(ctx) + " tokens",
                                   "invalid_request_error", "input", "context_length_exceeded");
      send_json(res, 400, e.to_json());
      count(m->name, 400);
      return;
    }
    hidden.assign(static_cast<size_t>(n * H), 0.0f);
    models::KvCache cache = m->model->new_cache(n);
    models::SeqInput in;
    in.tokens = ids;
    in.cache = &cache;
    in.hidden = hidden.data();
    try {
      m->model->forward(std::span<const models::SeqInput>(&in, 1), ws, pool_);
    } catch (const Error& e) {
      send_json(res, 400, api_error(400, e.what(), "invalid_request_error", "input").to_json());
      count(m->name, 400);
      return;
    }
    // Mean over tokens, then unit length.
    std::vector<double> mean(static_cast<size_t>(H), 0.0);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t d = 0; d < H; ++d)
        mean[static_cast<size_t>(d)] += hidden[static_cast<size_t>(t * H + d)];
    }
    double norm = 0;
    for (double& v : mean) {
      v /= static_cast<double>(n);
      norm += v * v;
    }
    norm = std::sqrt(norm);
    std::vector<float> unit(mean.size());
    for (size_t d = 0; d < mean.size(); ++d)
      unit[d] = static_cast<float>(norm > 0 ? mean[d] / norm : 0.0);
    Json vec;
    if (r.encoding_format == "base64") {
      vec = base64(unit);
    } else {
      vec = Json::array();
      for (float v : unit) vec.push_back(v);
    }
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", vec}});
    total += n;
  }
  send_json(res, 200,
            dump(Json{{"object", "list"},
                      {"data", data},
                      {"model", m->name},
                      {"usage", {{"prompt_tokens", total}, {"total_tokens", total}}}}));
  count(m->name, 200);
}

void Server::handle_tokenize(const httplib::Request& req, httplib::Response& res) {
  auto parsed = parse_tokenize_request(req.body);
  if (auto* e = std::get_if<ApiError>(&parsed)) {
    send_error(res, *e);
    count("", e->status);
    return;
  }
  const TokenizeRequest& r = std::get<TokenizeRequest>(parsed);
  Served* m = find_or_404(r.model, res);
  if (m == nullptr) return;
  std::vector<int32_t> ids;
  try {
    if (!r.messages.is_null()) {
      tokenizer::ChatRenderInput in;
      in.messages = r.messages;
      in.add_generation_prompt = true;
      in.bos_token = m->bos;
      in.eos_token = m->eos;
      ids = m->tok->encode(m->chat->render(in), false);
    } else {
      ids = m->tok->encode(r.prompt, r.add_special_tokens);
    }
  } catch (const Error& e) {
    send_json(res, 400, api_error(400, e.what(), "invalid_request_error").to_json());
    count(m->name, 400);
    return;
  }
  send_json(
      res, 200,
      dump(Json{
          {"tokens", ids}, {"count", ids.size()}, {"max_model_len", m->engine->max_context()}}));
  count(m->name, 200);
}

void Server::handle_detokenize(const httplib::Request& req, httplib::Response& res) {
  auto parsed = parse_detokenize_request(req.body);
  if (auto* e = std::get_if<ApiError>(&parsed)) {
    send_error(res, *e);
    count("", e->status);
    return;
  }
  const DetokenizeRequest& r = std::get<DetokenizeRequest>(parsed);
  Served* m = find_or_404(r.model, res);
  if (m == nullptr) return;
  for (int32_t id : r.tokens) {
    if (id >= m->tok->vocab_size()) {
      send_json(res, 400,
                api_error(400, "token id " + std::to_string(id) + " is outside the vocabulary",
                          "invalid_request_error", "tokens")
                    .to_json());
      count(m->name, 400);
      return;
    }
  }
  send_json(res, 200, dump(Json{{"prompt", m->tok->decode(r.tokens, true)}}));
  count(m->name, 200);
}

std::string Server::metrics_text() {
  std::ostringstream o;
  const auto label = prom_label;
  o << "# HELP tandem_requests_total HTTP requests by model and status code.\n"
       "# TYPE tandem_requests_total counter\n";
  {
    std::lock_guard lock(metrics_->mu);
    for (const auto& [k, v] : metrics_->requests) {
      o << "tandem_requests_total{model=\"" << label(k.first) << "\",status=\"" << k.second
        << "\"} " << v << "\n";
    }
  }
  struct G {
    const char* name;
    const char* type;
    const char* help;
  };
  std::vector<std::pair<std::string, engine::EngineStats>> all;
  for (const auto& m : models_) all.emplace_back(m->name, m->engine->stats());
  auto series = [&](const G& g, auto value) {
    o << "# HELP " << g.name << " " << g.help << "\n# TYPE " << g.name << " " << g.type << "\n";
    for (const auto& [name, s] : all)
      o << g.name << "{model=\"" << label(name) << "\"} " << value(s) << "\n";
  };
  series({"tandem_requests_running", "gauge", "Sequences in the running batch."},
         [](const engine::EngineStats& s) { return s.running; });
  series({"tandem_requests_waiting", "gauge", "Requests queued or preempted."},
         [](const engine::EngineStats& s) { return s.waiting; });
  series({"tandem_kv_blocks_used", "gauge", "KV cache blocks held by sequences."},
         [](const engine::EngineStats& s) { return s.kv_blocks_used; });
  series({"tandem_kv_blocks_cached", "gauge", "Free KV blocks still holding a reusable prefix."},
         [](const engine::EngineStats& s) { return s.kv_blocks_cached; });
  series({"tandem_kv_blocks_total", "gauge", "KV cache blocks in the pool."},
         [](const engine::EngineStats& s) { return s.kv_blocks_total; });
  series({"tandem_prefix_cache_queries_total", "counter",
          "Full prompt blocks looked up in the prefix cache."},
         [](const engine::EngineStats& s) { return s.prefix_blocks_queried; });
  series({"tandem_prefix_cache_hits_total", "counter", "Prompt blocks found in the prefix cache."},
         [](const engine::EngineStats& s) { return s.prefix_blocks_hit; });
  series({"tandem_prefix_cache_hit_rate", "gauge", "Prefix cache hits over queries since start."},
         [](const engine::EngineStats& s) {
           return s.prefix_blocks_queried ? static_cast<double>(s.prefix_blocks_hit) /
                                                static_cast<double>(s.prefix_blocks_queried)
                                          : 0.0;
         });
  series({"tandem_prompt_tokens_total", "counter", "Prompt tokens of admitted requests."},
         [](const engine::EngineStats& s) { return s.prompt_tokens; });
  series({"tandem_generation_tokens_total", "counter", "Generated tokens."},
         [](const engine::EngineStats& s) { return s.generated_tokens; });
  series({"tandem_preemptions_total", "counter", "Sequences preempted for lack of KV blocks."},
         [](const engine::EngineStats& s) { return s.preemptions; });
  auto histogram = [&](const char* name, const char* help, auto get) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " histogram\n";
    for (const auto& [model, s] : all) {
      const engine::Histogram& h = get(s);
      uint64_t cum = 0;
      for (size_t i = 0; i < h.bounds.size(); ++i) {
        cum += h.counts[i];
        o << name << "_bucket{model=\"" << label(model) << "\",le=\"" << h.bounds[i] << "\"} "
          << cum << "\n";
      }
      cum += h.counts.back();
      o << name << "_bucket{model=\"" << label(model) << "\",le=\"+Inf\"} " << cum << "\n";
      o << name << "_sum{model=\"" << label(model) << "\"} " << h.sum << "\n";
      o << name << "_count{model=\"" << label(model) << "\"} " << h.count << "\n";
    }
  };
  histogram("tandem_time_to_first_token_seconds", "From arrival to the first generated token.",
            [](const engine::EngineStats& s) -> const engine::Histogram& { return s.ttft; });
  histogram("tandem_inter_token_latency_seconds", "Between consecutive tokens of a sequence.",
            [](const engine::EngineStats& s) -> const engine::Histogram& { return s.itl; });
  o << pipeline_metrics_text();
  return o.str();
}

int Server::bind() {
  int port = opts_.port == 0 ? http_->bind_to_any_port(opts_.host)
                             : (http_->bind_to_port(opts_.host, opts_.port) ? opts_.port : -1);
  if (port < 0) throw Error("cannot listen on " + opts_.host + ":" + std::to_string(opts_.port));
  opts_.port = port;
  widen_backlog(port);
  return port;
}

void Server::run() {
  http_->listen_after_bind();
}

void Server::shutdown() {
  draining_.store(true);
  for (auto& m : models_) m->engine->stop_accepting();
  const auto deadline = Clock::now() + std::chrono::duration<double>(opts_.drain_timeout_s);
  auto busy = [&] {
    if (active_.load() > 0) return true;
    for (auto& m : models_) {
      if (!m->engine->idle()) return true;
    }
    return false;
  };
  while (busy() && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (busy()) {
    log::warn("drain deadline passed: cancelling the remaining requests");
    for (auto& m : models_) m->engine->cancel_all();
    const auto hard = Clock::now() + std::chrono::seconds(5);
    while (busy() && Clock::now() < hard)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  http_->stop();
}

}  // namespace tandem::server
