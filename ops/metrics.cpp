#include "ops/metrics.hpp"

#include <prometheus/text_serializer.h>


#include "events/log_line.hpp"
#include "ops/version.hpp"

namespace omniroute::ops {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      ingested_(BuildCounter()
                    .Name("omniroute_events_ingested_total")
                    .Help("Events received at the front door, by type and result "
                          "(accepted, duplicate, refused)")
                    .Register(*registry_)),
      processed_(BuildCounter()
                     .Name("omniroute_events_processed_total")
                     .Help("Facts read from the ingest log by the processor, by type and result "
                           "(accepted, duplicate, refused)")
                     .Register(*registry_)),
      journal_records_(BuildCounter()
                           .Name("omniroute_journal_appends_total")
                           .Help("Journal records appended (one per processed ingest record)")
                           .Register(*registry_)),
      journal_entries_(BuildCounter()
                           .Name("omniroute_journal_entries_total")
                           .Help("Journal entries appended (facts, decisions and refusals)")
                           .Register(*registry_)),
      lag_(BuildGauge()
               .Name("omniroute_processing_lag_records")
               .Help("Ingest records not yet processed, per partition")
               .Register(*registry_)),
      latency_family_(BuildHistogram()
                          .Name("omniroute_decision_latency_seconds")
                          .Help("From a fact's ingest append to the journal append of the "
                                "decisions it caused")
                          .Register(*registry_)),
      latency_(latency_family_.Add(
          {}, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10})),
      queue_depth_(BuildGauge()
                       .Name("omniroute_queue_depth")
                       .Help("Conversations waiting in a queue")
                       .Register(*registry_)),
      oldest_wait_(BuildGauge()
                       .Name("omniroute_queue_oldest_wait_seconds")
                       .Help("How long the longest-waiting conversation of a queue has waited")
                       .Register(*registry_)),
      queue_agents_(
          BuildGauge()
              .Name("omniroute_queue_agents_available")
              .Help("Agents of a queue that are available with a free slot on its channels")
              .Register(*registry_)),
      free_slots_(BuildGauge()
                      .Name("omniroute_queue_free_slots")
                      .Help("Free slots of a queue's available agents on its channels")
                      .Register(*registry_)),
      contacts_today_(BuildGauge()
                          .Name("omniroute_queue_contacts_today")
                          .Help("A queue's contacts of the current day (UTC, by event time), by "
                                "outcome (offered, answered, abandoned)")
                          .Register(*registry_)),
      service_level_(BuildGauge()
                         .Name("omniroute_queue_service_level_today")
                         .Help("Answered within threshold / (answered + abandoned after the "
                               "threshold), current day")
                         .Register(*registry_)),
      asa_(BuildGauge()
               .Name("omniroute_queue_asa_today_seconds")
               .Help("Average speed of answer, current day")
               .Register(*registry_)),
      aht_(BuildGauge()
               .Name("omniroute_queue_aht_today_seconds")
               .Help("Average handle time (answer to close), current day")
               .Register(*registry_)),
      agents_(BuildGauge()
                  .Name("omniroute_agents")
                  .Help("Agents known to a tenant, by status")
                  .Register(*registry_)),
      http_(BuildCounter()
                .Name("omniroute_http_requests_total")
                .Help("HTTP requests by route and status code")
                .Register(*registry_)),
      errors_(BuildCounter()
                  .Name("omniroute_processor_errors_total")
                  .Help("Processor failures (the host retries with backoff), per partition")
                  .Register(*registry_)),
      recoveries_(BuildCounter()
                      .Name("omniroute_recoveries_total")
                      .Help("Recoveries of a partition's state: when this process took the "
                            "partition (at start, in a rebalance) and after a failed step")
                      .Register(*registry_)),
      warm_ups_(BuildCounter()
                    .Name("omniroute_warm_ups_total")
                    .Help("This node's copy of a partition it did not own brought up to the "
                          "journal's end (kafka): kind=join before it joined the group, "
                          "kind=standby by a standby round (--standby-every)")
                    .Register(*registry_)),
      warm_up_entries_(BuildCounter()
                           .Name("omniroute_warm_up_entries_total")
                           .Help("Journal entries those warm-ups replayed")
                           .Register(*registry_)),
      warm_up_seconds_(BuildCounter()
                           .Name("omniroute_warm_up_seconds_total")
                           .Help("Seconds those warm-ups took")
                           .Register(*registry_)),
      recovery_seconds_(BuildGauge()
                            .Name("omniroute_recovery_seconds")
                            .Help("How long the last recovery of a partition's state took (its "
                                  "snapshot read, the journal since replayed)")
                            .Register(*registry_)),
      recovery_entries_(BuildGauge()
                            .Name("omniroute_recovery_entries")
                            .Help("Journal entries the last recovery of a partition replayed")
                            .Register(*registry_)),
      recovery_from_snapshot_(BuildGauge()
                                  .Name("omniroute_recovery_from_snapshot")
                                  .Help("Whether the last recovery of a partition started from its "
                                        "snapshot (1) or replayed the whole journal (0)")
                                  .Register(*registry_)),
      recovery_backlog_(BuildGauge()
                            .Name("omniroute_recovery_backlog_entries")
                            .Help("Journal entries a recovery of the partition would replay now: "
                                  "those since its last snapshot written (all without one)")
                            .Register(*registry_)),
      snapshots_(BuildCounter()
                     .Name("omniroute_snapshots_total")
                     .Help("Snapshots of a partition's state written")
                     .Register(*registry_)),
      snapshot_bytes_(BuildGauge()
                          .Name("omniroute_snapshot_bytes")
                          .Help("Size of the last snapshot of a partition's state")
                          .Register(*registry_)),
      snapshot_seconds_(BuildGauge()
                            .Name("omniroute_snapshot_seconds")
                            .Help("How long taking the last snapshot of a partition took, from "
                                  "its encoding to its file's rename (the partition pauses for "
                                  "the encoding alone: omniroute_snapshot_pause_seconds)")
                            .Register(*registry_)),
      snapshot_pause_(BuildGauge()
                          .Name("omniroute_snapshot_pause_seconds")
                          .Help("How long a partition paused for its last snapshot (its state "
                                "encoded: the partition decides nothing meanwhile)")
                          .Register(*registry_)),
      webhook_posts_(BuildCounter()
                         .Name("omniroute_webhook_posts_total")
                         .Help("Webhook POSTs, by webhook and result (delivered: a 2xx answer; "
                               "failed: any other, or none)")
                         .Register(*registry_)),
      webhook_entries_(BuildCounter()
                           .Name("omniroute_webhook_entries_delivered_total")
                           .Help("Journal entries delivered by webhook")
                           .Register(*registry_)),
      webhook_seq_(BuildGauge()
                       .Name("omniroute_webhook_delivered_seq")
                       .Help("The last journal seq a webhook delivered (or passed over)")
                       .Register(*registry_)),
      webhook_failing_(BuildGauge()
                           .Name("omniroute_webhook_failures_in_a_row")
                           .Help("Failed deliveries of a webhook since its last success (0: "
                                 "delivering)")
                           .Register(*registry_)),
      backlog_wait_(BuildCounter()
                        .Name("omniroute_ingest_backlog_wait_seconds_total")
                        .Help("Time POST /v1/events spent waiting for room while the partition "
                              "hosts were behind (backpressure)")
                        .Register(*registry_)
                        .Add({})),
      memtables_(BuildGauge()
                     .Name("omniroute_rocksdb_memtable_bytes")
                     .Help("Bytes RocksDB's memtables hold, all column families (not yet "
                           "flushed to table files)")
                     .Register(*registry_)
                     .Add({})),
      write_stalls_(BuildCounter()
                        .Name("omniroute_rocksdb_write_stall_seconds_total")
                        .Help("Time RocksDB stopped or slowed writes (ingest, journal and views "
                              "alike) while flushes or compactions were behind")
                        .Register(*registry_)
                        .Add({})),
      waiting_polls_(BuildGauge()
                         .Name("omniroute_http_journal_polls_waiting")
                         .Help("Journal long-polls (GET /v1/journal with wait_ms) waiting now "
                               "and journal streams (GET /v1/journal/stream) open, each holding "
                               "a thread; at the limit, another is answered 503 too_many_waiting")
                         .Register(*registry_)
                         .Add({})),
      streams_(BuildGauge()
                   .Name("omniroute_http_journal_streams")
                   .Help("Journal streams (GET /v1/journal/stream, server-sent events) open now; "
                         "they count among omniroute_http_journal_polls_waiting")
                   .Register(*registry_)
                   .Add({})),
      poll_limit_(BuildGauge()
                      .Name("omniroute_http_journal_polls_limit")
                      .Help("How many journal long-polls and streams may wait at once")
                      .Register(*registry_)
                      .Add({})),
      ready_(BuildGauge()
                 .Name("omniroute_ready")
                 .Help("1 when every partition this process owns has recovered and the store "
                       "takes writes (as /readyz answers), else 0")
                 .Register(*registry_)
                 .Add({})),
      queues_limited_(BuildGauge()
                          .Name("omniroute_metrics_queues_limited")
                          .Help("1 once more queues or tenants were seen than get gauges of their "
                                "own (--metrics-queues): the others are not exported")
                          .Register(*registry_)
                          .Add({})) {
  // Which build this is, as a constant 1 labelled with it: dashboards join it to tell deploys.
  BuildGauge()
      .Name("omniroute_build_info")
      .Help("1, labelled with this build's version and the commit it was built from")
      .Register(*registry_)
      .Add({{"version", version()}, {"commit", commit()}})
      .Set(1);
}

