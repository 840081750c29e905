// Forecasting contact volume (and handle time) per interval. Plain C++, no I/O.
//
// A series is one value per interval, oldest first, starting at a (local) midnight; NaN marks
// a missing interval. Methods:
// - seasonal_naive: the same interval a week before (the one before that if missing, then a
//   day before). The baseline every method must beat.
// - seasonal_mean: the mean of the same interval of the week over every week seen.
// - holt_winters: Taylor's (2003) double-seasonal Holt-Winters, additive form: a level, a
//   within-day and a within-week seasonal index, smoothing weights chosen by grid search on the
//   in-sample one-step error; forecasts are clipped at 0.
// Accuracy comes from a rolling-origin backtest: from each day boundary after the first two
// weeks, fit on everything before it and forecast the next `horizon` intervals. MASE scales the
// mean absolute error by the in-sample error of the weekly seasonal naive method (so < 1 beats
// it); sMAPE is 200 |y - f| / (|y| + |f|), in percent, over intervals where both are not 0.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace omniroute::projections {

enum class forecast_method { seasonal_naive, seasonal_mean, holt_winters };
constexpr forecast_method all_forecast_methods[] = {
    forecast_method::seasonal_naive, forecast_method::seasonal_mean, forecast_method::holt_winters};
const char* name_of(forecast_method m);
// The method of that name, or nullopt.
std::optional<forecast_method> forecast_method_named(std::string_view name);

struct Seasonality {
  int per_day = 96;    // intervals in a day
  int per_week = 672;  // intervals in a week
};

// Days in which every interval is 0 become missing (NaN): a gap in the history (an export
// without those days), not a day without contacts.
void mark_empty_days_missing(std::vector<double>& y, int per_day);

// The next `horizon` values after `history`.
std::vector<double> forecast(forecast_method m, const std::vector<double>& history, Seasonality s,
                             int horizon);

struct Accuracy {
  forecast_method method;
  double mase = 0, smape = 0;
  int origins = 0;  // forecast origins with at least one actual value
};

// Rolling-origin backtest of every method (see above). Origins are every day boundary from
// `min_train` intervals on (at least two weeks) with a day ahead to compare.
std::vector<Accuracy> backtest(const std::vector<double>& history, Seasonality s, int horizon);

// The method with the lowest MASE (seasonal naive when there is nothing to compare).
forecast_method best(const std::vector<Accuracy>& accuracy);

}  // namespace omniroute::projections
