// Warm-up: a node of a Kafka group brings its own copy of a partition (the views and a snapshot
// of the routing state, in its data directory) up to the journal's end before it joins the
// group, so that whatever partition the group then gives it replays only what came after.
// Without it, a node that never had a partition (a new node, an empty volume) replayed the
// partition's whole journal while that partition decided nothing: the group had moved it
// already. Kafka Streams' warm-up replicas answer the same problem; librdkafka lets no
// assignor wait for a member to catch up, so the node catches up before it is a member.
#pragma once

#include <atomic>
#include <optional>

#include "actors/partition_processor.hpp"

namespace omniroute::actors {

struct WarmedUp {
  std::optional<journal_pos> snapshot;  // where the snapshot it started from was taken
  size_t entries = 0;                   // journal entries it replayed
  journal_pos end{0};                   // where the partition's snapshot stands now
  double seconds = 0;                   // how long it took
};

// Restores partition p's snapshot (if it can be used), replays the journal from there to its
// current end into the views, and writes a snapshot there (none when nothing was replayed).
// Reads the journal in steps of `step` positions and gives up ("stopped") between two once
// `stop` is set. Neither claims the partition nor writes to its journal: it may run while
// another node owns the partition, never while a host of this node's does.
result<WarmedUp> warm_up(events::EventLog& log, projections::Store& store, partition_id p,
                         const std::atomic<bool>& stop, int64_t step = 100000);

}  // namespace omniroute::actors
