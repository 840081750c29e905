#include "events/envelope.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <unordered_map>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "events/expression.hpp"
#include "events/fact_reader.hpp"
#include "events/policy.hpp"
#include "events/time.hpp"

namespace omniroute::events {
// Event types are compared as views: the length first, the bytes only when it matches.
using namespace std::string_view_literals;
namespace {

// The longest duration a field may give (a week): keeps time arithmetic far from overflow.
constexpr double max_seconds = 604800;

enum class field_kind {
  id,           // non-empty string usable as an id
  text,         // any string
  integer,      // JSON integer
  number,       // any JSON number
  unit_number,  // number in [0, 1]
  csat,         // number in [1, 5]
  non_negative, // seconds, 0 .. a week
  positive,     // seconds, > 0 .. a week
  boolean,
  id_list,      // array of ids
  object,       // any JSON object
  skills,       // object: name -> integer 1..5
  capacity,     // object: channel -> integer >= 0
  relax_steps,  // array of {after_s, requirement | overflow_to}
  one_of,       // string from `choices`
  timestamp,    // RFC 3339 string
  schedule,     // array of {start, end (timestamps), agents (number >= 0)}
  requirement,  // string: a requirement expression over conversation.* and agent.*
  blocks,       // object: channel -> list of channels its work blocks
  count,        // integer 0 .. 1000
  day_seconds,  // seconds, 0 .. a day
  profile,      // object of CRM attributes; journey feature names are reserved
  policy,       // an arbitration policy document (events/policy.hpp)
};

struct field_spec {
  std::string_view name;  // measured once, not at every event's look-up
  field_kind kind;
  bool required;
  std::vector<std::string> choices = {};
};

using schema = std::vector<field_spec>;

const std::unordered_map<std::string, schema>& fact_schemas() {
  static const std::unordered_map<std::string, schema> schemas = {
      {"queue.configured",
       {{"queue", field_kind::id, true},
        {"channels", field_kind::id_list, false},
        {"requirement", field_kind::requirement, false},
        {"priority", field_kind::integer, false},
        {"sl_threshold_s", field_kind::non_negative, false},
        {"sl_target", field_kind::unit_number, false},
        {"offer_timeout_s", field_kind::positive, false},
        {"auto_accept", field_kind::boolean, false},
        {"strategy",
         field_kind::one_of,
         false,
         {"longest_idle", "least_occupied", "most_proficient", "round_robin"}},
        {"relax", field_kind::relax_steps, false},
        {"skill", field_kind::id, false},
        {"wrap_up_s", field_kind::non_negative, false},
        {"no_answer_limit", field_kind::count, false},
        {"handoff_below_confidence", field_kind::unit_number, false},
        {"reopen_window_s", field_kind::day_seconds, false},
        {"reopen_preference_s", field_kind::non_negative, false}}},
      {"agent.logged_in",
       {{"agent", field_kind::id, true},
        {"skills", field_kind::skills, false},
        {"capacity", field_kind::capacity, false},
        {"queues", field_kind::id_list, false},
        {"attributes", field_kind::object, false},
        {"blocks", field_kind::blocks, false},
        {"heartbeat_timeout_s", field_kind::non_negative, false}}},
      {"agent.status_changed",
       {{"agent", field_kind::id, true},
        {"status", field_kind::one_of, true, {"available", "away", "offline"}}}},
      {"agent.logged_out", {{"agent", field_kind::id, true}}},
      {"agent.heartbeat", {{"agent", field_kind::id, true}}},
      {"conversation.started",
       {{"conversation", field_kind::id, true},
        {"customer", field_kind::id, true},
        {"channel", field_kind::id, true},
        {"queue", field_kind::id, false},
        {"intent", field_kind::id, false},
        {"language", field_kind::id, false},
        {"priority", field_kind::integer, false},
        {"bot", field_kind::boolean, false},
        {"attributes", field_kind::object, false}}},
      {"conversation.message",
       {{"conversation", field_kind::id, true},
        {"from", field_kind::one_of, true, {"customer", "agent", "bot"}},
        {"text", field_kind::text, true}}},
      {"conversation.intent_detected",
       {{"conversation", field_kind::id, true},
        {"intent", field_kind::id, true},
        {"confidence", field_kind::unit_number, true},
        {"source", field_kind::text, false}}},
      {"conversation.handoff_requested",
       {{"conversation", field_kind::id, true},
        {"reason", field_kind::text, false},
        {"queue", field_kind::id, false},
        {"attributes", field_kind::object, false}}},
      {"conversation.priority_changed",
       {{"conversation", field_kind::id, true}, {"priority", field_kind::integer, true}}},
      {"conversation.reopened",
       {{"conversation", field_kind::id, true}, {"reason", field_kind::text, false}}},
      // The time omniroute's clock has reached (the envelope's time): fires the timers due.
      {"clock.tick", {}},
      {"conversation.transfer_requested",
       {{"conversation", field_kind::id, true},
        {"to_queue", field_kind::id, false},
        {"to_agent", field_kind::id, false}}},
      {"offer.accepted",
       {{"conversation", field_kind::id, true},
        {"agent", field_kind::id, true},
        {"offer", field_kind::id, true}}},
      {"offer.declined",
       {{"conversation", field_kind::id, true},
        {"agent", field_kind::id, true},
        {"offer", field_kind::id, true}}},
      {"conversation.ended",
       {{"conversation", field_kind::id, true},
        {"by", field_kind::one_of, true, {"customer", "agent", "bot", "system"}},
        {"reason", field_kind::text, false},
        {"csat", field_kind::csat, false}}},
      {"conversation.wrapped_up",
       {{"conversation", field_kind::id, true}, {"agent", field_kind::id, true}}},
      // A finished contact from another system's history (an ACD's call-by-call export):
      // counted by the interval statistics, not routed. Its time is its arrival in the queue.
      {"contact.recorded",
       {{"contact", field_kind::id, true},
        {"queue", field_kind::id, true},
        {"channel", field_kind::id, true},
        {"outcome", field_kind::one_of, true, {"answered", "abandoned"}},
        {"waited_s", field_kind::non_negative, true},
        {"handled_s", field_kind::non_negative, false},
        {"queued", field_kind::boolean, false},
        {"agent", field_kind::id, false},
        {"customer", field_kind::id, false},
        {"attributes", field_kind::object, false}}},
      // Agents planned per interval for a queue; a later schedule replaces the earlier one
      // where their intervals overlap.
      {"schedule.published",
       {{"queue", field_kind::id, true},
        {"intervals", field_kind::schedule, true},
        {"channel", field_kind::id, false}}},
      // CRM facts about a customer, merged into what omniroute knows (null removes one).
      {"customer.profile_updated",
       {{"customer", field_kind::id, true}, {"attributes", field_kind::profile, true}}},
      // The arbitration policy in force from now on for its intents (replaces the one with
      // its id).
      {"policy.published", {{"policy", field_kind::policy, true}}},
      {"arbitration.outcome",
       {{"decision", field_kind::id, true},
        {"accepted", field_kind::boolean, true},
        {"value", field_kind::number, false}}},
  };
  return schemas;
}


std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Checks one value against its kind; returns an empty string when it is fine.
std::string check_value(const json& v, const field_spec& spec) {
  switch (spec.kind) {
    case field_kind::id:
      if (!v.is_string()) return "must be a string";
      if (!valid_id(v.get_ref<const std::string&>()))
        return "must be 1 to 128 bytes without control characters";
      return {};
    case field_kind::text:
      return v.is_string() ? "" : "must be a string";
    case field_kind::integer:
      if (!v.is_number_integer()) return "must be an integer";
      if (v.is_number_unsigned() ? v.get<uint64_t>() > INT32_MAX
                                 : v.get<int64_t>() < INT32_MIN || v.get<int64_t>() > INT32_MAX)
        return "must be an integer from -2147483648 to 2147483647";
      return {};
    case field_kind::number:
      return v.is_number() ? "" : "must be a number";
    case field_kind::unit_number:
      if (!v.is_number()) return "must be a number";
      return v.get<double>() >= 0 && v.get<double>() <= 1 ? "" : "must be between 0 and 1";
    case field_kind::csat:
      if (!v.is_number()) return "must be a number";
      return v.get<double>() >= 1 && v.get<double>() <= 5 ? "" : "must be between 1 and 5";
    case field_kind::non_negative:  // a duration in seconds
      if (!v.is_number()) return "must be a number";
      return v.get<double>() >= 0 && v.get<double>() <= max_seconds
                 ? ""
                 : "must be from 0 to 604800 (seconds in a week)";
    case field_kind::positive:  // a duration in seconds
      if (!v.is_number()) return "must be a number";
      return v.get<double>() > 0 && v.get<double>() <= max_seconds
                 ? ""
                 : "must be greater than 0 and at most 604800 (seconds in a week)";
    case field_kind::boolean:
      return v.is_boolean() ? "" : "must be true or false";
    case field_kind::id_list:
      if (!v.is_array()) return "must be a list of strings";
      for (const auto& item : v)
        if (!item.is_string() || !valid_id(item.get_ref<const std::string&>()))
          return "must be a list of 1 to 128 byte strings";
      return {};
    case field_kind::object:
      return v.is_object() ? "" : "must be an object";
    case field_kind::skills:
      if (!v.is_object()) return "must be an object of skill name to proficiency 1..5";
      for (const auto& [name, level] : v.items()) {
        if (!valid_id(name)) return "has a skill with an invalid name";
        if (!level.is_number_integer() || level.get<int64_t>() < 1 || level.get<int64_t>() > 5)
          return "skill '" + name + "' must have an integer proficiency from 1 to 5";
      }
      return {};
    case field_kind::capacity:
      if (!v.is_object()) return "must be an object of channel to concurrent items";
      for (const auto& [name, n] : v.items()) {
        if (!valid_id(name)) return "has a channel with an invalid name";
        if (!n.is_number_integer() || n.get<int64_t>() < 0 || n.get<int64_t>() > 1000)
          return "channel '" + name + "' must have an integer capacity from 0 to 1000";
      }
      return {};
    case field_kind::relax_steps:
      if (!v.is_array()) return "must be a list of steps";
      for (size_t i = 0; i < v.size(); ++i) {
        const auto& step = v[i];
        const std::string at = "step " + std::to_string(i) + " ";
        if (!step.is_object()) return at + "must be an object";
        auto after = step.find("after_s"sv);
        if (after == step.end() || !after->is_number() || after->get<double>() < 0 ||
            after->get<double>() > max_seconds)
          return at + "needs after_s, a number of seconds from 0 to 604800";
        bool has_req = step.contains("requirement"sv) && step["requirement"].is_string();
        bool has_overflow = step.contains("overflow_to"sv) && step["overflow_to"].is_string() &&
                            valid_id(step["overflow_to"].get_ref<const std::string&>());
        if (has_req == has_overflow)
          return at + "needs either a requirement or an overflow_to queue";
        if (has_req) {
          auto e = expr::Expression::compile(step["requirement"].get_ref<const std::string&>(),
                                             expr::requirement_roots());
          if (!e) return at + "requirement: " + e.error().message();
        }
        // Overflow takes time, so queues overflowing into each other cannot loop at one instant.
        if (has_overflow && after->get<double>() <= 0)
          return at + "overflows, so its after_s must be greater than 0";
        if (i > 0 && after->get<double>() < v[i - 1]["after_s"].get<double>())
          return at + "must not come before the step above it (after_s in increasing order)";
      }
      return {};
    case field_kind::timestamp:
      if (!v.is_string() || !parse_rfc3339_ms(v.get_ref<const std::string&>()))
        return "must be an RFC 3339 time, e.g. 2026-11-20T10:00:00Z";
      return {};
    case field_kind::schedule:
      if (!v.is_array() || v.empty()) return "must be a non-empty list of {start, end, agents}";
      if (v.size() > 10000) return "must have at most 10000 intervals";
      for (size_t i = 0; i < v.size(); ++i) {
        const auto& iv = v[i];
        const std::string at = "interval " + std::to_string(i) + " ";
        if (!iv.is_object()) return at + "must be an object";
        std::optional<int64_t> start, end;
        if (iv.contains("start"sv) && iv["start"].is_string())
          start = parse_rfc3339_ms(iv["start"].get_ref<const std::string&>());
        if (iv.contains("end"sv) && iv["end"].is_string())
          end = parse_rfc3339_ms(iv["end"].get_ref<const std::string&>());
        if (!start || !end) return at + "needs start and end, RFC 3339 times";
        if (*end <= *start) return at + "must end after it starts";
        if (*end - *start > 7LL * 24 * 3600 * 1000) return at + "must be at most a week long";
        if (!iv.contains("agents"sv) || !iv["agents"].is_number() || iv["agents"].get<double>() < 0 ||
            iv["agents"].get<double>() > 100000)
          return at + "needs agents, a number from 0 to 100000";
      }
      return {};
    case field_kind::requirement: {
      if (!v.is_string()) return "must be a string";
      auto e = expr::Expression::compile(v.get_ref<const std::string&>(), expr::requirement_roots());
      return e ? "" : e.error().message();
    }
    case field_kind::blocks:
      if (!v.is_object()) return "must be an object of channel to the channels its work blocks";
      for (const auto& [name, blocked] : v.items()) {
        if (!valid_id(name)) return "has a channel with an invalid name";
        if (!blocked.is_array()) return "channel '" + name + "' must list the channels it blocks";
        for (const auto& b : blocked)
          if (!b.is_string() || !valid_id(b.get_ref<const std::string&>()))
            return "channel '" + name + "' must list channel names (or \"*\" for all)";
      }
      return {};
    case field_kind::count:
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 1000)
        return "must be an integer from 0 to 1000";
      return {};
    case field_kind::day_seconds:
      if (!v.is_number()) return "must be a number";
      return v.get<double>() >= 0 && v.get<double>() <= 86400 ? ""
                                                             : "must be from 0 to 86400 (a day)";
    case field_kind::profile:
      if (!v.is_object()) return "must be an object of attribute name to value";
      for (const auto& [name, value] : v.items()) {
        const auto& reserved = policy::customer_features();
        if (std::find(reserved.begin(), reserved.end(), name) != reserved.end())
          return "'" + name + "' is a journey feature omniroute computes; choose another name";
        if (!valid_id(name)) return "has an attribute with an invalid name";
      }
      return {};
    case field_kind::policy: {
      auto p = policy::parse(v);
      return p ? "" : p.error().message();
    }
    case field_kind::one_of:
      if (!v.is_string()) return "must be one of: " + join(spec.choices);
      if (std::find(spec.choices.begin(), spec.choices.end(), v.get_ref<const std::string&>()) ==
          spec.choices.end())
        return "must be one of: " + join(spec.choices);
      return {};
  }
  return "has an unknown kind";
}

}  // namespace

