// CUDA kernels against the CPU references (kernels/cpu/ops.h, to_f32) on fresh
// random inputs at several shapes, odd ones included. Every test that needs a
// device skips with the reason when there is none; `make gpu-check` treats such
// a skip as a failure on a GPU machine. The availability and argument-check
// tests run everywhere.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/thread_pool.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/ops.h"
#include "kernels/cuda/cuda_backend.h"
#include "models/rope.h"
#include "tensor/dtype.h"
#include "tensor/ggml_quant.h"
#ifdef TANDEM_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

namespace tandem {
namespace {

namespace cu = kernels::cuda;

TEST(CudaBackend, AvailabilityComesWithAReason) {
  std::string why;
  const bool ok = cu::cuda_available(&why);
#ifdef TANDEM_HAVE_CUDA
  EXPECT_TRUE(cu::cuda_built());
#else
  EXPECT_FALSE(cu::cuda_built());
  EXPECT_FALSE(ok);
#endif
  if (!ok) {
    EXPECT_FALSE(why.empty());
    EXPECT_THROW(cu::cuda_devices(), Error);
    // Allocating without a device is an error value, not a crash; so is a cuBLAS handle
    // (cuBLAS is opened on first use, and its creation fails without a device).
    EXPECT_THROW(cu::DeviceBuffer(64), Error);
    try {
      cu::BlasHandle blas(nullptr);
      ADD_FAILURE() << "a cuBLAS handle without a device";
    } catch (const Error& e) {
      std::printf("BlasHandle without a device: %s\n", e.what());
    }
    return;
  }
  const auto devices = cu::cuda_devices();
  ASSERT_FALSE(devices.empty());
  for (const auto& d : devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GT(d.total_bytes, 0u);
    EXPECT_LE(d.free_bytes, d.total_bytes);
    EXPECT_GE(d.cc_major, 1);
    EXPECT_GT(d.sm_count, 0);
  }
}

#ifdef TANDEM_HAVE_CUDA

// Launchers check their arguments before touching the device, so these run here too.
TEST(CudaBackend, LaunchersRejectBadArguments) {
  float* none = nullptr;
  EXPECT_THROW(cu::gemv(nullptr, DType::kQ8_0, none, cu::kGemvMaxM + 1, 4, 32, none, nullptr),
               Error);
  EXPECT_THROW(cu::gemv(nullptr, DType::kQ4_K, none, 1, 4, 300, none, nullptr), Error);
  EXPECT_THROW(cu::gemv(nullptr, DType::kQ6_K, none, 1, 4, 256, none, nullptr), Error);
  EXPECT_THROW(cu::embedding(nullptr, DType::kQ8_0, 10, 32, nullptr, 1, 1.0f, none, nullptr),
               Error);
  EXPECT_THROW(cu::convert_f32(none, 4, DType::kF32, nullptr, nullptr), Error);
  EXPECT_THROW(cu::process_logits(none, 4, 0.0f, -1.0f, nullptr), Error);
  EXPECT_THROW(cu::rope(none, 1, 64, 1, 64, 63, nullptr, none, 1.0f, cu::RopeStyle::kHalf, nullptr),
               Error);
  int32_t table = 0;
  float kv = 0;
  cu::PagedKv pk{&kv, &kv, 16 * 64, 64, 16, &table, 1};
  cu::AttentionShape bad_gqa{6, 4, 64, 0.125f, 0.0f, 0};
  EXPECT_THROW(cu::attention_decode(none, 1, nullptr, pk, bad_gqa, none, nullptr), Error);
  cu::AttentionShape too_wide{4, 4, 320, 0.125f, 0.0f, 0};
  EXPECT_THROW(cu::attention_decode(none, 1, nullptr, pk, too_wide, none, nullptr), Error);
  try {
    cu::gemv(nullptr, DType::kQ4_K, none, 1, 4, 300, none, nullptr);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda::gemv"), std::string::npos) << e.what();
  }
}

class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!cu::cuda_available(&why)) GTEST_SKIP() << "no CUDA device: " << why;
    stream_ = std::make_unique<cu::Stream>();
  }
  cudaStream_t stream() const { return stream_->get(); }

  template <class T>
  static cu::DeviceBuffer upload(const std::vector<T>& v) {
    cu::DeviceBuffer b(std::max<size_t>(1, v.size() * sizeof(T)));
    b.upload(v.data(), v.size() * sizeof(T));
    return b;
  }
  template <class T>
  std::vector<T> download(const cu::DeviceBuffer& b, size_t n) const {
    stream_->synchronize();
    std::vector<T> v(n);
    b.download(v.data(), n * sizeof(T));
    return v;
  }

  std::unique_ptr<cu::Stream> stream_;
  std::mt19937 rng_{20260726};
};

