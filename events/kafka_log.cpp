#include "events/kafka_log.hpp"

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>

#include "events/json.hpp"
#include "events/log_line.hpp"

namespace omniroute::events {
namespace {

using namespace std::chrono_literals;

// Collects the delivery reports of one append.
struct Delivery {
  std::mutex mu;
  std::condition_variable done;
  size_t remaining = 0;
  std::vector<int64_t> offsets;
  std::string error;
};

struct Slot {
  Delivery* delivery;
  size_t index;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void*) {
  auto* slot = static_cast<Slot*>(msg->_private);
  {
    std::lock_guard<std::mutex> lock(slot->delivery->mu);
    if (msg->err) {
      if (slot->delivery->error.empty()) slot->delivery->error = rd_kafka_err2str(msg->err);
    } else {
      slot->delivery->offsets[slot->index] = msg->offset;
    }
    if (--slot->delivery->remaining == 0) slot->delivery->done.notify_all();
  }
  delete slot;
}

Status set(rd_kafka_conf_t* conf, const std::string& key, const std::string& value) {
  char err[512];
  if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
    return Status::error("kafka setting " + key + "=" + value + ": " + err);
  return Status::ok();
}

// A client's settings: the brokers, then `defaults` (the user's settings may change them),
// then the user's, then `forced`: what the log must set itself (check_kafka_config keeps the
// user's settings off those).
result<rd_kafka_conf_t*> base_conf(const KafkaOptions& o,
                                   const std::map<std::string, std::string>& defaults = {},
                                   const std::map<std::string, std::string>& forced = {}) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  Status s = set(conf, "bootstrap.servers", o.brokers);
  for (const auto* settings : {&defaults, &o.config, &forced})
    for (const auto& [k, v] : *settings)
      if (s) s = set(conf, k, v);
  if (!s) {
    rd_kafka_conf_destroy(conf);
    return s;
  }
  return conf;
}

}  // namespace

Status check_kafka_config(const std::map<std::string, std::string>& config) {
  static const std::map<std::string_view, std::string_view> owned = {
      {"bootstrap.servers", "the brokers are --kafka-brokers"},
      {"metadata.broker.list", "the brokers are --kafka-brokers"},
      {"group.id", "the processors' consumer group is the log's own"},
      {"enable.idempotence", "the producer must be idempotent: a retried append is written once"},
      {"acks", "an acknowledged event must be on every in-sync replica (acks=all)"},
      {"request.required.acks",
       "an acknowledged event must be on every in-sync replica (acks=all)"},
      {"transactional.id",
       "the log writes without transactions (exactly once comes from the "
       "journal's epoch markers)"},
      {"enable.auto.commit", "only the log moves the consumers' offsets"},
      {"enable.auto.offset.store", "only the log moves the consumers' offsets"},
      {"enable.partition.eof", "the log's readers expect no end-of-partition events"},
  };
  for (const auto& [key, value] : config)
    if (auto it = owned.find(key); it != owned.end())
      return Status::error("--kafka-config " + key + "=" + value + ": omniroute sets " + key +
                           " itself (" + std::string(it->second) + "); leave it out");
  return Status::ok();
}

namespace {

result<rd_kafka_t*> make_client(rd_kafka_type_t type, rd_kafka_conf_t* conf) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return Status::error(std::string("cannot create kafka client: ") + err);
  }
  return rk;
}

// What the metadata says of `topic`: its partitions (0 if it does not exist) and the replicas
// of its first partition (0 if none are named).
struct TopicShape {
  int partitions = 0;
  int replicas = 0;
};
result<TopicShape> topic_shape(rd_kafka_t* rk, const std::string& topic) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
  rd_kafka_topic_destroy(rkt);
  if (err) return Status::error("kafka metadata for " + topic + ": " + rd_kafka_err2str(err));
  TopicShape shape;
  if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    shape.partitions = md->topics[0].partition_cnt;
    if (shape.partitions > 0) shape.replicas = md->topics[0].partitions[0].replica_cnt;
  }
  rd_kafka_metadata_destroy(md);
  return shape;
}

result<int> partition_count(rd_kafka_t* rk, const std::string& topic) {
  auto shape = topic_shape(rk, topic);
  if (!shape) return shape.error();
  return shape->partitions;
}

