// Invariants of the routing engine over generated event sequences on generated queue and agent
// configurations (tests/actors/invariants_test.cpp: thousands of seeded ones; tests/fuzz, target
// routing: ones a fuzzer's bytes choose). After every fact, checked on the views (kept up to
// date the way the projections are, from the touched entities):
// - no agent holds more work on a slot than its capacity, and its load equals its work;
// - no conversation is with two agents, and agent and conversation agree on who has what;
// - no offer is older than its timeout (the tenant's clock has not reached its expiry);
// - every conversation is in one defined state, consistent with its queue and agent.
// At the end of each sequence the journal is replayed into a fresh tenant: every view equals
// the live one, and the views kept from touched entities equal freshly computed ones.
#pragma once

#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "actors/routing.hpp"
#include "events/time.hpp"
#include "tests/support/support.hpp"

namespace omniroute::testing::invariants {

using namespace omniroute::routing;
using events::json;

constexpr int64_t origin_ms = 1795168800000;

// Journal entries by type over all sequences: shows what the generated streams exercised.
inline std::map<std::string, int64_t>& seen() {
  static std::map<std::string, int64_t> counts;
  return counts;
}

// The choices of a sequence: drawn from a seeded generator, or read from bytes (a fuzzer's
// input, tests/fuzz: each choice takes the next bytes, and once they run out every choice is
// the first, and exhausted() says so).
class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}
  explicit Generator(std::string_view bytes) : bytes_(bytes), from_bytes_(true) {}
  int between(int lo, int hi) {
    if (!from_bytes_) return std::uniform_int_distribution<int>(lo, hi)(rng_);
    const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
    return lo + static_cast<int>(next(span > 256 ? 2 : 1) % span);
  }
  bool chance(double p) {
    if (!from_bytes_) return std::uniform_real_distribution<double>(0, 1)(rng_) < p;
    return static_cast<double>(next(1)) < p * 256;
  }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(between(0, static_cast<int>(v.size()) - 1))];
  }
  bool exhausted() const { return from_bytes_ && at_ >= bytes_.size(); }

 private:
  uint64_t next(int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i)
      v = v << 8 | (at_ < bytes_.size() ? static_cast<uint8_t>(bytes_[at_++]) : 0u);
    return v;
  }
  std::mt19937_64 rng_;
  std::string_view bytes_;
  size_t at_ = 0;
  bool from_bytes_ = false;
};

inline std::string slot_of(const json& capacity, const std::string& channel) {
  if (capacity.contains(channel) || channel == "voice" || channel == "email") return channel;
  return "chat";
}

// One sequence: configures queues and agents, sends `facts` facts (fewer when the generator's
// bytes run out), checks the invariants after each, and replays the journal at the end. The
// first problem found ends it: failure() says what, with the last journal entries.
class Run {
 public:
  explicit Run(uint64_t seed) : g_(seed) {}
  explicit Run(std::string_view bytes) : g_(bytes) {}

  void go(int facts) {
    configure();
    for (int i = 0; i < facts && !g_.exhausted(); ++i) {
      step();
      check();
      if (failed_) return;
    }
    verify_replay();
  }

  bool failed() const { return failed_; }
  const std::string& failure() const { return failure_; }

