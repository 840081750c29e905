// The routing domain of one tenant: queues, agents and conversations, the rules that match
// them, and the timers that move them on. Plain C++: no actor, storage or broker types, so it
// is tested and benchmarked directly. The partition host actor holds one Tenant per tenant of
// its partition. docs/routing.md describes the behaviour; this header states the contracts.
//
// Contract: handle() decides; apply() changes state. handle() changes state only by calling
// apply() on the fact and on each decision it takes, so feeding the journal to apply() (replay)
// rebuilds exactly the state that handle() left, without deciding anything again.
//
// Time: the tenant's clock is the latest time of any journal entry it has applied. It never
// reads the wall clock. Timers (offer expiry, relaxation steps, wrap-up limits, missed
// heartbeats, the end of a reopened conversation's preference for its last agent) fire when
// the clock reaches them: before a fact of a later time is handled, or on a `clock.tick` fact
// (which the partition host sends when a timer is due, and which anyone may send).
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "actors/arbitration.hpp"
#include "actors/journey.hpp"
#include "actors/touched_ids.hpp"
#include "events/envelope.hpp"
#include "events/expression.hpp"
#include "events/id_map.hpp"
#include "events/ring.hpp"

namespace omniroute::events {
struct Appender;
struct Unpacker;
}  // namespace omniroute::events

namespace omniroute::routing {

using events::Envelope;
using events::json;
using events::object_of;

// Whether `s` begins with `prefix`: for a literal prefix, compared inline (rfind(prefix, 0)
// called into the library, and memcmp from there).
inline bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}
// The fact types about an agent, and about a conversation (its offers included), by prefix:
// for checking a fact and for applying it alike.
inline bool is_agent_fact(std::string_view type) { return starts_with(type, "agent."); }
inline bool is_conversation_fact(std::string_view type) {
  return starts_with(type, "conversation.") || starts_with(type, "offer.");
}

// What a fact led to, in journal order: the decisions of timers that fell due before it, the
// fact itself, then its decisions. Every envelope carries its seq; decisions carry the fact's
// id as their cause. When the fact is refused, `refused` is true, `fact` is empty and the last
// entry is an `event.refused` decision naming the field and the reason.
struct Outcome {
  bool refused = false;
  std::optional<size_t> fact;  // index of the fact in `entries`
  std::vector<Envelope> entries;
};

// The entities whose views changed since the last take_touched(), and the new decision and
// outcome documents of arbitration.
struct Touched {
  // Sorted, each once (touched_ids.hpp). Queues are few: a hash set.
  std::vector<std::string> conversations, agents;
  std::unordered_set<std::string> queues;
  // The stored documents of touched conversations that memory no longer holds (closed more
  // than a day before a later entry of the same round), by id: to be written before those of
  // `conversations` (an id may have started anew since).
  std::map<std::string, std::string> forgotten_conversations;
  journey::Journeys::Changes journeys;
  arbitration::ArbitrationTouched arbitration;
  bool empty() const {
    return conversations.empty() && agents.empty() && queues.empty() &&
           forgotten_conversations.empty() && journeys.customers.empty() &&
           journeys.visits.empty() && journeys.forgotten.empty() && arbitration.policies.empty() &&
           arbitration.decisions.empty() && arbitration.outcomes.empty();
  }
};

enum class conversation_state { bot, queued, offered, assigned, wrap_up, closed };
const char* to_string(conversation_state s);

// A queue's contacts of one day (UTC, by the tenant's clock), counted when they happen:
// offered when they enter the queue, answered or abandoned with their wait, handled at close.
struct DayStats {
  int64_t day = 0;  // days since 1970-01-01
  int64_t offered = 0, answered = 0, abandoned = 0, answered_within_threshold = 0,
          abandoned_within_threshold = 0, answer_wait_ms = 0, handled = 0, handle_ms = 0;
  // answered within threshold / (answered + abandoned after the threshold); nullopt with no
  // contact yet. Contacts abandoned within the threshold count neither way.
  std::optional<double> service_level() const;
  json to_json() const;
};

// A queue's live figures, for the queue view and metrics.
struct QueueStats {
  size_t waiting = 0;
  double oldest_wait_s = 0;
  size_t agents_available = 0;  // available, logged in, with a free slot on a queue channel
  int64_t free_slots = 0;       // those agents' free slots on the queue's channels
  DayStats today;
};

