// GGUF writer: everything written reads back identically through our reader
// (formats/gguf.h), for every metadata type, tensor type layout and alignment.
#include "formats/gguf_writer.h"

#include <gtest/gtest.h>

#include <cstring>

#include "base/error.h"
#include "test_util.h"

namespace tandem {
namespace {

using formats::GgufFile;
using formats::GgufValue;
using formats::GgufValueType;
using formats::GgufWriter;
using testing::TempDir;

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 131 + (i >> 7));
  return b;
}

TEST(GgufWriter, EveryMetadataTypeAndTensorRoundTrips) {
  for (uint32_t alignment : {32u, 64u, 1u}) {
    SCOPED_TRACE("alignment " + std::to_string(alignment));
    TempDir tmp;
    const auto path = tmp / "m.gguf";
    GgufWriter w(alignment);
    w.add_u8("k.u8", 250);
    w.add_i8("k.i8", -7);
    w.add_u16("k.u16", 65000);
    w.add_i16("k.i16", -30000);
    w.add_u32("k.u32", 4000000000u);
    w.add_i32("k.i32", -2000000000);
    w.add_u64("k.u64", 0xfedcba9876543210ull);
    w.add_i64("k.i64", -(int64_t{1} << 62));
    w.add_f32("k.f32", 1.5e-5f);
    w.add_f64("k.f64", 3.141592653589793);
    w.add_bool("k.bool_t", true);
    w.add_bool("k.bool_f", false);
    w.add_string("k.str", "héllo\nworld");
    w.add_string("k.empty", "");
    w.add_string_array("k.strs", {"a", "", "Ġthe", std::string("\0x", 2)});
    const std::vector<int32_t> i32s = {1, -2, 3, 2147483647};
    w.add_i32_array("k.i32s", i32s);
    const std::vector<float> f32s = {0.5f, -1.25f};
    w.add_f32_array("k.f32s", f32s);
    const uint8_t u8s[3] = {1, 2, 255};
    w.add_scalar_array("k.u8s", GgufValueType::kU8, u8s, 3);
    const uint8_t bools[2] = {1, 0};
    w.add_scalar_array("k.bools", GgufValueType::kBool, bools, 2);
    const double f64s[2] = {1e300, -2.5};
    w.add_scalar_array("k.f64s", GgufValueType::kF64, f64s, 2);
    const int16_t i16s[2] = {-5, 5};
    w.add_scalar_array("k.i16s", GgufValueType::kI16, i16s, 2);
    const uint64_t u64s[1] = {~0ull};
    w.add_scalar_array("k.u64s", GgufValueType::kU64, u64s, 1);
    w.add_scalar_array("k.emptyarr", GgufValueType::kI64, nullptr, 0);
    // Nested array: [[1, 2], [3]] as u32.
    GgufValue nested;
    nested.type = GgufValueType::kArray;
    nested.elem_type = GgufValueType::kArray;
    for (std::vector<uint32_t> inner : {std::vector<uint32_t>{1, 2}, std::vector<uint32_t>{3}}) {
      GgufValue e;
      e.type = GgufValueType::kArray;
      e.elem_type = GgufValueType::kU32;
      e.count = inner.size();
      e.raw.resize(inner.size() * 4);
      std::memcpy(e.raw.data(), inner.data(), e.raw.size());
      nested.arrays.push_back(e);
    }
    w.add_value("k.nested", nested);

    struct T {
      std::string name;
      std::vector<int64_t> ne;
      GgmlType type;
    };
    const std::vector<T> ts = {{"a.f32", {5, 3}, GgmlType::kF32},
                               {"b.f16", {7}, GgmlType::kF16},
                               {"c.q8_0", {64, 2, 1, 3}, GgmlType::kQ8_0},
                               {"d.q4_k", {256, 3}, GgmlType::kQ4_K},
                               {"e.bf16", {3, 3, 2}, GgmlType::kBF16}};
    std::vector<std::vector<uint8_t>> bytes;
    for (size_t k = 0; k < ts.size(); ++k) {
      const uint64_t n = w.add_tensor(ts[k].name, ts[k].ne, ts[k].type);
      bytes.push_back(pattern(static_cast<size_t>(n), static_cast<uint8_t>(k * 17)));
    }
    w.begin(path);
    for (size_t k = 0; k < ts.size(); ++k) {
      EXPECT_EQ(w.current_tensor(), ts[k].name);
      // Uneven chunks, to exercise the streaming path.
      size_t done = 0;
      for (size_t chunk = 1; done < bytes[k].size(); chunk = chunk * 3 + 1) {
        const size_t n = std::min(chunk, bytes[k].size() - done);
        w.write_tensor_data(bytes[k].data() + done, n);
        done += n;
      }
    }
    EXPECT_EQ(w.current_tensor(), "");
    w.finish();
    EXPECT_EQ(w.bytes_written(), std::filesystem::file_size(path));
    EXPECT_FALSE(std::filesystem::exists(path.string() + ".partial"));

    auto f = GgufFile::open(path);
    const auto& g = f->gguf();
    EXPECT_EQ(g.version, 3u);
    EXPECT_EQ(g.alignment, alignment);
    EXPECT_EQ(g.get_int("k.u8"), 250);
    EXPECT_EQ(g.find("k.u8")->type, GgufValueType::kU8);
    EXPECT_EQ(g.get_int("k.i8"), -7);
    EXPECT_EQ(g.find("k.i8")->type, GgufValueType::kI8);
    EXPECT_EQ(g.get_int("k.u16"), 65000);
    EXPECT_EQ(g.find("k.u16")->type, GgufValueType::kU16);
    EXPECT_EQ(g.get_int("k.i16"), -30000);
    EXPECT_EQ(g.find("k.i16")->type, GgufValueType::kI16);
    EXPECT_EQ(g.get_int("k.u32"), 4000000000ll);
    EXPECT_EQ(g.find("k.u32")->type, GgufValueType::kU32);
    EXPECT_EQ(g.get_int("k.i32"), -2000000000);
    EXPECT_EQ(g.find("k.i32")->type, GgufValueType::kI32);
    EXPECT_EQ(g.find("k.u64")->u, 0xfedcba9876543210ull);
    EXPECT_EQ(g.find("k.u64")->type, GgufValueType::kU64);
    EXPECT_EQ(g.get_int("k.i64"), -(int64_t{1} << 62));
    EXPECT_EQ(g.find("k.i64")->type, GgufValueType::kI64);
    EXPECT_EQ(g.get_float("k.f32"), static_cast<double>(1.5e-5f));
    EXPECT_EQ(g.find("k.f32")->type, GgufValueType::kF32);
    EXPECT_EQ(g.get_float("k.f64"), 3.141592653589793);
    EXPECT_EQ(g.find("k.f64")->type, GgufValueType::kF64);
    EXPECT_TRUE(g.get_bool_or("k.bool_t", false));
    EXPECT_FALSE(g.get_bool_or("k.bool_f", true));
    EXPECT_EQ(g.get_string("k.str"), "héllo\nworld");
    EXPECT_EQ(g.get_string("k.empty"), "");
    EXPECT_EQ(g.get_string_array("k.strs"), (std::vector<std::string>{"a", "", "Ġthe", std::string("\0x", 2)}));
    auto raw_eq = [&](const std::string& key, GgufValueType et, const void* data, size_t count, size_t es) {
      const GgufValue* v = g.find(key);
      ASSERT_NE(v, nullptr) << key;
      EXPECT_EQ(v->type, GgufValueType::kArray) << key;
      EXPECT_EQ(v->elem_type, et) << key;
      EXPECT_EQ(v->count, count) << key;
      ASSERT_EQ(v->raw.size(), count * es) << key;
      if (count) {
        EXPECT_EQ(std::memcmp(v->raw.data(), data, count * es), 0) << key;
      }
    };
    raw_eq("k.i32s", GgufValueType::kI32, i32s.data(), 4, 4);
    raw_eq("k.f32s", GgufValueType::kF32, f32s.data(), 2, 4);
    raw_eq("k.u8s", GgufValueType::kU8, u8s, 3, 1);
    raw_eq("k.bools", GgufValueType::kBool, bools, 2, 1);
    raw_eq("k.f64s", GgufValueType::kF64, f64s, 2, 8);
    raw_eq("k.i16s", GgufValueType::kI16, i16s, 2, 2);
    raw_eq("k.u64s", GgufValueType::kU64, u64s, 1, 8);
    raw_eq("k.emptyarr", GgufValueType::kI64, nullptr, 0, 8);
    const GgufValue* nv = g.find("k.nested");
    ASSERT_NE(nv, nullptr);
    ASSERT_EQ(nv->elem_type, GgufValueType::kArray);
    ASSERT_EQ(nv->arrays.size(), 2u);
    EXPECT_EQ(nv->arrays[0].count, 2u);
    EXPECT_EQ(nv->arrays[1].raw, nested.arrays[1].raw);
    // Keys in insertion order (plus general.alignment when not the default).
    size_t expected_keys = 24 + (alignment != 32 ? 1 : 0);
    EXPECT_EQ(g.metadata().size(), expected_keys);
    EXPECT_EQ(g.metadata().front().first, "k.u8");

    ASSERT_EQ(g.tensors().size(), ts.size());
    for (size_t k = 0; k < ts.size(); ++k) {
      const auto d = f->tensor(ts[k].name);
      EXPECT_EQ(d.info->ne, ts[k].ne) << ts[k].name;
      EXPECT_EQ(d.info->type, static_cast<uint32_t>(ts[k].type)) << ts[k].name;
      EXPECT_EQ(d.info->offset % alignment, 0u) << ts[k].name;
      ASSERT_EQ(d.nbytes, bytes[k].size()) << ts[k].name;
      EXPECT_EQ(std::memcmp(d.data, bytes[k].data(), bytes[k].size()), 0) << ts[k].name;
    }
  }
}

