#include "runtime/executor.h"

#include <algorithm>
#include <chrono>

namespace tandem::runtime {

Executor::Executor(std::string device, const engine::SharePolicy* policy)
    : device_(std::move(device)), policy_(policy) {
  thread_ = std::thread([this] { loop(); });
}

Executor::~Executor() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Executor::add(engine::Engine* e) {
  {
    std::lock_guard lock(mu_);
    engines_.push_back(e);
    woken_ = true;
  }
  cv_.notify_all();
}

void Executor::remove(engine::Engine* e) {
  std::lock_guard step(step_mu_);
  std::lock_guard lock(mu_);
  std::erase(engines_, e);
}

void Executor::wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

uint64_t Executor::steps() const {
  std::lock_guard lock(mu_);
  return steps_;
}

engine::Engine* Executor::pick_locked() {
  engine::Engine* best = nullptr;
  engine::TenantRank best_rank;
  const size_t n = engines_.size();
  // Round robin among equals: start after the engine that ran last.
  for (size_t k = 0; k < n; ++k) {
    engine::Engine* e = engines_[(rr_ + 1 + k) % n];
    if (!e->has_work()) continue;
    engine::TenantRank r;
    bool first = true;
    if (policy_ != nullptr) {
      for (int32_t t : e->active_tenants()) {
        const engine::TenantRank x = policy_->rank(t);
        if (first || x < r) r = x;
        first = false;
      }
    }
    if (best == nullptr || r < best_rank) {
      best = e;
      best_rank = r;
      rr_ = (rr_ + 1 + k) % n;
    }
  }
  return best;
}

void Executor::loop() {
  int idle_spins = 0;
  for (;;) {
    engine::Engine* e = nullptr;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] {
        if (stop_ || woken_) return true;
        return std::any_of(engines_.begin(), engines_.end(),
                           [](engine::Engine* x) { return x->has_work(); });
      });
      if (stop_) return;
      woken_ = false;
      e = pick_locked();
    }
    if (e == nullptr) continue;
    bool ran = false;
    {
      std::lock_guard step(step_mu_);
      // remove() may have taken it out while we waited for the step lock.
      bool present;
      {
        std::lock_guard lock(mu_);
        present = std::find(engines_.begin(), engines_.end(), e) != engines_.end();
      }
      if (present) ran = e->run_step();
    }
    if (ran) {
      idle_spins = 0;
      std::lock_guard lock(mu_);
      ++steps_;
    } else if (++idle_spins > 1) {
      // Work queued that cannot run yet (e.g. every block held): do not spin.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

}  // namespace tandem::runtime
