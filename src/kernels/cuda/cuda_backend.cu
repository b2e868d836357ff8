#include <dlfcn.h>

#include <type_traits>
#include <utility>

#include "kernels/cuda/blas_api.cuh"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.cuh"

namespace tandem::kernels::cuda {

bool cuda_built() {
  return true;
}

bool cuda_available(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    // cudaGetDeviceCount sets the sticky last error too; clear it so it does not
    // surface at the next unrelated check.
    (void)cudaGetLastError();
    if (why)
      *why =
          std::string("cudaGetDeviceCount: ") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
    return false;
  }
  if (n == 0) {
    if (why) *why = "cudaGetDeviceCount: no CUDA device visible";
    return false;
  }
  return true;
}

std::vector<DeviceInfo> cuda_devices() {
  std::string why;
  if (!cuda_available(&why)) throw Error("no CUDA device: " + why);
  int n = 0;
  TANDEM_CUDA_CHECK(cudaGetDeviceCount(&n));
  int current = 0;
  TANDEM_CUDA_CHECK(cudaGetDevice(&current));
  std::vector<DeviceInfo> out;
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    TANDEM_CUDA_CHECK(cudaGetDeviceProperties(&p, i));
    DeviceInfo d;
    d.index = i;
    d.name = p.name;
    d.cc_major = p.major;
    d.cc_minor = p.minor;
    d.sm_count = p.multiProcessorCount;
    size_t free_b = 0, total_b = 0;
    TANDEM_CUDA_CHECK(cudaSetDevice(i));
    TANDEM_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    d.free_bytes = free_b;
    d.total_bytes = total_b;
    out.push_back(std::move(d));
  }
  TANDEM_CUDA_CHECK(cudaSetDevice(current));
  return out;
}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes > 0) TANDEM_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_)
    (void)cudaFree(
        ptr_);  // a destructor cannot throw; a failing free leaks nothing we could recover
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) (void)cudaFree(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::upload(const void* host, size_t bytes) {
  if (bytes > bytes_)
    throw Error("DeviceBuffer::upload: " + std::to_string(bytes) + " bytes into a buffer of " +
                std::to_string(bytes_));
  if (bytes > 0) TANDEM_CUDA_CHECK(cudaMemcpy(ptr_, host, bytes, cudaMemcpyHostToDevice));
}

void DeviceBuffer::download(void* host, size_t bytes) const {
  if (bytes > bytes_)
    throw Error("DeviceBuffer::download: " + std::to_string(bytes) + " bytes from a buffer of " +
                std::to_string(bytes_));
  if (bytes > 0) TANDEM_CUDA_CHECK(cudaMemcpy(host, ptr_, bytes, cudaMemcpyDeviceToHost));
}

Stream::Stream() {
  TANDEM_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking));
}
Stream::~Stream() {
  if (s_) (void)cudaStreamDestroy(s_);
}
void Stream::synchronize() const {
  TANDEM_CUDA_CHECK(cudaStreamSynchronize(s_));
}

namespace {

#define TANDEM_STR2(x) #x
#define TANDEM_STR(x) TANDEM_STR2(x)

BlasApi load_blas() {
  // The soname of the toolkit we compiled against, then the same from the toolkit's
  // library folder (for binaries whose run path does not name it).
  const char* names[] = {
      "libcublas.so." TANDEM_STR(CUBLAS_VER_MAJOR),
#ifdef TANDEM_CUDA_LIBDIR
      TANDEM_CUDA_LIBDIR "/libcublas.so." TANDEM_STR(CUBLAS_VER_MAJOR),
#endif
  };
  void* lib = nullptr;
  std::string errors;
  for (const char* n : names) {
    lib = dlopen(n, RTLD_NOW | RTLD_LOCAL);
    if (lib) break;
    const char* e = dlerror();
    errors += std::string(errors.empty() ? "" : "; ") + (e ? e : n);
  }
  if (!lib) throw Error("cannot load cuBLAS: " + errors);
  BlasApi api;
  auto sym = [&](auto& fn, const char* name) {
    void* p = dlsym(lib, name);
    if (!p) throw Error(std::string("cuBLAS has no symbol ") + name);
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
  };
  sym(api.cublasCreate, "cublasCreate_v2");
  sym(api.cublasDestroy, "cublasDestroy_v2");
  sym(api.cublasSetStream, "cublasSetStream_v2");
  sym(api.cublasGemmEx, "cublasGemmEx");
  sym(api.cublasGetStatusString, "cublasGetStatusString");
  return api;  // the library stays loaded for the life of the process
}

}  // namespace

const BlasApi& blas_api() {
  static const BlasApi api = load_blas();  // a throw leaves it unset; the next call retries
  return api;
}

std::string cublas_status_text(cublasStatus_t s) {
  try {
    return blas_api().cublasGetStatusString(s);
  } catch (const Error&) {
    return "cuBLAS status " + std::to_string(static_cast<int>(s));
  }
}

BlasHandle::BlasHandle(cudaStream_t stream) {
  const BlasApi& api = blas_api();
  cublasHandle_t h = nullptr;
  TANDEM_CUBLAS_CHECK(api.cublasCreate(&h));
  h_ = h;
  try {
    TANDEM_CUBLAS_CHECK(api.cublasSetStream(h, stream));
  } catch (...) {
    api.cublasDestroy(h);
    h_ = nullptr;
    throw;
  }
}
BlasHandle::~BlasHandle() {
  if (h_) (void)blas_api().cublasDestroy(static_cast<cublasHandle_t>(h_));
}

void device_synchronize() {
  TANDEM_CUDA_CHECK(cudaDeviceSynchronize());
}

namespace {
// The two events of a timing, destroyed on every path.
struct EventPair {
  cudaEvent_t a = nullptr, b = nullptr;
  EventPair() {
    TANDEM_CUDA_CHECK(cudaEventCreate(&a));
    try {
      TANDEM_CUDA_CHECK(cudaEventCreate(&b));
    } catch (...) {
      cudaEventDestroy(a);
      throw;
    }
  }
  ~EventPair() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
};
}  // namespace

double time_ms(cudaStream_t stream, int warmup, int iters, const std::function<void()>& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  EventPair ev;
  TANDEM_CUDA_CHECK(cudaEventRecord(ev.a, stream));
  for (int i = 0; i < iters; ++i) fn();
  TANDEM_CUDA_CHECK(cudaEventRecord(ev.b, stream));
  TANDEM_CUDA_CHECK(cudaEventSynchronize(ev.b));
  float ms = 0.0f;
  TANDEM_CUDA_CHECK(cudaEventElapsedTime(&ms, ev.a, ev.b));
  return static_cast<double>(ms) / (iters > 0 ? iters : 1);
}

double copy_bandwidth_gbs(size_t bytes, cudaStream_t stream) {
  DeviceBuffer src(bytes), dst(bytes);
  TANDEM_CUDA_CHECK(cudaMemsetAsync(src.data(), 1, bytes, stream));
  const double ms = time_ms(stream, 2, 10, [&] {
    TANDEM_CUDA_CHECK(
        cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice, stream));
  });
  return 2.0 * static_cast<double>(bytes) / (ms * 1e6);
}

}  // namespace tandem::kernels::cuda
