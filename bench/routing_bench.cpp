// Routing benchmark (issue 3): 10,000 agents online in 100 queues and 100,000 live
// conversations, then a steady load of conversations ending (wrap-up frees a slot, the agent
// takes the next waiting conversation) and starting (queued, assigned when a slot is free).
//
// - engine: routing::Tenant::handle() alone, one thread: decisions per second, latency per fact
//   that decided something (p50/p99), heap bytes per agent and per live conversation
//   (glibc mallinfo2, before and after);
// - pipeline: the same facts through the embedded engine's real path (ingest log append ->
//   partition processor -> journal append + projections), one partition: first as fast as it
//   goes (the maximum rate), then paced at half that rate, where the latency from a fact's
//   ingest append to the journal append of its decisions is measured (p50/p99).
// Baseline in the same run: the engine's rate on an empty tenant (one queue, one agent).
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include "actors/partition_processor.hpp"
#include "actors/processor.hpp"
#include "actors/routing.hpp"
#include "events/embedded_log.hpp"
#include "events/time.hpp"
#include "projections/store.hpp"

using namespace omniroute;
using nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr int64_t origin_ms = 1795168800000;
constexpr int queues = 100, agents = 10000, live = 100000, steady = 200000;

std::string event(const std::string& id, const std::string& type, int64_t ms, json data) {
  return json{{"id", id}, {"type", type}, {"tenant", "bench"},
              {"time", events::format_rfc3339_ms(origin_ms + ms)}, {"data", std::move(data)}}
      .dump();
}

size_t heap_bytes() { return mallinfo2().uordblks; }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

routing::Outcome handle(routing::Tenant& t, const std::string& text) {
  auto parsed = events::parse_fact(json::parse(text));
  if (!parsed) {
    std::fprintf(stderr, "bench: bad fact %s: %s\n", text.c_str(), parsed.error().reason.c_str());
    std::exit(1);
  }
  return t.handle(std::move(parsed.value()));
}

struct Workload {
  std::vector<std::string> queues_and_agents, conversations, steady;
};

// Builds the facts by running them through a tenant, so that every fact of the steady part
// (a wrap-up names the agent that has the conversation) is valid when replayed in order.
Workload make_workload(routing::Tenant& engine, size_t& heap_agents, size_t& heap_conversations,
                       std::vector<double>& engine_latency_us, double& engine_seconds,
                       size_t& engine_decisions) {
  Workload w;
  std::mt19937 rng(7);
  int64_t ms = 0;
  const char* strategies[] = {"longest_idle", "least_occupied", "most_proficient", "round_robin"};
  for (int q = 0; q < queues; ++q)
    w.queues_and_agents.push_back(event("q" + std::to_string(q), "queue.configured", ms,
                                        {{"queue", "q" + std::to_string(q)},
                                         {"auto_accept", true},
                                         {"strategy", strategies[q % 4]},
                                         {"skill", "s"},
                                         {"requirement", q % 2 ? "agent.skills.s >= 2" : ""}}));
  for (int a = 0; a < agents; ++a) {
    const int q1 = a % queues, q2 = static_cast<int>(rng() % queues);
    w.queues_and_agents.push_back(event("a" + std::to_string(a), "agent.logged_in", ++ms / 10,
                                        {{"agent", "agent" + std::to_string(a)},
                                         {"queues", {"q" + std::to_string(q1), "q" + std::to_string(q2)}},
                                         {"capacity", {{"chat", 6}, {"voice", 1}}},
                                         {"skills", {{"s", 1 + static_cast<int>(rng() % 5)}}}}));
  }
  const size_t h0 = heap_bytes();
  for (const auto& f : w.queues_and_agents) handle(engine, f);
  (void)engine.take_touched();
  heap_agents = heap_bytes() - h0;

  std::map<std::string, std::string> agent_of;  // live conversation -> its agent (assigned)
  std::vector<std::string> assigned;            // live assigned conversations, for ending
  auto note = [&](const routing::Outcome& out) {
    for (const auto& e : out.entries)
      if (e.type == "conversation.assigned") {
        agent_of[e.data["conversation"]] = e.data["agent"];
        assigned.push_back(e.data["conversation"]);
      }
  };
  int next = 0;
  auto start = [&](int64_t at) {
    const int i = next++;
    return event("s" + std::to_string(i), "conversation.started", at,
                 {{"conversation", "c" + std::to_string(i)},
                  {"customer", "u" + std::to_string(i % 50000)},
                  {"channel", i % 8 == 0 ? "voice" : "web"},
                  {"queue", "q" + std::to_string(static_cast<int>(rng() % queues))}});
  };
  ms = 100000;
  const size_t h1 = heap_bytes();
  for (int i = 0; i < live; ++i) {
    w.conversations.push_back(start(ms += 5));
    note(handle(engine, w.conversations.back()));
    if (i % 4096 == 0) (void)engine.take_touched();
  }
  (void)engine.take_touched();
  heap_conversations = heap_bytes() - h1;

  // Steady: end a random assigned conversation and wrap it up, start a new one.
  for (int i = 0; static_cast<int>(w.steady.size()) < steady; ++i) {
    std::vector<std::string> facts;
    if (i % 2 == 0 && !assigned.empty()) {
      size_t k = rng() % assigned.size();
      std::string c = assigned[k];
      assigned[k] = assigned.back();
      assigned.pop_back();
      facts.push_back(event("e" + std::to_string(i), "conversation.ended", ms += 5,
                            {{"conversation", c}, {"by", "customer"}}));
      facts.push_back(event("w" + std::to_string(i), "conversation.wrapped_up", ms += 5,
                            {{"conversation", c}, {"agent", agent_of[c]}}));
      agent_of.erase(c);
    } else {
      facts.push_back(start(ms += 5));
    }
    for (auto& f : facts) {
      auto parsed = events::parse_fact(json::parse(f));
      auto a = clock_type::now();
      routing::Outcome out = engine.handle(std::move(parsed.value()));
      auto b = clock_type::now();
      if (out.entries.size() > 1) {
        engine_latency_us.push_back(std::chrono::duration<double, std::micro>(b - a).count());
        engine_decisions += out.entries.size() - 1;
      }
      engine_seconds += std::chrono::duration<double>(b - a).count();
      note(out);
      w.steady.push_back(std::move(f));
    }
    if (i % 1024 == 0) (void)engine.take_touched();
  }
  return w;
}

