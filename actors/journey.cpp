#include "actors/journey.hpp"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <unordered_map>

#include "actors/routing_subjects.hpp"
#include "events/packing.hpp"
#include "events/policy.hpp"
#include "events/prefetch.hpp"
#include "events/time.hpp"

namespace omniroute::journey {
// Event types are compared as views: the length first, the bytes only when it matches.
using namespace std::string_view_literals;
namespace {

constexpr int64_t day_ms = 24 * 3600 * 1000;
using events::Packer;
using events::Unpacker;
using routing::str;

// The decision types' names as the contract gives them: a note points at one (read-only: shared
// by every partition's thread), or at "decision" for a name not among them (none reaches here).
const std::string& unknown_decision_type() {
  static const std::string name = "decision";
  return name;
}
const std::string* decision_type(std::string_view type) {
  static const std::unordered_map<std::string_view, const std::string*> interned = [] {
    std::unordered_map<std::string_view, const std::string*> names;
    for (const auto& name : events::decision_types()) names.emplace(name, &name);
    return names;
  }();
  auto it = interned.find(type);
  return it == interned.end() ? &unknown_decision_type() : it->second;
}

// A note's type as its place in events::decision_types(), counted from 1 (0: "decision"), and
// back.
uint64_t place_of(const std::string* type) {
  const auto& names = events::decision_types();
  return type == &unknown_decision_type() ? 0 : static_cast<uint64_t>(type - names.data()) + 1;
}
const std::string* type_at(uint64_t place) {
  const auto& names = events::decision_types();
  return place > 0 && place <= names.size() ? &names[place - 1] : &unknown_decision_type();
}

// The members a note's detail may come from, in the order they are looked for.
constexpr const char* detail_keys[] = {"action", "to_queue", "agent", "queue"};

// A note's detail key as its place in detail_keys, counted from 1 (0: none), and back.
uint64_t place_of(const char* detail_key) {
  for (size_t i = 0; i < std::size(detail_keys); ++i)
    if (detail_keys[i] == detail_key) return i + 1;
  return 0;
}
const char* detail_key_at(uint64_t place) {
  return place > 0 && place <= std::size(detail_keys) ? detail_keys[place - 1] : nullptr;
}

// A decision as the journey keeps it: the detail worth showing for its type.
DecisionNote note_of(const Envelope& e) {
  DecisionNote n;
  n.id = e.id;
  n.type = decision_type(e.type);
  n.time_ms = e.time_ms;
  for (const char* key : detail_keys) {
    auto it = e.data.find(std::string_view(key));  // compared without a strlen per key
    if (it != e.data.end() && it->is_string()) {
      n.detail_key = key;
      n.detail = it->get<std::string>();
      break;
    }
  }
  return n;
}

// A visit's detail packed (packing.hpp) in the order of its members; a note's type and detail key
// as their places in events::decision_types() and detail_keys, 0 for none (memory only: nothing
// packed is ever stored).
std::string pack(const VisitDetail& d) {
  // A member added to VisitDetail must be packed and unpacked too: this size is the reminder.
  static_assert(sizeof(VisitDetail) == 128, "pack() and unpack() must cover every member");
  size_t room = (8 + 5 * d.decisions.size()) * Packer::varint_max + d.ended_by.size();
  for (const auto* list : {&d.queues, &d.agents})
    for (const auto& s : *list) room += Packer::varint_max + s.size();
  for (const auto& n : d.decisions) room += n.id.size() + n.detail.size();
  return events::packed(room, [&](Packer& p) {
    p.text(d.ended_by);
    for (const auto* list : {&d.queues, &d.agents}) {
      p.varint(list->size());
      for (const auto& s : *list) p.text(s);
    }
    p.integer(d.waiting_since_ms);
    p.integer(d.waited_ms);
    p.varint(static_cast<uint64_t>(d.had_agent) | static_cast<uint64_t>(d.abandoned) << 1);
    p.varint(d.decisions.size());
    for (const auto& n : d.decisions) {
      p.text(n.id);
      p.varint(place_of(n.type));
      p.varint(place_of(n.detail_key));
      p.integer(n.time_ms);
      p.text(n.detail);
    }
  });
}

void unpack(std::string_view packed, VisitDetail& d) {
  Unpacker u{packed};
  d.ended_by = u.text();
  for (auto* list : {&d.queues, &d.agents}) {
    list->resize(u.count());
    for (auto& s : *list) s = u.text();
  }
  d.waiting_since_ms = u.integer();
  d.waited_ms = u.integer();
  const uint64_t flags = u.varint();
  d.had_agent = flags & 1;
  d.abandoned = flags & 2;
  d.decisions.resize(u.count());
  for (auto& n : d.decisions) {
    n.id = u.text();
    n.type = type_at(u.varint());
    n.detail_key = detail_key_at(u.varint());
    n.time_ms = u.integer();
    n.detail = u.text();
  }
}

// A customer's visit of `conversation` (a Visit* or a const Visit*, as the customer is), or null.
template <typename C>
auto visit_of(C& c, const std::string& conversation) -> decltype(&c.visits.front()) {
  for (auto it = c.visits.rbegin(); it != c.visits.rend(); ++it)
    if (it->conversation == conversation) return &*it;
  return nullptr;
}

void add_once(std::vector<std::string>& list, const std::string& item) {
  if (!item.empty() && std::find(list.begin(), list.end(), item) == list.end()) list.push_back(item);
}

}  // namespace

void Features::add_to(events::CompactDoc& o) const {
  // In key order, so the text needs no sorting when it is read.
  o.integer("contacts_30d", contacts_30d).integer("contacts_7d", contacts_7d);
  if (last_channel.empty()) o.null("last_channel");
  else o.text("last_channel", last_channel);
  if (mean_csat) o.number("mean_csat", *mean_csat);
  else o.null("mean_csat");
  o.integer("open_conversations", open_conversations).boolean("repeat_contact_24h", repeat_contact_24h);
}

json Features::to_json() const {
  // The fields add_to writes, as a tree (not through its text: a decision's data is a tree),
  // in key order. An initializer list had cost 6,300 instructions a call (callgrind), one per
  // offer.
  return object_of("contacts_30d", contacts_30d, "contacts_7d", contacts_7d, "last_channel",
                   last_channel.empty() ? json(nullptr) : json(last_channel), "mean_csat",
                   mean_csat ? json(*mean_csat) : json(nullptr), "open_conversations",
                   open_conversations, "repeat_contact_24h", repeat_contact_24h);
}

VisitDetail& Visit::detail() {
  if (!detail_) {
    auto d = std::make_unique<VisitDetail>();
    unpack(packed_, *d);
    detail_ = std::move(d);
    packed_ = std::string();  // its memory too
  }
  return *detail_;
}

void Visit::pack_if_closed() {
  if (open() || !detail_) return;
  packed_ = pack(*detail_);
  detail_.reset();
}

void Visit::save(events::Appender& out) const {
  out.integer(started_ms);
  out.integer(ended_ms);
  out.flag(csat.has_value());
  if (csat) out.real(*csat);
  out.text(outcome);
  out.flag(repeat_contact_24h);
  out.text(conversation);
  out.text(channel);
  out.text(intent);
  out.flag(packed());
  out.text(detail_ ? pack(*detail_) : packed_);
}

void Visit::restore(events::Unpacker& in) {
  started_ms = in.integer();
  ended_ms = in.integer();
  if (in.flag()) csat = in.real();
  const std::string_view o = in.text();
  outcome = nullptr;
  for (const char* known : {"open", "handled", "abandoned", "self_service"})
    if (o == known) outcome = known;
  if (!outcome) throw std::out_of_range("snapshot: unknown visit outcome");
  repeat_contact_24h = in.flag();
  conversation = in.text();
  channel = in.text();
  intent = in.text();
  const bool was_packed = in.flag();
  packed_ = in.text();
  detail_.reset();
  if (!was_packed) detail();  // unpacks
}

void Visit::write(events::CompactDoc& o) const {
  VisitDetail unpacked;  // only for a packed visit: the host writes its visits before it packs them
  if (!detail_) unpack(packed_, unpacked);
  const VisitDetail& d = detail_ ? *detail_ : unpacked;
  // In key order but a decision note's detail (action, agent, queue, to_queue), which the
  // text puts in its place among the note's other keys when it is read.
  o.clear();
  o.texts("agents", d.agents).text("channel", channel).text("conversation", conversation);
  if (csat) o.number("csat", *csat);
  o.begin_array("decisions");
  for (const auto& n : d.decisions) {
    o.item();
    if (n.detail_key && *n.detail_key) o.text(n.detail_key, n.detail);
    o.text("id", n.id).time("time", n.time_ms).text("type", *n.type).end_object();
  }
  o.end_array();
  if (ended_ms >= 0) o.time("ended_at", ended_ms);
  if (!d.ended_by.empty()) o.text("ended_by", d.ended_by);
  if (!intent.empty()) o.text("intent", intent);
  o.text("outcome", outcome)
      .texts("queues", d.queues)
      .boolean("repeat_contact_24h", repeat_contact_24h)
      .time("started_at", started_ms)
      .number("wait_s", static_cast<double>(d.waited_ms) / 1000.0);
}

std::string Journeys::visit_key(const std::string& customer, const Visit& v) {
  // The start as 15 digits, zero-padded so that keys sort by it (an event's year has four
  // digits: its ms since the epoch have at most 15), written by hand: printf was most of
  // this key's cost.
  std::string key = visit_prefix(customer);
  key.reserve(key.size() + 15 + v.conversation.size());
  const size_t at = key.size();
  key.append(15, '0');
  for (uint64_t ms = static_cast<uint64_t>(std::max<int64_t>(0, v.started_ms)), i = 15; ms > 0 && i > 0; ms /= 10)
    key[at + --i] = static_cast<char>('0' + ms % 10);
  key += v.conversation;
  return key;
}

void Journeys::touch(Customer& c, Visit& v) {
  touched_.add(c.touched, c.id);
  touched_visits_.add(v.touched, c.id, v.conversation);
}

void Journeys::forget(const Customer& c, const Visit& v) {
  if (!touched_visits_.holds(v.touched)) return;
  events::CompactDoc doc;
  v.write(doc);
  forgotten_[visit_key(c.id, v)] = doc.str();
}

Journeys::Changes Journeys::take_touched() {
  return {touched_.take(), touched_visits_.take(), std::exchange(forgotten_, {})};
}

bool Journeys::visit_doc(const std::string& customer, const std::string& conversation,
                         std::string& key, events::CompactDoc& out) const {
  const Customer* c = customers_.find(customer);
  if (!c) return false;
  const Visit* v = visit_of(*c, conversation);
  if (!v) return false;
  key = visit_key(customer, *v);
  v->write(out);
  return true;
}

void Journeys::pack_if_closed(const std::string& customer, const std::string& conversation) {
  if (Customer* c = customers_.find(customer))
    if (Visit* v = visit_of(*c, conversation)) v->pack_if_closed();
}

void Visit::prefetch_detail(int stage) const {
  if (!detail_) return;  // packed: one string, read whole by unpack()
  // Read, not only prefetched (events::load_line): the prefetches alone left Visit::write's
  // misses on the detail and its lists as they were (2.8% of all samples; 1.1-1.3% read ahead).
  const VisitDetail& d = *detail_;
  if (stage == 0) {
    events::load_line(&d.queues);
    events::load_line(&d.decisions);
    return;
  }
  auto fetch = [](const auto& list) {
    if (list.empty()) return;
    events::load_line(list.data());
    events::prefetch_bytes(list.data(), list.size() * sizeof list[0]);
  };
  fetch(d.queues);
  fetch(d.agents);
  fetch(d.decisions);
}

void Journeys::prefetch_customer(const std::string& customer, int stage) const {
  const uint64_t h = events::key_hash(customer);
  if (stage == 0) return customers_.prefetch(h);
  const Customer* c = customers_.likely(h);
  if (!c) return;
  if (stage == 1) return events::prefetch_bytes(c, sizeof *c);
  for (const auto& v : c->visits) __builtin_prefetch(&v.started_ms);  // what features() reads
}

void Journeys::prefetch_visit(const std::string& customer, const std::string& conversation,
                              int stage) const {
  if (stage < 2) return prefetch_customer(customer, stage);
  const Customer* c = customers_.likely(events::key_hash(customer));
  if (!c || c->visits.empty()) return;
  if (stage == 2) {  // visit_of() looks from the latest back
    for (size_t i = c->visits.size() - std::min<size_t>(2, c->visits.size()); i < c->visits.size(); ++i)
      events::prefetch_bytes(&c->visits[i], sizeof(Visit));
    return;
  }
  if (const Visit* v = visit_of(*c, conversation)) v->prefetch_detail(stage - 3);
}

std::pair<size_t, size_t> Journeys::packed_visits() const {
  std::pair<size_t, size_t> n{0, 0};
  customers_.for_each([&](const Customer& c) {
    for (const auto& v : c.visits) n.first += v.packed(), ++n.second;
  });
  return n;
}

std::optional<std::pair<std::string, std::string>> Journeys::visit_text(
    const std::string& customer, const std::string& conversation) const {
  std::string key;
  auto text = events::text_of([&](events::CompactDoc& doc) { return visit_doc(customer, conversation, key, doc); });
  if (!text) return std::nullopt;
  return std::pair{std::move(key), std::move(*text)};
}

std::optional<std::pair<std::string, json>> Journeys::visit_view(const std::string& customer,
                                                                 const std::string& conversation) const {
  auto text = visit_text(customer, conversation);
  if (!text) return std::nullopt;
  return std::pair{std::move(text->first), json::parse(text->second)};
}

size_t Customer::open_conversations() const {
  size_t n = 0;
  for (const auto& v : visits) n += v.open();
  return n;
}

void Journeys::save(events::Appender& out) const {
  // A member added to these must be saved and restored too: the sizes are the reminder.
  static_assert(sizeof(Customer) == 104,
                "save() and restore() must cover every member of Customer");
  static_assert(sizeof(Visit) == 192, "save() and restore() must cover every member of Visit");
  static_assert(sizeof(Journeys) == 152,
                "save() and restore() must cover every member of Journeys");
  const auto customers = customers_.in_id_order();
  events::each_of(out, customers, [&](const Customer* c) {
    out.text(c->id);
    out.document(c->profile);
    out.integer(c->profile_updated_ms);
    events::each_of(out, c->visits, [&](const Visit& v) { v.save(out); });
    out.integer(c->last_ms);
  });
  out.integer(swept_day_);
}

void Journeys::restore(events::Unpacker& in) {
  events::for_count(in, [&] {
    Customer& c = customers_[in.text()];
    c.profile = in.document();
    c.profile_updated_ms = in.integer();
    events::for_count(in, [&] {
      Visit v;
      v.restore(in);
      c.visits.push_back(std::move(v));
    });
    c.last_ms = in.integer();
  });
  swept_day_ = in.integer();
}

std::string Journeys::layout() {
  std::string out = "customer " + std::to_string(sizeof(Customer)) + " visit " +
                    std::to_string(sizeof(Visit)) + " detail " +
                    std::to_string(sizeof(VisitDetail)) + " note " +
                    std::to_string(sizeof(DecisionNote)) + " decision types";
  for (const auto& t : events::decision_types()) out += " " + t;
  out += "; detail keys";
  for (const char* k : detail_keys) out += std::string(" ") + k;
  return out;
}

void Journeys::sweep(int64_t time_ms) {
  const int64_t day = time_ms / day_ms;
  if (day <= swept_day_) return;
  swept_day_ = day;
  // In no order that anything depends on: each customer's own visits, and forgotten_ by key.
  customers_.erase_if([&](Customer& c) {
    size_t old = 0;
    while (old < c.visits.size() && c.visits[old].started_ms < time_ms - window_ms &&
           !c.visits[old].open())
      forget(c, c.visits[old++]);
    c.visits.erase_front(old);
    return c.visits.empty() && c.profile.empty();
  });
}

bool Journeys::concerns(const Envelope& e, events::event_kind kind) {
  const std::string& t = e.type;
  if (kind == events::event_kind::decision) return t != "event.refused"sv;  // closed, queued, ...
  return t == "customer.profile_updated"sv || t == "conversation.started"sv ||
         t == "conversation.intent_detected"sv || t == "conversation.ended"sv ||
         t == "conversation.reopened"sv;
}

void Journeys::apply(const Envelope& e, const std::string& customer) {
  if (e.type != "event.refused"sv) sweep(e.time_ms);
  const json& d = e.data;
  if (e.type == "customer.profile_updated"sv) {
    Customer& c = customers_[customer];  // made with its id if new
    if (!c.profile.is_object()) c.profile = json::object();
    for (const auto& [key, value] : d["attributes"].items()) {
      if (value.is_null()) c.profile.erase(key);
      else c.profile[key] = value;
    }
    c.profile_updated_ms = e.time_ms;
    c.last_ms = std::max(c.last_ms, e.time_ms);
    touched_.add(c.touched, c.id);
    return;
  }
  if (customer.empty() || e.type == "event.refused"sv) return;
  const std::string& conversation = str(d, "conversation");
  if (e.type == "conversation.started"sv) {
    Customer& c = customers_[customer];  // made with its id if new
    Visit v;
    v.conversation = conversation;
    v.channel = str(d, "channel");
    v.intent = str(d, "intent");
    add_once(v.detail().queues, str(d, "queue"));
    v.started_ms = e.time_ms;
    if (!c.visits.empty()) {
      const Visit& before = c.visits.back();
      v.repeat_contact_24h =
          e.time_ms - (before.ended_ms >= 0 ? before.ended_ms : before.started_ms) <= day_ms;
    }
    // Past four visits, room at once for as many as memory keeps (one over the limit: the
    // oldest closed leaves after the push), where the list stops growing. Doubling on to 32
    // moved every visit twice more on the way (perf, 300,000 events: the growth was 1.7% of
    // the process's samples, most of them page faults on the new arrays); most customers have
    // a visit or two, and keep 1 or 2.
    if (c.visits.size() >= 4 && c.visits.size() == c.visits.capacity())
      c.visits.reserve(std::max(2 * c.visits.size(), visit_limit + 1));
    c.visits.push_back(std::move(v));
    touch(c, c.visits.back());
    // The oldest closed conversations make room; open ones stay.
    for (auto it = c.visits.begin(); c.visits.size() > visit_limit && it != c.visits.end();) {
      if (it->open()) {
        ++it;
      } else {
        forget(c, *it);
        it = c.visits.erase(it);
      }
    }
    c.last_ms = std::max(c.last_ms, e.time_ms);
    return;
  }
  Customer* found = customers_.find(customer);
  if (!found) return;
  Customer& c = *found;
  Visit* v = visit_of(c, conversation);
  if (!v) return;
  const std::string& t = e.type;
  // A conversation's document changes with its decisions and a few facts; the customer's
  // (its features) when a conversation ends, reopens or closes. Nothing else is rewritten.
  const bool decision = events::kind_of(t) == events::event_kind::decision;
  const bool features = t == "conversation.ended"sv || t == "conversation.reopened"sv ||
                        t == "conversation.closed"sv;
  if (!decision && !features && t != "conversation.intent_detected"sv) return;
  touched_visits_.add(v->touched, c.id, v->conversation);
  if (features) {
    c.last_ms = std::max(c.last_ms, e.time_ms);
    touched_.add(c.touched, c.id);
  }
  VisitDetail& detail = v->detail();
  auto stop_waiting = [&] {
    if (detail.waiting_since_ms < 0) return;
    detail.waited_ms += e.time_ms - detail.waiting_since_ms;
    detail.waiting_since_ms = -1;
  };
  if (decision) {
    // A conversation has a few decisions (queued, assigned, closed): room for them at once
    // rather than growing 1, 2, 4 (the growth was 0.7% of a host's instructions).
    if (detail.decisions.empty()) detail.decisions.reserve(4);
    detail.decisions.push_back(note_of(e));
    if (detail.decisions.size() > decision_limit) detail.decisions.erase(detail.decisions.begin());
  }
  if (t == "conversation.intent_detected"sv) {
    v->intent = str(d, "intent");
  } else if (t == "conversation.queued"sv) {
    add_once(detail.queues, str(d, "queue"));
    if (detail.waiting_since_ms < 0) detail.waiting_since_ms = e.time_ms;
  } else if (t == "conversation.overflowed"sv) {
    add_once(detail.queues, str(d, "to_queue"));
  } else if (t == "conversation.assigned"sv) {
    stop_waiting();
    add_once(detail.agents, str(d, "agent"));
    detail.had_agent = true;
  } else if (t == "conversation.abandoned"sv) {
    stop_waiting();
    detail.abandoned = true;
  } else if (t == "conversation.ended"sv) {
    detail.ended_by = str(d, "by");
    if (d.contains("csat"sv) && d["csat"].is_number()) v->csat = d["csat"].get<double>();
  } else if (t == "conversation.reopened"sv) {
    v->outcome = "open";
    v->ended_ms = -1;
    detail.abandoned = false;
  } else if (t == "conversation.closed"sv) {
    stop_waiting();
    v->ended_ms = e.time_ms;
    v->outcome = detail.abandoned ? "abandoned" : detail.had_agent ? "handled" : "self_service";
  }
}

const Customer* Journeys::find(const std::string& customer) const {
  return customers_.find(customer);
}

Features Journeys::features(const std::string& customer, int64_t as_of_ms) const {
  Features f;
  const Customer* c = find(customer);
  if (!c) return f;
  double csat_sum = 0;
  int64_t csat_count = 0;
  for (const auto& v : c->visits) {
    if (v.started_ms > as_of_ms) continue;
    if (v.started_ms > as_of_ms - 7 * day_ms) ++f.contacts_7d;
    if (v.started_ms > as_of_ms - window_ms) ++f.contacts_30d;
    if (v.csat) {
      csat_sum += *v.csat;
      ++csat_count;
    }
  }
  if (csat_count > 0) f.mean_csat = csat_sum / static_cast<double>(csat_count);
  f.open_conversations = static_cast<int64_t>(c->open_conversations());
  if (!c->visits.empty()) {
    f.repeat_contact_24h = c->visits.back().repeat_contact_24h;
    f.last_channel = c->visits.back().channel;
  }
  return f;
}

json Journeys::summary(const std::string& customer, const std::string& current,
                       int64_t as_of_ms) const {
  json s = features(customer, as_of_ms).to_json();
  json recent = json::array();
  if (const Customer* c = find(customer)) {
    for (auto it = c->visits.rbegin(); it != c->visits.rend() && recent.size() < 3; ++it) {
      if (it->conversation == current) continue;
      json r = object_of("ago_s", static_cast<double>(as_of_ms - it->started_ms) / 1000.0,
                         "channel", it->channel, "conversation", it->conversation, "outcome",
                         it->outcome);
      if (!it->intent.empty()) r["intent"] = it->intent;
      recent.push_back(std::move(r));
    }
  }
  s["recent"] = std::move(recent);
  return s;
}

bool Journeys::view_doc(const std::string& customer, events::CompactDoc& o) const {
  const Customer* c = find(customer);
  if (!c) return false;
  o.clear();
  o.text("customer", c->id).begin_object("features").time("as_of", c->last_ms);
  Journeys::features(customer, c->last_ms).add_to(o);
  o.end_object();
  if (c->profile.is_object()) o.json("profile", c->profile);
  else o.raw("profile", "{}");
  if (c->profile_updated_ms >= 0) o.time("profile_updated_at", c->profile_updated_ms);
  else o.null("profile_updated_at");
  return true;
}

std::optional<std::string> Journeys::view_text(const std::string& customer) const {
  return events::text_of([&](events::CompactDoc& doc) { return view_doc(customer, doc); });
}

std::optional<json> Journeys::view(const std::string& customer) const {
  return routing::parsed(view_text(customer));
}

expr::Value CustomerSubject::get(const std::vector<std::string>& path) const {
  const std::string& name = path[0];
  if (path.size() == 1) {
    if (name == "id") return expr::Value::text(id_);
    if (name == "contacts_7d") return expr::Value::num(static_cast<double>(features_.contacts_7d));
    if (name == "contacts_30d") return expr::Value::num(static_cast<double>(features_.contacts_30d));
    if (name == "open_conversations")
      return expr::Value::num(static_cast<double>(features_.open_conversations));
    if (name == "mean_csat") return features_.mean_csat ? expr::Value::num(*features_.mean_csat) : expr::Value{};
    if (name == "last_channel")
      return features_.last_channel.empty() ? expr::Value{} : expr::Value::text(features_.last_channel);
    if (name == "repeat_contact_24h") {
      expr::Value v;
      v.kind = expr::Value::Kind::boolean;
      v.boolean = features_.repeat_contact_24h;
      return v;
    }
  }
  if (!customer_) return {};
  if (name == "attributes") return expr::walk(customer_->profile, path, 1);
  return expr::walk(customer_->profile, path, 0);
}

}  // namespace omniroute::journey
