// CUDA kernel benchmark (`make gpu-check` runs it): decode GEMV per weight
// format as effective GB/s against the measured device copy bandwidth, and
// cuBLAS BF16 GEMM TFLOP/s at several batch sizes, on Llama-3.2-1B's shapes
// (hidden 2048, intermediate 8192, vocab 128256). The peer of our GEMV is
// cuBLAS on the same BF16 weights at m = 1, measured in the same run.
//
// Exits 1 with the reason when there is no CUDA device (or no CUDA in this build).
#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "kernels/cuda/cuda_backend.h"
#include "tensor/dtype.h"
#include "tensor/ggml_quant.h"
#ifdef TANDEM_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

namespace {

#ifdef TANDEM_HAVE_CUDA
using namespace tandem;
namespace cu = tandem::kernels::cuda;

struct Shape {
  const char* name;
  int64_t n, k;  // y[n] = W[n, k] x[k]
};
constexpr Shape kShapes[] = {
    {"attn q/o  2048x2048", 2048, 2048},
    {"mlp up    8192x2048", 8192, 2048},
    {"mlp down  2048x8192", 2048, 8192},
    {"lm head 128256x2048", 128256, 2048},
};

// n rows of type t: 64 distinct random rows (quantized on the host), tiled.
// Values do not change the speed; the tiling keeps set-up to a second.
cu::DeviceBuffer make_weights(DType t, int64_t n, int64_t k, std::mt19937& rng) {
  constexpr int64_t kDistinct = 64;
  const size_t row = dtype_row_bytes(t, k);
  std::vector<uint8_t> some(row * kDistinct);
  std::normal_distribution<float> d(0.0f, 0.02f);
  std::vector<float> src(static_cast<size_t>(k));
  for (int64_t r = 0; r < kDistinct; ++r) {
    for (auto& v : src) v = d(rng);
    uint8_t* dst = some.data() + static_cast<size_t>(r) * row;
    if (t == DType::kBF16) {
      auto* h = reinterpret_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < k; ++i) h[i] = f32_to_bf16(src[static_cast<size_t>(i)]);
    } else {
      quantize_row(*ggml_from_dtype(t), src.data(), dst, k);
    }
  }
  std::vector<uint8_t> all(row * static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r)
    std::copy_n(some.data() + static_cast<size_t>(r % kDistinct) * row, row,
                all.data() + static_cast<size_t>(r) * row);
  cu::DeviceBuffer b(all.size());
  b.upload(all.data(), all.size());
  return b;
}

// Enough iterations for about 50 ms of work, from one timed probe.
int iterations_for(double probe_ms) {
  const double n = 50.0 / (probe_ms > 1e-3 ? probe_ms : 1e-3);
  return n < 5 ? 5 : n > 2000 ? 2000 : static_cast<int>(n);
}

int run() {
  const auto devices = cu::cuda_devices();
  const auto& dev = devices[0];
  std::printf("device: %s (sm_%d%d, %d SMs, %.1f GiB, %.1f GiB free)\n", dev.name.c_str(),
              dev.cc_major, dev.cc_minor, dev.sm_count,
              static_cast<double>(dev.total_bytes) / (1 << 30),
              static_cast<double>(dev.free_bytes) / (1 << 30));
  cu::Stream stream;
  const double copy_gbs = cu::copy_bandwidth_gbs(size_t(1) << 30, stream.get());
  std::printf("device copy bandwidth (read + write, 1 GiB): %.0f GB/s\n\n", copy_gbs);

  std::mt19937 rng(7);
  cu::BlasHandle blas(stream.get());
  const int64_t max_k = 8192, max_m = 512, max_n = 128256;
  std::vector<float> xh(static_cast<size_t>(max_m * max_k));
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (auto& v : xh) v = d(rng);
  cu::DeviceBuffer x(xh.size() * sizeof(float)), x16(xh.size() * 2),
      y(static_cast<size_t>(max_m * max_n) * sizeof(float));
  x.upload(xh.data(), xh.size() * sizeof(float));
  cu::convert_f32(x.as<float>(), static_cast<int64_t>(xh.size()), DType::kBF16, x16.data(),
                  stream.get());

  std::printf("GEMV, m = 1 (decode): effective GB/s = weight bytes / time\n");
  std::printf("%-22s %-6s %10s %10s %8s %14s\n", "shape", "type", "us", "GB/s", "of copy",
              "vs cuBLAS m=1");
  for (const Shape& s : kShapes) {
    const cu::DeviceBuffer wb = make_weights(DType::kBF16, s.n, s.k, rng);
    auto cublas = [&] {
      cu::gemm(blas, wb.data(), DType::kBF16, x16.data(), 1, s.n, s.k, y.as<float>());
    };
    const double cublas_ms = cu::time_ms(
        stream.get(), 3, iterations_for(cu::time_ms(stream.get(), 1, 3, cublas)), cublas);
    for (const DType t : {DType::kBF16, DType::kQ8_0, DType::kQ4_K}) {
      const cu::DeviceBuffer w =
          t == DType::kBF16 ? cu::DeviceBuffer() : make_weights(t, s.n, s.k, rng);
      const void* wp = t == DType::kBF16 ? wb.data() : w.data();
      auto gemv = [&] { cu::gemv(wp, t, x.as<float>(), 1, s.n, s.k, y.as<float>(), stream.get()); };
      const double ms =
          cu::time_ms(stream.get(), 3, iterations_for(cu::time_ms(stream.get(), 1, 3, gemv)), gemv);
      const double bytes = static_cast<double>(dtype_row_bytes(t, s.k)) * static_cast<double>(s.n);
      const double gbs = bytes / (ms * 1e6);
      std::printf("%-22s %-6s %10.1f %10.0f %7.0f%% %13.2fx\n", s.name,
                  std::string(dtype_name(t)).c_str(), ms * 1e3, gbs, 100.0 * gbs / copy_gbs,
                  cublas_ms / ms);
    }
  }

  std::printf("\ncuBLAS BF16 GEMM (f32 accumulate and output): TFLOP/s = 2 m n k / time\n");
  std::printf("%-22s %6s %10s %10s %10s\n", "shape", "m", "us", "TFLOP/s", "weight GB/s");
  for (const Shape& s : kShapes) {
    const cu::DeviceBuffer wb = make_weights(DType::kBF16, s.n, s.k, rng);
    for (const int64_t m : {1, 8, 32, 64, 512}) {
      auto g = [&] {
        cu::gemm(blas, wb.data(), DType::kBF16, x16.data(), m, s.n, s.k, y.as<float>());
      };
      const double ms =
          cu::time_ms(stream.get(), 3, iterations_for(cu::time_ms(stream.get(), 1, 3, g)), g);
      const double flops =
          2.0 * static_cast<double>(m) * static_cast<double>(s.n) * static_cast<double>(s.k);
      std::printf("%-22s %6lld %10.1f %10.1f %10.0f\n", s.name, static_cast<long long>(m), ms * 1e3,
                  flops / (ms * 1e9), 2.0 * static_cast<double>(s.n * s.k) / (ms * 1e6));
    }
  }
  cu::device_synchronize();
  return 0;
}
#endif

}  // namespace

int main() {
  std::string why;
  if (!tandem::kernels::cuda::cuda_available(&why)) {
    std::fprintf(stderr, "bench_cuda: no CUDA device: %s\n", why.c_str());
    return 1;
  }
#ifdef TANDEM_HAVE_CUDA
  try {
    return run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda: %s\n", e.what());
    return 1;
  }
#else
  return 1;  // unreachable: cuda_available() is false without CUDA
#endif
}
