// Internal to the chat template interpreter: tokens, syntax tree, runtime values, and the
// functions the lexer, parser, evaluator and builtins share. Not part of the public API.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

namespace tandem::tokenizer::chat_template_detail {

// ordered_json: Python dicts keep insertion order, and tojson/items of tool schemas must too.
using Json = nlohmann::ordered_json;

// Limits that keep hostile templates from exhausting the stack, memory or time.
inline constexpr int kMaxNesting = 150;                 // parser: nested expressions and blocks
inline constexpr int kMaxCallDepth = 40;                // evaluator: macro recursion
inline constexpr size_t kMaxOutput = 4u << 20;          // rendered bytes
inline constexpr size_t kMaxStringOrList = 4u << 20;    // one string's bytes or one list's items
inline constexpr size_t kMaxLoopIterations = 1u << 20;  // all loops of one render together
inline constexpr size_t kMaxWork = 64u << 20;           // bytes built plus nodes run, per render
inline constexpr int kMaxJsonDepth = 256;               // nesting walked by tojson / repr

[[noreturn]] inline void fail(const std::string& msg, int line) {
  throw Error("chat template: " + msg + (line > 0 ? " (line " + std::to_string(line) + ")" : ""));
}

// ---- lexer ----
enum class TokKind : uint8_t { kName, kString, kInt, kFloat, kOp };
struct Token {
  TokKind kind;
  std::string text;  // name, unescaped string, or operator
  int64_t ival = 0;
  double fval = 0;
  int line = 0;
};
// Template text, or the tokens of one {{ }} or {% %} tag (comments are dropped).
struct Segment {
  enum class Kind : uint8_t { kText, kVar, kBlock } kind;
  std::string text;
  std::vector<Token> tokens;
  int line = 0;
};
std::vector<Segment> lex(std::string_view source);

// ---- syntax tree ----
enum class ExprKind : uint8_t {
  kLiteral, kName, kList, kDict, kAttr, kItem, kSlice, kCall, kFilter, kTest,
  kNeg, kPos, kNot, kAnd, kOr, kBinary, kConcat, kCompare, kCond
};
struct Expr {
  ExprKind kind;
  int line = 0;
  std::shared_ptr<const Json> literal;  // kLiteral
  std::string name;                     // variable, attribute, filter, test, or binary operator
  std::vector<std::unique_ptr<Expr>> args;  // operands; a null entry is an omitted slice bound / else
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;
  std::vector<std::string> ops;  // kCompare: one per pair of neighbouring args
  bool negated = false;          // kTest: `is not`
};
using ExprPtr = std::unique_ptr<Expr>;

enum class StmtKind : uint8_t { kText, kOutput, kIf, kFor, kSet, kSetAttr, kSetBlock, kMacro, kBreak, kContinue, kGeneration };
struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;
struct Stmt {
  StmtKind kind;
  int line = 0;
  std::string text;                  // kText
  ExprPtr expr;                      // kOutput value, kSet value, kFor iterable
  ExprPtr cond;                      // kFor `if` filter
  std::vector<std::string> targets;  // kFor/kSet names, kSetAttr {namespace, attribute}, kMacro {name}
  std::vector<std::pair<ExprPtr, Body>> branches;  // kIf: (condition, body); else has a null condition
  Body body, else_body;
  std::vector<std::pair<std::string, ExprPtr>> params;  // kMacro: name and default (may be null)
};

struct Program {
  Body body;
};
Program parse_program(std::string_view source);

// ---- runtime values ----
struct Namespace;
// JSON data shared by aliasing pointers (a message is a view into the input, not a copy),
// plus the few kinds jinja2 has that JSON lacks.
struct Value {
  enum class Kind : uint8_t { kUndefined, kJson, kNamespace, kMacro };
  Kind kind = Kind::kUndefined;
  std::shared_ptr<const Json> json;
  std::shared_ptr<Namespace> ns;
  const Stmt* macro = nullptr;
  std::string undefined_name;  // what the error says when an undefined value is misused

  static Value undefined(std::string name) {
    Value v;
    v.undefined_name = std::move(name);
    return v;
  }
  static Value of(Json j) {
    Value v;
    v.kind = Kind::kJson;
    v.json = std::make_shared<const Json>(std::move(j));
    return v;
  }
  // A view of `child`, which lives inside the data `owner` keeps alive.
  static Value child_of(const Value& owner, const Json& child) {
    Value v;
    v.kind = Kind::kJson;
    v.json = std::shared_ptr<const Json>(owner.json, &child);
    return v;
  }
  bool is_undefined() const { return kind == Kind::kUndefined; }
  bool is_json() const { return kind == Kind::kJson; }
  const Json& j() const { return *json; }
  bool is_string() const { return is_json() && json->is_string(); }
  bool is_number() const { return is_json() && json->is_number(); }
  bool is_int() const { return is_json() && json->is_number_integer(); }
  bool is_list() const { return is_json() && json->is_array(); }
  bool is_dict() const { return is_json() && json->is_object(); }
  const std::string& str() const { return json->get_ref<const std::string&>(); }
};
struct Namespace {
  std::map<std::string, Value> attrs;
  bool is_loop = false;  // `loop` is read-only
};

// ---- value helpers (chat_template_value.cpp) ----
bool truthy(const Value& v);
std::string to_str(const Value& v);   // Python str(), '' for undefined
std::string to_repr(const Json& j);   // Python repr()
std::string py_float(double d);       // Python float repr
std::string to_json_text(const Value& v, int indent);  // json.dumps(ensure_ascii=False, indent)
Json to_json(const Value& v, int line);  // for building lists/dicts; errors for namespaces
int64_t as_int(const Value& v, int line);
double as_number(const Value& v, int line);
bool values_equal(const Value& a, const Value& b);
int compare_values(const Value& a, const Value& b, int line);  // <0, 0, >0; errors when unordered
std::u32string utf8_decode(std::string_view s);
std::string utf8_encode(std::u32string_view s);
size_t utf8_length(std::string_view s);
[[noreturn]] void fail_undefined(const Value& v, int line);
const char* type_name(const Value& v);

// Evaluator state for one render.
struct Context;
// Charges `n` units against the per-render work budget.
void charge(Context& ctx, size_t n, int line);

// ---- builtins (chat_template_builtins.cpp) ----
Value apply_filter(Context& ctx, const std::string& name, const Value& input, const std::vector<Value>& args,
                   const std::vector<std::pair<std::string, Value>>& kwargs, int line);
bool apply_test(Context& ctx, const std::string& name, const Value& input, const std::vector<Value>& args, int line);
// Python methods on strings, dicts and lists; returns false when `name` is not one.
bool call_method(Context& ctx, const Value& obj, const std::string& name, const std::vector<Value>& args,
                 const std::vector<std::pair<std::string, Value>>& kwargs, int line, Value* result);
// Python-style string operations shared with filters.
std::string py_strip(std::string_view s, const Value* chars, bool left, bool right);
Json py_split(const std::string& s, const Value* sep, int64_t maxsplit, bool from_right, int line);
std::string py_replace(Context& ctx, const std::string& s, const std::string& from, const std::string& to,
                       int64_t count, int line);

// ---- evaluator (chat_template_eval.cpp) ----
std::string render_program(const Program& program, std::map<std::string, Value> globals);

}  // namespace tandem::tokenizer::chat_template_detail