class Tenant {
 public:
  // A queue view lists at most this many of its waiting conversations (the first in line);
  // the count is complete.
  static constexpr size_t view_list_limit = 20;

  explicit Tenant(std::string name) : name_(std::move(name)) {}

  // Decides what a validated fact causes. The fact is refused (state unchanged but for the
  // tenant's seq) when it names an unknown or closed entity, a stale or expired offer, or is
  // older than the last event of the entity it concerns. A conversation closed more than 24
  // hours (event time) before is forgotten: its id is unknown again, and may start anew.
  Outcome handle(Envelope fact);

  // Refuses a fact that failed validation before it reached the domain (e.g. one written to
  // a Kafka ingest topic by another producer): an `event.refused` decision, applied.
  Envelope refuse(const std::string& id, const std::string& type, int64_t time_ms,
                  const std::string& field, const std::string& reason);

  // Applies a journal entry (fact, decision or refusal) without deciding anything.
  void apply(const Envelope& e);

  // The earliest time a timer is due, if any (a `clock.tick` at or after it fires it).
  std::optional<int64_t> next_deadline();
  // The tenant's clock: the latest time of any entry applied (ms since the epoch).
  int64_t clock_ms() const { return clock_ms_; }

  // Views as JSON documents (the projections store them); nullopt for an unknown id. The
  // documents written for every event are stored compact: *_doc writes one's stored form
  // into `out` (false for an unknown id), *_text is its JSON text and *_view that text parsed.
  bool conversation_doc(const std::string& id, events::CompactDoc& out) const;
  std::optional<std::string> conversation_text(const std::string& id) const;
  std::optional<json> conversation_view(const std::string& id) const;
  bool agent_doc(const std::string& id, events::CompactDoc& out) const;
  std::optional<std::string> agent_text(const std::string& id) const;
  std::optional<json> agent_view(const std::string& id) const;
  std::optional<json> queue_view(const std::string& id) const;
  // A customer's view (profile, journey features; its conversations are in
  // Touched::journeys.visits) and an arbitration policy in force (docs/arbitration.md).
  bool customer_doc(const std::string& id, events::CompactDoc& out) const { return journeys_.view_doc(id, out); }
  std::optional<std::string> customer_text(const std::string& id) const { return journeys_.view_text(id); }
  std::optional<json> customer_view(const std::string& id) const { return journeys_.view(id); }
  std::optional<json> policy_view(const std::string& id) const { return arbiter_.policy_view(id); }
  bool visit_doc(const std::string& customer, const std::string& conversation, std::string& key,
                 events::CompactDoc& out) const {
    return journeys_.visit_doc(customer, conversation, key, out);
  }
  std::optional<std::pair<std::string, std::string>> visit_text(const std::string& customer,
                                                                const std::string& conversation) const {
    return journeys_.visit_text(customer, conversation);
  }
  std::optional<std::pair<std::string, json>> visit_view(const std::string& customer,
                                                         const std::string& conversation) const {
    return journeys_.visit_view(customer, conversation);
  }

  Touched take_touched();
  // Packs the conversation if it is closed (PackedConversation): for a caller that has just
  // written its view, as the partition host does for each conversation take_touched() gives.
  void pack_if_closed(const std::string& id);
  // The same for a customer's visit of a conversation (Journeys::pack_if_closed), for each visit
  // take_touched() gives.
  void pack_visit_if_closed(const std::string& customer, const std::string& conversation) {
    journeys_.pack_if_closed(customer, conversation);
  }
  // How many visits memory holds packed, of all it holds.
  std::pair<size_t, size_t> packed_visits() const { return journeys_.packed_visits(); }
  // Fetches ahead what deciding `fact` looks up in tables larger than the caches, in stages
  // (PartitionProcessor: each stage over a few facts, before the first is decided; a stage may
  // read what the stage before fetched): 0 the slots of its conversation, open and packed, 1
  // the conversation, then its customer's (named by the fact, or the conversation's) slot, the
  // customer and the latest visits (Journeys::prefetch_visit; a customer the fact names from
  // stage 0 on, with the visit's detail after). Takes the fact's `conversation` and `customer`
  // (empty when it names none), read from its data once for every stage (each stage read them
  // again: 0.7% of all samples, in JSON lookups).
  static constexpr int fact_stages = 5;
  void prefetch(const std::string& conversation, const std::string& customer, int stage) const;
  // Fetch ahead (events::fetching_ahead) what writing the documents of take_touched()'s entities
  // reads: a conversation's (stage 0 its slots, open and packed, 1 the conversation), and a
  // customer's and a visit's (Journeys::prefetch_customer, prefetch_visit).
  static constexpr int conversation_stages = 2;
  void prefetch_conversation(const std::string& id, int stage) const;
  void prefetch_customer(const std::string& id, int stage) const { journeys_.prefetch_customer(id, stage); }
  void prefetch_visit(const journey::Journeys::VisitId& v, int stage) const {
    journeys_.prefetch_visit(v.first, v.second, stage);
  }
  seq_no next_seq() const { return seq_no{next_seq_}; }
  const std::string& name() const { return name_; }

