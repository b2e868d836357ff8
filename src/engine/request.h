// A generation request as the engine sees it, and the channel its results come
// back through. The submitter (an HTTP handler thread) and the engine thread
// share one Request: the engine pushes events, the submitter waits for them,
// and either side may end it (the submitter by cancel(), e.g. when the client
// left).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/constraint.h"
#include "engine/sampler.h"

namespace tandem::engine {

struct RequestOptions {
  std::vector<int32_t> prompt;
  int64_t max_tokens = 16;  // generated tokens at most
  SamplingParams sampling;
  std::vector<std::string> stop;  // stop strings; not included in the output
  bool ignore_eos = false;
  int32_t top_logprobs = -1;  // < 0: no logprobs; else alternatives per token (0..20)
  // Tokens allowed next (classify, extract); null: any. Sampling applies to what it allows.
  std::shared_ptr<Constraint> constraint;
  // >= 1: the log-probability of every prompt token from this index on is reported in
  // Output::prompt_logprobs (scoring, e.g. label likelihood). max_tokens may then be 0: the
  // request ends after its prompt is computed.
  int64_t prompt_logprobs_from = -1;
  // Who the request is for (a pipeline's tenant id from the resource manager); 0: the default.
  int32_t tenant = 0;
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0.0f;
};

// One generated token and the text it completed. `text` is what can be shown
// now: stop strings and partial UTF-8 characters are held back.
struct TokenEvent {
  int32_t token = -1;
  std::string text;
  float logprob = 0.0f;           // when logprobs were asked for
  std::vector<TokenLogprob> top;  // top_logprobs alternatives, most likely first
};

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error"

class Request {
 public:
  explicit Request(RequestOptions o) : opts_(std::move(o)) {}
  const RequestOptions& options() const { return opts_; }

  // Any thread. The engine drops the sequence and frees its blocks at its next step.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  struct Output {
    std::vector<TokenEvent> events;  // new since the last take
    bool finished = false;
    FinishReason reason = FinishReason::kNone;
    std::string error;
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
    // With prompt_logprobs_from = f: logprob of prompt[f + i] given what precedes it; filled
    // when the prompt has been computed (complete once finished).
    std::vector<float> prompt_logprobs;
  };
  // Waits until there are new events or the request finished (or the timeout
  // passes), then moves the new events out. Returns out.finished.
  bool wait(std::chrono::milliseconds timeout, Output& out) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !events_.empty() || finished_; });
    out.events.assign(std::make_move_iterator(events_.begin()),
                      std::make_move_iterator(events_.end()));
    events_.clear();
    out.finished = finished_;
    out.reason = reason_;
    out.error = error_;
    out.prompt_tokens = static_cast<int64_t>(opts_.prompt.size());
    out.completion_tokens = completion_tokens_;
    out.prompt_logprobs = prompt_logprobs_;
    return finished_;
  }

  // Engine side.
  void push(TokenEvent e) {
    {
      std::lock_guard lock(mu_);
      ++completion_tokens_;
      events_.push_back(std::move(e));
    }
    cv_.notify_all();
  }
  void set_prompt_logprobs(std::vector<float> lp) {
    std::lock_guard lock(mu_);
    prompt_logprobs_ = std::move(lp);
  }
  void finish(FinishReason r, std::string error = {}) {
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      finished_ = true;
      reason_ = r;
      error_ = std::move(error);
    }
    cv_.notify_all();
  }

 private:
  RequestOptions opts_;
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TokenEvent> events_;
  bool finished_ = false;
  FinishReason reason_ = FinishReason::kNone;
  std::string error_;
  int64_t completion_tokens_ = 0;
  std::vector<float> prompt_logprobs_;
};

// Cumulative histogram with fixed upper bounds (Prometheus style).
struct Histogram {
  std::vector<double> bounds;    // upper bounds, ascending; +Inf is implicit
  std::vector<uint64_t> counts;  // per bound, not cumulative; last = +Inf
  double sum = 0;
  uint64_t count = 0;
  explicit Histogram(std::vector<double> b = {})
      : bounds(std::move(b)), counts(bounds.size() + 1, 0) {}
  void observe(double v) {
    size_t i = 0;
    while (i < bounds.size() && v > bounds[i]) ++i;
    ++counts[i];
    sum += v;
    ++count;
  }
};

// What /metrics shows about one engine; copied out under a lock.
struct EngineStats {
  int64_t running = 0;
  int64_t waiting = 0;
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_cached = 0;
  uint64_t prefix_blocks_queried = 0;  // full prompt blocks looked up in the prefix cache
  uint64_t prefix_blocks_hit = 0;
  uint64_t prompt_tokens = 0;     // tokens in (of admitted requests)
  uint64_t generated_tokens = 0;  // tokens out
  uint64_t preemptions = 0;
  uint64_t steps = 0;
  Histogram ttft{{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}};
  Histogram itl{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}};
};

}  // namespace tandem::engine
