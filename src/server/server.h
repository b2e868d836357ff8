// The HTTP server: OpenAI-compatible routes over one engine per served model.
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
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "engine/engine.h"

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
};

struct ModelSpec {
  std::string name;
  std::filesystem::path path;
};

class Server {
 public:
  Server(ServerOptions opts, ThreadPool& pool);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Loads a model, its tokenizer and chat template and starts its engine.
  void add_model(const ModelSpec& spec, const engine::EngineOptions& eo);
  // Binds the listening socket; returns the port. Throws tandem::Error when it cannot.
  int bind();
  // Serves until shutdown() (from another thread) completes.
  void run();
  // Refuses new work (503), lets in-flight requests finish for up to
  // drain_timeout_s, cancels what is left, then stops the listener.
  void shutdown();

 private:
  struct Served;
  struct Metrics;
  void routes();
  Served* find(const std::string& name);
  // find(), or answer 404 in OpenAI's error shape (and count it) and return nullptr.
  Served* find_or_404(const std::string& name, httplib::Response& res);
  void handle_completion(const httplib::Request& req, httplib::Response& res, bool chat);
  void handle_embeddings(const httplib::Request& req, httplib::Response& res);
  void handle_tokenize(const httplib::Request& req, httplib::Response& res);
  void handle_detokenize(const httplib::Request& req, httplib::Response& res);
  std::string metrics_text();
  void count(const std::string& model, int status);

  ServerOptions opts_;
  ThreadPool& pool_;
  std::unique_ptr<httplib::Server> http_;
  std::vector<std::unique_ptr<Served>> models_;
  std::unique_ptr<Metrics> metrics_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> active_{0};  // requests inside a generation handler or stream
};

}  // namespace tandem::server
