// The staffing plan of one queue from the store: its interval statistics as history, its
// published schedule (else the agents logged in now) as what is available, and its configured
// service level threshold and target unless the caller gives them.
#pragma once

#include "projections/plan.hpp"
#include "projections/store.hpp"

namespace omniroute::projections {

struct QueuePlanRequest {
  std::string tenant, queue;
  std::string channel;              // empty: every channel
  int64_t interval_ms = 900000;
  int64_t utc_offset_ms = 0;        // local days for seasonality and missing-day detection
  PlanOptions options;
  bool threshold_given = false, target_given = false;  // else the queue's configuration
};

struct QueuePlan {
  IntervalHistory history;
  Plan plan;
  std::string available_source;  // "schedule", "logged_in" or "none"
};

// Fails (with a reason) when the queue has no interval statistics at all.
result<QueuePlan, std::string> plan_queue(const Store& store, QueuePlanRequest request);

// JSON of a plan: method, backtest accuracy and the intervals.
json plan_json(const QueuePlan& p);

}  // namespace omniroute::projections
