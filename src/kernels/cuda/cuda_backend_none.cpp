// The device layer of a build without the CUDA backend (TANDEM_CUDA=OFF or no
// nvcc): nothing is available, and the reason says so. With CUDA the same
// functions come from cuda_backend.cu.
#ifndef TANDEM_HAVE_CUDA

#include "base/error.h"
#include "kernels/cuda/cuda_backend.h"

namespace tandem::kernels::cuda {

namespace {
constexpr const char* kNotBuilt =
    "this build has no CUDA backend (configured without nvcc or with TANDEM_CUDA=OFF)";
[[noreturn]] void not_built() {
  throw Error(kNotBuilt);
}
}  // namespace

bool cuda_built() {
  return false;
}

bool cuda_available(std::string* why) {
  if (why) *why = kNotBuilt;
  return false;
}

std::vector<DeviceInfo> cuda_devices() {
  not_built();
}

DeviceBuffer::DeviceBuffer(size_t) {
  not_built();
}
DeviceBuffer::~DeviceBuffer() = default;
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  ptr_ = o.ptr_;
  bytes_ = o.bytes_;
  o.ptr_ = nullptr;
  o.bytes_ = 0;
  return *this;
}
void DeviceBuffer::upload(const void*, size_t) {
  not_built();
}
void DeviceBuffer::download(void*, size_t) const {
  not_built();
}

Stream::Stream() {
  not_built();
}
Stream::~Stream() = default;
void Stream::synchronize() const {
  not_built();
}

BlasHandle::BlasHandle(cudaStream_t) {
  not_built();
}
BlasHandle::~BlasHandle() = default;

void device_synchronize() {
  not_built();
}
double time_ms(cudaStream_t, int, int, const std::function<void()>&) {
  not_built();
}
double copy_bandwidth_gbs(size_t, cudaStream_t) {
  not_built();
}

}  // namespace tandem::kernels::cuda

#endif  // TANDEM_HAVE_CUDA
