// The RocksDB database of one omniroute data directory: the embedded engine's ingest log and
// journal, and the projections (views) derived from the journal.
//
// Views are written only through ViewBatch, which stores a partition's applied journal
// position in the same atomic write as the changes, so a view is never ahead of or behind what
// its applied position says.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/embedded_log.hpp"
#include "events/journal.hpp"
#include "events/json.hpp"
#include "events/types.hpp"
#include "projections/intervals.hpp"

namespace omniroute::projections {

using json = events::json;

// customers: profile and journey features; journeys: one document per conversation of a
// customer (routing::journey::Journeys::visit_key); decisions: arbitration decisions as decided;
// outcomes: their outcomes (by decision id); policies: arbitration policies in force with
// learned propensities.
enum class view {
  conversations, agents, queues, journal, ids, intervals, schedules,
  customers, journeys, decisions, outcomes, policies
};
constexpr view all_views[] = {view::conversations, view::agents,    view::queues,
                              view::journal,       view::ids,       view::intervals,
                              view::schedules,     view::customers, view::journeys,
                              view::decisions,     view::outcomes,  view::policies};
const char* name_of(view v);

// How the journal index (view::journal) finds the text of a tenant's journal entries.
//  - copy: it holds a copy of each record's entries (any engine; the Kafka engine's journal is
//    not in this database);
//  - local: it points at each record in this database's own journal (the embedded engine),
//    which stores the journal once instead of twice.
enum class journal_index { copy, local };

class WriteErrors;  // store.cpp

class Store {
 public:
  // Opens (creating if needed) the database in `dir`. Fails if another process has it open,
  // naming that process (found in /proc/locks, before anything in `dir` is touched).
  // Each column family's memtable holds `memtable_bytes` (0: 128 MiB) before it is
  // flushed to a table file; tests make it small to flush often. `env` (the process's own if
  // null) is where RocksDB reads and writes files; tests pass one that fails writes.
  static result<std::unique_ptr<Store>> open(const std::string& dir, size_t memtable_bytes = 0,
                                             rocksdb::Env* env = nullptr);
  ~Store();
  // The data directory it was opened in.
  const std::string& dir() const { return dir_; }
  // The options the database and its column families are opened with, for a tool that opens
  // it directly: without the merge operators, RocksDB cannot replay the write-ahead log.
  static rocksdb::DBOptions db_options();
  // The column families of every directory (the journal's are made with the log).
  static std::vector<rocksdb::ColumnFamilyDescriptor> column_families(size_t memtable_bytes = 0);
  // Those of the directory `dir`: the above and its journal's.
  static result<std::vector<rocksdb::ColumnFamilyDescriptor>> column_families_of(
      const std::string& dir, size_t memtable_bytes = 0);

  // Handles for the embedded event log engine.
  events::EmbeddedHandles log_handles();
  // The journal's column families for a log of `partitions` partitions, by partition: made the
  // first time (then recorded by the database), opened with the store afterwards. A directory
  // written before the journal was split by partition keeps its one column family for all.
  result<std::vector<rocksdb::ColumnFamilyHandle*>> journal_families(int partitions);

  // Sets how the journal index is kept (recorded in the database; a new one starts as `copy`).
  // When the views were built the other way, or by an earlier version's journal index, they
  // are cleared, and the partition hosts' recovery rebuilds them from the journal; the answer
  // says whether they were. Call before anything writes or reads the views.
  result<bool> index_journal(journal_index how);
  journal_index journal_indexing() const { return index_; }

  // A view document (conversations, agents, queues, customers, ...) of a tenant, or nullopt.
  std::optional<json> document(view v, const std::string& tenant, const std::string& id) const;
  // The last `limit` documents of a tenant's view whose ids start with `prefix`, in id order.
  std::vector<json> documents_with_prefix(view v, const std::string& tenant,
                                          const std::string& prefix, size_t limit) const;
  // The journal seq recorded for an idempotency key, or nullopt if the key is unknown.
  std::optional<seq_no> seq_of(const std::string& tenant, const std::string& id) const;
  // seq_of for many keys at once (one batched lookup), answers in the order of `keys`.
  std::vector<std::optional<seq_no>> seqs_of(
      const std::vector<std::pair<std::string_view, std::string_view>>& keys) const;
  // Envelopes of a tenant's journal with seq > after (all of them when after is nullopt),
  // at most `limit`, in seq order.
  std::vector<std::string> journal_after(const std::string& tenant, std::optional<seq_no> after,
                                         size_t limit) const;

  // The interval statistics of a tenant's queue with from_ms <= bucket start < to_ms, in time
  // order (channels of one bucket in name order); only `channel`'s unless it is empty.
  std::vector<IntervalRow> intervals(const std::string& tenant, const std::string& queue,
                                     int64_t from_ms, int64_t to_ms,
                                     const std::string& channel = "") const;

  // Where a webhook's delivery of a tenant's journal is: the last seq it delivered (or passed
  // over), or nullopt before its first. Not a view: a rebuild keeps it.
  std::optional<seq_no> egress_cursor(const std::string& webhook, const std::string& tenant) const;
  Status set_egress_cursor(const std::string& webhook, const std::string& tenant, seq_no delivered);
  // The journal position up to which partition p's records are in the views.
  journal_pos applied(partition_id p) const;

  // Empties every view and applied position (for a rebuild).
  Status clear_views();

  // Makes the views durable as of this call: they are written without the WAL, so until a
  // flush a crash takes them (and their applied positions) back to the last one. A snapshot of
  // the routing state is kept only once the views are durable past it. One flush at a time,
  // and one serves every call made before it began: the partitions' snapshots fall due
  // together, and each flushed every memtable on its own.
  Status flush();

  // Per view: number of entries and a 64-bit FNV-1a digest over its keys and values in order.
  json digests() const;

