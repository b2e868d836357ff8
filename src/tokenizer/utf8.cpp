#include "tokenizer/utf8.h"

namespace tandem::tokenizer::utf8 {

Char decode(std::string_view s, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t b0 = byte(pos);
  if (b0 < 0x80) return {b0, 1, true};
  uint32_t need = 0;
  char32_t cp = 0;
  // Bounds for the second byte exclude overlong forms, surrogates and code points > U+10FFFF.
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1, cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2, cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3, cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {kReplacement, 1, false};
  }
  uint32_t len = 1;
  for (uint32_t k = 0; k < need; ++k) {
    const size_t i = pos + len;
    if (i >= s.size()) return {kReplacement, len, false};
    const uint8_t b = byte(i);
    const uint8_t min = k == 0 ? lo : 0x80, max = k == 0 ? hi : 0xBF;
    if (b < min || b > max) return {kReplacement, len, false};
    cp = (cp << 6) | (b & 0x3F);
    ++len;
  }
  return {cp, len, true};
}

size_t previous_start(std::string_view s, size_t end) {
  if (end == 0) return 0;
  // Walk back over at most three continuation bytes and accept the lead only if it decodes to
  // exactly the bytes up to `end`; otherwise the last byte stands alone.
  for (size_t back = 1; back <= 4 && back <= end; ++back) {
    const size_t start = end - back;
    const uint8_t b = static_cast<uint8_t>(s[start]);
    if ((b & 0xC0) != 0x80) {
      const Char c = decode(s, start);
      if (c.valid && start + c.len == end) return start;
      break;
    }
  }
  return end - 1;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string to_valid_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    // Copy runs of ASCII without decoding: the common case for detokenized text.
    if (static_cast<uint8_t>(bytes[pos]) < 0x80) {
      out.push_back(bytes[pos++]);
      continue;
    }
    const Char c = decode(bytes, pos);
    if (c.valid) {
      out.append(bytes.substr(pos, c.len));
    } else {
      out.append(kReplacementUtf8);
    }
    pos += c.len;
  }
  return out;
}

bool is_valid(std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    const Char c = decode(bytes, pos);
    if (!c.valid) return false;
    pos += c.len;
  }
  return true;
}

bool is_white_space(char32_t cp) {
  if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20;
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

}  // namespace tandem::tokenizer::utf8