// The engine's rate with nothing in it: one queue, one agent, conversations that start, end
// and wrap up.
double baseline_facts_per_s() {
  routing::Tenant t("base");
  handle(t, event("q", "queue.configured", 0, {{"queue", "q"}, {"auto_accept", true}}));
  handle(t, event("a", "agent.logged_in", 1, {{"agent", "a"}, {"queues", {"q"}}, {"capacity", {{"chat", 1}}}}));
  std::vector<std::string> facts;
  for (int i = 0; i < 30000; ++i) {
    std::string c = "c" + std::to_string(i);
    facts.push_back(event("s" + c, "conversation.started", 10 + i * 3, {{"conversation", c}, {"customer", "u"}, {"channel", "web"}, {"queue", "q"}}));
    facts.push_back(event("e" + c, "conversation.ended", 11 + i * 3, {{"conversation", c}, {"by", "customer"}}));
    facts.push_back(event("w" + c, "conversation.wrapped_up", 12 + i * 3, {{"conversation", c}, {"agent", "a"}}));
  }
  double seconds = 0;
  for (const auto& f : facts) {
    auto parsed = events::parse_fact(json::parse(f));
    auto a = clock_type::now();
    (void)t.handle(std::move(parsed.value()));
    seconds += std::chrono::duration<double>(clock_type::now() - a).count();
    (void)t.take_touched();
  }
  return static_cast<double>(facts.size()) / seconds;
}

struct Latencies final : actors::ProcessorObserver {
  std::vector<double> seconds;
  std::atomic<bool> recording{false};
  void on_decision_latency(double s) override {
    if (recording) seconds.push_back(s);
  }
};

struct Pipeline {
  std::string dir;
  std::unique_ptr<projections::Store> store;
  std::unique_ptr<events::EmbeddedLog> log;
  Latencies observer;
  std::unique_ptr<actors::PartitionProcessor> processor;

  explicit Pipeline(const std::string& d) : dir(d) {
    std::filesystem::remove_all(dir);
    store = std::move(projections::Store::open(dir).value());
    log = std::move(events::EmbeddedLog::open(store->log_handles(), 1, false).value());
    // As the server runs it (ProcessorOptions): views trail the journal by at most 2 ms.
    const actors::ProcessorOptions server;
    processor = std::make_unique<actors::PartitionProcessor>(*log, *store, partition_id{0}, observer,
                                                             server.max_batch, false,
                                                             server.projection_interval);
  }
  ~Pipeline() {
    processor.reset();
    log.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }
  void append(const std::vector<std::string>& facts, size_t from, size_t to) {
    for (size_t i = from; i < to; i += 1000)
      (void)log->append_ingest(partition_id{0},
                               std::vector<std::string>(facts.begin() + static_cast<long>(i),
                                                        facts.begin() + static_cast<long>(std::min(to, i + 1000))),
                               nullptr);
  }
  // Steps until the processor has consumed everything appended so far.
  void drain() {
    for (;;) {
      auto n = processor->step(std::chrono::milliseconds(0));
      if (!n) {
        std::fprintf(stderr, "bench: %s\n", n.error().message().c_str());
        std::exit(1);
      }
      if (*n == 0) return;
    }
  }
};

}  // namespace

