// The whole-key memtable answers every read as RocksDB's skiplist memtable does: the same
// writes go to two column families, one with each, and every read is compared.
#include <doctest/doctest.h>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "events/journal.hpp"
#include "projections/store.hpp"
#include "projections/whole_key_memtable.hpp"
#include "tests/support/support.hpp"

using omniroute::projections::WholeKeyMemTableFactory;

namespace {

struct TwoFamilies {
  std::string dir;
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // default, skiplist, whole key
  // With `prefix`, both families have it as their prefix extractor (as the journeys view has);
  // without, the whole-key one has a memtable bloom filter (as the ids view has).
  explicit TwoFamilies(size_t memtable_bytes,
                       std::shared_ptr<const rocksdb::SliceTransform> prefix = nullptr) {
    dir = (std::filesystem::temp_directory_path() /
           ("omniroute-memtable-test-" + std::to_string(::getpid()) + "-" + std::to_string(memtable_bytes)))
              .string();
    std::filesystem::remove_all(dir);
    rocksdb::DBOptions o;
    o.create_if_missing = true;
    o.create_missing_column_families = true;
    o.allow_concurrent_memtable_write = false;
    rocksdb::ColumnFamilyOptions skiplist, whole;
    skiplist.write_buffer_size = whole.write_buffer_size = memtable_bytes;
    whole.memtable_factory = std::make_shared<WholeKeyMemTableFactory>();
    if (prefix) {
      skiplist.prefix_extractor = whole.prefix_extractor = prefix;
    } else {
      whole.memtable_prefix_bloom_size_ratio = 0.05;
      whole.memtable_whole_key_filtering = true;
    }
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs{
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()}, {"skiplist", skiplist}, {"whole", whole}};
    REQUIRE(rocksdb::DB::Open(o, dir, cfs, &handles, &db).ok());
  }
  ~TwoFamilies() {
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    delete db;
    std::filesystem::remove_all(dir);
  }
  rocksdb::ColumnFamilyHandle* skiplist() const { return handles[1]; }
  rocksdb::ColumnFamilyHandle* whole() const { return handles[2]; }
};

std::optional<std::string> get(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const std::string& key,
                               const rocksdb::Snapshot* snapshot = nullptr) {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  std::string value;
  const rocksdb::Status s = db->Get(ro, cf, key, &value);
  REQUIRE((s.ok() || s.IsNotFound()));
  if (s.IsNotFound()) return std::nullopt;
  return value;
}

// Every (key, value) in order, forwards (and checked backwards), as of `snapshot`.
std::vector<std::pair<std::string, std::string>> scan(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                                                      const rocksdb::Snapshot* snapshot = nullptr) {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf));
  std::vector<std::pair<std::string, std::string>> out;
  for (it->SeekToFirst(); it->Valid(); it->Next()) out.emplace_back(it->key().ToString(), it->value().ToString());
  REQUIRE(it->status().ok());
  std::vector<std::pair<std::string, std::string>> back;
  for (it->SeekToLast(); it->Valid(); it->Prev()) back.emplace_back(it->key().ToString(), it->value().ToString());
  REQUIRE(back.size() == out.size());
  for (size_t i = 0; i < back.size(); ++i) REQUIRE(back[i] == out[out.size() - 1 - i]);
  return out;
}

// Where Seek and SeekForPrev land for `target`: the key found, or "" at the end.
std::pair<std::string, std::string> seeks(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                                          const std::string& target) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf));
  it->Seek(target);
  std::string a = it->Valid() ? it->key().ToString() : "";
  it->SeekForPrev(target);
  std::string b = it->Valid() ? it->key().ToString() : "";
  return {a, b};
}

// Keys made to stress the sort: long shared prefixes (past the 24 bytes sorted inline), keys
// that are prefixes of others, zero and 0xff bytes.
std::string key_of(uint64_t n) {
  switch (n % 4) {
    case 0: return "tenant" + std::to_string(n % 3) + std::string(1, '\0') + "tenant-with-a-long-name-" + std::to_string(n);
    case 1: return "t" + std::to_string(n % 7);
    case 2: return std::string("t\xff", 2) + std::to_string(n) + std::string(1, '\0');
    default: return "k" + std::to_string(n);
  }
}

}  // namespace

