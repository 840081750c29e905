// Published schedules: agents planned per interval for each queue, from `schedule.published`
// facts. A later schedule replaces every earlier interval it overlaps. Plain C++; the store
// keeps one document per queue in the `schedules` view.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "events/envelope.hpp"

namespace omniroute::events {
struct Appender;
struct Unpacker;
}  // namespace omniroute::events

namespace omniroute::projections {

class ScheduleBook {
 public:
  struct Slot {
    int64_t end_ms;
    double agents;
  };
  using Schedule = std::map<int64_t, Slot>;  // by start

  void apply(const events::Envelope& e);
  // (tenant, queue) whose schedule changed since the last call.
  std::set<std::pair<std::string, std::string>> take_touched() { return std::exchange(touched_, {}); }
  const Schedule* find(const std::string& tenant, const std::string& queue) const;
  // Every schedule, for a snapshot, and back into an empty book (actors/snapshot.hpp): after
  // take_touched() only.
  void save(events::Appender& out) const;
  void restore(events::Unpacker& in);

  // {"queue":..,"intervals":[{"start","end","agents"}...]} and back.
  static events::json to_json(const std::string& queue, const Schedule& s);
  static Schedule from_json(const events::json& doc);
  // Agents planned at `time_ms` (the slot holding it), or nullopt when none does.
  static std::optional<double> agents_at(const Schedule& s, int64_t time_ms);

 private:
  std::map<std::pair<std::string, std::string>, Schedule> schedules_;
  std::set<std::pair<std::string, std::string>> touched_;
};

}  // namespace omniroute::projections