const std::vector<std::string>& decision_types() {
  static const std::vector<std::string> types = {
      "conversation.queued",   "conversation.offered",    "offer.timed_out",
      "conversation.assigned", "conversation.relaxed",    "conversation.overflowed",
      "conversation.abandoned", "conversation.closed",    "agent.went_offline",
      "agent.went_away",       "conversation.preference_expired",
      "arbitration.decided",   "event.refused"};
  return types;
}

json event_error::to_json() const {
  json j = {{"error", "invalid_event"}, {"id", id}, {"field", field}, {"reason", reason}};
  if (index) j["index"] = *index;
  return j;
}

namespace {

// Reads a text through to where json's parser stops on it: the byte it stopped at.
class StopsAt final : public nlohmann::json_sax<json> {
 public:
  size_t byte = 0;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception&) override {
    byte = position;
    return false;
  }
};

}  // namespace

result<json, json_syntax_error> parse_json(std::string_view text) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    return json_syntax_error{e.what(), e.byte};
  } catch (const json::exception& e) {
    StopsAt stop;
    json::sax_parse(text.begin(), text.end(), &stop);
    return json_syntax_error{e.what(), stop.byte};
  }
}

bool nesting_exceeds(std::string_view text, size_t limit) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

bool valid_id(std::string_view s) {
  if (s.empty() || s.size() > max_id_bytes) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

bool valid_tenant(std::string_view s) {
  if (s.empty() || s.size() > max_tenant_bytes) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == '-'))
      return false;
  return true;
}

