#include "runtime/resource_manager.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/error.h"

namespace tandem::runtime {

const char* share_mode_name(ShareMode m) { return m == ShareMode::kStatic ? "static" : "adaptive"; }

struct ResourceManager::Tenant {
  int32_t id = 0;
  TenantSpec spec;
  double vtime = 0;
  bool active = false;
  int64_t waiting = 0, running = 0, kv_used = 0, waiting_blocks = 0;
  double kv_quota = 0, running_quota = 0;  // adaptive quotas, smoothed
  struct Cost {
    Clock::time_point at;
    double seconds;
    int64_t tokens, generated;
  };
  struct Done {
    Clock::time_point at;
    double ttft, tpot;
    bool met;
  };
  std::deque<Cost> costs;
  std::deque<Done> done;
  uint64_t finished = 0, tokens_total = 0;
  double device_seconds = 0;

  bool meets(double ttft_s, double tpot_s) const {
    return (spec.ttft_ms <= 0 || ttft_s * 1e3 <= spec.ttft_ms) &&
           (spec.tpot_ms <= 0 || tpot_s * 1e3 <= spec.tpot_ms);
  }
};

namespace {

struct Claim {
  double demand, weight, floor, cap;
  bool active;
  int cls;  // demands of class 0 are met before those of class 1
};

// Divides `capacity` among claims: floors first, then demand class by class, by weight within
// a class, none above its demand or cap; what nobody demands goes to the active claims by
// weight, up to their caps.
std::vector<double> water_fill(double capacity, const std::vector<Claim>& c) {
  const size_t n = c.size();
  std::vector<double> a(n, 0.0), d(n);
  for (size_t i = 0; i < n; ++i) {
    d[i] = std::min(c[i].demand, c[i].cap);
    a[i] = std::min(c[i].floor, d[i]);
  }
  auto fill = [&](const std::vector<double>& limit, int cls) {
    for (int round = 0; round < 32; ++round) {
      double left = capacity;
      for (double x : a) left -= x;
      double wsum = 0;
      auto takes = [&](size_t i) { return (cls < 0 || c[i].cls == cls) && a[i] < limit[i] - 1e-9; };
      for (size_t i = 0; i < n; ++i) wsum += takes(i) ? c[i].weight : 0.0;
      if (left <= 1e-9 || wsum <= 0) return;
      for (size_t i = 0; i < n; ++i) {
        if (takes(i)) a[i] = std::min(limit[i], a[i] + left * c[i].weight / wsum);
      }
    }
  };
  fill(d, 0);
  fill(d, 1);
  std::vector<double> caps(n);
  for (size_t i = 0; i < n; ++i) caps[i] = c[i].active ? c[i].cap : a[i];
  fill(caps, -1);
  return a;
}

}  // namespace

ResourceManager::ResourceManager(ManagerOptions o) : opts_(o), last_control_(Clock::now()) {
  if (!(opts_.control_period_s > 0)) throw Error("control period must be positive");
  if (!(opts_.window_s > 0)) throw Error("window must be positive");
}

ResourceManager::~ResourceManager() = default;

int32_t ResourceManager::add_tenant(const TenantSpec& spec) {
  if (!(spec.weight > 0)) throw Error("tenant '" + spec.name + "': weight must be positive");
  if (spec.min_share < 0 || spec.max_share > 1 || spec.min_share > spec.max_share) {
    throw Error("tenant '" + spec.name + "': need 0 <= min_share <= max_share <= 1");
  }
  std::lock_guard lock(mu_);
  auto t = std::make_unique<Tenant>();
  t->id = next_id_++;
  t->spec = spec;
  order_.push_back(t.get());
  const int32_t id = t->id;
  tenants_.emplace(id, std::move(t));
  // Start from an equal split of each engine's capacity.
  for (auto& [e, cap] : engines_) {
    (void)cap;
    int n = 0;
    for (Tenant* x : order_) n += x->spec.engine == e ? 1 : 0;
    for (Tenant* x : order_) {
      if (x->spec.engine != e) continue;
      x->kv_quota = static_cast<double>(engines_[e].kv_blocks) / n;
      x->running_quota = static_cast<double>(engines_[e].max_running) / n;
    }
  }
  return id;
}

void ResourceManager::set_engine_capacity(const void* engine, int64_t kv_blocks,
                                          int64_t max_running) {
  std::lock_guard lock(mu_);
  engines_[engine] = {kv_blocks, max_running};
  int n = 0;
  for (Tenant* x : order_) n += x->spec.engine == engine ? 1 : 0;
  for (Tenant* x : order_) {
    if (x->spec.engine != engine) continue;
    x->kv_quota = static_cast<double>(kv_blocks) / n;
    x->running_quota = static_cast<double>(max_running) / n;
  }
}

void ResourceManager::set_engine_kv_memory(const void* engine, const std::string& device,
                                           int64_t block_bytes, int64_t min_blocks,
                                           int64_t max_blocks, std::function<void(int64_t)> apply) {
  std::lock_guard lock(mu_);
  EngineCap& c = engines_[engine];
  c.device = device;
  c.block_bytes = block_bytes;
  c.start_blocks = c.kv_blocks;
  c.min_blocks = std::min(min_blocks, c.kv_blocks);
  c.max_blocks = std::max(max_blocks, c.kv_blocks);
  c.limit = static_cast<double>(c.kv_blocks);
  c.apply = std::move(apply);
}

void ResourceManager::move_kv_memory_locked() {
  std::map<std::string, std::vector<std::pair<const void*, EngineCap*>>> by_device;
  for (auto& [e, c] : engines_) {
    if (c.block_bytes > 0 && c.apply) by_device[c.device].emplace_back(e, &c);
  }
  for (auto& [device, engines] : by_device) {
    if (engines.size() < 2) continue;
    double budget = 0;
    std::vector<Claim> claims;
    for (auto& [e, c] : engines) {
      budget += static_cast<double>(c->start_blocks * c->block_bytes);
      double demand = 0;
      bool active = false;
      int cls = 1;
      for (const Tenant* t : order_) {
        if (t->spec.engine != e) continue;
        double miss = 0;
        if (!t->done.empty() && (t->spec.ttft_ms > 0 || t->spec.tpot_ms > 0)) {
          int64_t missed = 0;
          for (const auto& d : t->done) missed += d.met ? 0 : 1;
          miss = static_cast<double>(missed) / static_cast<double>(t->done.size());
        }
        demand += static_cast<double>(t->kv_used + t->waiting_blocks) * (1.0 + miss);
        if (t->waiting + t->running > 0) {
          active = true;
          cls = std::min(cls, t->spec.cls);
        }
      }
      const double bb = static_cast<double>(c->block_bytes);
      // Every engine keeps its floor (a whole context) whatever its demand.
      demand = std::max(demand, static_cast<double>(c->min_blocks));
      claims.push_back({demand * bb, 1.0, static_cast<double>(c->min_blocks) * bb,
                        static_cast<double>(c->max_blocks) * bb, active, cls});
    }
    bool any_active = false;
    for (const auto& c : claims) any_active = any_active || c.active;
    if (!any_active) continue;
    const auto bytes = water_fill(budget, claims);
    for (size_t i = 0; i < engines.size(); ++i) {
      EngineCap& c = *engines[i].second;
      const double target = bytes[i] / static_cast<double>(c.block_bytes);
      c.limit += 0.5 * (target - c.limit);
      const auto blocks = std::clamp<int64_t>(static_cast<int64_t>(c.limit), c.min_blocks, c.max_blocks);
      if (blocks != c.kv_blocks) {
        c.kv_blocks = blocks;  // tenants' quotas divide the new pool
        c.apply(blocks);
      }
    }
  }
}

ResourceManager::Tenant* ResourceManager::find_locked(int32_t id) {
  auto it = tenants_.find(id);
  return it == tenants_.end() ? nullptr : it->second.get();
}
const ResourceManager::Tenant* ResourceManager::find_locked(int32_t id) const {
  auto it = tenants_.find(id);
  return it == tenants_.end() ? nullptr : it->second.get();
}

double ResourceManager::window_share_locked(const Tenant& t, Clock::time_point now,
                                            double window) const {
  const auto from = now - std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(window));
  double mine = 0, all = 0;
  for (auto it = t.costs.rbegin(); it != t.costs.rend() && it->at >= from; ++it) mine += it->seconds;
  auto b = busy_.find(t.spec.device);
  if (b != busy_.end()) {
    for (auto it = b->second.rbegin(); it != b->second.rend() && it->first >= from; ++it)
      all += it->second;
  }
  return all > 0 ? mine / all : 0.0;
}

