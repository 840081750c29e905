#include <doctest/doctest.h>

#include <dlfcn.h>
#include <rocksdb/db.h>

#include <cstdint>
#include <memory>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "projections/crc32c.hpp"
#include "tests/support/support.hpp"

namespace rocksdb::crc32c {
uint32_t Extend(uint32_t crc, const char* data, size_t n);  // RocksDB's util/crc32c.h
}

namespace {

constexpr const char* extend_symbol = "_ZN7rocksdb6crc32c6ExtendEjPKcm";

uint32_t reference(uint32_t crc, const std::string& s) {
  uint32_t l = crc ^ 0xffffffffu;
  for (unsigned char c : s) {
    l ^= c;
    for (int bit = 0; bit < 8; ++bit) l = (l >> 1) ^ (0x82F63B78u & (0u - (l & 1u)));
  }
  return l ^ 0xffffffffu;
}

}  // namespace

TEST_CASE("crc32c: RocksDB's checksums use the CPU's instruction where it has one") {
  const std::string_view chosen = omniroute::projections::rocksdb_crc32c();
  if (__builtin_cpu_supports("sse4.2")) CHECK(chosen == "sse4.2");
  else CHECK(chosen != "sse4.2");
  // The definition a call to the symbol binds to (RocksDB's PLT included) is this
  // executable's, not the library's.
  void* bound = dlsym(RTLD_DEFAULT, extend_symbol);
  void* library = dlsym(RTLD_NEXT, extend_symbol);
  REQUIRE(bound != nullptr);
  REQUIRE(library != nullptr);
  CHECK(bound != library);
  CHECK(bound == reinterpret_cast<void*>(&rocksdb::crc32c::Extend));
}

TEST_CASE("crc32c: the same values as RocksDB's own and the definition, on any bytes") {
  using extend_fn = uint32_t (*)(uint32_t, const char*, size_t);
  const auto own = reinterpret_cast<extend_fn>(dlsym(RTLD_NEXT, extend_symbol));
  REQUIRE(reinterpret_cast<void*>(own) != nullptr);
  CHECK(rocksdb::crc32c::Extend(0, "123456789", 9) == 0xE3069283u);
  std::mt19937_64 random(7);
  for (int round = 0; round < 2000; ++round) {
    std::string s(random() % 700, '\0');
    for (auto& c : s) c = static_cast<char>(random());
    const uint32_t seed = static_cast<uint32_t>(random());
    const size_t from = s.empty() ? 0 : random() % s.size();  // any alignment
    const std::string tail = s.substr(from);
    const uint32_t got = rocksdb::crc32c::Extend(seed, tail.data(), tail.size());
    CHECK(got == reference(seed, tail));
    CHECK(got == own(seed, tail.data(), tail.size()));
  }
}

TEST_CASE("crc32c: a write-ahead log written with it reads back, and a flipped byte in it is found") {
  const omniroute::testing::TempDir tmp;
  const std::filesystem::path dir = tmp.sub("db");
  rocksdb::Options o;
  o.create_if_missing = true;
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kAbsoluteConsistency;
  {
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(o, dir.string(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    for (int i = 0; i < 100; ++i)
      REQUIRE(db->Put(rocksdb::WriteOptions(), "key" + std::to_string(i), std::string(300, static_cast<char>('a' + i % 26))).ok());
  }
  {  // reopened: the log replays, every record's checksum verified
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(o, dir.string(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::string v;
    REQUIRE(db->Get(rocksdb::ReadOptions(), "key57", &v).ok());
    CHECK(v == std::string(300, static_cast<char>('a' + 57 % 26)));
  }
  // The newest log holds nothing yet (reopening flushed the old one): write records, close
  // without flushing them, and flip one byte of a record's value.
  {
    rocksdb::Options keep = o;
    keep.avoid_flush_during_shutdown = true;
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(keep, dir.string(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    for (int i = 0; i < 10; ++i)
      REQUIRE(db->Put(rocksdb::WriteOptions(), "late" + std::to_string(i), std::string(300, 'z')).ok());
  }
  std::filesystem::path log;
  for (const auto& f : std::filesystem::directory_iterator(dir))
    if (f.path().extension() == ".log" && (log.empty() || f.path().filename() > log.filename())) log = f.path();
  REQUIRE(!log.empty());
  REQUIRE(std::filesystem::file_size(log) > 1000);
  {
    std::fstream f(log, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(500);
    char c = 0;
    f.read(&c, 1);
    REQUIRE(c == 'z');
    f.seekp(500);
    c = 'y';
    f.write(&c, 1);
  }
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(o, dir.string(), &raw);
  delete raw;
  CHECK_MESSAGE(s.IsCorruption(), s.ToString());
}