std::vector<float> random_floats(std::mt19937& rng, size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// |got - want| <= tol * max(1, |want|), element by element, naming the first miss.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const double scale = std::max(1.0, std::fabs(static_cast<double>(want[i])));
    ASSERT_LE(std::fabs(static_cast<double>(got[i]) - want[i]), tol * scale)
        << what << ": element " << i << " got " << got[i] << " want " << want[i];
  }
}

TEST_F(CudaKernels, EmbeddingF32AndBf16) {
  for (const int64_t hidden : {1, 100, 2051}) {
    const int64_t vocab = 37;
    const auto table = random_floats(rng_, size_t(vocab * hidden));
    std::vector<uint16_t> table_bf16(table.size());
    for (size_t i = 0; i < table.size(); ++i) table_bf16[i] = f32_to_bf16(table[i]);
    const std::vector<int32_t> ids = {0,  36, 5, 5,
                                      -1, 37, 12};  // -1 and 37 are out of range: zeros
    const float scale = 1.5f;
    auto d_ids = upload(ids);
    cu::DeviceBuffer d_out(ids.size() * size_t(hidden) * sizeof(float));
    for (const DType t : {DType::kF32, DType::kBF16}) {
      auto d_table = t == DType::kF32 ? upload(table) : upload(table_bf16);
      cu::embedding(d_table.data(), t, vocab, hidden, d_ids.as<int32_t>(), int64_t(ids.size()),
                    scale, d_out.as<float>(), stream());
      const auto got = download<float>(d_out, ids.size() * size_t(hidden));
      std::vector<float> want(got.size(), 0.0f);
      for (size_t r = 0; r < ids.size(); ++r) {
        if (ids[r] < 0 || ids[r] >= vocab) continue;
        for (int64_t i = 0; i < hidden; ++i) {
          const size_t src = size_t(ids[r] * hidden + i);
          const float v = t == DType::kF32 ? table[src] : bf16_to_f32(table_bf16[src]);
          want[r * size_t(hidden) + size_t(i)] = v * scale;
        }
      }
      expect_close(got, want, 0.0, "embedding hidden " + std::to_string(hidden));
    }
  }
}

TEST_F(CudaKernels, RmsNormMatchesCpu) {
  for (const int64_t n : {1, 31, 2048, 3001}) {
    for (const float offset : {0.0f, 1.0f}) {
      const int64_t rows = 3;
      const auto x = random_floats(rng_, size_t(rows * n), -3.0f, 3.0f);
      const auto w = random_floats(rng_, size_t(n));
      std::vector<float> want(x.size());
      kernels::rmsnorm(x.data(), w.data(), offset, rows, n, 1e-6f, want.data());
      auto dx = upload(x), dw = upload(w);
      cu::DeviceBuffer dy(x.size() * sizeof(float));
      cu::rmsnorm(dx.as<float>(), dw.as<float>(), offset, rows, n, 1e-6f, dy.as<float>(), stream());
      expect_close(download<float>(dy, x.size()), want, 1e-5, "rmsnorm n " + std::to_string(n));
      // In place, as the forward pass calls it.
      cu::rmsnorm(dx.as<float>(), dw.as<float>(), offset, rows, n, 1e-6f, dx.as<float>(), stream());
      expect_close(download<float>(dx, x.size()), want, 1e-5,
                   "rmsnorm in place n " + std::to_string(n));
    }
  }
}

