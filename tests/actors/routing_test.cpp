// Scenario tests of the routing domain: facts in, decisions out, in journal order.
#include <doctest/doctest.h>

#include "actors/routing.hpp"
#include "events/time.hpp"
#include "tests/support/support.hpp"

using namespace omniroute;
using namespace omniroute::routing;
using omniroute::testing::event;

namespace {

// Drives one tenant with facts at increasing times and records everything it journals.
struct Scenario {
  Tenant tenant{"acme"};
  std::vector<Envelope> journal;
  int n = 0;
  int64_t clock_s = 0;

  // Handles a fact `seconds` after the previous one; returns its decisions (type, data).
  std::vector<std::pair<std::string, json>> fact(const std::string& type, json data,
                                                 int seconds = 1) {
    clock_s += seconds;
    auto parsed = events::parse_fact(event("f-" + std::to_string(n++), type,
                                           events::format_rfc3339_ms(1795168800000 + clock_s * 1000),
                                           std::move(data)));
    REQUIRE_MESSAGE(parsed.has_value(), (parsed ? "" : parsed.error().reason));
    Outcome out = tenant.handle(std::move(parsed.value()));
    std::vector<std::pair<std::string, json>> decisions;
    for (size_t i = 0; i < out.entries.size(); ++i) {
      journal.push_back(out.entries[i]);
      if (out.refused || i > 0) decisions.emplace_back(out.entries[i].type, out.entries[i].data);
    }
    return decisions;
  }
  std::vector<std::string> types(const std::vector<std::pair<std::string, json>>& ds) {
    std::vector<std::string> t;
    for (const auto& d : ds) t.push_back(d.first);
    return t;
  }
  json conversation(const std::string& id) { return *tenant.conversation_view(id); }
  json agent(const std::string& id) { return *tenant.agent_view(id); }
  json queue(const std::string& id) { return *tenant.queue_view(id); }

  void configure(const std::string& q, json extra = json::object()) {
    json data = {{"queue", q}, {"channels", {"web", "wechat", "voice"}}};
    data.update(extra);
    fact("queue.configured", data);
  }
  void login(const std::string& agent, json capacity, std::vector<std::string> queues = {"billing"}) {
    fact("agent.logged_in", {{"agent", agent}, {"capacity", capacity}, {"queues", queues}});
  }
  std::vector<std::pair<std::string, json>> start(const std::string& c, const std::string& channel = "web",
                                                  const std::string& q = "billing") {
    return fact("conversation.started",
                {{"conversation", c}, {"customer", "u-" + c}, {"channel", channel}, {"queue", q}});
  }
};

using strings = std::vector<std::string>;

}  // namespace

TEST_CASE("a conversation is queued, offered, accepted, wrapped up and closed") {
  Scenario s;
  s.configure("billing", {{"offer_timeout_s", 20}});
  s.login("alice", {{"chat", 2}});
  auto ds = s.start("c-1");
  REQUIRE(s.types(ds) == strings{"conversation.queued", "conversation.offered"});
  CHECK(ds[1].second["agent"] == "alice");
  CHECK(ds[1].second["expires_at"] == events::format_rfc3339_ms(1795168800000 + 3000 + 20000));
  std::string offer = ds[1].second["offer"];
  CHECK(s.conversation("c-1")["state"] == "offered");
  CHECK(s.agent("alice")["load"]["chat"] == 1);

  ds = s.fact("offer.accepted", {{"conversation", "c-1"}, {"agent", "alice"}, {"offer", offer}});
  REQUIRE(s.types(ds) == strings{"conversation.assigned"});
  CHECK(s.conversation("c-1")["state"] == "assigned");

  ds = s.fact("conversation.ended", {{"conversation", "c-1"}, {"by", "customer"}});
  CHECK(ds.empty());
  CHECK(s.conversation("c-1")["state"] == "wrap_up");
  CHECK(s.agent("alice")["load"]["chat"] == 1);  // wrap-up still occupies the slot

  ds = s.fact("conversation.wrapped_up", {{"conversation", "c-1"}, {"agent", "alice"}});
  REQUIRE(s.types(ds) == strings{"conversation.closed"});
  CHECK(s.conversation("c-1")["state"] == "closed");
  CHECK(s.agent("alice")["load"]["chat"] == 0);
  CHECK(s.agent("alice")["conversations"].empty());
}