namespace {

// The event types by name, in an open-addressing table of views of the static names: called
// for every journal entry applied, several times, where std::hash over the whole name and a
// bucket's modulo were about 180 instructions a call (callgrind), this is a few dozen.
class KindTable {
 public:
  KindTable() {
    for (const auto& [name, spec] : fact_schemas()) add(name, event_kind::fact);
    for (const auto& name : decision_types()) add(name, event_kind::decision);
  }
  event_kind find(std::string_view type) const {
    if (type.empty()) return event_kind::unknown;
    for (size_t i = slot(type);; i = (i + 1) % size) {
      const Slot& s = slots_[i];
      if (s.name.empty()) return event_kind::unknown;
      if (s.name.size() == type.size() && std::memcmp(s.name.data(), type.data(), type.size()) == 0)
        return s.kind;
    }
  }

 private:
  static constexpr size_t size = 128;  // a power of two, well over twice the number of types
  struct Slot {
    std::string_view name;
    event_kind kind = event_kind::unknown;
  };
  // The length and three of the bytes tell the names apart well enough: the full comparison
  // settles any collision.
  static size_t slot(std::string_view t) {
    const auto byte = [&](size_t i) { return static_cast<size_t>(static_cast<unsigned char>(t[i])); };
    return (t.size() * 37 + byte(t.size() - 1) * 11 + byte(t.size() / 2) * 5 + byte(0)) % size;
  }
  void add(std::string_view name, event_kind kind) {
    size_t i = slot(name);
    while (!slots_[i].name.empty()) i = (i + 1) % size;
    slots_[i] = Slot{name, kind};
  }
  Slot slots_[size];
};

}  // namespace

