// Recursive-descent parser following jinja2's grammar and operator precedence
// (or < and < not < comparisons < +,- < ~ < *,/,//,% < ** < unary < postfix/filters/tests).
// Constructs outside the supported subset are refused by name and line.
#include <set>

#include "tokenizer/chat_template_ast.h"

namespace tandem::tokenizer::chat_template_detail {
namespace {

class ExprParser {
 public:
  ExprParser(const std::vector<Token>& toks, int line, int& depth) : toks_(toks), line_(line), depth_(depth) {}

  bool at_end() const { return pos_ >= toks_.size(); }
  const Token* peek(size_t ahead = 0) const { return pos_ + ahead < toks_.size() ? &toks_[pos_ + ahead] : nullptr; }
  bool peek_op(const char* op, size_t ahead = 0) const {
    const Token* t = peek(ahead);
    return t && t->kind == TokKind::kOp && t->text == op;
  }
  bool peek_name(const char* name, size_t ahead = 0) const {
    const Token* t = peek(ahead);
    return t && t->kind == TokKind::kName && t->text == name;
  }
  int line() const { return at_end() ? (toks_.empty() ? line_ : toks_.back().line) : toks_[pos_].line; }
  const Token& next() {
    if (at_end()) fail("unexpected end of tag", line());
    return toks_[pos_++];
  }
  void expect_op(const char* op) {
    if (!peek_op(op)) fail(std::string("expected '") + op + "'" + found(), line());
    ++pos_;
  }
  std::string expect_name() {
    const Token* t = peek();
    if (!t || t->kind != TokKind::kName) fail("expected a name" + found(), line());
    ++pos_;
    return t->text;
  }
  std::string found() const { return at_end() ? " at end of tag" : " but found '" + toks_[pos_].text + "'"; }
  void expect_end() {
    if (!at_end()) fail("unexpected '" + toks_[pos_].text + "'", line());
  }

  // expression with the inline `a if c else b`
  ExprPtr parse_expr(bool with_cond = true) {
    Guard g(*this);
    ExprPtr e = parse_or();
    if (with_cond && peek_name("if")) {
      ++pos_;
      auto node = make(ExprKind::kCond);
      ExprPtr cond = parse_or();
      ExprPtr other;
      if (peek_name("else")) {
        ++pos_;
        other = parse_expr();
      }
      node->args.push_back(std::move(e));
      node->args.push_back(std::move(cond));
      node->args.push_back(std::move(other));
      return node;
    }
    return e;
  }

  // `a, b` as in `set x = 1, 2` becomes a list, as jinja2 builds a tuple.
  ExprPtr parse_tuple(bool with_cond = true) {
    ExprPtr first = parse_expr(with_cond);
    if (!peek_op(",")) return first;
    auto node = make(ExprKind::kList);
    node->args.push_back(std::move(first));
    while (peek_op(",")) {
      ++pos_;
      if (at_end() || peek_name("if")) break;
      node->args.push_back(parse_expr(with_cond));
    }
    return node;
  }

 private:
  struct Guard {
    explicit Guard(ExprParser& p) : p_(p) {
      if (++p_.depth_ > kMaxNesting) fail("expression nested too deeply", p_.line());
    }
    ~Guard() { --p_.depth_; }
    ExprParser& p_;
  };