TEST_F(CudaKernels, RopeBothConventionsMatchCpu) {
  struct Case {
    int64_t n_heads, head_dim, rot_dim;
  };
  for (const Case c : {Case{3, 64, 64}, Case{2, 96, 32}, Case{5, 256, 256}}) {
    const int64_t n_tokens = 6, half = c.rot_dim / 2;
    const int64_t row_stride = c.n_heads * c.head_dim + 7;  // as inside a fused qkv buffer
    std::vector<float> inv_freq(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i)
      inv_freq[size_t(i)] = std::pow(10000.0f, -2.0f * float(i) / float(c.rot_dim));
    const std::vector<int32_t> pos = {0, 1, 17, 255, 4095, 131071};
    const float scaling = 1.1f;
    const auto x = random_floats(rng_, size_t(n_tokens * row_stride));
    for (const auto style : {cu::RopeStyle::kHalf, cu::RopeStyle::kInterleaved}) {
      std::vector<float> want = x, cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
      for (int64_t t = 0; t < n_tokens; ++t) {
        models::Rope::cos_sin(inv_freq, scaling, pos[size_t(t)], cs.data(), sn.data());
        float* xt = want.data() + t * row_stride;
        if (style == cu::RopeStyle::kHalf) {
          kernels::rope_apply(xt, c.n_heads, c.head_dim, c.rot_dim, cs.data(), sn.data());
        } else {
          for (int64_t h = 0; h < c.n_heads; ++h) {
            for (int64_t i = 0; i < half; ++i) {
              float* p = xt + h * c.head_dim + 2 * i;
              const float a = p[0], b = p[1];
              p[0] = a * cs[size_t(i)] - b * sn[size_t(i)];
              p[1] = b * cs[size_t(i)] + a * sn[size_t(i)];
            }
          }
        }
      }
      auto dx = upload(x), dpos = upload(pos), dfreq = upload(inv_freq);
      cu::rope(dx.as<float>(), n_tokens, row_stride, c.n_heads, c.head_dim, c.rot_dim,
               dpos.as<int32_t>(), dfreq.as<float>(), scaling, style, stream());
      expect_close(download<float>(dx, x.size()), want, 1e-6,
                   std::string(style == cu::RopeStyle::kHalf ? "rope half" : "rope interleaved") +
                       " head_dim " + std::to_string(c.head_dim));
    }
  }
}

TEST_F(CudaKernels, GatedActivationsMatchCpu) {
  for (const int64_t n : {1, 1000, 100003}) {
    const auto g = random_floats(rng_, size_t(n), -6.0f, 6.0f), u = random_floats(rng_, size_t(n));
    auto dg = upload(g), du = upload(u);
    cu::DeviceBuffer dout(size_t(n) * sizeof(float));
    std::vector<float> want(static_cast<size_t>(n));
    kernels::silu_mul(g.data(), u.data(), n, want.data());
    cu::silu_mul(dg.as<float>(), du.as<float>(), n, dout.as<float>(), stream());
    expect_close(download<float>(dout, size_t(n)), want, 1e-5, "silu_mul n " + std::to_string(n));
    kernels::gelu_tanh_mul(g.data(), u.data(), n, want.data());
    cu::gelu_tanh_mul(dg.as<float>(), du.as<float>(), n, dout.as<float>(), stream());
    expect_close(download<float>(dout, size_t(n)), want, 1e-5,
                 "gelu_tanh_mul n " + std::to_string(n));
  }
}

TEST_F(CudaKernels, LogitsSoftcapAndTemperature) {
  struct Case {
    float softcap, temperature;
  };
  for (const Case c : {Case{30.0f, 0.7f}, Case{0.0f, 1.3f}, Case{50.0f, 0.0f}, Case{0.0f, 0.0f}}) {
    const int64_t n = 128257;
    const auto x = random_floats(rng_, size_t(n), -80.0f, 80.0f);
    std::vector<float> want = x;
    if (c.softcap > 0) kernels::softcap_inplace(want.data(), n, c.softcap);
    if (c.temperature > 0)
      for (float& v : want) v /= c.temperature;
    auto dx = upload(x);
    cu::process_logits(dx.as<float>(), n, c.softcap, c.temperature, stream());
    expect_close(
        download<float>(dx, size_t(n)), want, 1e-6,
        "logits softcap " + std::to_string(c.softcap) + " T " + std::to_string(c.temperature));
  }
}

