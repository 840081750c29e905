// The partition processor on the embedded engine: exactly once across restarts, views that
// catch up with the journal, and rebuild equal to live.
#include <doctest/doctest.h>

#include "actors/partition_processor.hpp"
#include "events/embedded_log.hpp"
#include "events/time.hpp"
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
  explicit Node(const std::string& dir) {
    store = std::move(projections::Store::open(dir).value());
    log = std::move(events::EmbeddedLog::open(store->log_handles(), 1, false).value());
  }
  void ingest(const std::vector<nlohmann::json>& events) {
    std::vector<std::string> payloads;
    for (const auto& e : events) payloads.push_back(events::to_text(events::parse_fact(e).value()));
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
    PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 4);
    node.drain(p);
  }
  {
    Node node(dir.str());  // restart: recover from the journal, go on from the cursor
    node.ingest(std::vector<nlohmann::json>(events.begin() + 5, events.end()));  // 5 resent
    node.ingest({events[0], events[3]});                                      // resent again
    PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 4);
    node.drain(p);
    auto journal = node.journal();
    std::map<std::string, int> fact_count;
    uint64_t expect_seq = 0;
    for (const auto& e : journal) {
      CHECK(e["seq"] == expect_seq++);
      if (!e.contains("cause")) ++fact_count[e["id"]];
    }
    CHECK(fact_count.size() == facts);
    for (const auto& [id, n] : fact_count) CHECK_MESSAGE(n == 1, id);
    CHECK(node.store->seq_of("acme", "s7").has_value());
  }
}

TEST_CASE("views behind the journal catch up on recovery, and rebuild equals live") {
  testing::TempDir dir;
  nlohmann::json live;
  {
    Node node(dir.str());
    node.ingest(workload(30));
    PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 7);
    node.drain(p);
    live = node.store->digests();
    CHECK(live["conversations"]["entries"] == 30);
    CHECK(live["agents"]["entries"] == 2);
  }
  {
    Node node(dir.str());
    REQUIRE(node.store->clear_views());  // as if every view write after the journal was lost
    CHECK(node.store->digests()["conversations"]["entries"] == 0);
    PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 7);
    REQUIRE(p.recover());
    CHECK(node.store->digests() == live);
  }
}

TEST_CASE("a fact the domain refuses is journaled as a refusal and spends its id") {
  testing::TempDir dir;
  Node node(dir.str());
  node.ingest({event("m1", "conversation.message", at(1),
                     {{"conversation", "ghost"}, {"from", "customer"}, {"text", "hello?"}}),
               event("m1", "conversation.message", at(2),
                     {{"conversation", "ghost"}, {"from", "customer"}, {"text", "again"}})});
  PartitionProcessor p(*node.log, *node.store, partition_id{0}, node.observer, 10);
  node.drain(p);
  auto journal = node.journal();
  REQUIRE(journal.size() == 1);
  CHECK(journal[0]["type"] == "event.refused");
  CHECK(journal[0]["cause"] == "m1");
  CHECK(journal[0]["data"]["reason"] == "unknown conversation");
  CHECK(node.store->seq_of("acme", "m1")->value() == 0);
  CHECK(node.store->digests()["conversations"]["entries"] == 0);
}
