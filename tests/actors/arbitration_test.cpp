// Intent arbitration and the customer journey, through the routing tenant: golden scores
// computed by hand, the filtering stages, contact policies across days, propensities learned
// from outcomes, the shipped example policies, and replay.
#include <doctest/doctest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "actors/routing.hpp"
#include "events/time.hpp"
#include "tests/support/support.hpp"

using namespace omniroute;
using namespace omniroute::routing;
using omniroute::testing::event;

namespace {

constexpr int64_t t0_ms = 1795168800000;  // 2026-11-20T10:00:00Z
constexpr int64_t day_s = 24 * 3600;

struct Tenanted {
  Tenant tenant{"acme"};
  std::vector<Envelope> journal;
  int n = 0;
  int64_t clock_s = 0;

  // Handles a fact `seconds` after the previous one; returns the outcome.
  Outcome fact(const std::string& type, json data, int64_t seconds = 1) {
    clock_s += seconds;
    auto parsed = events::parse_fact(event("f-" + std::to_string(n++), type,
                                           events::format_rfc3339_ms(t0_ms + clock_s * 1000),
                                           std::move(data)));
    REQUIRE_MESSAGE(parsed.has_value(), (parsed ? "" : parsed.error().reason));
    Outcome out = tenant.handle(std::move(parsed.value()));
    for (const auto& e : out.entries) journal.push_back(e);
    return out;
  }
  // The arbitration.decided an outcome holds (fails the test when there is none).
  Envelope decided(const Outcome& out) {
    for (const auto& e : out.entries)
      if (e.type == "arbitration.decided") return e;
    FAIL("no arbitration.decided");
    return {};
  }
  const Envelope* find(const Outcome& out, const std::string& type) {
    for (const auto& e : out.entries)
      if (e.type == type) return &e;
    return nullptr;
  }
  void publish(const json& policy) {
    Outcome out = fact("policy.published", {{"policy", policy}});
    REQUIRE_FALSE(out.refused);
  }
  void profile(const std::string& customer, json attributes) {
    REQUIRE_FALSE(fact("customer.profile_updated", {{"customer", customer}, {"attributes", attributes}}).refused);
  }
  Outcome start(const std::string& c, const std::string& customer, const std::string& intent,
                json attributes = json::object(), const std::string& channel = "web",
                int64_t seconds = 1) {
    json data = {{"conversation", c}, {"customer", customer}, {"channel", channel},
                 {"intent", intent}, {"attributes", attributes}};
    return fact("conversation.started", data, seconds);
  }
  Outcome outcome(const std::string& decision, bool accepted, int64_t seconds = 1) {
    return fact("arbitration.outcome", {{"decision", decision}, {"accepted", accepted}}, seconds);
  }
};

json load_example(const std::string& name) {
  std::ifstream in(std::string(OMNIROUTE_SOURCE_DIR) + "/examples/policies/" + name);
  REQUIRE(in.good());
  std::stringstream s;
  s << in.rdbuf();
  return json::parse(s.str());
}

const json* candidate(const json& decided, const std::string& action) {
  for (const auto& c : decided["candidates"])
    if (c["action"] == action) return &c;
  return nullptr;
}

// Three actions whose scores are worked out by hand in the test below.
json golden_policy() {
  return json::parse(R"({
    "id": "golden", "intents": ["billing_question"],
    "weights": {"company": 2, "customer": 0.5},
    "levers": {"push": 1.5},
    "actions": [
      {"name": "a", "company_value": 10, "customer_value": 20,
       "propensity_prior": {"alpha": 3, "beta": 1},
       "context_weights": [{"when": "intent.confidence >= 0.9", "weight": 2},
                           {"when": "customer.vip == true", "weight": 3}],
       "levers": ["push"]},
      {"name": "b", "company_value": 40, "customer_value": -10},
      {"name": "c", "company_value": 0, "customer_value": 100,
       "propensity_prior": {"alpha": 1, "beta": 4},
       "context_weights": [{"when": "conversation.channel == \"voice\"", "weight": 4}]}
    ]})");
}

}  // namespace

