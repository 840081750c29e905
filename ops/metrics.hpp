// Prometheus metrics of a server (all names start with omniroute_), exposed at /metrics.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "actors/observer.hpp"

namespace omniroute::ops {

class Metrics final : public actors::ProcessorObserver {
 public:
  Metrics();

  // At most how many queues (tenant and queue) get gauges of their own, and how many tenants
  // agent gauges: their names come from clients, and each is a dozen series more for every
  // scrape and for Prometheus to keep (20,000 tenants of a queue each: 260,000 series, 17 MB a
  // scrape, 89 MB of the server's memory). Past the limit a new one is not exported, and
  // omniroute_metrics_queues_limited turns 1. 2,000 unless set; set before the hosts start.
  void limit_queues(size_t n) { queue_limit_ = n; }

  // The text exposition format of every metric.
  std::string render() const;

  // At the front door: an event received, with result "accepted", "duplicate" or "refused".
  // `type` must be a known type (or "unknown"/"unparseable") to keep label sets bounded.
  void received(const std::string& type, const char* result, size_t count = 1);
  void http_request(const std::string& route, int code);
  // Time the front door spent waiting for room while the partition hosts were behind.
  void backlog_wait(double seconds);
  // What RocksDB's memtables hold now (Store::memtable_bytes), set before each scrape.
  void memtable_bytes(uint64_t bytes);
  // How long RocksDB has stopped or slowed writes since the store was opened
  // (Store::WriteTotals::stall_micros), before each scrape.
  void write_stall_micros(uint64_t total);
  // Journal long-polls waiting now (GET /v1/journal with wait_ms) and streams open (among
  // them), and their limit, set before each scrape.
  void waiting_polls(int count, int limit, int streams);
  // Whether the process has recovered every partition it owns (/readyz), set before each scrape.
  void ready(bool ready);

  // Webhook egress (labels: the webhook's name, from the server's configuration): a POST and
  // whether the receiver took it (with the entries it carried), the last seq delivered, and
  // the failures in a row (0 once one succeeds).
  void webhook_delivery(const std::string& webhook, bool delivered, size_t entries);
  // A webhook's series, at 0, as its delivery starts.
  void webhook_started(const std::string& webhook);
  void webhook_position(const std::string& webhook, uint64_t seq);
  void webhook_failing(const std::string& webhook, int failures);

  void on_facts(const std::string& type, const char* result, size_t count) override;
  void on_journal_append(size_t records, size_t entries) override;
  void on_decision_latency(double seconds) override;
  void on_lag(partition_id p, int64_t records) override;
  void on_tenant(const std::string& tenant, const std::map<std::string, routing::QueueStats>& queues,
                 const std::map<std::string, size_t>& agents_by_status) override;
  void on_error(partition_id p, const std::string& message) override;
  void on_recovery(partition_id p, double seconds, size_t entries, bool from_snapshot) override;
  void on_snapshot(partition_id p, size_t bytes, double seconds, double paused) override;
  void on_recovery_backlog(partition_id p, size_t entries) override;
  void on_warm_up(partition_id p, bool standby, size_t entries, double seconds) override;

 private:
  prometheus::Counter& counter(prometheus::Family<prometheus::Counter>& family,
                               const std::map<std::string, std::string>& labels);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& ingested_;
  prometheus::Family<prometheus::Counter>& processed_;
  prometheus::Family<prometheus::Counter>& journal_records_;
  prometheus::Family<prometheus::Counter>& journal_entries_;
  prometheus::Family<prometheus::Gauge>& lag_;
  prometheus::Family<prometheus::Histogram>& latency_family_;
  prometheus::Histogram& latency_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Family<prometheus::Gauge>& oldest_wait_;
  prometheus::Family<prometheus::Gauge>& queue_agents_;
  prometheus::Family<prometheus::Gauge>& free_slots_;
  prometheus::Family<prometheus::Gauge>& contacts_today_;
  prometheus::Family<prometheus::Gauge>& service_level_;
  prometheus::Family<prometheus::Gauge>& asa_;
  prometheus::Family<prometheus::Gauge>& aht_;
  prometheus::Family<prometheus::Gauge>& agents_;
  prometheus::Family<prometheus::Counter>& http_;
  prometheus::Family<prometheus::Counter>& errors_;
  prometheus::Family<prometheus::Counter>& recoveries_;
  prometheus::Family<prometheus::Counter>& warm_ups_;
  prometheus::Family<prometheus::Counter>& warm_up_entries_;
  prometheus::Family<prometheus::Counter>& warm_up_seconds_;
  prometheus::Family<prometheus::Gauge>& recovery_seconds_;
  prometheus::Family<prometheus::Gauge>& recovery_entries_;
  prometheus::Family<prometheus::Gauge>& recovery_from_snapshot_;
  prometheus::Family<prometheus::Gauge>& recovery_backlog_;
  prometheus::Family<prometheus::Counter>& snapshots_;
  prometheus::Family<prometheus::Gauge>& snapshot_bytes_;
  prometheus::Family<prometheus::Gauge>& snapshot_seconds_;
  prometheus::Family<prometheus::Gauge>& snapshot_pause_;
  prometheus::Family<prometheus::Counter>& webhook_posts_;
  prometheus::Family<prometheus::Counter>& webhook_entries_;
  prometheus::Family<prometheus::Gauge>& webhook_seq_;
  prometheus::Family<prometheus::Gauge>& webhook_failing_;
  prometheus::Counter& backlog_wait_;
  prometheus::Gauge& memtables_;
  prometheus::Counter& write_stalls_;
  std::atomic<uint64_t> write_stall_micros_{0};  // counted so far
  prometheus::Gauge& waiting_polls_;
  prometheus::Gauge& streams_;
  prometheus::Gauge& poll_limit_;
  prometheus::Gauge& ready_;
  std::mutex cache_mu_;
  std::unordered_map<std::string, prometheus::Counter*> cache_;
  // A queue's gauges, created on its first report (Family::Add hashes labels each call).
  struct QueueGauges {
    prometheus::Gauge *depth, *oldest_wait, *agents, *free_slots, *offered, *answered,
        *abandoned, *service_level, *asa, *aht;
  };
  // A queue's gauges, or null when the limit keeps it out (logged once).
  QueueGauges* queue_gauges(const std::string& tenant, const std::string& queue);
  // Whether `tenant` has agent gauges (made if there is room).
  bool agent_gauges(const std::string& tenant);
  void limited();  // a queue or tenant was kept out: once, log it and set the gauge
  std::unordered_map<std::string, QueueGauges> queue_gauges_;
  std::unordered_set<std::string> agent_tenants_;
  size_t queue_limit_ = 2000;
  bool limited_ = false;
  prometheus::Gauge& queues_limited_;
};

}  // namespace omniroute::ops
