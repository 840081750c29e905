// One omniroute server: the data directory, an event log engine, the processor and the HTTP
// front door, started and stopped together.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "actors/processor.hpp"
#include "adapters/http_api.hpp"
#include "adapters/webhooks.hpp"
#include "events/event_log.hpp"
#include "ops/metrics.hpp"
#include "projections/store.hpp"

namespace omniroute::ops {

struct EngineOptions {
  std::string data_dir = "./data";
  int partitions = 4;                        // when creating a new log
  bool sync = false;                         // fsync every append (power-loss durability)
  std::string kafka_brokers;                 // empty: the embedded engine
  std::string kafka_topic_prefix = "omniroute.";
  std::map<std::string, std::string> kafka_config;
  rocksdb::Env* env = nullptr;  // where RocksDB reads and writes (null: the process's; tests
                                // pass one that fails writes)
};

// The store and the event log of a data directory (embedded or kafka engine).
struct Storage {
  std::unique_ptr<projections::Store> store;
  std::unique_ptr<events::EventLog> log;
  // The views were built with the journal index kept the other way and have been cleared:
  // they are rebuilt from the journal (a server's recovery does it; `replay` too).
  bool views_cleared = false;
};
result<Storage> open_storage(const EngineOptions& options);

struct ServerOptions {
  EngineOptions engine;
  adapters::HttpOptions http;
  actors::ProcessorOptions processor;
  // Decision egress by webhook (embedded engine only: on Kafka, the journal topic is the stream).
  std::vector<adapters::Webhook> webhooks;
  adapters::WebhookEgress::Backoff webhook_backoff;
  // Queues (and tenants) with gauges of their own (Metrics::limit_queues).
  size_t metrics_queues = 2000;
};

class Server {
 public:
  static result<std::unique_ptr<Server>> start(const ServerOptions& options);
  ~Server();
  // Stops the webhooks and the HTTP front door, then the processor (each host finishes its
  // batch). Idempotent.
  void stop();
  int port() const { return http_->port(); }
  // Puts other API keys in force (HttpApi::set_credentials).
  void set_credentials(std::shared_ptr<const adapters::Credentials> c) { http_->set_credentials(std::move(c)); }
  bool ready() const { return processor_->ready(); }
  bool owns(partition_id p) const { return processor_->owns(p); }
  const events::EventLog& log() const { return *storage_.log; }
  projections::Store& store() { return *storage_.store; }

 private:
  Server() = default;
  Storage storage_;
  Metrics metrics_;
  std::unique_ptr<actors::Processor> processor_;
  std::unique_ptr<adapters::HttpApi> http_;
  std::unique_ptr<adapters::WebhookEgress> webhooks_;
};

}  // namespace omniroute::ops