event_kind kind_of(std::string_view type) {
  static const KindTable kinds;
  return kinds.find(type);
}

result<Envelope, event_error> parse_fact(const json& j) {
  json copy = j;
  return parse_fact(std::move(copy));
}

namespace {

// A member of a fact's data as validation sees it: sent as null is absent (drop_null_fields
// drops it from the fact).
const json* given(const json& data, std::string_view key) {
  const json* m = member(data, key);
  return m && !m->is_null() ? m : nullptr;
}

// What is wrong with a fact's data (an object) for its type's schema: (field, reason).
std::optional<std::pair<std::string, std::string>> data_problem(const schema& fields,
                                                                const std::string& type,
                                                                const json& data) {
  for (const auto& spec : fields) {
    const json* m = given(data, spec.name);
    if (!m) {
      if (spec.required)
        return std::pair{std::string("data.").append(spec.name), std::string("missing")};
      continue;
    }
    std::string why = check_value(*m, spec);
    if (!why.empty()) return std::pair{std::string("data.").append(spec.name), std::move(why)};
  }
  if (type == "conversation.transfer_requested"sv && !given(data, "to_queue") && !given(data, "to_agent"))
    return std::pair{std::string("data.to_queue"), std::string("one of to_queue or to_agent is required")};
  return std::nullopt;
}

// A schema field sent as null is absent (data_problem treats it so): it is dropped from the
// fact, so that neither the journal nor routing ever meets a null where the schema wants a
// value (routing read `"auto_accept": null` as a boolean, threw, and the partition's host
// retried that fact forever). Other members are kept as sent. Most facts have no null member:
// one pass over the members finds that.
void drop_null_fields(const schema& fields, json& data) {
  auto& members = data.get_ref<json::object_t&>();
  const bool any_null =
      std::any_of(members.begin(), members.end(), [](const auto& m) { return m.second.is_null(); });
  if (!any_null) return;
  for (const auto& spec : fields) {
    auto m = members.find(spec.name);
    if (m != members.end() && m->second.is_null()) members.erase(m);
  }
}

}  // namespace

