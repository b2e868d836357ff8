// Python semantics for values: truthiness, str()/repr(), json.dumps, comparisons, and the
// UTF-8 handling that lets lengths and slices count code points as Python strings do.
#include <charconv>
#include <cmath>
#include <limits>

#include "tokenizer/chat_template_ast.h"

namespace tandem::tokenizer::chat_template_detail {

[[noreturn]] void fail_undefined(const Value& v, int line) {
  fail(v.undefined_name.empty() ? "value is undefined" : "'" + v.undefined_name + "' is undefined", line);
}

const char* type_name(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined: return "undefined";
    case Value::Kind::kNamespace: return "namespace";
    case Value::Kind::kMacro: return "macro";
    case Value::Kind::kJson: break;
  }
  switch (v.j().type()) {
    case Json::value_t::null: return "NoneType";
    case Json::value_t::boolean: return "bool";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "int";
    case Json::value_t::number_float: return "float";
    case Json::value_t::string: return "str";
    case Json::value_t::array: return "list";
    case Json::value_t::object: return "dict";
    default: return "object";
  }
}

bool truthy(const Value& v) {
  if (v.kind != Value::Kind::kJson) return v.kind != Value::Kind::kUndefined;
  const Json& j = v.j();
  switch (j.type()) {
    case Json::value_t::null: return false;
    case Json::value_t::boolean: return j.get<bool>();
    case Json::value_t::number_integer: return j.get<int64_t>() != 0;
    case Json::value_t::number_unsigned: return j.get<uint64_t>() != 0;
    case Json::value_t::number_float: return j.get<double>() != 0.0;
    case Json::value_t::string: return !j.get_ref<const std::string&>().empty();
    case Json::value_t::array:
    case Json::value_t::object: return !j.empty();
    default: return true;
  }
}

// Python's repr(float): shortest round-trip digits, fixed notation for 1e-4 <= |d| < 1e16.
std::string py_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  size_t e_pos = sci.find('e');
  int exp = std::atoi(sci.c_str() + e_pos + 1);
  std::string digits;
  for (size_t i = 0; i < e_pos; ++i) if (sci[i] != '.') digits += sci[i];
  if (exp >= -4 && exp < 16) {
    std::string out;
    if (exp >= 0) {
      std::string int_part = digits.substr(0, std::min<size_t>(digits.size(), exp + 1));
      while (int_part.size() < static_cast<size_t>(exp + 1)) int_part += '0';
      std::string frac = digits.size() > static_cast<size_t>(exp + 1) ? digits.substr(exp + 1) : "0";
      out = int_part + "." + frac;
    } else {
      out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    }
    return sign + out;
  }
  std::string mant = digits.substr(0, 1);
  if (digits.size() > 1) mant += "." + digits.substr(1);
  char eb[16];
  std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  return sign + mant + eb;
}

namespace {

std::string int_text(const Json& j) {
  return j.is_number_unsigned() ? std::to_string(j.get<uint64_t>()) : std::to_string(j.get<int64_t>());
}

std::string py_str_repr(const std::string& s) {
  char q = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == '\\' || c == static_cast<unsigned char>(q)) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof(b), "\\x%02x", c);
      out += b;
    } else out += static_cast<char>(c);
  }
  return out + q;
}

void repr_into(const Json& j, std::string& out, int depth) {
  if (depth > kMaxJsonDepth) fail("value nested too deeply", 0);
  if (out.size() > kMaxStringOrList) fail("string too long", 0);
  switch (j.type()) {
    case Json::value_t::null: out += "None"; return;
    case Json::value_t::boolean: out += j.get<bool>() ? "True" : "False"; return;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: out += int_text(j); return;
    case Json::value_t::number_float: out += py_float(j.get<double>()); return;
    case Json::value_t::string: out += py_str_repr(j.get_ref<const std::string&>()); return;
    case Json::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& e : j) {
        if (!first) out += ", ";
        first = false;
        repr_into(e, out, depth + 1);
      }
      out += ']';
      return;
    }
    case Json::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [k, e] : j.items()) {
        if (!first) out += ", ";
        first = false;
        out += py_str_repr(k);
        out += ": ";
        repr_into(e, out, depth + 1);
      }
      out += '}';
      return;
    }
    default: out += "None"; return;
  }
}

void json_string(const std::string& s, std::string& out) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char b[8];
          std::snprintf(b, sizeof(b), "\\u%04x", c);
          out += b;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

