// The whole-key memtable answers every read as RocksDB's skiplist memtable does: the same
// writes go to two column families, one with each, and every read is compared.
#include <doctest/doctest.h>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "projections/whole_key_memtable.hpp"

using omniroute::projections::WholeKeyMemTableFactory;

namespace {

struct TwoFamilies {
  std::string dir;
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // default, skiplist, whole key
  explicit TwoFamilies(size_t memtable_bytes) {
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
    whole.memtable_prefix_bloom_size_ratio = 0.05;  // as the ids view has
    whole.memtable_whole_key_filtering = true;
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
      // A batch of puts and deletes, some of one key several times.
      rocksdb::WriteBatch batch;
      const int n = 1 + static_cast<int>(rng() % 8);
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
