// One conformance suite for every EventLog engine. Each case runs against the embedded engine
// (RocksDB in a temporary directory) and the kafka engine (librdkafka's mock cluster: the real
// wire protocol on loopback). ctest runs the two halves as separate tests.
#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <set>
#include <thread>

#include "events/bytes.hpp"
#include "events/embedded_log.hpp"
#include "events/journal.hpp"
#include "events/kafka_log.hpp"
#include "projections/store.hpp"
#include "tests/support/support.hpp"

using namespace omniroute;
using namespace omniroute::events;
using namespace std::chrono_literals;

namespace {

// An engine under test: open() gives a log over the same storage each time (a restart).
struct Engine {
  virtual ~Engine() = default;
  virtual std::unique_ptr<EventLog> open() = 0;
  virtual void close() = 0;
};

struct EmbeddedEngine : Engine {
  testing::TempDir dir;
  std::unique_ptr<projections::Store> store;
  std::unique_ptr<EventLog> open() override {
    close();
    store = std::move(projections::Store::open(dir.str()).value());
    auto log = EmbeddedLog::open(store->log_handles(), 3, false);
    REQUIRE(log.has_value());
    return std::move(log.value());
  }
  void close() override { store.reset(); }
};

struct KafkaEngine : Engine {
  testing::MockKafka cluster;
  KafkaEngine() {
    cluster.create_topic("t.ingest", 3);
    cluster.create_topic("t.journal", 3);
  }
  std::unique_ptr<EventLog> open() override {
    KafkaOptions o;
    o.brokers = cluster.brokers();
    o.topic_prefix = "t.";
    o.group = "conformance";
    o.config = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"},
                {"log_level", "0"}};
    auto log = KafkaLog::open(o);
    REQUIRE_MESSAGE(log.has_value(), (log ? "" : log.error().message()));
    return std::move(log.value());
  }
  void close() override {}
};

// Reads `n` records of partition p from `from` on (bounded: a log that loses records fails).
std::vector<IngestRecord> read_n(EventLog& log, partition_id p, int64_t from, size_t n) {
  std::vector<IngestRecord> out;
  for (int round = 0; round < 100 && out.size() < n; ++round) {
    int64_t at = out.empty() ? from : out.back().offset.value() + 1;
    REQUIRE(log.read_ingest(p, ingest_offset{at}, n - out.size(), 200ms, out));
  }
  return out;
}

JournalRecord record(int64_t ingest, const std::string& id, uint64_t seq) {
  JournalRecord r;
  r.ingest = ingest_offset{ingest};
  r.entries.push_back(JournalEntry{entry_kind::fact, seq_no{seq}, "acme", id, "{\"id\":\"" + id + "\"}"});
  return r;
}

std::vector<std::string> history_ids(EventLog& log, partition_id p) {
  std::vector<std::string> ids;
  auto end = log.journal_end(p);
  REQUIRE(end.has_value());
  REQUIRE(scan_history(log, p, *end, [&](const StoredRecord& r) {
    for (const auto& e : r.record.entries) ids.push_back(e.id);
    return Status::ok();
  }));
  return ids;
}

void ingest_appends_and_reads_in_order(Engine& engine) {
  auto log = engine.open();
  CHECK(log->partitions() == 3);
  std::vector<std::string> payloads;
  for (int i = 0; i < 250; ++i) payloads.push_back("{\"n\":" + std::to_string(i) + "}");
  std::vector<ingest_offset> offsets;
  REQUIRE(log->append_ingest(partition_id{1}, payloads, &offsets));
  REQUIRE(offsets.size() == 250);
  for (int i = 0; i < 250; ++i) CHECK(offsets[i].value() == i);

  auto all = read_n(*log, partition_id{1}, 0, 250);
  REQUIRE(all.size() == 250);
  for (int i = 0; i < 250; ++i) {
    CHECK(all[i].offset.value() == i);
    CHECK(all[i].payload == payloads[i]);
    CHECK(all[i].appended_us > 0);
  }
  auto middle = read_n(*log, partition_id{1}, 100, 10);
  REQUIRE(middle.size() == 10);
  CHECK(middle.front().offset.value() == 100);
  CHECK(middle.front().payload == payloads[100]);

  // Other partitions are independent and empty.
  std::vector<IngestRecord> none;
  REQUIRE(log->read_ingest(partition_id{0}, ingest_offset{0}, 10, 50ms, none));
  CHECK(none.empty());
  auto end = log->ingest_end(partition_id{1});
  REQUIRE(end.has_value());
  CHECK(end->value() == 250);
  // Reading at the end waits, then returns nothing.
  REQUIRE(log->read_ingest(partition_id{1}, ingest_offset{250}, 10, 50ms, none));
  CHECK(none.empty());
  // A partition that does not exist is an error, not a crash.
  CHECK_FALSE(log->append_ingest(partition_id{7}, payloads, nullptr));
}

