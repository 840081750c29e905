// The work of one partition, without the actor around it: recover the routing state from the
// journal, then turn ingest records into journal records and view changes, exactly once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "actors/observer.hpp"
#include "actors/recent_keys.hpp"
#include "actors/routing.hpp"
#include "events/event_log.hpp"
#include "events/type_counts.hpp"
#include "projections/schedule.hpp"
#include "projections/store.hpp"

namespace omniroute::actors {

// What a partition host holds in memory, all of it rebuilt from the journal: the routing state
// of each tenant and the contacts the interval statistics are still following.
struct PartitionState {
  std::map<std::string, routing::Tenant> tenants;
  projections::IntervalStats intervals;
  projections::ScheduleBook schedules;
  // Tests: called before each entity's document is rendered (view, tenant, id; not for a
  // journey, whose key is made as it is rendered); what it throws is a failure of that rendering.
  std::function<void(projections::view, const std::string&, const std::string&)> render_fault;
  // Empties the state, keeping render_fault (a test's, kept through recoveries).
  void clear() {
    auto fault = std::move(render_fault);
    *this = PartitionState{};
    render_fault = std::move(fault);
  }
};

// Where in its partition's journal a snapshot was taken (actors/snapshot.hpp): the state is the
// history before known.upto, which a claim need not read again.
struct SnapshotPoint {
  events::KnownHistory known;
  uint64_t last_record = 0;  // fingerprint_before(known.upto)
};

// Feeds the history of partition p from `from.upto` (the state holding what came before: fresh
// at 0, or restored from a snapshot) up to `end` (exclusive) to `state` and writes to the views
// what they do not have yet (records at or after the partition's applied position, which must
// not be before from.upto). This is both recovery (end = the claim's marker) and rebuild (views
// cleared first). Adds the entries it fed to `entries`, if given; `reached`, if given, receives
// what the state then knows of the history (up to `end`: a snapshot's point, less its
// fingerprint).
Status replay(events::EventLog& log, projections::Store& store, partition_id p, journal_pos end,
              PartitionState& state, const events::KnownHistory& from = {},
              size_t* entries = nullptr, events::KnownHistory* reached = nullptr);

// "its snapshot at position S, then N journal entries replayed" (without a snapshot, the second
// part alone): what a recovery or a warm-up did, for the log.
std::string replayed_from(const std::optional<journal_pos>& snapshot, size_t entries);

// Writes the current views of every entity touched in `state`, and the interval statistics'
// changes, into `batch`; adds the touched queues per tenant to `touched_queues` if given.
// Returns a line for the log for each document that could not be rendered: rendering reads
// only state the journal determines, so what it throws (but std::bad_alloc) is a bug in the
// code that renders. The document then says so (`{"id": ..., "view_error": what}`): a reader
// is not shown an outdated document, the partition goes on, and views rebuilt from the
// journal equal the live ones (the same state renders, or throws, the same).
std::vector<std::string> project_touched(PartitionState& state, projections::ViewBatch& batch,
                                         std::map<std::string, std::set<std::string>>* touched_queues = nullptr);

// One tenant as it was at a moment of its history (an analyst's "as of"): its journal entries,
// in journal order, applied to a fresh Tenant up to and including the entry `until_seq`, or
// (with `until_ms`) up to the last entry whose time is at or before it (the first entry after
// ends the read). Decides nothing: the state is what the live tenant's was right then.
struct Moment {
  explicit Moment(const std::string& tenant) : tenant(tenant) {}
  routing::Tenant tenant;
  std::optional<seq_no> seq;  // the last entry applied (nullopt: none)
  int64_t time_ms = 0;        // its time
};
result<std::unique_ptr<Moment>> tenant_at(events::EventLog& log, const std::string& tenant,
                                          std::optional<seq_no> until_seq, std::optional<int64_t> until_ms);

// Processes partition p's ingest log to its end, then returns: for tools that hold the data
// directory alone (import), where nothing else appends meanwhile.
// With `snapshot_every` > 0, snapshots as the server takes them, and one at the end if any entry
// came since the last (the server that starts next recovers from it).
Status drain(events::EventLog& log, projections::Store& store, partition_id p,
             size_t snapshot_every = 0);

// Whose turn it is to take a snapshot, among the partitions of a server.
class SnapshotTurn {
 public:
  // The turn while it is held: given back when the holder goes, however its snapshot ends.
  class Held {
   public:
    Held() = default;
    Held(Held&& other) noexcept : turn_(std::exchange(other.turn_, nullptr)) {}
    Held& operator=(Held&& other) noexcept {
      std::swap(turn_, other.turn_);
      return *this;
    }
    ~Held() {
      if (turn_) turn_->taken_ = false;
    }
    explicit operator bool() const { return turn_ != nullptr; }

