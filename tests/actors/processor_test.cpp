// The partition processor on the embedded engine: exactly once across restarts, views that
// catch up with the journal, and rebuild equal to live.
#include <doctest/doctest.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/table_properties.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>

#include "actors/partition_processor.hpp"
#include "actors/snapshot.hpp"
#include "actors/warm_up.hpp"
#include "adapters/ingest.hpp"
#include "events/compact_doc.hpp"
#include "events/embedded_log.hpp"
#include "events/time.hpp"
#include "ops/server.hpp"
#include "tests/support/full_disk.hpp"
#include "tests/support/support.hpp"

using namespace omniroute;
using namespace omniroute::actors;
using namespace std::chrono_literals;
using omniroute::testing::event;

namespace {

struct Node {
  std::unique_ptr<projections::Store> store;
  std::unique_ptr<events::EventLog> log;
  ProcessorObserver observer;
  explicit Node(const std::string& dir,
                projections::journal_index how = projections::journal_index::local,
                rocksdb::Env* env = nullptr) {
    store = std::move(projections::Store::open(dir, 0, env).value());
    REQUIRE(store->index_journal(how).has_value());
    log = std::move(events::EmbeddedLog::open(store->log_handles(), 1, false).value());
  }
  // With `hand_over`, as the front door does: the validated envelopes go with their text, and
  // `absent_as_of` says when their keys were found unknown (0: not looked up).
  void ingest(const std::vector<nlohmann::json>& events, bool hand_over = false,
              uint64_t absent_as_of = 0) {
    std::vector<std::string> payloads;
    std::vector<events::Envelope> envelopes;
    for (const auto& e : events) {
      envelopes.push_back(events::parse_fact(e).value());
      payloads.push_back(events::to_text(envelopes.back()));
    }
    if (hand_over)
      REQUIRE(log->append_validated(partition_id{0}, std::move(payloads), std::move(envelopes), absent_as_of, nullptr));
    else
      REQUIRE(log->append_ingest(partition_id{0}, payloads, nullptr));
  }
  // Steps until the ingest log is drained.
  void drain(PartitionProcessor& p) {
    for (int i = 0; i < 1000; ++i)
      if (p.step(0ms).value() == 0) return;
    FAIL("the processor did not drain");
  }
  std::vector<nlohmann::json> journal() {
    std::vector<nlohmann::json> out;
    for (const auto& text : store->journal_after("acme", std::nullopt, 100000))
      out.push_back(nlohmann::json::parse(text));
    return out;
  }
};

// Drops every view, rebuilds them from the journal, and compares with what they were; with
// `render_fault`, as injected into the live processor (a bug in rendering a view is there in
// the rebuild too).
void check_rebuild_equals_live(
    Node& node, std::function<void(projections::view, const std::string&, const std::string&)> render_fault = {}) {
  auto live = node.store->digests();
  REQUIRE(node.store->clear_views());
  PartitionState tenants;
  tenants.render_fault = std::move(render_fault);
  auto end = node.log->journal_end(partition_id{0});
  REQUIRE(end.has_value());
  REQUIRE(replay(*node.log, *node.store, partition_id{0}, *end, tenants));
  CHECK(node.store->digests() == live);
}

std::string at(int s) { return events::format_rfc3339_ms(1795168800000 + s * 1000); }

std::vector<nlohmann::json> workload(int conversations) {
  std::vector<nlohmann::json> v = {
      event("q", "queue.configured", at(0), {{"queue", "billing"}, {"auto_accept", true}}),
      event("a1", "agent.logged_in", at(1), {{"agent", "alice"}, {"queues", {"billing"}}, {"capacity", {{"chat", 3}}}}),
      event("a2", "agent.logged_in", at(1), {{"agent", "bob"}, {"queues", {"billing"}}, {"capacity", {{"chat", 2}}}})};
  for (int i = 0; i < conversations; ++i) {
    std::string c = "c-" + std::to_string(i);
    v.push_back(event("s" + std::to_string(i), "conversation.started", at(10 + i),
                      {{"conversation", c}, {"customer", "u"}, {"channel", "web"}, {"queue", "billing"}}));
    if (i >= 2)
      v.push_back(event("e" + std::to_string(i), "conversation.ended", at(11 + i),
                        {{"conversation", "c-" + std::to_string(i - 2)}, {"by", "customer"}}));
  }
  return v;
}

}  // namespace

TEST_CASE("each ingested fact reaches the journal exactly once, across restarts and resends") {
  testing::TempDir dir;
  auto events = workload(20);
  size_t facts = events.size();
  {
    Node node(dir.str());
    node.ingest(std::vector<nlohmann::json>(events.begin(), events.begin() + 10));
    PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 4, false);
    node.drain(p);
  }
  {
    Node node(dir.str());  // restart: recover from the journal, go on from the cursor
    node.ingest(std::vector<nlohmann::json>(events.begin() + 5, events.end()));  // 5 resent
    node.ingest({events[0], events[3]});                                      // resent again
    PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 4, false);
    node.drain(p);
    auto journal = node.journal();
    std::map<std::string, int> fact_count;
    uint64_t expect_seq = 0;
    for (const auto& e : journal) {
      CHECK(e["seq"] == expect_seq++);
      if (!e.contains("cause")) ++fact_count[e["id"]];
    }
    CHECK(fact_count.size() == facts);
    for (const auto& fact : fact_count) CHECK_MESSAGE(fact.second == 1, fact.first);
    CHECK(node.store->seq_of("acme", "s7").has_value());
  }
}

TEST_CASE("envelopes handed over with their text give the journal and views their text gives") {
  // Data that a careless splice of the seq would get wrong: "tenant" keys and the text
  // `,"tenant":` inside data, escapes, non-ASCII, numbers of every kind.
  auto events = workload(12);
  events[4]["data"]["note"] = {{"tenant", "other"}, {"text", ",\"tenant\":\"x\" \u00e9\u4e2d \\ \n"}};
  events[5]["data"]["score"] = {0.1, -3, 18446744073709551615ull, 1e300, 2.5e-7};
  testing::TempDir parsed_dir, handed_dir;
  Node parsed(parsed_dir.str()), handed(handed_dir.str());
  parsed.ingest(events);
  handed.ingest(events, true);
  PartitionProcessor p1(*parsed.log, *parsed.store, partition_id{0}, parsed.observer, 5, false);
  PartitionProcessor p2(*handed.log, *handed.store, partition_id{0}, handed.observer, 5, false);
  parsed.drain(p1);
  handed.drain(p2);
  auto a = parsed.store->journal_after("acme", std::nullopt, 100000);
  auto b = handed.store->journal_after("acme", std::nullopt, 100000);
  CHECK(a.size() > events.size());  // facts and the assignments they led to
  CHECK(a == b);
  CHECK(parsed.store->digests() == handed.store->digests());
  size_t notes = 0;
  for (const auto& text : b) {
    auto e = nlohmann::json::parse(text);
    if (e["id"] == events[4]["id"]) notes += e["data"]["note"] == events[4]["data"]["note"];
  }
  CHECK(notes == 1);
}

TEST_CASE("a key two front doors found unknown is journaled once, whenever its copies arrive") {
  testing::TempDir dir;
  Node node(dir.str());
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 5, false);
  auto setup = workload(0);
  setup.push_back(event("s-k", "conversation.started", at(20),
                        {{"conversation", "c-k"}, {"customer", "u"}, {"channel", "web"}, {"queue", "billing"}}));
  node.ingest(setup, true, node.store->changes());
  node.drain(p);
  // A fact the domain would accept every time it came: only idempotency stops a second copy.
  const auto k = event("m-k", "conversation.message", at(21),
                       {{"conversation", "c-k"}, {"from", "customer"}, {"text", "hello"}});
  // Both look the key up now; one copy is journaled and its key written to the ids view
  // (every step projects) before the other arrives.
  const uint64_t looked_up = node.store->changes();
  node.ingest({k}, true, looked_up);
  node.drain(p);
  REQUIRE(node.store->seq_of("acme", "m-k"));
  node.ingest({k}, true, looked_up);
  // A copy looked up after that would have been answered as a duplicate at the door; one
  // looked up earlier but arriving in the same step as the first is caught in memory.
  const auto k2 = event("m-k2", "conversation.message", at(22),
                        {{"conversation", "c-k"}, {"from", "customer"}, {"text", "again"}});
  node.ingest({k2, k2}, true, node.store->changes());
  node.drain(p);
  size_t copies = 0, copies2 = 0;
  for (const auto& e : node.journal()) {
    copies += e["id"] == "m-k";
    copies2 += e["id"] == "m-k2";
  }
  CHECK(copies == 1);
  CHECK(copies2 == 1);
  check_rebuild_equals_live(node);
}

TEST_CASE("a key the front door found unknown before its projection left memory is looked up again") {
  testing::TempDir dir;
  Node node(dir.str());
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 5, false);
  p.keep_recent_keys(1);  // past projections' keys: only the newest generation stays
  auto setup = workload(0);
  for (const std::string c : {"1", "2", "3"})
    setup.push_back(event("s-" + c, "conversation.started", at(20),
                          {{"conversation", "c-" + c}, {"customer", "u"}, {"channel", "web"}, {"queue", "billing"}}));
  node.ingest(setup, true, node.store->changes());
  node.drain(p);
  // A message the domain accepts every time it comes (each to a conversation of its own):
  // only idempotency stops a second copy.
  auto message = [](const std::string& c) {
    return event("m-" + c, "conversation.message", at(21),
                 {{"conversation", "c-" + c}, {"from", "customer"}, {"text", "hello"}});
  };
  // m-1's copy is looked up before m-1 is projected. By the time the copy arrives, m-1 has
  // left memory (two newer keys were projected after it): only the ids view knows it.
  const uint64_t looked_up = node.store->changes();
  node.ingest({message("1")}, true, looked_up);
  node.drain(p);
  node.ingest({message("2"), message("3")}, true, node.store->changes());
  node.drain(p);
  // m-3's copy, looked up as early, is still in memory (the newest generation stays).
  node.ingest({message("1"), message("3")}, true, looked_up);
  node.drain(p);
  std::map<std::string, int> copies;
  for (const auto& e : node.journal()) {
    CHECK(e["type"] != "event.refused");
    ++copies[e["id"].get<std::string>()];
  }
  CHECK(copies["m-1"] == 1);
  CHECK(copies["m-2"] == 1);
  CHECK(copies["m-3"] == 1);
  check_rebuild_equals_live(node);
}

