#include "projections/plan.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <sstream>

#include "events/time.hpp"

namespace omniroute::projections {
namespace {

constexpr int64_t day_ms = 86400000;
const double nan = std::numeric_limits<double>::quiet_NaN();

int64_t local_midnight(int64_t utc_ms, int64_t offset_ms) {
  return local_bucket_of(utc_ms, day_ms, offset_ms);
}

// A number >= 0, or nullopt.
std::optional<double> non_negative(const std::string& text) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end || !std::isfinite(v) || v < 0) return std::nullopt;
  return v;
}

// AHT per interval of the day, from the history's handle time and answered counts.
std::vector<double> aht_profile(const IntervalHistory& h, double fallback) {
  const int per_day = h.seasonality().per_day;
  std::vector<double> handle(per_day, 0.0), answered(per_day, 0.0);
  double all_handle = 0, all_answered = 0;
  for (size_t t = 0; t < h.answered.size(); ++t) {
    if (std::isnan(h.answered[t]) || std::isnan(h.handle_s[t])) continue;
    handle[t % per_day] += h.handle_s[t], answered[t % per_day] += h.answered[t];
    all_handle += h.handle_s[t], all_answered += h.answered[t];
  }
  const double overall = all_answered > 0 ? all_handle / all_answered : fallback;
  std::vector<double> out(per_day);
  // A slot with too few answers to say anything takes the overall mean.
  for (int j = 0; j < per_day; ++j) out[j] = answered[j] >= 5 ? handle[j] / answered[j] : overall;
  return out;
}

std::optional<int64_t> parse_local(const std::string& text, int64_t offset_ms) {
  if (auto t = events::parse_rfc3339_ms(text)) return t;
  int y, mo, d, h, mi, s = 0;
  char tail;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d %2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &s, &tail) < 5)
    return std::nullopt;
  char iso[40];
  std::snprintf(iso, sizeof iso, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, mo, d, h, mi, s);
  auto t = events::parse_rfc3339_ms(iso);
  if (!t) return std::nullopt;
  return *t - offset_ms;
}

}  // namespace

Seasonality IntervalHistory::seasonality() const {
  const int per_day = static_cast<int>(day_ms / interval_ms);
  return {per_day, per_day * 7};
}

IntervalHistory history_from_rows(const std::vector<IntervalRow>& rows, int64_t interval_ms,
                                  int64_t utc_offset_ms) {
  IntervalHistory h;
  h.interval_ms = interval_ms;
  const auto intervals = roll_up(rows, interval_ms, true, utc_offset_ms);  // in time order
  if (intervals.empty()) return h;
  h.start_ms = local_midnight(intervals.front().bucket_ms, utc_offset_ms);
  const int64_t end = local_midnight(intervals.back().bucket_ms, utc_offset_ms) + day_ms;
  const size_t n = static_cast<size_t>((end - h.start_ms) / interval_ms);
  h.offered.assign(n, 0.0), h.handle_s.assign(n, 0.0), h.answered.assign(n, 0.0);
  for (const auto& r : intervals) {
    const size_t t = static_cast<size_t>((r.bucket_ms - h.start_ms) / interval_ms);
    h.offered[t] = static_cast<double>(r.counters.offered);
    h.answered[t] = static_cast<double>(r.counters.answered);
    h.handle_s[t] = static_cast<double>(r.counters.handle_time_ms) / 1000.0;
  }
  const int per_day = h.seasonality().per_day;
  mark_empty_days_missing(h.offered, per_day);
  for (size_t t = 0; t < n; ++t)
    if (std::isnan(h.offered[t])) h.answered[t] = h.handle_s[t] = nan;
  return h;
}