TEST_CASE("whole-key memtable: reads equal the skiplist memtable's, through overwrites, deletes, snapshots and flushes") {
  for (const size_t memtable_bytes : {size_t(64) << 20, size_t(32) << 10}) {  // never / often flushed
    CAPTURE(memtable_bytes);
    TwoFamilies t(memtable_bytes);
    std::mt19937_64 rng(11);
    std::map<std::string, std::string> now;  // what the latest reads must give
    std::vector<const rocksdb::Snapshot*> snapshots;
    for (int step = 0; step < 4000; ++step) {
      // A batch of puts and deletes, some of one key several times; now and then a batch
      // longer than the whole-key memtable's groups of entries indexed together, so that reads
      // meet both a group indexed by the write and entries still waiting for theirs.
      rocksdb::WriteBatch batch;
      const int n = step % 16 == 0 ? 20 + static_cast<int>(rng() % 40) : 1 + static_cast<int>(rng() % 8);
      for (int i = 0; i < n; ++i) {
        const std::string key = key_of(rng() % 600);
        if (rng() % 5 == 0) {
          batch.Delete(t.skiplist(), key);
          batch.Delete(t.whole(), key);
          now.erase(key);
        } else {
          const std::string value = "v" + std::to_string(step) + "." + std::to_string(i);
          batch.Put(t.skiplist(), key, value);
          batch.Put(t.whole(), key, value);
          now[key] = value;
        }
      }
      REQUIRE(t.db->Write(rocksdb::WriteOptions(), &batch).ok());
      if (rng() % 200 == 0) snapshots.push_back(t.db->GetSnapshot());
      if (rng() % 500 == 0) {
        REQUIRE(t.db->Flush(rocksdb::FlushOptions(), t.whole()).ok());
        REQUIRE(t.db->Flush(rocksdb::FlushOptions(), t.skiplist()).ok());
      }
      for (int r = 0; r < 3; ++r) {
        const std::string key = key_of(rng() % 700);  // some never written
        const auto expected = now.count(key) ? std::optional<std::string>(now[key]) : std::nullopt;
        REQUIRE(get(t.db, t.whole(), key) == expected);
        REQUIRE(get(t.db, t.skiplist(), key) == expected);
        if (!snapshots.empty()) {
          const rocksdb::Snapshot* s = snapshots[rng() % snapshots.size()];
          REQUIRE(get(t.db, t.whole(), key, s) == get(t.db, t.skiplist(), key, s));
        }
      }
      if (step % 250 == 0) {
        const std::string target = key_of(rng() % 700).substr(0, 1 + rng() % 20);
        REQUIRE(seeks(t.db, t.whole(), target) == seeks(t.db, t.skiplist(), target));
        const auto listed = scan(t.db, t.whole());
        REQUIRE(listed == std::vector<std::pair<std::string, std::string>>(now.begin(), now.end()));
        for (const rocksdb::Snapshot* s : snapshots) REQUIRE(scan(t.db, t.whole(), s) == scan(t.db, t.skiplist(), s));
      }
    }
    // MultiGet, which the front door's idempotency lookups use.
    std::vector<std::string> keys;
    for (uint64_t k = 0; k < 700; k += 3) keys.push_back(key_of(k));
    std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
    std::vector<rocksdb::PinnableSlice> values(keys.size());
    std::vector<rocksdb::Status> statuses(keys.size());
    t.db->MultiGet(rocksdb::ReadOptions(), t.whole(), keys.size(), slices.data(), values.data(), statuses.data());
    for (size_t i = 0; i < keys.size(); ++i) {
      CAPTURE(keys[i]);
      if (now.count(keys[i])) {
        REQUIRE(statuses[i].ok());
        CHECK(values[i].ToString() == now[keys[i]]);
      } else {
        CHECK(statuses[i].IsNotFound());
      }
    }
    for (const rocksdb::Snapshot* s : snapshots) t.db->ReleaseSnapshot(s);
  }
}