TEST_CASE(
    "an I/O error RocksDB does not recover from: the store must be opened again, and the front "
    "door says so at once") {
  testing::TempDir dir;
  auto disk = std::make_shared<testing::FullDisk>();
  const auto env = std::make_unique<testing::OnDisk>(disk);
  auto store = std::move(projections::Store::open(dir.str(), 0, env.get()).value());
  // A tail of 16 KiB: a few dozen events fill it while no host reads them.
  auto log = std::move(events::EmbeddedLog::open(store->log_handles(), 1, false, 16 << 10).value());
  const auto facts = workload(400);
  size_t next = 0;
  auto take = [&](size_t n) {
    std::vector<events::Envelope> out;
    for (; out.size() < n && next < facts.size(); ++next)
      out.push_back(events::parse_fact(facts[next]).value());
    return out;
  };
  const std::string one = events::to_text(events::parse_fact(facts[0]).value());
  while (log->await_room(partition_id{0}, {one}, 0ms)) {
    auto batch = take(10);
    REQUIRE_MESSAGE(!batch.empty(), "the tail never filled");
    REQUIRE(adapters::ingest(*log, *store, batch).has_value());
  }
  CHECK_FALSE(store->write_error());
  CHECK_FALSE(store->needs_reopen());

  disk->failing = true;
  auto refused = take(5);
  std::vector<std::string> texts;
  for (const auto& e : refused) texts.push_back(events::to_text(e));
  REQUIRE_FALSE(log->append_ingest(partition_id{0}, texts, nullptr));
  const auto why = store->write_error();
  REQUIRE(why);
  CHECK(why->find("Input/output error") != std::string::npos);
  CHECK(store->needs_reopen());
  // The tail is full and no host can make room while the store refuses writes: the front door
  // answers with the store's error rather than waiting out the backlog (a minute here) to
  // answer that the backlog was full.
  auto answer = adapters::ingest(*log, *store, refused, std::chrono::milliseconds(60s));
  REQUIRE_FALSE(answer.has_value());
  CHECK_FALSE(answer.error().backlog_full);
  CHECK(answer.error().message == "the store refuses writes: " + *why);
  disk->failing = false;  // mended, but RocksDB stays read-only until the store is opened again
  CHECK_FALSE(log->append_ingest(partition_id{0}, texts, nullptr));
  CHECK(store->needs_reopen());
}

TEST_CASE(
    "a full disk: writes refused while it lasts, none lost, and all go on once there is room") {
  testing::TempDir dir;
  auto disk = std::make_shared<testing::FullDisk>();
  const auto env = std::make_unique<testing::OnDisk>(disk);
  auto events = workload(30);
  const auto slice = [&](size_t from, size_t to) {
    return std::vector<nlohmann::json>(events.begin() + static_cast<long>(from),
                                       events.begin() + static_cast<long>(to));
  };
  Node node(dir.str(), projections::journal_index::local, env.get());
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 4, false);
  node.ingest(slice(0, 10));
  node.drain(p);
  node.ingest(slice(10, 20));  // acknowledged, not yet decided

  disk->full = true;
  std::vector<std::string> refused_texts;
  for (const auto& e : slice(20, 25))
    refused_texts.push_back(events::to_text(events::parse_fact(e).value()));
  const auto end_before = node.log->ingest_end(partition_id{0}).value();
  Status refused = node.log->append_ingest(partition_id{0}, refused_texts, nullptr);
  REQUIRE_FALSE(refused);
  CHECK(refused.message().find("No space left on device") != std::string::npos);
  CHECK(node.log->ingest_end(partition_id{0}).value() == end_before);  // nothing appended
  const auto why = node.store->write_error();  // what /readyz says meanwhile
  REQUIRE(why);
  CHECK(why->find("No space left on device") != std::string::npos);
  CHECK_FALSE(node.store->needs_reopen());  // RocksDB resumes by itself once there is room
  CHECK_FALSE(p.step(0ms));  // the journal append
  CHECK_FALSE(p.step(0ms));  // the recovery's epoch marker
  // RocksDB's recovery thread asks for free space every 5 s and logs, each time, that it
  // cannot resume: with RocksDB's own info log, on this disk, its writes failed and the next
  // one aborted the process (the second or third time; see projections/info_log.hpp).
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (disk->asked_while_full < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  REQUIRE(disk->asked_while_full >= 3);

  disk->full = false;  // room again: RocksDB resumes at its next look, and so do the writes
  Status resent = node.log->append_ingest(partition_id{0}, refused_texts, nullptr);
  while (!resent && std::chrono::steady_clock::now() < deadline + 30s) {
    std::this_thread::sleep_for(50ms);
    resent = node.log->append_ingest(partition_id{0}, refused_texts, nullptr);
  }
  REQUIRE(resent);
  CHECK_FALSE(node.store->write_error());
  node.ingest(slice(25, events.size()));
  for (int i = 0; i < 1000; ++i) {  // the host recovers from the journal, then drains
    auto n = p.step(0ms);
    REQUIRE(n);
    if (*n == 0) break;
  }
  std::map<std::string, int> fact_count;
  for (const auto& e : node.journal())
    if (!e.contains("cause")) ++fact_count[e["id"]];
  CHECK(fact_count.size() == events.size());
  for (const auto& fact : fact_count) CHECK_MESSAGE(fact.second == 1, fact.first);
  check_rebuild_equals_live(node);
}

TEST_CASE("RocksDB keeps table files open within the process's limit of descriptors") {
  rlimit was{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &was) == 0);
  const auto with_soft_limit = [&](rlim_t soft) {
    rlimit r = was;
    r.rlim_cur = std::min(soft, was.rlim_max);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &r) == 0);
    const int kept = projections::Store::db_options().max_open_files;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &was) == 0);
    return kept;
  };
  CHECK(with_soft_limit(1024) == 512);  // Debian's default: 512 left to connections and Kafka
  CHECK(with_soft_limit(20000) == 19488);
  CHECK(with_soft_limit(600) == 300);
  if (was.rlim_max >= 65536)
    CHECK(with_soft_limit(65536) == -1);  // all of them, as RocksDB's default
}

TEST_CASE("the journal index points into the embedded journal or holds copies, and reads the same") {
  testing::TempDir dir;
  using projections::journal_index;
  std::vector<std::string> all, middle;
  nlohmann::json live;
  auto read = [](Node& node, std::vector<std::string>& everything, std::vector<std::string>& part) {
    everything = node.store->journal_after("acme", std::nullopt, 100000);
    part = node.store->journal_after("acme", seq_no{7}, 5);  // starts inside a record
  };
  {
    Node node(dir.str(), journal_index::local);
    node.ingest(workload(20));
    PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 7, false);
    node.drain(p);
    read(node, all, middle);
    live = node.store->digests();
  }
  REQUIRE(all.size() > 40);  // facts and their decisions
  REQUIRE(middle.size() == 5);
  CHECK(nlohmann::json::parse(middle[0])["seq"] == 8);
  CHECK(middle[0] == all[8]);
  for (size_t i = 0; i < all.size(); ++i) CHECK(nlohmann::json::parse(all[i])["seq"] == i);
  {
    Node node(dir.str(), journal_index::local);  // the same way: nothing to rebuild
    CHECK(node.store->digests() == live);
  }
  for (journal_index how : {journal_index::copy, journal_index::local}) {
    // The other way: the views are cleared, and recovery rebuilds them from the journal.
    Node node(dir.str(), how);
    CHECK(node.store->journal_indexing() == how);
    CHECK(node.store->digests()["journal_index"]["entries"] == 0);
    CHECK(node.store->journal_after("acme", std::nullopt, 10).empty());
    PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 7, false);
    REQUIRE(p.recover());
    std::vector<std::string> again, again_middle;
    read(node, again, again_middle);
    CHECK(again == all);
    CHECK(again_middle == middle);
    CHECK(node.store->digests()["conversations"] == live["conversations"]);
    if (how == journal_index::local) CHECK(node.store->digests() == live);
  }
}

TEST_CASE("the journal index reads from any seq, however its records were batched") {
  using projections::journal_index;
  // Records of two tenants, of 1 to 5 entries, and one of 600 (a tick firing many timers) that
  // reaches across two buckets of seqs past its own.
  std::vector<events::JournalRecord> records;
  std::vector<std::string> acme;  // acme's entries' texts, by seq
  uint64_t other_seq = 0;
  std::mt19937 rng(11);
  for (int i = 0; i < 400; ++i) {
    const bool mine = i == 150 || rng() % 4 != 0;
    const size_t n = i == 150 ? 600 : 1 + rng() % 5;
    events::JournalRecord r;
    r.ingest = ingest_offset{i};
    for (size_t k = 0; k < n; ++k) {
      const uint64_t seq = mine ? acme.size() : other_seq++;
      const std::string text = "{\"seq\":" + std::to_string(seq) + ",\"t\":\"" + (mine ? "acme" : "other") + "\"}";
      r.entries.push_back(events::JournalEntry{k == 0 ? events::entry_kind::fact : events::entry_kind::decision,
                                               seq_no{seq}, mine ? "acme" : "other",
                                               "e" + std::to_string(i) + "-" + std::to_string(k), text});
      if (mine) acme.push_back(text);
    }
    records.push_back(std::move(r));
  }
  REQUIRE(acme.size() > 850);
  for (journal_index how : {journal_index::local, journal_index::copy}) {
    CAPTURE(static_cast<int>(how));
    std::vector<nlohmann::json> digests;
    for (size_t batch : {1, 13, 400}) {  // records per view batch
      CAPTURE(batch);
      testing::TempDir dir;
      Node node(dir.str(), how);
      auto claim = node.log->claim(partition_id{0});
      REQUIRE(claim.has_value());
      auto journaled = records;
      std::vector<journal_pos> positions;
      REQUIRE(node.log->append_journal(*claim, journaled, ingest_offset{400}, &positions));
      for (size_t i = 0; i < journaled.size(); i += batch) {
        projections::ViewBatch views(*node.store);
        for (size_t k = i; k < std::min(journaled.size(), i + batch); ++k)
          views.put_record(journaled[k], partition_id{0}, positions[k]);
        REQUIRE(views.commit(partition_id{0}, journal_pos{positions[std::min(journaled.size(), i + batch) - 1].value() + 1}));
      }
      digests.push_back(node.store->digests()["journal_index"]);
      CHECK(node.store->journal_after("acme", std::nullopt, 100000) == acme);
      for (uint64_t from = 0; from <= acme.size(); from += (from > 240 && from < 1000 ? 1 : 7)) {
        const std::optional<seq_no> after = from == 0 ? std::nullopt : std::optional<seq_no>(seq_no{from - 1});
        for (size_t limit : {1, 9, 700}) {
          auto got = node.store->journal_after("acme", after, limit);
          const size_t want = std::min(limit, acme.size() - from);
          REQUIRE(got.size() == want);
          CHECK(std::equal(got.begin(), got.end(), acme.begin() + static_cast<long>(from)));
        }
      }
      CHECK(node.store->journal_after("other", std::nullopt, 100000).size() == other_seq);
    }
    CHECK(digests[0] == digests[1]);  // the same bytes however the batches fell
    CHECK(digests[1] == digests[2]);
  }
}