TEST_CASE("golden scores: propensity x (w_company x company + w_customer x customer) x context x levers") {
  Tenanted t;
  t.publish(golden_policy());
  t.fact("conversation.started", {{"conversation", "c-1"}, {"customer", "u-1"}, {"channel", "web"}});
  Outcome out = t.fact("conversation.intent_detected",
                       {{"conversation", "c-1"}, {"intent", "billing_question"}, {"confidence", 0.95}});
  json d = t.decided(out).data;
  // a: 3/(3+1) = 0.75; value 2*10 + 0.5*20 = 30; context 2 (confidence 0.95 >= 0.9; not vip);
  //    levers 1.5: 0.75 * 30 * 2 * 1.5 = 67.5
  // b: prior Beta(1,1) = 0.5; value 2*40 + 0.5*(-10) = 75: 37.5
  // c: 1/(1+4) = 0.2; value 0 + 0.5*100 = 50; context 1 (web, not voice): 10
  const json* a = candidate(d, "a");
  const json* b = candidate(d, "b");
  const json* c = candidate(d, "c");
  REQUIRE((a && b && c));
  CHECK((*a)["score"].get<double>() == doctest::Approx(67.5));
  CHECK((*a)["breakdown"]["propensity"].get<double>() == doctest::Approx(0.75));
  CHECK((*a)["breakdown"]["value"].get<double>() == doctest::Approx(30));
  CHECK((*a)["breakdown"]["context_weight"].get<double>() == doctest::Approx(2));
  CHECK((*a)["breakdown"]["levers"].get<double>() == doctest::Approx(1.5));
  CHECK((*a)["breakdown"]["context"][0]["holds"] == true);
  CHECK((*a)["breakdown"]["context"][1]["holds"] == false);
  CHECK((*b)["score"].get<double>() == doctest::Approx(37.5));
  CHECK((*c)["score"].get<double>() == doctest::Approx(10));
  CHECK((*a)["rank"] == 1);
  CHECK((*b)["rank"] == 2);
  CHECK((*c)["rank"] == 3);
  CHECK(d["action"] == "a");
  CHECK(d["policy"] == "golden");
  CHECK(d["segment"] == "default");
  CHECK(d["score"].get<double>() == doctest::Approx(67.5));
  // The values the rules saw are part of the explanation.
  CHECK(d["inputs"]["intent.confidence"] == 0.95);
  CHECK(d["inputs"]["customer.vip"].is_null());
  CHECK(d["inputs"]["conversation.channel"] == "web");

  // A VIP on a voice call: a gets context 2*3 = 6 (0.75 * 30 * 6 * 1.5 = 202.5), c gets 4 (40).
  t.profile("u-2", {{"vip", true}});
  t.fact("conversation.started", {{"conversation", "c-2"}, {"customer", "u-2"}, {"channel", "voice"}});
  d = t.decided(t.fact("conversation.intent_detected", {{"conversation", "c-2"},
                                                        {"intent", "billing_question"},
                                                        {"confidence", 0.95}}))
          .data;
  CHECK((*candidate(d, "a"))["score"].get<double>() == doctest::Approx(202.5));
  CHECK((*candidate(d, "c"))["score"].get<double>() == doctest::Approx(40));

  // The conversation records the decision; its view names the action.
  CHECK(t.tenant.conversation_view("c-2")->at("arbitration")["action"] == "a");
}

TEST_CASE("each stage filters with the rule that failed, in order: eligibility, applicability, suitability") {
  Tenanted t;
  t.publish(json::parse(R"({
    "id": "stages", "intents": ["late_return", "other"],
    "actions": [
      {"name": "not_eligible", "eligibility": "customer.credit == \"good\"", "company_value": 1},
      {"name": "not_applicable", "applicability": "intent.name == \"other\"", "company_value": 1},
      {"name": "not_suitable", "suitability": "conversation.attributes.late_minutes < 60",
       "eligibility": "customer.credit IN [\"good\", \"poor\"]", "company_value": 1},
      {"name": "passes", "company_value": 1}
    ]})"));
  t.profile("u-1", {{"credit", "poor"}});
  json d = t.decided(t.start("c-1", "u-1", "late_return", {{"late_minutes", 240}})).data;
  CHECK((*candidate(d, "not_eligible"))["filtered"] ==
        json({{"stage", "eligibility"}, {"rule", "customer.credit == \"good\""}}));
  CHECK((*candidate(d, "not_applicable"))["filtered"] ==
        json({{"stage", "applicability"}, {"rule", "intent.name == \"other\""}}));
  CHECK((*candidate(d, "not_suitable"))["filtered"] ==
        json({{"stage", "suitability"}, {"rule", "conversation.attributes.late_minutes < 60"}}));
  CHECK_FALSE(candidate(d, "passes")->contains("filtered"));
  CHECK(d["action"] == "passes");
  CHECK(d["inputs"]["customer.credit"] == "poor");
  CHECK(d["inputs"]["conversation.attributes.late_minutes"] == 240);

  // Everything filtered: the decision says so, and chooses nothing.
  t.publish(json::parse(R"({"id": "stages", "intents": ["late_return"],
    "actions": [{"name": "never", "suitability": "customer.credit == \"good\""}]})"));
  d = t.decided(t.start("c-2", "u-1", "late_return")).data;
  CHECK(d["action"].is_null());
  CHECK_FALSE(d.contains("score"));
  auto lines = arbitration::Arbiter::explain(d);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "no action: every candidate was filtered out");
  CHECK(lines[1] == "never: filtered at suitability by customer.credit == \"good\"");
  // An intent no policy decides gets no arbitration at all.
  CHECK(t.find(t.start("c-3", "u-1", "unrelated"), "arbitration.decided") == nullptr);
}