// Validated appends read back as their text; an engine that hands the envelope over gives
// exactly the envelope the text is of, and only once.
size_t validated_appends_read_back_as_their_text(Engine& engine) {
  auto log = engine.open();
  std::vector<std::string> payloads;
  std::vector<Envelope> envelopes;
  for (int i = 0; i < 20; ++i) {
    Envelope e;
    e.id = "v" + std::to_string(i);
    e.type = "conversation.message";
    e.tenant = "acme";
    e.time_ms = 1795168800000 + i;
    e.data = {{"conversation", "c"}, {"from", "customer"}, {"text", "n\u00e9 " + std::to_string(i)}};
    payloads.push_back(to_text(e));
    envelopes.push_back(std::move(e));
  }
  REQUIRE(log->append_validated(partition_id{2}, std::vector<std::string>(payloads), std::move(envelopes), 7, nullptr));
  auto first = read_n(*log, partition_id{2}, 0, 20);
  REQUIRE(first.size() == 20);
  size_t handed = 0;
  for (int i = 0; i < 20; ++i) {
    CHECK(first[i].payload == payloads[i]);
    if (first[i].parsed) {
      ++handed;
      CHECK(to_text(*first[i].parsed) == payloads[i]);
      CHECK(first[i].absent_as_of == 7);
    }
  }
  for (const auto& again : read_n(*log, partition_id{2}, 0, 20)) {
    CHECK_FALSE(again.parsed.has_value());  // handed over once at most
    CHECK(again.absent_as_of == 0);
    CHECK(again.payload == payloads[static_cast<size_t>(again.offset.value())]);
  }
  // One envelope per payload, or nothing is appended.
  std::vector<Envelope> one(1);
  CHECK_FALSE(log->append_validated(partition_id{2}, std::vector<std::string>(payloads), std::move(one), 7, nullptr));
  CHECK(log->ingest_end(partition_id{2})->value() == 20);
  return handed;
}

void journal_survives_restart_with_resume_offset(Engine& engine) {
  {
    auto log = engine.open();
    auto claim = log->claim(partition_id{2});
    REQUIRE(claim.has_value());
    CHECK(claim->resume.value() == 0);
    std::vector<JournalRecord> records = {record(0, "a", 0), record(1, "b", 1), record(2, "c", 2)};
    std::vector<journal_pos> positions;
    REQUIRE(log->append_journal(*claim, records, ingest_offset{3}, &positions));
    REQUIRE(positions.size() == 3);
    CHECK(positions[0] > claim->epoch);
    CHECK(positions[1].value() == positions[0].value() + 1);
  }
  engine.close();
  auto log = engine.open();
  auto claim = log->claim(partition_id{2});
  REQUIRE(claim.has_value());
  CHECK(claim->resume.value() == 3);
  CHECK(history_ids(*log, partition_id{2}) == std::vector<std::string>{"a", "b", "c"});

  std::vector<StoredRecord> raw;
  REQUIRE(log->read_journal(partition_id{2}, journal_pos{0}, 100, raw));
  REQUIRE(raw.size() == 5);  // marker, a, b, c, marker
  CHECK(raw[0].record.marker);
  CHECK(raw[1].record.epoch == raw[0].pos);
  CHECK(raw[4].record.marker);
  CHECK(raw[4].pos == claim->epoch);
  auto end = log->journal_end(partition_id{2});
  REQUIRE(end.has_value());
  CHECK(end->value() == raw[4].pos.value() + 1);
}

void a_zombie_writer_cannot_fork_history(Engine& engine) {
  auto log = engine.open();
  auto old_owner = log->claim(partition_id{0});
  REQUIRE(old_owner.has_value());
  std::vector<JournalRecord> first = {record(0, "before", 0)};
  REQUIRE(log->append_journal(*old_owner, first, ingest_offset{1}, nullptr));

  auto new_owner = log->claim(partition_id{0});  // a rebalance gave the partition away
  REQUIRE(new_owner.has_value());
  CHECK(new_owner->epoch > old_owner->epoch);
  CHECK(new_owner->resume.value() == 1);

  std::vector<JournalRecord> zombie = {record(1, "zombie", 1)};
  REQUIRE(log->append_journal(*old_owner, zombie, ingest_offset{2}, nullptr));
  std::vector<JournalRecord> owner = {record(1, "owner", 1)};
  REQUIRE(log->append_journal(*new_owner, owner, ingest_offset{2}, nullptr));

  CHECK(history_ids(*log, partition_id{0}) == std::vector<std::string>{"before", "owner"});
}

// A claimant that knows the history up to a position (a snapshot's) resumes where that and the
// journal after it say; on Kafka, what it knows is not read again.
void a_claim_that_knows_the_history_resumes_from_it(Engine& engine) {
  auto log = engine.open();
  auto first = log->claim(partition_id{1});
  REQUIRE(first.has_value());
  std::vector<JournalRecord> records;
  for (int i = 0; i < 5; ++i) records.push_back(record(i, "r" + std::to_string(i), static_cast<uint64_t>(i)));
  std::vector<journal_pos> at;
  REQUIRE(log->append_journal(*first, records, ingest_offset{5}, &at));
  REQUIRE(at.size() == 5);
  const KnownHistory known{journal_pos{at[2].value() + 1}, first->epoch, ingest_offset{3}};
  auto second = log->claim(partition_id{1}, known);
  REQUIRE(second.has_value());
  CHECK(second->resume.value() == 5);
  if (dynamic_cast<KafkaEngine*>(&engine)) {
    // Nothing after what it knows: the claim takes its word (the embedded engine keeps a cursor).
    auto third = log->claim(partition_id{1}, KnownHistory{journal_pos{second->epoch.value() + 1},
                                                          second->epoch, ingest_offset{42}});
    REQUIRE(third.has_value());
    CHECK(third->resume.value() == 42);
  }
}

