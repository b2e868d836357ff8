// How a Scheduler shares its batch among tenants (pipelines). The engine only
// asks; the resource manager (runtime/resource_manager.h) answers and learns
// from what each step did. Without a policy every request is one tenant's and
// the scheduler is first come, first served.
//
// Calls come from the thread that steps the engine (the device's executor),
// except where noted.
#pragma once

#include <cstdint>
#include <span>

namespace tandem::engine {

// Lower ranks go first. `favored` is set while a tenant is below its guaranteed
// minimum share under contention; it outranks classes so a guarantee holds even
// for a batch pipeline competing with interactive ones.
struct TenantRank {
  bool favored = false;
  int cls = 0;        // 0 interactive, 1 batch
  double vtime = 0;   // cost consumed / weight (weighted fair queueing's virtual time)
  bool operator<(const TenantRank& o) const {
    if (favored != o.favored) return favored;
    if (cls != o.cls) return cls < o.cls;
    return vtime < o.vtime;
  }
};

struct TenantLimits {
  int64_t kv_blocks = INT64_MAX;  // quota of KV blocks in this engine's pool
  int64_t running = INT64_MAX;    // quota of running sequences
  // May the tenant go over its quota while blocks/slots are free and no tenant under its
  // quota waits (work conservation)? false in static mode and at max_share.
  bool may_borrow = true;
};

struct StepUsage {
  int32_t tenant = 0;
  int64_t prefill_tokens = 0;
  int64_t decode_tokens = 0;
  int64_t kv_blocks = 0;  // held after the step
  int64_t running = 0;
  int64_t waiting = 0;
  int64_t waiting_blocks = 0;  // blocks the waiting requests need for their prompts
};

class SharePolicy {
 public:
  virtual ~SharePolicy() = default;
  virtual TenantRank rank(int32_t tenant) const = 0;
  virtual TenantLimits limits(int32_t tenant) const = 0;
  // After each forward step: what every tenant with work did and holds, and how long the
  // step took. `engine` identifies the caller when several engines share a policy.
  virtual void on_step(const void* engine, std::span<const StepUsage> usage, double seconds) = 0;
  // Latency of finished requests, for SLO attainment (any thread may call).
  virtual void on_first_token(int32_t tenant, double ttft_s) = 0;
  virtual void on_finish(int32_t tenant, double ttft_s, double tpot_s, int64_t tokens) = 0;
};

}  // namespace tandem::engine