result<Envelope, event_error> parse_fact(json&& j) {
  auto fail = [&](std::string field, std::string reason) {
    return event_error{string_member(j, "id"), std::move(field),
                       std::move(reason), std::nullopt};
  };
  if (!j.is_object()) return fail("", "an event must be a JSON object");

  Envelope e;
  auto id = j.find("id"sv);
  if (id == j.end()) return fail("id", "missing");
  if (!id->is_string()) return fail("id", "must be a string");
  if (!valid_id(id->get_ref<const std::string&>()))
    return fail("id", "must be 1 to 128 bytes without control characters");
  e.id = id->get<std::string>();

  auto type = j.find("type"sv);
  if (type == j.end()) return fail("type", "missing");
  if (!type->is_string()) return fail("type", "must be a string");
  e.type = type->get<std::string>();
  auto schema_it = fact_schemas().find(e.type);
  if (schema_it == fact_schemas().end()) {
    if (kind_of(e.type) == event_kind::decision)
      return fail("type", "'" + e.type + "' is a decision; only omniroute writes decisions");
    return fail("type", "unknown event type '" + e.type + "'");
  }

  auto tenant = j.find("tenant"sv);
  if (tenant == j.end()) return fail("tenant", "missing");
  if (!tenant->is_string() || !valid_tenant(tenant->get_ref<const std::string&>()))
    return fail("tenant", std::string("must be ") + tenant_rule);
  e.tenant = tenant->get<std::string>();

  auto time = j.find("time"sv);
  if (time == j.end()) return fail("time", "missing");
  if (!time->is_string()) return fail("time", "must be an RFC 3339 timestamp string");
  auto ms = parse_rfc3339_ms(time->get_ref<const std::string&>());
  if (!ms) return fail("time", "must be an RFC 3339 timestamp, e.g. 2026-11-20T10:00:00Z");
  if (*ms >= latest_fact_ms)
    return fail("time",
                "must be before 9000-01-01T00:00:00Z (the times worked out from it must have a "
                "year of four digits)");
  e.time_ms = *ms;

  auto data = j.find("data"sv);
  if (data == j.end()) return fail("data", "missing");
  if (!data->is_object()) return fail("data", "must be an object");
  if (auto why = data_problem(schema_it->second, e.type, *data)) return fail(why->first, why->second);
  drop_null_fields(schema_it->second, *data);
  e.data = std::move(*data);
  return e;
}

bool accept_fact(Envelope& e, std::string_view time) {
  if (!valid_id(e.id) || !valid_tenant(e.tenant) || !e.data.is_object()) return false;
  auto schema_it = fact_schemas().find(e.type);
  if (schema_it == fact_schemas().end()) return false;
  auto ms = parse_rfc3339_ms(time);
  if (!ms || *ms >= latest_fact_ms || data_problem(schema_it->second, e.type, e.data)) return false;
  drop_null_fields(schema_it->second, e.data);
  e.time_ms = *ms;
  return true;
}

namespace {

// Reads every envelope field but data (which it only checks is an object).
std::optional<event_error> read_shape(const json& j, Envelope& e) {
  auto fail = [](std::string field) {
    return event_error{"", std::move(field), "malformed envelope in the log", std::nullopt};
  };
  if (!j.is_object()) return fail("");
  e.id = string_member(j, "id");
  e.type = string_member(j, "type");
  e.tenant = string_member(j, "tenant");
  if (e.id.empty() || e.type.empty() || e.tenant.empty()) return fail("id/type/tenant");
  auto ms = parse_rfc3339_ms(string_member(j, "time"));
  if (!ms) return fail("time");
  e.time_ms = *ms;
  auto data = j.find("data"sv);
  if (data == j.end() || !data->is_object()) return fail("data");
  auto seq = j.find("seq"sv);
  if (seq != j.end() && seq->is_number_unsigned()) e.seq = seq_no{seq->get<uint64_t>()};
  e.cause = string_member(j, "cause");
  return std::nullopt;
}

}  // namespace

result<Envelope, event_error> read_envelope_text(std::string_view text) {
  if (std::optional<Envelope> e = read_plain_envelope(text)) return std::move(*e);
  return read_envelope_text_by_dom(text);
}

result<Envelope, event_error> read_envelope_text_by_dom(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded())
    return event_error{"", "", "unparseable envelope in the log", std::nullopt};
  Envelope e;
  if (auto err = read_shape(j, e)) return *err;
  e.data = std::move(j["data"]);
  return e;
}

