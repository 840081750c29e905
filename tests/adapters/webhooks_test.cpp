// Decision egress by webhook: a real server delivering to a receiver in this process.
#include "adapters/webhooks.hpp"

#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "ops/server.hpp"
#include "tests/support/support.hpp"

using namespace omniroute;
using nlohmann::json;
using omniroute::testing::event;

namespace {

const std::string secret = "0123456789abcdef-secret";

// An HTTP server that takes webhook POSTs: it answers 500 to the first `failures` of them, then
// 204, and keeps what it took.
class Receiver {
 public:
  struct Post {
    std::string path, webhook, signature, body;
  };
  explicit Receiver(int failures) : failures_(failures) {
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      if (failures_ > 0) {
        --failures_;
        ++refused_;
        res.status = 500;
        return;
      }
      taken_.push_back({req.path, req.get_header_value("X-Omniroute-Webhook"),
                        req.get_header_value("X-Omniroute-Signature"), req.body});
      res.status = 204;
      changed_.notify_all();
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    // Bound and listening: a connection waits in the backlog until the thread accepts it.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  // The seqs the webhook `name` has delivered, once it has delivered `seq` (20 s at most).
  std::vector<uint64_t> seqs_until(const std::string& name, uint64_t seq) {
    std::unique_lock<std::mutex> lock(mu_);
    std::vector<uint64_t> seqs;
    changed_.wait_for(lock, std::chrono::seconds(20), [&] {
      seqs = seqs_of(name);
      return !seqs.empty() && seqs.back() >= seq;
    });
    return seqs;
  }
  static std::string text(const std::vector<uint64_t>& seqs) { return json(seqs).dump(); }
  std::vector<Post> taken() {
    std::lock_guard<std::mutex> lock(mu_);
    return taken_;
  }
  int refused() {
    std::lock_guard<std::mutex> lock(mu_);
    return refused_;
  }

 private:
  std::vector<uint64_t> seqs_of(const std::string& name) const {
    std::vector<uint64_t> seqs;
    for (const auto& p : taken_)
      if (p.webhook == name) {
        const json body = json::parse(p.body);
        for (const auto& e : body["entries"]) seqs.push_back(e["seq"]);
      }
    return seqs;
  }
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable changed_;
  int failures_;
  int refused_ = 0;
  std::vector<Post> taken_;
};

std::vector<adapters::Webhook> webhooks(const json& list) {
  auto w = adapters::parse_webhooks(json{{"webhooks", list}}.dump(), "test");
  REQUIRE_MESSAGE(w, (w ? "" : w.error().message()));
  return *w;
}

// A server started with `o` that has taken the session of one assigned conversation.
std::unique_ptr<ops::Server> serving_assigned_session(const ops::ServerOptions& o) {
  auto server = ops::Server::start(o);
  REQUIRE_MESSAGE(server, (server ? "" : server.error().message()));
  httplib::Client http("127.0.0.1", (*server)->port());
  auto res = http.Post("/v1/events", testing::assigned_session().dump(), "application/json");
  REQUIRE(res);
  REQUIRE(res->status == 202);
  return std::move(server.value());
}

double metric(int port, const std::string& line_prefix) {
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/metrics");
  REQUIRE(r);
  std::istringstream in(r->body);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(line_prefix, 0) == 0) return std::stod(line.substr(line.rfind(' ') + 1));
  return -1;
}

}  // namespace

