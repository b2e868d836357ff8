// Paged KV cache. Keys and values live in fixed-size blocks of `block_size`
// token positions held by a KvBlockPool; a sequence's KvCache is a block table
// (the pool's block ids, in position order) plus a length. Blocks are
// refcounted so sequences with a common prompt prefix share them without
// copying, and full blocks can be published under a chained hash of their
// token ids so later sequences find them (prefix reuse). A block nobody holds
// but that still carries a hash stays cached until the pool needs it back,
// least recently released first.
//
// The pool lives in models/ because the forward pass reads it; the scheduler
// (engine/) decides which sequences get blocks. Neither class is thread-safe:
// one engine thread owns a pool and its caches.
#pragma once

#include <algorithm>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "base/aligned_buffer.h"

namespace tandem::models {

class KvBlockPool {
 public:
  static constexpr int64_t kDefaultBlockSize = 16;

  // Storage of a block is allocated the first time it is handed out, so a
  // large max_blocks costs nothing until used.
  KvBlockPool(int64_t n_layers, int64_t kv_dim, int64_t block_size, int64_t max_blocks);
  KvBlockPool(const KvBlockPool&) = delete;
  KvBlockPool& operator=(const KvBlockPool&) = delete;

  int64_t n_layers() const { return n_layers_; }
  int64_t kv_dim() const { return kv_dim_; }
  int64_t block_size() const { return block_size_; }
  int64_t capacity() const { return max_blocks_; }
  // Blocks that may be held at once, <= capacity(); the resource manager moves it as the
  // device's KV memory shifts between engines. Blocks whose storage would exceed it are
  // freed (cached ones first) as soon as nobody holds them.
  int64_t limit() const { return limit_; }
  void set_limit(int64_t blocks);
  // Blocks with storage allocated (held, free or cached).
  int64_t resident() const { return resident_; }
  // Blocks held by at least one sequence.
  int64_t used() const { return used_; }
  // Blocks that allocate() can hand out now: never used, released, or cached (evictable).
  int64_t available() const { return std::max<int64_t>(0, limit_ - used_); }
  int64_t cached() const { return static_cast<int64_t>(lru_.size()); }
  uint64_t block_bytes() const { return static_cast<uint64_t>(floats_per_block()) * sizeof(float); }

  // A block with refcount 1 and no hash, or nullopt when every block is held.
  // Evicts the least recently released cached block when no plain free one is left.
  std::optional<int32_t> allocate();
  void retain(int32_t block);
  void release(int32_t block);
  int32_t refcount(int32_t block) const;

  // Prefix reuse. chain_hash(parent, tokens) identifies a full block by its
  // own token ids and every token before it (through the parent's hash).
  static uint64_t chain_hash(uint64_t parent, std::span<const int32_t> tokens);
  static constexpr uint64_t kRootHash = 0x6a09e667f3bcc908ULL;
  // The cached block for (parent hash, tokens), retained for the caller; the
  // tokens are compared too, so a hash collision is a miss, never wrong keys.
  std::optional<int32_t> lookup(uint64_t parent, std::span<const int32_t> tokens);
  // Records a full, held block under its hash. A second block with the same
  // contents is left unpublished (it is freed normally).
  void publish(int32_t block, uint64_t parent, std::span<const int32_t> tokens);
  bool is_published(int32_t block) const;

  float* keys(int32_t block, int64_t layer);
  float* values(int32_t block, int64_t layer);

 private:
  struct Block {
    int32_t ref = 0;
    bool published = false;
    uint64_t hash = 0;
    uint64_t parent = 0;
    std::vector<int32_t> tokens;           // of a published block, for the collision check
    std::list<int32_t>::iterator lru_pos;  // valid while cached (ref 0, published)
    AlignedBuffer<float> data;             // [layer][K, V][block_size][kv_dim]
  };
  int64_t floats_per_block() const { return n_layers_ * 2 * block_size_ * kv_dim_; }
  void unpublish(int32_t block);
  void trim();  // frees unheld storage down to limit_
  Block& at(int32_t block);

  int64_t n_layers_, kv_dim_, block_size_, max_blocks_;
  int64_t limit_;
  int64_t used_ = 0;
  int64_t resident_ = 0;
  std::vector<Block> blocks_;  // grows up to max_blocks_
  std::vector<int32_t> free_;  // released, unpublished
  std::list<int32_t> lru_;     // released, published: oldest release first
  std::unordered_multimap<uint64_t, int32_t> index_;
};

class KvCache {
 public:
  // A cache with a private pool that grows on demand (generate(), the CLI, tests).
  KvCache(int64_t n_layers, int64_t kv_dim, int64_t max_tokens,
          int64_t block_size = KvBlockPool::kDefaultBlockSize);
  // A cache drawing blocks from a shared pool (the serving engine).
  KvCache(std::shared_ptr<KvBlockPool> pool, int64_t max_tokens);
  ~KvCache();
  KvCache(KvCache&& o) noexcept;
  KvCache& operator=(KvCache&& o) noexcept;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int64_t length() const { return length_; }
  int64_t max_tokens() const { return max_tokens_; }
  int64_t kv_dim() const { return pool_->kv_dim(); }
  int64_t block_size() const { return pool_->block_size(); }
  int64_t capacity() const { return static_cast<int64_t>(blocks_.size()) * pool_->block_size(); }
  // Makes room for n tokens in total; throws tandem::Error past max_tokens or
  // when the pool has no block left (then nothing was taken).
  void reserve(int64_t n);
  // Like reserve() but returns false instead of throwing when the pool is out of blocks.
  bool try_reserve(int64_t n);
  // Blocks reserve(n) would take from the pool.
  int64_t blocks_needed(int64_t n) const;
  // Forget everything from position n on (n <= length()); whole blocks past n
  // go back to the pool, and a shared last block is copied before it can be written.
  void truncate(int64_t n);
  void set_length(int64_t n);
  // Releases every block (length 0).
  void clear();
  uint64_t bytes() const;

  // Appends a block the caller already retained for this cache (a prefix hit);
  // only at a block boundary, and the length moves past it.
  void adopt_block(int32_t block);
  const std::vector<int32_t>& block_table() const { return blocks_; }
  KvBlockPool& pool() { return *pool_; }

  float* key_row(int64_t layer, int64_t pos);
  float* value_row(int64_t layer, int64_t pos);

 private:
  std::shared_ptr<KvBlockPool> pool_;
  int64_t max_tokens_ = 0;
  int64_t length_ = 0;
  std::vector<int32_t> blocks_;
};

}  // namespace tandem::models
