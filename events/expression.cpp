#include "events/expression.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace omniroute::expr {

Value Value::of(const json& v) {
  Value out;
  switch (v.type()) {
    case json::value_t::boolean: out.kind = Kind::boolean, out.boolean = v.get<bool>(); break;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: out.kind = Kind::number, out.number = v.get<double>(); break;
    case json::value_t::string:
      out.kind = Kind::string, out.string = v.get_ref<const std::string&>();
      break;
    case json::value_t::array: out.kind = Kind::list, out.doc = &v; break;
    case json::value_t::object: out.kind = Kind::object, out.doc = &v; break;
    default: break;  // null, binary, discarded: missing
  }
  return out;
}

const std::vector<std::string>& requirement_roots() {
  static const std::vector<std::string> roots = {"conversation", "agent"};
  return roots;
}

Value walk(const json& doc, const std::vector<std::string>& path, size_t from) {
  const json* at = &doc;
  for (size_t i = from; i < path.size(); ++i) {
    if (!at->is_object()) return {};
    auto it = at->find(path[i]);
    if (it == at->end()) return {};
    at = &*it;
  }
  return Value::of(*at);
}

namespace {

bool equal(const Value& a, const Value& b) {
  if (a.kind != b.kind || a.kind == Value::Kind::missing) return false;
  switch (a.kind) {
    case Value::Kind::boolean: return a.boolean == b.boolean;
    case Value::Kind::number: return a.number == b.number;
    case Value::Kind::string: return a.string == b.string;
    default: return *a.doc == *b.doc;
  }
}

// a IN b
bool contains(const Value& b, const Value& a) {
  if (a.kind == Value::Kind::missing) return false;
  if (b.kind == Value::Kind::list) {
    for (const auto& item : *b.doc)
      if (equal(Value::of(item), a)) return true;
    return false;
  }
  if (b.kind == Value::Kind::object && a.kind == Value::Kind::string) {
    for (auto it = b.doc->begin(); it != b.doc->end(); ++it)
      if (it.key() == a.string) return true;
  }
  return false;
}

// -1, 0, 1, or 2 when a and b are not comparable.
int order(const Value& a, const Value& b) {
  if (a.kind == Value::Kind::number && b.kind == Value::Kind::number)
    return a.number < b.number ? -1 : (a.number > b.number ? 1 : 0);
  if (a.kind == Value::Kind::string && b.kind == Value::Kind::string) {
    int c = a.string.compare(b.string);
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  return 2;
}

}  // namespace

// Recursive descent over the text; every error names the position of the token at fault.
class Parser {
 public:
  Parser(std::string_view text, const std::vector<std::string>& roots, Expression& out)
      : text_(text), roots_(roots), out_(out) {}

  result<int32_t, compile_error> parse() {
    next();
    auto root = expr(0);
    if (!root) return root;
    if (lex_error_) return error(lex_message());
    if (tok_.kind != Tok::end) return error("unexpected " + describe() + " after a complete expression");
    return root;
  }

 private:
  enum class Tok { end, number, string, name, lparen, rparen, lbracket, rbracket, comma, op };
  struct Token {
    Tok kind = Tok::end;
    std::string text;  // names and operators as written; strings unquoted
    size_t pos = 0;    // 0-based
    double number = 0;
  };
  using parsed = result<int32_t, compile_error>;
  static constexpr int max_depth = 64;

  compile_error error(std::string reason) const { return {tok_.pos + 1, std::move(reason)}; }

  std::string describe() const {
    switch (tok_.kind) {
      case Tok::end: return "end of expression";
      case Tok::string: return "string \"" + tok_.text + "\"";
      default: return "'" + tok_.text + "'";
    }
  }

  static std::string upper(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
    return s;
  }
  bool keyword(const char* k) const { return tok_.kind == Tok::name && upper(tok_.text) == k; }

