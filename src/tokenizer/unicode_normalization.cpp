#include "tokenizer/unicode_normalization.h"

#include <utf8proc.h>

#include <cstdlib>

namespace tandem::tokenizer {
namespace {

utf8proc_option_t options_for(NormalForm form) {
  switch (form) {
    case NormalForm::kNfc: return static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    case NormalForm::kNfd: return static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    case NormalForm::kNfkc:
      return static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    case NormalForm::kNfkd:
      return static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  }
  return UTF8PROC_STABLE;
}

// Appends the normal form of a run of valid UTF-8.
void append_normalized(std::string_view run, NormalForm form, std::string& out) {
  if (run.empty()) return;
  bool ascii = true;
  for (char c : run) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii) {  // ASCII is invariant under every form; the common case
    out.append(run);
    return;
  }
  utf8proc_uint8_t* dst = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(run.data()),
                                    static_cast<utf8proc_ssize_t>(run.size()), &dst, options_for(form));
  if (n < 0 || dst == nullptr) {
    out.append(run);  // cannot happen for valid input; keep the text rather than lose it
  } else {
    out.append(reinterpret_cast<const char*>(dst), static_cast<size_t>(n));
  }
  std::free(dst);
}

// Calls on_run(valid_run) and on_byte(invalid_byte) in order over `text`.
template <typename Run, typename Byte>
void split_valid(std::string_view text, Run on_run, Byte on_byte) {
  size_t run_start = 0, i = 0;
  while (i < text.size()) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t len = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + i),
                                            static_cast<utf8proc_ssize_t>(text.size() - i), &cp);
    if (len > 0 && cp >= 0) {
      i += static_cast<size_t>(len);
      continue;
    }
    on_run(text.substr(run_start, i - run_start));
    on_byte(text[i]);
    ++i;
    run_start = i;
  }
  on_run(text.substr(run_start));
}

}  // namespace

std::string normalize_unicode(std::string_view text, NormalForm form) {
  std::string out;
  out.reserve(text.size());
  split_valid(
      text, [&](std::string_view run) { append_normalized(run, form, out); }, [&](char b) { out.push_back(b); });
  return out;
}

std::string to_lower(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  split_valid(
      text,
      [&](std::string_view run) {
        size_t i = 0;
        while (i < run.size()) {
          utf8proc_int32_t cp = 0;
          utf8proc_ssize_t len = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(run.data() + i),
                                                  static_cast<utf8proc_ssize_t>(run.size() - i), &cp);
          utf8proc_uint8_t buf[4];
          utf8proc_ssize_t w = utf8proc_encode_char(utf8proc_tolower(cp), buf);
          out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(w));
          i += static_cast<size_t>(len);
        }
      },
      [&](char b) { out.push_back(b); });
  return out;
}

const char* unicode_version() { return utf8proc_unicode_version(); }

}  // namespace tandem::tokenizer
