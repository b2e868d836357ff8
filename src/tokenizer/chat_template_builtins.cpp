// jinja2 filters and tests, and the Python str/dict methods templates call. Each follows the
// Python behaviour transformers would show; strings are UTF-8, case mapping is ASCII-only.
#include <algorithm>

#include "tokenizer/chat_template_ast.h"

namespace tandem::tokenizer::chat_template_detail {
namespace {

bool py_space(char32_t c) {
  return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
char ascii_upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c; }
char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }
bool ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

const Value* arg(const std::vector<Value>& args, const std::vector<std::pair<std::string, Value>>& kwargs, size_t i,
                 const char* name) {
  if (i < args.size()) return &args[i];
  for (const auto& [k, v] : kwargs) if (k == name) return &v;
  return nullptr;
}

std::string upper(std::string s) {
  for (char& c : s) c = ascii_upper(c);
  return s;
}
std::string lower(std::string s) {
  for (char& c : s) c = ascii_lower(c);
  return s;
}
std::string capitalize(const std::string& s) {
  std::string out = lower(s);
  if (!out.empty()) out[0] = ascii_upper(out[0]);
  return out;
}
// str.title(): a letter after a non-letter starts a word.
std::string py_title(const std::string& s) {
  std::string out = s;
  bool prev_alpha = false;
  for (char& c : out) {
    bool a = ascii_alpha(c) || (static_cast<unsigned char>(c) >= 0x80);
    c = a ? (prev_alpha ? ascii_lower(c) : ascii_upper(c)) : c;
    prev_alpha = a;
  }
  return out;
}
// jinja2's title filter: words start after whitespace, '-', '(', '{', '[' or '<'.
std::string jinja_title(const std::string& s) {
  std::string out = s;
  bool start = true;
  for (char& c : out) {
    bool sep = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == '-' || c == '(' ||
               c == '{' || c == '[' || c == '<';
    if (sep) {
      start = true;
      continue;
    }
    c = start ? ascii_upper(c) : ascii_lower(c);
    start = false;
  }
  return out;
}

const std::string& need_string(const Value& v, const char* what, int line) {
  if (v.is_undefined()) fail_undefined(v, line);
  if (!v.is_string()) fail(std::string(what) + " expects a string, got " + type_name(v), line);
  return v.str();
}

size_t length_of(const Value& v, int line) {
  if (v.is_undefined()) return 0;
  if (v.is_string()) return utf8_length(v.str());
  if (v.is_list() || v.is_dict()) return v.j().size();
  if (v.kind == Value::Kind::kNamespace) return v.ns->attrs.size();
  fail(std::string("object of type '") + type_name(v) + "' has no len()", line);
}

Value list_of(const Value& v, int line) {
  if (v.is_list()) return v;
  Json out = Json::array();
  if (v.is_undefined()) return Value::of(out);
  if (v.is_dict()) {
    for (const auto& [k, x] : v.j().items()) out.push_back(k);
  } else if (v.is_string()) {
    for (char32_t c : utf8_decode(v.str())) out.push_back(utf8_encode(std::u32string(1, c)));
  } else {
    fail(std::string("'") + type_name(v) + "' object is not iterable", line);
  }
  return Value::of(std::move(out));
}

Value items_of(const Value& v, int line) {
  Json out = Json::array();
  if (v.is_undefined()) return Value::of(out);
  if (!v.is_dict()) fail(std::string("items expects a mapping, got ") + type_name(v), line);
  for (const auto& [k, x] : v.j().items()) out.push_back(Json::array({k, x}));
  return Value::of(std::move(out));
}

// `attribute` may be dotted ("function.name") as jinja2's make_attrgetter allows.
Value attr_path(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur.is_dict()) return Value::undefined(part);
    auto it = cur.j().find(part);
    if (it == cur.j().end()) return Value::undefined(part);
    cur = Value::child_of(cur, *it);
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

}  // namespace

std::string py_strip(std::string_view s, const Value* chars, bool left, bool right) {
  std::u32string u = utf8_decode(s);
  std::u32string set;
  bool custom = chars && chars->is_string();
  if (custom) set = utf8_decode(chars->str());
  auto strip_it = [&](char32_t c) { return custom ? set.find(c) != std::u32string::npos : py_space(c); };
  size_t b = 0, e = u.size();
  if (left) while (b < e && strip_it(u[b])) ++b;
  if (right) while (e > b && strip_it(u[e - 1])) --e;
  // Keep the original bytes when nothing changed: decoding may have replaced invalid bytes.
  if (b == 0 && e == u.size()) return std::string(s);
  return utf8_encode(std::u32string_view(u).substr(b, e - b));
}