// json.dumps layout: ", " and ": " separators, or newline + indent with "," when indent is given.
void dumps_into(const Json& j, std::string& out, int indent, int depth) {
  if (depth > kMaxJsonDepth) fail("value nested too deeply for tojson", 0);
  if (out.size() > kMaxStringOrList) fail("tojson output too long", 0);
  auto newline = [&](int level) {
    out += '\n';
    out.append(static_cast<size_t>(indent) * static_cast<size_t>(level), ' ');
  };
  switch (j.type()) {
    case Json::value_t::null: out += "null"; return;
    case Json::value_t::boolean: out += j.get<bool>() ? "true" : "false"; return;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: out += int_text(j); return;
    case Json::value_t::number_float: {
      double d = j.get<double>();
      out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d < 0 ? "-Infinity" : "Infinity") : py_float(d);
      return;
    }
    case Json::value_t::string: json_string(j.get_ref<const std::string&>(), out); return;
    case Json::value_t::array:
    case Json::value_t::object: {
      bool obj = j.is_object();
      if (j.empty()) {
        out += obj ? "{}" : "[]";
        return;
      }
      out += obj ? '{' : '[';
      bool first = true;
      for (const auto& [k, e] : j.items()) {
        if (!first) out += indent >= 0 ? "," : ", ";
        first = false;
        if (indent >= 0) newline(depth + 1);
        if (obj) {
          json_string(k, out);
          out += ": ";
        }
        dumps_into(e, out, indent, depth + 1);
      }
      if (indent >= 0) newline(depth);
      out += obj ? '}' : ']';
      return;
    }
    default: out += "null"; return;
  }
}

}  // namespace

std::string to_repr(const Json& j) {
  std::string out;
  repr_into(j, out, 0);
  return out;
}

std::string to_str(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined: return {};
    case Value::Kind::kNamespace: return v.ns->is_loop ? "<LoopContext>" : "<Namespace>";
    case Value::Kind::kMacro: return "<Macro>";
    case Value::Kind::kJson: break;
  }
  if (v.j().is_string()) return v.str();
  return to_repr(v.j());
}

std::string to_json_text(const Value& v, int indent) {
  if (v.kind != Value::Kind::kJson) fail(std::string("Object of type ") + type_name(v) + " is not JSON serializable", 0);
  std::string out;
  dumps_into(v.j(), out, indent, 0);
  return out;
}

Json to_json(const Value& v, int line) {
  if (v.is_json()) return v.j();
  if (v.is_undefined()) return nullptr;
  if (v.kind == Value::Kind::kNamespace) {
    Json o = Json::object();
    for (const auto& [k, e] : v.ns->attrs) o[k] = to_json(e, line);
    return o;
  }
  fail("a macro cannot be stored in a list or dict", line);
}

int64_t as_int(const Value& v, int line) {
  if (v.is_json()) {
    const Json& j = v.j();
    if (j.is_boolean()) return j.get<bool>() ? 1 : 0;
    if (j.is_number_unsigned()) {
      if (j.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) fail("integer too large", line);
      return static_cast<int64_t>(j.get<uint64_t>());
    }
    if (j.is_number_integer()) return j.get<int64_t>();
  }
  fail(std::string("expected an integer, got ") + type_name(v), line);
}

double as_number(const Value& v, int line) {
  if (v.is_json()) {
    const Json& j = v.j();
    if (j.is_boolean()) return j.get<bool>() ? 1 : 0;
    if (j.is_number()) return j.get<double>();
  }
  fail(std::string("expected a number, got ") + type_name(v), line);
}

bool values_equal(const Value& a, const Value& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Kind::kUndefined: return true;
    case Value::Kind::kNamespace: return a.ns == b.ns;
    case Value::Kind::kMacro: return a.macro == b.macro;
    case Value::Kind::kJson: break;
  }
  const Json& x = a.j();
  const Json& y = b.j();
  // Python: True == 1 and 1 == 1.0
  if ((x.is_number() || x.is_boolean()) && (y.is_number() || y.is_boolean()) && (x.is_boolean() || y.is_boolean())) {
    return as_number(a, 0) == as_number(b, 0);
  }
  return x == y;
}

int compare_values(const Value& a, const Value& b, int line) {
  if (a.is_json() && b.is_json()) {
    const Json& x = a.j();
    const Json& y = b.j();
    if ((x.is_number() || x.is_boolean()) && (y.is_number() || y.is_boolean())) {
      if (x.is_number_integer() && y.is_number_integer() && !x.is_number_unsigned() && !y.is_number_unsigned()) {
        int64_t p = x.get<int64_t>(), q = y.get<int64_t>();
        return p < q ? -1 : p > q ? 1 : 0;
      }
      double p = as_number(a, line), q = as_number(b, line);
      return p < q ? -1 : p > q ? 1 : 0;
    }
    if (x.is_string() && y.is_string()) {
      int c = x.get_ref<const std::string&>().compare(y.get_ref<const std::string&>());
      return c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    if (x.is_array() && y.is_array()) {
      for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
        int c = compare_values(Value::child_of(a, x[i]), Value::child_of(b, y[i]), line);
        if (c != 0) return c;
      }
      return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
    }
  }
  if (a.is_undefined()) fail_undefined(a, line);
  if (b.is_undefined()) fail_undefined(b, line);
  fail(std::string("cannot compare ") + type_name(a) + " with " + type_name(b), line);
}

// Invalid bytes decode to U+FFFD one byte at a time so that nothing is ever rejected.
std::u32string utf8_decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    bool ok = n > 0 && i + static_cast<size_t>(n) <= s.size();
    for (int k = 1; ok && k < n; ++k) {
      unsigned char d = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((d & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (!ok) {
      out += 0xFFFD;
      ++i;
      continue;
    }
    out += cp;
    i += static_cast<size_t>(n);
  }
  return out;
}

std::string utf8_encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : s) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return out;
}

size_t utf8_length(std::string_view s) { return utf8_decode(s).size(); }

}  // namespace tandem::tokenizer::chat_template_detail