json to_json(const Envelope& e) {
  json j = {{"id", e.id},
            {"type", e.type},
            {"tenant", e.tenant},
            {"time", format_rfc3339_ms(e.time_ms)},
            {"data", e.data}};
  if (e.seq) j["seq"] = e.seq->value();
  if (!e.cause.empty()) j["cause"] = e.cause;
  return j;
}

namespace {

// Bytes a JSON string can hold as they are: printable ASCII but the quote and the backslash.
constexpr bool plain(unsigned char c) { return c >= 0x20 && c != '"' && c != '\\' && c < 0x80; }

#if defined(__SSE2__)
// Bit k set where byte k of the 16 at p needs a second look: as signed bytes, the controls
// (0x00-0x1f) and the bytes >= 0x80 are all below 0x20.
unsigned special16(const char* p) {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i special = _mm_or_si128(_mm_cmplt_epi8(x, _mm_set1_epi8(0x20)),
                                       _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                                                    _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))));
  return static_cast<unsigned>(_mm_movemask_epi8(special));
}

// Bit 8k + 7 set where byte k of the 8 at p needs a second look (SWAR, each byte on its own:
// no borrow or carry crosses into the next, so a byte's bit depends on that byte only).
uint64_t special8(const char* p) {
  constexpr uint64_t ones = 0x0101010101010101ull, highs = ones * 0x80, low7 = ones * 0x7f;
  // Bit 7 of ((y & low7) + low7) is set where y's low seven bits are not all zero.
  auto zero = [](uint64_t y) { return ~(((y & low7) + low7) | y) & highs; };
  uint64_t x;
  std::memcpy(&x, p, 8);
  const uint64_t below_space = ~((x & low7) + ones * (0x80 - 0x20)) & highs;  // of the bytes < 0x80
  return (x & highs) | below_space | zero(x ^ (ones * '"')) | zero(x ^ (ones * '\\'));
}

// The end of the run of plain bytes starting at s[i] (at a control character, '"', '\\', a
// byte >= 0x80, or the end), sixteen bytes at a time. The last few are read as the string's
// last sixteen (or eight) bytes, overlapping those already read, whose bits are dropped: copying
// them into plain padding first made the load that followed wait for the copy's stores (a
// store-forwarding stall: perf put 78% of this function's samples, 1.9% of all, on it), and
// eight bytes at a time, then one by one, was 1,700 instructions an event, the largest of this
// file's own.
size_t plain_run(std::string_view s, size_t i) {
  const size_t n = s.size();
  const char* p = s.data();
  for (; i + 16 <= n; i += 16)
    if (const unsigned m = special16(p + i)) return i + static_cast<size_t>(__builtin_ctz(m));
  if (i == n) return n;
  if (n >= 16) {
    const unsigned m = special16(p + n - 16) >> (i - (n - 16));
    return m ? i + static_cast<size_t>(__builtin_ctz(m)) : n;
  }
  if (n >= 8) {  // a string of 8 to 15 bytes
    if (i + 8 <= n) {
      if (const uint64_t m = special8(p + i)) return i + static_cast<size_t>(__builtin_ctzll(m)) / 8;
      i += 8;
      if (i == n) return n;
    }
    const uint64_t m = special8(p + n - 8) >> (8 * (i - (n - 8)));
    return m ? i + static_cast<size_t>(__builtin_ctzll(m)) / 8 : n;
  }
  while (i < n && plain(static_cast<unsigned char>(p[i]))) ++i;
  return i;
}
#else
// The end of the run of plain bytes starting at s[i]: eight bytes at a time while none of
// them needs a second look (a control character, '"', '\\' or a byte >= 0x80), then one by one.
size_t plain_run(std::string_view s, size_t i) {
  constexpr uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  auto has_zero_byte = [](uint64_t x) { return (x - ones) & ~x & highs; };
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t x;
    std::memcpy(&x, s.data() + i, 8);
    const uint64_t special = (x & highs) | ((x - ones * 0x20) & ~x & highs) |
                             has_zero_byte(x ^ (ones * '"')) | has_zero_byte(x ^ (ones * '\\'));
    if (special) break;
  }
  while (i < s.size() && plain(static_cast<unsigned char>(s[i]))) ++i;
  return i;
}
#endif

// Length of the well-formed UTF-8 sequence starting at s[i] (a byte >= 0x80), or 0 when it is
// not one (the rules nlohmann's parser and serializer enforce: no overlongs, no surrogates,
// nothing above U+10FFFF).
size_t utf8_sequence(std::string_view s, size_t i) {
  auto at = [&](size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u; };
  auto cont = [](unsigned c) { return (c & 0xC0) == 0x80; };
  const unsigned c = at(0);
  if (c >= 0xC2 && c <= 0xDF) return cont(at(1)) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    const unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return at(1) >= lo && at(1) <= hi && cont(at(2)) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    const unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return at(1) >= lo && at(1) <= hi && cont(at(2)) && cont(at(3)) ? 4 : 0;
  }
  return 0;
}

}  // namespace

