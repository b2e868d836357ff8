// The resource manager and the scheduler together on the demo model, stepped
// by hand so every claim is counted in tokens and steps, not timed: weighted
// sharing, work conservation, class priority, preemption of batch work for an
// interactive request (with every batch output still exact), min_share
// guarantees, static partitions, and the executor interleaving two engines.
#include <gtest/gtest.h>

#include <map>

#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/model_tokenizer.h"
#include "engine/scheduler.h"
#include "runtime/executor.h"
#include "runtime/resource_manager.h"
#include "test_util.h"

namespace tandem {
namespace {

using engine::FinishReason;
using engine::Request;
using engine::RequestOptions;
using engine::Scheduler;
using engine::SchedulerOptions;
using runtime::ResourceManager;
using runtime::TenantSpec;

struct Demo {
  std::unique_ptr<models::Model> model =
      models::Model::load(testing::source_dir() / "models" / "demo");
  ThreadPool pool{2};
};

Demo& demo() {
  static Demo d;
  return d;
}

std::vector<int32_t> prompt_of(int i, int len) {
  std::vector<int32_t> p;
  for (int j = 0; j < len; ++j) p.push_back(static_cast<int32_t>(100 + (i * 53 + j * 7) % 3000));
  return p;
}

std::vector<int32_t> reference(const std::vector<int32_t>& prompt, int64_t n) {
  engine::GenerateOptions go;
  go.max_new_tokens = n;
  go.ignore_eos = true;
  return engine::generate(*demo().model, prompt, go, demo().pool).ids;
}

std::shared_ptr<Request> make(int32_t tenant, std::vector<int32_t> prompt, int64_t max_tokens) {
  RequestOptions o;
  o.prompt = std::move(prompt);
  o.max_tokens = max_tokens;
  o.ignore_eos = true;
  o.tenant = tenant;
  return std::make_shared<Request>(std::move(o));
}

struct Collected {
  std::vector<int32_t> ids;
  bool finished = false;
  FinishReason reason = FinishReason::kNone;
};

void drain(Request& r, Collected& c) {
  Request::Output out;
  r.wait(std::chrono::milliseconds(0), out);
  for (const auto& e : out.events) c.ids.push_back(e.token);
  c.finished = out.finished;
  c.reason = out.reason;
}

runtime::ManagerOptions manager_options(runtime::ShareMode mode = runtime::ShareMode::kAdaptive) {
  runtime::ManagerOptions o;
  o.mode = mode;
  o.control_period_s = 1e-9;  // re-divide quotas after every step
  return o;
}

// Keeps `depth` identical requests of each tenant queued or running and steps
// `steps` times; returns the tokens generated per tenant.
std::map<int32_t, int64_t> flood(Scheduler& s, const std::vector<int32_t>& tenants, int steps,
                                 int depth, int prompt_len = 24, int max_tokens = 24) {
  struct Live {
    int32_t tenant;
    std::shared_ptr<Request> r;
    Collected c;
  };
  std::vector<Live> live;
  std::map<int32_t, int64_t> tokens;
  int serial = 0;
  for (int i = 0; i < steps; ++i) {
    for (int32_t t : tenants) {
      int outstanding = 0;
      for (auto& l : live) outstanding += l.tenant == t ? 1 : 0;
      for (; outstanding < depth; ++outstanding) {
        // Same length for everyone; different ids so the prefix cache does not help one side.
        live.push_back({t, make(t, prompt_of(serial++, prompt_len), max_tokens), {}});
        s.add(live.back().r);
      }
    }
    s.step();
    for (auto& l : live) {
      const size_t before = l.c.ids.size();
      drain(*l.r, l.c);
      tokens[l.tenant] += static_cast<int64_t>(l.c.ids.size() - before);
    }
    std::erase_if(live, [](const Live& l) { return l.c.finished; });
  }
  return tokens;
}

SchedulerOptions small_batch() {
  SchedulerOptions so;
  so.max_running = 16;
  so.max_batch_tokens = 64;
  return so;
}

TEST(ResourceShare, WeightedThreeToOne) {
  ResourceManager rm(manager_options());
  Scheduler s(*demo().model, nullptr, small_batch(), demo().pool, &rm);
  TenantSpec a{.name = "A", .weight = 3, .engine = &s};
  TenantSpec b{.name = "B", .weight = 1, .engine = &s};
  const int32_t ta = rm.add_tenant(a), tb = rm.add_tenant(b);
  rm.set_engine_capacity(&s, s.pool().capacity(), s.options().max_running);
  auto tok = flood(s, {ta, tb}, 300, 24, 16, 16);
  ASSERT_GT(tok[tb], 0);
  const double ratio = static_cast<double>(tok[ta]) / static_cast<double>(tok[tb]);
  EXPECT_NEAR(ratio, 3.0, 0.45) << "A " << tok[ta] << " B " << tok[tb];
}

TEST(ResourceShare, WorkConservingWhenTheOtherIsIdle) {
  int64_t alone = 0, beside_idle = 0;
  {
    ResourceManager rm(manager_options());
    Scheduler s(*demo().model, nullptr, small_batch(), demo().pool, &rm);
    const int32_t ta = rm.add_tenant({.name = "A", .engine = &s});
    rm.set_engine_capacity(&s, s.pool().capacity(), s.options().max_running);
    alone = flood(s, {ta}, 150, 24, 16, 16)[ta];
  }
  {
    ResourceManager rm(manager_options());
    Scheduler s(*demo().model, nullptr, small_batch(), demo().pool, &rm);
    const int32_t ta = rm.add_tenant({.name = "A", .engine = &s});
    rm.add_tenant({.name = "B", .engine = &s});
    rm.set_engine_capacity(&s, s.pool().capacity(), s.options().max_running);
    beside_idle = flood(s, {ta}, 150, 24, 16, 16)[ta];
  }
  EXPECT_GE(static_cast<double>(beside_idle), 0.9 * static_cast<double>(alone))
      << "alone " << alone << " beside an idle pipeline " << beside_idle;
}

TEST(ResourceShare, StaticModePartitionsEvenWhenTheOtherIsIdle) {
  ResourceManager rm(manager_options(runtime::ShareMode::kStatic));
  Scheduler s(*demo().model, nullptr, small_batch(), demo().pool, &rm);
  const int32_t ta = rm.add_tenant({.name = "A", .engine = &s});
  rm.add_tenant({.name = "B", .engine = &s});
  rm.set_engine_capacity(&s, s.pool().capacity(), s.options().max_running);
  const auto lim = rm.limits(ta);
  EXPECT_EQ(lim.running, 8);
  EXPECT_FALSE(lim.may_borrow);
  flood(s, {ta}, 40, 24);
  EXPECT_LE(s.stats().running, 8);
}

TEST(ResourceShare, StaticPartitionSmallerThanAContextStillRunsALongPrompt) {
  ResourceManager rm(manager_options(runtime::ShareMode::kStatic));
  SchedulerOptions so;
  so.kv_blocks = 100;  // four partitions of 25 blocks; a 500-token prompt needs 32
  so.max_batch_tokens = 512;
  Scheduler s(*demo().model, nullptr, so, demo().pool, &rm);
  std::vector<int32_t> ids;
  for (const char* n : {"A", "B", "C", "D"}) ids.push_back(rm.add_tenant({.name = n, .engine = &s}));
  rm.set_engine_capacity(&s, s.pool().limit(), s.options().max_running);
  rm.set_engine_kv_memory(&s, "cpu", static_cast<int64_t>(s.pool().block_bytes()), 65,
                          s.pool().capacity(), [&s](int64_t n) { s.set_kv_limit(n); });
  auto r = make(ids[0], prompt_of(1, 500), 4);
  s.add(r);
  for (int i = 0; i < 50 && s.has_work(); ++i) s.step();
  Collected c;
  drain(*r, c);
  ASSERT_TRUE(c.finished) << "the request starved in its partition";
  EXPECT_EQ(c.reason, FinishReason::kLength);
  EXPECT_EQ(c.ids, reference(prompt_of(1, 500), 4));
}

TEST(ResourceShare, MinShareIsGuaranteedToBatchUnderInteractiveFlood) {
  ResourceManager rm(manager_options());
  Scheduler s(*demo().model, nullptr, small_batch(), demo().pool, &rm);
  const int32_t ti = rm.add_tenant({.name = "chat", .cls = 0, .engine = &s});
  const int32_t tb = rm.add_tenant({.name = "nightly", .cls = 1, .min_share = 0.3, .engine = &s});
  rm.set_engine_capacity(&s, s.pool().capacity(), s.options().max_running);
  auto tok = flood(s, {ti, tb}, 250, 24, 16, 16);
  // The guarantee is a share of the device's time (what min_share means), over the window.
  const auto rep = rm.report();
  EXPECT_GE(rep[1].share, 0.27) << "interactive " << tok[ti] << " batch " << tok[tb];
  EXPECT_GT(tok[tb], 0);
}

TEST(ResourceShare, BatchWithoutGuaranteeWaitsForInteractive) {
  ResourceManager rm(manager_options());
  Scheduler s(*demo().model, nullptr, small_batch(), demo().pool, &rm);
  const int32_t ti = rm.add_tenant({.name = "chat", .cls = 0, .engine = &s});
  const int32_t tb = rm.add_tenant({.name = "nightly", .cls = 1, .engine = &s});
  rm.set_engine_capacity(&s, s.pool().capacity(), s.options().max_running);
  auto tok = flood(s, {ti, tb}, 150, 24, 16, 16);
  EXPECT_GT(tok[ti], 10 * tok[tb]) << "interactive " << tok[ti] << " batch " << tok[tb];
}

TEST(ResourceShare, InteractivePreemptsBatchHoldingEveryBlockAndBatchStaysExact) {
  ResourceManager rm(manager_options());
  SchedulerOptions so;
  so.kv_blocks = 24;  // 384 tokens: four batch requests of 80 + 20 tokens fill it
  so.block_size = 16;
  so.max_batch_tokens = 512;
  Scheduler s(*demo().model, nullptr, so, demo().pool, &rm);
  const int32_t ti = rm.add_tenant({.name = "chat", .cls = 0, .engine = &s});
  const int32_t tb = rm.add_tenant({.name = "nightly", .cls = 1, .engine = &s});
  rm.set_engine_capacity(&s, s.pool().capacity(), s.options().max_running);
  std::vector<std::shared_ptr<Request>> batch;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 4; ++i) {
    prompts.push_back(prompt_of(i, 80));
    batch.push_back(make(tb, prompts.back(), 20));
    s.add(batch.back());
  }
  // Run until the batch requests hold every block.
  for (int i = 0; i < 12 && s.pool().used() < s.pool().capacity(); ++i) s.step();
  ASSERT_GE(s.pool().used(), s.pool().capacity() - 1);
  const auto iprompt = prompt_of(99, 20);
  auto inter = make(ti, iprompt, 8);
  s.add(inter);
  s.step();  // one scheduling period
  Collected ic;
  drain(*inter, ic);
  EXPECT_EQ(ic.ids.size(), 1u) << "the interactive request was not admitted within one step";
  std::vector<Collected> bc(batch.size());
  for (int i = 0; i < 400; ++i) {
    s.step();
    bool all = true;
    drain(*inter, ic);
    for (size_t j = 0; j < batch.size(); ++j) {
      drain(*batch[j], bc[j]);
      all = all && bc[j].finished;
    }
    if (all && ic.finished) break;
  }
  EXPECT_GT(s.stats().preemptions, 0u);
  ASSERT_TRUE(ic.finished);
  EXPECT_EQ(ic.ids, reference(iprompt, 8));
  for (size_t j = 0; j < batch.size(); ++j) {
    ASSERT_TRUE(bc[j].finished) << j;
    EXPECT_EQ(bc[j].reason, FinishReason::kLength);
    EXPECT_EQ(bc[j].ids, reference(prompts[j], 20)) << "batch request " << j;
  }
}

TEST(ResourceShare, UnderQuotaTenantTakesBackABorrowedSlotAndEveryOutputStaysExact) {
  ResourceManager rm(manager_options());
  Scheduler s(*demo().model, nullptr, small_batch(), demo().pool, &rm);
  const int32_t ta = rm.add_tenant({.name = "A", .engine = &s});
  const int32_t tb = rm.add_tenant({.name = "B", .engine = &s});
  rm.set_engine_capacity(&s, s.pool().capacity(), s.options().max_running);
  std::vector<std::shared_ptr<Request>> as;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 20; ++i) {
    prompts.push_back(prompt_of(i, 20));
    as.push_back(make(ta, prompts.back(), 12));
    s.add(as.back());
  }
  for (int i = 0; i < 10 && s.stats().running < 16; ++i) s.step();
  ASSERT_EQ(s.stats().running, 16);  // A borrowed every slot
  const auto bp = prompt_of(50, 10);
  auto b = make(tb, bp, 6);
  s.add(b);
  // The next control period gives B a quota for its demand; A is then over its own, and B
  // takes back a slot.
  Collected bc;
  int steps = 0;
  while (bc.ids.empty() && steps < 10) {
    s.step();
    ++steps;
    drain(*b, bc);
  }
  EXPECT_LE(steps, 2) << "B waited although under its quota";
  std::vector<Collected> ac(as.size());
  for (int i = 0; i < 300 && !(bc.finished && std::all_of(ac.begin(), ac.end(), [](auto& c) { return c.finished; })); ++i) {
    s.step();
    drain(*b, bc);
    for (size_t j = 0; j < as.size(); ++j) drain(*as[j], ac[j]);
  }
  EXPECT_GT(s.stats().preemptions, 0u);
  EXPECT_EQ(bc.ids, reference(bp, 6));
  for (size_t j = 0; j < as.size(); ++j) EXPECT_EQ(ac[j].ids, reference(prompts[j], 12)) << j;
}

