// Scenario runner for `tandem serve`: drives several pipelines through scripted
// load phases over HTTP and reports, per phase and per pipeline, requests
// sent / completed / failed / answered 429, completion tokens/s, TTFT and TPOT
// percentiles, SLO attainment and each pipeline's measured share of the tokens.
//
//   bench_scenario bench/scenarios/shifting.yaml --tandem build/tandem --compare
//   bench_scenario my.yaml --url http://127.0.0.1:8000 --json out.json
//
// Options:
//   --url URL          use a running server (else the scenario's `url`, else
//                      start `tandem serve --config CONFIG --port 0`)
//   --tandem PATH      the tandem binary to start (default: ../tandem next to this one)
//   --mode M           adaptive | static: passed as `--share-mode M` to a started server
//   --compare          run the scenario twice, adaptive then static, and compare
//   --json FILE        write the full report as JSON
//   --time-scale X     multiply every phase's duration (0.25: a quick look)
//   --server-log FILE  append the started server's stderr to FILE
//
// The scenario file (YAML):
//   config: ../../examples/tandem_scenarios.yaml   # relative to this file; or
//   url: http://127.0.0.1:8000                     # a running server
//   serve_args: [--threads, "2"]    # more arguments for a started server (run in
//                                   # this file's folder); enough on their own
//                                   # without `config`, e.g. [--model, A=../../models/demo]
//   api_key: KEY                    # sent as a bearer token
//   warmup: 2                       # requests per pipeline before the phases, not counted
//   drain_timeout_s: 30             # how long in-flight requests may finish after the last phase
//   seed: 1                         # prompts and Poisson arrivals
//   pipelines:
//     A: {ttft_ms: 300, tpot_ms: 60}   # SLO targets (0 or absent: none); may also set
//                                      # prompt_tokens / max_tokens for this pipeline
//   request: {prompt_tokens: 64, max_tokens: 32}
//   phases:
//     - name: A busy
//       duration_s: 20
//       load:
//         A: {concurrency: 8}   # closed loop: 8 clients back to back
//         B: {rate: 1}          # open loop: Poisson arrivals per second
//                               # (either may also set prompt_tokens / max_tokens)
//
// Figures: tok/s is the completion tokens of the requests sent in a phase over the
// phase's duration; share is a pipeline's fraction of those tokens in the phase;
// TTFT is from sending to the first text chunk, TPOT (last chunk - first chunk) /
// (completion tokens - 1), both over completed requests; SLO attainment is the
// fraction of the requests the server took (completed + failed, not 429s) that
// completed within both of the pipeline's targets (the JSON also has
// slo_attainment_all, over every request sent, 429s counting as misses).
//
// Phases follow each other without a gap; a request counts to the phase in which
// it was sent, even when it finishes in the next one. A client answered 429 waits
// for Retry-After (0.5 s when absent) before its next request; an open-loop
// generator pauses its arrivals for as long.
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>

#include "serve_client.h"

namespace {

namespace bench = tandem::bench;
namespace fs = std::filesystem;
using bench::Clock;
using Json = nlohmann::json;

constexpr double kDefaultRetryAfter = 0.5;
constexpr size_t kMaxOpenLoopInFlight = 512;

struct Shape {
  int prompt_tokens = 64;
  int max_tokens = 32;
};

struct PipelineSpec {
  std::string name;
  double ttft_ms = 0;
  double tpot_ms = 0;
  Shape shape;
};

struct LoadSpec {
  size_t pipeline = 0;
  int concurrency = 0;
  double rate = 0;
  Shape shape;
  std::string describe() const {
    if (concurrency > 0) return "c=" + std::to_string(concurrency);
    std::ostringstream o;
    o << "r=" << rate << "/s";
    return o.str();
  }
};

struct PhaseSpec {
  std::string name;
  double duration_s = 0;
  std::vector<LoadSpec> load;
};

struct Scenario {
  fs::path file;
  std::string url;
  fs::path config;
  std::vector<std::string> serve_args;
  std::string api_key;
  int warmup = 2;
  double drain_timeout_s = 30;
  uint64_t seed = 1;
  Shape shape;
  std::vector<PipelineSpec> pipelines;
  std::vector<PhaseSpec> phases;
  Json as_json;
};

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "bench_scenario: %s\n", what.c_str());
  std::exit(1);
}

std::string where(const Scenario& sc, const YAML::Node& n) {
  return sc.file.string() + ":" + std::to_string(n.Mark().line + 1);
}

