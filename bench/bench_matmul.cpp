// Matmul kernel throughput per weight format and ISA: decode-shaped (m = 1,
// bandwidth-bound: GB/s of weights streamed) and prefill-shaped (m = 128,
// compute-bound: GMAC/s). Usage: bench_matmul [THREADS] [N] [K] [TYPE]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/repack.h"
#include "tensor/ggml_quant.h"

using namespace tandem;

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  const int64_t n = argc > 2 ? std::atoll(argv[2]) : 4096, k = argc > 3 ? std::atoll(argv[3]) : 2048;
  ThreadPool pool(threads);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> wf(static_cast<size_t>(n * k)), x(static_cast<size_t>(128 * k)), y(static_cast<size_t>(128 * n));
  for (float& v : wf) v = nd(rng);
  for (float& v : x) v = nd(rng);
  std::printf("threads %d, n %lld, k %lld\n| type | isa | m=1 GB/s | m=1 us | m=128 GMAC/s |\n|---|---|---|---|---|\n", threads,
              (long long)n, (long long)k);
  // Best time of `reps` products of m rows on one backend, after a warm-up.
  auto time = [&](kernels::Isa isa, const TensorView& w, int64_t m, int reps) {
    kernels::matmul_with(isa, x.data(), m, k, w, y.data(), n, pool);
    double best = 1e9;
    for (int r = 0; r < reps; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      kernels::matmul_with(isa, x.data(), m, k, w, y.data(), n, pool);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
  };
  auto row = [&](kernels::Isa isa, const TensorView& w) {
    const double t1 = time(isa, w, 1, 20), t128 = time(isa, w, 128, 3);
    std::printf("| %s | %s | %.1f | %.0f | %.1f |\n", std::string(dtype_name(w.dtype)).c_str(),
                std::string(kernels::isa_name(isa)).c_str(), double(w.nbytes()) / t1 / 1e9, t1 * 1e6,
                128.0 * double(n * k) / t128 / 1e9);
  };
  const std::string only = argc > 4 ? argv[4] : "";  // e.g. "q8_0": one weight type
  for (DType t : {DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ5_0, DType::kQ4_K, DType::kQ6_K}) {
    if (!only.empty() && only != dtype_name(t)) continue;
    std::vector<uint8_t> wb(dtype_row_bytes(t, k) * static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) {
      quantize_row(*ggml_from_dtype(t), wf.data() + r * k, wb.data() + static_cast<size_t>(r) * dtype_row_bytes(t, k), k);
    }
    const TensorView w{t, {n, k}, wb.data()};
    for (int isa = 1; isa <= int(kernels::detected_isa()); ++isa) row(kernels::Isa(isa), w);
    // The interleaved form the model loader makes on AVX-512 VNNI machines (kernels/cpu/repack.h).
    if (kernels::detected_isa() == kernels::Isa::kAvx512 && kernels::can_pack(t, n, k)) {
      TensorView pw{kernels::packed_type(t), {n, k}, nullptr};
      std::vector<uint8_t> pb(pw.nbytes());
      kernels::pack(t, wb.data(), n, k, pb.data());
      pw.data = pb.data();
      row(kernels::Isa::kAvx512, pw);
    }
  }
  return 0;
}