TEST_CASE("auto_accept queues assign without an offer") {
  Scenario s;
  s.configure("billing", {{"auto_accept", true}});
  s.login("alice", {{"voice", 1}});
  auto ds = s.start("c-1", "voice");
  REQUIRE(s.types(ds) == strings{"conversation.queued", "conversation.assigned"});
  CHECK(ds[1].second["agent"] == "alice");
}

TEST_CASE("capacity per channel is never exceeded; a freed slot takes the oldest waiting") {
  Scenario s;
  s.configure("billing", {{"auto_accept", true}});
  s.login("alice", {{"chat", 2}, {"voice", 1}});
  CHECK(s.types(s.start("c-1")) == strings{"conversation.queued", "conversation.assigned"});
  CHECK(s.types(s.start("c-2", "wechat")) == strings{"conversation.queued", "conversation.assigned"});
  CHECK(s.types(s.start("c-3")) == strings{"conversation.queued"});
  CHECK(s.types(s.start("c-4")) == strings{"conversation.queued"});
  CHECK(s.types(s.start("v-1", "voice")) == strings{"conversation.queued", "conversation.assigned"});
  CHECK(s.queue("billing")["waiting"] == 2);
  CHECK(s.queue("billing")["waiting_conversations"] == json{"c-3", "c-4"});
  CHECK(s.agent("alice")["load"] == json{{"chat", 2}, {"voice", 1}});

  s.fact("conversation.ended", {{"conversation", "c-1"}, {"by", "agent"}});
  auto ds = s.fact("conversation.wrapped_up", {{"conversation", "c-1"}, {"agent", "alice"}});
  REQUIRE(s.types(ds) == strings{"conversation.closed", "conversation.assigned"});
  CHECK(ds[1].second["conversation"] == "c-3");
}

TEST_CASE("longest idle: the agent whose last assignment is oldest gets the next conversation") {
  Scenario s;
  s.configure("billing", {{"auto_accept", true}});
  s.login("bob", {{"chat", 5}});
  s.login("alice", {{"chat", 5}});
  CHECK(s.start("c-1")[1].second["agent"] == "bob");    // logged in first: idle longest
  CHECK(s.start("c-2")[1].second["agent"] == "alice");
  CHECK(s.start("c-3")[1].second["agent"] == "bob");
}

TEST_CASE("a declined offer goes back to its queue with its age and not to the same agent") {
  Scenario s;
  s.configure("billing");
  s.login("alice", {{"chat", 1}});
  auto ds = s.start("c-1");
  std::string offer = ds[1].second["offer"];
  std::string queued_at = s.conversation("c-1")["queued_at"];
  ds = s.fact("offer.declined", {{"conversation", "c-1"}, {"agent", "alice"}, {"offer", offer}}, 5);
  REQUIRE(s.types(ds) == strings{"conversation.queued"});
  CHECK(s.conversation("c-1")["queued_at"] == queued_at);
  CHECK(s.conversation("c-1")["declined_by"] == json{"alice"});
  CHECK(s.agent("alice")["load"]["chat"] == 0);

  s.login("bob", {{"chat", 1}});
  CHECK(s.conversation("c-1")["state"] == "offered");
  CHECK(s.conversation("c-1")["agent"] == "bob");
}

TEST_CASE("a conversation that ends while waiting is abandoned with its wait") {
  Scenario s;
  s.configure("billing");
  s.start("c-1");
  auto ds = s.fact("conversation.ended", {{"conversation", "c-1"}, {"by", "customer"}}, 42);
  REQUIRE(s.types(ds) == strings{"conversation.abandoned", "conversation.closed"});
  CHECK(ds[0].second["waited_s"] == 42.0);
  CHECK(ds[0].second["queue"] == "billing");
  CHECK(s.queue("billing")["waiting"] == 0);
}