TEST_CASE("contact policies: at most N per period, and suppression after refusals in a row, across days") {
  Tenanted t;
  t.publish(json::parse(R"({
    "id": "offers", "intents": ["cancel"],
    "actions": [
      {"name": "retention", "company_value": 100,
       "contact_policy": {"max": 1, "per_days": 7, "suppress_after_refusals": 2, "suppress_days": 30}},
      {"name": "fallback", "company_value": 1}
    ]})"));
  auto decide = [&](const std::string& c, int64_t seconds) {
    return t.decided(t.start(c, "u-1", "cancel", json::object(), "web", seconds));
  };
  // Day 0: retention. Day 3: once a week only, so the fallback. Day 8: retention again.
  Envelope d0 = decide("c-0", 1);
  CHECK(d0.data["action"] == "retention");
  Envelope d3 = decide("c-3", 3 * day_s);
  CHECK(d3.data["action"] == "fallback");
  const json& f = (*candidate(d3.data, "retention"))["filtered"];
  CHECK(f["stage"] == "contact_policy");
  CHECK(f["rule"] == "at most 1 per 7 days");
  CHECK(f["given"] == 1);
  CHECK(f["until"] == events::format_rfc3339_ms(d0.time_ms + 7 * day_s * 1000));
  Envelope d8 = decide("c-8", 5 * day_s);
  CHECK(d8.data["action"] == "retention");

  // Two refusals in a row: suppressed for 30 days from the second.
  CHECK_FALSE(t.outcome(d0.id, false).refused);
  CHECK_FALSE(t.outcome(d8.id, false).refused);
  const int64_t second_refusal_s = t.clock_s;
  Envelope d16 = decide("c-16", 8 * day_s);
  CHECK(d16.data["action"] == "fallback");
  CHECK((*candidate(d16.data, "retention"))["filtered"]["rule"] ==
        "suppressed for 30 days after 2 refusals in a row");
  CHECK((*candidate(d16.data, "retention"))["filtered"]["until"] ==
        events::format_rfc3339_ms(t0_ms + (second_refusal_s + 30 * day_s) * 1000));
  // Day 37 is 29 days after the second refusal: still suppressed. Day 39 is past it.
  CHECK(decide("c-37", 21 * day_s).data["action"] == "fallback");
  CHECK(decide("c-39", 2 * day_s).data["action"] == "retention");
}

TEST_CASE("outcomes: only for a decision that chose an action, once, not before it") {
  Tenanted t;
  t.publish(json::parse(R"({"id": "p", "intents": ["i"], "actions": [{"name": "x", "company_value": 1}]})"));
  Envelope d = t.decided(t.start("c-1", "u-1", "i"));
  Outcome unknown = t.outcome("d-999", true);
  CHECK(unknown.refused);
  CHECK(unknown.entries.back().data["field"] == "data.decision");
  CHECK_FALSE(t.outcome(d.id, true).refused);
  Outcome twice = t.outcome(d.id, false);
  CHECK(twice.refused);
  CHECK(twice.entries.back().data["reason"].get<std::string>().find("already has its outcome") !=
        std::string::npos);
  // The accepted outcome moved the posterior: Beta(1+1, 1).
  json view = *t.tenant.policy_view("p");
  CHECK(view["actions"][0]["propensity"]["all"]["alpha"] == 2.0);
  CHECK(view["actions"][0]["propensity"]["all"]["beta"] == 1.0);
}

