// GGUF reader: hand-built files for every metadata type and every malformed
// header we reject, plus the real fixtures.
#include "formats/gguf.h"

#include <gtest/gtest.h>

#include <cstring>
#include <span>

#include "base/error.h"
#include "test_util.h"

namespace tandem {
namespace {

using formats::GgufValueType;
using formats::parse_gguf;

// Writes tiny GGUF files byte by byte (little-endian host assumed, as everywhere in tandem).
class Builder {
 public:
  template <typename T>
  static void put(std::string& o, T v) {
    o.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  static void str(std::string& o, const std::string& s) {
    put<uint64_t>(o, s.size());
    o += s;
  }
  template <typename T>
  Builder& kv(const std::string& key, GgufValueType t, T v) {
    str(kv_, key);
    put<uint32_t>(kv_, static_cast<uint32_t>(t));
    put<T>(kv_, v);
    ++n_kv_;
    return *this;
  }
  Builder& kv_str(const std::string& key, const std::string& v) {
    str(kv_, key);
    put<uint32_t>(kv_, 8);
    str(kv_, v);
    ++n_kv_;
    return *this;
  }
  // Raw encoded value after the type.
  Builder& kv_raw(const std::string& key, uint32_t type, const std::string& encoded) {
    str(kv_, key);
    put<uint32_t>(kv_, type);
    kv_ += encoded;
    ++n_kv_;
    return *this;
  }
  Builder& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(ti_, name);
    put<uint32_t>(ti_, static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) put<uint64_t>(ti_, d);
    put<uint32_t>(ti_, type);
    put<uint64_t>(ti_, offset);
    ++n_t_;
    return *this;
  }
  std::string build(uint64_t data_bytes, uint32_t version = 3, uint64_t alignment = 32) const {
    std::string o = "GGUF";
    put<uint32_t>(o, version);
    put<uint64_t>(o, n_t_);
    put<uint64_t>(o, n_kv_);
    o += kv_ + ti_;
    while (o.size() % alignment) o.push_back('\0');
    o.append(data_bytes, '\x01');
    return o;
  }

