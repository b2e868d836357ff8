// Shared by the load generators for `tandem serve` (bench_serve, bench_scenario):
// one streamed OpenAI completion with its token timings, percentiles, and
// starting / stopping a server on a free port.
#pragma once

#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace tandem::bench {

using Clock = std::chrono::steady_clock;

inline double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// Nearest-rank percentile, p in [0, 1]; 0 for no samples.
inline double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i =
      std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

struct Endpoint {
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string url() const { return "http://" + host + ":" + std::to_string(port); }
};

// "http://HOST:PORT[/]" or "HOST:PORT" (port 8000 when absent).
inline Endpoint parse_url(std::string u) {
  Endpoint e;
  if (u.rfind("http://", 0) == 0) u.erase(0, 7);
  while (!u.empty() && u.back() == '/') u.pop_back();
  const auto c = u.rfind(':');
  e.host = u.substr(0, c);
  if (c != std::string::npos) e.port = std::atoi(u.substr(c + 1).c_str());
  if (e.host.empty() || e.host == "0.0.0.0") e.host = "127.0.0.1";
  return e;
}

inline void configure(httplib::Client& cli, int read_timeout_s, const std::string& api_key) {
  cli.set_read_timeout(read_timeout_s, 0);
  cli.set_connection_timeout(10, 0);
  cli.set_tcp_nodelay(true);
  if (!api_key.empty()) cli.set_bearer_token_auth(api_key.c_str());
}

struct StreamResult {
  int status = 0;           // HTTP status; 0: no response (connection error, timeout)
  bool ok = false;          // 200 and the stream ended with [DONE]
  double ttft = 0;          // seconds from sending to the first non-empty text chunk
  double last = 0;          // seconds from sending to the last non-empty text chunk
  double total = 0;         // seconds from sending to the end of the response
  std::vector<double> itl;  // gaps between consecutive text chunks
  int64_t tokens = 0;       // usage.completion_tokens, else the text chunks seen
  double retry_after = -1;  // Retry-After in seconds on an error answer; -1: none
  std::string error;        // why it failed, for messages
};

// The OpenAI completion body the load generators send: streamed, fixed length.
inline nlohmann::json completion_body(const std::string& model, const std::string& prompt,
                                      int max_tokens) {
  return {{"model", model},
          {"prompt", prompt},
          {"max_tokens", max_tokens},
          {"temperature", 0},
          {"ignore_eos", true},
          {"stream", true},
          {"stream_options", {{"include_usage", true}}}};
}

// POST /v1/completions with a streaming body on `cli`, timing each SSE chunk.
// When `abort` becomes true the stream is cut at the next chunk (error "aborted");
// another thread may also cli.stop() to end a request still waiting for its answer.
inline StreamResult stream_completion(httplib::Client& cli, const nlohmann::json& body,
                                      const std::atomic<bool>* abort = nullptr) {
  StreamResult s;
  const auto t0 = Clock::now();
  auto last = t0;
  bool first = true;
  int64_t chunks = 0;
  bool usage = false;
  std::string buf;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.response_handler = [&](const httplib::Response& r) {
    s.status = r.status;
    if (r.has_header("Retry-After"))
      s.retry_after = std::atof(r.get_header_value("Retry-After").c_str());
    return true;
  };
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    if (abort && abort->load()) return false;
    if (s.status != 200) return true;  // an error body, not events
    buf.append(data, len);
    size_t pos;
    while ((pos = buf.find("\n\n")) != std::string::npos) {
      std::string ev = buf.substr(0, pos);
      buf.erase(0, pos + 2);
      if (ev.rfind("data: ", 0) != 0) continue;
      ev.erase(0, 6);
      if (ev == "[DONE]") {
        s.ok = true;
        continue;
      }
      auto j = nlohmann::json::parse(ev, nullptr, false);
      if (!j.is_object()) continue;
      if (j.contains("usage") && j["usage"].is_object() &&
          j["usage"].contains("completion_tokens")) {
        s.tokens = j["usage"]["completion_tokens"].get<int64_t>();
        usage = true;
      }
      if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty() &&
          j["choices"][0].contains("text") && j["choices"][0]["text"].is_string() &&
          !j["choices"][0]["text"].get_ref<const std::string&>().empty()) {
        const auto now = Clock::now();
        ++chunks;
        if (first) {
          s.ttft = seconds(now - t0);
          first = false;
        } else {
          s.itl.push_back(seconds(now - last));
        }
        last = now;
      }
    }
    return true;
  };
  auto res = cli.send(req);
  s.total = seconds(Clock::now() - t0);
  s.last = seconds(last - t0);
  if (!usage) s.tokens = chunks;
  if (res && res->status != 200) {
    s.status = res->status;
    s.ok = false;
    s.error = "HTTP " + std::to_string(res->status);
    if (res->has_header("Retry-After"))
      s.retry_after = std::atof(res->get_header_value("Retry-After").c_str());
  } else if (!res) {
    s.ok = false;
    s.error = (abort && abort->load()) ? "aborted" : httplib::to_string(res.error());
  } else if (!s.ok) {
    s.error = "stream ended without [DONE]";
  }
  return s;
}

