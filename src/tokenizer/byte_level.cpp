#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

namespace tandem::tokenizer::byte_level {
namespace {

struct Tables {
  std::array<std::string, 256> utf8;   // byte -> UTF-8 of its character
  std::array<int16_t, 512> byte_of{};  // code point (< 512) -> byte, or -1

  Tables() {
    byte_of.fill(-1);
    const auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const char32_t cp = printable(b) ? static_cast<char32_t>(b) : static_cast<char32_t>(next++);
      utf8::append(utf8[b], cp);
      byte_of[cp] = static_cast<int16_t>(b);
    }
  }
};

// Immutable after construction (thread-safe static init), so not shared mutable state.
const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

std::string_view char_of_byte(uint8_t b) {
  return tables().utf8[b];
}

int byte_of_char(char32_t cp) {
  return cp < 512 ? tables().byte_of[cp] : -1;
}

void encode_bytes(std::string_view bytes, std::string& out) {
  const Tables& t = tables();
  out.reserve(out.size() + bytes.size() * 2);
  for (char c : bytes) out += t.utf8[static_cast<uint8_t>(c)];
}

}  // namespace tandem::tokenizer::byte_level