TEST_CASE("an agent going away gives its pending offers to others") {
  Scenario s;
  s.configure("billing");
  s.login("alice", {{"chat", 1}});
  s.start("c-1");
  s.login("bob", {{"chat", 1}});
  auto ds = s.fact("agent.status_changed", {{"agent", "alice"}, {"status", "away"}});
  REQUIRE(s.types(ds) == strings{"conversation.queued", "conversation.offered"});
  CHECK(ds[1].second["agent"] == "bob");
  CHECK(s.agent("alice")["load"]["chat"] == 0);
}

TEST_CASE("a bot conversation enters the queue on handoff") {
  Scenario s;
  s.configure("billing");
  s.login("alice", {{"chat", 1}});
  auto ds = s.fact("conversation.started", {{"conversation", "c-1"}, {"customer", "u-1"},
                                            {"channel", "web"}, {"queue", "billing"}, {"bot", true}});
  CHECK(ds.empty());
  CHECK(s.conversation("c-1")["state"] == "bot");
  ds = s.fact("conversation.handoff_requested", {{"conversation", "c-1"}, {"reason", "asked for a human"}});
  REQUIRE(s.types(ds) == strings{"conversation.queued", "conversation.offered"});
}

TEST_CASE("a transfer to another queue frees the agent and queues the conversation there") {
  Scenario s;
  s.configure("billing", {{"auto_accept", true}});
  s.configure("retention", {{"auto_accept", true}});
  s.login("alice", {{"chat", 1}});
  s.login("rita", {{"chat", 1}}, {"retention"});
  s.start("c-1");
  auto ds = s.fact("conversation.transfer_requested", {{"conversation", "c-1"}, {"to_queue", "retention"}});
  REQUIRE(s.types(ds) == strings{"conversation.queued", "conversation.assigned"});
  CHECK(ds[1].second["agent"] == "rita");
  CHECK(s.agent("alice")["load"]["chat"] == 0);
}

TEST_CASE("facts about unknown or closed entities, stale offers and old times are refused") {
  Scenario s;
  s.configure("billing");
  s.login("alice", {{"chat", 1}});
  auto ds = s.start("c-1");
  std::string offer = ds[1].second["offer"];
  json before = {s.conversation("c-1"), s.agent("alice"), s.queue("billing")};

  auto refused = [&](const std::string& type, json data, const std::string& field, int dt = 1) {
    auto r = s.fact(type, data, dt);
    REQUIRE(r.size() == 1);
    CHECK(r[0].first == "event.refused");
    CHECK(r[0].second["field"] == field);
    CHECK(r[0].second["type"] == type);
    return r[0].second["reason"].get<std::string>();
  };
  CHECK(refused("conversation.message", {{"conversation", "nope"}, {"from", "customer"}, {"text", "hi"}},
                "data.conversation") == "unknown conversation");
  CHECK(refused("offer.accepted", {{"conversation", "c-1"}, {"agent", "alice"}, {"offer", "o-999"}},
                "data.offer")
            .find("no pending offer") == 0);
  CHECK(refused("offer.accepted", {{"conversation", "c-1"}, {"agent", "bob"}, {"offer", offer}},
                "data.offer")
            .find("no pending offer") == 0);
  CHECK(refused("agent.status_changed", {{"agent", "zed"}, {"status", "away"}}, "data.agent") ==
        "unknown agent");
  CHECK(refused("conversation.started", {{"conversation", "c-1"}, {"customer", "u"}, {"channel", "web"}},
                "data.conversation") == "conversation already exists");
  CHECK(refused("conversation.started",
                {{"conversation", "c-2"}, {"customer", "u"}, {"channel", "web"}, {"queue", "sales"}},
                "data.queue") == "unknown queue 'sales'");
  CHECK(refused("conversation.started",
                {{"conversation", "c-2"}, {"customer", "u"}, {"channel", "email"}, {"queue", "billing"}},
                "data.channel") == "queue 'billing' does not serve channel 'email'");
  CHECK(refused("conversation.ended", {{"conversation", "c-1"}, {"by", "customer"}}, "time", -60)
            .find("out of order") == 0);
  CHECK(refused("conversation.wrapped_up", {{"conversation", "c-1"}, {"agent", "alice"}}, "data.agent", 61) ==
        "conversation is not in wrap-up with this agent");

  json after = {s.conversation("c-1"), s.agent("alice"), s.queue("billing")};
  CHECK(after == before);  // refusals change nothing
}

