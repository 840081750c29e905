#include "events/embedded_log.hpp"

#include <rocksdb/write_batch.h>

#include <chrono>
#include <cstdlib>

#include "events/bytes.hpp"
#include "events/time.hpp"

namespace omniroute::events {
namespace {

std::string key(partition_id p, int64_t n) { return EmbeddedLog::record_key(p, n); }

std::string cursor_key(partition_id p) { return "cursor/" + std::to_string(p.value()); }

// One past the last position stored under partition p's prefix in `cf`.
int64_t end_of(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, partition_id p) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf));
  it->SeekForPrev(key(p, INT64_MAX));
  if (!it->Valid()) return 0;
  auto k = it->key();
  if (k.size() != 12 || get_be({k.data(), k.size()}, 0, 4) != static_cast<uint32_t>(p.value()))
    return 0;
  return static_cast<int64_t>(get_be({k.data(), k.size()}, 4, 8)) + 1;
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

std::string EmbeddedLog::record_key(partition_id p, int64_t n) {
  std::string k;
  k.reserve(12);
  put_be(k, static_cast<uint32_t>(p.value()), 4);
  put_be(k, static_cast<uint64_t>(n), 8);
  return k;
}

EmbeddedLog::EmbeddedLog(EmbeddedHandles h, int partitions, bool sync) : h_(h) {
  write_options_.sync = sync;
  for (int i = 0; i < partitions; ++i) {
    auto part = std::make_unique<Partition>();
    part->ingest_end = end_of(h_.db, h_.ingest, partition_id{i});
    part->journal_end = end_of(h_.db, h_.journal, partition_id{i});
    parts_.push_back(std::move(part));
  }
}

EmbeddedLog::~EmbeddedLog() = default;

result<std::unique_ptr<EmbeddedLog>> EmbeddedLog::open(EmbeddedHandles h, int partitions,
                                                       bool sync) {
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
  return std::unique_ptr<EmbeddedLog>(new EmbeddedLog(h, partitions, sync));
}

EmbeddedLog::Partition* EmbeddedLog::part(partition_id p) {
  if (p.value() < 0 || p.value() >= partitions()) return nullptr;
  return parts_[static_cast<size_t>(p.value())].get();
}

namespace {
// The in-memory tail of each ingest partition keeps at most this much.
constexpr size_t tail_records = 16384;
constexpr size_t tail_bytes = 8 << 20;
// What a tail record counts against tail_bytes: its text, and about three times that for a
// parsed envelope held beside it.
size_t tail_weight(const IngestRecord& r) { return r.payload.size() * (r.parsed ? 4 : 1); }
}  // namespace

Status EmbeddedLog::append_ingest(partition_id p, const std::vector<std::string>& payloads,
                                  std::vector<ingest_offset>* offsets) {
  return append(p, payloads, nullptr, offsets);
}

Status EmbeddedLog::append_validated(partition_id p, const std::vector<std::string>& payloads,
                                     std::vector<Envelope>&& envelopes,
                                     std::vector<ingest_offset>* offsets) {
  if (envelopes.size() != payloads.size()) return count_mismatch(payloads, envelopes);
  return append(p, payloads, &envelopes, offsets);
}

