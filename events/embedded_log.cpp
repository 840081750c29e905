#include "events/embedded_log.hpp"

#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "events/bytes.hpp"
#include "events/time.hpp"

namespace omniroute::events {
namespace {

std::string key(partition_id p, int64_t n) { return EmbeddedLog::record_key(p, n); }

std::string cursor_key(partition_id p) { return "cursor/" + std::to_string(p.value()); }

// Consecutive records of a partition are stored under one key, the position of the first:
// a batch marker, the count, then each record's length and bytes. RocksDB's work per key (its
// memtable insert above all) is paid once per append instead of once per record. A value
// without the marker is a single record, as earlier versions stored every record: an ingest
// record starts with its 8-byte append time (a first byte of 0 until the year 4253), a journal
// record with 'O'.
constexpr char batch_marker = '\xb7';
// Records per key at most, so that reading one record never decodes a huge value.
constexpr size_t batch_records = 1024;

// A write batch of n records under the keys of positions first, first + 1024, ... of
// partition p: record i is what write(i, value) appends to the key's value, about size_of(i)
// bytes (each record's length is taken from what it wrote). The batch and each value are
// `buffers`' (cleared first), which keep the room the largest append needed: a value is given
// its room up front, as growing it copies it.
template <typename Size, typename Write>
rocksdb::WriteBatch& batch_with(WriteBuffers& buffers, rocksdb::ColumnFamilyHandle* cf,
                                partition_id p, int64_t first, size_t n_records, Size size_of,
                                Write write) {
  std::vector<size_t> sizes(n_records);
  for (size_t i = 0; i < n_records; ++i) sizes[i] = size_of(i);
  rocksdb::WriteBatch& batch = buffers.batch;
  batch.Clear();
  std::string& value = buffers.value;
  for (size_t from = 0; from < n_records; from += batch_records) {
    const size_t n = std::min(batch_records, n_records - from);
    size_t size = 5;
    for (size_t i = from; i < from + n; ++i) size += 4 + sizes[i];
    value.clear();
    value.reserve(size);
    value.push_back(batch_marker);
    put_be(value, n, 4);
    for (size_t i = from; i < from + n; ++i) {
      const size_t at = value.size();
      value.append(4, '\0');
      write(i, value);
      set_be(value, at, value.size() - at - 4, 4);
    }
    batch.Put(cf, key(p, first + static_cast<int64_t>(from)), value);
  }
  return batch;
}

// The same for `records`, each `prefix` followed by the record's text.
template <typename Text>
rocksdb::WriteBatch& batch_of(WriteBuffers& buffers, rocksdb::ColumnFamilyHandle* cf,
                              partition_id p, int64_t first, std::string_view prefix,
                              const std::vector<Text>& records) {
  return batch_with(
      buffers, cf, p, first, records.size(),
      [&](size_t i) { return prefix.size() + records[i].size(); },
      [&](size_t i, std::string& value) {
        value += prefix;
        value += records[i];
      });
}

// The records a stored value holds, in order; false when it is not well formed.
bool split_records(std::string_view value, std::vector<std::string_view>& out) {
  out.clear();
  if (value.empty() || value[0] != batch_marker) {
    out.push_back(value);
    return true;
  }
  if (value.size() < 5) return false;
  const size_t n = get_be(value, 1, 4);
  size_t at = 5;
  for (size_t i = 0; i < n; ++i) {
    if (at + 4 > value.size()) return false;
    const size_t len = get_be(value, at, 4);
    if (at + 4 + len > value.size()) return false;
    out.push_back(value.substr(at + 4, len));
    at += 4 + len;
  }
  return at == value.size();
}

std::string_view view_of(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

// The position of the first record under a key of partition p, or -1 for another partition's key.
int64_t first_of(const rocksdb::Slice& k, partition_id p) {
  if (k.size() != 12 || get_be(view_of(k), 0, 4) != static_cast<uint32_t>(p.value())) return -1;
  return static_cast<int64_t>(get_be(view_of(k), 4, 8));
}

// Positions the iterator at the key holding position `pos` of partition p (the last key at or
// before it), or at the first key after it when no key of p is at or before it.
void seek_holding(rocksdb::Iterator& it, partition_id p, int64_t pos) {
  it.SeekForPrev(key(p, pos));
  if (!it.Valid() || first_of(it.key(), p) < 0) it.Seek(key(p, pos));
}

// One past the last position stored under partition p's prefix in `cf`.
result<int64_t> end_of(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, partition_id p) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf));
  it->SeekForPrev(key(p, INT64_MAX));
  if (!it->Valid()) {
    if (!it->status().ok()) return Status::error("cannot read the log's end: " + it->status().ToString());
    return int64_t{0};
  }
  const int64_t first = first_of(it->key(), p);
  if (first < 0) return int64_t{0};
  std::vector<std::string_view> records;
  if (!split_records(view_of(it->value()), records))
    return Status::error("partition " + std::to_string(p.value()) + " is corrupt at position " +
                         std::to_string(first));
  return first + static_cast<int64_t>(records.size());
}

