// Two omniroute servers share the partitions of one Kafka cluster (librdkafka's mock cluster):
// events go in through either, one leaves, the other takes its partitions over. Every fact is
// journaled exactly once and the survivor serves the tenants the other one had.
#include <doctest/doctest.h>
#include <httplib.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "actors/snapshot.hpp"
#include "events/kafka_log.hpp"
#include "ops/server.hpp"
#include "tests/support/support.hpp"

using namespace omniroute;
using nlohmann::json;
using omniroute::testing::event;
using namespace std::chrono_literals;

namespace {

// The log's ingest and journal topics, 4 partitions each, on the mock cluster.
void create_log_topics(testing::MockKafka& cluster) {
  cluster.create_topic("omniroute.ingest", 4);
  cluster.create_topic("omniroute.journal", 4);
}

// Polls `done` every 100 ms, at most `tries` times; whether it came true.
bool eventually(const std::function<bool()>& done, int tries = 300) {
  for (int i = 0; i < tries; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return done();
}

// A node with the tests' group settings (and `extra` librdkafka settings, and its options as
// `adjust` leaves them).
std::unique_ptr<ops::Server> start_node(
    const std::string& brokers, const std::string& dir,
    const std::map<std::string, std::string>& extra = {},
    const std::function<void(ops::ServerOptions&)>& adjust = {}) {
  ops::ServerOptions o;
  o.engine.data_dir = dir;
  o.engine.kafka_brokers = brokers;
  o.engine.kafka_config = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "300"},
                           {"log_level", "0"}};
  for (const auto& [k, v] : extra) o.engine.kafka_config[k] = v;
  o.http.port = 0;
  if (adjust) adjust(o);
  auto s = ops::Server::start(o);
  REQUIRE_MESSAGE(s.has_value(), (s ? "" : s.error().message()));
  return std::move(s.value());
}

// The log on the cluster at `brokers`, to read it as a test (no node of the group).
std::unique_ptr<events::KafkaLog> open_log(const std::string& brokers) {
  events::KafkaOptions k;
  k.brokers = brokers;
  k.config = {{"log_level", "0"}};
  auto log = events::KafkaLog::open(k);
  REQUIRE(log.has_value());
  return std::move(log.value());
}

// Calls fn(partition, record) for every history record of the whole journal, read from Kafka
// (the source of truth).
void each_journal_record(const std::string& brokers,
                         const std::function<void(int, const events::StoredRecord&)>& fn) {
  auto log = open_log(brokers);
  for (int i = 0; i < log->partitions(); ++i) {
    auto end = log->journal_end(partition_id{i});
    REQUIRE(end.has_value());
    REQUIRE(events::scan_history(*log, partition_id{i}, *end, [&](const events::StoredRecord& r) {
      fn(i, r);
      return Status::ok();
    }));
  }
}

// Fact ids in the whole journal, with their counts.
std::map<std::string, int> journaled_facts(const std::string& brokers) {
  std::map<std::string, int> facts;
  each_journal_record(brokers, [&](int, const events::StoredRecord& r) {
    for (const auto& e : r.record.entries)
      if (e.kind == events::entry_kind::fact) ++facts[e.tenant + "/" + e.id];
  });
  return facts;
}

// The entries (facts and decisions) in each partition's journal.
std::map<int, size_t> journal_entries(const std::string& brokers) {
  std::map<int, size_t> entries;
  each_journal_record(brokers, [&](int p, const events::StoredRecord& r) {
    entries[p] += r.record.entries.size();
  });
  return entries;
}

// Posts the lifecycle of one conversation per tenant; returns the ids sent.
std::vector<std::string> post_round(httplib::Client& http, int round) {
  std::vector<std::string> ids;
  json batch = json::array();
  for (int t = 0; t < 8; ++t) {
    std::string tenant = "t" + std::to_string(t), r = std::to_string(round);
    auto add = [&](json e) {
      ids.push_back(tenant + "/" + e["id"].get<std::string>());
      batch.push_back(std::move(e));
    };
    std::string time = "2026-11-20T10:0" + r + ":00Z";
    if (round == 0) {
      add(event("q", "queue.configured", time, {{"queue", "main"}, {"auto_accept", true}}, tenant));
      add(event("a", "agent.logged_in", time, {{"agent", "ann"}, {"queues", {"main"}}, {"capacity", {{"chat", 9}}}}, tenant));
    }
    add(event("s" + r, "conversation.started", time,
              {{"conversation", "c" + r}, {"customer", "u"}, {"channel", "web"}, {"queue", "main"}}, tenant));
  }
  auto res = http.Post("/v1/events", batch.dump(), "application/json");
  REQUIRE(res);
  REQUIRE(res->status == 202);
  return ids;
}