// Reads at any position, in any order, give the records there: a reader that read to the end
// (and stopped, on Kafka) reads what is appended after it, and jumps back and forth.
void journal_reads_anywhere_in_any_order(Engine& engine) {
  auto log = engine.open();
  auto claim = log->claim(partition_id{2});
  REQUIRE(claim.has_value());
  auto append = [&](int from, int n) {
    std::vector<JournalRecord> records;
    for (int i = from; i < from + n; ++i)
      records.push_back(record(i, "r" + std::to_string(i), static_cast<uint64_t>(i)));
    REQUIRE(log->append_journal(*claim, records, ingest_offset{from + n}, nullptr));
  };
  // The id at position `pos` (the claim's marker is at claim->epoch, the records after it).
  auto id_at = [&](int64_t pos) {
    std::vector<StoredRecord> one;
    REQUIRE(log->read_journal(partition_id{2}, journal_pos{pos}, 1, one));
    REQUIRE(one.size() == 1);
    CHECK(one[0].pos.value() == pos);
    return one[0].record.entries.at(0).id;
  };
  const int64_t first = claim->epoch.value() + 1;
  append(0, 20);
  std::vector<StoredRecord> all;
  REQUIRE(log->read_journal(partition_id{2}, journal_pos{first}, 100, all));  // to the end
  CHECK(all.size() == 20);
  append(20, 5);
  CHECK(id_at(first + 20) == "r20");  // after the end it had read to
  CHECK(id_at(first + 24) == "r24");
  for (int i : {3, 17, 0, 19, 8, 22, 8, 9}) CHECK(id_at(first + i) == "r" + std::to_string(i));
}

void membership_assigns_every_partition(Engine& engine) {
  auto log = engine.open();
  auto membership = log->join();
  REQUIRE(membership.has_value());
  std::set<int> owned;
  // The mock cluster delays the first group join by about three seconds.
  for (int i = 0; i < 200 && owned.size() < 3; ++i) {
    std::vector<partition_id> assigned, revoked;
    REQUIRE((*membership)->poll(assigned, revoked, 100ms));
    for (auto p : assigned) owned.insert(p.value());
    for (auto p : revoked) owned.erase(p.value());
  }
  CHECK(owned == std::set<int>{0, 1, 2});
}

}  // namespace

TEST_CASE("embedded: the in-process reader gets validated envelopes without parsing them") {
  EmbeddedEngine engine;
  CHECK(validated_appends_read_back_as_their_text(engine) == 20);
}

// `n` validated events of one partition, every text the same size, and an embedded log whose
// in-memory tail has room for `tail_events` of them (40 unless told) with their envelopes.
struct SameSizeEvents {
  testing::TempDir dir;
  std::unique_ptr<projections::Store> store;
  std::unique_ptr<EmbeddedLog> log;
  std::vector<std::string> payloads;
  std::vector<Envelope> envelopes;
  explicit SameSizeEvents(int n, size_t tail_events = 40) {
    store = std::move(projections::Store::open(dir.str()).value());
    for (int i = 0; i < n; ++i) {
      Envelope e;
      e.id = "v" + std::to_string(1000 + i);
      e.type = "conversation.message";
      e.tenant = "acme";
      e.time_ms = 1795168800000;
      e.data = {{"conversation", "c"}, {"from", "customer"}, {"text", std::string(200, 'x')}};
      payloads.push_back(to_text(e));
      envelopes.push_back(std::move(e));
    }
    const size_t budget = tail_events * EmbeddedLog::tail_weight(payloads[0].size(), true);
    log = std::move(EmbeddedLog::open(store->log_handles(), 1, false, budget).value());
  }
  std::vector<std::string> texts(size_t from, size_t to) const {
    return {payloads.begin() + static_cast<long>(from), payloads.begin() + static_cast<long>(to)};
  }
  // Appends events [from, to) as a front door does, ten at a time.
  void append(size_t from, size_t to) {
    for (size_t i = from; i < to; i += 10) {
      const size_t end = std::min(to, i + 10);
      std::vector<Envelope> mine(envelopes.begin() + static_cast<long>(i),
                                 envelopes.begin() + static_cast<long>(end));
      REQUIRE(log->append_validated(partition_id{0}, texts(i, end), std::move(mine), 7, nullptr));
    }
  }
};

TEST_CASE("embedded: a reader behind the in-memory tail reads the older records from storage") {
  SameSizeEvents events(100);
  events.append(0, 100);
  const auto& payloads = events.payloads;
  auto got = read_n(*events.log, partition_id{0}, 0, 100);
  REQUIRE(got.size() == 100);
  for (size_t i = 0; i < 100; ++i) {
    CHECK(got[i].offset.value() == static_cast<int64_t>(i));
    CHECK(got[i].payload == payloads[i]);
    CHECK(got[i].parsed.has_value() == (i >= 60));  // only the tail's are handed over
    if (got[i].parsed) CHECK(to_text(*got[i].parsed) == payloads[i]);
  }
}

TEST_CASE("embedded: a tail drained after a burst larger than the room it keeps serves the next records") {
  // 5,000 records in the tail at once, past the 4,096 whose room a drained tail keeps: the
  // read that drains it gives the rest of the room back, and the next appends start anew.
  SameSizeEvents events(6000, 6000);
  const auto& payloads = events.payloads;
  auto read_from_tail = [&](int64_t from, size_t n) {
    auto got = read_n(*events.log, partition_id{0}, from, n);
    REQUIRE(got.size() == n);
    for (size_t i = 0; i < n; ++i) {
      const size_t at = static_cast<size_t>(from) + i;
      CHECK(got[i].offset.value() == static_cast<int64_t>(at));
      CHECK(got[i].payload == payloads[at]);
      REQUIRE(got[i].parsed.has_value());  // from the tail, not storage
      CHECK(to_text(*got[i].parsed) == payloads[at]);
    }
  };
  events.append(0, 5000);
  read_from_tail(0, 4000);  // 1,000 left: the tail keeps them, and its room
  read_from_tail(4000, 1000);  // drained
  events.append(5000, 6000);
  read_from_tail(5000, 1000);
}