TEST_CASE("replaying the journal through apply rebuilds exactly the live state") {
  Scenario s;
  s.configure("billing");
  s.configure("vip", {{"auto_accept", true}, {"priority", 5}});
  s.login("alice", {{"chat", 2}, {"voice", 1}}, {"billing", "vip"});
  s.login("bob", {{"chat", 1}}, {"billing"});
  for (int i = 0; i < 12; ++i) {
    auto ds = s.start("c-" + std::to_string(i), i % 3 == 0 ? "voice" : "web", i % 4 == 0 ? "vip" : "billing");
    for (const auto& d : ds)
      if (d.first == "conversation.offered" && i % 2 == 0)
        s.fact("offer.accepted", {{"conversation", d.second["conversation"]},
                                  {"agent", d.second["agent"]}, {"offer", d.second["offer"]}});
      else if (d.first == "conversation.offered")
        s.fact("offer.declined", {{"conversation", d.second["conversation"]},
                                  {"agent", d.second["agent"]}, {"offer", d.second["offer"]}});
    if (i % 5 == 4) s.fact("conversation.ended", {{"conversation", "c-" + std::to_string(i - 2)}, {"by", "customer"}});
  }
  Tenant replayed("acme");
  for (const auto& e : s.journal) {
    auto back = events::read_envelope_text(events::to_text(e));
    REQUIRE(back.has_value());
    replayed.apply(*back);
  }
  CHECK(replayed.next_seq() == s.tenant.next_seq());
  for (int i = 0; i < 12; ++i) {
    std::string id = "c-" + std::to_string(i);
    CHECK(*replayed.conversation_view(id) == s.conversation(id));
  }
  for (const char* a : {"alice", "bob"}) CHECK(*replayed.agent_view(a) == s.agent(a));
  for (const char* q : {"billing", "vip"}) CHECK(*replayed.queue_view(q) == s.queue(q));
}

TEST_CASE("a closed conversation leaves memory a day after closing; its id may then start anew") {
  Scenario s;
  s.configure("billing", {{"auto_accept", true}});
  s.login("alice", {{"chat", 1}});
  s.start("c-1");
  s.fact("conversation.ended", {{"conversation", "c-1"}, {"by", "customer"}});
  s.fact("conversation.wrapped_up", {{"conversation", "c-1"}, {"agent", "alice"}});
  CHECK(s.conversation("c-1")["state"] == "closed");
  auto ds = s.start("c-1");  // the same day: refused
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].second["reason"] == "conversation is closed; reopen it or start a new conversation id");

  s.fact("agent.heartbeat", {{"agent", "alice"}}, 24 * 3600);  // a day later
  CHECK_FALSE(s.tenant.conversation_view("c-1").has_value());
  ds = s.start("c-1");
  REQUIRE(s.types(ds) == std::vector<std::string>{"conversation.queued", "conversation.assigned"});

  Tenant replayed("acme");  // replay forgets exactly the same conversations
  for (const auto& e : s.journal) replayed.apply(*events::read_envelope_text(events::to_text(e)));
  CHECK(*replayed.conversation_view("c-1") == s.conversation("c-1"));
  CHECK(*replayed.agent_view("alice") == s.agent("alice"));
}