Status create_topic(rd_kafka_t* rk, const std::string& topic, int partitions,
                    const std::map<std::string, std::string>& configs = {}) {
  char err[512];
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), partitions, -1, err, sizeof err);
  if (!nt) return Status::error("kafka topic " + topic + ": " + err);
  for (const auto& [name, value] : configs)
    if (rd_kafka_NewTopic_set_config(nt, name.c_str(), value.c_str())) {
      rd_kafka_NewTopic_destroy(nt);
      return Status::error("kafka topic " + topic + ": cannot set " + name);
    }
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, nullptr, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 30000);
  Status s = Status::ok();
  if (!ev) {
    s = Status::error("kafka: no answer creating topic " + topic);
  } else if (rd_kafka_event_error(ev)) {
    s = Status::error("kafka: creating topic " + topic + ": " + rd_kafka_event_error_string(ev));
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t** res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    for (size_t i = 0; i < n; ++i) {
      auto e = rd_kafka_topic_result_error(res[i]);
      if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        s = Status::error("kafka: creating topic " + topic + ": " + rd_kafka_err2str(e));
    }
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  return s;
}

// The settings of `topic` as the cluster describes them, or an error (the admin request went
// unanswered, or was refused: an ACL without DescribeConfigs).
result<std::map<std::string, std::string>> describe_topic_configs(rd_kafka_t* rk,
                                                                  const std::string& topic) {
  rd_kafka_ConfigResource_t* resource =
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_DescribeConfigs(rk, &resource, 1, nullptr, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 30000);
  result<std::map<std::string, std::string>> out = std::map<std::string, std::string>{};
  if (!ev) {
    out = Status::error("no answer describing topic " + topic);
  } else if (rd_kafka_event_error(ev)) {
    out = Status::error("describing topic " + topic + ": " + rd_kafka_event_error_string(ev));
  } else {
    size_t n = 0;
    const rd_kafka_ConfigResource_t** described =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
    if (n != 1 || rd_kafka_ConfigResource_error(described[0])) {
      out = Status::error("describing topic " + topic + ": " +
                          (n == 1 ? rd_kafka_ConfigResource_error_string(described[0])
                                  : "no such topic in the answer"));
    } else {
      size_t count = 0;
      const rd_kafka_ConfigEntry_t** entries =
          rd_kafka_ConfigResource_configs(described[0], &count);
      for (size_t i = 0; i < count; ++i) {
        const char* value = rd_kafka_ConfigEntry_value(entries[i]);
        (*out)[rd_kafka_ConfigEntry_name(entries[i])] = value ? value : "";
      }
    }
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_ConfigResource_destroy(resource);
  return out;
}

// Whether the cluster's controller is one of the brokers its metadata lists: admin requests
// (DescribeConfigs, CreateTopics) go to it, and wait for it until they time out when it is not.
// librdkafka's mock cluster names controller 0 among brokers numbered from 1, and answers no
// admin request.
bool controller_known(rd_kafka_t* rk) {
  const int32_t controller = rd_kafka_controllerid(rk, 5000);
  const rd_kafka_metadata_t* md = nullptr;
  if (controller < 0 || rd_kafka_metadata(rk, 0, nullptr, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return false;
  bool known = false;
  for (int i = 0; i < md->broker_cnt; ++i) known = known || md->brokers[i].id == controller;
  rd_kafka_metadata_destroy(md);
  return known;
}

// Group membership: assignments are recorded and paused; messages are never consumed here.
class GroupMembership final : public Membership {
 public:
  static result<std::unique_ptr<Membership>> make(const KafkaOptions& o, const std::string& topic) {
    // Cooperative-sticky unless the user's settings choose another assignor.
    auto conf = base_conf(o, {{"partition.assignment.strategy", "cooperative-sticky"}},
                          {{"group.id", o.group},
                           {"enable.auto.commit", "false"},
                           {"enable.auto.offset.store", "false"}});
    if (!conf) return conf.error();
    auto self = std::unique_ptr<GroupMembership>(new GroupMembership);
    rd_kafka_conf_set_opaque(*conf, self.get());
    rd_kafka_conf_set_rebalance_cb(*conf, &GroupMembership::on_rebalance);
    auto rk = make_client(RD_KAFKA_CONSUMER, *conf);
    if (!rk) return rk.error();
    self->rk_ = *rk;
    rd_kafka_poll_set_consumer(self->rk_);
    rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(self->rk_, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) return Status::error(std::string("kafka subscribe: ") + rd_kafka_err2str(err));
    return std::unique_ptr<Membership>(std::move(self));
  }

  ~GroupMembership() override {
    if (rk_) {
      rd_kafka_consumer_close(rk_);
      rd_kafka_destroy(rk_);
    }
  }

  Status poll(std::vector<partition_id>& assigned, std::vector<partition_id>& revoked,
              std::chrono::milliseconds timeout) override {
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(rk_, static_cast<int>(timeout.count()));
    Status s = Status::ok();
    if (msg) {
      if (msg->err && msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        s = Status::error(std::string("kafka group: ") + rd_kafka_message_errstr(msg));
      rd_kafka_message_destroy(msg);  // paused partitions: only a record fetched before the pause
    }
    assigned.insert(assigned.end(), assigned_.begin(), assigned_.end());
    revoked.insert(revoked.end(), revoked_.begin(), revoked_.end());
    assigned_.clear();
    revoked_.clear();
    return s;
  }

 private:
  GroupMembership() = default;
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* parts, void* opaque) {
    auto* self = static_cast<GroupMembership*>(opaque);
    // Cooperative (the default, cooperative-sticky): `parts` are the partitions added or taken
    // away, and the others stay where they are, their hosts running. Eager (a user's range or
    // roundrobin): every partition is taken away, then the whole new assignment given.
    const bool cooperative = std::string_view(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      if (cooperative)
        report(rd_kafka_incremental_assign(rk, parts), "assign");
      else
        rd_kafka_assign(rk, parts);
      rd_kafka_pause_partitions(rk, parts);
      for (int i = 0; i < parts->cnt; ++i)
        self->assigned_.push_back(partition_id{parts->elems[i].partition});
    } else {
      for (int i = 0; i < parts->cnt; ++i)
        self->revoked_.push_back(partition_id{parts->elems[i].partition});
      if (cooperative)
        report(rd_kafka_incremental_unassign(rk, parts), "unassign");
      else
        rd_kafka_assign(rk, nullptr);
    }
  }
  static void report(rd_kafka_error_t* error, const char* what) {
    if (!error) return;
    log_line() << "omniroute: kafka group: incremental " << what << ": "
               << rd_kafka_error_string(error) << "\n";
    rd_kafka_error_destroy(error);
  }
  rd_kafka_t* rk_ = nullptr;
  std::vector<partition_id> assigned_, revoked_;
};

}  // namespace

struct KafkaLog::Reader {
  std::mutex mu;
  rd_kafka_topic_t* rkt = nullptr;
  int32_t partition = 0;
  bool started = false;
  int64_t next = 0;  // offset the next consumed message will have

  ~Reader() { stop(); }
  void stop() {
    if (started) rd_kafka_consume_stop(rkt, partition);
    started = false;
  }
  // Positions the reader at `from` unless it is there already.
  Status seek(int64_t from) {
    if (started && next == from) return Status::ok();
    if (started) rd_kafka_consume_stop(rkt, partition);
    started = false;
    if (rd_kafka_consume_start(rkt, partition, from) == -1)
      return Status::error(std::string("kafka consume_start: ") +
                           rd_kafka_err2str(rd_kafka_last_error()));
    started = true;
    next = from;
    return Status::ok();
  }
  // Appends to `out` up to `max` messages, waiting up to `wait_ms` for the first.
  Status fetch(size_t max, int wait_ms, std::vector<rd_kafka_message_t*>& out) {
    rd_kafka_message_t* first = rd_kafka_consume(rkt, partition, wait_ms);
    if (!first) return Status::ok();
    std::vector<rd_kafka_message_t*> batch(max > 1 ? max - 1 : 1);
    batch.insert(batch.begin(), first);
    ssize_t n = max > 1 ? rd_kafka_consume_batch(rkt, partition, 0, batch.data() + 1, max - 1) : 0;
    if (n < 0) n = 0;
    for (ssize_t i = 0; i <= n; ++i) {
      rd_kafka_message_t* m = batch[static_cast<size_t>(i)];
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        rd_kafka_message_destroy(m);
        continue;
      }
      if (m->err) {
        std::string why = rd_kafka_message_errstr(m);
        rd_kafka_message_destroy(m);
        for (ssize_t j = i + 1; j <= n; ++j) rd_kafka_message_destroy(batch[static_cast<size_t>(j)]);
        stop();  // position unknown: restart on the next read
        return Status::error("kafka read: " + why);
      }
      if (m->offset < next) {  // re-delivered after a seek: already seen
        rd_kafka_message_destroy(m);
        continue;
      }
      next = m->offset + 1;
      out.push_back(m);
    }
    return Status::ok();
  }
};

size_t KafkaLog::max_payload_bytes() const {
  constexpr size_t decisions_margin = 64 << 10;
  const size_t most = message_max_bytes_;
  return most > 2 * decisions_margin ? most - decisions_margin : most / 2;
}

size_t KafkaLog::max_record_bytes() const {
  const size_t most = message_max_bytes_;
  return most > 2048 ? most - 1024 : most;
}

std::map<std::string, std::string> required_topic_configs(log_topic topic) {
  switch (topic) {
    case log_topic::ingest:
      return {{"cleanup.policy", "delete"}};
    case log_topic::journal:
      return {{"cleanup.policy", "delete"}, {"retention.ms", "-1"}, {"retention.bytes", "-1"}};
    case log_topic::nodes:
      return {{"cleanup.policy", "compact"}};
  }
  return {};
}

std::vector<std::string> durability_warnings(const std::string& name, int replicas,
                                             const std::map<std::string, std::string>& configs) {
  std::vector<std::string> out;
  const auto setting = [&](const char* key) {
    auto it = configs.find(key);
    return it == configs.end() ? std::string() : it->second;
  };
  if (replicas == 1)
    out.push_back("kafka topic " + name +
                  " has one replica: an acknowledged event is lost with its broker's disk (make "
                  "it with a replication factor of 3)");
  const std::string in_sync = setting("min.insync.replicas");
  if (replicas > 1 && (in_sync == "1" || in_sync == "0"))
    out.push_back("kafka topic " + name + " is set to min.insync.replicas=" + in_sync +
                  ": acks=all then waits for its leader alone, and an event acknowledged just "
                  "before the leader is lost is lost (set it to 2: kafka-configs.sh --alter "
                  "--entity-type topics --entity-name " +
                  name + " --add-config min.insync.replicas=2)");
  if (setting("unclean.leader.election.enable") == "true")
    out.push_back("kafka topic " + name +
                  " is set to unclean.leader.election.enable=true: a replica that missed "
                  "acknowledged events may lead (set it to false)");
  return out;
}

Status check_topic_configs(const std::string& name, log_topic topic,
                           const std::map<std::string, std::string>& configs) {
  std::string wrong, fix;
  for (const auto& [setting, value] : required_topic_configs(topic)) {
    auto it = configs.find(setting);
    if (it == configs.end() || it->second == value) continue;  // not described: not known wrong
    wrong += (wrong.empty() ? "" : ", ") + setting + "=" + it->second;
    fix += (fix.empty() ? "" : ",") + setting + "=" + value;
  }
  if (wrong.empty()) return Status::ok();
  const char* why = "";
  switch (topic) {
    case log_topic::ingest:  // a compacted topic refuses records without keys, as the log's are
      why = "a compacted topic refuses the log's records (they have no keys)";
      break;
    case log_topic::journal:
      why = "the journal is the source of truth: every record must be kept, and none compacted";
      break;
    case log_topic::nodes:
      why = "it must keep each partition's latest owner however old (compacted, never deleted)";
      break;
  }
  return Status::error(
      "kafka topic " + name + " is set to " + wrong + ": " + why +
      "; set it with kafka-configs.sh --alter --entity-type topics --entity-name " + name +
      " --add-config " + fix);
}

result<std::unique_ptr<KafkaLog>> KafkaLog::open(const KafkaOptions& options) {
  std::unique_ptr<KafkaLog> log(new KafkaLog);
  log->options_ = options;
  log->ingest_topic_ = options.topic_prefix + "ingest";
  log->journal_topic_ = options.topic_prefix + "journal";

  if (Status s = check_kafka_config(options.config); !s) return s;
  auto pconf = base_conf(options, {{"linger.ms", "2"}, {"message.timeout.ms", "30000"}},
                         {{"enable.idempotence", "true"}, {"acks", "all"}});
  if (!pconf) return pconf.error();
  rd_kafka_conf_set_dr_msg_cb(*pconf, on_delivery);
  auto producer = make_client(RD_KAFKA_PRODUCER, *pconf);
  if (!producer) return producer.error();
  log->producer_ = *producer;
  {
    char value[32];
    size_t size = sizeof value;
    if (rd_kafka_conf_get(rd_kafka_conf(log->producer_), "message.max.bytes", value, &size) !=
        RD_KAFKA_CONF_OK)
      return Status::error("kafka: cannot read the producer's message.max.bytes");
    log->message_max_bytes_ = std::stoul(value);
  }
  log->poller_ = std::thread([raw = log.get()] {
    while (!raw->stopping_) rd_kafka_poll(raw->producer_, 50);
  });

  for (const auto& topic : {log->ingest_topic_, log->journal_topic_}) {
    const log_topic role = topic == log->journal_topic_ ? log_topic::journal : log_topic::ingest;
    auto n = partition_count(log->producer_, topic);
    if (!n) return n.error();
    if (*n == 0) {
      if (Status c =
              create_topic(log->producer_, topic, options.partitions, required_topic_configs(role));
          !c)
        return c;
      for (int attempt = 0; attempt < 50; ++attempt) {  // metadata catches up with the create
        n = partition_count(log->producer_, topic);
        if (!n) return n.error();
        if (*n > 0) break;
        std::this_thread::sleep_for(100ms);
      }
      if (*n == 0) return Status::error("kafka: topic " + topic + " did not appear");
    }
    if (log->partitions_ == 0) log->partitions_ = *n;
    if (*n != log->partitions_)
      return Status::error("kafka: " + log->ingest_topic_ + " and " + log->journal_topic_ +
                           " must have the same number of partitions");
  }
  // The owners' addresses: compacted, so it keeps the latest record of each partition.
  log->nodes_topic_ = options.topic_prefix + "nodes";
  auto nodes = partition_count(log->producer_, log->nodes_topic_);
  if (!nodes) return nodes.error();
  if (*nodes == 0)
    if (Status c = create_topic(log->producer_, log->nodes_topic_, 1,
                                required_topic_configs(log_topic::nodes));
        !c)
      return c;

  // Topics made by an administrator, or by the brokers on first use, take the cluster's
  // defaults: a retention of 7 days would delete the journal's start a week on, and a node
  // recovering a partition would rebuild its state from what was left.
  if (controller_known(log->producer_)) {
    for (auto [name, role] : {std::pair(log->ingest_topic_, log_topic::ingest),
                              std::pair(log->journal_topic_, log_topic::journal),
                              std::pair(log->nodes_topic_, log_topic::nodes)}) {
      auto configs = describe_topic_configs(log->producer_, name);
      if (!configs) {
        log_line() << "omniroute: kafka: the settings of topic " << name
                   << " are not checked: " << configs.error().message() << "\n";
        continue;
      }
      if (Status c = check_topic_configs(name, role, *configs); !c) return c;
      if (role != log_topic::nodes) {
        const auto shape = topic_shape(log->producer_, name);  // no metadata: no replicas known
        for (const std::string& w :
             durability_warnings(name, shape ? shape->replicas : 0, *configs))
          log_line() << "omniroute: warning: " << w << "\n";
      }
      // A topic may take smaller messages than the producer sends (the brokers would refuse
      // them, and a journal record be retried for ever).
      auto limit = configs->find("max.message.bytes");
      if (role != log_topic::nodes && limit != configs->end()) {
        char* end = nullptr;
        const unsigned long long topic_most = std::strtoull(limit->second.c_str(), &end, 10);
        if (end != limit->second.c_str() && topic_most < log->message_max_bytes_)
          log->message_max_bytes_ = static_cast<size_t>(topic_most);
      }
    }
  } else {
    log_line() << "omniroute: kafka: the cluster names no controller among its brokers (as "
                  "librdkafka's mock cluster does): the topics' settings are not checked\n";
  }

  // A positioned consumer (no group, no commits); `defaults` as for base_conf.
  auto positioned = [&](const std::map<std::string, std::string>& defaults) -> result<rd_kafka_t*> {
    auto conf = base_conf(options, defaults,
                          {{"enable.partition.eof", "false"}, {"enable.auto.commit", "false"}});
    if (!conf) return conf.error();
    return make_client(RD_KAFKA_CONSUMER, *conf);
  };
  auto consumer = positioned({});
  if (!consumer) return consumer.error();
  log->consumer_ = *consumer;
  // Recovery reads a partition's journal at three places (its snapshot's record, the history
  // after it, the claim's), and a warm-up at two: each jump waited out librdkafka's
  // fetch.wait.max.ms (500 ms) on the mock cluster, 0.5-1.5 s a partition's recovery.
  auto journal_consumer = positioned({{"fetch.wait.max.ms", "10"}});
  if (!journal_consumer) return journal_consumer.error();
  log->journal_consumer_ = *journal_consumer;
  // A read from an offset the topic no longer has starts from the earliest it has (the readers
  // see the gap: read_journal refuses it, a partition host reports the ingest records lost).
  // A configuration each: rd_kafka_topic_new takes the one it is given and frees it (a copy of
  // one already given read freed memory, and the journal's reader sometimes reset to the end).
  auto from_earliest = [] {
    rd_kafka_topic_conf_t* tconf = rd_kafka_topic_conf_new();
    rd_kafka_topic_conf_set(tconf, "auto.offset.reset", "earliest", nullptr, 0);
    return tconf;
  };
  log->ingest_rkt_ =
      rd_kafka_topic_new(log->consumer_, log->ingest_topic_.c_str(), from_earliest());
  log->journal_rkt_ =
      rd_kafka_topic_new(log->journal_consumer_, log->journal_topic_.c_str(), from_earliest());
  log->nodes_rkt_ = rd_kafka_topic_new(log->consumer_, log->nodes_topic_.c_str(), from_earliest());
  log->owners_reader_ = std::thread([raw = log.get()] { raw->read_owners(); });
  return log;
}

void KafkaLog::read_owners() {
  Reader r;
  r.rkt = nodes_rkt_;
  while (!owners_stopping_) {
    if (!r.started)
      if (Status s = r.seek(RD_KAFKA_OFFSET_BEGINNING); !s) {
        log_line() << "omniroute: " << nodes_topic_ << ": " << s.message() << "\n";
        std::this_thread::sleep_for(1s);  // the brokers' trouble; reading resumes after it
        continue;
      }
    std::vector<rd_kafka_message_t*> msgs;
    if (Status s = r.fetch(100, 200, msgs); !s) {
      log_line() << "omniroute: " << nodes_topic_ << ": " << s.message() << "\n";
      std::this_thread::sleep_for(1s);  // as above: once a second, not a line per attempt
      continue;
    }
    for (rd_kafka_message_t* m : msgs) {
      // {"partition":P,"epoch":E,"node":"host:port"}; anything else (another writer's) is passed
      // over.
      const json owner = json::parse(static_cast<const char*>(m->payload),
                                     static_cast<const char*>(m->payload) + m->len, nullptr, false);
      rd_kafka_message_destroy(m);
      const json* partition = member(owner, "partition");
      const json* epoch = member(owner, "epoch");
      const std::string& node = string_member(owner, "node");
      if (!partition || !partition->is_number_integer() || !epoch || !epoch->is_number_integer() ||
          node.empty())
        continue;
      std::lock_guard<std::mutex> lock(owners_mu_);
      auto& known = owners_[partition->get<int32_t>()];
      if (epoch->get<int64_t>() >= known.first) known = {epoch->get<int64_t>(), node};
    }
  }
}

Status KafkaLog::publish_owner(partition_id p, journal_pos epoch, const std::string& address) {
  const json owner = {{"partition", p.value()}, {"epoch", epoch.value()}, {"node", address}};
  const std::vector<std::string> keys = {std::to_string(p.value())};
  return produce(nodes_topic_, partition_id{0}, {owner.dump()}, nullptr, &keys);
}

Status KafkaLog::advertise(const std::string& address) {
  std::map<int32_t, int64_t> held;
  {
    std::lock_guard<std::mutex> lock(owners_mu_);
    advertised_ = address;
    held = claimed_;
  }
  for (const auto& [p, epoch] : held)
    if (Status s = publish_owner(partition_id{p}, journal_pos{epoch}, address); !s) return s;
  return Status::ok();
}

std::optional<std::string> KafkaLog::owner_address(partition_id p) const {
  std::lock_guard<std::mutex> lock(owners_mu_);
  auto it = owners_.find(p.value());
  if (it == owners_.end()) return std::nullopt;
  return it->second.second;
}

KafkaLog::~KafkaLog() {
  owners_stopping_ = true;
  if (owners_reader_.joinable()) owners_reader_.join();
  if (nodes_rkt_) rd_kafka_topic_destroy(nodes_rkt_);
  readers_.clear();
  if (ingest_rkt_) rd_kafka_topic_destroy(ingest_rkt_);
  if (journal_rkt_) rd_kafka_topic_destroy(journal_rkt_);
  if (consumer_) rd_kafka_destroy(consumer_);
  if (journal_consumer_) rd_kafka_destroy(journal_consumer_);
  if (producer_) {
    rd_kafka_flush(producer_, 10000);
    stopping_ = true;
    if (poller_.joinable()) poller_.join();
    rd_kafka_destroy(producer_);
  }
}

Status KafkaLog::produce(const std::string& topic, partition_id p,
                         const std::vector<std::string>& values, std::vector<int64_t>* offsets,
                         const std::vector<std::string>* keys) {
  if (values.empty()) return Status::ok();
  Delivery d;
  d.remaining = values.size();
  d.offsets.assign(values.size(), -1);
  size_t sent = 0;
  for (; sent < values.size(); ++sent) {
    auto* slot = new Slot{&d, sent};
    for (;;) {
      rd_kafka_resp_err_t err = rd_kafka_producev(
          producer_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(p.value()),
          RD_KAFKA_V_VALUE(const_cast<char*>(values[sent].data()), values[sent].size()),
          RD_KAFKA_V_KEY(keys ? (*keys)[sent].data() : nullptr, keys ? (*keys)[sent].size() : 0),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(slot), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        std::this_thread::sleep_for(1ms);  // the poller thread drains the queue
        continue;
      }
      if (err) {
        delete slot;
        std::lock_guard<std::mutex> lock(d.mu);
        d.error = rd_kafka_err2str(err);
        d.remaining -= values.size() - sent;  // never produced: no report will come
      }
      break;
    }
    if (!d.error.empty()) break;
  }
  std::unique_lock<std::mutex> lock(d.mu);
  d.done.wait(lock, [&] { return d.remaining == 0; });
  if (!d.error.empty()) return Status::error("kafka produce to " + topic + ": " + d.error);
  if (offsets) *offsets = d.offsets;
  return Status::ok();
}

Status KafkaLog::append_ingest(partition_id p, const std::vector<std::string>& payloads,
                               std::vector<ingest_offset>* offsets) {
  if (p.value() < 0 || p.value() >= partitions_)
    return Status::error("no ingest partition " + std::to_string(p.value()));
  std::vector<int64_t> raw;
  if (Status s = produce(ingest_topic_, p, payloads, &raw); !s) return s;
  if (offsets)
    for (int64_t o : raw) offsets->push_back(ingest_offset{o});
  return Status::ok();
}

KafkaLog::Reader* KafkaLog::ingest_reader_if_any(partition_id p) const {
  std::lock_guard<std::mutex> lock(readers_mu_);
  auto it = readers_.find({ingest_rkt_, p.value()});
  return it == readers_.end() ? nullptr : it->second.get();  // readers live as long as the log
}

void KafkaLog::stop_reading(partition_id p) {
  if (Reader* r = ingest_reader_if_any(p)) {
    std::lock_guard<std::mutex> lock(r->mu);
    r->stop();
  }
}

bool KafkaLog::reading(partition_id p) const {
  Reader* r = ingest_reader_if_any(p);
  if (!r) return false;
  std::lock_guard<std::mutex> lock(r->mu);
  return r->started;
}

KafkaLog::Reader& KafkaLog::reader(rd_kafka_topic_t* topic, partition_id p) {
  std::lock_guard<std::mutex> lock(readers_mu_);
  auto& r = readers_[{topic, p.value()}];
  if (!r) {
    r = std::make_unique<Reader>();
    r->rkt = topic;
    r->partition = p.value();
  }
  return *r;
}

Status KafkaLog::read_ingest(partition_id p, ingest_offset from, size_t max,
                             std::chrono::milliseconds wait, std::vector<IngestRecord>& out) {
  if (p.value() < 0 || p.value() >= partitions_)
    return Status::error("no ingest partition " + std::to_string(p.value()));
  Reader& r = reader(ingest_rkt_, p);
  std::lock_guard<std::mutex> lock(r.mu);
  if (Status s = r.seek(from.value()); !s) return s;
  std::vector<rd_kafka_message_t*> msgs;
  Status s = r.fetch(max, static_cast<int>(wait.count()), msgs);
  out.reserve(out.size() + msgs.size());
  for (auto* m : msgs) {
    rd_kafka_timestamp_type_t type;
    int64_t ts_ms = rd_kafka_message_timestamp(m, &type);
    out.push_back(IngestRecord{ingest_offset{m->offset}, ts_ms * 1000,
                               std::string(static_cast<const char*>(m->payload), m->len),
                               std::nullopt});
    rd_kafka_message_destroy(m);
  }
  return s;
}

result<int64_t> KafkaLog::high_watermark(const std::string& topic, partition_id p) {
  int64_t lo = 0, hi = 0;
  rd_kafka_resp_err_t err =
      rd_kafka_query_watermark_offsets(producer_, topic.c_str(), p.value(), &lo, &hi, 10000);
  if (err) return Status::error("kafka watermarks of " + topic + ": " + rd_kafka_err2str(err));
  return hi;
}

result<ingest_offset> KafkaLog::ingest_end(partition_id p) {
  auto hi = high_watermark(ingest_topic_, p);
  if (!hi) return hi.error();
  return ingest_offset{*hi};
}

result<journal_pos> KafkaLog::journal_end(partition_id p) {
  auto hi = high_watermark(journal_topic_, p);
  if (!hi) return hi.error();
  return journal_pos{*hi};
}

result<Claim> KafkaLog::claim(partition_id p, const KnownHistory& known) {
  if (p.value() < 0 || p.value() >= partitions_)
    return Status::error("no journal partition " + std::to_string(p.value()));
  JournalRecord marker;
  marker.marker = true;
  std::vector<int64_t> at;
  if (Status s = produce(journal_topic_, p, {encode(marker)}, &at); !s) return s;
  Claim c{p, journal_pos{at[0]}, ingest_offset{0}};
  // Everything before our marker is history (or a zombie's, filtered); resume after the last
  // ingest offset it reflects, read from where what the claimant knows ends.
  int64_t resume = known.resume.value();
  Status s = scan_history(
      *this, p, c.epoch,
      [&](const StoredRecord& r) {
        if (r.record.ingest.value() + 1 > resume) resume = r.record.ingest.value() + 1;
        return Status::ok();
      },
      known.upto, EpochFilter(known.epoch));
  if (!s) return s;
  c.resume = ingest_offset{resume};
  std::string address;
  {
    std::lock_guard<std::mutex> lock(owners_mu_);
    claimed_[p.value()] = c.epoch.value();
    address = advertised_;
  }
  // Not published, the claim stands: queries of the partition are answered 421 elsewhere.
  if (!address.empty())
    if (Status s = publish_owner(p, c.epoch, address); !s)
      log_line() << "omniroute: partition " << p.value() << ": " << s.message() << "\n";
  return c;
}

Status KafkaLog::append_journal(const Claim& claim, std::vector<JournalRecord>& records,
                                ingest_offset, std::vector<journal_pos>* positions) {
  std::vector<std::string> values;
  values.reserve(records.size());
  for (auto& r : records) {
    r.epoch = claim.epoch;
    values.push_back(encode(r));
  }
  std::vector<int64_t> at;
  if (Status s = produce(journal_topic_, claim.partition, values, &at); !s) return s;
  if (positions)
    for (int64_t o : at) positions->push_back(journal_pos{o});
  return Status::ok();
}

Status KafkaLog::read_journal(partition_id p, journal_pos from, size_t max,
                              std::vector<StoredRecord>& out) {
  if (p.value() < 0 || p.value() >= partitions_)
    return Status::error("no journal partition " + std::to_string(p.value()));
  auto end = journal_end(p);
  if (!end) return end.error();
  if (from >= *end || max == 0) return Status::ok();
  const int64_t stop = std::min<int64_t>(end->value(), from.value() + static_cast<int64_t>(max));
  Reader& r = reader(journal_rkt_, p);
  std::lock_guard<std::mutex> lock(r.mu);
  if (Status s = r.seek(from.value()); !s) return s;
  int64_t expected = from.value();  // the journal's positions follow each other
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (r.next < stop) {
    if (std::chrono::steady_clock::now() > deadline)
      return Status::error("kafka: journal partition " + std::to_string(p.value()) +
                           " did not deliver up to position " + std::to_string(stop));
    std::vector<rd_kafka_message_t*> msgs;
    if (Status s = r.fetch(static_cast<size_t>(stop - r.next), 200, msgs); !s) return s;
    for (size_t i = 0; i < msgs.size(); ++i) {
      rd_kafka_message_t* m = msgs[i];
      const int64_t pos = m->offset;
      if (pos > expected) {  // the topic's retention deleted them: a history without its start
        for (size_t j = i; j < msgs.size(); ++j) rd_kafka_message_destroy(msgs[j]);
        return Status::error(
            "kafka journal partition " + std::to_string(p.value()) + " has no record at position " +
            std::to_string(expected) + " (the next it has is " + std::to_string(pos) +
            "): records were deleted, and the journal must keep every one (retention.ms=-1 on " +
            journal_topic_ + ")");
      }
      expected = pos + 1;
      auto rec = decode({static_cast<const char*>(m->payload), m->len});
      rd_kafka_message_destroy(m);
      if (!rec)
        return Status::error("journal partition " + std::to_string(p.value()) + " position " +
                             std::to_string(pos) + ": " + rec.error().message());
      if (pos < stop) out.push_back(StoredRecord{journal_pos{pos}, std::move(rec.value())});
    }
  }
  // At the end: nothing to fetch until the journal grows, and a started reader would ask every
  // 10 ms meanwhile.
  if (stop == end->value()) r.stop();
  return Status::ok();
}

result<std::unique_ptr<Membership>> KafkaLog::join() {
  return GroupMembership::make(options_, ingest_topic_);
}

std::string KafkaLog::describe() const {
  return "kafka (" + options_.brokers + ", topics " + ingest_topic_ + " and " + journal_topic_ +
         ", " + std::to_string(partitions_) + " partitions)";
}

}  // namespace omniroute::events
