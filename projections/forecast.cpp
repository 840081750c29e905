#include "projections/forecast.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace omniroute::projections {
namespace {

const double nan = std::numeric_limits<double>::quiet_NaN();

bool missing(double v) { return std::isnan(v); }

// The in-sample mean absolute error of the weekly seasonal naive method (MASE's scale).
double naive_scale(const std::vector<double>& y, int season) {
  double sum = 0;
  size_t n = 0;
  for (size_t t = static_cast<size_t>(season); t < y.size(); ++t)
    if (!missing(y[t]) && !missing(y[t - season])) sum += std::fabs(y[t] - y[t - season]), ++n;
  return n > 0 ? sum / static_cast<double>(n) : nan;
}

std::vector<double> seasonal_naive(const std::vector<double>& y, Seasonality s, int horizon) {
  std::vector<double> f(horizon, 0.0);
  const long n = static_cast<long>(y.size());
  for (int h = 0; h < horizon; ++h) {
    const long t = n + h;
    double v = nan;
    for (long k = 1; missing(v) && t - k * s.per_week >= 0; ++k)
      if (t - k * s.per_week < n) v = y[t - k * s.per_week];
    for (long k = 1; missing(v) && t - k * s.per_day >= 0; ++k)
      if (t - k * s.per_day < n) v = y[t - k * s.per_day];
    f[h] = missing(v) ? 0.0 : v;
  }
  return f;
}

std::vector<double> seasonal_mean(const std::vector<double>& y, Seasonality s, int horizon) {
  std::vector<double> sum(s.per_week, 0.0), count(s.per_week, 0.0);
  for (size_t t = 0; t < y.size(); ++t)
    if (!missing(y[t])) sum[t % s.per_week] += y[t], count[t % s.per_week] += 1;
  std::vector<double> f(horizon, 0.0);
  for (int h = 0; h < horizon; ++h) {
    size_t slot = (y.size() + h) % s.per_week;
    f[h] = count[slot] > 0 ? sum[slot] / count[slot] : 0.0;
  }
  return f;
}

struct HwState {
  double level;
  std::vector<double> day, week;  // seasonal indices by position in the day / week
};

// Initial state from the first week: level = its mean, day index = mean deviation of each
// interval of the day from its day's mean, week index = what is left.
HwState hw_init(const std::vector<double>& y, Seasonality s) {
  HwState st{0, std::vector<double>(s.per_day, 0.0), std::vector<double>(s.per_week, 0.0)};
  double sum = 0;
  int n = 0;
  for (int t = 0; t < s.per_week; ++t)
    if (!missing(y[t])) sum += y[t], ++n;
  st.level = n > 0 ? sum / n : 0;
  std::vector<double> dev(s.per_day, 0.0), devn(s.per_day, 0.0);
  const int days = s.per_week / s.per_day;
  for (int d = 0; d < days; ++d) {
    double ds = 0;
    int dn = 0;
    for (int j = 0; j < s.per_day; ++j)
      if (!missing(y[d * s.per_day + j])) ds += y[d * s.per_day + j], ++dn;
    if (dn == 0) continue;
    const double mean = ds / dn;
    for (int j = 0; j < s.per_day; ++j)
      if (!missing(y[d * s.per_day + j])) dev[j] += y[d * s.per_day + j] - mean, devn[j] += 1;
  }
  for (int j = 0; j < s.per_day; ++j) st.day[j] = devn[j] > 0 ? dev[j] / devn[j] : 0;
  for (int t = 0; t < s.per_week; ++t)
    st.week[t] = missing(y[t]) ? 0 : y[t] - st.level - st.day[t % s.per_day];
  return st;
}

// Runs the smoothing over y from the second week on; returns the in-sample one-step squared
// error and leaves the final state in `st`.
double hw_run(const std::vector<double>& y, Seasonality s, double alpha, double delta,
              double omega, HwState& st) {
  double sse = 0;
  for (size_t t = static_cast<size_t>(s.per_week); t < y.size(); ++t) {
    double& d = st.day[t % s.per_day];
    double& w = st.week[t % s.per_week];
    const double f = st.level + d + w;
    if (missing(y[t])) continue;  // nothing learnt; the indices keep their values
    const double e = y[t] - f;
    sse += e * e;
    const double level = alpha * (y[t] - d - w) + (1 - alpha) * st.level;
    d = delta * (y[t] - level - w) + (1 - delta) * d;
    w = omega * (y[t] - level - d) + (1 - omega) * w;
    st.level = level;
  }
  return sse;
}

std::vector<double> holt_winters(const std::vector<double>& y, Seasonality s, int horizon) {
  if (y.size() < static_cast<size_t>(2 * s.per_week)) return seasonal_naive(y, s, horizon);
  const HwState init = hw_init(y, s);
  double best_sse = std::numeric_limits<double>::infinity();
  HwState best = init;
  for (double alpha : {0.01, 0.05, 0.1, 0.2})
    for (double delta : {0.02, 0.05, 0.1, 0.2, 0.4})
      for (double omega : {0.02, 0.05, 0.1, 0.2, 0.4}) {
        HwState st = init;
        double sse = hw_run(y, s, alpha, delta, omega, st);
        if (sse < best_sse) best_sse = sse, best = std::move(st);
      }
  std::vector<double> f(horizon);
  for (int h = 0; h < horizon; ++h) {
    size_t t = y.size() + h;
    f[h] = std::max(0.0, best.level + best.day[t % s.per_day] + best.week[t % s.per_week]);
  }
  return f;
}

}  // namespace