TEST_CASE("embedded: a writer has room while what the reader has not read fits the tail") {
  SameSizeEvents events(60);
  EventLog& log = *events.log;
  const partition_id p{0};
  const auto ten = events.texts(0, 10);
  CHECK(log.await_room(p, ten, 0ms));
  events.append(0, 30);
  CHECK(log.await_room(p, ten, 0ms));  // 30 + 10 fit
  events.append(30, 40);
  CHECK_FALSE(log.await_room(p, ten, 0ms));  // 40 + 10 do not
  // A writer that waits is let go by the read that makes room, not by its deadline.
  auto waiting = std::async(std::launch::async, [&] { return log.await_room(p, ten, 120s); });
  while (events.log->writers_waiting(p) == 0) std::this_thread::yield();
  CHECK(read_n(log, p, 0, 10).size() == 10);
  REQUIRE(waiting.wait_for(60s) == std::future_status::ready);
  CHECK(waiting.get());
  CHECK(read_n(log, p, 10, 30).size() == 30);
  // With nothing unread, even more than the tail holds has room: it is appended, and the
  // tail keeps what it can.
  CHECK(log.await_room(p, events.texts(0, 60), 0ms));
}

TEST_CASE("embedded: records the tail dropped unread stop counting against the room") {
  SameSizeEvents events(60);
  EventLog& log = *events.log;
  const partition_id p{0};
  const auto ten = events.texts(0, 10);
  events.append(0, 60);  // no reader yet (an import): the tail drops the first 20
  CHECK_FALSE(log.await_room(p, ten, 0ms));  // the 40 it holds fill it
  auto dropped = read_n(log, p, 0, 20);      // read back from storage
  REQUIRE(dropped.size() == 20);
  CHECK_FALSE(dropped.back().parsed.has_value());
  CHECK_FALSE(log.await_room(p, ten, 0ms));  // still 40 unread in the tail
  auto held = read_n(log, p, 20, 10);
  REQUIRE(held.size() == 10);
  CHECK(held.front().parsed.has_value());
  CHECK(log.await_room(p, ten, 0ms));  // 30 + 10 fit
}

TEST_CASE("embedded: records appended together share a key, and every record reads alone") {
  EmbeddedEngine engine;
  std::vector<std::string> payloads;
  for (int i = 0; i < 2500; ++i) payloads.push_back("{\"n\":" + std::to_string(i) + "}");
  {
    auto log = engine.open();
    const auto before = engine.store->write_totals();
    // 2,500 records: three keys (1,024 records at most under one), then one more append.
    REQUIRE(log->append_ingest(partition_id{1}, payloads, nullptr));
    CHECK(engine.store->write_totals().keys - before.keys == 3);
    // Each append writes its own keys alone (the partition's batch is used again).
    auto keys_written = [&, last = engine.store->write_totals().keys]() mutable {
      const uint64_t now = engine.store->write_totals().keys, n = now - last;
      last = now;
      return n;
    };
    REQUIRE(log->append_ingest(partition_id{1}, {"{\"n\":2500}"}, nullptr));
    CHECK(keys_written() == 1);
    payloads.push_back("{\"n\":2500}");

    auto claim = log->claim(partition_id{1});
    REQUIRE(claim.has_value());
    CHECK(keys_written() == 1);  // the epoch marker
    std::vector<JournalRecord> records;
    for (int i = 0; i < 1499; ++i) records.push_back(record(i, "r" + std::to_string(i), static_cast<uint64_t>(i)));
    REQUIRE(log->append_journal(*claim, records, ingest_offset{1499}, nullptr));
    CHECK(keys_written() == 3);  // two keys of records, and the cursor
    std::vector<JournalRecord> last{record(1499, "r1499", 1499)};
    REQUIRE(log->append_journal(*claim, last, ingest_offset{1500}, nullptr));
    CHECK(keys_written() == 2);
  }
  auto log = engine.open();  // a restart finds the ends from the last keys
  CHECK(log->ingest_end(partition_id{1})->value() == 2501);
  const int64_t journal_end = log->journal_end(partition_id{1})->value();
  CHECK(journal_end == 1501);  // the marker, then 1,500 records
  // Reads from any offset, across the keys' boundaries, by the RocksDB iterator (a new
  // process has no in-memory tail).
  for (int64_t from : {0, 1, 1023, 1024, 1025, 2047, 2048, 2499, 2500}) {
    std::vector<IngestRecord> got;
    REQUIRE(log->read_ingest(partition_id{1}, ingest_offset{from}, 3, 0ms, got));
    REQUIRE(got.size() == static_cast<size_t>(std::min<int64_t>(3, 2501 - from)));
    for (size_t i = 0; i < got.size(); ++i) {
      CHECK(got[i].offset.value() == from + static_cast<int64_t>(i));
      CHECK(got[i].payload == payloads[static_cast<size_t>(from) + i]);
    }
  }
  EmbeddedLog::RecordReader reader(engine.store->log_handles().db,
                                   engine.store->journal_families(3).value());
  for (int64_t pos : {1, 2, 1023, 1024, 1025, 1500, 1300, 5}) {  // forwards and back
    std::vector<StoredRecord> one;
    REQUIRE(log->read_journal(partition_id{1}, journal_pos{pos}, 1, one));
    REQUIRE(one.size() == 1);
    CHECK(one[0].pos.value() == pos);
    CHECK(one[0].record.entries.at(0).id == "r" + std::to_string(pos - 1));
    auto bytes = reader.at(partition_id{1}, pos);
    REQUIRE(bytes.has_value());
    CHECK(decode(*bytes).value().entries.at(0).id == "r" + std::to_string(pos - 1));
  }
  CHECK_FALSE(reader.at(partition_id{1}, 1501).has_value());
  CHECK_FALSE(reader.at(partition_id{0}, 0).has_value());
  CHECK(history_ids(*log, partition_id{1}).size() == 1500);
}

