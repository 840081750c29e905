// Facts the front door accepts never make the domain throw. The golden scenarios and an
// arbitration sequence are sent again with a few facts mutated at random (a value replaced by
// one of another type or range, a member removed or added, an id swapped for another's), with
// a fixed seed. Each mutated fact the validation accepts is decided by a routing tenant; every
// journal entry is written as text, read back and applied to a second tenant; the views of
// everything touched are rendered. None of it may throw, and the replayed tenant's views must
// equal the live ones. A third tenant decides the same facts without ever writing views, so
// without packing its closed conversations and visits: its journal and views must equal the
// live ones.
// (A fact that throws would be refused by the partition host after a recovery, but that is a
// safety net for bugs, not a way to handle input.)
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "actors/routing.hpp"
#include "events/compact_doc.hpp"
#include "events/time.hpp"
#include "tests/support/support.hpp"

using namespace omniroute;
using namespace omniroute::routing;

namespace {

constexpr int64_t origin_ms = 1795168800000;  // 2026-11-20T10:00:00Z

// A fact to send: its type, data and time (seconds after the origin).
struct Step {
  std::string type;
  json data;
  double at;
};
using Sequence = std::vector<Step>;

json load(const std::filesystem::path& file) {
  std::ifstream in(file);
  REQUIRE_MESSAGE(in.good(), file.string());
  std::stringstream s;
  s << in.rdbuf();
  return json::parse(s.str());
}

// The facts of every golden scenario, and a sequence that arbitrates, records contacts and
// publishes a schedule.
std::vector<Sequence> seeds() {
  std::vector<Sequence> out;
  const std::filesystem::path source(OMNIROUTE_SOURCE_DIR);
  std::vector<std::filesystem::path> files;
  for (const auto& f : std::filesystem::directory_iterator(source / "tests/actors/scenarios"))
    if (f.path().extension() == ".json") files.push_back(f.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    Sequence seq;
    const json scenario = load(f);
    for (const auto& step : scenario.at("steps"))
      if (step.contains("type")) seq.push_back({step["type"], step.value("data", json::object()), step["at"].get<double>()});
    out.push_back(std::move(seq));
  }
  const json policy = load(source / "examples/policies/car-rental.json");
  Sequence arbitrated;
  arbitrated.push_back(Step{"policy.published", {{"policy", policy}}, 0});
  arbitrated.push_back(Step{"queue.configured", {{"queue", "billing"}, {"channels", {"web", "voice"}}, {"wrap_up_s", 5}}, 1});
  arbitrated.push_back(Step{"agent.logged_in", {{"agent", "alice"}, {"queues", {"billing"}}, {"capacity", {{"chat", 2}, {"voice", 1}}},
                         {"skills", {{"billing", 3}}}, {"attributes", {{"languages", {"en"}}}}}, 2});
  arbitrated.push_back(Step{"customer.profile_updated", {{"customer", "u-1"}, {"attributes", {{"tier", "gold"}, {"spend", 1200}}}}, 3});
  arbitrated.push_back(Step{"conversation.started", {{"conversation", "c-1"}, {"customer", "u-1"}, {"channel", "web"}, {"queue", "billing"},
                              {"bot", true}, {"attributes", {{"vip", true}}}}, 4});
  arbitrated.push_back(Step{"conversation.intent_detected", {{"conversation", "c-1"}, {"intent", "billing"}, {"confidence", 0.9}}, 5});
  arbitrated.push_back(Step{"arbitration.outcome", {{"decision", "$decision"}, {"accepted", true}, {"value", 12.5}}, 6});
  arbitrated.push_back(Step{"conversation.handoff_requested", {{"conversation", "c-1"}, {"reason", "asked"}}, 7});
  arbitrated.push_back(Step{"offer.accepted", {{"conversation", "c-1"}, {"agent", "alice"}, {"offer", "$offer"}}, 8});
  arbitrated.push_back(Step{"conversation.ended", {{"conversation", "c-1"}, {"by", "customer"}, {"csat", 4}}, 9});
  arbitrated.push_back(Step{"conversation.wrapped_up", {{"conversation", "c-1"}, {"agent", "alice"}}, 10});
  arbitrated.push_back(Step{"conversation.reopened", {{"conversation", "c-1"}}, 11});
  arbitrated.push_back(Step{"contact.recorded", {{"contact", "k-1"}, {"queue", "billing"}, {"channel", "voice"}, {"outcome", "answered"},
                          {"waited_s", 12}, {"handled_s", 300}, {"agent", "alice"}}, 12});
  arbitrated.push_back(Step{"schedule.published", {{"queue", "billing"}, {"intervals", {{{"start", events::format_rfc3339_ms(origin_ms + 3600000)},
                                                                 {"end", events::format_rfc3339_ms(origin_ms + 5400000)},
                                                                 {"agents", 3}}}}}, 13});
  arbitrated.push_back(Step{"clock.tick", json::object(), 200});
  out.push_back(std::move(arbitrated));
  return out;
}

// Values of every JSON type, at the edges of their ranges, and ids the seeds use.
std::vector<json> pool() {
  std::vector<json> v = {nullptr, true, false, 0, -1, 1, 2, 5, 0.5, -0.5, 1e9, -1e9, 1e300, -1e300,
                         9007199254740993.0, std::numeric_limits<int64_t>::max(),
                         std::numeric_limits<int64_t>::min(), std::numeric_limits<uint64_t>::max(),
                         "", "x", "alice", "bob", "billing", "sales", "c-1", "c-2", "u-1", "chat", "voice",
                         "web", "customer", "available", "away", "offline", std::string(300, 'z'),
                         "\xe6\x97\xa5\xe6\x9c\xac", "2026-11-20T10:00:00Z", json::array(), json::array({1}),
                         json::array({"billing"}), json::array({"billing", "billing"}), json::array({nullptr}),
                         json::object(), json{{"chat", 1}}, json{{"chat", -1}}, json{{"x", nullptr}},
                         json{{"a", {{"b", json::array()}}}}};
  return v;
}

// A pointer to a random value inside `j` (j itself included), with the key or index it sits
// under in its parent (null for j).
struct Place {
  json* value;
  json* parent;
  std::string key;  // for an object parent
  size_t index;     // for an array parent
};
void places(json& j, json* parent, const std::string& key, size_t index, std::vector<Place>& out) {
  out.push_back({&j, parent, key, index});
  if (j.is_object())
    for (auto& [k, v] : j.items()) places(v, &j, k, 0, out);
  else if (j.is_array())
    for (size_t i = 0; i < j.size(); ++i) places(j[i], &j, "", i, out);
}

void mutate(json& data, std::mt19937& rng, const std::vector<json>& values) {
  std::vector<Place> all;
  places(data, nullptr, "", 0, all);
  const Place p = all[rng() % all.size()];
  const json& v = values[rng() % values.size()];
  switch (rng() % 4) {
    case 0:  // replaced
    case 1:
      *p.value = v;
      break;
    case 2:  // removed
      if (p.parent && p.parent->is_object()) p.parent->erase(p.key);
      else if (p.parent && p.parent->is_array()) p.parent->erase(p.index);
      else *p.value = v;
      break;
    default:  // added: an unknown name, or one of the object's own names again elsewhere
      if (p.value->is_object()) (*p.value)[rng() % 2 ? "extra" : "priority"] = v;
      else if (p.value->is_array()) p.value->push_back(v);
      else *p.value = v;
  }
}

struct Run {
  // `live` writes its views after every fact and packs its closed conversations and visits
  // then, as the partition host does; `twin` is given the same facts and never does either: both
  // decide alike.
  Tenant live{"acme"}, replayed{"acme"}, twin{"acme"};
  size_t packed = 0;  // the most closed conversations `live` held packed at once
  size_t packed_visits = 0;  // and visits
  std::set<std::string> conversations, agents, queues, customers;
  std::set<std::pair<std::string, std::string>> visits;
  std::map<std::string, std::string> offers;  // conversation -> its latest offer
  std::string decision;                       // the latest arbitration.decided
  events::CompactDoc doc;

