// The continuous-batching scheduler on the demo model: batched, chunked,
// preempted and prefix-shared runs give exactly the ids of one-at-a-time
// generate(); the token budget, cancellation and stop strings hold.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <cmath>

#include "base/error.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/model_tokenizer.h"
#include "models/logits_util.h"
#include "test_util.h"

namespace tandem {
namespace {

using engine::FinishReason;
using engine::Request;
using engine::RequestOptions;
using engine::Scheduler;
using engine::SchedulerOptions;

struct Demo {
  std::unique_ptr<models::Model> model =
      models::Model::load(testing::source_dir() / "models" / "demo");
  std::unique_ptr<tokenizer::Tokenizer> tok =
      engine::load_model_tokenizer(testing::source_dir() / "models" / "demo");
  ThreadPool pool{2};
};

Demo& demo() {
  static Demo d;
  return d;
}

std::vector<int32_t> prompt_of(int i, int len) {
  std::vector<int32_t> p;
  for (int j = 0; j < len; ++j) p.push_back(static_cast<int32_t>(100 + (i * 37 + j * 11) % 3000));
  return p;
}

std::vector<int32_t> reference(const std::vector<int32_t>& prompt, int64_t n) {
  engine::GenerateOptions go;
  go.max_new_tokens = n;
  go.ignore_eos = true;
  return engine::generate(*demo().model, prompt, go, demo().pool).ids;
}

struct Result {
  std::vector<int32_t> ids;
  std::string text;
  FinishReason reason = FinishReason::kNone;
};

Result collect(Request& r) {
  Result res;
  Request::Output out;
  r.wait(std::chrono::milliseconds(0), out);
  for (const auto& e : out.events) {
    res.ids.push_back(e.token);
    res.text += e.text;
  }
  res.reason = out.reason;
  return res;
}

void run_all(Scheduler& s) {
  int guard = 0;
  while (s.has_work()) {
    s.step();
    ASSERT_LT(++guard, 100000);
  }
}

std::shared_ptr<Request> make(const std::vector<int32_t>& prompt, int64_t max_tokens) {
  RequestOptions o;
  o.prompt = prompt;
  o.max_tokens = max_tokens;
  o.ignore_eos = true;
  return std::make_shared<Request>(o);
}

TEST(Scheduler, BatchedChunkedGreedyEqualsOneAtATime) {
  SchedulerOptions so;
  so.max_batch_tokens = 7;  // prompts go in chunks, several sequences per step
  Scheduler s(*demo().model, nullptr, so, demo().pool);
  std::vector<std::shared_ptr<Request>> reqs;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 6; ++i) {
    prompts.push_back(prompt_of(i, 3 + i * 5));
    reqs.push_back(make(prompts.back(), 12));
    s.add(reqs.back());
  }
  int64_t max_tokens_seen = 0;
  while (s.has_work()) {
    s.step();
    max_tokens_seen = std::max(max_tokens_seen, s.last_step_tokens());
    EXPECT_LE(s.last_step_tokens(), 7);
  }
  EXPECT_EQ(max_tokens_seen, 7);
  for (size_t i = 0; i < reqs.size(); ++i) {
    Result r = collect(*reqs[i]);
    EXPECT_EQ(r.reason, FinishReason::kLength);
    EXPECT_EQ(r.ids, reference(prompts[i], 12)) << "request " << i;
  }
  EXPECT_EQ(s.pool().used(), 0);
}

TEST(Scheduler, PreemptsWhenBlocksRunOutAndStillMatches) {
  SchedulerOptions so;
  so.kv_blocks = 6;  // 96 tokens for four sequences of up to 50
  so.max_batch_tokens = 64;
  Scheduler s(*demo().model, nullptr, so, demo().pool);
  std::vector<std::shared_ptr<Request>> reqs;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 4; ++i) {
    prompts.push_back(prompt_of(10 + i, 20));
    reqs.push_back(make(prompts.back(), 30));
    s.add(reqs.back());
  }
  run_all(s);
  EXPECT_GT(s.stats().preemptions, 0u);
  for (size_t i = 0; i < reqs.size(); ++i) {
    Result r = collect(*reqs[i]);
    EXPECT_EQ(r.reason, FinishReason::kLength);
    EXPECT_EQ(r.ids, reference(prompts[i], 30)) << "request " << i;
  }
  EXPECT_EQ(s.pool().used(), 0);
}

TEST(Scheduler, CancelledSequenceLeavesAndFreesItsBlocks) {
  SchedulerOptions so;
  Scheduler s(*demo().model, nullptr, so, demo().pool);
  auto a = make(prompt_of(1, 40), 200);
  auto b = make(prompt_of(2, 40), 20);
  s.add(a);
  s.add(b);
  for (int i = 0; i < 3; ++i) s.step();
  EXPECT_EQ(s.stats().running, 2);
  const int64_t used = s.pool().used();
  a->cancel();
  s.step();
  EXPECT_EQ(s.stats().running, 1);
  EXPECT_LT(s.pool().used(), used);
  run_all(s);
  EXPECT_EQ(collect(*a).reason, FinishReason::kCancelled);
  Result rb = collect(*b);
  EXPECT_EQ(rb.reason, FinishReason::kLength);
  EXPECT_EQ(rb.ids, reference(prompt_of(2, 40), 20));
  EXPECT_EQ(s.pool().used(), 0);
}