TEST_CASE("propensities learned from outcomes converge on the true rates, per segment") {
  Tenanted t;
  t.publish(json::parse(R"({
    "id": "learn", "intents": ["upgrade"],
    "segments": [{"name": "young", "when": "customer.age < 30"}],
    "learn_by_segment": true,
    "actions": [{"name": "phone", "company_value": 10}, {"name": "plan", "company_value": 10}]})"));
  t.profile("u-young", {{"age", 25}});
  t.profile("u-old", {{"age", 60}});
  // The true acceptance rates: the young take the phone 60% of the time and the plan 20%; the
  // others the other way round. Outcomes drawn with a fixed seed.
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  std::map<std::string, std::map<std::string, double>> truth = {
      {"young", {{"phone", 0.6}, {"plan", 0.2}}}, {"default", {{"phone", 0.2}, {"plan", 0.6}}}};
  std::map<std::string, std::map<std::string, int>> late_choices;
  const int rounds = 1500;
  for (int i = 0; i < rounds; ++i) {
    const std::string customer = i % 2 ? "u-young" : "u-old";
    Envelope d = t.decided(t.start("c-" + std::to_string(i), customer, "upgrade"));
    const std::string segment = d.data["segment"], action = d.data["action"];
    if (i >= rounds - 200) ++late_choices[segment][action];
    REQUIRE_FALSE(t.outcome(d.id, u(rng) < truth[segment][action]).refused);
    t.fact("conversation.ended", {{"conversation", "c-" + std::to_string(i)}, {"by", "customer"}});
  }
  // Greedy on the posterior mean settles on each segment's better action...
  CHECK(late_choices["young"]["phone"] >= 95);
  CHECK(late_choices["default"]["plan"] >= 95);
  // ...and that action's posterior mean is within 0.05 of its true rate.
  json view = *t.tenant.policy_view("learn");
  const json& phone = view["actions"][0]["propensity"];
  const json& plan = view["actions"][1]["propensity"];
  CHECK(phone["young"]["propensity"].get<double>() == doctest::Approx(0.6).epsilon(0.05 / 0.6));
  CHECK(plan["default"]["propensity"].get<double>() == doctest::Approx(0.6).epsilon(0.05 / 0.6));
  CHECK(phone["young"]["accepted"].get<int64_t>() + phone["young"]["refused"].get<int64_t>() > 500);
}

TEST_CASE("car-rental example: Gartner's loyal customer has the late fee waived and is thanked") {
  Tenanted t;
  t.publish(load_example("car-rental.json"));
  t.profile("loyal", {{"credit", "good"}, {"early_returns", 5}});
  t.profile("risky", {{"credit", "poor"}, {"early_returns", 0}});
  // Four hours late.
  json d = t.decided(t.start("r-1", "loyal", "late_return", {{"late_minutes", 240}})).data;
  CHECK(d["action"] == "waive_late_fee");
  CHECK(d["segment"] == "loyal");
  CHECK(d["platform"]["send_message"] == "thank_you_early_returns");
  // 0.7 x (35 + 0.5 x 50) = 42 against 0.9 x (50 - 0.5 x 50) = 22.5
  CHECK(d["score"].get<double>() == doctest::Approx(42));
  CHECK((*candidate(d, "charge_late_fee"))["score"].get<double>() == doctest::Approx(22.5));

  d = t.decided(t.start("r-2", "risky", "late_return", {{"late_minutes", 240}})).data;
  CHECK(d["action"] == "charge_late_fee");
  CHECK((*candidate(d, "waive_late_fee"))["filtered"]["stage"] == "suitability");
  CHECK(d["inputs"]["customer.credit"] == "poor");
  CHECK(d["inputs"]["customer.early_returns"] == 0);

  // Two days late is not "a little late": the fee is charged even to the loyal customer.
  d = t.decided(t.start("r-3", "loyal", "late_return", {{"late_minutes", 2880}})).data;
  CHECK(d["action"] == "charge_late_fee");
  CHECK((*candidate(d, "waive_late_fee"))["filtered"]["stage"] == "applicability");
}

