// UTF-8 helpers shared by the tokenizer components. Input text is untrusted bytes, so every
// reader here accepts invalid UTF-8 and reports it instead of assuming well-formed input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tandem::tokenizer::utf8 {

inline constexpr char32_t kReplacement = 0xFFFD;
inline constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

// One decoded character: its code point and how many bytes it used. An invalid or truncated
// sequence yields valid == false and the length of its maximal valid prefix (at least 1), the
// unit that Rust's String::from_utf8_lossy (and so Hugging Face) replaces by one U+FFFD.
struct Char {
  char32_t cp = 0;
  uint32_t len = 1;
  bool valid = false;
};

Char decode(std::string_view s, size_t pos);

// Start of the character that ends just before `end` (for walking backwards); invalid bytes
// count as one-byte characters.
size_t previous_start(std::string_view s, size_t end);

void append(std::string& out, char32_t cp);

// The bytes with every invalid sequence replaced by U+FFFD, as String::from_utf8_lossy does.
std::string to_valid_lossy(std::string_view bytes);

bool is_valid(std::string_view bytes);

// Unicode White_Space, the set Rust's char::is_whitespace and regex `\s` use.
bool is_white_space(char32_t cp);

}  // namespace tandem::tokenizer::utf8
