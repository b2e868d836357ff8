// The HTTP server: OpenAI-compatible routes over one engine per served model,
// and the pipelines configured on top of them (pipeline_routes.cpp). All
// engines on the CPU are stepped by one executor (runtime/executor.h) under
// one resource manager: each model's plain requests are a tenant of their own
// (named after the model), each pipeline is one.
// cpp-httplib runs each connection on a worker thread; handlers validate the
// body (openai_request.h), turn it into token ids, submit to the model's
// engine and wait for (or stream) the results. Nothing a client sends can stop
// the server: bad bodies are 4xx, slow clients time out, a client that leaves
// mid-stream cancels its sequence.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "engine/engine.h"
#include "models/model.h"
#include "pipeline/config.h"
#include "runtime/executor.h"
#include "runtime/resource_manager.h"

namespace httplib {
class Server;
class Request;
class Response;
}  // namespace httplib

namespace tandem::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;      // 0: any free port (see bind())
  std::string api_key;  // empty: no authentication
  size_t max_body_bytes = 8u << 20;
  int read_timeout_s = 10;  // a client that stops sending mid-request is dropped
  int write_timeout_s = 30;
  double drain_timeout_s = 20;  // SIGTERM: in-flight work gets this long, then is cancelled
  int http_threads = 160;       // connections served at once (each stream holds one)
  runtime::ManagerOptions manager;  // how the engines share the machine
};

struct ModelSpec {
  std::string name;
  std::filesystem::path path;
  models::LoadOptions load;
};

class Server {
 public:
  Server(ServerOptions opts, ThreadPool& pool);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Loads a model, its tokenizer and chat template and starts its engine.
  void add_model(const ModelSpec& spec, const engine::EngineOptions& eo);
  // A pipeline over a model added before. Throws pipeline::ConfigError when a step cannot be
  // built for the model.
  void add_pipeline(const pipeline::PipelineConfig& cfg);
  runtime::ResourceManager& manager() { return *manager_; }
  // Binds the listening socket; returns the port. Throws tandem::Error when it cannot.
  int bind();
  // Serves until shutdown() (from another thread) completes.
  void run();
  // Refuses new work (503), lets in-flight requests finish for up to
  // drain_timeout_s, cancels what is left, then stops the listener.
  void shutdown();

 private:
  struct Served;
  struct ServedPipeline;
  struct Metrics;
  void routes();
  Served* find(const std::string& name);
  // find(), or answer 404 in OpenAI's error shape (and count it) and return nullptr.
  Served* find_or_404(const std::string& name, httplib::Response& res);
  void handle_completion(const httplib::Request& req, httplib::Response& res, bool chat);
  void handle_embeddings(const httplib::Request& req, httplib::Response& res);
  void handle_tokenize(const httplib::Request& req, httplib::Response& res);
  void handle_detokenize(const httplib::Request& req, httplib::Response& res);
  ServedPipeline* find_pipeline(const std::string& name);
  Served* pipeline_model(ServedPipeline& p);
  std::optional<engine::RequestOptions> single_request(ServedPipeline& p,
                                                       const nlohmann::ordered_json& input);
  void pipeline_routes();
  void handle_pipeline(const httplib::Request& req, httplib::Response& res, const std::string& name);
  void handle_pipeline_list(httplib::Response& res);
  // A completion whose model is a pipeline that is not a single generate step: run it and
  // answer in the endpoint's shape (a stream gets the whole text in one chunk).
  void pipeline_completion(ServedPipeline& p, const struct CompletionRequest& r, bool chat,
                           httplib::Response& res);
  std::string pipeline_metrics_text();
  std::string metrics_text();
  void count(const std::string& model, int status);

  ServerOptions opts_;
  ThreadPool& pool_;
  std::unique_ptr<httplib::Server> http_;
  // Declared before the engines: they detach from the executor when destroyed.
  std::unique_ptr<runtime::ResourceManager> manager_;
  std::unique_ptr<runtime::Executor> executor_;
  std::vector<std::unique_ptr<Served>> models_;
  std::vector<std::unique_ptr<ServedPipeline>> pipelines_;
  std::unique_ptr<Metrics> metrics_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> active_{0};  // requests inside a generation handler or stream
};

}  // namespace tandem::server
