// The routing domain of one tenant: queues, agents and conversations, and the rule that
// matches them. Plain C++: no actor, storage or broker types, so it is tested and benchmarked
// directly. The partition host actor holds one Tenant per tenant of its partition.
//
// Contract: handle() decides; apply() changes state. handle() changes state only by calling
// apply() on the fact and on each decision it takes, so feeding the journal to apply() (replay)
// rebuilds exactly the state that handle() left, without deciding anything again.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "events/envelope.hpp"

namespace omniroute::routing {

using events::Envelope;
using events::json;

// What a fact led to, in journal order. Every envelope carries its seq; decisions carry the
// fact's id as their cause. When the fact is refused, `refused` is true and `entries` holds
// one `event.refused` decision naming the field and the reason.
struct Outcome {
  bool refused = false;
  std::vector<Envelope> entries;
};

// The entities whose views changed since the last take_touched().
struct Touched {
  std::set<std::string> conversations, agents, queues;
  bool empty() const { return conversations.empty() && agents.empty() && queues.empty(); }
};

enum class conversation_state { bot, queued, offered, assigned, wrap_up, closed };
const char* to_string(conversation_state s);

class Tenant {
 public:
  explicit Tenant(std::string name) : name_(std::move(name)) {}

  // Decides what a validated fact causes. The fact is refused (state unchanged but for the
  // tenant's seq) when it names an unknown or closed entity, a stale offer, or is older than
  // the last event of the entity it concerns. A conversation closed more than 24 hours (event
  // time) before is forgotten: its id is unknown again, and may start a new conversation.
  Outcome handle(Envelope fact);

  // Refuses a fact that failed validation before it reached the domain (e.g. one written to
  // a Kafka ingest topic by another producer): an `event.refused` decision, applied.
  Envelope refuse(const std::string& id, const std::string& type, int64_t time_ms,
                  const std::string& field, const std::string& reason);

  // Applies a journal entry (fact, decision or refusal) without deciding anything.
  void apply(const Envelope& e);

  // Views as JSON documents (the projections store them); nullopt for an unknown id.
  std::optional<json> conversation_view(const std::string& id) const;
  std::optional<json> agent_view(const std::string& id) const;
  std::optional<json> queue_view(const std::string& id) const;

  Touched take_touched() { return std::exchange(touched_, Touched{}); }
  seq_no next_seq() const { return seq_no{next_seq_}; }
  const std::string& name() const { return name_; }

  // For metrics: conversations waiting per queue, agents per status.
  std::map<std::string, size_t> queue_depths() const;
  std::map<std::string, size_t> agents_by_status() const;

 private:
  // Waiting order in a queue: higher priority first, then the longer wait, then journal order.
  using wait_key = std::tuple<int, int64_t, uint64_t, std::string>;

  struct Conversation {
    std::string id, customer, channel, queue, agent, offer, intent;
    conversation_state state = conversation_state::bot;
    int priority = 0;
    int64_t started_ms = 0, enqueued_ms = -1, offer_expires_ms = 0, last_ms = 0;
    uint64_t order = 0;
    std::set<std::string> declined_by;
    json attributes = json::object();
    wait_key key() const { return {-priority, enqueued_ms, order, id}; }
  };
  struct Agent {
    std::string id, status = "offline";
    bool logged_in = false;
    std::map<std::string, int> capacity, load;
    std::vector<std::string> queues;
    std::set<std::string> work;  // conversations offered to, assigned to or wrapping up with it
    json skills = json::object(), attributes = json::object();
    int64_t last_assigned_ms = 0, last_heartbeat_ms = 0, last_ms = 0;
  };
  struct Queue {
    json config = json::object();
    std::vector<std::string> channels;
    bool auto_accept = false;
    int priority = 0;
    int64_t offer_timeout_ms = 30000;
    std::set<wait_key> waiting;
  };

  Envelope decision(const Envelope& fact, const char* type, json data);
  std::optional<std::pair<std::string, std::string>> check(const Envelope& fact) const;
  void decide(const Envelope& fact, std::vector<Envelope>& out);
  void dispatch_queue(const Envelope& fact, const std::string& queue, std::vector<Envelope>& out);
  void dispatch_agent(const Envelope& fact, const std::string& agent, std::vector<Envelope>& out);
  void requeue_offers_of(const Envelope& fact, Agent& a, std::vector<Envelope>& out);
  void offer(const Envelope& fact, Conversation& c, const Agent& a, std::vector<Envelope>& out);
  bool eligible(const Agent& a, const Conversation& c) const;
  bool has_free_slot(const Agent& a, const std::string& channel) const;
  std::string slot_of(const Agent& a, const std::string& channel) const;
  void reserve(Agent& a, Conversation& c);
  void release(Conversation& c);
  void touch_agent(const Agent& a);
  void apply_fact(const Envelope& e);
  void apply_decision(const Envelope& e);

  // Closed conversations leave memory (not the views) this long after closing, by event
  // time, so replay evicts exactly what live processing evicted.
  static constexpr int64_t closed_retention_ms = 24 * 3600 * 1000;
  void evict_closed_before(int64_t time_ms);

  std::string name_;
  uint64_t next_seq_ = 0;
  std::deque<std::pair<int64_t, std::string>> closed_;  // (closed at, conversation), in order
  // Looked up by id only; every iteration that decides something goes through ordered sets.
  std::unordered_map<std::string, Conversation> conversations_;
  std::unordered_map<std::string, Agent> agents_;
  std::map<std::string, Queue> queues_;
  std::map<std::string, std::set<std::string>> queue_agents_;  // queue -> agents listing it
  Touched touched_;
};

}  // namespace omniroute::routing
