// Forecasting, the staffing plan and published schedules.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <sstream>

#include "projections/forecast.hpp"
#include "projections/plan.hpp"
#include "projections/schedule.hpp"

using namespace omniroute::projections;

namespace {

// Four weeks of half-hours: a daily curve, busier on weekdays, a slow trend, Poisson noise.
std::vector<double> synthetic(unsigned seed, int weeks = 4, int per_day = 48) {
  std::mt19937 rng(seed);
  std::vector<double> y;
  for (int d = 0; d < weeks * 7; ++d)
    for (int j = 0; j < per_day; ++j) {
      const double hour = 24.0 * j / per_day;
      const double curve = std::max(0.0, std::sin((hour - 7) / 14 * M_PI));
      const double weekday = (d % 7) >= 5 ? 0.4 : 1.0;
      const double mean = 60 * curve * weekday * (1 + 0.01 * d) + 1;
      y.push_back(static_cast<double>(std::poisson_distribution<int>(mean)(rng)));
    }
  return y;
}

const Accuracy& of(const std::vector<Accuracy>& a, forecast_method m) {
  for (const auto& x : a)
    if (x.method == m) return x;
  FAIL("no such method");
  return a.front();
}

}  // namespace

TEST_CASE("seasonal naive repeats last week, falling back a week, then a day") {
  Seasonality s{2, 14};
  std::vector<double> y(28);
  for (size_t t = 0; t < y.size(); ++t) y[t] = static_cast<double>(t);
  auto f = forecast(forecast_method::seasonal_naive, y, s, 3);
  CHECK(f == std::vector<double>{14, 15, 16});
  y[15] = std::nan("");  // last week's value missing: the week before
  CHECK(forecast(forecast_method::seasonal_naive, y, s, 2)[1] == 1);
}

TEST_CASE("seasonal mean averages the same interval of every week") {
  Seasonality s{2, 4};
  std::vector<double> y = {1, 2, 3, 4, 3, 4, 5, std::nan("")};
  auto f = forecast(forecast_method::seasonal_mean, y, s, 4);
  CHECK(f == std::vector<double>{2, 3, 4, 4});
}

TEST_CASE("a day without a single contact is a gap, not a closed day") {
  std::vector<double> y = {0, 0, 0, 5, 0, 1};
  mark_empty_days_missing(y, 3);
  CHECK(std::isnan(y[0]));
  CHECK(std::isnan(y[2]));
  CHECK(y[3] == 5);
  CHECK(y[4] == 0);
}

TEST_CASE("Holt-Winters beats seasonal naive in a backtest on a trending double-seasonal series") {
  Seasonality s{48, 336};
  for (unsigned seed : {1u, 2u, 3u}) {
    CAPTURE(seed);
    auto y = synthetic(seed);
    auto acc = backtest(y, s, s.per_day);
    const auto& naive = of(acc, forecast_method::seasonal_naive);
    const auto& hw = of(acc, forecast_method::holt_winters);
    CHECK(naive.origins == 14);  // every day after the first two weeks
    CHECK(hw.mase < naive.mase);
    CHECK(of(acc, forecast_method::seasonal_mean).mase < naive.mase);
    CHECK(best(acc) != forecast_method::seasonal_naive);
    for (double v : forecast(forecast_method::holt_winters, y, s, 96)) CHECK(v >= 0);
  }
}

TEST_CASE("the plan staffs each forecast interval; the gap is available minus required") {
  // Two weeks of exactly 100 calls per half hour with AHT 180 s: the golden Erlang C case.
  IntervalHistory h;
  h.interval_ms = 1800000;
  for (int t = 0; t < 14 * 48; ++t) {
    h.offered.push_back(100);
    h.answered.push_back(100);
    h.handle_s.push_back(18000);
  }
  PlanOptions o;
  o.horizon_days = 1;
  o.target = Target{0.8, 0.85, 0.3};
  o.threshold_s = 20;
  Plan p = make_plan(h, o, [](int64_t start) -> std::optional<double> {
    return start < 14LL * 86400000 + 3600000 ? std::optional<double>(22) : std::nullopt;
  });
  REQUIRE(p.rows.size() == 48);
  CHECK(p.rows[0].start_ms == 14LL * 86400000);
  for (const auto& r : p.rows) {
    CHECK(r.volume == doctest::Approx(100));
    CHECK(r.aht_s == doctest::Approx(180));
    CHECK(r.raw_agents == 14);
    CHECK(r.agents == 20);
  }
  CHECK(*p.rows[0].gap == 2);
  CHECK(*p.rows[1].gap == 2);
  CHECK_FALSE(p.rows[2].available.has_value());
  CHECK(plan_svg(h, p, "test", 0).find("<svg") == 0);
}

TEST_CASE("interval-volume CSV: parsed on its grid, errors name the line") {
  std::istringstream ok("timestamp,count,aht_s\n2026-01-05 00:00,3,200\n2026-01-05 00:30,4,\n2026-01-05 01:30,5,100\n");
  auto h = history_from_csv(ok, 3600000);  // +01:00
  REQUIRE(h.has_value());
  CHECK(h->interval_ms == 1800000);
  CHECK(h->start_ms == 1767567600000);  // 2026-01-05T00:00+01:00
  CHECK(h->offered.size() == 48);
  CHECK(h->offered[1] == 4);
  CHECK(std::isnan(h->offered[2]));  // 01:00 is not in the file
  CHECK(h->handle_s[3] == 500);
  std::istringstream bad("2026-01-05 00:00,3\n2026-01-05 00:30,lots\n");
  CHECK(history_from_csv(bad, 0).error() == "line 2: count 'lots' is not a number >= 0");
  std::istringstream off("2026-01-05 00:00,3\n2026-01-05 00:07,4\n");
  CHECK(history_from_csv(off, 0).error().find("must divide a day and be at least a minute") != std::string::npos);
}

TEST_CASE("a later schedule replaces the earlier intervals it overlaps") {
  ScheduleBook book;
  auto publish = [&](const std::string& id, omniroute::events::json intervals) {
    omniroute::events::Envelope e;
    e.id = id, e.type = "schedule.published", e.tenant = "acme";
    e.data = {{"queue", "billing"}, {"intervals", intervals}};
    book.apply(e);
  };
  publish("s1", {{{"start", "2026-01-05T08:00:00Z"}, {"end", "2026-01-05T09:00:00Z"}, {"agents", 5}},
                 {{"start", "2026-01-05T09:00:00Z"}, {"end", "2026-01-05T10:00:00Z"}, {"agents", 6}}});
  publish("s2", {{{"start", "2026-01-05T08:30:00Z"}, {"end", "2026-01-05T09:30:00Z"}, {"agents", 9}}});
  CHECK(book.take_touched().size() == 1);
  const auto* s = book.find("acme", "billing");
  REQUIRE(s);
  CHECK(s->size() == 1);  // both earlier hours overlapped
  CHECK(*ScheduleBook::agents_at(*s, 1767602700000) == 9);  // 08:45
  CHECK_FALSE(ScheduleBook::agents_at(*s, 1767600000000).has_value());  // 08:00
  CHECK(ScheduleBook::from_json(ScheduleBook::to_json("billing", *s)).size() == 1);
}
