// Splits a template into text and tag tokens with jinja2's whitespace rules as transformers
// configures them: trim_blocks (a block or comment tag eats one newline after it),
// lstrip_blocks (spaces and tabs before a block or comment tag on its own line go), and the
// `-`/`+` markers that strip all whitespace on that side or switch lstrip off.
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "tokenizer/chat_template_ast.h"

namespace tandem::tokenizer::chat_template_detail {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// jinja2 decodes string literals with Python's unicode-escape codec.
void append_utf8(std::string& out, uint32_t cp) {
  out += utf8_encode(std::u32string(1, cp > 0x10FFFF ? 0xFFFD : cp));
}

std::string unescape(std::string_view s, int line) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c != '\\' || i + 1 >= s.size()) {
      out += c;
      continue;
    }
    char e = s[++i];
    auto hex = [&](int n) {
      uint32_t v = 0;
      for (int k = 0; k < n; ++k) {
        if (i + 1 >= s.size()) fail("truncated escape in string literal", line);
        char h = s[++i];
        int d = is_digit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
        if (d < 0) fail("bad escape in string literal", line);
        v = v * 16 + static_cast<uint32_t>(d);
      }
      return v;
    };
    switch (e) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'v': out += '\v'; break;
      case '\n': break;  // line continuation
      case 'x': append_utf8(out, hex(2)); break;
      case 'u': append_utf8(out, hex(4)); break;
      case 'U': append_utf8(out, hex(8)); break;
      default:
        if (e >= '0' && e <= '7') {
          uint32_t v = static_cast<uint32_t>(e - '0');
          for (int k = 0; k < 2 && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7'; ++k) v = v * 8 + static_cast<uint32_t>(s[++i] - '0');
          append_utf8(out, v);
        } else {
          out += '\\';  // unknown escapes stay as written
          out += e;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  std::vector<Segment> run() {
    std::vector<Segment> out;
    size_t pos = 0;
    bool line_starting = true;  // did the last tag end in a newline (jinja2's `line_starting`)
    while (pos <= src_.size()) {
      size_t p = find_tag(pos);
      std::string text = src_.substr(pos, (p == std::string::npos ? src_.size() : p) - pos);
      if (p == std::string::npos) {
        emit_text(out, std::move(text), pos);
        break;
      }
      char opener = src_[p + 1];
      char ctrl = p + 2 < src_.size() ? src_[p + 2] : '\0';
      if (ctrl != '-' && ctrl != '+') ctrl = '\0';
      if (ctrl == '-') {
        size_t n = text.size();
        while (n > 0 && is_space(text[n - 1])) --n;
        text.resize(n);
      } else if (ctrl != '+' && opener != '{') {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if (l_pos > 0 || line_starting) {
          bool blank = text.find_first_not_of(" \t", l_pos) == std::string::npos;
          if (blank) text.resize(l_pos);
        }
      }
      emit_text(out, std::move(text), pos);
      int tag_line = line_at(p);
      size_t q = p + 2 + (ctrl ? 1 : 0);
      size_t end;  // first byte after the tag and whatever whitespace it eats
      if (opener == '#') {
        size_t c = src_.find("#}", q);
        if (c == std::string::npos) fail("unclosed comment", tag_line);
        end = c + 2;
        if (c > q && src_[c - 1] == '-') {
          while (end < src_.size() && is_space(src_[end])) ++end;
        } else if (!(c > q && src_[c - 1] == '+') && end < src_.size() && src_[end] == '\n') {
          ++end;
        }
      } else {
        Segment seg;
        seg.kind = opener == '{' ? Segment::Kind::kVar : Segment::Kind::kBlock;
        seg.line = tag_line;
        end = lex_tag(q, seg);
        out.push_back(std::move(seg));
      }
      line_starting = end > 0 && src_[end - 1] == '\n';
      pos = end;
      if (pos == src_.size()) break;
    }
    return out;
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  int line_at(size_t p) {
    // Lines are counted incrementally: positions only move forward.
    for (; line_pos_ < p && line_pos_ < src_.size(); ++line_pos_) line_ += src_[line_pos_] == '\n';
    return line_;
  }

  void emit_text(std::vector<Segment>& out, std::string text, size_t pos) {
    if (text.empty()) return;
    Segment seg;
    seg.kind = Segment::Kind::kText;
    seg.line = line_at(pos);
    seg.text = std::move(text);
    out.push_back(std::move(seg));
  }

  // Tokenizes from `i` up to the tag's closing marker; returns the position after it.
  size_t lex_tag(size_t i, Segment& seg) {
    const bool block = seg.kind == Segment::Kind::kBlock;
    int depth = 0;  // open brackets: `}}` inside a dict literal does not close the tag
    while (true) {
      while (i < src_.size() && is_space(src_[i])) ++i;
      if (i >= src_.size()) fail(block ? "unclosed block tag '{%'" : "unclosed variable tag '{{'", seg.line);
      std::string_view rest(src_.data() + i, src_.size() - i);
      if (depth == 0) {
        const char* close = block ? "%}" : "}}";
        if (rest.starts_with(std::string("-") + close)) {
          size_t e = i + 3;
          while (e < src_.size() && is_space(src_[e])) ++e;
          return e;
        }
        if (block && rest.starts_with("+%}")) return i + 3;
        if (rest.starts_with(close)) {
          size_t e = i + 2;
          if (block && e < src_.size() && src_[e] == '\n') ++e;
          return e;
        }
      }
      Token t;
      t.line = line_at(i);
      char c = src_[i];
      if (is_name_start(c)) {
        size_t j = i;
        while (j < src_.size() && (is_name_start(src_[j]) || is_digit(src_[j]))) ++j;
        t.kind = TokKind::kName;
        t.text = src_.substr(i, j - i);
        i = j;
      } else if (is_digit(c)) {
        i = lex_number(i, seg, t);
      } else if (c == '\'' || c == '"') {
        size_t j = i + 1;
        while (j < src_.size() && src_[j] != c) j += src_[j] == '\\' ? 2 : 1;
        if (j >= src_.size()) fail("unterminated string literal", t.line);
        t.kind = TokKind::kString;
        t.text = unescape(std::string_view(src_).substr(i + 1, j - i - 1), t.line);
        i = j + 1;
      } else {
        static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "/", "*", "%", "~", "[", "]",
                                           "(", ")", "{", "}", "<", ">", "=", ".", ":", "|", ",", ";"};
        const char* found = nullptr;
        for (const char* op : kOps) {
          if (rest.starts_with(op)) {
            found = op;
            break;
          }
        }
        if (!found) fail(std::string("unexpected character '") + c + "'", t.line);
        t.kind = TokKind::kOp;
        t.text = found;
        i += std::strlen(found);
        if (t.text == "(" || t.text == "[" || t.text == "{") {
          ++depth;
        } else if (t.text == ")" || t.text == "]" || t.text == "}") {
          if (depth == 0) fail("unexpected '" + t.text + "'", t.line);
          --depth;
        }
      }
      seg.tokens.push_back(std::move(t));
    }
  }

  size_t lex_number(size_t i, const Segment& seg, Token& t) {
    auto digits = [&](size_t j) {
      while (j < src_.size() && (is_digit(src_[j]) || (src_[j] == '_' && j + 1 < src_.size() && is_digit(src_[j + 1])))) ++j;
      return j;
    };
    size_t j = digits(i);
    // After a dot (`messages.0.content`) only an integer may follow, as in jinja2.
    bool after_dot = !seg.tokens.empty() && seg.tokens.back().kind == TokKind::kOp && seg.tokens.back().text == ".";
    bool is_float = false;
    if (!after_dot && j + 1 < src_.size() && src_[j] == '.' && is_digit(src_[j + 1])) {
      j = digits(j + 1);
      is_float = true;
    }
    if (!after_dot && j < src_.size() && (src_[j] == 'e' || src_[j] == 'E')) {
      size_t k = j + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && is_digit(src_[k])) {
        j = digits(k);
        is_float = true;
      }
    }
    std::string text;
    for (size_t k = i; k < j; ++k) if (src_[k] != '_') text += src_[k];
    if (is_float) {
      t.kind = TokKind::kFloat;
      t.fval = std::strtod(text.c_str(), nullptr);
    } else {
      t.kind = TokKind::kInt;
      errno = 0;
      t.ival = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) fail("integer literal out of range", t.line);
    }
    t.text = text;
    return j;
  }

  std::string src_;
  size_t line_pos_ = 0;
  int line_ = 1;
};

}  // namespace

std::vector<Segment> lex(std::string_view source) {
  // jinja2 normalizes \r\n and \r to \n and drops one trailing newline (keep_trailing_newline=False).
  std::string src;
  src.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      src += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      src += source[i];
    }
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();
  return Lexer(std::move(src)).run();
}

}  // namespace tandem::tokenizer::chat_template_detail