// Appends `rounds` rounds of 10 records to each partition of `log` from `claims`, flushing the
// journal's column families after each round: a table file per round and partition.
void append_rounds(EmbeddedLog& log, rocksdb::DB* db, const std::vector<Claim>& claims,
                   int rounds) {
  std::vector<rocksdb::ColumnFamilyHandle*> families;
  for (const Claim& c : claims) families.push_back(log.journal_family(c.partition));
  for (int round = 0; round < rounds; ++round) {
    for (const Claim& c : claims) {
      std::vector<JournalRecord> records;
      for (int i = 0; i < 10; ++i)
        records.push_back(record(
            round * 10 + i,
            "p" + std::to_string(c.partition.value()) + "-" + std::to_string(round * 10 + i), 0));
      REQUIRE(log.append_journal(c, records, ingest_offset{round * 10 + 10}, nullptr));
    }
    for (auto* family : families) REQUIRE(db->Flush(rocksdb::FlushOptions(), family).ok());
  }
}

TEST_CASE("embedded: each journal partition is a column family, its flushes one after the other") {
  testing::TempDir dir;
  auto store = std::move(projections::Store::open(dir.str()).value());
  auto log = std::move(EmbeddedLog::open(store->log_handles(), 3, false).value());
  std::vector<Claim> claims;
  for (int p = 0; p < 3; ++p) claims.push_back(log->claim(partition_id{p}).value());
  rocksdb::DB* db = store->log_handles().db;
  append_rounds(*log, db, claims, 4);
  std::set<rocksdb::ColumnFamilyHandle*> distinct;
  for (int p = 0; p < 3; ++p) {
    rocksdb::ColumnFamilyHandle* family = log->journal_family(partition_id{p});
    distinct.insert(family);
    CHECK(family->GetName() == "journal." + std::to_string(p));
    // Every table file holds this partition's keys only, and each file's keys follow the
    // previous file's: nothing for a compaction to merge, so files move down as they are.
    rocksdb::ColumnFamilyMetaData meta;
    db->GetColumnFamilyMetaData(family, &meta);
    std::vector<std::pair<std::string, std::string>> ranges;
    for (const auto& level : meta.levels)
      for (const auto& file : level.files) ranges.emplace_back(file.smallestkey, file.largestkey);
    REQUIRE(ranges.size() == 4);
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 0; i < ranges.size(); ++i) {
      CHECK(get_be(ranges[i].first, 0, 4) == static_cast<uint64_t>(p));
      CHECK(get_be(ranges[i].second, 0, 4) == static_cast<uint64_t>(p));
      if (i + 1 < ranges.size()) CHECK(ranges[i].second < ranges[i + 1].first);
    }
    CHECK(history_ids(*log, partition_id{p}).size() == 40);
  }
  CHECK(distinct.size() == 3);
  // Reopened, the store opens the families it made, and the log reads on from where it was.
  log.reset();
  store.reset();
  store = std::move(projections::Store::open(dir.str()).value());
  log = std::move(EmbeddedLog::open(store->log_handles(), 3, false).value());
  for (int p = 0; p < 3; ++p) {
    CHECK(log->journal_end(partition_id{p})->value() == 41);  // the marker and 40 records
    CHECK(history_ids(*log, partition_id{p}).size() == 40);
  }
  // The partition count is the log's: a store asked for another count says so.
  auto fewer = store->journal_families(2);
  REQUIRE_FALSE(fewer.has_value());
  CHECK(fewer.error().message().find("has 3 partitions") != std::string::npos);
}

TEST_CASE("embedded: a journal's column families made in part are made whole") {
  // The partition count is recorded before the families are made: a crash between the two
  // leaves fewer families than partitions, and the next opening makes the rest.
  testing::TempDir dir;
  {
    auto store = std::move(projections::Store::open(dir.str()).value());
    REQUIRE(store->journal_families(1).value().size() == 1);
  }
  auto store = std::move(projections::Store::open(dir.str()).value());
  auto log = EmbeddedLog::open(store->log_handles(), 3, false);
  REQUIRE(log.has_value());
  for (int p = 0; p < 3; ++p)
    CHECK((*log)->journal_family(partition_id{p})->GetName() == "journal." + std::to_string(p));
}

TEST_CASE("embedded: a directory with one journal column family for all partitions still works") {
  // The layout before the journal was split by partition: one "journal" family.
  testing::TempDir dir;
  {
    rocksdb::DB* raw = nullptr;
    rocksdb::Options o(projections::Store::db_options(), rocksdb::ColumnFamilyOptions());
    REQUIRE(rocksdb::DB::Open(o, dir.str(), &raw).ok());
    rocksdb::ColumnFamilyHandle* journal = nullptr;
    REQUIRE(raw->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), "journal", &journal).ok());
    REQUIRE(raw->DestroyColumnFamilyHandle(journal).ok());
    delete raw;
  }
  for (int opening = 0; opening < 2; ++opening) {
    auto store = std::move(projections::Store::open(dir.str()).value());
    auto log = std::move(EmbeddedLog::open(store->log_handles(), 3, false).value());
    std::vector<Claim> claims;
    for (int p = 0; p < 3; ++p) {
      CHECK(log->journal_family(partition_id{p})->GetName() == "journal");
      claims.push_back(log->claim(partition_id{p}).value());
    }
    append_rounds(*log, store->log_handles().db, claims, 2);
    for (int p = 0; p < 3; ++p)
      CHECK(history_ids(*log, partition_id{p}).size() == 20u * (opening + 1));
  }
  std::vector<std::string> families;
  REQUIRE(
      rocksdb::DB::ListColumnFamilies(projections::Store::db_options(), dir.str(), &families).ok());
  for (const auto& name : families) CHECK(name.rfind("journal.", 0) != 0);
}

