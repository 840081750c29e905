// Golden event streams for the routing engine: each file under tests/actors/scenarios/ is a
// list of steps. A fact step sends a fact `at` seconds after 2026-11-20T10:00:00Z and lists the
// decisions it must cause, in journal order: [type, {fields that must match}] (the decision
// may carry more fields). A view step checks fields of a conversation, agent or queue view.
// After the last step the journal is replayed into a fresh tenant, whose views must be equal.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "actors/routing.hpp"
#include "events/time.hpp"
#include "tests/support/support.hpp"

using namespace omniroute;
using namespace omniroute::routing;

namespace {

constexpr int64_t origin_ms = 1795168800000;  // 2026-11-20T10:00:00Z

// Every field of `expected` is in `actual` with an equal value (objects compared the same way).
bool subset(const json& expected, const json& actual, std::string& where) {
  if (!expected.is_object()) {
    if (expected == actual) return true;
    where = "expected " + expected.dump() + ", got " + actual.dump();
    return false;
  }
  if (!actual.is_object()) {
    where = "expected an object, got " + actual.dump();
    return false;
  }
  for (const auto& [k, v] : expected.items()) {
    if (!actual.contains(k)) {
      where = k + ": missing";
      return false;
    }
    if (!subset(v, actual[k], where)) {
      where = k + ": " + where;
      return false;
    }
  }
  return true;
}

void run(const std::filesystem::path& file) {
  std::ifstream in(file);
  const json scenario = json::parse(in);
  const std::string tenant_name = "acme";
  Tenant tenant(tenant_name);
  std::vector<Envelope> journal;
  std::set<std::string> conversations, agents, queues;
  std::map<std::string, std::string> offers;  // conversation -> latest offer id
  int n = 0;
  for (const auto& step : scenario.at("steps")) {
    const std::string at = file.filename().string() + " step " + std::to_string(n++);
    if (step.contains("view")) {
      const std::string kind = step["view"], id = step["id"];
      std::optional<json> view = kind == "conversation" ? tenant.conversation_view(id)
                                 : kind == "agent"      ? tenant.agent_view(id)
                                                        : tenant.queue_view(id);
      REQUIRE_MESSAGE(view.has_value(), at << ": no " << kind << " " << id);
      std::string where;
      CHECK_MESSAGE(subset(step["expect"], *view, where), at << " " << kind << " " << id << ": " << where);
      continue;
    }
    json data = step.value("data", json::object());
    // "$offer" stands for the conversation's latest offer id.
    if (data.value("offer", "") == "$offer") data["offer"] = offers[data.value("conversation", "")];
    const int64_t time_ms = origin_ms + static_cast<int64_t>(step.at("at").get<double>() * 1000);
    auto parsed = events::parse_fact(testing::event("s-" + std::to_string(n), step.at("type"),
                                                    events::format_rfc3339_ms(time_ms), data));
    REQUIRE_MESSAGE(parsed.has_value(), at << ": " << (parsed ? "" : parsed.error().reason));
    for (const char* key : {"conversation", "agent"})
      if (data.contains(key)) (std::string(key) == "agent" ? agents : conversations).insert(data[key]);
    if (data.contains("queue")) queues.insert(data["queue"].get<std::string>());
    Outcome out = tenant.handle(std::move(parsed.value()));
    json got = json::array();
    for (size_t i = 0; i < out.entries.size(); ++i) {
      journal.push_back(out.entries[i]);
      if (out.fact != i) got.push_back({out.entries[i].type, out.entries[i].data});
      if (out.entries[i].type == "conversation.offered")
        offers[out.entries[i].data["conversation"]] = out.entries[i].data["offer"];
    }
    const json& expect = step.value("expect", json::array());
    REQUIRE_MESSAGE(got.size() == expect.size(),
                    at << " (" << step["type"] << "): expected " << expect.dump() << "\n got " << got.dump());
    for (size_t i = 0; i < expect.size(); ++i) {
      std::string where;
      CHECK_MESSAGE(got[i][0] == expect[i][0], at << " decision " << i << ": " << got.dump());
      if (expect[i].size() > 1)
        CHECK_MESSAGE(subset(expect[i][1], got[i][1], where),
                      at << " decision " << i << " (" << expect[i][0] << "): " << where << "\n got "
                         << got[i][1].dump());
    }
  }
  Tenant replayed(tenant_name);
  for (const auto& e : journal) replayed.apply(*events::read_envelope_text(events::to_text(e)));
  for (const auto& id : conversations)
    CHECK_MESSAGE(replayed.conversation_view(id) == tenant.conversation_view(id), file << " replay: conversation " << id);
  for (const auto& id : agents)
    CHECK_MESSAGE(replayed.agent_view(id) == tenant.agent_view(id), file << " replay: agent " << id);
  for (const auto& id : queues)
    CHECK_MESSAGE(replayed.queue_view(id) == tenant.queue_view(id), file << " replay: queue " << id);
}

}  // namespace

TEST_CASE("golden scenarios: facts in, decisions out") {
  const std::filesystem::path dir = std::filesystem::path(OMNIROUTE_SOURCE_DIR) / "tests/actors/scenarios";
  std::vector<std::filesystem::path> files;
  for (const auto& f : std::filesystem::directory_iterator(dir))
    if (f.path().extension() == ".json") files.push_back(f.path());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 10);
  for (const auto& f : files) {
    INFO("scenario ", f.filename().string());
    run(f);
  }
}
