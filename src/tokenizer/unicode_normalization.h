// Unicode normalization for tokenizer normalizers (NFC, NFD, NFKC, NFKD, Lowercase),
// through utf8proc (Debian libutf8proc-dev) rather than tables of our own.
#pragma once

#include <string>
#include <string_view>

namespace tandem::tokenizer {

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };

// The normal form of `text`. Invalid UTF-8 bytes are kept as they are and block
// composition across them, so arbitrary input never fails.
std::string normalize_unicode(std::string_view text, NormalForm form);
inline std::string to_nfc(std::string_view text) { return normalize_unicode(text, NormalForm::kNfc); }

// Per-code-point lowercase mapping (Unicode simple case mapping); invalid bytes kept.
std::string to_lower(std::string_view text);

// The Unicode version of the tables, for diagnostics.
const char* unicode_version();

}  // namespace tandem::tokenizer