TEST_CASE("a data directory whose journal index holds copies is rebuilt on opening for the embedded engine") {
  testing::TempDir dir;
  std::vector<std::string> before;
  {
    Node node(dir.str(), projections::journal_index::copy);  // as versions before pointers did
    node.ingest(workload(10));
    PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 7, false);
    node.drain(p);
    before = node.store->journal_after("acme", std::nullopt, 100000);
  }
  REQUIRE_FALSE(before.empty());
  // The embedded engine's storage of a directory, as the server and the commands open it.
  auto open = [](const std::string& data_dir) {
    ops::EngineOptions o;
    o.data_dir = data_dir;
    auto storage = ops::open_storage(o);
    REQUIRE(storage);
    return std::move(storage.value());
  };
  {
    auto storage = open(dir.str());
    CHECK(storage.views_cleared);
    CHECK(storage.store->journal_indexing() == projections::journal_index::local);
    CHECK(storage.store->journal_after("acme", std::nullopt, 100000).empty());
    ProcessorObserver quiet;
    PartitionProcessor p(*storage.log, *storage.store, partition_id{0}, quiet, 7, false);
    REQUIRE(p.recover());
    CHECK(storage.store->journal_after("acme", std::nullopt, 100000) == before);
  }
  {
    auto again = open(dir.str());
    CHECK_FALSE(again.views_cleared);
    CHECK(again.store->journal_after("acme", std::nullopt, 100000) == before);
  }
  testing::TempDir fresh;  // a new directory has no views to clear
  auto created = open(fresh.str());
  CHECK_FALSE(created.views_cleared);
  CHECK(created.store->journal_indexing() == projections::journal_index::local);
}

namespace {

using Families = std::map<std::string, rocksdb::ColumnFamilyHandle*>;

// Opens the store's directory `dir` with RocksDB itself, with the store's column families (the
// options of each first given to `adjust`), hands `inspect` the database and the families by
// name, and closes it: what an earlier version, or a tool, would have done to the directory.
void with_raw_db(const std::string& dir,
                 const std::function<void(rocksdb::ColumnFamilyOptions&)>& adjust,
                 const std::function<void(rocksdb::DB*, const Families&)>& inspect) {
  auto descs = projections::Store::column_families_of(dir).value();
  for (auto& d : descs) adjust(d.options);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  REQUIRE(rocksdb::DB::Open(projections::Store::db_options(), dir, descs, &handles, &raw).ok());
  Families by_name;
  for (size_t i = 0; i < descs.size(); ++i) by_name[descs[i].name] = handles[i];
  inspect(raw, by_name);
  for (auto* h : handles) REQUIRE(raw->DestroyColumnFamilyHandle(h).ok());
  delete raw;
}
void as_they_are(rocksdb::ColumnFamilyOptions&) {}

}  // namespace

TEST_CASE("views built by an earlier version's journal index are rebuilt on opening") {
  testing::TempDir dir;
  std::vector<std::string> before;
  {
    Node node(dir.str(), projections::journal_index::local);
    node.ingest(workload(10));
    PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 7, false);
    node.drain(p);
    before = node.store->journal_after("acme", std::nullopt, 100000);
  }
  REQUIRE_FALSE(before.empty());
  // Record the journal index as the versions with an entry per record did.
  with_raw_db(dir.str(), as_they_are, [](rocksdb::DB* db, const Families& families) {
    REQUIRE(db->Put(rocksdb::WriteOptions(), families.at("view_meta"), "journal_index", "local").ok());
  });
  ops::EngineOptions o;
  o.data_dir = dir.str();
  auto storage = ops::open_storage(o);
  REQUIRE(storage);
  CHECK(storage->views_cleared);
  CHECK(storage->store->journal_after("acme", std::nullopt, 100000).empty());
  ProcessorObserver quiet;
  PartitionProcessor p(*storage->log, *storage->store, partition_id{0}, quiet, 7, false);
  REQUIRE(p.recover());
  CHECK(storage->store->journal_after("acme", std::nullopt, 100000) == before);
}

TEST_CASE("views compacted by levels, as before, open and read under universal compaction") {
  // A directory whose conversations view was compacted by levels (its file on level 2, as
  // leveled compaction leaves one) opens with the store's options, and reads the same.
  testing::TempDir dir;
  using projections::view;
  std::map<std::string, events::json> written;
  {
    auto store = std::move(projections::Store::open(dir.str()).value());
    projections::ViewBatch batch(*store);
    for (int i = 0; i < 200; ++i) {
      const std::string id = "c-" + std::to_string(i);
      written[id] = events::json{{"id", id}, {"state", i % 2 ? "closed" : "queued"}};
      batch.put_document(view::conversations, "acme", id, written[id]);
    }
    REQUIRE(batch.commit(partition_id{0}, journal_pos{1}));
  }
  auto by_levels = [](rocksdb::ColumnFamilyOptions& o) {
    o.compaction_style = rocksdb::kCompactionStyleLevel;
  };
  with_raw_db(dir.str(), by_levels, [](rocksdb::DB* db, const Families& families) {
    rocksdb::CompactRangeOptions to_level_2;
    to_level_2.change_level = true;
    to_level_2.target_level = 2;
    REQUIRE(db->CompactRange(to_level_2, families.at("conversations"), nullptr, nullptr).ok());
    rocksdb::ColumnFamilyMetaData meta;
    db->GetColumnFamilyMetaData(families.at("conversations"), &meta);
    REQUIRE(meta.levels.size() > 2);
    CHECK(meta.levels[2].files.size() == 1);
  });
  auto store = projections::Store::open(dir.str());
  REQUIRE_MESSAGE(store.has_value(), (store ? "" : store.error().message()));
  for (const auto& [id, doc] : written) CHECK((*store)->document(view::conversations, "acme", id) == doc);
}

namespace {

// The table files of a column family: their compression and their data blocks' raw bytes.
struct TableFiles {
  std::string compressions;  // the names in order, each once, comma-separated
  uint64_t blocks = 0, raw_bytes = 0, keys = 0, filter_bytes = 0;
};
TableFiles table_files(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf) {
  rocksdb::TablePropertiesCollection props;
  REQUIRE(db->GetPropertiesOfAllTables(cf, &props).ok());
  TableFiles t;
  std::set<std::string> names;
  for (const auto& [file, p] : props) {
    names.insert(p->compression_name);
    t.blocks += p->num_data_blocks;
    t.raw_bytes += p->raw_key_size + p->raw_value_size;
    t.keys += p->num_entries;
    t.filter_bytes += p->filter_size;
  }
  for (const auto& n : names) t.compressions += (t.compressions.empty() ? "" : ",") + n;
  return t;
}

}  // namespace

TEST_CASE("views kept in snappy and blocks of 4 KiB, as before, read and compact into LZ4") {
  // The views keyed by id are kept in LZ4, the documents among them in blocks of 32 KiB, the
  // ids with bloom filters of 16 bits a key. A directory whose files were written the way
  // before (snappy, RocksDB's 4 KiB blocks, 10 bits) opens as it is and reads the same; a
  // compaction rewrites its files the new way.
  testing::TempDir dir;
  using projections::view;
  std::map<std::string, events::json> written;
  {
    auto store = std::move(projections::Store::open(dir.str()).value());
    projections::ViewBatch batch(*store);
    events::JournalRecord r;
    r.ingest = ingest_offset{0};
    for (int i = 0; i < 3000; ++i) {
      const std::string id = "c-" + std::to_string(i);
      written[id] = events::json{{"conversation", id}, {"customer", "u-" + std::to_string(i % 97)},
                                 {"state", i % 2 ? "closed" : "queued"}};
      batch.put_document(view::conversations, "acme", id, written[id]);
      r.entries.push_back(events::JournalEntry{events::entry_kind::fact, seq_no{uint64_t(i)}, "acme",
                                               "e-" + std::to_string(i), "{}"});
    }
    batch.put_record(r, partition_id{0}, journal_pos{0});
    REQUIRE(batch.commit(partition_id{0}, journal_pos{1}));
  }
  auto as_before = [](rocksdb::ColumnFamilyOptions& o) {
    o.compression = rocksdb::kSnappyCompression;
    rocksdb::BlockBasedTableOptions t;
    t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  };
  TableFiles before;
  with_raw_db(dir.str(), as_before, [&](rocksdb::DB* db, const Families& families) {
    auto* conversations = families.at("conversations");
    auto* ids = families.at("ids");
    for (auto* cf : {conversations, ids})
      REQUIRE(db->CompactRange(rocksdb::CompactRangeOptions(), cf, nullptr, nullptr).ok());
    before = table_files(db, conversations);
    CHECK(before.compressions == "Snappy");
    CHECK(table_files(db, ids).compressions == "Snappy");
  });
  REQUIRE(before.raw_bytes > 4 * (size_t{32} << 10));
  CHECK(before.blocks >= before.raw_bytes / (size_t{5} << 10));  // blocks of about 4 KiB
  {
    auto store = projections::Store::open(dir.str());
    REQUIRE_MESSAGE(store.has_value(), (store ? "" : store.error().message()));
    for (const auto& [id, doc] : written) CHECK((*store)->document(view::conversations, "acme", id) == doc);
    CHECK((*store)->seq_of("acme", "e-2999") == seq_no{2999});
  }
  with_raw_db(dir.str(), as_they_are, [&](rocksdb::DB* db, const Families& families) {
    auto* conversations = families.at("conversations");
    auto* ids = families.at("ids");
    for (auto* cf : {conversations, ids})
      REQUIRE(db->CompactRange(rocksdb::CompactRangeOptions(), cf, nullptr, nullptr).ok());
    const TableFiles after = table_files(db, conversations);
    CHECK(after.compressions == "LZ4");
    CHECK(after.raw_bytes == before.raw_bytes);
    CHECK(after.blocks <= after.raw_bytes / (size_t{24} << 10) + 1);  // blocks of about 32 KiB
    const TableFiles id_files = table_files(db, ids);
    CHECK(id_files.compressions == "LZ4");
    REQUIRE(id_files.keys == 3000);
    CHECK(id_files.filter_bytes * 8 >= 15 * id_files.keys);  // 16 bits a key, not 10
  });
  auto store = projections::Store::open(dir.str());
  REQUIRE(store.has_value());
  for (const auto& [id, doc] : written) CHECK((*store)->document(view::conversations, "acme", id) == doc);
  for (int i = 0; i < 3000; i += 299)
    CHECK((*store)->seq_of("acme", "e-" + std::to_string(i)) == seq_no{uint64_t(i)});
}