   private:
    friend class SnapshotTurn;
    explicit Held(SnapshotTurn* turn) : turn_(turn) {}
    SnapshotTurn* turn_ = nullptr;
  };
  // The turn, or nothing while another holds it.
  Held try_take() {
    bool taken = false;
    return taken_.compare_exchange_strong(taken, true) ? Held(this) : Held();
  }

 private:
  std::atomic<bool> taken_{false};
};

class PartitionProcessor {
 public:
  // With `clock_ticks`, the processor also keeps each tenant's timers running: when the
  // tenant's clock (its latest event time, advanced by the wall time elapsed since) reaches a
  // timer, it appends a `clock.tick` fact to the ingest log, which fires the timer like any
  // other fact would. After a restart, the clock runs from the recovery.
  //
  // Decisions are durable when the journal append returns; the views (and the journal as the
  // query API serves it) follow. With a `projection_interval` of 0 every step brings the views
  // up to date before it returns. Otherwise the views of several steps are written together,
  // at most that long after the first of them, and at once whenever the ingest log has nothing
  // more: under load a projection is shared by many facts, and its cost is off the path from
  // fact to decision.
  PartitionProcessor(events::EventLog& log, projections::Store& store, partition_id p,
                     ProcessorObserver& observer, size_t max_batch, bool clock_ticks,
                     std::chrono::milliseconds projection_interval = std::chrono::milliseconds(0));
  ~PartitionProcessor();

  // Claims the partition and rebuilds its state from the journal. Called by step() as needed.
  Status recover();

  // Processes the next batch of ingest records, waiting up to `wait` for one. Returns how many
  // it processed. After a failed journal append the state may be ahead of the journal, so the
  // next step recovers first.
  //
  // A fact whose deciding throws (a bug: bad input is refused before it gets here) does not
  // stop the partition. The step forgets the state it may have half changed, recovers it from
  // the journal, decides the batch again and journals that fact as an `event.refused` naming
  // the exception; the observer hears of it as an error. Only std::bad_alloc is not taken for
  // such a fact: it leaves the step as an exception, and the host retries later.
  result<size_t> step(std::chrono::milliseconds wait);

  // Forgets the in-memory state (and views not yet written): the next step recovers it from
  // the journal.
  void invalidate();

  // At most how many idempotency keys of past projections the processor keeps in memory
  // (65,536 unless set; the last projection's are kept however many they are). With fewer, it
  // reads the ids view more often. The default covers the backlog the embedded engine's front
  // door lets its partition hosts fall behind by (EventLog::await_room: about 30,000 of the
  // benchmark's events per partition): the keys projected since the door looked a key up.
  void keep_recent_keys(size_t n) { recent_keys_limit_ = n; }

  // Snapshots of the state (actors/snapshot.hpp), in the store's data directory: with
  // `every_entries` > 0, one is written after a projection once that many journal entries have
  // been appended or replayed since the last (half as many in a lull: a whole wait with nothing
  // to read, the views written), and one when the processor is destroyed, if any have. Recovery
  // starts from the partition's snapshot whenever it can, whether it takes them or not.
  // The partitions of a server share `turn`: one of them takes a snapshot at a time (the one
  // at destruction and snapshot()'s go at once).
  void take_snapshots(size_t every_entries, std::shared_ptr<SnapshotTurn> turn = nullptr) {
    snapshot_every_ = every_entries;
    if (turn) turn_ = std::move(turn);
  }
  // Takes a snapshot of the state now (between steps, with the views up to date) and writes it
  // in the background: the write of the one before is waited for first, and by recover() and
  // the destructor.
  Status snapshot();
  // Waits for the snapshot being written, if one is; logs its failure and answers it.
  Status finish_snapshot_write();
  // What the last recovery did.
  struct Recovery {
    std::optional<journal_pos> snapshot;  // where the snapshot it started from was taken
    std::string snapshot_unused;          // why a snapshot found was not used, if one was not
    size_t entries = 0;                   // the journal entries it replayed
  };
  const Recovery& last_recovery() const { return recovery_; }