TEST_CASE("a closed conversation is packed once its view is written, and is unpacked as it was") {
  // The same facts to two tenants: `s` writes its conversations' views after every fact and
  // packs the closed ones then, as the partition host does; `twin` does neither.
  Scenario s, twin;
  auto write_views = [&] {
    for (const auto& id : s.tenant.take_touched().conversations) {
      (void)s.tenant.conversation_text(id);
      s.tenant.pack_if_closed(id);
    }
  };
  auto both = [&](const std::string& type, const json& data, int seconds = 1) {
    auto decided = s.fact(type, data, seconds);
    CHECK(decided == twin.fact(type, data, seconds));
    write_views();
    return decided;
  };
  both("queue.configured", {{"queue", "billing"}, {"channels", {"web"}}, {"reopen_window_s", 3600}});
  both("agent.logged_in", {{"agent", "alice"}, {"capacity", {{"chat", 1}}}, {"queues", {"billing"}}});
  both("agent.logged_in", {{"agent", "bob"}, {"capacity", {{"chat", 1}}}, {"queues", {"billing"}}});
  auto offered = both("conversation.started", {{"conversation", "c-1"}, {"customer", "u-1"}, {"channel", "web"},
                                               {"queue", "billing"}, {"language", "zh-CN"}, {"priority", 3},
                                               {"attributes", {{"vip", true}, {"spend", 1200.5}, {"n", 7}, {"city", "\u6210\u90fd"}}}});
  REQUIRE(offered.back().first == "conversation.offered");
  const json to_alice = offered.back().second;
  both("conversation.intent_detected", {{"conversation", "c-1"}, {"intent", "refund"}, {"confidence", 0.25}});
  auto declined = both("offer.declined", {{"conversation", "c-1"}, {"agent", to_alice["agent"]}, {"offer", to_alice["offer"]}});
  REQUIRE(declined.back().first == "conversation.offered");
  const json to_bob = declined.back().second;
  both("offer.accepted", {{"conversation", "c-1"}, {"agent", to_bob["agent"]}, {"offer", to_bob["offer"]}});
  both("conversation.ended", {{"conversation", "c-1"}, {"by", "customer"}});
  both("conversation.wrapped_up", {{"conversation", "c-1"}, {"agent", to_bob["agent"]}});
  CHECK(s.tenant.packed_conversations() == 1);
  CHECK(s.tenant.conversations_in_memory() == 1);
  CHECK(twin.tenant.packed_conversations() == 0);

  // Looked at, it is what it was: its view, and a fact that it refuses.
  CHECK(s.conversation("c-1") == twin.conversation("c-1"));
  CHECK(s.conversation("c-1")["declined_by"] == json::array({to_alice["agent"]}));
  CHECK(s.tenant.packed_conversations() == 0);  // unpacked to be read
  write_views();
  CHECK(s.tenant.packed_conversations() == 1);  // and packed again, still closed
  auto refused = both("conversation.priority_changed", {{"conversation", "c-1"}, {"priority", 1}});
  CHECK(refused.at(0).second["reason"] == "conversation is closed");
  CHECK(s.tenant.packed_conversations() == 1);

  // Reopened, it routes as if it had never been packed: its last agent preferred, its priority
  // and attributes kept.
  both("conversation.reopened", {{"conversation", "c-1"}});
  CHECK(s.tenant.packed_conversations() == 0);
  CHECK(s.conversation("c-1") == twin.conversation("c-1"));
  CHECK(s.conversation("c-1")["preferred_agent"] == to_bob["agent"]);
  CHECK(s.conversation("c-1")["attributes"] == json{{"vip", true}, {"spend", 1200.5}, {"n", 7}, {"city", "\u6210\u90fd"}});

  // Closed again and packed, it is evicted a day after closing, as the twin's is.
  both("offer.accepted", {{"conversation", "c-1"}, {"agent", to_bob["agent"]},
                          {"offer", s.journal.back().data["offer"]}});
  both("conversation.ended", {{"conversation", "c-1"}, {"by", "customer"}});
  both("conversation.wrapped_up", {{"conversation", "c-1"}, {"agent", to_bob["agent"]}});
  REQUIRE(s.tenant.packed_conversations() == 1);
  both("agent.heartbeat", {{"agent", "alice"}}, 24 * 3600 + 1);
  CHECK(s.tenant.conversations_in_memory() == 0);
  CHECK(twin.tenant.conversations_in_memory() == 0);
  CHECK(s.types(both("conversation.started", {{"conversation", "c-1"}, {"customer", "u-1"}, {"channel", "web"},
                                              {"queue", "billing"}})) ==
        std::vector<std::string>{"conversation.queued", "conversation.offered"});
  for (const auto* agent : {"alice", "bob"}) CHECK(s.agent(agent) == twin.agent(agent));
}