result<IntervalHistory, std::string> history_from_csv(std::istream& in, int64_t utc_offset_ms) {
  struct Point {
    double count;
    std::optional<double> aht;
  };
  std::map<int64_t, Point> points;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
    auto at = f.empty() ? std::nullopt : parse_local(f[0], utc_offset_ms);
    if (!at && line_no == 1) continue;  // a header
    const std::string where = "line " + std::to_string(line_no) + ": ";
    if (!at) return where + "'" + (f.empty() ? "" : f[0]) + "' is not a timestamp";
    if (f.size() < 2 || f.size() > 3) return where + "expected timestamp,count[,aht_s]";
    auto count = non_negative(f[1]);
    if (!count) return where + "count '" + f[1] + "' is not a number >= 0";
    Point p{*count, std::nullopt};
    if (f.size() == 3 && !f[2].empty()) {
      p.aht = non_negative(f[2]);
      if (!p.aht) return where + "aht_s '" + f[2] + "' is not a number >= 0";
    }
    if (!points.emplace(*at, p).second) return where + "timestamp " + f[0] + " repeats";
  }
  if (points.size() < 2) return std::string("the history needs at least two intervals");
  int64_t step = INT64_MAX;
  for (auto it = std::next(points.begin()); it != points.end(); ++it)
    step = std::min(step, it->first - std::prev(it)->first);
  if (step < 60000 || day_ms % step != 0)
    return "the interval (" + std::to_string(step / 1000) + " s) must divide a day and be at least a minute";
  IntervalHistory h;
  h.interval_ms = step;
  h.start_ms = local_midnight(points.begin()->first, utc_offset_ms);
  const int64_t end = local_midnight(points.rbegin()->first, utc_offset_ms) + day_ms;
  const size_t n = static_cast<size_t>((end - h.start_ms) / step);
  h.offered.assign(n, nan), h.handle_s.assign(n, nan), h.answered.assign(n, nan);
  for (const auto& [t, p] : points) {
    if ((t - h.start_ms) % step != 0) return "timestamp " + events::format_rfc3339_ms(t) + " is off the interval grid";
    const size_t i = static_cast<size_t>((t - h.start_ms) / step);
    h.offered[i] = p.count;
    if (p.aht) h.answered[i] = p.count, h.handle_s[i] = *p.aht * p.count;
  }
  return h;
}

Plan make_plan(const IntervalHistory& history, const PlanOptions& options,
               const std::function<std::optional<double>(int64_t)>& available) {
  Plan plan;
  const Seasonality s = history.seasonality();
  const int horizon = options.horizon_days * s.per_day;
  plan.accuracy = backtest(history.offered, s, s.per_day);
  plan.method = options.method ? *options.method : best(plan.accuracy);
  const auto volume = forecast(plan.method, history.offered, s, horizon);
  const auto aht = aht_profile(history, options.default_aht_s);
  const int64_t origin = history.start_ms + static_cast<int64_t>(history.offered.size()) * history.interval_ms;
  for (int k = 0; k < horizon; ++k) {
    PlanRow row;
    row.start_ms = origin + k * history.interval_ms;
    row.volume = volume[k];
    row.aht_s = aht[(history.offered.size() + k) % s.per_day];
    Workload w;
    w.arrivals = row.volume;
    w.interval_s = static_cast<double>(history.interval_ms) / 1000.0;
    w.aht_s = row.aht_s > 0 ? row.aht_s : options.default_aht_s;
    w.threshold_s = options.threshold_s;
    w.patience_s = options.patience_s;
    w.concurrency = options.concurrency;
    Requirement r = required(w, options.target);
    row.raw_agents = r.raw_agents;
    row.agents = r.agents;
    row.service_level = r.at_raw.service_level;
    if (available) row.available = available(row.start_ms);
    if (row.available) row.gap = *row.available - row.agents;
    plan.rows.push_back(row);
  }
  return plan;
}