TEST_CASE("embedded: records stored one per key, as earlier versions did, still read") {
  EmbeddedEngine engine;
  {
    auto log = engine.open();  // creates the column families
  }
  {
    // Written as earlier versions wrote them: ingest offsets 0-2 and journal positions 0-1
    // of partition 2, each under its own key.
    engine.open();
    const auto h = engine.store->log_handles();
    rocksdb::ColumnFamilyHandle* journal = engine.store->journal_families(3).value().at(2);
    for (int64_t i = 0; i < 3; ++i) {
      std::string value;
      put_be(value, 1795168800000000ull + static_cast<uint64_t>(i), 8);
      value += "{\"old\":" + std::to_string(i) + "}";
      REQUIRE(h.db->Put(rocksdb::WriteOptions(), h.ingest, EmbeddedLog::record_key(partition_id{2}, i), value).ok());
    }
    JournalRecord marker;
    marker.marker = true;
    marker.epoch = journal_pos{0};  // a claim's marker at position 0, and a record it wrote
    JournalRecord old = record(0, "old", 0);
    old.epoch = journal_pos{0};
    REQUIRE(h.db->Put(rocksdb::WriteOptions(), journal, EmbeddedLog::record_key(partition_id{2}, 0),
                      encode(marker))
                .ok());
    REQUIRE(h.db->Put(rocksdb::WriteOptions(), journal, EmbeddedLog::record_key(partition_id{2}, 1),
                      encode(old))
                .ok());
  }
  auto log = engine.open();
  CHECK(log->ingest_end(partition_id{2})->value() == 3);
  CHECK(log->journal_end(partition_id{2})->value() == 2);
  REQUIRE(log->append_ingest(partition_id{2}, {"{\"new\":3}", "{\"new\":4}"}, nullptr));
  auto all = read_n(*log, partition_id{2}, 0, 5);
  REQUIRE(all.size() == 5);
  CHECK(all[1].payload == "{\"old\":1}");
  CHECK(all[1].appended_us == 1795168800000001);
  CHECK(all[4].payload == "{\"new\":4}");
  std::vector<IngestRecord> from_old;  // through the iterator, across old and new keys
  engine.close();
  log = engine.open();
  REQUIRE(log->read_ingest(partition_id{2}, ingest_offset{2}, 10, 0ms, from_old));
  REQUIRE(from_old.size() == 3);
  CHECK(from_old[0].payload == "{\"old\":2}");
  CHECK(from_old[2].payload == "{\"new\":4}");
  auto claim = log->claim(partition_id{2});
  REQUIRE(claim.has_value());
  CHECK(claim->epoch.value() == 2);
  std::vector<JournalRecord> next = {record(3, "new", 1)};
  REQUIRE(log->append_journal(*claim, next, ingest_offset{4}, nullptr));
  CHECK(history_ids(*log, partition_id{2}) == std::vector<std::string>{"old", "new"});
}

// The keys of partition p in the ingest column family, by the offset of their first record.
std::vector<int64_t> ingest_keys(const EmbeddedHandles& h, partition_id p) {
  std::unique_ptr<rocksdb::Iterator> it(h.db->NewIterator(rocksdb::ReadOptions(), h.ingest));
  std::vector<int64_t> out;
  const std::string from = EmbeddedLog::record_key(p, 0);
  for (it->Seek(from); it->Valid() && it->key().starts_with(rocksdb::Slice(from.data(), 4)); it->Next())
    out.push_back(static_cast<int64_t>(get_be(std::string_view(it->key().data(), it->key().size()), 4, 8)));
  REQUIRE(it->status().ok());
  return out;
}

