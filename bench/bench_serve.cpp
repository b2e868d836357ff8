// Load generator for `tandem serve`: streaming completions at several
// concurrencies, reporting output tokens/s and time-to-first-token /
// inter-token-latency percentiles.
//
//   bench_serve --url http://127.0.0.1:8000 --model-name demo
//   bench_serve --spawn build/tandem --model models/demo     (starts and stops a server)
//
// Options: --concurrency 1,4,16,64  --max-tokens 64  --requests N (per level;
// default max(8, 2 * concurrency))  --threads N (for a spawned server).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "serve_client.h"

namespace {

namespace bench = tandem::bench;

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

using bench::Clock;
using bench::pct;

pid_t spawn_server(const Args& a, int& port) {
  bench::Endpoint ep;
  const pid_t pid = bench::spawn_server(a.spawn,
                                        {"serve", "--model", a.model_name + "=" + a.model_path,
                                         "--port", "0", "--threads", std::to_string(a.threads)},
                                        ep);
  port = ep.port;
  return pid;
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
    std::vector<bench::StreamResult> samples;
    const auto t0 = Clock::now();
    std::vector<std::thread> workers;
    for (int w = 0; w < c; ++w) {
      workers.emplace_back([&] {
        for (int i; (i = next++) < total;) {
          httplib::Client cli(a.host, a.port);
          bench::configure(cli, 600, "");
          const std::string prompt = "Return the " + std::to_string(i) + " values of";
          bench::StreamResult s = bench::stream_completion(
              cli, bench::completion_body(a.model_name, prompt, a.max_tokens));
          if (!s.ok)
            std::fprintf(stderr, "bench_serve: request %d failed: %s\n", i, s.error.c_str());
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
  bench::stop_server(server);
  return rc;
}
