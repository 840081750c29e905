// Crash test: a real `omniroute serve` child process takes a load of 100k+ events over HTTP and
// is killed with SIGKILL at random moments (seeded), several times, and restarted. Afterwards
// every acknowledged event id is in the journal exactly once, and rebuilding the views from the
// journal gives the digest the live views had.
#include <doctest/doctest.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "adapters/credentials.hpp"
#include "events/time.hpp"
#include "tests/support/support.hpp"

using nlohmann::json;
using omniroute::testing::event;

namespace {

const char* binary = OMNIROUTE_BINARY;

// Runs the omniroute binary with args; returns its stdout.
std::string run(const std::vector<std::string>& args) {
  const auto r = omniroute::testing::run_command(binary, args);
  CHECK(r.status == 0);
  return r.output;
}

struct Child {
  pid_t pid = -1;
  int out = -1;
  int port = 0;

  std::vector<std::string> engine_args;  // e.g. --kafka-brokers ...
  std::optional<rlimit> file_size_limit;  // RLIMIT_FSIZE for the server (`ulimit -f`)

  // A test that fails with its server running does not leave it behind: an orphan holding the
  // test's stderr kept ctest waiting for the whole timeout.
  ~Child() {
    if (pid > 0) kill_now();
  }

  void start(const std::string& data) {
    std::vector<std::string> args = {binary, "serve", "--data", data, "--http", "127.0.0.1:0",
                                      "--partitions", "4"};
    args.insert(args.end(), engine_args.begin(), engine_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      dup2(fds[1], 1);
      close(fds[0]);
      if (file_size_limit && setrlimit(RLIMIT_FSIZE, &*file_size_limit) != 0) _exit(126);
      execv(binary, argv.data());
      _exit(127);
    }
    close(fds[1]);
    out = fds[0];
    read_port();
  }
  // The server prints its address once it is listening, and again after a restart in place:
  // "  API:     http://127.0.0.1:PORT/...".
  void read_port() {
    port = 0;
    std::string seen;
    char c;
    while (port == 0 && read(out, &c, 1) == 1) {
      seen += c;
      auto at = seen.find("API:     http://127.0.0.1:");
      if (at != std::string::npos && c == '/') port = std::stoi(seen.substr(at + 26));
    }
    REQUIRE_MESSAGE(port > 0, "server did not start: " << seen);
  }
  // Reads the server's output until `text` has been printed; what it read. It fails after
  // `limit` without output, or when the output ends.
  std::string read_until(const std::string& text,
                         std::chrono::milliseconds limit = std::chrono::minutes(2)) {
    std::string seen;
    char c;
    while (seen.find(text) == std::string::npos) {
      pollfd ready{out, POLLIN, 0};
      REQUIRE_MESSAGE(::poll(&ready, 1, static_cast<int>(limit.count())) == 1,
                      "the server printed nothing for " << limit.count() << " ms; waited for '"
                                                        << text << "' after: " << seen);
      REQUIRE_MESSAGE(read(out, &c, 1) == 1,
                      "the server's output ended before '" << text << "': " << seen);
      seen += c;
    }
    return seen;
  }
  void kill_now() {
    ::kill(pid, SIGKILL);
    reap();
  }
  void stop() {
    ::kill(pid, SIGTERM);
    CHECK(reap() == 0);
  }
  int reap() {
    int status = 0;
    waitpid(pid, &status, 0);
    close(out);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

std::string at_ms(int64_t ms) { return omniroute::events::format_rfc3339_ms(1795168800000 + ms); }

// A load over 4 tenants: queues, agents, then conversations that start and end (some are
// assigned and wrap up, some abandon), messages in between.
std::vector<json> make_load(size_t target) {
  std::vector<json> v;
  std::vector<std::string> tenants = {"t0", "t1", "t2", "t3"};
  for (const auto& t : tenants) {
    v.push_back(event(t + "-q", "queue.configured", at_ms(0), {{"queue", "main"}, {"auto_accept", true}}, t));
    for (int a = 0; a < 20; ++a)
      v.push_back(event(t + "-a" + std::to_string(a), "agent.logged_in", at_ms(1),
                        {{"agent", "ag" + std::to_string(a)}, {"queues", {"main"}}, {"capacity", {{"chat", 4}}}}, t));
  }
  for (int i = 0; v.size() < target; ++i) {
    const std::string& t = tenants[i % 4];
    std::string c = "c" + std::to_string(i);
    int64_t ms = 1000 + i * 10;
    v.push_back(event(t + "-s" + std::to_string(i), "conversation.started", at_ms(ms),
                      {{"conversation", c}, {"customer", "u" + std::to_string(i % 997)}, {"channel", "web"}, {"queue", "main"}}, t));
    v.push_back(event(t + "-m" + std::to_string(i), "conversation.message", at_ms(ms + 1),
                      {{"conversation", c}, {"from", "customer"}, {"text", "hello"}}, t));
    v.push_back(event(t + "-e" + std::to_string(i), "conversation.ended", at_ms(ms + 2),
                      {{"conversation", c}, {"by", "customer"}}, t));
  }
  return v;
}

}  // namespace

void check_nothing_lost(Child& child, const std::set<std::string>& acknowledged, size_t events,
                        const std::function<std::string(std::vector<std::string>)>& cli,
                        bool snapshots);

// Loads `events` events into a server on `engine_args`, stopping it with `signal` at random
// moments (at least `min_kills` times) and restarting it, then checks the journal and the views.
// SIGKILL is a crash; SIGTERM a graceful stop, after which the server must have exited 0.
// `serve_args` go to the server only; with --snapshot-every, its last recovery must have
// started from snapshots.
void crash_and_check(size_t events, int min_kills, const std::vector<std::string>& engine_args,
                     int signal = SIGKILL, const std::vector<std::string>& serve_args = {}) {
  omniroute::testing::TempDir dir;
  const std::string data = dir.sub("data");
  const size_t batch_size = 500;
  const char* override_events = std::getenv("OMNIROUTE_CRASH_EVENTS");  // for quick local runs
  auto load = make_load(override_events ? std::stoul(override_events) : events);
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--data", data});
    args.insert(args.end(), engine_args.begin(), engine_args.end());
    return run(args);
  };
  std::mt19937 rng(20261122);
  std::uniform_int_distribution<int> kill_after_ms(0, 15);
  std::bernoulli_distribution kill_now(0.06);

