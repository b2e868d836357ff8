// Helpers for the tokenizer tests: where the shared fixtures are, reading (gzipped) files, and
// a decode/stream consistency check. Kept separate from tests/test_util.h so the tokenizer
// tests build with the tokenizer layer alone.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace tandem::tokenizer::testing {

// $TANDEM_SHARED, else ../shared beside the checkout.
inline std::filesystem::path shared_dir() {
  if (const char* s = std::getenv("TANDEM_SHARED"); s != nullptr && *s) return s;
  return std::filesystem::path(TANDEM_SOURCE_DIR) / ".." / "shared";
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The decompressed bytes of a .gz file via the gzip tool (zlib is not linked), or nullopt when
// gzip is unavailable or fails.
inline std::optional<std::string> gunzip_file(const std::filesystem::path& p) {
  if (!std::filesystem::exists(p)) return std::nullopt;
  const std::string cmd = "gzip -dc '" + p.string() + "' 2>/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) return std::nullopt;
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe.get())) > 0) out.append(buf, n);
  if (pclose(pipe.release()) != 0 || out.empty()) return std::nullopt;
  return out;
}

// Streams `ids` through a StreamDecoder and checks the pieces concatenate to decode(ids) and
// that every piece is whole UTF-8 (no character split across pushes).
inline void expect_stream_matches_decode(const Tokenizer& tok, const std::vector<int32_t>& ids,
                                         bool skip_special_tokens = true) {
  StreamDecoder stream(tok, skip_special_tokens);
  std::string joined;
  for (int32_t id : ids) {
    const std::string piece = stream.push(id);
    if (!piece.empty()) {
      const auto first = static_cast<unsigned char>(piece.front());
      EXPECT_NE(first & 0xC0, 0x80) << "piece starts inside a character";
    }
    joined += piece;
  }
  joined += stream.flush();
  EXPECT_EQ(joined, tok.decode(ids, skip_special_tokens));
}

}  // namespace tandem::tokenizer::testing