void Metrics::memtable_bytes(uint64_t bytes) { memtables_.Set(static_cast<double>(bytes)); }

void Metrics::write_stall_micros(uint64_t total) {
  uint64_t counted = write_stall_micros_.load();
  // Scrapes may come at once: each microsecond is counted by the one that moved the mark past it.
  while (total > counted && !write_stall_micros_.compare_exchange_weak(counted, total)) {
  }
  if (total > counted) write_stalls_.Increment(static_cast<double>(total - counted) / 1e6);
}

void Metrics::waiting_polls(int count, int limit, int streams) {
  waiting_polls_.Set(count);
  streams_.Set(streams);
  poll_limit_.Set(limit);
}

void Metrics::ready(bool ready) { ready_.Set(ready ? 1 : 0); }

std::string Metrics::render() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

prometheus::Counter& Metrics::counter(prometheus::Family<prometheus::Counter>& family,
                                      const std::map<std::string, std::string>& labels) {
  std::string key = std::to_string(reinterpret_cast<uintptr_t>(&family));
  for (const auto& [k, v] : labels) key += '\x1f' + k + '=' + v;
  std::lock_guard<std::mutex> lock(cache_mu_);
  auto& slot = cache_[key];
  if (!slot) slot = &family.Add(labels);
  return *slot;
}