void check_keys(const Scenario& sc, const YAML::Node& n, const std::set<std::string>& allowed,
                const std::string& what) {
  if (!n.IsMap()) fail(where(sc, n) + ": " + what + " must be a mapping");
  for (const auto& kv : n) {
    const auto k = kv.first.as<std::string>();
    if (!allowed.count(k)) fail(where(sc, kv.first) + ": " + what + ": unknown key '" + k + "'");
  }
}

template <typename T>
T get(const Scenario& sc, const YAML::Node& n, const std::string& what) {
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    fail(where(sc, n) + ": " + what + ": wrong type");
  }
}

void read_shape(const Scenario& sc, const YAML::Node& n, Shape& s, const std::string& what) {
  if (n["prompt_tokens"])
    s.prompt_tokens = get<int>(sc, n["prompt_tokens"], what + ".prompt_tokens");
  if (n["max_tokens"]) s.max_tokens = get<int>(sc, n["max_tokens"], what + ".max_tokens");
  if (s.prompt_tokens < 1 || s.max_tokens < 1)
    fail(where(sc, n) + ": " + what + ": prompt_tokens and max_tokens must be >= 1");
}

// YAML to JSON for the report: numbers and booleans where a scalar reads as one.
Json to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      Json j = Json::object();
      for (const auto& kv : n) j[kv.first.as<std::string>()] = to_json(kv.second);
      return j;
    }
    case YAML::NodeType::Sequence: {
      Json j = Json::array();
      for (const auto& v : n) j.push_back(to_json(v));
      return j;
    }
    case YAML::NodeType::Scalar: {
      const auto s = n.as<std::string>();
      if (n.Tag() == "!") return s;  // quoted
      int64_t i;
      double d;
      bool b;
      if (YAML::convert<int64_t>::decode(n, i)) return i;
      if (YAML::convert<double>::decode(n, d)) return d;
      if (YAML::convert<bool>::decode(n, b)) return b;
      return s;
    }
    default:
      return nullptr;
  }
}

