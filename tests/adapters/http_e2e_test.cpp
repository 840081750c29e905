// End to end through HTTP: a real server (embedded engine, any free port) and an HTTP client.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "actors/partition_processor.hpp"
#include "adapters/credentials.hpp"
#include "adapters/http_api.hpp"
#include "events/embedded_log.hpp"
#include "events/kafka_log.hpp"
#include "events/time.hpp"
#include "ops/server.hpp"
#include "ops/version.hpp"
#include "tests/support/full_disk.hpp"
#include "tests/support/support.hpp"

using namespace omniroute;
using nlohmann::json;
using omniroute::testing::event;

namespace {

struct Running {
  testing::TempDir dir;
  std::unique_ptr<ops::Server> server;
  std::unique_ptr<httplib::Client> http;
  explicit Running(const std::string& kafka_brokers = "",
                   const std::function<void(ops::ServerOptions&)>& adjust = {}) {
    ops::ServerOptions o;
    o.engine.data_dir = dir.str();
    o.engine.partitions = 2;
    o.engine.kafka_brokers = kafka_brokers;
    o.engine.kafka_config = {{"session.timeout.ms", "6000"}, {"log_level", "0"}};
    o.http.port = 0;
    o.http.max_body_bytes = 64 * 1024;
    if (adjust) adjust(o);
    auto s = ops::Server::start(o);
    REQUIRE_MESSAGE(s.has_value(), (s ? "" : s.error().message()));
    server = std::move(s.value());
    http = std::make_unique<httplib::Client>("127.0.0.1", server->port());
    http->set_read_timeout(40, 0);
    http->set_tcp_nodelay(true);  // else a short request's body waits for the headers' ACK
  }
  httplib::Result post(const json& body) {
    return http->Post("/v1/events", body.dump(), "application/json");
  }
  json get(const std::string& path, int expect = 200) {
    auto r = http->Get(path.c_str());
    REQUIRE(r);
    CHECK_MESSAGE(r->status == expect, path, " ", r->body);
    return json::parse(r->body);
  }
  // Long-polls the journal until an entry of `type` appears; returns all entries seen.
  std::vector<json> journal_until(const std::string& type, const std::string& tenant = "acme",
                                  int64_t after = -1) {
    std::vector<json> seen;
    for (int i = 0; i < 50; ++i) {
      json page = get("/v1/journal?tenant=" + tenant + "&after=" + std::to_string(after) + "&wait_ms=2000");
      for (auto& e : page["entries"]) seen.push_back(e);
      after = page["next"];
      for (const auto& e : seen)
        if (e["type"] == type) return seen;
    }
    FAIL("no " << type << " in the journal");
    return seen;
  }
  double metric(const std::string& line_prefix) {
    auto r = http->Get("/metrics");
    REQUIRE(r);
    std::istringstream in(r->body);
    std::string line;
    while (std::getline(in, line))
      if (line.rfind(line_prefix, 0) == 0) return std::stod(line.substr(line.rfind(' ') + 1));
    return 0;
  }
};

// A 30-second journal long-poll on its own connection: (status or -1, body).
std::future<std::pair<int, std::string>> long_poll(Running& r, const std::string& tenant) {
  const int port = r.server->port();
  return std::async(std::launch::async, [port, tenant] {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(40, 0);
    c.set_tcp_nodelay(true);
    auto res = c.Get(("/v1/journal?tenant=" + tenant + "&wait_ms=30000").c_str());
    return res ? std::make_pair(res->status, res->body) : std::make_pair(-1, std::string());
  });
}

// A connection of its own to the server on `port`, on which the server has answered a GET
// /healthz (so its end of the connection exists and has served a request).
int connection_asked_health(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE(::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size()));
  std::string answer;
  char buf[512];
  while (answer.find("{\"status\":\"ok\"}") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    REQUIRE(n > 0);
    answer.append(buf, static_cast<size_t>(n));
  }
  return fd;
}

// One event of a text/event-stream: its id, event name and data lines (joined), or a comment.
struct SentEvent {
  std::string id, event, data, comment;
};

// The complete events (each ended by a blank line) at the start of a text/event-stream body.
std::vector<SentEvent> sent_events(const std::string& body) {
  std::vector<SentEvent> out;
  size_t at = 0;
  for (size_t end; (end = body.find("\n\n", at)) != std::string::npos; at = end + 2) {
    SentEvent e;
    std::istringstream lines(body.substr(at, end - at));
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(":", 0) == 0) e.comment = line.substr(1);
      else if (line.rfind("id: ", 0) == 0) e.id = line.substr(4);
      else if (line.rfind("event: ", 0) == 0) e.event = line.substr(7);
      else if (line.rfind("data: ", 0) == 0) e.data += line.substr(6);
      else FAIL("a line of no field: " << line);
    }
    out.push_back(e);
  }
  return out;
}

// Reads GET `path` on a connection of its own as a stream, until `enough` holds for the events
// read so far (then closes it), or the server ends it. Returns the status and the events.
std::future<std::pair<int, std::vector<SentEvent>>> read_stream(
    int port, const std::string& path, httplib::Headers headers,
    std::function<bool(const std::vector<SentEvent>&)> enough) {
  return std::async(std::launch::async, [=] {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(40, 0);
    std::string body;
    auto res = c.Get(path.c_str(), headers, [&](const char* data, size_t n) {
      body.append(data, n);
      return !enough(sent_events(body));
    });
    if (!res && res.error() != httplib::Error::Canceled) return std::make_pair(-1, sent_events(body));
    return std::make_pair(res ? res->status : 200, sent_events(body));
  });
}

// The events that are journal entries (not comments).
std::vector<SentEvent> entries_of(const std::vector<SentEvent>& events) {
  std::vector<SentEvent> out;
  for (const auto& e : events)
    if (e.comment.empty()) out.push_back(e);
  return out;
}

// The text of a credentials file with one key, `key`, for the tenant acme.
std::string acme_key(const std::string& key) {
  const json entry = {{"name", "k"}, {"sha256", adapters::sha256_hex(key)}, {"tenants", {"acme"}}};
  return json{{"keys", {entry}}}.dump();
}

const char* T0 = "2026-11-20T10:00:00Z";
const char* T1 = "2026-11-20T10:00:01Z";
const char* T2 = "2026-11-20T10:00:02Z";

}  // namespace

TEST_CASE("the README session: configure a queue, log an agent in, start a conversation, read the offer") {
  Running r;
  auto res = r.post(event("q-1", "queue.configured", T0, {{"queue", "billing"}, {"channels", {"wechat", "web"}}}));
  REQUIRE(res);
  CHECK(res->status == 202);
  CHECK(json::parse(res->body)["status"] == "accepted");
  res = r.post(event("a-1", "agent.logged_in", T1,
                     {{"agent", "alice"}, {"queues", {"billing"}}, {"capacity", {{"chat", 3}}}}));
  CHECK(res->status == 202);
  res = r.post(event("c-1", "conversation.started", T2,
                     {{"conversation", "c-1"}, {"customer", "u-9"}, {"channel", "wechat"}, {"queue", "billing"}}));
  CHECK(res->status == 202);

  auto entries = r.journal_until("conversation.offered");
  REQUIRE(entries.size() == 5);
  CHECK(entries[3]["type"] == "conversation.queued");
  CHECK(entries[4]["data"]["agent"] == "alice");
  CHECK(entries[4]["cause"] == "c-1");
  CHECK(entries[4]["seq"] == 4);
  std::string offer = entries[4]["data"]["offer"];

  res = r.post(event("acc-1", "offer.accepted", "2026-11-20T10:00:05Z",
                     {{"conversation", "c-1"}, {"agent", "alice"}, {"offer", offer}}));
  CHECK(res->status == 202);
  r.journal_until("conversation.assigned");
  CHECK(r.get("/v1/conversations/c-1?tenant=acme")["state"] == "assigned");
  CHECK(r.get("/v1/agents/alice?tenant=acme")["load"]["chat"] == 1);
  json q = r.get("/v1/queues/billing?tenant=acme");
  CHECK(q["waiting"] == 0);
  CHECK(q["agents_logged_in"] == 1);
  CHECK(r.get("/readyz")["ready"] == true);
  CHECK(r.metric("omniroute_events_ingested_total{result=\"accepted\",type=\"conversation.started\"}") == 1);
  CHECK(r.metric("omniroute_journal_entries_total") >= 7);
  // The journal, the ingest log and the views written so far are in the memtables.
  CHECK(r.metric("omniroute_rocksdb_memtable_bytes") > 0);
  // Which build answers: its version and commit (ops/version.hpp), for dashboards to join on.
  CHECK(r.metric(std::string("omniroute_build_info{commit=\"") + ops::commit() + "\",version=\"" +
                 ops::version() + "\"}") == 1);
}