size_t utf8_prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = utf8_sequence(s, i);
    if (n == 0) return i;
    i += n;
  }
  return i;
}

size_t write_integer(int64_t n, char* out) {
  return static_cast<size_t>(std::to_chars(out, out + max_number_bytes, n).ptr - out);
}
size_t write_integer(uint64_t n, char* out) {
  return static_cast<size_t>(std::to_chars(out, out + max_number_bytes, n).ptr - out);
}
size_t write_double(double x, char* out) {
  if (!std::isfinite(x)) {  // as dump writes NaN and the infinities
    std::memcpy(out, "null", 4);
    return 4;
  }
  // The shortest text that reads back as x (Grisu2), the function dump itself writes it with.
  return static_cast<size_t>(nlohmann::detail::to_chars(out, out + max_number_bytes, x) - out);
}

void append_integer(std::string& out, int64_t n) {
  char text[max_number_bytes];
  out.append(text, write_integer(n, text));
}

void append_double(std::string& out, double x) {
  char text[max_number_bytes];
  out.append(text, write_double(x, text));
}

bool quotes_as_is(std::string_view s) { return plain_run(s, 0) == s.size(); }

// The escaping nlohmann's dump uses for UTF-8 input, a run of plain bytes at a time. Text that
// is not UTF-8 is left to nlohmann, which refuses it as dump() would.
void append_quoted(std::string& out, std::string_view s) {
  const size_t start = out.size();
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    const size_t run = plain_run(s, i);
    out.append(s.data() + i, run - i);
    i = run;
    if (i == s.size()) break;
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const size_t n = utf8_sequence(s, i);
      if (n == 0) {
        out.resize(start);
        out += json(std::string(s)).dump();  // throws, as nlohmann's serializer does
        return;
      }
      out.append(s.data() + i, n);
      i += n;
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: {
        static constexpr char hex[] = "0123456789abcdef";
        const char u[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
        out.append(u, sizeof u);
      }
    }
    ++i;
  }
  out.push_back('"');
}

namespace {

// Writes JSON text into a string made long enough ahead, a value at a time: one room check per
// value, and the fixed pieces (keys, brackets) copied by the compiler's inline moves, where
// appending each piece to the string was a call to check its capacity and another to memcpy
// (the journal text of every decision, and the front door's of every fact, is written here:
// 7.8% of a partition host's instructions went to to_text).
//
// The text goes to a buffer of the thread's, kept from one text to the next, and finish()
// appends it to the string: a string made long enough ahead was filled with zeros first
// (resize), and the fill and the string's growth were a third of to_text's samples (perf, 1.8%
// of all).
class TextWriter {
 public:
  // Writes a text for `out`; `expect` is a guess at its bytes.
  TextWriter(std::string& out, size_t expect) : out_(out), buffer_(claim()) {
    if (expect > buffer_.room) grow(expect);
  }
  ~TextWriter() {
    // The buffer is kept for the next text, up to a size that texts rarely reach.
    if (buffer_.room > kept_bytes) buffer_ = Buffer{};
    buffer_.busy = false;
  }
  // Appends the text written to the string (nothing is appended without it), with room for
  // `spare` more bytes after it.
  void finish(size_t spare = 0) {
    if (spare > 0) out_.reserve(out_.size() + n_ + spare);
    out_.append(buffer_.bytes.get(), n_);
  }
  TextWriter(const TextWriter&) = delete;
  TextWriter& operator=(const TextWriter&) = delete;

  template <size_t N>
  void literal(const char (&text)[N]) {  // a string literal, without its terminator
    std::memcpy(room(N - 1), text, N - 1);
    n_ += N - 1;
  }
  void put(char c) {
    *room(1) = c;
    ++n_;
  }
  void put(std::string_view text) {
    std::memcpy(room(text.size()), text.data(), text.size());
    n_ += text.size();
  }
  void quoted(std::string_view s) {
    if (plain_run(s, 0) != s.size()) {  // escapes or UTF-8 sequences to check: the general path
      std::string q;
      append_quoted(q, s);
      put(q);
      return;
    }
    char* at = room(s.size() + 2);
    at[0] = '"';
    std::memcpy(at + 1, s.data(), s.size());
    at[s.size() + 1] = '"';
    n_ += s.size() + 2;
  }
  template <typename Int>
  void integer(Int v) {
    n_ += write_integer(v, room(max_number_bytes));
  }
  void number(double x) { n_ += write_double(x, room(max_number_bytes)); }
  void time(int64_t ms) {
    char* at = room(max_rfc3339_bytes);
    n_ += write_rfc3339_ms(ms, at);
  }
  void value(const json& v) {
    switch (v.type()) {
      case json::value_t::object: {
        put('{');
        bool first = true;
        for (const auto& [key, member] : v.get_ref<const json::object_t&>()) {
          if (!first) put(',');
          first = false;
          quoted(key);
          put(':');
          value(member);
        }
        put('}');
        return;
      }
      case json::value_t::array: {
        put('[');
        bool first = true;
        for (const auto& item : v.get_ref<const json::array_t&>()) {
          if (!first) put(',');
          first = false;
          value(item);
        }
        put(']');
        return;
      }
      case json::value_t::string: return quoted(v.get_ref<const std::string&>());
      case json::value_t::boolean: return v.get<bool>() ? literal("true") : literal("false");
      case json::value_t::null: return literal("null");
      case json::value_t::number_integer: return integer(v.get<int64_t>());
      case json::value_t::number_unsigned: return integer(v.get<uint64_t>());
      case json::value_t::number_float: return number(v.get<double>());
      default: return put(v.dump());  // binary, discarded
    }
  }

