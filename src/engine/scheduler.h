// Continuous batching for one model. Every step() builds one forward batch
// from the running sequences and newly admitted ones, class by class
// (interactive, then batch; SharePolicy gives each request's tenant a class,
// a virtual time and quotas; without a policy everything is one class):
//   1. sequences whose request was cancelled leave and free their blocks;
//   2. running sequences of the class that decode get one token each, oldest
//      first, then those still prefilling get a chunk of their prompt;
//   3. waiting requests of the class are admitted in rank order (guaranteed
//      minimum share first, then lowest virtual time, then arrival) while the
//      step's token budget (max_batch_tokens), max_running and the tenant's
//      quota allow. A tenant over its quota may borrow free slots and blocks
//      only when no tenant under its quota waits (work conservation). Prefill
//      is chunked, so a long prompt never stalls others for more than a step.
//      While an interactive prompt is computed the step holds interactive
//      work only; while interactive sequences decode, batch work gets at most
//      batch_tokens_beside_interactive tokens of the step;
//   4. when blocks or slots run out, the lowest-ranked running sequence (a
//      lower class, else the newest) is preempted, and a tenant under its quota
//      takes back what another of its class borrowed beyond its own (that
//      one's newest sequence is preempted): its blocks are freed and it
//      is queued again, to be recomputed from its prompt and the tokens it
//      already produced (its published blocks usually are still cached, so
//      little is recomputed). No request is dropped;
//   5. after the forward pass, prompt tokens whose log-probabilities were asked
//      for are scored, and every sequence that finished its pending tokens
//      samples one (through its Constraint, if any) and stops on eos, a stop
//      string, a complete constraint, max_tokens or the context.
// A new sequence first looks up the full blocks of its prompt in the pool's
// prefix index and adopts every hit; full blocks are published as they fill.
// Single-threaded: Engine (engine.h) runs it on its own thread or a device's
// executor (runtime/executor.h) does.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "engine/request.h"
#include "engine/sampler.h"
#include "engine/share_policy.h"
#include "models/kv_cache.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace tandem::engine {

struct SchedulerOptions {
  int64_t max_batch_tokens = 256;  // tokens per forward step, prefill chunks included
  int64_t max_running = 64;        // sequences in the running batch
  int64_t kv_blocks = 0;           // pool size; 0: enough for 8 full contexts
  // The pool may grow to this many times its starting size when the resource manager moves
  // the device's KV memory to this engine (set_kv_limit); storage is only allocated for
  // blocks in use.
  int64_t kv_growth = 1;
  int64_t block_size = models::KvBlockPool::kDefaultBlockSize;
  int64_t max_context = 0;  // 0: the model's max_position_embeddings
  bool prefix_caching = true;
  // While interactive sequences run (and for 2 s after interactive and batch work last met),
  // batch-class work gets at most this many tokens of a step: interactive time per output
  // token stays low and an interactive arrival waits for a short step. While an interactive
  // prompt is being computed, the step holds interactive work only.
  int64_t batch_tokens_beside_interactive = 64;
};

class Scheduler {
 public:
  // `tok` may be null: then no text is produced (ids and logprobs only) and stop strings are not
  // checked.
  // `policy` (may be null: one tenant, first come first served) must outlive the scheduler.
  Scheduler(const models::Model& model, const tokenizer::Tokenizer* tok, SchedulerOptions opts,
            ThreadPool& pool, SharePolicy* policy = nullptr);
  ~Scheduler();

  // Throws tandem::Error when the request can never run (empty prompt, an id
  // outside the vocabulary, a prompt that leaves no room in the context or the pool).
  void validate(const RequestOptions& o) const;
  void add(std::shared_ptr<Request> r);
  // Marks every request cancelled; the next step() ends them.
  void cancel_all();
  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  // One batch step. Returns false when there was nothing to run.
  bool step();

  int64_t max_context() const { return max_context_; }
  // Blocks the pool may hold from now on (between kv_blocks' floor of 0 and the pool's
  // capacity); storage above it is freed as soon as nobody holds it.
  void set_kv_limit(int64_t blocks);
  // Queued requests per tenant; tenants with queued or running requests.
  std::map<int32_t, int64_t> waiting_by_tenant() const;
  std::vector<int32_t> active_tenants() const;
  const models::KvBlockPool& pool() const { return *pool_; }
  const EngineStats& stats() const { return stats_; }
  const SchedulerOptions& options() const { return opts_; }
  // Tokens of the last step's batch (for tests of the budget).
  int64_t last_step_tokens() const { return last_step_tokens_; }

 private:
  struct Sequence;
  void finish(Sequence& s, FinishReason r, std::string error = {});
  void preempt(Sequence& s);
  void match_prefix(Sequence& s);
  void publish_full_blocks(Sequence& s);
  void on_token(Sequence& s, const float* logits);
  void score_prompt(Sequence& s, int64_t start, int64_t n, const float* logits);
  void refresh_stats();

  const models::Model& model_;
  const tokenizer::Tokenizer* tok_;
  SchedulerOptions opts_;
  ThreadPool& threads_;
  SharePolicy* policy_ = nullptr;
  int64_t max_context_ = 0;
  std::vector<int32_t> eos_;
  std::shared_ptr<models::KvBlockPool> pool_;
  models::Workspace ws_;
  std::vector<std::unique_ptr<Sequence>> running_;  // arrival order
  std::deque<std::unique_ptr<Sequence>> waiting_;   // preempted ones at the front
  uint64_t next_arrival_ = 0;
  std::vector<float> logits_;
  EngineStats stats_;
  int64_t last_step_tokens_ = 0;
  // Last step with interactive and batch work side by side.
  std::chrono::steady_clock::time_point last_interactive_{};
};

}  // namespace tandem::engine