TEST_F(CudaKernels, ConvertRoundsLikeTheHost) {
  const int64_t n = 4099;
  auto x = random_floats(rng_, size_t(n), -1e4f, 1e4f);
  x[0] = 0.0f, x[1] = -0.0f, x[2] = 1e-30f;
  auto dx = upload(x);
  cu::DeviceBuffer dy(size_t(n) * 2);
  for (const DType t : {DType::kBF16, DType::kF16}) {
    cu::convert_f32(dx.as<float>(), n, t, dy.data(), stream());
    const auto got = download<uint16_t>(dy, size_t(n));
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t want =
          t == DType::kBF16 ? f32_to_bf16(x[size_t(i)]) : f32_to_f16(x[size_t(i)]);
      ASSERT_EQ(got[size_t(i)], want)
          << dtype_name(t) << " element " << i << " of " << x[size_t(i)];
    }
  }
}

// A paged cache with padding between rows and between blocks, and shuffled
// block ids, so the GPU's address arithmetic is checked, not just the math.
struct PagedFixture {
  int64_t kv_dim, block_size, row_stride, block_stride, max_blocks;
  std::vector<float> k, v;
  std::vector<int32_t> tables;  // [n_seqs, max_blocks]

  PagedFixture(std::mt19937& rng, const std::vector<int64_t>& lens, int64_t kv_dim_,
               int64_t block_size_)
      : kv_dim(kv_dim_),
        block_size(block_size_),
        row_stride(kv_dim_ + 4),
        block_stride(block_size_ * (kv_dim_ + 4) + 16) {
    max_blocks = 1;
    int64_t total = 0;
    for (const int64_t l : lens) {
      max_blocks = std::max(max_blocks, (l + block_size - 1) / block_size);
      total += (l + block_size - 1) / block_size;
    }
    std::vector<int32_t> ids(static_cast<size_t>(total));
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    tables.assign(lens.size() * size_t(max_blocks), 0);
    size_t next = 0;
    for (size_t s = 0; s < lens.size(); ++s) {
      for (int64_t b = 0; b < (lens[s] + block_size - 1) / block_size; ++b)
        tables[s * size_t(max_blocks) + size_t(b)] = ids[next++];
    }
    k = random_floats(rng, size_t(total * block_stride));
    v = random_floats(rng, size_t(total * block_stride));
  }
  // Per-position block pointers of sequence s, as kernels::attention_paged takes them.
  void cpu_blocks(const std::vector<float>& data, size_t s, int64_t len,
                  std::vector<const float*>& out) const {
    out.clear();
    for (int64_t b = 0; b < (len + block_size - 1) / block_size; ++b)
      out.push_back(data.data() +
                    int64_t(tables[s * size_t(max_blocks) + size_t(b)]) * block_stride);
  }
};

struct AttnCase {
  int32_t n_heads, n_kv_heads, head_dim;
  float softcap;
  int32_t window;
};

const AttnCase kAttnCases[] = {
    {8, 2, 64, 0.0f, 0},    // Llama-style GQA
    {4, 4, 128, 0.0f, 0},   // multi-head
    {8, 4, 256, 50.0f, 0},  // Gemma 2: soft-capped, head_dim 256
    {6, 2, 96, 0.0f, 7},    // sliding window, head_dim not a power of two
    {3, 1, 40, 30.0f, 5},   // odd sizes everywhere
};

