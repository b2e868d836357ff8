// One model's serving engine: a Scheduler driven by its own thread, or by a
// device's executor (runtime/executor.h) that interleaves the steps of all the
// engines on that device. Any thread may submit requests; the stepping thread
// moves them into the scheduler between steps and runs steps while there is
// work. Several engines (one per served model) share one ThreadPool, whose
// callers are serialized.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "engine/scheduler.h"

namespace tandem::engine {

// submit() refuses a request because the queue is full or the engine drains.
class Overloaded : public Error {
 public:
  Overloaded(std::string message, bool draining) : Error(std::move(message)), draining_(draining) {}
  bool draining() const { return draining_; }

 private:
  bool draining_;
};

class Engine;

// Runs engines' steps on its own thread (runtime::Executor).
class EngineDriver {
 public:
  virtual ~EngineDriver() = default;
  // An engine has new work. Any thread.
  virtual void wake() = 0;
  // The engine is being destroyed: wait for its step in progress and forget it.
  virtual void detach(Engine* e) = 0;
};

struct EngineOptions {
  SchedulerOptions scheduler;
  int64_t max_waiting = 256;      // queued requests beyond which submit() refuses
  SharePolicy* policy = nullptr;  // tenants' ranks and quotas; outlives the engine
  EngineDriver* driver = nullptr; // null: the engine steps itself on its own thread
};

class Engine {
 public:
  Engine(const models::Model& model, const tokenizer::Tokenizer* tok, EngineOptions opts,
         ThreadPool& pool);
  ~Engine();  // cancels what is left and joins the thread
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Throws tandem::Error for a request that can never run, Overloaded when full or draining.
  std::shared_ptr<Request> submit(RequestOptions o);
  // Refuse new requests from now on (SIGTERM).
  void stop_accepting();
  // Ends every queued and running request (they finish as cancelled).
  void cancel_all();
  // No request queued or running.
  bool idle() const;
  int64_t max_context() const { return max_context_; }
  EngineStats stats() const;
  // The KV pool's block limit from the next step on. Any thread.
  void request_kv_limit(int64_t blocks) { pending_kv_limit_.store(blocks); }
  int64_t kv_block_bytes() const { return kv_block_bytes_; }
  int64_t kv_blocks_max() const { return kv_blocks_max_; }
  // Queued requests of `tenant` beyond which submit() refuses (on top of max_waiting).
  void set_tenant_max_waiting(int32_t tenant, int64_t n);
  // Requests of `tenant` queued (not yet running). Any thread.
  int64_t tenant_waiting(int32_t tenant) const;

  // Driver side (with EngineOptions::driver): one step, after moving submitted requests into
  // the scheduler. Returns false when there was nothing to run. One thread at a time.
  bool run_step();
  // Work is submitted, queued or running. Any thread.
  bool has_work() const;
  // Tenants with requests submitted, queued or running, as of the last step. Any thread.
  std::vector<int32_t> active_tenants() const;

 private:
  void loop();
  void refresh_locked();

  Scheduler sched_;
  EngineDriver* driver_;
  int64_t max_waiting_;
  int64_t max_context_;
  int64_t kv_block_bytes_;
  int64_t kv_blocks_max_;
  std::atomic<int64_t> pending_kv_limit_{-1};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<Request>> inbox_;
  int64_t in_scheduler_ =
      0;  // requests the scheduler holds (running + waiting), as of the last step
  bool accepting_ = true;
  bool stop_ = false;
  bool cancel_all_ = false;
  EngineStats stats_;
  std::map<int32_t, int64_t> tenant_max_waiting_;
  std::map<int32_t, int64_t> tenant_waiting_;  // in the scheduler's queue, as of the last step
  std::map<int32_t, int64_t> tenant_inbox_;    // submitted, not yet in the scheduler
  std::vector<int32_t> active_;
  std::thread thread_;
};

}  // namespace tandem::engine
