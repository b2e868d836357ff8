#include "engine/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>

#include "base/error.h"

namespace tandem::engine {

using Clock = std::chrono::steady_clock;

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
    case FinishReason::kNone:
      break;
  }
  return "none";
}

struct Scheduler::Sequence {
  std::shared_ptr<Request> req;
  uint64_t arrival = 0;
  std::vector<int32_t> tokens;  // prompt, then generated
  int64_t generated = 0;
  models::KvCache cache;
  Sampler sampler;
  std::unique_ptr<tokenizer::StreamDecoder> decoder;
  std::string held;       // decoded text not shown yet: it may start a stop string
  int64_t published = 0;  // leading blocks already published or adopted
  uint64_t chain = models::KvBlockPool::kRootHash;
  bool admitted_once = false;
  bool done = false;
  std::vector<float> prompt_lp;  // with prompt_logprobs_from: one per scored prompt token
  Clock::time_point submitted, first_token, last_token;

  Sequence(std::shared_ptr<Request> r, models::KvCache c)
      : req(std::move(r)),
        tokens(req->options().prompt),
        cache(std::move(c)),
        sampler(req->options().sampling) {}
  int64_t pending() const { return static_cast<int64_t>(tokens.size()) - cache.length(); }
  int32_t tenant() const { return req->options().tenant; }
  // Computing a prompt whose token log-probabilities were asked for.
  bool scoring() const {
    return req->options().prompt_logprobs_from >= 1 && generated == 0 &&
           cache.length() < static_cast<int64_t>(req->options().prompt.size());
  }
};

Scheduler::Scheduler(const models::Model& model, const tokenizer::Tokenizer* tok,
                     SchedulerOptions opts, ThreadPool& pool, SharePolicy* policy)
    : model_(model), tok_(tok), opts_(opts), threads_(pool), policy_(policy) {
  const auto& cfg = model.config();
  max_context_ = opts_.max_context > 0
                     ? std::min<int64_t>(opts_.max_context, cfg.max_position_embeddings)
                     : cfg.max_position_embeddings;
  if (opts_.block_size <= 0) throw Error("block size must be positive");
  if (opts_.max_batch_tokens <= 0) throw Error("max batch tokens must be positive");
  if (opts_.max_running <= 0) throw Error("max running sequences must be positive");
  if (opts_.batch_tokens_beside_interactive <= 0) {
    throw Error("batch tokens beside interactive work must be positive");
  }
  const int64_t per_context = (max_context_ + opts_.block_size - 1) / opts_.block_size;
  const int64_t blocks = opts_.kv_blocks > 0 ? opts_.kv_blocks : 8 * per_context;
  pool_ = std::make_shared<models::KvBlockPool>(cfg.num_hidden_layers,
                                                cfg.num_key_value_heads * cfg.head_dim,
                                                opts_.block_size, blocks * std::max<int64_t>(1, opts_.kv_growth));
  pool_->set_limit(blocks);
  eos_ = model.eos_token_ids();
  refresh_stats();
}

Scheduler::~Scheduler() {
  for (auto& s : running_) s->req->finish(FinishReason::kCancelled, "the engine stopped");
  for (auto& s : waiting_) s->req->finish(FinishReason::kCancelled, "the engine stopped");
}

void Scheduler::validate(const RequestOptions& o) const {
  const int64_t n = static_cast<int64_t>(o.prompt.size());
  if (n == 0) throw Error("the prompt is empty");
  for (int32_t id : o.prompt) {
    if (id < 0 || id >= model_.vocab_size()) {
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                  std::to_string(model_.vocab_size() - 1) + ")");
    }
  }
  if (n >= max_context_) {
    throw Error("the prompt has " + std::to_string(n) +
                " tokens, but the model's context length is " + std::to_string(max_context_) +
                " tokens (at least one must be left to generate)");
  }
  if ((n + 1 + opts_.block_size - 1) / opts_.block_size > pool_->capacity()) {
    throw Error("the prompt has " + std::to_string(n) +
                " tokens, more than the KV cache pool holds (" +
                std::to_string(pool_->capacity() * opts_.block_size) + " tokens)");
  }
  if (o.prompt_logprobs_from >= 0 && (o.prompt_logprobs_from < 1 || o.prompt_logprobs_from >= n)) {
    throw Error("prompt_logprobs_from must be between 1 and the prompt length - 1 (" +
                std::to_string(n - 1) + "), got " + std::to_string(o.prompt_logprobs_from));
  }
  if (o.max_tokens < (o.prompt_logprobs_from >= 1 ? 0 : 1)) {
    throw Error("max_tokens must be at least 1");
  }
  if (o.top_logprobs > 20) throw Error("top_logprobs must be at most 20");
  engine::validate(o.sampling);
}