TEST_CASE("e-commerce example: a gold customer who wants to cancel goes to retention; bronze self-serves") {
  Tenanted t;
  t.fact("queue.configured", {{"queue", "retention"}, {"channels", {"web", "app"}}});
  t.fact("queue.configured", {{"queue", "support"}, {"channels", {"web", "app"}}});
  t.publish(load_example("e-commerce.json"));
  t.profile("gold", {{"tier", "gold"}});
  t.profile("bronze", {{"tier", "bronze"}});
  Outcome out = t.fact("conversation.started", {{"conversation", "e-1"}, {"customer", "gold"},
                                                {"channel", "app"}, {"queue", "support"}, {"bot", true}});
  out = t.fact("conversation.intent_detected",
               {{"conversation", "e-1"}, {"intent", "cancel"}, {"confidence", 0.9}});
  json d = t.decided(out).data;
  CHECK(d["action"] == "retention_offer");
  // 0.3 x (120 + 0.5 x 40) x 2 (cancel) x 1.2 (retention_push) = 100.8
  CHECK(d["score"].get<double>() == doctest::Approx(100.8));
  CHECK(d["routing"] == json({{"queue", "retention"}, {"priority", 10}}));
  const Envelope* queued = t.find(out, "conversation.queued");
  REQUIRE(queued);
  CHECK(queued->data["queue"] == "retention");
  CHECK(t.tenant.conversation_view("e-1")->at("priority") == 10);

  out = t.fact("conversation.started", {{"conversation", "e-2"}, {"customer", "bronze"},
                                        {"channel", "app"}, {"queue", "support"}, {"bot", true}});
  out = t.fact("conversation.intent_detected",
               {{"conversation", "e-2"}, {"intent", "cancel"}, {"confidence", 0.9}});
  d = t.decided(out).data;
  CHECK(d["action"] == "self_service_cancellation");
  CHECK((*candidate(d, "retention_offer"))["filtered"]["stage"] == "eligibility");
  CHECK(t.find(out, "conversation.queued") == nullptr);
  CHECK(t.tenant.conversation_view("e-2")->at("state") == "bot");

  // A retention queue that does not serve the channel filters the action at the routing stage.
  t.profile("gold-2", {{"tier", "gold"}});
  out = t.fact("conversation.started", {{"conversation", "e-3"}, {"customer", "gold-2"},
                                        {"channel", "voice"}, {"intent", "cancel"}});
  d = t.decided(out).data;
  CHECK((*candidate(d, "retention_offer"))["filtered"] ==
        json({{"stage", "routing"}, {"rule", "queue 'retention' does not serve channel 'voice'"}}));
}