TEST_CASE("the store counts what it was given to write") {
  testing::TempDir dir;
  Node node(dir.str());
  const auto before = node.store->write_totals();
  std::vector<std::string> payloads;
  size_t bytes = 0;
  for (int i = 0; i < 10; ++i) {
    payloads.push_back(event("w" + std::to_string(i), "queue.configured", at(i), {{"queue", "q"}}).dump());
    bytes += payloads.back().size();
  }
  REQUIRE(node.log->append_ingest(partition_id{0}, payloads, nullptr));  // 10 records, one key
  const auto after = node.store->write_totals();
  CHECK(after.writes - before.writes == 1);
  CHECK(after.keys - before.keys == 1);
  CHECK(after.wal_bytes - before.wal_bytes >= bytes);
}

TEST_CASE("a view document reads and digests the same stored compact or as text") {
  // The partition host stores documents compact; earlier versions stored their text.
  testing::TempDir compact_dir, text_dir;
  Node compact(compact_dir.str()), text(text_dir.str());
  events::CompactDoc doc;
  doc.text("conversation", "c-1")
      .time("started_at", 1795168800000)
      .begin_array("decisions")
      .item()
      .text("type", "conversation.queued")
      .text("id", "d-1")
      .end_object()
      .end_array();
  const std::string as_text = *events::document_text(doc.bytes());
  const std::string key = "u-1\x1f" "000001795168800000c-1";
  projections::ViewBatch in_compact(*compact.store), in_text(*text.store);
  in_compact.put_document(projections::view::journeys, "acme", key, doc.bytes());
  in_text.put_document(projections::view::journeys, "acme", key, std::string_view(as_text));
  REQUIRE(in_compact.commit(partition_id{0}, journal_pos{1}));
  REQUIRE(in_text.commit(partition_id{0}, journal_pos{1}));

  const auto read = compact.store->document(projections::view::journeys, "acme", key);
  REQUIRE(read.has_value());
  CHECK(read->dump() == as_text);
  CHECK((*read)["decisions"][0]["id"] == "d-1");
  CHECK(read == text.store->document(projections::view::journeys, "acme", key));
  CHECK(compact.store->documents_with_prefix(projections::view::journeys, "acme", "u-1\x1f", 10) ==
        std::vector<nlohmann::json>{*read});
  CHECK(compact.store->digests() == text.store->digests());
}

TEST_CASE("views behind the journal catch up on recovery, and rebuild equals live") {
  testing::TempDir dir;
  nlohmann::json live;
  {
    Node node(dir.str());
    node.ingest(workload(30));
    PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 7, false);
    node.drain(p);
    live = node.store->digests();
    CHECK(live["conversations"]["entries"] == 30);
    CHECK(live["agents"]["entries"] == 2);
    CHECK(live["ids"]["entries"] == workload(30).size());
    CHECK(live["customers"]["entries"] == 1);
  }
  {
    // Reopened, the views are read from table files (the memtables were flushed at recovery):
    // whole-key lookups find what was written, and the digests are the same.
    Node node(dir.str());
    CHECK(node.store->digests() == live);
    auto doc = node.store->document(projections::view::conversations, "acme", "c-29");
    REQUIRE(doc.has_value());
    CHECK((*doc)["conversation"] == "c-29");
    CHECK((*doc)["customer"] == "u");
    CHECK(node.store->document(projections::view::customers, "acme", "u").has_value());
    CHECK_FALSE(node.store->document(projections::view::conversations, "acme", "c-30").has_value());
    CHECK(node.store->seq_of("acme", "s29").has_value());
    CHECK_FALSE(node.store->seq_of("acme", "s30").has_value());
  }
  {
    Node node(dir.str());
    REQUIRE(node.store->clear_views());  // as if every view write after the journal was lost
    CHECK(node.store->digests()["conversations"]["entries"] == 0);
    PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 7, false);
    REQUIRE(p.recover());
    CHECK(node.store->digests() == live);
  }
}

namespace {

// Runs tests/actors/crash_writer into `path` (with `flush`: it flushes the views before it
// dies) and checks that it died by SIGKILL.
void run_crash_writer(const std::string& path, bool flush) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl(OMNIROUTE_CRASH_WRITER, "crash_writer", path.c_str(), flush ? "flush" : nullptr,
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  REQUIRE(pid > 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE_MESSAGE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL),
                  "the writer did not end by SIGKILL (wait status " << status << ")");
}

}  // namespace

TEST_CASE(
    "views written without the WAL come back from the journal after a crash, however far RocksDB "
    "flushed them") {
  // The writer processes 8,003 facts with 64 KiB memtables (RocksDB flushes many times), then
  // dies by SIGKILL: the views are what the last flush left, the journal is whole.
  testing::TempDir dir;
  const std::string path = dir.str();
  run_crash_writer(path, false);

  Node node(path);
  const journal_pos end = node.log->journal_end(partition_id{0}).value();
  const journal_pos flushed = node.store->applied(partition_id{0});
  MESSAGE("journal end " << end.value() << ", views applied as flushed " << flushed.value());
  CHECK(flushed.value() > 0);  // flushes happened: what they wrote must agree with itself
  CHECK(flushed <= end);
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 50, false);
  REQUIRE(p.recover());
  auto live = node.store->digests();
  CHECK(live["ids"]["entries"] == 8003);
  CHECK(live["conversations"]["entries"] == 4000);
  CHECK(live["customers"]["entries"] == 40);
  check_rebuild_equals_live(node);
}

TEST_CASE("after Store::flush() the views survive a crash whole") {
  // What a snapshot counts on: the views (and their applied position) as of the flush are on
  // disk, though they are written without the WAL and only the logs' memtables have one.
  testing::TempDir dir;
  run_crash_writer(dir.str(), true);
  Node node(dir.str());
  const journal_pos end = node.log->journal_end(partition_id{0}).value();
  CHECK(node.store->applied(partition_id{0}) == end);
  CHECK(node.store->digests()["ids"]["entries"] == 8003);
  CHECK(node.store->digests()["conversations"]["entries"] == 4000);
}

TEST_CASE("a fact the domain refuses is journaled as a refusal and spends its id") {
  testing::TempDir dir;
  Node node(dir.str());
  node.ingest({event("m1", "conversation.message", at(1),
                     {{"conversation", "ghost"}, {"from", "customer"}, {"text", "hello?"}}),
               event("m1", "conversation.message", at(2),
                     {{"conversation", "ghost"}, {"from", "customer"}, {"text", "again"}})});
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 10, false);
  node.drain(p);
  auto journal = node.journal();
  REQUIRE(journal.size() == 1);
  CHECK(journal[0]["type"] == "event.refused");
  CHECK(journal[0]["cause"] == "m1");
  CHECK(journal[0]["data"]["reason"] == "unknown conversation");
  CHECK(node.store->seq_of("acme", "m1")->value() == 0);
  CHECK(node.store->digests()["conversations"]["entries"] == 0);
}

namespace {

// Stands for a bug in the domain: throws when it sees one of `ids`, after the domain applied it.
struct Fault {
  std::set<std::string> ids;
  int thrown = 0;
  void operator()(const events::Envelope& fact) {
    const std::string& id = fact.type == "event.refused" ? fact.cause : fact.id;
    if (!ids.count(id)) return;
    ++thrown;
    throw std::logic_error("injected failure deciding " + id);
  }
};

struct Errors : ProcessorObserver {
  std::vector<std::string> errors;
  std::map<std::pair<std::string, std::string>, size_t> counts;
  void on_error(partition_id, const std::string& message) override { errors.push_back(message); }
  void on_facts(const std::string& type, const char* result, size_t n) override { counts[{type, result}] += n; }
};

void refused_after_failure(bool hand_over) {
  testing::TempDir dir;
  Node node(dir.str());
  auto started = [](const std::string& id, const std::string& c, int s) {
    return event(id, "conversation.started", at(s),
                 {{"conversation", c}, {"customer", "u"}, {"channel", "web"}, {"queue", "billing"}});
  };
  node.ingest({event("q", "queue.configured", at(0), {{"queue", "billing"}, {"auto_accept", true}}),
               event("a1", "agent.logged_in", at(1), {{"agent", "alice"}, {"queues", {"billing"}}, {"capacity", {{"chat", 1}}}}),
               started("s1", "c1", 2),  // fails after the domain assigned it to alice
               started("s2", "c2", 3),
               event("m1", "conversation.message", at(4), {{"conversation", "c1"}, {"from", "customer"}, {"text", "hi"}}),
               started("s1", "c1", 2)},  // a resend of the refused fact
              hand_over, 0);
  Errors observer;
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, observer, 10, false);
  auto fault = std::make_shared<Fault>();
  fault->ids = {"s1"};
  p.inject_fault([fault](const events::Envelope& e) { (*fault)(e); });
  node.drain(p);

  CHECK(fault->thrown == 1);
  REQUIRE(observer.errors.size() == 1);
  CHECK(observer.errors[0].find("ingest offset 2") != std::string::npos);
  CHECK(observer.errors[0].find("injected failure deciding s1") != std::string::npos);
  std::vector<nlohmann::json> refusals;
  std::string c2_agent;
  for (const auto& e : node.journal()) {
    if (e["type"] == "event.refused") refusals.push_back(e);
    if (e["type"] == "conversation.assigned" && e["data"]["conversation"] == "c2") c2_agent = e["data"]["agent"];
    CHECK(e["id"] != "s1");
  }
  REQUIRE(refusals.size() == 2);
  CHECK(refusals[0]["cause"] == "s1");
  CHECK(refusals[0]["data"]["type"] == "conversation.started");
  CHECK(refusals[0]["data"]["reason"] == "not processed: injected failure deciding s1");
  // c1 was never assigned: alice's one slot went to c2, and c1 is unknown.
  CHECK(c2_agent == "alice");
  CHECK(refusals[1]["cause"] == "m1");
  CHECK(refusals[1]["data"]["reason"] == "unknown conversation");
  CHECK(node.store->seq_of("acme", "s1").has_value());  // its id is spent: the resend is a duplicate
  const std::map<std::pair<std::string, std::string>, size_t> expected{
      {{"queue.configured", "accepted"}, 1},     {{"agent.logged_in", "accepted"}, 1},
      {{"conversation.started", "refused"}, 1},  {{"conversation.started", "accepted"}, 1},
      {{"conversation.message", "refused"}, 1},  {{"conversation.started", "duplicate"}, 1}};
  CHECK(observer.counts == expected);
  check_rebuild_equals_live(node);
}

}  // namespace