  // What the database has been given to write since it was opened (every column family, the
  // logs' and the views'), from RocksDB's own statistics.
  struct WriteTotals {
    uint64_t writes = 0;     // write calls (each an atomic batch)
    uint64_t keys = 0;       // keys put, merged or deleted
    uint64_t wal_bytes = 0;  // bytes appended to the write-ahead log
    uint64_t stall_micros = 0;  // how long writes were stopped or slowed (RocksDB's stalls)
  };
  WriteTotals write_totals() const;
  // Why RocksDB refuses writes, while it does: after a write or flush failed for want of
  // space, until there is room again (RocksDB looks every 5 s and resumes by itself once a
  // memtable's worth is free); after an error it does not recover from, until the store is
  // opened again (needs_reopen).
  std::optional<std::string> write_error() const;
  // Whether the write error is one RocksDB does not recover from by itself (any I/O error but
  // a full disk: a file-size limit, EIO, a read-only remount): only closing the store and
  // opening it again clears it, once its cause is mended.
  bool needs_reopen() const;
  // The bytes the memtables of every column family hold (active and not yet flushed).
  uint64_t memtable_bytes() const;
  // The bytes of the memtables RocksDB counts as flushed and pinned: its all-memtables size
  // ("active, unflushed immutable, and pinned immutable") less the current one ("active and
  // unflushed immutable").
  uint64_t pinned_memtable_bytes() const;

  // Waits until views change or `timeout` passes; returns the change counter.
  uint64_t wait_for_change(uint64_t seen, std::chrono::milliseconds timeout) const;
  uint64_t changes() const;
  // Wakes every wait_for_change (e.g. at shutdown), as a change would: waiters re-read and
  // find nothing new.
  void wake_waiters() { notify(); }

 private:
  friend class ViewBatch;
  Store() = default;
  rocksdb::ColumnFamilyHandle* cf(view v) const;
  // Holds an open column family's handle (and a journal's by its partition).
  void keep_family(const std::string& name, rocksdb::ColumnFamilyHandle* handle);
  void notify();
  Status record_index();  // writes down index_

  std::string dir_;
  std::shared_ptr<WriteErrors> write_errors_;  // a listener of db_'s, so before it
  std::unique_ptr<rocksdb::DB> db_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> cfs_;
  // The views' handles by view, and the applied positions' (looked up on every write).
  rocksdb::ColumnFamilyHandle* view_cfs_[std::size(all_views)] = {};
  rocksdb::ColumnFamilyHandle* meta_cf_ = nullptr;
  // The embedded engine's journal by partition (one for all in a directory of the old layout).
  std::vector<rocksdb::ColumnFamilyHandle*> journal_cfs_;
  size_t memtable_bytes_ = 0;
  journal_index index_ = journal_index::copy;
  bool index_current_ = false;  // the views were built by this version's journal index
  mutable std::mutex change_mu_;
  mutable std::condition_variable changed_;
  uint64_t changes_ = 0;
  std::mutex flush_mu_;                     // one flush at a time
  std::atomic<uint64_t> flushes_asked_{0};  // calls of flush() so far
  uint64_t flushed_for_ = 0;                // the calls the last flush served (under flush_mu_)
};

// The changes to the views caused by some journal records of one partition, written atomically
// with the partition's new applied position.
class ViewBatch {
 public:
  // Room for a projection's worth of documents up front: growing the batch's buffer one
  // document at a time copied it over and over.
  explicit ViewBatch(Store& store) : store_(store), batch_(reserved_bytes) {}
  void put_document(view v, const std::string& tenant, const std::string& id, const json& doc);
  // The same with the document already written as JSON text.
  void put_document(view v, const std::string& tenant, const std::string& id, std::string_view text);
  // Adds a journal record's entries (all of one tenant), at position `pos` of journal
  // partition p, to the journal view (to the bucket of 256 seqs its first seq falls in), and
  // the keys of its facts and refusals to the ids view.
  void put_record(const events::JournalRecord& r, partition_id p, journal_pos pos);
  // Adds counter changes to the interval statistics (a RocksDB merge: no read).
  void add_intervals(const IntervalDeltas& deltas);
  // On success the batch is empty again, and keeps its buffers for the next changes.
  Status commit(partition_id p, journal_pos applied);
  size_t size() const { return entries_; }

 private:
  static constexpr size_t reserved_bytes = 64 << 10;
  Store& store_;
  rocksdb::WriteBatch batch_;
  std::map<std::string, std::string> index_;  // journal view: items to add, by bucket key
  // The bucket the last record went to (a tenant's records fill one bucket after another):
  // put_record looks nothing up while records stay in one bucket.
  std::string* last_items_ = nullptr;
  std::string last_tenant_;
  uint64_t last_bucket_ = 0;
  // The ids view's keys (tenant_key, one after another in id_keys_) and seqs, written at the
  // commit.
  struct IdKey {
    uint32_t at, size;
    uint64_t seq;
  };
  std::string id_keys_;
  std::vector<IdKey> ids_;
  size_t entries_ = 0;
};

// The positions of `keys` in bytewise order (unsigned bytes; a prefix before the longer key),
// equal keys in any order: what MultiGet wants when told its keys are sorted.
std::vector<uint32_t> bytewise_order(const std::vector<std::string_view>& keys);

// RocksDB counts what each thread's operations do (its perf context) unless told not to: a
// thread-local access on every key comparison of a memtable insert or lookup. Nothing here
// reads the counts, so the threads that write and read the store on the hot paths (partition
// hosts, the front door) turn them off for themselves (measured: callgrind, 1% of a host's
// instructions and 1.7% of the front door's).
void stop_rocksdb_perf_counts();

}  // namespace omniroute::projections
