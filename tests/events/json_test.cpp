// events::json keeps objects in a sorted vector (events/json.hpp): it must behave as nlohmann's
// std::map-based json does wherever omniroute can tell, above all in the text dump() writes.
#include "events/json.hpp"

#include <doctest/doctest.h>

#include <iterator>
#include <random>
#include <string>
#include <string_view>

using omniroute::events::json;
using std_json = nlohmann::json;

namespace {

// A random document: objects of 0-14 members (past the 8 a scan serves), keys drawn from a
// small alphabet so that they share prefixes and repeat, nested up to `depth`.
std::string random_key(std::mt19937& rng) {
  static const std::string pieces[] = {"a", "b", "A", "B", "_", "-", "z", "\xc3\xa9"};
  std::string k;
  const size_t n = rng() % 4;
  for (size_t i = 0; i < n; ++i) k += pieces[rng() % std::size(pieces)];
  return k;
}

std::string random_text(std::mt19937& rng, int depth) {
  const unsigned pick = depth > 0 ? rng() % 7 : rng() % 4;
  switch (pick) {
    case 0:
      return std::to_string(static_cast<int>(rng() % 2000) - 1000);
    case 1:
      return "\"v" + std::to_string(rng() % 100) + "\"";
    case 2:
      return rng() % 2 ? "true" : "null";
    case 3:
      return "1.5";
    case 4: {
      std::string out = "[";
      for (size_t i = 0, n = rng() % 4; i < n; ++i)
        out += (i ? "," : "") + random_text(rng, depth - 1);
      return out + "]";
    }
    default: {
      std::string out = "{";
      // Keys in any order and sometimes twice: a parse keeps the last value of a repeated key.
      for (size_t i = 0, n = rng() % 15; i < n; ++i)
        out += (i ? ",\"" : "\"") + random_key(rng) + "\":" + random_text(rng, depth - 1);
      return out + "}";
    }
  }
}

}  // namespace

TEST_CASE("json: parsing and dumping give the bytes of nlohmann's std::map json") {
  std::mt19937 rng(20261123);
  for (int i = 0; i < 3000; ++i) {
    const std::string text = random_text(rng, 4);
    const std_json expected = std_json::parse(text);
    const json got = json::parse(text);
    REQUIRE_MESSAGE(got.dump() == expected.dump(), text);
    // Converting either way keeps the document.
    CHECK(json(expected) == got);
    CHECK(std_json(got) == expected);
  }
}

TEST_CASE("json: members are kept in key byte order, each key once") {
  json o = json::object();
  auto& m = o.get_ref<json::object_t&>();
  const std::string keys[] = {"queue", "agent", "conversation", "b", "a",        "ab",
                              "",      "zz",    "\xc3\xa9",     "A", "priority", "journey"};
  std_json expected = std_json::object();
  int n = 0;
  for (const auto& k : keys) {
    CHECK(m.emplace(k, n).second);
    expected[k] = n++;
  }
  CHECK(o.dump() == expected.dump());
  CHECK(m.size() == 12);

  SUBCASE("emplace keeps the first value, operator[] returns it") {
    CHECK_FALSE(m.emplace("agent", 99).second);
    CHECK(o["agent"] == 1);
    o["agent"] = 7;
    CHECK(o.at("agent") == 7);
    CHECK(m.size() == 12);
  }
  SUBCASE("find, count and contains, by string and by string_view, past eight members") {
    for (const auto& k : keys) {
      CHECK(o.contains(std::string_view(k)));
      CHECK(o.count(k) == 1);
      REQUIRE(o.find(std::string_view(k)) != o.end());
      CHECK(o.find(std::string_view(k)).key() == k);
    }
    CHECK_FALSE(o.contains("missing"));
    CHECK_FALSE(o.contains("aa"));
    CHECK(o.find("zzz") == o.end());
    CHECK_THROWS_AS(o.at("missing"), json::out_of_range);
  }
  SUBCASE("erase by key and by iterator keeps the order") {
    CHECK(o.erase("ab") == 1);
    CHECK(o.erase("ab") == 0);
    o.erase(o.find("queue"));
    expected.erase("ab");
    expected.erase("queue");
    CHECK(o.dump() == expected.dump());
  }
  SUBCASE("a small object is found by scan") {
    json small = {{"conversation", "c1"}, {"by", "customer"}};
    CHECK(small.dump() == R"({"by":"customer","conversation":"c1"})");
    CHECK(small.value("by", "") == "customer");
    CHECK(small.value("missing", "x") == "x");
  }
}

TEST_CASE("json: objects built, merged and compared as nlohmann's") {
  json a = {{"z", 1}, {"a", {{"y", true}, {"b", nullptr}}}, {"m", json::array({1, "two"})}};
  std_json sa = {
      {"z", 1}, {"a", {{"y", true}, {"b", nullptr}}}, {"m", std_json::array({1, "two"})}};
  CHECK(a.dump() == sa.dump());
  json b = {{"a", 0}, {"n", "new"}};
  a.update(b);
  sa.update(std_json{{"a", 0}, {"n", "new"}});
  CHECK(a.dump() == sa.dump());
  // Equal documents built in different orders compare equal; ordering compares as std::map's.
  json c = {{"n", "new"}, {"m", json::array({1, "two"})}, {"z", 1}, {"a", 0}};
  CHECK(a == c);
  CHECK((json{{"a", 1}} < json{{"b", 0}}) == (std_json{{"a", 1}} < std_json{{"b", 0}}));
  CHECK((json{{"a", 1}, {"b", 1}} < json{{"a", 1}}) ==
        (std_json{{"a", 1}, {"b", 1}} < std_json{{"a", 1}}));
  // Iteration follows the keys' order.
  std::string order;
  for (const auto& [key, value] : a.items()) order += key;
  CHECK(order == "amnz");
}