TEST_CASE("a fact whose deciding throws is refused from the recovered state; the partition goes on") {
  for (bool hand_over : {false, true}) {  // read back from storage, or handed over parsed
    CAPTURE(hand_over);
    refused_after_failure(hand_over);
  }
}

TEST_CASE("several facts of one batch whose deciding throws are each refused once") {
  testing::TempDir dir;
  Node node(dir.str());
  std::vector<nlohmann::json> events;
  for (int i = 0; i < 8; ++i)
    events.push_back(event("q" + std::to_string(i), "queue.configured", at(i), {{"queue", "queue-" + std::to_string(i)}}));
  node.ingest(events);
  Errors observer;
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, observer, 10, false);
  auto fault = std::make_shared<Fault>();
  fault->ids = {"q2", "q3", "q6"};
  p.inject_fault([fault](const events::Envelope& e) { (*fault)(e); });
  node.drain(p);
  CHECK(fault->thrown == 3);
  CHECK(observer.errors.size() == 3);
  std::vector<std::string> journaled;
  for (const auto& e : node.journal())
    journaled.push_back(e["type"] == "event.refused" ? "refused " + e["cause"].get<std::string>() : e["id"].get<std::string>());
  const std::vector<std::string> expected{"q0", "q1", "refused q2", "refused q3", "q4", "q5", "refused q6", "q7"};
  CHECK(journaled == expected);
  check_rebuild_equals_live(node);
}

TEST_CASE("a view whose rendering throws says so; the partition goes on, and rebuild equals live") {
  testing::TempDir dir;
  Node node(dir.str());
  node.ingest(workload(4));  // c-0 .. c-3 start on alice (3 chats) and bob (2); c-0 and c-1 end
  Errors observer;
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, observer, 10, false);
  int thrown = 0;
  auto fault = [&thrown](projections::view v, const std::string& tenant, const std::string& id) {
    if (v != projections::view::conversations || tenant != "acme" || id != "c-1") return;
    ++thrown;
    throw std::logic_error("injected failure rendering c-1");
  };
  p.inject_render_fault(fault);
  node.drain(p);

  CHECK(thrown >= 1);
  REQUIRE(observer.errors.size() == static_cast<size_t>(thrown));
  CHECK(observer.errors[0] ==
        "the conversations view of 'c-1' (tenant acme) could not be rendered: injected failure rendering c-1");
  auto broken = node.store->document(projections::view::conversations, "acme", "c-1");
  REQUIRE(broken.has_value());
  CHECK(*broken == nlohmann::json{{"id", "c-1"}, {"view_error", "injected failure rendering c-1"}});
  // Everything else was decided and projected: the other conversations, the agents, c-1's
  // customer journey.
  for (const std::string c : {"c-0", "c-2", "c-3"}) {
    auto doc = node.store->document(projections::view::conversations, "acme", c);
    REQUIRE(doc.has_value());
    CHECK(doc->contains("state"));
  }
  CHECK((*node.store->document(projections::view::conversations, "acme", "c-3"))["state"] == "assigned");
  auto alice = node.store->document(projections::view::agents, "acme", "alice");
  REQUIRE(alice.has_value());
  CHECK(alice->contains("status"));
  check_rebuild_equals_live(node, fault);

  // Once rendering works again (the bug fixed), the next change of c-1 writes its view; and a
  // rebuild, all of them.
  std::string agent;
  for (const auto& e : node.journal())
    if (e["type"] == "conversation.assigned" && e["data"]["conversation"] == "c-1") agent = e["data"]["agent"];
  REQUIRE(!agent.empty());
  PartitionProcessor fixed(*node.log, *node.store, partition_id{0}, observer, 10, false);
  node.ingest({event("w1", "conversation.wrapped_up", at(100), {{"conversation", "c-1"}, {"agent", agent}})});
  node.drain(fixed);
  auto repaired = node.store->document(projections::view::conversations, "acme", "c-1");
  REQUIRE(repaired.has_value());
  CHECK(!repaired->contains("view_error"));
  CHECK((*repaired)["state"] == "closed");
  check_rebuild_equals_live(node);
}

TEST_CASE("rebuild equals live when offers are accepted, declined and re-offered") {
  testing::TempDir dir;
  Node node(dir.str());
  std::vector<nlohmann::json> events = {
      event("q", "queue.configured", at(0), {{"queue", "billing"}}),
      event("a1", "agent.logged_in", at(1), {{"agent", "alice"}, {"queues", {"billing"}}, {"capacity", {{"chat", 2}}}}),
      event("a2", "agent.logged_in", at(2), {{"agent", "bob"}, {"queues", {"billing"}}, {"capacity", {{"chat", 1}}}})};
  node.ingest(events);
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 3, false);
  node.drain(p);
  for (int i = 0; i < 12; ++i) {
    std::string c = "c-" + std::to_string(i);
    node.ingest({event("s" + std::to_string(i), "conversation.started", at(10 + 10 * i),
                       {{"conversation", c}, {"customer", "u"}, {"channel", "web"}, {"queue", "billing"}})});
    node.drain(p);
    auto doc = node.store->document(projections::view::conversations, "acme", c);
    REQUIRE(doc.has_value());
    if ((*doc)["state"] != "offered") continue;
    const std::string reply = i % 3 == 0 ? "offer.declined" : "offer.accepted";
    node.ingest({event("r" + std::to_string(i), reply, at(11 + 10 * i),
                       {{"conversation", c}, {"agent", (*doc)["agent"]}, {"offer", (*doc)["offer"]}})});
    if (i % 2 == 1)
      node.ingest({event("e" + std::to_string(i), "conversation.ended", at(12 + 10 * i), {{"conversation", c}, {"by", "customer"}}),
                   event("w" + std::to_string(i), "conversation.wrapped_up", at(13 + 10 * i), {{"conversation", c}, {"agent", (*doc)["agent"]}})});
    node.drain(p);
  }
  size_t closed = 0;
  for (int i = 0; i < 12; ++i)
    closed += (*node.store->document(projections::view::conversations, "acme", "c-" + std::to_string(i)))["state"] == "closed";
  REQUIRE(closed > 0);
  // A recovery (views up to date: nothing rendered) packs the closed conversations as the live
  // host did, and so does a rebuild (every view rendered).
  for (const bool rebuild : {false, true}) {
    if (rebuild) REQUIRE(node.store->clear_views());
    PartitionState state;
    REQUIRE(replay(*node.log, *node.store, partition_id{0}, *node.log->journal_end(partition_id{0}), state));
    CHECK(state.tenants.at("acme").packed_conversations() == closed);
    CHECK(state.tenants.at("acme").conversations_in_memory() == 12);
  }
  check_rebuild_equals_live(node);
}

// Random but valid-looking traffic (and some invalid): after it, the views rebuilt from the
// journal must equal the live ones. Catches any state change that forgets to update a view.
TEST_CASE("a conversation that leaves memory in the round it closed still has its closed view, live and rebuilt") {
  testing::TempDir dir;
  Node node(dir.str());
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 100, false);
  const int day = 24 * 3600;
  auto conversation = [&](const std::string& c, int s) {
    return std::vector<nlohmann::json>{
        event("s-" + c, "conversation.started", at(s), {{"conversation", c}, {"customer", "u"}, {"channel", "web"}, {"queue", "empty"}}),
        event("e-" + c, "conversation.ended", at(s + 1), {{"conversation", c}, {"by", "customer"}})};
  };
  node.ingest({event("q", "queue.configured", at(0), {{"queue", "empty"}})});  // no agent: ended, closed at once
  node.drain(p);
  // c-1 closes in one step and leaves memory (closed a day before) in the next; c-2 closes
  // and leaves in the same step, as a replay of them all does.
  node.ingest(conversation("c-1", 10));
  node.drain(p);
  auto c2 = conversation("c-2", 20);
  c2.push_back(event("late", "conversation.started", at(30 + day),
                     {{"conversation", "c-3"}, {"customer", "v"}, {"channel", "web"}, {"queue", "empty"}}));
  node.ingest(c2);
  node.drain(p);
  for (const char* c : {"c-1", "c-2"}) {
    auto doc = node.store->document(projections::view::conversations, "acme", c);
    REQUIRE_MESSAGE(doc.has_value(), c);
    CHECK((*doc)["state"] == "closed");
  }
  check_rebuild_equals_live(node);
}

