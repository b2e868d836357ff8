#include "engine/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
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
  Clock::time_point submitted, last_token;

  Sequence(std::shared_ptr<Request> r, models::KvCache c)
      : req(std::move(r)),
        tokens(req->options().prompt),
        cache(std::move(c)),
        sampler(req->options().sampling) {}
  int64_t pending() const { return static_cast<int64_t>(tokens.size()) - cache.length(); }
};

Scheduler::Scheduler(const models::Model& model, const tokenizer::Tokenizer* tok,
                     SchedulerOptions opts, ThreadPool& pool)
    : model_(model), tok_(tok), opts_(opts), threads_(pool) {
  const auto& cfg = model.config();
  max_context_ = opts_.max_context > 0
                     ? std::min<int64_t>(opts_.max_context, cfg.max_position_embeddings)
                     : cfg.max_position_embeddings;
  if (opts_.block_size <= 0) throw Error("block size must be positive");
  if (opts_.max_batch_tokens <= 0) throw Error("max batch tokens must be positive");
  if (opts_.max_running <= 0) throw Error("max running sequences must be positive");
  const int64_t per_context = (max_context_ + opts_.block_size - 1) / opts_.block_size;
  const int64_t blocks = opts_.kv_blocks > 0 ? opts_.kv_blocks : 8 * per_context;
  pool_ = std::make_shared<models::KvBlockPool>(
      cfg.num_hidden_layers, cfg.num_key_value_heads * cfg.head_dim, opts_.block_size, blocks);
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
  if (o.max_tokens < 1) throw Error("max_tokens must be at least 1");
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
  const int64_t full = (static_cast<int64_t>(s.tokens.size()) - 1) / bs;
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
  // 1. Requests whose client left.
  for (auto& s : running_) {
    if (s->req->cancelled()) finish(*s, FinishReason::kCancelled);
  }
  std::erase_if(running_, [](const auto& s) { return s->done; });
  for (auto& s : waiting_) {
    if (s->req->cancelled()) finish(*s, FinishReason::kCancelled);
  }
  std::erase_if(waiting_, [](const auto& s) { return s->done; });
  std::sort(running_.begin(), running_.end(),
            [](const auto& a, const auto& b) { return a->arrival < b->arrival; });

  struct Item {
    Sequence* s;
    int64_t n;
  };
  std::vector<Item> batch;
  int64_t budget = opts_.max_batch_tokens;

  // Moves the newest running sequence back to the queue; false when `self` is the newest.
  auto preempt_newest = [&](Sequence* self) {
    Sequence* victim = running_.back().get();
    if (victim == self) return false;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].s == victim) {
        budget += batch[i].n;
        batch.erase(batch.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
    }
    preempt(*victim);
    waiting_.push_front(std::move(running_.back()));
    running_.pop_back();
    return true;
  };

  // 2. Running sequences: decodes first, then prefill chunks, oldest first.
  std::vector<Sequence*> order;
  for (auto& s : running_) {
    if (s->pending() == 1) order.push_back(s.get());
  }
  for (auto& s : running_) {
    if (s->pending() > 1) order.push_back(s.get());
  }
  for (Sequence* s : order) {
    if (budget == 0) break;
    if (std::none_of(running_.begin(), running_.end(), [&](const auto& r) { return r.get() == s; }))
      continue;
    const int64_t n = std::min(s->pending(), budget);
    bool ok = true;
    while (!s->cache.try_reserve(s->cache.length() + n)) {
      if (!preempt_newest(s)) {
        ok = false;
        break;
      }
    }
    if (ok) {
      batch.push_back({s, n});
      budget -= n;
      continue;
    }
    // `s` is the newest and nothing else can give way.
    if (running_.size() == 1) {
      // Alone and still no room: the pool cannot hold this sequence any longer.
      finish(*s, s->generated > 0 ? FinishReason::kLength : FinishReason::kError,
             "the KV cache pool is too small for this sequence");
      running_.clear();
    } else {
      preempt_newest(nullptr);
    }
  }

  // 3. Admit waiting requests (never by preempting running ones).
  while (budget > 0 && !waiting_.empty() &&
         static_cast<int64_t>(running_.size()) < opts_.max_running) {
    Sequence& s = *waiting_.front();
    if (s.cache.length() == 0 && opts_.prefix_caching) match_prefix(s);
    const int64_t n = std::min(s.pending(), budget);
    if (!s.cache.try_reserve(s.cache.length() + n)) {
      if (running_.empty() && batch.empty()) {
        finish(s, s.generated > 0 ? FinishReason::kLength : FinishReason::kError,
               "the KV cache pool is too small for this sequence");
        waiting_.pop_front();
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
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }

  last_step_tokens_ = opts_.max_batch_tokens - budget;
  if (batch.empty()) {
    refresh_stats();
    return false;
  }

  // 4. One forward pass over the batch.
  const int64_t V = model_.vocab_size();
  logits_.resize(batch.size() * static_cast<size_t>(V));
  std::vector<models::SeqInput> inputs;
  inputs.reserve(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    Sequence& s = *batch[i].s;
    const int64_t start = s.cache.length();
    const bool samples = start + batch[i].n == static_cast<int64_t>(s.tokens.size());
    models::SeqInput in;
    in.tokens = std::span<const int32_t>(s.tokens.data() + start, static_cast<size_t>(batch[i].n));
    in.cache = &s.cache;
    in.logits = samples ? logits_.data() + i * static_cast<size_t>(V) : nullptr;
    inputs.push_back(in);
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

  // 5. Sample where a sequence caught up with its tokens.
  for (size_t i = 0; i < batch.size(); ++i) {
    Sequence& s = *batch[i].s;
    publish_full_blocks(s);
    if (inputs[i].logits != nullptr) on_token(s, inputs[i].logits);
  }
  std::erase_if(running_, [](const auto& s) { return s->done; });
  refresh_stats();
  return true;
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
  const int32_t tok = s.sampler.sample(row, s.tokens);
  ev.token = tok;
  if (o.top_logprobs >= 0) ev.logprob = static_cast<float>(raw[static_cast<size_t>(tok)] - lse);

  s.tokens.push_back(tok);
  ++s.generated;
  ++stats_.generated_tokens;
  const auto now = Clock::now();
  if (s.generated == 1) {
    stats_.ttft.observe(std::chrono::duration<double>(now - s.submitted).count());
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
    if (eos) {
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

void Scheduler::refresh_stats() {
  stats_.running = static_cast<int64_t>(running_.size());
  stats_.waiting = static_cast<int64_t>(waiting_.size());
  stats_.kv_blocks_used = pool_->used();
  stats_.kv_blocks_total = pool_->capacity();
  stats_.kv_blocks_cached = pool_->cached();
}

}  // namespace tandem::engine