// Sockets of this machine in TIME_WAIT with 127.0.0.1:`port` at one end: connections to a
// server on that port that were closed (by whichever side closed first).
int time_wait_to(int port) {
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::getline(tcp, line);  // the header
  char remote[16];
  std::snprintf(remote, sizeof remote, "0100007F:%04X", port);
  int n = 0;
  while (std::getline(tcp, line)) {
    std::istringstream fields(line);
    std::string slot, local, rem, state;
    fields >> slot >> local >> rem >> state;
    n += (rem == remote || local == remote) && state == "06";
  }
  return n;
}

bool has_all(const std::map<std::string, int>& facts, const std::vector<std::string>& ids) {
  for (const auto& id : ids)
    if (!facts.count(id)) return false;
  return true;
}

// The journaled facts, read again until they hold every id of `ids` (the processors caught up)
// or `tries` reads have been made.
std::map<std::string, int> facts_once_caught_up(const std::string& brokers,
                                                const std::vector<std::string>& ids,
                                                int tries = 300) {
  std::map<std::string, int> facts;
  eventually([&] { return has_all(facts = journaled_facts(brokers), ids); }, tries);
  return facts;
}

}  // namespace

TEST_CASE("kafka: a node leaving hands its partitions to the other, and nothing is lost or doubled") {
  testing::MockKafka cluster;
  create_log_topics(cluster);
  testing::TempDir dir;
  auto a = start_node(cluster.brokers(), dir.sub("a"));
  auto b = start_node(cluster.brokers(), dir.sub("b"));
  eventually([&] { return a->ready() && b->ready(); });
  REQUIRE(a->ready());
  REQUIRE(b->ready());  // both own partitions: the group split them

  httplib::Client via_a("127.0.0.1", a->port()), via_b("127.0.0.1", b->port());
  via_a.set_tcp_nodelay(true);
  via_b.set_tcp_nodelay(true);
  auto ids = post_round(via_a, 0);
  auto more = post_round(via_b, 1);
  ids.insert(ids.end(), more.begin(), more.end());
  auto facts = facts_once_caught_up(cluster.brokers(), ids, 200);
  REQUIRE(has_all(facts, ids));

  // Each tenant's views are on the node that owns its partition. The other node forwards a
  // query to it (the owner published its address with its claim) and passes its answer on,
  // saying who served it; a forwarded query is not forwarded again (421 names the owner), and
  // a stream is not forwarded.
  const std::string address_a = "127.0.0.1:" + std::to_string(a->port()),
                    address_b = "127.0.0.1:" + std::to_string(b->port());
  for (int t = 0; t < 8; ++t) {
    const std::string path = "/v1/queues/main?tenant=t" + std::to_string(t);
    auto on_a = via_a.Get(path.c_str()), on_b = via_b.Get(path.c_str());
    for (int i = 0; i < 100; ++i) {  // until the views have the tenant and the owners are known
      REQUIRE(on_a);
      REQUIRE(on_b);
      if (on_a->status == 200 && on_b->status == 200) break;
      std::this_thread::sleep_for(100ms);
      on_a = via_a.Get(path.c_str());
      on_b = via_b.Get(path.c_str());
    }
    INFO(path << " a: " << on_a->status << " " << on_a->body << " b: " << on_b->status << " " << on_b->body);
    REQUIRE(on_a->status == 200);
    REQUIRE(on_b->status == 200);
    CHECK(on_a->body == on_b->body);
    const bool a_owns = !on_a->has_header("X-Omniroute-Served-By");
    CHECK(a_owns == on_b->has_header("X-Omniroute-Served-By"));
    CHECK((a_owns ? on_b : on_a)->get_header_value("X-Omniroute-Served-By") == (a_owns ? address_a : address_b));
    httplib::Client& other = a_owns ? via_b : via_a;
    auto again = other.Get(path.c_str(), {{"X-Omniroute-Forwarded-By", "127.0.0.1:1"}});
    REQUIRE(again);
    CHECK(again->status == 421);
    CHECK(json::parse(again->body)["error"] == "not_owned");
    CHECK(json::parse(again->body)["partition"].is_number_integer());
    CHECK(json::parse(again->body)["owner"] == (a_owns ? address_a : address_b));
    // A stream asked of the other node is the owner's, relayed: its first entries as they are.
    // (A heartbeat a minute away: a relay whose client has gone, and the owner's stream it
    // read, end while they wait, not at their next write.)
    const std::string stream_path = "/v1/journal/stream?heartbeat_ms=60000&tenant=t" + std::to_string(t);
    const int other_port = a_owns ? b->port() : a->port();
    const int owner_port = a_owns ? a->port() : b->port();
    auto streams_on = [&](int port) {
      httplib::Client scrape("127.0.0.1", port);
      auto metrics = scrape.Get("/metrics");
      REQUIRE(metrics);
      const std::string name = "\nomniroute_http_journal_streams ";
      const size_t at = metrics->body.find(name);
      REQUIRE(at != std::string::npos);
      return std::stoi(metrics->body.substr(at + name.size()));
    };
    auto streams_open = [&] { return streams_on(other_port); };
    const int streams_before = streams_open(), owner_streams_before = streams_on(owner_port);
    std::string events, served_by;
    auto relayed = other.Get(
        stream_path.c_str(), {{"Last-Event-ID", "0"}},
        [&](const httplib::Response& head) {
          served_by = head.get_header_value("X-Omniroute-Served-By");
          return head.status == 200;
        },
        [&](const char* data, size_t n) {
          if (events.empty()) CHECK(streams_open() == streams_before + 1);  // the relay's place
          events.append(data, n);
          return events.find("id: 2\n") == std::string::npos;  // enough: close it
        });
    CHECK(served_by == (a_owns ? address_a : address_b));
    CHECK(events.rfind("id: 1\nevent: agent.logged_in\ndata: {", 0) == 0);
    CHECK(events.find("\n\nid: 2\nevent: conversation.started\n") != std::string::npos);
    // The client closed: the relay's place, and the owner's stream, are given back (a bound of
    // 10 s, looked at every 5 ms).
    const auto closed = std::chrono::steady_clock::now();
    while ((streams_open() > streams_before || streams_on(owner_port) > owner_streams_before) &&
           std::chrono::steady_clock::now() - closed < std::chrono::seconds(10))
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CHECK(streams_open() == streams_before);
    CHECK(streams_on(owner_port) == owner_streams_before);
    auto stale = other.Get(stream_path.c_str(), {{"X-Omniroute-Forwarded-By", "127.0.0.1:1"}});
    REQUIRE(stale);
    CHECK(stale->status == 421);
    CHECK(json::parse(stale->body)["owner"] == (a_owns ? address_a : address_b));
  }

  // Forwarded queries reuse their connections to the owner: a connection per query would cost
  // a handshake and one of the owner's threads each, and leave a socket in TIME_WAIT a minute.
  {
    const std::string path = "/v1/queues/main?tenant=t0";
    auto on_a = via_a.Get(path.c_str());
    REQUIRE(on_a);
    const bool a_owns = !on_a->has_header("X-Omniroute-Served-By");
    httplib::Client& other = a_owns ? via_b : via_a;
    const int owner_port = a_owns ? a->port() : b->port();
    const int before = time_wait_to(owner_port);
    for (int i = 0; i < 100; ++i) {
      auto res = other.Get(path.c_str());
      REQUIRE(res);
      REQUIRE(res->status == 200);
      REQUIRE(res->has_header("X-Omniroute-Served-By"));
    }
    CHECK(time_wait_to(owner_port) - before <= 2);
  }

  b->stop();  // leaves the group: its partitions move to a
  b.reset();
  more = post_round(via_a, 2);
  ids.insert(ids.end(), more.begin(), more.end());
  facts = facts_once_caught_up(cluster.brokers(), ids);
  CHECK(has_all(facts, ids));
  CHECK(facts.size() == ids.size());
  for (const auto& fact : facts) CHECK_MESSAGE(fact.second == 1, fact.first);

  // a now owns every partition and has projected the history b wrote.
  std::map<std::string, std::string> answers;  // path -> a's answer
  for (int t = 0; t < 8; ++t) {
    auto res = via_a.Get(("/v1/conversations/c1?tenant=t" + std::to_string(t)).c_str());
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(json::parse(res->body)["state"] == "assigned");
    for (const std::string& path : {"/v1/conversations/c1?tenant=t" + std::to_string(t),
                                   "/v1/queues/main?tenant=t" + std::to_string(t)}) {
      auto r = via_a.Get(path.c_str());
      REQUIRE(r);
      answers[path] = r->body;
    }
  }

  // b comes back alone: it takes every partition; the two it owned before from the snapshots
  // it wrote when it left (a wrote more after them: its marker and records are replayed, and
  // the claim reads the journal only from the snapshot on), the others from the whole journal.
  // Every answer is what a gave. (Without the warm-up, which would bring all four to snapshots
  // at the journal's end before b joined: the next test.)
  a->stop();
  a.reset();
  b = start_node(cluster.brokers(), dir.sub("b"), {},
                 [](ops::ServerOptions& o) { o.processor.warm_up = false; });
  eventually([&] { return b->ready(); });
  REQUIRE(b->ready());
  httplib::Client again_b("127.0.0.1", b->port());
  for (const auto& answer : answers) {
    const std::string& path = answer.first;  // a name a message's lambda can capture
    const auto& body = answer.second;
    auto r = again_b.Get(path.c_str());
    for (int i = 0; i < 100 && r && r->status != 200; ++i) {  // until it owns the partition
      std::this_thread::sleep_for(100ms);
      r = again_b.Get(path.c_str());
    }
    REQUIRE(r);
    CHECK_MESSAGE(r->body == body, path);
  }
  auto metrics = again_b.Get("/metrics");
  REQUIRE(metrics);
  int from_snapshot = 0;
  for (int p = 0; p < 4; ++p)
    from_snapshot += metrics->body.find("omniroute_recovery_from_snapshot{partition=\"" + std::to_string(p) + "\"} 1") !=
                     std::string::npos;
  CHECK(from_snapshot == 2);
}

