#include "events/policy.hpp"

#include <cmath>
#include <set>

#include "events/envelope.hpp"

namespace omniroute::policy {
namespace {

constexpr double max_value = 1e9;
constexpr double max_weight = 1000;
constexpr int64_t day_ms = 24 * 3600 * 1000;

// Reads one document (or sub-document) and remembers the first thing wrong with it.
class Reader {
 public:
  Reader(const json& doc, std::string at) : doc_(doc), at_(std::move(at)) {}

  bool object(std::initializer_list<const char*> allowed) {
    if (!doc_.is_object()) return fail("", "must be an object");
    for (const auto& [key, v] : doc_.items()) {
      bool known = false;
      for (const char* a : allowed) known = known || key == a;
      if (!known) {
        std::string list;
        for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        return fail(key, "unknown field (expected one of: " + list + ")");
      }
    }
    return true;
  }
  bool has(const char* key) const { return doc_.contains(key) && !doc_[key].is_null(); }
  const json& operator[](const char* key) const { return doc_[key]; }

  bool id(const char* key, std::string& out, bool required) {
    if (!has(key)) return required ? fail(key, "missing") : true;
    const json& v = doc_[key];
    if (!v.is_string() || !events::valid_id(v.get_ref<const std::string&>()))
      return fail(key, "must be a string of 1 to 128 bytes without control characters");
    out = v.get<std::string>();
    return true;
  }
  bool number(const char* key, double& out, double lo, double hi, bool lo_open = false) {
    if (!has(key)) return true;
    const json& v = doc_[key];
    const double x = v.is_number() ? v.get<double>() : NAN;
    if (!v.is_number() || !std::isfinite(x) || x > hi || (lo_open ? x <= lo : x < lo))
      return fail(key, std::string("must be a number ") + (lo_open ? "greater than " : "from ") +
                           fmt(lo) + (lo_open ? " and at most " : " to ") + fmt(hi));
    out = x;
    return true;
  }
  bool integer(const char* key, int& out, int lo, int hi) {
    if (!has(key)) return true;
    const json& v = doc_[key];
    if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
      return fail(key, "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    out = v.get<int>();
    return true;
  }
  bool days(const char* key, int64_t& out_ms) {
    double d = 0;
    if (!number(key, d, 0, 365, true)) return false;
    out_ms = static_cast<int64_t>(d * static_cast<double>(day_ms));
    return true;
  }
  bool boolean(const char* key, bool& out) {
    if (!has(key)) return true;
    if (!doc_[key].is_boolean()) return fail(key, "must be true or false");
    out = doc_[key].get<bool>();
    return true;
  }
  bool condition(const char* key, expr::Expression& out, bool required = false) {
    if (!has(key)) return required ? fail(key, "missing") : true;
    const json& v = doc_[key];
    if (!v.is_string()) return fail(key, "must be a string (an expression)");
    auto e = expr::Expression::compile(v.get_ref<const std::string&>(), roots());
    if (!e) return fail(key, e.error().message());
    out = std::move(e.value());
    return true;
  }
  bool fail(const std::string& key, std::string reason) {
    if (!error_) error_ = policy_error{key.empty() ? at_ : join(at_, key), std::move(reason)};
    return false;
  }
  // Takes a nested reader's error as this one's.
  bool fail(const policy_error& e) {
    if (!error_) error_ = e;
    return false;
  }
  const std::optional<policy_error>& error() const { return error_; }
  std::string path(const std::string& key) const { return join(at_, key); }

 private:
  static std::string join(const std::string& at, const std::string& key) {
    if (at.empty()) return key;
    return key.empty() ? at : at + "." + key;
  }
  static std::string fmt(double x) {
    if (x == std::floor(x) && std::fabs(x) < 1e15) return std::to_string(static_cast<int64_t>(x));
    return std::to_string(x);
  }
  const json& doc_;
  std::string at_;
  std::optional<policy_error> error_;
};

bool read_contact(const json& doc, const std::string& at, ContactPolicy& c, Reader& parent) {
  Reader r(doc, at);
  bool ok = r.object({"max", "per_days", "suppress_after_refusals", "suppress_days"}) &&
            r.integer("max", c.max, 1, 1000) && r.days("per_days", c.per_ms) &&
            r.integer("suppress_after_refusals", c.suppress_after_refusals, 1, 1000) &&
            r.days("suppress_days", c.suppress_ms);
  if (ok && (r.has("max") != r.has("per_days")))
    ok = r.fail(r.has("max") ? "per_days" : "max", "max and per_days go together");
  if (ok && (r.has("suppress_after_refusals") != r.has("suppress_days")))
    ok = r.fail(r.has("suppress_days") ? "suppress_after_refusals" : "suppress_days",
                "suppress_after_refusals and suppress_days go together");
  return ok || parent.fail(*r.error());
}

bool read_action(const json& doc, const std::string& at, const Policy& p, Action& a,
                 Reader& parent) {
  Reader r(doc, at);
  bool ok = r.object({"name", "description", "eligibility", "applicability", "suitability",
                      "contact_policy", "company_value", "customer_value", "propensity_prior",
                      "context_weights", "levers", "routing", "platform"}) &&
            r.id("name", a.name, true) && r.condition("eligibility", a.eligibility) &&
            r.condition("applicability", a.applicability) &&
            r.condition("suitability", a.suitability) &&
            r.number("company_value", a.company_value, -max_value, max_value) &&
            r.number("customer_value", a.customer_value, -max_value, max_value);
  if (ok && r.has("description") && !r["description"].is_string())
    ok = r.fail("description", "must be a string");
  if (ok && r.has("contact_policy"))
    ok = read_contact(r["contact_policy"], r.path("contact_policy"), a.contact, r);
  if (ok && r.has("propensity_prior")) {
    Reader prior(r["propensity_prior"], r.path("propensity_prior"));
    ok = (prior.object({"alpha", "beta"}) && prior.number("alpha", a.prior_alpha, 0, 1e6, true) &&
          prior.number("beta", a.prior_beta, 0, 1e6, true)) ||
         r.fail(*prior.error());
  }
  if (ok && r.has("context_weights")) {
    const json& list = r["context_weights"];
    if (!list.is_array() || list.size() > 100)
      ok = r.fail("context_weights", "must be a list of at most 100 {when, weight}");
    for (size_t i = 0; ok && i < list.size(); ++i) {
      Reader cw(list[i], r.path("context_weights[" + std::to_string(i) + "]"));
      ContextWeight w;
      ok = (cw.object({"when", "weight"}) && cw.condition("when", w.when, true) &&
            (cw.has("weight") || cw.fail("weight", "missing")) &&
            cw.number("weight", w.weight, 0, max_weight)) ||
           r.fail(*cw.error());
      if (ok) a.context.push_back(std::move(w));
    }
  }
  if (ok && r.has("levers")) {
    const json& list = r["levers"];
    if (!list.is_array()) ok = r.fail("levers", "must be a list of lever names");
    for (size_t i = 0; ok && i < list.size(); ++i) {
      if (!list[i].is_string() || !p.levers.count(list[i].get<std::string>()))
        ok = r.fail("levers[" + std::to_string(i) + "]",
                    "must name a lever of the policy's levers");
      else
        a.levers.push_back(list[i].get<std::string>());
    }
  }
  if (ok && r.has("routing")) {
    Reader rt(r["routing"], r.path("routing"));
    int priority = 0;
    ok = (rt.object({"priority", "queue", "keep_with_bot"}) &&
          rt.integer("priority", priority, -1000000, 1000000) && rt.id("queue", a.queue, false) &&
          rt.boolean("keep_with_bot", a.keep_with_bot)) ||
         r.fail(*rt.error());
    if (ok && rt.has("priority")) a.priority = priority;
    if (ok && a.keep_with_bot && !a.queue.empty())
      ok = r.fail("routing", "cannot both keep the conversation with the bot and send it to a queue");
  }
  if (ok && r.has("platform")) a.platform = r["platform"];
  return ok || parent.fail(*r.error());
}

}  // namespace

const std::vector<std::string>& roots() {
  static const std::vector<std::string> r = {"customer", "conversation", "intent"};
  return r;
}

const std::vector<std::string>& customer_features() {
  static const std::vector<std::string> f = {"id",        "contacts_7d",        "contacts_30d",
                                             "repeat_contact_24h", "mean_csat",
                                             "open_conversations", "last_channel",
                                             "attributes"};
  return f;
}

json Action::routing_json() const {
  json j = json::object();
  if (priority) j["priority"] = *priority;
  if (!queue.empty()) j["queue"] = queue;
  if (keep_with_bot) j["keep_with_bot"] = true;
  return j;
}

result<Policy, policy_error> parse(const json& doc) {
  Policy p;
  Reader r(doc, "");
  bool ok = r.object({"id", "description", "intents", "weights", "segments", "learn_by_segment",
                      "levers", "actions"}) &&
            r.id("id", p.id, true) && r.boolean("learn_by_segment", p.learn_by_segment);
  if (ok && r.has("description") && !r["description"].is_string())
    ok = r.fail("description", "must be a string");
  if (ok) {
    const json* intents = r.has("intents") ? &r["intents"] : nullptr;
    if (!intents || !intents->is_array() || intents->empty() || intents->size() > 1000)
      ok = r.fail("intents", intents ? "must be a non-empty list of intent names" : "missing");
    for (size_t i = 0; ok && i < intents->size(); ++i) {
      const json& v = (*intents)[i];
      if (!v.is_string() || !events::valid_id(v.get_ref<const std::string&>()))
        ok = r.fail("intents[" + std::to_string(i) + "]", "must be an intent name");
      else
        p.intents.push_back(v.get<std::string>());
    }
  }
  if (ok && r.has("weights")) {
    Reader w(r["weights"], "weights");
    ok = (w.object({"company", "customer"}) && w.number("company", p.w_company, 0, max_weight) &&
          w.number("customer", p.w_customer, 0, max_weight)) ||
         r.fail(*w.error());
  }
  if (ok && r.has("levers")) {
    const json& levers = r["levers"];
    if (!levers.is_object()) ok = r.fail("levers", "must be an object of lever name to weight");
    for (auto it = levers.begin(); ok && it != levers.end(); ++it) {
      const double x = it->is_number() ? it->get<double>() : -1;
      if (!events::valid_id(it.key()) || !(x >= 0 && x <= max_weight))
        ok = r.fail("levers." + it.key(), "must be a weight from 0 to 1000");
      else
        p.levers[it.key()] = x;
    }
  }
  if (ok && r.has("segments")) {
    const json& list = r["segments"];
    if (!list.is_array() || list.size() > 100)
      ok = r.fail("segments", "must be a list of at most 100 {name, when}");
    std::set<std::string> names;
    for (size_t i = 0; ok && i < list.size(); ++i) {
      Reader s(list[i], "segments[" + std::to_string(i) + "]");
      Segment seg;
      ok = (s.object({"name", "when"}) && s.id("name", seg.name, true) &&
            s.condition("when", seg.when, true)) ||
           r.fail(*s.error());
      if (ok && (seg.name == "default" || !names.insert(seg.name).second))
        ok = r.fail("segments[" + std::to_string(i) + "].name",
                    "'" + seg.name + "' is " + (seg.name == "default" ? "reserved" : "used twice"));
      if (ok) p.segments.push_back(std::move(seg));
    }
  }
  if (ok) {
    const json* actions = r.has("actions") ? &r["actions"] : nullptr;
    if (!actions || !actions->is_array() || actions->empty() || actions->size() > 1000)
      ok = r.fail("actions", actions ? "must be a non-empty list of at most 1000 actions" : "missing");
    std::set<std::string> names;
    for (size_t i = 0; ok && i < actions->size(); ++i) {
      Action a;
      const std::string at = "actions[" + std::to_string(i) + "]";
      ok = read_action((*actions)[i], at, p, a, r);
      if (ok && !names.insert(a.name).second)
        ok = r.fail(at + ".name", "'" + a.name + "' is used by an earlier action");
      if (ok) p.actions.push_back(std::move(a));
    }
  }
  if (!ok) return *r.error();
  return p;
}

}  // namespace omniroute::policy
