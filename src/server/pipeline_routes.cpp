// The pipeline routes of the server: POST /v1/pipelines/{name} (structured
// input and output), GET /v1/pipelines (what the resource manager decided and
// measured, per pipeline), pipelines as `model` of the OpenAI routes, and the
// per-pipeline /metrics series.
#include <httplib.h>

#include <sstream>

#include "base/error.h"
#include "base/log.h"
#include "pipeline/pipeline.h"
#include "server/http_util.h"
#include "server/served.h"
#include "server/server.h"

namespace tandem::server {
using namespace detail;


Server::Served* Server::pipeline_model(ServedPipeline& p) { return p.model; }

Server::ServedPipeline* Server::find_pipeline(const std::string& name) {
  for (auto& p : pipelines_) {
    if (p->name == name) return p.get();
  }
  return nullptr;
}

std::optional<engine::RequestOptions> Server::single_request(ServedPipeline& p,
                                                             const nlohmann::ordered_json& input) {
  return p.pipe->single_request(
      nlohmann::json::parse(input.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
}

nlohmann::ordered_json pipeline_input(const CompletionRequest& r, bool chat) {
  if (!chat) return {{"input", r.prompt}};
  // The messages as they are, and the last user message as `input`, so a pipeline written
  // for the pipeline API (templates over {{ input }}) also answers chats.
  nlohmann::ordered_json in = {{"messages", r.messages}};
  for (auto it = r.messages.rbegin(); it != r.messages.rend(); ++it) {
    if (it->value("role", "") == "user" && (*it)["content"].is_string()) {
      in["input"] = (*it)["content"];
      break;
    }
  }
  return in;
}

namespace {

// The pipeline's answer as completion text: generated text, the label, or the JSON.
std::string output_text(const nlohmann::json& output) {
  if (output.contains("text") && output["text"].is_string()) return output["text"];
  if (output.contains("label") && output["label"].is_string()) return output["label"];
  const auto replace = nlohmann::json::error_handler_t::replace;
  if (output.contains("json")) return output["json"].dump(-1, ' ', false, replace);
  return output.dump(-1, ' ', false, replace);
}

struct ActiveCount {
  std::atomic<int64_t>& n;
  explicit ActiveCount(std::atomic<int64_t>& a) : n(a) { ++n; }
  ~ActiveCount() { --n; }
};

}  // namespace

void Server::pipeline_routes() {
  auto& h = *http_;
  h.Get("/v1/pipelines", [this](const httplib::Request&, httplib::Response& res) {
    handle_pipeline_list(res);
  });
  h.Post(R"(/v1/pipelines/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    handle_pipeline(req, res, req.matches[1]);
  });
}

void Server::pipeline_completion(ServedPipeline& p, const CompletionRequest& r, bool chat,
                                 httplib::Response& res) {
  const nlohmann::json input = nlohmann::json::parse(
      pipeline_input(r, chat).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  pipeline::RunResult out;
  try {
    ActiveCount active(active_);
    out = p.pipe->run(input);
  } catch (const pipeline::InputError& e) {
    send_error(res, api_error(e.status(), e.what(), "invalid_request_error",
                              e.field() == "input" && chat ? "messages" : e.field()));
    count(p.name, e.status());
    return;
  } catch (const engine::Overloaded& e) {
    const int st = e.draining() ? 503 : 429;
    send_error(res, api_error(st, e.what(), st == 429 ? "rate_limit_error" : "server_error"));
    count(p.name, st);
    return;
  } catch (const std::exception& e) {
    send_error(res, api_error(500, e.what(), "server_error"));
    count(p.name, 500);
    return;
  }
  const std::string text = output_text(out.output);
  const std::string id = random_id(chat ? "chatcmpl-" : "cmpl-");
  const int64_t created = unix_now();
  const Json usage = {{"prompt_tokens", out.prompt_tokens},
                      {"completion_tokens", out.completion_tokens},
                      {"total_tokens", out.prompt_tokens + out.completion_tokens}};
  Json choice = {{"index", 0}};
  if (r.stream) {
    if (chat) {
      choice["delta"] = {{"role", "assistant"}, {"content", text}};
    } else {
      choice["text"] = text;
    }
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = out.finish_reason;
    Json chunk = {{"id", id},
                  {"object", chat ? "chat.completion.chunk" : "text_completion"},
                  {"created", created},
                  {"model", p.name},
                  {"choices", Json::array({choice})}};
    std::string body = "data: " + dump(chunk) + "\n\n";
    if (r.include_usage) {
      Json u = {{"id", id},
                {"object", chat ? "chat.completion.chunk" : "text_completion"},
                {"created", created},
                {"model", p.name},
                {"choices", Json::array()},
                {"usage", usage}};
      body += "data: " + dump(u) + "\n\n";
    }
    body += "data: [DONE]\n\n";
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    res.set_content(body, "text/event-stream");
  } else {
    if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", text}};
    } else {
      choice["text"] = text;
    }
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = out.finish_reason;
    send_json(res, 200,
              dump(Json{{"id", id},
                        {"object", chat ? "chat.completion" : "text_completion"},
                        {"created", created},
                        {"model", p.name},
                        {"choices", Json::array({choice})},
                        {"usage", usage}}));
  }
  count(p.name, 200);
}

void Server::handle_pipeline(const httplib::Request& req, httplib::Response& res,
                             const std::string& name) {
  ServedPipeline* p = find_pipeline(name);
  if (p == nullptr) {
    send_error(res, api_error(404, "the pipeline '" + name + "' does not exist",
                              "invalid_request_error", "", "pipeline_not_found"));
    count("", 404);
    return;
  }
  auto fail = [&](const ApiError& e) {
    send_error(res, e);
    count(p->name, e.status);
  };
  nlohmann::json input = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (input.is_discarded()) return fail(api_error(400, "the body is not valid JSON", "invalid_request_error"));
  if (!input.is_object()) {
    return fail(api_error(400, "the body must be a JSON object of input fields",
                          "invalid_request_error"));
  }
  pipeline::RunResult out;
  try {
    ActiveCount active(active_);
    out = p->pipe->run(input);
  } catch (const pipeline::InputError& e) {
    return fail(api_error(e.status(), e.what(), "invalid_request_error", e.field(),
                          e.status() == 413 ? "input_too_long" : "invalid_input"));
  } catch (const engine::Overloaded& e) {
    return fail(e.draining() ? api_error(503, e.what(), "server_error", "", "server_shutting_down")
                             : api_error(429, e.what(), "rate_limit_error", "", "queue_full"));
  } catch (const std::exception& e) {
    return fail(api_error(500, e.what(), "server_error"));
  }
  Json body = {{"id", random_id("pipe-")},
               {"object", "pipeline.result"},
               {"created", unix_now()},
               {"pipeline", p->name},
               {"output", Json::parse(out.output.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))},
               {"steps", Json::parse(out.steps.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))},
               {"finish_reason", out.finish_reason},
               {"usage",
                {{"prompt_tokens", out.prompt_tokens},
                 {"completion_tokens", out.completion_tokens},
                 {"total_tokens", out.prompt_tokens + out.completion_tokens}}}};
  send_json(res, 200, dump(body));
  count(p->name, 200);
}