Scenario load_scenario(const fs::path& file) {
  Scenario sc;
  sc.file = file;
  YAML::Node root;
  try {
    root = YAML::LoadFile(file.string());
  } catch (const YAML::Exception& e) {
    fail(file.string() + ": " + e.what());
  }
  check_keys(sc, root,
             {"config", "url", "serve_args", "api_key", "warmup", "drain_timeout_s", "seed",
              "pipelines", "request", "phases"},
             "scenario");
  sc.as_json = to_json(root);
  const fs::path dir = fs::absolute(file).parent_path();
  if (root["config"])
    sc.config = (dir / get<std::string>(sc, root["config"], "config")).lexically_normal();
  if (root["url"]) sc.url = get<std::string>(sc, root["url"], "url");
  if (root["serve_args"])
    sc.serve_args = get<std::vector<std::string>>(sc, root["serve_args"], "serve_args");
  if (root["api_key"]) sc.api_key = get<std::string>(sc, root["api_key"], "api_key");
  if (root["warmup"]) sc.warmup = get<int>(sc, root["warmup"], "warmup");
  if (root["drain_timeout_s"])
    sc.drain_timeout_s = get<double>(sc, root["drain_timeout_s"], "drain_timeout_s");
  if (root["seed"]) sc.seed = get<uint64_t>(sc, root["seed"], "seed");
  if (root["request"]) {
    check_keys(sc, root["request"], {"prompt_tokens", "max_tokens"}, "request");
    read_shape(sc, root["request"], sc.shape, "request");
  }
  const auto pipes = root["pipelines"];
  if (!pipes || !pipes.IsMap() || pipes.size() == 0)
    fail(file.string() + ": 'pipelines' must map each pipeline's name to its SLO targets");
  for (const auto& kv : pipes) {
    PipelineSpec p;
    p.name = kv.first.as<std::string>();
    const std::string what = "pipelines." + p.name;
    p.shape = sc.shape;
    if (!kv.second.IsNull()) {
      check_keys(sc, kv.second, {"ttft_ms", "tpot_ms", "prompt_tokens", "max_tokens"}, what);
      if (kv.second["ttft_ms"])
        p.ttft_ms = get<double>(sc, kv.second["ttft_ms"], what + ".ttft_ms");
      if (kv.second["tpot_ms"])
        p.tpot_ms = get<double>(sc, kv.second["tpot_ms"], what + ".tpot_ms");
      read_shape(sc, kv.second, p.shape, what);
    }
    sc.pipelines.push_back(p);
  }
  const auto phases = root["phases"];
  if (!phases || !phases.IsSequence() || phases.size() == 0)
    fail(file.string() + ": 'phases' must be a list of phases");
  for (size_t i = 0; i < phases.size(); ++i) {
    const auto n = phases[i];
    const std::string what = "phases[" + std::to_string(i) + "]";
    check_keys(sc, n, {"name", "duration_s", "load"}, what);
    PhaseSpec ph;
    ph.name = n["name"] ? get<std::string>(sc, n["name"], what + ".name")
                        : "phase " + std::to_string(i + 1);
    if (!n["duration_s"]) fail(where(sc, n) + ": " + what + ": duration_s is required");
    ph.duration_s = get<double>(sc, n["duration_s"], what + ".duration_s");
    if (!(ph.duration_s > 0)) fail(where(sc, n) + ": " + what + ".duration_s must be > 0");
    if (n["load"]) {
      if (!n["load"].IsMap()) fail(where(sc, n["load"]) + ": " + what + ".load must be a mapping");
      for (const auto& kv : n["load"]) {
        const auto name = kv.first.as<std::string>();
        const std::string lw = what + ".load." + name;
        LoadSpec l;
        auto it = std::find_if(sc.pipelines.begin(), sc.pipelines.end(),
                               [&](const PipelineSpec& p) { return p.name == name; });
        if (it == sc.pipelines.end())
          fail(where(sc, kv.first) + ": " + lw + ": not one of the scenario's pipelines");
        l.pipeline = static_cast<size_t>(it - sc.pipelines.begin());
        l.shape = it->shape;
        check_keys(sc, kv.second, {"concurrency", "rate", "prompt_tokens", "max_tokens"}, lw);
        if (kv.second["concurrency"])
          l.concurrency = get<int>(sc, kv.second["concurrency"], lw + ".concurrency");
        if (kv.second["rate"]) l.rate = get<double>(sc, kv.second["rate"], lw + ".rate");
        if ((l.concurrency > 0) == (l.rate > 0))
          fail(where(sc, kv.second) + ": " + lw + ": give one of concurrency (> 0) or rate (> 0)");
        read_shape(sc, kv.second, l.shape, lw);
        ph.load.push_back(l);
      }
    }
    sc.phases.push_back(ph);
  }
  return sc;
}

// ---- prompts ----

const char* const kWords[] = {
    "the",   "of",    "and",    "to",    "in",     "is",     "that",   "for",     "it",    "as",
    "with",  "was",   "on",     "be",    "at",     "by",     "this",   "had",     "not",   "are",
    "but",   "from",  "or",     "have",  "an",     "they",   "which",  "one",     "you",   "were",
    "all",   "we",    "her",    "she",   "there",  "would",  "their",  "will",    "when",  "who",
    "him",   "been",  "has",    "more",  "if",     "no",     "out",    "so",      "said",  "what",
    "up",    "its",   "about",  "into",  "than",   "them",   "can",    "only",    "other", "new",
    "some",  "could", "time",   "these", "two",    "may",    "then",   "do",      "first", "any",
    "my",    "now",   "such",   "like",  "our",    "over",   "man",    "me",      "even",  "most",
    "made",  "after", "also",   "did",   "many",   "before", "must",   "through", "back",  "years",
    "where", "much",  "your",   "way",   "well",   "down",   "should", "because", "each",  "just",
    "value", "list",  "return", "data",  "number", "file",   "name",   "type",    "model", "table"};

// About `n` tokens of words; different for every request so the prefix cache does not help.
std::string make_prompt(int n, std::mt19937_64& rng) {
  std::uniform_int_distribution<size_t> pick(0, std::size(kWords) - 1);
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i) s += ' ';
    s += kWords[pick(rng)];
  }
  return s;
}

// ---- running ----

struct Record {
  size_t phase = 0;
  size_t pipeline = 0;
  bench::StreamResult r;
};

struct Options {
  std::string url;
  std::string tandem;
  std::string json_out;
  std::string server_log;
  std::string mode;  // "" : the server's default
  bool compare = false;
  double time_scale = 1;
};

class Run {
 public:
  Run(const Scenario& sc, const bench::Endpoint& ep) : sc_(sc), ep_(ep) {}