  // For metrics: live figures of the configured queues among `ids`, agents per status.
  std::map<std::string, QueueStats> queue_stats(const std::set<std::string>& ids) const;
  std::map<std::string, size_t> agents_by_status() const;
  // The ids of the configured queues and of the agents known, in order.
  std::vector<std::string> queue_ids() const;
  std::vector<std::string> agent_ids() const;
  // How many closed conversations memory holds packed (PackedConversation), of all it holds.
  size_t packed_conversations() const { return packed_.size(); }
  size_t conversations_in_memory() const { return conversations_.size() + packed_.size(); }

  // The whole state, written for a snapshot (actors/snapshot.hpp), and read back into a new
  // tenant of the same name: restored, it decides and renders as the tenant saved did. Between
  // projections only (after take_touched(), with nothing touched since): what a projection
  // takes is not written. restore() throws std::out_of_range or json's exceptions on bytes
  // save() did not write.
  void save(events::Appender& out) const;
  void restore(events::Unpacker& in);
  // The sizes of the state's structures: a snapshot is read only by a build where they are
  // what they were when it was written (a member added must be saved too: see save()).
  static std::string layout();

 private:
  // Waiting order in a queue: higher priority first, then the longer wait, then journal order.
  using wait_key = std::tuple<int, int64_t, uint64_t, std::string>;
  enum class timer_kind { offer, relax, wrap_up, preference, heartbeat };
  using timer = std::tuple<int64_t, timer_kind, std::string>;  // (due, kind, entity id)
  enum class strategy { longest_idle, least_occupied, most_proficient, round_robin };

  struct Conversation {
    std::string id, customer, channel, language, queue, agent, offer, intent;
    std::string last_agent, preferred_agent, handoff_reason;
    // The latest arbitration: its decision, the chosen action and what it asked of routing.
    std::string decision, action, arbitrated_queue;
    bool keep_with_bot = false;
    conversation_state state = conversation_state::bot;
    int priority = 0;
    size_t relax_step = 0;  // relaxation steps of its current queue that have fired
    double confidence = -1;
    int64_t started_ms = 0, enqueued_ms = -1, queue_entered_ms = -1, offer_expires_ms = 0,
            answered_ms = -1, wrap_up_due_ms = -1, preferred_until_ms = -1, closed_ms = -1,
            last_ms = 0;
    uint64_t order = 0;
    uint64_t touched = 0;  // the round of touched_conversations_ it was last added in
    std::set<std::string> declined_by, missed_by;  // not offered to these agents again
    json attributes = json::object();
    wait_key key() const { return {-priority, enqueued_ms, order, id}; }
  };
  struct Agent {
    std::string id, status = "offline";
    bool logged_in = false;
    std::map<std::string, int> capacity, load;
    std::map<std::string, std::vector<std::string>> blocks;  // slot -> slots its work blocks
    std::vector<std::string> queues;
    std::vector<int64_t> free_in;  // its free slots counted in each of `queues`
    std::set<std::string> work;  // conversations offered to, assigned to or wrapping up with it
    json skills = json::object(), attributes = json::object();
    int missed_offers = 0;  // in a row
    int64_t last_assigned_ms = 0, last_heartbeat_ms = 0, heartbeat_timeout_ms = 0, last_ms = 0;
    int64_t ready_ms = 0;  // the last_assigned_ms queue_ready_ holds it under, where it does
    uint64_t touched = 0;  // the round of touched_agents_ it was last added in
  };
  struct RelaxStep {
    int64_t after_ms = 0;
    std::optional<expr::Expression> requirement;
    std::string overflow_to;
  };
  struct Queue {
    json config = json::object();
    std::vector<std::string> channels;
    expr::Expression requirement;
    std::vector<RelaxStep> relax;
    strategy how = strategy::longest_idle;
    std::string skill;  // for most_proficient
    bool auto_accept = false;
    int priority = 0, no_answer_limit = 3;
    double handoff_below_confidence = 0;
    int64_t offer_timeout_ms = 30000, sl_threshold_ms = 20000, wrap_up_ms = 0,
            reopen_window_ms = 24 * 3600 * 1000, reopen_preference_ms = 60000;
    std::set<wait_key> waiting;
    // The same, per channel: an agent with a free slot for some channels looks at those only.
    std::map<std::string, std::set<wait_key>> waiting_by_channel;
    size_t waiting_for_an_agent = 0;  // waiting conversations that prefer one agent (reopened)
    int64_t free_slots = 0, agents_available = 0;  // kept by touch_agent
    std::string last_offered_agent;  // round robin goes on after it
    DayStats today;
  };