  // Reads the next token into tok_; a lexical error is kept in lex_error_.
  void next() {
    while (i_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[i_]))) ++i_;
    tok_ = Token{};
    tok_.pos = i_;
    if (i_ >= text_.size()) return;
    const char c = text_[i_];
    auto single = [&](Tok k) {
      tok_.kind = k;
      tok_.text = std::string(1, c);
      ++i_;
    };
    if (c == '(') return single(Tok::lparen);
    if (c == ')') return single(Tok::rparen);
    if (c == '[') return single(Tok::lbracket);
    if (c == ']') return single(Tok::rbracket);
    if (c == ',') return single(Tok::comma);
    if (c == '"' || c == '\'') {
      size_t j = i_ + 1;
      std::string s;
      while (j < text_.size() && text_[j] != c) {
        if (text_[j] == '\\' && j + 1 < text_.size()) ++j;
        s += text_[j++];
      }
      if (j >= text_.size()) {
        tok_.kind = Tok::op;  // reported by the caller
        tok_.text = "unterminated string";
        lex_error_ = true;
        i_ = text_.size();
        return;
      }
      tok_.kind = Tok::string;
      tok_.text = std::move(s);
      i_ = j + 1;
      return;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '-' && i_ + 1 < text_.size() && std::isdigit(static_cast<unsigned char>(text_[i_ + 1])))) {
      std::string num(text_.substr(i_, std::min<size_t>(64, text_.size() - i_)));
      char* end = nullptr;
      tok_.number = std::strtod(num.c_str(), &end);
      tok_.kind = Tok::number;
      tok_.text = num.substr(0, static_cast<size_t>(end - num.c_str()));
      i_ += tok_.text.size();
      return;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i_;
      while (j < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[j])) ||
                                  text_[j] == '_' || text_[j] == '-' || text_[j] == '.'))
        ++j;
      tok_.kind = Tok::name;
      tok_.text = std::string(text_.substr(i_, j - i_));
      i_ = j;
      return;
    }
    static const char* ops[] = {"==", "!=", "<=", ">=", "<", ">", "="};
    for (const char* op : ops) {
      std::string_view o(op);
      if (text_.substr(i_, o.size()) == o) {
        tok_.kind = Tok::op;
        tok_.text = std::string(o);
        i_ += o.size();
        return;
      }
    }
    tok_.kind = Tok::op;
    tok_.text = std::string(1, c);
    lex_error_ = true;
    ++i_;
  }

  int32_t add(Expression::Op op, int32_t a = -1, int32_t b = -1) {
    out_.nodes_.push_back({op, a, b});
    return static_cast<int32_t>(out_.nodes_.size() - 1);
  }

  parsed expr(int depth) {
    if (depth > max_depth) return error("nested too deep (more than 64 levels)");
    return chain("OR", Expression::Op::or_, depth, &Parser::conjunction);
  }

  parsed conjunction(int depth) { return chain("AND", Expression::Op::and_, depth, &Parser::unary); }

  // operand (KEYWORD operand)*, left-associative.
  parsed chain(const char* keyword_text, Expression::Op op, int depth, parsed (Parser::*operand)(int)) {
    auto left = (this->*operand)(depth);
    if (!left) return left;
    int32_t l = *left;
    while (keyword(keyword_text)) {
      next();
      auto right = (this->*operand)(depth);
      if (!right) return right;
      l = add(op, l, *right);
    }
    return l;
  }

  parsed unary(int depth) {
    if (keyword("NOT")) {
      if (depth > max_depth) return error("nested too deep (more than 64 levels)");
      next();
      auto inner = unary(depth + 1);
      if (!inner) return inner;
      return add(Expression::Op::not_, *inner);
    }
    return compare(depth);
  }

  parsed compare(int depth) {
    const size_t start = tok_.pos;
    bool left_is_bool = false;
    auto left = operand(depth, left_is_bool);
    if (!left) return left;
    Expression::Op op;
    if (tok_.kind == Tok::op && tok_.text == "=") return error("'=' is not an operator; use '=='");
    if (tok_.kind == Tok::op && !lex_error_) {
      const std::string& o = tok_.text;
      op = o == "==" ? Expression::Op::eq
           : o == "!=" ? Expression::Op::ne
           : o == "<"  ? Expression::Op::lt
           : o == "<=" ? Expression::Op::le
           : o == ">"  ? Expression::Op::gt
                       : Expression::Op::ge;
      next();
    } else if (keyword("IN")) {
      op = Expression::Op::in;
      next();
    } else if (keyword("HAS")) {
      op = Expression::Op::has;
      next();
    } else if (keyword("NOT")) {
      next();
      if (!keyword("IN")) return error("expected IN after NOT, found " + describe());
      op = Expression::Op::not_in;
      next();
    } else {
      // An operand alone is a condition only when it can be a boolean.
      if (!left_is_bool && out_.nodes_[*left].op == Expression::Op::literal)
        return compile_error{start + 1, "a " + kind_of_literal(*left) +
                                             " alone is not a condition; compare it with something"};
      return left;
    }
    if (lex_error_) return error(lex_message());
    bool right_is_bool = false;
    auto right = operand(depth, right_is_bool);
    if (!right) return right;
    return add(op, *left, *right);
  }

  std::string kind_of_literal(int32_t node) const {
    const json& v = out_.literals_[out_.nodes_[node].a];
    return v.is_number() ? "number" : v.is_string() ? "string" : v.is_array() ? "list" : "value";
  }

  std::string lex_message() const {
    return tok_.text == "unterminated string" ? "unterminated string"
                                              : "unexpected character '" + tok_.text + "'";
  }

  int32_t literal(json v) {
    out_.literals_.push_back(std::move(v));
    return add(Expression::Op::literal, static_cast<int32_t>(out_.literals_.size() - 1));
  }

  parsed operand(int depth, bool& is_bool) {
    if (lex_error_) return error(lex_message());
    switch (tok_.kind) {
      case Tok::end: return error("expected a value, found end of expression");
      case Tok::lparen: {
        next();
        auto inner = expr(depth + 1);
        if (!inner) return inner;
        if (tok_.kind != Tok::rparen) return error("expected ')', found " + describe());
        next();
        is_bool = true;
        return inner;
      }
      case Tok::number: {
        double n = tok_.number;
        next();
        return literal(n);
      }
      case Tok::string: {
        std::string s = tok_.text;
        next();
        return literal(std::move(s));
      }
      case Tok::lbracket: return list();
      case Tok::name: {
        if (keyword("TRUE") || keyword("FALSE")) {
          bool b = keyword("TRUE");
          next();
          is_bool = true;
          return literal(b);
        }
        for (const char* k : {"AND", "OR", "NOT", "IN", "HAS"})
          if (keyword(k)) return error("expected a value, found keyword " + upper(tok_.text));
        return path(is_bool);
      }
      default: return error("expected a value, found " + describe());
    }
  }

  parsed list() {
    json items = json::array();
    next();
    while (tok_.kind != Tok::rbracket) {
      if (lex_error_) return error(lex_message());
      if (tok_.kind == Tok::number) items.push_back(tok_.number);
      else if (tok_.kind == Tok::string) items.push_back(tok_.text);
      else if (keyword("TRUE") || keyword("FALSE")) items.push_back(keyword("TRUE"));
      else return error("a list holds numbers, strings and booleans; found " + describe());
      next();
      if (tok_.kind == Tok::comma) {
        next();
        if (tok_.kind == Tok::rbracket) return error("expected a value after ','");
      } else if (tok_.kind != Tok::rbracket) {
        return error("expected ',' or ']' in a list, found " + describe());
      }
    }
    next();
    return literal(std::move(items));
  }

  parsed path(bool& is_bool) {
    const std::string& name = tok_.text;
    Expression::Path p;
    size_t dot = name.find('.');
    std::string root = name.substr(0, dot);
    auto r = std::find(roots_.begin(), roots_.end(), root);
    if (r == roots_.end()) {
      std::string expected;
      for (const auto& s : roots_) expected += (expected.empty() ? "" : " or ") + s + ".*";
      return error("unknown name '" + name + "' (expected " + expected + ")");
    }
    p.root = static_cast<size_t>(r - roots_.begin());
    size_t at = dot;
    while (at != std::string::npos) {
      size_t end = name.find('.', at + 1);
      std::string seg = name.substr(at + 1, end == std::string::npos ? std::string::npos : end - at - 1);
      if (seg.empty()) return error("'" + name + "' has an empty name after a '.'");
      p.segments.push_back(std::move(seg));
      at = end;
    }
    if (p.segments.empty()) return error("'" + name + "' needs an attribute, e.g. " + root + ".channel");
    next();
    is_bool = true;  // may hold a boolean
    out_.paths_.push_back(std::move(p));
    return add(Expression::Op::path, static_cast<int32_t>(out_.paths_.size() - 1));
  }

  std::string_view text_;
  const std::vector<std::string>& roots_;
  Expression& out_;
  size_t i_ = 0;
  Token tok_;
  bool lex_error_ = false;
};