  // One request, recorded under `phase` (SIZE_MAX: warm-up, not recorded).
  bench::StreamResult request(size_t phase, size_t pipeline, const Shape& shape) {
    uint64_t n;
    {
      std::lock_guard lock(mu_);
      n = counter_++;
    }
    std::mt19937_64 rng(sc_.seed * 0x9E3779B97F4A7C15ull + n);
    const Json body = bench::completion_body(
        sc_.pipelines[pipeline].name, make_prompt(shape.prompt_tokens, rng), shape.max_tokens);
    httplib::Client cli(ep_.host, ep_.port);
    bench::configure(cli, 600, sc_.api_key);
    {
      std::lock_guard lock(mu_);
      active_.insert(&cli);
    }
    bench::StreamResult r = bench::stream_completion(cli, body, &abort_);
    {
      std::lock_guard lock(mu_);
      active_.erase(&cli);
      if (phase != SIZE_MAX) records_.push_back({phase, pipeline, r});
    }
    if (!r.ok && r.status != 429 && !abort_ && phase != SIZE_MAX && failures_logged_++ < 5)
      std::fprintf(stderr, "bench_scenario: a request to %s failed: %s\n",
                   sc_.pipelines[pipeline].name.c_str(), r.error.c_str());
    return r;
  }

  // Warm-up: `sc.warmup` requests per pipeline, the pipelines side by side.
  // False when every warm-up request of some pipeline failed.
  bool warm_up() {
    if (sc_.warmup <= 0) return true;
    std::vector<std::thread> ts;
    std::vector<int> ok(sc_.pipelines.size(), 0);
    std::vector<std::string> err(sc_.pipelines.size());
    for (size_t p = 0; p < sc_.pipelines.size(); ++p) {
      ts.emplace_back([&, p] {
        for (int i = 0; i < sc_.warmup; ++i) {
          auto r = request(SIZE_MAX, p, sc_.pipelines[p].shape);
          if (r.ok)
            ++ok[p];
          else
            err[p] = r.error;
        }
      });
    }
    for (auto& t : ts) t.join();
    bool good = true;
    for (size_t p = 0; p < sc_.pipelines.size(); ++p) {
      if (ok[p] == 0) {
        std::fprintf(stderr, "bench_scenario: warm-up of pipeline %s failed: %s\n",
                     sc_.pipelines[p].name.c_str(), err[p].c_str());
        good = false;
      }
    }
    return good;
  }

