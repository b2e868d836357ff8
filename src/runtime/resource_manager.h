// The resource manager: shares each device among the pipelines (tenants) that
// use it, in proportion to their load relative to each other.
//
//  * Order. Engines ask rank(): interactive before batch, then weighted fair
//    share (start-time fair queueing): every tenant has a virtual time that
//    grows by the device time its tokens cost divided by its weight; the
//    lowest goes first. A tenant that was idle rejoins at the lowest virtual
//    time among the busy ones, so idleness earns no credit and costs nothing
//    (work-conserving). A tenant below its min_share of the device over the
//    last seconds is favored above both rules while others compete.
//  * Cost. A step's device time is split among its tenants by tokens; that is
//    the unit of both virtual time and the reported share of the device.
//  * KV quotas. Each engine's KV pool (and its running slots) is divided into
//    quotas. Adaptive mode moves every quota toward measured demand each
//    control period: demand = blocks held + blocks the queued requests need,
//    raised by the fraction of recent requests that missed their SLO;
//    capacity is water-filled with min_share floors first, then interactive
//    demand, then batch demand, by weight within a class, up to max_share
//    caps. Quotas are soft: a tenant may borrow free blocks while nobody
//    under quota waits (borrowed ones are what preemption takes back). Static
//    mode is the baseline to compare with: equal fixed partitions, no
//    borrowing, no adaptation.
//  * Accounting. TTFT, TPOT, SLO attainment, tokens/s and share per tenant
//    over a sliding window, for GET /v1/pipelines and /metrics.
// Thread-safe: engines call it from executor threads, the server reads reports.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "engine/share_policy.h"

namespace tandem::runtime {

enum class ShareMode { kAdaptive, kStatic };
const char* share_mode_name(ShareMode m);

struct ManagerOptions {
  ShareMode mode = ShareMode::kAdaptive;
  double control_period_s = 0.1;
  double window_s = 10;       // reports: shares, percentiles, attainment, tokens/s
  double min_share_window_s = 2;  // how far back a min_share guarantee is checked
};

struct TenantSpec {
  std::string name;
  int cls = 0;  // 0 interactive, 1 batch
  double weight = 1;
  double min_share = 0, max_share = 1;
  double ttft_ms = 0, tpot_ms = 0;  // 0: no target
  std::string device = "cpu";
  const void* engine = nullptr;  // the engine (scheduler) its requests run on
  // A model's own requests (not a pipeline's): static partitions are divided among the
  // pipelines of the engine, and this tenant gets one partition's size beside them.
  bool fallback = false;
};

struct TenantReport {
  int32_t id = 0;
  std::string name;
  std::string cls;  // "interactive" | "batch"
  double weight = 1, min_share = 0, max_share = 1;
  std::string device;
  double share = 0;  // of the device's busy time over the window
  int64_t waiting = 0, running = 0;
  int64_t kv_quota = 0, kv_used = 0, running_quota = 0;
  int64_t kv_pool_blocks = 0;  // the engine's KV pool now (its part of the device's KV memory)
  double ttft_p50_ms = 0, ttft_p95_ms = 0, tpot_p50_ms = 0, tpot_p95_ms = 0;
  double slo_attainment = 1;  // fraction of finished requests in the window meeting the targets
  double tokens_per_s = 0;    // tokens computed (prompt + generated) over the window
  double generated_per_s = 0;
  uint64_t requests_finished = 0, tokens_total = 0;
  double device_seconds = 0;  // total cost charged
};

class ResourceManager : public engine::SharePolicy {
 public:
  using Clock = std::chrono::steady_clock;
  explicit ResourceManager(ManagerOptions o = {});
  ~ResourceManager() override;

  // Registers a tenant; returns its id (>= 1). Before its engine runs.
  int32_t add_tenant(const TenantSpec& t);
  // The engine's KV pool and running slots, to divide into quotas.
  void set_engine_capacity(const void* engine, int64_t kv_blocks, int64_t max_running);
  // Makes the engine's KV pool part of its device's one pool of KV memory: the device's
  // budget is the sum of its engines' starting pools (kv_blocks x block_bytes, as given to
  // set_engine_capacity); adaptive mode moves it between the engines toward their demand,
  // keeping each between `min_blocks` (a whole context, so every valid request still fits)
  // and `max_blocks`, and calls `apply(blocks)` with each engine's new pool limit.
  void set_engine_kv_memory(const void* engine, const std::string& device, int64_t block_bytes,
                            int64_t min_blocks, int64_t max_blocks,
                            std::function<void(int64_t)> apply);
  ShareMode mode() const { return opts_.mode; }

  // engine::SharePolicy
  engine::TenantRank rank(int32_t tenant) const override;
  engine::TenantLimits limits(int32_t tenant) const override;
  void on_step(const void* engine, std::span<const engine::StepUsage> usage,
               double seconds) override;
  void on_first_token(int32_t tenant, double ttft_s) override;
  void on_finish(int32_t tenant, double ttft_s, double tpot_s, int64_t tokens) override;

  std::vector<TenantReport> report() const;
  // Re-divides quotas now (tests; otherwise each control period from on_step).
  void control_now();

 private:
  struct Tenant;
  struct EngineCap {
    int64_t kv_blocks = 0, max_running = 0;
    // Device KV memory (set_engine_kv_memory); block_bytes 0: a pool of its own.
    std::string device = "cpu";
    int64_t block_bytes = 0, start_blocks = 0, min_blocks = 0, max_blocks = 0;
    double limit = 0;  // smoothed
    std::function<void(int64_t)> apply;
  };
  void move_kv_memory_locked();
  void control_locked(Clock::time_point now);
  void trim_locked(Tenant& t, Clock::time_point now) const;
  double window_share_locked(const Tenant& t, Clock::time_point now, double window) const;
  engine::TenantLimits limits_locked(const Tenant& t) const;
  Tenant* find_locked(int32_t id);
  const Tenant* find_locked(int32_t id) const;

  ManagerOptions opts_;
  mutable std::mutex mu_;
  std::vector<Tenant*> order_;
  std::map<int32_t, std::unique_ptr<Tenant>> tenants_;
  std::map<const void*, EngineCap> engines_;
  // Busy time per device over the window: (end of step, seconds).
  mutable std::map<std::string, std::deque<std::pair<Clock::time_point, double>>> busy_;
  Clock::time_point last_control_;
  int32_t next_id_ = 1;
};

}  // namespace tandem::runtime
