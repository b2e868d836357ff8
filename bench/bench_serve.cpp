// Load generator for `tandem serve`: streaming completions at several
// concurrencies, reporting output tokens/s and time-to-first-token /
// inter-token-latency percentiles.
//
//   bench_serve --url http://127.0.0.1:8000 --model-name demo
//   bench_serve --spawn build/tandem --model models/demo     (starts and stops a server)
//
// Options: --concurrency 1,4,16,64  --max-tokens 64  --requests N (per level;
// default max(8, 2 * concurrency))  --threads N (for a spawned server).
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string model_name = "demo";
  std::string spawn, model_path;
  int threads = 0;
  std::vector<int> levels = {1, 4, 16, 64};
  int max_tokens = 64;
  int requests = 0;
};

struct Sample {
  double ttft = 0;
  std::vector<double> itl;
  int64_t tokens = 0;
  bool ok = false;
};

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i =
      std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

Sample one_request(const Args& a, int i) {
  httplib::Client cli(a.host, a.port);
  cli.set_read_timeout(600, 0);
  cli.set_tcp_nodelay(true);
  const std::string prompt = "Return the " + std::to_string(i) + " values of";
  nlohmann::json body = {{"model", a.model_name},
                         {"prompt", prompt},
                         {"max_tokens", a.max_tokens},
                         {"temperature", 0},
                         {"ignore_eos", true},
                         {"stream", true},
                         {"stream_options", {{"include_usage", true}}}};
  Sample s;
  const auto t0 = Clock::now();
  auto last = t0;
  bool first = true;
  std::string buf;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
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
      if (j.contains("usage") && j["usage"].is_object())
        s.tokens = j["usage"]["completion_tokens"].get<int64_t>();
      if (j.contains("choices") && !j["choices"].empty() &&
          !j["choices"][0]["text"].get<std::string>().empty()) {
        const auto now = Clock::now();
        if (first) {
          s.ttft = std::chrono::duration<double>(now - t0).count();
          first = false;
        } else {
          s.itl.push_back(std::chrono::duration<double>(now - last).count());
        }
        last = now;
      }
    }
    return true;
  };
  auto res = cli.send(req);
  if (!res || res->status != 200) {
    s.ok = false;
    std::fprintf(stderr, "bench_serve: request %d failed: %s\n", i,
                 res ? ("HTTP " + std::to_string(res->status)).c_str()
                     : httplib::to_string(res.error()).c_str());
  }
  return s;
}

pid_t spawn_server(const Args& a, int& port) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    const std::string model = a.model_name + "=" + a.model_path;
    const std::string threads = std::to_string(a.threads);
    execl(a.spawn.c_str(), a.spawn.c_str(), "serve", "--model", model.c_str(), "--port", "0",
          "--threads", threads.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  std::string log;
  char buf[512];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) {
    log.append(buf, static_cast<size_t>(n));
    auto p = log.find("listening on http://");
    if (p != std::string::npos) {
      auto colon = log.find(':', p + 20);
      auto eol = log.find('\n', p);
      if (colon != std::string::npos && eol != std::string::npos) {
        port = std::atoi(log.substr(colon + 1, eol - colon - 1).c_str());
        // Keep draining stderr so the server never blocks on it.
        std::thread([fd = fds[0]] {
          char b[512];
          while (read(fd, b, sizeof b) > 0) {
          }
          close(fd);
        }).detach();
        return pid;
      }
    }
  }
  std::fprintf(stderr, "bench_serve: the server did not start:\n%s\n", log.c_str());
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_serve: %s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--url") {
      std::string u = next();
      if (u.rfind("http://", 0) == 0) u.erase(0, 7);
      auto c = u.find(':');
      a.host = u.substr(0, c);
      if (c != std::string::npos) a.port = std::atoi(u.substr(c + 1).c_str());
    } else if (k == "--model-name") {
      a.model_name = next();
    } else if (k == "--spawn") {
      a.spawn = next();
    } else if (k == "--model") {
      a.model_path = next();
    } else if (k == "--threads") {
      a.threads = std::atoi(next().c_str());
    } else if (k == "--max-tokens") {
      a.max_tokens = std::atoi(next().c_str());
    } else if (k == "--requests") {
      a.requests = std::atoi(next().c_str());
    } else if (k == "--concurrency") {
      a.levels.clear();
      std::string v = next();
      size_t p = 0;
      while (p < v.size()) {
        size_t q = v.find(',', p);
        if (q == std::string::npos) q = v.size();
        a.levels.push_back(std::atoi(v.substr(p, q - p).c_str()));
        p = q + 1;
      }
    } else {
      std::fprintf(
          stderr,
          "usage: bench_serve [--url URL | --spawn TANDEM --model PATH] [--model-name NAME]\n"
          "       [--concurrency 1,4,16,64] [--max-tokens 64] [--requests N] [--threads N]\n");
      return 2;
    }
  }
  pid_t server = -1;
  if (!a.spawn.empty()) {
    if (a.model_path.empty()) {
      std::fprintf(stderr, "bench_serve: --spawn needs --model PATH\n");
      return 2;
    }
    server = spawn_server(a, a.port);
    if (server < 0) return 1;
  }
  std::printf(
      "| concurrency | requests | output tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 "
      "ms | failed |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  int rc = 0;
  for (int c : a.levels) {
    const int total = a.requests > 0 ? a.requests : std::max(8, 2 * c);
    std::atomic<int> next{0};
    std::mutex mu;
    std::vector<Sample> samples;
    const auto t0 = Clock::now();
    std::vector<std::thread> workers;
    for (int w = 0; w < c; ++w) {
      workers.emplace_back([&] {
        for (int i; (i = next++) < total;) {
          Sample s = one_request(a, i);
          std::lock_guard lock(mu);
          samples.push_back(std::move(s));
        }
      });
    }
    for (auto& t : workers) t.join();
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    std::vector<double> ttft, itl;
    int64_t tokens = 0;
    int failed = 0;
    for (const auto& s : samples) {
      if (!s.ok) {
        ++failed;
        continue;
      }
      ttft.push_back(s.ttft);
      itl.insert(itl.end(), s.itl.begin(), s.itl.end());
      tokens += s.tokens;
    }
    if (failed) rc = 1;
    std::printf("| %d | %d | %.1f | %.1f | %.1f | %.2f | %.2f | %d |\n", c, total,
                static_cast<double>(tokens) / wall, pct(ttft, 0.5) * 1e3, pct(ttft, 0.99) * 1e3,
                pct(itl, 0.5) * 1e3, pct(itl, 0.99) * 1e3, failed);
    std::fflush(stdout);
  }
  if (server > 0) {
    kill(server, SIGTERM);
    int status = 0;
    waitpid(server, &status, 0);
  }
  return rc;
}