  // Runs phase `i` from now for its duration; returns at its end, leaving its
  // requests in flight (they are joined by drain()).
  void run_phase(size_t i, double duration_s) {
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(duration_s));
    for (const auto& l : sc_.phases[i].load) {
      if (l.concurrency > 0) {
        for (int c = 0; c < l.concurrency; ++c)
          add_thread([this, i, l, end] { closed_loop(i, l, end); });
      } else {
        add_thread([this, i, l, start, end] { open_loop(i, l, start, end); });
      }
    }
    std::this_thread::sleep_until(end);
  }

  // Waits for every request to finish; after `timeout_s` the rest are cut off
  // (and count as failed).
  void drain(double timeout_s) {
    std::atomic<bool> done{false};
    std::mutex m;
    std::condition_variable cv;
    std::thread watchdog([&] {
      std::unique_lock lock(m);
      if (!cv.wait_for(lock, std::chrono::duration<double>(timeout_s),
                       [&] { return done.load(); })) {
        abort_ = true;
        std::lock_guard l2(mu_);
        if (!active_.empty())
          std::fprintf(stderr, "bench_scenario: cutting off %zu requests after the drain timeout\n",
                       active_.size());
        for (auto* c : active_) c->stop();
      }
    });
    for (;;) {
      std::vector<std::thread> ts;
      {
        std::lock_guard lock(mu_);
        ts.swap(threads_);
      }
      if (ts.empty()) break;
      for (auto& t : ts) t.join();
    }
    {
      std::lock_guard lock(m);
      done = true;
    }
    cv.notify_all();
    watchdog.join();
  }

  std::vector<Record> records() {
    std::lock_guard lock(mu_);
    return records_;
  }

 private:
  void add_thread(std::function<void()> f) {
    std::lock_guard lock(mu_);
    threads_.emplace_back(std::move(f));
  }

  static void sleep_until_or(Clock::time_point t, Clock::time_point end) {
    std::this_thread::sleep_until(std::min(t, end));
  }

  static Clock::time_point after(double s) {
    return Clock::now() +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  void closed_loop(size_t phase, const LoadSpec& l, Clock::time_point end) {
    while (Clock::now() < end && !abort_) {
      const auto r = request(phase, l.pipeline, l.shape);
      if (r.status == 429 || r.status == 503) {
        sleep_until_or(after(r.retry_after >= 0 ? r.retry_after : kDefaultRetryAfter), end);
      } else if (!r.ok) {
        sleep_until_or(after(0.1), end);  // no hot loop against a failing server
      }
    }
  }

  void open_loop(size_t phase, const LoadSpec& l, Clock::time_point start, Clock::time_point end) {
    std::mt19937_64 rng(sc_.seed ^ (0xA24BAED4963EE407ull * (phase + 1)) ^
                        (0x9FB21C651E98DF25ull * (l.pipeline + 1)));
    std::exponential_distribution<double> gap(l.rate);
    auto blocked_until =
        std::make_shared<std::atomic<Clock::rep>>(start.time_since_epoch().count());
    auto in_flight = std::make_shared<std::atomic<size_t>>(0);
    auto t = start;
    for (;;) {
      t += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(rng)));
      const Clock::time_point blocked{Clock::duration(blocked_until->load())};
      if (blocked > t) t = blocked;  // Retry-After: no arrivals until then
      if (t >= end || abort_) break;
      std::this_thread::sleep_until(t);
      if (in_flight->load() >= kMaxOpenLoopInFlight) {
        std::lock_guard lock(mu_);
        bench::StreamResult r;
        r.error = "client cap of in-flight open-loop requests";
        records_.push_back({phase, l.pipeline, r});
        continue;
      }
      ++*in_flight;
      add_thread([this, phase, l, blocked_until, in_flight] {
        const auto r = request(phase, l.pipeline, l.shape);
        if (r.status == 429 || r.status == 503) {
          const auto until = after(r.retry_after >= 0 ? r.retry_after : kDefaultRetryAfter);
          auto cur = blocked_until->load();
          while (cur < until.time_since_epoch().count() &&
                 !blocked_until->compare_exchange_weak(cur, until.time_since_epoch().count())) {
          }
        }
        --*in_flight;
      });
    }
  }

  const Scenario& sc_;
  bench::Endpoint ep_;
  std::mutex mu_;
  uint64_t counter_ = 0;
  std::set<httplib::Client*> active_;
  std::vector<std::thread> threads_;
  std::vector<Record> records_;
  std::atomic<bool> abort_{false};
  std::atomic<int> failures_logged_{0};
};

// ---- figures ----

struct Figures {
  int64_t sent = 0, completed = 0, failed = 0, rejected = 0;  // rejected: 429
  int64_t tokens = 0;
  int64_t slo_met = 0;
  std::vector<double> ttft, tpot;  // ms, completed requests
};

Json pct_or_null(const std::vector<double>& v, double p) {
  return v.empty() ? Json(nullptr) : Json(bench::pct(v, p));
}

Json figures_json(const Figures& f, double duration_s, int64_t phase_tokens,
                  const std::string& load) {
  const int64_t admitted = f.completed + f.failed;
  Json j = {
      {"sent", f.sent},
      {"completed", f.completed},
      {"failed", f.failed},
      {"rejected_429", f.rejected},
      {"completion_tokens", f.tokens},
      {"tok_per_s", duration_s > 0 ? static_cast<double>(f.tokens) / duration_s : 0.0},
      {"share",
       phase_tokens > 0 ? static_cast<double>(f.tokens) / static_cast<double>(phase_tokens) : 0.0},
      {"ttft_ms", {{"p50", pct_or_null(f.ttft, 0.5)}, {"p95", pct_or_null(f.ttft, 0.95)}}},
      {"tpot_ms", {{"p50", pct_or_null(f.tpot, 0.5)}, {"p95", pct_or_null(f.tpot, 0.95)}}},
      {"slo_met", f.slo_met},
      // Of the requests the server took (completed + failed); a 429 is not counted.
      {"slo_attainment", admitted > 0
                             ? Json(static_cast<double>(f.slo_met) / static_cast<double>(admitted))
                             : Json(nullptr)},
      // Of every request sent: a 429 counts as a miss.
      {"slo_attainment_all",
       f.sent > 0 ? Json(static_cast<double>(f.slo_met) / static_cast<double>(f.sent))
                  : Json(nullptr)}};
  if (!load.empty()) j["load"] = load;
  return j;
}