TEST_CASE("embedded: ingest records the journal has consumed are deleted, a whole key at a time") {
  EmbeddedEngine engine;
  std::vector<std::string> payloads;
  for (int i = 0; i < 5000; ++i) payloads.push_back("{\"n\":" + std::to_string(i) + "}");
  {
    auto log = engine.open();
    for (size_t from = 0; from < payloads.size(); from += 700)  // keys of 700 records
      REQUIRE(log->append_ingest(partition_id{1}, std::vector<std::string>(payloads.begin() + static_cast<long>(from),
                                                                            payloads.begin() + static_cast<long>(std::min<size_t>(from + 700, payloads.size()))),
                                 nullptr));
    REQUIRE(log->append_ingest(partition_id{0}, {"{\"other\":0}"}, nullptr));
    const std::vector<int64_t> all{0, 700, 1400, 2100, 2800, 3500, 4200, 4900};
    REQUIRE(ingest_keys(engine.store->log_handles(), partition_id{1}) == all);
    auto claim = log->claim(partition_id{1});
    REQUIRE(claim.has_value());
    std::vector<JournalRecord> records{record(1499, "r0", 0)};
    // Up to 1,024 records behind the cursor are kept (a key holds at most that many), and a
    // trim waits until it would delete at least as many.
    REQUIRE(log->append_journal(*claim, records, ingest_offset{1500}, nullptr));
    CHECK(ingest_keys(engine.store->log_handles(), partition_id{1}) == all);
    records = {record(2449, "r1", 1)};
    REQUIRE(log->append_journal(*claim, records, ingest_offset{2450}, nullptr));
    // Keys 0, 700 and 1400 hold records below 2,450 only; key 2100 holds 2,450 too.
    CHECK(ingest_keys(engine.store->log_handles(), partition_id{1}) ==
          std::vector<int64_t>{2100, 2800, 3500, 4200, 4900});
    CHECK(ingest_keys(engine.store->log_handles(), partition_id{0}) == std::vector<int64_t>{0});
  }
  engine.close();
  auto log = engine.open();  // no in-memory tail: reads come from storage
  CHECK(log->ingest_end(partition_id{1})->value() == 5000);
  auto claim = log->claim(partition_id{1});
  REQUIRE(claim.has_value());
  CHECK(claim->resume.value() == 2450);
  std::vector<IngestRecord> got;
  REQUIRE(log->read_ingest(partition_id{1}, ingest_offset{2450}, 3, 0ms, got));
  REQUIRE(got.size() == 3);
  CHECK(got[0].payload == payloads[2450]);
  CHECK(got[2].payload == payloads[2452]);
  std::vector<IngestRecord> gone;
  const Status below = log->read_ingest(partition_id{1}, ingest_offset{5}, 3, 0ms, gone);
  REQUIRE_FALSE(below);
  CHECK(below.message() == "ingest partition 1 has no record at offset 5 (records the journal has are deleted)");
  std::vector<JournalRecord> records{record(2499, "r2", 2)};
  REQUIRE(log->append_journal(*claim, records, ingest_offset{2500}, nullptr));  // trims from 0 again
  CHECK(ingest_keys(engine.store->log_handles(), partition_id{1}) ==
        std::vector<int64_t>{2100, 2800, 3500, 4200, 4900});
  CHECK(read_n(*log, partition_id{0}, 0, 1).at(0).payload == "{\"other\":0}");
}

#define CONFORMANCE(name, fn)                          \
  TEST_CASE("embedded: " name) {                       \
    EmbeddedEngine engine;                             \
    fn(engine);                                        \
  }                                                    \
  TEST_CASE("kafka: " name) {                          \
    KafkaEngine engine;                                \
    fn(engine);                                        \
  }

CONFORMANCE("ingest appends and reads in order", ingest_appends_and_reads_in_order)
CONFORMANCE("validated appends read back as their text", validated_appends_read_back_as_their_text)
CONFORMANCE("journal survives a restart with its resume offset",
            journal_survives_restart_with_resume_offset)
CONFORMANCE("a zombie writer cannot fork history", a_zombie_writer_cannot_fork_history)
CONFORMANCE("a claim that knows the history up to a position resumes from it",
            a_claim_that_knows_the_history_resumes_from_it)
CONFORMANCE("journal reads anywhere, in any order, and after the end it read to",
            journal_reads_anywhere_in_any_order)
CONFORMANCE("membership assigns every partition", membership_assigns_every_partition)

TEST_CASE("kafka: a topic that could lose acknowledged events is named, with its fix") {
  // As a cluster describes a topic made with its defaults: min.insync.replicas 1.
  const std::map<std::string, std::string> defaults = {{"min.insync.replicas", "1"},
                                                       {"unclean.leader.election.enable", "false"}};
  const auto three = durability_warnings("omniroute.journal", 3, defaults);
  REQUIRE(three.size() == 1);
  CHECK(three[0] ==
        "kafka topic omniroute.journal is set to min.insync.replicas=1: acks=all then waits for "
        "its leader alone, and an event acknowledged just before the leader is lost is lost (set "
        "it to 2: kafka-configs.sh --alter --entity-type topics --entity-name omniroute.journal "
        "--add-config min.insync.replicas=2)");
  const auto one = durability_warnings("omniroute.ingest", 1, defaults);  // one broker
  REQUIRE(one.size() == 1);
  CHECK(one[0].find("omniroute.ingest has one replica") != std::string::npos);
  CHECK(durability_warnings(
            "omniroute.journal", 3,
            {{"min.insync.replicas", "2"}, {"unclean.leader.election.enable", "false"}})
            .empty());
  const auto unclean = durability_warnings(
      "omniroute.journal", 3,
      {{"min.insync.replicas", "2"}, {"unclean.leader.election.enable", "true"}});
  REQUIRE(unclean.size() == 1);
  CHECK(unclean[0].find("unclean.leader.election.enable=true") != std::string::npos);
  CHECK(durability_warnings("omniroute.journal", 0, {}).empty());  // nothing known, nothing said
}

TEST_CASE("kafka: extra settings tune the clients, but not what the log sets itself") {
  CHECK(check_kafka_config({{"message.timeout.ms", "2000"},
                            {"linger.ms", "20"},
                            {"security.protocol", "ssl"},
                            {"session.timeout.ms", "6000"}}));
  const Status acks = check_kafka_config({{"linger.ms", "20"}, {"acks", "1"}});
  REQUIRE_FALSE(acks);
  CHECK(acks.message() ==
        "--kafka-config acks=1: omniroute sets acks itself (an acknowledged event must be on "
        "every in-sync replica (acks=all)); leave it out");
  for (const char* key : {"bootstrap.servers", "group.id", "enable.idempotence", "transactional.id",
                          "enable.auto.commit", "request.required.acks"})
    CHECK_FALSE(check_kafka_config({{key, "x"}}));
  // Refused before anything connects: no broker is needed to find out.
  KafkaOptions o;
  o.brokers = "127.0.0.1:1";
  o.config = {{"enable.idempotence", "false"}};
  auto log = KafkaLog::open(o);
  REQUIRE_FALSE(log);
  CHECK(log.error().message().find("--kafka-config enable.idempotence=false") == 0);
}