 private:
  void send(const std::string& type, json data, int64_t time_ms) {
    auto parsed = events::parse_fact(testing::event("g-" + std::to_string(n_++), type,
                                                    events::format_rfc3339_ms(time_ms), data));
    if (!parsed) return;  // the generator made something the front door refuses: skip it
    Outcome out = tenant_.handle(std::move(parsed.value()));
    for (const auto& e : out.entries) {
      journal_.push_back(events::to_text(e));
      ++seen()[e.type];
    }
    Touched t = tenant_.take_touched();
    for (const auto& id : t.conversations) {
      const std::string text = *tenant_.conversation_text(id);
      conversations_[id] = json::parse(text);
      if (conversations_[id].dump() != text)
        fail("conversation " + id + ": its text is not what json writes: " + text);
    }
    for (const auto& id : t.journeys.customers)
      if (auto text = tenant_.customer_text(id); json::parse(*text).dump() != *text)
        fail("customer " + id + ": its text is not what json writes: " + *text);
    for (const auto& [customer, conversation] : t.journeys.visits)
      if (auto v = tenant_.visit_text(customer, conversation);
          v && json::parse(v->second).dump() != v->second)
        fail("journey of " + customer + ": its text is not what json writes: " + v->second);
    for (const auto& id : t.agents) agents_[id] = *tenant_.agent_view(id);
    for (const auto& id : t.queues)
      if (auto v = tenant_.queue_view(id)) queues_[id] = *v;
    last_ = out;
  }
  void send(const std::string& type, json data) {
    now_ += g_.between(0, 15) * 1000 + g_.between(0, 999);
    send(type, std::move(data), now_);
  }

  void configure() {
    const int nq = g_.between(2, 4);
    std::vector<std::string> requirements = {"", "", "agent.skills.s1 >= 2",
                                             "agent.skills.s1 >= 3 OR conversation.priority > 3",
                                             "conversation.language IN agent.languages"};
    for (int i = 0; i < nq; ++i) {
      std::string id = "q" + std::to_string(i);
      json d = {{"queue", id},
                {"strategy", g_.pick<std::string>({"longest_idle", "least_occupied", "round_robin",
                                                   "most_proficient"})},
                {"auto_accept", g_.chance(0.3)},
                {"offer_timeout_s", g_.between(5, 40)},
                {"requirement", g_.pick(requirements)},
                {"skill", "s1"},
                {"no_answer_limit", g_.between(0, 3)},
                {"reopen_window_s", g_.between(0, 3600)},
                {"reopen_preference_s", g_.between(0, 60)}};
      if (g_.chance(0.5))
        d["channels"] = g_.chance(0.5) ? json{"web", "wechat", "voice"} : json{"web", "email"};
      if (g_.chance(0.5)) d["wrap_up_s"] = g_.between(10, 60);
      if (g_.chance(0.3)) d["handoff_below_confidence"] = 0.5;
      if (g_.chance(0.6)) {
        json relax = json::array({{{"after_s", g_.between(5, 30)}, {"requirement", ""}}});
        if (i > 0 && g_.chance(0.6))
          relax.push_back({{"after_s", g_.between(31, 90)},
                           {"overflow_to", "q" + std::to_string(g_.between(0, i - 1))}});
        d["relax"] = relax;
      }
      queues_list_.push_back(id);
      send("queue.configured", d);
    }
    const int na = g_.between(3, 8);
    for (int i = 0; i < na; ++i) agents_list_.push_back("a" + std::to_string(i));
    for (const auto& a : agents_list_) login(a);
  }

  void login(const std::string& a) {
    json capacity = {
        {"chat", g_.between(1, 3)}, {"voice", g_.between(0, 1)}, {"email", g_.between(0, 2)}};
    json queues = json::array();
    for (const auto& q : queues_list_)
      if (g_.chance(0.5)) queues.push_back(q);
    if (queues.empty()) queues.push_back(g_.pick(queues_list_));
    json d = {{"agent", a},
              {"capacity", capacity},
              {"queues", queues},
              {"skills", {{"s1", g_.between(1, 5)}}},
              {"attributes", {{"languages", g_.chance(0.5) ? json{"en"} : json{"en", "zh"}}}}};
    if (g_.chance(0.3))
      d["blocks"] = g_.chance(0.5) ? json{{"voice", {"chat", "email"}}} : json{{"voice", {"*"}}};
    if (g_.chance(0.2)) d["heartbeat_timeout_s"] = g_.between(30, 90);
    send("agent.logged_in", d);
  }

