// The embedded engine: ingest log and journal as RocksDB column families of the one database
// that also holds the projections. One process owns every partition (RocksDB's lock file keeps
// a second process out).
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rocksdb/db.h>

#include "events/event_log.hpp"
#include "events/ring.hpp"

namespace omniroute::events {

// An append's write batch and the value it builds each key's records in, used again by the
// next append of the partition (they keep their room): an append's batch reaches megabytes,
// and a new one each time was fresh memory from the kernel, page faults and all (perf: about
// 1% of the benchmark's samples, with the view batch's growth another 1%).
struct WriteBuffers {
  rocksdb::WriteBatch batch;
  std::string value;
};

struct EmbeddedHandles {
  rocksdb::DB* db = nullptr;
  // Keys: partition(4) offset or position(8) of the first of the records stored under it.
  rocksdb::ColumnFamilyHandle* ingest = nullptr;
  rocksdb::ColumnFamilyHandle* meta = nullptr;  // partition count, resume cursors
  // The journal's column families for a log of n partitions, partition p's at [p] (keys as the
  // ingest log's): one each, so that every flush of one appends after what is stored, and its
  // files go down the levels without being rewritten (projections::Store::journal_families).
  std::function<result<std::vector<rocksdb::ColumnFamilyHandle*>>(int partitions)> journals;
};

class EmbeddedLog final : public EventLog {
 public:
  // What the in-memory tails of all partitions together hold at most, by default, as counted
  // by tail_weight: a record and its text, and a parsed envelope beside it.
  static constexpr size_t default_tail_bytes = 128 << 20;
  static size_t tail_weight(size_t payload_bytes, bool parsed);

  // Opens the log in an open database. `partitions` is used when the database is new; an
  // existing one keeps the count it was created with. `sync` makes every append fsync its
  // write-ahead log (survives power loss, not only a killed process). `tail_bytes` is shared
  // by the partitions evenly.
  static result<std::unique_ptr<EmbeddedLog>> open(EmbeddedHandles handles, int partitions,
                                                   bool sync,
                                                   size_t tail_bytes = default_tail_bytes);
  ~EmbeddedLog() override;

  // The key under which partition p's records from position n on are stored in a column
  // family (consecutive records appended together share the key of the first).
  static std::string record_key(partition_id p, int64_t n);

  // Reads single records of the journal (for the journal index), keeping the last key's records
  // for the next read. `families`: the journal's column families by partition (or one for all).
  class RecordReader {
   public:
    RecordReader(rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*> families);
    ~RecordReader();
    // The bytes of the record at position pos of partition p (valid until the next call), or
    // nullopt when there is none or it cannot be read.
    std::optional<std::string_view> at(partition_id p, int64_t pos);

   private:
    rocksdb::DB* db_;
    std::vector<rocksdb::ColumnFamilyHandle*> families_;
    std::vector<std::unique_ptr<rocksdb::Iterator>> its_;  // by partition, made when first read
    partition_id p_{-1};
    int64_t first_ = 0;
    std::string value_;
    std::vector<std::string_view> records_;
  };

  int partitions() const override { return static_cast<int>(parts_.size()); }
  // Partition p's column family of the journal.
  rocksdb::ColumnFamilyHandle* journal_family(partition_id p) const {
    return journals_.at(static_cast<size_t>(p.value()));
  }
  Status append_ingest(partition_id p, const std::vector<std::string>& payloads,
                       std::vector<ingest_offset>* offsets) override;
  Status append_validated(partition_id p, std::vector<std::string>&& payloads,
                          std::vector<Envelope>&& envelopes, uint64_t absent_as_of,
                          std::vector<ingest_offset>* offsets) override;
  // Room while the records appended and not read yet weigh (tail_weight) no more than a
  // partition's share of the tail with `payloads` added, or there are none.
  bool await_room(partition_id p, const std::vector<std::string>& payloads,
                  std::chrono::milliseconds wait) override;
  // How many callers of await_room on partition p are in it.
  size_t writers_waiting(partition_id p);
  Status read_ingest(partition_id p, ingest_offset from, size_t max,
                     std::chrono::milliseconds wait, std::vector<IngestRecord>& out) override;
  result<ingest_offset> ingest_end(partition_id p) override;
  result<Claim> claim(partition_id p, const KnownHistory& known = KnownHistory()) override;
  Status append_journal(const Claim& claim, std::vector<JournalRecord>& records,
                        ingest_offset next, std::vector<journal_pos>* positions) override;
  Status read_journal(partition_id p, journal_pos from, size_t max,
                      std::vector<StoredRecord>& out) override;
  result<journal_pos> journal_end(partition_id p) override;
  result<std::unique_ptr<Membership>> join() override;
  std::string describe() const override;

 private:
  struct Partition {
    std::mutex ingest_mu;  // orders offset assignment and the write that uses it
    std::condition_variable appended;
    int64_t ingest_end = 0;
    // The latest records appended by this process and not read yet, offsets tail_start ..
    // ingest_end - 1: a reader that keeps up is served from here instead of a RocksDB
    // iterator, and takes them (payloads and envelopes are moved in and out, not copied). In a
    // ring: a deque allocated a block for every two records (its blocks are 512 bytes), and
    // freed one as every two were read (perf: 0.7% of all samples in the front door's appends).
    // A ring keeps its room: the room a burst took (at most twice the tail's bytes, as each
    // record weighs at least its own size) is given back when the tail drains, down to 4,096
    // records (read_ingest).
    Ring<IngestRecord> tail;
    int64_t tail_start = 0;
    size_t tail_bytes = 0;  // their weight (tail_weight)
    size_t writers_waiting = 0;  // in await_room
    std::condition_variable read;  // the reader took records from the tail
    WriteBuffers ingest_writes;  // under ingest_mu
    std::mutex journal_mu;
    int64_t journal_end = 0;
    // Under journal_mu: the ingest log's keys below this offset are deleted (append_journal).
    // 0 after a restart: the first trim deletes from offset 0 again, which costs nothing.
    int64_t ingest_trimmed_to = 0;
    WriteBuffers journal_writes;  // under journal_mu
  };
  EmbeddedLog(EmbeddedHandles h, bool sync);
  // Moves the payloads (and the envelopes, if given) into the tail.
  Status append(partition_id p, std::vector<std::string>&& payloads,
                std::vector<Envelope>* envelopes, uint64_t absent_as_of,
                std::vector<ingest_offset>* offsets);
  Partition* part(partition_id p);

  EmbeddedHandles h_;
  std::vector<rocksdb::ColumnFamilyHandle*> journals_;  // by partition
  rocksdb::WriteOptions write_options_;
  std::vector<std::unique_ptr<Partition>> parts_;
  size_t tail_bytes_ = 0;  // per partition
};

}  // namespace omniroute::events
