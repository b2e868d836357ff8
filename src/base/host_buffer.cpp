#include "base/host_buffer.h"

#include <sys/mman.h>

#include <cstdlib>
#include <new>

namespace tandem {
namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}

HostBuffer::HostBuffer(size_t bytes) : size_(bytes) {
  if (bytes == 0) return;
  const size_t align = bytes >= kHugePage ? kHugePage : 64;
  const size_t rounded = (bytes + align - 1) / align * align;
  data_ = static_cast<uint8_t*>(std::aligned_alloc(align, rounded));
  if (data_ == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  if (align == kHugePage) madvise(data_, rounded, MADV_HUGEPAGE);  // advisory: failure is harmless
#endif
}

HostBuffer::~HostBuffer() { std::free(data_); }

HostBuffer& HostBuffer::operator=(HostBuffer&& o) noexcept {
  if (this != &o) {
    std::free(data_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

}  // namespace tandem
