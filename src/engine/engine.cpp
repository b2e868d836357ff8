#include "engine/engine.h"

#include <algorithm>

#include "base/log.h"

namespace tandem::engine {

Engine::Engine(const models::Model& model, const tokenizer::Tokenizer* tok, EngineOptions opts,
               ThreadPool& pool)
    : sched_(model, tok, opts.scheduler, pool, opts.policy),
      driver_(opts.driver),
      max_waiting_(opts.max_waiting),
      max_context_(sched_.max_context()),
      kv_block_bytes_(static_cast<int64_t>(sched_.pool().block_bytes())),
      kv_blocks_max_(sched_.pool().capacity()) {
  stats_ = sched_.stats();
  if (driver_ == nullptr) thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  if (driver_ != nullptr) driver_->detach(this);
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& r : inbox_) r->finish(FinishReason::kCancelled, "the engine stopped");
}

std::shared_ptr<Request> Engine::submit(RequestOptions o) {
  sched_.validate(o);  // reads only immutable state
  const int32_t tenant = o.tenant;
  auto r = std::make_shared<Request>(std::move(o));
  {
    std::lock_guard lock(mu_);
    if (!accepting_) throw Overloaded("the server is shutting down", true);
    if (stats_.waiting + static_cast<int64_t>(inbox_.size()) >= max_waiting_) {
      throw Overloaded(
          "too many requests are queued (" + std::to_string(max_waiting_) + "); retry later",
          false);
    }
    auto lim = tenant_max_waiting_.find(tenant);
    if (lim != tenant_max_waiting_.end()) {
      const int64_t queued = tenant_waiting_[tenant] + tenant_inbox_[tenant];
      if (queued >= lim->second) {
        throw Overloaded("too many requests of this pipeline are queued (" +
                             std::to_string(lim->second) + "); retry later",
                         false);
      }
    }
    inbox_.push_back(r);
    ++tenant_inbox_[tenant];
  }
  if (driver_ != nullptr) {
    driver_->wake();
  } else {
    cv_.notify_all();
  }
  return r;
}

void Engine::set_tenant_max_waiting(int32_t tenant, int64_t n) {
  std::lock_guard lock(mu_);
  tenant_max_waiting_[tenant] = n;
}

int64_t Engine::tenant_waiting(int32_t tenant) const {
  std::lock_guard lock(mu_);
  auto a = tenant_waiting_.find(tenant);
  auto b = tenant_inbox_.find(tenant);
  return (a == tenant_waiting_.end() ? 0 : a->second) + (b == tenant_inbox_.end() ? 0 : b->second);
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
  if (driver_ != nullptr) {
    driver_->wake();
  } else {
    cv_.notify_all();
  }
}

bool Engine::idle() const {
  std::lock_guard lock(mu_);
  return inbox_.empty() && in_scheduler_ == 0;
}

bool Engine::has_work() const {
  std::lock_guard lock(mu_);
  return !inbox_.empty() || in_scheduler_ > 0 || cancel_all_;
}

std::vector<int32_t> Engine::active_tenants() const {
  std::lock_guard lock(mu_);
  std::vector<int32_t> out = active_;
  for (const auto& [t, n] : tenant_inbox_) {
    if (n > 0 && std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  }
  return out;
}

EngineStats Engine::stats() const {
  std::lock_guard lock(mu_);
  EngineStats s = stats_;
  s.waiting += static_cast<int64_t>(inbox_.size());
  return s;
}

void Engine::refresh_locked() {
  stats_ = sched_.stats();
  in_scheduler_ = stats_.running + stats_.waiting;
  tenant_waiting_ = sched_.waiting_by_tenant();
  active_ = sched_.active_tenants();
}

bool Engine::run_step() {
  if (const int64_t lim = pending_kv_limit_.exchange(-1); lim >= 0) sched_.set_kv_limit(lim);
  std::vector<std::shared_ptr<Request>> incoming;
  {
    std::lock_guard lock(mu_);
    incoming.swap(inbox_);
    tenant_inbox_.clear();
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
  bool ran = false;
  try {
    ran = sched_.step();
  } catch (const std::exception& e) {
    // A bug, not bad input: report it and keep serving.
    log::error(std::string("engine step failed: ") + e.what());
  }
  std::lock_guard lock(mu_);
  refresh_locked();
  if (!sched_.has_work()) cancel_all_ = false;
  return ran;
}

void Engine::loop() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !inbox_.empty() || sched_.has_work(); });
      if (stop_) return;
    }
    // Nothing could run although work is queued (e.g. every block held): do not spin.
    if (!run_step() && sched_.has_work()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace tandem::engine