void Scheduler::add(std::shared_ptr<Request> r) {
  validate(r->options());
  auto s = std::make_unique<Sequence>(std::move(r), models::KvCache(pool_, max_context_));
  s->arrival = next_arrival_++;
  if (tok_ != nullptr) s->decoder = std::make_unique<tokenizer::StreamDecoder>(*tok_);
  s->submitted = Clock::now();
  waiting_.push_back(std::move(s));
  refresh_stats();
}

void Scheduler::cancel_all() {
  for (auto& s : running_) s->req->cancel();
  for (auto& s : waiting_) s->req->cancel();
}

void Scheduler::finish(Sequence& s, FinishReason r, std::string error) {
  if (policy_ != nullptr && s.generated > 0 && r != FinishReason::kCancelled && r != FinishReason::kError) {
    const double ttft = std::chrono::duration<double>(s.first_token - s.submitted).count();
    const double tpot =
        s.generated > 1 ? std::chrono::duration<double>(s.last_token - s.first_token).count() /
                              static_cast<double>(s.generated - 1)
                        : 0.0;
    policy_->on_finish(s.tenant(), ttft, tpot, s.generated);
  }
  s.req->finish(r, std::move(error));
  s.cache.clear();
  s.done = true;
}

void Scheduler::preempt(Sequence& s) {
  s.cache.clear();
  s.published = 0;
  s.chain = models::KvBlockPool::kRootHash;
  ++stats_.preemptions;
}

void Scheduler::match_prefix(Sequence& s) {
  const int64_t bs = opts_.block_size;
  // At least the last token is computed, so its logits exist.
  int64_t full = (static_cast<int64_t>(s.tokens.size()) - 1) / bs;
  // Scored prompt tokens need the logits of the positions before them computed.
  const int64_t from = s.req->options().prompt_logprobs_from;
  if (from >= 1 && s.generated == 0) full = std::min(full, (from - 1) / bs);
  for (int64_t b = 0; b < full; ++b) {
    std::span<const int32_t> ids(s.tokens.data() + b * bs, static_cast<size_t>(bs));
    ++stats_.prefix_blocks_queried;
    auto hit = pool_->lookup(s.chain, ids);
    if (!hit) {
      stats_.prefix_blocks_queried += static_cast<uint64_t>(full - b - 1);
      break;
    }
    ++stats_.prefix_blocks_hit;
    s.cache.adopt_block(*hit);
    s.chain = models::KvBlockPool::chain_hash(s.chain, ids);
    ++s.published;
  }
}

void Scheduler::publish_full_blocks(Sequence& s) {
  if (!opts_.prefix_caching) return;
  const int64_t bs = opts_.block_size;
  const int64_t full = s.cache.length() / bs;
  for (; s.published < full; ++s.published) {
    std::span<const int32_t> ids(s.tokens.data() + s.published * bs, static_cast<size_t>(bs));
    pool_->publish(s.cache.block_table()[static_cast<size_t>(s.published)], s.chain, ids);
    s.chain = models::KvBlockPool::chain_hash(s.chain, ids);
  }
}