void Server::handle_pipeline_list(httplib::Response& res) {
  const auto reports = manager_->report();
  Json data = Json::array();
  for (const auto& p : pipelines_) {
    const runtime::TenantReport* r = nullptr;
    for (const auto& x : reports) {
      if (x.id == p->pipe->tenant()) r = &x;
    }
    if (r == nullptr) continue;
    Json steps = Json::array();
    for (const auto& s : p->cfg.steps) steps.push_back(s.name);
    data.push_back(
        {{"name", p->name},
         {"object", "pipeline"},
         {"model", p->cfg.model},
         {"steps", steps},
         {"class", r->cls},
         {"weight", r->weight},
         {"min_share", r->min_share},
         {"max_share", r->max_share},
         {"slo", {{"ttft_ms", p->cfg.ttft_ms}, {"tpot_ms", p->cfg.tpot_ms}}},
         {"share", {{r->device, r->share}}},
         {"queue_depth", r->waiting},
         {"running", r->running},
         {"kv_quota_blocks", r->kv_quota},
         {"kv_used_blocks", r->kv_used},
         {"kv_pool_blocks", r->kv_pool_blocks},
         {"running_quota", r->running_quota},
         {"ttft_ms", {{"p50", r->ttft_p50_ms}, {"p95", r->ttft_p95_ms}}},
         {"tpot_ms", {{"p50", r->tpot_p50_ms}, {"p95", r->tpot_p95_ms}}},
         {"slo_attainment", r->slo_attainment},
         {"tokens_per_s", r->tokens_per_s},
         {"generated_tokens_per_s", r->generated_per_s},
         {"requests_finished", r->requests_finished}});
  }
  send_json(res, 200,
            dump(Json{{"object", "list"},
                      {"mode", runtime::share_mode_name(manager_->mode())},
                      {"data", data}}));
  count("", 200);
}