namespace {

// A key of the journeys' shape: tenant, 0, customer, 0x1f, a start time and a conversation;
// or, one in nine, a key outside the prefix extractor's domain (no 0x1f).
std::string visit_key_of(uint64_t n) {
  if (n % 9 == 0) return "plain" + std::to_string(n);
  char start[16];
  std::snprintf(start, sizeof start, "%015llu", static_cast<unsigned long long>(n * 7919 % 100000));
  return "t" + std::to_string(n % 2) + std::string(1, '\0') + "u" + std::to_string(n % 13) + "\x1f" + start +
         "c" + std::to_string(n);
}

// The keys of `prefix`, forwards from it and backwards from past its end, in RocksDB's prefix
// mode (as Store::documents_with_prefix reads the journeys).
std::pair<std::vector<std::string>, std::vector<std::string>> prefix_reads(
    rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const std::string& prefix,
    const rocksdb::Snapshot* snapshot = nullptr) {
  rocksdb::ReadOptions ro;
  ro.prefix_same_as_start = true;
  ro.snapshot = snapshot;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf));
  std::vector<std::string> forwards, backwards;
  for (it->Seek(prefix); it->Valid(); it->Next()) forwards.push_back(it->key().ToString());
  for (it->SeekForPrev(prefix + std::string(8, '\xff')); it->Valid(); it->Prev())
    backwards.push_back(it->key().ToString());
  REQUIRE(it->status().ok());
  return {forwards, backwards};
}

}  // namespace

TEST_CASE("whole-key memtable: reads while it is written see every write that returned") {
  // The writer takes the lock only when a group is indexed or a list grows (InsertKey): reads
  // on other threads meet entries appended without it, waiting for their group, in every
  // state. With a prefix extractor as well, whose list is appended the same way.
  // key_of repeats some keys (n % 7, n % 3): the keys written are those of distinct numbers.
  constexpr size_t keys = 20000;
  std::vector<std::string> key;
  std::set<std::string> seen;
  for (uint64_t n = 0; key.size() < keys; ++n)
    if (seen.insert(key_of(n)).second) key.push_back(key_of(n));
  auto value_of = [](uint64_t i) { return "v" + std::to_string(i); };
  for (const bool with_prefix : {false, true}) {
    CAPTURE(with_prefix);
    TwoFamilies t(size_t(64) << 20,
                  with_prefix ? omniroute::projections::prefix_through('\0') : nullptr);
    std::atomic<size_t> written{0};  // key[0 .. written) are in the memtable
    std::atomic<uint64_t> missing{0}, wrong{0}, reads{0};
    std::vector<std::thread> readers;
    for (int r = 0; r < 3; ++r)
      readers.emplace_back([&, r] {
        std::mt19937_64 rng(static_cast<uint64_t>(r) + 1);
        for (size_t w = written.load(); w < keys; w = written.load()) {
          if (w == 0) {
            std::this_thread::yield();
            continue;
          }
          // The newest key written (the likeliest to be waiting for its group), and one at
          // random before it.
          for (const size_t i : {w - 1, static_cast<size_t>(rng() % w)}) {
            std::string value;
            const rocksdb::Status s = t.db->Get(rocksdb::ReadOptions(), t.whole(), key[i], &value);
            if (s.IsNotFound())
              ++missing;
            else if (!s.ok() || value != value_of(i))
              ++wrong;
            ++reads;
          }
        }
      });
    rocksdb::WriteOptions no_log;
    no_log.disableWAL = true;
    uint64_t reads_before = 0;
    for (size_t i = 0; i < keys; ++i) {
      REQUIRE(t.db->Put(no_log, t.whole(), key[i], value_of(i)).ok());
      written.store(i + 1);
      // Every 500 keys, until the readers have read since the last time: they read all along,
      // however the threads are scheduled.
      if ((i + 1) % 500 != 0 || i + 1 == keys) continue;  // readers stop at the last
      while (reads.load() == reads_before) std::this_thread::yield();
      reads_before = reads.load();
    }
    for (auto& th : readers) th.join();
    CHECK(missing.load() == 0);
    CHECK(wrong.load() == 0);
    CHECK(reads.load() > 0);
    CHECK(scan(t.db, t.whole()).size() == keys);
  }
}

