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
// - Owners: a node that claims a partition publishes its HTTP address with the claim's epoch to
//   a compacted topic of one partition (<prefix>nodes, keyed by partition); every node reads it
//   from the start and keeps, per partition, the address of the latest epoch, so that it can
//   send a query of a partition it does not own to the node that does.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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

// Whether the extra settings (KafkaOptions::config) leave alone those the log sets itself for
// what it promises: the brokers and the group (their own options), the idempotent producer
// writing to every in-sync replica (enable.idempotence, acks), no transactions (the log does not
// begin them), and offsets that only the log moves (enable.auto.commit,
// enable.auto.offset.store, enable.partition.eof). The error names the setting and why. Any
// other setting is the user's: its value wins over the log's defaults (linger.ms 2,
// message.timeout.ms 30000 for the producer).
Status check_kafka_config(const std::map<std::string, std::string>& config);

// The log's topics: <prefix>ingest, <prefix>journal, <prefix>nodes.
enum class log_topic { ingest, journal, nodes };

// What topic `name`'s replicas (those of its first partition, from the metadata) and settings
// (as the cluster describes them) leave of "an acknowledged event is never lost" when a broker
// is: a line for each weakness, none if there is none. For the ingest and journal topics; the
// log writes them at open, and refuses nothing (a one-broker cluster for development has one
// replica, and can have no more).
std::vector<std::string> durability_warnings(const std::string& name, int replicas,
                                             const std::map<std::string, std::string>& configs);

// What a topic of the log must be set to keep (Kafka's topic settings), as they are given when
// the log creates it. The journal is the source of truth: every record kept for good
// (retention.ms and retention.bytes -1), never compacted. The ingest topic is not compacted
// either (a compacted topic refuses records without keys, as the log's are); its retention is
// the cluster's: how long an accepted event may wait for a processor. The nodes topic is
// compacted and nothing else: each partition's latest owner is kept however old.
std::map<std::string, std::string> required_topic_configs(log_topic topic);

// Whether the settings of topic `name`, as the cluster describes them, keep what the log needs
// (required_topic_configs); the error names each setting that does not, its value, and how to
// set it.
Status check_topic_configs(const std::string& name, log_topic topic,
                           const std::map<std::string, std::string>& configs);

class KafkaLog final : public EventLog {
 public:
  // Connects, creates the topics if they are missing (with required_topic_configs), checks that
  // both have the same number of partitions and, when the cluster answers for its settings,
  // that they keep what the log needs (check_topic_configs): a journal topic that would delete
  // or compact records, for one, is refused.
  static result<std::unique_ptr<KafkaLog>> open(const KafkaOptions& options);
  ~KafkaLog() override;

  int partitions() const override { return partitions_; }
  Status append_ingest(partition_id p, const std::vector<std::string>& payloads,
                       std::vector<ingest_offset>* offsets) override;
  Status read_ingest(partition_id p, ingest_offset from, size_t max,
                     std::chrono::milliseconds wait, std::vector<IngestRecord>& out) override;
  // A started reader keeps fetching (librdkafka's legacy consumer holds up to
  // queued.min.messages, queued.max.messages.kbytes, 64 MiB by default, per partition): the
  // reader of a partition given to another node fetched its records, and held them, for good.
  void stop_reading(partition_id p) override;
  // Whether this node's reader of ingest partition p is started (fetching ahead).
  bool reading(partition_id p) const;
  result<ingest_offset> ingest_end(partition_id p) override;
  result<Claim> claim(partition_id p, const KnownHistory& known = KnownHistory()) override;
  Status append_journal(const Claim& claim, std::vector<JournalRecord>& records,
                        ingest_offset next, std::vector<journal_pos>* positions) override;
  Status read_journal(partition_id p, journal_pos from, size_t max,
                      std::vector<StoredRecord>& out) override;
  result<journal_pos> journal_end(partition_id p) override;
  result<std::unique_ptr<Membership>> join() override;
  // The producer's message.max.bytes (or the ingest or journal topic's max.message.bytes, when
  // the cluster describes it smaller) less 64 KiB: a fact's journal record is its text and its
  // decisions, one Kafka message.
  size_t max_payload_bytes() const override;
  // The same limit less 1 KiB (a message batch's framing).
  size_t max_record_bytes() const override;
  std::optional<std::string> owner_address(partition_id p) const override;
  Status advertise(const std::string& address) override;
  std::string describe() const override;

 private:
  struct Reader;  // a positioned reader of one topic partition
  KafkaLog() = default;
  // With `keys`, one per value (a compacted topic needs them).
  Status produce(const std::string& topic, partition_id p, const std::vector<std::string>& values,
                 std::vector<int64_t>* offsets, const std::vector<std::string>* keys = nullptr);
  // Publishes that this node, at `address`, owns partition p as of `epoch`.
  Status publish_owner(partition_id p, journal_pos epoch, const std::string& address);
  // Reads the nodes topic until stopping, keeping owners_ (its own thread).
  void read_owners();
  Reader& reader(rd_kafka_topic_s* topic, partition_id p);
  // Ingest partition p's reader, if this node has read it.
  Reader* ingest_reader_if_any(partition_id p) const;
  result<int64_t> high_watermark(const std::string& topic, partition_id p);

  KafkaOptions options_;
  std::string ingest_topic_, journal_topic_, nodes_topic_;
  int partitions_ = 0;
  // The most bytes a message may have: the producer's message.max.bytes, or a topic's
  // max.message.bytes when smaller (the two limits above are made from it).
  size_t message_max_bytes_ = 0;
  rd_kafka_s* producer_ = nullptr;
  rd_kafka_s* consumer_ = nullptr;  // legacy (positioned) consumer, no group
  // The journal's reader, a consumer of its own whose fetches wait at most 10 ms at the end of
  // a partition: a read elsewhere (a seek) waits for the fetch in flight to come back, which
  // with librdkafka's fetch.wait.max.ms (500) took half a second a seek.
  rd_kafka_s* journal_consumer_ = nullptr;
  rd_kafka_topic_s* ingest_rkt_ = nullptr;
  rd_kafka_topic_s* journal_rkt_ = nullptr;
  rd_kafka_topic_s* nodes_rkt_ = nullptr;
  mutable std::mutex readers_mu_;
  std::map<std::pair<rd_kafka_topic_s*, int32_t>, std::unique_ptr<Reader>> readers_;
  std::thread poller_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex owners_mu_;
  std::map<int32_t, std::pair<int64_t, std::string>> owners_;  // partition -> (epoch, address)
  std::map<int32_t, int64_t> claimed_;  // partitions this node claimed -> their epochs
  std::string advertised_;              // this node's address, once advertise() gave it
  std::thread owners_reader_;
  std::atomic<bool> owners_stopping_{false};
};

}  // namespace omniroute::events