engine::TenantRank ResourceManager::rank(int32_t id) const {
  std::lock_guard lock(mu_);
  engine::TenantRank r;
  const Tenant* t = find_locked(id);
  if (t == nullptr) return r;
  r.cls = t->spec.cls;
  r.vtime = t->vtime;
  // Others busy on the same device: an idle tenant rejoins at their lowest virtual time.
  double floor = std::numeric_limits<double>::infinity();
  bool contended = false;
  for (const Tenant* o : order_) {
    if (o == t || !o->active || o->spec.device != t->spec.device) continue;
    floor = std::min(floor, o->vtime);
    contended = true;
  }
  if (!t->active && contended) r.vtime = std::max(r.vtime, floor);
  if (t->spec.min_share > 0 && contended) {
    r.favored = window_share_locked(*t, Clock::now(), opts_.min_share_window_s) < t->spec.min_share;
  }
  return r;
}

engine::TenantLimits ResourceManager::limits(int32_t id) const {
  std::lock_guard lock(mu_);
  const Tenant* t = find_locked(id);
  return t == nullptr ? engine::TenantLimits{} : limits_locked(*t);
}

engine::TenantLimits ResourceManager::limits_locked(const Tenant& tr) const {
  const Tenant* t = &tr;
  engine::TenantLimits l;
  auto e = engines_.find(t->spec.engine);
  if (e == engines_.end()) return l;
  if (opts_.mode == ShareMode::kStatic) {
    int n = 0;
    for (const Tenant* x : order_) n += x->spec.engine == t->spec.engine && !x->spec.fallback ? 1 : 0;
    n = std::max(n, 1);
    // Never below one whole context: a long request must fit in its partition.
    l.kv_blocks = std::max<int64_t>({1, e->second.kv_blocks / n, e->second.min_blocks});
    l.running = std::max<int64_t>(1, e->second.max_running / n);
    l.may_borrow = false;
    return l;
  }
  l.kv_blocks = std::max<int64_t>(
      {1, static_cast<int64_t>(std::lround(t->kv_quota)), e->second.min_blocks});
  l.running = std::max<int64_t>(1, static_cast<int64_t>(std::lround(t->running_quota)));
  l.may_borrow = t->spec.max_share >= 1.0;
  return l;
}