  void render() {
    Touched t = live.take_touched();
    for (const auto& id : t.conversations) {
      (void)live.conversation_doc(id, doc), conversations.insert(id);
      live.pack_if_closed(id);
    }
    for (const auto& id : t.agents) (void)live.agent_doc(id, doc), agents.insert(id);
    for (const auto& id : t.queues) (void)live.queue_view(id), queues.insert(id);
    for (const auto& id : t.journeys.customers) (void)live.customer_doc(id, doc), customers.insert(id);
    std::string key;
    for (const auto& [customer, conversation] : t.journeys.visits) {
      (void)live.visit_doc(customer, conversation, key, doc), visits.emplace(customer, conversation);
      live.pack_visit_if_closed(customer, conversation);
    }
    for (const auto& id : t.arbitration.policies) (void)live.policy_view(id);
    packed = std::max(packed, live.packed_conversations());
    packed_visits = std::max(packed_visits, live.packed_visits().first);
  }
  void handle(Envelope fact) {
    Outcome same = twin.handle(fact);
    Outcome out = live.handle(std::move(fact));
    REQUIRE(out.entries.size() == same.entries.size());
    for (size_t i = 0; i < out.entries.size(); ++i)
      CHECK(events::to_text(out.entries[i]) == events::to_text(same.entries[i]));
    for (const auto& e : out.entries) {
      if (e.type == "conversation.offered") offers[events::string_member(e.data, "conversation")] = events::string_member(e.data, "offer");
      if (e.type == "arbitration.decided") decision = e.id;
      auto back = events::read_envelope_text(events::to_text(e));
      REQUIRE_MESSAGE(back.has_value(), events::to_text(e));
      replayed.apply(*back);
    }
    render();
  }
};

}  // namespace

