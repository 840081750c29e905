#include "actors/routing.hpp"

#include <algorithm>

#include "events/time.hpp"

namespace omniroute::routing {
namespace {

const std::string& str(const json& data, const char* key) {
  static const std::string empty;
  auto it = data.find(key);
  return it != data.end() && it->is_string() ? it->get_ref<const std::string&>() : empty;
}

bool is_conversation_fact(const std::string& type) {
  return type.rfind("conversation.", 0) == 0 || type.rfind("offer.", 0) == 0;
}

bool is_agent_fact(const std::string& type) { return type.rfind("agent.", 0) == 0; }

}  // namespace

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

// ---- deciding -------------------------------------------------------------------------------

Outcome Tenant::handle(Envelope fact) {
  Outcome out;
  evict_closed_before(fact.time_ms - closed_retention_ms);  // as apply() will, before the check
  if (auto why = check(fact)) {
    Envelope refusal = decision(fact, "event.refused",
                                {{"event", fact.id},
                                 {"type", fact.type},
                                 {"field", why->first},
                                 {"reason", why->second}});
    out.refused = true;
    out.entries.push_back(std::move(refusal));
    return out;
  }
  fact.seq = seq_no{next_seq_};
  fact.cause.clear();
  apply(fact);
  out.entries.push_back(fact);
  decide(fact, out.entries);
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

Envelope Tenant::decision(const Envelope& fact, const char* type, json data) {
  Envelope d;
  d.id = "d-" + std::to_string(next_seq_);
  d.type = type;
  d.tenant = name_;
  d.time_ms = fact.time_ms;
  d.data = std::move(data);
  d.seq = seq_no{next_seq_};
  d.cause = fact.id;
  apply(d);
  return d;
}

std::optional<std::pair<std::string, std::string>> Tenant::check(const Envelope& f) const {
  const json& d = f.data;
  auto older = [&](int64_t last, const std::string& what) {
    return std::make_pair(std::string("time"),
                          "out of order: earlier than the last event of " + what + " (" +
                              events::format_rfc3339_ms(last) + ")");
  };
  if (is_agent_fact(f.type)) {
    auto it = agents_.find(str(d, "agent"));
    if (f.type == "agent.logged_in") {
      if (it != agents_.end() && f.time_ms < it->second.last_ms)
        return older(it->second.last_ms, "agent " + it->first);
      return std::nullopt;
    }
    if (it == agents_.end()) return std::make_pair("data.agent", "unknown agent");
    if (f.time_ms < it->second.last_ms) return older(it->second.last_ms, "agent " + it->first);
    if (!it->second.logged_in && f.type != "agent.logged_out")
      return std::make_pair("data.agent", "agent is not logged in");
    return std::nullopt;
  }
  if (!is_conversation_fact(f.type)) return std::nullopt;  // queue.configured, arbitration.*

  const std::string& cid = str(d, "conversation");
  auto it = conversations_.find(cid);
  if (f.type == "conversation.started") {
    if (it != conversations_.end())
      return std::make_pair("data.conversation",
                            it->second.state == conversation_state::closed
                                ? "conversation is closed; start a new conversation id"
                                : "conversation already exists");
    const std::string& q = str(d, "queue");
    if (!q.empty()) {
      auto qit = queues_.find(q);
      if (qit == queues_.end()) return std::make_pair("data.queue", "unknown queue '" + q + "'");
      const auto& ch = qit->second.channels;
      if (!ch.empty() && std::find(ch.begin(), ch.end(), str(d, "channel")) == ch.end())
        return std::make_pair("data.channel",
                              "queue '" + q + "' does not serve channel '" + str(d, "channel") + "'");
    }
    return std::nullopt;
  }
  if (it == conversations_.end()) return std::make_pair("data.conversation", "unknown conversation");
  const Conversation& c = it->second;
  if (f.time_ms < c.last_ms) return older(c.last_ms, "conversation " + c.id);
  if (c.state == conversation_state::closed)
    return std::make_pair("data.conversation", "conversation is closed");

  if (f.type == "offer.accepted" || f.type == "offer.declined") {
    if (c.state != conversation_state::offered || c.agent != str(d, "agent") ||
        c.offer != str(d, "offer"))
      return std::make_pair("data.offer", "no pending offer '" + str(d, "offer") + "' to agent '" +
                                               str(d, "agent") + "' for this conversation");
  } else if (f.type == "conversation.handoff_requested") {
    if (c.state != conversation_state::bot)
      return std::make_pair("data.conversation",
                            std::string("conversation is not with a bot (it is ") +
                                to_string(c.state) + ")");
    const std::string& q = str(d, "queue").empty() ? c.queue : str(d, "queue");
    if (q.empty()) return std::make_pair("data.queue", "missing: no queue to hand off to");
    if (!queues_.count(q)) return std::make_pair("data.queue", "unknown queue '" + q + "'");
  } else if (f.type == "conversation.transfer_requested") {
    if (c.state == conversation_state::bot || c.state == conversation_state::wrap_up)
      return std::make_pair("data.conversation",
                            std::string("cannot transfer a conversation that is ") +
                                to_string(c.state));
    if (d.contains("to_queue")) {
      if (!queues_.count(str(d, "to_queue")))
        return std::make_pair("data.to_queue", "unknown queue '" + str(d, "to_queue") + "'");
    } else {
      auto ait = agents_.find(str(d, "to_agent"));
      if (ait == agents_.end() || !ait->second.logged_in)
        return std::make_pair("data.to_agent", "agent is not logged in");
      if (ait->second.id == c.agent)
        return std::make_pair("data.to_agent", "conversation is already with this agent");
      if (ait->second.status != "available" || !has_free_slot(ait->second, c.channel))
        return std::make_pair("data.to_agent", "agent has no free capacity for channel '" +
                                                   c.channel + "'");
    }
  } else if (f.type == "conversation.ended") {
    if (c.state == conversation_state::wrap_up)
      return std::make_pair("data.conversation", "conversation has already ended");
  } else if (f.type == "conversation.wrapped_up") {
    if (c.state != conversation_state::wrap_up || c.agent != str(d, "agent"))
      return std::make_pair("data.agent", "conversation is not in wrap-up with this agent");
  }
  return std::nullopt;
}

void Tenant::decide(const Envelope& f, std::vector<Envelope>& out) {
  const json& d = f.data;
  const std::string& t = f.type;
  if (t == "queue.configured") {
    dispatch_queue(f, str(d, "queue"), out);
  } else if (t == "agent.logged_in") {
    dispatch_agent(f, str(d, "agent"), out);
  } else if (t == "agent.status_changed" || t == "agent.logged_out") {
    Agent& a = agents_.at(str(d, "agent"));
    if (a.status == "available") {
      dispatch_agent(f, a.id, out);
    } else {
      requeue_offers_of(f, a, out);
    }
  } else if (t == "conversation.started") {
    Conversation& c = conversations_.at(str(d, "conversation"));
    if (!c.queue.empty() && !(d.contains("bot") && d["bot"].is_boolean() && d["bot"].get<bool>())) {
      out.push_back(decision(f, "conversation.queued",
                             {{"conversation", c.id}, {"queue", c.queue}, {"priority", c.priority}}));
      dispatch_queue(f, c.queue, out);
    }
  } else if (t == "conversation.handoff_requested") {
    Conversation& c = conversations_.at(str(d, "conversation"));
    std::string q = str(d, "queue").empty() ? c.queue : str(d, "queue");
    out.push_back(decision(f, "conversation.queued",
                           {{"conversation", c.id}, {"queue", q}, {"priority", c.priority}}));
    dispatch_queue(f, q, out);
  } else if (t == "conversation.transfer_requested") {
    Conversation& c = conversations_.at(str(d, "conversation"));
    std::string previous = c.agent;
    if (d.contains("to_queue")) {
      std::string q = str(d, "to_queue");
      out.push_back(decision(f, "conversation.queued",
                             {{"conversation", c.id}, {"queue", q}, {"priority", c.priority}}));
      dispatch_queue(f, q, out);
    } else {
      offer(f, c, agents_.at(str(d, "to_agent")), out);
    }
    if (!previous.empty()) dispatch_agent(f, previous, out);
  } else if (t == "offer.accepted") {
    Conversation& c = conversations_.at(str(d, "conversation"));
    out.push_back(decision(f, "conversation.assigned", {{"conversation", c.id}, {"agent", c.agent}}));
  } else if (t == "offer.declined") {
    Conversation& c = conversations_.at(str(d, "conversation"));
    std::string agent = c.agent;
    out.push_back(decision(f, "conversation.queued",
                           {{"conversation", c.id}, {"queue", c.queue}, {"priority", c.priority}}));
    dispatch_queue(f, c.queue, out);
    dispatch_agent(f, agent, out);
  } else if (t == "conversation.ended") {
    Conversation& c = conversations_.at(str(d, "conversation"));
    if (c.state == conversation_state::queued || c.state == conversation_state::offered) {
      std::string agent = c.agent;
      int64_t waited_ms = f.time_ms - c.enqueued_ms;
      out.push_back(decision(f, "conversation.abandoned",
                             {{"conversation", c.id},
                              {"queue", c.queue},
                              {"waited_s", static_cast<double>(waited_ms) / 1000.0}}));
      out.push_back(decision(f, "conversation.closed", {{"conversation", c.id}}));
      if (!agent.empty()) dispatch_agent(f, agent, out);
    } else if (c.state == conversation_state::bot) {
      out.push_back(decision(f, "conversation.closed", {{"conversation", c.id}}));
    }
    // assigned: the fact moved it to wrap-up; it closes on conversation.wrapped_up.
  } else if (t == "conversation.wrapped_up") {
    Conversation& c = conversations_.at(str(d, "conversation"));
    std::string agent = c.agent;
    out.push_back(decision(f, "conversation.closed", {{"conversation", c.id}}));
    dispatch_agent(f, agent, out);
  }
}

std::string Tenant::slot_of(const Agent& a, const std::string& channel) const {
  if (a.capacity.count(channel)) return channel;
  if (channel == "voice" || channel == "email") return channel;
  return "chat";
}

bool Tenant::has_free_slot(const Agent& a, const std::string& channel) const {
  std::string slot = slot_of(a, channel);
  auto cap = a.capacity.find(slot);
  if (cap == a.capacity.end()) return false;
  auto load = a.load.find(slot);
  return (load == a.load.end() ? 0 : load->second) < cap->second;
}

bool Tenant::eligible(const Agent& a, const Conversation& c) const {
  if (!a.logged_in || a.status != "available" || c.declined_by.count(a.id)) return false;
  auto members = queue_agents_.find(c.queue);
  return members != queue_agents_.end() && members->second.count(a.id) &&
         has_free_slot(a, c.channel);
}

void Tenant::offer(const Envelope& f, Conversation& c, const Agent& a, std::vector<Envelope>& out) {
  auto q = queues_.find(c.queue);
  if (q != queues_.end() && q->second.auto_accept) {
    out.push_back(decision(f, "conversation.assigned", {{"conversation", c.id}, {"agent", a.id}}));
    return;
  }
  int64_t timeout = q != queues_.end() ? q->second.offer_timeout_ms : 30000;
  out.push_back(decision(f, "conversation.offered",
                         {{"conversation", c.id},
                          {"agent", a.id},
                          {"offer", "o-" + std::to_string(next_seq_)},
                          {"expires_at", events::format_rfc3339_ms(f.time_ms + timeout)}}));
}

// Longest idle: the agent whose last assignment is oldest; ties go to the smaller agent id.
void Tenant::dispatch_queue(const Envelope& f, const std::string& queue, std::vector<Envelope>& out) {
  auto q = queues_.find(queue);
  auto members = queue_agents_.find(queue);
  if (q == queues_.end() || members == queue_agents_.end() || q->second.waiting.empty()) return;
  // The members that could take anything now, in agent id order. Under load this is usually
  // nobody, and the waiting conversations need not be looked at.
  std::vector<const Agent*> ready;
  for (const auto& id : members->second) {
    const Agent& a = agents_.at(id);
    if (!a.logged_in || a.status != "available") continue;
    for (const auto& [slot, cap] : a.capacity) {
      auto load = a.load.find(slot);
      if ((load == a.load.end() ? 0 : load->second) < cap) {
        ready.push_back(&a);
        break;
      }
    }
  }
  if (ready.empty()) return;
  std::vector<wait_key> waiting(q->second.waiting.begin(), q->second.waiting.end());
  for (const auto& key : waiting) {
    Conversation& c = conversations_.at(std::get<3>(key));
    const Agent* best = nullptr;
    for (const Agent* a : ready) {
      if (!eligible(*a, c)) continue;
      if (!best || a->last_assigned_ms < best->last_assigned_ms) best = a;
    }
    if (best) offer(f, c, *best, out);
  }
}

// The oldest wait (by priority, then age) among the agent's queues that it can serve.
void Tenant::dispatch_agent(const Envelope& f, const std::string& agent, std::vector<Envelope>& out) {
  auto ait = agents_.find(agent);
  if (ait == agents_.end()) return;
  Agent& a = ait->second;
  for (;;) {
    Conversation* best = nullptr;
    for (const auto& qname : a.queues) {
      auto q = queues_.find(qname);
      if (q == queues_.end()) continue;
      for (const auto& key : q->second.waiting) {
        Conversation& c = conversations_.at(std::get<3>(key));
        if (!eligible(a, c)) continue;
        if (!best || c.key() < best->key()) best = &c;
        break;  // later conversations of this queue wait less
      }
    }
    if (!best) return;
    offer(f, *best, a, out);
  }
}

void Tenant::requeue_offers_of(const Envelope& f, Agent& a, std::vector<Envelope>& out) {
  std::vector<std::string> offered;
  for (const auto& cid : a.work)
    if (conversations_.at(cid).state == conversation_state::offered) offered.push_back(cid);
  std::set<std::string> queues;
  for (const auto& cid : offered) {
    Conversation& c = conversations_.at(cid);
    out.push_back(decision(f, "conversation.queued",
                           {{"conversation", c.id}, {"queue", c.queue}, {"priority", c.priority}}));
    queues.insert(c.queue);
  }
  for (const auto& q : queues) dispatch_queue(f, q, out);
}

// ---- applying -------------------------------------------------------------------------------

void Tenant::evict_closed_before(int64_t time_ms) {
  while (!closed_.empty() && closed_.front().first < time_ms) {
    auto it = conversations_.find(closed_.front().second);
    if (it != conversations_.end() && it->second.state == conversation_state::closed &&
        it->second.last_ms <= closed_.front().first)
      conversations_.erase(it);
    closed_.pop_front();
  }
}

void Tenant::apply(const Envelope& e) {
  if (e.seq && e.seq->value() + 1 > next_seq_) next_seq_ = e.seq->value() + 1;
  evict_closed_before(e.time_ms - closed_retention_ms);
  switch (events::kind_of(e.type)) {
    case events::event_kind::fact: apply_fact(e); break;
    case events::event_kind::decision: apply_decision(e); break;
    case events::event_kind::unknown: break;
  }
}

void Tenant::touch_agent(const Agent& a) {
  touched_.agents.insert(a.id);
  for (const auto& q : a.queues) touched_.queues.insert(q);
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

void Tenant::apply_fact(const Envelope& e) {
  const json& d = e.data;
  const std::string& t = e.type;
  if (t == "queue.configured") {
    const std::string& id = str(d, "queue");
    Queue& q = queues_[id];
    q.config = d;
    q.channels.clear();
    if (d.contains("channels"))
      for (const auto& ch : d["channels"]) q.channels.push_back(ch.get<std::string>());
    q.auto_accept = d.value("auto_accept", false);
    q.priority = d.value("priority", 0);
    q.offer_timeout_ms = static_cast<int64_t>(d.value("offer_timeout_s", 30.0) * 1000);
    touched_.queues.insert(id);
    return;
  }
  if (is_agent_fact(t)) {
    Agent& a = agents_[str(d, "agent")];
    a.last_ms = std::max(a.last_ms, e.time_ms);
    if (t == "agent.logged_in") {
      bool fresh = a.id.empty();
      a.id = str(d, "agent");
      for (const auto& q : a.queues) {
        queue_agents_[q].erase(a.id);
        touched_.queues.insert(q);
      }
      a.queues.clear();
      if (d.contains("queues"))
        for (const auto& q : d["queues"]) a.queues.push_back(q.get<std::string>());
      for (const auto& q : a.queues) queue_agents_[q].insert(a.id);
      a.capacity.clear();
      if (d.contains("capacity")) {
        for (const auto& [ch, n] : d["capacity"].items()) a.capacity[ch] = n.get<int>();
      } else {
        a.capacity = {{"voice", 1}, {"chat", 1}, {"email", 1}};
      }
      a.skills = d.value("skills", json::object());
      a.attributes = d.value("attributes", json::object());
      a.logged_in = true;
      a.status = "available";
      if (fresh || a.work.empty()) a.last_assigned_ms = e.time_ms;
    } else if (t == "agent.status_changed") {
      a.status = str(d, "status");
    } else if (t == "agent.logged_out") {
      a.logged_in = false;
      a.status = "offline";
    } else if (t == "agent.heartbeat") {
      a.last_heartbeat_ms = e.time_ms;
    }
    touch_agent(a);
    return;
  }
  if (!is_conversation_fact(t)) return;
  const std::string& cid = str(d, "conversation");
  if (t == "conversation.started") {
    Conversation& c = conversations_[cid];
    c.id = cid;
    c.customer = str(d, "customer");
    c.channel = str(d, "channel");
    c.queue = str(d, "queue");
    c.intent = str(d, "intent");
    auto q = queues_.find(c.queue);
    c.priority = d.contains("priority") ? d["priority"].get<int>()
                                         : (q != queues_.end() ? q->second.priority : 0);
    c.attributes = d.value("attributes", json::object());
    c.started_ms = c.last_ms = e.time_ms;
    c.state = conversation_state::bot;
    touched_.conversations.insert(cid);
    return;
  }
  auto it = conversations_.find(cid);
  if (it == conversations_.end()) return;
  Conversation& c = it->second;
  c.last_ms = std::max(c.last_ms, e.time_ms);
  touched_.conversations.insert(cid);
  if (t == "conversation.intent_detected") {
    c.intent = str(d, "intent");
  } else if (t == "offer.declined") {
    c.declined_by.insert(str(d, "agent"));
  } else if (t == "conversation.ended" && c.state == conversation_state::assigned) {
    c.state = conversation_state::wrap_up;
  }
}

void Tenant::apply_decision(const Envelope& e) {
  const json& d = e.data;
  const std::string& t = e.type;
  if (t == "event.refused" || t == "arbitration.decided") return;
  auto it = conversations_.find(str(d, "conversation"));
  if (it == conversations_.end()) return;
  Conversation& c = it->second;
  touched_.conversations.insert(c.id);
  auto unwait = [&] {
    auto q = queues_.find(c.queue);
    if (q != queues_.end() && q->second.waiting.erase(c.key())) touched_.queues.insert(c.queue);
  };
  if (t == "conversation.queued") {
    unwait();
    release(c);
    c.queue = str(d, "queue");
    c.priority = d.value("priority", c.priority);
    if (c.enqueued_ms < 0) {  // a conversation keeps its age when it comes back to a queue
      c.enqueued_ms = e.time_ms;
      c.order = e.seq ? e.seq->value() : 0;
    }
    c.state = conversation_state::queued;
    queues_[c.queue].waiting.insert(c.key());
    touched_.queues.insert(c.queue);
  } else if (t == "conversation.offered") {
    unwait();
    release(c);
    Agent& a = agents_[str(d, "agent")];
    reserve(a, c);
    c.offer = str(d, "offer");
    c.offer_expires_ms = events::parse_rfc3339_ms(str(d, "expires_at")).value_or(e.time_ms);
    c.state = conversation_state::offered;
  } else if (t == "conversation.assigned") {
    const std::string& agent = str(d, "agent");
    if (c.state != conversation_state::offered || c.agent != agent) {
      unwait();
      release(c);
      reserve(agents_[agent], c);
    }
    c.offer.clear();
    c.state = conversation_state::assigned;
    Agent& a = agents_[agent];
    a.last_assigned_ms = e.time_ms;
    touch_agent(a);
  } else if (t == "conversation.abandoned") {
    unwait();
    release(c);
  } else if (t == "conversation.closed") {
    unwait();
    release(c);
    c.state = conversation_state::closed;
    c.last_ms = std::max(c.last_ms, e.time_ms);
    closed_.emplace_back(c.last_ms, c.id);
  }
}

// ---- views ----------------------------------------------------------------------------------

std::optional<json> Tenant::conversation_view(const std::string& id) const {
  auto it = conversations_.find(id);
  if (it == conversations_.end()) return std::nullopt;
  const Conversation& c = it->second;
  json v = {{"conversation", c.id},
            {"tenant", name_},
            {"state", to_string(c.state)},
            {"customer", c.customer},
            {"channel", c.channel},
            {"priority", c.priority},
            {"started_at", events::format_rfc3339_ms(c.started_ms)},
            {"updated_at", events::format_rfc3339_ms(c.last_ms)},
            {"declined_by", c.declined_by},
            {"attributes", c.attributes}};
  if (!c.queue.empty()) v["queue"] = c.queue;
  if (!c.intent.empty()) v["intent"] = c.intent;
  if (c.enqueued_ms >= 0) v["queued_at"] = events::format_rfc3339_ms(c.enqueued_ms);
  if (!c.agent.empty()) v["agent"] = c.agent;
  if (!c.offer.empty()) {
    v["offer"] = c.offer;
    v["offer_expires_at"] = events::format_rfc3339_ms(c.offer_expires_ms);
  }
  return v;
}

std::optional<json> Tenant::agent_view(const std::string& id) const {
  auto it = agents_.find(id);
  if (it == agents_.end()) return std::nullopt;
  const Agent& a = it->second;
  return json{{"agent", a.id},
              {"tenant", name_},
              {"status", a.status},
              {"logged_in", a.logged_in},
              {"capacity", a.capacity},
              {"load", a.load},
              {"queues", a.queues},
              {"conversations", a.work},
              {"skills", a.skills},
              {"attributes", a.attributes},
              {"last_assigned_at", events::format_rfc3339_ms(a.last_assigned_ms)}};
}

std::optional<json> Tenant::queue_view(const std::string& id) const {
  auto q = queues_.find(id);
  auto members = queue_agents_.find(id);
  if (q == queues_.end() && members == queue_agents_.end()) return std::nullopt;
  json v = {{"queue", id}, {"tenant", name_}, {"configured", q != queues_.end()}};
  json waiting = json::array();
  if (q != queues_.end()) {
    v["config"] = q->second.config;
    for (const auto& key : q->second.waiting) {
      if (waiting.size() == 100) break;
      waiting.push_back(std::get<3>(key));
    }
    v["waiting"] = q->second.waiting.size();
    if (!q->second.waiting.empty())
      v["oldest_waiting_since"] = events::format_rfc3339_ms(std::get<1>(*q->second.waiting.begin()));
  } else {
    v["waiting"] = 0;
  }
  v["waiting_conversations"] = std::move(waiting);
  json available = json::array();
  size_t logged_in = 0;
  if (members != queue_agents_.end()) {
    for (const auto& aid : members->second) {
      const Agent& a = agents_.at(aid);
      if (!a.logged_in) continue;
      ++logged_in;
      bool free = false;
      for (const auto& [slot, cap] : a.capacity) {
        auto l = a.load.find(slot);
        if ((l == a.load.end() ? 0 : l->second) < cap) free = true;
      }
      if (a.status == "available" && free) available.push_back(aid);
    }
  }
  v["agents_logged_in"] = logged_in;
  v["agents_available"] = available.size();
  v["available_agents"] = std::move(available);
  return v;
}

std::map<std::string, size_t> Tenant::queue_depths() const {
  std::map<std::string, size_t> out;
  for (const auto& [id, q] : queues_) out[id] = q.waiting.size();
  return out;
}

std::map<std::string, size_t> Tenant::agents_by_status() const {
  std::map<std::string, size_t> out{{"available", 0}, {"away", 0}, {"offline", 0}};
  for (const auto& [id, a] : agents_) ++out[a.status];
  return out;
}

}  // namespace omniroute::routing