  // Ids of conversations (from the views) whose state is one of `states`.
  std::vector<std::string> in_state(std::initializer_list<const char*> states) {
    std::vector<std::string> out;
    for (const auto& [id, v] : conversations_)
      for (const char* s : states)
        if (v["state"] == s) out.push_back(id);
    return out;
  }

  void step() {
    const int what = g_.between(0, 99);
    auto some = [&](std::initializer_list<const char*> states) -> std::optional<std::string> {
      auto ids = in_state(states);
      if (ids.empty()) return std::nullopt;
      return g_.pick(ids);
    };
    if (what < 22) {
      std::string id = "c" + std::to_string(conversations_started_++);
      json d = {{"conversation", id},
                {"customer", "u" + std::to_string(g_.between(0, 9))},
                {"channel", g_.pick<std::string>({"web", "web", "wechat", "voice", "email"})},
                {"queue", g_.pick(queues_list_)},
                {"language", g_.chance(0.7) ? "en" : "zh"}};
      if (g_.chance(0.2)) d["bot"] = true;
      if (g_.chance(0.2)) d["priority"] = g_.between(0, 9);
      send("conversation.started", d);
    } else if (what < 36) {
      if (auto c = some({"offered"})) {
        const json& v = conversations_[*c];
        std::string offer = g_.chance(0.9) ? v["offer"].get<std::string>() : "o-stale";
        send(g_.chance(0.8) ? "offer.accepted" : "offer.declined",
             {{"conversation", *c}, {"agent", v["agent"]}, {"offer", offer}});
      }
    } else if (what < 48) {
      if (auto c = some({"queued", "offered", "assigned", "bot"}))
        send("conversation.ended",
             {{"conversation", *c}, {"by", g_.pick<std::string>({"customer", "agent"})}});
    } else if (what < 56) {
      if (auto c = some({"wrap_up"}))
        send("conversation.wrapped_up",
             {{"conversation", *c}, {"agent", conversations_[*c]["agent"]}});
    } else if (what < 60) {
      if (auto c = some({"queued", "offered", "assigned"})) {
        if (g_.chance(0.5))
          send("conversation.transfer_requested",
               {{"conversation", *c}, {"to_queue", g_.pick(queues_list_)}});
        else
          send("conversation.transfer_requested",
               {{"conversation", *c}, {"to_agent", g_.pick(agents_list_)}});
      }
    } else if (what < 65) {
      if (auto c = some({"bot"})) {
        if (g_.chance(0.5))
          send("conversation.handoff_requested", {{"conversation", *c}, {"reason", "asked"}});
        else
          send("conversation.intent_detected",
               {{"conversation", *c}, {"intent", "x"}, {"confidence", g_.between(0, 10) / 10.0}});
      }
    } else if (what < 68) {
      if (auto c = some({"queued", "offered"}))
        send("conversation.priority_changed",
             {{"conversation", *c}, {"priority", g_.between(0, 9)}});
    } else if (what < 71) {
      if (auto c = some({"closed"})) send("conversation.reopened", {{"conversation", *c}});
    } else if (what < 79) {
      const std::string a = g_.pick(agents_list_);
      send("agent.status_changed",
           {{"agent", a},
            {"status", g_.pick<std::string>({"available", "available", "away", "offline"})}});
    } else if (what < 81) {
      send("agent.logged_out", {{"agent", g_.pick(agents_list_)}});
    } else if (what < 84) {
      // Logs in again only an agent without work: a smaller capacity under load is not a
      // capacity violation the engine could prevent.
      const std::string a = g_.pick(agents_list_);
      if (agents_[a]["conversations"].empty()) login(a);
    } else if (what < 90) {
      send("agent.heartbeat", {{"agent", g_.pick(agents_list_)}});
    } else if (what < 98) {
      send("clock.tick", json::object());
    } else if (what < 99) {
      // An event from the past: entity facts are refused, the rest are fine.
      if (auto c = some({"queued", "offered", "assigned"}))
        send("conversation.ended", {{"conversation", *c}, {"by", "customer"}}, now_ - 60000);
    } else {
      send("queue.configured", {{"queue", g_.pick(queues_list_)}, {"auto_accept", g_.chance(0.5)}});
    }
  }

