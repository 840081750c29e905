#include <doctest/doctest.h>

#include <random>

#include "events/envelope.hpp"
#include "events/fact_reader.hpp"

using namespace omniroute::events;

namespace {

// What the general path makes of a body: the envelopes when it accepts every event, else
// nothing (nesting, JSON, batch shape and every event's validation, as the front door checks).
std::optional<FactBatch> general_path(const std::string& body, size_t max_events) {
  if (nesting_exceeds(body)) return std::nullopt;
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  FactBatch out;
  out.array = j.is_array();
  if (out.array && (j.empty() || j.size() > max_events)) return std::nullopt;
  const size_t n = out.array ? j.size() : 1;
  for (size_t i = 0; i < n; ++i) {
    auto e = parse_fact(out.array ? j[i] : j);
    if (!e) return std::nullopt;
    out.events.push_back(std::move(*e));
  }
  return out;
}

// Whatever the fast path takes, the general path takes too, and reads the same.
void check_agrees(const std::string& body, size_t max_events = 1000) {
  CAPTURE(body);
  auto fast = read_valid_facts(body, max_events);
  if (!fast) return;
  auto general = general_path(body, max_events);
  REQUIRE(general.has_value());
  CHECK(fast->array == general->array);
  REQUIRE(fast->events.size() == general->events.size());
  for (size_t i = 0; i < fast->events.size(); ++i) {
    const Envelope &a = fast->events[i], &b = general->events[i];
    CHECK(a.id == b.id);
    CHECK(a.type == b.type);
    CHECK(a.tenant == b.tenant);
    CHECK(a.time_ms == b.time_ms);
    CHECK(a.data == b.data);
    CHECK(to_text(a) == to_text(b));
  }
}

const std::string started =
    R"({"id":"web-1","type":"conversation.started","tenant":"acme","time":"2026-11-20T10:00:00.000Z",)"
    R"("data":{"conversation":"c-1","customer":"u-9","channel":"wechat","queue":"billing",)"
    R"("attributes":{"vip":true,"tier":null,"spend":[1,-2,3.5,1e3,18446744073709551615],)"
    R"("note":"line\nbreak \"q\" \u00e9\u4f60","nested":{"a":{"b":[{"c":[]}]}}},"priority":-3}})";
const std::string message =
    R"({"data":{"conversation":"c-1","from":"customer","text":"hi","text":"my card was charged twice"},)"
    R"("time":"2026-11-20T18:00:01+08:00","tenant":"acme","type":"conversation.message","id":"web-2"})";

}  // namespace

TEST_CASE("the fast path reads plainly valid events as parse_fact does") {
  for (const std::string& body :
       {started, message, "[" + started + "]", "[" + started + "," + message + "]",
        " \n[ " + message + " ,\t" + started + " ] "}) {
    CAPTURE(body);
    CHECK(read_valid_facts(body, 1000).has_value());  // taken, not left to the general path
    check_agrees(body);
  }
  auto batch = read_valid_facts("[" + started + "," + message + "]", 1000);
  REQUIRE(batch);
  CHECK(batch->array);
  CHECK(batch->events[1].data["text"] == "my card was charged twice");  // a repeated key: the last
  CHECK(batch->events[1].time_ms == 1795168801000);
  CHECK_FALSE(read_valid_facts(started, 1000)->array);
}

TEST_CASE("the fast path leaves everything unusual to the general path") {
  auto replaced = [](std::string body, const std::string& from, const std::string& to) {
    body.replace(body.find(from), from.size(), to);
    return body;
  };
  const std::vector<std::string> left = {
      "", "{", "[]", "[" + started + ",]", started + " x", "42", "\"event\"", "null", "[42]",
      "[[" + started + "]]",
      replaced(started, R"("id":"web-1")", R"("id":7)"),
      replaced(started, R"("id":"web-1",)", ""),
      replaced(started, R"("id":"web-1")", R"("id":"")"),
      replaced(started, R"("id":"web-1")", R"("id":"web-1","id":"web-2")"),
      replaced(started, R"("id":"web-1")", R"("id":"web-1","seq":3)"),
      replaced(started, R"("tenant":"acme")", R"("tenant":"a cme")"),
      replaced(started, R"("time":"2026-11-20T10:00:00.000Z")", R"("time":"yesterday")"),
      replaced(started, R"("type":"conversation.started")", R"("type":"conversation.assigned")"),
      replaced(started, R"("type":"conversation.started")", R"("type":"no.such")"),
      replaced(started, R"("customer":"u-9",)", ""),
      replaced(started, R"("priority":-3)", R"("priority":"high")"),
      replaced(started, R"("data":{)", R"("data":[{)") + "]",
      R"({"id":"t-1","type":"conversation.transfer_requested","tenant":"acme",)"
      R"("time":"2026-11-20T10:00:00Z","data":{"conversation":"c-1"}})",
  };
  for (const auto& body : left) {
    CAPTURE(body);
    CHECK_FALSE(read_valid_facts(body, 1000).has_value());
  }
  // Too many events for a batch, or nested too deep.
  CHECK_FALSE(read_valid_facts("[" + started + "," + message + "]", 1).has_value());
  CHECK(read_valid_facts("[" + started + "," + message + "]", 2).has_value());
  std::string deep = std::string(max_json_depth - 2, '[') + std::string(max_json_depth - 2, ']');
  CHECK(read_valid_facts(replaced(started, R"("priority":-3)", R"("priority":-3,"x":)" + deep), 1000));
  deep = std::string(max_json_depth - 1, '[') + std::string(max_json_depth - 1, ']');
  CHECK_FALSE(read_valid_facts(replaced(started, R"("priority":-3)", R"("priority":-3,"x":)" + deep), 1000));
}

TEST_CASE("what the fast path takes from damaged bodies, the general path takes alike") {
  // Bytes of valid bodies changed at random: most become bad JSON or bad events, some stay
  // valid in another way (another id, another number), and whatever the fast path still
  // takes must read exactly as the general path reads it.
  std::mt19937 rng(7);
  const std::string base = "[" + started + "," + message + "]";
  const std::string alphabet = "{}[],:\"\\ 0123456789.-+eE truefalsn\n\x01\xc3\xa9";
  size_t taken = 0;
  for (int round = 0; round < 4000; ++round) {
    std::string body = base;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits; ++k) {
      const size_t at = rng() % body.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0: body[at] = c; break;
        case 1: body.insert(body.begin() + static_cast<std::ptrdiff_t>(at), c); break;
        default: body.erase(at, 1);
      }
    }
    if (read_valid_facts(body, 1000)) ++taken;
    check_agrees(body);
  }
  CHECK(taken > 0);  // the check above ran on some bodies the fast path took
}
