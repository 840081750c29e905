// Applying journal entries to the routing state, and the views derived from it.
#include <algorithm>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <vector>

#include "actors/routing.hpp"
#include "actors/routing_subjects.hpp"
#include "events/packing.hpp"
#include "events/prefetch.hpp"
#include "events/time.hpp"

namespace omniroute::routing {
// Event types are compared as views: the length first, the bytes only when it matches.
using namespace std::string_view_literals;
using events::packed;
using events::Packer;
using events::Unpacker;
namespace {

constexpr int64_t day_ms = 24 * 3600 * 1000;

int64_t day_of(int64_t time_ms) { return time_ms >= 0 ? time_ms / day_ms : (time_ms - day_ms + 1) / day_ms; }

int64_t ms_of_seconds(const json& d, const char* key, int64_t fallback_ms) {
  auto it = d.find(key);
  return it != d.end() && it->is_number() ? static_cast<int64_t>(it->get<double>() * 1000) : fallback_ms;
}

}  // namespace

// ---- statistics -----------------------------------------------------------------------------

std::optional<double> DayStats::service_level() const {
  const int64_t denominator = answered + abandoned - abandoned_within_threshold;
  if (denominator <= 0) return std::nullopt;
  return static_cast<double>(answered_within_threshold) / static_cast<double>(denominator);
}

json DayStats::to_json() const {
  json j = {{"date", offered + answered + abandoned + handled == 0
                         ? json(nullptr)
                         : json(events::format_rfc3339_ms(day * day_ms).substr(0, 10))},
            {"offered", offered},
            {"answered", answered},
            {"abandoned", abandoned},
            {"answered_within_threshold", answered_within_threshold},
            {"abandoned_within_threshold", abandoned_within_threshold},
            {"service_level", nullptr},
            {"asa_s", nullptr},
            {"aht_s", nullptr}};
  if (auto sl = service_level()) j["service_level"] = *sl;
  if (answered > 0) j["asa_s"] = static_cast<double>(answer_wait_ms) / 1000.0 / static_cast<double>(answered);
  if (handled > 0) j["aht_s"] = static_cast<double>(handle_ms) / 1000.0 / static_cast<double>(handled);
  return j;
}

DayStats& Tenant::today(const std::string& queue, int64_t time_ms) {
  DayStats& s = queues_[queue].today;
  const int64_t day = day_of(time_ms);
  if (s.day != day) s = DayStats{day};
  touched_.queues.insert(queue);
  return s;
}

// ---- applying -------------------------------------------------------------------------------

Tenant::Conversation* Tenant::find_conversation(const std::string& id) const {
  if (Conversation* c = conversations_.find(id)) return c;
  PackedConversation* p = packed_.find(id);
  if (!p) return nullptr;
  const std::string key = id;  // copied: `id` may be one of unpacked_, which grows below
  Conversation& c = conversations_[key];
  unpack(p->members, c);
  packed_.erase(key);
  unpacked_.push_back(key);
  return &c;
}

Tenant::Conversation& Tenant::conversation_at(const std::string& id) {
  if (Conversation* c = find_conversation(id)) return *c;
  throw std::out_of_range("no conversation " + id);
}

void Tenant::evict_closed_before(int64_t time_ms) {
  while (!closed_.empty() && closed_.front().first < time_ms) {
    const auto& [closed_at, id] = closed_.front();
    // Not if it was reopened since (closed again, it has a later entry here).
    if (const Conversation* c = conversations_.find(id)) {
      if (c->state == conversation_state::closed && c->last_ms <= closed_at) {
        // Its view is owed (it closed in this round): written now, for the projection. (A
        // packed conversation's view is written: it is packed only then, and unpacked when
        // touched.)
        if (touched_conversations_.holds(c->touched))
          touched_.forgotten_conversations[id] = stored_view(*c);
        conversations_.erase(id);
      }
    } else if (const PackedConversation* p = packed_.find(id); p && p->last_ms <= closed_at) {
      packed_.erase(id);
    }
    closed_.erase_front(1);
  }
}

void Tenant::apply(const Envelope& e) {
  if (e.seq && e.seq->value() + 1 > next_seq_) next_seq_ = e.seq->value() + 1;
  // A refused fact does not move the clock: its time is not trusted (it may be what is wrong).
  if (e.type != "event.refused"sv) clock_ms_ = std::max(clock_ms_, e.time_ms);
  evict_closed_before(e.time_ms - closed_retention_ms);
  const events::event_kind kind = events::kind_of(e.type);
  switch (kind) {
    case events::event_kind::fact:
      if (e.type == "queue.configured"sv) apply_queue_config(e);
      else if (is_agent_fact(e.type)) apply_agent_fact(e);
      else apply_conversation_fact(e);
      break;
    case events::event_kind::decision: apply_decision(e); break;
    case events::event_kind::unknown: break;
  }
  static const std::string no_customer;
  journeys_.apply(e, journey::Journeys::concerns(e, kind) ? customer_of(e) : no_customer);
  arbiter_.apply(e);
}

const std::string& Tenant::customer_of(const Envelope& e) const {
  static const std::string none;
  const std::string& customer = str(e.data, "customer");
  if (!customer.empty()) return customer;  // conversation.started, customer.*, arbitration.*
  const Conversation* c = find_conversation(str(e.data, "conversation"));
  return c ? c->customer : none;
}

Touched Tenant::take_touched() {
  Touched t = std::exchange(touched_, Touched{});
  // Those unpacked to be looked at: packed again unless their views are owed (then the caller
  // packs them once it has written them).
  for (const auto& id : unpacked_)
    if (const Conversation* c = conversations_.find(id); c && !touched_conversations_.holds(c->touched))
      pack_if_closed(id);
  unpacked_.clear();
  t.conversations = touched_conversations_.take();
  t.agents = touched_agents_.take();
  t.journeys = journeys_.take_touched();
  t.arbitration = arbiter_.take_touched();
  return t;
}

// ---- closed conversations, packed --------------------------------------------------------

namespace {

// A conversation's members in a fixed order (packing.hpp), by kind as below (the id is the packed
// entry's own); the confidence as its 8 bytes, sets as their size and members, the attributes in
// MessagePack (nothing for an empty object, the usual).
template <typename C>
struct Members {
  static constexpr std::string C::*texts[] = {
      &C::customer, &C::channel,         &C::language,       &C::queue,    &C::agent,
      &C::offer,    &C::intent,          &C::last_agent,     &C::preferred_agent,
      &C::handoff_reason, &C::decision,  &C::action,         &C::arbitrated_queue};
  static constexpr int64_t C::*times[] = {&C::started_ms,  &C::enqueued_ms,    &C::queue_entered_ms,
                                          &C::offer_expires_ms, &C::answered_ms, &C::wrap_up_due_ms,
                                          &C::preferred_until_ms, &C::closed_ms, &C::last_ms};
  static constexpr std::set<std::string> C::*sets[] = {&C::declined_by, &C::missed_by};
};

}  // namespace

std::string Tenant::pack(const Conversation& c) {
  // A member added to Conversation must be packed and unpacked too: this size is the reminder.
  static_assert(sizeof(Conversation) == 680, "pack() and unpack() must cover every member");
  using M = Members<Conversation>;
  // MessagePack for the attributes: every value back as it was, numbers to the bit (dump()
  // would throw on a string that is not UTF-8, were one ever to get here). Nothing for an
  // empty object.
  std::vector<uint8_t> attributes;
  if (!c.attributes.is_object() || !c.attributes.empty()) attributes = json::to_msgpack(c.attributes);
  // The most the members can take (packing.hpp): appended to a string, byte by byte, the packing
  // was 2,000 instructions a conversation (callgrind), most of them in the string's calls.
  size_t room = (std::size(M::texts) + std::size(M::times) + std::size(M::sets) + 4) * Packer::varint_max +
                2 + sizeof c.confidence + attributes.size();
  for (auto member : M::texts) room += (c.*member).size();
  for (auto member : M::sets)
    for (const auto& s : c.*member) room += Packer::varint_max + s.size();
  return packed(room, [&](Packer& p) {
    for (auto member : M::texts) p.text(c.*member);
    for (auto member : M::times) p.integer(c.*member);
    for (auto member : M::sets) {
      p.varint((c.*member).size());
      for (const auto& s : c.*member) p.text(s);
    }
    const char flags[] = {static_cast<char>(c.keep_with_bot), static_cast<char>(c.state)};
    p.bytes(flags, sizeof flags);
    p.integer(c.priority);
    p.varint(c.relax_step);
    p.bytes(&c.confidence, sizeof c.confidence);
    p.varint(c.order);
    // `touched` is not kept: 0 is "not in this round", and an unpacked conversation is not.
    p.text(std::string_view(reinterpret_cast<const char*>(attributes.data()), attributes.size()));
  });
}

void Tenant::unpack(std::string_view members, Conversation& c) {
  using M = Members<Conversation>;
  Unpacker u{members};
  for (auto member : M::texts) c.*member = u.text();
  for (auto member : M::times) c.*member = u.integer();
  for (auto member : M::sets) {
    for (size_t n = u.count(); n > 0; --n) (c.*member).emplace_hint((c.*member).end(), u.text());
  }
  const std::string_view flags = u.bytes(2);
  c.keep_with_bot = flags[0] != 0;
  c.state = static_cast<conversation_state>(flags[1]);
  c.priority = static_cast<int>(u.integer());
  c.relax_step = u.varint();
  std::memcpy(&c.confidence, u.bytes(sizeof c.confidence).data(), sizeof c.confidence);
  c.order = u.varint();
  const std::string_view attributes = u.text();
  c.attributes = attributes.empty() ? json::object() : json::from_msgpack(attributes.begin(), attributes.end());
}

void Tenant::pack_if_closed(const std::string& id) {
  const Conversation* c = conversations_.find(id);
  if (!c || c->state != conversation_state::closed) return;
  PackedConversation& p = packed_[id];
  p.last_ms = c->last_ms;
  p.members = pack(*c);
  conversations_.erase(id);
}

void Tenant::prefetch(const std::string& id, const std::string& named, int stage) const {
  if (!named.empty()) journeys_.prefetch_visit(named, id, stage);
  if (id.empty()) return;
  if (stage < conversation_stages) return prefetch_conversation(id, stage);
  if (!named.empty()) return;
  if (const Conversation* c = conversations_.likely(events::key_hash(id)))
    journeys_.prefetch_visit(c->customer, id, stage - conversation_stages);
}

void Tenant::prefetch_conversation(const std::string& id, int stage) const {
  const uint64_t h = events::key_hash(id);
  if (stage == 0) {
    conversations_.prefetch(h);
    packed_.prefetch(h);  // where pack_if_closed() puts it once closed
  } else if (const Conversation* c = conversations_.likely(h)) {
    events::prefetch_bytes(c, sizeof(Conversation));
  }
}

std::string Tenant::slot_of(const Agent& a, const std::string& channel) {
  if (a.capacity.count(channel)) return channel;
  if (channel == "voice"sv || channel == "email"sv) return channel;
  return "chat";
}

void Tenant::set_status(Agent& a, const std::string& status) {
  --status_counts_[a.status];
  a.status = status;
  ++status_counts_[a.status];
}

int64_t Tenant::free_for(const Agent& a, const Queue& q) const {
  // Free capacity on the agent's slots that the queue's channels use (all of them when it
  // names none).
  int64_t free = 0;
  for (const auto& [slot, cap] : a.capacity) {
    bool used = q.channels.empty();
    for (const auto& ch : q.channels) used = used || slot_of(a, ch) == slot;
    if (!used || !has_free_slot(a, slot)) continue;
    auto load = a.load.find(slot);
    free += cap - (load == a.load.end() ? 0 : load->second);
  }
  return free;
}

void Tenant::contribute(Agent& a, size_t i, int64_t free) {
  auto q = queues_.find(a.queues[i]);
  if (q == queues_.end()) return;
  int64_t& was = a.free_in[i];
  q->second.free_slots += free - was;
  q->second.agents_available += static_cast<int64_t>(free > 0) - static_cast<int64_t>(was > 0);
  was = free;
}

void Tenant::touch_agent(Agent& a) {
  touched_agents_.add(a.touched, a.id);
  // Keeps the queues' sets of agents that could take work now, and their free slots, in step
  // with the agent.
  const bool free = has_any_free_slot(a);
  a.free_in.resize(a.queues.size(), 0);
  for (size_t i = 0; i < a.queues.size(); ++i) {
    const std::string& q = a.queues[i];
    touched_.queues.insert(q);
    auto& ready_here = queue_ready_[q];
    ready_here.erase({a.ready_ms, a.id});
    if (free) ready_here.emplace(a.last_assigned_ms, a.id);
    auto queue = queues_.find(q);
    contribute(a, i, free && queue != queues_.end() ? free_for(a, queue->second) : 0);
  }
  a.ready_ms = a.last_assigned_ms;
}

void Tenant::reserve(Agent& a, Conversation& c) {
  ++a.load[slot_of(a, c.channel)];
  a.work.insert(c.id);
  c.agent = a.id;
  touch_agent(a);
}

void Tenant::release(Conversation& c) {
  if (c.agent.empty()) return;
  auto it = agents_.find(c.agent);
  if (it != agents_.end() && it->second.work.erase(c.id)) {
    int& load = it->second.load[slot_of(it->second, c.channel)];
    if (load > 0) --load;
    touch_agent(it->second);
  }
  c.agent.clear();
  c.offer.clear();
}

void Tenant::unwait(Conversation& c) {
  // Only a queued conversation waits (rewait relies on it too): most decisions find the
  // conversation with the bot or an agent, and look no further. Its key is built once (it
  // copies the id).
  if (c.state != conversation_state::queued) return;
  auto q = queues_.find(c.queue);
  if (q == queues_.end()) return;
  const wait_key key = c.key();
  if (!q->second.waiting.erase(key)) return;
  auto by = q->second.waiting_by_channel.find(c.channel);
  by->second.erase(key);
  if (by->second.empty()) q->second.waiting_by_channel.erase(by);
  touched_.queues.insert(c.queue);
  if (!c.preferred_agent.empty()) --q->second.waiting_for_an_agent;
}

void Tenant::wait(Conversation& c) {
  Queue& q = queues_[c.queue];
  wait_key key = c.key();
  if (!q.waiting.insert(key).second) return;
  q.waiting_by_channel[c.channel].insert(std::move(key));
  if (!c.preferred_agent.empty()) ++q.waiting_for_an_agent;
  touched_.queues.insert(c.queue);
}

void Tenant::schedule_relax(const Conversation& c) {
  auto q = queues_.find(c.queue);
  if (c.state != conversation_state::queued || q == queues_.end() ||
      c.relax_step >= q->second.relax.size())
    return;
  timers_.emplace(c.queue_entered_ms + q->second.relax[c.relax_step].after_ms, timer_kind::relax, c.id);
}

void Tenant::apply_queue_config(const Envelope& e) {
  const json& d = e.data;
  const std::string& id = str(d, "queue");
  Queue& q = queues_[id];
  configure(q, d);
  for (const auto& key : q.waiting) schedule_relax(conversations_.at(std::get<3>(key)));
  touched_.queues.insert(id);
  // Its channels decide which of its agents' slots count as its free slots.
  if (auto members = queue_agents_.find(id); members != queue_agents_.end())
    for (const auto& aid : members->second) touch_agent(agents_.at(aid));
}

void Tenant::configure(Queue& q, const json& d) {
  q.config = d;
  q.channels.clear();
  if (d.contains("channels"sv))
    for (const auto& ch : d["channels"]) q.channels.push_back(ch.get<std::string>());
  q.requirement = compile_requirement(str(d, "requirement"));
  q.relax.clear();
  if (d.contains("relax"sv))
    for (const auto& s : d["relax"]) {
      RelaxStep step;
      step.after_ms = ms_of_seconds(s, "after_s", 0);
      if (s.contains("requirement"sv)) step.requirement = compile_requirement(str(s, "requirement"));
      step.overflow_to = str(s, "overflow_to");
      q.relax.push_back(std::move(step));
    }
  const std::string& how = str(d, "strategy");
  q.how = how == "least_occupied"    ? strategy::least_occupied
          : how == "most_proficient" ? strategy::most_proficient
          : how == "round_robin"     ? strategy::round_robin
                                     : strategy::longest_idle;
  q.skill = str(d, "skill").empty() ? proficiency_skill(q.requirement) : str(d, "skill");
  q.auto_accept = d.value("auto_accept"sv, false);
  q.priority = d.value("priority"sv, 0);
  q.no_answer_limit = d.value("no_answer_limit"sv, 3);
  q.handoff_below_confidence = d.value("handoff_below_confidence"sv, 0.0);
  q.offer_timeout_ms = ms_of_seconds(d, "offer_timeout_s", 30000);
  q.sl_threshold_ms = ms_of_seconds(d, "sl_threshold_s", 20000);
  q.wrap_up_ms = ms_of_seconds(d, "wrap_up_s", 0);
  q.reopen_window_ms = ms_of_seconds(d, "reopen_window_s", 24 * 3600 * 1000);
  q.reopen_preference_ms = ms_of_seconds(d, "reopen_preference_s", 60000);
}

void Tenant::apply_agent_fact(const Envelope& e) {
  const json& d = e.data;
  const std::string& t = e.type;
  auto it = agents_.find(str(d, "agent"));
  if (it == agents_.end()) {
    if (t != "agent.logged_in"sv) return;
    it = agents_.emplace(str(d, "agent"), Agent{}).first;
    ++status_counts_[it->second.status];  // counted from the start, so set_status just moves it
  }
  Agent& a = it->second;
  a.last_ms = std::max(a.last_ms, e.time_ms);
  if (t == "agent.logged_in"sv) {
    const bool fresh = a.id.empty();
    a.id = str(d, "agent");
    a.free_in.resize(a.queues.size(), 0);
    for (size_t i = 0; i < a.queues.size(); ++i) {
      const std::string& q = a.queues[i];
      contribute(a, i, 0);
      queue_agents_[q].erase(a.id);
      queue_ready_[q].erase({a.ready_ms, a.id});
      touched_.queues.insert(q);
    }
    a.free_in.clear();
    a.queues.clear();
    if (d.contains("queues"sv))
      for (const auto& q : d["queues"]) a.queues.push_back(q.get<std::string>());
    for (const auto& q : a.queues) queue_agents_[q].insert(a.id);
    a.capacity.clear();
    if (d.contains("capacity"sv)) {
      for (const auto& [ch, n] : d["capacity"].items()) a.capacity[ch] = n.get<int>();
    } else {
      a.capacity = {{"voice", 1}, {"chat", 1}, {"email", 1}};
    }
    a.blocks.clear();
    if (d.contains("blocks"sv))
      for (const auto& [ch, list] : d["blocks"].items())
        for (const auto& b : list) a.blocks[ch].push_back(b.get<std::string>());
    a.skills = d.value("skills"sv, json::object());
    a.attributes = d.value("attributes"sv, json::object());
    a.heartbeat_timeout_ms = ms_of_seconds(d, "heartbeat_timeout_s", 0);
    a.last_heartbeat_ms = e.time_ms;
    a.logged_in = true;
    set_status(a, "available");
    a.missed_offers = 0;
    if (fresh || a.work.empty()) a.last_assigned_ms = e.time_ms;
  } else if (t == "agent.status_changed"sv) {
    set_status(a, str(d, "status"));
    if (a.status == "available"sv) a.missed_offers = 0;
  } else if (t == "agent.logged_out"sv) {
    for (const auto& q : a.queues) queue_agents_[q].erase(a.id);  // members are logged in
    a.logged_in = false;
    set_status(a, "offline");
  } else if (t == "agent.heartbeat"sv) {
    a.last_heartbeat_ms = e.time_ms;
  }
  if (a.logged_in && a.heartbeat_timeout_ms > 0)
    timers_.emplace(a.last_heartbeat_ms + a.heartbeat_timeout_ms, timer_kind::heartbeat, a.id);
  touch_agent(a);
}

void Tenant::apply_conversation_fact(const Envelope& e) {
  const json& d = e.data;
  const std::string& t = e.type;
  const std::string& cid = str(d, "conversation");
  if (cid.empty()) return;  // clock.tick, contact.recorded, schedule.published, arbitration.*
  if (t == "conversation.started"sv) {
    Conversation& c = conversations_[cid];  // made with its id if new
    c.customer = str(d, "customer");
    c.channel = str(d, "channel");
    c.language = str(d, "language");
    c.queue = str(d, "queue");
    c.intent = str(d, "intent");
    auto q = queues_.find(c.queue);
    const json* priority = events::member(d, "priority");
    c.priority = priority ? priority->get<int>() : (q != queues_.end() ? q->second.priority : 0);
    // A new conversation's attributes are an empty object already: value() with a default
    // built one and copied it, two allocations a conversation for nothing.
    if (const json* attributes = events::member(d, "attributes")) c.attributes = *attributes;
    else if (!c.attributes.empty()) c.attributes = json::object();
    c.started_ms = c.last_ms = e.time_ms;
    c.state = conversation_state::bot;
    touched_conversations_.add(c.touched, c.id);
    return;
  }
  Conversation* found = find_conversation(cid);
  if (!found) return;
  Conversation& c = *found;
  c.last_ms = std::max(c.last_ms, e.time_ms);
  touched_conversations_.add(c.touched, c.id);
  auto missed_reset = [&] {
    auto a = agents_.find(str(d, "agent"));
    if (a != agents_.end()) a->second.missed_offers = 0;  // it answered
  };
  if (t == "conversation.intent_detected"sv) {
    c.intent = str(d, "intent");
    c.confidence = d.value("confidence"sv, -1.0);
  } else if (t == "conversation.handoff_requested"sv) {
    c.handoff_reason = str(d, "reason").empty() ? "handoff requested" : str(d, "reason");
    if (d.contains("attributes"sv) && d["attributes"].is_object()) c.attributes.update(d["attributes"]);
  } else if (t == "conversation.priority_changed"sv) {
    rewait(c, [&] { c.priority = d["priority"].get<int>(); });
  } else if (t == "offer.declined"sv) {
    c.declined_by.insert(str(d, "agent"));
    missed_reset();
  } else if (t == "offer.accepted"sv) {
    missed_reset();
  } else if (t == "conversation.ended"sv && c.state == conversation_state::assigned) {
    c.state = conversation_state::wrap_up;
    auto q = queues_.find(c.queue);
    if (q != queues_.end() && q->second.wrap_up_ms > 0) {
      c.wrap_up_due_ms = e.time_ms + q->second.wrap_up_ms;
      timers_.emplace(c.wrap_up_due_ms, timer_kind::wrap_up, c.id);
    }
  }
}

void Tenant::apply_decision(const Envelope& e) {
  const json& d = e.data;
  const std::string& t = e.type;
  if (t == "event.refused"sv) return;
  if (t == "agent.went_offline"sv || t == "agent.went_away"sv) {
    auto a = agents_.find(str(d, "agent"));
    if (a == agents_.end()) return;
    set_status(a->second, t == "agent.went_offline"sv ? "offline" : "away");
    touch_agent(a->second);
    return;
  }
  Conversation* found = find_conversation(str(d, "conversation"));
  if (!found) return;
  Conversation& c = *found;
  touched_conversations_.add(c.touched, c.id);
  if (t == "arbitration.decided"sv) {
    apply_arbitration(e, c);
  } else if (t == "conversation.queued"sv) {
    const std::string& queue = str(d, "queue");
    const bool reopening = c.state == conversation_state::closed;
    if (c.state == conversation_state::bot && c.handoff_reason.empty())
      c.handoff_reason = str(d, "reason");  // e.g. the bot's confidence fell below the threshold
    unwait(c);
    release(c);
    if (reopening) {  // a new contact: a new wait, and every agent may take it again
      c.enqueued_ms = -1;
      c.answered_ms = c.closed_ms = c.wrap_up_due_ms = -1;
      c.declined_by.clear();
      c.missed_by.clear();
    }
    const bool new_visit = reopening || c.enqueued_ms < 0 || queue != c.queue;
    if (new_visit) {
      c.queue_entered_ms = e.time_ms;
      c.relax_step = 0;
      c.answered_ms = -1;
      ++today(queue, e.time_ms).offered;
    }
    c.queue = queue;
    c.priority = d.value("priority"sv, c.priority);
    if (c.enqueued_ms < 0) {  // a conversation keeps its age when it comes back to a queue
      c.enqueued_ms = e.time_ms;
      c.order = e.seq ? e.seq->value() : 0;
    }
    if (d.contains("preferred_agent"sv)) {
      c.preferred_agent = str(d, "preferred_agent");
      c.preferred_until_ms = events::parse_rfc3339_ms(str(d, "preferred_until")).value_or(e.time_ms);
      timers_.emplace(c.preferred_until_ms, timer_kind::preference, c.id);
    }
    c.state = conversation_state::queued;
    wait(c);
    schedule_relax(c);
  } else if (t == "conversation.offered"sv) {
    unwait(c);
    release(c);
    reserve(agents_.at(str(d, "agent")), c);
    c.offer = str(d, "offer");
    c.offer_expires_ms = events::parse_rfc3339_ms(str(d, "expires_at")).value_or(e.time_ms);
    c.state = conversation_state::offered;
    timers_.emplace(c.offer_expires_ms, timer_kind::offer, c.id);
    auto q = queues_.find(c.queue);
    if (q != queues_.end()) q->second.last_offered_agent = c.agent;
  } else if (t == "conversation.assigned"sv) {
    const std::string& agent = str(d, "agent");
    if (c.state != conversation_state::offered || c.agent != agent) {
      unwait(c);
      release(c);
      reserve(agents_.at(agent), c);
      auto q = queues_.find(c.queue);
      if (q != queues_.end()) q->second.last_offered_agent = agent;
    }
    c.offer.clear();
    c.state = conversation_state::assigned;
    c.last_agent = agent;
    c.preferred_agent.clear();
    c.preferred_until_ms = -1;
    if (c.answered_ms < 0) {
      c.answered_ms = e.time_ms;
      auto q = queues_.find(c.queue);
      if (q != queues_.end()) {
        DayStats& s = today(c.queue, e.time_ms);
        const int64_t waited = e.time_ms - c.enqueued_ms;
        ++s.answered;
        s.answer_wait_ms += waited;
        if (waited <= q->second.sl_threshold_ms) ++s.answered_within_threshold;
      }
    }
    Agent& a = agents_.at(agent);
    a.last_assigned_ms = e.time_ms;
    touch_agent(a);
  } else if (t == "offer.timed_out"sv) {
    c.missed_by.insert(str(d, "agent"));
    auto a = agents_.find(str(d, "agent"));
    if (a != agents_.end()) {
      ++a->second.missed_offers;
      touch_agent(a->second);
    }
  } else if (t == "conversation.relaxed"sv) {
    c.relax_step = d.value("step"sv, c.relax_step);
    schedule_relax(c);
  } else if (t == "conversation.preference_expired"sv) {
    rewait(c, [&] { c.preferred_agent.clear(); });
    c.preferred_until_ms = -1;
  } else if (t == "conversation.abandoned"sv) {
    unwait(c);
    release(c);
    auto q = queues_.find(c.queue);
    if (q != queues_.end()) {
      DayStats& s = today(c.queue, e.time_ms);
      ++s.abandoned;
      if (e.time_ms - c.enqueued_ms <= q->second.sl_threshold_ms) ++s.abandoned_within_threshold;
    }
  } else if (t == "conversation.closed"sv) {
    unwait(c);
    release(c);
    if (c.answered_ms >= 0 && queues_.count(c.queue)) {
      DayStats& s = today(c.queue, e.time_ms);
      ++s.handled;
      s.handle_ms += e.time_ms - c.answered_ms;
    }
    c.state = conversation_state::closed;
    c.preferred_agent.clear();
    c.last_ms = std::max(c.last_ms, e.time_ms);
    c.closed_ms = e.time_ms;
    closed_.push_back({c.last_ms, c.id});
  }
}

void Tenant::apply_arbitration(const Envelope& e, Conversation& c) {
  const json& d = e.data;
  c.decision = e.id;
  c.action = str(d, "action");
  static const json none = json::object();
  auto found = d.find("routing"sv);
  const json& routing = found != d.end() && found->is_object() ? *found : none;
  c.arbitrated_queue = str(routing, "queue");
  c.keep_with_bot = routing.value("keep_with_bot"sv, false);
  auto priority = routing.find("priority"sv);
  if (priority != routing.end() && priority->is_number_integer())
    rewait(c, [&] { c.priority = priority->get<int>(); });
}

// ---- views ----------------------------------------------------------------------------------

bool Tenant::conversation_doc(const std::string& id, events::CompactDoc& v) const {
  const Conversation* found = find_conversation(id);
  if (!found) return false;
  write_view(*found, v);
  return true;
}

std::string Tenant::stored_view(const Conversation& c) const {
  try {
    events::CompactDoc doc;
    write_view(c, doc);
    return doc.str();
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {  // as project_touched() says a rendering failed
    return json{{"id", c.id}, {"view_error", e.what()}}.dump();
  }
}

void Tenant::write_view(const Conversation& c, events::CompactDoc& v) const {
  // In key order, so the text needs no sorting when it is read.
  v.clear();
  if (!c.agent.empty()) v.text("agent", c.agent);
  if (!c.decision.empty()) {
    v.begin_object("arbitration");
    if (c.action.empty()) v.null("action");
    else v.text("action", c.action);
    v.text("decision", c.decision).end_object();
  }
  v.json("attributes", c.attributes).text("channel", c.channel);
  if (c.closed_ms >= 0 && c.state == conversation_state::closed)
    v.time("closed_at", c.closed_ms);
  if (c.confidence >= 0) v.number("confidence", c.confidence);
  v.text("conversation", c.id).text("customer", c.customer).texts("declined_by", c.declined_by);
  if (!c.handoff_reason.empty()) v.text("handoff_reason", c.handoff_reason);
  if (!c.intent.empty()) v.text("intent", c.intent);
  if (!c.language.empty()) v.text("language", c.language);
  if (!c.last_agent.empty()) v.text("last_agent", c.last_agent);
  v.texts("missed_by", c.missed_by);
  if (!c.offer.empty()) {
    v.text("offer", c.offer);
    v.time("offer_expires_at", c.offer_expires_ms);
  }
  if (!c.preferred_agent.empty()) {
    v.text("preferred_agent", c.preferred_agent);
    v.time("preferred_until", c.preferred_until_ms);
  }
  v.integer("priority", c.priority);
  if (!c.queue.empty()) v.text("queue", c.queue);
  if (c.enqueued_ms >= 0) v.time("queued_at", c.enqueued_ms);
  if (c.state == conversation_state::queued) v.integer("relax_step", static_cast<int64_t>(c.relax_step));
  v.time("started_at", c.started_ms)
      .text("state", to_string(c.state))
      .text("tenant", name_)
      .time("updated_at", c.last_ms);
  if (c.state == conversation_state::wrap_up && c.wrap_up_due_ms >= 0)
    v.time("wrap_up_until", c.wrap_up_due_ms);
}

std::optional<std::string> Tenant::conversation_text(const std::string& id) const {
  return events::text_of([&](events::CompactDoc& doc) { return conversation_doc(id, doc); });
}

std::optional<json> Tenant::conversation_view(const std::string& id) const {
  return parsed(conversation_text(id));
}

bool Tenant::agent_doc(const std::string& id, events::CompactDoc& v) const {
  auto it = agents_.find(id);
  if (it == agents_.end()) return false;
  const Agent& a = it->second;
  // In key order, so the text needs no sorting when it is read.
  v.clear();
  v.text("agent", a.id).json("attributes", a.attributes);
  if (!a.blocks.empty()) v.json("blocks", json(a.blocks));
  v.integers("capacity", a.capacity).texts("conversations", a.work);
  if (a.heartbeat_timeout_ms > 0)
    v.number("heartbeat_timeout_s", static_cast<double>(a.heartbeat_timeout_ms) / 1000.0);
  v.time("last_assigned_at", a.last_assigned_ms);
  if (a.heartbeat_timeout_ms > 0) v.time("last_heartbeat_at", a.last_heartbeat_ms);
  v.integers("load", a.load)
      .boolean("logged_in", a.logged_in)
      .integer("missed_offers", a.missed_offers)
      .texts("queues", a.queues)
      .json("skills", a.skills)
      .text("status", a.status)
      .text("tenant", name_);
  return true;
}

std::optional<std::string> Tenant::agent_text(const std::string& id) const {
  return events::text_of([&](events::CompactDoc& doc) { return agent_doc(id, doc); });
}

std::optional<json> Tenant::agent_view(const std::string& id) const {
  return parsed(agent_text(id));
}

std::optional<json> Tenant::queue_view(const std::string& id) const {
  auto q = queues_.find(id);
  auto members = queue_agents_.find(id);
  // A queue is known once configured or named by an agent (queue_ready_ keeps every queue an
  // agent has named, even after its agents have gone).
  if (q == queues_.end() && !queue_ready_.count(id)) return std::nullopt;
  // Only what the journal determines: a view must not depend on when it was written, so
  // the age of the oldest wait is left to the reader (oldest_waiting_since) and `today` is
  // the queue's last day with a contact.
  json v = {{"queue", id}, {"tenant", name_}, {"configured", q != queues_.end()}};
  json waiting = json::array();
  if (q != queues_.end()) {
    v["config"] = q->second.config;
    for (const auto& key : q->second.waiting) {
      if (waiting.size() == view_list_limit) break;
      waiting.push_back(std::get<3>(key));
    }
    if (!q->second.waiting.empty())
      v["oldest_waiting_since"] = events::format_rfc3339_ms(std::get<1>(*q->second.waiting.begin()));
  }
  v["waiting_conversations"] = std::move(waiting);
  v["agents_logged_in"] = members != queue_agents_.end() ? members->second.size() : 0;
  const QueueStats s = queue_stats_of(id);
  v["waiting"] = s.waiting;
  v["agents_available"] = s.agents_available;
  v["free_slots"] = s.free_slots;
  if (q != queues_.end()) v["today"] = q->second.today.to_json();
  return v;
}

QueueStats Tenant::queue_stats_of(const std::string& id) const {
  QueueStats s;
  s.today.day = day_of(clock_ms_);
  auto q = queues_.find(id);
  if (q == queues_.end()) return s;
  if (q->second.today.day == s.today.day) s.today = q->second.today;
  s.waiting = q->second.waiting.size();
  if (!q->second.waiting.empty())
    s.oldest_wait_s =
        static_cast<double>(std::max<int64_t>(0, clock_ms_ - std::get<1>(*q->second.waiting.begin()))) / 1000.0;
  s.agents_available = static_cast<size_t>(q->second.agents_available);
  s.free_slots = q->second.free_slots;
  return s;
}

std::map<std::string, QueueStats> Tenant::queue_stats(const std::set<std::string>& ids) const {
  std::map<std::string, QueueStats> out;
  for (const auto& id : ids)
    if (queues_.count(id)) out[id] = queue_stats_of(id);
  return out;
}

std::map<std::string, size_t> Tenant::agents_by_status() const {
  std::map<std::string, size_t> out{{"available", 0}, {"away", 0}, {"offline", 0}};
  for (const auto& [status, n] : status_counts_) out[status] = n;
  return out;
}

std::vector<std::string> Tenant::queue_ids() const {
  std::vector<std::string> ids;
  for (const auto& [id, q] : queues_) ids.push_back(id);
  return ids;
}

std::vector<std::string> Tenant::agent_ids() const {
  std::vector<std::string> ids;
  for (const auto& [id, a] : agents_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

// ---- snapshots ---------------------------------------------------------------------------

// Every member of the state, in the order declared, each container with its size. Left out:
// what a projection takes (touched_, touched_conversations_, touched_agents_, unpacked_, each
// entity's `touched` round: empty or stale between projections), decisions_ (empty between
// facts) and what a queue's configuration decides (configure() sets it again from `config`).
// The indexes kept from conversations and agents (waiting lines, a queue's agents and free
// slots, the status counts) are written as they are, not derived again on reading: a restored
// tenant is the structure the saved one was, without running the code that keeps them out of
// its usual order. Entities of hash tables go in id order, so equal states write equal bytes.
void Tenant::save(events::Appender& out) const {
  // A member added to these must be saved and restored too: the sizes are the reminder.
  static_assert(sizeof(Agent) == 400, "save() and restore() must cover every member of Agent");
  static_assert(sizeof(Queue) == 496, "save() and restore() must cover every member of Queue");
  static_assert(sizeof(Tenant) == 1512, "save() and restore() must cover every member of Tenant");
  using events::each_of;
  out.text(name_);
  out.varint(next_seq_);
  out.integer(clock_ms_);
  each_of(out, closed_, [&](const auto& c) {
    out.integer(c.first);
    out.text(c.second);
  });
  const auto open = conversations_.in_id_order();
  each_of(out, open, [&](const Conversation* c) {
    out.text(c->id);
    out.text(pack(*c));
  });
  const auto closed = packed_.in_id_order();
  each_of(out, closed, [&](const PackedConversation* c) {
    out.text(c->id);
    out.integer(c->last_ms);
    out.text(c->members);
  });
  auto counts = [&](const std::map<std::string, int>& m) {
    each_of(out, m, [&](const auto& kv) {
      out.text(kv.first);
      out.integer(kv.second);
    });
  };
  auto texts = [&](const auto& list) {
    each_of(out, list, [&](const std::string& t) { out.text(t); });
  };
  each_of(out, events::in_key_order(agents_), [&](const auto* member) {
    const Agent* a = &member->second;
    out.text(a->id);
    out.text(a->status);
    out.flag(a->logged_in);
    counts(a->capacity);
    counts(a->load);
    each_of(out, a->blocks, [&](const auto& kv) {
      out.text(kv.first);
      texts(kv.second);
    });
    texts(a->queues);
    each_of(out, a->free_in, [&](int64_t n) { out.integer(n); });
    texts(a->work);
    out.document(a->skills);
    out.document(a->attributes);
    out.integer(a->missed_offers);
    for (int64_t t : {a->last_assigned_ms, a->last_heartbeat_ms, a->heartbeat_timeout_ms,
                      a->last_ms, a->ready_ms})
      out.integer(t);
  });
  auto waiting = [&](const std::set<wait_key>& keys) {
    each_of(out, keys, [&](const wait_key& k) {
      out.integer(std::get<0>(k));
      out.integer(std::get<1>(k));
      out.varint(std::get<2>(k));
      out.text(std::get<3>(k));
    });
  };
  each_of(out, queues_, [&](const auto& kv) {
    const Queue& q = kv.second;
    out.text(kv.first);
    out.document(q.config);
    waiting(q.waiting);
    each_of(out, q.waiting_by_channel, [&](const auto& ch) {
      out.text(ch.first);
      waiting(ch.second);
    });
    out.varint(q.waiting_for_an_agent);
    out.integer(q.free_slots);
    out.integer(q.agents_available);
    out.text(q.last_offered_agent);
    const DayStats& d = q.today;
    for (int64_t n : {d.day, d.offered, d.answered, d.abandoned, d.answered_within_threshold,
                      d.abandoned_within_threshold, d.answer_wait_ms, d.handled, d.handle_ms})
      out.integer(n);
  });
  each_of(out, queue_agents_, [&](const auto& kv) {
    out.text(kv.first);
    texts(kv.second);
  });
  each_of(out, queue_ready_, [&](const auto& kv) {
    out.text(kv.first);
    each_of(out, kv.second, [&](const auto& r) {
      out.integer(r.first);
      out.text(r.second);
    });
  });
  each_of(out, status_counts_, [&](const auto& kv) {
    out.text(kv.first);
    out.varint(kv.second);
  });
  each_of(out, timers_, [&](const timer& t) {
    out.integer(std::get<0>(t));
    out.varint(static_cast<uint64_t>(std::get<1>(t)));
    out.text(std::get<2>(t));
  });
  journeys_.save(out);
  arbiter_.save(out);
}

void Tenant::restore(events::Unpacker& in) {
  using events::for_count;
  if (in.text() != name_) throw std::out_of_range("snapshot of another tenant");
  next_seq_ = in.varint();
  clock_ms_ = in.integer();
  for_count(in, [&] {
    const int64_t at = in.integer();
    closed_.push_back({at, std::string(in.text())});
  });
  for_count(in, [&] {
    Conversation& c = conversations_[in.text()];
    unpack(in.text(), c);
  });
  for_count(in, [&] {
    PackedConversation& c = packed_[in.text()];
    c.last_ms = in.integer();
    c.members = in.text();
  });
  auto counts = [&](std::map<std::string, int>& m) {
    for_count(in, [&] {
      std::string key(in.text());
      m.emplace_hint(m.end(), std::move(key), static_cast<int>(in.integer()));
    });
  };
  auto texts = [&](auto& list) {
    for_count(in, [&] { list.insert(list.end(), std::string(in.text())); });
  };
  for_count(in, [&] {
    std::string id(in.text());
    Agent& a = agents_[id];
    a.id = std::move(id);
    a.status = in.text();
    a.logged_in = in.flag();
    counts(a.capacity);
    counts(a.load);
    for_count(in, [&] {
      std::string slot(in.text());
      texts(a.blocks[slot]);
    });
    texts(a.queues);
    for_count(in, [&] { a.free_in.push_back(in.integer()); });
    texts(a.work);
    a.skills = in.document();
    a.attributes = in.document();
    a.missed_offers = static_cast<int>(in.integer());
    for (int64_t* t : {&a.last_assigned_ms, &a.last_heartbeat_ms, &a.heartbeat_timeout_ms,
                       &a.last_ms, &a.ready_ms})
      *t = in.integer();
  });
  auto waiting = [&](std::set<wait_key>& keys) {
    for_count(in, [&] {
      const auto priority = static_cast<int>(in.integer());
      const int64_t enqueued = in.integer();
      const uint64_t order = in.varint();
      keys.emplace_hint(keys.end(), priority, enqueued, order, std::string(in.text()));
    });
  };
  for_count(in, [&] {
    Queue& q = queues_[std::string(in.text())];
    configure(q, in.document());
    waiting(q.waiting);
    for_count(in, [&] {
      std::string channel(in.text());
      waiting(q.waiting_by_channel[channel]);
    });
    q.waiting_for_an_agent = in.varint();
    q.free_slots = in.integer();
    q.agents_available = in.integer();
    q.last_offered_agent = in.text();
    DayStats& d = q.today;
    for (int64_t* n : {&d.day, &d.offered, &d.answered, &d.abandoned, &d.answered_within_threshold,
                       &d.abandoned_within_threshold, &d.answer_wait_ms, &d.handled, &d.handle_ms})
      *n = in.integer();
  });
  for_count(in, [&] {
    std::string queue(in.text());
    texts(queue_agents_[queue]);
  });
  for_count(in, [&] {
    auto& ready = queue_ready_[std::string(in.text())];
    for_count(in, [&] {
      const int64_t since = in.integer();
      ready.emplace_hint(ready.end(), since, std::string(in.text()));
    });
  });
  for_count(in, [&] {
    std::string status(in.text());
    status_counts_[status] = in.varint();
  });
  for_count(in, [&] {
    const int64_t due = in.integer();
    const auto kind = in.varint();
    if (kind > static_cast<uint64_t>(timer_kind::heartbeat))
      throw std::out_of_range("snapshot: unknown timer kind");
    timers_.emplace_hint(timers_.end(), due, static_cast<timer_kind>(kind), std::string(in.text()));
  });
  journeys_.restore(in);
  arbiter_.restore(in);
}

std::string Tenant::layout() {
  return "tenant " + std::to_string(sizeof(Tenant)) + " conversation " +
         std::to_string(sizeof(Conversation)) + " packed " +
         std::to_string(sizeof(PackedConversation)) + " agent " + std::to_string(sizeof(Agent)) +
         " queue " + std::to_string(sizeof(Queue)) + " relax " + std::to_string(sizeof(RelaxStep)) +
         " day " + std::to_string(sizeof(DayStats)) + "; " + journey::Journeys::layout() + "; " +
         arbitration::Arbiter::layout();
}

}  // namespace omniroute::routing
