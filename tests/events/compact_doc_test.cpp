// The compact stored form of view documents: it reads as the text json dumps for the same
// fields, and a form cut short or altered does not read at all.
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "events/compact_doc.hpp"
#include "events/envelope.hpp"

using namespace omniroute::events;

namespace {

// Every kind of field, in no particular order, with a key added twice.
void write_every_kind(CompactDoc& d) {
  const json attributes = {{"vip", true}, {"note", "line\nbreak \"q\" \xe4\xbd\xa0"}, {"n", {1, 2.5}}};
  d.text("state", "queued")
      .integer("priority", -3)
      .integer("most", std::numeric_limits<int64_t>::max())
      .integer("least", std::numeric_limits<int64_t>::min())
      .number("wait_s", 0.1)
      .number("whole", 3.0)
      .number("big", -1e300)
      .boolean("repeat", false)
      .boolean("vip", true)
      .null("action")
      .time("started_at", 1795168800123)
      .time("epoch", 0)
      .json("attributes", attributes)
      .texts("agents", std::set<std::string>{"bob", "alice\x01"})
      .texts("none", std::vector<std::string>{})
      .integers("capacity", std::map<std::string, int>{{"voice", 1}, {"chat", 3}})
      .raw("given", R"({"a":[true],"z":1})")
      .text("", "empty key")
      .text("quote\"key", "")
      .begin_object("nested")
      .text("z", "last")
      .begin_object("deeper")
      .integer("b", 2)
      .integer("a", 1)
      .end_object()
      .text("a", "first")
      .end_object()
      .begin_array("notes")
      .item()
      .text("type", "conversation.queued")
      .text("queue", "billing")
      .time("time", 1795168800000)
      .end_object()
      .item()
      .end_object()
      .end_array()
      .begin_array("empty")
      .end_array()
      .text("state", "assigned");  // added twice: the last one is kept
}

json every_kind_as_json() {
  const json attributes = {{"vip", true}, {"note", "line\nbreak \"q\" \xe4\xbd\xa0"}, {"n", {1, 2.5}}};
  return {{"state", "assigned"},
          {"priority", -3},
          {"most", std::numeric_limits<int64_t>::max()},
          {"least", std::numeric_limits<int64_t>::min()},
          {"wait_s", 0.1},
          {"whole", 3.0},
          {"big", -1e300},
          {"repeat", false},
          {"vip", true},
          {"action", nullptr},
          {"started_at", "2026-11-20T10:00:00.123Z"},
          {"epoch", "1970-01-01T00:00:00.000Z"},
          {"attributes", attributes},
          {"agents", {"alice\x01", "bob"}},
          {"none", json::array()},
          {"capacity", {{"chat", 3}, {"voice", 1}}},
          {"given", {{"z", 1}, {"a", {true}}}},
          {"", "empty key"},
          {"quote\"key", ""},
          {"nested", {{"z", "last"}, {"deeper", {{"b", 2}, {"a", 1}}}, {"a", "first"}}},
          {"notes",
           {{{"type", "conversation.queued"}, {"queue", "billing"}, {"time", "2026-11-20T10:00:00.000Z"}},
            json::object()}},
          {"empty", json::array()}};
}

}  // namespace

TEST_CASE("a compact document reads as the text json dumps for the same fields, in any order") {
  CompactDoc d;
  write_every_kind(d);
  const std::string stored = d.str();
  CHECK(is_compact(stored));
  const auto text = document_text(stored);
  REQUIRE(text.has_value());
  CHECK(*text == every_kind_as_json().dump());

  // An empty document, and one reused after clear(): only the new fields are read.
  d.clear();
  CHECK(*document_text(d.bytes()) == "{}");
  d.integer("only", 1);
  CHECK(*document_text(d.bytes()) == R"({"only":1})");
}

TEST_CASE("a compact document longer than its inline room reads whole") {
  CompactDoc d;
  json same = json::object();
  std::vector<std::string> keys;
  keys.reserve(200);
  for (int i = 0; i < 200; ++i) {
    keys.push_back("k" + std::to_string(i));
    d.text(keys.back(), std::string(static_cast<size_t>(i), 'x') + "\"\n");
    same[keys.back()] = std::string(static_cast<size_t>(i), 'x') + "\"\n";
  }
  d.text("long", std::string(100000, 'y'));
  same["long"] = std::string(100000, 'y');
  CHECK(d.bytes().size() > 100000);
  CHECK(*document_text(d.bytes()) == same.dump());
}

TEST_CASE("a document stored as text reads as it is") {
  for (const std::string text : {R"({"a":1})", "{}", "[1,2]", "not even JSON"}) {
    CHECK_FALSE(is_compact(text));
    CHECK(document_text(text) == text);
  }
}

TEST_CASE("a compact document cut short, altered or with bytes after its end does not read") {
  CompactDoc d;
  write_every_kind(d);
  const std::string stored = d.str();
  // Cut anywhere, even between two fields: the end tag is missing.
  for (size_t n = 1; n < stored.size(); ++n) {
    CAPTURE(n);
    CHECK_FALSE(document_text(stored.substr(0, n)).has_value());
  }
  CHECK_FALSE(document_text(stored + '\0').has_value());
  CHECK_FALSE(document_text(stored + "x").has_value());

  // A field whose tag is unknown, a string longer than what is left, a size that never ends,
  // counts larger than what is left, an item that is not an object, an end within nothing, a
  // key and a text that are not UTF-8 (they threw), raw JSON that is not JSON (it rendered), or is
  // JSON up to a NUL byte (json stops reading there).
  const std::string marker(1, CompactDoc::marker), end(1, '\0');
  for (const std::string& bad :
       {marker + "\x7f\x01k" + end, marker + "\x01\x01\xfb\x01" + "a" + end,
        marker + "\x01\x01k\x01" + "\xc3" + end, marker + "\x08\x01k\x05" + ",12[]" + end,
        marker + "\x08\x01k\x04" + std::string("16\0x", 4) + end,
        marker + "\x01\x01k\x05" + "ab" + end,
        marker + "\x01\x01k\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01" + end,
        marker + "\x0a\x01k\x7f" + end, marker + "\x0b\x01k\x7f" + end,
        marker + "\x0c\x01k\x01" + end + end, marker + "\x02\x01k\x01\x02" + end, marker,
        marker + end + end}) {
    CAPTURE(bad);
    CHECK_FALSE(document_text(bad).has_value());
  }
}
