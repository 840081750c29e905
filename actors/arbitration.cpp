#include "actors/arbitration.hpp"

#include <cmath>
#include <cstdio>

#include "actors/routing_subjects.hpp"
#include "events/packing.hpp"
#include "events/time.hpp"

namespace omniroute::arbitration {
// Event types are compared as views: the length first, the bytes only when it matches.
using namespace std::string_view_literals;
namespace {

constexpr int64_t day_ms = 24 * 3600 * 1000;
constexpr int64_t history_ms = 366 * day_ms;  // longer than any contact policy period

using routing::str;

json to_json(const expr::Value& v) {
  switch (v.kind) {
    case expr::Value::Kind::missing: return nullptr;
    case expr::Value::Kind::boolean: return v.boolean;
    case expr::Value::Kind::number: return v.number;
    case expr::Value::Kind::string: return std::string(v.string);
    case expr::Value::Kind::list:
    case expr::Value::Kind::object: return v.doc ? *v.doc : json(nullptr);
  }
  return nullptr;
}

// Every expression of a policy, in document order.
std::vector<const expr::Expression*> expressions_of(const policy::Policy& p) {
  std::vector<const expr::Expression*> out;
  for (const auto& s : p.segments) out.push_back(&s.when);
  for (const auto& a : p.actions) {
    out.insert(out.end(), {&a.eligibility, &a.applicability, &a.suitability});
    for (const auto& cw : a.context) out.push_back(&cw.when);
  }
  return out;
}

std::string days_text(int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", static_cast<double>(ms) / static_cast<double>(day_ms));
  return std::string(buf) + (ms == day_ms ? " day" : " days");
}

std::string number_text(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", x);
  return buf;
}

json filtered(const std::string& stage, const std::string& rule) {
  return {{"stage", stage}, {"rule", rule}};
}

}  // namespace

std::string Arbiter::tally_key(const std::string& policy, const std::string& action,
                               const std::string& segment) {
  return policy + '\n' + action + '\n' + segment;
}

Arbiter::Posterior Arbiter::posterior(const std::string& policy, const policy::Action& a,
                                      const std::string& learning_segment) const {
  Posterior p;
  auto it = tallies_.find(tally_key(policy, a.name, learning_segment));
  if (it != tallies_.end()) p.tally = it->second;
  p.alpha = a.prior_alpha + static_cast<double>(p.tally.accepted);
  p.beta = a.prior_beta + static_cast<double>(p.tally.refused);
  return p;
}

std::string Arbiter::learning_segment(const policy::Policy& p, const std::string& segment) {
  return p.learn_by_segment ? segment : "all";
}

std::optional<json> Arbiter::contact_filter(const policy::Action& a, const std::string& policy,
                                            const Request& r) const {
  const policy::ContactPolicy& cp = a.contact;
  if (cp.max == 0 && cp.suppress_after_refusals == 0) return std::nullopt;
  auto customer = history_.find(r.customer);
  if (customer == history_.end()) return std::nullopt;
  auto h = customer->second.find(policy + "/" + a.name);
  if (h == customer->second.end()) return std::nullopt;
  if (cp.suppress_after_refusals > 0 && r.time_ms < h->second.suppressed_until_ms) {
    json f = filtered("contact_policy", "suppressed for " + days_text(cp.suppress_ms) + " after " +
                                            std::to_string(cp.suppress_after_refusals) +
                                            " refusals in a row");
    f["until"] = events::format_rfc3339_ms(h->second.suppressed_until_ms);
    return f;
  }
  if (cp.max > 0) {
    int64_t given = 0, first = 0;
    for (auto t = h->second.given.rbegin(); t != h->second.given.rend(); ++t) {
      if (*t <= r.time_ms - cp.per_ms) break;
      ++given;
      first = *t;
    }
    if (given >= cp.max) {
      json f = filtered("contact_policy", "at most " + std::to_string(cp.max) + " per " +
                                              days_text(cp.per_ms));
      f["given"] = given;
      f["until"] = events::format_rfc3339_ms(first + cp.per_ms);
      return f;
    }
  }
  return std::nullopt;
}

json Arbiter::score(const InForce& f, const policy::Action& a, const std::string& segment,
                    const Request& r) const {
  const policy::Policy& p = f.policy;
  const Posterior post = posterior(p.id, a, learning_segment(p, segment));
  const double alpha = post.alpha, beta = post.beta, propensity = post.mean();
  const double value = p.w_company * a.company_value + p.w_customer * a.customer_value;
  double context_weight = 1;
  json context = json::array();
  for (const auto& cw : a.context) {
    const bool holds = cw.when.evaluate(r.subjects);
    if (holds) context_weight *= cw.weight;
    context.push_back({{"when", cw.when.text()}, {"weight", cw.weight}, {"holds", holds}});
  }
  double levers = 1;
  json lever_list = json::array();
  for (const auto& name : a.levers) {
    const double w = p.levers.at(name);
    levers *= w;
    lever_list.push_back({{"name", name}, {"weight", w}});
  }
  return {{"score", propensity * value * context_weight * levers},
          {"propensity", propensity},
          {"alpha", alpha},
          {"beta", beta},
          {"company_value", a.company_value},
          {"customer_value", a.customer_value},
          {"w_company", p.w_company},
          {"w_customer", p.w_customer},
          {"value", value},
          {"context_weight", context_weight},
          {"context", std::move(context)},
          {"levers", levers},
          {"lever_weights", std::move(lever_list)}};
}

json Arbiter::decide(const Request& r) const {
  json candidates = json::array(), inputs = json::object(), versions = json::object();
  const json* best = nullptr;
  double best_score = 0;
  auto ids = by_intent_.find(r.intent);
  if (ids != by_intent_.end()) {
    for (const auto& id : ids->second) {
      const InForce& f = policies_.at(id);
      const policy::Policy& p = f.policy;
      versions[id] = f.version;
      std::string segment = "default";
      // The values the rules read, e.g. inputs["customer.credit"] = "good".
      for (const auto& in : f.inputs)
        if (!inputs.contains(in.name))
          inputs[in.name] = r.subjects[in.root] ? to_json(r.subjects[in.root]->get(in.segments)) : json(nullptr);
      for (const auto& s : p.segments) {
        if (s.when.evaluate(r.subjects)) {
          segment = s.name;
          break;
        }
      }
      for (const auto& a : p.actions) {
        json c = {{"policy", id}, {"action", a.name}, {"segment", segment}};
        std::optional<json> why;
        const std::pair<const char*, const expr::Expression*> stages[] = {
            {"eligibility", &a.eligibility},
            {"applicability", &a.applicability},
            {"suitability", &a.suitability}};
        for (const auto& [stage, e] : stages)
          if (!why && !e->evaluate(r.subjects)) why = filtered(stage, e->text());
        if (!why) why = contact_filter(a, id, r);
        if (!why && r.routing_check) {
          std::string reason = r.routing_check(a);
          if (!reason.empty()) why = filtered("routing", reason);
        }
        if (why) {
          c["filtered"] = std::move(*why);
        } else {
          c["breakdown"] = score(f, a, segment, r);
          c["score"] = c["breakdown"]["score"];
          c["breakdown"].erase("score");
        }
        candidates.push_back(std::move(c));
      }
    }
  }
  // The best, and each scored candidate's rank.
  std::vector<size_t> scored;
  for (size_t i = 0; i < candidates.size(); ++i)
    if (candidates[i].contains("score")) scored.push_back(i);
  std::stable_sort(scored.begin(), scored.end(), [&](size_t x, size_t y) {
    return candidates[x]["score"].get<double>() > candidates[y]["score"].get<double>();
  });
  for (size_t rank = 0; rank < scored.size(); ++rank) candidates[scored[rank]]["rank"] = rank + 1;
  if (!scored.empty()) {
    best = &candidates[scored.front()];
    best_score = (*best)["score"].get<double>();
  }

  json out = {{"conversation", r.conversation},
              {"customer", r.customer},
              {"intent", r.intent},
              {"policies", std::move(versions)},
              {"action", nullptr}};
  if (best) {
    const std::string& policy_id = str(*best, "policy");
    const std::string& action = str(*best, "action");
    out["action"] = action;
    out["policy"] = policy_id;
    out["segment"] = (*best)["segment"];
    out["score"] = best_score;
    for (const auto& a : policies_.at(policy_id).policy.actions) {
      if (a.name != action) continue;
      json routing = a.routing_json();
      if (!routing.empty()) out["routing"] = std::move(routing);
      if (!a.platform.is_null()) out["platform"] = a.platform;
    }
  }
  out["inputs"] = std::move(inputs);
  out["candidates"] = std::move(candidates);
  return out;
}

std::optional<std::pair<std::string, std::string>> Arbiter::check_outcome(const Envelope& f) const {
  const std::string& id = str(f.data, "decision");
  auto it = decisions_.find(id);
  if (it == decisions_.end())
    return std::pair{"data.decision", "unknown decision '" + id +
                                          "' (an arbitration.decided that chose an action, in "
                                          "the last 30 days)"};
  if (it->second.has_outcome)
    return std::pair{"data.decision", "decision '" + id + "' already has its outcome"};
  if (f.time_ms < it->second.time_ms)
    return std::pair{"time", "out of order: earlier than decision '" + id + "' (" +
                                 events::format_rfc3339_ms(it->second.time_ms) + ")"};
  return std::nullopt;
}

void Arbiter::sweep(int64_t time_ms) {
  const int64_t day = time_ms / day_ms;
  if (day <= swept_day_) return;
  swept_day_ = day;
  for (auto it = decisions_.begin(); it != decisions_.end();) {
    if (it->second.time_ms < time_ms - outcome_window_ms) it = decisions_.erase(it);
    else ++it;
  }
  for (auto c = history_.begin(); c != history_.end();) {
    for (auto h = c->second.begin(); h != c->second.end();) {
      auto& given = h->second.given;
      while (!given.empty() && given.front() < time_ms - history_ms) given.pop_front();
      if (given.empty() && h->second.refusals_in_a_row == 0 &&
          h->second.suppressed_until_ms < time_ms)
        h = c->second.erase(h);
      else
        ++h;
    }
    if (c->second.empty()) c = history_.erase(c);
    else ++c;
  }
}

Arbiter::InForce Arbiter::in_force(policy::Policy parsed, json document, uint64_t version,
                                   int64_t published_ms) {
  InForce f;
  f.policy = std::move(parsed);
  f.document = std::move(document);
  f.version = version;
  f.published_ms = published_ms;
  std::set<std::string> seen;
  for (const expr::Expression* x : expressions_of(f.policy))
    for (const auto& p : x->paths()) {
      Input in{policy::roots()[p.root], p.root, p.segments};
      for (const auto& s : p.segments) in.name += "." + s;
      if (seen.insert(in.name).second) f.inputs.push_back(std::move(in));
    }
  return f;
}

// Every member in the order declared but touched_ (empty between projections); a policy as its
// document, parsed again; hash tables in key order, so equal states write equal bytes.
void Arbiter::save(events::Appender& out) const {
  // A member added to these must be saved and restored too: the sizes are the reminder.
  static_assert(sizeof(Arbiter) == 416, "save() and restore() must cover every member of Arbiter");
  static_assert(sizeof(DecisionRef) == 144,
                "save() and restore() must cover every member of DecisionRef");
  static_assert(sizeof(History) == 96, "save() and restore() must cover every member of History");
  using events::each_of;
  each_of(out, policies_, [&](const auto& kv) {
    out.text(kv.first);
    out.document(kv.second.document);
    out.varint(kv.second.version);
    out.integer(kv.second.published_ms);
  });
  each_of(out, by_intent_, [&](const auto& kv) {
    out.text(kv.first);
    each_of(out, kv.second, [&](const std::string& id) { out.text(id); });
  });
  using events::in_key_order;
  each_of(out, in_key_order(tallies_), [&](const auto* kv) {
    out.text(kv->first);
    out.integer(kv->second.accepted);
    out.integer(kv->second.refused);
    out.real(kv->second.value);
  });
  each_of(out, in_key_order(decisions_), [&](const auto* kv) {
    const DecisionRef& r = kv->second;
    out.text(kv->first);
    for (const std::string* t : {&r.policy, &r.action, &r.segment, &r.customer}) out.text(*t);
    out.integer(r.time_ms);
    out.flag(r.has_outcome);
  });
  each_of(out, in_key_order(history_), [&](const auto* kv) {
    out.text(kv->first);
    each_of(out, kv->second, [&](const auto& h) {
      out.text(h.first);
      each_of(out, h.second.given, [&](int64_t t) { out.integer(t); });
      out.integer(h.second.refusals_in_a_row);
      out.integer(h.second.suppressed_until_ms);
    });
  });
  out.integer(swept_day_);
}

void Arbiter::restore(events::Unpacker& in) {
  using events::for_count;
  for_count(in, [&] {
    std::string id(in.text());
    json document = in.document();
    auto parsed = policy::parse(document);
    if (!parsed)
      throw std::out_of_range("snapshot: policy " + id +
                              " does not parse: " + parsed.error().reason);
    const uint64_t version = in.varint();
    policies_[id] = in_force(std::move(parsed.value()), std::move(document), version, in.integer());
  });
  for_count(in, [&] {
    auto& ids = by_intent_[std::string(in.text())];
    for_count(in, [&] { ids.emplace_hint(ids.end(), in.text()); });
  });
  for_count(in, [&] {
    Tally& t = tallies_[std::string(in.text())];
    t.accepted = in.integer();
    t.refused = in.integer();
    t.value = in.real();
  });
  for_count(in, [&] {
    DecisionRef& r = decisions_[std::string(in.text())];
    for (std::string* t : {&r.policy, &r.action, &r.segment, &r.customer}) *t = in.text();
    r.time_ms = in.integer();
    r.has_outcome = in.flag();
  });
  for_count(in, [&] {
    auto& customer = history_[std::string(in.text())];
    for_count(in, [&] {
      History& h = customer[std::string(in.text())];
      for_count(in, [&] { h.given.push_back(in.integer()); });
      h.refusals_in_a_row = static_cast<int>(in.integer());
      h.suppressed_until_ms = in.integer();
    });
  });
  swept_day_ = in.integer();
}

std::string Arbiter::layout() {
  return "in force " + std::to_string(sizeof(InForce)) + " tally " + std::to_string(sizeof(Tally)) +
         " decision " + std::to_string(sizeof(DecisionRef)) + " history " +
         std::to_string(sizeof(History)) + " arbiter " + std::to_string(sizeof(Arbiter));
}

void Arbiter::apply(const Envelope& e) {
  if (e.type == "event.refused"sv) return;
  sweep(e.time_ms);
  const json& d = e.data;
  if (e.type == "policy.published"sv) {
    auto parsed = policy::parse(d["policy"]);
    if (!parsed) return;  // validated at the front door; only a foreign journal gets here
    const std::string id = parsed->id;
    auto old = policies_.find(id);
    if (old != policies_.end())
      for (const auto& intent : old->second.policy.intents) {
        by_intent_[intent].erase(id);
        if (by_intent_[intent].empty()) by_intent_.erase(intent);
      }
    for (const auto& intent : parsed->intents) by_intent_[intent].insert(id);
    policies_[id] =
        in_force(std::move(parsed.value()), d["policy"], e.seq ? e.seq->value() : 0, e.time_ms);
    touched_.policies.insert(id);
  } else if (e.type == "arbitration.decided"sv) {
    json doc = events::to_json(e);
    doc["explanation"] = explain(d);
    touched_.decisions[e.id] = std::move(doc);
    if (d["action"].is_null()) return;
    DecisionRef ref;
    ref.policy = str(d, "policy");
    ref.action = str(d, "action");
    ref.segment = str(d, "segment");
    ref.customer = str(d, "customer");
    ref.time_ms = e.time_ms;
    history_[ref.customer][ref.policy + "/" + ref.action].given.push_back(e.time_ms);
    decisions_[e.id] = std::move(ref);
  } else if (e.type == "arbitration.outcome"sv) {
    const std::string& id = str(d, "decision");
    auto it = decisions_.find(id);
    if (it == decisions_.end() || it->second.has_outcome) return;
    DecisionRef& ref = it->second;
    ref.has_outcome = true;
    const bool accepted = d.value("accepted", false);
    auto p = policies_.find(ref.policy);
    const std::string segment = p != policies_.end() ? learning_segment(p->second.policy, ref.segment) : "all";
    Tally& t = tallies_[tally_key(ref.policy, ref.action, segment)];
    (accepted ? t.accepted : t.refused) += 1;
    if (d.contains("value") && d["value"].is_number()) t.value += d["value"].get<double>();
    History& h = history_[ref.customer][ref.policy + "/" + ref.action];
    if (accepted) {
      h.refusals_in_a_row = 0;
    } else if (p != policies_.end()) {
      for (const auto& a : p->second.policy.actions) {
        if (a.name != ref.action || a.contact.suppress_after_refusals == 0) continue;
        if (++h.refusals_in_a_row >= a.contact.suppress_after_refusals) {
          h.suppressed_until_ms = e.time_ms + a.contact.suppress_ms;
          h.refusals_in_a_row = 0;
        }
      }
    }
    json outcome = {{"event", e.id},
                    {"time", events::format_rfc3339_ms(e.time_ms)},
                    {"accepted", accepted}};
    if (d.contains("value")) outcome["value"] = d["value"];
    touched_.outcomes[id] = std::move(outcome);
    touched_.policies.insert(ref.policy);
  }
}

std::optional<json> Arbiter::policy_view(const std::string& id) const {
  auto it = policies_.find(id);
  if (it == policies_.end()) return std::nullopt;
  const InForce& f = it->second;
  std::vector<std::string> segments;
  if (f.policy.learn_by_segment) {
    for (const auto& s : f.policy.segments) segments.push_back(s.name);
    segments.push_back("default");
  } else {
    segments.push_back("all");
  }
  json actions = json::array();
  for (const auto& a : f.policy.actions) {
    json by_segment = json::object();
    for (const auto& s : segments) {
      const Posterior post = posterior(id, a, s);
      by_segment[s] = {{"alpha", post.alpha},
                       {"beta", post.beta},
                       {"propensity", post.mean()},
                       {"accepted", post.tally.accepted},
                       {"refused", post.tally.refused},
                       {"value_total", post.tally.value}};
    }
    actions.push_back({{"action", a.name}, {"propensity", std::move(by_segment)}});
  }
  return json{{"policy", id},
              {"version", f.version},
              {"published_at", events::format_rfc3339_ms(f.published_ms)},
              {"intents", f.policy.intents},
              {"actions", std::move(actions)},
              {"document", f.document}};
}

std::vector<std::string> Arbiter::explain(const json& decided) {
  std::vector<std::string> lines;
  const json& chosen = decided["action"];
  lines.push_back(chosen.is_null()
                      ? "no action: every candidate was filtered out"
                      : "chose " + chosen.get<std::string>() + " (policy " +
                            str(decided, "policy") + ", segment " +
                            str(decided, "segment") + ") with the highest score, " +
                            number_text(decided["score"].get<double>()));
  for (const auto& c : decided["candidates"]) {
    std::string line = str(c, "action") + ": ";
    if (c.contains("filtered")) {
      const json& f = c["filtered"];
      line += "filtered at " + str(f, "stage") + " by " + str(f, "rule");
    } else {
      const json& b = c["breakdown"];
      line += "rank " + std::to_string(c["rank"].get<int64_t>()) + ", score " +
              number_text(c["score"].get<double>()) + " = propensity " +
              number_text(b["propensity"].get<double>()) + " x value " +
              number_text(b["value"].get<double>()) + " (" +
              number_text(b["w_company"].get<double>()) + " x company " +
              number_text(b["company_value"].get<double>()) + " + " +
              number_text(b["w_customer"].get<double>()) + " x customer " +
              number_text(b["customer_value"].get<double>()) + ") x context " +
              number_text(b["context_weight"].get<double>()) + " x levers " +
              number_text(b["levers"].get<double>());
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace omniroute::arbitration