  void fail(const std::string& what) {
    if (failed_) return;
    failed_ = true;
    std::string tail;
    for (size_t i = journal_.size() > 8 ? journal_.size() - 8 : 0; i < journal_.size(); ++i)
      tail += journal_[i] + "\n";
    failure_ = what + "\nlast journal entries:\n" + tail;
  }

  void check() {
    const int64_t clock = tenant_.clock_ms();
    std::map<std::string, std::string> holder;  // conversation -> agent whose work lists it
    for (const auto& [aid, a] : agents_) {
      std::map<std::string, int> load;
      for (const auto& cid : a["conversations"]) {
        const std::string c = cid.get<std::string>();
        if (holder.count(c))
          return fail("conversation " + c + " is with " + holder[c] + " and " + aid);
        holder[c] = aid;
        const json& cv = conversations_.at(c);
        ++load[slot_of(a["capacity"], cv["channel"])];
      }
      // A login that lowers the capacity of an agent with work (timers may give it work in the
      // instant before the login) leaves a slot above capacity until that work ends; the slot
      // must get no new work meanwhile.
      const bool relogged = last_.fact && last_.entries[*last_.fact].type == "agent.logged_in" &&
                            last_.entries[*last_.fact].data["agent"] == aid;
      auto& over = over_capacity_[aid];
      if (relogged) over.clear();
      for (const auto& [slot, n] : load) {
        const int cap = a["capacity"].value(slot, 0);
        auto was = over.find(slot);
        if (n > cap && relogged) {
          over[slot] = n;
        } else if (was != over.end()) {
          if (n > was->second)
            return fail("agent " + aid + " got new " + slot + " work above its capacity");
          if (n <= cap)
            over.erase(was);
          else
            was->second = n;
        } else if (n > cap) {
          return fail("agent " + aid + " holds " + std::to_string(n) + " on " + slot +
                      ", capacity " + std::to_string(cap));
        }
        if (a["load"].value(slot, 0) != n)
          return fail("agent " + aid + " load on " + slot + " disagrees with its work");
      }
    }
    std::map<std::string, std::set<std::string>> waiting;
    std::map<std::string, size_t> queued_in;
    for (const auto& [qid, q] : queues_)
      for (const auto& c : q["waiting_conversations"]) waiting[qid].insert(c.get<std::string>());
    for (const auto& [cid, c] : conversations_) {
      const std::string state = c["state"];
      const bool has_agent = c.contains("agent");
      const bool is_waiting =
          c.contains("queue") && waiting[c["queue"].get<std::string>()].count(cid);
      if (has_agent != holder.count(cid) || (has_agent && holder[cid] != c["agent"]))
        return fail("conversation " + cid + " and the agents disagree on who has it");
      if (state == "offered") {
        if (!has_agent || !c.contains("offer"))
          return fail("offered " + cid + " without agent or offer");
        auto expires = events::parse_rfc3339_ms(c["offer_expires_at"].get<std::string>());
        if (*expires <= clock) return fail("offer of " + cid + " outlived its timeout");
        if (is_waiting) return fail("offered " + cid + " also waits in its queue");
      } else if (state == "assigned" || state == "wrap_up") {
        if (!has_agent || c.contains("offer"))
          return fail(state + " " + cid + " without an agent, or with an offer");
        if (is_waiting) return fail(state + " " + cid + " also waits in its queue");
      } else if (state == "queued") {
        // The view lists the first view_list_limit waiting; the count covers all of them.
        const json& q = queues_.at(c["queue"].get<std::string>());
        ++queued_in[c["queue"].get<std::string>()];
        if (has_agent || (!is_waiting && q["waiting"].get<size_t>() <= Tenant::view_list_limit))
          return fail("queued " + cid + " not waiting in its queue, or with an agent");
      } else if (state == "bot" || state == "closed") {
        if (has_agent || is_waiting) return fail(state + " " + cid + " with an agent or waiting");
      } else {
        return fail("conversation " + cid + " in an undefined state " + state);
      }
    }
    // Free slots and available agents per queue, recomputed from the agent views.
    for (const auto& [qid, q] : queues_) {
      if (!q.contains("config")) continue;
      const json channels = q["config"].value("channels", json::array());
      int64_t free = 0, available = 0;
      for (const auto& [aid, a] : agents_) {
        if (!a["logged_in"].get<bool>() || a["status"] != "available") continue;
        bool member = false;
        for (const auto& m : a["queues"]) member = member || m == qid;
        if (!member) continue;
        int64_t mine = 0;
        const json blocks = a.value("blocks", json::object());
        for (const auto& [slot, cap] : a["capacity"].items()) {
          bool used = channels.empty();
          for (const auto& ch : channels) used = used || slot_of(a["capacity"], ch) == slot;
          const int load = a["load"].value(slot, 0);
          bool blocked = false;
          for (const auto& [blocking, list] : blocks.items())
            if (blocking != slot && a["load"].value(blocking, 0) > 0)
              for (const auto& b : list) blocked = blocked || b == "*" || b == slot;
          if (used && !blocked && load < cap.get<int>()) mine += cap.get<int>() - load;
        }
        free += mine;
        available += mine > 0 ? 1 : 0;
      }
      if (q["free_slots"] != free || q["agents_available"] != available)
        return fail("queue " + qid + " counts " + q["free_slots"].dump() + " free slots and " +
                    q["agents_available"].dump() + " agents available; its agents have " +
                    std::to_string(free) + " and " + std::to_string(available));
    }
    for (const auto& [qid, q] : queues_)
      if (q.contains("waiting") && q["waiting"] != queued_in[qid])
        return fail("queue " + qid + " counts " + q["waiting"].dump() + " waiting, " +
                    std::to_string(queued_in[qid]) + " conversations are queued in it");
    for (const auto& [qid, ids] : waiting)
      for (const auto& cid : ids)
        if (conversations_.at(cid)["state"] != "queued")
          return fail("queue " + qid + " lists " + cid + " that is not queued");
  }