std::string plan_svg(const IntervalHistory& history, const Plan& plan, const std::string& title,
                     int64_t utc_offset_ms) {
  const int per_day = history.seasonality().per_day;
  const size_t shown_history = std::min<size_t>(history.offered.size(), 7 * static_cast<size_t>(per_day));
  const size_t first = history.offered.size() - shown_history;
  const size_t total = shown_history + plan.rows.size();
  if (total == 0) return "<svg xmlns=\"http://www.w3.org/2000/svg\"/>";
  const double W = 1200, H = 640, left = 60, right = 20, top = 50, gap = 40;
  const double panel = (H - top - gap - 50) / 2;
  double vmax = 1, amax = 1;
  for (size_t i = first; i < history.offered.size(); ++i)
    if (!std::isnan(history.offered[i])) vmax = std::max(vmax, history.offered[i]);
  for (const auto& r : plan.rows) {
    vmax = std::max(vmax, r.volume);
    amax = std::max({amax, static_cast<double>(r.agents), r.available.value_or(0)});
  }
  auto x = [&](size_t i) { return left + (W - left - right) * static_cast<double>(i) / static_cast<double>(total); };
  auto y_vol = [&](double v) { return top + panel * (1 - v / vmax); };
  const double top2 = top + panel + gap;
  auto y_agents = [&](double v) { return top2 + panel * (1 - v / amax); };
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(1);
  auto path = [&](const std::vector<std::pair<size_t, double>>& pts, auto&& y, const char* colour,
                  const char* extra) {
    o << "<path fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"1.5\" " << extra << " d=\"";
    bool pen = false;
    for (const auto& [i, v] : pts) {
      if (std::isnan(v)) { pen = false; continue; }
      o << (pen ? "L" : "M") << x(i) << "," << y(v) << " L" << x(i + 1) << "," << y(v) << " ";
      pen = true;
    }
    o << "\"/>\n";
  };
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << left << "\" y=\"24\" font-size=\"16\">" << title << " (forecast: "
    << name_of(plan.method) << ")</text>\n";
  // Day grid and labels.
  for (size_t i = 0; i <= total; i += static_cast<size_t>(per_day)) {
    o << "<line x1=\"" << x(i) << "\" x2=\"" << x(i) << "\" y1=\"" << top << "\" y2=\"" << top2 + panel
      << "\" stroke=\"#ddd\"/>\n";
    const int64_t t = history.start_ms + static_cast<int64_t>(first + i) * history.interval_ms + utc_offset_ms;
    if (i < total)
      o << "<text x=\"" << x(i) + 3 << "\" y=\"" << top2 + panel + 16 << "\" fill=\"#555\">"
        << events::format_rfc3339_ms(t).substr(0, 10) << "</text>\n";
  }
  o << "<line x1=\"" << x(shown_history) << "\" x2=\"" << x(shown_history) << "\" y1=\"" << top
    << "\" y2=\"" << top2 + panel << "\" stroke=\"#333\" stroke-dasharray=\"4 3\"/>\n";
  for (double f : {0.0, 0.5, 1.0}) {
    o << "<text x=\"4\" y=\"" << y_vol(vmax * f) + 4 << "\">" << vmax * f << "</text>\n";
    o << "<text x=\"4\" y=\"" << y_agents(amax * f) + 4 << "\">" << amax * f << "</text>\n";
  }
  o << "<text x=\"" << left << "\" y=\"" << top - 6 << "\">contacts per interval</text>\n"
    << "<text x=\"" << left << "\" y=\"" << top2 - 6 << "\">agents</text>\n";
  std::vector<std::pair<size_t, double>> actual, fc, req, avail;
  for (size_t i = first; i < history.offered.size(); ++i) actual.emplace_back(i - first, history.offered[i]);
  for (size_t k = 0; k < plan.rows.size(); ++k) {
    const auto& r = plan.rows[k];
    fc.emplace_back(shown_history + k, r.volume);
    req.emplace_back(shown_history + k, r.agents);
    avail.emplace_back(shown_history + k, r.available ? *r.available : nan);
  }
  path(actual, y_vol, "#777", "");
  path(fc, y_vol, "#1f6fd1", "");
  path(req, y_agents, "#d1401f", "");
  path(avail, y_agents, "#2a9d3a", "stroke-dasharray=\"5 3\"");
  const double lx = W - right - 420;
  const std::pair<const char*, const char*> legend[] = {{"#777", "actual"}, {"#1f6fd1", "forecast"},
                                                        {"#d1401f", "required (scheduled)"},
                                                        {"#2a9d3a", "available"}};
  for (int i = 0; i < 4; ++i)
    o << "<rect x=\"" << lx + i * 105 << "\" y=\"14\" width=\"12\" height=\"12\" fill=\"" << legend[i].first
      << "\"/><text x=\"" << lx + i * 105 + 16 << "\" y=\"25\">" << legend[i].second << "</text>\n";
  o << "</svg>\n";
  return o.str();
}

}  // namespace omniroute::projections