// A metric of the node on `port` by partition: the series whose labels are `other_labels` (those
// before `partition` in the text, each followed by a comma) and the partition.
std::map<int, double> by_partition(int port, const std::string& metric,
                                   const std::string& other_labels = "") {
  httplib::Client http("127.0.0.1", port);
  auto res = http.Get("/metrics");
  REQUIRE(res);
  std::map<int, double> out;
  std::istringstream lines(res->body);
  std::string line;
  const std::string name = metric + "{" + other_labels + "partition=\"";
  while (std::getline(lines, line))
    if (line.rfind(name, 0) == 0) {
      const size_t end = line.find('"', name.size());
      out[std::stoi(line.substr(name.size(), end - name.size()))] =
          std::stod(line.substr(line.find(' ', end) + 1));
    }
  return out;
}

std::map<int, double> recoveries(int port) {
  return by_partition(port, "omniroute_recoveries_total");
}

TEST_CASE("kafka: a node joining takes its share, and the partitions the first keeps run on") {
  // The group's assignor is cooperative-sticky: a rebalance takes away only the partitions that
  // move. Eager (range, librdkafka's default) took every partition from every node and gave
  // them back: each host stopped, wrote its snapshot and recovered, at every node's start or
  // stop, and an assignment by member id could move partitions to nodes that never had them.
  testing::MockKafka cluster;
  create_log_topics(cluster);
  testing::TempDir dir;
  auto a = start_node(cluster.brokers(), dir.sub("a"));
  const auto owned_by = [](const ops::Server& s) {
    std::set<int> owned;
    for (int p = 0; p < 4; ++p)
      if (s.owns(partition_id{p})) owned.insert(p);
    return owned;
  };
  const auto a_owns_all = [&] { return a->ready() && owned_by(*a).size() == 4; };
  eventually(a_owns_all);
  REQUIRE(owned_by(*a).size() == 4);
  httplib::Client via_a("127.0.0.1", a->port());
  post_round(via_a, 0);

  auto b = start_node(cluster.brokers(), dir.sub("b"));
  const auto settled = [&] {
    if (!a->ready() || !b->ready()) return false;
    const auto in_a = owned_by(*a), in_b = owned_by(*b);
    if (in_b.empty() || in_a.size() + in_b.size() != 4) return false;
    for (int p : in_b)
      if (in_a.count(p)) return false;
    return true;
  };
  eventually(settled);
  REQUIRE(settled());
  const auto kept = owned_by(*a), moved = owned_by(*b);
  CHECK(kept.size() == 2);  // sticky and balanced
  const auto taken_a = recoveries(a->port()), taken_b = recoveries(b->port());
  for (int p : kept) CHECK_MESSAGE(taken_a.at(p) == 1, "partition " << p);  // at a's start only
  for (int p : moved) CHECK_MESSAGE(taken_b.at(p) == 1, "partition " << p);
  // a no longer reads the partitions it gave up: its readers of them are stopped, not left
  // fetching b's records into a's memory (librdkafka's queue of up to 64 MiB a partition).
  const auto& a_log = dynamic_cast<const events::KafkaLog&>(a->log());
  const auto& b_log = dynamic_cast<const events::KafkaLog&>(b->log());
  for (int p : moved) {
    CHECK_MESSAGE(eventually([&] { return b_log.reading(partition_id{p}); }), "partition " << p);
    CHECK_MESSAGE(!a_log.reading(partition_id{p}), "partition " << p);
  }
  for (int p : kept) CHECK_MESSAGE(a_log.reading(partition_id{p}), "partition " << p);
  b->stop();  // b leaving gives its partitions back to a, which keeps its own running
  eventually(a_owns_all);
  REQUIRE(owned_by(*a).size() == 4);
  const auto after = recoveries(a->port());
  for (int p : kept) CHECK_MESSAGE(after.at(p) == 1, "partition " << p);
  for (int p : moved) CHECK_MESSAGE(after.at(p) == 2, "partition " << p);  // taken back
  for (int p = 0; p < 4; ++p)  // a reads them again from where b left them
    CHECK_MESSAGE(eventually([&] { return a_log.reading(partition_id{p}); }), "partition " << p);
}