TEST_CASE("whole-key memtable with a prefix extractor: prefix reads and total-order scans equal the skiplist's") {
  using omniroute::projections::prefix_through;
  for (const size_t memtable_bytes : {size_t(64) << 20, size_t(32) << 10}) {
    CAPTURE(memtable_bytes);
    TwoFamilies t(memtable_bytes, prefix_through('\x1f'));
    rocksdb::DB* db = t.db;
    const std::vector<rocksdb::ColumnFamilyHandle*>& handles = t.handles;
    std::mt19937_64 rng(17);
    std::map<std::string, std::string> now;
    std::vector<const rocksdb::Snapshot*> snapshots;
    for (int step = 0; step < 3000; ++step) {
      rocksdb::WriteBatch batch;
      const int n = 1 + static_cast<int>(rng() % 6);
      for (int i = 0; i < n; ++i) {
        const std::string key = visit_key_of(rng() % 400);
        if (rng() % 6 == 0) {
          batch.Delete(handles[1], key);
          batch.Delete(handles[2], key);
          now.erase(key);
        } else {
          const std::string value = "v" + std::to_string(step) + "." + std::to_string(i);
          batch.Put(handles[1], key, value);
          batch.Put(handles[2], key, value);
          now[key] = value;
        }
      }
      REQUIRE(db->Write(rocksdb::WriteOptions(), &batch).ok());
      if (rng() % 300 == 0) snapshots.push_back(db->GetSnapshot());
      if (rng() % 700 == 0) {
        REQUIRE(db->Flush(rocksdb::FlushOptions(), handles[2]).ok());
        REQUIRE(db->Flush(rocksdb::FlushOptions(), handles[1]).ok());
      }
      if (step % 10 == 0) {
        const std::string prefix = "t" + std::to_string(rng() % 2) + std::string(1, '\0') + "u" +
                                   std::to_string(rng() % 14) + "\x1f";  // u13: never written
        CAPTURE(prefix);
        std::vector<std::string> expected;
        for (auto it = now.lower_bound(prefix); it != now.end() && it->first.rfind(prefix, 0) == 0; ++it)
          expected.push_back(it->first);
        const auto got = prefix_reads(db, handles[2], prefix);
        REQUIRE(got.first == expected);
        REQUIRE(got.second == std::vector<std::string>(expected.rbegin(), expected.rend()));
        REQUIRE(got == prefix_reads(db, handles[1], prefix));
        for (const rocksdb::Snapshot* s : snapshots)
          REQUIRE(prefix_reads(db, handles[2], prefix, s) == prefix_reads(db, handles[1], prefix, s));
        // A key outside the domain is read from a memtable sorted whole.
        REQUIRE(seeks(db, handles[2], "plain1") == seeks(db, handles[1], "plain1"));
      }
      if (step % 500 == 0) {
        rocksdb::ReadOptions total;
        total.total_order_seek = true;
        std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(total, handles[2]));
        std::vector<std::pair<std::string, std::string>> listed;
        for (it->SeekToFirst(); it->Valid(); it->Next()) listed.emplace_back(it->key().ToString(), it->value().ToString());
        REQUIRE(listed == std::vector<std::pair<std::string, std::string>>(now.begin(), now.end()));
      }
    }
    for (const rocksdb::Snapshot* s : snapshots) db->ReleaseSnapshot(s);
  }
}

TEST_CASE("documents_with_prefix reads a customer's latest journey documents, through flushes") {
  using namespace omniroute;
  testing::TempDir dir;
  auto opened = projections::Store::open(dir.str(), size_t(32) << 10);  // flushed often
  REQUIRE(opened);
  projections::Store& store = *opened.value();
  std::mt19937_64 rng(23);
  std::map<std::string, std::map<std::string, int>> model;  // customer -> key -> value
  for (int step = 0; step < 600; ++step) {
    projections::ViewBatch batch(store);
    for (int i = 0; i < 5; ++i) {
      const std::string customer = "u" + std::to_string(rng() % 20);
      char start[16];
      std::snprintf(start, sizeof start, "%015d", static_cast<int>(rng() % 1000));
      // Now and then a key past the target the backward read starts from (the prefix, then
      // eight 0xff bytes): the read goes forwards instead.
      const std::string rest = rng() % 50 == 0 ? std::string(9, '\xff') : std::string(start) + "c" + std::to_string(rng() % 3);
      const int value = step * 10 + i;
      batch.put_document(projections::view::journeys, "acme", customer + "\x1f" + rest, nlohmann::json{{"v", value}});
      model[customer][customer + "\x1f" + rest] = value;
    }
    REQUIRE(batch.commit(partition_id{0}, journal_pos{step + 1}));
    if (step % 20 == 0) {
      const std::string customer = "u" + std::to_string(rng() % 21);  // u20: none
      CAPTURE(customer);
      for (const size_t limit : {size_t(1), size_t(3), size_t(1000)}) {
        std::vector<nlohmann::json> expected;
        for (const auto& [key, value] : model[customer]) expected.push_back(nlohmann::json{{"v", value}});
        if (expected.size() > limit) expected.erase(expected.begin(), expected.end() - static_cast<long>(limit));
        CHECK(store.documents_with_prefix(projections::view::journeys, "acme", customer + "\x1f", limit) == expected);
      }
    }
  }
}

