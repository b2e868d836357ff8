// One model's serving engine: a Scheduler driven by its own thread. Any
// thread may submit requests; the engine thread moves them into the scheduler
// between steps and runs steps while there is work. Several engines (one per
// served model) share one ThreadPool, whose callers are serialized.
#pragma once

#include <atomic>
#include <condition_variable>
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

struct EngineOptions {
  SchedulerOptions scheduler;
  int64_t max_waiting = 256;  // queued requests beyond which submit() refuses
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

 private:
  void loop();

  Scheduler sched_;
  int64_t max_waiting_;
  int64_t max_context_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<Request>> inbox_;
  int64_t in_scheduler_ =
      0;  // requests the scheduler holds (running + waiting), as of the last step
  bool accepting_ = true;
  bool stop_ = false;
  bool cancel_all_ = false;
  EngineStats stats_;
  std::thread thread_;
};

}  // namespace tandem::engine