TEST_CASE(
    "kafka: a node with an empty data directory warms up before it joins, and replays little when "
    "it does") {
  // Without the warm-up, the partitions the group gives a new node decide nothing while it
  // replays their whole journals: the group has taken them from the node that had them.
  testing::MockKafka cluster;
  create_log_topics(cluster);
  testing::TempDir dir;
  auto a = start_node(cluster.brokers(), dir.sub("a"));
  eventually([&] { return a->ready() && a->owns(partition_id{0}) && a->owns(partition_id{3}); });
  REQUIRE(a->ready());
  httplib::Client via_a("127.0.0.1", a->port());
  std::vector<std::string> ids;
  for (int round = 0; round < 4; ++round)
    for (const auto& id : post_round(via_a, round)) ids.push_back(id);
  REQUIRE(has_all(facts_once_caught_up(cluster.brokers(), ids), ids));
  // What a answers for each tenant's conversation now, and how many entries each journal has.
  std::map<std::string, std::string> answered;
  for (int t = 0; t < 8; ++t) {
    const std::string path = "/v1/conversations/c2?tenant=t" + std::to_string(t);
    auto res = via_a.Get(path);
    REQUIRE(res);
    REQUIRE(res->status == 200);
    answered[path] = res->body;
  }
  const std::map<int, size_t> entries = journal_entries(cluster.brokers());

  auto b = start_node(cluster.brokers(), dir.sub("b"));
  eventually([&] {
    int owned = 0;
    for (int p = 0; p < 4; ++p) owned += a->owns(partition_id{p}) + b->owns(partition_id{p});
    return a->ready() && b->ready() && owned == 4;
  });
  REQUIRE(b->ready());
  const auto from_snapshot = by_partition(b->port(), "omniroute_recovery_from_snapshot");
  const auto replayed = by_partition(b->port(), "omniroute_recovery_entries");
  size_t moved_entries = 0;
  for (int p = 0; p < 4; ++p) {
    if (!b->owns(partition_id{p})) continue;
    const size_t had = entries.count(p) ? entries.at(p) : 0;
    moved_entries += had;
    // Recovered from the warm-up's snapshot: what its journal had, b had replayed before it
    // joined (the rest, appended since, is a's markers: none here).
    CHECK_MESSAGE(from_snapshot.at(p) == 1, "partition " << p);
    CHECK_MESSAGE(replayed.at(p) < static_cast<double>(std::max<size_t>(had, 1)),
                  "partition " << p);
  }
  CHECK(moved_entries > 0);  // the tenants of the partitions b took had a history to warm
  // b replayed every partition's history as it warmed up (metrics: one warm-up each, its entries).
  const auto warm_ups = by_partition(b->port(), "omniroute_warm_ups_total", "kind=\"join\",");
  const auto warmed = by_partition(b->port(), "omniroute_warm_up_entries_total", "kind=\"join\",");
  for (int p = 0; p < 4; ++p) {
    CHECK_MESSAGE(warm_ups.at(p) == 1, "partition " << p);
    CHECK_MESSAGE(warmed.at(p) >= static_cast<double>(entries.count(p) ? entries.at(p) : 0),
                  "partition " << p);
  }
  // b answers its partitions' tenants from the views it warmed, as a did (a forwards the rest).
  httplib::Client via_b("127.0.0.1", b->port());
  for (const auto& answer : answered) {
    const std::string& path = answer.first;  // a name a message's lambda can capture
    const auto& body = answer.second;
    auto res = via_b.Get(path);
    REQUIRE(res);
    CHECK_MESSAGE(res->status == 200, path);
    CHECK_MESSAGE(json::parse(res->body) == json::parse(body), path);
  }
  // And b resumes each partition's ingest where a left it: every fact journaled once.
  for (const auto& id : post_round(via_b, 5)) ids.push_back(id);
  const auto facts = facts_once_caught_up(cluster.brokers(), ids);
  REQUIRE(has_all(facts, ids));
  for (const auto& fact : facts) CHECK_MESSAGE(fact.second == 1, fact.first);
  CHECK(facts.size() == ids.size());
}

