#include "projections/schedule.hpp"

#include "events/packing.hpp"
#include "events/time.hpp"

namespace omniroute::projections {
// Event types are compared as views: the length first, the bytes only when it matches.
using namespace std::string_view_literals;

void ScheduleBook::apply(const events::Envelope& e) {
  if (e.type != "schedule.published"sv) return;
  const auto& d = e.data;
  if (!d.contains("queue") || !d["queue"].is_string() || !d.contains("intervals")) return;
  auto key = std::make_pair(e.tenant, d["queue"].get<std::string>());
  Schedule& s = schedules_[key];
  for (const auto& iv : d["intervals"]) {
    auto start = events::parse_rfc3339_ms(iv.value("start", ""));
    auto end = events::parse_rfc3339_ms(iv.value("end", ""));
    if (!start || !end || *end <= *start || !iv.contains("agents") || !iv["agents"].is_number()) continue;
    // Drop every earlier slot this one overlaps.
    auto it = s.lower_bound(*start);
    if (it != s.begin() && std::prev(it)->second.end_ms > *start) --it;
    while (it != s.end() && it->first < *end) it = s.erase(it);
    s[*start] = Slot{*end, iv["agents"].get<double>()};
  }
  touched_.insert(key);
}

const ScheduleBook::Schedule* ScheduleBook::find(const std::string& tenant,
                                                 const std::string& queue) const {
  auto it = schedules_.find({tenant, queue});
  return it == schedules_.end() ? nullptr : &it->second;
}

events::json ScheduleBook::to_json(const std::string& queue, const Schedule& s) {
  events::json intervals = events::json::array();
  for (const auto& [start, slot] : s)
    intervals.push_back({{"start", events::format_rfc3339_ms(start)},
                         {"end", events::format_rfc3339_ms(slot.end_ms)},
                         {"agents", slot.agents}});
  return {{"queue", queue}, {"intervals", std::move(intervals)}};
}

ScheduleBook::Schedule ScheduleBook::from_json(const events::json& doc) {
  Schedule s;
  if (!doc.contains("intervals")) return s;
  for (const auto& iv : doc["intervals"]) {
    auto start = events::parse_rfc3339_ms(iv.value("start", ""));
    auto end = events::parse_rfc3339_ms(iv.value("end", ""));
    if (start && end) s[*start] = Slot{*end, iv.value("agents", 0.0)};
  }
  return s;
}

std::optional<double> ScheduleBook::agents_at(const Schedule& s, int64_t time_ms) {
  auto it = s.upper_bound(time_ms);
  if (it == s.begin()) return std::nullopt;
  --it;
  if (time_ms >= it->second.end_ms) return std::nullopt;
  return it->second.agents;
}

void ScheduleBook::save(events::Appender& out) const {
  events::each_of(out, schedules_, [&](const auto& kv) {
    out.text(kv.first.first);
    out.text(kv.first.second);
    events::each_of(out, kv.second, [&](const auto& slot) {
      out.integer(slot.first);
      out.integer(slot.second.end_ms);
      out.real(slot.second.agents);
    });
  });
}

void ScheduleBook::restore(events::Unpacker& in) {
  events::for_count(in, [&] {
    std::string tenant(in.text());
    Schedule& s = schedules_[{tenant, std::string(in.text())}];
    events::for_count(in, [&] {
      const int64_t start = in.integer();
      const int64_t end = in.integer();
      s.emplace_hint(s.end(), start, Slot{end, in.real()});
    });
  });
}

}  // namespace omniroute::projections