TEST(ResourceShare, InteractivePromptStepHoldsNoBatchWork) {
  ResourceManager rm(manager_options());
  Scheduler s(*demo().model, nullptr, small_batch(), demo().pool, &rm);
  const int32_t ti = rm.add_tenant({.name = "chat", .cls = 0, .engine = &s});
  const int32_t tb = rm.add_tenant({.name = "nightly", .cls = 1, .engine = &s});
  rm.set_engine_capacity(&s, s.pool().capacity(), s.options().max_running);
  for (int i = 0; i < 12; ++i) s.add(make(tb, prompt_of(i, 40), 30));
  for (int i = 0; i < 20; ++i) s.step();
  auto inter = make(ti, prompt_of(77, 12), 4);
  s.add(inter);
  s.step();
  EXPECT_EQ(s.last_step_tokens(), 12);  // the interactive prompt alone
  Collected ic;
  drain(*inter, ic);
  EXPECT_EQ(ic.ids.size(), 1u);
  s.step();  // interactive decodes; batch gets at most its cap beside it
  EXPECT_LE(s.last_step_tokens(), 1 + s.options().batch_tokens_beside_interactive);
}

TEST(ResourceShare, ReportShowsSharesQuotasAndLatency) {
  ResourceManager rm(manager_options());
  Scheduler s(*demo().model, nullptr, small_batch(), demo().pool, &rm);
  const int32_t ta = rm.add_tenant({.name = "A", .weight = 3, .ttft_ms = 60000, .engine = &s});
  const int32_t tb = rm.add_tenant({.name = "B", .weight = 1, .engine = &s});
  rm.set_engine_capacity(&s, s.pool().capacity(), s.options().max_running);
  flood(s, {ta, tb}, 120, 24, 16, 16);
  const auto rep = rm.report();
  ASSERT_EQ(rep.size(), 2u);
  EXPECT_EQ(rep[0].name, "A");
  EXPECT_NEAR(rep[0].share + rep[1].share, 1.0, 1e-6)
      << rep[0].share << " " << rep[1].share << " " << rep[0].device_seconds << " "
      << rep[1].device_seconds;
  EXPECT_GT(rep[0].share, rep[1].share);
  EXPECT_GT(rep[0].requests_finished, 0u);
  EXPECT_GT(rep[0].ttft_p95_ms, 0.0);
  EXPECT_DOUBLE_EQ(rep[0].slo_attainment, 1.0);
  EXPECT_GT(rep[0].running_quota, rep[1].running_quota);
  EXPECT_GT(rep[0].tokens_per_s, 0.0);
}