TEST_CASE("journey: every conversation of a customer across channels, and the offer carries a summary") {
  Tenanted t;
  t.fact("queue.configured", {{"queue", "billing"}, {"channels", {"app", "voice"}}});
  t.fact("agent.logged_in", {{"agent", "alice"}, {"capacity", {{"app", 1}, {"voice", 1}}}, {"queues", {"billing"}}});
  t.profile("u-1", {{"tier", "gold"}});
  // In the app: answered by alice after 3 s, ended with CSAT 2.
  t.fact("conversation.started", {{"conversation", "app-1"}, {"customer", "u-1"}, {"channel", "app"},
                                  {"queue", "billing"}, {"intent", "refund"}});
  const std::string offer = t.tenant.conversation_view("app-1")->at("offer");
  t.fact("offer.accepted", {{"conversation", "app-1"}, {"agent", "alice"}, {"offer", offer}}, 3);
  t.fact("conversation.ended", {{"conversation", "app-1"}, {"by", "customer"}, {"csat", 2}}, 60);
  t.fact("conversation.wrapped_up", {{"conversation", "app-1"}, {"agent", "alice"}}, 5);
  // A minute later the customer calls.
  Outcome call = t.fact("conversation.started", {{"conversation", "call-1"}, {"customer", "u-1"},
                                                 {"channel", "voice"}, {"queue", "billing"}}, 60);
  const Envelope* offer_call = t.find(call, "conversation.offered");
  REQUIRE(offer_call);
  const json& j = offer_call->data["journey"];
  CHECK(j["contacts_7d"] == 2);
  CHECK(j["repeat_contact_24h"] == true);
  CHECK(j["mean_csat"] == 2.0);
  CHECK(j["open_conversations"] == 1);
  REQUIRE(j["recent"].size() == 1);
  CHECK(j["recent"][0]["conversation"] == "app-1");
  CHECK(j["recent"][0]["channel"] == "app");
  CHECK(j["recent"][0]["intent"] == "refund");
  CHECK(j["recent"][0]["outcome"] == "handled");
  CHECK(j["recent"][0]["ago_s"] == 128.0);

  json view = *t.tenant.customer_view("u-1");
  CHECK(view["profile"] == json({{"tier", "gold"}}));
  // The documents are written as text, exactly as json would write them.
  const std::string customer_text = *t.tenant.customer_text("u-1");
  CHECK(json::parse(customer_text).dump() == customer_text);
  // One document per conversation, keyed to sort by start.
  std::vector<json> conversations;
  for (const auto& [customer, conversation] : t.tenant.take_touched().journeys.visits)
    if (customer == "u-1") {
      const std::string text = t.tenant.visit_text(customer, conversation)->second;
      CHECK(json::parse(text).dump() == text);
      conversations.push_back(t.tenant.visit_view(customer, conversation)->second);
      const std::string conversation_text = *t.tenant.conversation_text(conversation);
      CHECK(json::parse(conversation_text).dump() == conversation_text);
    }
  std::sort(conversations.begin(), conversations.end(),
            [](const json& a, const json& b) { return a["started_at"] < b["started_at"]; });
  REQUIRE(conversations.size() == 2);
  const json& app = conversations[0];
  CHECK(app["conversation"] == "app-1");
  CHECK(app["channel"] == "app");
  CHECK(app["queues"] == json({"billing"}));
  CHECK(app["agents"] == json({"alice"}));
  CHECK(app["wait_s"] == 3.0);
  CHECK(app["outcome"] == "handled");
  CHECK(app["ended_by"] == "customer");
  CHECK(app["csat"] == 2.0);
  std::vector<std::string> types;
  for (const auto& d : app["decisions"]) types.push_back(d["type"]);
  CHECK(types == std::vector<std::string>{"conversation.queued", "conversation.offered",
                                          "conversation.assigned", "conversation.closed"});
  CHECK(conversations[1]["conversation"] == "call-1");
  CHECK(conversations[1]["outcome"] == "open");
  CHECK(view["features"]["contacts_30d"] == 2);

  // CRM facts merge; null removes; a journey feature's name is not a CRM attribute.
  t.profile("u-1", {{"tier", nullptr}, {"credit", "good"}});
  CHECK(t.tenant.customer_view("u-1")->at("profile") == json({{"credit", "good"}}));
  auto bad = events::parse_fact(event("p-bad", "customer.profile_updated", "2026-11-20T11:00:00Z",
                                      {{"customer", "u-1"}, {"attributes", {{"contacts_7d", 9}}}}));
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().field == "data.attributes");
}

TEST_CASE("journey: a conversation dropped from memory in the round it changed keeps its document for the projection") {
  Tenanted t;
  const size_t limit = journey::Journeys::visit_limit;
  auto start_and_end = [&](size_t i) {
    const std::string c = "c-" + std::to_string(i);
    t.start(c, "u-1", "refund");
    t.fact("conversation.ended", {{"conversation", c}, {"by", "customer"}});
  };
  for (size_t i = 0; i < limit; ++i) start_and_end(i);
  const auto before = t.tenant.visit_text("u-1", "c-0");
  REQUIRE(before);
  start_and_end(limit);  // one visit too many: the oldest closed one, c-0, makes room
  CHECK_FALSE(t.tenant.visit_text("u-1", "c-0"));
  Touched round = t.tenant.take_touched();
  REQUIRE(round.journeys.forgotten.size() == 1);
  CHECK(round.journeys.forgotten.begin()->first == before->first);
  CHECK(events::document_text(round.journeys.forgotten.begin()->second) == before->second);
  // Every visit of the round, in the order they changed, c-0 too: its document above is what
  // the projection writes for it, as rendering by its key finds nothing now.
  REQUIRE(round.journeys.visits.size() == limit + 1);
  CHECK(round.journeys.visits.front() == journey::Journeys::VisitId{"u-1", "c-0"});
  CHECK(round.journeys.visits.back() == journey::Journeys::VisitId{"u-1", "c-" + std::to_string(limit)});
  CHECK_FALSE(t.tenant.visit_text("u-1", "c-0"));
  // c-1 changed in the round before only, whose projection wrote it: dropping it owes nothing.
  start_and_end(limit + 1);
  CHECK_FALSE(t.tenant.visit_text("u-1", "c-1"));
  round = t.tenant.take_touched();
  CHECK(round.journeys.forgotten.empty());
  CHECK(round.journeys.customers == std::vector<std::string>{"u-1"});
}