TEST_F(CudaKernels, PagedAttentionDecodeMatchesCpu) {
  ThreadPool pool(2);
  for (const AttnCase& c : kAttnCases) {
    const std::vector<int64_t> lens = {1, 16, 17, 70};
    const int64_t kv_dim = int64_t(c.n_kv_heads) * c.head_dim,
                  q_dim = int64_t(c.n_heads) * c.head_dim;
    PagedFixture f(rng_, lens, kv_dim, 16);
    const auto q = random_floats(rng_, lens.size() * size_t(q_dim), -2.0f, 2.0f);
    kernels::AttentionParams p{c.n_heads,  c.n_kv_heads,
                               c.head_dim, 1.0f / std::sqrt(float(c.head_dim)),
                               c.softcap,  c.window};
    std::vector<float> want(q.size());
    std::vector<const float*> kb, vb;
    for (size_t s = 0; s < lens.size(); ++s) {
      f.cpu_blocks(f.k, s, lens[s], kb);
      f.cpu_blocks(f.v, s, lens[s], vb);
      kernels::attention_paged(q.data() + s * size_t(q_dim), 1, lens[s] - 1, kb, vb, f.block_size,
                               f.row_stride, p, want.data() + s * size_t(q_dim), pool);
    }
    std::vector<int32_t> seq_lens(lens.begin(), lens.end());
    auto dq = upload(q), dk = upload(f.k), dv = upload(f.v), dt = upload(f.tables),
         dl = upload(seq_lens);
    cu::DeviceBuffer dout(q.size() * sizeof(float));
    const cu::PagedKv kv{dk.as<float>(),       dv.as<float>(),        f.block_stride,
                         f.row_stride,         int32_t(f.block_size), dt.as<int32_t>(),
                         int32_t(f.max_blocks)};
    const cu::AttentionShape sh{c.n_heads, c.n_kv_heads, c.head_dim, p.scale, c.softcap, c.window};
    cu::attention_decode(dq.as<float>(), int32_t(lens.size()), dl.as<int32_t>(), kv, sh,
                         dout.as<float>(), stream());
    expect_close(download<float>(dout, q.size()), want, 2e-5,
                 "decode head_dim " + std::to_string(c.head_dim));
  }
}

// A mixed step: sequence s holds lens[s] positions and its last n_new[s] are this
// step's queries (a fresh prompt, a continued prefill, a single decode row), with
// the CPU's answer for each.
struct PrefillStep {
  std::vector<int64_t> lens = {33, 5, 64, 9};
  std::vector<int64_t> n_new = {33, 3, 10, 1};
  PagedFixture f;
  int64_t rows = 0;
  std::vector<float> q, want;
  std::vector<int32_t> q_seq, q_pos;
  cu::AttentionShape shape;

  PrefillStep(std::mt19937& rng, const AttnCase& c)
      : f(rng, lens, int64_t(c.n_kv_heads) * c.head_dim, 16) {
    const int64_t q_dim = int64_t(c.n_heads) * c.head_dim;
    for (const int64_t n : n_new) rows += n;
    q = random_floats(rng, size_t(rows * q_dim), -2.0f, 2.0f);
    want.resize(q.size());
    const float scale = 1.0f / std::sqrt(float(c.head_dim));
    const kernels::AttentionParams p{c.n_heads, c.n_kv_heads, c.head_dim,
                                     scale,     c.softcap,    c.window};
    shape = {c.n_heads, c.n_kv_heads, c.head_dim, scale, c.softcap, c.window};
    ThreadPool pool(2);
    std::vector<const float*> kb, vb;
    int64_t r0 = 0;
    for (size_t s = 0; s < lens.size(); ++s) {
      const int64_t pos0 = lens[s] - n_new[s];
      f.cpu_blocks(f.k, s, lens[s], kb);
      f.cpu_blocks(f.v, s, lens[s], vb);
      kernels::attention_paged(q.data() + r0 * q_dim, n_new[s], pos0, kb, vb, f.block_size,
                               f.row_stride, p, want.data() + r0 * q_dim, pool);
      for (int64_t i = 0; i < n_new[s]; ++i) {
        q_seq.push_back(int32_t(s));
        q_pos.push_back(int32_t(pos0 + i));
      }
      r0 += n_new[s];
    }
  }
  cu::PagedKv kv(const float* k, const float* v, const int32_t* tables) const {
    return {
        k, v, f.block_stride, f.row_stride, int32_t(f.block_size), tables, int32_t(f.max_blocks)};
  }
};