  Child child;
  child.engine_args = engine_args;
  child.engine_args.insert(child.engine_args.end(), serve_args.begin(), serve_args.end());
  child.start(data);
  std::set<std::string> acknowledged;
  int kills = 0;
  size_t retries = 0, backlogged = 0;
  for (size_t start = 0; start < load.size();) {
    json batch = json::array();
    for (size_t i = start; i < std::min(load.size(), start + batch_size); ++i) batch.push_back(load[i]);
    // Now and then, kill the server while this batch (and the processing behind it) is in flight.
    std::thread killer;
    std::atomic<bool> killed{false};
    if (kill_now(rng) || (kills < min_kills && start > (kills + 1) * load.size() / (min_kills + 2))) {
      int delay = kill_after_ms(rng);
      pid_t pid = child.pid;
      killer = std::thread([pid, delay, signal, &killed] {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay));  // fault injection timing
        ::kill(pid, signal);
        killed = true;
      });
    }
    httplib::Client http("127.0.0.1", child.port);
    http.set_read_timeout(30, 0);
    http.set_tcp_nodelay(true);
    auto res = http.Post("/v1/events", batch.dump(), "application/json");
    if (killer.joinable()) killer.join();
    if (res && res->status == 202) {
      for (const auto& e : batch) acknowledged.insert(e["tenant"].get<std::string>() + "/" + e["id"].get<std::string>());
      start += batch_size;
    } else if (res && res->status == 503 && !killed &&
               json::parse(res->body, nullptr, false).value("error", "") == "backlog_full") {
      // The hosts were behind (recovering, say) for the whole backlog wait, and nothing was
      // appended: resent, as a client does, and the server waits for room again.
      ++backlogged;
      REQUIRE_MESSAGE(backlogged < 60, "the partition hosts made no room for five minutes");
    } else {
      ++retries;  // not acknowledged: it may or may not be in; resending is safe
      REQUIRE_MESSAGE(killed, "the server refused or dropped a batch without being killed: "
                                  << (res ? res->body : httplib::to_string(res.error())));
    }
    if (killed) {
      const int exit_code = child.reap();
      if (signal == SIGTERM) CHECK_MESSAGE(exit_code == 0, "a graceful stop exited " << exit_code);
      ++kills;
      child.start(data);
    }
  }
  MESSAGE("events: " << load.size() << ", kills: " << kills << ", resent batches: " << retries
                      << ", refused for a full backlog: " << backlogged);
  CHECK(kills >= min_kills);
  CHECK(acknowledged.size() == load.size());
  const bool snapshots =
      std::find(serve_args.begin(), serve_args.end(), "--snapshot-every") != serve_args.end();
  check_nothing_lost(child, acknowledged, load.size(), cli, snapshots);
}

