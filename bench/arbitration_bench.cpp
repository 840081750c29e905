// Arbitration benchmark (issue 5): decisions per second with 50 candidate actions per intent.
//
// A policy of 50 actions, each with eligibility, applicability and suitability rules over the
// customer's CRM attributes and journey, the conversation and the intent, a contact policy, two
// context weights and a lever; 10,000 customers with profiles.
//
// - arbiter: arbitration::Arbiter::decide() alone, one thread (the scoring and the explanation
//   of all 50 candidates): decisions per second, latency p50/p99;
// - tenant: routing::Tenant::handle() of `conversation.intent_detected` for conversations with
//   the bot: the whole domain path (checks, the journey features, the decision, applying it to
//   the journey, the contact history and the conversation), decisions per second.
// Baseline in the same run: the same with a policy of one action.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "actors/arbitration.hpp"
#include "actors/journey.hpp"
#include "actors/routing.hpp"
#include "actors/routing_subjects.hpp"
#include "events/envelope.hpp"
#include "events/time.hpp"

using namespace omniroute;
using nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr int64_t origin_ms = 1795168800000;
constexpr int customers = 10000;

json policy(int actions) {
  json p = {{"id", "bench"},
            {"intents", {"billing"}},
            {"weights", {{"company", 1}, {"customer", 0.5}}},
            {"segments", {{{"name", "gold"}, {"when", "customer.tier == \"gold\""}},
                          {{"name", "silver"}, {"when", "customer.tier == \"silver\""}}}},
            {"learn_by_segment", true},
            {"levers", {{"push", 1.1}}},
            {"actions", json::array()}};
  for (int i = 0; i < actions; ++i) {
    p["actions"].push_back(
        {{"name", "action-" + std::to_string(i)},
         {"eligibility", "customer.credit IN [\"good\", \"fair\"] OR customer.spend > " + std::to_string(i * 40)},
         {"applicability", "intent.name == \"billing\" AND conversation.channel != \"email\""},
         {"suitability", "customer.contacts_30d < " + std::to_string(5 + i % 10) +
                             " AND NOT (customer.mean_csat < 2)"},
         {"contact_policy", {{"max", 3}, {"per_days", 30}}},
         {"company_value", 10 + i % 17},
         {"customer_value", 5 + i % 13},
         {"propensity_prior", {{"alpha", 1 + i % 5}, {"beta", 2 + i % 7}}},
         {"context_weights", {{{"when", "intent.confidence >= 0.8"}, {"weight", 1.2}},
                              {{"when", "customer.repeat_contact_24h"}, {"weight", 1.5}}}},
         {"levers", {"push"}}});
  }
  return p;
}

std::string customer(int i) { return "u-" + std::to_string(i); }

json profile(int i) {
  static const char* credit[] = {"good", "fair", "poor"};
  static const char* tier[] = {"gold", "silver", "bronze"};
  return {{"credit", credit[i % 3]}, {"tier", tier[(i / 3) % 3]}, {"spend", (i * 37) % 2000}};
}

events::Envelope fact(int64_t& seq, const std::string& type, int64_t ms, json data) {
  events::Envelope e;
  e.id = "f-" + std::to_string(seq++);
  e.type = type;
  e.tenant = "bench";
  e.time_ms = ms;
  e.data = std::move(data);
  return e;
}

struct Figures {
  double per_s = 0, p50_us = 0, p99_us = 0;
};

