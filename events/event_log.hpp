// The event log: an ingest log with many writers and a journal with one writer per partition.
// Two engines implement it: embedded (RocksDB, one machine) and kafka (librdkafka). Both pass
// the same conformance suite (tests/events/log_conformance_test.cpp).
#pragma once

#include <chrono>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/envelope.hpp"
#include "events/journal.hpp"
#include "events/types.hpp"

namespace omniroute::events {

struct IngestRecord {
  ingest_offset offset;
  int64_t appended_us = 0;  // wall clock when it was appended (for latency metrics only)
  std::string payload;      // canonical envelope JSON
  // The validated envelope `payload` is the canonical text of (to_text), when its writer in
  // this process handed it over with append_validated and the engine passes it on (embedded:
  // to the first read from its in-memory tail). Spares the reader a parse; absent otherwise.
  std::optional<Envelope> parsed;
  // With `parsed`: when the writer found the record's idempotency key unknown, as it read
  // projections::Store::changes() just before it looked (0: it did not look). The reader may
  // then skip its own lookup (PartitionProcessor::decide says when).
  uint64_t absent_as_of = 0;
};

// The right to write one journal partition, obtained by claim().
struct Claim {
  partition_id partition;
  journal_pos epoch;      // position of this claim's epoch marker
  ingest_offset resume;   // the first ingest offset not yet reflected in the journal
};

// What a claimant knows already of a partition's history (from a snapshot of its state): the
// history before `upto`, whose newest marker is at `epoch`, reflects the ingest log before
// `resume`. A claim need not read the journal before `upto` to find where processing resumes.
struct KnownHistory {
  journal_pos upto{0};
  journal_pos epoch{-1};
  ingest_offset resume{0};
};

// Which partitions this process owns. Embedded: all of them, at once. Kafka: those the
// consumer group assigns, changing on rebalances.
class Membership {
 public:
  virtual ~Membership() = default;
  // Waits up to `timeout` for a change and reports it. Must be called regularly (it also keeps
  // the process in its group).
  virtual Status poll(std::vector<partition_id>& assigned, std::vector<partition_id>& revoked,
                      std::chrono::milliseconds timeout) = 0;
};

class EventLog {
 public:
  virtual ~EventLog() = default;

  virtual int partitions() const = 0;
  // The partition of a tenant: FNV-1a of its name modulo partitions(). Stable forever.
  partition_id partition_of(std::string_view tenant) const;

  // Appends payloads to ingest partition p, in order. On success every payload is durable and
  // `offsets` (if given) holds their offsets. Thread-safe.
  virtual Status append_ingest(partition_id p, const std::vector<std::string>& payloads,
                               std::vector<ingest_offset>* offsets) = 0;

  // append_ingest of validated envelopes: payloads[i] must be to_text(envelopes[i]), one
  // envelope per payload (else nothing is appended). An engine may hand the envelopes to this
  // process's reader (IngestRecord::parsed, with `absent_as_of`), and the payloads with them
  // (both are taken); the default, and the kafka engine, append the payloads alone.
  virtual Status append_validated(partition_id p, std::vector<std::string>&& payloads,
                                  std::vector<Envelope>&& envelopes, uint64_t absent_as_of,
                                  std::vector<ingest_offset>* offsets) {
    (void)absent_as_of;  // only for a reader the envelopes are handed to
    if (envelopes.size() != payloads.size()) return count_mismatch(payloads, envelopes);
    return append_ingest(p, payloads, offsets);
  }

  // Waits up to `wait` until ingest partition p has room for `payloads`: room in what the
  // engine keeps in memory of the records this process's reader has not read yet. Whatever it
  // answers, an append may follow; a front door that waits first keeps a reader that falls
  // behind from having to read back and parse again what was handed over, and keeps the
  // backlog (the decisions' delay) bounded. The kafka engine, whose reader may be another
  // process and whose brokers hold any backlog, always has room.
  virtual bool await_room(partition_id p, const std::vector<std::string>& payloads,
                          std::chrono::milliseconds wait) {
    (void)p, (void)payloads, (void)wait;
    return true;
  }

