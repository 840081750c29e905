// The front door's write path, shared by every way events come in (HTTP, CSV import): validated
// envelopes are checked against the idempotency keys already journaled and earlier in the same
// call, and the new ones are appended to their partitions' ingest logs.
#pragma once

#include <optional>
#include <vector>

#include "events/envelope.hpp"
#include "events/event_log.hpp"
#include "projections/store.hpp"

namespace omniroute::adapters {

struct IngestResult {
  bool duplicate = false;
  std::optional<seq_no> seq;           // duplicates of a journaled event: its seq
  partition_id partition{0};           // accepted: where it went
  std::optional<ingest_offset> offset; // accepted: its ingest offset
};

// Appends the events that are not duplicates, one append per partition, and answers per event
// in the order given. On an append failure some partitions may already hold their events;
// sending the same events again is safe, since their ids are idempotency keys.
//
// The accepted envelopes' data is handed to the log with them (EventLog::append_validated), so
// their `data` is left null; id, type, tenant and time stay for the caller's answer.
result<std::vector<IngestResult>> ingest(events::EventLog& log, const projections::Store& store,
                                         std::vector<events::Envelope>& envs);

}  // namespace omniroute::adapters