TEST(Scheduler, ReusesFullPromptBlocks) {
  SchedulerOptions so;
  Scheduler s(*demo().model, nullptr, so, demo().pool);
  const auto prompt =
      prompt_of(3, 40);  // two full blocks reusable (the last token is always computed)
  auto a = make(prompt, 8);
  s.add(a);
  run_all(s);
  EXPECT_EQ(s.stats().prefix_blocks_hit, 0u);
  EXPECT_GT(s.pool().cached(), 0);
  auto b = make(prompt, 8);
  s.add(b);
  run_all(s);
  EXPECT_EQ(s.stats().prefix_blocks_hit, 2u);
  const auto ra = collect(*a), rb = collect(*b);
  EXPECT_EQ(ra.ids.size(), 8u);
  EXPECT_EQ(ra.ids, rb.ids);
}

TEST(Scheduler, SharedPrefixRunsConcurrentlyAndMatches) {
  SchedulerOptions so;
  so.max_batch_tokens = 16;
  Scheduler s(*demo().model, nullptr, so, demo().pool);
  auto base = prompt_of(4, 48);
  std::vector<std::shared_ptr<Request>> reqs;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 3; ++i) {
    auto p = base;
    p.push_back(500 + i);
    prompts.push_back(p);
    reqs.push_back(make(p, 10));
  }
  s.add(reqs[0]);
  run_all(s);
  s.add(reqs[1]);
  s.add(reqs[2]);
  run_all(s);
  EXPECT_EQ(s.stats().prefix_blocks_hit, 6u);
  for (size_t i = 0; i < reqs.size(); ++i)
    EXPECT_EQ(collect(*reqs[i]).ids, reference(prompts[i], 10));
}

TEST(Scheduler, StopStringEndsAndIsNotShown) {
  auto& d = demo();
  SchedulerOptions so;
  Scheduler s(*d.model, d.tok.get(), so, d.pool);
  const auto prompt = d.tok->encode("Return the", true);
  auto a = make(prompt, 30);
  s.add(a);
  run_all(s);
  const std::string full = collect(*a).text;
  ASSERT_GT(full.size(), 12u);
  const std::string stop = full.substr(8, 4);
  const std::string want = full.substr(0, full.find(stop));
  RequestOptions o;
  o.prompt = prompt;
  o.max_tokens = 30;
  o.ignore_eos = true;
  o.stop = {"\x01never", stop};
  auto b = std::make_shared<Request>(o);
  s.add(b);
  run_all(s);
  Result rb = collect(*b);
  EXPECT_EQ(rb.reason, FinishReason::kStop);
  EXPECT_EQ(rb.text, want);
}

TEST(Scheduler, LogprobsAreNormalizedAndTopIsSorted) {
  auto& d = demo();
  Scheduler s(*d.model, nullptr, SchedulerOptions{}, d.pool);
  RequestOptions o;
  o.prompt = prompt_of(5, 10);
  o.max_tokens = 3;
  o.top_logprobs = 5;
  auto r = std::make_shared<Request>(o);
  s.add(r);
  run_all(s);
  Request::Output out;
  r->wait(std::chrono::milliseconds(0), out);
  ASSERT_EQ(out.events.size(), 3u);
  for (const auto& e : out.events) {
    ASSERT_EQ(e.top.size(), 5u);
    EXPECT_EQ(e.top[0].id, e.token);  // greedy picks the most likely
    EXPECT_FLOAT_EQ(e.top[0].logprob, e.logprob);
    EXPECT_LE(e.logprob, 0.0f);
    for (size_t j = 1; j < e.top.size(); ++j) EXPECT_LE(e.top[j].logprob, e.top[j - 1].logprob);
  }
}

TEST(Scheduler, RejectsRequestsThatCanNeverRun) {
  SchedulerOptions so;
  so.max_context = 64;
  Scheduler s(*demo().model, nullptr, so, demo().pool);
  EXPECT_THROW(s.add(make({}, 4)), Error);
  EXPECT_THROW(s.add(make(prompt_of(0, 64), 4)), Error);
  EXPECT_THROW(s.add(make({1, 8192}, 4)), Error);
  EXPECT_THROW(s.add(make({1, 2}, 0)), Error);
  // Generation stops at the context length.
  auto r = make(prompt_of(0, 60), 100);
  s.add(r);
  run_all(s);
  Result res = collect(*r);
  EXPECT_EQ(res.reason, FinishReason::kLength);
  EXPECT_EQ(res.ids.size(), 4u);
}