TEST_CASE("mutated facts the door accepts are decided, journaled and replayed without an exception") {
  const std::vector<Sequence> sequences = seeds();
  const std::vector<json> values = pool();
  REQUIRE(sequences.size() == 13);
  REQUIRE(values.size() > 40);
  for (const auto& seq : sequences) {  // the seeds as they are: every fact valid
    REQUIRE(!seq.empty());
    for (const auto& step : seq) {
      auto fact = events::parse_fact(testing::event("f", step.type, events::format_rfc3339_ms(origin_ms), step.data));
      CHECK_MESSAGE(fact.has_value(), step.type << ": " << (fact ? "" : fact.error().field + " " + fact.error().reason));
    }
  }
  std::mt19937 rng(getenv("MUTATION_SEED") ? std::stoul(getenv("MUTATION_SEED")) : 20261205);
  int accepted_mutants = 0, refused_at_door = 0, rounds_packing = 0, rounds_packing_visits = 0;
  const int rounds = getenv("MUTATION_ROUNDS") ? std::stoi(getenv("MUTATION_ROUNDS")) : 4000;
  for (int round = 0; round < rounds; ++round) {
    const Sequence& seed = sequences[static_cast<size_t>(round) % sequences.size()];
    Sequence seq = seed;
    std::set<size_t> mutated;
    for (int k = 1 + static_cast<int>(rng() % 3); k > 0; --k) {
      const size_t i = rng() % seq.size();
      mutate(seq[i].data, rng, values);
      mutated.insert(i);
    }
    Run run;
    for (size_t i = 0; i < seq.size(); ++i) {
      json data = seq[i].data;
      if (data.is_object() && data.contains("offer") && data["offer"] == "$offer")
        data["offer"] = run.offers[data.contains("conversation") && data["conversation"].is_string()
                                       ? data["conversation"].get<std::string>() : ""];
      if (data.is_object() && data.contains("decision") && data["decision"] == "$decision") data["decision"] = run.decision;
      const json e = testing::event("f-" + std::to_string(i), seq[i].type,
                                    events::format_rfc3339_ms(origin_ms + static_cast<int64_t>(seq[i].at * 1000)), data);
      auto fact = events::parse_fact(e);
      if (!fact) {
        ++refused_at_door;
        continue;
      }
      if (mutated.count(i)) ++accepted_mutants;
      try {
        run.handle(std::move(fact.value()));
      } catch (const std::exception& ex) {
        FAIL_CHECK("round " << round << ", fact " << i << " threw: " << std::string(ex.what()) << "\n  " << e.dump());
        break;
      }
    }
    rounds_packing += run.packed > 0;
    rounds_packing_visits += run.packed_visits > 0;
    for (const auto& id : run.conversations) {
      CHECK_MESSAGE(run.replayed.conversation_view(id) == run.live.conversation_view(id), "round " << round << ": conversation " << id);
      CHECK_MESSAGE(run.twin.conversation_view(id) == run.live.conversation_view(id), "round " << round << ": conversation " << id);
    }
    for (const auto& id : run.agents)
      CHECK_MESSAGE(run.replayed.agent_view(id) == run.live.agent_view(id), "round " << round << ": agent " << id);
    for (const auto& id : run.queues)
      CHECK_MESSAGE(run.replayed.queue_view(id) == run.live.queue_view(id), "round " << round << ": queue " << id);
    for (const auto& id : run.customers)
      CHECK_MESSAGE(run.replayed.customer_view(id) == run.live.customer_view(id), "round " << round << ": customer " << id);
    for (const auto& visit : run.visits) {
      const auto& [customer, conversation] = visit;  // messages name visit.second: their lambda
                                                     // cannot capture a structured binding
      const auto written = run.live.visit_text(customer, conversation);
      CHECK_MESSAGE(run.replayed.visit_text(customer, conversation) == written,
                    "round " << round << ": visit " << visit.second);
      CHECK_MESSAGE(run.twin.visit_text(customer, conversation) == written,
                    "round " << round << ": visit " << visit.second);
    }
  }
  MESSAGE("mutated facts accepted by the door: " << accepted_mutants << ", facts refused there: " << refused_at_door
                                                 << ", rounds that packed a closed conversation: " << rounds_packing
                                                 << ", a closed visit: " << rounds_packing_visits);
  CHECK(accepted_mutants > 1000);  // the mutations reach the domain, not only the validation
  CHECK(rounds_packing > rounds / 4);  // packed conversations are decided on, not only held
  CHECK(rounds_packing_visits > rounds / 4);  // and packed visits
}
