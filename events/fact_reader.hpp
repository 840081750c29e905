// The front door's fast path: a request body of facts (one event object, or an array of
// them) parsed and validated by simdjson (several times faster than nlohmann's parser, SAX
// or DOM) and read straight into envelopes. Only the `data` of each event becomes a json tree.
//
// It takes only what is plainly well-formed and valid: every event an object of exactly the
// fields id, type, tenant, time (strings) and data (an object), each once, that parse_fact
// accepts (events::accept_fact), nothing nested deeper than max_json_depth. Anything else
// (bad JSON, a bad event, an empty or oversized batch) gives nothing, and the caller takes the
// general path, which finds and names what is wrong. So the fast path never decides what is
// refused, or how: for what it takes it reads the same envelopes parse_fact would.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/envelope.hpp"

namespace omniroute::events {

struct FactBatch {
  std::vector<Envelope> events;
  // Each event's canonical text (to_text), for the ingest append, written as soon as the event
  // is read, while its data is still in the cache. Written after the whole batch was read, it
  // took 3.0-4.6% of the benchmark's CPU samples; written as read, 2.1-2.5%.
  std::vector<std::string> texts;
  bool array = false;  // the body was an array (a batch), not one event object
};

// The facts in `body`, or nothing when the body is not plainly valid (see above) or holds
// more than `max_events` events.
std::optional<FactBatch> read_valid_facts(std::string_view body, size_t max_events);

// An envelope of the log, as read_envelope_text reads it, by simdjson: replay reads every
// entry of the journal so, and the parse was 40% of a restart's CPU. Nothing when the text is
// not plainly an envelope (a member twice or of the wrong type, data nested deeper than
// max_json_depth, a number json::parse would read otherwise): the caller reads it the general
// way, which names what is wrong.
std::optional<Envelope> read_plain_envelope(std::string_view text);

}  // namespace omniroute::events
