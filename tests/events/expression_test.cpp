// Requirement expressions: compile errors with positions, and evaluation over JSON subjects.
#include <doctest/doctest.h>

#include "events/envelope.hpp"
#include "events/expression.hpp"
#include "tests/support/support.hpp"

using namespace omniroute;
using expr::Expression;
using expr::json;

namespace {

// A subject that is one JSON object: `x.a.b` looks up a, then b.
struct Doc final : expr::Subject {
  json doc;
  explicit Doc(json d) : doc(std::move(d)) {}
  expr::Value get(const std::vector<std::string>& path) const override { return expr::walk(doc, path); }
};

const std::vector<std::string> roots = {"conversation", "agent"};

bool eval(const std::string& text, const json& conversation, const json& agent) {
  auto e = Expression::compile(text, roots);
  REQUIRE_MESSAGE(e.has_value(), text << ": " << (e ? "" : e.error().message()));
  Doc c(conversation), a(agent);
  const expr::Subject* subjects[] = {&c, &a};
  return e->evaluate(subjects);
}

std::string error_of(const std::string& text) {
  auto e = Expression::compile(text, roots);
  REQUIRE_FALSE_MESSAGE(e.has_value(), text << " compiled");
  return e.error().message();
}

}  // namespace

TEST_CASE("the issue's examples evaluate as written") {
  const json agent = {{"skills", {{"billing", 4}, {"sales", 2}}}, {"languages", {"en", "zh"}}};
  const std::string billing = "agent.skills.billing >= 3 AND conversation.language IN agent.languages";
  CHECK(eval(billing, {{"language", "zh"}}, agent));
  CHECK_FALSE(eval(billing, {{"language", "fr"}}, agent));
  CHECK_FALSE(eval(billing, {{"language", "zh"}}, {{"skills", {{"billing", 2}}}, {"languages", {"zh"}}}));
  CHECK_FALSE(eval(billing, {}, agent));  // a missing language is in no list

  const std::string vip = "\"vip\" IN conversation.attributes.tags OR conversation.priority > 5";
  CHECK(eval(vip, {{"attributes", {{"tags", {"new", "vip"}}}}, {"priority", 0}}, {}));
  CHECK(eval(vip, {{"attributes", {{"tags", json::array()}}}, {"priority", 6}}, {}));
  CHECK_FALSE(eval(vip, {{"attributes", {{"tags", {"new"}}}}, {"priority", 5}}, {}));
}

TEST_CASE("operators, precedence and missing values") {
  const json c = {{"n", 3}, {"s", "abc"}, {"b", true}, {"list", {1, 2, 3}}, {"obj", {{"k", 1}}}};
  CHECK(eval("conversation.n == 3", c, {}));
  CHECK(eval("conversation.n != 4", c, {}));
  CHECK(eval("conversation.n < 4 AND conversation.n <= 3 AND conversation.n > 2 AND conversation.n >= 3", c, {}));
  CHECK(eval("conversation.s < 'abd'", c, {}));      // strings compare as strings
  CHECK_FALSE(eval("conversation.s < 5", c, {}));    // a string and a number do not compare
  CHECK(eval("conversation.b", c, {}));              // a boolean alone is a condition
  CHECK_FALSE(eval("conversation.n", c, {}));        // a number alone is not true
  CHECK(eval("NOT conversation.missing == 1", c, {}));
  CHECK(eval("conversation.missing != 1", c, {}));   // != is the negation of ==
  CHECK_FALSE(eval("conversation.missing < 1", c, {}));
  CHECK(eval("2 IN conversation.list AND 'k' IN conversation.obj", c, {}));
  CHECK(eval("conversation.list HAS 3 AND conversation.obj HAS 'k'", c, {}));
  CHECK(eval("4 NOT IN conversation.list", c, {}));
  CHECK(eval("conversation.s IN ['x', 'abc']", c, {}));
  // AND binds tighter than OR; parentheses override.
  CHECK(eval("conversation.n == 1 AND conversation.n == 2 OR conversation.b", c, {}));
  CHECK_FALSE(eval("conversation.n == 1 AND (conversation.n == 2 OR conversation.b)", c, {}));
  CHECK(eval("not (conversation.n == 1) and conversation.b or false", c, {}));  // any case
  CHECK(eval("agent.skills.x >= 1", {}, {{"skills", {{"x", 1}}}}));
  CHECK(eval("   ", {}, {}));  // empty: always true
}

TEST_CASE("bad expressions name the position and the reason") {
  CHECK(error_of("agent.skills.billing >= ") == "position 25: expected a value, found end of expression");
  CHECK(error_of("agent.skills.billing = 3") == "position 22: '=' is not an operator; use '=='");
  CHECK(error_of("customer.tier == 'gold'") ==
        "position 1: unknown name 'customer.tier' (expected conversation.* or agent.*)");
  CHECK(error_of("(agent.x == 1") == "position 14: expected ')', found end of expression");
  CHECK(error_of("agent.x == 'open") == "position 12: unterminated string");
  CHECK(error_of("agent.x == 1 conversation.y") ==
        "position 14: unexpected 'conversation.y' after a complete expression");
  CHECK(error_of("agent.x IN [1, agent.y]") ==
        "position 16: a list holds numbers, strings and booleans; found 'agent.y'");
  CHECK(error_of("3 AND agent.x") == "position 1: a number alone is not a condition; compare it with something");
  CHECK(error_of("agent.x NOT 3") == "position 13: expected IN after NOT, found '3'");
  CHECK(error_of("agent == 1") == "position 1: 'agent' needs an attribute, e.g. agent.channel");
  CHECK(error_of("agent.x # 1") == "position 9: unexpected character '#'");
  CHECK(error_of(std::string(100, '(') + "agent.x" + std::string(100, ')')).find("nested too deep") !=
        std::string::npos);
}

TEST_CASE("queue.configured refuses a bad requirement at the front door with its position") {
  auto bad = events::parse_fact(testing::event("q", "queue.configured", "2026-11-20T10:00:00Z",
                                               {{"queue", "billing"}, {"requirement", "agent.skills.billing >"}}));
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().field == "data.requirement");
  CHECK(bad.error().reason == "position 23: expected a value, found end of expression");

  auto step = events::parse_fact(testing::event(
      "q", "queue.configured", "2026-11-20T10:00:00Z",
      {{"queue", "billing"}, {"relax", {{{"after_s", 30}, {"requirement", "agent.x =="}}}}}));
  REQUIRE_FALSE(step.has_value());
  CHECK(step.error().field == "data.relax");
  CHECK(step.error().reason == "step 0 requirement: position 11: expected a value, found end of expression");

  auto instant = events::parse_fact(testing::event(
      "q", "queue.configured", "2026-11-20T10:00:00Z",
      {{"queue", "billing"}, {"relax", {{{"after_s", 0}, {"overflow_to", "sales"}}}}}));
  REQUIRE_FALSE(instant.has_value());
  CHECK(instant.error().reason == "step 0 overflows, so its after_s must be greater than 0");
}