double percentile(std::vector<double>& v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

// Arbiter::decide() alone for `n` requests over the customers of a journey book.
Figures arbiter_alone(int actions, int n) {
  arbitration::Arbiter arbiter;
  journey::Journeys journeys;
  int64_t seq = 0;
  events::Envelope published = fact(seq, "policy.published", origin_ms, {{"policy", policy(actions)}});
  published.seq = seq_no{0};
  arbiter.apply(published);
  for (int i = 0; i < customers; ++i)
    journeys.apply(fact(seq, "customer.profile_updated", origin_ms,
                        {{"customer", customer(i)}, {"attributes", profile(i)}}),
                   customer(i));
  struct Conversation {
    std::string id, customer, channel = "web", language, queue, intent = "billing";
    int priority = 0;
    double confidence = 0.9;
    json attributes = json::object();
  } c;
  const std::string source = "nlu";
  std::vector<double> us;
  us.reserve(static_cast<size_t>(n));
  size_t chosen = 0;
  const auto start = clock_type::now();
  for (int i = 0; i < n; ++i) {
    c.id = "c-" + std::to_string(i);
    c.customer = customer(i % customers);
    const auto t = clock_type::now();
    arbitration::Request r;
    r.conversation = c.id;
    r.customer = c.customer;
    r.intent = c.intent;
    r.time_ms = origin_ms + i;
    const journey::Features f = journeys.features(c.customer, r.time_ms);
    const journey::CustomerSubject cs(c.customer, journeys.find(c.customer), f);
    const routing::ConversationSubject<Conversation> conv(c);
    const routing::IntentSubject intent(c.intent, c.confidence, source);
    r.subjects[0] = &cs;
    r.subjects[1] = &conv;
    r.subjects[2] = &intent;
    json d = arbiter.decide(r);
    chosen += d["action"].is_null() ? 0 : 1;
    us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t).count());
  }
  const double secs = std::chrono::duration<double>(clock_type::now() - start).count();
  if (chosen == 0) std::printf("  (no decision chose an action: the benchmark policy is wrong)\n");
  return {n / secs, percentile(us, 0.5), percentile(us, 0.99)};
}

// Tenant::handle() of conversation.intent_detected, the whole domain path.
Figures through_tenant(int actions, int n) {
  routing::Tenant tenant("bench");
  int64_t seq = 0;
  tenant.handle(fact(seq, "policy.published", origin_ms, {{"policy", policy(actions)}}));
  for (int i = 0; i < customers; ++i)
    tenant.handle(fact(seq, "customer.profile_updated", origin_ms,
                       {{"customer", customer(i)}, {"attributes", profile(i)}}));
  std::vector<double> us;
  us.reserve(static_cast<size_t>(n));
  size_t decisions = 0;
  double handling = 0;
  for (int i = 0; i < n; ++i) {
    const std::string c = "c-" + std::to_string(i);
    const int64_t ms = origin_ms + 1000 + i * 10;
    tenant.handle(fact(seq, "conversation.started", ms,
                       {{"conversation", c}, {"customer", customer(i % customers)}, {"channel", "web"}}));
    auto f = fact(seq, "conversation.intent_detected", ms + 1,
                  {{"conversation", c}, {"intent", "billing"}, {"confidence", 0.9}, {"source", "nlu"}});
    const auto t = clock_type::now();
    routing::Outcome out = tenant.handle(std::move(f));
    const double took = std::chrono::duration<double, std::micro>(clock_type::now() - t).count();
    handling += took;
    us.push_back(took);
    for (const auto& e : out.entries) decisions += e.type == "arbitration.decided";
    tenant.handle(fact(seq, "conversation.ended", ms + 2, {{"conversation", c}, {"by", "bot"}}));
    if (i % 4096 == 0) tenant.take_touched();  // as the projection would
  }
  if (decisions != static_cast<size_t>(n)) std::printf("  (only %zu of %d facts decided)\n", decisions, n);
  return {n / (handling / 1e6), percentile(us, 0.5), percentile(us, 0.99)};
}

}  // namespace

int main() {
  const int n = 20000;
  std::printf("omniroute arbitration bench: %d customers with profiles, %d decisions per run\n",
              customers, n);
  for (int actions : {1, 50}) {
    Figures a = arbiter_alone(actions, n);
    std::printf("arbiter, %2d candidate action%s: %8.0f decisions/s  p50 %6.1f us  p99 %6.1f us\n",
                actions, actions == 1 ? " " : "s", a.per_s, a.p50_us, a.p99_us);
    Figures t = through_tenant(actions, n);
    std::printf("tenant,  %2d candidate action%s: %8.0f decisions/s  p50 %6.1f us  p99 %6.1f us\n",
                actions, actions == 1 ? " " : "s", t.per_s, t.p50_us, t.p99_us);
  }
  return 0;
}
