#include "actors/warm_up.hpp"

#include <algorithm>

#include "actors/snapshot.hpp"
#include "events/time.hpp"

namespace omniroute::actors {

result<WarmedUp> warm_up(events::EventLog& log, projections::Store& store, partition_id p,
                         const std::atomic<bool>& stop, int64_t step) {
  const auto began = std::chrono::steady_clock::now();
  WarmedUp w;
  auto end = log.journal_end(p);
  if (!end) return end.error();
  // A snapshot at the journal's end already (a node restarted after a graceful stop, a standby
  // round with nothing new) is not decoded only to find nothing to replay.
  if (auto at = usable_snapshot_at(log, store, p); at && *at >= *end) {
    w.snapshot = w.end = *at;
    w.seconds = events::seconds_since(began);
    return w;
  }
  PartitionState state;
  std::string unused;  // restore_snapshot logs why
  const std::optional<SnapshotPoint> point = restore_snapshot(log, store, p, state, unused);
  events::KnownHistory known = point ? point->known : events::KnownHistory{};
  if (point) w.snapshot = known.upto;
  w.end = known.upto;
  if (*end <= known.upto) {  // an empty journal, or one the restored snapshot has all of
    w.seconds = events::seconds_since(began);
    return w;
  }
  while (known.upto < *end) {
    if (stop) return Status::error("stopped");
    const journal_pos to{std::min(end->value(), known.upto.value() + std::max<int64_t>(step, 1))};
    events::KnownHistory reached;
    if (Status s = replay(log, store, p, to, state, known, &w.entries, &reached); !s) return s;
    known = reached;
  }
  auto fingerprint = fingerprint_before(log, p, known.upto);
  if (!fingerprint) return fingerprint.error();
  const SnapshotPoint at{known, *fingerprint};
  const std::string body = encode_state(state);
  // As a host's snapshot: the views durable up to its position first (they are written
  // without RocksDB's log), so that a recovery from it finds what came before.
  if (Status s = store.flush(); !s) return s;
  if (Status s = write_snapshot_file(store.dir(), p, snapshot_header(p, at, body), body); !s)
    return s;
  w.end = known.upto;
  w.seconds = events::seconds_since(began);
  return w;
}

}  // namespace omniroute::actors