TEST_CASE("the signature is HMAC-SHA256 of the body (RFC 4231, test case 2)") {
  CHECK(adapters::webhook_signature("Jefe", "what do ya want for nothing?") ==
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE(
    "webhooks deliver a tenant's journal in order, signed, through failures, and go on after a "
    "restart where they stopped") {
  Receiver receiver(3);  // the first three POSTs fail: retried, nothing skipped
  testing::TempDir dir;
  ops::ServerOptions o;
  o.engine.data_dir = dir.str();
  o.engine.partitions = 2;
  o.http.port = 0;
  o.webhook_backoff = {std::chrono::milliseconds(10), std::chrono::milliseconds(40)};
  o.webhooks = webhooks({{{"name", "crm"},
                          {"tenant", "acme"},
                          {"url", receiver.url("/hooks/crm")},
                          {"secret", secret}},
                         {{"name", "assigned"},
                          {"tenant", "acme"},
                          {"url", receiver.url("/assigned")},
                          {"secret", secret},
                          {"types", {"conversation.assigned"}},
                          {"batch", 2}},
                         {{"name", "globex"},
                          {"tenant", "globex"},
                          {"url", receiver.url("/globex")},
                          {"secret", secret}}});
  {
    auto server = serving_assigned_session(o);

    CHECK(Receiver::text(receiver.seqs_until("crm", 4)) == "[0,1,2,3,4]");
    CHECK(Receiver::text(receiver.seqs_until("assigned", 4)) == "[4]");
    CHECK(receiver.refused() == 3);
    for (const auto& p : receiver.taken()) {
      CHECK(p.signature == adapters::webhook_signature(secret, p.body));
      const json body = json::parse(p.body);
      CHECK(body["webhook"] == p.webhook);
      CHECK(body["tenant"] == "acme");
      CHECK(body["next"] == body["entries"].back()["seq"]);
      CHECK(p.path == (p.webhook == "crm" ? "/hooks/crm" : "/assigned"));
      for (const auto& e : body["entries"]) CHECK(e["tenant"] == "acme");
    }
    // The positions are stored once the receiver has answered: wait for both before stopping.
    const int port = server->port();
    for (int i = 0;
         i < 2000 && (metric(port, "omniroute_webhook_delivered_seq{webhook=\"crm\"}") != 4 ||
                      metric(port, "omniroute_webhook_delivered_seq{webhook=\"assigned\"}") != 4);
         ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CHECK(metric(port, "omniroute_webhook_entries_delivered_total{webhook=\"crm\"}") == 5);
    CHECK(metric(port, "omniroute_webhook_posts_total{result=\"failed\",webhook=\"crm\"}") >= 1);
    CHECK(metric(port, "omniroute_webhook_failures_in_a_row{webhook=\"crm\"}") == 0);
    server->stop();
  }
  const size_t before_restart = receiver.taken().size();

  auto server = ops::Server::start(o);
  REQUIRE_MESSAGE(server, (server ? "" : server.error().message()));
  httplib::Client http("127.0.0.1", (*server)->port());
  auto res = http.Post("/v1/events",
                       event("e-1", "conversation.ended", "2026-11-20T10:00:09Z",
                             {{"conversation", "c-1"}, {"by", "customer"}})
                           .dump(),
                       "application/json");
  REQUIRE(res);
  REQUIRE(res->status == 202);
  CHECK(Receiver::text(receiver.seqs_until("crm", 5)) == "[0,1,2,3,4,5]");
  // After the restart: only the new entry, nothing delivered before sent again.
  const auto all = receiver.taken();
  for (size_t i = before_restart; i < all.size(); ++i) {
    INFO(all[i].body);
    CHECK(all[i].webhook == "crm");
    CHECK(json::parse(all[i].body)["entries"].size() == 1);
  }
  // The filtered webhook passed over the new entry without a POST; globex has had nothing.
  CHECK(Receiver::text(receiver.seqs_until("assigned", 4)) == "[4]");
  for (const auto& p : all) CHECK(p.webhook != "globex");
}

TEST_CASE("shutdown does not wait for a receiver that never answers") {
  // A receiver that takes the POST and holds it: the webhook's read would wait 10 s.
  std::mutex mu;
  std::condition_variable changed;
  bool held = false, release = false;
  httplib::Server silent;
  silent.Post(".*", [&](const httplib::Request&, httplib::Response& res) {
    std::unique_lock<std::mutex> lock(mu);
    held = true;
    changed.notify_all();
    changed.wait(lock, [&] { return release; });
    res.status = 204;
  });
  const int port = silent.bind_to_any_port("127.0.0.1");
  std::thread listening([&] { silent.listen_after_bind(); });
  testing::TempDir dir;
  ops::ServerOptions o;
  o.engine.data_dir = dir.str();
  o.engine.partitions = 2;
  o.http.port = 0;
  o.webhooks = webhooks({{{"name", "crm"},
                          {"tenant", "acme"},
                          {"url", "http://127.0.0.1:" + std::to_string(port) + "/hook"},
                          {"secret", secret}}});
  auto server = serving_assigned_session(o);
  {
    std::unique_lock<std::mutex> lock(mu);
    changed.wait(lock, [&] { return held; });  // a POST is under way
  }
  const auto stop_started = std::chrono::steady_clock::now();
  server->stop();
  const auto took = std::chrono::steady_clock::now() - stop_started;
  CHECK_MESSAGE(took < std::chrono::seconds(5),
                std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  changed.notify_all();
  silent.stop();
  listening.join();
}

TEST_CASE("a webhooks file with anything wrong is refused, naming the file and what is wrong") {
  const json good = {
      {"name", "crm"}, {"tenant", "acme"}, {"url", "https://crm.example/hook"}, {"secret", secret}};
  auto with = [&](const char* member, const json& value) {
    json w = good;
    if (value.is_null())
      w.erase(member);
    else
      w[member] = value;
    return json{{"webhooks", {w}}}.dump();
  };
  struct Case {
    std::string text, says;
  };
  for (const Case& k : std::vector<Case>{
           {"{", "not valid JSON"},
           {"{\"webhooks\": [1e999]}",
            "not valid JSON: [json.exception.out_of_range.406] number overflow"},
           {"{\"hooks\": []}", "must be an object with a \"webhooks\" array"},
           {"{\"webhooks\": [], \"x\": 1}", "x: unknown member"},
           {"{\"webhooks\": [7]}", "webhooks[0]: must be an object"},
           {with("name", nullptr), "webhooks[0].name: must be a non-empty string"},
           {with("tenant", "a b"), "webhooks[0].tenant: must be a tenant name"},
           {with("url", "ftp://crm.example/hook"),
            "webhooks[0].url: must be an http:// or https:// URL"},
           {with("url", "http:///hook"), "webhooks[0].url"},
           {with("url", nullptr), "webhooks[0].url"},
           {with("secret", "short"),
            "webhooks[0].secret: must be a string of at least 16 characters"},
           {with("types", json::array()), "webhooks[0].types: must be a non-empty array"},
           {with("types", {"conversation.assignd"}),
            "webhooks[0].types: \"conversation.assignd\" is not an event type"},
           {with("batch", 0), "webhooks[0].batch: must be a whole number from 1 to 1000"},
           {with("batch", 1001), "webhooks[0].batch"},
           {with("batch", "10"), "webhooks[0].batch"},
           {with("retries", 3), "webhooks[0].retries: unknown member"},
           {json{{"webhooks", {good, good}}}.dump(), "webhooks[1].name: 'crm' is named twice"},
       }) {
    auto w = adapters::parse_webhooks(k.text, "hooks.json");
    INFO(k.text);
    REQUIRE_FALSE(w);
    CHECK(w.error().message().rfind("webhooks hooks.json: ", 0) == 0);
    CHECK_MESSAGE(w.error().message().find(k.says) != std::string::npos, w.error().message());
  }
  auto ok = adapters::parse_webhooks(
      with("types", {"conversation.assigned", "conversation.offered"}), "hooks.json");
  REQUIRE(ok);
  CHECK(ok->front().types.size() == 2);
  CHECK(ok->front().batch == 100);
}

TEST_CASE("webhooks are refused on the kafka engine, before anything starts") {
  testing::TempDir dir;
  ops::ServerOptions o;
  o.engine.data_dir = dir.str();
  o.engine.kafka_brokers = "127.0.0.1:1";
  o.http.port = 0;
  o.webhooks = webhooks(
      {{{"name", "crm"}, {"tenant", "acme"}, {"url", "http://127.0.0.1:1/"}, {"secret", secret}}});
  auto server = ops::Server::start(o);
  REQUIRE_FALSE(server);
  CHECK(server.error().message().find("webhooks are delivered on the embedded engine only") !=
        std::string::npos);
}
