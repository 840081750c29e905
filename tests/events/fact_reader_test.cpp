#include <doctest/doctest.h>

#include <random>

#include "events/envelope.hpp"
#include "events/fact_reader.hpp"

using namespace omniroute::events;
using omniroute::seq_no;

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

// The same values of the same JSON types all the way down (json's == takes 5 and 5u, or 1
// and 1.0, as equal; json::parse makes a number without a minus sign unsigned).
bool same_types(const json& a, const json& b) {
  if (a.type() != b.type() || a.size() != b.size()) return false;
  if (a.is_object()) {
    for (auto i = a.begin(), k = b.begin(); i != a.end(); ++i, ++k)
      if (i.key() != k.key() || !same_types(*i, *k)) return false;
    return true;
  }
  if (a.is_array()) {
    for (size_t i = 0; i < a.size(); ++i)
      if (!same_types(a[i], b[i])) return false;
    return true;
  }
  return a == b;
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
  REQUIRE(fast->texts.size() == fast->events.size());
  for (size_t i = 0; i < fast->events.size(); ++i) {
    const Envelope &a = fast->events[i], &b = general->events[i];
    CHECK(a.id == b.id);
    CHECK(a.type == b.type);
    CHECK(a.tenant == b.tenant);
    CHECK(a.time_ms == b.time_ms);
    CHECK(a.data == b.data);
    CHECK(same_types(a.data, b.data));
    CHECK(to_text(a) == to_text(b));
    CHECK(fast->texts[i] == to_text(b));  // the text the ingest append takes
  }
}

const std::string started =
    R"({"id":"web-1","type":"conversation.started","tenant":"acme","time":"2026-11-20T10:00:00.000Z",)"
    R"("data":{"conversation":"c-1","customer":"u-9","channel":"wechat","queue":"billing",)"
    R"("attributes":{"vip":true,"tier":null,"spend":[1,-2,3.5,1e3,18446744073709551615],)"
    R"("note":"line\nbreak \"q\" \u00e9\u4f60 \ud83d\ude00 \u0000 \/","nested":{"a":{"b":[{"c":[]}]}},)"
    R"("zero":0,"float_zero":-0.0,"big":9223372036854775808,"small":-9223372036854775808,)"
    R"("exp":1E2,"tiny":5e-324,"flag":false},"priority":-3}})";
// Optional fields sent as null (absent: dropped), and an unknown member null (kept).
const std::string with_nulls =
    R"({"id":"web-3","type":"conversation.started","tenant":"acme","time":"2026-11-20T10:00:00Z",)"
    R"("data":{"conversation":"c-2","customer":"u-9","channel":"web","queue":null,"priority":null,)"
    R"("intent":null,"language":null,"bot":null,"attributes":null,"extra":null}})";
const std::string message =
    R"({"data":{"conversation":"c-1","from":"customer","text":"hi","text":"my card was charged twice"},)"
    R"("time":"2026-11-20T18:00:01+08:00","tenant":"acme","type":"conversation.message","id":"web-2"})";

// `text` with one to three bytes changed, inserted or erased at random: most such texts become
// bad JSON or bad events, some stay valid in another way (another id, another number).
std::string damaged(std::string text, std::mt19937& rng) {
  const std::string alphabet = "{}[],:\"\\ 0123456789.-+eE truefalsnudcab\n\x01\xc3\xa9";
  const int edits = 1 + static_cast<int>(rng() % 3);
  for (int k = 0; k < edits; ++k) {
    const size_t at = rng() % text.size();
    const char c = alphabet[rng() % alphabet.size()];
    switch (rng() % 3) {
      case 0: text[at] = c; break;
      case 1: text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), c); break;
      default: text.erase(at, 1);
    }
  }
  return text;
}

}  // namespace