Json py_split(const std::string& s, const Value* sep, int64_t maxsplit, bool from_right, int line) {
  Json out = Json::array();
  std::vector<std::string> parts;
  if (!sep || sep->is_undefined() || (sep->is_json() && sep->j().is_null())) {
    std::u32string u = utf8_decode(s);
    std::vector<std::u32string> words;
    if (!from_right) {
      size_t i = 0;
      while (true) {
        while (i < u.size() && py_space(u[i])) ++i;
        if (i >= u.size()) break;
        if (maxsplit >= 0 && static_cast<int64_t>(words.size()) == maxsplit) {
          size_t e = u.size();
          while (e > i && py_space(u[e - 1])) --e;
          words.push_back(u.substr(i, e - i));
          break;
        }
        size_t j = i;
        while (j < u.size() && !py_space(u[j])) ++j;
        words.push_back(u.substr(i, j - i));
        i = j;
      }
    } else {
      size_t i = u.size();
      while (true) {
        while (i > 0 && py_space(u[i - 1])) --i;
        if (i == 0) break;
        if (maxsplit >= 0 && static_cast<int64_t>(words.size()) == maxsplit) {
          size_t b = 0;
          while (b < i && py_space(u[b])) ++b;
          words.push_back(u.substr(b, i - b));
          break;
        }
        size_t j = i;
        while (j > 0 && !py_space(u[j - 1])) --j;
        words.push_back(u.substr(j, i - j));
        i = j;
      }
      std::reverse(words.begin(), words.end());
    }
    for (auto& w : words) out.push_back(utf8_encode(w));
    return out;
  }
  const std::string& d = need_string(*sep, "split", line);
  if (d.empty()) fail("empty separator", line);
  if (!from_right) {
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      size_t f = s.find(d, pos);
      if (f == std::string::npos) break;
      parts.push_back(s.substr(pos, f - pos));
      pos = f + d.size();
    }
    parts.push_back(s.substr(pos));
  } else {
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      if (end < d.size()) break;
      size_t f = s.rfind(d, end - d.size());
      if (f == std::string::npos) break;
      parts.push_back(s.substr(f + d.size(), end - f - d.size()));
      end = f;
    }
    parts.push_back(s.substr(0, end));
    std::reverse(parts.begin(), parts.end());
  }
  for (auto& p : parts) out.push_back(std::move(p));
  return out;
}