TEST_CASE("rebuild equals live after randomized traffic") {
  for (unsigned seed = 1; seed <= 12; ++seed) {
    CAPTURE(seed);
    testing::TempDir dir;
    Node node(dir.str());
    PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 5, false);
    std::mt19937 rng(seed);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    const std::vector<std::string> queues = {"billing", "sales"}, channels = {"web", "voice", "email", "wechat"};
    const std::vector<std::string> agents = {"alice", "bob", "carol", "dan"};
    int t = 0, n = 0;
    auto send = [&](const std::string& type, nlohmann::json data) {
      node.ingest({event("e" + std::to_string(n++), type, at(t += 1 + pick(3)), std::move(data))});
    };
    send("queue.configured", {{"queue", "billing"}});
    send("queue.configured", {{"queue", "sales"}, {"auto_accept", true}, {"channels", {"web", "voice"}}});
    for (const auto& a : agents)
      send("agent.logged_in", {{"agent", a}, {"queues", {queues[static_cast<size_t>(pick(2))], "billing"}},
                               {"capacity", {{"chat", 1 + pick(3)}, {"voice", 1}}}});
    node.drain(p);
    int conversations = 0;
    for (int step = 0; step < 250; ++step) {
      std::string c = "c-" + std::to_string(conversations ? pick(conversations) : 0);
      auto doc = node.store->document(projections::view::conversations, "acme", c);
      std::string state = doc ? (*doc)["state"].get<std::string>() : "";
      std::string agent = doc && doc->contains("agent") ? (*doc)["agent"].get<std::string>() : agents[static_cast<size_t>(pick(4))];
      switch (pick(10)) {
        case 0: case 1: case 2:
          send("conversation.started", {{"conversation", "c-" + std::to_string(conversations++)}, {"customer", "u"},
                                        {"channel", channels[static_cast<size_t>(pick(4))]},
                                        {"queue", queues[static_cast<size_t>(pick(2))]}, {"bot", pick(4) == 0}});
          break;
        case 3:
          if (state == "offered")
            send(pick(3) ? "offer.accepted" : "offer.declined", {{"conversation", c}, {"agent", agent}, {"offer", (*doc)["offer"]}});
          break;
        case 4: send("conversation.ended", {{"conversation", c}, {"by", "customer"}}); break;
        case 5: send("conversation.wrapped_up", {{"conversation", c}, {"agent", agent}}); break;
        case 6:
          send("agent.status_changed", {{"agent", agents[static_cast<size_t>(pick(4))]},
                                        {"status", pick(2) ? "available" : "away"}});
          break;
        case 7:
          if (pick(2)) send("conversation.transfer_requested", {{"conversation", c}, {"to_queue", queues[static_cast<size_t>(pick(2))]}});
          else send("conversation.transfer_requested", {{"conversation", c}, {"to_agent", agents[static_cast<size_t>(pick(4))]}});
          break;
        case 8: send("conversation.handoff_requested", {{"conversation", c}}); break;
        case 9:
          if (pick(3) == 0) send("agent.logged_out", {{"agent", agents[static_cast<size_t>(pick(4))]}});
          else send("agent.logged_in", {{"agent", agents[static_cast<size_t>(pick(4))]}, {"queues", {"billing", "sales"}},
                                        {"capacity", {{"chat", 2}, {"voice", 1}, {"email", 1}}}});
          break;
      }
      node.drain(p);
    }
    check_rebuild_equals_live(node);
  }
}

TEST_CASE("records another producer wrote to the ingest log are refused or dropped, never fatal") {
  testing::TempDir dir;
  Node node(dir.str());
  struct Counting : ProcessorObserver {
    int refused = 0, errors = 0;
    void on_facts(const std::string&, const char* result, size_t n) override {
      if (std::string(result) == "refused") refused += static_cast<int>(n);
    }
    void on_error(partition_id, const std::string&) override { ++errors; }
  } observer;
  nlohmann::json bad_time = event("k-1", "agent.heartbeat", "yesterday", {{"agent", "a"}});
  REQUIRE(node.log->append_ingest(partition_id{0}, {"not json at all", "{\"no\":\"tenant\"}", bad_time.dump()}, nullptr));
  node.ingest({event("q", "queue.configured", at(1), {{"queue", "billing"}})});
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, observer, 10, false);
  node.drain(p);
  auto journal = node.journal();
  REQUIRE(journal.size() == 2);
  CHECK(journal[0]["type"] == "event.refused");
  CHECK(journal[0]["cause"] == "k-1");
  CHECK(journal[0]["data"]["field"] == "time");
  CHECK(journal[1]["id"] == "q");
  CHECK(observer.refused == 3);
  CHECK(observer.errors == 2);  // the two records naming no tenant and id are dropped
}

TEST_CASE("a step's facts are reported to the metrics by type and result") {
  testing::TempDir dir;
  Node node(dir.str());
  struct Counting : ProcessorObserver {
    std::map<std::pair<std::string, std::string>, size_t> counts;
    void on_facts(const std::string& type, const char* result, size_t n) override { counts[{type, result}] += n; }
  } observer;
  node.ingest({event("q1", "queue.configured", at(1), {{"queue", "billing"}}),
               event("q2", "queue.configured", at(1), {{"queue", "sales"}}),
               event("q1", "queue.configured", at(1), {{"queue", "billing"}}),  // a repeat
               event("s1", "conversation.started", at(2),
                     {{"conversation", "c1"}, {"customer", "u"}, {"channel", "web"}, {"queue", "nowhere"}})});
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, observer, 10, false);
  node.drain(p);
  const std::map<std::pair<std::string, std::string>, size_t> expected{
      {{"queue.configured", "accepted"}, 2},
      {{"queue.configured", "duplicate"}, 1},
      {{"conversation.started", "refused"}, 1}};
  CHECK(observer.counts == expected);
}

TEST_CASE("interval statistics count live conversations by their arrival in the queue") {
  testing::TempDir dir;
  Node node(dir.str());
  auto conv = [](const std::string& c) {
    return nlohmann::json{{"conversation", c}, {"customer", "u"}, {"channel", "web"}, {"queue", "billing"}};
  };
  // 10 s threshold; one agent with one chat slot; offers (no auto_accept).
  node.ingest({
      event("q", "queue.configured", at(0), {{"queue", "billing"}, {"sl_threshold_s", 10}}),
      event("a", "agent.logged_in", at(0), {{"agent", "alice"}, {"queues", {"billing"}}, {"capacity", {{"chat", 1}}}}),
      event("s1", "conversation.started", at(0), conv("c1")),   // offered to alice at once
      event("s2", "conversation.started", at(2), conv("c2")),   // waits: alice is busy
      event("s3", "conversation.started", at(3), conv("c3"))});
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 3, false);
  node.drain(p);
  auto offer_of = [&](const std::string& conversation) {
    std::string offer;
    for (const auto& e : node.journal())
      if (e["type"] == "conversation.offered" && e["data"]["conversation"] == conversation)
        offer = e["data"]["offer"];
    REQUIRE(!offer.empty());
    return offer;
  };
  node.ingest({
      event("x1", "offer.accepted", at(5), {{"conversation", "c1"}, {"agent", "alice"}, {"offer", offer_of("c1")}}),
      event("e3", "conversation.ended", at(8), {{"conversation", "c3"}, {"by", "customer"}}),  // abandons after 5 s
      event("e1", "conversation.ended", at(65), {{"conversation", "c1"}, {"by", "customer"}}),
      event("w1", "conversation.wrapped_up", at(75), {{"conversation", "c1"}, {"agent", "alice"}}),
      // c2 is offered to alice at 75 s and accepted at 80: 78 s after it arrived.
  });
  node.drain(p);
  node.ingest({event("x2", "offer.accepted", at(80), {{"conversation", "c2"}, {"agent", "alice"}, {"offer", offer_of("c2")}}),
               event("e2", "conversation.ended", at(100), {{"conversation", "c2"}, {"by", "agent"}}),
               event("w2", "conversation.wrapped_up", at(110), {{"conversation", "c2"}, {"agent", "alice"}})});
  node.drain(p);

  auto rows = node.store->intervals("acme", "billing", INT64_MIN / 2, INT64_MAX / 2);
  REQUIRE(rows.size() == 1);  // every arrival in one 5-minute bucket
  CHECK(rows[0].channel == "web");
  const auto& c = rows[0].counters;
  CHECK(c.offered == 3);
  CHECK(c.answered == 2);
  CHECK(c.answered_within_threshold == 1);  // c1 after 5 s; c2 after 78 s
  CHECK(c.abandoned == 1);
  CHECK(c.abandoned_within_threshold == 1);  // c3 after 5 s
  CHECK(c.queued == 3);
  CHECK(c.wait_time_ms == 5000 + 78000 + 5000);
  CHECK(c.handle_time_ms == 70000 + 30000);  // answer to wrap-up end
  check_rebuild_equals_live(node);
}

TEST_CASE("with a projection interval, views follow the journal and catch up when ingest runs dry") {
  testing::TempDir dir;
  Node node(dir.str());
  // A long interval: within the test, only an empty ingest log makes the processor project.
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 2, false, std::chrono::hours(1));
  auto events = workload(6);
  node.ingest(events);
  REQUIRE(p.step(0ms).value() == 2);  // configured and one login: journaled, views owed
  CHECK(node.log->journal_end(partition_id{0}).value().value() > 1);
  CHECK(node.store->applied(partition_id{0}).value() <= 1);  // views: the claim marker at most
  CHECK_FALSE(node.store->document(projections::view::queues, "acme", "billing").has_value());
  // A resend of a journaled fact whose key is not in the ids view yet is still a duplicate.
  node.ingest({events[0], events[1]});
  node.drain(p);
  CHECK(node.store->applied(partition_id{0}) == node.log->journal_end(partition_id{0}).value());
  auto journal = node.journal();
  std::set<std::string> ids;
  for (const auto& e : journal)
    if (!e.contains("cause")) CHECK_MESSAGE(ids.insert(e["id"].get<std::string>()).second, e["id"]);
  CHECK(ids.size() == events.size());
  CHECK(node.store->document(projections::view::queues, "acme", "billing").has_value());
  check_rebuild_equals_live(node);
}

