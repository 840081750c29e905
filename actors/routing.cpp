// Deciding: checks on facts, timers, dispatch. State changes live in routing_state.cpp.
#include <algorithm>
#include <iterator>

#include "actors/routing.hpp"
#include "actors/routing_subjects.hpp"
#include "events/time.hpp"

namespace omniroute::routing {
// Event types are compared as views: the length first, the bytes only when it matches.
using namespace std::string_view_literals;
const char* to_string(conversation_state s) {
  switch (s) {
    case conversation_state::bot: return "bot";
    case conversation_state::queued: return "queued";
    case conversation_state::offered: return "offered";
    case conversation_state::assigned: return "assigned";
    case conversation_state::wrap_up: return "wrap_up";
    case conversation_state::closed: return "closed";
  }
  return "unknown";
}

// ---- facts in, decisions out ----------------------------------------------------------------

Outcome Tenant::handle(Envelope fact) {
  // Every return is of `out`, so that it is built in the caller's place: returned from a lambda
  // on one path, it was moved out on the others, and its optional read whole right after its
  // parts were stored (a store-forwarding stall: 44% of this function's own samples).
  Outcome out;
  evict_closed_before(fact.time_ms - closed_retention_ms);  // as apply() will, before the check
  auto refuse_with = [&](const std::pair<std::string, std::string>& why) {
    out.refused = true;
    out.entries.push_back(refuse(fact.id, fact.type, fact.time_ms, why.first, why.second));
  };
  if (auto why = check(fact)) {
    refuse_with(*why);
    return out;
  }
  // Timers due by the fact's time fire first; they may change what the fact meets.
  advance(fact, out.entries);
  if (!out.entries.empty())
    if (auto why = check(fact)) {
      refuse_with(*why);
      return out;
    }
  fact.seq = seq_no{next_seq_};
  fact.cause.clear();
  apply(fact);
  decisions_.clear();  // left over if a decide() before threw
  decide(fact, decisions_);  // only appends: the fact goes before them, moved
  out.fact = out.entries.size();
  out.entries.reserve(out.entries.size() + 1 + decisions_.size());
  out.entries.push_back(std::move(fact));
  std::move(decisions_.begin(), decisions_.end(), std::back_inserter(out.entries));
  decisions_.clear();
  return out;
}

Envelope Tenant::refuse(const std::string& id, const std::string& type, int64_t time_ms,
                        const std::string& field, const std::string& reason) {
  Envelope fact;
  fact.id = id;
  fact.type = type;
  fact.time_ms = time_ms;
  return decision(fact, "event.refused",
                  {{"event", id}, {"type", type}, {"field", field}, {"reason", reason}});
}

Envelope Tenant::decision(const Envelope& cause, const char* type, json data) {
  // Each member built in place: assigned into a default envelope, the data replaced an empty
  // object allocated for nothing, and the id and type were each built, then copied.
  std::string id = "d-";  // short: kept inline, as the number appended mostly is
  events::append_integer(id, static_cast<int64_t>(next_seq_));
  Envelope d(std::move(id), type, name_, now(cause), std::move(data), seq_no{next_seq_}, cause.id);
  apply(d);
  return d;
}

std::optional<std::pair<std::string, std::string>> Tenant::check(const Envelope& f) const {
  using why = std::pair<std::string, std::string>;
  const json& d = f.data;
  auto older = [&](int64_t last, const std::string& what) {
    return why("time", "out of order: earlier than the last event of " + what + " (" +
                           events::format_rfc3339_ms(last) + ")");
  };
  if (f.type == "queue.configured"sv) {
    const std::string& id = str(d, "queue");
    if (d.contains("relax"sv))
      for (size_t i = 0; i < d["relax"].size(); ++i) {
        const std::string& to = str(d["relax"][i], "overflow_to");
        if (to.empty()) continue;
        if (to == id) return why("data.relax", "step " + std::to_string(i) + " overflows to its own queue");
        if (!queues_.count(to))
          return why("data.relax", "step " + std::to_string(i) + " overflows to unknown queue '" +
                                       to + "' (configure it first)");
      }
    if (str(d, "strategy") == "most_proficient" && str(d, "skill").empty() &&
        proficiency_skill(compile_requirement(str(d, "requirement"))).empty())
      return why("data.skill", "strategy most_proficient needs a skill, or a requirement on "
                               "agent.skills.<name>");
    return std::nullopt;
  }
  if (is_agent_fact(f.type)) {
    auto it = agents_.find(str(d, "agent"));
    if (f.type == "agent.logged_in"sv) {
      if (it != agents_.end() && f.time_ms < it->second.last_ms)
        return older(it->second.last_ms, "agent " + it->first);
      return std::nullopt;
    }
    if (it == agents_.end()) return why("data.agent", "unknown agent");
    if (f.time_ms < it->second.last_ms) return older(it->second.last_ms, "agent " + it->first);
    if (!it->second.logged_in && f.type != "agent.logged_out"sv)
      return why("data.agent", "agent is not logged in");
    return std::nullopt;
  }
  if (f.type == "arbitration.outcome"sv) return arbiter_.check_outcome(f);
  if (f.type == "customer.profile_updated"sv) {
    const journey::Customer* c = journeys_.find(str(d, "customer"));
    if (c && f.time_ms < c->profile_updated_ms)
      return older(c->profile_updated_ms, "the profile of customer " + c->id);
    return std::nullopt;
  }
  if (!is_conversation_fact(f.type)) return std::nullopt;  // clock.tick, contact.*, policy.*

  const std::string& cid = str(d, "conversation");
  const Conversation* found = find_conversation(cid);
  if (f.type == "conversation.started"sv) {
    if (found)
      return why("data.conversation", found->state == conversation_state::closed
                                          ? "conversation is closed; reopen it or start a new "
                                            "conversation id"
                                          : "conversation already exists");
    const std::string& q = str(d, "queue");
    if (!q.empty()) {
      auto qit = queues_.find(q);
      if (qit == queues_.end()) return why("data.queue", "unknown queue '" + q + "'");
      const auto& ch = qit->second.channels;
      if (!ch.empty() && std::find(ch.begin(), ch.end(), str(d, "channel")) == ch.end())
        return why("data.channel",
                   "queue '" + q + "' does not serve channel '" + str(d, "channel") + "'");
    }
    return std::nullopt;
  }
  if (!found) return why("data.conversation", "unknown conversation");
  const Conversation& c = *found;
  if (f.time_ms < c.last_ms) return older(c.last_ms, "conversation " + c.id);
  if (f.type == "conversation.reopened"sv) {
    if (c.state != conversation_state::closed)
      return why("data.conversation",
                 std::string("conversation is not closed (it is ") + to_string(c.state) + ")");
    auto q = queues_.find(c.queue);
    if (q == queues_.end()) return why("data.conversation", "conversation never had a queue to reopen in");
    if (f.time_ms - c.closed_ms > q->second.reopen_window_ms)
      return why("data.conversation", "closed at " + events::format_rfc3339_ms(c.closed_ms) +
                                          ", longer ago than queue '" + c.queue +
                                          "' allows reopening (" +
                                          std::to_string(q->second.reopen_window_ms / 1000) + " s)");
    return std::nullopt;
  }
  if (c.state == conversation_state::closed) return why("data.conversation", "conversation is closed");

  if (f.type == "offer.accepted"sv || f.type == "offer.declined"sv) {
    if (c.state != conversation_state::offered || c.agent != str(d, "agent") ||
        c.offer != str(d, "offer"))
      return why("data.offer", "no pending offer '" + str(d, "offer") + "' to agent '" +
                                   str(d, "agent") + "' for this conversation");
    if (f.time_ms >= c.offer_expires_ms)
      return why("data.offer", "offer '" + c.offer + "' expired at " +
                                   events::format_rfc3339_ms(c.offer_expires_ms));
  } else if (f.type == "conversation.handoff_requested"sv) {
    if (c.state != conversation_state::bot)
      return why("data.conversation",
                 std::string("conversation is not with a bot (it is ") + to_string(c.state) + ")");
    const std::string& q = str(d, "queue").empty() ? target_queue(c) : str(d, "queue");
    if (q.empty()) return why("data.queue", "missing: no queue to hand off to");
    if (!queues_.count(q)) return why("data.queue", "unknown queue '" + q + "'");
  } else if (f.type == "conversation.transfer_requested"sv) {
    if (c.state == conversation_state::bot || c.state == conversation_state::wrap_up)
      return why("data.conversation",
                 std::string("cannot transfer a conversation that is ") + to_string(c.state));
    if (d.contains("to_queue"sv) == d.contains("to_agent"sv))
      return why("data", "needs either to_queue or to_agent");
    if (d.contains("to_queue"sv)) {
      if (!queues_.count(str(d, "to_queue")))
        return why("data.to_queue", "unknown queue '" + str(d, "to_queue") + "'");
    } else {
      auto ait = agents_.find(str(d, "to_agent"));
      if (ait == agents_.end() || !ait->second.logged_in)
        return why("data.to_agent", "agent is not logged in");
      if (ait->second.id == c.agent)
        return why("data.to_agent", "conversation is already with this agent");
      if (!ready(ait->second) || !has_free_slot(ait->second, c.channel))
        return why("data.to_agent", "agent has no free capacity for channel '" + c.channel + "'");
    }
  } else if (f.type == "conversation.ended"sv) {
    if (c.state == conversation_state::wrap_up)
      return why("data.conversation", "conversation has already ended");
  } else if (f.type == "conversation.wrapped_up"sv) {
    if (c.state != conversation_state::wrap_up || c.agent != str(d, "agent"))
      return why("data.agent", "conversation is not in wrap-up with this agent");
  }
  return std::nullopt;
}

void Tenant::decide(const Envelope& f, std::vector<Envelope>& out) {
  const json& d = f.data;
  const std::string& t = f.type;
  if (t == "queue.configured"sv) {
    // A new requirement may let waiting conversations reach agents they could not before.
    auto& q = queues_.at(str(d, "queue"));
    std::vector<std::string> waiting;
    for (const auto& key : q.waiting) waiting.push_back(std::get<3>(key));
    for (const auto& cid : waiting) dispatch_conversation(f, cid, out);
  } else if (t == "agent.logged_in"sv) {
    dispatch_agent(f, str(d, "agent"), out);
  } else if (t == "agent.status_changed"sv || t == "agent.logged_out"sv) {
    const Agent& a = agents_.at(str(d, "agent"));
    if (ready(a)) {
      dispatch_agent(f, a.id, out);
    } else {
      requeue_offers_of(f, a.id, out);
    }
  } else if (t == "clock.tick"sv || is_agent_fact(t)) {
    // Timers fired in advance(); a heartbeat only moves the agent's deadline.
  } else if (t == "conversation.started"sv) {
    // Arbitration first: its action may pick the queue, the priority, or keep the bot.
    Conversation& c = conversation_at(str(d, "conversation"));
    arbitrate(f, c, out);
    if (!c.keep_with_bot && !c.arbitrated_queue.empty()) {
      enqueue(f, c, c.arbitrated_queue, out, {{"reason", "arbitration: " + c.action}});
      dispatch_conversation(f, c.id, out);
    } else if (!c.keep_with_bot && !c.queue.empty() && !d.value("bot"sv, false)) {
      enqueue(f, c, c.queue, out);
      dispatch_conversation(f, c.id, out);
    }
  } else if (t == "conversation.intent_detected"sv) {
    Conversation& c = conversation_at(str(d, "conversation"));
    const bool decided = arbitrate(f, c, out);
    auto q = queues_.find(target_queue(c));
    if (decided && !c.arbitrated_queue.empty() &&
        (c.state == conversation_state::bot ||
         (c.state == conversation_state::queued && c.queue != c.arbitrated_queue))) {
      enqueue(f, c, c.arbitrated_queue, out, {{"reason", "arbitration: " + c.action}});
      dispatch_conversation(f, c.id, out);
    } else if (c.state == conversation_state::bot && !c.keep_with_bot && q != queues_.end() &&
               c.confidence < q->second.handoff_below_confidence) {
      enqueue(f, c, q->first, out, {{"reason", "intent confidence below the queue's threshold"}});
      dispatch_conversation(f, c.id, out);
    }
  } else if (t == "conversation.handoff_requested"sv) {
    Conversation& c = conversation_at(str(d, "conversation"));
    enqueue(f, c, str(d, "queue").empty() ? target_queue(c) : str(d, "queue"), out,
            {{"reason", "handoff requested"}});
    dispatch_conversation(f, c.id, out);
  } else if (t == "conversation.transfer_requested"sv) {
    Conversation& c = conversation_at(str(d, "conversation"));
    std::string previous = c.agent;
    if (d.contains("to_queue"sv)) {
      enqueue(f, c, str(d, "to_queue"), out, {{"reason", "transfer"}});
      dispatch_conversation(f, c.id, out);
    } else {
      offer(f, c, agents_.at(str(d, "to_agent")), out);
    }
    if (!previous.empty()) dispatch_agent(f, previous, out);
  } else if (t == "conversation.reopened"sv) {
    Conversation& c = conversation_at(str(d, "conversation"));
    json extra = {{"reason", "reopened"}};
    const Queue& q = queues_.at(c.queue);
    if (!c.last_agent.empty() && q.reopen_preference_ms > 0) {
      extra["preferred_agent"] = c.last_agent;
      extra["preferred_until"] = events::format_rfc3339_ms(now(f) + q.reopen_preference_ms);
    }
    enqueue(f, c, c.queue, out, std::move(extra));
    dispatch_conversation(f, c.id, out);
  } else if (t == "offer.accepted"sv) {
    Conversation& c = conversation_at(str(d, "conversation"));
    out.push_back(decision(f, "conversation.assigned", object_of("agent", c.agent, "conversation", c.id)));
  } else if (t == "offer.declined"sv) {
    Conversation& c = conversation_at(str(d, "conversation"));
    std::string agent = c.agent;
    enqueue(f, c, c.queue, out, {{"reason", "declined"}});
    dispatch_conversation(f, c.id, out);
    dispatch_agent(f, agent, out);
  } else if (t == "conversation.ended"sv) {
    Conversation& c = conversation_at(str(d, "conversation"));
    if (c.state == conversation_state::queued || c.state == conversation_state::offered) {
      std::string agent = c.agent;
      out.push_back(decision(f, "conversation.abandoned",
                             object_of("conversation", c.id, "queue", c.queue, "waited_s",
                                       static_cast<double>(f.time_ms - c.enqueued_ms) / 1000.0)));
      out.push_back(decision(f, "conversation.closed", object_of("conversation", c.id)));
      if (!agent.empty()) dispatch_agent(f, agent, out);
    } else if (c.state == conversation_state::bot) {
      out.push_back(decision(f, "conversation.closed", object_of("conversation", c.id)));
    }
    // assigned: the fact moved it to wrap-up; it closes on conversation.wrapped_up or when
    // the queue's wrap-up limit passes.
  } else if (t == "conversation.wrapped_up"sv) {
    Conversation& c = conversation_at(str(d, "conversation"));
    std::string agent = c.agent;
    out.push_back(decision(f, "conversation.closed", object_of("conversation", c.id)));
    dispatch_agent(f, agent, out);
  }
}

bool Tenant::arbitrate(const Envelope& cause, Conversation& c, std::vector<Envelope>& out) {
  if (c.intent.empty() || !arbiter_.decides(c.intent)) return false;
  arbitration::Request r;
  r.conversation = c.id;
  r.customer = c.customer;
  r.intent = c.intent;
  r.time_ms = now(cause);
  const journey::Features features = journeys_.features(c.customer, r.time_ms);
  const journey::CustomerSubject customer(c.customer, journeys_.find(c.customer), features);
  const ConversationSubject<Conversation> conversation(c);
  const IntentSubject intent(c.intent, c.confidence, str(cause.data, "source"));
  r.subjects[policy::customer_root] = &customer;
  r.subjects[policy::conversation_root] = &conversation;
  r.subjects[policy::intent_root] = &intent;
  r.routing_check = [&](const policy::Action& a) -> std::string {
    if (a.queue.empty()) return {};
    auto q = queues_.find(a.queue);
    if (q == queues_.end()) return "queue '" + a.queue + "' is not configured";
    const auto& ch = q->second.channels;
    if (!ch.empty() && std::find(ch.begin(), ch.end(), c.channel) == ch.end())
      return "queue '" + a.queue + "' does not serve channel '" + c.channel + "'";
    return {};
  };
  out.push_back(decision(cause, "arbitration.decided", arbiter_.decide(r)));
  return true;
}

// ---- timers ---------------------------------------------------------------------------------

std::optional<int64_t> Tenant::next_deadline() {
  while (!timers_.empty() && !timer_due(*timers_.begin())) timers_.erase(timers_.begin());
  if (timers_.empty()) return std::nullopt;
  return std::get<0>(*timers_.begin());
}

bool Tenant::timer_due(const timer& t) const {
  const auto& [due, kind, id] = t;
  if (kind == timer_kind::heartbeat) {
    auto a = agents_.find(id);
    return a != agents_.end() && a->second.logged_in && a->second.status != "offline"sv &&
           a->second.heartbeat_timeout_ms > 0 &&
           a->second.last_heartbeat_ms + a->second.heartbeat_timeout_ms == due;
  }
  const Conversation* found = conversations_.find(id);
  if (!found) return false;
  const Conversation& c = *found;
  switch (kind) {
    case timer_kind::offer:
      return c.state == conversation_state::offered && c.offer_expires_ms == due;
    case timer_kind::wrap_up:
      return c.state == conversation_state::wrap_up && c.wrap_up_due_ms == due;
    case timer_kind::preference:
      return c.state == conversation_state::queued && !c.preferred_agent.empty() &&
             c.preferred_until_ms == due;
    case timer_kind::relax: {
      auto q = queues_.find(c.queue);
      return c.state == conversation_state::queued && q != queues_.end() &&
             c.relax_step < q->second.relax.size() &&
             c.queue_entered_ms + q->second.relax[c.relax_step].after_ms == due;
    }
    default: return false;
  }
}

void Tenant::advance(const Envelope& cause, std::vector<Envelope>& out) {
  while (!timers_.empty() && std::get<0>(*timers_.begin()) <= cause.time_ms) {
    timer t = *timers_.begin();
    timers_.erase(timers_.begin());
    if (timer_due(t)) fire(cause, t, out);
  }
}

void Tenant::fire(const Envelope& cause, const timer& t, std::vector<Envelope>& out) {
  const std::string& id = std::get<2>(t);
  switch (std::get<1>(t)) {
    case timer_kind::offer: {
      Conversation& c = conversations_.at(id);
      const std::string agent = c.agent;
      out.push_back(decision(cause, "offer.timed_out",
                             object_of("agent", agent, "conversation", c.id, "offer", c.offer)));
      enqueue(cause, c, c.queue, out, {{"reason", "offer timed out"}});
      const Agent& a = agents_.at(agent);
      auto q = queues_.find(c.queue);
      const int limit = q != queues_.end() ? q->second.no_answer_limit : 0;
      if (limit > 0 && a.missed_offers >= limit && a.status == "available"sv) {
        out.push_back(decision(cause, "agent.went_away",
                               {{"agent", agent},
                                {"reason", "missed offers"},
                                {"missed", a.missed_offers}}));
        requeue_offers_of(cause, agent, out);
      }
      dispatch_conversation(cause, c.id, out);
      dispatch_agent(cause, agent, out);
      return;
    }
    case timer_kind::relax: {
      Conversation& c = conversations_.at(id);
      const Queue& q = queues_.at(c.queue);
      const size_t step = c.relax_step + 1;
      const RelaxStep& s = q.relax[c.relax_step];
      if (!s.overflow_to.empty()) {
        out.push_back(decision(cause, "conversation.overflowed",
                               {{"conversation", c.id},
                                {"from_queue", c.queue},
                                {"to_queue", s.overflow_to},
                                {"step", step}}));
        enqueue(cause, c, s.overflow_to, out, {{"reason", "overflow"}});
      } else {
        out.push_back(decision(cause, "conversation.relaxed",
                               {{"conversation", c.id},
                                {"queue", c.queue},
                                {"step", step},
                                {"requirement", s.requirement->text()}}));
      }
      dispatch_conversation(cause, c.id, out);
      return;
    }
    case timer_kind::wrap_up: {
      const std::string agent = conversations_.at(id).agent;
      out.push_back(decision(cause, "conversation.closed",
                             object_of("conversation", id, "reason", "wrap-up time limit")));
      dispatch_agent(cause, agent, out);
      return;
    }
    case timer_kind::preference: {
      const Conversation& c = conversations_.at(id);
      out.push_back(decision(cause, "conversation.preference_expired",
                             {{"conversation", id}, {"agent", c.preferred_agent}}));
      dispatch_conversation(cause, id, out);
      return;
    }
    case timer_kind::heartbeat: {
      const Agent& a = agents_.at(id);
      out.push_back(decision(cause, "agent.went_offline",
                             {{"agent", id},
                              {"reason", "missed heartbeats"},
                              {"last_heartbeat_at", events::format_rfc3339_ms(a.last_heartbeat_ms)}}));
      requeue_offers_of(cause, id, out);
      return;
    }
  }
}

// ---- dispatch -------------------------------------------------------------------------------

void Tenant::enqueue(const Envelope& cause, Conversation& c, const std::string& queue,
                     std::vector<Envelope>& out, json extra) {
  // Member by member: json's initializer lists copy every value and check every pair.
  json data(json::value_t::object);
  auto& fields = data.get_ref<json::object_t&>();
  fields.emplace("conversation", c.id);
  fields.emplace("priority", c.priority);
  fields.emplace("queue", queue);
  if (extra.is_object())
    for (auto& [key, value] : extra.get_ref<json::object_t&>()) fields[key] = std::move(value);
  out.push_back(decision(cause, "conversation.queued", std::move(data)));
}

void Tenant::offer(const Envelope& cause, Conversation& c, const Agent& a,
                   std::vector<Envelope>& out) {
  auto q = queues_.find(c.queue);
  const bool auto_accept = q != queues_.end() && q->second.auto_accept;
  json data(json::value_t::object);  // member by member, as in enqueue
  auto& fields = data.get_ref<json::object_t&>();
  fields.emplace("conversation", c.id);
  fields.emplace("agent", a.id);
  if (!auto_accept) {  // an assignment names neither
    fields.emplace("queue", c.queue);
    fields.emplace("channel", c.channel);
  }
  if (!c.intent.empty()) fields.emplace("intent", c.intent);
  // Where the customer has been: the agent sees the app chat of a minute ago.
  fields.emplace("journey", journeys_.summary(c.customer, c.id, now(cause)));
  if (!c.action.empty()) data["arbitration"] = {{"decision", c.decision}, {"action", c.action}};
  if (!c.handoff_reason.empty()) {
    // What the bot learned travels with the conversation to the human.
    data["handoff"] = {{"reason", c.handoff_reason}, {"attributes", c.attributes}};
    if (c.confidence >= 0) data["handoff"]["confidence"] = c.confidence;
  }
  if (auto_accept) {
    out.push_back(decision(cause, "conversation.assigned", std::move(data)));
    return;
  }
  const int64_t timeout = q != queues_.end() ? q->second.offer_timeout_ms : 30000;
  data["offer"] = "o-" + std::to_string(next_seq_);
  data["expires_at"] = events::format_rfc3339_ms(now(cause) + timeout);
  out.push_back(decision(cause, "conversation.offered", std::move(data)));
}

bool Tenant::ready(const Agent& a) const { return a.logged_in && a.status == "available"sv; }

bool Tenant::has_any_free_slot(const Agent& a) const {
  if (!ready(a)) return false;
  for (const auto& [slot, cap] : a.capacity)
    if (has_free_slot(a, slot)) return true;
  return false;
}

bool Tenant::has_free_slot(const Agent& a, const std::string& channel) const {
  const std::string slot = slot_of(a, channel);
  auto cap = a.capacity.find(slot);
  if (cap == a.capacity.end()) return false;
  auto load = a.load.find(slot);
  if ((load == a.load.end() ? 0 : load->second) >= cap->second) return false;
  // The cross-channel rule: work on a blocking slot (e.g. a voice call) stops new work here.
  for (const auto& [blocking, blocked] : a.blocks) {
    if (blocking == slot) continue;
    auto l = a.load.find(blocking);
    if (l == a.load.end() || l->second == 0) continue;
    for (const auto& b : blocked)
      if (b == "*" || b == slot) return false;
  }
  return true;
}

const expr::Expression& Tenant::requirement_of(const Conversation& c, const Queue& q) const {
  for (size_t i = std::min(c.relax_step, q.relax.size()); i > 0; --i)
    if (q.relax[i - 1].requirement) return *q.relax[i - 1].requirement;
  return q.requirement;
}

bool Tenant::eligible(const Agent& a, const Conversation& c, const Queue* q,
                      requirement_cache* cache) const {
  if (!ready(a) || c.declined_by.count(a.id) || c.missed_by.count(a.id)) return false;
  if (!has_free_slot(a, c.channel)) return false;
  // The agent a reopened conversation waits for has served it: the requirement is met.
  if (!q || c.preferred_agent == a.id) return true;
  const expr::Expression& req = requirement_of(c, *q);
  if (req.always_true()) return true;
  const bool agent_only = cache && !req.uses_root(0);
  if (agent_only)
    for (const auto& [e, ok] : *cache)
      if (e == &req) return ok;
  ConversationSubject cs(c);
  AgentSubject as(a);
  const expr::Subject* subjects[] = {&cs, &as};
  const bool ok = req.evaluate(subjects);
  if (agent_only) cache->emplace_back(&req, ok);
  return ok;
}

// The queue's strategy over its eligible members. Tie-breaks: least_occupied and
// most_proficient fall back to longest idle; longest idle falls back to the smaller agent id;
// round robin takes the next eligible agent id after the one offered last, wrapping around.
// A reopened conversation within its preference period goes to its last agent or waits.
const Tenant::Agent* Tenant::choose_agent(const Conversation& c, const Queue& q) const {
  const bool preferring = !c.preferred_agent.empty() && !c.declined_by.count(c.preferred_agent) &&
                          !c.missed_by.count(c.preferred_agent);
  if (preferring) {
    auto a = agents_.find(c.preferred_agent);
    return a != agents_.end() && eligible(a->second, c, &q) ? &a->second : nullptr;
  }
  auto members = queue_ready_.find(c.queue);  // agents that are busy everywhere cannot take it
  if (members == queue_ready_.end()) return nullptr;
  auto occupancy_less = [](const Agent& x, const Agent& y) {  // load/capacity, exactly
    int64_t lx = 0, cx = 0, ly = 0, cy = 0;
    for (const auto& [s, n] : x.capacity) cx += n;
    for (const auto& [s, n] : x.load) lx += n;
    for (const auto& [s, n] : y.capacity) cy += n;
    for (const auto& [s, n] : y.load) ly += n;
    return lx * std::max<int64_t>(cy, 1) < ly * std::max<int64_t>(cx, 1);
  };
  auto level = [&](const Agent& x) {
    auto s = x.skills.find(q.skill);
    return s != x.skills.end() && s->is_number() ? s->get<double>() : 0.0;
  };
  // The members come longest idle first, so a strictly better one replaces the best so far
  // and a tie keeps the longer idle; longest idle itself takes the first eligible one.
  const Agent* best = nullptr;
  const Agent* after = nullptr;  // round robin: the smallest eligible id after the last offered
  for (const auto& [idle_since, id] : members->second) {
    const Agent& a = agents_.at(id);
    if (!eligible(a, c, &q)) continue;
    switch (q.how) {
      case strategy::longest_idle: return &a;
      case strategy::least_occupied:
        if (!best || occupancy_less(a, *best)) best = &a;
        break;
      case strategy::most_proficient:
        if (!best || level(a) > level(*best)) best = &a;
        break;
      case strategy::round_robin:  // best: the smallest eligible id, where it wraps around to
        if (!best || id < best->id) best = &a;
        if (id > q.last_offered_agent && (!after || id < after->id)) after = &a;
        break;
    }
  }
  return after ? after : best;
}

void Tenant::dispatch_conversation(const Envelope& cause, const std::string& cid,
                                   std::vector<Envelope>& out) {
  Conversation* c = conversations_.find(cid);
  if (!c || c->state != conversation_state::queued) return;
  auto q = queues_.find(c->queue);
  if (q == queues_.end()) return;
  if (const Agent* a = choose_agent(*c, q->second)) offer(cause, *c, *a, out);
}

// Fairness across an agent's queues: it takes the conversation that waits first by the one
// order every queue uses (higher priority, then longer wait), among those it is eligible for.
void Tenant::dispatch_agent(const Envelope& cause, const std::string& agent,
                            std::vector<Envelope>& out) {
  auto ait = agents_.find(agent);
  if (ait == agents_.end()) return;
  const Agent& a = ait->second;
  requirement_cache cache;  // the agent is the same throughout
  while (has_any_free_slot(a)) {
    Conversation* best = nullptr;
    const wait_key* best_key = nullptr;
    for (const auto& qname : a.queues) {
      auto q = queues_.find(qname);
      if (q == queues_.end()) continue;
      const Queue& queue = q->second;
      // A requirement on the agent alone, with no relaxation to loosen it and no reopened
      // conversation that may wait for this agent: one answer for the whole queue.
      if (queue.relax.empty() && queue.waiting_for_an_agent == 0 && !queue.requirement.always_true() &&
          !queue.requirement.uses_root(0)) {
        AgentSubject as(a);
        const expr::Subject* subjects[] = {nullptr, &as};
        if (!queue.requirement.evaluate(subjects)) continue;
      }
      for (const auto& [channel, waiting] : queue.waiting_by_channel) {
        if (!has_free_slot(a, channel)) continue;
        for (const auto& key : waiting) {
          if (best_key && !(key < *best_key)) break;  // the rest of this channel waits less
          Conversation& c = conversations_.at(std::get<3>(key));
          if (!c.preferred_agent.empty() && c.preferred_agent != a.id &&
              !c.declined_by.count(c.preferred_agent) && !c.missed_by.count(c.preferred_agent))
            continue;  // kept for its last agent a while longer
          if (!eligible(a, c, &queue, &cache)) continue;
          best = &c;
          best_key = &key;
          break;
        }
      }
    }
    if (!best) return;
    offer(cause, *best, a, out);
    cache.clear();  // its load changed; requirements may read it one day
  }
}

void Tenant::requeue_offers_of(const Envelope& cause, const std::string& agent,
                               std::vector<Envelope>& out) {
  std::vector<std::string> offered;
  for (const auto& cid : agents_.at(agent).work)
    if (conversations_.at(cid).state == conversation_state::offered) offered.push_back(cid);
  for (const auto& cid : offered)
    enqueue(cause, conversations_.at(cid), conversations_.at(cid).queue, out,
            {{"reason", "agent unavailable"}});
  for (const auto& cid : offered) dispatch_conversation(cause, cid, out);
}

}  // namespace omniroute::routing