  void verify_replay() {
    Tenant replayed("acme");
    for (const auto& text : journal_) replayed.apply(*events::read_envelope_text(text));
    for (const auto& [id, v] : conversations_) {
      if (*tenant_.conversation_view(id) != v)
        return fail("conversation " + id + ": view kept from touched entities is stale");
      if (replayed.conversation_view(id) != tenant_.conversation_view(id))
        return fail("replay differs: conversation " + id);
    }
    for (const auto& [id, v] : agents_) {
      if (*tenant_.agent_view(id) != v)
        return fail("agent " + id + ": view kept from touched entities is stale");
      if (replayed.agent_view(id) != tenant_.agent_view(id))
        return fail("replay differs: agent " + id);
    }
    for (const auto& [id, v] : queues_) {
      if (*tenant_.queue_view(id) != v)
        return fail("queue " + id + ": view kept from touched entities is stale");
      if (replayed.queue_view(id) != tenant_.queue_view(id))
        return fail("replay differs: queue " + id);
    }
    if (replayed.next_seq() != tenant_.next_seq()) fail("replay differs: next seq");
  }

  Generator g_;
  Tenant tenant_{"acme"};
  int64_t now_ = origin_ms;
  int n_ = 0, conversations_started_ = 0;
  bool failed_ = false;
  std::string failure_;
  std::vector<std::string> queues_list_, agents_list_, journal_;
  std::map<std::string, json> conversations_, agents_, queues_;
  // agent -> slot -> its work there, while above the capacity a login lowered
  std::map<std::string, std::map<std::string, int>> over_capacity_;
  Outcome last_;
};

}  // namespace omniroute::testing::invariants