  partition_id partition() const { return p_; }
  bool recovered() const { return recovered_; }

  // Fault injection, for tests: `check` is called with each fact the domain accepted or
  // refused, after the domain has applied it and before its journal entries are made; what it
  // throws is handled as a failure of the domain's own code would be.
  void inject_fault(std::function<void(const events::Envelope&)> check) { fault_ = std::move(check); }
  // Tests: `check` is called before each document is rendered (PartitionState::render_fault),
  // here and in every recovery.
  void inject_render_fault(std::function<void(projections::view, const std::string&, const std::string&)> check) {
    state_.render_fault = std::move(check);
  }

 private:
  result<size_t> step_batch(std::chrono::milliseconds wait);
  // What one ingest record led to: its journal record, whose entries make_entries() makes
  // from `outcome` when the domain decided it (a refusal of a record that is no fact comes
  // with its entries made).
  struct Decided {
    events::JournalRecord record;
    routing::Outcome outcome;
    std::string canonical;    // the canonical text of the fact (the front door's, or read here), else empty
    int64_t appended_us = 0;  // when its ingest record was appended, for latency
  };
  // Deciding a batch goes a stage at a time over a few facts: the domain decides them all,
  // then the interval statistics and schedules take their entries, then their journal texts
  // are written. Each stage's code stays in the instruction cache across the facts, where a
  // fact at a time went through all of it (callgrind's cache simulation, the benchmark's hosts:
  // instruction cache misses 64.4M -> 47.3M, data cache misses 27.8M -> 31.7M, instructions
  // +1%). A few facts at a time, not the batch: a stage over the whole batch held every
  // outcome until its end and freed them together, +4% instructions, most in the allocator.
  static constexpr size_t stage_facts = 16;
  // What an ingest record leads to, or nothing (a duplicate, or a record that names no tenant
  // and id to refuse). Takes the record's parsed envelope, if it has one.
  std::optional<Decided> decide(events::IngestRecord& rec);
  // Fetches into the cache, ahead of decide(), what the handed-over facts ingest[from, to) (at
  // most stage_facts) look up: each one's idempotency key's slot among the recent keys, its
  // type and front-door text, then its conversation and customer (Tenant::prefetch, in its
  // stages). Those tables are larger than the caches, and each lookup missed in them in turn:
  // fetched a stage at a time for all the facts first, the misses overlap.
  void prefetch(const std::vector<events::IngestRecord>& ingest, size_t from, size_t to) const;
  // The tenant `name` (made if new), among the pending ones.
  routing::Tenant& pending_tenant(const std::string& name);
  // Applies a decided fact's entries to the interval statistics and schedules, and makes its
  // journal entries.
  void apply_to_statistics(Decided& d);
  void make_entries(Decided& d);
  // The refusal of a fact whose deciding failed (`why`: what it threw).
  events::JournalRecord refuse_failed(const events::IngestRecord& rec, routing::Envelope& fact,
                                      const std::string& why);
  // The same for a record whose payload is not a valid fact (`j`: what of it parsed).
  std::optional<events::JournalRecord> refuse_unreadable(const events::IngestRecord& rec,
                                                         const events::json& j,
                                                         const events::event_error& why);
  // Takes a snapshot if snapshots are on, `due` entries have come since the last and the turn
  // is free; logs why not if it cannot (and waits as many entries again).
  void snapshot_when_due(size_t due);
  // snapshot(), holding `turn` (if any) until the file is written.
  Status take_snapshot(SnapshotTurn::Held turn);
  // Restores the partition's snapshot into state_ (empty), if there is one it can use with the
  // journal and the views as they are, and says where it was taken (nothing without one).
  std::optional<SnapshotPoint> restore_snapshot();
  // Writes the views owed since the last projection, with the applied position.
  Status project();
  void report_lag(ingest_offset next);
  // The ingest log gave records from `first` on where the cursor was before it: those between
  // were deleted unread (a Kafka topic's retention). Logged and counted as an error.
  void report_lost(ingest_offset first);
  Status send_due_ticks();