Status EmbeddedLog::append(partition_id p, const std::vector<std::string>& payloads,
                           std::vector<Envelope>* envelopes, std::vector<ingest_offset>* offsets) {
  Partition* part = this->part(p);
  if (!part) return Status::error("no ingest partition " + std::to_string(p.value()));
  const int64_t now_us = wall_clock_us();
  std::string stamp;
  put_be(stamp, static_cast<uint64_t>(now_us), 8);
  rocksdb::WriteBatch batch;
  std::lock_guard<std::mutex> lock(part->ingest_mu);
  int64_t next = part->ingest_end;
  for (const auto& payload : payloads) {
    std::string k = key(p, next);
    rocksdb::Slice key_part(k);
    rocksdb::Slice value_parts[2] = {stamp, payload};
    batch.Put(h_.ingest, rocksdb::SliceParts(&key_part, 1), rocksdb::SliceParts(value_parts, 2));
    if (offsets) offsets->push_back(ingest_offset{next});
    ++next;
  }
  auto s = h_.db->Write(write_options_, &batch);
  if (!s.ok()) {
    if (offsets) offsets->resize(offsets->size() - payloads.size());
    return Status::error("ingest append failed: " + s.ToString());
  }
  if (part->tail.empty()) part->tail_start = part->ingest_end;
  for (size_t i = 0; i < payloads.size(); ++i) {
    part->tail.push_back(IngestRecord{ingest_offset{part->ingest_end + static_cast<int64_t>(i)}, now_us, payloads[i], std::nullopt});
    if (envelopes) part->tail.back().parsed = std::move((*envelopes)[i]);
    part->tail_bytes += tail_weight(part->tail.back());
  }
  while (part->tail.size() > tail_records || part->tail_bytes > tail_bytes) {
    part->tail_bytes -= tail_weight(part->tail.front());
    part->tail.pop_front();
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
    if (end > from.value() && from.value() >= part->tail_start && !part->tail.empty()) {
      const int64_t upto = std::min<int64_t>(end, from.value() + static_cast<int64_t>(max));
      for (int64_t o = from.value(); o < upto; ++o) {
        // The envelope is handed over once; a second read (after a recovery) parses.
        IngestRecord& r = part->tail[static_cast<size_t>(o - part->tail_start)];
        part->tail_bytes -= tail_weight(r);
        out.push_back(IngestRecord{r.offset, r.appended_us, r.payload, std::move(r.parsed)});
        r.parsed.reset();
        part->tail_bytes += tail_weight(r);
      }
      return Status::ok();
    }
  }
  if (end <= from.value()) return Status::ok();
  end = std::min<int64_t>(end, from.value() + static_cast<int64_t>(max));
  rocksdb::ReadOptions ro;
  std::string upper = key(p, end);
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(h_.db->NewIterator(ro, h_.ingest));
  int64_t expect = from.value();
  for (it->Seek(key(p, from.value())); it->Valid(); it->Next()) {
    auto k = it->key();
    auto v = it->value();
    int64_t offset = static_cast<int64_t>(get_be({k.data(), k.size()}, 4, 8));
    if (offset != expect || v.size() < 8)
      return Status::error("ingest partition " + std::to_string(p.value()) +
                           " is corrupt at offset " + std::to_string(expect));
    out.push_back(IngestRecord{ingest_offset{offset},
                               static_cast<int64_t>(get_be({v.data(), v.size()}, 0, 8)),
                               std::string(v.data() + 8, v.size() - 8), std::nullopt});
    ++expect;
  }
  if (!it->status().ok()) return Status::error("ingest read failed: " + it->status().ToString());
  return Status::ok();
}

result<ingest_offset> EmbeddedLog::ingest_end(partition_id p) {
  Partition* part = this->part(p);
  if (!part) return Status::error("no ingest partition " + std::to_string(p.value()));
  std::lock_guard<std::mutex> lock(part->ingest_mu);
  return ingest_offset{part->ingest_end};
}

result<Claim> EmbeddedLog::claim(partition_id p) {
  Partition* part = this->part(p);
  if (!part) return Status::error("no journal partition " + std::to_string(p.value()));
  std::lock_guard<std::mutex> lock(part->journal_mu);
  JournalRecord marker;
  marker.marker = true;
  marker.epoch = journal_pos{part->journal_end};
  auto s = h_.db->Put(write_options_, h_.journal, key(p, part->journal_end), encode(marker));
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
  rocksdb::WriteBatch batch;
  int64_t pos = part->journal_end;
  for (auto& r : records) {
    r.epoch = claim.epoch;
    batch.Put(h_.journal, key(claim.partition, pos++), encode(r));
  }
  std::string cursor;
  put_be(cursor, static_cast<uint64_t>(next.value()), 8);
  batch.Put(h_.meta, cursor_key(claim.partition), cursor);
  auto s = h_.db->Write(write_options_, &batch);
  if (!s.ok()) return Status::error("journal append failed: " + s.ToString());
  if (positions)
    for (int64_t at = part->journal_end; at < pos; ++at) positions->push_back(journal_pos{at});
  part->journal_end = pos;
  return Status::ok();
}

Status EmbeddedLog::read_journal(partition_id p, journal_pos from, size_t max,
                                 std::vector<StoredRecord>& out) {
  Partition* part = this->part(p);
  if (!part) return Status::error("no journal partition " + std::to_string(p.value()));
  rocksdb::ReadOptions ro;
  std::string upper = key(p, INT64_MAX);
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(h_.db->NewIterator(ro, h_.journal));
  size_t n = 0;
  for (it->Seek(key(p, from.value())); it->Valid() && n < max; it->Next(), ++n) {
    auto k = it->key();
    auto v = it->value();
    auto rec = decode({v.data(), v.size()});
    int64_t pos = static_cast<int64_t>(get_be({k.data(), k.size()}, 4, 8));
    if (!rec)
      return Status::error("journal partition " + std::to_string(p.value()) + " position " +
                           std::to_string(pos) + ": " + rec.error().message());
    out.push_back(StoredRecord{journal_pos{pos}, std::move(rec.value())});
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
