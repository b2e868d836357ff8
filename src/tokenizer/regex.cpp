#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>

#include "base/error.h"
#include "tokenizer/json_node.h"
#include "tokenizer/utf8.h"

namespace tandem::tokenizer {
namespace {

pcre2_code* as_code(void* p) {
  return static_cast<pcre2_code*>(p);
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* p) const { pcre2_match_data_free(p); }
};
using MatchData = std::unique_ptr<pcre2_match_data, MatchDataDeleter>;

std::string escape_literal(std::string_view text) {
  // \Q...\E quotes everything except a literal "\E", which we split around.
  std::string out;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t e = text.find("\\E", pos);
    const size_t end = e == std::string_view::npos ? text.size() : e;
    if (end > pos) out += "\\Q" + std::string(text.substr(pos, end - pos)) + "\\E";
    if (e == std::string_view::npos) break;
    out += "\\\\E";
    pos = e + 2;
  }
  return out;
}

}  // namespace

Regex::Regex(std::string_view pattern, const std::string& where) {
  compile(pattern, where);
}

Regex Regex::literal(std::string_view text, const std::string& where) {
  Regex r;
  // Hugging Face never matches an empty literal (pattern.rs); remember that instead of
  // compiling a pattern that matches the empty string everywhere.
  if (text.empty()) {
    r.literal_empty_ = true;
    return r;
  }
  r.compile(escape_literal(text), where);
  return r;
}

Regex::Regex(Regex&& other) noexcept
    : code_(std::exchange(other.code_, nullptr)), literal_empty_(other.literal_empty_) {}

Regex& Regex::operator=(Regex&& other) noexcept {
  if (this != &other) {
    if (code_) pcre2_code_free(as_code(code_));
    code_ = std::exchange(other.code_, nullptr);
    literal_empty_ = other.literal_empty_;
  }
  return *this;
}

Regex::~Regex() {
  if (code_) pcre2_code_free(as_code(code_));
}

void Regex::compile(std::string_view pattern, const std::string& where) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  const uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &error_code, &error_offset, nullptr);
  if (!code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    throw Error(where + ": invalid regex at offset " + std::to_string(error_offset) + ": " +
                reinterpret_cast<const char*>(message));
  }
  // JIT is an optimization only: on platforms without it the interpreter gives the same result.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  code_ = code;
}

int Regex::match(std::string_view text, size_t offset, unsigned options, void* md) const {
  auto* data = static_cast<pcre2_match_data*>(md);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  int rc = pcre2_match(as_code(code_), subject, text.size(), offset, options, data, nullptr);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
    // The JIT's small machine stack can run out on long inputs; the interpreter keeps its
    // backtracking state on the heap and gives the same answer.
    rc = pcre2_match(as_code(code_), subject, text.size(), offset, options | PCRE2_NO_JIT, data,
                     nullptr);
  }
  if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(rc, message, sizeof(message));
    throw Error(std::string("regex match failed: ") + reinterpret_cast<const char*>(message));
  }
  return rc;
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  for_each_match(text, [&](size_t begin, size_t end) { out.emplace_back(begin, end); });
  return out;
}

void Regex::for_each_match(std::string_view text, FunctionRef<void(size_t, size_t)> visit) const {
  if (literal_empty_ || text.empty()) return;
  MatchData data(pcre2_match_data_create_from_pattern(as_code(code_), nullptr));
  if (!data) throw Error("out of memory creating regex match data");
  // Oniguruma's find_iter (what Hugging Face runs) rejects an empty match that ends where the
  // previous match ended and then steps one character; empty matches matter for the
  // MergedWith* split behaviors, so we follow it exactly.
  size_t search = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (search <= text.size()) {
    if (match(text, search, 0, data.get()) < 0) break;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data.get());
    const size_t begin = ov[0];
    const size_t end = ov[1] < begin ? begin : ov[1];  // \K can report end < begin
    if (begin == end && have_last && last_end == end) {
      if (search >= text.size()) break;
      search += utf8::decode(text, search).len;
      continue;
    }
    visit(begin, end);
    search = end;
    have_last = true;
    last_end = end;
  }
}

bool Regex::matches_at_start(std::string_view text) const {
  if (literal_empty_) return false;
  MatchData data(pcre2_match_data_create_from_pattern(as_code(code_), nullptr));
  if (!data) throw Error("out of memory creating regex match data");
  return match(text, 0, PCRE2_ANCHORED, data.get()) >= 0;
}

Regex make_pattern(const JsonNode& node) {
  node.expect_object();
  if (auto s = node.find("String")) {
    return Regex::literal(s->as_string(), node.source() + ": " + s->path());
  }
  if (auto r = node.find("Regex")) return Regex(r->as_string(), node.source() + ": " + r->path());
  node.fail("must have a \"String\" or \"Regex\" member");
}

}  // namespace tandem::tokenizer
