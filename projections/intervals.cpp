#include "projections/intervals.hpp"

#include <cmath>

#include "events/bytes.hpp"
#include "events/packing.hpp"

namespace omniroute::projections {
// Event types are compared as views: the length first, the bytes only when it matches.
using namespace std::string_view_literals;
namespace {

int64_t ms_of_seconds(const events::json& d, const char* key) {
  auto it = d.find(key);
  if (it == d.end() || !it->is_number()) return 0;
  return static_cast<int64_t>(std::llround(it->get<double>() * 1000.0));
}

}  // namespace

void IntervalCounters::add(const IntervalCounters& o) {
  offered += o.offered;
  queued += o.queued;
  answered += o.answered;
  abandoned += o.abandoned;
  answered_within_threshold += o.answered_within_threshold;
  abandoned_within_threshold += o.abandoned_within_threshold;
  handle_time_ms += o.handle_time_ms;
  wait_time_ms += o.wait_time_ms;
}

void IntervalCounters::count_finished(bool was_answered, bool was_queued, int64_t waited_ms,
                                      int64_t threshold_ms) {
  const bool within = waited_ms <= threshold_ms;
  if (was_answered) {
    ++answered;
    if (within) ++answered_within_threshold;
  } else {
    ++abandoned;
    if (within) ++abandoned_within_threshold;
  }
  if (was_queued) ++queued;
  wait_time_ms += waited_ms;
}

bool IntervalCounters::empty() const {
  return offered == 0 && queued == 0 && answered == 0 && abandoned == 0 &&
         answered_within_threshold == 0 && abandoned_within_threshold == 0 &&
         handle_time_ms == 0 && wait_time_ms == 0;
}

std::string IntervalCounters::encode() const {
  std::string out;
  out.reserve(fields * 8);
  for (int64_t v : {offered, queued, answered, abandoned, answered_within_threshold,
                    abandoned_within_threshold, handle_time_ms, wait_time_ms})
    events::put_be(out, static_cast<uint64_t>(v), 8);
  return out;
}

std::optional<IntervalCounters> IntervalCounters::decode(std::string_view bytes) {
  if (bytes.size() != fields * 8) return std::nullopt;
  int64_t v[fields];
  for (size_t i = 0; i < fields; ++i) v[i] = static_cast<int64_t>(events::get_be(bytes, i * 8, 8));
  IntervalCounters c;
  c.offered = v[0], c.queued = v[1], c.answered = v[2], c.abandoned = v[3];
  c.answered_within_threshold = v[4], c.abandoned_within_threshold = v[5];
  c.handle_time_ms = v[6], c.wait_time_ms = v[7];
  return c;
}

events::json IntervalCounters::to_json() const {
  return {{"offered", offered},
          {"queued", queued},
          {"answered", answered},
          {"abandoned", abandoned},
          {"answered_within_threshold", answered_within_threshold},
          {"abandoned_within_threshold", abandoned_within_threshold},
          {"handle_time_s", static_cast<double>(handle_time_ms) / 1000.0},
          {"wait_time_s", static_cast<double>(wait_time_ms) / 1000.0}};
}

int64_t bucket_of(int64_t time_ms, int64_t interval_ms) {
  int64_t q = time_ms / interval_ms;
  if (time_ms % interval_ms != 0 && time_ms < 0) --q;
  return q * interval_ms;
}

std::vector<IntervalRow> roll_up(const std::vector<IntervalRow>& rows, int64_t interval_ms,
                                 bool all_channels, int64_t utc_offset_ms) {
  std::map<std::pair<int64_t, std::string>, IntervalCounters> sums;
  for (const auto& r : rows)
    sums[{local_bucket_of(r.bucket_ms, interval_ms, utc_offset_ms), all_channels ? "*" : r.channel}]
        .add(r.counters);
  std::vector<IntervalRow> out;
  out.reserve(sums.size());
  for (auto& [key, counters] : sums) out.push_back({key.first, key.second, counters});
  return out;
}

int64_t IntervalStats::threshold_of(const TenantState& t, const std::string& queue) const {
  auto it = t.threshold_ms.find(queue);
  return it == t.threshold_ms.end() ? default_sl_threshold_ms : it->second;
}

IntervalCounters& IntervalStats::at(const std::string& tenant, const Contact& c) {
  const int64_t bucket = bucket_of(c.arrived_ms, base_interval_ms);
  auto*& last = last_.ptr;
  if (last && last->first.bucket_ms == bucket && last->first.tenant == tenant &&
      last->first.queue == c.queue && last->first.channel == c.channel)
    return last->second;
  last = &*deltas_.try_emplace(IntervalKey{tenant, c.queue, bucket, c.channel}).first;
  return last->second;
}

void IntervalStats::record_history(const events::Envelope& e, TenantState& t) {
  const events::json& d = e.data;
  Contact c;
  c.queue = events::string_member(d, "queue");
  c.channel = events::string_member(d, "channel");
  c.arrived_ms = e.time_ms;
  const int64_t waited = ms_of_seconds(d, "waited_s");
  const bool answered = events::string_member(d, "outcome") == "answered"sv;
  auto q = d.find("queued"sv);
  const bool queued = q != d.end() && q->is_boolean() ? q->get<bool>() : (waited > 0 || !answered);
  IntervalCounters& k = at(e.tenant, c);
  ++k.offered;
  k.count_finished(answered, queued, waited, threshold_of(t, c.queue));
  if (answered) k.handle_time_ms += ms_of_seconds(d, "handled_s");
}

void IntervalStats::apply(const events::Envelope& e) {
  const std::string& type = e.type;
  const bool contact_change = type == "conversation.queued"sv || type == "conversation.assigned"sv ||
                              type == "conversation.abandoned"sv || type == "conversation.closed"sv;
  if (!contact_change && type != "queue.configured"sv && type != "contact.recorded"sv &&
      type != "conversation.started"sv)
    return;  // messages, agent facts, ...: nothing to count
  const events::json& d = e.data;
  TenantState& t = tenants_[e.tenant];
  if (type == "queue.configured"sv) {
    auto it = d.find("sl_threshold_s"sv);
    if (it != d.end() && it->is_number())
      t.threshold_ms[events::string_member(d, "queue")] = ms_of_seconds(d, "sl_threshold_s");
    return;
  }
  if (type == "contact.recorded"sv) return record_history(e, t);
  if (type == "conversation.started"sv) {
    t.contacts[events::string_member(d, "conversation")].channel = events::string_member(d, "channel");
    return;
  }
  const std::string& conversation = events::string_member(d, "conversation");
  Contact* found = t.contacts.find(conversation);
  if (!found) return;  // started before this projection existed
  Contact& c = *found;
  const int64_t now = e.time_ms;
  if (type == "conversation.queued"sv) {
    const std::string& queue = events::string_member(d, "queue");
    if (c.arrived_ms >= 0 && !c.finished && c.queue == queue) return;  // back in the same queue
    if (c.answered_ms >= 0) at(e.tenant, c).handle_time_ms += now - c.answered_ms;
    c.queue = queue;
    c.arrived_ms = now;
    c.answered_ms = -1;
    c.finished = false;
    c.threshold_ms = threshold_of(t, queue);
    ++at(e.tenant, c).offered;
  } else if (type == "conversation.assigned"sv) {
    if (c.arrived_ms < 0 || c.finished) return;  // e.g. transferred straight to an agent
    const int64_t waited = now - c.arrived_ms;
    at(e.tenant, c).count_finished(true, waited > 0, waited, c.threshold_ms);
    c.answered_ms = now;
    c.finished = true;
  } else if (type == "conversation.abandoned"sv) {
    if (c.arrived_ms < 0 || c.finished) return;
    at(e.tenant, c).count_finished(false, true, now - c.arrived_ms, c.threshold_ms);
    c.finished = true;
  } else {  // conversation.closed
    if (c.answered_ms >= 0) at(e.tenant, c).handle_time_ms += now - c.answered_ms;
    t.contacts.erase(conversation);  // not c.id: erase destroys c
  }
}

void IntervalStats::save(events::Appender& out) const {
  // A member added to these must be saved and restored too: the sizes are the reminder.
  static_assert(sizeof(Contact) == 128, "save() and restore() must cover every member of Contact");
  static_assert(sizeof(IntervalStats) == 104,
                "save() and restore() must cover every member of IntervalStats");
  events::each_of(out, tenants_, [&](const auto& kv) {
    out.text(kv.first);
    events::each_of(out, kv.second.contacts.in_id_order(), [&](const Contact* c) {
      out.text(c->id);
      out.text(c->channel);
      out.text(c->queue);
      out.integer(c->arrived_ms);
      out.integer(c->answered_ms);
      out.integer(c->threshold_ms);
      out.flag(c->finished);
    });
    events::each_of(out, events::in_key_order(kv.second.threshold_ms), [&](const auto* t) {
      out.text(t->first);
      out.integer(t->second);
    });
  });
}

void IntervalStats::restore(events::Unpacker& in) {
  events::for_count(in, [&] {
    TenantState& t = tenants_[std::string(in.text())];
    events::for_count(in, [&] {
      Contact& c = t.contacts[in.text()];
      c.channel = in.text();
      c.queue = in.text();
      c.arrived_ms = in.integer();
      c.answered_ms = in.integer();
      c.threshold_ms = in.integer();
      c.finished = in.flag();
    });
    events::for_count(in, [&] {
      std::string queue(in.text());
      t.threshold_ms[queue] = in.integer();
    });
  });
}

std::string IntervalStats::layout() {
  return "contact " + std::to_string(sizeof(Contact)) + " tenant " +
         std::to_string(sizeof(TenantState));
}

}  // namespace omniroute::projections