std::string py_replace(Context& ctx, const std::string& s, const std::string& from, const std::string& to, int64_t count,
                       int line) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` between every character
    std::u32string u = utf8_decode(s);
    int64_t done = 0;
    for (size_t i = 0; i <= u.size(); ++i) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      if (i < u.size()) out += utf8_encode(std::u32string(1, u[i]));
      if (out.size() > kMaxStringOrList) fail("string too long", line);
    }
  } else {
    size_t pos = 0;
    int64_t done = 0;
    while (count < 0 || done < count) {
      size_t f = s.find(from, pos);
      if (f == std::string::npos) break;
      out.append(s, pos, f - pos);
      out += to;
      pos = f + from.size();
      ++done;
      if (out.size() > kMaxStringOrList) fail("string too long", line);
    }
    out.append(s, pos, std::string::npos);
  }
  charge(ctx, out.size(), line);
  return out;
}

Value apply_filter(Context& ctx, const std::string& name, const Value& in, const std::vector<Value>& args,
                   const std::vector<std::pair<std::string, Value>>& kwargs, int line) {
  auto a = [&](size_t i, const char* n) { return arg(args, kwargs, i, n); };
  if (name == "default" || name == "d") {
    const Value* def = a(0, "default_value");
    const Value* boolean = a(1, "boolean");
    bool use_default = in.is_undefined() || (boolean && truthy(*boolean) && !truthy(in));
    return use_default ? (def ? *def : Value::of("")) : in;
  }
  if (name == "length" || name == "count") return Value::of(static_cast<int64_t>(length_of(in, line)));
  if (name == "string") return Value::of(to_str(in));
  if (name == "safe" || name == "escape" || name == "e") {
    if (name != "safe") fail("unsupported filter '" + name + "'", line);  // autoescape is off in transformers
    return in;
  }
  if (name == "tojson") {
    const Value* indent = a(0, "indent");
    int ind = indent && indent->is_json() && !indent->j().is_null() ? static_cast<int>(std::clamp<int64_t>(as_int(*indent, line), 0, 64)) : -1;
    std::string s = to_json_text(in, ind);
    charge(ctx, s.size(), line);
    return Value::of(std::move(s));
  }
  if (name == "trim") return Value::of(py_strip(to_str(in), a(0, "chars"), true, true));
  if (name == "upper") return Value::of(upper(to_str(in)));
  if (name == "lower") return Value::of(lower(to_str(in)));
  if (name == "capitalize") return Value::of(capitalize(to_str(in)));
  if (name == "title") return Value::of(jinja_title(to_str(in)));
  if (name == "replace") {
    const Value* from = a(0, "old");
    const Value* to = a(1, "new");
    const Value* count = a(2, "count");
    if (!from || !to) fail("replace expects two arguments", line);
    return Value::of(py_replace(ctx, to_str(in), to_str(*from), to_str(*to), count && !count->is_undefined() ? as_int(*count, line) : -1, line));
  }
  if (name == "list") return list_of(in, line);
  if (name == "items") return items_of(in, line);
  if (name == "int") {
    if (in.is_json() && in.j().is_number_float()) return Value::of(static_cast<int64_t>(in.j().get<double>()));
    if (in.is_int() || (in.is_json() && in.j().is_boolean())) return Value::of(as_int(in, line));
    if (in.is_string()) {
      std::string s = py_strip(in.str(), nullptr, true, true);
      char* end = nullptr;
      long long v = std::strtoll(s.c_str(), &end, 10);
      if (!s.empty() && end && *end == '\0') return Value::of(static_cast<int64_t>(v));
    }
    const Value* def = a(0, "default");
    return def ? *def : Value::of(0);
  }
  if (name == "float") {
    if (in.is_number() || (in.is_json() && in.j().is_boolean())) return Value::of(as_number(in, line));
    return Value::of(0.0);
  }
  if (name == "abs") {
    if (in.is_int()) return Value::of(std::llabs(as_int(in, line)));
    return Value::of(std::abs(as_number(in, line)));
  }
  if (name == "first" || name == "last") {
    Value l = list_of(in, line);
    if (l.j().empty()) return Value::undefined(name);
    return Value::child_of(l, name == "first" ? l.j().front() : l.j().back());
  }
  if (name == "reverse") {
    if (in.is_string()) {
      std::u32string u = utf8_decode(in.str());
      std::reverse(u.begin(), u.end());
      return Value::of(utf8_encode(u));
    }
    Json l = list_of(in, line).j();
    std::reverse(l.begin(), l.end());
    return Value::of(std::move(l));
  }
  if (name == "join") {
    const Value* sep = a(0, "d");
    const Value* attribute = a(1, "attribute");
    std::string out;
    Value l = list_of(in, line);
    bool first = true;
    for (const auto& x : l.j()) {
      if (!first) out += sep ? to_str(*sep) : "";
      first = false;
      Value item = Value::child_of(l, x);
      out += to_str(attribute ? attr_path(item, to_str(*attribute)) : item);
      if (out.size() > kMaxStringOrList) fail("string too long", line);
    }
    charge(ctx, out.size(), line);
    return Value::of(std::move(out));
  }
  if (name == "selectattr" || name == "rejectattr" || name == "select" || name == "reject") {
    bool by_attr = name == "selectattr" || name == "rejectattr";
    bool keep = name == "selectattr" || name == "select";
    size_t test_pos = by_attr ? 1 : 0;
    if (by_attr && args.empty()) fail(name + " expects an attribute name", line);
    Value l = list_of(in, line);
    Json out = Json::array();
    for (const auto& x : l.j()) {
      Value item = Value::child_of(l, x);
      Value subject = by_attr ? attr_path(item, to_str(args[0])) : item;
      bool r;
      if (args.size() > test_pos) {
        std::vector<Value> targs(args.begin() + static_cast<std::ptrdiff_t>(test_pos) + 1, args.end());
        r = apply_test(ctx, to_str(args[test_pos]), subject, targs, line);
      } else {
        r = truthy(subject);
      }
      if (r == keep) out.push_back(x);
    }
    return Value::of(std::move(out));
  }
  if (name == "map") {
    Value l = list_of(in, line);
    Json out = Json::array();
    const Value* attribute = a(99, "attribute");
    for (const auto& x : l.j()) {
      Value item = Value::child_of(l, x);
      if (attribute) {
        Value r = attr_path(item, to_str(*attribute));
        const Value* def = a(99, "default");
        out.push_back(to_json(r.is_undefined() && def ? *def : r, line));
      } else {
        if (args.empty()) fail("map expects a filter name or attribute=", line);
        std::vector<Value> fargs(args.begin() + 1, args.end());
        out.push_back(to_json(apply_filter(ctx, to_str(args[0]), item, fargs, {}, line), line));
      }
    }
    return Value::of(std::move(out));
  }
  if (name == "unique") {
    Value l = list_of(in, line);
    Json out = Json::array();
    for (const auto& x : l.j()) {
      bool seen = false;
      for (const auto& y : out) seen = seen || values_equal(Value::of(x), Value::of(y));
      if (!seen) out.push_back(x);
    }
    return Value::of(std::move(out));
  }
  fail("unsupported filter '" + name + "'", line);
}

bool apply_test(Context& ctx, const std::string& name, const Value& v, const std::vector<Value>& args, int line) {
  (void)ctx;
  const bool json = v.is_json();
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return json && v.j().is_null();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict() || v.kind == Value::Kind::kNamespace;
  if (name == "number") return json && (v.j().is_number() || v.j().is_boolean());  // bool is an int subclass
  if (name == "integer") return json && v.j().is_number_integer();
  if (name == "float") return json && v.j().is_number_float();
  if (name == "boolean") return json && v.j().is_boolean();
  if (name == "true") return json && v.j().is_boolean() && v.j().get<bool>();
  if (name == "false") return json && v.j().is_boolean() && !v.j().get<bool>();
  if (name == "iterable") return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
  if (name == "sequence") return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
  if (name == "callable") return v.kind == Value::Kind::kMacro;
  if (name == "lower" || name == "upper") {
    if (!v.is_string()) return false;
    const std::string& s = v.str();
    return s == (name == "lower" ? lower(s) : upper(s)) && std::any_of(s.begin(), s.end(), ascii_alpha);
  }
  if (name == "odd" || name == "even") return (as_int(v, line) % 2 != 0) == (name == "odd");
  if (name == "divisibleby") {
    if (args.empty()) fail("divisibleby expects an argument", line);
    int64_t d = as_int(args[0], line);
    if (d == 0) fail("division by zero", line);
    return as_int(v, line) % d == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==" || name == "ne" || name == "!=" || name == "sameas") {
    if (args.empty()) fail(name + " expects an argument", line);
    return values_equal(v, args[0]) != (name == "ne" || name == "!=");
  }
  if (name == "in") {
    if (args.empty()) fail("in expects an argument", line);
    const Value& c = args[0];
    if (c.is_string()) return v.is_string() && c.str().find(v.str()) != std::string::npos;
    if (c.is_list()) {
      for (const auto& x : c.j()) if (values_equal(Value::child_of(c, x), v)) return true;
      return false;
    }
    if (c.is_dict()) return v.is_string() && c.j().contains(v.str());
    return false;
  }
  if (name == "gt" || name == "lt" || name == "ge" || name == "le" || name == "greaterthan" || name == "lessthan") {
    if (args.empty()) fail(name + " expects an argument", line);
    int c = compare_values(v, args[0], line);
    if (name == "gt" || name == "greaterthan") return c > 0;
    if (name == "lt" || name == "lessthan") return c < 0;
    return name == "ge" ? c >= 0 : c <= 0;
  }
  fail("unsupported test '" + name + "'", line);
}

bool call_method(Context& ctx, const Value& obj, const std::string& name, const std::vector<Value>& args,
                 const std::vector<std::pair<std::string, Value>>& kwargs, int line, Value* result) {
  auto a = [&](size_t i, const char* n) { return arg(args, kwargs, i, n); };
  if (obj.is_string()) {
    const std::string& s = obj.str();
    if (name == "startswith" || name == "endswith") {
      const Value* p = a(0, "prefix");
      if (!p) fail(name + " expects an argument", line);
      auto test = [&](const std::string& x) {
        return name == "startswith" ? s.starts_with(x) : s.ends_with(x);
      };
      bool r = false;
      if (p->is_list()) {
        for (const auto& x : p->j()) r = r || (x.is_string() && test(x.get<std::string>()));
      } else {
        r = test(need_string(*p, name.c_str(), line));
      }
      *result = Value::of(r);
      return true;
    }
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      *result = Value::of(py_strip(s, a(0, "chars"), name != "rstrip", name != "lstrip"));
      return true;
    }
    if (name == "split" || name == "rsplit") {
      const Value* maxsplit = a(1, "maxsplit");
      *result = Value::of(py_split(s, a(0, "sep"), maxsplit ? as_int(*maxsplit, line) : -1, name == "rsplit", line));
      charge(ctx, s.size(), line);
      return true;
    }
    if (name == "replace") {
      const Value* from = a(0, "old");
      const Value* to = a(1, "new");
      const Value* count = a(2, "count");
      if (!from || !to) fail("replace expects two arguments", line);
      *result = Value::of(py_replace(ctx, s, need_string(*from, "replace", line), need_string(*to, "replace", line),
                                     count ? as_int(*count, line) : -1, line));
      return true;
    }
    if (name == "upper") *result = Value::of(upper(s));
    else if (name == "lower") *result = Value::of(lower(s));
    else if (name == "title") *result = Value::of(py_title(s));
    else if (name == "capitalize") *result = Value::of(capitalize(s));
    else if (name == "find" || name == "rfind" || name == "count") {
      const Value* sub = a(0, "sub");
      if (!sub) fail(name + " expects an argument", line);
      const std::string& x = need_string(*sub, name.c_str(), line);
      if (name == "count") {
        int64_t n = 0;
        if (x.empty()) {
          n = static_cast<int64_t>(utf8_length(s)) + 1;
        } else {
          for (size_t p = s.find(x); p != std::string::npos; p = s.find(x, p + x.size())) ++n;
        }
        *result = Value::of(n);
      } else {
        size_t p = name == "find" ? s.find(x) : s.rfind(x);
        *result = Value::of(p == std::string::npos ? int64_t{-1} : static_cast<int64_t>(utf8_length(s.substr(0, p))));
      }
    } else if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace") {
      bool r = !s.empty();
      for (char c : s) {
        bool d = c >= '0' && c <= '9', al = ascii_alpha(c), sp = py_space(static_cast<unsigned char>(c));
        r = r && (name == "isdigit" ? d : name == "isalpha" ? al : name == "isalnum" ? (d || al) : sp);
      }
      *result = Value::of(r);
    } else if (name == "join") {
      const Value* seq = a(0, "iterable");
      if (!seq || !seq->is_list()) fail("join expects a list", line);
      std::string out;
      bool first = true;
      for (const auto& x : seq->j()) {
        if (!x.is_string()) fail("join expects a list of strings", line);
        if (!first) out += s;
        first = false;
        out += x.get_ref<const std::string&>();
        if (out.size() > kMaxStringOrList) fail("string too long", line);
      }
      charge(ctx, out.size(), line);
      *result = Value::of(std::move(out));
    } else {
      return false;
    }
    return true;
  }
  if (obj.is_dict()) {
    if (name == "items") *result = items_of(obj, line);
    else if (name == "keys") *result = list_of(obj, line);
    else if (name == "values") {
      Json out = Json::array();
      for (const auto& [k, x] : obj.j().items()) out.push_back(x);
      *result = Value::of(std::move(out));
    } else if (name == "get") {
      const Value* key = a(0, "key");
      const Value* def = a(1, "default");
      if (!key) fail("get expects a key", line);
      auto it = key->is_string() ? obj.j().find(key->str()) : obj.j().end();
      *result = it != obj.j().end() ? Value::child_of(obj, *it) : (def ? *def : Value::of(nullptr));
    } else {
      return false;
    }
    charge(ctx, obj.j().size(), line);
    return true;
  }
  if (obj.kind == Value::Kind::kNamespace && obj.ns->is_loop && name == "cycle") {
    if (args.empty()) fail("loop.cycle expects arguments", line);
    int64_t i = as_int(obj.ns->attrs["index0"], line);
    *result = args[static_cast<size_t>(i) % args.size()];
    return true;
  }
  return false;
}

}  // namespace tandem::tokenizer::chat_template_detail