class AllPartitions final : public Membership {
 public:
  explicit AllPartitions(int n) : n_(n) {}
  Status poll(std::vector<partition_id>& assigned, std::vector<partition_id>&,
              std::chrono::milliseconds timeout) override {
    if (!given_) {
      for (int i = 0; i < n_; ++i) assigned.push_back(partition_id{i});
      given_ = true;
      return Status::ok();
    }
    // Nothing ever changes: wait out the timeout so callers can poll in a loop.
    std::unique_lock<std::mutex> lock(mu_);
    never_.wait_for(lock, timeout);
    return Status::ok();
  }

 private:
  int n_;
  bool given_ = false;
  std::mutex mu_;
  std::condition_variable never_;
};

}  // namespace

EmbeddedLog::RecordReader::RecordReader(rocksdb::DB* db,
                                        std::vector<rocksdb::ColumnFamilyHandle*> families)
    : db_(db), families_(std::move(families)), its_(families_.size()) {}

EmbeddedLog::RecordReader::~RecordReader() = default;

std::optional<std::string_view> EmbeddedLog::RecordReader::at(partition_id p, int64_t pos) {
  if (!(p == p_ && pos >= first_ && pos < first_ + static_cast<int64_t>(records_.size()))) {
    records_.clear();
    // One family holds every partition (a journal of one partition, or of the old layout).
    const size_t at = families_.size() == 1 ? 0 : static_cast<size_t>(p.value());
    if (p.value() < 0 || at >= families_.size() || !families_[at]) return std::nullopt;
    auto& it = its_[at];
    if (!it) it.reset(db_->NewIterator(rocksdb::ReadOptions(), families_[at]));
    seek_holding(*it, p, pos);
    if (!it->Valid()) return std::nullopt;
    const int64_t first = first_of(it->key(), p);
    if (first < 0 || first > pos) return std::nullopt;
    value_ = it->value().ToString();
    if (!split_records(value_, records_)) {
      records_.clear();
      return std::nullopt;
    }
    p_ = p;
    first_ = first;
    if (pos >= first_ + static_cast<int64_t>(records_.size())) return std::nullopt;
  }
  return records_[static_cast<size_t>(pos - first_)];
}

std::string EmbeddedLog::record_key(partition_id p, int64_t n) {
  std::string k;
  k.reserve(12);
  put_be(k, static_cast<uint32_t>(p.value()), 4);
  put_be(k, static_cast<uint64_t>(n), 8);
  return k;
}

EmbeddedLog::EmbeddedLog(EmbeddedHandles h, bool sync) : h_(h) { write_options_.sync = sync; }

EmbeddedLog::~EmbeddedLog() = default;

