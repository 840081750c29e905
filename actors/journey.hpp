// The customer's journey across channels (the 360 view): every conversation of a customer in
// order, with its channel, queues, intent, agents, waits, outcome, CSAT and the decisions taken,
// the CRM attributes sent as `customer.profile_updated`, and features derived from them. Plain
// C++, fed journal entries by the routing tenant (which knows each conversation's customer).
//
// Views: one document per customer (profile and features) and one per conversation of the
// customer (keyed so that a customer's conversations sort by start), so that an event rewrites
// what it changed, not the whole history. The views keep every conversation.
//
// Memory, by event time so that replay keeps exactly what live processing kept: a customer's
// latest `visit_limit` conversations of the last 30 days (open ones are kept whatever their
// age), from which the features are computed. Once a day (the first entry of a new UTC day)
// customers with no open conversation, no conversation in 30 days and no CRM attributes are
// forgotten; their views stay in the store.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "actors/touched_ids.hpp"
#include "events/compact_doc.hpp"
#include "events/envelope.hpp"
#include "events/expression.hpp"
#include "events/id_map.hpp"
#include "events/ring.hpp"

namespace omniroute::events {
struct Appender;
struct Unpacker;
}  // namespace omniroute::events

namespace omniroute::journey {

using events::Envelope;
using events::json;
using events::object_of;

// Derived from a journey as of a moment (policy::customer_features() names them).
struct Features {
  int64_t contacts_7d = 0, contacts_30d = 0;  // conversations started in the period
  bool repeat_contact_24h = false;  // the latest started within 24 h of the end of the one before
  std::optional<double> mean_csat;  // over the journey's conversations that have one
  int64_t open_conversations = 0;
  std::string last_channel;  // of the latest conversation
  void add_to(events::CompactDoc& o) const;  // its fields, to an object being written
  json to_json() const;
};

// A decision taken in a conversation, as a journey lists it: its id, type, time, and the one
// detail worth showing (the queue, the agent, the action), if any. Kept small: there is one
// per decision of every live conversation.
struct DecisionNote {
  std::string id;
  const std::string* type = nullptr;  // interned
  const char* detail_key = nullptr;
  int64_t time_ms = 0;
  std::string detail;
};

// What a visit's document shows beyond what is read of every visit (Visit): its members while
// the visit may change, packed into one string once it is closed and its document written.
struct VisitDetail {
  std::string ended_by;
  std::vector<std::string> queues, agents;  // in order, each once
  int64_t waiting_since_ms = -1, waited_ms = 0;
  bool had_agent = false, abandoned = false;
  std::vector<DecisionNote> decisions;  // the latest decision_limit
};

// One conversation of the customer. Memory keeps a customer's latest 20 (Journeys::visit_limit),
// nearly all of them closed: the features read every one, a new conversation past the limit
// drops the oldest, and the agent's summary reads the latest few; only what those read is kept in the
// visit itself (192 bytes), the rest once closed in one packed string. With every member kept
// as it is, a visit took 272 bytes and three allocations of about 420 more.
struct Visit {
  // What the features read of every visit first: in the visit's first cache line.
  int64_t started_ms = 0, ended_ms = -1;
  std::optional<double> csat;
  const char* outcome = "open";  // open, handled, abandoned, self_service
  bool repeat_contact_24h = false;
  uint64_t touched = 0;  // the round of Journeys::touched_visits_ it was last added in
  std::string conversation, channel, intent;

  bool open() const { return ended_ms < 0; }
  bool packed() const { return !detail_; }
  // The detail to change, unpacked first if it was packed.
  VisitDetail& detail();
  // Packs the detail into one string if the visit is closed (Journeys::pack_if_closed).
  void pack_if_closed();
  void write(events::CompactDoc& o) const;  // its document in the journey view, into `o` (cleared)
  // Fetches ahead what write() reads beyond the visit: stage 0 the detail, 1 its lists (the
  // lines read first with loads: events::load_line).
  void prefetch_detail(int stage) const;
  // For a snapshot (Journeys::save): every member but `touched`, the detail packed (as it is, or
  // packed for the writing); restore() unpacks it only if it was not packed.
  void save(events::Appender& out) const;
  void restore(events::Unpacker& in);

 private:
  std::unique_ptr<VisitDetail> detail_ = std::make_unique<VisitDetail>();  // null once packed
  std::string packed_;  // the packed detail; empty while detail_ holds it
};

struct Customer {
  std::string id;
  json profile;  // null until a CRM attribute arrives, then an object
  int64_t profile_updated_ms = -1;
  // Oldest first; every open conversation is here. In a ring: a new visit past the limit drops
  // the oldest closed one, most often the first, and then no other visit moves.
  Ring<Visit> visits;
  int64_t last_ms = 0;
  uint64_t touched = 0;  // the round of Journeys::touched_ it was last added in
  size_t open_conversations() const;
};

class Journeys {
 public:
  static constexpr size_t visit_limit = 20;
  static constexpr size_t decision_limit = 30;
  static constexpr int64_t window_ms = 30LL * 24 * 3600 * 1000;

