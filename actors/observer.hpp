// What the processor reports as it works; ops/metrics.hpp turns it into Prometheus metrics.
// Every method may be called from any partition host thread.
#pragma once

#include <cstddef>
#include <map>
#include <string>

#include "actors/routing.hpp"
#include "events/types.hpp"

namespace omniroute::actors {

class ProcessorObserver {
 public:
  virtual ~ProcessorObserver() = default;
  // `count` facts of a type read from the ingest log with a result: "accepted", "duplicate" or
  // "refused" (reported once per type and result for each batch).
  virtual void on_facts(const std::string& /*type*/, const char* /*result*/, size_t /*count*/) {}
  // Records and entries appended to the journal by one batch.
  virtual void on_journal_append(size_t /*records*/, size_t /*entries*/) {}
  // Seconds from a fact's ingest append to the journal append of its decisions.
  virtual void on_decision_latency(double /*seconds*/) {}
  // Ingest records of a partition not yet processed.
  virtual void on_lag(partition_id, int64_t /*records*/) {}
  // A tenant's live state after a batch.
  virtual void on_tenant(const std::string& /*tenant*/,
                         const std::map<std::string, routing::QueueStats>& /*queues*/,
                         const std::map<std::string, size_t>& /*agents_by_status*/) {}
  // A partition recovered its state: the seconds it took, the journal entries it replayed, and
  // whether it started from a snapshot.
  virtual void on_recovery(partition_id, double /*seconds*/, size_t /*entries*/,
                           bool /*from_snapshot*/) {}
  // The journal entries a recovery of the partition would replay now: those since the last
  // snapshot written (all of them without one). Reported with the lag.
  virtual void on_recovery_backlog(partition_id, size_t /*entries*/) {}
  // A snapshot of a partition's state written: its bytes, the seconds it took (from the start
  // of its encoding to its file's rename), and those the partition paused for (the encoding).
  virtual void on_snapshot(partition_id, size_t /*bytes*/, double /*seconds*/, double /*paused*/) {}
  // This node's copy of a partition it does not own brought up to the journal's end (Kafka): by
  // the warm-up before it joins, or by a standby round; the journal entries it replayed and the
  // seconds it took.
  virtual void on_warm_up(partition_id, bool /*standby*/, size_t /*entries*/, double /*seconds*/) {}
  virtual void on_error(partition_id, const std::string& /*message*/) {}
};

}  // namespace omniroute::actors
