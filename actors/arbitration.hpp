// Intent arbitration: for a customer's intent, the action best for both the company and the
// customer, chosen under the policies in force and explained. Plain C++ (no actor, storage or
// broker types); the routing tenant holds one Arbiter and feeds it the journal.
// docs/arbitration.md describes the policy document, the stages and the score.
//
// Contract: decide() is a pure function of the state and the request; apply() changes state
// (policies in force, learned propensities, contact history, decisions awaiting an outcome)
// from journal entries only, so replay rebuilds it exactly.
//
// The score of a candidate that passes every stage:
//
//   score = propensity x (w_company x company_value + w_customer x customer_value)
//                      x context_weight x levers
//
// propensity is the mean of its Beta posterior: (prior_alpha + accepted) /
// (prior_alpha + prior_beta + accepted + refused), counted from `arbitration.outcome` events
// per action (and per segment when the policy learns by segment); context_weight is the product
// of the weights of its context rules that hold; levers is the product of its named levers.
// The highest score wins; a tie goes to the candidate listed first (policies by id, actions in
// document order).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "events/envelope.hpp"
#include "events/policy.hpp"

namespace omniroute::events {
struct Appender;
struct Unpacker;
}  // namespace omniroute::events

namespace omniroute::arbitration {

using events::Envelope;
using events::json;

struct Request {
  std::string conversation, customer, intent;
  int64_t time_ms = 0;
  // The subjects of the policies' conditions: customer, conversation, intent.
  const expr::Subject* subjects[3] = {nullptr, nullptr, nullptr};
  // Why an action's routing cannot be carried out for this conversation (an unknown queue, a
  // queue without its channel), or empty when it can. Unset: every action can.
  std::function<std::string(const policy::Action&)> routing_check;
};

// The views arbitration changed since the last take: policy documents with their learned
// propensities (by id), and new decision and outcome documents (by decision id).
struct ArbitrationTouched {
  std::set<std::string> policies;
  std::map<std::string, json> decisions, outcomes;
};

class Arbiter {
 public:
  // Decisions wait this long (event time) for their outcome; a later outcome is refused.
  static constexpr int64_t outcome_window_ms = 30LL * 24 * 3600 * 1000;

  // Whether a policy in force decides `intent`.
  bool decides(const std::string& intent) const { return by_intent_.count(intent) > 0; }

  // The data of the `arbitration.decided` for the request: every candidate of every policy that
  // decides the intent, with its score breakdown or the stage and rule that filtered it; the
  // values the rules saw; the chosen action (null when every candidate was filtered), with
  // its routing and platform parts. Requires decides(r.intent).
  json decide(const Request& r) const;

  // Why an `arbitration.outcome` fact cannot be taken, as (field, reason); nullopt if it can.
  std::optional<std::pair<std::string, std::string>> check_outcome(const Envelope& f) const;

  // Applies `policy.published`, `arbitration.decided` and `arbitration.outcome`; ignores
  // anything else but the passing of time.
  void apply(const Envelope& e);

  // A policy in force: its document, version (the seq of its publication) and the learned
  // propensity of each action per segment.
  std::optional<json> policy_view(const std::string& id) const;
  ArbitrationTouched take_touched() { return std::exchange(touched_, {}); }

  // One line per candidate, in words, for the decision view.
  static std::vector<std::string> explain(const json& decided);

  // The whole state for a snapshot, and back into an empty arbiter (Tenant::save, restore):
  // between projections only (nothing touched). layout(): the sizes the bytes depend on.
  void save(events::Appender& out) const;
  void restore(events::Unpacker& in);
  static std::string layout();

 private:
  // A path some rule of a policy reads, e.g. ("customer.credit", customer, {"credit"}).
  struct Input {
    std::string name;
    size_t root = 0;
    std::vector<std::string> segments;
  };
  struct InForce {
    policy::Policy policy;
    json document;
    uint64_t version = 0;
    int64_t published_ms = 0;
    std::vector<Input> inputs;  // every path its rules read, each once, in order of appearance
  };
  struct Tally {
    int64_t accepted = 0, refused = 0;
    double value = 0;  // sum of the outcomes' values
  };
  struct DecisionRef {
    std::string policy, action, segment, customer;
    int64_t time_ms = 0;
    bool has_outcome = false;
  };
  // One customer's contacts with one action.
  struct History {
    std::deque<int64_t> given;  // when it was chosen, oldest first
    int refusals_in_a_row = 0;
    int64_t suppressed_until_ms = -1;
  };

  // An action's Beta posterior in a learning segment: its prior plus the outcomes counted.
  struct Posterior {
    Tally tally;
    double alpha = 1, beta = 1;
    double mean() const { return alpha / (alpha + beta); }
  };
  // A policy in force from its published document (parsed), as `policy.published` at `seq`
  // and `time_ms` made it.
  static InForce in_force(policy::Policy parsed, json document, uint64_t version,
                          int64_t published_ms);
  Posterior posterior(const std::string& policy, const policy::Action& a,
                      const std::string& learning_segment) const;
  static std::string tally_key(const std::string& policy, const std::string& action,
                               const std::string& segment);
  static std::string learning_segment(const policy::Policy& p, const std::string& segment);
  json score(const InForce& f, const policy::Action& a, const std::string& segment,
             const Request& r) const;
  std::optional<json> contact_filter(const policy::Action& a, const std::string& policy,
                                     const Request& r) const;
  void sweep(int64_t time_ms);

  std::map<std::string, InForce> policies_;
  std::map<std::string, std::set<std::string>> by_intent_;  // intent -> policy ids
  std::unordered_map<std::string, Tally> tallies_;
  std::unordered_map<std::string, DecisionRef> decisions_;  // awaiting an outcome
  // customer -> "policy/action" -> history
  std::unordered_map<std::string, std::map<std::string, History>> history_;
  ArbitrationTouched touched_;
  int64_t swept_day_ = -1;
};

}  // namespace omniroute::arbitration
