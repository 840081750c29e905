// The kafka engine: an ingest topic and a journal topic with the same partitions.
//
// - Ingest: many writers; an idempotent producer with acks=all; an append returns once every
//   message is acknowledged by the brokers.
// - Journal: partition p is written only by the owner of ingest partition p. A new owner first
//   appends an epoch marker; its position is the epoch stamped on every record it writes, and
//   readers (EpochFilter) drop records of an older epoch written after a newer marker, so a
//   zombie owner cannot fork history. Progress is recovered from the journal (each record names
//   the ingest offset it came from): no Kafka transactions are needed.
// - Membership: a consumer group on the ingest topic, used only to learn which partitions this
//   process owns (the assigned partitions are paused); records are read with positioned reads.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "events/event_log.hpp"

struct rd_kafka_s;
struct rd_kafka_topic_s;

namespace omniroute::events {

struct KafkaOptions {
  std::string brokers;                     // bootstrap.servers
  std::string topic_prefix = "omniroute."; // topics <prefix>ingest and <prefix>journal
  int partitions = 4;                      // used only when the topics must be created
  std::string group = "omniroute.processor";
  // Extra librdkafka settings for every client (e.g. session.timeout.ms, security.protocol).
  std::map<std::string, std::string> config;
};

class KafkaLog final : public EventLog {
 public:
  // Connects, creates the topics if they are missing, and checks that both have the same
  // number of partitions.
  static result<std::unique_ptr<KafkaLog>> open(const KafkaOptions& options);
  ~KafkaLog() override;

  int partitions() const override { return partitions_; }
  Status append_ingest(partition_id p, const std::vector<std::string>& payloads,
                       std::vector<ingest_offset>* offsets) override;
  Status read_ingest(partition_id p, ingest_offset from, size_t max,
                     std::chrono::milliseconds wait, std::vector<IngestRecord>& out) override;
  result<ingest_offset> ingest_end(partition_id p) override;
  result<Claim> claim(partition_id p) override;
  Status append_journal(const Claim& claim, std::vector<JournalRecord>& records,
                        ingest_offset next, std::vector<journal_pos>* positions) override;
  Status read_journal(partition_id p, journal_pos from, size_t max,
                      std::vector<StoredRecord>& out) override;
  result<journal_pos> journal_end(partition_id p) override;
  result<std::unique_ptr<Membership>> join() override;
  std::string describe() const override;

 private:
  struct Reader;  // a positioned reader of one topic partition
  KafkaLog() = default;
  Status produce(const std::string& topic, partition_id p, const std::vector<std::string>& values,
                 std::vector<int64_t>* offsets);
  Reader& reader(rd_kafka_topic_s* topic, partition_id p);
  result<int64_t> high_watermark(const std::string& topic, partition_id p);

  KafkaOptions options_;
  std::string ingest_topic_, journal_topic_;
  int partitions_ = 0;
  rd_kafka_s* producer_ = nullptr;
  rd_kafka_s* consumer_ = nullptr;  // legacy (positioned) consumer, no group
  rd_kafka_topic_s* ingest_rkt_ = nullptr;
  rd_kafka_topic_s* journal_rkt_ = nullptr;
  std::mutex readers_mu_;
  std::map<std::pair<rd_kafka_topic_s*, int32_t>, std::unique_ptr<Reader>> readers_;
  std::thread poller_;
  std::atomic<bool> stopping_{false};
};

}  // namespace omniroute::events