void ResourceManager::trim_locked(Tenant& t, Clock::time_point now) const {
  const auto from = now - std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opts_.window_s));
  while (!t.costs.empty() && t.costs.front().at < from) t.costs.pop_front();
  while (!t.done.empty() && t.done.front().at < from) t.done.pop_front();
}

void ResourceManager::on_step(const void* engine, std::span<const engine::StepUsage> usage,
                              double seconds) {
  const auto now = Clock::now();
  std::lock_guard lock(mu_);
  int64_t total = 0;
  for (const auto& u : usage) total += u.prefill_tokens + u.decode_tokens;
  const double per_token = total > 0 ? seconds / static_cast<double>(total) : 0.0;
  std::string device = "cpu";
  // Tenants of this engine without usage have no work in it now.
  for (Tenant* t : order_) {
    if (t->spec.engine != engine) continue;
    device = t->spec.device;
    t->waiting = t->running = t->kv_used = t->waiting_blocks = 0;
  }
  double floor = std::numeric_limits<double>::infinity();
  for (const Tenant* o : order_) {
    if (o->active && o->spec.device == device) floor = std::min(floor, o->vtime);
  }
  std::vector<Tenant*> touched;
  for (const auto& u : usage) {
    Tenant* t = find_locked(u.tenant);
    if (t == nullptr) continue;
    t->waiting = u.waiting;
    t->running = u.running;
    t->kv_used = u.kv_blocks;
    t->waiting_blocks = u.waiting_blocks;
    const bool busy = u.waiting + u.running > 0 || u.prefill_tokens + u.decode_tokens > 0;
    if (busy && !t->active && std::isfinite(floor)) t->vtime = std::max(t->vtime, floor);
    const int64_t tok = u.prefill_tokens + u.decode_tokens;
    if (tok > 0) {
      const double cost = per_token * static_cast<double>(tok);
      t->vtime += cost / t->spec.weight;
      t->device_seconds += cost;
      t->tokens_total += static_cast<uint64_t>(tok);
      t->costs.push_back({now, cost, tok, u.decode_tokens});
    }
    touched.push_back(t);
  }
  for (Tenant* t : order_) {
    if (t->spec.engine != engine) continue;
    t->active = t->waiting + t->running > 0;
    trim_locked(*t, now);
  }
  auto& b = busy_[device];
  b.emplace_back(now, seconds);
  const auto from = now - std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opts_.window_s));
  while (!b.empty() && b.front().first < from) b.pop_front();
  if (std::chrono::duration<double>(now - last_control_).count() >= opts_.control_period_s) {
    control_locked(now);
  }
}

void ResourceManager::on_first_token(int32_t, double) {}

void ResourceManager::on_finish(int32_t id, double ttft_s, double tpot_s, int64_t) {
  const auto now = Clock::now();
  std::lock_guard lock(mu_);
  Tenant* t = find_locked(id);
  if (t == nullptr) return;
  t->done.push_back({now, ttft_s, tpot_s, t->meets(ttft_s, tpot_s)});
  ++t->finished;
}


void ResourceManager::control_now() {
  std::lock_guard lock(mu_);
  control_locked(Clock::now());
}

