// Owning, uninitialized host memory for weights: 2 MiB aligned and advised for
// transparent huge pages when large. Streaming weights from such memory is
// several times faster than from a file mapping's 4 KiB page-cache pages
// (measured: docs/architecture.md, "Weights in memory").
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

namespace tandem {

class HostBuffer {
 public:
  HostBuffer() = default;
  explicit HostBuffer(size_t bytes);
  ~HostBuffer();
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  HostBuffer(HostBuffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  HostBuffer& operator=(HostBuffer&& o) noexcept;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace tandem