namespace {

// A processor of one node that can be restarted as a process would (destroyed and made again)
// or as after a crash of its state (invalidated: the next step recovers from the journal).
struct Restartable {
  Node& node;
  size_t snapshot_every;
  std::unique_ptr<PartitionProcessor> p;
  Restartable(Node& n, size_t every) : node(n), snapshot_every(every) { start(); }
  void start() {
    p = std::make_unique<PartitionProcessor>(*node.log, *node.store, partition_id{0}, node.observer, 7, false);
    p->take_snapshots(snapshot_every);
  }
  void restart(bool crash) {
    if (crash) {
      p->invalidate();
    } else {
      p.reset();
      start();
    }
    REQUIRE(p->recover());
  }
};

// Traffic over every kind of state a partition keeps: queues with relaxation, overflow,
// strategies and wrap-up; agents with skills, blocks and heartbeats; conversations through
// bots, offers, transfers, priorities, reopening; customers' profiles and journeys;
// arbitration policies, decisions and outcomes; schedules; imported contacts; days passing.
// Each event is made from what the reference node's views and journal say, and sent to every
// node alike.
struct Traffic {
  std::mt19937 rng;
  int64_t t = 0;
  int n = 0, conversations = 0;
  std::vector<std::string> decided;  // arbitration decisions that chose an action
  std::optional<seq_no> seen;        // of the reference journal
  explicit Traffic(unsigned seed) : rng(seed) {}
  int pick(int k) { return static_cast<int>(rng() % static_cast<unsigned>(k)); }
  template <typename T>
  const T& one_of(const std::vector<T>& v) { return v[static_cast<size_t>(pick(static_cast<int>(v.size())))]; }
  nlohmann::json make(const std::string& type, nlohmann::json data) {
    t += 1 + pick(3);
    if (pick(60) == 0) t += 86400 + pick(2 * 86400);  // a day or two pass
    return event("t" + std::to_string(n++), type, at(static_cast<int>(t)), std::move(data));
  }
  std::vector<nlohmann::json> setup() {
    std::vector<nlohmann::json> out = {
        make("queue.configured", {{"queue", "sales"}, {"channels", {"web", "voice", "email"}}, {"offer_timeout_s", 10},
                                  {"no_answer_limit", 2}, {"strategy", "round_robin"}, {"reopen_preference_s", 30}}),
        make("queue.configured", {{"queue", "billing"}, {"requirement", "agent.skills.billing >= 2"},
                                  {"auto_accept", true}, {"wrap_up_s", 30}, {"strategy", "most_proficient"},
                                  {"relax", {{{"after_s", 15}, {"requirement", ""}}, {{"after_s", 40}, {"overflow_to", "sales"}}}}}),
        make("policy.published", {{"policy", nlohmann::json::parse(R"({
          "id": "offers", "intents": ["cancel"],
          "actions": [
            {"name": "retention", "company_value": 100, "routing": {"queue": "sales"},
             "contact_policy": {"max": 1, "per_days": 7, "suppress_after_refusals": 2, "suppress_days": 30}},
            {"name": "fallback", "company_value": 1,
             "context_weights": [{"when": "customer.credit == \"gold\"", "weight": 3}]}]})")}}),
        make("policy.published", {{"policy", nlohmann::json::parse(R"({
          "id": "golden", "intents": ["billing_question"], "weights": {"company": 2, "customer": 0.5},
          "actions": [
            {"name": "a", "company_value": 10, "customer_value": 20, "propensity_prior": {"alpha": 3, "beta": 1},
             "context_weights": [{"when": "intent.confidence >= 0.9", "weight": 2}]},
            {"name": "b", "company_value": 40, "customer_value": -10}]})")}}),
    };
    for (const auto& a : agents) out.push_back(login(a));
    return out;
  }
  nlohmann::json login(const std::string& agent) {
    return make("agent.logged_in", {{"agent", agent}, {"queues", {"billing", "sales"}},
                                    {"skills", {{"billing", 1 + pick(5)}}}, {"blocks", {{"voice", {"web"}}}},
                                    {"heartbeat_timeout_s", pick(2) ? 0 : 60},
                                    {"capacity", {{"web", 2}, {"voice", 1}, {"email", 1}, {"wechat", 1}}}});
  }
  const std::vector<std::string> agents = {"alice", "bob", "carol", "dan"};
  nlohmann::json next(Node& reference) {
    const std::vector<std::string> queues = {"billing", "sales"}, channels = {"web", "voice", "email", "wechat"};
    const std::vector<std::string> customers = {"u1", "u2", "u3", "u4", "u5"};
    for (const auto& text : reference.store->journal_after("acme", seen, 100000)) {
      auto e = nlohmann::json::parse(text);
      seen = seq_no{e["seq"].get<uint64_t>()};
      if (e["type"] == "arbitration.decided" && !e["data"]["action"].is_null()) decided.push_back(e["id"]);
    }
    const std::string c = "c-" + std::to_string(conversations ? pick(conversations) : 0);
    auto doc = reference.store->document(projections::view::conversations, "acme", c);
    const std::string agent = doc && doc->contains("agent") ? (*doc)["agent"].get<std::string>() : one_of(agents);
    switch (pick(22)) {
      case 0: case 1: case 2: {
        nlohmann::json d = {{"conversation", "c-" + std::to_string(conversations++)}, {"customer", one_of(customers)},
                            {"channel", one_of(channels)}, {"queue", one_of(queues)}, {"bot", pick(4) == 0}};
        if (pick(3) == 0) d["intent"] = pick(2) ? "cancel" : "billing_question";
        if (pick(4) == 0) d["priority"] = pick(5);
        return make("conversation.started", d);
      }
      case 3:
        if (doc && (*doc)["state"] == "offered")
          return make(pick(3) ? "offer.accepted" : "offer.declined", {{"conversation", c}, {"agent", agent}, {"offer", (*doc)["offer"]}});
        return make("conversation.message", {{"conversation", c}, {"from", "customer"}, {"text", "hello"}});
      case 4: return make("conversation.ended", {{"conversation", c}, {"by", "customer"}, {"csat", 1 + pick(5)}});
      case 5: return make("conversation.wrapped_up", {{"conversation", c}, {"agent", agent}});
      case 6: return make("agent.status_changed", {{"agent", one_of(agents)}, {"status", pick(2) ? "available" : "away"}});
      case 7:
        if (pick(2)) return make("conversation.transfer_requested", {{"conversation", c}, {"to_queue", one_of(queues)}});
        return make("conversation.transfer_requested", {{"conversation", c}, {"to_agent", one_of(agents)}});
      case 8: return make("conversation.handoff_requested", {{"conversation", c}, {"attributes", {{"order", pick(100)}}}});
      case 9:
        if (pick(3) == 0) return make("agent.logged_out", {{"agent", one_of(agents)}});
        return login(one_of(agents));
      case 10: return make("agent.heartbeat", {{"agent", one_of(agents)}});
      case 11:
        return make("conversation.intent_detected",
                    {{"conversation", c}, {"intent", pick(2) ? "cancel" : "billing_question"},
                     {"confidence", pick(100) / 100.0}, {"source", "bot"}});
      case 12: return make("conversation.priority_changed", {{"conversation", c}, {"priority", pick(5)}});
      case 13: return make("conversation.reopened", {{"conversation", c}});
      case 14:
        return make("customer.profile_updated", {{"customer", one_of(customers)},
                                                 {"attributes", {{"credit", pick(2) ? "gold" : "bronze"}, {"visits", pick(9)}}}});
      case 15:
        if (!decided.empty()) {
          const size_t i = static_cast<size_t>(pick(static_cast<int>(decided.size())));
          const std::string decision = decided[i];
          decided.erase(decided.begin() + static_cast<std::ptrdiff_t>(i));
          return make("arbitration.outcome", {{"decision", decision}, {"accepted", pick(2) == 0}, {"value", pick(50)}});
        }
        return make("clock.tick", nlohmann::json::object());
      case 16: {
        const std::string start = at(static_cast<int>(t) + 600), end = at(static_cast<int>(t) + 2400);
        return make("schedule.published", {{"queue", one_of(queues)}, {"intervals", {{{"start", start}, {"end", end}, {"agents", pick(7)}}}}});
      }
      case 17:
        return make("contact.recorded", {{"contact", "x-" + std::to_string(n)}, {"queue", one_of(queues)}, {"channel", "voice"},
                                         {"outcome", pick(2) ? "answered" : "abandoned"}, {"waited_s", pick(40)}, {"handled_s", pick(300)}});
      default: return make("clock.tick", nlohmann::json::object());
    }
  }
};

// The state a full replay of the node's journal builds, written as a snapshot, read back and
// written again: the same bytes.
void check_snapshot_round_trip(Node& node) {
  PartitionState replayed;
  auto end = node.log->journal_end(partition_id{0});
  REQUIRE(end.has_value());
  REQUIRE(replay(*node.log, *node.store, partition_id{0}, *end, replayed));
  const SnapshotPoint point{events::KnownHistory{*end, journal_pos{3}}, 42};
  const std::string bytes = encode_snapshot(partition_id{0}, point, replayed);
  PartitionState restored;
  auto read = decode_snapshot(bytes, partition_id{0}, restored);
  REQUIRE_MESSAGE(read.has_value(), (read ? "" : read.error().message()));
  CHECK(read->known.upto == *end);
  CHECK(read->known.epoch == journal_pos{3});
  CHECK(read->last_record == 42);
  CHECK(encode_snapshot(partition_id{0}, point, restored) == bytes);
}

std::vector<std::string> journal_texts(Node& node) { return node.store->journal_after("acme", std::nullopt, 1000000); }

}  // namespace

TEST_CASE("recovery from a snapshot decides, journals and projects as recovery from the whole journal") {
  std::set<std::string> journaled;  // types, over every seed
  for (unsigned seed = 1; seed <= 6; ++seed) {
    CAPTURE(seed);
    testing::TempDir with_dir, without_dir;
    Node with(with_dir.str()), without(without_dir.str());
    Restartable snapshotted(with, 25), replayed(without, 0);
    Traffic traffic(seed);
    auto send = [&](const nlohmann::json& e) {
      for (Node* node : {&with, &without}) node->ingest({e});
      with.drain(*snapshotted.p);
      without.drain(*replayed.p);
    };
    for (const auto& e : traffic.setup()) send(e);
    size_t from_snapshot = 0, with_tail = 0;
    for (int step = 1; step <= 360; ++step) {
      send(traffic.next(without));
      if (step % 15 != 0) continue;
      const bool crash = step % 30 == 0;
      CAPTURE(step);
      snapshotted.restart(crash);
      replayed.restart(crash);
      const auto& r = snapshotted.p->last_recovery();
      CHECK(r.snapshot_unused == "");
      CHECK(replayed.p->last_recovery().snapshot == std::nullopt);
      if (r.snapshot) ++from_snapshot;
      if (r.snapshot && r.entries > 0) ++with_tail;
      // Stopped, it wrote a snapshot of everything; after a crash, the last one it took.
      if (!crash) CHECK(r.entries == 0);
      if (crash) CHECK(r.entries < replayed.p->last_recovery().entries);
      check_snapshot_round_trip(with);
    }
    CHECK(from_snapshot == 24);
    CHECK(with_tail > 0);
    CHECK(journal_texts(with) == journal_texts(without));
    CHECK(with.store->digests() == without.store->digests());
    for (const auto& text : journal_texts(with)) journaled.insert(nlohmann::json::parse(text)["type"].get<std::string>());
  }
  // The traffic went through the state it is meant to cover.
  for (const char* type : {"arbitration.decided", "arbitration.outcome", "offer.timed_out", "offer.accepted",
                           "conversation.relaxed", "conversation.overflowed", "conversation.reopened",
                           "conversation.abandoned", "agent.went_offline", "schedule.published", "contact.recorded",
                           "customer.profile_updated", "conversation.handoff_requested"})
    CHECK_MESSAGE(journaled.count(type), type);
}

TEST_CASE("a snapshot that cannot be used is passed over, named, and the whole journal replayed") {
  testing::TempDir dir;
  Node node(dir.str());
  Traffic traffic(7);
  std::optional<Restartable> r(std::in_place, node, 10);
  auto run = [&](int events) {
    for (const auto& e : traffic.setup()) node.ingest({e});
    for (int i = 0; i < events; ++i) {
      node.ingest({traffic.next(node)});
      node.drain(*r->p);
    }
  };
  run(120);
  r.reset();  // stopped: a snapshot of everything
  const std::string path = snapshot_path(dir.str(), partition_id{0});
  auto original = read_snapshot_file(dir.str(), partition_id{0});
  REQUIRE(original.has_value());
  REQUIRE(original->has_value());
  const std::string good = **original;
  const auto digests = node.store->digests();
  const size_t all_entries = journal_texts(node).size();

  // Recovers with the snapshot file holding `bytes` (none when nullopt): unused, for `why`.
  auto recover_with = [&](std::optional<std::string> bytes, const std::string& why) {
    CAPTURE(why);
    if (bytes) REQUIRE(write_snapshot_file(dir.str(), partition_id{0}, *bytes));
    PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 7, false);
    REQUIRE(p.recover());
    const auto& rec = p.last_recovery();
    CHECK(rec.snapshot == std::nullopt);
    CHECK_MESSAGE(rec.snapshot_unused.find(why) != std::string::npos, rec.snapshot_unused);
    CHECK(rec.entries >= all_entries);
    CHECK(node.store->digests() == digests);
  };
  std::string damaged = good;
  damaged[damaged.size() / 2] ^= 0x20;
  recover_with(damaged, "damaged: its state does not match its hash");
  recover_with(good.substr(0, good.size() - 3), "cut short");
  std::string other_format = good;
  other_format[std::string("omniroute snapshot\n").size()] = 2;
  recover_with(other_format, "written in format 2, this build reads 1");
  std::string other_layout = good;
  const size_t tenant_size = other_layout.find("tenant ") + 7;
  other_layout[tenant_size] = other_layout[tenant_size] == '9' ? '8' : '9';
  recover_with(other_layout, "written by a build whose state is laid out otherwise");
  recover_with(std::string("garbage"), "not a snapshot");
  {
    PartitionState empty;
    recover_with(encode_snapshot(partition_id{3}, SnapshotPoint{}, empty), "of partition 3, not 0");
  }
  // Ahead of the views: they were cleared (a rebuild), and the records before the snapshot
  // must be replayed to write them.
  REQUIRE(node.store->clear_views());
  recover_with(good, "ahead of the views at 0");

  // Another journal: one whose record before the snapshot's position is not the one it was
  // taken after.
  testing::TempDir other_dir;
  Node other(other_dir.str());
  {
    Traffic longer(8);
    PartitionProcessor p(*other.log, *other.store, partition_id{0}, other.observer, 7, false);
    for (const auto& e : longer.setup()) other.ingest({e});
    for (int i = 0; i < 240; ++i) {
      other.ingest({longer.next(other)});
      other.drain(p);
    }
  }
  REQUIRE(write_snapshot_file(other_dir.str(), partition_id{0}, good));
  PartitionProcessor p(*other.log, *other.store, partition_id{0}, other.observer, 7, false);
  REQUIRE(p.recover());
  CHECK(p.last_recovery().snapshot == std::nullopt);
  CHECK_MESSAGE(p.last_recovery().snapshot_unused.find("after a record the journal does not have at") != std::string::npos,
                p.last_recovery().snapshot_unused);

  // And the snapshot as it was is used again.
  REQUIRE(write_snapshot_file(dir.str(), partition_id{0}, good));
  PartitionProcessor q(*node.log, *node.store, partition_id{0}, node.observer, 7, false);
  REQUIRE(q.recover());
  CHECK(q.last_recovery().snapshot.has_value());
  CHECK(q.last_recovery().snapshot_unused == "");
}

TEST_CASE(
    "a warm-up in steps rebuilds the views and leaves a snapshot that decides as the whole "
    "journal") {
  testing::TempDir with_dir, without_dir;
  Node with(with_dir.str()), without(without_dir.str());
  std::optional<Restartable> warmed(std::in_place, with, 0), replayed(std::in_place, without, 0);
  Traffic traffic(11);
  auto send = [&](const nlohmann::json& e) {
    for (Node* node : {&with, &without}) node->ingest({e});
    with.drain(*warmed->p);
    without.drain(*replayed->p);
  };
  for (const auto& e : traffic.setup()) send(e);
  for (int i = 0; i < 150; ++i) send(traffic.next(without));
  warmed.reset();  // no snapshots: nothing to start from but the journal
  REQUIRE_FALSE(read_snapshot_file(with_dir.str(), partition_id{0})->has_value());
  // A node with no views of the partition (a new node's, on Kafka).
  const auto live = with.store->digests();
  REQUIRE(with.store->clear_views());
  const journal_pos end = *with.log->journal_end(partition_id{0});

  std::atomic<bool> stop{true};
  auto stopped = warm_up(*with.log, *with.store, partition_id{0}, stop, 7);
  REQUIRE_FALSE(stopped.has_value());
  CHECK(stopped.error().message() == "stopped");
  CHECK_FALSE(read_snapshot_file(with_dir.str(), partition_id{0})->has_value());

  stop = false;
  auto w = warm_up(*with.log, *with.store, partition_id{0}, stop, 7);  // many steps
  REQUIRE_MESSAGE(w.has_value(), (w ? "" : w.error().message()));
  CHECK(w->snapshot == std::nullopt);
  CHECK(w->end == end);
  CHECK(w->entries == journal_texts(with).size());
  CHECK(with.store->digests() == live);
  // Warming up again finds its own snapshot at the journal's end: nothing to replay.
  auto again = warm_up(*with.log, *with.store, partition_id{0}, stop, 7);
  REQUIRE(again.has_value());
  CHECK(again->snapshot == end);
  CHECK(again->entries == 0);
  // Unless the snapshot cannot be used: with the views gone it is ahead of them, and the
  // warm-up replays the whole journal again, rebuilding them.
  REQUIRE(with.store->clear_views());
  auto rebuilt = warm_up(*with.log, *with.store, partition_id{0}, stop, 7);
  REQUIRE(rebuilt.has_value());
  CHECK(rebuilt->snapshot == std::nullopt);
  CHECK(rebuilt->entries == w->entries);
  CHECK(with.store->digests() == live);

  warmed.emplace(with, 0);
  REQUIRE(warmed->p->recover());
  CHECK(warmed->p->last_recovery().snapshot == end);
  CHECK(warmed->p->last_recovery().entries == 0);
  replayed->restart(false);
  for (int i = 0; i < 100; ++i) send(traffic.next(without));
  CHECK(journal_texts(with) == journal_texts(without));
  CHECK(with.store->digests() == without.store->digests());
}

TEST_CASE("a writer whose claim another took over writes no snapshot of what it appended since") {
  testing::TempDir dir;
  Node node(dir.str());
  Traffic traffic(3);
  PartitionProcessor first(*node.log, *node.store, partition_id{0}, node.observer, 7, false);
  auto send = [&](int events) {
    for (int i = 0; i < events; ++i) {
      node.ingest({traffic.next(node)});
      node.drain(first);
    }
  };
  for (const auto& e : traffic.setup()) node.ingest({e});
  send(40);
  REQUIRE(first.snapshot());
  REQUIRE(first.finish_snapshot_write());
  PartitionProcessor second(*node.log, *node.store, partition_id{0}, node.observer, 7, false);
  REQUIRE(second.recover());  // its marker: `first` is a zombie from here on
  const auto taken = read_snapshot_file(dir.str(), partition_id{0});
  REQUIRE(taken.has_value());
  send(20);  // `first` appends after the marker
  const Status refused = first.snapshot();
  CHECK_FALSE(refused);
  CHECK(refused.message().find("another writer appended to the journal since this claim") != std::string::npos);
  CHECK(read_snapshot_file(dir.str(), partition_id{0}).value() == taken.value());
  // The snapshot from before the takeover still serves: the zombie's records after the marker
  // are not history, and the replay passes over them.
  PartitionProcessor third(*node.log, *node.store, partition_id{0}, node.observer, 7, false);
  REQUIRE(third.recover());
  CHECK_MESSAGE(third.last_recovery().snapshot.has_value(), third.last_recovery().snapshot_unused);
}

TEST_CASE("draining with snapshots (an import) leaves one for the next recovery to start from") {
  testing::TempDir dir;
  Node node(dir.str());
  node.ingest(workload(30));
  REQUIRE(drain(*node.log, *node.store, partition_id{0}, 1000000));
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 7, false);
  REQUIRE(p.recover());
  CHECK(p.last_recovery().snapshot.has_value());
  CHECK(p.last_recovery().entries == 0);
}

TEST_CASE("a snapshot half due is taken when the ingest log runs dry") {
  const auto events = workload(5);
  size_t entries = 0;  // what the workload journals
  {
    testing::TempDir dir;
    Node node(dir.str());
    node.ingest(events);
    PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 7, false);
    node.drain(p);
    entries = journal_texts(node).size();
  }
  // Due after 1.5 times as many: not due when they are journaled, half due when the log runs dry.
  testing::TempDir dir;
  Node node(dir.str());
  node.ingest(events);
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 7, false);
  p.take_snapshots(entries + entries / 2);
  node.drain(p);
  REQUIRE(p.finish_snapshot_write());
  auto file = read_snapshot_file(dir.str(), partition_id{0});
  REQUIRE(file.has_value());
  CHECK(file->has_value());
}

