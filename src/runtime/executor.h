// One executor per device: a thread that runs one batch step at a time for
// the engines placed on the device. Between steps it picks the engine whose
// best waiting-or-running tenant ranks first (SharePolicy::rank: guarantee,
// class, virtual time), so several models on one CPU take turns by their
// pipelines' priorities and weights instead of racing for the cores.
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "engine/share_policy.h"

namespace tandem::runtime {

class Executor : public engine::EngineDriver {
 public:
  // `policy` (may be null: engines take turns) outlives the executor.
  Executor(std::string device, const engine::SharePolicy* policy);
  ~Executor() override;  // stops the thread; engines detach themselves when destroyed first
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // The engine must have been built with EngineOptions::driver = this.
  void add(engine::Engine* e);
  // Waits for a step of `e` in progress, then forgets it.
  void remove(engine::Engine* e);
  void wake() override;
  void detach(engine::Engine* e) override { remove(e); }
  const std::string& device() const { return device_; }
  uint64_t steps() const;

 private:
  void loop();
  engine::Engine* pick_locked();

  std::string device_;
  const engine::SharePolicy* policy_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::mutex step_mu_;  // held while an engine steps
  std::vector<engine::Engine*> engines_;
  size_t rr_ = 0;
  bool woken_ = false;
  bool stop_ = false;
  uint64_t steps_ = 0;
  std::thread thread_;
};

}  // namespace tandem::runtime