  // Reads up to `max` records of partition p from offset `from` on, waiting up to `wait` for
  // the first one. An empty result after the wait is not an error. Records more than 1,024
  // below the resume offset of the last append_journal may be gone (the embedded engine
  // deletes them; a Kafka topic's retention may).
  virtual Status read_ingest(partition_id p, ingest_offset from, size_t max,
                             std::chrono::milliseconds wait, std::vector<IngestRecord>& out) = 0;

  // This process reads ingest partition p no more for now (its host stopped: the partition
  // went to another node, or the processor stops). An engine that fetches ahead of the reads
  // stops doing so; the next read_ingest of p starts again where it asks.
  virtual void stop_reading(partition_id p) { (void)p; }

  // One past the last ingest offset of partition p (for lag).
  virtual result<ingest_offset> ingest_end(partition_id p) = 0;

  // Makes this caller the writer of journal partition p: appends an epoch marker (fencing out
  // any earlier writer) and recovers where processing resumes. Kafka reads the history for it,
  // from `known.upto` on (the embedded engine keeps a cursor and needs no reading).
  virtual result<Claim> claim(partition_id p, const KnownHistory& known = KnownHistory()) = 0;

  // Appends records under a claim; they are durable on return. Embedded: the records and the
  // new resume offset `next` are written in one atomic batch. Kafka: each record is one message
  // (atomic on its own) and the resume offset is recovered from the records themselves.
  // The engine stamps each record's epoch from the claim; `positions` (if given) receives the
  // position of each record.
  virtual Status append_journal(const Claim& claim, std::vector<JournalRecord>& records,
                                ingest_offset next, std::vector<journal_pos>* positions) = 0;

  // Reads up to `max` raw records of journal partition p from position `from` on (markers and
  // stale records included: pass them through an EpochFilter). Does not wait.
  virtual Status read_journal(partition_id p, journal_pos from, size_t max,
                              std::vector<StoredRecord>& out) = 0;

  // One past the last position of journal partition p.
  virtual result<journal_pos> journal_end(partition_id p) = 0;

  // Joins the set of processes that share the partitions.
  virtual result<std::unique_ptr<Membership>> join() = 0;

  // Where the node that owns partition p answers HTTP (host:port), as that node published it
  // (see advertise); nothing when no owner has, or on an engine with one node (embedded).
  virtual std::optional<std::string> owner_address(partition_id p) const {
    (void)p;
    return std::nullopt;
  }
  // This node's HTTP address (host:port), published with each partition it owns from now on,
  // and those it holds already: other nodes forward queries of those partitions there.
  virtual Status advertise(const std::string& address) {
    (void)address;
    return Status::ok();
  }

  // The most bytes an ingest record's payload may have (Kafka: the producer's message.max.bytes,
  // less a margin for the journal record a fact becomes, its decisions included); no limit on
  // the embedded engine.
  virtual size_t max_payload_bytes() const { return std::numeric_limits<size_t>::max(); }
  // The most bytes a journal record may have, encoded (events::encoded_size); no limit on the
  // embedded engine.
  virtual size_t max_record_bytes() const { return std::numeric_limits<size_t>::max(); }

  // The error append_validated answers when the counts differ.
  static Status count_mismatch(const std::vector<std::string>& payloads,
                               const std::vector<Envelope>& envelopes) {
    return Status::error("append_validated: " + std::to_string(payloads.size()) +
                         " payloads but " + std::to_string(envelopes.size()) + " envelopes");
  }

  // "embedded (path, N partitions)" or "kafka (brokers, topics)".
  virtual std::string describe() const = 0;
};

// Calls fn(record) for every history record (EpochFilter-accepted) of partition p in
// [from, end), reading in chunks; stops at the first error fn or the log returns. `filter` is
// where the filter stands at `from` (a fresh one at 0); `epoch`, if given, receives where it
// stands at `end` (the newest marker before it).
Status scan_history(EventLog& log, partition_id p, journal_pos end,
                    const std::function<Status(const StoredRecord&)>& fn,
                    journal_pos from = journal_pos{0}, EpochFilter filter = EpochFilter(),
                    journal_pos* epoch = nullptr);

}  // namespace omniroute::events
