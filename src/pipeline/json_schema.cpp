// Schema compilation, the byte-level JSON automaton, the token mask and the validator.
#include "pipeline/json_schema.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "tokenizer/byte_level.h"

namespace tandem::pipeline {

using nlohmann::json;
using OJson = nlohmann::ordered_json;

namespace {

std::string join_path(const std::vector<std::string>& where) {
  std::string s;
  for (const auto& w : where) {
    if (!w.empty() && w[0] == '[') {
      s += w;
    } else {
      if (!s.empty()) s += '.';
      s += w;
    }
  }
  return s;
}

const std::set<std::string>& ignored_keywords() {
  static const std::set<std::string> k{"title",    "description", "default",
                                       "examples", "$schema",     "$comment"};
  return k;
}

// Keywords each type accepts besides the ignored ones.
bool keyword_allowed(const std::string& type, const std::string& key) {
  if (key == "type" || key == "enum" || key == "const") return true;
  if (type == "object")
    return key == "properties" || key == "required" || key == "additionalProperties";
  if (type == "array") return key == "items" || key == "minItems" || key == "maxItems";
  if (type == "string") return key == "minLength" || key == "maxLength";
  return false;
}

int64_t nonneg_int(const OJson& s, const char* key, int64_t def, std::vector<std::string>& where) {
  auto it = s.find(key);
  if (it == s.end()) return def;
  if (!it->is_number_integer() || it->get<int64_t>() < 0) {
    where.push_back(key);
    throw SchemaError(where, "must be a non-negative integer");
  }
  return it->get<int64_t>();
}

SchemaNode literal_node(const OJson& choices, std::vector<std::string>& where, const char* key) {
  SchemaNode n;
  n.kind = SchemaNode::Kind::kLiteral;
  if (!choices.is_array() || choices.empty()) {
    where.push_back(key);
    throw SchemaError(where, "must be a non-empty list");
  }
  for (size_t i = 0; i < choices.size(); ++i) {
    if (choices[i].is_structured()) {
      where.push_back(key);
      where.push_back("[" + std::to_string(i) + "]");
      throw SchemaError(where, "only scalar values are supported");
    }
    std::string s = choices[i].dump();
    if (std::find(n.literals.begin(), n.literals.end(), s) == n.literals.end())
      n.literals.push_back(s);
  }
  n.min_bytes = std::numeric_limits<int64_t>::max();
  for (const auto& l : n.literals)
    n.min_bytes = std::min<int64_t>(n.min_bytes, static_cast<int64_t>(l.size()));
  return n;
}

SchemaNode compile_node(const OJson& s, std::vector<std::string>& where, int depth) {
  if (depth > kMaxSchemaDepth)
    throw SchemaError(where, "nested deeper than " + std::to_string(kMaxSchemaDepth) + " levels");
  if (!s.is_object()) throw SchemaError(where, "a schema must be an object");
  std::string type;
  if (auto it = s.find("type"); it != s.end()) {
    if (!it->is_string()) {
      where.push_back("type");
      throw SchemaError(where, "must be one type name (lists of types are not supported)");
    }
    type = it->get<std::string>();
    static const std::set<std::string> kTypes{"object", "array",   "string", "integer",
                                              "number", "boolean", "null"};
    if (!kTypes.count(type)) {
      where.push_back("type");
      throw SchemaError(where, "unknown type '" + type + "'");
    }
  }
  for (const auto& [key, value] : s.items()) {
    if (ignored_keywords().count(key)) continue;
    if (!keyword_allowed(type, key)) {
      where.push_back(key);
      throw SchemaError(
          where, "unsupported keyword '" + key + "'" + (type.empty() ? "" : " for type " + type));
    }
  }
  if (s.contains("const")) {
    OJson one = OJson::array({s["const"]});
    SchemaNode n = literal_node(one, where, "const");
    return n;
  }
  if (s.contains("enum")) {
    SchemaNode n = literal_node(s["enum"], where, "enum");
    if (!type.empty()) {
      for (size_t i = 0; i < s["enum"].size(); ++i) {
        std::string why;
        const json sub = {{"type", type}};
        if (!validate(json(s["enum"][i]), sub, &why)) {
          where.push_back("enum");
          where.push_back("[" + std::to_string(i) + "]");
          throw SchemaError(where, "not of type " + type);
        }
      }
    }
    return n;
  }
  if (type.empty()) throw SchemaError(where, "needs a 'type' (or 'enum' / 'const')");
  SchemaNode n;
  if (type == "object") {
    n.kind = SchemaNode::Kind::kObject;
    if (auto it = s.find("additionalProperties");
        it != s.end() && !(it->is_boolean() && !it->get<bool>())) {
      where.push_back("additionalProperties");
      throw SchemaError(where, "only false is supported");
    }
    OJson props = s.value("properties", OJson::object());
    if (!props.is_object()) {
      where.push_back("properties");
      throw SchemaError(where, "must be a map of property schemas");
    }
    if (auto it = s.find("required"); it != s.end()) {
      if (!it->is_array()) {
        where.push_back("required");
        throw SchemaError(where, "must be a list of property names");
      }
      for (size_t i = 0; i < it->size(); ++i) {
        const OJson& r = (*it)[i];
        if (!r.is_string() || !props.contains(r.get<std::string>())) {
          where.push_back("required");
          where.push_back("[" + std::to_string(i) + "]");
          throw SchemaError(where, "names no property");
        }
      }
    }
    std::string piece = "{";
    n.min_bytes = 0;
    for (const auto& [key, sub] : props.items()) {
      piece += json(key).dump() + ":";
      n.pieces.push_back(piece);
      n.min_bytes += static_cast<int64_t>(piece.size());
      where.push_back("properties");
      where.push_back(key);
      n.children.push_back(compile_node(sub, where, depth + 1));
      where.pop_back();
      where.pop_back();
      n.min_bytes += n.children.back().min_bytes;
      piece = ",";
    }
    n.pieces.push_back(props.empty() ? "{}" : "}");
    n.min_bytes += static_cast<int64_t>(n.pieces.back().size());
  } else if (type == "array") {
    n.kind = SchemaNode::Kind::kArray;
    auto it = s.find("items");
    if (it == s.end()) throw SchemaError(where, "an array needs 'items'");
    where.push_back("items");
    n.children.push_back(compile_node(*it, where, depth + 1));
    where.pop_back();
    n.min_items = nonneg_int(s, "minItems", 0, where);
    n.max_items = nonneg_int(s, "maxItems", std::max(kDefaultMaxItems, n.min_items), where);
    if (n.max_items < n.min_items) {
      where.push_back("maxItems");
      throw SchemaError(where, "must be >= minItems");
    }
    n.min_bytes = 2 + (n.min_items > 0 ? n.min_items * (n.children[0].min_bytes + 1) - 1 : 0);
  } else if (type == "string") {
    n.kind = SchemaNode::Kind::kString;
    n.min_length = nonneg_int(s, "minLength", 0, where);
    n.max_length = nonneg_int(s, "maxLength", std::max(kDefaultMaxLength, n.min_length), where);
    if (n.max_length < n.min_length) {
      where.push_back("maxLength");
      throw SchemaError(where, "must be >= minLength");
    }
    n.min_bytes = 2 + n.min_length;
  } else if (type == "integer") {
    n.kind = SchemaNode::Kind::kInteger;
    n.min_bytes = 1;
  } else if (type == "number") {
    n.kind = SchemaNode::Kind::kNumber;
    n.min_bytes = 1;
  } else if (type == "boolean") {
    return literal_node(OJson::array({true, false}), where, "type");
  } else {  // null
    return literal_node(OJson::array({nullptr}), where, "type");
  }
  return n;
}

}  // namespace

SchemaError::SchemaError(std::vector<std::string> where, const std::string& message)
    : ConfigError(where.empty() ? message : join_path(where) + ": " + message),
      where_(std::move(where)),
      detail_(message) {}

SchemaNode compile_schema(const OJson& schema) {
  std::vector<std::string> where;
  return compile_node(schema, where, 0);
}

SchemaNode compile_schema(const json& schema) {
  return compile_schema(OJson(schema));
}

// ---- the automaton ----
//
// Frame state by kind:
//   object:  a = index of the piece being matched, b = bytes of it matched. When a piece is
//            complete the child after it is pushed at once; the last piece closes the object.
//   array:   a = 0 before '[', 1 right after '[', 2 after an item; b = items started.
//   string:  a = 0 before the opening quote, 1 inside; b = characters; c = UTF-8
//            continuation bytes still due; d = a narrower range for the next one
//            (1: A0-BF, 2: 80-9F, 3: 90-BF, 4: 80-8F), as UTF-8 forbids overlongs and surrogates.
//   integer/number: a = 0 start, 1 after '-', 2 after a leading 0, 3 in digits, 4 after '.',
//            5 in fraction digits; b = integer digits; c = fraction digits.
//   literal: a = index of a choice consistent with the bytes so far, b = bytes matched.

JsonMatcher::JsonMatcher(const SchemaNode& root) {
  stack_.reserve(kMaxSchemaDepth + 2);
  push(root);
}

bool JsonMatcher::frame_can_end(const Frame& f) {
  using K = SchemaNode::Kind;
  switch (f.node->kind) {
    case K::kInteger:
      return f.a == 2 || f.a == 3;
    case K::kNumber:
      return f.a == 2 || f.a == 3 || f.a == 5;
    case K::kLiteral: {
      const auto& lits = f.node->literals;
      const auto& cur = lits[static_cast<size_t>(f.a)];
      for (const auto& l : lits) {
        if (l.size() == static_cast<size_t>(f.b) && l.compare(0, f.b, cur, 0, f.b) == 0)
          return true;
      }
      return false;
    }
    default:
      return false;
  }
}

bool JsonMatcher::can_end() const {
  for (const auto& f : stack_) {
    if (!frame_can_end(f)) return false;
  }
  return true;
}

bool JsonMatcher::feed(uint8_t c) {
  using K = SchemaNode::Kind;
  while (!stack_.empty()) {
    Frame& f = stack_.back();
    const SchemaNode& n = *f.node;
    bool taken = false;
    switch (n.kind) {
      case K::kObject: {
        const std::string& piece = n.pieces[static_cast<size_t>(f.a)];
        if (piece[static_cast<size_t>(f.b)] != static_cast<char>(c)) return false;
        if (++f.b == static_cast<int32_t>(piece.size())) {
          if (static_cast<size_t>(f.a) == n.children.size()) {
            stack_.pop_back();
          } else {
            const SchemaNode& child = n.children[static_cast<size_t>(f.a)];
            ++f.a;
            f.b = 0;
            push(child);
          }
        }
        return true;
      }
      case K::kArray: {
        if (f.a == 0) {
          if (c != '[') return false;
          f.a = 1;
          return true;
        }
        if (c == ']' && f.b >= n.min_items && (f.a == 2 || f.b == 0)) {
          stack_.pop_back();
          return true;
        }
        if (f.a == 2) {
          if (c != ',' || f.b >= n.max_items) return false;
          ++f.b;
          push(n.children[0]);
          return true;
        }
        // f.a == 1: the first item starts with this byte.
        if (n.max_items == 0) return false;
        f.a = 2;
        f.b = 1;
        push(n.children[0]);
        continue;
      }
      case K::kString: {
        if (f.a == 0) {
          if (c != '"') return false;
          f.a = 1;
          return true;
        }
        if (f.c > 0) {
          uint8_t lo = 0x80, hi = 0xBF;
          if (f.d == 1) lo = 0xA0;
          if (f.d == 2) hi = 0x9F;
          if (f.d == 3) lo = 0x90;
          if (f.d == 4) hi = 0x8F;
          if (c < lo || c > hi) return false;
          --f.c;
          f.d = 0;
          return true;
        }
        if (c == '"') {
          if (f.b < n.min_length) return false;
          stack_.pop_back();
          return true;
        }
        if (f.b >= n.max_length) return false;
        if (c >= 0x20 && c < 0x7F && c != '\\') {
          ++f.b;
          return true;
        }
        if (c >= 0xC2 && c <= 0xDF) {
          f.c = 1;
        } else if (c == 0xE0) {
          f.c = 2, f.d = 1;
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
          f.c = 2;
        } else if (c == 0xED) {
          f.c = 2, f.d = 2;
        } else if (c == 0xF0) {
          f.c = 3, f.d = 3;
        } else if (c >= 0xF1 && c <= 0xF3) {
          f.c = 3;
        } else if (c == 0xF4) {
          f.c = 3, f.d = 4;
        } else {
          return false;
        }
        ++f.b;
        return true;
      }
      case K::kInteger:
      case K::kNumber: {
        const bool digit = c >= '0' && c <= '9';
        const bool number = n.kind == K::kNumber;
        switch (f.a) {
          case 0:
            if (c == '-')
              f.a = 1, taken = true;
            else if (c == '0')
              f.a = 2, f.b = 1, taken = true;
            else if (digit)
              f.a = 3, f.b = 1, taken = true;
            break;
          case 1:
            if (c == '0')
              f.a = 2, f.b = 1, taken = true;
            else if (digit)
              f.a = 3, f.b = 1, taken = true;
            break;
          case 2:
            if (number && c == '.') f.a = 4, taken = true;
            break;
          case 3:
            if (digit && f.b < kMaxIntegerDigits)
              ++f.b, taken = true;
            else if (number && c == '.')
              f.a = 4, taken = true;
            break;
          case 4:
            if (digit) f.a = 5, f.c = 1, taken = true;
            break;
          case 5:
            if (digit && f.c < kMaxFractionDigits) ++f.c, taken = true;
            break;
          default:
            break;
        }
        break;
      }
      case K::kLiteral: {
        const auto& lits = n.literals;
        const std::string& cur = lits[static_cast<size_t>(f.a)];
        for (size_t i = 0; i < lits.size(); ++i) {
          const std::string& l = lits[i];
          if (l.size() > static_cast<size_t>(f.b) && l.compare(0, f.b, cur, 0, f.b) == 0 &&
              static_cast<uint8_t>(l[static_cast<size_t>(f.b)]) == c) {
            f.a = static_cast<int32_t>(i);
            ++f.b;
            taken = true;
            break;
          }
        }
        if (taken) {
          // A choice that ends here with none extending it closes the literal.
          bool longer = false;
          const std::string& now = lits[static_cast<size_t>(f.a)];
          for (const auto& l : lits) {
            if (l.size() > static_cast<size_t>(f.b) && l.compare(0, f.b, now, 0, f.b) == 0)
              longer = true;
          }
          if (!longer) stack_.pop_back();
          return true;
        }
        break;
      }
    }
    if (taken) return true;
    // Refused: a value that may end here ends, and the byte goes to its parent.
    if (!frame_can_end(f)) return false;
    stack_.pop_back();
  }
  return false;
}

int64_t JsonMatcher::string_room() const {
  if (stack_.empty()) return -1;
  const Frame& f = stack_.back();
  if (f.node->kind != SchemaNode::Kind::kString || f.a != 1 || f.c != 0) return -1;
  return f.node->max_length - f.b;
}

int64_t JsonMatcher::min_close() const {
  using K = SchemaNode::Kind;
  int64_t total = 0;
  for (const auto& f : stack_) {
    const SchemaNode& n = *f.node;
    switch (n.kind) {
      case K::kObject: {
        // Rest of the current piece, then every later child and piece.
        size_t a = static_cast<size_t>(f.a);
        total += static_cast<int64_t>(n.pieces[a].size()) - f.b;
        for (size_t i = a; i < n.children.size(); ++i) {
          total += n.children[i].min_bytes + static_cast<int64_t>(n.pieces[i + 1].size());
        }
        break;
      }
      case K::kArray: {
        const int64_t item = n.children[0].min_bytes;
        if (f.a == 0) {
          total += n.min_bytes;
        } else {
          const int64_t missing = std::max<int64_t>(0, n.min_items - f.b);
          total += 1 + missing * (item + 1) - (f.a == 1 && missing > 0 ? 1 : 0);
        }
        break;
      }
      case K::kString:
        total += f.a == 0 ? n.min_bytes : f.c + 1 + std::max<int64_t>(0, n.min_length - f.b);
        break;
      case K::kInteger:
      case K::kNumber:
        total += (f.a == 0 || f.a == 1 || f.a == 4) ? 1 : 0;
        break;
      case K::kLiteral: {
        int64_t best = std::numeric_limits<int64_t>::max();
        const auto& cur = n.literals[static_cast<size_t>(f.a)];
        for (const auto& l : n.literals) {
          if (l.size() >= static_cast<size_t>(f.b) && l.compare(0, f.b, cur, 0, f.b) == 0) {
            best = std::min<int64_t>(best, static_cast<int64_t>(l.size()) - f.b);
          }
        }
        total += best;
        break;
      }
    }
  }
  return total;
}

// ---- token bytes ----

VocabBytes::VocabBytes(const tokenizer::Tokenizer& tok) {
  const int32_t n = tok.vocab_size();
  bytes_.resize(static_cast<size_t>(n));
  // Byte-level BPE stores tokens in GPT-2's byte alphabet ("Ġ" is a space); SentencePiece
  // uses "▁" for a space and <0xNN> for byte fallback.
  const bool byte_level = tok.token_to_id("\xC4\xA0").has_value();
  for (int32_t id = 0; id < n; ++id) {
    if (tok.is_special(id)) continue;
    auto t = tok.id_to_token(id);
    if (!t) continue;
    std::string out;
    if (byte_level) {
      const std::u32string cps = [&] {
        std::u32string r;
        const std::string& s = *t;
        for (size_t i = 0; i < s.size();) {
          const auto b = static_cast<uint8_t>(s[i]);
          int len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
          char32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
          for (int k = 1; k < len && i + static_cast<size_t>(k) < s.size(); ++k) {
            cp = (cp << 6) | (static_cast<uint8_t>(s[i + static_cast<size_t>(k)]) & 0x3F);
          }
          r.push_back(cp);
          i += static_cast<size_t>(len);
        }
        return r;
      }();
      bool ok = true;
      for (char32_t cp : cps) {
        const int b = tokenizer::byte_level::byte_of_char(cp);
        if (b < 0) {
          ok = false;
          break;
        }
        out.push_back(static_cast<char>(b));
      }
      if (!ok) out = tok.decode(std::span<const int32_t>(&id, 1), true);
    } else {
      const std::string& s = *t;
      if (s.size() == 6 && s.rfind("<0x", 0) == 0 && s[5] == '>') {
        out.push_back(static_cast<char>(std::stoi(s.substr(3, 2), nullptr, 16)));
      } else {
        for (size_t i = 0; i < s.size(); ++i) {
          if (s.compare(i, 3, "\xE2\x96\x81") == 0) {
            out.push_back(' ');
            i += 2;
          } else {
            out.push_back(s[i]);
          }
        }
      }
    }
    bytes_[static_cast<size_t>(id)] = std::move(out);
  }
  for (int32_t id = 0; id < n; ++id) {
    const auto& b = bytes_[static_cast<size_t>(id)];
    if (!b.empty()) by_first_[static_cast<uint8_t>(b[0])].push_back(id);
  }
  // Plain content: what a string matcher with room accepts byte for byte.
  SchemaNode str;
  str.kind = SchemaNode::Kind::kString;
  str.max_length = std::numeric_limits<int64_t>::max();
  plain_.assign(static_cast<size_t>(n), -1);
  for (int32_t id = 0; id < n; ++id) {
    const auto& b = bytes_[static_cast<size_t>(id)];
    if (b.empty()) continue;
    JsonMatcher m(str);
    m.feed('"');
    if (!m.feed(b) || m.string_room() < 0) continue;  // refused, closed or a character cut short
    int32_t chars = 0;
    for (char c : b) chars += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
    plain_[static_cast<size_t>(id)] = chars;
  }
}

// ---- the constraint ----

JsonConstraint::JsonConstraint(std::shared_ptr<const SchemaNode> schema,
                               std::shared_ptr<const VocabBytes> vocab, int64_t max_tokens)
    : schema_(std::move(schema)),
      vocab_(std::move(vocab)),
      matcher_(*schema_),
      scratch_(*schema_),
      remaining_(max_tokens) {}

std::vector<int32_t> JsonConstraint::allowed() {
  // Tokens that keep the value closable within the budget (counting a byte per token, as a
  // byte-level vocabulary can always spell the rest one byte at a time). When none does
  // (a budget that was short from the start), those that get closest to the end.
  std::vector<int32_t> fits, closest;
  int64_t best = std::numeric_limits<int64_t>::max();
  // Inside a string, plain content never brings the end nearer or further: such a token fits
  // when the state does and the string has room for it.
  const int64_t room = matcher_.string_room();
  const bool fast = room >= 0 && matcher_.min_close() <= remaining_ - 1;
  for (int b = 0; b < 256; ++b) {
    scratch_ = matcher_;
    if (!scratch_.feed(static_cast<uint8_t>(b))) continue;
    for (int32_t id : vocab_->starting_with(static_cast<uint8_t>(b))) {
      if (fast) {
        const int32_t chars = vocab_->plain_chars(id);
        if (chars > 0) {
          if (chars <= room) fits.push_back(id);
          continue;
        }
      }
      scratch_ = matcher_;
      if (!scratch_.feed(vocab_->bytes(id))) continue;
      const int64_t left = scratch_.min_close();
      if (left <= remaining_ - 1) fits.push_back(id);
      if (left < best) {
        best = left;
        closest.clear();
      }
      if (left == best) closest.push_back(id);
    }
  }
  std::vector<int32_t>& out = fits.empty() ? closest : fits;
  std::sort(out.begin(), out.end());
  return std::move(out);
}

void JsonConstraint::mask(std::span<float> logits) {
  const auto ids = allowed();
  std::vector<uint8_t> keep(logits.size(), 0);
  for (int32_t id : ids) {
    if (static_cast<size_t>(id) < keep.size()) keep[static_cast<size_t>(id)] = 1;
  }
  if (ids.empty()) return;  // nothing fits (cannot happen for a vocabulary with byte tokens)
  const float ninf = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!keep[i]) logits[i] = ninf;
  }
}