bool Scheduler::step() {
  const auto t0 = Clock::now();
  // 1. Requests whose client left.
  for (auto& s : running_) {
    if (s->req->cancelled()) finish(*s, FinishReason::kCancelled);
  }
  std::erase_if(running_, [](const auto& s) { return s->done; });
  for (auto& s : waiting_) {
    if (s->req->cancelled()) finish(*s, FinishReason::kCancelled);
  }
  std::erase_if(waiting_, [](const auto& s) { return s->done; });

  // Tenants' ranks and limits, fixed for this step.
  struct TenantState {
    TenantRank rank;
    TenantLimits limits;
    int cls = 0;
    int64_t running = 0, blocks = 0;
    bool waiting = false;
    bool under_quota_waiting = false;
  };
  std::map<int32_t, TenantState> tenants;
  auto state = [&](int32_t t) -> TenantState& {
    auto it = tenants.find(t);
    if (it != tenants.end()) return it->second;
    TenantState ts;
    if (policy_ != nullptr) {
      ts.rank = policy_->rank(t);
      ts.limits = policy_->limits(t);
    }
    ts.cls = ts.rank.favored ? 0 : ts.rank.cls;
    return tenants.emplace(t, ts).first->second;
  };
  for (auto& s : running_) {
    TenantState& ts = state(s->tenant());
    ++ts.running;
    ts.blocks += static_cast<int64_t>(s->cache.block_table().size());
  }
  for (auto& s : waiting_) state(s->tenant()).waiting = true;
  bool someone_under_quota_waits = false;
  for (auto& [t, ts] : tenants) {
    ts.under_quota_waiting =
        ts.waiting && ts.running < ts.limits.running && ts.blocks < ts.limits.kv_blocks;
    someone_under_quota_waits = someone_under_quota_waits || ts.under_quota_waiting;
  }
  // Running: by class, then arrival. Victims of preemption come from the back.
  std::stable_sort(running_.begin(), running_.end(), [&](const auto& a, const auto& b) {
    const int ca = state(a->tenant()).cls, cb = state(b->tenant()).cls;
    return ca != cb ? ca < cb : a->arrival < b->arrival;
  });
  // Waiting: by rank (guarantee, class, virtual time), then arrival.
  std::stable_sort(waiting_.begin(), waiting_.end(), [&](const auto& a, const auto& b) {
    const TenantRank& ra = state(a->tenant()).rank;
    const TenantRank& rb = state(b->tenant()).rank;
    if (ra < rb) return true;
    if (rb < ra) return false;
    return a->arrival < b->arrival;
  });

  struct Item {
    Sequence* s;
    int64_t n;
  };
  std::vector<Item> batch;
  int64_t budget = opts_.max_batch_tokens;

  // Moves running_[vi] back to the queue (and out of this step's batch).
  auto evict = [&](size_t vi) {
    Sequence* victim = running_[vi].get();
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].s == victim) {
        budget += batch[i].n;
        batch.erase(batch.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
    }
    TenantState& vs = state(victim->tenant());
    --vs.running;
    vs.blocks -= static_cast<int64_t>(victim->cache.block_table().size());
    vs.waiting = true;
    preempt(*victim);
    waiting_.push_back(std::move(running_[vi]));
    running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(vi));
  };
  // Moves the lowest-priority running sequence back to the queue when it ranks below `self`
  // (a lower class, or the same class and newer). False when none does.
  auto preempt_one_for = [&](Sequence* self, int self_cls) {
    Sequence* victim = nullptr;
    size_t vi = 0;
    for (size_t i = 0; i < running_.size(); ++i) {
      Sequence* c = running_[i].get();
      if (victim == nullptr) {
        victim = c;
        vi = i;
        continue;
      }
      const int cc = state(c->tenant()).cls, bc = state(victim->tenant()).cls;
      if (cc > bc || (cc == bc && c->arrival > victim->arrival)) {
        victim = c;
        vi = i;
      }
    }
    if (victim == nullptr || victim == self) return false;
    if (state(victim->tenant()).cls < self_cls) return false;
    evict(vi);
    return true;
  };
  // Takes back what a tenant of class `cls` borrowed beyond its quota, for `for_tenant`,
  // which is under its own: the borrower's newest sequence goes back to the queue.
  auto preempt_borrower = [&](int cls, int32_t for_tenant) {
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < running_.size(); ++i) {
      const Sequence& c = *running_[i];
      if (c.tenant() == for_tenant) continue;
      const TenantState& cs = state(c.tenant());
      if (cs.cls != cls || (cs.running <= cs.limits.running && cs.blocks <= cs.limits.kv_blocks))
        continue;
      if (best == SIZE_MAX || c.arrival > running_[best]->arrival) best = i;
    }
    if (best == SIZE_MAX) return false;
    evict(best);
    return true;
  };
  auto in_running = [&](Sequence* s) {
    return std::any_of(running_.begin(), running_.end(),
                       [&](const auto& r) { return r.get() == s; });
  };
  const int64_t max_chunk_scoring =
      std::max<int64_t>(1, (int64_t{16} << 20) / std::max<int64_t>(1, model_.vocab_size()));
  auto chunk_of = [&](const Sequence& s, int64_t avail) {
    int64_t n = std::min(s.pending(), avail);
    if (s.scoring()) n = std::min(n, max_chunk_scoring);
    return n;
  };

  bool has_low = false, has_high = false;
  for (const auto& [t, ts] : tenants) {
    (ts.cls == 0 ? has_high : has_low) = true;
  }
  if (has_high && has_low) last_interactive_ = t0;
  bool high_prefill = false;  // a class-0 sequence computes its prompt this step
  std::vector<std::unique_ptr<Sequence>> requeue;
  for (int cls : {0, 1}) {
    if (cls == 1 && high_prefill) break;  // keep the step short for time to first token
    // Beside interactive work, and for a while after it (so the next interactive arrival waits
    // for a short step, not a long batch prefill), batch work gets a small part of a step.
    const bool high_recent = t0 - last_interactive_ < std::chrono::seconds(2);
    int64_t cls_budget = cls == 1 && (!batch.empty() || high_recent)
                             ? std::min(budget, opts_.batch_tokens_beside_interactive)
                             : budget;
    const int64_t budget_at_start = budget;
    auto spent = [&] { return budget_at_start - budget; };

    // 2. Running sequences of this class: decodes first, then prefill chunks, oldest first.
    std::vector<Sequence*> order;
    for (auto& s : running_)
      if (state(s->tenant()).cls == cls && s->pending() == 1) order.push_back(s.get());
    for (auto& s : running_)
      if (state(s->tenant()).cls == cls && s->pending() > 1) order.push_back(s.get());
    for (Sequence* s : order) {
      if (budget == 0 || spent() >= cls_budget) break;
      if (!in_running(s)) continue;
      const int64_t n = chunk_of(*s, std::min(budget, cls_budget - spent()));
      bool ok = true;
      while (!s->cache.try_reserve(s->cache.length() + n)) {
        if (!preempt_one_for(s, cls)) {
          ok = false;
          break;
        }
      }
      if (ok) {
        batch.push_back({s, n});
        budget -= n;
        if (n > 1 || s->generated == 0) high_prefill = high_prefill || cls == 0;
        continue;
      }
      // `s` is the lowest-ranked and nothing else can give way.
      if (running_.size() == 1) {
        // Alone and still no room: the pool cannot hold this sequence any longer.
        finish(*s, s->generated > 0 ? FinishReason::kLength : FinishReason::kError,
               "the KV cache pool is too small for this sequence");
        running_.clear();
      } else {
        preempt_one_for(nullptr, cls);
      }
    }

    // 3. Admit waiting requests of this class in rank order.
    for (size_t wi = 0; wi < waiting_.size();) {
      if (budget == 0 || spent() >= cls_budget) break;
      Sequence& s = *waiting_[wi];
      TenantState& ts = state(s.tenant());
      if (ts.cls != cls) {
        ++wi;
        continue;
      }
      // Slots: the engine's, then the tenant's quota (borrowing only when nobody under
      // quota waits).
      const bool over_slots = ts.running >= ts.limits.running;
      const bool may_borrow = ts.limits.may_borrow && !(someone_under_quota_waits && !ts.under_quota_waiting);
      if (over_slots && !may_borrow) {
        ++wi;
        continue;
      }
      if (static_cast<int64_t>(running_.size()) >= opts_.max_running) {
        // A higher class takes the slot of a lower one; a tenant under its quota takes back a
        // slot another of its class borrowed.
        if (!preempt_one_for(nullptr, cls + 1) &&
            !(ts.running < ts.limits.running && preempt_borrower(cls, s.tenant()))) {
          break;
        }
      }
      if (s.cache.length() == 0 && opts_.prefix_caching) match_prefix(s);
      const int64_t n = chunk_of(s, std::min(budget, cls_budget - spent()));
      const int64_t need = (s.cache.length() + n + opts_.block_size - 1) / opts_.block_size;
      if (ts.blocks + need > ts.limits.kv_blocks && !may_borrow) {
        preempt(s);
        --stats_.preemptions;
        ++wi;
        continue;
      }
      bool ok = s.cache.try_reserve(s.cache.length() + n);
      while (!ok && (preempt_one_for(nullptr, cls + 1) ||
                     (ts.blocks + need <= ts.limits.kv_blocks && preempt_borrower(cls, s.tenant())))) {
        ok = s.cache.try_reserve(s.cache.length() + n);
      }
      if (!ok) {
        if (running_.empty() && batch.empty()) {
          finish(s, s.generated > 0 ? FinishReason::kLength : FinishReason::kError,
                 "the KV cache pool is too small for this sequence");
          waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(wi));
          continue;
        }
        preempt(s);  // gives back prefix hits; they stay cached
        --stats_.preemptions;
        break;
      }
      if (!s.admitted_once) {
        s.admitted_once = true;
        stats_.prompt_tokens += static_cast<uint64_t>(s.req->options().prompt.size());
      }
      batch.push_back({&s, n});
      budget -= n;
      if (n > 1 || s.generated == 0) high_prefill = high_prefill || cls == 0;
      ++ts.running;
      ts.blocks += static_cast<int64_t>(s.cache.block_table().size());
      running_.push_back(std::move(waiting_[wi]));
      waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(wi));
    }
  }

  last_step_tokens_ = opts_.max_batch_tokens - budget;
  if (batch.empty()) {
    refresh_stats();
    return false;
  }

  // 4. One forward pass over the batch.
  const int64_t V = model_.vocab_size();
  std::vector<size_t> row0(batch.size());
  size_t rows = 0;
  std::vector<models::SeqInput> inputs;
  inputs.reserve(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    Sequence& s = *batch[i].s;
    const int64_t start = s.cache.length();
    const bool samples = start + batch[i].n == static_cast<int64_t>(s.tokens.size());
    models::SeqInput in;
    in.tokens = std::span<const int32_t>(s.tokens.data() + start, static_cast<size_t>(batch[i].n));
    in.cache = &s.cache;
    // Scoring needs the logits of positions from-1 .. prompt-2, i.e. the whole chunk.
    in.all_logits = s.scoring() && start + batch[i].n >= s.req->options().prompt_logprobs_from;
    row0[i] = rows;
    if (in.all_logits) {
      rows += static_cast<size_t>(batch[i].n);
    } else if (samples) {
      rows += 1;
    } else {
      row0[i] = SIZE_MAX;
    }
    inputs.push_back(in);
  }
  logits_.resize(std::max<size_t>(rows, 1) * static_cast<size_t>(V));
  for (size_t i = 0; i < batch.size(); ++i) {
    if (row0[i] != SIZE_MAX) inputs[i].logits = logits_.data() + row0[i] * static_cast<size_t>(V);
  }
  std::vector<int64_t> starts(batch.size());
  // What each tenant computes in this step (sequences may finish and go below).
  std::map<int32_t, StepUsage> use;
  for (size_t i = 0; i < batch.size(); ++i) {
    const Sequence& s = *batch[i].s;
    starts[i] = s.cache.length();
    StepUsage& u = use[s.tenant()];
    (starts[i] < static_cast<int64_t>(s.req->options().prompt.size()) ? u.prefill_tokens
                                                                       : u.decode_tokens) +=
        batch[i].n;
  }
  try {
    model_.forward(inputs, ws_, threads_);
  } catch (const std::exception& e) {
    for (auto& item : batch) finish(*item.s, FinishReason::kError, e.what());
    std::erase_if(running_, [](const auto& s) { return s->done; });
    refresh_stats();
    return true;
  }
  ++stats_.steps;

  // 5. Score prompt tokens; sample where a sequence caught up with its tokens.
  for (size_t i = 0; i < batch.size(); ++i) {
    Sequence& s = *batch[i].s;
    publish_full_blocks(s);
    if (inputs[i].logits == nullptr) continue;
    const float* last = inputs[i].logits;
    if (inputs[i].all_logits) {
      score_prompt(s, starts[i], batch[i].n, inputs[i].logits);
      last = inputs[i].logits + static_cast<size_t>(batch[i].n - 1) * static_cast<size_t>(V);
    }
    const bool samples = s.cache.length() == static_cast<int64_t>(s.tokens.size());
    if (!samples) continue;
    if (s.generated == 0 && s.req->options().prompt_logprobs_from >= 1) {
      s.req->set_prompt_logprobs(s.prompt_lp);
      if (s.req->options().max_tokens == 0) {
        finish(s, FinishReason::kLength);
        continue;
      }
    }
    on_token(s, last);
  }
  std::erase_if(running_, [](const auto& s) { return s->done; });
  refresh_stats();

  if (policy_ != nullptr) {
    for (auto& s : running_) {
      StepUsage& u = use[s->tenant()];
      ++u.running;
      u.kv_blocks += static_cast<int64_t>(s->cache.block_table().size());
    }
    for (auto& s : waiting_) {
      StepUsage& u = use[s->tenant()];
      ++u.waiting;
      u.waiting_blocks += (static_cast<int64_t>(s->tokens.size()) + opts_.block_size) / opts_.block_size;
    }
    std::vector<StepUsage> flat;
    flat.reserve(use.size());
    for (auto& [t, u] : use) {
      u.tenant = t;
      flat.push_back(u);
    }
    policy_->on_step(this, flat, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return true;
}

void Scheduler::score_prompt(Sequence& s, int64_t start, int64_t n, const float* logits) {
  const int64_t V = model_.vocab_size();
  const int64_t from = s.req->options().prompt_logprobs_from;
  const int64_t plen = static_cast<int64_t>(s.req->options().prompt.size());
  s.prompt_lp.resize(static_cast<size_t>(plen - from), 0.0f);
  for (int64_t j = 0; j < n; ++j) {
    const int64_t target = start + j + 1;  // the token this row predicts
    if (target < from || target >= plen) continue;
    const float* row = logits + static_cast<size_t>(j) * static_cast<size_t>(V);
    float mx = row[0];
    for (int64_t v = 1; v < V; ++v) mx = std::max(mx, row[v]);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v] - mx));
    const double lse = mx + std::log(sum);
    s.prompt_lp[static_cast<size_t>(target - from)] =
        static_cast<float>(row[s.tokens[static_cast<size_t>(target)]] - lse);
  }
}