TEST_F(CudaKernels, PagedAttentionPrefillMatchesCpu) {
  for (const AttnCase& c : kAttnCases) {
    const PrefillStep st(rng_, c);
    auto dq = upload(st.q), dk = upload(st.f.k), dv = upload(st.f.v), dt = upload(st.f.tables),
         ds = upload(st.q_seq), dp = upload(st.q_pos);
    cu::DeviceBuffer dout(st.q.size() * sizeof(float));
    cu::attention_prefill(dq.as<float>(), int32_t(st.rows), ds.as<int32_t>(), dp.as<int32_t>(),
                          st.kv(dk.as<float>(), dv.as<float>(), dt.as<int32_t>()), st.shape,
                          dout.as<float>(), stream());
    expect_close(download<float>(dout, st.q.size()), st.want, 2e-5,
                 "prefill head_dim " + std::to_string(c.head_dim));
  }
}

// Runs without a GPU: the kernel's row code, all lanes on the host, against the CPU.
TEST(CudaAttentionLanes, HostRunOfTheRowCodeMatchesCpu) {
  std::mt19937 rng(5);
  for (const AttnCase& c : kAttnCases) {
    const PrefillStep st(rng, c);
    std::vector<float> out(st.q.size(), -1.0f);
    cu::attention_emulated(st.q.data(), int32_t(st.rows), st.q_seq.data(), st.q_pos.data(),
                           st.kv(st.f.k.data(), st.f.v.data(), st.f.tables.data()), st.shape,
                           out.data());
    expect_close(out, st.want, 2e-5, "attention lanes head_dim " + std::to_string(c.head_dim));
  }
}

// Weight rows of type t (from random floats), and their float32 values as the
// CPU sees them (kernels::to_f32, the matmul reference's conversion).
struct Weights {
  std::vector<uint8_t> bytes;
  std::vector<float> f32;
};
Weights make_weights(std::mt19937& rng, DType t, int64_t n, int64_t k) {
  const auto src = random_floats(rng, size_t(n * k));
  Weights w;
  const size_t row = dtype_row_bytes(t, k);
  w.bytes.resize(size_t(n) * row);
  w.f32.resize(size_t(n * k));
  for (int64_t r = 0; r < n; ++r) {
    uint8_t* dst = w.bytes.data() + size_t(r) * row;
    const float* s = src.data() + r * k;
    if (t == DType::kBF16 || t == DType::kF16) {
      auto* h = reinterpret_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < k; ++i)
        h[i] = t == DType::kBF16 ? f32_to_bf16(s[i]) : f32_to_f16(s[i]);
    } else {
      quantize_row(*ggml_from_dtype(t), s, dst, k);
    }
    kernels::to_f32(dst, t, k, w.f32.data() + r * k);
  }
  return w;
}

// y[i, j] = Σ x[i, :] w[j, :] in double; tolerance scales with Σ |x w|.
void expect_matmul(const std::vector<float>& got, const std::vector<float>& x,
                   const std::vector<float>& w, int64_t m, int64_t n, int64_t k, double tol,
                   const std::string& what) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0.0, mag = 0.0;
      for (int64_t e = 0; e < k; ++e) {
        const double p = double(x[size_t(i * k + e)]) * w[size_t(j * k + e)];
        ref += p;
        mag += std::fabs(p);
      }
      ASSERT_LE(std::fabs(got[size_t(i * n + j)] - ref), tol * mag + 1e-6)
          << what << ": y[" << i << ", " << j << "] got " << got[size_t(i * n + j)] << " want "
          << ref;
    }
  }
}

struct GemvCase {
  DType t;
  int64_t n, k;
};
const GemvCase kGemvCases[] = {
    {DType::kQ8_0, 1, 32},     {DType::kQ8_0, 7, 2048},
    {DType::kQ8_0, 129, 4128}, {DType::kQ4_K, 1, 256},
    {DType::kQ4_K, 7, 2048},   {DType::kQ4_K, 129, 4352},
    {DType::kBF16, 1, 8},      {DType::kBF16, 7, 2048},
    {DType::kBF16, 129, 100},  // k % 8 != 0: scalar path
    {DType::kF16, 3, 2056},    {DType::kF16, 65, 37},
};

