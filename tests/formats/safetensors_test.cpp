// safetensors reading and writing, and every malformed-header case the issue
// names: each must throw tandem::Error naming the file and the tensor or field.
#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>

#include "base/error.h"
#include "test_util.h"

namespace tandem {
namespace {

using formats::parse_safetensors_header;
using testing::TempDir;

std::string make_file(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += header;
  out.append(data_bytes, '\x01');
  return out;
}

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Expects parse to throw an Error whose message contains every fragment.
void expect_error(const std::string& file, std::initializer_list<const char*> fragments) {
  try {
    parse_safetensors_header(bytes(file), "x.safetensors");
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("x.safetensors"), std::string::npos) << msg;
    for (const char* f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "missing '" << f << "' in: " << msg;
  }
}

TEST(Safetensors, ParsesValidHeader) {
  auto f = make_file(R"({"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},"__metadata__":{"format":"pt"}})", 12);
  auto h = parse_safetensors_header(bytes(f), "x");
  ASSERT_EQ(h.entries.size(), 1u);
  EXPECT_EQ(h.entries[0].name, "a");
  EXPECT_EQ(h.entries[0].dtype, DType::kBF16);
  EXPECT_EQ(h.entries[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(h.metadata.at("format"), "pt");
  EXPECT_EQ(h.data_start, 8 + f.size() - 8 - 12);
}

TEST(Safetensors, RejectsShortFile) { expect_error("abc", {"too short"}); }

TEST(Safetensors, RejectsHeaderLengthPastEnd) {
  std::string f = make_file("{}", 0);
  f[0] = 100;  // claims a 100-byte header
  expect_error(f, {"header length 100", "truncated"});
}

TEST(Safetensors, RejectsHugeHeaderLength) {
  std::string f(16, '\xff');
  expect_error(f, {"exceeds"});
}

TEST(Safetensors, RejectsInvalidJson) { expect_error(make_file("{\"a\":", 0), {"not valid JSON"}); }

TEST(Safetensors, RejectsNonObjectHeader) { expect_error(make_file("[1,2]", 0), {"not a JSON object"}); }

TEST(Safetensors, RejectsUnknownDtype) {
  expect_error(make_file(R"({"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", 1), {"'w'", "F8_E4M3"});
}

TEST(Safetensors, RejectsOffsetsOutOfRange) {
  expect_error(make_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8), {"'w'", "out of range"});
}

TEST(Safetensors, RejectsSizeMismatch) {
  expect_error(make_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", 16), {"'w'", "needs 12 bytes"});
}

TEST(Safetensors, RejectsReversedOffsets) {
  expect_error(make_file(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 16), {"'w'", "begin > end"});
}

TEST(Safetensors, RejectsOverflowingShape) {
  expect_error(make_file(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}})", 16),
               {"'w'", "too large"});
}

TEST(Safetensors, RejectsNegativeDimension) {
  expect_error(make_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), {"'w'", "dimension"});
}

TEST(Safetensors, RejectsOverlappingTensors) {
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
               {"overlap"});
}

TEST(Safetensors, WriteThenReadRoundTrips) {
  TempDir tmp;
  std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  std::vector<uint16_t> b = {f32_to_bf16(1.0f), f32_to_bf16(-0.5f)};
  formats::write_safetensors(tmp / "t.safetensors",
                             {{"a", DType::kF32, {2, 3}, a.data()}, {"b", DType::kBF16, {2}, b.data()}}, {{"k", "v"}});
  auto f = formats::SafetensorsFile::open(tmp / "t.safetensors");
  EXPECT_EQ(f->header().data_start % 8, 0u);
  const auto* ea = f->find("a");
  ASSERT_NE(ea, nullptr);
  auto va = f->view(*ea);
  EXPECT_EQ(va.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(va.data, a.data(), a.size() * 4), 0);
  auto vb = f->view(*f->find("b"));
  EXPECT_EQ(bf16_to_f32(static_cast<const uint16_t*>(vb.data)[1]), -0.5f);
  EXPECT_EQ(f->header().metadata.at("k"), "v");
  EXPECT_EQ(f->find("missing"), nullptr);
}

TEST(Safetensors, ShardedCheckpointResolvesEveryTensor) {
  TempDir tmp;
  std::vector<float> a = {1, 2}, b = {3, 4, 5};
  formats::write_safetensors(tmp / "model-00001-of-00002.safetensors", {{"a", DType::kF32, {2}, a.data()}});
  formats::write_safetensors(tmp / "model-00002-of-00002.safetensors", {{"b", DType::kF32, {3}, b.data()}});
  testing::write_file(tmp / "model.safetensors.index.json",
                      R"({"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}})");
  auto c = formats::Checkpoint::open(tmp.path());
  EXPECT_TRUE(c->has("a"));
  EXPECT_TRUE(c->has("b"));
  EXPECT_EQ(static_cast<const float*>(c->get("b").data)[2], 5.0f);
  EXPECT_EQ(c->file_of("b"), "model-00002-of-00002.safetensors");
  EXPECT_EQ(c->total_bytes(), 20u);
  EXPECT_THROW(c->get("zzz"), Error);
}

TEST(Safetensors, ShardIndexNamingAMissingTensorFails) {
  TempDir tmp;
  std::vector<float> a = {1, 2};
  formats::write_safetensors(tmp / "s1.safetensors", {{"a", DType::kF32, {2}, a.data()}});
  testing::write_file(tmp / "model.safetensors.index.json", R"({"weight_map":{"a":"s1.safetensors","c":"s1.safetensors"}})");
  try {
    formats::Checkpoint::open(tmp.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'c'"), std::string::npos) << e.what();
  }
}

TEST(Safetensors, ShardIndexEscapingTheFolderFails) {
  TempDir tmp;
  testing::write_file(tmp / "model.safetensors.index.json", R"({"weight_map":{"a":"../../etc/passwd"}})");
  EXPECT_THROW(formats::Checkpoint::open(tmp.path()), Error);
}

TEST(Safetensors, MissingFolderContentsFail) {
  TempDir tmp;
  try {
    formats::Checkpoint::open(tmp.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos);
  }
}

TEST(Safetensors, TruncatedRealCheckpointFails) {
  TempDir tmp;
  std::string whole = testing::read_file(testing::shared_dir() / "fixtures/hf/llama/model.safetensors");
  testing::write_file(tmp / "model.safetensors", whole.substr(0, whole.size() / 2));
  try {
    formats::SafetensorsFile::open(tmp / "model.safetensors");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tandem