void add(Figures& into, const Figures& f) {
  into.sent += f.sent;
  into.completed += f.completed;
  into.failed += f.failed;
  into.rejected += f.rejected;
  into.tokens += f.tokens;
  into.slo_met += f.slo_met;
  into.ttft.insert(into.ttft.end(), f.ttft.begin(), f.ttft.end());
  into.tpot.insert(into.tpot.end(), f.tpot.begin(), f.tpot.end());
}

// Per phase, per pipeline figures plus totals, as JSON.
Json summarize(const Scenario& sc, const std::vector<Record>& records,
               const std::vector<double>& durations, const std::vector<Json>& snapshots) {
  const size_t np = sc.pipelines.size();
  std::vector<std::vector<Figures>> fig(sc.phases.size(), std::vector<Figures>(np));
  for (const auto& rec : records) {
    Figures& f = fig[rec.phase][rec.pipeline];
    const auto& p = sc.pipelines[rec.pipeline];
    const auto& r = rec.r;
    ++f.sent;
    f.tokens += r.tokens;
    if (r.status == 429) {
      ++f.rejected;
      continue;
    }
    if (!r.ok) {
      ++f.failed;
      continue;
    }
    ++f.completed;
    const double ttft = r.ttft * 1e3;
    const bool has_tpot = r.tokens > 1;
    const double tpot = has_tpot ? (r.last - r.ttft) * 1e3 / static_cast<double>(r.tokens - 1) : 0;
    f.ttft.push_back(ttft);
    if (has_tpot) f.tpot.push_back(tpot);
    if ((p.ttft_ms <= 0 || ttft <= p.ttft_ms) && (p.tpot_ms <= 0 || tpot <= p.tpot_ms)) ++f.slo_met;
  }
  Json phases = Json::array();
  std::vector<Figures> overall(np);
  Figures overall_total;
  double total_s = 0;
  for (size_t i = 0; i < sc.phases.size(); ++i) {
    Figures total;
    for (size_t p = 0; p < np; ++p) add(total, fig[i][p]);
    Json pj = Json::object();
    for (size_t p = 0; p < np; ++p) {
      std::string load;
      for (const auto& l : sc.phases[i].load)
        if (l.pipeline == p) load = l.describe();
      pj[sc.pipelines[p].name] = figures_json(fig[i][p], durations[i], total.tokens, load);
      add(overall[p], fig[i][p]);
    }
    add(overall_total, total);
    total_s += durations[i];
    phases.push_back({{"name", sc.phases[i].name},
                      {"duration_s", durations[i]},
                      {"pipelines", pj},
                      {"total", figures_json(total, durations[i], total.tokens, "")},
                      {"server_pipelines", snapshots[i]}});
  }
  Json oj = Json::object();
  for (size_t p = 0; p < np; ++p)
    oj[sc.pipelines[p].name] = figures_json(overall[p], total_s, overall_total.tokens, "");
  return {{"phases", phases},
          {"overall",
           {{"duration_s", total_s},
            {"pipelines", oj},
            {"total", figures_json(overall_total, total_s, overall_total.tokens, "")}}}};
}

std::string fmt(const Json& v, const char* f, double scale = 1) {
  if (!v.is_number()) return "-";
  char b[64];
  std::snprintf(b, sizeof b, f, v.get<double>() * scale);
  return b;
}

void print_row(const std::string& phase, const std::string& pipe, const Json& f) {
  const std::string load = f.contains("load") ? f["load"].get<std::string>() : "";
  std::printf("| %s | %s | %s | %lld | %lld | %lld | %lld | %s | %s | %s | %s | %s | %s | %s |\n",
              phase.c_str(), pipe.c_str(), load.c_str(), f["sent"].get<long long>(),
              f["completed"].get<long long>(), f["failed"].get<long long>(),
              f["rejected_429"].get<long long>(), fmt(f["tok_per_s"], "%.1f").c_str(),
              fmt(f["share"], "%.0f%%", 100).c_str(), fmt(f["ttft_ms"]["p50"], "%.0f").c_str(),
              fmt(f["ttft_ms"]["p95"], "%.0f").c_str(), fmt(f["tpot_ms"]["p50"], "%.1f").c_str(),
              fmt(f["tpot_ms"]["p95"], "%.1f").c_str(),
              fmt(f["slo_attainment"], "%.0f%%", 100).c_str());
}

