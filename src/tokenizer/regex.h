// A compiled PCRE2 pattern with the options Hugging Face patterns need: UTF and Unicode
// properties (\p{L}, \s), JIT when available, and PCRE2_MATCH_INVALID_UTF so that arbitrary
// bytes never make matching fail or crash (invalid sequences simply never match).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/function_ref.h"

namespace tandem::tokenizer {

class JsonNode;

class Regex {
 public:
  // Throws tandem::Error "<where>: invalid regex at offset N: <reason>" on a bad pattern.
  Regex(std::string_view pattern, const std::string& where);
  // Matches `text` literally (as Hugging Face's SplitPattern::String does via regex::escape).
  static Regex literal(std::string_view text, const std::string& where);
  Regex(Regex&& other) noexcept;
  Regex& operator=(Regex&& other) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  ~Regex();

  // All non-overlapping matches, leftmost first, as [begin, end) byte ranges. After an empty
  // match the search resumes one character later, as Oniguruma's find_iter does.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  // The same matches, streamed to `visit(begin, end)` without building a list.
  void for_each_match(std::string_view text, FunctionRef<void(size_t, size_t)> visit) const;
  // Whether the pattern matches at the very start of `text` (anchored).
  bool matches_at_start(std::string_view text) const;

 private:
  Regex() = default;
  void compile(std::string_view pattern, const std::string& where);
  int match(std::string_view text, size_t offset, unsigned options, void* match_data) const;

  void* code_ = nullptr;  // pcre2_code_8*; opaque here so callers need not include pcre2.h
  bool literal_empty_ = false;
};

// The Hugging Face pattern object {"String": "..."} (a literal) or {"Regex": "..."}, used by
// the Split pre-tokenizer and the Replace normalizer and decoder.
Regex make_pattern(const JsonNode& node);

}  // namespace tandem::tokenizer
