// The front door's write path, shared by every way events come in (HTTP, CSV import): validated
// envelopes are checked against the idempotency keys already journaled and earlier in the same
// call, and the new ones are appended to their partitions' ingest logs.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "events/envelope.hpp"
#include "events/event_log.hpp"
#include "events/type_counts.hpp"
#include "projections/store.hpp"

namespace omniroute::adapters {

struct IngestResult {
  bool duplicate = false;
  std::optional<seq_no> seq;           // duplicates of a journaled event: its seq
  partition_id partition{0};           // accepted: where it went
  std::optional<ingest_offset> offset; // accepted: its ingest offset
};

// Why ingest could not take the events.
struct IngestError {
  std::string message;
  // Nothing was appended: a partition's backlog stayed full for the whole wait.
  bool backlog_full = false;
  // Nothing was appended: the event at this index is larger than the log takes
  // (EventLog::max_payload_bytes); `message` says by how much.
  std::optional<size_t> too_large;
};

// Appends the events that are not duplicates, one append per partition, and answers per event
// in the order given. On an append failure some partitions may already hold their events;
// sending the same events again is safe, since their ids are idempotency keys.
//
// With `room_wait`, it first waits up to that long for room in the backlog of each partition it
// appends to (EventLog::await_room), and appends nothing if one has none by then: a writer
// beside a reader that cannot keep up is slowed, or refused. Without, it does not wait (an
// import, whose reader runs after it). `waited`, if given, receives how long it waited.
//
// The accepted envelopes' data and type are handed to the log with them
// (EventLog::append_validated), so their `data` is left null and their `type` empty; id, tenant
// and time stay for the caller's answer. `counts`, if given, receives each event's type with
// "accepted" or "duplicate", before the type moves; they are what the call did only when it
// succeeds. `texts`, if given, holds each envelope's canonical text (events::to_text), already
// written (the front door's fast path writes it as it reads each event); the accepted ones are
// moved out.
result<std::vector<IngestResult>, IngestError> ingest(
    events::EventLog& log, const projections::Store& store, std::vector<events::Envelope>& envs,
    std::optional<std::chrono::milliseconds> room_wait = std::nullopt,
    std::chrono::steady_clock::duration* waited = nullptr,
    std::vector<std::string>* texts = nullptr, events::TypeCounts* counts = nullptr);

}  // namespace omniroute::adapters
