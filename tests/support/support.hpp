// Test support: temporary directories, commands run, a librdkafka mock cluster, event builders.
#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

namespace omniroute::testing {

// A command run through the shell: its exit code (-1 when a signal ended it) and what it printed
// on its standard output.
struct CommandRun {
  int status = -1;
  std::string output;
};

// `program` and `args`, each argument quoted for the shell, then `tail` as it is (redirections,
// say).
inline CommandRun run_command(const std::string& program, const std::vector<std::string>& args,
                              const std::string& tail = "") {
  std::string cmd = program;
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += tail;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run " + cmd);
  CommandRun r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// A directory removed (with its contents) when the object dies.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("omniroute-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  std::string sub(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// librdkafka's built-in mock cluster: the real Kafka protocol on loopback, in this process.
class MockKafka {
 public:
  explicit MockKafka(int brokers = 1) {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk_) throw std::runtime_error(err);
    cluster_ = rd_kafka_mock_cluster_new(rk_, brokers);
    if (!cluster_) throw std::runtime_error("cannot start the mock kafka cluster");
  }
  ~MockKafka() {
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(rk_);
  }
  std::string brokers() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }
  // Takes broker `id` (1 up to the cluster's brokers) down: its connections are closed and
  // new ones refused, until set_up.
  void set_down(int id) { rd_kafka_mock_broker_set_down(cluster_, id); }
  void set_up(int id) { rd_kafka_mock_broker_set_up(cluster_, id); }
  void create_topic(const std::string& name, int partitions) {
    if (rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, 1))
      throw std::runtime_error("cannot create mock topic " + name);
  }

 private:
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

inline nlohmann::json event(const std::string& id, const std::string& type,
                            const std::string& time, nlohmann::json data,
                            const std::string& tenant = "acme") {
  return {{"id", id}, {"type", type}, {"tenant", tenant}, {"time", time}, {"data", std::move(data)}};
}

// Three facts of acme: an auto-accept queue "support", alice logged in to it, and conversation
// c-1 started there. They make five journal entries (seq 0 to 4, the last
// conversation.assigned to alice).
inline nlohmann::json assigned_session() {
  return nlohmann::json::array(
      {event("q-1", "queue.configured", "2026-11-20T10:00:00Z",
             {{"queue", "support"}, {"auto_accept", true}}),
       event("a-1", "agent.logged_in", "2026-11-20T10:00:01Z",
             {{"agent", "alice"}, {"queues", {"support"}}, {"capacity", {{"chat", 3}}}}),
       event("c-1", "conversation.started", "2026-11-20T10:00:02Z",
             {{"conversation", "c-1"}, {"customer", "u-9"}, {"channel", "web"}, {"queue", "support"}})});
}

}  // namespace omniroute::testing
