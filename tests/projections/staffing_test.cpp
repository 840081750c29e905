// Staffing math: the Erlang C golden values of the issue, Erlang A against a simulation of the
// same M/M/N+M queue, chat concurrency, and input checks.
#include <doctest/doctest.h>

#include <deque>
#include <queue>
#include <random>

#include "projections/erlang.hpp"

using namespace omniroute::projections;

namespace {

Workload golden() {  // 100 calls per 30 minutes, AHT 180 s, threshold 20 s
  Workload w;
  w.arrivals = 100;
  w.interval_s = 1800;
  w.aht_s = 180;
  w.threshold_s = 20;
  return w;
}

struct Simulated {
  double p_wait, service_level, p_abandon, asa_s;
};

// A discrete-event simulation of M/M/n+M, independent of the formulas under test.
Simulated simulate(const Workload& w, int n, int arrivals, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(w.arrivals / w.interval_s), service(1 / w.aht_s),
      patience(1 / *w.patience_s);
  std::priority_queue<double, std::vector<double>, std::greater<double>> busy_until;
  std::deque<std::pair<double, double>> waiting;  // (arrival, gives up at)
  double now = 0, waited_total = 0;
  long waited = 0, within = 0, abandoned = 0;
  auto serve_until = [&](double t) {  // free servers take waiting callers up to time t
    while (!busy_until.empty() && busy_until.top() <= t) {
      double free_at = busy_until.top();
      busy_until.pop();
      while (!waiting.empty() && waiting.front().second < free_at) {
        waited_total += waiting.front().second - waiting.front().first;
        waiting.pop_front();
        ++abandoned;
      }
      if (waiting.empty()) continue;
      double wait = free_at - waiting.front().first;
      waited_total += wait;
      if (wait <= w.threshold_s) ++within;
      waiting.pop_front();
      busy_until.push(free_at + service(rng));
    }
  };
  for (int i = 0; i < arrivals; ++i) {
    now += gap(rng);
    serve_until(now);
    while (!waiting.empty() && waiting.front().second < now) {  // gave up, nobody freed
      waited_total += waiting.front().second - waiting.front().first;
      waiting.pop_front();
      ++abandoned;
    }
    if (static_cast<int>(busy_until.size()) < n) {
      ++within;
      busy_until.push(now + service(rng));
    } else {
      ++waited;
      waiting.emplace_back(now, now + patience(rng));
    }
  }
  double a = arrivals;
  return {waited / a, within / a, abandoned / a, waited_total / a};
}

}  // namespace

TEST_CASE("Erlang C meets the golden values") {
  const double p_wait[] = {0.6821182, 0.4493882, 0.2852705, 0.1741319};
  const double sl[] = {0.3896138, 0.640158, 0.7955948, 0.88835};
  for (int n = 11; n <= 14; ++n) {
    CAPTURE(n);
    Performance p = perform(golden(), n);
    CHECK(p.p_wait == doctest::Approx(p_wait[n - 11]).epsilon(1e-6));
    CHECK(p.service_level == doctest::Approx(sl[n - 11]).epsilon(1e-6));
    CHECK(p.occupancy == doctest::Approx(10.0 / n));
    CHECK(*p.asa_s == doctest::Approx(p.p_wait * 180 / (n - 10)));
  }
  Requirement r = required(golden(), Target{0.8, 0.85, 0.3});
  CHECK(r.raw_agents == 14);
  CHECK(r.agents == 20);
}

TEST_CASE("Erlang C: the occupancy cap can need more agents than the service level") {
  Workload w = golden();
  w.threshold_s = 600;  // a lax threshold: 11 agents meet 80 %, but run at 91 % occupancy
  CHECK(required(w, Target{0.8, 1.0, 0}).raw_agents == 11);
  CHECK(required(w, Target{0.8, 0.85, 0}).raw_agents == 12);
}

TEST_CASE("Erlang C: overload and no load") {
  Performance over = perform(golden(), 10);
  CHECK(over.p_wait == 1);
  CHECK(over.service_level == 0);
  CHECK_FALSE(over.asa_s.has_value());
  Workload idle = golden();
  idle.arrivals = 0;
  CHECK(required(idle, Target{}).raw_agents == 0);
  CHECK(perform(idle, 3).service_level == 1);
}

TEST_CASE("Erlang C stays finite for large centres") {
  Workload w = golden();
  w.arrivals = 100000;  // 10,000 erlangs
  Requirement r = required(w, Target{0.8, 1.0, 0});
  CHECK(r.raw_agents > 10000);
  CHECK(r.raw_agents < 10100);
  CHECK(r.at_raw.service_level >= 0.8);
  CHECK(perform(w, r.raw_agents - 1).service_level < 0.8);
}

TEST_CASE("Erlang A tends to Erlang C as patience grows") {
  Workload w = golden();
  w.patience_s = 1e7;
  for (int n = 11; n <= 14; ++n) {
    CAPTURE(n);
    Performance a = perform(w, n), c = perform(golden(), n);
    CHECK(a.p_wait == doctest::Approx(c.p_wait).epsilon(1e-3));
    CHECK(a.service_level == doctest::Approx(c.service_level).epsilon(1e-3));
    CHECK(*a.p_abandon < 1e-4);
  }
}

TEST_CASE("Erlang A agrees with a simulation of M/M/N+M") {
  Workload w = golden();
  w.patience_s = 120;
  for (int n : {9, 11, 13}) {
    CAPTURE(n);
    Performance exact = perform(w, n);
    Simulated sim = simulate(w, n, 400000, 7 + n);
    CHECK(exact.p_wait == doctest::Approx(sim.p_wait).epsilon(0.02));
    CHECK(exact.service_level == doctest::Approx(sim.service_level).epsilon(0.02));
    CHECK(*exact.p_abandon == doctest::Approx(sim.p_abandon).epsilon(0.04));
    CHECK(*exact.asa_s == doctest::Approx(sim.asa_s).epsilon(0.04));
  }
  // Abandonment relieves the queue: fewer agents than Erlang C for the same target.
  CHECK(required(w, Target{0.8, 1.0, 0}).raw_agents <= required(golden(), Target{0.8, 1.0, 0}).raw_agents);
}

TEST_CASE("chat concurrency: an agent is `concurrency` slots") {
  Workload chat = golden();
  chat.concurrency = 3;
  Performance p = perform(chat, 4);  // 12 slots
  CHECK(p.p_wait == doctest::Approx(perform(golden(), 12).p_wait));
  CHECK(p.agents == 4);
  Requirement r = required(chat, Target{0.8, 0.85, 0});
  CHECK(r.raw_agents == 5);  // 14 slots needed -> 5 agents of 3
}

TEST_CASE("bad staffing input names what is wrong") {
  Workload w = golden();
  w.aht_s = 0;
  CHECK(check(w).value() == "aht_s must be > 0");
  w = golden();
  w.patience_s = -1;
  CHECK(check(w).value() == "patience_s must be > 0");
  CHECK(check(Target{1.2, 1, 0}).value() == "target service level must be >= 0 and < 1");
  CHECK(check(Target{0.8, 1, 1}).value() == "shrinkage must be >= 0 and < 1");
  CHECK_FALSE(check(golden()).has_value());
}
