// The paged KV cache: block pool refcounts, prefix index, LRU eviction,
// copy-on-write, and the paged attention kernel against the contiguous one.
#include "models/kv_cache.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "base/error.h"
#include "kernels/cpu/ops.h"

namespace tandem {
namespace {

using models::KvBlockPool;
using models::KvCache;

std::vector<int32_t> ids(int32_t start, int n) {
  std::vector<int32_t> v;
  for (int i = 0; i < n; ++i) v.push_back(start + i);
  return v;
}

TEST(KvBlockPool, AllocatesUntilFullAndRecyclesReleased) {
  KvBlockPool pool(2, 8, 4, 3);
  auto a = pool.allocate(), b = pool.allocate(), c = pool.allocate();
  ASSERT_TRUE(a && b && c);
  EXPECT_FALSE(pool.allocate().has_value());
  EXPECT_EQ(pool.used(), 3);
  pool.retain(*b);
  pool.release(*b);
  EXPECT_EQ(pool.refcount(*b), 1);
  pool.release(*b);
  EXPECT_EQ(pool.used(), 2);
  auto d = pool.allocate();
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, *b);
  EXPECT_EQ(pool.refcount(*a), 1);
}

TEST(KvBlockPool, DoubleReleaseIsACheckedError) {
  KvBlockPool pool(1, 4, 4, 2);
  auto a = pool.allocate();
  pool.release(*a);
  EXPECT_THROW(pool.release(*a), Error);
}

TEST(KvBlockPool, PublishedBlocksAreFoundAndEvictedLeastRecentlyReleasedFirst) {
  KvBlockPool pool(1, 4, 4, 3);
  const auto t1 = ids(10, 4), t2 = ids(20, 4), t3 = ids(30, 4);
  auto a = *pool.allocate(), b = *pool.allocate(), c = *pool.allocate();
  pool.publish(a, KvBlockPool::kRootHash, t1);
  pool.publish(b, KvBlockPool::kRootHash, t2);
  pool.publish(c, KvBlockPool::kRootHash, t3);
  pool.release(b);
  pool.release(a);
  pool.release(c);
  EXPECT_EQ(pool.used(), 0);
  EXPECT_EQ(pool.cached(), 3);
  // A hit revives the block without copying.
  auto hit = pool.lookup(KvBlockPool::kRootHash, t1);
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit, a);
  EXPECT_EQ(pool.refcount(a), 1);
  // Same tokens under another parent, or other tokens: a miss.
  EXPECT_FALSE(pool.lookup(12345, t1));
  EXPECT_FALSE(pool.lookup(KvBlockPool::kRootHash, ids(11, 4)));
  // Allocation evicts b (released first), then c.
  auto x = pool.allocate();
  ASSERT_TRUE(x);
  EXPECT_EQ(*x, b);
  EXPECT_FALSE(pool.lookup(KvBlockPool::kRootHash, t2));
  auto y = pool.allocate();
  EXPECT_EQ(*y, c);
  EXPECT_FALSE(pool.allocate());
}

TEST(KvBlockPool, ChainHashDependsOnParentAndTokens) {
  const auto t = ids(1, 16);
  const uint64_t h1 = KvBlockPool::chain_hash(KvBlockPool::kRootHash, t);
  EXPECT_EQ(h1, KvBlockPool::chain_hash(KvBlockPool::kRootHash, t));
  EXPECT_NE(h1, KvBlockPool::chain_hash(h1, t));
  EXPECT_NE(h1, KvBlockPool::chain_hash(KvBlockPool::kRootHash, ids(2, 16)));
}

TEST(KvCache, SharedBlocksAreCopiedBeforeAWrite) {
  auto pool = std::make_shared<KvBlockPool>(2, 3, 4, 8);
  KvCache a(pool, 100);
  a.reserve(8);
  for (int64_t p = 0; p < 8; ++p) a.key_row(1, p)[0] = static_cast<float>(p);
  a.set_length(8);
  // b shares both blocks of a.
  KvCache b(pool, 100);
  for (int32_t blk : a.block_table()) {
    pool->retain(blk);
    b.adopt_block(blk);
  }
  EXPECT_EQ(b.length(), 8);
  EXPECT_EQ(pool->used(), 2);
  b.truncate(6);  // the last block is shared: b gets its own copy
  EXPECT_EQ(pool->used(), 3);
  EXPECT_NE(b.block_table()[1], a.block_table()[1]);
  EXPECT_EQ(b.block_table()[0], a.block_table()[0]);
  EXPECT_EQ(b.key_row(1, 5)[0], 5.0f);
  b.reserve(7);
  b.key_row(1, 6)[0] = -1.0f;
  b.set_length(7);
  EXPECT_EQ(a.key_row(1, 6)[0], 6.0f);
  b.clear();
  a.clear();
  EXPECT_EQ(pool->used(), 0);
}

TEST(KvCache, ReserveFailsCleanlyWhenThePoolIsDry) {
  auto pool = std::make_shared<KvBlockPool>(1, 2, 4, 2);
  KvCache a(pool, 100);
  EXPECT_TRUE(a.try_reserve(8));
  KvCache b(pool, 100);
  EXPECT_FALSE(b.try_reserve(1));
  EXPECT_THROW(b.reserve(1), Error);
  EXPECT_EQ(b.capacity(), 0);
  EXPECT_THROW(a.reserve(101), Error);
}