TEST_CASE("a closed visit is packed once its document is written, and is unpacked as it was") {
  // As above for the customer's journey: `s` writes the documents of the visits it touched
  // after every fact and packs the closed ones then; `twin` does neither.
  Scenario s, twin;
  auto write_views = [&] {
    for (const auto& [customer, conversation] : s.tenant.take_touched().journeys.visits) {
      (void)s.tenant.visit_text(customer, conversation);
      s.tenant.pack_visit_if_closed(customer, conversation);
    }
  };
  auto both = [&](const std::string& type, const json& data, int seconds = 1) {
    auto decided = s.fact(type, data, seconds);
    CHECK(decided == twin.fact(type, data, seconds));
    write_views();
    return decided;
  };
  auto visit = [](Scenario& in, const std::string& conversation) { return in.tenant.visit_text("u-1", conversation); };
  both("queue.configured", {{"queue", "billing"}, {"channels", {"web"}}, {"reopen_window_s", 3600}});
  both("queue.configured", {{"queue", "sales"}, {"channels", {"web"}}});
  both("agent.logged_in", {{"agent", "bob"}, {"capacity", {{"chat", 1}}}, {"queues", {"billing", "sales"}}});
  auto offered = both("conversation.started", {{"conversation", "c-1"}, {"customer", "u-1"}, {"channel", "web"},
                                               {"queue", "billing"}, {"intent", "refund"}});
  REQUIRE(offered.back().first == "conversation.offered");
  both("offer.accepted", {{"conversation", "c-1"}, {"agent", "bob"}, {"offer", offered.back().second["offer"]}});
  both("conversation.ended", {{"conversation", "c-1"}, {"by", "customer"}, {"csat", 4}});
  CHECK(s.tenant.packed_visits() == std::pair<size_t, size_t>{0, 1});  // ended, not yet closed
  both("conversation.wrapped_up", {{"conversation", "c-1"}, {"agent", "bob"}});
  CHECK(s.tenant.packed_visits() == std::pair<size_t, size_t>{1, 1});
  CHECK(twin.tenant.packed_visits() == std::pair<size_t, size_t>{0, 1});

  // Read packed, it is what it was: its document, the features, and what the next
  // conversation's offer shows of it.
  REQUIRE(visit(s, "c-1").has_value());
  CHECK(visit(s, "c-1") == visit(twin, "c-1"));
  const json doc = json::parse(visit(s, "c-1")->second);
  CHECK(doc["agents"] == json::array({"bob"}));
  CHECK(doc["ended_by"] == "customer");
  CHECK(doc["queues"] == json::array({"billing"}));
  CHECK(doc["decisions"].size() == 4);  // queued, offered, assigned, closed
  CHECK(doc["decisions"][1]["agent"] == "bob");
  CHECK(s.tenant.packed_visits().first == 1);  // reading does not unpack
  auto next = both("conversation.started", {{"conversation", "c-2"}, {"customer", "u-1"}, {"channel", "web"},
                                            {"queue", "sales"}});
  REQUIRE(next.back().first == "conversation.offered");
  CHECK(next.back().second["journey"]["recent"][0]["intent"] == "refund");
  CHECK(next.back().second["journey"]["mean_csat"] == 4.0);
  CHECK(s.tenant.customer_view("u-1") == twin.tenant.customer_view("u-1"));

  // Reopened, it changes as if it had never been packed: its decisions, queues and agents go on.
  both("conversation.reopened", {{"conversation", "c-1"}});
  CHECK(s.tenant.packed_visits().first == 0);
  CHECK(visit(s, "c-1") == visit(twin, "c-1"));
  CHECK(json::parse(visit(s, "c-1")->second)["decisions"].size() == 5);
  CHECK(json::parse(visit(s, "c-1")->second)["outcome"] == "open");
}