int main() {
  std::printf("routing: %d agents online in %d queues, %d live conversations, then %d facts of "
              "steady load (conversations ending, wrapping up and starting)\n",
              agents, queues, live, steady);
  std::fflush(stdout);
  const double base = baseline_facts_per_s();

  routing::Tenant engine("bench");
  size_t heap_agents = 0, heap_conversations = 0, engine_decisions = 0;
  std::vector<double> engine_us;
  double engine_seconds = 0;
  Workload w = make_workload(engine, heap_agents, heap_conversations, engine_us, engine_seconds,
                             engine_decisions);
  std::printf("  memory: %.0f bytes per agent, %.0f bytes per live conversation (heap, mallinfo2)\n",
              static_cast<double>(heap_agents) / agents, static_cast<double>(heap_conversations) / live);
  std::printf("  engine: %.0f facts/s, %.0f decisions/s; latency per deciding fact p50 %.1f us, "
              "p99 %.1f us (baseline, empty tenant: %.0f facts/s)\n",
              static_cast<double>(w.steady.size()) / engine_seconds,
              static_cast<double>(engine_decisions) / engine_seconds, percentile(engine_us, 0.5),
              percentile(engine_us, 0.99), base);
  std::fflush(stdout);

  Pipeline p((std::filesystem::temp_directory_path() / "omniroute-routing-bench").string());
  auto t0 = clock_type::now();
  p.append(w.queues_and_agents, 0, w.queues_and_agents.size());
  p.append(w.conversations, 0, w.conversations.size());
  p.drain();
  const double setup_s = std::chrono::duration<double>(clock_type::now() - t0).count();

  // One fact at a time, each processed before the next is appended: the latency without
  // any queueing in front of the processor.
  const size_t alone = 2000;
  std::vector<double> alone_us;
  for (size_t i = 0; i < alone; ++i) {
    (void)p.log->append_ingest(partition_id{0}, {w.steady[i]}, nullptr);
    auto a = clock_type::now();
    p.drain();
    alone_us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - a).count());
  }
  std::printf("  pipeline, one fact at a time: step p50 %.0f us, p99 %.0f us\n", percentile(alone_us, 0.5),
              percentile(alone_us, 0.99));
  std::fflush(stdout);

  // Maximum rate: the first half of the steady load, appended at once, processed to the end.
  const size_t half = alone + (w.steady.size() - alone) / 2;
  t0 = clock_type::now();
  std::thread feeder([&] { p.append(w.steady, alone, half); });
  size_t done = 0;
  while (done < half - alone) {
    auto n = p.processor->step(std::chrono::milliseconds(50));
    if (!n) return 1;
    done += *n;
  }
  feeder.join();
  const double max_s = std::chrono::duration<double>(clock_type::now() - t0).count();
  const double max_rate = static_cast<double>(half - alone) / max_s;

  // Paced runs, one fact at a time on schedule: half the maximum rate (the target
  // point), then a quarter of it. Latency: from a fact's ingest append to the journal append of
  // the decisions it caused.
  auto paced_run = [&](size_t from, size_t to, double rate) {
    p.observer.seconds.clear();
    p.observer.recording = true;
    std::thread paced([&] {
      const auto begin = clock_type::now();
      for (size_t i = from; i < to; ++i) {
        std::this_thread::sleep_until(begin + std::chrono::duration_cast<clock_type::duration>(
                                                  std::chrono::duration<double>(static_cast<double>(i - from) / rate)));
        (void)p.log->append_ingest(partition_id{0}, {w.steady[i]}, nullptr);
      }
    });
    size_t processed = 0;
    while (processed < to - from) {
      auto n = p.processor->step(std::chrono::milliseconds(50));
      if (!n) std::exit(1);
      processed += *n;
    }
    paced.join();
    p.observer.recording = false;
    std::vector<double> us;
    for (double s : p.observer.seconds) us.push_back(s * 1e6);
    return us;
  };
  const size_t split = half + (w.steady.size() - half) * 2 / 3;
  std::vector<double> at_half = paced_run(half, split, max_rate / 2);
  std::vector<double> at_quarter = paced_run(split, w.steady.size(), max_rate / 4);
  std::printf("  pipeline (embedded engine, ingest append -> journal append; views trail by <= 2 ms): "
              "setup %.1f s; maximum %.0f facts/s\n", setup_s, max_rate);
  for (const auto& [name, us] : {std::pair<const char*, const std::vector<double>&>{"half", at_half}, {"a quarter", at_quarter}})
    std::printf("    at %s of that (%.0f facts/s): fact-to-decision latency p50 %.0f us, p90 %.0f us, "
                "p99 %.0f us over %zu deciding facts\n",
                name, max_rate * (us.data() == at_half.data() ? 0.5 : 0.25), percentile(us, 0.5),
                percentile(us, 0.9), percentile(us, 0.99), us.size());
  std::printf("routing_decision_p99_us=%.0f routing_max_facts_per_s=%.0f bytes_per_conversation=%.0f\n",
              percentile(at_half, 0.99), max_rate, static_cast<double>(heap_conversations) / live);
  return 0;
}