// Where the snapshot of partition p in the data directory `dir` was taken (0: none).
int64_t snapshot_position(const std::string& dir, int p) {
  auto bytes = actors::read_snapshot_file(dir, partition_id{p});
  REQUIRE(bytes.has_value());
  if (!bytes->has_value()) return 0;
  actors::PartitionState state;
  auto point = actors::decode_snapshot(**bytes, partition_id{p}, state);
  REQUIRE(point.has_value());
  return point->known.upto.value();
}

TEST_CASE(
    "kafka: with standbys, a node keeps the partitions it does not own warm, and takes one over "
    "replaying little") {
  // Without them, a node that takes over a failed node's partitions replays their journals from
  // where its own copy stands: its start (the warm-up), which may be weeks ago.
  testing::MockKafka cluster;
  create_log_topics(cluster);
  testing::TempDir dir;
  const auto standby = [](ops::ServerOptions& o) {
    o.processor.standby_every = std::chrono::seconds(1);
  };
  auto a = start_node(cluster.brokers(), dir.sub("a"), {}, standby);
  auto b = start_node(cluster.brokers(), dir.sub("b"), {}, standby);
  const auto split = [&] {
    int owned = 0;
    for (int p = 0; p < 4; ++p) owned += a->owns(partition_id{p}) + b->owns(partition_id{p});
    return a->ready() && b->ready() && owned == 4;
  };
  eventually(split);
  REQUIRE(split());
  const auto before = journal_entries(cluster.brokers());
  httplib::Client via_a("127.0.0.1", a->port());
  std::vector<std::string> ids;
  for (int round = 0; round < 3; ++round)
    for (const auto& id : post_round(via_a, round)) ids.push_back(id);
  REQUIRE(has_all(facts_once_caught_up(cluster.brokers(), ids), ids));
  const auto after = journal_entries(cluster.brokers());
  std::set<int> of_a;
  size_t posted_to_a = 0;
  for (int p = 0; p < 4; ++p)
    if (a->owns(partition_id{p})) {
      of_a.insert(p);
      posted_to_a += after.at(p) - (before.count(p) ? before.at(p) : 0);
    }
  REQUIRE(of_a.size() == 2);
  REQUIRE(posted_to_a > 0);  // a's partitions have a history b's warm-up did not see
  // b's standby brings its copies of a's partitions up to their journals' ends.
  auto log = open_log(cluster.brokers());
  const auto b_is_warm = [&] {
    for (int p : of_a) {
      auto end = log->journal_end(partition_id{p});
      REQUIRE(end.has_value());
      if (snapshot_position(dir.sub("b"), p) < end->value()) return false;
    }
    return true;
  };
  eventually(b_is_warm);
  REQUIRE(b_is_warm());
  const auto standbys = by_partition(b->port(), "omniroute_warm_ups_total", "kind=\"standby\",");
  const auto standby_entries =
      by_partition(b->port(), "omniroute_warm_up_entries_total", "kind=\"standby\",");
  for (int p : of_a) {
    CHECK_MESSAGE(standbys.at(p) >= 1, "partition " << p);
    CHECK_MESSAGE(standby_entries.at(p) > 0, "partition " << p);  // what a's partitions got since
  }

  a->stop();  // as if it failed: b takes its partitions over
  a.reset();
  eventually([&] {
    for (int p = 0; p < 4; ++p)
      if (!b->owns(partition_id{p})) return false;
    return b->ready();
  });
  REQUIRE(b->ready());
  const auto replayed = by_partition(b->port(), "omniroute_recovery_entries");
  const auto from_snapshot = by_partition(b->port(), "omniroute_recovery_from_snapshot");
  for (int p : of_a) {
    CHECK_MESSAGE(from_snapshot.at(p) == 1, "partition " << p);
    const size_t posted = after.at(p) - (before.count(p) ? before.at(p) : 0);
    CHECK_MESSAGE(replayed.at(p) < static_cast<double>(std::max<size_t>(posted, 1)),
                  "partition " << p);
  }
  // And b goes on where a left off: every fact journaled once.
  httplib::Client via_b("127.0.0.1", b->port());
  for (const auto& id : post_round(via_b, 4)) ids.push_back(id);
  const auto facts = facts_once_caught_up(cluster.brokers(), ids);
  REQUIRE(has_all(facts, ids));
  for (const auto& fact : facts) CHECK_MESSAGE(fact.second == 1, fact.first);
}