const char* name_of(forecast_method m) {
  switch (m) {
    case forecast_method::seasonal_naive: return "seasonal_naive";
    case forecast_method::seasonal_mean: return "seasonal_mean";
    case forecast_method::holt_winters: return "holt_winters";
  }
  return "?";
}

std::optional<forecast_method> forecast_method_named(std::string_view name) {
  for (forecast_method m : all_forecast_methods)
    if (name == name_of(m)) return m;
  return std::nullopt;
}

void mark_empty_days_missing(std::vector<double>& y, int per_day) {
  for (size_t start = 0; start + per_day <= y.size(); start += per_day) {
    bool empty = true;
    for (int j = 0; j < per_day && empty; ++j) empty = y[start + j] == 0 || missing(y[start + j]);
    if (empty)
      for (int j = 0; j < per_day; ++j) y[start + j] = nan;
  }
}

std::vector<double> forecast(forecast_method m, const std::vector<double>& history, Seasonality s,
                             int horizon) {
  if (horizon <= 0) return {};
  switch (m) {
    case forecast_method::seasonal_naive: return seasonal_naive(history, s, horizon);
    case forecast_method::seasonal_mean: return seasonal_mean(history, s, horizon);
    case forecast_method::holt_winters: return holt_winters(history, s, horizon);
  }
  return std::vector<double>(horizon, 0.0);
}

std::vector<Accuracy> backtest(const std::vector<double>& y, Seasonality s, int horizon) {
  std::vector<Accuracy> out;
  for (forecast_method m : all_forecast_methods) {
    Accuracy a{m};
    double mase_sum = 0, smape_sum = 0;
    size_t smape_n = 0;
    for (size_t origin = 2 * static_cast<size_t>(s.per_week); origin + s.per_day <= y.size();
         origin += s.per_day) {
      std::vector<double> train(y.begin(), y.begin() + static_cast<long>(origin));
      const double scale = naive_scale(train, s.per_week);
      if (missing(scale) || scale <= 0) continue;
      const int h = std::min<int>(horizon, static_cast<int>(y.size() - origin));
      auto f = forecast(m, train, s, h);
      double abs_sum = 0;
      size_t n = 0;
      for (int k = 0; k < h; ++k) {
        const double actual = y[origin + k];
        if (missing(actual)) continue;
        abs_sum += std::fabs(actual - f[k]), ++n;
        if (std::fabs(actual) + std::fabs(f[k]) > 0)
          smape_sum += 200 * std::fabs(actual - f[k]) / (std::fabs(actual) + std::fabs(f[k])), ++smape_n;
      }
      if (n == 0) continue;
      mase_sum += abs_sum / static_cast<double>(n) / scale;
      ++a.origins;
    }
    a.mase = a.origins > 0 ? mase_sum / a.origins : nan;
    a.smape = smape_n > 0 ? smape_sum / static_cast<double>(smape_n) : nan;
    out.push_back(a);
  }
  return out;
}

forecast_method best(const std::vector<Accuracy>& accuracy) {
  forecast_method m = forecast_method::seasonal_naive;
  double lowest = std::numeric_limits<double>::infinity();
  for (const auto& a : accuracy)
    if (a.origins > 0 && a.mase < lowest) lowest = a.mase, m = a.method;
  return m;
}

}  // namespace omniroute::projections
