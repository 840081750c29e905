#include "ops/server.hpp"

#include <filesystem>

#include "events/embedded_log.hpp"
#include "events/kafka_log.hpp"
#include "events/log_line.hpp"

namespace omniroute::ops {

result<Storage> open_storage(const EngineOptions& o) {
  std::error_code ec;
  std::filesystem::create_directories(o.data_dir, ec);
  if (ec) return Status::error("cannot create the data directory " + o.data_dir + ": " + ec.message());
  Storage s;
  auto store = projections::Store::open(o.data_dir, 0, o.env);
  if (!store) return store.error();
  s.store = std::move(store.value());
  // The embedded engine's journal is in the same database: its index points into it.
  const bool embedded = o.kafka_brokers.empty();
  const auto how = embedded ? projections::journal_index::local : projections::journal_index::copy;
  auto cleared = s.store->index_journal(how);
  if (!cleared) return cleared.error();
  s.views_cleared = *cleared;
  if (embedded) {
    auto log = events::EmbeddedLog::open(s.store->log_handles(), o.partitions, o.sync);
    if (!log) return log.error();
    s.log = std::move(log.value());
  } else {
    events::KafkaOptions k;
    k.brokers = o.kafka_brokers;
    k.topic_prefix = o.kafka_topic_prefix;
    k.partitions = o.partitions;
    k.config = o.kafka_config;
    auto log = events::KafkaLog::open(k);
    if (!log) return log.error();
    s.log = std::move(log.value());
  }
  return s;
}

result<std::unique_ptr<Server>> Server::start(const ServerOptions& options) {
  if (!options.webhooks.empty() && !options.engine.kafka_brokers.empty())
    return Status::error("webhooks are delivered on the embedded engine only: with --kafka-brokers, "
                         "read the decisions from the journal topic");
  std::unique_ptr<Server> server(new Server);
  auto storage = open_storage(options.engine);
  if (!storage) return storage.error();
  server->storage_ = std::move(storage.value());
  server->metrics_.limit_queues(options.metrics_queues);
  actors::ProcessorOptions processing = options.processor;
  if (options.engine.kafka_brokers.empty()) {  // one node has every partition: nothing to warm
    processing.warm_up = false;
    processing.standby_every = std::chrono::seconds(0);
  }
  server->processor_ = std::make_unique<actors::Processor>(
      *server->storage_.log, *server->storage_.store, server->metrics_, processing);
  if (Status s = server->processor_->start(); !s) return s;
  Server* raw = server.get();
  server->http_ = std::make_unique<adapters::HttpApi>(
      *server->storage_.log, *server->storage_.store, server->metrics_,
      [raw] { return raw->processor_->not_ready_because(); }, options.http);
  if (!options.engine.kafka_brokers.empty())  // a node's views: its own partitions only
    server->http_->answer_only_owned([raw](partition_id p) { return raw->processor_->owns(p); });
  if (Status s = server->http_->start(); !s) {
    server->processor_->stop();
    return s;
  }
  if (!options.engine.kafka_brokers.empty()) {  // where the others send this node's queries
    const std::string& self = server->http_->advertised();
    if (self.empty())
      log_line() << "omniroute: kafka: --http listens on every address and no --advertise is "
                    "given: queries of other nodes' partitions are answered 421, not forwarded\n";
    else if (Status s = server->storage_.log->advertise(self); !s)
      log_line() << "omniroute: kafka: publishing this node's address: " << s.message() << "\n";
  }
  if (!options.webhooks.empty()) {
    server->webhooks_ = std::make_unique<adapters::WebhookEgress>(
        *server->storage_.store, server->metrics_, options.webhooks, options.webhook_backoff);
    server->webhooks_->start();
  }
  return server;
}

Server::~Server() { stop(); }

void Server::stop() {
  if (webhooks_) webhooks_->stop();
  if (http_) http_->stop();
  if (processor_) processor_->stop();
}

}  // namespace omniroute::ops
