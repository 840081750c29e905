// Requirement expressions: the small language of a queue's `requirement` (and of relaxation
// steps), over the attributes of named subjects such as `conversation.*` and `agent.*`.
//
//   agent.skills.billing >= 3 AND conversation.language IN agent.languages
//   "vip" IN conversation.attributes.tags OR conversation.priority > 5
//
// Grammar (keywords in any case):
//   expr    := and (OR and)*
//   and     := unary (AND unary)*
//   unary   := NOT unary | compare
//   compare := operand [(== | != | < | <= | > | >= | IN | NOT IN | HAS) operand]
//   operand := '(' expr ')' | number | "string" | 'string' | true | false | list | path
//   list    := '[' [literal (',' literal)*] ']'
//   path    := root ('.' name)+          where root is one of the subjects compile() is given
//
// Meaning: a comparison with a missing value is false (and `!=` is the negation of `==`, so
// it is true). `<` and friends compare two numbers or two strings; anything else is false.
// `a IN b` is true when b is a list holding a value equal to a, or an object with key a;
// `a HAS b` is `b IN a`. An operand alone is true only when it is the boolean true.
//
// Compiled once (Expression::compile); evaluated without allocating: values are views into
// the subjects' JSON and the compiled literals.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "events/json.hpp"

#include "events/types.hpp"

namespace omniroute::expr {

using json = events::json;

// A value seen by the evaluator; refers to storage it does not own.
struct Value {
  enum class Kind : uint8_t { missing, boolean, number, string, list, object };
  Kind kind = Kind::missing;
  bool boolean = false;
  double number = 0;
  std::string_view string;
  const json* doc = nullptr;  // for lists and objects

  static Value of(const json& v);
  static Value text(std::string_view s) {
    Value v;
    v.kind = Kind::string;
    v.string = s;
    return v;
  }
  static Value num(double n) {
    Value v;
    v.kind = Kind::number;
    v.number = n;
    return v;
  }
};

// The subjects of a queue's requirement (and of its relaxation steps), in this order.
const std::vector<std::string>& requirement_roots();

// Follows `path` (object keys) down from `doc`; missing when a key is absent.
Value walk(const json& doc, const std::vector<std::string>& path, size_t from = 0);

// One subject of an expression (the conversation, the agent): resolves the path after its
// root name, e.g. {"skills", "billing"} for `agent.skills.billing`.
class Subject {
 public:
  virtual ~Subject() = default;
  virtual Value get(const std::vector<std::string>& path) const = 0;
};

// Why an expression did not compile: the 1-based character position and what is wrong.
struct compile_error {
  size_t position = 0;
  std::string reason;
  std::string message() const { return "position " + std::to_string(position) + ": " + reason; }
};

class Expression {
 public:
  // An empty (or all-blank) text compiles to an expression that is always true. `roots` names
  // the subjects, in the order evaluate() receives them.
  static result<Expression, compile_error> compile(std::string_view text,
                                                   const std::vector<std::string>& roots);

  // Evaluates against one subject per root (in compile()'s order). Does not allocate.
  bool evaluate(const Subject* const* subjects) const;

  bool always_true() const { return nodes_.empty(); }
  // Whether any path names the root at index `root` (e.g. whether a requirement looks at the
  // conversation at all, or only at the agent).
  bool uses_root(size_t root) const {
    for (const auto& p : paths_)
      if (p.root == root) return true;
    return false;
  }
  const std::string& text() const { return text_; }
  // Every path used, as (root index, segments after the root), in order of appearance.
  struct Path {
    size_t root = 0;
    std::vector<std::string> segments;
  };
  const std::vector<Path>& paths() const { return paths_; }

 private:
  enum class Op : uint8_t {
    literal, path, and_, or_, not_, eq, ne, lt, le, gt, ge, in, not_in, has
  };
  struct Node {
    Op op;
    int32_t a = -1, b = -1;  // operands (node indices), or the literal / path index in a
  };
  friend class Parser;

  Value value(int32_t node, const Subject* const* subjects) const;
  bool truth(int32_t node, const Subject* const* subjects) const;

  std::string text_;
  std::vector<Node> nodes_;  // the root is the last node
  std::vector<json> literals_;
  std::vector<Path> paths_;
};

}  // namespace omniroute::expr
