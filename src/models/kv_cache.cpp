#include "models/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "base/error.h"

namespace tandem::models {

// ---- KvBlockPool ----

KvBlockPool::KvBlockPool(int64_t n_layers, int64_t kv_dim, int64_t block_size, int64_t max_blocks)
    : n_layers_(n_layers), kv_dim_(kv_dim), block_size_(block_size), max_blocks_(max_blocks),
      limit_(max_blocks) {
  TANDEM_CHECK(n_layers > 0 && kv_dim > 0 && block_size > 0 && max_blocks >= 0,
               "KvBlockPool: bad dimensions");
  TANDEM_CHECK(max_blocks <= INT32_MAX, "KvBlockPool: too many blocks");
}

KvBlockPool::Block& KvBlockPool::at(int32_t block) {
  TANDEM_CHECK(block >= 0 && static_cast<size_t>(block) < blocks_.size(),
               "KvBlockPool: block id out of range");
  return blocks_[static_cast<size_t>(block)];
}

std::optional<int32_t> KvBlockPool::allocate() {
  if (used_ >= limit_) return std::nullopt;
  int32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else if (static_cast<int64_t>(blocks_.size()) < max_blocks_ && resident_ < limit_) {
    blocks_.emplace_back();
    id = static_cast<int32_t>(blocks_.size() - 1);
  } else if (!lru_.empty()) {
    id = lru_.front();
    unpublish(id);  // also leaves the LRU list
  } else {
    return std::nullopt;
  }
  Block& b = at(id);
  if (b.data.size() == 0) {  // new, or its storage was given back under a lower limit
    b.data.resize(static_cast<size_t>(floats_per_block()));
    ++resident_;
  }
  b.ref = 1;
  ++used_;
  return id;
}

void KvBlockPool::retain(int32_t block) {
  Block& b = at(block);
  if (b.ref == 0) {
    // A cached block comes back into use.
    TANDEM_CHECK(b.published, "KvBlockPool::retain of a free block");
    lru_.erase(b.lru_pos);
    ++used_;
  }
  ++b.ref;
}

void KvBlockPool::release(int32_t block) {
  Block& b = at(block);
  TANDEM_CHECK(b.ref > 0, "KvBlockPool::release of a block nobody holds");
  if (--b.ref > 0) return;
  --used_;
  if (b.published) {
    b.lru_pos = lru_.insert(lru_.end(), block);
  } else {
    free_.push_back(block);
  }
  if (resident_ > limit_) trim();
}

void KvBlockPool::set_limit(int64_t blocks) {
  limit_ = std::clamp<int64_t>(blocks, 0, max_blocks_);
  trim();
}

void KvBlockPool::trim() {
  // Cached blocks first (oldest release first), then plain free ones.
  while (resident_ > limit_ && !lru_.empty()) {
    const int32_t id = lru_.front();
    unpublish(id);
    at(id).data.resize(0);
    --resident_;
    free_.push_back(id);
  }
  for (size_t i = free_.size(); i-- > 0 && resident_ > limit_;) {
    Block& b = at(free_[i]);
    if (b.data.size() == 0) continue;
    b.data.resize(0);
    --resident_;
  }
}

int32_t KvBlockPool::refcount(int32_t block) const {
  TANDEM_CHECK(block >= 0 && static_cast<size_t>(block) < blocks_.size(),
               "KvBlockPool: block id out of range");
  return blocks_[static_cast<size_t>(block)].ref;
}

uint64_t KvBlockPool::chain_hash(uint64_t parent, std::span<const int32_t> tokens) {
  // FNV-1a over the parent hash and the ids, then a 64-bit finalizer (splitmix)
  // so that nearby inputs spread over the whole range.
  uint64_t h = 0xcbf29ce484222325ULL;
  auto mix = [&h](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 0x100000001b3ULL;
    }
  };
  mix(parent);
  for (int32_t t : tokens) mix(static_cast<uint32_t>(t));
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

std::optional<int32_t> KvBlockPool::lookup(uint64_t parent, std::span<const int32_t> tokens) {
  const uint64_t h = chain_hash(parent, tokens);
  auto [lo, hi] = index_.equal_range(h);
  for (auto it = lo; it != hi; ++it) {
    Block& b = at(it->second);
    if (b.parent == parent &&
        std::equal(b.tokens.begin(), b.tokens.end(), tokens.begin(), tokens.end())) {
      retain(it->second);
      return it->second;
    }
  }
  return std::nullopt;
}

void KvBlockPool::publish(int32_t block, uint64_t parent, std::span<const int32_t> tokens) {
  Block& b = at(block);
  TANDEM_CHECK(b.ref > 0, "KvBlockPool::publish of a free block");
  TANDEM_CHECK(static_cast<int64_t>(tokens.size()) == block_size_,
               "KvBlockPool::publish of a partial block");
  if (b.published) return;
  const uint64_t h = chain_hash(parent, tokens);
  auto [lo, hi] = index_.equal_range(h);
  for (auto it = lo; it != hi; ++it) {
    const Block& o = blocks_[static_cast<size_t>(it->second)];
    if (o.parent == parent &&
        std::equal(o.tokens.begin(), o.tokens.end(), tokens.begin(), tokens.end()))
      return;
  }
  b.published = true;
  b.hash = h;
  b.parent = parent;
  b.tokens.assign(tokens.begin(), tokens.end());
  index_.emplace(h, block);
}

bool KvBlockPool::is_published(int32_t block) const {
  TANDEM_CHECK(block >= 0 && static_cast<size_t>(block) < blocks_.size(),
               "KvBlockPool: block id out of range");
  return blocks_[static_cast<size_t>(block)].published;
}

void KvBlockPool::unpublish(int32_t block) {
  Block& b = at(block);
  if (!b.published) return;
  auto [lo, hi] = index_.equal_range(b.hash);
  for (auto it = lo; it != hi; ++it) {
    if (it->second == block) {
      index_.erase(it);
      break;
    }
  }
  if (b.ref == 0) lru_.erase(b.lru_pos);
  b.published = false;
  b.tokens.clear();
}

float* KvBlockPool::keys(int32_t block, int64_t layer) {
  return at(block).data.data() + (layer * 2) * block_size_ * kv_dim_;
}

float* KvBlockPool::values(int32_t block, int64_t layer) {
  return at(block).data.data() + (layer * 2 + 1) * block_size_ * kv_dim_;
}

// ---- KvCache ----

KvCache::KvCache(int64_t n_layers, int64_t kv_dim, int64_t max_tokens, int64_t block_size)
    : pool_(std::make_shared<KvBlockPool>(n_layers, kv_dim, block_size,
                                          (max_tokens + block_size - 1) / block_size)),
      max_tokens_(max_tokens) {}

KvCache::KvCache(std::shared_ptr<KvBlockPool> pool, int64_t max_tokens)
    : pool_(std::move(pool)), max_tokens_(max_tokens) {
  TANDEM_CHECK(pool_ != nullptr, "KvCache: no pool");
}

KvCache::~KvCache() {
  clear();
}

KvCache::KvCache(KvCache&& o) noexcept
    : pool_(o.pool_),
      max_tokens_(o.max_tokens_),
      length_(std::exchange(o.length_, 0)),
      blocks_(std::move(o.blocks_)) {
  o.blocks_.clear();
}

KvCache& KvCache::operator=(KvCache&& o) noexcept {
  if (this != &o) {
    clear();
    pool_ = o.pool_;
    max_tokens_ = o.max_tokens_;
    length_ = std::exchange(o.length_, 0);
    blocks_ = std::move(o.blocks_);
    o.blocks_.clear();
  }
  return *this;
}

int64_t KvCache::blocks_needed(int64_t n) const {
  const int64_t bs = pool_->block_size();
  return std::max<int64_t>(0, (n + bs - 1) / bs - static_cast<int64_t>(blocks_.size()));
}

bool KvCache::try_reserve(int64_t n) {
  if (n > max_tokens_) {
    throw Error("context length exceeded: " + std::to_string(n) + " tokens > the maximum of " +
                std::to_string(max_tokens_));
  }
  const int64_t need = blocks_needed(n);
  if (need == 0) return true;
  if (need > pool_->available()) return false;
  for (int64_t i = 0; i < need; ++i) {
    auto b = pool_->allocate();
    TANDEM_CHECK(b.has_value(), "KvBlockPool::available() promised a block");
    blocks_.push_back(*b);
  }
  return true;
}

void KvCache::reserve(int64_t n) {
  if (!try_reserve(n)) {
    throw Error("KV cache is full: " + std::to_string(blocks_needed(n)) + " more blocks needed, " +
                std::to_string(pool_->available()) + " available");
  }
}

void KvCache::truncate(int64_t n) {
  if (n < 0 || n > length_) throw Error("KvCache::truncate: position out of range");
  const int64_t bs = pool_->block_size();
  const size_t keep = static_cast<size_t>((n + bs - 1) / bs);
  while (blocks_.size() > keep) {
    pool_->release(blocks_.back());
    blocks_.pop_back();
  }
  length_ = n;
  // The next write lands in block n / bs; if other sequences share it or it is
  // published under its full contents, write into a private copy instead.
  if (n % bs != 0) {
    const int32_t last = blocks_.back();
    if (pool_->refcount(last) > 1 || pool_->is_published(last)) {
      auto fresh = pool_->allocate();
      if (!fresh) throw Error("KV cache is full: no block for a copy on write");
      for (int64_t l = 0; l < pool_->n_layers(); ++l) {
        const size_t rows = static_cast<size_t>((n % bs) * pool_->kv_dim()) * sizeof(float);
        std::memcpy(pool_->keys(*fresh, l), pool_->keys(last, l), rows);
        std::memcpy(pool_->values(*fresh, l), pool_->values(last, l), rows);
      }
      pool_->release(last);
      blocks_.back() = *fresh;
    }
  }
}

void KvCache::set_length(int64_t n) {
  TANDEM_CHECK(n >= 0 && n <= capacity(), "KvCache::set_length beyond reserved capacity");
  length_ = n;
}

void KvCache::clear() {
  if (pool_) {
    for (int32_t b : blocks_) pool_->release(b);
  }
  blocks_.clear();
  length_ = 0;
}

uint64_t KvCache::bytes() const {
  return static_cast<uint64_t>(blocks_.size()) * pool_->block_bytes();
}

void KvCache::adopt_block(int32_t block) {
  TANDEM_CHECK(length_ == capacity(), "KvCache::adopt_block not at a block boundary");
  TANDEM_CHECK(length_ + pool_->block_size() <= max_tokens_,
               "KvCache::adopt_block past max_tokens");
  blocks_.push_back(block);
  length_ += pool_->block_size();
}

float* KvCache::key_row(int64_t layer, int64_t pos) {
  const int64_t bs = pool_->block_size();
  return pool_->keys(blocks_[static_cast<size_t>(pos / bs)], layer) + (pos % bs) * pool_->kv_dim();
}

float* KvCache::value_row(int64_t layer, int64_t pos) {
  const int64_t bs = pool_->block_size();
  return pool_->values(blocks_[static_cast<size_t>(pos / bs)], layer) +
         (pos % bs) * pool_->kv_dim();
}

}  // namespace tandem::models