void print_table(const Scenario& sc, const Json& run) {
  std::printf("\n### %s (server %s)\n\n", run["mode"].get<std::string>().c_str(),
              run["server"].get<std::string>().c_str());
  std::printf(
      "| phase | pipeline | load | sent | done | failed | 429 | tok/s | share | TTFT p50 ms | TTFT "
      "p95 ms | TPOT p50 ms | TPOT p95 ms | SLO |\n");
  std::printf("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& ph : run["phases"]) {
    const auto name = ph["name"].get<std::string>();
    for (const auto& p : sc.pipelines) print_row(name, p.name, ph["pipelines"][p.name]);
  }
  const auto& o = run["overall"];
  for (const auto& p : sc.pipelines) print_row("overall", p.name, o["pipelines"][p.name]);
  print_row("overall", "all", o["total"]);
  std::fflush(stdout);
}

Json get_pipelines(const bench::Endpoint& ep, const std::string& api_key) {
  httplib::Client cli(ep.host, ep.port);
  bench::configure(cli, 5, api_key);
  auto r = cli.Get("/v1/pipelines");
  if (!r || r->status != 200) return nullptr;
  auto j = Json::parse(r->body, nullptr, false);
  return j.is_discarded() ? Json(r->body) : j;
}

std::string default_tandem(const char* argv0) {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) self = fs::absolute(argv0);
  return (self.parent_path().parent_path() / "tandem").string();
}

// One pass over the scenario, against `opt.url` / the scenario's url, or a server
// started for it with `mode` ("" : none given).
Json run_scenario(const Scenario& sc, const Options& opt, const std::string& mode) {
  bench::Endpoint ep;
  pid_t server = -1;
  const std::string url = !opt.url.empty() ? opt.url : sc.url;
  if (!url.empty()) {
    ep = bench::parse_url(url);
    if (!mode.empty())
      std::fprintf(stderr,
                   "bench_scenario: --mode %s is not applied to a running server (%s): start it "
                   "with --share-mode %s yourself\n",
                   mode.c_str(), url.c_str(), mode.c_str());
  } else {
    if (sc.config.empty() && sc.serve_args.empty())
      fail("the scenario names no server: give --url, or `url`, `config` or `serve_args` in " +
           sc.file.string());
    std::vector<std::string> args = {"serve"};
    if (!sc.config.empty()) args.insert(args.end(), {"--config", sc.config.string()});
    args.insert(args.end(), {"--port", "0"});
    if (!mode.empty()) args.insert(args.end(), {"--share-mode", mode});
    args.insert(args.end(), sc.serve_args.begin(), sc.serve_args.end());
    const std::string bin = fs::absolute(opt.tandem).string();
    std::string cmd = bin;
    for (const auto& a : args) cmd += " " + a;
    std::fprintf(stderr, "bench_scenario: starting %s\n", cmd.c_str());
    server =
        bench::spawn_server(bin, args, ep, fs::absolute(sc.file).parent_path().string(),
                            opt.server_log.empty() ? "" : fs::absolute(opt.server_log).string());
    if (server < 0) fail("could not start the server");
  }
  if (!bench::wait_healthy(ep, 300)) {
    bench::stop_server(server);
    fail("no answer from " + ep.url() + "/health");
  }
  Run run(sc, ep);
  std::fprintf(stderr, "bench_scenario: %s: warming up\n", ep.url().c_str());
  if (!run.warm_up()) {
    bench::stop_server(server);
    fail("warm-up failed (is each scenario pipeline served by " + ep.url() + "?)");
  }
  std::vector<double> durations;
  std::vector<Json> snapshots;
  for (size_t i = 0; i < sc.phases.size(); ++i) {
    const double d = sc.phases[i].duration_s * opt.time_scale;
    std::fprintf(stderr, "bench_scenario: phase %zu/%zu '%s' for %.1f s\n", i + 1, sc.phases.size(),
                 sc.phases[i].name.c_str(), d);
    run.run_phase(i, d);
    int status = 0;
    if (server > 0 && waitpid(server, &status, WNOHANG) == server) {
      std::fprintf(stderr, "bench_scenario: the server exited during phase '%s'\n",
                   sc.phases[i].name.c_str());
      server = -1;
    }
    durations.push_back(d);
    snapshots.push_back(get_pipelines(ep, sc.api_key));
  }
  std::fprintf(stderr, "bench_scenario: waiting for requests in flight (up to %.0f s)\n",
               sc.drain_timeout_s);
  run.drain(sc.drain_timeout_s);
  bench::stop_server(server);
  Json j = summarize(sc, run.records(), durations, snapshots);
  j["mode"] = url.empty() ? (mode.empty() ? "server default" : mode) : "as running";
  j["server"] = ep.url();
  return j;
}