TEST_CASE(
    "kafka: a topic set to lose what the log needs is refused, naming the setting and its fix") {
  // What a cluster describes for a topic made with its defaults (retention of 7 days).
  std::map<std::string, std::string> defaults = {{"cleanup.policy", "delete"},
                                                 {"retention.ms", "604800000"},
                                                 {"retention.bytes", "-1"},
                                                 {"segment.bytes", "1073741824"}};
  const Status week = check_topic_configs("omniroute.journal", log_topic::journal, defaults);
  REQUIRE_FALSE(week);
  CHECK(
      week.message() ==
      "kafka topic omniroute.journal is set to retention.ms=604800000: the journal is the source "
      "of "
      "truth: every record must be kept, and none compacted; set it with kafka-configs.sh --alter "
      "--entity-type topics --entity-name omniroute.journal --add-config retention.ms=-1");
  // The ingest topic keeps the cluster's retention.
  CHECK(check_topic_configs("omniroute.ingest", log_topic::ingest, defaults));

  std::map<std::string, std::string> compacted = defaults;
  compacted["cleanup.policy"] = "compact,delete";
  compacted["retention.bytes"] = "1073741824";
  const Status both = check_topic_configs("omniroute.journal", log_topic::journal, compacted);
  REQUIRE_FALSE(both);
  CHECK(both.message().find("is set to cleanup.policy=compact,delete, retention.bytes=1073741824, "
                            "retention.ms=604800000:") != std::string::npos);
  CHECK(both.message().find(
            "--add-config cleanup.policy=delete,retention.bytes=-1,retention.ms=-1") !=
        std::string::npos);
  const Status ingest = check_topic_configs("omniroute.ingest", log_topic::ingest, compacted);
  REQUIRE_FALSE(ingest);
  CHECK(
      ingest.message().find("omniroute.ingest is set to cleanup.policy=compact,delete: a compacted "
                            "topic refuses the log's records") != std::string::npos);

  // What the log creates its topics with passes; settings the cluster did not describe are not
  // known to be wrong.
  CHECK(check_topic_configs("omniroute.journal", log_topic::journal,
                            required_topic_configs(log_topic::journal)));
  CHECK(check_topic_configs("omniroute.ingest", log_topic::ingest,
                            required_topic_configs(log_topic::ingest)));
  CHECK(check_topic_configs("omniroute.journal", log_topic::journal, {}));

  // The nodes topic keeps each partition's latest owner: compacted, and nothing deleted by age.
  CHECK(check_topic_configs("omniroute.nodes", log_topic::nodes,
                            required_topic_configs(log_topic::nodes)));
  const Status aged = check_topic_configs("omniroute.nodes", log_topic::nodes, compacted);
  REQUIRE_FALSE(aged);
  CHECK(aged.message().find(
            "omniroute.nodes is set to cleanup.policy=compact,delete: it must keep each "
            "partition's latest owner") != std::string::npos);
  CHECK(aged.message().find("--add-config cleanup.policy=compact") != std::string::npos);
}

// The mock cluster keeps about 5 MiB a partition and drops its oldest records past that, as a
// topic's retention would: what the log reads from a position it no longer has.
TEST_CASE(
    "kafka: a journal whose start was deleted is refused, not read from where it now starts") {
  KafkaEngine engine;
  auto log = engine.open();
  auto claim = log->claim(partition_id{1});
  REQUIRE(claim.has_value());
  const std::string big(100000, 'x');
  for (int round = 0; round < 8; ++round) {  // 8 MiB in records of 100 KB
    std::vector<JournalRecord> records;
    for (int i = 0; i < 10; ++i) {
      JournalRecord r = record(round * 10 + i, "f" + std::to_string(round * 10 + i), 0);
      r.entries[0].envelope = big;
      records.push_back(std::move(r));
    }
    REQUIRE(log->append_journal(*claim, records, ingest_offset{round * 10 + 10}, nullptr));
  }
  std::vector<StoredRecord> out;
  const Status from_start = log->read_journal(partition_id{1}, journal_pos{0}, 5, out);
  REQUIRE_FALSE(from_start);
  INFO(from_start.message());
  CHECK(from_start.message().rfind(
            "kafka journal partition 1 has no record at position 0 (the next it has is ", 0) == 0);
  CHECK(from_start.message().find("): records were deleted, and the journal must keep every one "
                                  "(retention.ms=-1 on t.journal)") != std::string::npos);
  CHECK(out.empty());
  // What is left reads as it is, from a position it has.
  auto end = log->journal_end(partition_id{1});
  REQUIRE(end.has_value());
  REQUIRE(log->read_journal(partition_id{1}, journal_pos{end->value() - 2}, 2, out));
  REQUIRE(out.size() == 2);
  CHECK(out[1].pos.value() == end->value() - 1);

  // The ingest log gives what it still has: a reader sees the gap in the offsets (the partition
  // host reports the events lost, PartitionProcessor::report_lost).
  std::vector<std::string> payloads(80, big);
  REQUIRE(log->append_ingest(partition_id{2}, payloads, nullptr));
  std::vector<IngestRecord> got;
  REQUIRE(log->read_ingest(partition_id{2}, ingest_offset{0}, 1, 5s, got));
  REQUIRE(got.size() == 1);
  CHECK(got[0].offset.value() > 0);
}