  // Deciding (routing.cpp).
  // When a decision caused by `cause` happens: the fact's time, or the clock when the fact
  // comes from further back (a late event of one entity cannot make another's timer old).
  int64_t now(const Envelope& cause) const { return std::max(cause.time_ms, clock_ms_); }
  Envelope decision(const Envelope& cause, const char* type, json data);
  std::optional<std::pair<std::string, std::string>> check(const Envelope& fact) const;
  void advance(const Envelope& cause, std::vector<Envelope>& out);
  void fire(const Envelope& cause, const timer& t, std::vector<Envelope>& out);
  void decide(const Envelope& fact, std::vector<Envelope>& out);
  // Writes an `arbitration.decided` for the conversation's intent when a policy decides it;
  // returns whether it did.
  bool arbitrate(const Envelope& cause, Conversation& c, std::vector<Envelope>& out);
  // The queue a conversation goes to when it leaves the bot: arbitration's, else its own.
  const std::string& target_queue(const Conversation& c) const {
    return c.arbitrated_queue.empty() ? c.queue : c.arbitrated_queue;
  }
  void enqueue(const Envelope& cause, Conversation& c, const std::string& queue,
               std::vector<Envelope>& out, json extra = json::object());
  void dispatch_conversation(const Envelope& cause, const std::string& conversation,
                             std::vector<Envelope>& out);
  void dispatch_agent(const Envelope& cause, const std::string& agent, std::vector<Envelope>& out);
  void requeue_offers_of(const Envelope& cause, const std::string& agent,
                         std::vector<Envelope>& out);
  void offer(const Envelope& cause, Conversation& c, const Agent& a, std::vector<Envelope>& out);
  const Agent* choose_agent(const Conversation& c, const Queue& q) const;
  // Requirement results for one agent that do not depend on the conversation, by expression.
  using requirement_cache = std::vector<std::pair<const expr::Expression*, bool>>;
  bool eligible(const Agent& a, const Conversation& c, const Queue* q,
                requirement_cache* cache = nullptr) const;
  bool ready(const Agent& a) const;
  bool has_any_free_slot(const Agent& a) const;  // ready, with a slot free on some channel
  bool has_free_slot(const Agent& a, const std::string& channel) const;
  const expr::Expression& requirement_of(const Conversation& c, const Queue& q) const;
  bool timer_due(const timer& t) const;
  // The queue's live figures.
  QueueStats queue_stats_of(const std::string& id) const;