// Runs `binary` with `args` (which should include `--port 0`), its stderr on a
// pipe, until it prints "listening on http://HOST:PORT"; fills `ep` from that
// line. The child runs in `cwd` when given. Its later stderr is copied to
// `log_path` (or dropped). Returns the pid, or -1 after printing what it said.
inline pid_t spawn_server(const std::string& binary, const std::vector<std::string>& args,
                          Endpoint& ep, const std::string& cwd = "",
                          const std::string& log_path = "") {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  std::vector<std::string> argv_s = {binary};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    return -1;
  }
  FILE* log = log_path.empty() ? nullptr : std::fopen(log_path.c_str(), "a");
  std::string text;
  char buf[512];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) {
    text.append(buf, static_cast<size_t>(n));
    const auto p = text.find("listening on http://");
    if (p == std::string::npos) continue;
    const auto eol = text.find('\n', p);
    if (eol == std::string::npos) continue;
    const std::string hostport = text.substr(p + 20, eol - p - 20);
    const auto colon = hostport.rfind(':');
    if (colon == std::string::npos) continue;
    ep.host = hostport.substr(0, colon);
    if (ep.host.empty() || ep.host == "0.0.0.0") ep.host = "127.0.0.1";
    ep.port = std::atoi(hostport.substr(colon + 1).c_str());
    if (log) std::fwrite(text.data(), 1, text.size(), log);
    // Keep draining stderr so the server never blocks on it.
    std::thread([fd = fds[0], log] {
      char b[512];
      ssize_t m;
      while ((m = read(fd, b, sizeof b)) > 0) {
        if (log) std::fwrite(b, 1, static_cast<size_t>(m), log);
      }
      if (log) std::fclose(log);
      close(fd);
    }).detach();
    return pid;
  }
  close(fds[0]);
  if (log) std::fclose(log);
  int status = 0;
  waitpid(pid, &status, 0);
  std::fprintf(stderr, "%s did not start (exit %d):\n%s\n", binary.c_str(),
               WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.c_str());
  return -1;
}

// GET /health until it answers 200 or `timeout_s` passes.
inline bool wait_healthy(const Endpoint& ep, double timeout_s) {
  const auto end = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (Clock::now() < end) {
    httplib::Client cli(ep.host, ep.port);
    cli.set_connection_timeout(2, 0);
    cli.set_read_timeout(5, 0);
    auto r = cli.Get("/health");
    if (r && r->status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

// SIGTERM, then SIGKILL if it has not exited after `grace_s`.
inline void stop_server(pid_t pid, double grace_s = 30) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  const auto end = Clock::now() + std::chrono::duration<double>(grace_s);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (Clock::now() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace tandem::bench