  ExprPtr make(ExprKind k) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line();
    return e;
  }
  ExprPtr binary(ExprKind k, ExprPtr a, ExprPtr b, std::string op = {}) {
    auto e = make(k);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (peek_name("or")) {
      ++pos_;
      e = binary(ExprKind::kOr, std::move(e), parse_and());
    }
    return e;
  }
  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (peek_name("and")) {
      ++pos_;
      e = binary(ExprKind::kAnd, std::move(e), parse_not());
    }
    return e;
  }
  ExprPtr parse_not() {
    if (peek_name("not")) {
      Guard g(*this);
      ++pos_;
      auto e = make(ExprKind::kNot);
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    ExprPtr first = parse_math1();
    ExprPtr node;
    while (true) {
      std::string op;
      const Token* t = peek();
      if (t && t->kind == TokKind::kOp &&
          (t->text == "==" || t->text == "!=" || t->text == "<" || t->text == ">" || t->text == "<=" || t->text == ">=")) {
        op = t->text;
        ++pos_;
      } else if (peek_name("in")) {
        op = "in";
        ++pos_;
      } else if (peek_name("not") && peek_name("in", 1)) {
        op = "not in";
        pos_ += 2;
      } else {
        break;
      }
      if (!node) {
        node = make(ExprKind::kCompare);
        node->args.push_back(std::move(first));
      }
      node->ops.push_back(op);
      node->args.push_back(parse_math1());
    }
    return node ? std::move(node) : std::move(first);
  }
  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (peek_op("+") || peek_op("-")) {
      std::string op = next().text;
      e = binary(ExprKind::kBinary, std::move(e), parse_concat(), op);
    }
    return e;
  }
  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    if (!peek_op("~")) return e;
    auto node = make(ExprKind::kConcat);
    node->args.push_back(std::move(e));
    while (peek_op("~")) {
      ++pos_;
      node->args.push_back(parse_math2());
    }
    return node;
  }
  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (peek_op("*") || peek_op("/") || peek_op("//") || peek_op("%")) {
      std::string op = next().text;
      e = binary(ExprKind::kBinary, std::move(e), parse_pow(), op);
    }
    return e;
  }
  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (peek_op("**")) {
      ++pos_;
      e = binary(ExprKind::kBinary, std::move(e), parse_unary(true), "**");
    }
    return e;
  }
  ExprPtr parse_unary(bool with_filter) {
    Guard g(*this);
    ExprPtr node;
    if (peek_op("-") || peek_op("+")) {
      auto e = make(next().text == "-" ? ExprKind::kNeg : ExprKind::kPos);
      e->args.push_back(parse_unary(false));
      node = std::move(e);
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    Guard g(*this);
    const Token& t = next();
    auto e = make(ExprKind::kLiteral);
    e->line = t.line;
    switch (t.kind) {
      case TokKind::kName:
        if (t.text == "true" || t.text == "True") e->literal = std::make_shared<const Json>(true);
        else if (t.text == "false" || t.text == "False") e->literal = std::make_shared<const Json>(false);
        else if (t.text == "none" || t.text == "None") e->literal = std::make_shared<const Json>(nullptr);
        else {
          e->kind = ExprKind::kName;
          e->name = t.text;
        }
        return e;
      case TokKind::kString: {
        std::string s = t.text;
        while (peek() && peek()->kind == TokKind::kString) s += next().text;  // adjacent literals join
        e->literal = std::make_shared<const Json>(std::move(s));
        return e;
      }
      case TokKind::kInt: e->literal = std::make_shared<const Json>(t.ival); return e;
      case TokKind::kFloat: e->literal = std::make_shared<const Json>(t.fval); return e;
      case TokKind::kOp: break;
    }
    if (t.text == "(") {
      if (peek_op(")")) {
        ++pos_;
        e->kind = ExprKind::kList;
        return e;
      }
      ExprPtr inner = parse_expr();
      if (peek_op(",")) {  // a tuple, which behaves as a list here
        auto list = make(ExprKind::kList);
        list->args.push_back(std::move(inner));
        while (peek_op(",")) {
          ++pos_;
          if (peek_op(")")) break;
          list->args.push_back(parse_expr());
        }
        inner = std::move(list);
      }
      expect_op(")");
      return inner;
    }
    if (t.text == "[") {
      e->kind = ExprKind::kList;
      while (!peek_op("]")) {
        e->args.push_back(parse_expr());
        if (!peek_op(",")) break;
        ++pos_;
      }
      expect_op("]");
      return e;
    }
    if (t.text == "{") {
      e->kind = ExprKind::kDict;
      while (!peek_op("}")) {
        e->args.push_back(parse_expr());
        expect_op(":");
        e->args.push_back(parse_expr());
        if (!peek_op(",")) break;
        ++pos_;
      }
      expect_op("}");
      return e;
    }
    fail("unexpected '" + t.text + "' in expression", t.line);
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (peek_op(".")) {
        ++pos_;
        const Token& t = next();
        if (t.kind == TokKind::kName) {
          auto e = make(ExprKind::kAttr);
          e->name = t.text;
          e->args.push_back(std::move(node));
          node = std::move(e);
        } else if (t.kind == TokKind::kInt) {
          auto e = make(ExprKind::kItem);
          auto idx = make(ExprKind::kLiteral);
          idx->literal = std::make_shared<const Json>(t.ival);
          e->args.push_back(std::move(node));
          e->args.push_back(std::move(idx));
          node = std::move(e);
        } else {
          fail("expected an attribute name after '.'", t.line);
        }
      } else if (peek_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (peek_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    Guard g(*this);
    expect_op("[");
    ExprPtr parts[3];
    int colons = 0;
    while (!peek_op("]")) {
      if (peek_op(":")) {
        if (++colons > 2) fail("bad slice", line());
        ++pos_;
        continue;
      }
      if (parts[colons]) fail("bad subscript", line());
      parts[colons] = parse_expr();
    }
    expect_op("]");
    if (colons == 0) {
      if (!parts[0]) fail("empty subscript", line());
      auto e = make(ExprKind::kItem);
      e->args.push_back(std::move(node));
      e->args.push_back(std::move(parts[0]));
      return e;
    }
    auto e = make(ExprKind::kSlice);
    e->args.push_back(std::move(node));
    for (auto& p : parts) e->args.push_back(std::move(p));
    return e;
  }

  void parse_args(Expr& e) {
    expect_op("(");
    while (!peek_op(")")) {
      if (peek() && peek()->kind == TokKind::kName && peek_op("=", 1)) {
        std::string key = next().text;
        ++pos_;
        e.kwargs.emplace_back(key, parse_expr());
      } else {
        if (!e.kwargs.empty()) fail("positional argument after keyword argument", line());
        e.args.push_back(parse_expr());
      }
      if (!peek_op(",")) break;
      ++pos_;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee) {
    Guard g(*this);
    auto e = make(ExprKind::kCall);
    e->args.push_back(std::move(callee));
    parse_args(*e);
    return e;
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (peek_op("|")) {
        ++pos_;
        auto e = make(ExprKind::kFilter);
        e->name = expect_name();
        while (peek_op(".")) {  // dotted filter names exist in jinja2 but not in our set
          ++pos_;
          e->name += "." + expect_name();
        }
        e->args.push_back(std::move(node));
        if (peek_op("(")) parse_args(*e);
        node = std::move(e);
      } else if (peek_name("is")) {
        ++pos_;
        auto e = make(ExprKind::kTest);
        if (peek_name("not")) {
          ++pos_;
          e->negated = true;
        }
        e->name = expect_name();
        e->args.push_back(std::move(node));
        if (peek_op("(")) {
          parse_args(*e);
        } else if (const Token* t = peek();
                   t && (t->kind != TokKind::kOp || t->text == "[" || t->text == "{") &&
                   !(t->kind == TokKind::kName && (t->text == "else" || t->text == "or" || t->text == "and" ||
                                                   t->text == "if" || t->text == "in" || t->text == "is" || t->text == "not"))) {
          // `x is divisibleby 3`: one argument without parentheses
          e->args.push_back(parse_postfix(parse_primary()));
        }
        node = std::move(e);
      } else if (peek_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  const std::vector<Token>& toks_;
  size_t pos_ = 0;
  int line_;
  int& depth_;
};

class Parser {
 public:
  explicit Parser(std::vector<Segment> segs) : segs_(std::move(segs)) {}

  Program run() {
    Program p;
    std::string end = parse_body(p.body, {});
    (void)end;
    return p;
  }

 private:
  static std::string tag_name(const Segment& s) {
    if (s.tokens.empty() || s.tokens[0].kind != TokKind::kName) fail("expected a statement name in '{% %}'", s.line);
    return s.tokens[0].text;
  }

  // Parses statements until a block tag named in `ends`; returns that name ("" at end of input).
  std::string parse_body(Body& body, const std::set<std::string>& ends) {
    if (++depth_ > kMaxNesting) fail("blocks nested too deeply", i_ < segs_.size() ? segs_[i_].line : 0);
    while (i_ < segs_.size()) {
      const Segment& s = segs_[i_];
      if (s.kind == Segment::Kind::kText) {
        auto st = make(StmtKind::kText, s.line);
        st->text = s.text;
        body.push_back(std::move(st));
        ++i_;
        continue;
      }
      if (s.kind == Segment::Kind::kVar) {
        ExprParser ep(s.tokens, s.line, depth_);
        if (ep.at_end()) fail("empty expression in '{{ }}'", s.line);
        auto st = make(StmtKind::kOutput, s.line);
        st->expr = ep.parse_tuple();
        ep.expect_end();
        body.push_back(std::move(st));
        ++i_;
        continue;
      }
      std::string name = tag_name(s);
      if (ends.count(name)) {
        --depth_;
        return name;
      }
      ++i_;
      body.push_back(parse_statement(s, name));
    }
    if (!ends.empty()) {
      std::string want;
      for (const auto& e : ends) want += (want.empty() ? "'" : " or '") + e + "'";
      fail("unexpected end of template: expected " + want + " to close the block opened at line " +
               std::to_string(open_lines_.empty() ? 0 : open_lines_.back()), 0);
    }
    --depth_;
    return {};
  }

  StmtPtr make(StmtKind k, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = k;
    s->line = line;
    return s;
  }

  // Parses a nested body, remembering where it opened for the unclosed-block message.
  std::string sub_body(Body& body, const std::set<std::string>& ends, int line) {
    open_lines_.push_back(line);
    std::string end = parse_body(body, ends);
    open_lines_.pop_back();
    return end;
  }

  // The current segment is the closing/continuation tag; checks it has nothing after its name
  // (except for `elif`, whose condition the caller reads).
  const Segment& take_tag() { return segs_[i_++]; }
  void expect_bare(const Segment& s) {
    if (s.tokens.size() != 1) fail("unexpected '" + s.tokens[1].text + "' after '" + s.tokens[0].text + "'", s.line);
  }

  StmtPtr parse_statement(const Segment& s, const std::string& name) {
    ExprParser ep(s.tokens, s.line, depth_);
    ep.next();  // the statement name
    if (name == "if") {
      auto st = make(StmtKind::kIf, s.line);
      ExprPtr cond = ep.parse_tuple();
      ep.expect_end();
      while (true) {
        Body body;
        std::string end = sub_body(body, {"elif", "else", "endif"}, s.line);
        st->branches.emplace_back(std::move(cond), std::move(body));
        const Segment& t = take_tag();
        if (end == "endif") {
          expect_bare(t);
          break;
        }
        if (end == "else") {
          expect_bare(t);
          Body else_body;
          sub_body(else_body, {"endif"}, s.line);
          expect_bare(take_tag());
          st->branches.emplace_back(nullptr, std::move(else_body));
          break;
        }
        ExprParser cp(t.tokens, t.line, depth_);
        cp.next();
        cond = cp.parse_tuple();
        cp.expect_end();
      }
      return st;
    }
    if (name == "for") {
      auto st = make(StmtKind::kFor, s.line);
      st->targets.push_back(ep.expect_name());
      while (ep.peek_op(",")) {
        ep.next();
        st->targets.push_back(ep.expect_name());
      }
      if (!ep.peek_name("in")) fail("expected 'in' in for loop" + ep.found(), s.line);
      ep.next();
      st->expr = ep.parse_tuple(false);
      if (ep.peek_name("if")) {
        ep.next();
        st->cond = ep.parse_expr();
      }
      if (ep.peek_name("recursive")) fail("unsupported construct 'recursive' loop", s.line);
      ep.expect_end();
      ++loop_depth_;
      std::string end = sub_body(st->body, {"else", "endfor"}, s.line);
      --loop_depth_;
      expect_bare(take_tag());
      if (end == "else") {
        sub_body(st->else_body, {"endfor"}, s.line);
        expect_bare(take_tag());
      }
      return st;
    }
    if (name == "set") {
      std::string target = ep.expect_name();
      if (ep.peek_op(".")) {
        ep.next();
        auto st = make(StmtKind::kSetAttr, s.line);
        st->targets = {target, ep.expect_name()};
        ep.expect_op("=");
        st->expr = ep.parse_tuple();
        ep.expect_end();
        return st;
      }
      auto st = make(StmtKind::kSet, s.line);
      st->targets.push_back(target);
      while (ep.peek_op(",")) {
        ep.next();
        st->targets.push_back(ep.expect_name());
      }
      if (ep.peek_op("=")) {
        ep.next();
        st->expr = ep.parse_tuple();
        ep.expect_end();
        return st;
      }
      if (st->targets.size() != 1) fail("expected '=' in set", s.line);
      if (!ep.at_end()) fail("unsupported construct 'set' with a filter block", s.line);
      st->kind = StmtKind::kSetBlock;
      sub_body(st->body, {"endset"}, s.line);
      expect_bare(take_tag());
      return st;
    }
    if (name == "macro") {
      auto st = make(StmtKind::kMacro, s.line);
      st->targets.push_back(ep.expect_name());
      ep.expect_op("(");
      while (!ep.peek_op(")")) {
        std::string p = ep.expect_name();
        ExprPtr def;
        if (ep.peek_op("=")) {
          ep.next();
          def = ep.parse_expr();
        }
        st->params.emplace_back(p, std::move(def));
        if (!ep.peek_op(",")) break;
        ep.next();
      }
      ep.expect_op(")");
      ep.expect_end();
      int saved = loop_depth_;
      loop_depth_ = 0;  // break/continue cannot cross a macro boundary
      sub_body(st->body, {"endmacro"}, s.line);
      loop_depth_ = saved;
      const Segment& t = take_tag();
      if (t.tokens.size() > 2 || (t.tokens.size() == 2 && t.tokens[1].text != st->targets[0])) expect_bare(t);
      return st;
    }
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) fail("'" + name + "' outside of a loop", s.line);
      ep.expect_end();
      return make(name == "break" ? StmtKind::kBreak : StmtKind::kContinue, s.line);
    }
    if (name == "generation") {  // transformers' assistant-mask extension: renders its body unchanged
      ep.expect_end();
      auto st = make(StmtKind::kGeneration, s.line);
      sub_body(st->body, {"endgeneration"}, s.line);
      expect_bare(take_tag());
      return st;
    }
    static const std::set<std::string> kKnownEnds = {"endif", "endfor", "endset", "endmacro", "elif", "else", "endgeneration"};
    if (kKnownEnds.count(name)) fail("unexpected '" + name + "' with no block to close", s.line);
    fail("unsupported construct '" + name + "'", s.line);
  }

  std::vector<Segment> segs_;
  size_t i_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  std::vector<int> open_lines_;
};

}  // namespace

Program parse_program(std::string_view source) { return Parser(lex(source)).run(); }

}  // namespace tandem::tokenizer::chat_template_detail
