// The event envelope of the public contract (shared/EVENTS.md): parsing, validation and the
// canonical JSON form written to the ingest log and the journal.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>


#include "events/json.hpp"
#include "events/types.hpp"

namespace omniroute::events {

// Most bytes an id (idempotency key or entity id) may have.
constexpr size_t max_id_bytes = 128;
// Most bytes a tenant name may have.
constexpr size_t max_tenant_bytes = 64;

struct Envelope {
  std::string id;      // the sender's idempotency key (facts) or omniroute's (decisions)
  std::string type;    // e.g. "conversation.started"
  std::string tenant;  // routing domain and partition key
  int64_t time_ms = 0; // when it happened at the source, ms since the epoch
  json data = json::object();
  std::optional<seq_no> seq;  // set by the journal
  std::string cause;          // on decisions: the id of the fact that led to it

  Envelope() = default;
  Envelope(std::string id, std::string type, std::string tenant, int64_t time_ms, json data,
           std::optional<seq_no> seq = std::nullopt, std::string cause = {})
      : id(std::move(id)), type(std::move(type)), tenant(std::move(tenant)), time_ms(time_ms),
        data(std::move(data)), seq(seq), cause(std::move(cause)) {}
  Envelope(const Envelope&) = default;
  Envelope(Envelope&&) noexcept = default;
  Envelope& operator=(const Envelope&) = default;
  Envelope& operator=(Envelope&&) noexcept = default;
  ~Envelope() { dismantle(data); }  // every fact and decision passes here: see dismantle()
};

// Why an event was refused. `field` is a dotted path ("data.agent", "time"); `index` is the
// position in a batch when the event came in one.
struct event_error {
  std::string id;
  std::string field;
  std::string reason;
  std::optional<size_t> index;

  // {"error":"invalid_event","index":3,"id":"x","field":"data.agent","reason":"missing"}
  json to_json() const;
};

enum class event_kind { fact, decision, unknown };

// Every decision type omniroute writes (the names live as long as the program).
const std::vector<std::string>& decision_types();

// Whether `type` is a fact (sent in), a decision (written by omniroute) or neither.
event_kind kind_of(std::string_view type);

// A fact's time is before 9000-01-01T00:00:00Z: the times worked out from it (an offer's expiry,
// a timer, a window) must still have a four-digit year, which is all RFC 3339 writes. (A fact
// of 9999-12-31T23:59:50Z had an offer expire in the year 10000, whose text did not read back,
// and time out at once.)
constexpr int64_t latest_fact_ms = 221845392000000;
// Validates an incoming fact against the contract: envelope fields, a known fact type, and
// the type's data fields (presence, JSON type, ranges, enumerations). A field sent as null is
// absent, and dropped from the fact's data; unknown data fields are kept as sent. Decision
// types are refused: only omniroute writes them.
result<Envelope, event_error> parse_fact(const json& j);
// The same, moving `data` out of `j` instead of copying it; the other fields of j stay.
result<Envelope, event_error> parse_fact(json&& j);
// For readers that take a faster path than parse_fact and leave anything unusual to it: true
// when a fact whose id, type, tenant and data were read some other way, and whose time is
// `time` as sent, is one parse_fact would accept; then sets its time_ms, and drops its null
// fields, as parse_fact would.
bool accept_fact(Envelope& e, std::string_view time);

// Reads an envelope that omniroute itself wrote (canonical form); checks only its shape.
// Plainly well-formed texts are read by simdjson (read_plain_envelope), the rest by
// read_envelope_text_by_dom: the same envelope either way.
result<Envelope, event_error> read_envelope_text(std::string_view text);
result<Envelope, event_error> read_envelope_text_by_dom(std::string_view text);

// The canonical JSON form: {"cause"?, "data", "id", "seq"?, "tenant", "time", "type"}, with
// time formatted as RFC 3339 UTC milliseconds.
json to_json(const Envelope& e);
std::string to_text(const Envelope& e);
// Appends `s` as a JSON string, escaped as nlohmann's dump escapes it (and, like dump, throws
// json::type_error when `s` is not UTF-8).
void append_quoted(std::string& out, std::string_view s);
// How many bytes at the start of `s` are UTF-8 as json takes it (s.size() when all are).
size_t utf8_prefix(std::string_view s);
// True when append_quoted writes `s` as it is, between quotes (nothing to escape).
bool quotes_as_is(std::string_view s);
// Appends v.dump(): the same bytes, without nlohmann's serializer and its byte-by-byte UTF-8
// state machine (the journal and view texts of every event pass through here).
void append_json(std::string& out, const json& v);
// Numbers as dump writes them, into `out` (room for max_number_bytes); each returns the length.
constexpr size_t max_number_bytes = 64;
size_t write_integer(int64_t n, char* out);
size_t write_integer(uint64_t n, char* out);
size_t write_double(double x, char* out);
// Appends n in decimal, as dump writes it.
void append_integer(std::string& out, int64_t n);
// Appends x as dump writes it (the shortest text that reads back as x, "null" if not finite).
void append_double(std::string& out, double x);
// to_text(e) for a fact e with a seq and no cause, given `canonical` = to_text of e without its
// seq (the fact as the front door wrote it): the seq spliced into it, in place, without
// serializing `data` again. to_text(e) of a fact without a seq leaves room for that splice.
std::string to_text(const Envelope& e, std::string canonical);

// Why a text is not JSON json::parse reads: what nlohmann says, and the byte it stopped at.
struct json_syntax_error {
  std::string reason;
  size_t byte = 0;
};
// json::parse(text), with every way it refuses a text answered as an error: bad syntax (its
// parse_error), and a number past a double's range (`1e999`: an out_of_range exception, without
// a byte, which a DOM parse throws whatever it was asked; found by fuzzing, a 500 before).
result<json, json_syntax_error> parse_json(std::string_view text);

// Deepest nesting of arrays and objects accepted in a request body (a batch array, the
// envelope and its data take three levels). Deeper documents are refused before parsing:
// nlohmann's serializer recurses, and a deep enough document would overflow the stack.
constexpr size_t max_json_depth = 64;

// True when the JSON text nests arrays/objects deeper than `limit` (strings are skipped, so
// brackets inside them do not count). Linear, no allocation; does not validate the JSON.
bool nesting_exceeds(std::string_view text, size_t limit = max_json_depth);

// True when `s` is usable as an id: 1..max_id_bytes bytes, no control characters.
bool valid_id(std::string_view s);
// True when `s` is usable as a tenant: 1..64 of [A-Za-z0-9._-]. `tenant_rule` says so in
// words, for the errors that refuse one.
bool valid_tenant(std::string_view s);
inline constexpr const char* tenant_rule = "1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'";

}  // namespace omniroute::events