 private:
  std::string kv_, ti_;
  uint64_t n_kv_ = 0, n_t_ = 0;
};

formats::Gguf parse(const std::string& b) {
  return parse_gguf(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(b.data()), b.size()), "t.gguf");
}

std::string error_of(const std::string& b) {
  try {
    parse(b);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

#define EXPECT_ERROR(bytes, text)                                         \
  do {                                                                    \
    const std::string msg_ = error_of(bytes);                             \
    EXPECT_NE(msg_.find(text), std::string::npos) << msg_;                \
    EXPECT_NE(msg_.find("t.gguf"), std::string::npos) << msg_;            \
  } while (0)

TEST(Gguf, EveryMetadataType) {
  std::string arr;  // array of 2 strings
  Builder::put<uint32_t>(arr, 8);
  Builder::put<uint64_t>(arr, 2);
  Builder::str(arr, "a");
  Builder::str(arr, "bc");
  std::string nested;  // array of 2 arrays: [i32 x2], [string x1]
  Builder::put<uint32_t>(nested, 9);
  Builder::put<uint64_t>(nested, 2);
  Builder::put<uint32_t>(nested, 5);
  Builder::put<uint64_t>(nested, 2);
  Builder::put<int32_t>(nested, -1);
  Builder::put<int32_t>(nested, 7);
  Builder::put<uint32_t>(nested, 8);
  Builder::put<uint64_t>(nested, 1);
  Builder::str(nested, "x");
  Builder b;
  b.kv("u8", GgufValueType::kU8, uint8_t{200})
      .kv("i8", GgufValueType::kI8, int8_t{-5})
      .kv("u16", GgufValueType::kU16, uint16_t{60000})
      .kv("i16", GgufValueType::kI16, int16_t{-300})
      .kv("u32", GgufValueType::kU32, uint32_t{4000000000u})
      .kv("i32", GgufValueType::kI32, int32_t{-70000})
      .kv("f32", GgufValueType::kF32, 1.5f)
      .kv("bool", GgufValueType::kBool, uint8_t{1})
      .kv("u64", GgufValueType::kU64, uint64_t{1} << 40)
      .kv("i64", GgufValueType::kI64, int64_t{-(int64_t{1} << 40)})
      .kv("f64", GgufValueType::kF64, 2.25)
      .kv_str("s", "hello")
      .kv_raw("arr", 9, arr)
      .kv_raw("nested", 9, nested);
  auto g = parse(b.build(0));
  EXPECT_EQ(g.version, 3u);
  EXPECT_EQ(g.get_int("u8"), 200);
  EXPECT_EQ(g.get_int("i8"), -5);
  EXPECT_EQ(g.get_int("u16"), 60000);
  EXPECT_EQ(g.get_int("i16"), -300);
  EXPECT_EQ(g.get_int("u32"), 4000000000LL);
  EXPECT_EQ(g.get_int("i32"), -70000);
  EXPECT_EQ(g.get_float("f32"), 1.5);
  EXPECT_TRUE(g.get_bool_or("bool", false));
  EXPECT_EQ(g.get_int("u64"), int64_t{1} << 40);
  EXPECT_EQ(g.get_int("i64"), -(int64_t{1} << 40));
  EXPECT_EQ(g.get_float("f64"), 2.25);
  EXPECT_EQ(g.get_float("i32"), -70000.0);  // integers are numbers too
  EXPECT_EQ(g.get_string("s"), "hello");
  EXPECT_EQ(g.get_string_array("arr"), (std::vector<std::string>{"a", "bc"}));
  const auto* n = g.find("nested");
  ASSERT_NE(n, nullptr);
  ASSERT_EQ(n->arrays.size(), 2u);
  EXPECT_EQ(n->arrays[0].count, 2u);
  EXPECT_EQ(n->arrays[1].strings, std::vector<std::string>{"x"});
  EXPECT_EQ(n->type_string(), "array of array");
  EXPECT_EQ(g.get_int_or("absent", 9), 9);
}

TEST(Gguf, TypedGetterErrors) {
  Builder b;
  b.kv_str("general.architecture", "llama");
  auto g = parse(b.build(0));
  try {
    g.get_int("llama.block_count");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "t.gguf: metadata 'llama.block_count' missing");
  }
  try {
    g.get_int("general.architecture");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "t.gguf: metadata 'general.architecture' has type string, expected an integer");
  }
  EXPECT_THROW(g.get_string_array("general.architecture"), Error);
}

TEST(Gguf, TensorsAndAlignment) {
  Builder b;
  b.kv("general.alignment", GgufValueType::kU32, uint32_t{64});
  b.tensor("a", {4, 2}, 0, 0).tensor("b", {32}, 8, 64);  // f32 32 bytes; q8_0 one block = 34 bytes
  auto g = parse(b.build(64 + 34, 3, 64));
  EXPECT_EQ(g.alignment, 64u);
  EXPECT_EQ(g.data_start % 64, 0u);
  ASSERT_EQ(g.tensors().size(), 2u);
  EXPECT_EQ(g.find_tensor("a")->nbytes, 32u);
  EXPECT_EQ(g.find_tensor("a")->ne, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(g.find_tensor("b")->nbytes, 34u);
  EXPECT_EQ(g.find_tensor("c"), nullptr);
  // Version 2 has the same layout.
  EXPECT_EQ(parse(b.build(64 + 34, 2, 64)).version, 2u);
}

TEST(Gguf, HeaderErrors) {
  Builder ok;
  EXPECT_ERROR(std::string("GGUX") + ok.build(0).substr(4), "bad magic");
  EXPECT_ERROR(ok.build(0, 1), "GGUF version 1 is not supported");
  EXPECT_ERROR(ok.build(0, 4), "unsupported GGUF version 4");
  EXPECT_ERROR(ok.build(0).substr(0, 10), "truncated");
  std::string huge = "GGUF";
  Builder::put<uint32_t>(huge, 3);
  Builder::put<uint64_t>(huge, 0);
  Builder::put<uint64_t>(huge, uint64_t{1} << 60);
  EXPECT_ERROR(huge, "absurd metadata count");
}

TEST(Gguf, MetadataErrors) {
  std::string long_str;
  Builder::put<uint64_t>(long_str, uint64_t{1} << 62);
  EXPECT_ERROR(Builder().kv_raw("k", 8, long_str).build(0), "absurd length");
  std::string big_array;
  Builder::put<uint32_t>(big_array, 5);
  Builder::put<uint64_t>(big_array, uint64_t{1} << 40);
  EXPECT_ERROR(Builder().kv_raw("tokens", 9, big_array).build(0), "metadata 'tokens' has absurd element count");
  EXPECT_ERROR(Builder().kv_raw("k", 13, "").build(0), "metadata 'k' has unknown value type 13");
  EXPECT_ERROR(Builder().kv_str("k", "a").kv_str("k", "b").build(0), "duplicate metadata key 'k'");
  EXPECT_ERROR(Builder().kv("general.alignment", GgufValueType::kU32, uint32_t{3}).build(0), "not a power of two");
  EXPECT_ERROR(Builder().kv("b", GgufValueType::kBool, uint8_t{2}).build(0), "bool with value 2");
  // Arrays nested without end.
  std::string deep;
  for (int i = 0; i < 20; ++i) {
    Builder::put<uint32_t>(deep, 9);
    Builder::put<uint64_t>(deep, 1);
  }
  EXPECT_ERROR(Builder().kv_raw("deep", 9, deep).build(0), "nested deeper");
}

TEST(Gguf, TensorErrors) {
  EXPECT_ERROR(Builder().tensor("w", {32}, 77, 0).build(128), "tensor 'w' has unknown ggml type 77");
  EXPECT_ERROR(Builder().tensor("w", {33}, 8, 0).build(128), "tensor 'w' has ne[0] = 33, not a multiple of the block size 32");
  EXPECT_ERROR(Builder().tensor("w", {1, 1, 1, 1, 1}, 0, 0).build(128), "tensor 'w' has 5 dims");
  EXPECT_ERROR(Builder().tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).build(128), "duplicate tensor name 'w'");
  EXPECT_ERROR(Builder().tensor("w", {64}, 0, 0).build(128), "tensor 'w' data");  // 256 bytes > 128
  EXPECT_ERROR(Builder().tensor("w", {8}, 0, 1u << 20).build(128), "tensor 'w' data");
  EXPECT_ERROR(Builder().tensor("w", {8}, 0, 4).build(128), "not a multiple of the alignment");
  EXPECT_ERROR(Builder().tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).build(128), "overlaps");
  EXPECT_ERROR(Builder().tensor("w", {uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0).build(128), "absurd dims");
  std::string many = "GGUF";
  Builder::put<uint32_t>(many, 3);
  Builder::put<uint64_t>(many, uint64_t{1} << 50);
  Builder::put<uint64_t>(many, 0);
  EXPECT_ERROR(many, "absurd tensor count");
}

TEST(Gguf, ReadsFixtureFiles) {
  for (const char* name : {"tiny-llama/tiny-llama-Q4_K_M.gguf", "tiny-qwen2/tiny-qwen2-F16.gguf", "vocab/gpt2.gguf"}) {
    auto f = formats::GgufFile::open(testing::shared_dir() / "fixtures" / "gguf" / name);
    const auto& g = f->gguf();
    EXPECT_EQ(g.version, 3u) << name;
    EXPECT_FALSE(g.get_string("general.architecture").empty()) << name;
    for (const auto& ti : g.tensors()) {
      auto d = f->view(ti);
      EXPECT_EQ(d.nbytes, ti.nbytes);
    }
  }
  auto f = formats::GgufFile::open(testing::shared_dir() / "fixtures" / "gguf" / "tiny-llama" / "tiny-llama-Q4_K_M.gguf");
  EXPECT_EQ(f->gguf().get_int("llama.block_count"), 2);
  EXPECT_EQ(f->gguf().find_tensor("output.weight")->type, 14u);  // q6_K
  EXPECT_EQ(f->tensor("token_embd.weight").info->ne, (std::vector<int64_t>{256, 512}));
  EXPECT_THROW(f->tensor("nope"), Error);
  auto v = formats::GgufFile::open(testing::shared_dir() / "fixtures" / "gguf" / "vocab" / "gpt2.gguf");
  EXPECT_EQ(v->gguf().get_array_size("tokenizer.ggml.tokens"), 50257u);
}

}  // namespace
}  // namespace tandem
