// Non-owning view of a tensor's bytes: dtype, shape (row-major), data.
// Ownership of the bytes stays with whoever mapped or allocated them (a
// MappedFile, or a model's own buffers); a view never frees anything.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace tandem {

struct TensorView {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  size_t nbytes() const {
    if (shape.empty()) return dtype_size(dtype);
    int64_t rows = 1;
    for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
    return dtype_row_bytes(dtype, shape.back()) * static_cast<size_t>(rows);
  }
  int rank() const { return static_cast<int>(shape.size()); }
  int64_t dim(int i) const { return shape.at(static_cast<size_t>(i)); }
  // Row r of a rank-2 tensor.
  const uint8_t* row(int64_t r) const {
    return static_cast<const uint8_t*>(data) + static_cast<size_t>(r) * dtype_row_bytes(dtype, shape.back());
  }
};

std::string shape_to_string(const std::vector<int64_t>& shape);

}  // namespace tandem