result<std::unique_ptr<EmbeddedLog>> EmbeddedLog::open(EmbeddedHandles h, int partitions,
                                                       bool sync, size_t tail_bytes) {
  std::string stored;
  auto s = h.db->Get(rocksdb::ReadOptions(), h.meta, "partitions", &stored);
  if (s.ok()) {
    char* end = nullptr;
    long n = std::strtol(stored.c_str(), &end, 10);
    if (end == stored.c_str() || *end != '\0' || n < 1 || n > 1024)
      return Status::error("the data directory records an invalid partition count '" + stored + "'");
    partitions = static_cast<int>(n);
  } else if (s.IsNotFound()) {
    if (partitions < 1 || partitions > 1024)
      return Status::error("partitions must be between 1 and 1024");
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = h.db->Put(wo, h.meta, "partitions", std::to_string(partitions));
    if (!s.ok()) return Status::error("cannot record the partition count: " + s.ToString());
  } else {
    return Status::error("cannot read the partition count: " + s.ToString());
  }
  if (!h.journals) return Status::error("no journal column families given");
  auto journals = h.journals(partitions);
  if (!journals) return Status::error(journals.error().message());
  if (journals->size() != static_cast<size_t>(partitions))
    return Status::error("the journal has " + std::to_string(journals->size()) +
                         " column families for " + std::to_string(partitions) + " partitions");
  std::unique_ptr<EmbeddedLog> log(new EmbeddedLog(h, sync));
  log->journals_ = std::move(*journals);
  // A partition host that falls behind its tail reads the records from RocksDB, parses them
  // again and looks their ids up: behind, it gets slower. A burst the hosts cannot keep up
  // with is what the tail is for. On the ingest benchmark (4 partitions, 4 clients) the hosts
  // ended about 24,000 events behind each, and fell out of tails of 8 MiB each: median of four
  // interleaved runs 116,000 -> 128,000 events/s and partition hosts 13.3 -> 11.0 µs an event
  // with 32 MiB each (about 29,000 of its events). Each record weighs at least its own size,
  // so the bytes bound the count of tiny records too.
  log->tail_bytes_ = tail_bytes / static_cast<size_t>(partitions);
  for (int i = 0; i < partitions; ++i) {
    auto part = std::make_unique<Partition>();
    auto ingest_end = end_of(h.db, h.ingest, partition_id{i});
    if (!ingest_end) return Status::error("ingest " + ingest_end.error().message());
    auto journal_end = end_of(h.db, log->journals_[static_cast<size_t>(i)], partition_id{i});
    if (!journal_end) return Status::error("journal " + journal_end.error().message());
    part->ingest_end = *ingest_end;
    part->journal_end = *journal_end;
    log->parts_.push_back(std::move(part));
  }
  return log;
}

EmbeddedLog::Partition* EmbeddedLog::part(partition_id p) {
  if (p.value() < 0 || p.value() >= partitions()) return nullptr;
  return parts_[static_cast<size_t>(p.value())].get();
}

size_t EmbeddedLog::tail_weight(size_t payload_bytes, bool parsed) {
  // Measured (jemalloc's stats.allocated): the benchmark's events, 176 bytes of text on
  // average, take 608 bytes of heap each as envelopes, 3.45 times their text.
  return sizeof(IngestRecord) + payload_bytes * (parsed ? 5 : 1);
}

namespace {
// The tail's room kept when it drains (0.9 MiB a partition: an IngestRecord is 232 bytes).
constexpr size_t kept_tail_records = 4096;

size_t weight_of(const IngestRecord& r) {
  return EmbeddedLog::tail_weight(r.payload.size(), r.parsed.has_value());
}
}  // namespace

Status EmbeddedLog::append_ingest(partition_id p, const std::vector<std::string>& payloads,
                                  std::vector<ingest_offset>* offsets) {
  return append(p, std::vector<std::string>(payloads), nullptr, 0, offsets);  // the tail's copies
}

Status EmbeddedLog::append_validated(partition_id p, std::vector<std::string>&& payloads,
                                     std::vector<Envelope>&& envelopes, uint64_t absent_as_of,
                                     std::vector<ingest_offset>* offsets) {
  if (envelopes.size() != payloads.size()) return count_mismatch(payloads, envelopes);
  return append(p, std::move(payloads), &envelopes, absent_as_of, offsets);
}