void Scheduler::on_token(Sequence& s, const float* logits_row) {
  const RequestOptions& o = s.req->options();
  const int64_t V = model_.vocab_size();
  std::span<float> row(const_cast<float*>(logits_row), static_cast<size_t>(V));
  TokenEvent ev;
  // Logprobs of the model's own distribution, before temperature and filters.
  std::vector<float> raw;
  double lse = 0;
  if (o.top_logprobs >= 0) {
    raw.assign(row.begin(), row.end());
    const float mx = *std::max_element(raw.begin(), raw.end());
    double sum = 0;
    for (float v : raw) sum += std::exp(static_cast<double>(v - mx));
    lse = mx + std::log(sum);
    if (o.top_logprobs > 0) {
      std::vector<int32_t> idx(raw.size());
      std::iota(idx.begin(), idx.end(), 0);
      const auto k = static_cast<size_t>(std::min<int64_t>(o.top_logprobs, V));
      std::partial_sort(
          idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
          [&](int32_t a, int32_t b) {
            return raw[static_cast<size_t>(a)] > raw[static_cast<size_t>(b)] ||
                   (raw[static_cast<size_t>(a)] == raw[static_cast<size_t>(b)] && a < b);
          });
      for (size_t j = 0; j < k; ++j) {
        ev.top.push_back({idx[j], static_cast<float>(raw[static_cast<size_t>(idx[j])] - lse)});
      }
    }
  }
  if (o.constraint) {
    o.constraint->mask(row);
    if (std::none_of(row.begin(), row.end(), [](float v) { return v > -INFINITY; })) {
      finish(s, FinishReason::kError, "the output constraint allows no next token");
      return;
    }
  }
  const int32_t tok = s.sampler.sample(row, s.tokens);
  if (o.constraint) o.constraint->accept(tok);
  ev.token = tok;
  if (o.top_logprobs >= 0) ev.logprob = static_cast<float>(raw[static_cast<size_t>(tok)] - lse);

  s.tokens.push_back(tok);
  ++s.generated;
  ++stats_.generated_tokens;
  const auto now = Clock::now();
  if (s.generated == 1) {
    s.first_token = now;
    stats_.ttft.observe(std::chrono::duration<double>(now - s.submitted).count());
    if (policy_ != nullptr) {
      policy_->on_first_token(s.tenant(), std::chrono::duration<double>(now - s.submitted).count());
    }
  } else {
    stats_.itl.observe(std::chrono::duration<double>(now - s.last_token).count());
  }
  s.last_token = now;

  const bool eos = !o.ignore_eos && std::find(eos_.begin(), eos_.end(), tok) != eos_.end();
  if (s.decoder && !eos) s.held += s.decoder->push(tok);
  FinishReason fr = FinishReason::kNone;
  std::string emit;
  if (s.decoder && !o.stop.empty()) {
    size_t best = std::string::npos;
    for (const auto& st : o.stop) {
      if (st.empty()) continue;
      best = std::min(best, s.held.find(st));
    }
    if (best != std::string::npos) {
      emit = s.held.substr(0, best);
      s.held.clear();
      fr = FinishReason::kStop;
    }
  }
  if (fr == FinishReason::kNone) {
    if (eos || (o.constraint && o.constraint->complete())) {
      fr = FinishReason::kStop;
    } else if (s.generated >= o.max_tokens ||
               static_cast<int64_t>(s.tokens.size()) >= max_context_) {
      fr = FinishReason::kLength;
    }
    if (fr != FinishReason::kNone) {
      if (s.decoder) s.held += s.decoder->flush();
      emit = std::move(s.held);
      s.held.clear();
    } else {
      // Hold back the longest tail that could still grow into a stop string.
      size_t keep = 0;
      for (const auto& st : o.stop) {
        for (size_t len = std::min(st.size() - (st.empty() ? 0 : 1), s.held.size()); len > keep;
             --len) {
          if (s.held.compare(s.held.size() - len, len, st, 0, len) == 0) {
            keep = len;
            break;
          }
        }
      }
      emit = s.held.substr(0, s.held.size() - keep);
      s.held.erase(0, s.held.size() - keep);
    }
  }
  ev.text = std::move(emit);
  s.req->push(std::move(ev));
  if (fr != FinishReason::kNone) finish(s, fr);
}

void Scheduler::set_kv_limit(int64_t blocks) {
  pool_->set_limit(blocks);
  refresh_stats();
}

std::map<int32_t, int64_t> Scheduler::waiting_by_tenant() const {
  std::map<int32_t, int64_t> out;
  for (const auto& s : waiting_) ++out[s->tenant()];
  return out;
}

std::vector<int32_t> Scheduler::active_tenants() const {
  std::vector<int32_t> out;
  auto add = [&](int32_t t) {
    if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  };
  for (const auto& s : running_) add(s->tenant());
  for (const auto& s : waiting_) add(s->tenant());
  return out;
}

void Scheduler::refresh_stats() {
  stats_.running = static_cast<int64_t>(running_.size());
  stats_.waiting = static_cast<int64_t>(waiting_.size());
  stats_.kv_blocks_used = pool_->used();
  stats_.kv_blocks_total = pool_->limit();
  stats_.kv_blocks_cached = pool_->cached();
}

}  // namespace tandem::engine