// Runs without a GPU: the kernel's lane code, executed on the host, against to_f32.
TEST(CudaGemvLanes, HostRunOfTheLaneCodeMatchesCpu) {
  std::mt19937 rng(99);
  for (const GemvCase& c : kGemvCases) {
    const Weights w = make_weights(rng, c.t, c.n, c.k);
    for (const int64_t m : {int64_t(1), int64_t(3), cu::kGemvMaxM}) {
      const auto x = random_floats(rng, size_t(m * c.k));
      std::vector<float> y(size_t(m * c.n));
      cu::gemv_emulated(w.bytes.data(), c.t, x.data(), m, c.n, c.k, y.data());
      expect_matmul(y, x, w.f32, m, c.n, c.k, 1e-5,
                    std::string("gemv lanes ") + std::string(dtype_name(c.t)) + " m " +
                        std::to_string(m) + " n " + std::to_string(c.n) + " k " +
                        std::to_string(c.k));
    }
  }
}

TEST_F(CudaKernels, GemvQuantizedAndHalfMatchCpu) {
  for (const GemvCase& c : kGemvCases) {
    const Weights w = make_weights(rng_, c.t, c.n, c.k);
    auto dw = upload(w.bytes);
    for (const int64_t m : {int64_t(1), int64_t(3), cu::kGemvMaxM}) {
      const auto x = random_floats(rng_, size_t(m * c.k));
      auto dx = upload(x);
      cu::DeviceBuffer dy(size_t(m * c.n) * sizeof(float));
      cu::gemv(dw.data(), c.t, dx.as<float>(), m, c.n, c.k, dy.as<float>(), stream());
      expect_matmul(download<float>(dy, size_t(m * c.n)), x, w.f32, m, c.n, c.k, 1e-5,
                    std::string("gemv ") + std::string(dtype_name(c.t)) + " m " +
                        std::to_string(m) + " n " + std::to_string(c.n) + " k " +
                        std::to_string(c.k));
    }
  }
}

TEST_F(CudaKernels, GemmBf16AndF16MatchCpu) {
  cu::BlasHandle blas(stream());
  for (const DType t : {DType::kBF16, DType::kF16}) {
    for (const int64_t m : {1, 8, 33}) {
      const std::pair<int64_t, int64_t> shapes[] = {{64, 64}, {129, 200}, {256, 2048}};
      for (const auto& [n, k] : shapes) {
        const Weights w = make_weights(rng_, t, n, k);
        auto x = random_floats(rng_, size_t(m * k));
        // The GEMM multiplies activations in the weights' dtype: the reference uses the same
        // rounded values.
        std::vector<uint16_t> xh(x.size());
        for (size_t i = 0; i < x.size(); ++i) {
          xh[i] = t == DType::kBF16 ? f32_to_bf16(x[i]) : f32_to_f16(x[i]);
          x[i] = t == DType::kBF16 ? bf16_to_f32(xh[i]) : f16_to_f32(xh[i]);
        }
        auto dw = upload(w.bytes), dx = upload(xh);
        cu::DeviceBuffer dy(size_t(m * n) * sizeof(float));
        cu::gemm(blas, dw.data(), t, dx.data(), m, n, k, dy.as<float>());
        // Inputs are exact in the product, so only float32 accumulation order differs
        // (tensor cores sum in their own order): a few ulps of Σ|x w|.
        expect_matmul(download<float>(dy, size_t(m * n)), x, w.f32, m, n, k, 3e-5,
                      std::string("gemm ") + std::string(dtype_name(t)) + " m " +
                          std::to_string(m) + " n " + std::to_string(n) + " k " +
                          std::to_string(k));
      }
    }
  }
}

#endif  // TANDEM_HAVE_CUDA

}  // namespace
}  // namespace tandem