TEST(ResourceShare, QuotasFollowDemand) {
  ResourceManager rm(manager_options());
  Scheduler s(*demo().model, nullptr, small_batch(), demo().pool, &rm);
  const int32_t ta = rm.add_tenant({.name = "A", .engine = &s});
  const int32_t tb = rm.add_tenant({.name = "B", .engine = &s});
  rm.set_engine_capacity(&s, s.pool().capacity(), s.options().max_running);
  EXPECT_EQ(rm.limits(ta).running, 8);  // equal to start with
  flood(s, {ta}, 30, 24);
  EXPECT_GE(rm.limits(ta).running, 14) << "A's quota did not grow toward its demand";
  EXPECT_LE(rm.limits(tb).running, 2);
  // A's last requests finish; then B has all the demand.
  flood(s, {tb}, 150, 24);
  EXPECT_EQ(rm.report()[0].running + rm.report()[0].waiting, 0);
  EXPECT_GE(rm.limits(tb).running, 14) << "B's quota did not grow once A was idle";
}

TEST(ResourceShare, DeviceKvMemoryMovesBetweenEnginesTowardDemand) {
  ResourceManager rm(manager_options());
  SchedulerOptions so;
  so.kv_blocks = 160;
  so.kv_growth = 4;
  so.max_batch_tokens = 512;
  Scheduler s1(*demo().model, nullptr, so, demo().pool, &rm);
  Scheduler s2(*demo().model, nullptr, so, demo().pool, &rm);
  const int32_t ta = rm.add_tenant({.name = "A", .engine = &s1});
  const int32_t tb = rm.add_tenant({.name = "B", .engine = &s2});
  for (Scheduler* s : {&s1, &s2}) {
    rm.set_engine_capacity(s, s->pool().limit(), s->options().max_running);
    rm.set_engine_kv_memory(s, "cpu", static_cast<int64_t>(s->pool().block_bytes()), 65,
                            s->pool().capacity(), [s](int64_t n) { s->set_kv_limit(n); });
  }
  EXPECT_EQ(s1.pool().capacity(), 640);
  // Only A has work: A's pool grows into what B does not use, B keeps a whole context.
  flood(s1, {ta}, 40, 24, 100, 16);
  EXPECT_GT(s1.pool().limit(), 200);
  EXPECT_GE(s2.pool().limit(), 65);
  EXPECT_LT(s2.pool().limit(), 120);
  EXPECT_LE(s1.pool().limit() + s2.pool().limit(), 320);
  EXPECT_LE(s1.pool().resident(), std::max(s1.pool().limit(), s1.pool().used()));
  // Then only B: the memory moves back.
  for (int i = 0; i < 400 && s1.has_work(); ++i) s1.step();
  flood(s2, {tb}, 40, 24, 100, 16);
  EXPECT_GT(s2.pool().limit(), 200);
  EXPECT_LT(s1.pool().limit(), 120);
  EXPECT_LE(s1.pool().resident(), s1.pool().limit());
  const auto rep = rm.report();
  EXPECT_EQ(rep[1].kv_pool_blocks, s2.pool().limit());
}

