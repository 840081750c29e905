// The arbitration policy document that `policy.published` carries (docs/arbitration.md): what
// a tenant may do for a customer's intent, and how each action is judged. Parsed, validated
// and compiled here, because the document is part of the public event contract: a policy that
// does not parse is refused at the front door, with the place and the reason.
//
// Conditions are expressions of the requirement language (events/expression.hpp) over three
// subjects: `customer.*` (CRM attributes and journey features), `conversation.*` and
// `intent.*` (name, confidence, source).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "events/json.hpp"

#include "events/expression.hpp"
#include "events/types.hpp"

namespace omniroute::policy {

using json = events::json;

// The subjects of a policy's conditions, in the order evaluate() receives them.
const std::vector<std::string>& roots();
enum root_index : size_t { customer_root = 0, conversation_root = 1, intent_root = 2 };

// The names under `customer.*` that omniroute provides itself (a CRM attribute may not use
// them): id, the journey features contacts_7d, contacts_30d, repeat_contact_24h, mean_csat,
// open_conversations, last_channel, and `attributes` (the CRM attributes as one object).
const std::vector<std::string>& customer_features();

struct ContextWeight {
  expr::Expression when;
  double weight = 1;
};

// How often the customer may be given the action: at most `max` times per `per_ms`, and not
// at all for `suppress_ms` after `suppress_after_refusals` refusals within that period.
struct ContactPolicy {
  int max = 0;  // 0: no limit
  int64_t per_ms = 0;
  int suppress_after_refusals = 0;  // 0: never suppressed
  int64_t suppress_ms = 0;
};

struct Action {
  std::string name;
  // The three rule stages, in the order they filter: may the customer have it at all; does
  // it fit this conversation and intent; is it right for this customer. Empty: always true.
  expr::Expression eligibility, applicability, suitability;
  ContactPolicy contact;
  double company_value = 0, customer_value = 0;
  double prior_alpha = 1, prior_beta = 1;  // propensity prior Beta(alpha, beta)
  std::vector<ContextWeight> context;
  std::vector<std::string> levers;  // names of the policy's levers that multiply its score
  // What it does to routing, if anything: a new priority, a target queue, or keep the
  // conversation with the bot (self-service).
  std::optional<int> priority;
  std::string queue;
  bool keep_with_bot = false;
  json platform;  // what the platform carries out (waive a fee, send a message); any JSON
  json routing_json() const;
};

struct Segment {
  std::string name;
  expr::Expression when;
};

struct Policy {
  std::string id;
  std::vector<std::string> intents;  // the intents it decides
  double w_company = 1, w_customer = 1;
  std::vector<Segment> segments;  // first match; "default" when none matches
  bool learn_by_segment = false;  // one propensity per action and segment, else per action
  std::map<std::string, double> levers;
  std::vector<Action> actions;
};

// Where a document is wrong: a path inside it ("actions[1].suitability") and the reason.
struct policy_error {
  std::string field;
  std::string reason;
  std::string message() const { return field.empty() ? reason : field + ": " + reason; }
};

// Parses and compiles a policy document. Unknown keys are refused (a misspelt rule must not
// pass silently as "always true").
result<Policy, policy_error> parse(const json& doc);

}  // namespace omniroute::policy