 private:
  static constexpr size_t kept_bytes = 64 * 1024;
  struct Buffer {
    std::unique_ptr<char[]> bytes;
    size_t room = 0;
    bool busy = false;  // a writer is using it
  };
  // The thread's buffer, or this writer's own while another writer of the thread has that.
  Buffer& claim() {
    thread_local Buffer thread_buffer;
    Buffer& b = thread_buffer.busy ? own_ : thread_buffer;
    b.busy = true;
    return b;
  }
  char* room(size_t k) {
    if (n_ + k > buffer_.room) grow(std::max(2 * buffer_.room, n_ + k));
    return buffer_.bytes.get() + n_;
  }
  void grow(size_t room) {
    std::unique_ptr<char[]> bytes(new char[room]);  // not filled: only what is written is read
    if (n_ > 0) std::memcpy(bytes.get(), buffer_.bytes.get(), n_);
    buffer_.bytes = std::move(bytes);
    buffer_.room = room;
  }
  std::string& out_;
  Buffer own_;  // declared before buffer_, which may be it
  Buffer& buffer_;
  size_t n_ = 0;
};

}  // namespace

void append_json(std::string& out, const json& v) {
  TextWriter w(out, 64);
  w.value(v);
  w.finish();
}

namespace {
// The seq's key and value, as to_text(e) writes them and to_text(e, canonical) splices them in;
// the room a front-door text keeps for them: the key and up to 20 digits.
constexpr char seq_key[] = ",\"seq\":";
constexpr size_t seq_room = sizeof seq_key - 1 + 20;
}  // namespace

// The same text as to_json(e).dump() (keys in order), without copying `data` into a new tree.
std::string to_text(const Envelope& e) {
  std::string out;
  {
    // Room for the envelope's fields and a typical event's data: growing the buffer copies it.
    TextWriter w(out, 320 + e.id.size() + e.cause.size());
    w.put('{');
    if (!e.cause.empty()) {
      w.literal("\"cause\":");
      w.quoted(e.cause);
      w.put(',');
    }
    w.literal("\"data\":");
    w.value(e.data);
    w.literal(",\"id\":");
    w.quoted(e.id);
    if (e.seq) {
      w.literal(seq_key);
      w.integer(e.seq->value());
    }
    w.literal(",\"tenant\":");
    w.quoted(e.tenant);
    w.literal(",\"time\":\"");
    w.time(e.time_ms);
    w.literal("\",\"type\":");
    w.quoted(e.type);
    w.put('}');
    // A fact without a seq is the front door's text, which the journal takes with its seq
    // spliced in (to_text(e, canonical)): room for it here, where the string is allocated
    // anyway, spares the splice an allocation and a copy of the whole text.
    w.finish(!e.seq && e.cause.empty() ? seq_room : 0);
  }
  return out;
}

std::string to_text(const Envelope& e, std::string canonical) {
  // The seq goes before the top-level "tenant" key, the last unescaped `,"tenant":` in the
  // text: only the tenant, time and type values follow it, and quotes in them are escaped.
  static constexpr std::string_view tenant_key = ",\"tenant\":";
  // Where it is when the tenant and type need no escapes (a valid tenant never does) and the
  // time has 24 characters (years 0-9999): checked, and searched for otherwise. A time is never
  // shorter, so a wrong guess lands right of the key, among the values that follow it, where
  // no unescaped `,"tenant":` is.
  const size_t tail = tenant_key.size() + e.tenant.size() + 2 + std::string_view(",\"time\":\"").size() + 24 +
                      std::string_view("\",\"type\":\"").size() + e.type.size() + 2;
  size_t at = canonical.size() >= tail ? canonical.size() - tail : std::string_view::npos;
  if (at == std::string_view::npos || canonical.compare(at, tenant_key.size(), tenant_key) != 0)
    at = canonical.rfind(tenant_key);
  if (!e.seq || !e.cause.empty() || at == std::string_view::npos) return to_text(e);
  constexpr size_t key_len = sizeof seq_key - 1;
  char n[key_len + max_number_bytes];
  std::memcpy(n, seq_key, key_len);
  const size_t n_len = key_len + write_integer(e.seq->value(), n + key_len);
  canonical.insert(at, n, n_len);  // in the room the front door left, moving only the tail
  return canonical;
}

}  // namespace omniroute::events
