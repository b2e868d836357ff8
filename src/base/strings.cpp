#include "base/strings.h"

#include <charconv>
#include <cstdio>

#include "base/error.h"

namespace tandem {

std::vector<int32_t> parse_id_list(std::string_view text, std::string_view what) {
  std::vector<int32_t> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    size_t start = i;
    while (i < text.size() && text[i] != ',') ++i;
    std::string_view item = text.substr(start, i - start);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    int64_t value = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || value < 0 ||
        value > INT32_MAX) {
      throw Error(std::string(what) + ": '" + std::string(item) +
                  "' is not a token id (expected a comma-separated list of non-negative integers)");
    }
    out.push_back(static_cast<int32_t>(value));
    if (i < text.size()) {
      ++i;  // skip ','
      if (i == text.size()) throw Error(std::string(what) + ": trailing ',' in the id list");
    }
  }
  if (out.empty()) throw Error(std::string(what) + ": empty id list");
  return out;
}

std::string unescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      char c = text[i + 1];
      switch (c) {
        case 'n': out += '\n'; ++i; continue;
        case 't': out += '\t'; ++i; continue;
        case 'r': out += '\r'; ++i; continue;
        case '\\': out += '\\'; ++i; continue;
        case '"': out += '"'; ++i; continue;
        default: break;
      }
    }
    out += text[i];
  }
  return out;
}

std::string join_ints(const std::vector<int32_t>& v, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += std::to_string(v[i]);
  }
  return out;
}

std::string format_bytes(uint64_t bytes) {
  char buf[64];
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

}  // namespace tandem