TEST(Executor, InterleavesTwoEnginesAndEveryOutputIsExact) {
  ResourceManager rm(manager_options());
  runtime::Executor ex("cpu", &rm);
  engine::EngineOptions eo;
  eo.policy = &rm;
  eo.driver = &ex;
  engine::Engine e1(*demo().model, nullptr, eo, demo().pool);
  engine::Engine e2(*demo().model, nullptr, eo, demo().pool);
  const int32_t t1 = rm.add_tenant({.name = "chat", .cls = 0, .engine = &e1});
  const int32_t t2 = rm.add_tenant({.name = "nightly", .cls = 1, .engine = &e2});
  ex.add(&e1);
  ex.add(&e2);
  std::vector<std::shared_ptr<Request>> rs;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 6; ++i) {
    prompts.push_back(prompt_of(i, 16));
    RequestOptions o;
    o.prompt = prompts.back();
    o.max_tokens = 10;
    o.ignore_eos = true;
    o.tenant = i % 2 == 0 ? t1 : t2;
    rs.push_back((i % 2 == 0 ? e1 : e2).submit(o));
  }
  for (size_t i = 0; i < rs.size(); ++i) {
    Collected c;
    Request::Output out;
    while (!rs[i]->wait(std::chrono::milliseconds(100), out)) {
      for (const auto& e : out.events) c.ids.push_back(e.token);
    }
    for (const auto& e : out.events) c.ids.push_back(e.token);
    EXPECT_EQ(c.ids, reference(prompts[i], 10)) << i;
  }
  EXPECT_GT(ex.steps(), 0u);
}

}  // namespace
}  // namespace tandem