std::string Server::pipeline_metrics_text() {
  std::ostringstream o;
  const auto reports = manager_->report();
  const auto label = prom_label;
  auto gauge = [&](const char* name, const char* help, auto value) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " gauge\n";
    for (const auto& r : reports) {
      o << name << "{pipeline=\"" << label(r.name) << "\",class=\"" << r.cls << "\",device=\""
        << r.device << "\"} " << value(r) << "\n";
    }
  };
  using R = runtime::TenantReport;
  gauge("tandem_pipeline_share", "Fraction of the device's busy time used over the window.",
        [](const R& r) { return r.share; });
  gauge("tandem_pipeline_weight", "Configured weight.", [](const R& r) { return r.weight; });
  gauge("tandem_pipeline_queue_depth", "Requests queued.", [](const R& r) { return r.waiting; });
  gauge("tandem_pipeline_running", "Sequences running.", [](const R& r) { return r.running; });
  gauge("tandem_pipeline_kv_quota_blocks", "KV cache blocks the manager grants now.",
        [](const R& r) { return r.kv_quota; });
  gauge("tandem_pipeline_kv_used_blocks", "KV cache blocks held.", [](const R& r) { return r.kv_used; });
  gauge("tandem_pipeline_kv_pool_blocks",
        "KV blocks of the pipeline's engine now (its part of the device's KV memory).",
        [](const R& r) { return r.kv_pool_blocks; });
  gauge("tandem_pipeline_running_quota", "Running sequences the manager grants now.",
        [](const R& r) { return r.running_quota; });
  gauge("tandem_pipeline_ttft_p50_seconds", "Time to first token, median over the window.",
        [](const R& r) { return r.ttft_p50_ms / 1e3; });
  gauge("tandem_pipeline_ttft_p95_seconds", "Time to first token, 95th percentile over the window.",
        [](const R& r) { return r.ttft_p95_ms / 1e3; });
  gauge("tandem_pipeline_tpot_p50_seconds", "Time per output token, median over the window.",
        [](const R& r) { return r.tpot_p50_ms / 1e3; });
  gauge("tandem_pipeline_tpot_p95_seconds", "Time per output token, 95th percentile over the window.",
        [](const R& r) { return r.tpot_p95_ms / 1e3; });
  gauge("tandem_pipeline_slo_attainment", "Fraction of requests in the window meeting the SLO.",
        [](const R& r) { return r.slo_attainment; });
  gauge("tandem_pipeline_tokens_per_second", "Tokens computed per second over the window.",
        [](const R& r) { return r.tokens_per_s; });
  gauge("tandem_pipeline_generated_tokens_per_second", "Tokens generated per second over the window.",
        [](const R& r) { return r.generated_per_s; });
  o << "# HELP tandem_pipeline_device_seconds_total Device time charged to the pipeline.\n"
       "# TYPE tandem_pipeline_device_seconds_total counter\n";
  for (const auto& r : reports) {
    o << "tandem_pipeline_device_seconds_total{pipeline=\"" << label(r.name) << "\",class=\""
      << r.cls << "\",device=\"" << r.device << "\"} " << r.device_seconds << "\n";
  }
  o << "# HELP tandem_pipeline_requests_finished_total Requests finished.\n"
       "# TYPE tandem_pipeline_requests_finished_total counter\n";
  for (const auto& r : reports) {
    o << "tandem_pipeline_requests_finished_total{pipeline=\"" << label(r.name) << "\",class=\""
      << r.cls << "\",device=\"" << r.device << "\"} " << r.requests_finished << "\n";
  }
  return o.str();
}

}  // namespace tandem::server