TEST(PagedAttention, EqualsContiguousAttentionBitForBit) {
  ThreadPool tp(2);
  for (int64_t bs : {1, 3, 16}) {
    for (int64_t window : {0, 5}) {
      const int64_t n_heads = 4, n_kv = 2, hd = 8, kvs = n_kv * hd, pos0 = 13, n_q = 7,
                    T = pos0 + n_q;
      std::mt19937 rng(static_cast<uint32_t>(bs * 10 + window));
      std::normal_distribution<float> nd;
      std::vector<float> q(static_cast<size_t>(n_q * n_heads * hd)),
          k(static_cast<size_t>(T * kvs)), v(static_cast<size_t>(T * kvs));
      for (auto* vec : {&q, &k, &v}) {
        for (auto& x : *vec) x = nd(rng);
      }
      // Scatter rows over blocks in reverse order.
      const int64_t nb = (T + bs - 1) / bs;
      std::vector<std::vector<float>> kb(static_cast<size_t>(nb)), vb(static_cast<size_t>(nb));
      std::vector<const float*> kp, vp;
      for (int64_t b = 0; b < nb; ++b) {
        kb[static_cast<size_t>(nb - 1 - b)].assign(static_cast<size_t>(bs * kvs), 0.0f);
        vb[static_cast<size_t>(nb - 1 - b)].assign(static_cast<size_t>(bs * kvs), 0.0f);
      }
      for (int64_t b = 0; b < nb; ++b) {
        kp.push_back(kb[static_cast<size_t>(nb - 1 - b)].data());
        vp.push_back(vb[static_cast<size_t>(nb - 1 - b)].data());
      }
      for (int64_t j = 0; j < T; ++j) {
        std::copy_n(k.data() + j * kvs, kvs,
                    const_cast<float*>(kp[static_cast<size_t>(j / bs)]) + (j % bs) * kvs);
        std::copy_n(v.data() + j * kvs, kvs,
                    const_cast<float*>(vp[static_cast<size_t>(j / bs)]) + (j % bs) * kvs);
      }
      kernels::AttentionParams p;
      p.n_heads = n_heads;
      p.n_kv_heads = n_kv;
      p.head_dim = hd;
      p.scale = 0.3f;
      p.window = window;
      std::vector<float> want(q.size()), got(q.size());
      kernels::attention(q.data(), n_q, pos0, k.data(), v.data(), kvs, p, want.data(), tp);
      kernels::attention_paged(q.data(), n_q, pos0, kp, vp, bs, kvs, p, got.data(), tp);
      EXPECT_EQ(want, got) << "block size " << bs << " window " << window;
    }
  }
}

TEST(PagedAttention, BatchOfSequencesEqualsEachAlone) {
  ThreadPool tp(2);
  kernels::AttentionParams p;
  p.n_heads = 6;
  p.n_kv_heads = 2;
  p.head_dim = 4;
  p.scale = 0.5f;
  const int64_t kvs = p.n_kv_heads * p.head_dim, qs = p.n_heads * p.head_dim, bs = 4;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  struct Seq {
    int64_t pos0, n_q;
    std::vector<float> q, k, v;
    std::vector<const float*> kp, vp;
  };
  std::vector<Seq> seqs = {{0, 5, {}, {}, {}, {}, {}},
                           {9, 1, {}, {}, {}, {}, {}},
                           {3, 4, {}, {}, {}, {}, {}},
                           {17, 1, {}, {}, {}, {}, {}}};
  for (auto& s : seqs) {
    const int64_t T = s.pos0 + s.n_q, nb = (T + bs - 1) / bs;
    s.q.resize(static_cast<size_t>(s.n_q * qs));
    s.k.resize(static_cast<size_t>(nb * bs * kvs));
    s.v.resize(s.k.size());
    for (auto* vec : {&s.q, &s.k, &s.v}) {
      for (auto& x : *vec) x = nd(rng);
    }
    for (int64_t b = 0; b < nb; ++b) {
      s.kp.push_back(s.k.data() + b * bs * kvs);
      s.vp.push_back(s.v.data() + b * bs * kvs);
    }
  }
  std::vector<std::vector<float>> want(seqs.size()), got(seqs.size());
  std::vector<kernels::PagedAttentionJob> jobs;
  for (size_t i = 0; i < seqs.size(); ++i) {
    auto& s = seqs[i];
    want[i].resize(s.q.size());
    got[i].resize(s.q.size());
    kernels::attention_paged(s.q.data(), s.n_q, s.pos0, s.kp, s.vp, bs, kvs, p, want[i].data(), tp);
    kernels::PagedAttentionJob j;
    j.q = s.q.data();
    j.n_q = s.n_q;
    j.pos0 = s.pos0;
    j.k_blocks = s.kp;
    j.v_blocks = s.vp;
    j.block_size = bs;
    j.kv_stride = kvs;
    j.out = got[i].data();
    jobs.push_back(j);
  }
  kernels::attention_paged_batch(jobs, p, tp);
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(got[i], want[i]) << "sequence " << i;
}

}  // namespace
}  // namespace tandem