TEST_CASE("a snapshot due while another partition's is taken waits for its turn") {
  testing::TempDir dir;
  Node node(dir.str());
  node.ingest(workload(5));
  auto turn = std::make_shared<SnapshotTurn>();
  auto other = turn->try_take();  // another partition's snapshot, being written
  REQUIRE(other);
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 7, false);
  p.take_snapshots(10, turn);
  node.drain(p);
  REQUIRE(p.finish_snapshot_write());
  auto file = read_snapshot_file(dir.str(), partition_id{0});
  REQUIRE(file.has_value());
  CHECK_FALSE(file->has_value());  // due many times over, not taken

  other = {};                // its file written
  node.ingest(workload(6));  // one conversation more: its projection finds the turn free
  node.drain(p);
  // The writer gives the turn back as its file is written, not when this partition next asks
  // for the result: another partition waits for that, not for this one's next snapshot.
  SnapshotTurn::Held next;
  for (int i = 0; i < 2000 && !(next = turn->try_take()); ++i) std::this_thread::sleep_for(5ms);
  CHECK(next);
  next = {};
  REQUIRE(p.finish_snapshot_write());
  file = read_snapshot_file(dir.str(), partition_id{0});
  REQUIRE(file.has_value());
  CHECK(file->has_value());
  CHECK(turn->try_take());  // given back once written
}