// After a load: every acknowledged id (tenant/id) reaches the journal exactly once, through the
// public decision stream and in the journal itself (the server stopped), and rebuilding the
// views from the journal gives the live digest. With `snapshots`, the server's last recovery
// must have started from snapshots.
void check_nothing_lost(Child& child, const std::set<std::string>& acknowledged, size_t events,
                        const std::function<std::string(std::vector<std::string>)>& cli,
                        bool snapshots) {
  // Wait, through the public decision stream, until every acknowledged id is in the journal.
  std::map<std::string, int64_t> after = {{"t0", -1}, {"t1", -1}, {"t2", -1}, {"t3", -1}};
  std::set<std::string> journaled;
  httplib::Client http("127.0.0.1", child.port);
  http.set_read_timeout(30, 0);
  http.set_tcp_nodelay(true);
  // Stops when everything arrived, or when nothing new arrived for 150 rounds (30+ seconds: a
  // restarted Kafka member waits for its killed predecessor's session to time out).
  for (int idle = 0; idle < 150 && journaled.size() < acknowledged.size(); ++idle) {
    size_t before = journaled.size();
    for (auto& [tenant, next] : after) {
      auto res = http.Get(("/v1/journal?tenant=" + tenant + "&limit=1000&wait_ms=200&after=" + std::to_string(next)).c_str());
      REQUIRE(res);
      json page = json::parse(res->body);
      if (res->status == 503 && page["error"] == "not_ready") {
        // A Kafka node still taking its partitions after the restart: asked again, as the
        // answer's Retry-After says.
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      REQUIRE_MESSAGE(res->status == 200, res->body);
      for (const auto& e : page["entries"]) {
        std::string key = tenant + "/" + (e.contains("cause") && e["type"] == "event.refused"
                                               ? e["cause"].get<std::string>()
                                               : e["id"].get<std::string>());
        if (!e.contains("cause") || e["type"] == "event.refused")
          CHECK_MESSAGE(journaled.insert(key).second, "twice in the journal: " << key);
      }
      next = page["next"];
    }
    if (journaled.size() > before) idle = 0;
  }
  CHECK(journaled.size() == acknowledged.size());
  size_t missing = 0;
  for (const auto& id : acknowledged)
    if (!journaled.count(id) && missing++ < 10) MESSAGE("acknowledged but not journaled: " << id);
  CHECK(missing == 0);
  if (snapshots) {
    auto metrics = http.Get("/metrics");
    REQUIRE(metrics);
    for (int p = 0; p < 4; ++p)
      CHECK_MESSAGE(metrics->body.find("omniroute_recovery_from_snapshot{partition=\"" + std::to_string(p) + "\"} 1") !=
                        std::string::npos,
                    "partition " << p << " recovered without a snapshot");
  }
  child.stop();

  // The journal itself (not a view of it): every acknowledged id exactly once.
  std::string dump = cli({"journal"});
  std::map<std::string, int> facts;
  size_t pos = 0, lines = 0;
  while (pos < dump.size()) {
    size_t nl = dump.find('\n', pos);
    json e = json::parse(dump.substr(pos, nl - pos));
    pos = nl + 1;
    ++lines;
    if (!e.contains("cause")) ++facts[e["tenant"].get<std::string>() + "/" + e["id"].get<std::string>()];
  }
  CHECK(facts.size() == acknowledged.size());
  size_t twice = 0;
  for (const auto& [id, n] : facts) twice += n != 1;
  CHECK(twice == 0);
  MESSAGE("journal entries: " << lines);

  // Rebuild equals live.
  json live = json::parse(cli({"digest"}));
  json rebuilt = json::parse(cli({"replay", "--rebuild"}));
  CHECK(live == rebuilt);
  CHECK(live["conversations"]["entries"].get<size_t>() > events / 4);
}

TEST_CASE("crash: SIGKILL at random moments loses no acknowledged event and duplicates none") {
  // Snapshots every few thousand entries: kills land while they are written, and recoveries
  // start from them.
  crash_and_check(100000, 5, {}, SIGKILL, {"--snapshot-every", "3000"});
}

TEST_CASE("crash: SIGTERM at random moments, graceful stops, loses nothing, duplicates none") {
  crash_and_check(30000, 4, {}, SIGTERM);
}

TEST_CASE("kafka crash: the kafka engine under SIGKILL loses nothing and duplicates nothing") {
  // The mock cluster lives in this process; the server child reaches it over loopback. It keeps
  // ~5 MiB per partition, hence the smaller load.
  omniroute::testing::MockKafka cluster;
  cluster.create_topic("omniroute.ingest", 4);
  cluster.create_topic("omniroute.journal", 4);
  crash_and_check(20000, 3,
                  {"--kafka-brokers", cluster.brokers(), "--kafka-config",
                   "session.timeout.ms=6000", "--kafka-config", "heartbeat.interval.ms=500",
                   "--kafka-config", "log_level=0"});
}

TEST_CASE(
    "a file-size limit: writes refused naming it, the server restarts in place, nothing lost") {
  // `ulimit -f`: no file the server writes may grow past 6 MB, so its write-ahead log reaches
  // the limit every 10,000 events or so. The kernel's SIGXFSZ ended the server without a word
  // (ignored now: the write fails with EFBIG), and RocksDB does not recover from that error by
  // itself: the server must stop and open its store again, which it does in place (a new port,
  // the test's server listening on any free one).
  omniroute::testing::TempDir dir;
  const std::string data = dir.sub("data");
  const auto load = make_load(30000);
  Child child;
  child.file_size_limit = rlimit{6 << 20, RLIM_INFINITY};
  child.start(data);
  const pid_t pid = child.pid;
  std::set<std::string> acknowledged;
  int restarts = 0;
  const size_t batch_size = 500;
  for (size_t start = 0; start < load.size();) {
    json batch = json::array();
    for (size_t i = start; i < std::min(load.size(), start + batch_size); ++i)
      batch.push_back(load[i]);
    httplib::Client http("127.0.0.1", child.port);
    http.set_read_timeout(30, 0);
    auto res = http.Post("/v1/events", batch.dump(), "application/json");
    if (res && res->status == 202) {
      for (const auto& e : batch)
        acknowledged.insert(e["tenant"].get<std::string>() + "/" + e["id"].get<std::string>());
      start += batch_size;
      continue;
    }
    // Refused at once, naming the error (not after a wait for room the partitions cannot
    // make); /readyz says so too. Or no answer: the server met the error between two POSTs and
    // is restarting. Either way it restarts in place, and the batch is resent (some partitions
    // may hold their part of it already).
    if (res) {
      REQUIRE_MESSAGE(res->status == 503, res->body);
      const json answer = json::parse(res->body);
      if (answer["error"] == "backlog_full") continue;  // the hosts behind: resent, as above
      CHECK(answer["error"] == "unavailable");
      CHECK_MESSAGE(answer["reason"].get<std::string>().find("File too large") != std::string::npos,
                    res->body);
      if (auto ready = http.Get("/readyz"))  // unless the restart has closed the port already
        CHECK(ready->status == 503);
    }
    ++restarts;
    REQUIRE_MESSAGE(restarts <= 20, "restarting again and again");
    child.read_until("restarting in place");
    child.read_port();
  }
  CHECK(restarts >= 2);  // the limit was met, and met again after a restart
  CHECK(child.pid == pid);
  CHECK(::kill(pid, 0) == 0);  // the same process all along
  MESSAGE("events: " << load.size() << ", restarts in place: " << restarts);
  check_nothing_lost(
      child, acknowledged, load.size(),
      [&](std::vector<std::string> args) {
        args.insert(args.end(), {"--data", data});
        return run(args);
      },
      false);
}

TEST_CASE("SIGHUP reads the credentials again: the new keys are in force, a file it cannot use changes nothing") {
  omniroute::testing::TempDir dir;
  const std::string creds = dir.sub("creds.json");
  auto write_keys = [&](const std::string& text) {
    std::ofstream f(creds);
    f << text;
  };
  auto entry = [](const std::string& name, const std::string& key) {
    return json{{"name", name}, {"sha256", omniroute::adapters::sha256_hex(key)}, {"tenants", {"acme"}}};
  };
  write_keys(json{{"keys", {entry("old", "key-old")}}}.dump());
  Child child;
  child.engine_args = {"--credentials", creds};
  child.start(dir.sub("data"));
  httplib::Client http("127.0.0.1", child.port);
  auto status_with = [&](const std::string& key) {
    auto r = http.Get("/v1/journal?tenant=acme", {{"Authorization", "Bearer " + key}});
    REQUIRE(r);
    return r->status;
  };
  CHECK(status_with("key-old") == 200);
  CHECK(status_with("key-new") == 401);

  write_keys(json{{"keys", {entry("new", "key-new")}}}.dump());
  ::kill(child.pid, SIGHUP);
  CHECK(child.read_until("in force\n").find("SIGHUP: 1 API keys from " + creds + " in force") != std::string::npos);
  CHECK(status_with("key-new") == 200);
  CHECK(status_with("key-old") == 401);

  write_keys("{\"keys\": [");  // cut short
  ::kill(child.pid, SIGHUP);
  CHECK(child.read_until("stay\n").find("SIGHUP: credentials " + creds + ": not valid JSON") != std::string::npos);
  CHECK(status_with("key-new") == 200);
  child.stop();
}