TEST_CASE("the fast path reads plainly valid events as parse_fact does") {
  for (const std::string& body :
       {started, message, with_nulls, "[" + started + "]", "[" + started + "," + message + "]",
        " \n[ " + message + " ,\t" + started + " ] ", "[" + with_nulls + "," + message + "]"}) {
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
  auto nulls = read_valid_facts(with_nulls, 1000);
  REQUIRE(nulls);
  CHECK(nulls->events[0].data ==
        json{{"conversation", "c-2"}, {"customer", "u-9"}, {"channel", "web"}, {"extra", nullptr}});
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
      // Strings json::parse refuses: lone surrogates, bytes that are not UTF-8, a control
      // character unescaped.
      replaced(started, R"("vip":true)", R"("vip":"\udc00")"),
      replaced(started, R"("vip":true)", R"("vip":"\ud800")"),
      replaced(started, R"("vip":true)", R"("vip":"\ud800x")"),
      replaced(started, R"("vip":true)", "\"vip\":\"\xff\""),
      replaced(started, R"("vip":true)", "\"vip\":\"a\x01\""),
      replaced(started, R"("id":"web-1")", "\"id\":\"web\xc3\""),
      // Numbers simdjson cannot hold as json::parse does (a float from an integer too large, or
      // too large for a double): left to the general path, which decides.
      replaced(started, R"("vip":true)", R"("vip":18446744073709551616)"),
      replaced(started, R"("vip":true)", R"("vip":1e400)"),
      // -0, which json::parse makes a signed integer and simdjson reads as it reads 0.
      replaced(started, R"("vip":true)", R"("vip":-0)"),
      replaced(started, R"("vip":true)", R"("vip":[-0])"),
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
  auto objects = [](size_t n) {  // n objects, one inside the other
    std::string text;
    for (size_t i = 0; i < n; ++i) text += R"({"a":)";
    return text + "1" + std::string(n, '}');
  };
  CHECK(read_valid_facts(replaced(started, R"("priority":-3)", R"("priority":-3,"x":)" + objects(max_json_depth - 2)), 1000));
  CHECK_FALSE(read_valid_facts(replaced(started, R"("priority":-3)", R"("priority":-3,"x":)" + objects(max_json_depth - 1)), 1000));
}

TEST_CASE("the fast path reads a body larger than its parser keeps, and smaller ones after it") {
  std::string large = "[";
  for (int i = 0; i < 3000; ++i) large += (i ? "," : "") + started;  // about 1.3 MiB
  large += "]";
  for (int round = 0; round < 2; ++round) {
    auto batch = read_valid_facts(large, 5000);
    REQUIRE(batch);
    CHECK(batch->events.size() == 3000);
    CHECK(batch->events.back().data["attributes"]["spend"][4] == 18446744073709551615u);
    check_agrees("[" + message + "]");
    CHECK(read_valid_facts(message, 1)->events.at(0).id == "web-2");
  }
}

TEST_CASE("what the fast path takes from damaged bodies, the general path takes alike") {
  // Bytes of valid bodies changed at random: most become bad JSON or bad events, some stay
  // valid in another way (another id, another number), and whatever the fast path still
  // takes must read exactly as the general path reads it.
  std::mt19937 rng(7);
  const std::string base = "[" + started + "," + message + "]";
  size_t taken = 0;
  for (int round = 0; round < 4000; ++round) {
    const std::string body = damaged(base, rng);
    if (read_valid_facts(body, 1000)) ++taken;
    check_agrees(body);
  }
  CHECK(taken > 0);  // the check above ran on some bodies the fast path took
}

namespace {

// Whatever read_plain_envelope takes, the general way reads the same envelope; what it leaves,
// the general way still reads (or refuses) on its own.
void check_envelope_agrees(const std::string& text) {
  CAPTURE(text);
  auto fast = read_plain_envelope(text);
  auto general = read_envelope_text_by_dom(text);
  if (!fast) return;
  REQUIRE(general.has_value());
  CHECK(fast->id == general->id);
  CHECK(fast->type == general->type);
  CHECK(fast->tenant == general->tenant);
  CHECK(fast->time_ms == general->time_ms);
  CHECK(fast->seq == general->seq);
  CHECK(fast->cause == general->cause);
  CHECK(same_types(fast->data, general->data));
  CHECK(read_envelope_text(text).has_value());
}

}  // namespace

TEST_CASE("the journal's envelopes read by simdjson are the envelopes json::parse reads") {
  // As the journal holds them: a fact with its seq, a decision with its cause.
  auto fact = read_valid_facts(message, 1000);
  REQUIRE(fact);
  Envelope stored = fact->events[0];
  stored.seq = seq_no{41};
  const std::string fact_text = to_text(stored);
  Envelope decision("d-42", "conversation.offered", "acme", 1795168800000,
                    json{{"conversation", "c-1"}, {"agent", "alice"}, {"score", -2.5},
                         {"journey", {{"recent", json::array()}, {"mean_csat", nullptr}}}},
                    seq_no{42}, "web-1");
  const std::string decision_text = to_text(decision);
  for (const std::string& text : {fact_text, decision_text}) {
    auto fast = read_plain_envelope(text);
    REQUIRE(fast);
    check_envelope_agrees(text);
  }
  CHECK(read_plain_envelope(decision_text)->cause == "web-1");
  CHECK(read_plain_envelope(decision_text)->seq == seq_no{42});

  auto replaced = [](std::string body, const std::string& from, const std::string& to) {
    body.replace(body.find(from), from.size(), to);
    return body;
  };
  // Left to the general way: a member twice, of the wrong type or missing, a number it reads
  // otherwise; some of these it reads (another seq, no cause), the others it refuses.
  const std::vector<std::string> left = {
      "", "[]", "42", decision_text + "x",
      replaced(decision_text, R"("id":"d-42")", R"("id":"d-42","id":"d-43")"),
      replaced(decision_text, R"("id":"d-42")", R"("id":42)"),
      replaced(decision_text, R"("id":"d-42",)", ""),
      replaced(decision_text, R"("cause":"web-1")", R"("cause":1)"),
      replaced(decision_text, R"("seq":42)", R"("seq":"42")"),
      replaced(decision_text, R"("time":"2026-11-20T10:00:00.000Z")", R"("time":"later")"),
      replaced(decision_text, R"("score":-2.5)", R"("score":-0)"),
      replaced(decision_text, R"("score":-2.5)", R"("score":1e400)"),
      replaced(decision_text, R"("score":-2.5)", "\"score\":\"\xff\""),
  };
  for (const auto& text : left) {
    CAPTURE(text);
    CHECK_FALSE(read_plain_envelope(text).has_value());
    check_envelope_agrees(text);
  }
  // Numbers the general way reads as no seq: so does the fast one.
  for (const std::string seq : {"-1", "4.5", "1e2"}) {
    const std::string text = replaced(decision_text, R"("seq":42)", R"("seq":)" + seq);
    REQUIRE(read_plain_envelope(text));
    CHECK_FALSE(read_plain_envelope(text)->seq.has_value());
    check_envelope_agrees(text);
  }
  const std::string big = replaced(decision_text, R"("seq":42)", R"("seq":18446744073709551615)");
  CHECK(read_plain_envelope(big)->seq == seq_no{18446744073709551615u});
  check_envelope_agrees(big);

  // Bytes changed at random: whatever the fast way still takes reads as the general way reads it.
  std::mt19937 rng(11);
  size_t taken = 0;
  for (int round = 0; round < 4000; ++round) {
    const std::string text = damaged(round % 2 ? decision_text : fact_text, rng);
    if (read_plain_envelope(text)) ++taken;
    check_envelope_agrees(text);
  }
  CHECK(taken > 0);
}