TEST_CASE("journey features as a tree are what their text says") {
  journey::Features f;
  f.contacts_7d = 2;
  f.contacts_30d = 5;
  for (int round = 0; round < 2; ++round) {
    events::CompactDoc doc;
    f.add_to(doc);
    const std::string text = *events::document_text(doc.bytes());
    CHECK(f.to_json() == nlohmann::json::parse(text));
    CHECK(f.to_json().dump() == text);
    f.repeat_contact_24h = true;
    f.mean_csat = 4.25;
    f.open_conversations = 1;
    f.last_channel = "wechat";
  }
}

TEST_CASE("an agent's document is written field by field as json would dump it") {
  Scenario s;
  s.configure("billing", {{"auto_accept", true}});
  s.fact("agent.logged_in", {{"agent", "alice"},
                             {"capacity", {{"chat", 2}, {"voice", 1}}},
                             {"queues", {"billing"}},
                             {"skills", {{"billing", 4}, {"zh \"CN\"", 2}}},
                             {"attributes", {{"site", "Chengdu"}, {"senior", true}}},
                             {"blocks", {{"voice", {"chat"}}}},
                             {"heartbeat_timeout_s", 2.5}});
  s.start("c-1", "voice");
  const std::string text = *s.tenant.agent_text("alice");
  const json doc = json::parse(text);
  CHECK(doc.dump() == text);  // keys in order, numbers and strings as dump writes them
  const json expected = {{"agent", "alice"},
                         {"attributes", {{"site", "Chengdu"}, {"senior", true}}},
                         {"blocks", {{"voice", {"chat"}}}},
                         {"capacity", {{"chat", 2}, {"voice", 1}}},
                         {"conversations", {"c-1"}},
                         {"heartbeat_timeout_s", 2.5},
                         {"last_assigned_at", "2026-11-20T10:00:03.000Z"},
                         {"last_heartbeat_at", "2026-11-20T10:00:02.000Z"},
                         {"load", {{"voice", 1}}},
                         {"logged_in", true},
                         {"missed_offers", 0},
                         {"queues", {"billing"}},
                         {"skills", {{"billing", 4}, {"zh \"CN\"", 2}}},
                         {"status", "available"},
                         {"tenant", "acme"}};
  CHECK(doc == expected);
  CHECK(*s.tenant.agent_view("alice") == doc);
  CHECK_FALSE(s.tenant.agent_text("bob").has_value());
}

TEST_CASE("optional fields sent as null route as if absent") {
  // Validation takes null for absent; routing read "auto_accept": null as a boolean and threw,
  // and the partition's host retried that fact forever.
  Scenario s;
  s.configure("billing", {{"auto_accept", nullptr}, {"priority", nullptr}, {"no_answer_limit", nullptr},
                          {"offer_timeout_s", nullptr}, {"requirement", nullptr}, {"strategy", nullptr}});
  s.fact("agent.logged_in", {{"agent", "alice"}, {"capacity", {{"chat", 2}}}, {"queues", {"billing"}},
                             {"skills", nullptr}, {"attributes", nullptr}, {"blocks", nullptr}});
  auto ds = s.fact("conversation.started", {{"conversation", "c-1"}, {"customer", "u-1"}, {"channel", "web"},
                                            {"queue", "billing"}, {"priority", nullptr}, {"attributes", nullptr},
                                            {"intent", nullptr}, {"language", nullptr}, {"bot", nullptr}});
  REQUIRE(s.types(ds) == strings{"conversation.queued", "conversation.offered"});  // not auto_accept
  CHECK(ds[0].second["priority"] == 0);
  CHECK(s.conversation("c-1")["attributes"] == json::object());
  ds = s.fact("conversation.ended", {{"conversation", "c-1"}, {"by", "customer"}, {"reason", nullptr},
                                     {"csat", nullptr}});
  CHECK(s.types(ds) == strings{"conversation.abandoned", "conversation.closed"});
}
