#include <doctest/doctest.h>

#include "events/journal.hpp"

using namespace omniroute;
using namespace omniroute::events;

TEST_CASE("journal records round-trip through their binary form") {
  JournalRecord r;
  r.epoch = journal_pos{41};
  r.ingest = ingest_offset{1234567890123};
  r.entries.push_back({entry_kind::fact, seq_no{5}, "acme", "web-1", R"({"id":"web-1"})"});
  r.entries.push_back({entry_kind::decision, seq_no{6}, "acme", "d-6", R"({"id":"d-6"})"});
  auto back = decode(encode(r));
  REQUIRE(back.has_value());
  CHECK_FALSE(back->marker);
  CHECK(back->epoch.value() == 41);
  CHECK(back->ingest.value() == 1234567890123);
  REQUIRE(back->entries.size() == 2);
  CHECK(back->entries[1].kind == entry_kind::decision);
  CHECK(back->entries[1].seq.value() == 6);
  CHECK(back->entries[1].id == "d-6");
  CHECK(back->entries[0].envelope == R"({"id":"web-1"})");

  JournalRecord marker;
  marker.marker = true;
  auto m = decode(encode(marker));
  REQUIRE(m.has_value());
  CHECK(m->marker);
  CHECK(m->entries.empty());
}

TEST_CASE("corrupt journal records are reported, not trusted") {
  JournalRecord r;
  r.entries.push_back({entry_kind::fact, seq_no{1}, "acme", "x", "{}"});
  std::string bytes = encode(r);
  CHECK_FALSE(decode(bytes.substr(0, bytes.size() - 1)).has_value());
  CHECK_FALSE(decode("garbage").has_value());
  std::string bad_kind = bytes;
  bad_kind[24] = 9;
  CHECK_FALSE(decode(bad_kind).has_value());
}

TEST_CASE("the epoch filter drops records of an owner that lost the partition") {
  auto rec = [](int64_t pos, int64_t epoch, bool marker = false) {
    StoredRecord s;
    s.pos = journal_pos{pos};
    s.record.marker = marker;
    s.record.epoch = journal_pos{epoch};
    return s;
  };
  EpochFilter f;
  CHECK_FALSE(f.accept(rec(0, 0, true)));  // owner A's marker
  CHECK(f.accept(rec(1, 0)));              // A writes
  CHECK_FALSE(f.accept(rec(2, 2, true)));  // owner B's marker
  CHECK_FALSE(f.accept(rec(3, 0)));        // A, now a zombie
  CHECK(f.accept(rec(4, 2)));              // B writes
  CHECK(f.current().value() == 2);
}
