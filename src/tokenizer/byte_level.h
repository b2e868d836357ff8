// GPT-2's byte <-> character alphabet: every byte gets a printable character so that byte-level
// BPE vocabularies can be stored as text. Printable Latin-1 bytes map to themselves and the rest
// to U+0100 onwards, exactly as Hugging Face's bytes_char().
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace tandem::tokenizer::byte_level {

// UTF-8 of the character that stands for byte b.
std::string_view char_of_byte(uint8_t b);

// The byte a character stands for, or -1 when the character is not in the alphabet.
int byte_of_char(char32_t cp);

// Appends the alphabet characters for every byte of `bytes`.
void encode_bytes(std::string_view bytes, std::string& out);

}  // namespace tandem::tokenizer::byte_level
