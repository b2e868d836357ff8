#include "tensor/dtype.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tensor/tensor.h"

namespace tandem {
namespace {

TEST(Dtype, HalfConversionsRoundTrip) {
  for (float v : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 3.14159f}) {
    EXPECT_EQ(f16_to_f32(f32_to_f16(v)), f16_to_f32(f32_to_f16(f16_to_f32(f32_to_f16(v)))));
    EXPECT_NEAR(f16_to_f32(f32_to_f16(v)), v, std::abs(v) * 1e-3 + 6e-8);
    EXPECT_NEAR(bf16_to_f32(f32_to_bf16(v)), v, std::abs(v) * 8e-3);
  }
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f16_to_f32(0x7c00), INFINITY);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
}

TEST(Dtype, SafetensorsNames) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kI32, DType::kI64, DType::kI8, DType::kU8}) {
    EXPECT_EQ(dtype_from_safetensors(dtype_name(t)), t);
  }
  EXPECT_FALSE(dtype_from_safetensors("F8_E5M2").has_value());
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
}

TEST(Dtype, F16ExhaustiveRoundTrip) {
  // Every finite f16 value survives f16 -> f32 -> f16.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00) continue;  // inf/NaN
    EXPECT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))), h) << h;
  }
}

TEST(TensorView, ShapeHelpers) {
  float data[6] = {0, 1, 2, 3, 4, 5};
  TensorView t{DType::kF32, {2, 3}, data};
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.nbytes(), 24u);
  EXPECT_EQ(*reinterpret_cast<const float*>(t.row(1)), 3.0f);
  EXPECT_EQ(shape_to_string(t.shape), "[2, 3]");
}

}  // namespace
}  // namespace tandem