Status EmbeddedLog::append(partition_id p, std::vector<std::string>&& payloads,
                           std::vector<Envelope>* envelopes, uint64_t absent_as_of,
                           std::vector<ingest_offset>* offsets) {
  Partition* part = this->part(p);
  if (!part) return Status::error("no ingest partition " + std::to_string(p.value()));
  const int64_t now_us = wall_clock_us();
  std::string stamp;
  put_be(stamp, static_cast<uint64_t>(now_us), 8);
  std::lock_guard<std::mutex> lock(part->ingest_mu);
  int64_t next = part->ingest_end;
  // Each record: append time, payload.
  rocksdb::WriteBatch& batch = batch_of(part->ingest_writes, h_.ingest, p, next, stamp, payloads);
  for (size_t i = 0; i < payloads.size(); ++i, ++next)
    if (offsets) offsets->push_back(ingest_offset{next});
  auto s = h_.db->Write(write_options_, &batch);
  if (!s.ok()) {
    if (offsets) offsets->resize(offsets->size() - payloads.size());
    return Status::error("ingest append failed: " + s.ToString());
  }
  if (part->tail.empty()) part->tail_start = part->ingest_end;
  for (size_t i = 0; i < payloads.size(); ++i) {
    part->tail.push_back(IngestRecord{ingest_offset{part->ingest_end + static_cast<int64_t>(i)}, now_us,
                                      std::move(payloads[i]), std::nullopt});
    if (envelopes) {
      part->tail.back().parsed = std::move((*envelopes)[i]);
      part->tail.back().absent_as_of = absent_as_of;
    }
    part->tail_bytes += weight_of(part->tail.back());
  }
  while (part->tail_bytes > tail_bytes_) {  // the oldest unread records are left to storage
    part->tail_bytes -= weight_of(part->tail.front());
    part->tail.erase_front(1);
    ++part->tail_start;
  }
  part->ingest_end = next;
  part->appended.notify_all();
  return Status::ok();
}

Status EmbeddedLog::read_ingest(partition_id p, ingest_offset from, size_t max,
                                std::chrono::milliseconds wait, std::vector<IngestRecord>& out) {
  Partition* part = this->part(p);
  if (!part) return Status::error("no ingest partition " + std::to_string(p.value()));
  int64_t end;
  {
    std::unique_lock<std::mutex> lock(part->ingest_mu);
    part->appended.wait_for(lock, wait, [&] { return part->ingest_end > from.value(); });
    end = part->ingest_end;
    // Behind the tail, storage serves up to where the tail starts: the next read is served
    // from the tail, with the envelopes it holds.
    if (!part->tail.empty() && from.value() < part->tail_start) end = std::min(end, part->tail_start);
    if (end > from.value() && from.value() >= part->tail_start && !part->tail.empty()) {
      const int64_t upto = std::min<int64_t>(end, from.value() + static_cast<int64_t>(max));
      // Room for them all at once: grown a doubling at a time, `out` moved the records (and
      // their parsed envelopes) again at each step (perf: 1.2% of the ingest benchmark's samples).
      out.reserve(out.size() + static_cast<size_t>(upto - from.value()));
      // The records read leave the tail, handed over whole (no copy of the payload): a second
      // read, after a recovery, is served by storage and parses.
      while (part->tail_start < upto) {
        IngestRecord& r = part->tail.front();
        part->tail_bytes -= weight_of(r);
        if (part->tail_start >= from.value()) out.push_back(std::move(r));
        part->tail.erase_front(1);
        ++part->tail_start;
      }
      // A ring keeps its room: the room a burst took is given back once the tail is drained,
      // all but what a reader that keeps up needs (a request's records, several times over).
      if (part->tail.empty() && part->tail.capacity() > kept_tail_records) {
        part->tail = Ring<IngestRecord>();
        part->tail.reserve(kept_tail_records);
      }
      part->read.notify_all();  // room for the writers waiting in await_room
      return Status::ok();
    }
  }
  if (end <= from.value()) return Status::ok();
  end = std::min<int64_t>(end, from.value() + static_cast<int64_t>(max));
  out.reserve(out.size() + static_cast<size_t>(end - from.value()));
  std::unique_ptr<rocksdb::Iterator> it(h_.db->NewIterator(rocksdb::ReadOptions(), h_.ingest));
  int64_t expect = from.value();
  std::vector<std::string_view> records;
  auto corrupt = [&] {
    return Status::error("ingest partition " + std::to_string(p.value()) +
                         " is corrupt at offset " + std::to_string(expect));
  };
  for (seek_holding(*it, p, from.value()); it->Valid() && expect < end; it->Next()) {
    const int64_t first = first_of(it->key(), p);
    if (first < 0) break;
    if (first > expect && expect == from.value())
      return Status::error("ingest partition " + std::to_string(p.value()) + " has no record at offset " +
                           std::to_string(expect) + " (records the journal has are deleted)");
    if (first > expect || !split_records(view_of(it->value()), records)) return corrupt();
    for (size_t i = 0; i < records.size() && expect < end; ++i) {
      const int64_t offset = first + static_cast<int64_t>(i);
      if (offset < expect) continue;
      if (offset != expect || records[i].size() < 8) return corrupt();
      out.push_back(IngestRecord{ingest_offset{offset}, static_cast<int64_t>(get_be(records[i], 0, 8)),
                                 std::string(records[i].substr(8)), std::nullopt});
      ++expect;
    }
  }
  if (!it->status().ok()) return Status::error("ingest read failed: " + it->status().ToString());
  if (expect < end) return corrupt();  // a record below the end is missing
  return Status::ok();  // the tail, unread records only, is as it was: no more room
}

