#include "engine/engine.h"

#include "base/log.h"

namespace tandem::engine {

Engine::Engine(const models::Model& model, const tokenizer::Tokenizer* tok, EngineOptions opts,
               ThreadPool& pool)
    : sched_(model, tok, opts.scheduler, pool),
      max_waiting_(opts.max_waiting),
      max_context_(sched_.max_context()) {
  stats_ = sched_.stats();
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (auto& r : inbox_) r->finish(FinishReason::kCancelled, "the engine stopped");
}

std::shared_ptr<Request> Engine::submit(RequestOptions o) {
  sched_.validate(o);  // reads only immutable state
  auto r = std::make_shared<Request>(std::move(o));
  {
    std::lock_guard lock(mu_);
    if (!accepting_) throw Overloaded("the server is shutting down", true);
    if (stats_.waiting + static_cast<int64_t>(inbox_.size()) >= max_waiting_) {
      throw Overloaded(
          "too many requests are queued (" + std::to_string(max_waiting_) + "); retry later",
          false);
    }
    inbox_.push_back(r);
  }
  cv_.notify_all();
  return r;
}

void Engine::stop_accepting() {
  std::lock_guard lock(mu_);
  accepting_ = false;
}

void Engine::cancel_all() {
  {
    std::lock_guard lock(mu_);
    cancel_all_ = true;
  }
  cv_.notify_all();
}

bool Engine::idle() const {
  std::lock_guard lock(mu_);
  return inbox_.empty() && in_scheduler_ == 0;
}

EngineStats Engine::stats() const {
  std::lock_guard lock(mu_);
  EngineStats s = stats_;
  s.waiting += static_cast<int64_t>(inbox_.size());
  return s;
}

void Engine::loop() {
  for (;;) {
    std::vector<std::shared_ptr<Request>> incoming;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !inbox_.empty() || sched_.has_work(); });
      if (stop_) return;
      incoming.swap(inbox_);
      if (cancel_all_) {
        for (auto& r : incoming) r->cancel();
        sched_.cancel_all();
      }
    }
    for (auto& r : incoming) {
      try {
        sched_.add(r);
      } catch (const std::exception& e) {
        r->finish(FinishReason::kError, e.what());
      }
    }
    try {
      // Nothing could run although work is queued (e.g. every block held): do not spin.
      if (!sched_.step() && sched_.has_work())
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    } catch (const std::exception& e) {
      // A bug, not bad input: report it and keep serving.
      log::error(std::string("engine step failed: ") + e.what());
    }
    {
      std::lock_guard lock(mu_);
      stats_ = sched_.stats();
      in_scheduler_ = stats_.running + stats_.waiting;
    }
  }
}

}  // namespace tandem::engine