TEST_CASE("journey: a day's first entry forgets the customers idle for 30 days, not the open or profiled") {
  journey::Journeys j;
  int n = 0;
  auto at_day = [](double day) { return static_cast<int64_t>(day * 86400000.0); };
  auto apply = [&](const std::string& type, double day, json data, const std::string& customer) {
    j.apply(Envelope{"e-" + std::to_string(n++), type, "acme", at_day(day), std::move(data)}, customer);
  };
  auto visit = [&](const std::string& conversation, const std::string& customer, double start, bool end) {
    apply("conversation.started", start,
          {{"conversation", conversation}, {"customer", customer}, {"channel", "web"}, {"queue", "billing"}}, customer);
    if (!end) return;
    apply("conversation.ended", start + 0.01, {{"conversation", conversation}, {"by", "customer"}}, customer);
    apply("conversation.closed", start + 0.01, {{"conversation", conversation}}, customer);  // the decision
  };
  visit("c-1", "u-idle", 0.1, true);
  visit("c-2", "u-open", 0.2, false);  // never ends
  apply("customer.profile_updated", 0.3, {{"customer", "u-crm"}, {"attributes", {{"tier", "gold"}}}}, "u-crm");
  visit("c-3", "u-recent", 20, true);
  for (int k = 0; k < 40; ++k) visit("x-" + std::to_string(k), "u-many-" + std::to_string(k), 0.4, true);
  j.take_touched();
  auto visits = [&](const std::string& customer) {
    const journey::Customer* c = j.find(customer);
    return c ? static_cast<int>(c->visits.size()) : -1;
  };
  // Day 30's first entry: c-1 started 29.95 days before, inside the window.
  apply("agent.logged_in", 30.05, {{"agent", "alice"}}, "");
  CHECK(visits("u-idle") == 1);
  // Day 31's: every customer whose only visits closed over 30 days ago, and who has no CRM
  // attributes, goes; the rest stay, with what they had.
  apply("agent.logged_in", 31.05, {{"agent", "alice"}}, "");
  CHECK(visits("u-idle") == -1);
  for (int k = 0; k < 40; ++k) CHECK(visits("u-many-" + std::to_string(k)) == -1);
  CHECK(visits("u-open") == 1);
  REQUIRE(j.find("u-crm") != nullptr);
  CHECK(j.find("u-crm")->profile["tier"] == "gold");
  CHECK(visits("u-recent") == 1);
  // Their documents were projected in the round before: dropping them owes nothing.
  CHECK(j.take_touched().forgotten.empty());
  // A customer forgotten comes back new.
  visit("c-4", "u-idle", 31.5, false);
  CHECK(visits("u-idle") == 1);
  CHECK(j.features("u-idle", at_day(31.6)).contacts_30d == 1);
}

TEST_CASE("bad policies are refused at the front door with the place and the reason") {
  auto refuse = [](json policy) {
    auto r = events::parse_fact(event("p", "policy.published", "2026-11-20T10:00:00Z", {{"policy", policy}}));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().field == "data.policy");
    return r.error().reason;
  };
  json p = golden_policy();
  p["actions"][1]["suitability"] = "customer.credit ==";
  CHECK(refuse(p) == "actions[1].suitability: position 19: expected a value, found end of expression");
  p = golden_policy();
  p["actions"][0]["suitabilty"] = "true";
  CHECK(refuse(p).rfind("actions[0].suitabilty: unknown field", 0) == 0);
  p = golden_policy();
  p["actions"][0]["levers"] = {"pull"};
  CHECK(refuse(p) == "actions[0].levers[0]: must name a lever of the policy's levers");
  p = golden_policy();
  p["actions"][2]["name"] = "a";
  CHECK(refuse(p) == "actions[2].name: 'a' is used by an earlier action");
  p = golden_policy();
  p.erase("intents");
  CHECK(refuse(p) == "intents: missing");
  p = golden_policy();
  p["actions"][0]["contact_policy"] = {{"max", 2}};
  CHECK(refuse(p) == "actions[0].contact_policy.per_days: max and per_days go together");
  p = golden_policy();
  p["actions"][0]["routing"] = {{"queue", "x"}, {"keep_with_bot", true}};
  CHECK(refuse(p).rfind("actions[0].routing: cannot both", 0) == 0);
  p = golden_policy();
  p["actions"][0]["propensity_prior"] = {{"alpha", 0}, {"beta", 1}};
  CHECK(refuse(p) == "actions[0].propensity_prior.alpha: must be a number greater than 0 and at most 1000000");
  p = golden_policy();
  p["actions"][0]["eligibility"] = "agent.skills.x > 1";
  CHECK(refuse(p).find("unknown name 'agent.skills.x' (expected customer.* or conversation.* or intent.*)") !=
        std::string::npos);
  CHECK(policy::parse(load_example("car-rental.json")).has_value());
  CHECK(policy::parse(load_example("e-commerce.json")).has_value());
}