TEST(Scheduler, PromptLogprobsMatchTheModelsLogitsEvenInChunksAndBesidePrefixHits) {
  const auto prompt = prompt_of(5, 45);
  const auto V = static_cast<size_t>(demo().model->vocab_size());
  const auto all = testing::logits_all(*demo().model, prompt, demo().pool);
  auto expect_lp = [&](size_t target) {
    const float* row = all.data() + (target - 1) * V;
    double mx = row[0], sum = 0;
    for (size_t v = 0; v < V; ++v) mx = std::max<double>(mx, row[v]);
    for (size_t v = 0; v < V; ++v) sum += std::exp(row[v] - mx);
    return row[prompt[target]] - (mx + std::log(sum));
  };
  SchedulerOptions so;
  so.max_batch_tokens = 16;  // the prompt goes in chunks
  Scheduler s(*demo().model, nullptr, so, demo().pool);
  // The same prompt first without scoring, so its full blocks are cached: the scored run
  // must still compute the positions it scores.
  s.add(make(prompt, 1));
  run_all(s);
  for (int64_t from : {1, 20, 44}) {
    RequestOptions o;
    o.prompt = prompt;
    o.max_tokens = 0;
    o.prompt_logprobs_from = from;
    auto r = std::make_shared<Request>(o);
    s.add(r);
    run_all(s);
    Request::Output out;
    ASSERT_TRUE(r->wait(std::chrono::milliseconds(0), out));
    EXPECT_EQ(out.reason, FinishReason::kLength);
    EXPECT_EQ(out.completion_tokens, 0);
    ASSERT_EQ(out.prompt_logprobs.size(), prompt.size() - static_cast<size_t>(from));
    for (size_t i = 0; i < out.prompt_logprobs.size(); ++i) {
      EXPECT_NEAR(out.prompt_logprobs[i], expect_lp(static_cast<size_t>(from) + i), 2e-3)
          << "from " << from << " token " << i;
    }
  }
  RequestOptions bad;
  bad.prompt = prompt;
  bad.max_tokens = 0;
  EXPECT_THROW(s.validate(bad), Error);
  bad.prompt_logprobs_from = 45;
  EXPECT_THROW(s.validate(bad), Error);
}

// Allows only the given tokens, in order, then is complete.
class Sequenced : public engine::Constraint {
 public:
  explicit Sequenced(std::vector<int32_t> ids) : ids_(std::move(ids)) {}
  void mask(std::span<float> logits) override {
    for (size_t v = 0; v < logits.size(); ++v) {
      if (static_cast<int32_t>(v) != ids_[pos_] && static_cast<int32_t>(v) != ids_[pos_] + 1)
        logits[v] = -INFINITY;
    }
  }
  void accept(int32_t t) override {
    accepted.push_back(t);
    ++pos_;
  }
  bool complete() const override { return pos_ == ids_.size(); }
  std::vector<int32_t> accepted;

 private:
  std::vector<int32_t> ids_;
  size_t pos_ = 0;
};

TEST(Scheduler, ConstraintMasksEveryTokenAndEndsTheRequestWhenComplete) {
  Scheduler s(*demo().model, nullptr, {}, demo().pool);
  auto c = std::make_shared<Sequenced>(std::vector<int32_t>{500, 900, 1300});
  RequestOptions o;
  o.prompt = prompt_of(3, 10);
  o.max_tokens = 50;
  o.constraint = c;
  auto r = std::make_shared<Request>(o);
  s.add(r);
  run_all(s);
  Result res = collect(*r);
  EXPECT_EQ(res.reason, FinishReason::kStop);
  ASSERT_EQ(res.ids.size(), 3u);
  EXPECT_EQ(res.ids, c->accepted);
  const std::vector<int32_t> base{500, 900, 1300};
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(res.ids[i] == base[i] || res.ids[i] == base[i] + 1);
}

TEST(Engine, ConcurrentSubmittersGetTheirOwnResults) {
  auto& d = demo();
  engine::EngineOptions eo;
  eo.scheduler.max_batch_tokens = 32;
  engine::Engine e(*d.model, d.tok.get(), eo, d.pool);
  std::vector<std::shared_ptr<Request>> reqs;
  for (int i = 0; i < 8; ++i)
    reqs.push_back(e.submit(make(prompt_of(20 + i, 5 + i), 6)->options()));
  for (size_t i = 0; i < reqs.size(); ++i) {
    Request::Output out;
    std::vector<int32_t> ids;
    while (!out.finished) {
      reqs[i]->wait(std::chrono::milliseconds(100), out);
      for (const auto& ev : out.events) ids.push_back(ev.token);
    }
    EXPECT_EQ(ids, reference(prompt_of(20 + static_cast<int>(i), 5 + static_cast<int>(i)), 6));
  }
  e.stop_accepting();
  EXPECT_THROW(e.submit(make({1, 2}, 1)->options()), engine::Overloaded);
}

}  // namespace
}  // namespace tandem