TEST(GgufWriter, NoTensorsIsAValidFile) {
  TempDir tmp;
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.begin(tmp / "e.gguf");
  w.finish();
  auto f = GgufFile::open(tmp / "e.gguf");
  EXPECT_EQ(f->gguf().get_string("general.architecture"), "llama");
  EXPECT_TRUE(f->gguf().tensors().empty());
}

TEST(GgufWriter, MisuseAndIoFailuresAreClearErrors) {
  TempDir tmp;
  {
    GgufWriter w;
    w.add_u32("a", 1);
    EXPECT_THROW(w.add_u32("a", 2), Error);                                     // duplicate key
    EXPECT_THROW(w.add_tensor("q", {33}, GgmlType::kQ8_0), Error);              // not whole blocks
    EXPECT_THROW(w.add_tensor("z", {0, 2}, GgmlType::kF32), Error);             // empty dim
    w.add_tensor("t", {4}, GgmlType::kF32);
    EXPECT_THROW(w.add_tensor("t", {4}, GgmlType::kF32), Error);                // duplicate tensor
    w.begin(tmp / "x.gguf");
    EXPECT_THROW(w.add_u32("b", 1), Error);                                     // after begin
    const float four[5] = {1, 2, 3, 4, 5};
    EXPECT_THROW(w.write_tensor_data(four, 20), Error);                         // too many bytes
  }
  {
    GgufWriter w;
    w.add_tensor("t", {4}, GgmlType::kF32);
    w.begin(tmp / "y.gguf");
    const float two[2] = {1, 2};
    w.write_tensor_data(two, 8);
    try {
      w.finish();
      FAIL() << "finish() with missing data must throw";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'t' got 8 of 16 bytes"), std::string::npos) << e.what();
    }
  }
  // Abandoned writers leave nothing behind.
  EXPECT_FALSE(std::filesystem::exists(tmp / "x.gguf"));
  EXPECT_FALSE(std::filesystem::exists(tmp / "x.gguf.partial"));
  EXPECT_FALSE(std::filesystem::exists(tmp / "y.gguf.partial"));
  {
    GgufWriter w;
    try {
      w.begin(tmp / "no" / "such" / "dir" / "m.gguf");
      FAIL() << "opening in a missing folder must throw";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("m.gguf"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
    }
  }
  if (std::filesystem::exists("/dev/full")) {
    // A full disk: "<out>.partial" is a link to /dev/full, so writes fail with ENOSPC at
    // some fwrite or at the flush; either way an Error naming the file and the reason.
    std::filesystem::create_symlink("/dev/full", tmp / "full.gguf.partial");
    GgufWriter w;
    std::vector<float> big(1 << 18, 1.0f);
    w.add_tensor("t", {static_cast<int64_t>(big.size())}, GgmlType::kF32);
    try {
      w.begin(tmp / "full.gguf");
      w.write_tensor_data(big.data(), big.size() * 4);
      w.finish();
      FAIL() << "writing to a full disk must throw";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("full.gguf"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("No space"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(tmp / "full.gguf"));
  }
}

}  // namespace
}  // namespace tandem