TEST_CASE("replay: the journal rebuilds every decision, explanation, journey and propensity; facts re-decide the same") {
  Tenanted t;
  t.fact("queue.configured", {{"queue", "retention"}, {"channels", {"web", "app"}}});
  t.fact("queue.configured", {{"queue", "support"}, {"channels", {"web", "app"}}});
  t.fact("agent.logged_in", {{"agent", "ann"}, {"capacity", {{"app", 2}}}, {"queues", {"retention", "support"}}});
  t.publish(load_example("e-commerce.json"));
  t.publish(load_example("car-rental.json"));
  const std::vector<std::string> tiers = {"gold", "silver", "bronze"};
  const std::vector<std::string> intents = {"cancel", "return_request", "delivery_fee_dispute", "late_return"};
  std::vector<std::string> decisions;
  for (int i = 0; i < 60; ++i) {
    const std::string u = "u-" + std::to_string(i % 7), c = "c-" + std::to_string(i);
    if (i % 5 == 0)
      t.profile(u, {{"tier", tiers[i % 3]}, {"credit", i % 2 ? "good" : "poor"}, {"early_returns", i % 6}});
    Outcome out = t.fact("conversation.started",
                         {{"conversation", c}, {"customer", u}, {"channel", "app"}, {"queue", "support"},
                          {"intent", intents[i % 4]}, {"attributes", {{"late_minutes", 30 * (i % 20)}}}},
                         3600 * (i % 4));
    for (const auto& e : out.entries)
      if (e.type == "arbitration.decided" && !e.data["action"].is_null()) decisions.push_back(e.id);
    if (i % 3 == 0 && !decisions.empty()) t.outcome(decisions[static_cast<size_t>(i) % decisions.size()], i % 2 == 0);
    t.fact("conversation.ended", {{"conversation", c}, {"by", "customer"}, {"csat", 1 + i % 5}}, 30);
  }

  // Apply the journal to a fresh tenant: the same views.
  Tenant replayed("acme");
  for (const auto& e : t.journal) replayed.apply(e);
  Touched live = t.tenant.take_touched(), again = replayed.take_touched();
  CHECK(live.journeys.customers == again.journeys.customers);
  for (const auto& id : live.journeys.customers) CHECK(*t.tenant.customer_view(id) == *replayed.customer_view(id));
  CHECK(live.journeys.visits.size() == 60);
  CHECK(live.journeys.visits == again.journeys.visits);
  for (const auto& [customer, conversation] : live.journeys.visits)
    CHECK(t.tenant.visit_view(customer, conversation) == replayed.visit_view(customer, conversation));
  for (const char* id : {"e-commerce", "car-rental"}) CHECK(*t.tenant.policy_view(id) == *replayed.policy_view(id));
  CHECK(live.arbitration.decisions == again.arbitration.decisions);
  CHECK(live.arbitration.outcomes == again.arbitration.outcomes);
  CHECK(live.arbitration.decisions.size() >= 60);

  // Re-decide from the facts alone: every decision, with its explanation, is the same text.
  Tenant redecided("acme");
  std::vector<std::string> original, rerun;
  for (const auto& e : t.journal) {
    if (events::kind_of(e.type) == events::event_kind::decision) {
      original.push_back(events::to_text(e));
      continue;
    }
    Envelope fact = e;
    fact.seq.reset();
    for (const auto& out : redecided.handle(fact).entries)
      if (events::kind_of(out.type) == events::event_kind::decision) rerun.push_back(events::to_text(out));
  }
  CHECK(original.size() == rerun.size());
  CHECK(original == rerun);
}