  // Applying (routing_state.cpp).
  static std::string slot_of(const Agent& a, const std::string& channel);
  void touch_agent(Agent& a);
  int64_t free_for(const Agent& a, const Queue& q) const;
  void contribute(Agent& a, size_t queue_index, int64_t free_slots);
  void set_status(Agent& a, const std::string& status);
  void reserve(Agent& a, Conversation& c);
  void release(Conversation& c);
  void unwait(Conversation& c);
  void wait(Conversation& c);
  // Changes what decides a conversation's place in its queue (priority, agent preference),
  // keeping it waiting if it was.
  template <typename Change>
  void rewait(Conversation& c, Change change) {
    const bool waiting = c.state == conversation_state::queued;
    if (waiting) unwait(c);
    change();
    if (waiting) wait(c);
  }
  void schedule_relax(const Conversation& c);
  void apply_queue_config(const Envelope& e);
  // Sets what a queue's configuration `d` decides of it (all but its waiting, agents and day).
  static void configure(Queue& q, const json& d);
  void apply_agent_fact(const Envelope& e);
  void apply_conversation_fact(const Envelope& e);
  void apply_decision(const Envelope& e);
  void apply_arbitration(const Envelope& e, Conversation& c);
  // The customer a journal entry concerns, or empty.
  const std::string& customer_of(const Envelope& e) const;
  DayStats& today(const std::string& queue, int64_t time_ms);

  // Closed conversations leave memory (not the views) this long after closing, by event
  // time, so replay evicts exactly what live processing evicted.
  static constexpr int64_t closed_retention_ms = 24 * 3600 * 1000;
  void evict_closed_before(int64_t time_ms);

  std::string name_;
  uint64_t next_seq_ = 0;
  int64_t clock_ms_ = 0;
  // The decisions handle() is taking, empty between facts; its room is kept (a new vector
  // for each fact grew 1, 2, 4, moving the envelopes at each step: perf, 0.5% of all samples).
  std::vector<Envelope> decisions_;
  // (closed at, conversation), in order. A ring, not a deque: an empty one allocates nothing
  // (libstdc++'s deque allocates its map and a 512-byte block as it is made, a third of an
  // empty tenant's memory).
  Ring<std::pair<int64_t, std::string>> closed_;
  // Looked up by id only (id_map.hpp); every iteration that decides something goes through
  // ordered sets. Mutable, as packed_ is: finding a packed conversation unpacks it.
  mutable IdMap<Conversation> conversations_;
  // A closed conversation as memory keeps it once its closed view is written (pack_if_closed)
  // until it is evicted or looked up: its id, its latest event's time (eviction compares it)
  // and every other member packed into one string (pack()). A Conversation is 680 bytes (768
  // allocated) and more allocations; the benchmark's packed: 72 bytes of entry and 77-81 of
  // members. Nothing but memory tells them apart: find_conversation() unpacks one back into
  // conversations_, member for member, and the next take_touched() packs it again if it is
  // still closed and untouched (touched, its view is written and packed after).
  struct PackedConversation {
    std::string id;
    int64_t last_ms = 0;
    std::string members;
  };
  mutable IdMap<PackedConversation> packed_;
  mutable std::vector<std::string> unpacked_;  // since the last take_touched()
  static std::string pack(const Conversation& c);
  static void unpack(std::string_view members, Conversation& c);
  // A conversation's view document, into `v`; and its stored form, or a view_error document
  // naming what its rendering threw (as project_touched() writes one).
  void write_view(const Conversation& c, events::CompactDoc& v) const;
  std::string stored_view(const Conversation& c) const;
  // The conversation with this id (unpacked if it was packed), or null; conversation_at
  // throws std::out_of_range instead, as the map's at() does.
  Conversation* find_conversation(const std::string& id) const;
  Conversation& conversation_at(const std::string& id);
  std::unordered_map<std::string, Agent> agents_;
  std::map<std::string, Queue> queues_;
  std::map<std::string, std::set<std::string>> queue_agents_;  // queue -> logged-in agents listing it
  // queue -> its agents that are available with a free slot, longest idle first (last
  // assigned, then id): where dispatch looks, and for the default strategy the first eligible
  // one is the answer.
  std::map<std::string, std::set<std::pair<int64_t, std::string>>> queue_ready_;
  std::map<std::string, size_t> status_counts_;
  std::set<timer> timers_;  // may hold timers no longer due; timer_due() tells
  journey::Journeys journeys_;
  arbitration::Arbiter arbiter_;
  Touched touched_;  // but conversations and agents, taken from:
  TouchedIds<std::string> touched_conversations_, touched_agents_;
};

}  // namespace omniroute::routing