bool EmbeddedLog::await_room(partition_id p, const std::vector<std::string>& payloads,
                             std::chrono::milliseconds wait) {
  Partition* part = this->part(p);
  if (!part) return true;  // the append names the missing partition
  size_t weight = 0;
  for (const auto& text : payloads) weight += tail_weight(text.size(), true);
  std::unique_lock<std::mutex> lock(part->ingest_mu);
  ++part->writers_waiting;
  const bool room = part->read.wait_for(lock, wait, [&] {
    return part->tail_bytes == 0 || part->tail_bytes + weight <= tail_bytes_;
  });
  --part->writers_waiting;
  return room;
}

size_t EmbeddedLog::writers_waiting(partition_id p) {
  Partition* part = this->part(p);
  if (!part) return 0;
  std::lock_guard<std::mutex> lock(part->ingest_mu);
  return part->writers_waiting;
}

result<ingest_offset> EmbeddedLog::ingest_end(partition_id p) {
  Partition* part = this->part(p);
  if (!part) return Status::error("no ingest partition " + std::to_string(p.value()));
  std::lock_guard<std::mutex> lock(part->ingest_mu);
  return ingest_offset{part->ingest_end};
}

result<Claim> EmbeddedLog::claim(partition_id p, const KnownHistory&) {  // its cursor says
  Partition* part = this->part(p);
  if (!part) return Status::error("no journal partition " + std::to_string(p.value()));
  std::lock_guard<std::mutex> lock(part->journal_mu);
  JournalRecord marker;
  marker.marker = true;
  marker.epoch = journal_pos{part->journal_end};
  const std::string marker_bytes = encode(marker);
  rocksdb::WriteBatch& batch =
      batch_of(part->journal_writes, journal_family(p), p, part->journal_end, "",
               std::vector<std::string>{marker_bytes});
  auto s = h_.db->Write(write_options_, &batch);
  if (!s.ok()) return Status::error("cannot write the epoch marker: " + s.ToString());
  Claim c{p, journal_pos{part->journal_end}, ingest_offset{0}};
  ++part->journal_end;
  std::string cursor;
  s = h_.db->Get(rocksdb::ReadOptions(), h_.meta, cursor_key(p), &cursor);
  if (s.ok() && cursor.size() == 8)
    c.resume = ingest_offset{static_cast<int64_t>(get_be(cursor, 0, 8))};
  else if (!s.IsNotFound() && !s.ok())
    return Status::error("cannot read the resume cursor: " + s.ToString());
  return c;
}