void Metrics::received(const std::string& type, const char* result, size_t count) {
  counter(ingested_, {{"type", type}, {"result", result}}).Increment(static_cast<double>(count));
}

void Metrics::http_request(const std::string& route, int code) {
  counter(http_, {{"route", route}, {"code", std::to_string(code)}}).Increment();
}

void Metrics::backlog_wait(double seconds) { backlog_wait_.Increment(seconds); }

void Metrics::webhook_started(const std::string& webhook) {
  for (const char* result : {"delivered", "failed"})
    counter(webhook_posts_, {{"webhook", webhook}, {"result", result}});
  counter(webhook_entries_, {{"webhook", webhook}});
  webhook_failing(webhook, 0);
}

void Metrics::webhook_delivery(const std::string& webhook, bool delivered, size_t entries) {
  counter(webhook_posts_, {{"webhook", webhook}, {"result", delivered ? "delivered" : "failed"}})
      .Increment();
  if (entries > 0)
    counter(webhook_entries_, {{"webhook", webhook}}).Increment(static_cast<double>(entries));
}

void Metrics::webhook_position(const std::string& webhook, uint64_t seq) {
  webhook_seq_.Add({{"webhook", webhook}}).Set(static_cast<double>(seq));
}

void Metrics::webhook_failing(const std::string& webhook, int failures) {
  webhook_failing_.Add({{"webhook", webhook}}).Set(failures);
}

void Metrics::on_facts(const std::string& type, const char* result, size_t count) {
  counter(processed_, {{"type", type}, {"result", result}}).Increment(static_cast<double>(count));
}

void Metrics::on_journal_append(size_t records, size_t entries) {
  counter(journal_records_, {}).Increment(static_cast<double>(records));
  counter(journal_entries_, {}).Increment(static_cast<double>(entries));
}

void Metrics::on_decision_latency(double seconds) { latency_.Observe(seconds); }

void Metrics::on_lag(partition_id p, int64_t records) {
  lag_.Add({{"partition", std::to_string(p.value())}}).Set(static_cast<double>(records));
  // The partition's error counter exists from its first report, at 0: an alert on its
  // increase() sees the first error too (a series that appears at 1 has not increased).
  counter(errors_, {{"partition", std::to_string(p.value())}});
}