TEST_CASE(
    "kafka: a broker outage longer than a message's timeout: refused meanwhile, none lost or "
    "doubled") {
  // A message the producer gave up on may still have been written: the idempotent producer
  // must stay usable after it (librdkafka can raise a fatal error there), and the resent batch
  // must not be journaled twice.
  testing::MockKafka kafka(1);
  create_log_topics(kafka);
  testing::TempDir dir;
  auto node = start_node(kafka.brokers(), dir.sub("a"), {{"message.timeout.ms", "2000"}});
  eventually([&] { return node->ready(); });
  REQUIRE(node->ready());  // its partitions' hosts are running when the broker goes
  httplib::Client http("127.0.0.1", node->port());
  http.set_read_timeout(60, 0);
  std::vector<std::string> acked = post_round(http, 0);

  kafka.set_down(1);
  json batch = json::array();
  for (int t = 0; t < 8; ++t)
    batch.push_back(
        event("s1", "conversation.started", "2026-11-20T10:01:00Z",
              {{"conversation", "c1"}, {"customer", "u"}, {"channel", "web"}, {"queue", "main"}},
              "t" + std::to_string(t)));
  const auto down = std::chrono::steady_clock::now();
  auto refused = http.Post("/v1/events", batch.dump(), "application/json");
  REQUIRE(refused);
  CHECK(refused->status == 503);
  // After the 2 s asked for, not the log's default 30 (a setting, not a speed: the margin is wide).
  CHECK(std::chrono::steady_clock::now() - down < 20s);
  CHECK(json::parse(refused->body)["reason"].get<std::string>().find("timed out") !=
        std::string::npos);
  kafka.set_up(1);
  // Resent as the answer says, until taken (the producer reconnects within its backoff).
  int status = 0;
  for (int i = 0; i < 100 && status != 202; ++i) {
    if (i > 0) std::this_thread::sleep_for(100ms);
    auto taken = http.Post("/v1/events", batch.dump(), "application/json");
    REQUIRE(taken);
    status = taken->status;
  }
  REQUIRE(status == 202);
  for (int t = 0; t < 8; ++t) acked.push_back("t" + std::to_string(t) + "/s1");
  for (const auto& id : post_round(http, 2)) acked.push_back(id);

  const auto facts = facts_once_caught_up(kafka.brokers(), acked);
  REQUIRE(has_all(facts, acked));
  for (const auto& fact : facts) CHECK_MESSAGE(fact.second == 1, fact.first);
  CHECK(facts.size() == acked.size());
}
