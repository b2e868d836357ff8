#include <gtest/gtest.h>

#include "base/aligned_buffer.h"
#include "base/error.h"
#include "base/mapped_file.h"
#include "base/strings.h"
#include "test_util.h"

namespace tandem {
namespace {

TEST(Strings, ParseIdList) {
  EXPECT_EQ(parse_id_list("1,2, 3", "x"), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(parse_id_list("7", "x"), (std::vector<int32_t>{7}));
  for (const char* bad : {"", "1,,2", "a", "1.5", "-1", "99999999999", "1,2,"}) {
    EXPECT_THROW(parse_id_list(bad, "--ids"), Error) << bad;
  }
  try {
    parse_id_list("3,x", "--ids");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--ids"), std::string::npos);
  }
}

TEST(Strings, UnescapeAndFormat) {
  EXPECT_EQ(unescape("a\\nb\\tc\\\\d"), "a\nb\tc\\d");
  EXPECT_EQ(unescape("plain\\q"), "plain\\q");
  EXPECT_EQ(join_ints({1, 2, 3}, ", "), "1, 2, 3");
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(18874368), "18.0 MiB");
}

TEST(MappedFile, MapsAndReportsMissingFiles) {
  testing::TempDir tmp;
  testing::write_file(tmp / "f", "hello");
  auto f = MappedFile::open(tmp / "f");
  EXPECT_EQ(f->size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data()), 5), "hello");
  testing::write_file(tmp / "empty", "");
  EXPECT_EQ(MappedFile::open(tmp / "empty")->size(), 0u);
  try {
    MappedFile::open(tmp / "missing");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos);
  }
  EXPECT_THROW(MappedFile::open(tmp.path()), Error);  // a directory
}

TEST(AlignedBuffer, AlignedZeroedMovable) {
  AlignedBuffer<float> b(17);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 64, 0u);
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(b[i], 0.0f);
  b[3] = 2.0f;
  AlignedBuffer<float> c(std::move(b));
  EXPECT_EQ(c[3], 2.0f);
  EXPECT_EQ(b.data(), nullptr);
}

}  // namespace
}  // namespace tandem