void JsonConstraint::accept(int32_t token) {
  --remaining_;
  if (token < 0 || token >= vocab_->size()) return;
  const std::string& b = vocab_->bytes(token);
  matcher_.feed(b);
  text_ += b;
}

// ---- validation ----

namespace {

bool fail(std::string* why, const std::string& path, const std::string& msg) {
  if (why) *why = (path.empty() ? std::string("value") : path) + ": " + msg;
  return false;
}

size_t utf8_chars(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
  return n;
}

bool check(const json& v, const json& s, const std::string& path, std::string* why) {
  if (!s.is_object()) return fail(why, path, "schema is not an object");
  if (auto it = s.find("const"); it != s.end() && v != *it)
    return fail(why, path, "is not " + it->dump());
  if (auto it = s.find("enum"); it != s.end()) {
    bool found = false;
    for (const auto& e : *it) found = found || e == v;
    if (!found) return fail(why, path, v.dump() + " is not one of " + it->dump());
  }
  auto t = s.find("type");
  if (t == s.end() || !t->is_string()) return true;
  const std::string type = t->get<std::string>();
  if (type == "object") {
    if (!v.is_object()) return fail(why, path, "expected an object");
    json props = s.value("properties", json::object());
    for (const auto& [k, sub] : v.items()) {
      if (!props.contains(k)) return fail(why, path, "unexpected property '" + k + "'");
      if (!check(sub, props[k], path.empty() ? k : path + "." + k, why)) return false;
    }
    for (const auto& r : s.value("required", json::array())) {
      if (r.is_string() && !v.contains(r.get<std::string>())) {
        return fail(why, path, "missing required property '" + r.get<std::string>() + "'");
      }
    }
    return true;
  }
  if (type == "array") {
    if (!v.is_array()) return fail(why, path, "expected an array");
    if (auto it = s.find("minItems"); it != s.end() && v.size() < it->get<size_t>())
      return fail(why, path, "too few items");
    if (auto it = s.find("maxItems"); it != s.end() && v.size() > it->get<size_t>())
      return fail(why, path, "too many items");
    if (auto it = s.find("items"); it != s.end()) {
      for (size_t i = 0; i < v.size(); ++i) {
        if (!check(v[i], *it, path + "[" + std::to_string(i) + "]", why)) return false;
      }
    }
    return true;
  }
  if (type == "string") {
    if (!v.is_string()) return fail(why, path, "expected a string");
    const size_t n = utf8_chars(v.get_ref<const std::string&>());
    if (auto it = s.find("minLength"); it != s.end() && n < it->get<size_t>())
      return fail(why, path, "string too short");
    if (auto it = s.find("maxLength"); it != s.end() && n > it->get<size_t>())
      return fail(why, path, "string too long");
    return true;
  }
  if (type == "integer") {
    if (v.is_number_integer()) return true;
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) return true;
    return fail(why, path, "expected an integer");
  }
  if (type == "number") return v.is_number() ? true : fail(why, path, "expected a number");
  if (type == "boolean") return v.is_boolean() ? true : fail(why, path, "expected a boolean");
  if (type == "null") return v.is_null() ? true : fail(why, path, "expected null");
  return fail(why, path, "unknown type '" + type + "'");
}

}  // namespace

bool validate(const json& value, const json& schema, std::string* why) {
  return check(value, schema, "", why);
}

}  // namespace tandem::pipeline