TEST_CASE("seqs_of answers each key in its place, whatever the order of the keys asked") {
  using namespace omniroute;
  testing::TempDir dir;
  auto opened = projections::Store::open(dir.str());
  REQUIRE(opened);
  projections::Store& store = *opened.value();
  // Ids of two tenants, journaled as facts with seqs, one record per tenant.
  std::map<std::pair<std::string, std::string>, uint64_t> known;
  projections::ViewBatch batch(store);
  int64_t pos = 0;
  for (const std::string tenant : {"acme", "zeta"}) {
    events::JournalRecord r;
    r.ingest = ingest_offset{pos};
    for (uint64_t seq = 0; seq < 40; ++seq) {
      const std::string id = "e" + std::to_string((seq * 37) % 101);
      r.entries.push_back(events::JournalEntry{events::entry_kind::fact, seq_no{seq}, tenant, id, "{}"});
      known[{tenant, id}] = seq;
    }
    batch.put_record(r, partition_id{0}, journal_pos{pos++});
  }
  REQUIRE(batch.commit(partition_id{0}, journal_pos{pos}));
  std::vector<std::pair<std::string, std::string>> asked;
  std::mt19937_64 rng(5);
  for (int i = 0; i < 300; ++i)  // known and unknown, repeated, in no order
    asked.emplace_back(rng() % 2 ? "acme" : "zeta", "e" + std::to_string(rng() % 120));
  const std::vector<std::pair<std::string_view, std::string_view>> views(asked.begin(), asked.end());
  const auto got = store.seqs_of(views);
  REQUIRE(got.size() == asked.size());
  for (size_t i = 0; i < asked.size(); ++i) {
    CAPTURE(asked[i].first);
    CAPTURE(asked[i].second);
    const auto it = known.find(asked[i]);
    if (it == known.end())
      CHECK_FALSE(got[i].has_value());
    else
      CHECK(got[i] == seq_no{it->second});
  }
}

TEST_CASE("bytewise_order sorts keys as their bytes compare: shared beginnings, zeros, high bytes, prefixes") {
  using namespace omniroute;
  std::mt19937_64 rng(11);
  // Bytes drawn from a few that make ties and near-ties: zero, one, 0x7f, 0x80, 0xff and 'a'.
  const char alphabet[] = {'\0', '\x01', '\x7f', '\x80', '\xff', 'a'};
  for (const size_t shared : {size_t{0}, size_t{3}, size_t{17}}) {
    const std::string start(shared, 'k');
    std::vector<std::string> owned;
    for (int i = 0; i < 400; ++i) {
      std::string k = start;
      const size_t n = rng() % 22;  // around the 16 bytes read as words
      for (size_t j = 0; j < n; ++j) k.push_back(alphabet[rng() % sizeof alphabet]);
      owned.push_back(k);
      if (i % 7 == 0) owned.push_back(k);          // equal keys
      if (i % 5 == 0) owned.push_back(k + '\0');   // a key and itself with a zero after
    }
    const std::vector<std::string_view> keys(owned.begin(), owned.end());
    const std::vector<uint32_t> order = projections::bytewise_order(keys);
    REQUIRE(order.size() == keys.size());
    std::vector<std::string> got;
    for (const uint32_t i : order) got.push_back(owned[i]);
    std::vector<std::string> want = owned;
    std::sort(want.begin(), want.end());  // std::string compares as unsigned bytes
    CHECK(got == want);
    std::vector<uint32_t> seen(order);
    std::sort(seen.begin(), seen.end());
    for (uint32_t i = 0; i < seen.size(); ++i) REQUIRE(seen[i] == i);  // each position once
  }
}
