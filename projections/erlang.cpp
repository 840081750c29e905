#include "projections/erlang.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace omniroute::projections {
namespace {

constexpr double eps = 1e-12;

// Erlang B blocking probability by the stable recursion B(k) = A B(k-1) / (k + A B(k-1)).
double erlang_b(int servers, double load) {
  double b = 1;
  for (int k = 1; k <= servers; ++k) b = load * b / (k + load * b);
  return b;
}

Performance erlang_c(const Workload& w, int agents) {
  Performance p;
  p.agents = agents;
  const int n = agents * w.concurrency;
  const double a = w.load();
  if (a <= 0) return p;
  if (n <= 0 || a >= n) {
    p.p_wait = 1;
    p.service_level = 0;
    p.occupancy = 1;
    return p;  // asa unbounded
  }
  const double mu = 1.0 / w.aht_s, lambda = w.arrivals / w.interval_s;
  p.p_wait = erlang_c_p_wait(n, a);
  p.service_level = 1 - p.p_wait * std::exp(-(n * mu - lambda) * w.threshold_s);
  p.asa_s = p.p_wait / (n * mu - lambda);
  p.occupancy = a / n;
  return p;
}

// Erlang A: the stationary distribution of the number in system (birth lambda, death
// min(k, n) mu + max(0, k - n) theta), then, for an arrival that finds i callers waiting ahead
// of it, the probability it is answered within the threshold, by uniformization of its own
// progress through the queue (ahead of it callers leave at n mu + i theta; it abandons at theta).
Performance erlang_a(const Workload& w, int agents) {
  Performance p;
  p.agents = agents;
  p.p_abandon = 0;
  const double lambda = w.arrivals / w.interval_s;
  if (lambda <= 0) return p;
  const int n = std::max(0, agents * w.concurrency);
  const double mu = 1.0 / w.aht_s, theta = 1.0 / *w.patience_s;

  std::vector<double> pi{1.0};
  double total = 1;
  for (int k = 1;; ++k) {
    const double rate = std::min(k, n) * mu + std::max(0, k - n) * theta;
    double next = pi.back() * lambda / rate;
    if (next > 1e250) {  // rescale to stay finite; only ratios matter
      for (double& v : pi) v *= 1e-250;
      total *= 1e-250;
      next *= 1e-250;
    }
    pi.push_back(next);
    total += next;
    if (k > n && next < 1e-16 * total && next <= pi[pi.size() - 2]) break;
    if (k > n + 2000000) break;  // patience far beyond any interval: the tail is negligible
  }
  for (double& v : pi) v /= total;
  const int kmax = static_cast<int>(pi.size()) - 1;

  double p_wait = 0, queue_length = 0;
  for (int k = n; k <= kmax; ++k) {
    p_wait += pi[k];
    queue_length += (k - n) * pi[k];
  }
  p.p_wait = std::min(1.0, p_wait);
  p.p_abandon = theta * queue_length / lambda;
  p.asa_s = queue_length / lambda;
  p.occupancy = n > 0 ? std::min(1.0, lambda * (1 - *p.p_abandon) / mu / n) : 1;

  // Answered within the threshold: at once (k < n), or from position i = k - n.
  double sl = 0;
  for (int k = 0; k < n && k <= kmax; ++k) sl += pi[k];
  const int positions = kmax - n + 1;
  if (n > 0 && positions > 0 && w.threshold_s > 0) {
    const double big = n * mu + positions * theta;  // the fastest total rate out of a position
    const double lt = big * w.threshold_s;
    const int steps = static_cast<int>(lt + 12 * std::sqrt(lt) + 30);
    std::vector<double> absorbed(positions, 0.0), next(positions);
    std::vector<double> served_by_t(positions, 0.0);
    for (int m = 0; m <= steps; ++m) {
      const double weight = std::exp(-lt + m * std::log(lt) - std::lgamma(m + 1.0));
      for (int i = 0; i < positions; ++i) served_by_t[i] += weight * absorbed[i];
      for (int i = 0; i < positions; ++i) {
        const double forward = n * mu + i * theta;  // to position i - 1, or answered from 0
        const double stay = 1 - (forward + theta) / big;
        next[i] = forward / big * (i == 0 ? 1.0 : absorbed[i - 1]) + stay * absorbed[i];
      }
      absorbed.swap(next);
    }
    for (int i = 0; i < positions; ++i) sl += pi[n + i] * std::min(1.0, served_by_t[i]);
  }
  p.service_level = std::min(1.0, sl);
  return p;
}

bool meets(const Performance& p, const Target& t) {
  return p.service_level >= t.service_level - eps && p.occupancy <= t.max_occupancy + eps;
}

}  // namespace

double erlang_c_p_wait(int servers, double load) {
  if (load <= 0) return 0;
  if (load >= servers) return 1;
  const double b = erlang_b(servers, load);
  return servers * b / (servers - load * (1 - b));
}

std::optional<std::string> check(const Workload& w) {
  auto bad = [](double v) { return !std::isfinite(v); };
  if (bad(w.arrivals) || w.arrivals < 0) return "arrivals must be a number >= 0";
  if (bad(w.interval_s) || w.interval_s <= 0) return "interval_s must be > 0";
  if (bad(w.aht_s) || w.aht_s <= 0) return "aht_s must be > 0";
  if (bad(w.threshold_s) || w.threshold_s < 0) return "threshold_s must be >= 0";
  if (w.patience_s && (bad(*w.patience_s) || *w.patience_s <= 0))
    return "patience_s must be > 0";
  if (w.concurrency < 1 || w.concurrency > 100) return "concurrency must be from 1 to 100";
  if (w.load() > 1e6) return "the load (arrivals x aht_s / interval_s) must be at most 1e6 erlangs";
  return std::nullopt;
}

std::optional<std::string> check(const Target& t) {
  if (!(t.service_level >= 0 && t.service_level < 1))
    return "target service level must be >= 0 and < 1";
  if (!(t.max_occupancy > 0 && t.max_occupancy <= 1)) return "max occupancy must be > 0 and <= 1";
  if (!(t.shrinkage >= 0 && t.shrinkage < 1)) return "shrinkage must be >= 0 and < 1";
  return std::nullopt;
}

Performance perform(const Workload& w, int agents) {
  return w.model() == staffing_model::erlang_a ? erlang_a(w, agents) : erlang_c(w, agents);
}

Requirement required(const Workload& w, const Target& t) {
  Requirement r;
  if (w.arrivals <= 0) {
    r.at_raw = perform(w, 0);
    return r;
  }
  // Service level rises and occupancy falls with every agent: find a staffing that meets the
  // target by doubling, then the fewest by bisection.
  int lo = 0, hi = std::max(1, static_cast<int>(w.load() / w.concurrency));
  while (!meets(perform(w, hi), t)) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    const int mid = lo + (hi - lo) / 2;
    (meets(perform(w, mid), t) ? hi : lo) = mid;
  }
  r.raw_agents = hi;
  r.at_raw = perform(w, hi);
  r.agents = static_cast<int>(std::ceil(hi / (1 - t.shrinkage) - 1e-9));
  return r;
}

}  // namespace omniroute::projections
