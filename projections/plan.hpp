// Staffing plan: interval history -> forecast of volume and handle time -> agents required per
// interval (Erlang C, Erlang A or chat slots; service level target, occupancy cap, shrinkage)
// -> compared with the agents available (a published schedule, or the agents logged in) -> the
// gap. Plain C++; the HTTP API and `omniroute forecast` are shells around it.
#pragma once

#include <functional>
#include <istream>
#include <optional>
#include <string>
#include <vector>

#include "events/types.hpp"
#include "projections/erlang.hpp"
#include "projections/forecast.hpp"
#include "projections/intervals.hpp"

namespace omniroute::projections {

// Whole local days of history, one value per interval (NaN: missing).
struct IntervalHistory {
  int64_t start_ms = 0;  // a local midnight
  int64_t interval_ms = 900000;
  std::vector<double> offered, handle_s, answered;
  Seasonality seasonality() const;
};

// From the interval statistics' base rows (any channels): every interval from the local midnight
// before the first row to the one after the last. Days without any contact become missing.
IntervalHistory history_from_rows(const std::vector<IntervalRow>& rows, int64_t interval_ms,
                                  int64_t utc_offset_ms);

// From an interval-volume CSV: `timestamp,count[,aht_s]` per line (a header line is allowed;
// timestamps RFC 3339 or "YYYY-MM-DD HH:MM[:SS]" in local time). The interval is the smallest
// step between timestamps; intervals not in the file are missing. The error names the line.
result<IntervalHistory, std::string> history_from_csv(std::istream& in, int64_t utc_offset_ms);

struct PlanOptions {
  int horizon_days = 7;
  Target target;
  double threshold_s = 20;
  std::optional<double> patience_s;  // Erlang A when set
  int concurrency = 1;               // > 1: chat slots per agent
  double default_aht_s = 300;        // when the history has no handle time
  std::optional<forecast_method> method;  // default: the best by backtest MASE
};

struct PlanRow {
  int64_t start_ms = 0;
  double volume = 0, aht_s = 0;
  int raw_agents = 0, agents = 0;
  double service_level = 1;
  std::optional<double> available, gap;  // gap = available - agents (negative: short)
};

struct Plan {
  forecast_method method = forecast_method::seasonal_naive;
  std::vector<Accuracy> accuracy;
  std::vector<PlanRow> rows;
};

// `available(start_ms)` gives the agents available in an interval, if known.
Plan make_plan(const IntervalHistory& history, const PlanOptions& options,
               const std::function<std::optional<double>(int64_t)>& available);

// An SVG chart of the last week of actual volume, the forecast, and required and available agents.
std::string plan_svg(const IntervalHistory& history, const Plan& plan, const std::string& title,
                     int64_t utc_offset_ms);

}  // namespace omniroute::projections
