// Tree-walking evaluator with jinja2's scoping (a for loop or macro opens a scope, `if` does
// not; `namespace` objects carry values out of loops) and default-Undefined behaviour
// (renders empty, is falsy, iterates as empty, but errors on attribute access or arithmetic).
#include <ctime>
#include <limits>

#include "tokenizer/chat_template_ast.h"

namespace tandem::tokenizer::chat_template_detail {

struct Context {
  std::vector<std::map<std::string, Value>> scopes;  // scopes[0]: the render's variables
  std::string out;
  size_t work = 0;
  size_t loop_iterations = 0;
  int call_depth = 0;
  // Every namespace (and loop object) made during the render. A template can
  // store a namespace in itself (`{% set ns.x = ns %}`), a shared_ptr cycle
  // that would leak (found by fuzz_chat_template); emptying them all when the
  // render ends, normally or by an error, breaks every cycle.
  std::vector<std::weak_ptr<Namespace>> namespaces;
  Context() = default;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context() {
    for (auto& w : namespaces) {
      if (auto p = w.lock()) p->attrs.clear();
    }
  }
};

void charge(Context& ctx, size_t n, int line) {
  ctx.work += n;
  if (ctx.work > kMaxWork) fail("template too expensive to render", line);
}

namespace {

enum class Flow : uint8_t { kNormal, kBreak, kContinue };

Value eval(Context& ctx, const Expr& e);
Flow exec_body(Context& ctx, const Body& body);

Value lookup(const Context& ctx, const std::string& name) {
  for (auto it = ctx.scopes.rbegin(); it != ctx.scopes.rend(); ++it) {
    auto f = it->find(name);
    if (f != it->end()) return f->second;
  }
  return Value::undefined(name);
}

Value checked_string(Context& ctx, std::string s, int line) {
  if (s.size() > kMaxStringOrList) fail("string too long", line);
  charge(ctx, s.size(), line);
  return Value::of(std::move(s));
}

Value get_attr(const Value& obj, const std::string& name, int line) {
  if (obj.is_undefined()) fail_undefined(obj, line);
  if (obj.kind == Value::Kind::kNamespace) {
    auto it = obj.ns->attrs.find(name);
    return it == obj.ns->attrs.end() ? Value::undefined(name) : it->second;
  }
  if (obj.is_dict()) {
    auto it = obj.j().find(name);
    if (it != obj.j().end()) return Value::child_of(obj, *it);
  }
  return Value::undefined(name);
}

// Python index into a list or string; undefined when out of range, as jinja2's getitem.
Value get_item(Context& ctx, const Value& obj, const Value& key, int line) {
  if (obj.is_undefined()) fail_undefined(obj, line);
  if (obj.kind == Value::Kind::kNamespace) return key.is_string() ? get_attr(obj, key.str(), line) : Value::undefined("item");
  if (!obj.is_json()) fail(std::string("'") + type_name(obj) + "' object is not subscriptable", line);
  const Json& j = obj.j();
  if (j.is_object()) {
    if (!key.is_string()) return Value::undefined("item");
    auto it = j.find(key.str());
    return it == j.end() ? Value::undefined(key.str()) : Value::child_of(obj, *it);
  }
  if (j.is_array() || j.is_string()) {
    if (!key.is_json() || !(key.j().is_number_integer() || key.j().is_boolean())) {
      if (key.is_undefined()) fail_undefined(key, line);
      fail(std::string(type_name(obj)) + " indices must be integers", line);
    }
    int64_t i = as_int(key, line);
    if (j.is_array()) {
      int64_t n = static_cast<int64_t>(j.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::undefined("item");
      return Value::child_of(obj, j[static_cast<size_t>(i)]);
    }
    std::u32string s = utf8_decode(j.get_ref<const std::string&>());
    int64_t n = static_cast<int64_t>(s.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::undefined("item");
    return checked_string(ctx, utf8_encode(s.substr(static_cast<size_t>(i), 1)), line);
  }
  if (j.is_null()) return Value::undefined("item");
  fail(std::string("'") + type_name(obj) + "' object is not subscriptable", line);
}

// Python's slice.indices() followed by the walk.
std::vector<size_t> slice_indices(int64_t n, const Value* start, const Value* stop, const Value* step, int line) {
  int64_t st = step && !step->is_undefined() && !(step->is_json() && step->j().is_null()) ? as_int(*step, line) : 1;
  if (st == 0) fail("slice step cannot be zero", line);
  auto bound = [&](const Value* v, int64_t def, int64_t lo, int64_t hi) {
    if (!v || v->is_undefined() || (v->is_json() && v->j().is_null())) return def;
    int64_t x = as_int(*v, line);
    if (x < 0) {
      x += n;
      if (x < lo) x = lo;
    } else if (x > hi) {
      x = hi;
    }
    return x;
  };
  int64_t a, b;
  if (st > 0) {
    a = bound(start, 0, 0, n);
    b = bound(stop, n, 0, n);
  } else {
    a = bound(start, n - 1, -1, n - 1);
    b = bound(stop, -1, -1, n - 1);
  }
  std::vector<size_t> idx;
  for (int64_t i = a; st > 0 ? i < b : i > b; i += st) {
    idx.push_back(static_cast<size_t>(i));
    if (st > 0 ? i > std::numeric_limits<int64_t>::max() - st : i < std::numeric_limits<int64_t>::min() - st) break;
  }
  return idx;
}

Value eval_slice(Context& ctx, const Expr& e) {
  Value obj = eval(ctx, *e.args[0]);
  Value parts[3];
  const Value* p[3] = {nullptr, nullptr, nullptr};
  for (int i = 0; i < 3; ++i) {
    if (e.args[static_cast<size_t>(i) + 1]) {
      parts[i] = eval(ctx, *e.args[static_cast<size_t>(i) + 1]);
      p[i] = &parts[i];
    }
  }
  if (obj.is_undefined()) fail_undefined(obj, e.line);
  if (obj.is_list()) {
    auto idx = slice_indices(static_cast<int64_t>(obj.j().size()), p[0], p[1], p[2], e.line);
    Json out = Json::array();
    for (size_t i : idx) out.push_back(obj.j()[i]);
    charge(ctx, idx.size(), e.line);
    return Value::of(std::move(out));
  }
  if (obj.is_string()) {
    std::u32string s = utf8_decode(obj.str());
    auto idx = slice_indices(static_cast<int64_t>(s.size()), p[0], p[1], p[2], e.line);
    std::u32string out;
    for (size_t i : idx) out += s[i];
    return checked_string(ctx, utf8_encode(out), e.line);
  }
  fail(std::string("cannot slice ") + type_name(obj), e.line);
}

bool contains(const Value& container, const Value& item, int line) {
  if (container.is_undefined()) return false;  // Undefined iterates as empty
  if (container.is_string()) {
    if (!item.is_string()) {
      if (item.is_undefined()) fail_undefined(item, line);
      fail(std::string("'in <string>' requires string as left operand, not ") + type_name(item), line);
    }
    return container.str().find(item.str()) != std::string::npos;
  }
  if (container.is_list()) {
    for (const auto& x : container.j()) {
      if (values_equal(Value::child_of(container, x), item)) return true;
    }
    return false;
  }
  if (container.is_dict()) return item.is_string() && container.j().contains(item.str());
  if (container.kind == Value::Kind::kNamespace) return item.is_string() && container.ns->attrs.count(item.str());
  fail(std::string("argument of type '") + type_name(container) + "' is not iterable", line);
}

Value arith(Context& ctx, const std::string& op, const Value& a, const Value& b, int line) {
  if (a.is_undefined()) fail_undefined(a, line);
  if (b.is_undefined()) fail_undefined(b, line);
  auto numeric = [](const Value& v) { return v.is_json() && (v.j().is_number() || v.j().is_boolean()); };
  if (numeric(a) && numeric(b)) {
    bool ints = !a.j().is_number_float() && !b.j().is_number_float();
    if (ints && op != "/" && op != "**") {
      int64_t x = as_int(a, line), y = as_int(b, line), r = 0;
      bool overflow = false;
      if (op == "+") overflow = __builtin_add_overflow(x, y, &r);
      else if (op == "-") overflow = __builtin_sub_overflow(x, y, &r);
      else if (op == "*") overflow = __builtin_mul_overflow(x, y, &r);
      else {
        if (y == 0) fail("integer division or modulo by zero", line);
        if (x == std::numeric_limits<int64_t>::min() && y == -1) fail("integer overflow", line);
        int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {  // Python floors
          --q;
          m += y;
        }
        r = op == "//" ? q : m;
      }
      if (overflow) fail("integer overflow", line);
      return Value::of(r);
    }
    double x = as_number(a, line), y = as_number(b, line);
    if (op == "+") return Value::of(x + y);
    if (op == "-") return Value::of(x - y);
    if (op == "*") return Value::of(x * y);
    if (op == "**") {
      if (ints && y >= 0 && std::abs(std::pow(x, y)) < 9.0e18) return Value::of(static_cast<int64_t>(std::pow(x, y)));
      return Value::of(std::pow(x, y));
    }
    if (y == 0) fail("division by zero", line);
    if (op == "/") return Value::of(x / y);
    double q = std::floor(x / y);
    if (op == "//") return Value::of(q);
    return Value::of(x - q * y);
  }
  if (op == "+" && a.is_string() && b.is_string()) return checked_string(ctx, a.str() + b.str(), line);
  if (op == "+" && a.is_list() && b.is_list()) {
    if (a.j().size() + b.j().size() > kMaxStringOrList) fail("list too long", line);
    Json out = a.j();
    for (const auto& x : b.j()) out.push_back(x);
    charge(ctx, out.size(), line);
    return Value::of(std::move(out));
  }
  if (op == "*" && (a.is_string() || a.is_list() || b.is_string() || b.is_list())) {
    const Value& seq = a.is_string() || a.is_list() ? a : b;
    const Value& count = &seq == &a ? b : a;
    if (count.is_json() && count.j().is_number_integer()) {
      int64_t n = std::max<int64_t>(0, as_int(count, line));
      size_t unit = seq.is_string() ? seq.str().size() : seq.j().size();
      if (unit && static_cast<uint64_t>(n) > kMaxStringOrList / unit) fail("repeated sequence too long", line);
      charge(ctx, unit * static_cast<size_t>(n), line);
      if (seq.is_string()) {
        std::string out;
        for (int64_t i = 0; i < n; ++i) out += seq.str();
        return Value::of(std::move(out));
      }
      Json out = Json::array();
      for (int64_t i = 0; i < n; ++i) for (const auto& x : seq.j()) out.push_back(x);
      return Value::of(std::move(out));
    }
  }
  fail(std::string("unsupported operand types for ") + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'", line);
}

void collect_args(Context& ctx, const Expr& e, size_t first, std::vector<Value>& args,
                  std::vector<std::pair<std::string, Value>>& kwargs) {
  for (size_t i = first; i < e.args.size(); ++i) args.push_back(eval(ctx, *e.args[i]));
  for (const auto& [k, v] : e.kwargs) kwargs.emplace_back(k, eval(ctx, *v));
}

std::string capture(Context& ctx, const Body& body) {
  std::string saved;
  std::swap(saved, ctx.out);
  exec_body(ctx, body);
  std::swap(saved, ctx.out);
  return saved;
}

Value call_macro(Context& ctx, const Stmt& m, std::vector<Value> args, std::vector<std::pair<std::string, Value>> kwargs,
                 int line) {
  if (ctx.call_depth >= kMaxCallDepth) fail("macro recursion too deep", line);
  if (args.size() > m.params.size()) fail("macro '" + m.targets[0] + "' takes " + std::to_string(m.params.size()) + " arguments", line);
  std::map<std::string, Value> frame;
  ctx.scopes.emplace_back();
  ++ctx.call_depth;
  for (size_t i = 0; i < m.params.size(); ++i) {
    const auto& [name, def] = m.params[i];
    Value v;
    bool found = false;
    if (i < args.size()) {
      v = args[i];
      found = true;
    }
    for (auto& [k, kv] : kwargs) {
      if (k == name) {
        v = kv;
        found = true;
      }
    }
    if (!found) v = def ? eval(ctx, *def) : Value::undefined(name);
    ctx.scopes.back()[name] = v;
  }
  for (auto& [k, kv] : kwargs) {
    bool known = false;
    for (const auto& p : m.params) known = known || p.first == k;
    if (!known) fail("macro '" + m.targets[0] + "' got an unexpected keyword argument '" + k + "'", line);
  }
  std::string out = capture(ctx, m.body);
  --ctx.call_depth;
  ctx.scopes.pop_back();
  return Value::of(std::move(out));
}

Value call_global(Context& ctx, const std::string& name, const std::vector<Value>& args,
                  const std::vector<std::pair<std::string, Value>>& kwargs, int line) {
  if (name == "raise_exception") {
    throw Error(args.empty() ? std::string("chat template raised an exception") : to_str(args[0]));
  }
  if (name == "strftime_now") {
    if (args.empty() || !args[0].is_string()) fail("strftime_now expects a format string", line);
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[512];
    size_t n = std::strftime(buf, sizeof(buf), args[0].str().c_str(), &tm);
    return Value::of(std::string(buf, n));
  }
  if (name == "namespace" || name == "dict") {
    auto ns = std::make_shared<Namespace>();
    ctx.namespaces.push_back(ns);
    for (const auto& a : args) {
      if (!a.is_dict()) fail(name + "() positional argument must be a dict", line);
      for (const auto& [k, v] : a.j().items()) ns->attrs[k] = Value::child_of(a, v);
    }
    for (const auto& [k, v] : kwargs) ns->attrs[k] = v;
    if (name == "namespace") {
      Value v;
      v.kind = Value::Kind::kNamespace;
      v.ns = ns;
      return v;
    }
    Json o = Json::object();
    for (const auto& [k, v] : ns->attrs) o[k] = to_json(v, line);
    return Value::of(std::move(o));
  }
  if (name == "range") {
    if (args.empty() || args.size() > 3) fail("range expects 1 to 3 arguments", line);
    int64_t start = 0, stop, step = 1;
    if (args.size() == 1) {
      stop = as_int(args[0], line);
    } else {
      start = as_int(args[0], line);
      stop = as_int(args[1], line);
      if (args.size() == 3) step = as_int(args[2], line);
    }
    if (step == 0) fail("range() arg 3 must not be zero", line);
    Json out = Json::array();
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (out.size() >= kMaxStringOrList / 16) fail("range too long", line);
      out.push_back(i);
      if (step > 0 ? i > std::numeric_limits<int64_t>::max() - step : i < std::numeric_limits<int64_t>::min() - step) break;
    }
    charge(ctx, out.size(), line);
    return Value::of(std::move(out));
  }
  fail("'" + name + "' is undefined", line);
}

Value eval_call(Context& ctx, const Expr& e) {
  const Expr& callee = *e.args[0];
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
  if (callee.kind == ExprKind::kAttr) {
    Value obj = eval(ctx, *callee.args[0]);
    if (obj.is_undefined()) fail_undefined(obj, e.line);
    Value member = get_attr(obj, callee.name, e.line);
    collect_args(ctx, e, 1, args, kwargs);
    if (member.kind == Value::Kind::kMacro) return call_macro(ctx, *member.macro, std::move(args), std::move(kwargs), e.line);
    Value result;
    if (call_method(ctx, obj, callee.name, args, kwargs, e.line, &result)) return result;
    fail(std::string("'") + type_name(obj) + "' object has no method '" + callee.name + "'", e.line);
  }
  if (callee.kind == ExprKind::kName) {
    Value f = lookup(ctx, callee.name);
    collect_args(ctx, e, 1, args, kwargs);
    if (f.kind == Value::Kind::kMacro) return call_macro(ctx, *f.macro, std::move(args), std::move(kwargs), e.line);
    if (!f.is_undefined()) fail("'" + callee.name + "' is not callable", e.line);
    return call_global(ctx, callee.name, args, kwargs, e.line);
  }
  Value f = eval(ctx, callee);
  if (f.kind == Value::Kind::kMacro) {
    collect_args(ctx, e, 1, args, kwargs);
    return call_macro(ctx, *f.macro, std::move(args), std::move(kwargs), e.line);
  }
  if (f.is_undefined()) fail_undefined(f, e.line);
  fail(std::string("'") + type_name(f) + "' object is not callable", e.line);
}

Value eval(Context& ctx, const Expr& e) {
  charge(ctx, 1, e.line);
  switch (e.kind) {
    case ExprKind::kLiteral: {
      Value v;
      v.kind = Value::Kind::kJson;
      v.json = e.literal;
      return v;
    }
    case ExprKind::kName: return lookup(ctx, e.name);
    case ExprKind::kList: {
      Json out = Json::array();
      for (const auto& a : e.args) out.push_back(to_json(eval(ctx, *a), e.line));
      return Value::of(std::move(out));
    }
    case ExprKind::kDict: {
      Json out = Json::object();
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        Value k = eval(ctx, *e.args[i]);
        if (!k.is_string()) fail("only string keys are supported in dict literals", e.line);
        out[k.str()] = to_json(eval(ctx, *e.args[i + 1]), e.line);
      }
      return Value::of(std::move(out));
    }
    case ExprKind::kAttr: return get_attr(eval(ctx, *e.args[0]), e.name, e.line);
    case ExprKind::kItem: {
      Value obj = eval(ctx, *e.args[0]);
      return get_item(ctx, obj, eval(ctx, *e.args[1]), e.line);
    }
    case ExprKind::kSlice: return eval_slice(ctx, e);
    case ExprKind::kCall: return eval_call(ctx, e);
    case ExprKind::kFilter: {
      Value input = eval(ctx, *e.args[0]);
      std::vector<Value> args;
      std::vector<std::pair<std::string, Value>> kwargs;
      collect_args(ctx, e, 1, args, kwargs);
      return apply_filter(ctx, e.name, input, args, kwargs, e.line);
    }
    case ExprKind::kTest: {
      Value input = eval(ctx, *e.args[0]);
      std::vector<Value> args;
      std::vector<std::pair<std::string, Value>> kwargs;
      collect_args(ctx, e, 1, args, kwargs);
      return Value::of(apply_test(ctx, e.name, input, args, e.line) != e.negated);
    }
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      Value v = eval(ctx, *e.args[0]);
      if (v.is_undefined()) fail_undefined(v, e.line);
      if (!v.is_number() && !(v.is_json() && v.j().is_boolean())) fail(std::string("bad operand type for unary -: '") + type_name(v) + "'", e.line);
      if (e.kind == ExprKind::kPos) return v;
      if (!v.j().is_number_float()) {
        int64_t x = as_int(v, e.line);
        if (x == std::numeric_limits<int64_t>::min()) fail("integer overflow", e.line);
        return Value::of(-x);
      }
      return Value::of(-v.j().get<double>());
    }
    case ExprKind::kNot: return Value::of(!truthy(eval(ctx, *e.args[0])));
    case ExprKind::kAnd: {  // Python returns the deciding operand, not a bool
      Value a = eval(ctx, *e.args[0]);
      return truthy(a) ? eval(ctx, *e.args[1]) : a;
    }
    case ExprKind::kOr: {
      Value a = eval(ctx, *e.args[0]);
      return truthy(a) ? a : eval(ctx, *e.args[1]);
    }
    case ExprKind::kBinary: {
      Value a = eval(ctx, *e.args[0]);
      Value b = eval(ctx, *e.args[1]);
      return arith(ctx, e.name, a, b, e.line);
    }
    case ExprKind::kConcat: {
      std::string s;
      for (const auto& a : e.args) {
        s += to_str(eval(ctx, *a));
        if (s.size() > kMaxStringOrList) fail("string too long", e.line);
      }
      return checked_string(ctx, std::move(s), e.line);
    }
    case ExprKind::kCompare: {
      Value left = eval(ctx, *e.args[0]);
      for (size_t i = 0; i < e.ops.size(); ++i) {
        Value right = eval(ctx, *e.args[i + 1]);
        const std::string& op = e.ops[i];
        bool r;
        if (op == "==") r = values_equal(left, right);
        else if (op == "!=") r = !values_equal(left, right);
        else if (op == "in") r = contains(right, left, e.line);
        else if (op == "not in") r = !contains(right, left, e.line);
        else {
          int c = compare_values(left, right, e.line);
          r = op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
        }
        if (!r) return Value::of(false);
        left = std::move(right);
      }
      return Value::of(true);
    }
    case ExprKind::kCond: {
      if (truthy(eval(ctx, *e.args[1]))) return eval(ctx, *e.args[0]);
      return e.args[2] ? eval(ctx, *e.args[2]) : Value::undefined("inline if");
    }
  }
  fail("unknown expression", e.line);
}

// The items a for loop walks: list elements, dict keys, string characters; Undefined is empty.
std::vector<Value> iterate(Context& ctx, const Value& v, int line) {
  std::vector<Value> items;
  if (v.is_undefined()) return items;
  if (v.is_list()) {
    for (const auto& x : v.j()) items.push_back(Value::child_of(v, x));
  } else if (v.is_dict()) {
    for (const auto& [k, x] : v.j().items()) items.push_back(Value::of(k));
  } else if (v.is_string()) {
    for (char32_t c : utf8_decode(v.str())) items.push_back(Value::of(utf8_encode(std::u32string(1, c))));
  } else if (v.kind == Value::Kind::kNamespace && !v.ns->is_loop) {
    for (const auto& [k, x] : v.ns->attrs) items.push_back(Value::of(k));
  } else {
    fail(std::string("'") + type_name(v) + "' object is not iterable", line);
  }
  charge(ctx, items.size(), line);
  return items;
}

void bind_targets(Context& ctx, const std::vector<std::string>& targets, const Value& v, int line) {
  auto& scope = ctx.scopes.back();
  if (targets.size() == 1) {
    scope[targets[0]] = v;
    return;
  }
  std::vector<Value> parts = iterate(ctx, v, line);
  if (parts.size() != targets.size()) fail("cannot unpack " + std::to_string(parts.size()) + " values into " + std::to_string(targets.size()), line);
  for (size_t i = 0; i < parts.size(); ++i) scope[targets[i]] = parts[i];
}

Flow exec_for(Context& ctx, const Stmt& s) {
  std::vector<Value> items = iterate(ctx, eval(ctx, *s.expr), s.line);
  ctx.scopes.emplace_back();
  if (s.cond) {  // jinja2 filters first, so loop.length and loop.last count kept items only
    std::vector<Value> kept;
    for (auto& it : items) {
      bind_targets(ctx, s.targets, it, s.line);
      if (truthy(eval(ctx, *s.cond))) kept.push_back(std::move(it));
    }
    items = std::move(kept);
  }
  const size_t n = items.size();
  for (size_t i = 0; i < n; ++i) {
    if (++ctx.loop_iterations > kMaxLoopIterations) fail("too many loop iterations", s.line);
    bind_targets(ctx, s.targets, items[i], s.line);
    auto loop = std::make_shared<Namespace>();
    ctx.namespaces.push_back(loop);
    loop->is_loop = true;
    auto& a = loop->attrs;
    int64_t idx = static_cast<int64_t>(i), len = static_cast<int64_t>(n);
    a["index"] = Value::of(idx + 1);
    a["index0"] = Value::of(idx);
    a["revindex"] = Value::of(len - idx);
    a["revindex0"] = Value::of(len - idx - 1);
    a["first"] = Value::of(i == 0);
    a["last"] = Value::of(i + 1 == n);
    a["length"] = Value::of(len);
    a["depth"] = Value::of(1);
    a["depth0"] = Value::of(0);
    a["previtem"] = i > 0 ? items[i - 1] : Value::undefined("previtem");
    a["nextitem"] = i + 1 < n ? items[i + 1] : Value::undefined("nextitem");
    Value lv;
    lv.kind = Value::Kind::kNamespace;
    lv.ns = loop;
    ctx.scopes.back()["loop"] = lv;
    if (exec_body(ctx, s.body) == Flow::kBreak) break;
  }
  ctx.scopes.pop_back();
  if (n == 0) return exec_body(ctx, s.else_body);
  return Flow::kNormal;
}

Flow exec_body(Context& ctx, const Body& body) {
  for (const auto& sp : body) {
    const Stmt& s = *sp;
    charge(ctx, 1, s.line);
    switch (s.kind) {
      case StmtKind::kText: ctx.out += s.text; break;
      case StmtKind::kOutput: ctx.out += to_str(eval(ctx, *s.expr)); break;
      case StmtKind::kIf:
        for (const auto& [cond, branch] : s.branches) {
          if (!cond || truthy(eval(ctx, *cond))) {
            Flow f = exec_body(ctx, branch);
            if (f != Flow::kNormal) return f;
            break;
          }
        }
        break;
      case StmtKind::kFor: {
        Flow f = exec_for(ctx, s);
        if (f != Flow::kNormal) return f;
        break;
      }
      case StmtKind::kSet: bind_targets(ctx, s.targets, eval(ctx, *s.expr), s.line); break;
      case StmtKind::kSetAttr: {
        Value ns = lookup(ctx, s.targets[0]);
        if (ns.kind != Value::Kind::kNamespace || ns.ns->is_loop) fail("cannot assign attribute on non-namespace object", s.line);
        ns.ns->attrs[s.targets[1]] = eval(ctx, *s.expr);
        break;
      }
      case StmtKind::kSetBlock: ctx.scopes.back()[s.targets[0]] = Value::of(capture(ctx, s.body)); break;
      case StmtKind::kMacro: {
        Value m;
        m.kind = Value::Kind::kMacro;
        m.macro = &s;
        ctx.scopes.back()[s.targets[0]] = m;
        break;
      }
      case StmtKind::kBreak: return Flow::kBreak;
      case StmtKind::kContinue: return Flow::kContinue;
      case StmtKind::kGeneration: {
        Flow f = exec_body(ctx, s.body);
        if (f != Flow::kNormal) return f;
        break;
      }
    }
    if (ctx.out.size() > kMaxOutput) fail("rendered output too large", s.line);
  }
  return Flow::kNormal;
}

}  // namespace

std::string render_program(const Program& program, std::map<std::string, Value> globals) {
  Context ctx;
  ctx.scopes.push_back(std::move(globals));
  exec_body(ctx, program.body);
  return std::move(ctx.out);
}

}  // namespace tandem::tokenizer::chat_template_detail