TEST_CASE(
    "a full disk: POSTs answered 503 and /readyz names why, until there is room; nothing lost") {
  auto disk = std::make_shared<testing::FullDisk>();
  const auto env = std::make_unique<testing::OnDisk>(disk);
  Running r("", [&](ops::ServerOptions& o) { o.engine.env = env.get(); });
  const auto started = [](const std::string& id, const std::string& c) {
    return event(
        id, "conversation.started", "2026-11-20T10:00:02Z",
        {{"conversation", c}, {"customer", "u-1"}, {"channel", "web"}, {"queue", "billing"}});
  };
  REQUIRE(r.post(event("q-1", "queue.configured", "2026-11-20T10:00:00Z", {{"queue", "billing"}}))
              ->status == 202);
  REQUIRE(r.post(started("s-1", "c-1"))->status == 202);
  r.journal_until("conversation.queued");
  disk->full = true;
  auto refused = r.post(started("s-2", "c-2"));
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(json::parse(refused->body)["error"] == "unavailable");
  auto ready = r.http->Get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 503);
  const json why = json::parse(ready->body);
  CHECK(why["ready"] == false);
  CHECK(why["reason"].get<std::string>().rfind("the store refuses writes: ", 0) == 0);
  CHECK(why["reason"].get<std::string>().find("No space left on device") != std::string::npos);
  CHECK(r.metric("omniroute_ready") == 0);

  disk->full = false;  // RocksDB looks every 5 s, resumes, and the resend is taken
  int status = 0;
  for (int i = 0; i < 300 && status != 202; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status = r.post(started("s-2", "c-2"))->status;
  }
  REQUIRE(status == 202);
  for (int i = 0; i < 300 && r.http->Get("/readyz")->status != 200; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(r.get("/readyz")["ready"] == true);
  CHECK(r.metric("omniroute_ready") == 1);
  CHECK(r.get("/v1/conversations/c-1?tenant=acme")["conversation"] == "c-1");
  for (int i = 0; i < 300; ++i) {  // the resent event, decided once its partition recovered
    auto c = r.http->Get("/v1/conversations/c-2?tenant=acme");
    if (c && c->status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(r.get("/v1/conversations/c-2?tenant=acme")["conversation"] == "c-2");
}

TEST_CASE("optional fields sent as null are absent: the facts are routed and the partition goes on") {
  // "auto_accept": null once threw in routing, and the partition's host retried it forever.
  Running r;
  auto res = r.post(event("q-1", "queue.configured", T0,
                          {{"queue", "billing"}, {"auto_accept", nullptr}, {"priority", nullptr}}));
  REQUIRE(res);
  CHECK(res->status == 202);
  res = r.post(event("a-1", "agent.logged_in", T1,
                     {{"agent", "alice"}, {"queues", {"billing"}}, {"capacity", {{"chat", 1}}}, {"skills", nullptr}}));
  CHECK(res->status == 202);
  res = r.post(json::array({event("c-1", "conversation.started", T2,
                                  {{"conversation", "c-1"}, {"customer", "u-9"}, {"channel", "web"},
                                   {"queue", "billing"}, {"priority", nullptr}, {"attributes", nullptr}})}));
  CHECK(res->status == 202);
  auto entries = r.journal_until("conversation.offered");
  REQUIRE(entries.size() == 5);
  CHECK_FALSE(entries[0]["data"].contains("auto_accept"));  // journaled without it
  CHECK(entries[4]["data"]["agent"] == "alice");
  CHECK(r.get("/readyz")["ready"] == true);
}

TEST_CASE("a repeated id is acknowledged with the first one's result and changes nothing") {
  Running r;
  json q = event("q-1", "queue.configured", T0, {{"queue", "billing"}});
  REQUIRE(r.post(q)->status == 202);
  r.journal_until("queue.configured");
  q["data"]["priority"] = 9;  // same id, different content: still the first one's result
  auto res = r.post(q);
  CHECK(res->status == 202);
  json body = json::parse(res->body);
  CHECK(body["status"] == "duplicate");
  CHECK(body["seq"] == 0);
  CHECK_FALSE(r.get("/v1/queues/billing?tenant=acme")["config"].contains("priority"));

  json batch = json::array({event("x-1", "agent.logged_in", T1, {{"agent", "a"}}),
                            event("x-1", "agent.logged_in", T1, {{"agent", "a"}})});
  body = json::parse(r.post(batch)->body);
  CHECK(body["accepted"] == 1);
  CHECK(body["duplicates"] == 1);
  CHECK(body["results"][1]["status"] == "duplicate");
  // Counted by type and result, the repeats of both requests as duplicates.
  CHECK(r.metric("omniroute_events_ingested_total{result=\"accepted\",type=\"queue.configured\"}") == 1);
  CHECK(r.metric("omniroute_events_ingested_total{result=\"duplicate\",type=\"queue.configured\"}") == 1);
  CHECK(r.metric("omniroute_events_ingested_total{result=\"accepted\",type=\"agent.logged_in\"}") == 1);
  CHECK(r.metric("omniroute_events_ingested_total{result=\"duplicate\",type=\"agent.logged_in\"}") == 1);
}

TEST_CASE("bad input is refused with a clear error, counted, and changes nothing") {
  Running r;
  REQUIRE(r.post(event("q-1", "queue.configured", T0, {{"queue", "billing"}}))->status == 202);
  r.journal_until("queue.configured");
  json digest_before = r.server->store().digests();

  auto refused = [&](const std::string& body, int status, const std::string& error) {
    auto res = r.http->Post("/v1/events", body, "application/json");
    REQUIRE(res);
    CHECK_MESSAGE(res->status == status, body);
    json answer = json::parse(res->body);
    CHECK_MESSAGE(answer["error"] == error, res->body);
    return answer;
  };
  json a = refused("{\"id\": \"x\", ", 400, "malformed_json");
  CHECK(a["reason"].get<std::string>().find("parse error") != std::string::npos);
  // A number past a double's range: json's parser throws another exception than its parse
  // error for it, which was answered 500 "internal" (found by fuzzing: tests/fuzz).
  a = refused("1e999", 400, "malformed_json");
  CHECK(a["reason"].get<std::string>().find("number overflow") != std::string::npos);
  CHECK(a["byte"] == 5);
  a = refused(R"({"id":"x","type":"agent.logged_in","tenant":"acme","time":"2026-11-20T10:00:00Z",)"
              R"("data":{"agent":"a","n":-1E400}})",
              400, "malformed_json");
  CHECK(a["byte"] == 111);  // where the number ends
  a = refused(event("x", "conversation.exploded", T1, json::object()).dump(), 400, "invalid_event");
  CHECK(a["field"] == "type");
  a = refused(event("x", "agent.logged_in", T1, json::object()).dump(), 400, "invalid_event");
  CHECK(a["field"] == "data.agent");
  CHECK(a["reason"] == "missing");
  a = refused(event("x", "agent.logged_in", T1, {{"agent", 7}}).dump(), 400, "invalid_event");
  CHECK(a["reason"] == "must be a string");
  json batch = json::array({event("ok", "agent.logged_in", T1, {{"agent", "a"}}),
                            event("bad", "agent.status_changed", T1, {{"agent", "a"}, {"status", "zzz"}})});
  a = refused(batch.dump(), 400, "invalid_event");
  CHECK(a["index"] == 1);
  CHECK(a["id"] == "bad");
  CHECK(a["batch"] == "all_or_nothing");
  CHECK(a["accepted"] == 0);
  // Bytes that are not UTF-8, which the answer quotes back (as U+FFFD) where the parser stopped:
  // outside a string, inside an id, inside a batch's data. (Quoted as they were, the answer
  // failed to serialize and the refusal became a 500 "internal".)
  const std::string not_utf8 = "\x8d";
  const std::string message =
      event("u", "conversation.message", T1, {{"conversation", "c"}, {"from", "customer"}}).dump();
  a = refused(R"({"id": "x", "type": "queue.configured", "tenant":)" + not_utf8 + R"("acme"})", 400,
              "malformed_json");
  CHECK(a["byte"] == 50);
  CHECK(a["reason"].get<std::string>().find("\xEF\xBF\xBD") != std::string::npos);
  a = refused(R"({"id": "x)" + not_utf8 + R"(", "type": "queue.configured"})", 400, "malformed_json");
  CHECK(a["reason"].get<std::string>().find("ill-formed UTF-8") != std::string::npos);
  a = refused("[" + std::string(message).insert(20, not_utf8) + "]", 400, "malformed_json");
  a = refused("[]", 400, "empty_batch");
  a = refused(R"({"id":"deep","type":"conversation.message","tenant":"acme","time":"2026-11-20T10:00:00Z",)"
              R"("data":{"conversation":"c","from":"customer","text":"x","deep":)" +
                  std::string(20000, '[') + std::string(20000, ']') + "}}",
              400, "too_deep");
  a = refused(std::string(70 * 1024, ' '), 413, "body_too_large");
  CHECK(a["limit_bytes"] == 64 * 1024);
  auto form = r.http->Post("/v1/events", std::string(9000, ' '), "application/x-www-form-urlencoded");
  REQUIRE(form);
  CHECK(form->status == 413);
  CHECK(json::parse(form->body)["reason"].get<std::string>().find("application/json") != std::string::npos);

  // Accepted at the door, refused by the domain: an event.refused decision names the reason.
  REQUIRE(r.post(event("m-1", "conversation.message", T1,
                       {{"conversation", "ghost"}, {"from", "customer"}, {"text", "hi"}}))->status == 202);
  auto entries = r.journal_until("event.refused");
  CHECK(entries.back()["data"]["reason"] == "unknown conversation");
  CHECK(entries.back()["cause"] == "m-1");
  REQUIRE(r.post(event("late", "queue.configured", "2026-11-19T10:00:00Z", {{"queue", "billing"}, {"priority", 1}}))
              ->status == 202);  // queues take configuration at any time

  CHECK(r.metric("omniroute_events_ingested_total{result=\"refused\",type=\"unparseable\"}") == 9);
  CHECK(r.metric("omniroute_events_ingested_total{result=\"refused\",type=\"unknown\"}") == 1);
  CHECK(r.metric("omniroute_events_ingested_total{result=\"refused\",type=\"agent.logged_in\"}") == 2);
  CHECK(r.metric("omniroute_events_processed_total{result=\"refused\",type=\"conversation.message\"}") == 1);
  CHECK(r.get("/healthz")["status"] == "ok");
  CHECK(r.server->store().digests()["agents"] == digest_before["agents"]);
  CHECK(r.server->store().digests()["conversations"] == digest_before["conversations"]);
}

TEST_CASE("mutated events are answered 202 or a JSON error naming what is wrong, never a 5xx") {
  // Valid events of several types, each mutated one to three times (a field or a data member
  // replaced by an odd value or dropped, the type or id changed), sent alone or in batches,
  // and a fifth of the bodies damaged as bytes (overwritten, cut short). Seeded: the same
  // bodies every run.
  Running r;
  const std::vector<json> valid = {
      event("q", "queue.configured", T0, {{"queue", "support"}, {"auto_accept", true}}),
      event("a", "agent.logged_in", T0,
            {{"agent", "ann"}, {"queues", {"support"}}, {"capacity", {{"chat", 3}}}}),
      event("s", "conversation.started", T1,
            {{"conversation", "c1"}, {"customer", "u1"}, {"channel", "web"}, {"queue", "support"}}),
      event("m", "conversation.message", T1,
            {{"conversation", "c1"}, {"from", "customer"}, {"text", "hi"}}),
      event("e", "conversation.ended", T2, {{"conversation", "c1"}, {"by", "customer"}}),
      event("o", "offer.accepted", T2, {{"conversation", "c1"}, {"agent", "ann"}}),
      event("i", "intent.detected", T2,
            {{"conversation", "c1"}, {"intent", "refund"}, {"confidence", 0.9}, {"source", "bot"}})};
  const std::vector<json> odd = {nullptr, true, 0, -1, 1e308, json(UINT64_MAX), 1.5, "", std::string(3000, 'x'),
                                 json::array(), json::object(), {{"a", {{"b", json::array()}}}},
                                 "2026-13-45T99:99:99Z", "9999-12-31T23:59:59.999Z", "\xC3\xA9"};
  const std::vector<std::string> types = {"conversation.transferred", "agent.status_changed",
                                          "agent.logged_out", "conversation.assigned", "bogus",
                                          "queue.configured", "offer.declined", ""};
  const std::vector<std::string> fields = {"id", "type", "tenant", "time", "data"};
  const std::vector<std::string> members = {"queue",    "agent",        "capacity",
                                            "queues",   "conversation", "priority"};
  std::mt19937 rng(20261207);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  auto mutate = [&](json ev) {
    for (size_t m = 0, n = 1 + pick(3); m < n; ++m) {
      json& data = ev["data"];
      switch (pick(5)) {
        case 0: ev[fields[pick(fields.size())]] = odd[pick(odd.size())]; break;
        case 1: {
          if (!data.is_object()) break;
          std::string key = members[pick(members.size())];
          if (!data.empty() && pick(2)) key = std::next(data.begin(), static_cast<long>(pick(data.size()))).key();
          data[key] = odd[pick(odd.size())];
          break;
        }
        case 2: ev.erase(fields[pick(fields.size())]); break;
        case 3: ev["type"] = types[pick(types.size())]; break;
        default: ev["id"] = "id-" + std::to_string(pick(40));
      }
    }
    return ev;
  };
  std::map<int, int> statuses;
  for (int i = 0; i < 1500; ++i) {
    json events = json::array();
    for (size_t k = 0, n = 1 + pick(4); k < n; ++k) events.push_back(mutate(valid[pick(valid.size())]));
    std::string body = (pick(3) ? events : events[0]).dump();
    if (pick(5) == 0) {
      if (pick(2)) {
        for (size_t k = 0, n = 1 + pick(3); k < n; ++k) body[pick(body.size())] = static_cast<char>(pick(256));
      } else {
        body.resize(pick(body.size() + 1));
      }
    }
    auto res = r.http->Post("/v1/events", body, "application/json");
    REQUIRE(res);
    ++statuses[res->status];
    INFO(body);
    INFO(res->body);
    CHECK((res->status == 202 || res->status == 400));
    json answer = json::parse(res->body, nullptr, false);
    REQUIRE(!answer.is_discarded());
    if (res->status != 202) {
      CHECK(answer["error"].is_string());
      CHECK(answer.value("accepted", 0) == 0);
    }
  }
  MESSAGE("answers by status: " << json(statuses).dump());
  CHECK(statuses[202] > 0);
  CHECK(statuses[400] > 0);
  // The partitions went on through whatever was accepted: a new conversation is decided.
  REQUIRE(r.post(event("q-after", "queue.configured", T2, {{"queue", "after"}, {"auto_accept", true}}))->status == 202);
  REQUIRE(r.post(event("a-after", "agent.logged_in", T2,
                       {{"agent", "zed"}, {"queues", {"after"}}, {"capacity", {{"chat", 1}}}}))->status == 202);
  REQUIRE(r.post(event("s-after", "conversation.started", T2,
                       {{"conversation", "c-after"}, {"customer", "u9"}, {"channel", "web"}, {"queue", "after"}}))
              ->status == 202);
  bool assigned = false;
  int64_t after = -1;
  for (int i = 0; i < 50 && !assigned; ++i) {
    json page = r.get("/v1/journal?tenant=acme&after=" + std::to_string(after) + "&wait_ms=2000");
    for (const auto& e : page["entries"])
      assigned = assigned || (e["type"] == "conversation.assigned" && e["data"]["conversation"] == "c-after");
    after = page["next"];
  }
  CHECK(assigned);
  CHECK(r.get("/healthz")["status"] == "ok");
}

TEST_CASE("a front door a full backlog ahead of its reader answers 503 backlog_full and appends nothing") {
  testing::TempDir dir;
  auto store = std::move(projections::Store::open(dir.str()).value());
  auto message = [](int i) {
    return event("m-" + std::to_string(i), "conversation.message", T1,
                 {{"conversation", "c-1"}, {"from", "customer"}, {"text", "hello"}});
  };
  // Room in memory for three such events; no partition host reads this log, the test does.
  const size_t budget = 3 * events::EmbeddedLog::tail_weight(message(0).dump().size(), true);
  auto log = std::move(events::EmbeddedLog::open(store->log_handles(), 1, false, budget).value());
  ops::Metrics metrics;
  adapters::HttpOptions o;
  o.port = 0;
  o.backlog_wait = std::chrono::milliseconds(0);
  adapters::HttpApi door(
      *log, *store, metrics, [] { return std::nullopt; }, o);
  REQUIRE(door.start());
  httplib::Client http("127.0.0.1", door.port());
  auto post = [&](int first) {
    return http.Post("/v1/events", json::array({message(first), message(first + 1)}).dump(),
                     "application/json");
  };

  auto res = post(0);
  REQUIRE(res);
  CHECK(res->status == 202);
  res = post(2);  // two unread and two more do not fit
  REQUIRE(res);
  CHECK(res->status == 503);
  CHECK(res->get_header_value("Retry-After") == "1");
  json answer = json::parse(res->body);
  CHECK(answer["error"] == "backlog_full");
  CHECK(answer["reason"].get<std::string>().find("partition 0") != std::string::npos);
  CHECK(log->ingest_end(partition_id{0}).value().value() == 2);  // nothing appended

  std::vector<events::IngestRecord> read;
  REQUIRE(log->read_ingest(partition_id{0}, ingest_offset{0}, 10, std::chrono::milliseconds(0), read));
  CHECK(read.size() == 2);
  res = post(2);  // the reader caught up: the same request is taken
  REQUIRE(res);
  CHECK(res->status == 202);
  CHECK(json::parse(res->body)["results"][1]["offset"] == 3);
  door.stop();

  // A door that waits: the request is held until a read makes room, and the wait is counted.
  ops::Metrics patient_metrics;
  o.backlog_wait = std::chrono::milliseconds(120000);
  adapters::HttpApi patient(
      *log, *store, patient_metrics, [] { return std::nullopt; }, o);
  REQUIRE(patient.start());
  auto held = std::async(std::launch::async, [&] {
    httplib::Client c("127.0.0.1", patient.port());
    c.set_read_timeout(180, 0);
    auto r = c.Post("/v1/events", json::array({message(4), message(5)}).dump(), "application/json");
    return r ? r->status : -1;
  });
  while (log->writers_waiting(partition_id{0}) == 0) std::this_thread::yield();
  read.clear();
  REQUIRE(log->read_ingest(partition_id{0}, ingest_offset{2}, 10, std::chrono::milliseconds(0), read));
  CHECK(read.size() == 2);
  CHECK(held.get() == 202);
  auto scrape = httplib::Client("127.0.0.1", patient.port()).Get("/metrics");
  REQUIRE(scrape);
  const std::string name = "omniroute_ingest_backlog_wait_seconds_total ";
  const size_t at = scrape->body.find("\n" + name);
  REQUIRE(at != std::string::npos);
  CHECK(std::stod(scrape->body.substr(at + 1 + name.size())) > 0);
  patient.stop();
}

TEST_CASE("a second server on a port in use is refused, with the reason") {
  Running r;
  testing::TempDir other;
  ops::ServerOptions o;
  o.engine.data_dir = other.str();
  o.http.host = "127.0.0.1";
  o.http.port = r.server->port();
  auto second = ops::Server::start(o);
  // Bound as well (httplib's SO_REUSEPORT), it would take a share of the connections and their
  // events into its own store.
  REQUIRE(!second.has_value());
  CHECK(second.error().message().find("Address already in use") != std::string::npos);
  CHECK(r.get("/healthz")["status"] == "ok");
}

TEST_CASE("queries answer 404 for unknown ids and 400 without a tenant") {
  Running r;
  json a = r.get("/v1/conversations/nope?tenant=acme", 404);
  CHECK(a["error"] == "not_found");
  CHECK(a["conversation"] == "nope");
  r.get("/v1/agents/nope?tenant=acme", 404);
  // An id that is not UTF-8 is not found, and the answer still JSON (the id as U+FFFD).
  CHECK(r.get("/v1/conversations/%FF?tenant=acme", 404)["conversation"] == "\xEF\xBF\xBD");
  r.get("/v1/queues/nope?tenant=acme", 404);
  CHECK(r.get("/v1/conversations/c-1", 400)["parameter"] == "tenant");
  CHECK(r.get("/v1/journal?tenant=acme&limit=0", 400)["parameter"] == "limit");
  CHECK(r.get("/v1/journal?tenant=a%20b", 400)["parameter"] == "tenant");
  CHECK(r.get("/v1/nothing", 404)["error"] == "not_found");
}

TEST_CASE("with credentials, a key uses only its tenants: 401 without a known key, 403 for another's, and a refused batch appends nothing") {
  auto entry = [](const std::string& name, const std::string& key, const std::string& tenant) {
    return json{{"name", name}, {"sha256", adapters::sha256_hex(key)}, {"tenants", {tenant}}};
  };
  auto creds = adapters::Credentials::parse(
      json{{"keys", {entry("acme-web", "key-acme", "acme"), entry("ops", "key-ops", "*")}}}.dump(), "test");
  REQUIRE(creds);
  Running r("", [&](ops::ServerOptions& o) {
    o.http.credentials = std::make_shared<const adapters::Credentials>(std::move(*creds));
  });
  auto status_of = [&](const std::string& key, const std::string& path, std::string* body = nullptr) {
    httplib::Headers h;
    if (!key.empty()) h.emplace("Authorization", "Bearer " + key);
    auto res = r.http->Get(path.c_str(), h);
    REQUIRE(res);
    if (body) *body = res->body;
    return res->status;
  };
  auto post_as = [&](const std::string& key, const json& body) {
    httplib::Headers h;
    if (!key.empty()) h.emplace("Authorization", "Bearer " + key);
    auto res = r.http->Post("/v1/events", h, body.dump(), "application/json");
    REQUIRE(res);
    return std::make_pair(res->status, json::parse(res->body));
  };

  // No key, an unknown one, another scheme: 401 on every /v1 route, the way to authenticate named.
  std::string body;
  for (const std::string path : {"/v1/journal?tenant=acme", "/v1/conversations/c?tenant=acme",
                                  "/v1/queues/support/intervals?tenant=acme", "/v1/customers/u/journey?tenant=acme"})
    CHECK_MESSAGE(status_of("", path) == 401, path);
  CHECK(status_of("key-acm", "/v1/journal?tenant=acme", &body) == 401);
  CHECK(json::parse(body)["reason"] == "unknown key");
  auto basic = r.http->Get("/v1/journal?tenant=acme", {{"Authorization", "Basic a2V5LWFjbWU6"}});
  REQUIRE(basic);
  CHECK(basic->status == 401);
  CHECK(basic->get_header_value("WWW-Authenticate") == "Bearer realm=\"omniroute\"");
  auto [no_key, unauthorized] = post_as("", event("q-a", "queue.configured", T0, {{"queue", "support"}}));
  CHECK(no_key == 401);
  CHECK(unauthorized["error"] == "unauthorized");

  // acme's key: another tenant's views and journal are forbidden, acme's are not.
  for (const std::string path : {"/v1/journal?tenant=globex", "/v1/conversations/c?tenant=globex",
                                  "/v1/queues/support/intervals?tenant=globex", "/v1/customers/u/journey?tenant=globex",
                                  "/v1/queues/support/forecast?tenant=globex"})
    CHECK_MESSAGE(status_of("key-acme", path, &body) == 403, path);
  CHECK(json::parse(body)["reason"] == "the key 'acme-web' may not use tenant 'globex'");
  CHECK(status_of("key-acme", "/v1/conversations/c?tenant=acme") == 404);

  // A batch with one event of another tenant is refused whole: 403, naming that event.
  auto [forbidden, refusal] = post_as("key-acme", json::array({event("q-a", "queue.configured", T0, {{"queue", "support"}}),
                                                               event("q-g", "queue.configured", T0, {{"queue", "support"}}, "globex")}));
  CHECK(forbidden == 403);
  CHECK(refusal["error"] == "forbidden");
  CHECK(refusal["index"] == 1);
  CHECK(refusal["id"] == "q-g");
  CHECK(refusal["accepted"] == 0);
  CHECK(r.metric("omniroute_events_ingested_total{result=\"accepted\",type=\"queue.configured\"}") == 0);
  CHECK(r.metric("omniroute_events_ingested_total{result=\"refused\",type=\"queue.configured\"}") == 1);
  // Nothing of it was appended: acme's next event is journaled, and q-a, which would be before
  // it in acme's partition, is not there.
  auto [accepted, answer] = post_as("key-acme", event("q-a2", "queue.configured", T1, {{"queue", "billing"}}));
  CHECK(accepted == 202);
  r.http->set_bearer_token_auth("key-acme");
  auto entries = r.journal_until("queue.configured");
  REQUIRE(entries.size() == 1);
  CHECK(entries[0]["id"] == "q-a2");

  // A key for every tenant ("*") reads and writes them all.
  auto [ops_post, ops_answer] = post_as("key-ops", event("q-g", "queue.configured", T0, {{"queue", "support"}}, "globex"));
  CHECK(ops_post == 202);
  CHECK(ops_answer["status"] == "accepted");
  CHECK(status_of("key-ops", "/v1/journal?tenant=globex") == 200);
  CHECK(status_of("key-ops", "/v1/journal?tenant=acme") == 200);

  // The SRE endpoints stay open.
  CHECK(status_of("", "/healthz") == 200);
  CHECK(status_of("", "/readyz") == 200);
  CHECK(status_of("", "/metrics") == 200);
  CHECK(r.metric("omniroute_http_requests_total{code=\"403\",route=\"/v1/events\"}") == 1);
  CHECK(r.metric("omniroute_http_requests_total{code=\"401\",route=\"/v1/journal\"}") == 3);
}

TEST_CASE("requests no route matches are counted as one route, whatever their paths") {
  Running r;
  for (int i = 0; i < 5; ++i) {
    r.get("/v1/conversations/c-1/extra" + std::to_string(i), 404);
    r.get("/v1/agents/a/b/c" + std::to_string(i), 404);
    r.get("/v1/other" + std::to_string(i), 404);
  }
  r.get("/v1/conversations/c-1?tenant=acme", 404);  // a route, and an id it does not know
  CHECK(r.metric("omniroute_http_requests_total{code=\"404\",route=\"unmatched\"}") == 15);
  CHECK(r.metric("omniroute_http_requests_total{code=\"404\",route=\"/v1/conversations/{id}\"}") == 1);
  auto all = r.http->Get("/metrics");
  REQUIRE(all);
  CHECK(all->body.find("/extra") == std::string::npos);
  CHECK(all->body.find("/b/c") == std::string::npos);
  CHECK(all->body.find("/v1/other") == std::string::npos);
}

TEST_CASE("RocksDB's write stall time is counted once, whichever scrape reads it") {
  // Each scrape reads RocksDB's total and counts what it adds; two scrapes at once may report
  // their totals out of order.
  ops::Metrics metrics;
  metrics.write_stall_micros(1500000);
  metrics.write_stall_micros(1000000);  // read before the one above, reported after it
  metrics.write_stall_micros(1500000);
  metrics.write_stall_micros(4000000);
  const std::string text = metrics.render();
  CHECK(text.find("\nomniroute_rocksdb_write_stall_seconds_total 4\n") != std::string::npos);
}

TEST_CASE("queues past --metrics-queues get no gauges of their own: clients cannot grow the metrics without end") {
  Running r("", [](ops::ServerOptions& o) { o.metrics_queues = 2; });
  json batch = json::array();
  for (const std::string tenant : {"t1", "t2", "t3", "t4"}) {
    batch.push_back(event(tenant + "-q", "queue.configured", T0, {{"queue", "support"}}, tenant));
    batch.push_back(event(tenant + "-a", "agent.logged_in", T1,
                          {{"agent", "alice"}, {"queues", {"support"}}, {"capacity", {{"chat", 1}}}}, tenant));
  }
  auto res = r.post(batch);
  REQUIRE(res);
  REQUIRE(res->status == 202);
  // Every tenant reports its queue as its partition host projects it: once two more than the
  // limit have, the gauge says so.
  for (int i = 0; i < 400 && r.metric("omniroute_metrics_queues_limited") != 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  CHECK(r.metric("omniroute_metrics_queues_limited") == 1);
  for (const std::string t : {"t1", "t2", "t3", "t4"}) r.journal_until("agent.logged_in", t);
  auto scraped = r.http->Get("/metrics");
  REQUIRE(scraped);
  std::set<std::string> with_queue, with_agents;
  std::istringstream in(scraped->body);
  std::string line;
  while (std::getline(in, line)) {
    const size_t at = line.find("tenant=\"");
    if (at == std::string::npos) continue;
    const std::string tenant = line.substr(at + 8, line.find('"', at + 8) - at - 8);
    if (line.rfind("omniroute_queue_depth{", 0) == 0) with_queue.insert(tenant);
    if (line.rfind("omniroute_agents{", 0) == 0) with_agents.insert(tenant);
  }
  CHECK(with_queue.size() == 2);
  CHECK(with_agents.size() == 2);
}

TEST_CASE("a tenant as of a moment of its journal is what the live views showed at that moment") {
  Running r;
  struct Seen {
    uint64_t seq;
    int64_t time_ms;
    json conversation, agent, queue;
  };
  std::vector<Seen> seen;
  int64_t after = -1;
  // Posts a fact, waits for the decision it causes, and keeps what the views show then.
  auto step = [&](const json& fact, const std::string& decision) {
    auto res = r.post(fact);
    REQUIRE(res);
    REQUIRE(res->status == 202);
    auto entries = r.journal_until(decision, "acme", after);
    after = entries.back()["seq"];
    seen.push_back({static_cast<uint64_t>(after), *events::parse_rfc3339_ms(entries.back()["time"].get<std::string>()),
                    r.get("/v1/conversations/c-1?tenant=acme"), r.get("/v1/agents/alice?tenant=acme"),
                    r.get("/v1/queues/billing?tenant=acme")});
  };
  REQUIRE(r.post(event("q-1", "queue.configured", T0, {{"queue", "billing"}}))->status == 202);
  REQUIRE(r.post(event("a-1", "agent.logged_in", T1, {{"agent", "alice"}, {"queues", {"billing"}}, {"capacity", {{"chat", 2}}}}))->status == 202);
  step(event("c-1", "conversation.started", T2, {{"conversation", "c-1"}, {"customer", "u-9"}, {"channel", "web"}, {"queue", "billing"}}),
       "conversation.offered");
  const std::string offer = r.journal_until("conversation.offered").back()["data"]["offer"];
  step(event("acc-1", "offer.accepted", "2026-11-20T10:00:05Z", {{"conversation", "c-1"}, {"agent", "alice"}, {"offer", offer}}),
       "conversation.assigned");
  step(event("end-1", "conversation.ended", "2026-11-20T10:00:09Z", {{"conversation", "c-1"}, {"by", "customer"}}),
       "conversation.ended");
  r.server.reset();  // closes the data directory

  ops::EngineOptions o;
  o.data_dir = r.dir.str();
  auto storage = ops::open_storage(o);
  REQUIRE_MESSAGE(storage, (storage ? "" : storage.error().message()));
  auto as_json = [](const std::optional<events::json>& doc) { return doc ? json::parse(doc->dump()) : json(nullptr); };
  for (size_t i = 0; i < seen.size(); ++i) {
    INFO("moment " << i << ", seq " << seen[i].seq);
    for (const bool by_time : {false, true}) {
      auto m = actors::tenant_at(*storage->log, "acme", by_time ? std::nullopt : std::optional<seq_no>(seq_no{seen[i].seq}),
                                 by_time ? std::optional<int64_t>(seen[i].time_ms) : std::nullopt);
      REQUIRE(m);
      REQUIRE((*m)->seq);
      CHECK((*m)->seq->value() == seen[i].seq);
      CHECK(as_json((*m)->tenant.conversation_view("c-1")) == seen[i].conversation);
      CHECK(as_json((*m)->tenant.agent_view("alice")) == seen[i].agent);
      CHECK(as_json((*m)->tenant.queue_view("billing")) == seen[i].queue);
    }
  }
  // The moments differ (the test compares something), and before the first entry there is nothing.
  CHECK(seen[0].conversation["state"] == "offered");
  CHECK(seen[1].conversation["state"] == "assigned");
  CHECK(seen[2].conversation["state"] == "wrap_up");
  auto before = actors::tenant_at(*storage->log, "acme", std::nullopt, int64_t{0});
  REQUIRE(before);
  CHECK_FALSE((*before)->seq);
  CHECK_FALSE((*before)->tenant.queue_view("billing"));
}

TEST_CASE("a node whose views cover only its partitions answers 421 for the others, 503 while it is not ready") {
  testing::TempDir dir;
  ops::EngineOptions e;
  e.data_dir = dir.str();
  e.partitions = 2;
  auto storage = ops::open_storage(e);
  REQUIRE(storage);
  ops::Metrics metrics;
  std::atomic<bool> ready{false};
  adapters::HttpOptions o;
  o.port = 0;
  const auto not_ready = [&]() -> std::optional<std::string> {
    if (ready) return std::nullopt;
    return std::string("warming up");
  };
  adapters::HttpApi api(*storage->log, *storage->store, metrics, not_ready, o);
  const partition_id mine = storage->log->partition_of("acme");
  api.answer_only_owned([&](partition_id p) { return ready && p == mine; });
  REQUIRE(api.start());
  httplib::Client http("127.0.0.1", api.port());
  std::string other;  // a tenant of the other partition
  for (int i = 0; other.empty(); ++i)
    if (storage->log->partition_of("t" + std::to_string(i)) != mine) other = "t" + std::to_string(i);

  auto unanswered = http.Get(("/v1/journal?tenant=" + other).c_str());
  REQUIRE(unanswered);
  CHECK(unanswered->status == 503);
  CHECK(unanswered->get_header_value("Retry-After") == "1");
  CHECK(json::parse(unanswered->body)["error"] == "not_ready");
  auto readyz = http.Get("/readyz");
  REQUIRE(readyz);
  CHECK(readyz->status == 503);
  CHECK(json::parse(readyz->body)["reason"] == "warming up");  // the processor's reason

  ready = true;
  auto elsewhere = http.Get(("/v1/conversations/c-1?tenant=" + other).c_str());
  REQUIRE(elsewhere);
  CHECK(elsewhere->status == 421);
  CHECK(json::parse(elsewhere->body)["error"] == "not_owned");
  CHECK(json::parse(elsewhere->body)["partition"] == 1 - mine.value());
  auto here = http.Get("/v1/conversations/c-1?tenant=acme");
  REQUIRE(here);
  CHECK(here->status == 404);  // owned: the views answer, and they have no such conversation
  api.stop();
}

TEST_CASE("a view the partition host could not render is answered 500 view_unavailable") {
  Running r;
  // Documents as project_touched writes them in place of one whose rendering threw.
  projections::Store& store = r.server->store();
  projections::ViewBatch batch(store);
  batch.put_document(projections::view::conversations, "acme", "c-9",
                     json{{"id", "c-9"}, {"view_error", "injected failure"}});
  batch.put_document(projections::view::customers, "acme", "u-9",
                     json{{"id", "u-9"}, {"view_error", "injected failure"}});
  REQUIRE(batch.commit(partition_id{0}, store.applied(partition_id{0})));
  CHECK(r.get("/v1/conversations/c-9?tenant=acme", 500) ==
        json{{"error", "view_unavailable"}, {"conversation", "c-9"}, {"tenant", "acme"}, {"reason", "injected failure"}});
  CHECK(r.get("/v1/customers/u-9/journey?tenant=acme", 500) ==
        json{{"error", "view_unavailable"}, {"customer", "u-9"}, {"tenant", "acme"}, {"reason", "injected failure"}});
  r.get("/v1/conversations/c-8?tenant=acme", 404);
}

TEST_CASE("a pool of 100 idle keep-alive connections does not keep a new connection waiting") {
  // A connection holds one of the server's HTTP threads while it is open. With fewer threads
  // than connections, a new connection waits until an idle one reaches its keep-alive timeout
  // (5 s) and the server closes it: the idle connections below would then be found closed.
  Running r;
  std::vector<int> idle;
  for (int i = 0; i < 100; ++i) idle.push_back(connection_asked_health(r.server->port()));
  const int fresh = connection_asked_health(r.server->port());  // answered: a thread was free
  size_t closed = 0;
  for (int fd : idle) {
    char byte;
    if (::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0) ++closed;  // the server hung up
    ::close(fd);
  }
  ::close(fresh);
  CHECK(closed == 0);
}

// A socket option of the server's end of `client`'s connection: the socket of this process
// whose peer is `client` (-1 if none is).
int server_end_option(int client, int level, int option) {
  sockaddr_in mine{};
  socklen_t len = sizeof mine;
  REQUIRE(::getsockname(client, reinterpret_cast<sockaddr*>(&mine), &len) == 0);
  int value = -1;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::stoi(entry.path().filename().string());
    sockaddr_in peer{};
    socklen_t plen = sizeof peer;
    if (fd == client || ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) != 0) continue;
    if (peer.sin_family != AF_INET || peer.sin_port != mine.sin_port) continue;
    socklen_t olen = sizeof value;
    REQUIRE(::getsockopt(fd, level, option, &value, &olen) == 0);
  }
  return value;
}

TEST_CASE("the server's connections send without Nagle's delay (TCP_NODELAY)") {
  // With Nagle's algorithm, an answer's body, sent after its headers, waits for the client's
  // delayed ACK: 40 ms for every answer that does not fill a segment (one event posted).
  Running r;
  const int client = connection_asked_health(r.server->port());  // the server has it now
  CHECK(server_end_option(client, IPPROTO_TCP, TCP_NODELAY) == 1);
  ::close(client);
}

TEST_CASE(
    "the server ends a connection whose client vanished: 30 s unacknowledged, or idle probes "
    "unanswered") {
  // Without these, a stream whose client went without closing (no FIN: its machine or its NAT
  // gone) held its thread and place until the kernel stopped retransmitting, about 15 minutes.
  // Found end to end with a client in a network namespace whose link was cut
  // (docs/design-notes.md).
  Running r;
  const int client = connection_asked_health(r.server->port());
  CHECK(server_end_option(client, IPPROTO_TCP, TCP_USER_TIMEOUT) == 30000);
  CHECK(server_end_option(client, SOL_SOCKET, SO_KEEPALIVE) == 1);
  CHECK(server_end_option(client, IPPROTO_TCP, TCP_KEEPIDLE) == 60);
  CHECK(server_end_option(client, IPPROTO_TCP, TCP_KEEPINTVL) == 10);
  CHECK(server_end_option(client, IPPROTO_TCP, TCP_KEEPCNT) == 3);
  ::close(client);
}

TEST_CASE("the journal long-poll returns as soon as a decision is written") {
  Running r;
  auto waiting = long_poll(r, "acme");
  REQUIRE(r.post(event("q-1", "queue.configured", T0, {{"queue", "billing"}}))->status == 202);
  auto answer = waiting.get();
  REQUIRE(answer.first == 200);
  json page = json::parse(answer.second);
  REQUIRE(page["entries"].size() >= 1);
  CHECK(page["entries"][0]["id"] == "q-1");
  CHECK(page["next"] == page["entries"].back()["seq"]);
}

TEST_CASE("kafka: the server routes through the kafka engine (mock cluster)") {
  testing::MockKafka cluster;
  Running r(cluster.brokers());  // creates the topics with the admin API
  REQUIRE(r.post(json::array(
                     {event("q-1", "queue.configured", T0, {{"queue", "billing"}, {"auto_accept", true}}),
                      event("a-1", "agent.logged_in", T1, {{"agent", "alice"}, {"queues", {"billing"}}}),
                      event("c-1", "conversation.started", T2,
                            {{"conversation", "c-1"}, {"customer", "u-9"}, {"channel", "web"}, {"queue", "billing"}})}))
              ->status == 202);
  // Until the group has given the node its partitions it answers queries 503 not_ready.
  for (int i = 0; i < 300 && !r.server->ready(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  REQUIRE(r.server->ready());
  auto entries = r.journal_until("conversation.assigned");
  CHECK(entries.back()["data"]["agent"] == "alice");
  CHECK(r.get("/v1/conversations/c-1?tenant=acme")["state"] == "assigned");
  auto res = r.post(event("c-1", "conversation.started", T2,
                          {{"conversation", "c-1"}, {"customer", "u-9"}, {"channel", "web"}, {"queue", "billing"}}));
  CHECK(json::parse(res->body)["status"] == "duplicate");
}

TEST_CASE(
    "kafka: ingest records deleted before they were processed are reported lost, and processing "
    "goes on") {
  testing::MockKafka cluster;
  cluster.create_topic("omniroute.ingest", 2);
  cluster.create_topic("omniroute.journal", 2);
  // Before any processor runs, 6 MB of events in acme's partition: the mock cluster keeps about
  // 5 MiB a partition and drops the oldest past that, as a topic's retention would. Each is
  // refused when processed (no such type), so the journal stays small; a queue after them.
  events::KafkaOptions k;
  k.brokers = cluster.brokers();
  k.config = {{"log_level", "0"}};
  std::string partition;
  {
    auto log = events::KafkaLog::open(k);
    REQUIRE(log.has_value());
    const partition_id p = (*log)->partition_of("acme");
    partition = std::to_string(p.value());
    std::vector<std::string> payloads;
    for (int i = 0; i < 100; ++i)
      payloads.push_back(
          event("big-" + std::to_string(i), "no.such_type", T0, {{"pad", std::string(60000, 'x')}})
              .dump());
    payloads.push_back(event("q-1", "queue.configured", T1, {{"queue", "billing"}}).dump());
    REQUIRE((*log)->append_ingest(p, payloads, nullptr));
  }
  Running r(cluster.brokers());
  for (int i = 0; i < 300 && !r.server->ready(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  REQUIRE(r.server->ready());
  const auto entries = r.journal_until("queue.configured");
  // The first events are gone: the journal starts with the refusal of one after them, and the
  // loss is counted as the partition's error (the log line names the offsets).
  REQUIRE(entries.front()["type"] == "event.refused");
  const std::string first = entries.front()["data"]["event"];
  CHECK(first != "big-0");
  CHECK(std::stoi(first.substr(4)) > 0);
  CHECK(entries.size() == 101 - std::stoul(first.substr(4)));
  CHECK(r.metric("omniroute_processor_errors_total{partition=\"" + partition + "\"}") == 1);
}

TEST_CASE(
    "kafka: an event larger than a Kafka message takes is refused with 413, and its batch appends "
    "nothing") {
  testing::MockKafka cluster;
  auto bigger_bodies = [](ops::ServerOptions& o) { o.http.max_body_bytes = 4 << 20; };
  Running r(cluster.brokers(), bigger_bodies);
  // librdkafka's producer takes messages of at most 1,000,000 bytes (message.max.bytes); the
  // log keeps 64 KiB of them for the decisions a fact's journal record carries.
  const json big = event("big-1", "queue.configured", T0,
                         {{"queue", "big"}, {"note", std::string(1100000, 'x')}});
  auto refused =
      r.post(json::array({event("q-1", "queue.configured", T0, {{"queue", "billing"}}), big}));
  REQUIRE(refused);
  CHECK(refused->status == 413);
  const json why = json::parse(refused->body);
  CHECK(why["error"] == "event_too_large");
  CHECK(why["index"] == 1);
  CHECK(why["id"] == "big-1");
  CHECK(why["reason"].get<std::string>().find("this server's event log takes at most 934464") !=
        std::string::npos);
  // Nothing of the batch was appended: its first event is new when sent again.
  auto again = r.post(event("q-1", "queue.configured", T0, {{"queue", "billing"}}));
  REQUIRE(again);
  CHECK(json::parse(again->body)["status"] == "accepted");
  // The embedded engine takes it (the body's limit is the only one).
  Running embedded("", bigger_bodies);
  auto taken = embedded.post(big);
  REQUIRE(taken);
  CHECK(taken->status == 202);
}

TEST_CASE(
    "kafka: a fact whose journal record would be larger than a Kafka message takes is refused, and "
    "the partition goes on") {
  testing::MockKafka cluster;
  // Messages of at most 300,000 bytes: events up to 234,464 bytes pass the door, records up to
  // 298,976 bytes are journaled.
  Running r(cluster.brokers(), [](ops::ServerOptions& o) {
    o.http.max_body_bytes = 4 << 20;
    o.engine.kafka_config["message.max.bytes"] = "300000";
  });
  for (int i = 0; i < 300 && !r.server->ready(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  REQUIRE(r.server->ready());
  // A policy whose rule reads an attribute: each decision lists what its rules read (`inputs`),
  // so a conversation's 200 KB note is in its fact and again in its arbitration.decided.
  std::ifstream in(std::string(OMNIROUTE_SOURCE_DIR) + "/examples/policies/car-rental.json");
  REQUIRE(in.good());
  json policy = json::parse(in);
  policy["actions"][1]["eligibility"] =
      "conversation.attributes.late_minutes > 0 AND conversation.attributes.note != \"\"";
  auto started = [](const std::string& id, const std::string& note) {
    return event(id, "conversation.started", T1,
                 {{"conversation", id},
                  {"customer", "u-" + id},
                  {"channel", "app"},
                  {"intent", "late_return"},
                  {"attributes", {{"late_minutes", 240}, {"note", note}}}});
  };
  REQUIRE(r.post(json::array({event("p-1", "policy.published", T0, {{"policy", policy}}),
                              started("r-1", std::string(200000, 'n')), started("r-2", "short")}))
              ->status == 202);
  // r-1 is refused (its record would be about twice the note), r-2 decided after it.
  std::map<std::string, json> seen;  // by type and conversation or refused event
  int64_t after = -1;
  for (int i = 0; i < 50 && !seen.count("arbitration.decided r-2"); ++i) {
    json page = r.get("/v1/journal?tenant=acme&after=" + std::to_string(after) + "&wait_ms=2000");
    for (const auto& e : page["entries"]) {
      const json& d = e["data"];
      seen[e["type"].get<std::string>() + " " +
           (d.contains("conversation") ? d["conversation"] : d.value("event", json("")))
               .get<std::string>()] = e;
    }
    after = page["next"];
  }
  REQUIRE(seen.count("arbitration.decided r-2"));
  CHECK_FALSE(seen.count("arbitration.decided r-1"));
  REQUIRE(seen.count("event.refused r-1"));
  const std::string reason = seen["event.refused r-1"]["data"]["reason"];
  CHECK(reason.rfind("not processed: its journal record would be ", 0) == 0);
  CHECK(reason.find(" bytes, with its decisions; the event log takes at most 298976") !=
        std::string::npos);
  CHECK(r.get("/v1/conversations/r-1?tenant=acme", 404)["error"] == "not_found");
}

TEST_CASE("long-polls past the limit are answered 503 at once: ingest and queries keep their threads") {
  Running r("", [](ops::ServerOptions& o) { o.http.max_waiting_polls = 2; });
  REQUIRE(r.post(event("q-1", "queue.configured", T0, {{"queue", "billing"}}))->status == 202);
  r.journal_until("queue.configured");
  // Two polls of a tenant with no journal wait; the gauge says when both are waiting.
  auto first = long_poll(r, "quiet"), second = long_poll(r, "quiet");
  while (r.metric("omniroute_http_journal_polls_waiting") < 2) std::this_thread::yield();
  auto third = r.http->Get("/v1/journal?tenant=quiet&wait_ms=30000");
  REQUIRE(third);
  CHECK(third->status == 503);
  CHECK(third->get_header_value("Retry-After") == "1");
  json answer = json::parse(third->body);
  CHECK(answer["error"] == "too_many_waiting");
  CHECK(answer["limit"] == 2);
  // A poll with entries to return does not wait, so it is answered at the limit too.
  CHECK(r.get("/v1/journal?tenant=acme&wait_ms=30000")["entries"].size() == 1);
  // Ingest and queries are answered while the two still wait.
  REQUIRE(r.post(event("q-2", "queue.configured", T1, {{"queue", "sales"}}))->status == 202);
  CHECK(r.get("/healthz")["status"] == "ok");
  CHECK(first.wait_for(std::chrono::seconds(0)) == std::future_status::timeout);
  CHECK(second.wait_for(std::chrono::seconds(0)) == std::future_status::timeout);
  // The waiting polls end with the first entry of their tenant, and free their places.
  REQUIRE(r.post(event("q-3", "queue.configured", T1, {{"queue", "support"}}, "quiet"))->status == 202);
  CHECK(first.get().first == 200);
  CHECK(second.get().first == 200);
  while (r.metric("omniroute_http_journal_polls_waiting") > 0) std::this_thread::yield();
  CHECK(r.get("/v1/journal?tenant=quiet&after=1&wait_ms=10")["entries"].empty());
}

TEST_CASE("the journal as server-sent events: every entry once and in order, live, resumed after Last-Event-ID, filtered by type") {
  Running r;
  const int port = r.server->port();
  REQUIRE(r.post(json::array({event("q-1", "queue.configured", T0, {{"queue", "billing"}}),
                              event("a-1", "agent.logged_in", T1, {{"agent", "alice"}, {"queues", {"billing"}}})}))
              ->status == 202);
  auto offered = [](const std::vector<SentEvent>& events) {
    for (const auto& e : events)
      if (e.event == "conversation.offered") return true;
    return false;
  };
  // Open before the conversation starts: what it was written meanwhile arrives on it.
  auto live = read_stream(port, "/v1/journal/stream?tenant=acme", {}, offered);
  r.journal_until("agent.logged_in");
  REQUIRE(r.post(event("c-1", "conversation.started", T2,
                       {{"conversation", "c-1"}, {"customer", "u-9"}, {"channel", "web"}, {"queue", "billing"}}))
              ->status == 202);
  auto [status, events] = live.get();
  CHECK(status == 200);
  const auto entries = entries_of(events);
  REQUIRE(entries.size() == 5);  // the two facts, the conversation's, queued, offered
  for (size_t i = 0; i < entries.size(); ++i) {
    json e = json::parse(entries[i].data);
    CHECK(entries[i].id == std::to_string(i));
    CHECK(e["seq"] == i);
    CHECK(entries[i].event == e["type"]);
  }
  CHECK(json::parse(entries[0].data)["id"] == "q-1");
  CHECK(json::parse(entries[4].data)["data"]["agent"] == "alice");

  // A reconnecting EventSource sends the last id it saw: the stream goes on after it. With
  // types, the others are passed over.
  auto resumed = read_stream(port, "/v1/journal/stream?tenant=acme&types=conversation.offered,queue.configured",
                             {{"Last-Event-ID", "2"}}, offered).get();
  REQUIRE(entries_of(resumed.second).size() == 1);
  CHECK(entries_of(resumed.second)[0].id == "4");
  auto from_after = read_stream(port, "/v1/journal/stream?tenant=acme&after=3", {}, offered).get();
  REQUIRE(entries_of(from_after.second).size() == 1);
  CHECK(entries_of(from_after.second)[0].event == "conversation.offered");

  // Bad requests are answered as any other route's, before anything is streamed.
  json bad = r.get("/v1/journal/stream?tenant=acme&types=conversation.offered,conversation.offerd", 400);
  CHECK(bad["parameter"] == "types");
  CHECK(bad["type"] == "conversation.offerd");
  auto bad_id = r.http->Get("/v1/journal/stream?tenant=acme", {{"Last-Event-ID", "-1"}});
  REQUIRE(bad_id);
  CHECK(bad_id->status == 400);
  CHECK(json::parse(bad_id->body)["header"] == "Last-Event-ID");
  CHECK(r.get("/v1/journal/stream", 400)["parameter"] == "tenant");
  CHECK(r.get("/v1/journal/stream?tenant=acme&heartbeat_ms=5", 400)["parameter"] == "heartbeat_ms");
}

TEST_CASE("a journal stream holds a place among the long-polls, and gives it back when its client goes") {
  Running r("", [](ops::ServerOptions& o) { o.http.max_waiting_polls = 1; });
  const int port = r.server->port();
  std::atomic<bool> heard{false}, leave{false};
  // A quiet tenant's stream says it is alive every 100 ms; the client stays until told to go.
  auto first = read_stream(port, "/v1/journal/stream?tenant=quiet&heartbeat_ms=100", {},
                           [&](const std::vector<SentEvent>& events) {
                             if (!events.empty() && events.back().comment == " heartbeat") heard = true;
                             return leave.load();
                           });
  while (!heard) std::this_thread::yield();
  CHECK(r.metric("omniroute_http_journal_streams") == 1);
  CHECK(r.metric("omniroute_http_journal_polls_waiting") == 1);
  // The place is taken: another stream, or a long-poll with nothing to return, is refused.
  json refused = r.get("/v1/journal/stream?tenant=quiet", 503);
  CHECK(refused["error"] == "too_many_waiting");
  CHECK(refused["limit"] == 1);
  CHECK(r.get("/v1/journal?tenant=quiet&wait_ms=30000", 503)["error"] == "too_many_waiting");
  // The client goes: a heartbeat's write fails, and the place is free again.
  leave = true;
  CHECK(first.get().first == 200);
  while (r.metric("omniroute_http_journal_streams") > 0) std::this_thread::yield();
  CHECK(r.metric("omniroute_http_journal_polls_waiting") == 0);
  auto again = read_stream(port, "/v1/journal/stream?tenant=quiet&heartbeat_ms=100", {},
                           [](const std::vector<SentEvent>& events) { return !events.empty(); });
  CHECK(again.get().second.at(0).comment == " heartbeat");
}

TEST_CASE(
    "a journal stream whose client closes gives its place back while it waits, not at its next "
    "heartbeat") {
  Running r;
  const int port = r.server->port();
  REQUIRE(r.post(event("q-1", "queue.configured", T0, {{"queue", "billing"}}))->status == 202);
  r.journal_until("queue.configured");
  // A heartbeat a minute away: the client takes the one entry there is, and closes.
  auto first =
      read_stream(port, "/v1/journal/stream?tenant=acme&heartbeat_ms=60000", {},
                  [](const std::vector<SentEvent>& events) { return !entries_of(events).empty(); });
  REQUIRE(first.get().first == 200);
  // The stream waits for an entry to send, finds its client gone, and ends: its place is back
  // well before the minute (a bound of 10 s, looked at every 5 ms).
  const auto closed = std::chrono::steady_clock::now();
  while (r.metric("omniroute_http_journal_streams") > 0 &&
         std::chrono::steady_clock::now() - closed < std::chrono::seconds(10))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(r.metric("omniroute_http_journal_streams") == 0);
  CHECK(r.metric("omniroute_http_journal_polls_waiting") == 0);
}

TEST_CASE("a journal stream ends when its key is taken away, and shutdown does not wait for open streams") {
  auto old_keys = adapters::Credentials::parse(acme_key("key-old"), "test");
  auto new_keys = adapters::Credentials::parse(acme_key("key-new"), "test");
  REQUIRE(old_keys);
  REQUIRE(new_keys);
  Running r("", [&](ops::ServerOptions& o) {
    o.http.credentials = std::make_shared<const adapters::Credentials>(std::move(*old_keys));
  });
  const int port = r.server->port();
  auto never = [](const std::vector<SentEvent>&) { return false; };
  auto revoked = read_stream(port, "/v1/journal/stream?tenant=acme", {{"Authorization", "Bearer key-old"}}, never);
  while (r.metric("omniroute_http_journal_streams") < 1) std::this_thread::yield();
  r.server->set_credentials(std::make_shared<const adapters::Credentials>(std::move(*new_keys)));
  // The server ends it (it does not wait for the 15 s heartbeat), and the old key is refused.
  CHECK(revoked.get().first == 200);
  auto refused = r.http->Get("/v1/journal/stream?tenant=acme", {{"Authorization", "Bearer key-old"}});
  REQUIRE(refused);
  CHECK(refused->status == 401);

  auto open = read_stream(port, "/v1/journal/stream?tenant=acme", {{"Authorization", "Bearer key-new"}}, never);
  while (r.metric("omniroute_http_journal_streams") < 1) std::this_thread::yield();
  auto stop_started = std::chrono::steady_clock::now();
  r.server->stop();
  auto took = std::chrono::steady_clock::now() - stop_started;
  CHECK_MESSAGE(took < std::chrono::seconds(5), std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  CHECK(open.get().first == 200);
}

TEST_CASE("shutdown does not wait for pending long-polls") {
  Running r;
  auto waiting = long_poll(r, "quiet");
  // Give the long-poll a moment to park (if it has not, it meets the stopping server instead:
  // either way stop() must not wait out its 30 seconds, so the check below holds regardless).
  auto t0 = std::chrono::steady_clock::now();
  while (waiting.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready &&
         std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(300))
    std::this_thread::yield();
  auto stop_started = std::chrono::steady_clock::now();
  r.server->stop();
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - stop_started);
  CHECK_MESSAGE(took < std::chrono::seconds(5), took.count() << " ms");
  int status = waiting.get().first;
  CHECK((status == 200 || status == -1));
}

TEST_CASE("history in, interval statistics and a staffing plan with its gap out, over HTTP") {
  Running r;
  json batch = json::array();
  batch.push_back(testing::event("q", "queue.configured", "2026-11-01T00:00:00Z",
                                 {{"queue", "sales"}, {"sl_threshold_s", 30}, {"sl_target", 0.9}}));
  // Two days, 10:00-11:00 UTC: 12 calls a day, every fifth abandoned after 40 s, the others
  // answered after 10 s (or 35 s on the second day) and handled for 300 s.
  for (int day = 0; day < 2; ++day)
    for (int i = 0; i < 12; ++i) {
      const bool abandoned = i % 5 == 4;
      char time[32];
      std::snprintf(time, sizeof time, "2026-11-0%dT10:%02d:00Z", 2 + day, i * 5);
      json data = {{"contact", "k" + std::to_string(day) + "-" + std::to_string(i)}, {"queue", "sales"},
                   {"channel", "voice"}, {"outcome", abandoned ? "abandoned" : "answered"},
                   {"waited_s", abandoned ? 40 : (day == 0 ? 10 : 35)}};
      if (!abandoned) data["handled_s"] = 300;
      batch.push_back(testing::event("h" + std::to_string(day) + "-" + std::to_string(i), "contact.recorded", time, data));
    }
  batch.push_back(testing::event("plan", "schedule.published", "2026-11-03T12:00:00Z",
                                 {{"queue", "sales"},
                                  {"intervals", {{{"start", "2026-11-04T10:00:00Z"}, {"end", "2026-11-04T11:00:00Z"}, {"agents", 1}}}}}));
  auto res = r.post(batch);
  REQUIRE(res);
  REQUIRE(res->status == 202);
  r.journal_until("schedule.published");

  json days = r.get("/v1/queues/sales/intervals?tenant=acme&interval_s=86400&channel=*");
  REQUIRE(days["intervals"].size() == 2);
  json d0 = days["intervals"][0], d1 = days["intervals"][1];
  CHECK(d0["start"] == "2026-11-02T00:00:00.000Z");
  CHECK(d0["offered"] == 12);
  CHECK(d0["answered"] == 10);
  CHECK(d0["abandoned"] == 2);
  CHECK(d0["answered_within_threshold"] == 10);
  CHECK(d1["answered_within_threshold"] == 0);  // 35 s > the queue's 30 s
  CHECK(d0["handle_time_s"] == 3000.0);
  CHECK(d0["aht_s"] == 300.0);
  CHECK(d0["service_level"] == doctest::Approx(10.0 / 12));
  json hours = r.get("/v1/queues/sales/intervals?tenant=acme&from=2026-11-02T10:00:00Z&to=2026-11-02T11:00:00Z&interval_s=1800");
  REQUIRE(hours["intervals"].size() == 2);
  CHECK(hours["intervals"][0]["channel"] == "voice");
  CHECK(hours["intervals"][0]["offered"] == 6);

  json plan = r.get("/v1/queues/sales/forecast?tenant=acme&horizon_days=1&interval_s=3600");
  CHECK(plan["method"] == "seasonal_naive");  // two days: nothing to backtest yet
  CHECK(plan["available_source"] == "schedule");
  REQUIRE(plan["intervals"].size() == 24);
  json ten = plan["intervals"][10];
  CHECK(ten["start"] == "2026-11-04T10:00:00.000Z");
  CHECK(ten["forecast_volume"] == 12.0);  // the day before, same hour
  CHECK(ten["forecast_aht_s"] == 300.0);
  CHECK(ten["required_agents"].get<int>() >= 2);  // 1 erlang at a 90 % / 30 s target
  CHECK(ten["available_agents"] == 1.0);
  CHECK(ten["gap"] == 1.0 - ten["required_agents"].get<double>());
  CHECK(plan["intervals"][3]["required_agents"] == 0);
  CHECK(plan["intervals"][3]["available_agents"].is_null());

  CHECK(r.get("/v1/queues/sales/intervals?tenant=acme&interval_s=700", 400)["parameter"] == "interval_s");
  CHECK(r.get("/v1/queues/sales/forecast?tenant=acme&utc_offset=noon", 400)["parameter"] == "utc_offset");
  CHECK(r.get("/v1/queues/sales/forecast?tenant=acme&method=guess", 400)["parameter"] == "method");
  CHECK(r.get("/v1/queues/sales/forecast?tenant=acme&shrinkage=1.5", 400)["parameter"] == "shrinkage");
  CHECK(r.get("/v1/queues/nobody/forecast?tenant=acme", 404)["error"] == "not_found");
  auto bad = r.post(testing::event("x", "contact.recorded", "2026-11-02T10:00:00Z",
                                   {{"contact", "x"}, {"queue", "sales"}, {"channel", "voice"},
                                    {"outcome", "lost"}, {"waited_s", 1}}));
  REQUIRE(bad);
  CHECK(bad->status == 400);
  CHECK(json::parse(bad->body)["field"] == "data.outcome");
}

TEST_CASE("routing over HTTP: the server's clock times out an offer, a tick relaxes, a reopen prefers the last agent") {
  Running r;
  auto bad = r.post(event("bad-q", "queue.configured", T0,
                          {{"queue", "skilled"}, {"requirement", "agent.skills.billing >"}}));
  REQUIRE(bad);
  CHECK(bad->status == 400);
  CHECK(json::parse(bad->body)["field"] == "data.requirement");
  CHECK(json::parse(bad->body)["reason"] == "position 23: expected a value, found end of expression");

  REQUIRE(r.post(json::array({
                     event("q-fast", "queue.configured", T0,
                           {{"queue", "fast"}, {"offer_timeout_s", 1}, {"no_answer_limit", 1}}),
                     event("q-skilled", "queue.configured", T0,
                           {{"queue", "skilled"},
                            {"auto_accept", true},
                            {"requirement", "agent.skills.billing >= 4"},
                            {"relax", {{{"after_s", 600}, {"requirement", "agent.skills.billing >= 1"}}}}}),
                     event("alice-in", "agent.logged_in", T1,
                           {{"agent", "alice"}, {"queues", {"fast", "skilled"}}, {"capacity", {{"chat", 2}}},
                            {"skills", {{"billing", 2}}}}),
                     event("c-1", "conversation.started", T2,
                           {{"conversation", "c-1"}, {"customer", "u-1"}, {"channel", "web"}, {"queue", "fast"}}),
                 }))
              ->status == 202);
  // Nobody accepts: a second later (by the server's clock) the offer times out, and alice,
  // at her no-answer limit, is set away.
  auto seen = r.journal_until("agent.went_away");
  std::vector<std::string> types;
  for (const auto& e : seen) types.push_back(e["type"]);
  CHECK(std::find(types.begin(), types.end(), "clock.tick") != types.end());
  CHECK(std::find(types.begin(), types.end(), "offer.timed_out") != types.end());
  CHECK(r.get("/v1/agents/alice?tenant=acme")["status"] == "away");
  CHECK(r.get("/v1/conversations/c-1?tenant=acme")["missed_by"] == json{"alice"});

  const int64_t before_c2 = r.get("/v1/journal?tenant=acme&after=-1&limit=1000")["next"];
  REQUIRE(r.post(json::array({
                     event("alice-back", "agent.status_changed", "2026-11-20T10:00:30Z",
                           {{"agent", "alice"}, {"status", "available"}}),
                     event("c-2", "conversation.started", "2026-11-20T10:00:31Z",
                           {{"conversation", "c-2"}, {"customer", "u-2"}, {"channel", "web"}, {"queue", "skilled"}}),
                 }))
              ->status == 202);
  r.journal_until("conversation.queued", "acme", before_c2);  // processed (views are as fresh)
  CHECK(r.get("/v1/queues/skilled?tenant=acme")["waiting"] == 1);  // billing 2 < 4
  // A tick ten minutes on (anyone may send one) fires the relaxation step.
  REQUIRE(r.post(event("tick-1", "clock.tick", "2026-11-20T10:10:31Z", json::object()))->status == 202);
  seen = r.journal_until("conversation.relaxed");
  auto last_of = [](const std::vector<json>& entries, const std::string& type) {
    json found;
    for (const auto& e : entries)
      if (e["type"] == type) found = e;
    return found;
  };
  CHECK(last_of(r.journal_until("conversation.assigned"), "conversation.assigned")["data"]["agent"] == "alice");
  CHECK(r.get("/v1/conversations/c-2?tenant=acme")["state"] == "assigned");

  const int64_t before_reopen = r.get("/v1/journal?tenant=acme&after=-1&limit=1000")["next"];
  REQUIRE(r.post(json::array({
                     event("c-2-end", "conversation.ended", "2026-11-20T10:11:00Z", {{"conversation", "c-2"}, {"by", "customer"}}),
                     event("c-2-wrap", "conversation.wrapped_up", "2026-11-20T10:11:10Z", {{"conversation", "c-2"}, {"agent", "alice"}}),
                     event("c-2-again", "conversation.reopened", "2026-11-20T10:12:00Z", {{"conversation", "c-2"}}),
                 }))
              ->status == 202);
  // The reopened conversation waits for alice, who has served it (the requirement would not
  // let her take it from the queue), and she is free: it is hers again.
  json again = last_of(r.journal_until("conversation.assigned", "acme", before_reopen - 1), "conversation.assigned");
  CHECK(again["cause"] == "c-2-again");
  json c2 = r.get("/v1/conversations/c-2?tenant=acme");
  CHECK(c2["state"] == "assigned");
  CHECK(c2["agent"] == "alice");
  json q = r.get("/v1/queues/skilled?tenant=acme");
  CHECK(q["today"]["offered"] == 2);  // the reopened conversation is a new contact
  CHECK(q["today"]["answered"] == 2);
  CHECK(q["today"]["aht_s"] == 39.0);  // answered at the relaxation, wrapped up 39 s later
  CHECK(q["waiting"] == 0);
  CHECK(r.metric("omniroute_queue_contacts_today{outcome=\"answered\",queue=\"skilled\",tenant=\"acme\"}") == 2);
}

TEST_CASE("arbitration over HTTP: the car-rental policy waives the fee for the loyal customer and charges the other; outcomes move propensities") {
  Running r;
  std::ifstream in(std::string(OMNIROUTE_SOURCE_DIR) + "/examples/policies/car-rental.json");
  REQUIRE(in.good());
  const json policy = json::parse(in);

  json broken = policy;
  broken["actions"][0]["suitability"] = "customer.credit == \"good\" AND";
  auto bad = r.post(event("bad-p", "policy.published", T0, {{"policy", broken}}));
  REQUIRE(bad);
  CHECK(bad->status == 400);
  CHECK(json::parse(bad->body)["field"] == "data.policy");
  CHECK(json::parse(bad->body)["reason"] ==
        "actions[0].suitability: position 30: expected a value, found end of expression");

  REQUIRE(r.post(json::array({
                     event("p-1", "policy.published", T0, {{"policy", policy}}),
                     event("crm-1", "customer.profile_updated", T0,
                           {{"customer", "loyal"}, {"attributes", {{"credit", "good"}, {"early_returns", 5}}}}),
                     event("crm-2", "customer.profile_updated", T0,
                           {{"customer", "risky"}, {"attributes", {{"credit", "poor"}, {"early_returns", 0}}}}),
                     event("r-1", "conversation.started", T1,
                           {{"conversation", "r-1"}, {"customer", "loyal"}, {"channel", "app"},
                            {"intent", "late_return"}, {"attributes", {{"late_minutes", 240}}}}),
                     event("r-2", "conversation.started", T2,
                           {{"conversation", "r-2"}, {"customer", "risky"}, {"channel", "voice"},
                            {"intent", "late_return"}, {"attributes", {{"late_minutes", 240}}}}),
                 }))
              ->status == 202);
  std::map<std::string, json> decided;  // by conversation
  int64_t after = -1;
  for (int i = 0; i < 50 && decided.size() < 2; ++i) {
    json page = r.get("/v1/journal?tenant=acme&after=" + std::to_string(after) + "&wait_ms=2000");
    for (const auto& e : page["entries"])
      if (e["type"] == "arbitration.decided") decided[e["data"]["conversation"]] = e;
    after = page["next"];
  }
  REQUIRE(decided.size() == 2);
  CHECK(decided["r-1"]["data"]["action"] == "waive_late_fee");
  CHECK(decided["r-1"]["data"]["platform"]["send_message"] == "thank_you_early_returns");
  CHECK(decided["r-2"]["data"]["action"] == "charge_late_fee");

  // The decision explains itself.
  const std::string id = decided["r-1"]["id"];
  json d = r.get("/v1/decisions/" + id + "?tenant=acme");
  CHECK(d["data"]["action"] == "waive_late_fee");
  CHECK(d["cause"] == "r-1");
  CHECK(d["outcome"].is_null());
  REQUIRE(d["explanation"].size() == 3);
  CHECK(d["explanation"][0] == "chose waive_late_fee (policy car-rental, segment loyal) with the highest score, 42");
  CHECK(d["explanation"][1] ==
        "waive_late_fee: rank 1, score 42 = propensity 0.7 x value 60 (1 x company 35 + 0.5 x customer 50) "
        "x context 1 x levers 1");
  json risky = r.get("/v1/decisions/" + decided["r-2"]["id"].get<std::string>() + "?tenant=acme");
  CHECK(risky["explanation"][1] == "waive_late_fee: filtered at suitability by customer.credit == \"good\" AND "
                                   "customer.early_returns >= 3");

  // The customer rents again: the outcome is recorded and the loyal segment's posterior moves.
  REQUIRE(r.post(json::array({event("o-1", "arbitration.outcome", "2026-11-20T10:05:00Z",
                                    {{"decision", id}, {"accepted", true}, {"value", 120}}),
                              event("o-2", "arbitration.outcome", "2026-11-20T10:05:00Z",
                                    {{"decision", "d-999"}, {"accepted", true}})}))
              ->status == 202);
  auto seen = r.journal_until("event.refused", "acme", after);
  CHECK(seen.back()["data"]["event"] == "o-2");
  CHECK(seen.back()["data"]["field"] == "data.decision");
  d = r.get("/v1/decisions/" + id + "?tenant=acme");
  CHECK(d["outcome"]["accepted"] == true);
  CHECK(d["outcome"]["value"] == 120);
  json p = r.get("/v1/policies/car-rental?tenant=acme");
  CHECK(p["version"] == 0);
  CHECK(p["actions"][0]["action"] == "waive_late_fee");
  CHECK(p["actions"][0]["propensity"]["loyal"]["alpha"] == 8.0);
  CHECK(p["actions"][0]["propensity"]["loyal"]["value_total"] == 120.0);
  CHECK(p["actions"][0]["propensity"]["default"]["alpha"] == 7.0);

  // The journey: the CRM profile, the conversation and the decision taken in it.
  json j = r.get("/v1/customers/loyal/journey?tenant=acme");
  CHECK(j["profile"]["early_returns"] == 5);
  REQUIRE(j["conversations"].size() == 1);
  CHECK(j["conversations"][0]["channel"] == "app");
  CHECK(j["conversations"][0]["intent"] == "late_return");
  CHECK(j["conversations"][0]["decisions"][0]["action"] == "waive_late_fee");
  r.get("/v1/customers/nobody/journey?tenant=acme", 404);
  r.get("/v1/decisions/d-12345?tenant=acme", 404);
}