  // Applies a journal entry. `customer` is the customer of the conversation it concerns (the
  // caller knows it for decisions, which name only the conversation); empty when it concerns
  // none. Entries that change nothing here are ignored.
  void apply(const Envelope& e, const std::string& customer);
  // Whether apply() may change a journey for an entry of this kind: when not, its customer need
  // not be looked up (apply() with no customer only moves the day on).
  static bool concerns(const Envelope& e, events::event_kind kind);

  const Customer* find(const std::string& customer) const;
  // Features of a customer's journey as of `as_of_ms` (zeros for an unknown customer).
  Features features(const std::string& customer, int64_t as_of_ms) const;
  // What an agent sees with an offer: the features and the latest conversations other than
  // `current` (at most 3), each with its channel, intent, outcome and how long ago it started.
  json summary(const std::string& customer, const std::string& current, int64_t as_of_ms) const;
  // The customer view: profile and features as of the customer's latest entry (stored form
  // into `out`, false for an unknown customer; as text; and that text parsed).
  bool view_doc(const std::string& customer, events::CompactDoc& out) const;
  std::optional<std::string> view_text(const std::string& customer) const;
  std::optional<json> view(const std::string& customer) const;
  // The key of a conversation's document in the journey view: the customer, a separator no id
  // contains (0x1f), the start time (15 digits of ms) and the conversation; a customer's keys
  // share the prefix visit_prefix(customer).
  static std::string visit_key(const std::string& customer, const Visit& v);
  static std::string visit_prefix(const std::string& customer) { return customer + '\x1f'; }

  using VisitId = std::pair<std::string, std::string>;  // (customer, conversation)
  // What changed since the last call, sorted, each once (touched_ids.hpp): customers (their
  // view), their conversations (visit_view() has the document; none for one memory no longer
  // holds), and the documents of touched conversations that memory no longer holds (by
  // visit_key).
  struct Changes {
    std::vector<std::string> customers;
    std::vector<VisitId> visits;
    std::map<std::string, std::string> forgotten;
  };
  Changes take_touched();
  // A conversation's document and its key in the journey view; nullopt when not in memory.
  // visit_doc sets `key`, then writes the stored form into `out` (the key is known should the
  // writing throw); false when not in memory.
  bool visit_doc(const std::string& customer, const std::string& conversation, std::string& key,
                 events::CompactDoc& out) const;
  std::optional<std::pair<std::string, std::string>> visit_text(const std::string& customer,
                                                                const std::string& conversation) const;
  std::optional<std::pair<std::string, json>> visit_view(const std::string& customer,
                                                         const std::string& conversation) const;
  // Packs a closed conversation's visit (Visit::pack_if_closed): the partition host calls it
  // once the visit's document is written, as the visit is then in the cache. Whatever reads the
  // visit's detail again unpacks it; nothing but memory tells the two apart.
  void pack_if_closed(const std::string& customer, const std::string& conversation);
  // How many visits memory holds packed, of all it holds (tests).
  std::pair<size_t, size_t> packed_visits() const;
  // Fetch ahead (events::fetching_ahead) what view_doc() reads: stage 0 the customer's slot,
  // 1 the customer, 2 the first cache line of each of its visits, which the features read
  // (whole visits, three lines each, had cost as much as they saved; perf, two runs: the
  // customer's document 1.5-1.9% -> 0.9-1.1% of samples, this 0.5-0.6% -> 0.5-0.8%); and
  // what visit_doc() and pack_if_closed() read: 0 and 1 the same, 2 the latest visits, 3 the
  // visit's detail, 4 the detail's lists.
  static constexpr int customer_stages = 3, visit_stages = 5;
  void prefetch_customer(const std::string& customer, int stage) const;
  void prefetch_visit(const std::string& customer, const std::string& conversation, int stage) const;

  // The whole state for a snapshot, and back into empty journeys (Tenant::save, restore): between
  // projections only (nothing touched). layout(): the sizes the bytes depend on, and the decision
  // types and detail keys a packed visit names by their places.
  void save(events::Appender& out) const;
  void restore(events::Unpacker& in);
  static std::string layout();

 private:
  void touch(Customer& c, Visit& v);
  // Drops a visit from memory, keeping its document if a projection still owes it.
  void forget(const Customer& c, const Visit& v);
  void sweep(int64_t time_ms);

  // By id in an IdMap (id_map.hpp). perf, 300,000 events: the std::unordered_map it replaces
  // (with a memory of the customer found last) took 1.9% of all samples in its lookups, this
  // about 1.0%; all lookups by id (hash maps and IdMaps) 4.45% -> 3.33%.
  IdMap<Customer> customers_;
  TouchedIds<std::string> touched_;
  TouchedIds<VisitId> touched_visits_;
  std::map<std::string, std::string> forgotten_;  // documents of touched visits dropped from memory
  int64_t swept_day_ = -1;
};

// customer.<name>: the journey features (policy::customer_features()), `id`, and otherwise the
// CRM attributes (`customer.credit`, or `customer.attributes.credit`).
class CustomerSubject final : public expr::Subject {
 public:
  CustomerSubject(const std::string& id, const Customer* customer, const Features& features)
      : id_(id), customer_(customer), features_(features) {}
  expr::Value get(const std::vector<std::string>& path) const override;

 private:
  const std::string& id_;
  const Customer* customer_;
  const Features& features_;
};

}  // namespace omniroute::journey
