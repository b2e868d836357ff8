// Unicode Normalization Form C, for tokenizers whose normalizer is {"type": "NFC"} (Qwen 2/3),
// through utf8proc (Debian libutf8proc-dev) rather than tables of our own.
#pragma once

#include <string>
#include <string_view>

namespace tandem::tokenizer {

// NFC of `text`. Invalid UTF-8 bytes are kept as they are and block composition across them,
// so arbitrary input never fails.
std::string to_nfc(std::string_view text);

// The Unicode version of the tables, for diagnostics.
const char* nfc_unicode_version();

}  // namespace tandem::tokenizer
