// ChatTemplate::free_variables: the names a template reads from its caller. A syntactic walk:
// every variable read anywhere, less the names the template binds itself (set, for, macro
// names and parameters) and the global functions; jinja2's meta.find_undeclared_variables
// does the same.
#include <set>

#include "tokenizer/chat_template.h"
#include "tokenizer/chat_template_ast.h"

namespace tandem::tokenizer {

namespace {

using namespace chat_template_detail;

struct Walk {
  std::map<std::string, bool> read;  // name -> printed directly
  std::set<std::string> bound{"loop", "range",           "namespace",
                              "dict", "raise_exception", "strftime_now"};

  void expr(const Expr* e) {
    if (e == nullptr) return;
    if (e->kind == ExprKind::kName) read.emplace(e->name, false);
    for (const auto& a : e->args) expr(a.get());
    for (const auto& [k, a] : e->kwargs) expr(a.get());
  }
  void body(const Body& b) {
    for (const auto& s : b) stmt(*s);
  }
  void stmt(const Stmt& s) {
    expr(s.expr.get());
    expr(s.cond.get());
    if (s.kind == StmtKind::kOutput && s.expr && s.expr->kind == ExprKind::kName)
      read[s.expr->name] = true;
    if (s.kind == StmtKind::kFor || s.kind == StmtKind::kSet || s.kind == StmtKind::kSetBlock ||
        s.kind == StmtKind::kMacro) {
      for (const auto& t : s.targets) bound.insert(t);
    }
    for (const auto& [name, def] : s.params) {
      bound.insert(name);
      expr(def.get());
    }
    for (const auto& [cond, b] : s.branches) {
      expr(cond.get());
      body(b);
    }
    body(s.body);
    body(s.else_body);
  }
};

}  // namespace

std::vector<ChatTemplate::Variable> ChatTemplate::free_variables() const {
  Walk w;
  w.body(program_->body);
  std::vector<Variable> out;
  for (const auto& [name, printed] : w.read) {
    if (!w.bound.count(name)) out.push_back(Variable{name, printed});
  }
  return out;
}

}  // namespace tandem::tokenizer
