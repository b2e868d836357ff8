// The CUDA backend's device layer, usable from plain C++ whether or not this
// build has CUDA: device discovery (cuda_available, cuda_devices) and RAII owners
// for device memory, streams and the cuBLAS handle. Built with CUDA
// (TANDEM_HAVE_CUDA) it is cuda_backend.cu; without, cuda_backend_none.cpp,
// where cuda_available() says why and the owners throw.
//
// Every CUDA and cuBLAS status is checked and becomes a tandem::Error naming
// the call and the runtime's message (cuda_check.cuh); nothing here aborts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

// The runtime's own spelling of these handles, so headers need no CUDA include.
struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace tandem::kernels::cuda {

// Whether this binary was built with the CUDA backend.
bool cuda_built();

// True when at least one CUDA device can be used. Otherwise false, and *why (if
// given) says what is missing: no CUDA in this build, no driver, no device, ...
bool cuda_available(std::string* why = nullptr);

struct DeviceInfo {
  int index = 0;
  std::string name;
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;  // at the time of the query
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
};

// Every visible device; throws tandem::Error when none can be used.
std::vector<DeviceInfo> cuda_devices();

// Device memory. Move-only; freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
    o.ptr_ = nullptr, o.bytes_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return ptr_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }
  // Synchronous copies of the first `bytes` (<= bytes()).
  void upload(const void* host, size_t bytes);
  void download(void* host, size_t bytes) const;

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// A non-blocking stream. Move-only.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  void synchronize() const;

 private:
  cudaStream_t s_ = nullptr;
};

// A cuBLAS handle bound to one stream, for gemm.cu.
class BlasHandle {
 public:
  explicit BlasHandle(cudaStream_t stream);
  ~BlasHandle();
  BlasHandle(const BlasHandle&) = delete;
  BlasHandle& operator=(const BlasHandle&) = delete;
  void* get() const { return h_; }  // a cublasHandle_t

 private:
  void* h_ = nullptr;
};

// Waits for the device and throws the first asynchronous error, if any.
void device_synchronize();

// Benchmark helpers (bench/bench_cuda.cpp). Average milliseconds of fn(), which
// enqueues work on `stream`, over `iters` runs after `warmup` runs, timed with
// CUDA events.
double time_ms(cudaStream_t stream, int warmup, int iters, const std::function<void()>& fn);
// Device-to-device copy bandwidth in GB/s (1e9 bytes), counting bytes read plus
// bytes written: the practical limit a kernel that streams its weights can reach.
double copy_bandwidth_gbs(size_t bytes, cudaStream_t stream);

}  // namespace tandem::kernels::cuda
