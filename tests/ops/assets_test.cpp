// The SRE assets read what the server exports: every omniroute_* metric the alert rules and the
// dashboard name is on a running server's /metrics, and every alert has its runbook section.
#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "ops/server.hpp"
#include "tests/support/support.hpp"

using namespace omniroute;
using nlohmann::json;
using omniroute::testing::event;

namespace {

std::string read(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in, path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The omniroute_* names in `text`.
std::set<std::string> metric_names(const std::string& text) {
  std::set<std::string> names;
  static const std::regex name(R"(omniroute_[a-z_]+)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), name); it != std::sregex_iterator();
       ++it)
    names.insert(it->str());
  return names;
}

// Those of `names` no sample line of the exposition `metrics` starts with.
std::set<std::string> missing(const std::set<std::string>& names, const std::string& metrics) {
  std::set<std::string> out;
  for (const auto& n : names)
    if (metrics.find("\n" + n + "{") == std::string::npos &&
        metrics.find("\n" + n + " ") == std::string::npos)
      out.insert(n);
  return out;
}

std::string text_of(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += n + " ";
  return out;
}

}  // namespace

TEST_CASE(
    "the alert rules and the dashboard read metrics the server exports, and each alert has its "
    "runbook") {
  const std::string root = OMNIROUTE_SOURCE_DIR;
  const std::string rules = read(root + "/ops/alerts.yml"),
                    dashboard = read(root + "/ops/dashboard.json"),
                    runbook = read(root + "/docs/runbook.md");
  CHECK(json::parse(dashboard)["panels"].size() >= 10);  // JSON Grafana imports

  // Every alert: a runbook annotation pointing at its section, and the section.
  static const std::regex alert(R"(- alert: (\w+))");
  std::vector<std::string> alerts;
  for (auto it = std::sregex_iterator(rules.begin(), rules.end(), alert);
       it != std::sregex_iterator(); ++it)
    alerts.push_back((*it)[1]);
  CHECK(alerts.size() >= 10);
  for (const auto& a : alerts) {
    std::string anchor = a;
    for (auto& c : anchor) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    CHECK_MESSAGE(runbook.find("\n## " + a + "\n") != std::string::npos, a,
                  " has no section in docs/runbook.md");
    CHECK_MESSAGE(rules.find("runbook: \"docs/runbook.md#" + anchor + "\"") != std::string::npos, a,
                  " has no runbook annotation");
  }

  // A server with traffic of every kind the metrics describe: facts accepted and refused,
  // queues, agents, decisions, journal polls and a webhook delivering.
  httplib::Server receiver;
  receiver.Post(".*", [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
  const int receiver_port = receiver.bind_to_any_port("127.0.0.1");
  std::thread receiving([&] { receiver.listen_after_bind(); });
  testing::TempDir dir;
  ops::ServerOptions o;
  o.engine.data_dir = dir.str();
  o.engine.partitions = 2;
  o.http.port = 0;
  auto hooks = adapters::parse_webhooks(
      json{{"webhooks",
            {{{"name", "crm"},
              {"tenant", "acme"},
              {"url", "http://127.0.0.1:" + std::to_string(receiver_port) + "/"},
              {"secret", "0123456789abcdef"}}}}}
          .dump(),
      "test");
  REQUIRE(hooks);
  o.webhooks = *hooks;
  auto server = ops::Server::start(o);
  REQUIRE_MESSAGE(server, (server ? "" : server.error().message()));
  httplib::Client http("127.0.0.1", (*server)->port());
  auto res = http.Post("/v1/events", testing::assigned_session().dump(), "application/json");
  REQUIRE(res);
  CHECK(res->status == 202);
  res =
      http.Post("/v1/events",
                event("bad", "conversation.started", "2026-11-20T10:00:03Z", json::object()).dump(),
                "application/json");
  REQUIRE(res);
  CHECK(res->status == 400);
  CHECK(http.Get("/v1/journal?tenant=acme")->status == 200);

  std::set<std::string> names = metric_names(rules);
  for (const auto& n : metric_names(dashboard)) names.insert(n);
  CHECK(names.size() >= 20);
  // The hosts report their queues and the webhook its position as they go: wait for them.
  std::set<std::string> absent = names;
  for (int i = 0; i < 400 && !absent.empty(); ++i) {
    auto scraped = http.Get("/metrics");
    REQUIRE(scraped);
    absent = missing(names, "\n" + scraped->body);
    if (!absent.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  CHECK_MESSAGE(absent.empty(),
                "named by ops/alerts.yml or ops/dashboard.json, not exported: ", text_of(absent));
  (*server)->stop();
  receiver.stop();
  receiving.join();
}