Status EmbeddedLog::append_journal(const Claim& claim, std::vector<JournalRecord>& records,
                                   ingest_offset next, std::vector<journal_pos>* positions) {
  Partition* part = this->part(claim.partition);
  if (!part) return Status::error("no journal partition " + std::to_string(claim.partition.value()));
  std::lock_guard<std::mutex> lock(part->journal_mu);
  for (auto& r : records) r.epoch = claim.epoch;
  int64_t pos = part->journal_end;
  const std::string cursor_at = cursor_key(claim.partition);
  std::string cursor;
  put_be(cursor, static_cast<uint64_t>(next.value()), 8);
  // Each record encoded straight into its key's value, not into a string of its own first.
  rocksdb::WriteBatch& batch = batch_with(
      part->journal_writes, journal_family(claim.partition), claim.partition, pos, records.size(),
      [&](size_t i) { return encoded_size(records[i]); },
      [&](size_t i, std::string& value) { encode_into(value, records[i]); });
  pos += static_cast<int64_t>(records.size());
  batch.Put(h_.meta, cursor_at, cursor);
  // The ingest records below the cursor are done with. The keys that hold only such records
  // (a key holds at most batch_records from its own offset on) are deleted with the cursor's
  // advance, a range at a time, so that a flush drops them instead of writing them out: the
  // ingest log keeps what is not journaled yet, as a Kafka ingest topic's retention would.
  const int64_t done_below = next.value() - static_cast<int64_t>(batch_records);
  const bool trim = done_below - part->ingest_trimmed_to >= static_cast<int64_t>(batch_records);
  if (trim) batch.DeleteRange(h_.ingest, key(claim.partition, 0), key(claim.partition, done_below));
  auto s = h_.db->Write(write_options_, &batch);
  if (!s.ok()) return Status::error("journal append failed: " + s.ToString());
  if (trim) part->ingest_trimmed_to = done_below;
  if (positions)
    for (int64_t at = part->journal_end; at < pos; ++at) positions->push_back(journal_pos{at});
  part->journal_end = pos;
  return Status::ok();
}

Status EmbeddedLog::read_journal(partition_id p, journal_pos from, size_t max,
                                 std::vector<StoredRecord>& out) {
  Partition* part = this->part(p);
  if (!part) return Status::error("no journal partition " + std::to_string(p.value()));
  std::unique_ptr<rocksdb::Iterator> it(
      h_.db->NewIterator(rocksdb::ReadOptions(), journal_family(p)));
  size_t n = 0;
  std::vector<std::string_view> records;
  for (seek_holding(*it, p, from.value()); it->Valid() && n < max; it->Next()) {
    const int64_t first = first_of(it->key(), p);
    if (first < 0) break;
    if (!split_records(view_of(it->value()), records))
      return Status::error("journal partition " + std::to_string(p.value()) + " is corrupt at position " +
                           std::to_string(first));
    for (size_t i = 0; i < records.size() && n < max; ++i) {
      const int64_t pos = first + static_cast<int64_t>(i);
      if (pos < from.value()) continue;
      auto rec = decode(records[i]);
      if (!rec)
        return Status::error("journal partition " + std::to_string(p.value()) + " position " +
                             std::to_string(pos) + ": " + rec.error().message());
      out.push_back(StoredRecord{journal_pos{pos}, std::move(rec.value())});
      ++n;
    }
  }
  if (!it->status().ok()) return Status::error("journal read failed: " + it->status().ToString());
  return Status::ok();
}

result<journal_pos> EmbeddedLog::journal_end(partition_id p) {
  Partition* part = this->part(p);
  if (!part) return Status::error("no journal partition " + std::to_string(p.value()));
  std::lock_guard<std::mutex> lock(part->journal_mu);
  return journal_pos{part->journal_end};
}

result<std::unique_ptr<Membership>> EmbeddedLog::join() {
  return std::unique_ptr<Membership>(std::make_unique<AllPartitions>(partitions()));
}

std::string EmbeddedLog::describe() const {
  return "embedded (RocksDB, " + std::to_string(parts_.size()) + " partitions)";
}

}  // namespace omniroute::events
