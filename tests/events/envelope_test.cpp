#include <doctest/doctest.h>

#include <cctype>
#include <deque>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <limits>
#include <random>
#include <set>

#include "events/envelope.hpp"
#include "events/json_text.hpp"
#include "events/time.hpp"
#include "tests/support/support.hpp"

using namespace omniroute;
using namespace omniroute::events;
using omniroute::testing::event;

namespace {

// The refusal of `j`, or a failed check if it was accepted.
event_error refusal(const json& j) {
  auto r = parse_fact(j);
  REQUIRE_FALSE(r.has_value());
  return r.error();
}

json started() {
  return event("web-1", "conversation.started", "2026-11-20T10:00:00.000Z",
               {{"conversation", "c-1"}, {"customer", "u-9"}, {"channel", "wechat"}});
}

}  // namespace

TEST_CASE("RFC 3339 timestamps parse to UTC milliseconds and format back") {
  CHECK(parse_rfc3339_ms("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_rfc3339_ms("2026-11-20T10:00:00.123Z") == 1795168800123);
  CHECK(parse_rfc3339_ms("2026-11-20T18:00:00.123+08:00") == 1795168800123);
  CHECK(parse_rfc3339_ms("2026-11-20T05:30:00.123-04:30") == 1795168800123);
  CHECK(parse_rfc3339_ms("2024-02-29T00:00:00Z").has_value());
  // An offset that moves the years 0000 or 9999 out of them in UTC: no four-digit year to
  // write it back with (it was accepted, and formatted as "-001-12-31T21:30:05.000Z").
  CHECK_FALSE(parse_rfc3339_ms("0000-01-01T09:00:05+11:30").has_value());
  CHECK_FALSE(parse_rfc3339_ms("9999-12-31T23:00:00-01:00").has_value());
  CHECK(parse_rfc3339_ms("0000-01-01T09:00:05-11:30") == -62167145395000);
  CHECK(parse_rfc3339_ms("9999-12-31T23:00:00+01:00") == 253402293600000);
  CHECK(format_rfc3339_ms(1795168800123) == "2026-11-20T10:00:00.123Z");
  CHECK(format_rfc3339_ms(0) == "1970-01-01T00:00:00.000Z");
  CHECK(format_rfc3339_ms(-1) == "1969-12-31T23:59:59.999Z");
  CHECK(format_rfc3339_ms(951782400007) == "2000-02-29T00:00:00.007Z");
  CHECK(format_rfc3339_ms(253402300799999) == "9999-12-31T23:59:59.999Z");
  CHECK(format_rfc3339_ms(253402300800000) == "10000-01-01T00:00:00.000Z");
  // The extremes format without overflowing (they did, before the year's width).
  CHECK(format_rfc3339_ms(INT64_MIN).find("-292275055-05-16T16:47:04.192Z") != std::string::npos);
  CHECK(format_rfc3339_ms(INT64_MAX) == "292278994-08-17T07:12:55.807Z");
  for (int64_t ms : {int64_t{0}, int64_t{-62135596800000}, int64_t{1795168800123}, int64_t{4102444799001}})
    CHECK(parse_rfc3339_ms(format_rfc3339_ms(ms)) == ms);
  // Times of days in turn and far apart (the date is kept per day), against the C library's
  // calendar.
  std::mt19937_64 rng(11);
  for (int i = 0; i < 20000; ++i) {
    const int64_t ms = i % 3 == 0 ? static_cast<int64_t>(rng() % 253402300800000)
                                  : 1795168800000 + static_cast<int64_t>(rng() % (3 * 86400000)) - 86400000;
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm utc{};
    gmtime_r(&secs, &utc);
    char expected[80];  // room for any int the fields could hold
    std::snprintf(expected, sizeof expected, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(ms % 1000));
    REQUIRE(format_rfc3339_ms(ms) == expected);
  }
  CHECK(format_rfc3339_ms(253402300800000) == "10000-01-01T00:00:00.000Z");  // after a cached day
  CHECK(format_rfc3339_ms(1795168800123) == "2026-11-20T10:00:00.123Z");
  for (const char* bad : {"", "2026-11-20", "2026-11-20T10:00:00", "2026-13-01T00:00:00Z",
                          "2025-02-29T00:00:00Z", "2026-11-20T24:00:00Z", "2026-11-20T10:00:00.Z",
                          "2026-11-20T10:00:00Zjunk", "20261120T100000Z"})
    CHECK_MESSAGE(!parse_rfc3339_ms(bad).has_value(), bad);
}

TEST_CASE("a fact's journal text is its front-door text with the seq spliced in") {
  json j = started();
  j["data"]["meta"] = {{"tenant", "x"}, {"id", "y"}, {"s", ",\"tenant\":\"z\",\"time\":"}};
  j["id"] = "web-\"tenant\":-1";
  auto e = parse_fact(j);
  REQUIRE(e.has_value());
  const std::string canonical = to_text(*e);
  for (uint64_t seq : {uint64_t{0}, uint64_t{7}, uint64_t{123456789012}}) {
    e->seq = seq_no{seq};
    CHECK(to_text(*e, canonical) == to_text(*e));
  }
  // A fifth digit of year: the key is not where a 24-character time puts it, and is searched for.
  e->seq.reset();
  e->time_ms = 253402300800000;
  const std::string later = to_text(*e);
  e->seq = seq_no{42};
  CHECK(to_text(*e, later) == to_text(*e));
  e->cause = "because";  // not a front-door fact: written in full
  CHECK(to_text(*e, canonical) == to_text(*e));
  // The front door's text has room for the largest seq: the splice moves the text's tail
  // within it, and allocates nothing.
  e->cause.clear();
  e->seq.reset();
  std::string text = to_text(*e);
  const char* room = text.data();
  e->seq = seq_no{UINT64_MAX};
  const std::string spliced = to_text(*e, std::move(text));
  CHECK(spliced == to_text(*e));
  CHECK(spliced.data() == room);
}

TEST_CASE("a valid fact parses, keeps unknown data fields and round-trips canonically") {
  json j = started();
  j["data"]["extra"] = {{"from_sdk", "3.2"}};
  auto e = parse_fact(j);
  REQUIRE(e.has_value());
  CHECK(e->id == "web-1");
  CHECK(e->type == "conversation.started");
  CHECK(e->tenant == "acme");
  CHECK(e->time_ms == 1795168800000);
  CHECK(e->data["extra"]["from_sdk"] == "3.2");
  e->seq = seq_no{7};
  auto back = read_envelope_text(to_text(*e));
  REQUIRE(back.has_value());
  CHECK(back->seq->value() == 7);
  CHECK(to_text(*back) == to_text(*e));
  CHECK(to_json(*e)["time"] == "2026-11-20T10:00:00.000Z");
}

TEST_CASE("envelope errors name the field and the reason") {
  CHECK(refusal(json::array()).reason == "an event must be a JSON object");
  json j = started();
  j.erase("id");
  CHECK(refusal(j).field == "id");
  CHECK(refusal(j).reason == "missing");
  j = started();
  j["id"] = 42;
  CHECK(refusal(j).reason == "must be a string");
  j["id"] = std::string(129, 'x');
  CHECK(refusal(j).field == "id");
  j = started();
  j["type"] = "conversation.exploded";
  CHECK(refusal(j).field == "type");
  CHECK(refusal(j).reason == "unknown event type 'conversation.exploded'");
  j["type"] = "conversation.assigned";
  CHECK(refusal(j).reason == "'conversation.assigned' is a decision; only omniroute writes decisions");
  j = started();
  j["tenant"] = "acme corp";
  CHECK(refusal(j).field == "tenant");
  j = started();
  j["time"] = "yesterday";
  CHECK(refusal(j).field == "time");
  // Before the year 0000 in UTC: its text would not read back.
  j["time"] = "0000-01-01T09:00:05+11:30";
  CHECK(refusal(j).field == "time");
  j["time"] = "9000-01-01T00:00:00Z";  // timers from it could reach the year 10000
  CHECK(refusal(j).field == "time");
  CHECK(refusal(j).reason.rfind("must be before 9000-01-01T00:00:00Z", 0) == 0);
  CHECK(latest_fact_ms == *parse_rfc3339_ms("9000-01-01T00:00:00Z"));
  j["time"] = "8999-12-31T23:59:59.999Z";
  CHECK(parse_fact(j).has_value());
  j = started();
  j["data"] = "c-1";
  CHECK(refusal(j).field == "data");
  CHECK(refusal(j).id == "web-1");
}

TEST_CASE("data fields are checked for presence, type, range and choices") {
  json j = started();
  j["data"].erase("customer");
  CHECK(refusal(j).field == "data.customer");
  CHECK(refusal(j).reason == "missing");

  j = started();
  j["data"]["priority"] = "high";
  CHECK(refusal(j).field == "data.priority");
  CHECK(refusal(j).reason == "must be an integer");

  json status = event("s-1", "agent.status_changed", "2026-11-20T10:00:00Z",
                      {{"agent", "alice"}, {"status", "sleeping"}});
  CHECK(refusal(status).field == "data.status");
  CHECK(refusal(status).reason == "must be one of: available, away, offline");

  json login = event("l-1", "agent.logged_in", "2026-11-20T10:00:00Z",
                     {{"agent", "alice"}, {"skills", {{"billing", 9}}}});
  CHECK(refusal(login).field == "data.skills");
  login["data"]["skills"] = {{"billing", 3}};
  login["data"]["capacity"] = {{"chat", -1}};
  CHECK(refusal(login).field == "data.capacity");
  login["data"]["capacity"] = {{"chat", 3}};
  CHECK(parse_fact(login).has_value());

  json intent = event("i-1", "conversation.intent_detected", "2026-11-20T10:00:00Z",
                      {{"conversation", "c-1"}, {"intent", "refund"}, {"confidence", 1.5}});
  CHECK(refusal(intent).reason == "must be between 0 and 1");

  json transfer = event("t-1", "conversation.transfer_requested", "2026-11-20T10:00:00Z",
                        {{"conversation", "c-1"}});
  CHECK(refusal(transfer).reason == "one of to_queue or to_agent is required");
  // A null target is no target: refused at the door, not accepted and then refused by routing.
  transfer["data"]["to_queue"] = nullptr;
  CHECK(refusal(transfer).field == "data.to_queue");
  CHECK(refusal(transfer).reason == "one of to_queue or to_agent is required");
  transfer["data"]["to_agent"] = "a-1";
  CHECK(parse_fact(transfer).has_value());

  json queue = event("q-1", "queue.configured", "2026-11-20T10:00:00Z",
                     {{"queue", "billing"}, {"relax", {{{"after_s", 30}}}}});
  CHECK(refusal(queue).field == "data.relax");
  queue["data"]["relax"] = {{{"after_s", 30}, {"overflow_to", "general"}}};
  queue["data"]["strategy"] = "fastest";
  CHECK(refusal(queue).field == "data.strategy");
  queue["data"]["strategy"] = "round_robin";
  CHECK(parse_fact(queue).has_value());
}

TEST_CASE("of several problems in data, the first field of the type's schema is named") {
  // Data members are kept in the order of their names; the schema's order decides which
  // problem is named.
  json j = started();
  j["data"].erase("customer");        // the schema's second field
  j["data"]["channel"] = 7;           // its third, before customer by name
  j["data"]["attributes"] = "x";      // its last, first by name
  j["data"]["zzz"] = "unknown";       // past every field: kept, not checked
  j["data"][""] = 1;                  // before every field
  CHECK(refusal(j).field == "data.customer");
  CHECK(refusal(j).reason == "missing");
  j = started();
  j["data"]["channel"] = 7;
  j["data"]["attributes"] = "x";
  CHECK(refusal(j).field == "data.channel");
  j["data"]["channel"] = "web";
  CHECK(refusal(j).field == "data.attributes");
  j["data"]["attributes"] = json::object();
  j["data"]["zzz"] = "unknown";
  j["data"][""] = 1;
  CHECK(parse_fact(j).has_value());
  j["data"]["priority"] = nullptr;  // null is absent: an optional field may be null
  REQUIRE(parse_fact(j).has_value());
  CHECK_FALSE(parse_fact(j).value().data.contains("priority"));  // and is dropped
  CHECK(parse_fact(j).value().data.contains("zzz"));            // an unknown member is kept
  j["data"]["conversation"] = nullptr;
  CHECK(refusal(j).field == "data.conversation");
}

TEST_CASE("the error answer has the documented shape") {
  event_error e{"x", "data.agent", "missing", 3};
  CHECK(e.to_json() == json::parse(
                           R"({"error":"invalid_event","index":3,"id":"x","field":"data.agent","reason":"missing"})"));
}

namespace {

// A conversation.message of tenant acme with id `id`, at a fixed time and with no data yet.
Envelope message_with_id(std::string id) {
  Envelope e;
  e.id = std::move(id);
  e.type = "conversation.message";
  e.tenant = "acme";
  e.time_ms = 1795168800123;
  return e;
}

}  // namespace

TEST_CASE("to_text writes exactly what to_json dumps, escapes included") {
  Envelope e = message_with_id("a\"b\\c\n\x01");
  e.data = {{"text", "tab\there \"quoted\" \xe4\xbd\xa0\xe5\xa5\xbd"}, {"n", 1.5}, {"list", {1, 2}}};
  e.cause = "c\"1";
  e.seq = seq_no{42};
  CHECK(to_text(e) == to_json(e).dump());
  e.cause.clear();
  e.seq.reset();
  CHECK(to_text(e) == to_json(e).dump());
}

TEST_CASE("to_text: texts of any length one after another, each whole and nothing of the one before") {
  // The writer keeps its buffer from one text to the next, and grows it when a text is longer
  // than its guess (about 320 bytes) or than any before, keeping it up to 64 KiB: lengths up
  // and down across all three.
  Envelope e = message_with_id("e-1");
  for (size_t n : {0, 300, 5000, 10, 100000, 7, 330, 40000, 1}) {
    e.data = {{"text", std::string(n, 'x')}, {"list", json::array({std::string(n / 3, 'y'), n})}};
    CHECK(to_text(e) == to_json(e).dump());
    std::string kept = "before:";
    append_json(kept, e.data);
    CHECK(kept == "before:" + e.data.dump());
  }
}

TEST_CASE("append_json writes exactly what dump writes, for any value") {
  auto written = [](const json& v) {
    std::string out = "x";  // appends, keeping what was there
    append_json(out, v);
    return out.substr(1);
  };
  // Every byte below 0x80 in a string, each escape and each plain run next to one.
  std::string ascii;
  for (int c = 0; c < 0x80; ++c) ascii += static_cast<char>(c);
  const json edges = {
      {"ascii", ascii},
      {"utf8", "\xc2\xa2 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\x9f\xbf \xef\xbf\xbf \xf4\x8f\xbf\xbf"},
      {"ints", {0, -1, INT64_MIN, INT64_MAX, uint64_t{UINT64_MAX}, 10, -10}},
      {"doubles", {0.5, -0.0, 1e300, 1.0, 3.141592653589793, 1e-7, 0.1, 100.0, 5e-324,
                   -1.7976931348623157e308, 123456789.125, 1e21, 1e-5, std::nan(""),
                   std::numeric_limits<double>::infinity()}},
      {"empty", {{"object", json::object()}, {"array", json::array()}, {"string", ""}}},
      {"nested", {{{"a", {{"b", {nullptr, true, false}}}}}}},
  };
  CHECK(written(edges) == edges.dump());
  for (const json& v : edges) CHECK(written(v) == v.dump());

  // Random documents of every JSON type, with strings drawn from a small alphabet of escapes,
  // multi-byte characters and plain text.
  std::mt19937 rng(7);
  const std::vector<std::string> pieces = {"a", "Z9", " ", "\"", "\\", "\n", "\t", "\x01", "\x1f",
                                           "\x7f", "/", "\xe4\xbd\xa0", "\xf0\x9f\x98\x80", "\xc3\xa9"};
  std::function<json(int)> make = [&](int depth) -> json {
    switch (rng() % (depth > 3 ? 5 : 7)) {
      case 0: return nullptr;
      case 1: return rng() % 2 == 0;
      case 2: return static_cast<int64_t>(rng()) - static_cast<int64_t>(rng());
      case 3: return static_cast<double>(rng() % 100000) / 64.0;
      case 4: {
        std::string s;
        // Now and then long, so that plain runs cross 8- and 16-byte blocks.
        for (size_t n = rng() % (rng() % 4 == 0 ? 40 : 8); n > 0; --n) s += pieces[rng() % pieces.size()];
        return s;
      }
      case 5: {
        json a = json::array();
        for (size_t n = rng() % 4; n > 0; --n) a.push_back(make(depth + 1));
        return a;
      }
      default: {
        json o = json::object();
        for (size_t n = rng() % 4; n > 0; --n) o[pieces[rng() % pieces.size()] + "k"] = make(depth + 1);
        return o;
      }
    }
  };
  for (int i = 0; i < 2000; ++i) {
    const json v = make(0);
    REQUIRE(written(v) == v.dump());
  }
}

TEST_CASE("append_quoted escapes a byte at any place of a string of any length, as dump does") {
  // Strings of 0 to 40 plain bytes with one piece to escape or check at each place: the last
  // bytes of a string are read in blocks that overlap the ones before (events/envelope.cpp).
  // The plain bytes are a letter, or the lowest and highest plain bytes.
  for (const std::string& piece : std::vector<std::string>{"\"", "\\", "\n", std::string(1, '\x01'), std::string(1, '\0'),
                                                          "\x1f", "\x7f", "\xc3\xa9", "\xe4\xbd\xa0"}) {
    for (size_t n = 0; n <= 40; ++n) {
      for (size_t at = 0; at <= n; ++at) {
        std::string s;
        for (size_t k = 0; k < n; ++k) s += "p ~"[(k + at) % 3];
        s.insert(at, piece);
        CAPTURE(s);
        std::string out = "x";
        append_quoted(out, s);
        REQUIRE(out == "x" + json(s).dump());
      }
      std::string out;
      append_quoted(out, std::string(n, 'p'));
      REQUIRE(out == json(std::string(n, 'p')).dump());
    }
  }
}

TEST_CASE("append_quoted refuses text that is not UTF-8, as dump does") {
  for (const std::string bad : {"\x80", "a\xc0\xaf", "\xe0\x80\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                "\xe4\xbd", "tail \xf0\x9f\x98"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(json(bad).dump(), json::type_error);
    std::string out = "kept";
    CHECK_THROWS_AS(append_quoted(out, bad), json::type_error);
    CHECK(out == "kept");
  }
}

TEST_CASE("ObjectText writes what json dumps for the same object, in any order of fields") {
  const json attributes = {{"vip", true}, {"note", "line\nbreak \"q\" \xe4\xbd\xa0"}, {"n", {1, 2.5}}};
  const std::set<std::string> agents = {"bob", "alice\x01"};
  ObjectText o;
  o.text("state", "queued")
      .integer("priority", -3)
      .number("wait_s", 0.1)
      .number("whole", 3.0)
      .number("big", 1e300)
      .boolean("repeat", false)
      .null("action")
      .raw("attributes", attributes.dump())
      .texts("agents", agents)
      .texts("none", std::vector<std::string>{})
      .raw("nested", ObjectText().text("z", "last").text("a", "first").str())
      .text("A", "capital sorts first")
      .text("state", "assigned");  // added twice: the last one is kept
  json expected = {{"state", "assigned"},  {"priority", -3},       {"wait_s", 0.1},
                   {"whole", 3.0},         {"big", 1e300},         {"repeat", false},
                   {"action", nullptr},    {"attributes", attributes}, {"agents", agents},
                   {"none", json::array()}, {"nested", {{"z", "last"}, {"a", "first"}}},
                   {"A", "capital sorts first"}};
  CHECK(o.str() == expected.dump());
  CHECK(ObjectText().str() == json::object().dump());

  // Fields added in key order are written as they come; a step back or a repeat sorts them.
  const std::vector<std::vector<std::string>> orders = {
      {"Z", "a", "ab", "b", "\xc3\xa9"}, {"ab", "a"}, {"a", "b", "b"}, {"a", "c", "b"},
      {"b"}, {"\xc3\xa9", "z"}};
  for (const auto& order : orders) {
    ObjectText t;
    json same = json::object();
    int i = 0;
    for (const auto& key : order) {
      t.integer(key, ++i);
      same[key] = i;
    }
    CAPTURE(order);
    CHECK(t.str() == same.dump());
  }

  // In order and longer than the room an ObjectText starts with.
  {
    ObjectText t;
    json same = json::object();
    std::deque<std::string> keys;
    for (char k = 'a'; k <= 'z'; ++k) {
      const std::string& key = keys.emplace_back(1, k);
      t.text(key, std::string(40, k) + "\"\n");
      same[key] = std::string(40, k) + "\"\n";
    }
    CHECK(t.str() == same.dump());
  }

  // An object nested with object(), in order or not, and longer than its room or not, and
  // appended to text already there.
  for (const size_t size : {size_t{3}, size_t{600}}) {
    ObjectText in_order, out_of_order, outer;
    in_order.text("a", std::string(size, 'x')).integer("b", 2);
    out_of_order.integer("b", 2).text("a", std::string(size, 'x'));
    outer.object("one", in_order).object("two", out_of_order);
    const json inner = {{"a", std::string(size, 'x')}, {"b", 2}};
    CAPTURE(size);
    CHECK(outer.str() == json{{"one", inner}, {"two", inner}}.dump());
    std::string list = "[";
    in_order.append_to(list);
    list += ',';
    out_of_order.append_to(list);
    CHECK(list + "]" == json::array({inner, inner}).dump());
  }

  // Larger objects are sorted another way; the answer is the same.
  for (int fields : {31, 33, 80}) {
    ObjectText many;
    json same = json::object();
    std::deque<std::string> keys;  // an ObjectText keeps views of its keys
    for (int i = fields; i > 0; --i) {
      const std::string& key = keys.emplace_back("k" + std::to_string(i % 7) + "-" + std::to_string(i % 5));  // repeats
      many.integer(key, i);
      same[key] = i;
    }
    CAPTURE(fields);
    CHECK(many.str() == same.dump());
  }
}

TEST_CASE("numbers that feed arithmetic are bounded") {
  json j = started();
  j["data"]["priority"] = 99999999999;
  CHECK(refusal(j).reason == "must be an integer from -2147483648 to 2147483647");
  j["data"]["priority"] = -7;
  CHECK(parse_fact(j).has_value());
  json queue = event("q-1", "queue.configured", "2026-11-20T10:00:00Z", {{"queue", "billing"}, {"offer_timeout_s", 1e300}});
  CHECK(refusal(queue).field == "data.offer_timeout_s");
  queue["data"]["offer_timeout_s"] = 45;
  queue["data"]["sl_threshold_s"] = -1;
  CHECK(refusal(queue).field == "data.sl_threshold_s");
}

TEST_CASE("nesting depth is measured without parsing, strings excluded") {
  CHECK_FALSE(nesting_exceeds(R"({"a":[1,{"b":[]}]})", 4));  // object, array, object, array
  CHECK(nesting_exceeds(R"({"a":[1,{"b":[]}]})", 3));
  CHECK_FALSE(nesting_exceeds(R"({"a":"[[[[[[\"[[[["})", 1));
  CHECK(nesting_exceeds(std::string(100000, '['), max_json_depth));
  CHECK_FALSE(nesting_exceeds(std::string(64, '[') + std::string(64, ']')));
}

TEST_CASE("kind_of tells every fact and decision type apart from any other name") {
  const std::vector<std::string> facts = {
      "queue.configured", "agent.logged_in", "agent.status_changed", "agent.logged_out",
      "agent.heartbeat", "conversation.started", "conversation.message",
      "conversation.intent_detected", "conversation.handoff_requested",
      "conversation.priority_changed", "conversation.reopened", "clock.tick",
      "conversation.transfer_requested", "offer.accepted", "offer.declined",
      "conversation.ended", "conversation.wrapped_up", "contact.recorded",
      "schedule.published", "customer.profile_updated", "policy.published",
      "arbitration.outcome"};
  for (const auto& t : facts) CHECK_MESSAGE(kind_of(t) == event_kind::fact, t);
  for (const auto& t : decision_types()) CHECK_MESSAGE(kind_of(t) == event_kind::decision, t);
  // Near misses of every known name: cut short, one byte more, one byte changed, other case.
  std::vector<std::string> known = facts;
  known.insert(known.end(), decision_types().begin(), decision_types().end());
  for (const auto& t : known) {
    CHECK(kind_of(t.substr(0, t.size() - 1)) == event_kind::unknown);
    CHECK(kind_of(t + "x") == event_kind::unknown);
    CHECK(kind_of(" " + t) == event_kind::unknown);
    std::string changed = t;
    changed[changed.size() / 2] = '#';
    CHECK(kind_of(changed) == event_kind::unknown);
    std::string upper = t;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    CHECK(kind_of(upper) == event_kind::unknown);
  }
  for (const char* t : {"", ".", "conversation", "conversation.", "x"})
    CHECK(kind_of(t) == event_kind::unknown);
  CHECK(kind_of(std::string_view("conversation.started\0", 21)) == event_kind::unknown);
}