void Metrics::on_tenant(const std::string& tenant,
                        const std::map<std::string, routing::QueueStats>& queues,
                        const std::map<std::string, size_t>& agents) {
  for (const auto& [queue, s] : queues) {
    QueueGauges* found = queue_gauges(tenant, queue);
    if (!found) continue;
    QueueGauges& g = *found;
    g.depth->Set(static_cast<double>(s.waiting));
    g.oldest_wait->Set(s.oldest_wait_s);
    g.agents->Set(static_cast<double>(s.agents_available));
    g.free_slots->Set(static_cast<double>(s.free_slots));
    const auto& t = s.today;
    g.offered->Set(static_cast<double>(t.offered));
    g.answered->Set(static_cast<double>(t.answered));
    g.abandoned->Set(static_cast<double>(t.abandoned));
    if (auto sl = t.service_level()) g.service_level->Set(*sl);
    if (t.answered > 0)
      g.asa->Set(static_cast<double>(t.answer_wait_ms) / 1000.0 / static_cast<double>(t.answered));
    if (t.handled > 0)
      g.aht->Set(static_cast<double>(t.handle_ms) / 1000.0 / static_cast<double>(t.handled));
  }
  if (agents.empty() || !agent_gauges(tenant)) return;
  for (const auto& [status, n] : agents)
    agents_.Add({{"tenant", tenant}, {"status", status}}).Set(static_cast<double>(n));
}

bool Metrics::agent_gauges(const std::string& tenant) {
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (agent_tenants_.count(tenant)) return true;
  if (agent_tenants_.size() >= queue_limit_) {
    limited();
    return false;
  }
  agent_tenants_.insert(tenant);
  return true;
}

void Metrics::limited() {
  if (limited_) return;
  limited_ = true;
  queues_limited_.Set(1);
  log_line() << "omniroute: metrics: more than " << queue_limit_
             << " queues or tenants; the gauges of those seen after are not exported "
                "(--metrics-queues)\n";
}

Metrics::QueueGauges* Metrics::queue_gauges(const std::string& tenant, const std::string& queue) {
  std::lock_guard<std::mutex> lock(cache_mu_);
  std::string key = tenant + '\0' + queue;
  auto it = queue_gauges_.find(key);
  if (it == queue_gauges_.end()) {
    if (queue_gauges_.size() >= queue_limit_) {
      limited();
      return nullptr;
    }
    it = queue_gauges_.emplace(std::move(key), QueueGauges{}).first;
    const std::map<std::string, std::string> labels{{"tenant", tenant}, {"queue", queue}};
    auto with = [&](const char* outcome) {
      auto l = labels;
      l["outcome"] = outcome;
      return l;
    };
    it->second = {&queue_depth_.Add(labels),
                  &oldest_wait_.Add(labels),
                  &queue_agents_.Add(labels),
                  &free_slots_.Add(labels),
                  &contacts_today_.Add(with("offered")),
                  &contacts_today_.Add(with("answered")),
                  &contacts_today_.Add(with("abandoned")),
                  &service_level_.Add(labels),
                  &asa_.Add(labels),
                  &aht_.Add(labels)};
  }
  return &it->second;
}

void Metrics::on_error(partition_id p, const std::string&) {
  counter(errors_, {{"partition", std::to_string(p.value())}}).Increment();
}

void Metrics::on_recovery(partition_id p, double seconds, size_t entries, bool from_snapshot) {
  const std::map<std::string, std::string> partition{{"partition", std::to_string(p.value())}};
  recoveries_.Add(partition).Increment();
  recovery_seconds_.Add(partition).Set(seconds);
  recovery_entries_.Add(partition).Set(static_cast<double>(entries));
  recovery_from_snapshot_.Add(partition).Set(from_snapshot ? 1 : 0);
  // The partition's snapshot series exist from here on, at 0 until its first snapshot.
  counter(snapshots_, partition);
  snapshot_bytes_.Add(partition);
  snapshot_seconds_.Add(partition);
  snapshot_pause_.Add(partition);
}

void Metrics::on_snapshot(partition_id p, size_t bytes, double seconds, double paused) {
  const std::map<std::string, std::string> partition{{"partition", std::to_string(p.value())}};
  counter(snapshots_, partition).Increment();
  snapshot_bytes_.Add(partition).Set(static_cast<double>(bytes));
  snapshot_seconds_.Add(partition).Set(seconds);
  snapshot_pause_.Add(partition).Set(paused);
}

void Metrics::on_warm_up(partition_id p, bool standby, size_t entries, double seconds) {
  const std::map<std::string, std::string> labels{{"partition", std::to_string(p.value())},
                                                  {"kind", standby ? "standby" : "join"}};
  counter(warm_ups_, labels).Increment();
  counter(warm_up_entries_, labels).Increment(static_cast<double>(entries));
  counter(warm_up_seconds_, labels).Increment(seconds);
}

void Metrics::on_recovery_backlog(partition_id p, size_t entries) {
  recovery_backlog_.Add({{"partition", std::to_string(p.value())}})
      .Set(static_cast<double>(entries));
}

}  // namespace omniroute::ops