result<Expression, compile_error> Expression::compile(std::string_view text,
                                                      const std::vector<std::string>& roots) {
  Expression e;
  e.text_ = std::string(text);
  if (std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isspace(c); }))
    return e;
  if (text.size() > 4096) return compile_error{4097, "longer than 4096 characters"};
  Parser parser(e.text_, roots, e);
  auto root = parser.parse();
  if (!root) return root.error();
  // The root must be the last node: evaluation starts there.
  if (*root != static_cast<int32_t>(e.nodes_.size() - 1)) e.nodes_.push_back({Op::or_, *root, *root});
  return e;
}

Value Expression::value(int32_t node, const Subject* const* subjects) const {
  const Node& n = nodes_[node];
  switch (n.op) {
    case Op::literal: return Value::of(literals_[n.a]);
    case Op::path: {
      const Path& p = paths_[n.a];
      return subjects[p.root] ? subjects[p.root]->get(p.segments) : Value{};
    }
    default: {
      Value v;
      v.kind = Value::Kind::boolean;
      v.boolean = truth(node, subjects);
      return v;
    }
  }
}

bool Expression::truth(int32_t node, const Subject* const* subjects) const {
  const Node& n = nodes_[node];
  switch (n.op) {
    case Op::and_: return truth(n.a, subjects) && truth(n.b, subjects);
    case Op::or_: return truth(n.a, subjects) || truth(n.b, subjects);
    case Op::not_: return !truth(n.a, subjects);
    case Op::literal:
    case Op::path: {
      Value v = value(node, subjects);
      return v.kind == Value::Kind::boolean && v.boolean;
    }
    default: break;
  }
  const Value a = value(n.a, subjects), b = value(n.b, subjects);
  switch (n.op) {
    case Op::eq: return equal(a, b);
    case Op::ne: return !equal(a, b);
    case Op::lt: return order(a, b) == -1;
    case Op::le: { int o = order(a, b); return o == -1 || o == 0; }
    case Op::gt: return order(a, b) == 1;
    case Op::ge: { int o = order(a, b); return o == 1 || o == 0; }
    case Op::in: return contains(b, a);
    case Op::not_in: return !contains(b, a);
    case Op::has: return contains(a, b);
    default: return false;
  }
}

bool Expression::evaluate(const Subject* const* subjects) const {
  if (nodes_.empty()) return true;
  return truth(static_cast<int32_t>(nodes_.size() - 1), subjects);
}

}  // namespace omniroute::expr
