#include "tokenizer/unicode_nfc.h"

#include <utf8proc.h>

#include <cstdlib>

namespace tandem::tokenizer {
namespace {

// Appends the NFC of a run of valid UTF-8.
void append_nfc(std::string_view run, std::string& out) {
  if (run.empty()) return;
  bool ascii = true;
  for (char c : run) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii) {  // already normalized; the common case
    out.append(run);
    return;
  }
  utf8proc_uint8_t* dst = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(run.data()),
                                    static_cast<utf8proc_ssize_t>(run.size()), &dst,
                                    static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0 || dst == nullptr) {
    out.append(run);  // cannot happen for valid input; keep the text rather than lose it
  } else {
    out.append(reinterpret_cast<const char*>(dst), static_cast<size_t>(n));
  }
  std::free(dst);
}

}  // namespace

std::string to_nfc(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t run_start = 0, i = 0;
  while (i < text.size()) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t len = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + i),
                                            static_cast<utf8proc_ssize_t>(text.size() - i), &cp);
    if (len > 0 && cp >= 0) {
      i += static_cast<size_t>(len);
      continue;
    }
    // An invalid byte: normalize the valid run before it, keep the byte as is.
    append_nfc(text.substr(run_start, i - run_start), out);
    out.push_back(text[i]);
    ++i;
    run_start = i;
  }
  append_nfc(text.substr(run_start), out);
  return out;
}

const char* nfc_unicode_version() { return utf8proc_unicode_version(); }

}  // namespace tandem::tokenizer
