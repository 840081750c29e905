// Staffing math: how a queue performs with N agents, and how many agents it needs.
// Plain C++, no I/O. Models:
// - Erlang C (M/M/N): exact, through the Erlang B recursion (stable for thousands of agents).
// - Erlang A (M/M/N+M): callers abandon after an exponential patience; the exact birth-death
//   chain, truncated where the remaining probability is below 1e-15.
// - Chat concurrency: an agent who serves `concurrency` chats at once is that many servers
//   (slots), and the handle time is the wall-clock time a chat holds a slot, as measured at that
//   concurrency. Rationale: the interval statistics measure exactly that handle time, so the
//   slow-down of serving several chats is already in it and needs no invented factor; required
//   agents are the required slots divided by the concurrency, rounded up.
//
// Definitions (all over every arrival of the interval):
// - p_wait: probability an arrival finds every slot busy.
// - service_level: fraction of arrivals answered within the threshold (Erlang A: abandoning
//   callers count as not answered).
// - asa_s: mean time in queue over all arrivals (those answered at once count 0; Erlang A also
//   counts the time abandoning callers waited).
// - occupancy: the carried load per slot (Erlang A: only calls that are served).
// - p_abandon (Erlang A): fraction of arrivals that abandon.
#pragma once

#include <optional>
#include <string>

#include "events/types.hpp"

namespace omniroute::projections {

enum class staffing_model { erlang_c, erlang_a };

struct Workload {
  double arrivals = 0;        // contacts offered in the interval
  double interval_s = 1800;   // its length
  double aht_s = 180;         // average handle time
  double threshold_s = 20;    // service level threshold
  std::optional<double> patience_s;  // mean patience (Erlang A)
  int concurrency = 1;        // chats one agent serves at once
  // Erlang A when patience is given, else Erlang C.
  staffing_model model() const {
    return patience_s ? staffing_model::erlang_a : staffing_model::erlang_c;
  }
  // Offered load in erlangs (slot-hours per hour).
  double load() const { return interval_s > 0 ? arrivals * aht_s / interval_s : 0; }
};

struct Performance {
  int agents = 0;
  double p_wait = 0, service_level = 1, occupancy = 0;
  std::optional<double> asa_s;      // nullopt: unbounded (Erlang C with load >= slots)
  std::optional<double> p_abandon;  // Erlang A only
};

struct Target {
  double service_level = 0.8;
  double max_occupancy = 1.0;  // occupancy cap; 1 = none
  double shrinkage = 0;        // share of paid time not available for contacts, [0, 1)
};

struct Requirement {
  int raw_agents = 0;  // on the phones, meeting the target
  int agents = 0;      // scheduled: raw / (1 - shrinkage), rounded up
  Performance at_raw;
};

// Why a workload or target cannot be computed, naming the input.
std::optional<std::string> check(const Workload& w);
std::optional<std::string> check(const Target& t);

// Performance with `agents` agents. The workload must pass check().
Performance perform(const Workload& w, int agents);

// The fewest agents meeting the target (service level and occupancy cap), and the scheduled
// count after shrinkage. With no arrivals nobody is needed.
Requirement required(const Workload& w, const Target& t);

// Erlang C probability of waiting for `servers` servers and `load` erlangs (1 if load >= servers).
double erlang_c_p_wait(int servers, double load);

}  // namespace omniroute::projections