void ResourceManager::control_locked(Clock::time_point now) {
  last_control_ = now;
  if (opts_.mode == ShareMode::kStatic) return;
  move_kv_memory_locked();
  for (auto& [engine, cap] : engines_) {
    std::vector<Tenant*> ts;
    for (Tenant* t : order_) {
      if (t->spec.engine == engine) ts.push_back(t);
    }
    if (ts.empty()) continue;
    std::vector<Claim> kv, slots;
    for (Tenant* t : ts) {
      // SLO misses raise the claim: a tenant missing its targets needs more than it holds.
      double miss = 0;
      if (!t->done.empty() && (t->spec.ttft_ms > 0 || t->spec.tpot_ms > 0)) {
        int64_t missed = 0;
        for (const auto& d : t->done) missed += d.met ? 0 : 1;
        miss = static_cast<double>(missed) / static_cast<double>(t->done.size());
      }
      const double boost = 1.0 + miss;
      const bool active = t->waiting + t->running > 0;
      kv.push_back({static_cast<double>(t->kv_used + t->waiting_blocks) * boost, t->spec.weight,
                    t->spec.min_share * static_cast<double>(cap.kv_blocks),
                    t->spec.max_share * static_cast<double>(cap.kv_blocks), active, t->spec.cls});
      slots.push_back({static_cast<double>(t->running + t->waiting) * boost, t->spec.weight,
                       t->spec.min_share * static_cast<double>(cap.max_running),
                       t->spec.max_share * static_cast<double>(cap.max_running), active,
                       t->spec.cls});
    }
    bool any_active = false;
    for (const auto& c : kv) any_active = any_active || c.active;
    if (!any_active) continue;  // nothing measured: keep the quotas
    const auto kv_target = water_fill(static_cast<double>(cap.kv_blocks), kv);
    const auto slot_target = water_fill(static_cast<double>(cap.max_running), slots);
    constexpr double kAlpha = 0.5;  // move halfway each period: fast, without flapping
    for (size_t i = 0; i < ts.size(); ++i) {
      ts[i]->kv_quota += kAlpha * (kv_target[i] - ts[i]->kv_quota);
      ts[i]->running_quota += kAlpha * (slot_target[i] - ts[i]->running_quota);
    }
  }
}

std::vector<TenantReport> ResourceManager::report() const {
  const auto now = Clock::now();
  std::lock_guard lock(mu_);
  std::vector<TenantReport> out;
  for (const Tenant* t : order_) {
    TenantReport r;
    r.id = t->id;
    r.name = t->spec.name;
    r.cls = t->spec.cls == 0 ? "interactive" : "batch";
    r.weight = t->spec.weight;
    r.min_share = t->spec.min_share;
    r.max_share = t->spec.max_share;
    r.device = t->spec.device;
    r.share = window_share_locked(*t, now, opts_.window_s);
    r.waiting = t->waiting;
    r.running = t->running;
    r.kv_used = t->kv_used;
    const engine::TenantLimits l = limits_locked(*t);
    r.kv_quota = l.kv_blocks == INT64_MAX ? 0 : l.kv_blocks;
    if (auto e = engines_.find(t->spec.engine); e != engines_.end()) r.kv_pool_blocks = e->second.kv_blocks;
    r.running_quota = l.running == INT64_MAX ? 0 : l.running;
    const auto from = now - std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opts_.window_s));
    std::vector<double> ttft, tpot;
    int64_t met = 0;
    for (const auto& d : t->done) {
      if (d.at < from) continue;
      ttft.push_back(d.ttft * 1e3);
      tpot.push_back(d.tpot * 1e3);
      met += d.met ? 1 : 0;
    }
    auto pct = [](std::vector<double>& v, double p) {
      if (v.empty()) return 0.0;
      std::sort(v.begin(), v.end());
      const size_t i = std::min(v.size() - 1, static_cast<size_t>(std::ceil(p * static_cast<double>(v.size()))) - (p > 0 ? 1 : 0));
      return v[i];
    };
    r.ttft_p50_ms = pct(ttft, 0.5);
    r.ttft_p95_ms = pct(ttft, 0.95);
    r.tpot_p50_ms = pct(tpot, 0.5);
    r.tpot_p95_ms = pct(tpot, 0.95);
    r.slo_attainment = ttft.empty() ? 1.0 : static_cast<double>(met) / static_cast<double>(ttft.size());
    int64_t tok = 0, gen = 0;
    for (const auto& c : t->costs) {
      if (c.at < from) continue;
      tok += c.tokens;
      gen += c.generated;
    }
    r.tokens_per_s = static_cast<double>(tok) / opts_.window_s;
    r.generated_per_s = static_cast<double>(gen) / opts_.window_s;
    r.requests_finished = t->finished;
    r.tokens_total = t->tokens_total;
    r.device_seconds = t->device_seconds;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace tandem::runtime
