// omniroute-bench-forecast: the time to forecast and staff 100 queues x 4 weeks of 15-minute
// history (a week ahead each), as `GET /v1/queues/{id}/forecast` does it: backtest of every
// method, the chosen forecast, Erlang C staffing per interval. The baseline in the same run is
// the seasonal naive forecast with the same staffing and no backtest.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "projections/plan.hpp"

using namespace omniroute::projections;
using clock_type = std::chrono::steady_clock;

int main() {
  const int queues = 100, per_day = 96, days = 28;
  std::vector<IntervalHistory> histories;
  std::mt19937 rng(42);
  for (int q = 0; q < queues; ++q) {
    IntervalHistory h;
    h.interval_ms = 900000;
    const double size = 5 + q;  // small to large queues
    for (int d = 0; d < days; ++d)
      for (int j = 0; j < per_day; ++j) {
        const double hour = 24.0 * j / per_day;
        const double mean = size * std::max(0.0, std::sin((hour - 7) / 14 * M_PI)) *
                            ((d % 7) >= 5 ? 0.5 : 1.0) + 0.2;
        const double n = std::poisson_distribution<int>(mean)(rng);
        h.offered.push_back(n);
        h.answered.push_back(n);
        h.handle_s.push_back(n * 240);
      }
    histories.push_back(std::move(h));
  }
  PlanOptions options;
  options.horizon_days = 7;
  options.target = Target{0.8, 0.85, 0.3};

  auto run = [&](const PlanOptions& o, bool naive_only) {
    auto t0 = clock_type::now();
    long agents = 0;
    for (const auto& h : histories) {
      if (naive_only) {
        // make_plan always backtests; the baseline staffs the naive forecast directly.
        auto f = forecast(forecast_method::seasonal_naive, h.offered, h.seasonality(), 7 * per_day);
        for (double v : f) {
          Workload w;
          w.arrivals = v, w.interval_s = 900, w.aht_s = 240, w.threshold_s = 20;
          agents += required(w, o.target).agents;
        }
      } else {
        Plan p = make_plan(h, o, {});
        for (const auto& r : p.rows) agents += r.agents;
      }
    }
    double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    return std::make_pair(secs, agents);
  };
  auto [base_s, base_agents] = run(options, true);
  auto [full_s, full_agents] = run(options, false);
  std::printf("forecast bench: %d queues x %d days of 15-minute intervals, 7 days ahead\n", queues, days);
  std::printf("  baseline (seasonal naive + Erlang C staffing, no backtest): %.3f s (%ld agent-intervals)\n",
              base_s, base_agents);
  std::printf("  full plan (backtest of 3 methods over 14 origins, best forecast, staffing): %.3f s "
              "(%.1f ms per queue, %ld agent-intervals)\n",
              full_s, full_s * 1000 / queues, full_agents);
  std::printf("forecast_plan_s=%.3f baseline_s=%.3f\n", full_s, base_s);
  return 0;
}