  // Where a tenant's clock was at a wall-clock moment, and the tick it has in flight.
  struct Anchor {
    int64_t event_ms = 0;
    std::chrono::steady_clock::time_point wall{};
    std::optional<ingest_offset> tick;
  };

  events::EventLog& log_;
  // The largest journal record the log takes (EventLog::max_record_bytes, fixed once it is
  // open): read once here, not at every fact.
  const size_t max_record_bytes_ = log_.max_record_bytes();
  projections::Store& store_;
  partition_id p_;
  ProcessorObserver& observer_;
  size_t max_batch_;
  bool clock_ticks_;
  std::chrono::milliseconds projection_interval_;
  // Journaled since the last projection: the view changes and how far they reach (its
  // idempotency keys are recent_keys_' open generation, its tenants pending_tenants_).
  std::unique_ptr<projections::ViewBatch> pending_;
  // The last committed batch, the next pending_: a projection's batch grows to megabytes, and
  // a new one each time was fresh memory from the kernel, page faults and all (perf: the
  // growth of the view batch and the journal's were about 2% of samples).
  std::unique_ptr<projections::ViewBatch> spare_views_;
  std::optional<journal_pos> pending_upto_;
  // Idempotency keys known journaled, in memory: those journaled since the last projection
  // (the open generation, not in the ids view yet) and those of the latest projections (by
  // generation, at least the newest, while they hold at most recent_keys_limit_ keys). A key
  // leaves with its generation, oldest first. The front door's lookups miss the keys of
  // generations projected after it looked, so those are the ones kept: the partition host
  // answers most keys the door found unknown without reading the ids view again. A
  // generation's stamp is Store::changes() read after its projection.
  size_t recent_keys_limit_ = 65536;
  RecentKeys recent_keys_;
  // The stamp of the newest generation dropped, or Store::changes() read at the recovery
  // (which put every journaled key in the ids view); the maximum until a recovery. A key the
  // front door found unknown as of this or later is either in memory or not journaled.
  uint64_t keys_dropped_as_of_ = std::numeric_limits<uint64_t>::max();
  // Facts decided in this step, by type and result, for the observer.
  events::TypeCounts fact_counts_;
  // The tenants of the facts decided since the last projection, once each (in state_.tenants,
  // whose nodes stay where they are until a recovery, which clears this).
  std::vector<routing::Tenant*> pending_tenants_;
  std::chrono::steady_clock::time_point pending_since_{};
  std::map<std::string, Anchor> anchors_;
  std::optional<events::Claim> claim_;
  ingest_offset cursor_{0};
  PartitionState state_;
  journal_pos state_upto_{0};  // state_ is the history of the journal before this position
  // Where this claim's next record should land, and whether every one so far did: a record of
  // another writer in between (a newer claim's marker) makes state_ more than the history.
  journal_pos journal_end_{0};
  bool sole_writer_ = true;
  size_t snapshot_every_ = 0;
  // Entries appended or replayed since the recovery; as many as there were when a snapshot was
  // last tried (taken, or found impossible), and when the last one written was taken: what a
  // recovery would replay now is the difference to the last.
  size_t entries_total_ = 0;
  size_t entries_at_try_ = 0;
  std::atomic<size_t> entries_in_snapshot_{0};
  size_t entries_since_try() const { return entries_total_ - entries_at_try_; }
  Recovery recovery_;
  std::future<Status> snapshot_write_;  // the snapshot being written
  std::shared_ptr<SnapshotTurn> turn_ = std::make_shared<SnapshotTurn>();
  size_t state_bytes_ = 0;  // of the last snapshot's state: room made for the next at once
  std::atomic<bool> recovered_{false};
  // What deciding the facts at these ingest offsets threw: each is refused when it comes
  // again, by then from a state recovered from the journal. Kept until the journal is past it
  // (a later fact of the batch may fail too, and the batch is decided again).
  std::map<int64_t, std::string> failed_;
  std::function<void(const events::Envelope&)> fault_;
  std::vector<Decided> decided_;  // the facts of the stage at hand (its room kept)
  std::chrono::steady_clock::time_point last_lag_report_{};
};

}  // namespace omniroute::actors