void usage() {
  std::fprintf(stderr,
               "usage: bench_scenario SCENARIO.yaml [--url URL | --tandem PATH] [--mode "
               "adaptive|static | --compare]\n"
               "       [--json FILE] [--time-scale X] [--server-log FILE]\n");
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  Options opt;
  std::string scenario_path;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_scenario: %s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--url") {
      opt.url = next();
    } else if (k == "--tandem") {
      opt.tandem = next();
    } else if (k == "--mode") {
      opt.mode = next();
      if (opt.mode != "adaptive" && opt.mode != "static") {
        std::fprintf(stderr, "bench_scenario: --mode is adaptive or static\n");
        return 2;
      }
    } else if (k == "--compare") {
      opt.compare = true;
    } else if (k == "--json") {
      opt.json_out = next();
    } else if (k == "--server-log") {
      opt.server_log = next();
    } else if (k == "--time-scale") {
      opt.time_scale = std::atof(next().c_str());
      if (!(opt.time_scale > 0)) {
        std::fprintf(stderr, "bench_scenario: --time-scale must be > 0\n");
        return 2;
      }
    } else if (k == "-h" || k == "--help") {
      usage();
      return 0;
    } else if (!k.empty() && k[0] != '-' && scenario_path.empty()) {
      scenario_path = k;
    } else {
      usage();
      return 2;
    }
  }
  if (scenario_path.empty()) {
    usage();
    return 2;
  }
  if (opt.tandem.empty()) opt.tandem = default_tandem(argv[0]);
  const Scenario sc = load_scenario(scenario_path);
  if (opt.compare && (!opt.url.empty() || (!sc.url.empty()))) {
    std::fprintf(stderr,
                 "bench_scenario: --compare starts the server itself in each mode; it cannot use "
                 "a running server (--url / url)\n");
    return 2;
  }

  Json report = {{"scenario", sc.as_json},
                 {"scenario_file", sc.file.string()},
                 {"time_scale", opt.time_scale},
                 {"runs", Json::array()}};
  if (opt.compare) {
    Json a = run_scenario(sc, opt, "adaptive");
    Json s = run_scenario(sc, opt, "static");
    report["runs"].push_back(a);
    report["runs"].push_back(s);
    print_table(sc, a);
    print_table(sc, s);
    const Json& sa = a["overall"]["total"]["slo_attainment"];
    const Json& ss = s["overall"]["total"]["slo_attainment"];
    Json cmp = {{"adaptive_slo_attainment", sa}, {"static_slo_attainment", ss}};
    std::printf("\nSLO attainment, adaptive / static: %s / %s", fmt(sa, "%.1f%%", 100).c_str(),
                fmt(ss, "%.1f%%", 100).c_str());
    if (sa.is_number() && ss.is_number() && ss.get<double>() > 0) {
      const double ratio = sa.get<double>() / ss.get<double>();
      cmp["ratio"] = ratio;
      std::printf(" = %.2fx\n", ratio);
    } else {
      cmp["ratio"] = nullptr;
      std::printf(" (no ratio)\n");
    }
    Json per = Json::object();
    for (const auto& p : sc.pipelines) {
      const Json& pa = a["overall"]["pipelines"][p.name]["slo_attainment"];
      const Json& ps = s["overall"]["pipelines"][p.name]["slo_attainment"];
      per[p.name] = {{"adaptive", pa}, {"static", ps}};
      std::printf("  %s: %s / %s\n", p.name.c_str(), fmt(pa, "%.1f%%", 100).c_str(),
                  fmt(ps, "%.1f%%", 100).c_str());
    }
    cmp["pipelines"] = per;
    report["compare"] = cmp;
  } else {
    Json r = run_scenario(sc, opt, opt.mode);
    report["runs"].push_back(r);
    print_table(sc, r);
  }
  std::fflush(stdout);
  if (!opt.json_out.empty()) {
    std::ofstream out(opt.json_out);
    out << report.dump(2) << "\n";
    if (!out) {
      std::fprintf(stderr, "bench_scenario: could not write %s\n", opt.json_out.c_str());
      return 1;
    }
    std::fprintf(stderr, "bench_scenario: report written to %s\n", opt.json_out.c_str());
  }
  return 0;
}
