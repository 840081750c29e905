#include "projections/queue_plan.hpp"

#include <algorithm>
#include <cmath>

#include "events/time.hpp"
#include "projections/schedule.hpp"

namespace omniroute::projections {

result<QueuePlan, std::string> plan_queue(const Store& store, QueuePlanRequest r) {
  auto rows = store.intervals(r.tenant, r.queue, INT64_MIN / 4, INT64_MAX / 4, r.channel);
  if (rows.empty())
    return "queue '" + r.queue + "' of tenant '" + r.tenant + "' has no interval statistics" +
           (r.channel.empty() ? "" : " on channel '" + r.channel + "'");
  QueuePlan out;
  out.history = history_from_rows(rows, r.interval_ms, r.utc_offset_ms);
  auto queue_doc = store.document(view::queues, r.tenant, r.queue);
  if (queue_doc && queue_doc->contains("config")) {
    const json& c = (*queue_doc)["config"];
    if (!r.threshold_given && c.contains("sl_threshold_s") && c["sl_threshold_s"].is_number())
      r.options.threshold_s = c["sl_threshold_s"].get<double>();
    if (!r.target_given && c.contains("sl_target") && c["sl_target"].is_number())
      r.options.target.service_level = std::min(0.999, c["sl_target"].get<double>());
  }
  std::function<std::optional<double>(int64_t)> available;
  ScheduleBook::Schedule schedule;
  if (auto doc = store.document(view::schedules, r.tenant, r.queue)) {
    schedule = ScheduleBook::from_json(*doc);
    out.available_source = "schedule";
    available = [&schedule](int64_t t) { return ScheduleBook::agents_at(schedule, t); };
  } else if (queue_doc && queue_doc->contains("agents_logged_in")) {
    const double logged_in = (*queue_doc)["agents_logged_in"].get<double>();
    out.available_source = "logged_in";
    available = [logged_in](int64_t) { return std::optional<double>(logged_in); };
  } else {
    out.available_source = "none";
  }
  out.plan = make_plan(out.history, r.options, available);
  return out;
}

json plan_json(const QueuePlan& p) {
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  json accuracy = json::array();
  for (const auto& a : p.plan.accuracy)
    accuracy.push_back({{"method", name_of(a.method)}, {"mase", num(a.mase)}, {"smape", num(a.smape)},
                        {"origins", a.origins}});
  json intervals = json::array();
  for (const auto& row : p.plan.rows) {
    json j = {{"start", events::format_rfc3339_ms(row.start_ms)},
              {"forecast_volume", row.volume},
              {"forecast_aht_s", row.aht_s},
              {"raw_agents", row.raw_agents},
              {"required_agents", row.agents},
              {"service_level", row.service_level},
              {"available_agents", row.available ? json(*row.available) : json(nullptr)},
              {"gap", row.gap ? json(*row.gap) : json(nullptr)}};
    intervals.push_back(std::move(j));
  }
  const auto& h = p.history;
  return {{"method", name_of(p.plan.method)},
          {"backtest", std::move(accuracy)},
          {"history",
           {{"from", events::format_rfc3339_ms(h.start_ms)},
            {"to", events::format_rfc3339_ms(h.start_ms + static_cast<int64_t>(h.offered.size()) * h.interval_ms)}}},
          {"interval_s", h.interval_ms / 1000},
          {"available_source", p.available_source},
          {"intervals", std::move(intervals)}};
}

}  // namespace omniroute::projections
