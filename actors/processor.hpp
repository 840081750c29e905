// The processor of one omniroute process: follows the partitions this process owns (the
// event log's Membership) and runs one partition host actor (CAF) per owned partition.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "actors/observer.hpp"
#include "actors/partition_processor.hpp"
#include "actors/warm_up.hpp"
#include "events/event_log.hpp"
#include "projections/store.hpp"

namespace caf {
class actor_system;
class actor_system_config;
class actor;
}  // namespace caf

namespace omniroute::actors {

struct ProcessorOptions {
  std::chrono::milliseconds wait{50};  // how long a host waits for ingest before looping
  size_t max_batch = 2000;             // most ingest records per journal append
  bool clock_ticks = true;             // send clock.tick facts when a tenant's timer is due
  // Views (and the journal served by the query API) trail the journal by at most this much
  // under load; when the ingest log runs dry they are written at once (PartitionProcessor).
  std::chrono::milliseconds projection_interval{2};
  // A snapshot of a partition's state after this many journal entries (appended or replayed),
  // after half as many in a lull (a whole `wait` with nothing), and at shutdown; 0: none (recovery
  // still starts from one it finds). A recovery replays at most about this many entries beyond its
  // snapshot.
  size_t snapshot_every = 1000000;
  // Before joining the membership, bring this node's copy of every partition (views, snapshot)
  // up to the journal's end (actors/warm_up.hpp): for engines whose partitions move between
  // nodes (Kafka; ops::Server turns it off on the embedded engine, whose one node has every
  // partition). The node is not ready, and owns nothing, meanwhile.
  bool warm_up = true;
  // Every this often, bring this node's copy of each partition it does not own up to the
  // journal's end too (a standby, as Kafka Streams' standby replicas), so that taking one over
  // from a node that failed replays at most about this long of its journal; 0: never. Each node
  // then projects every partition's views, not only its own.
  std::chrono::seconds standby_every{0};
};

class Processor {
 public:
  Processor(events::EventLog& log, projections::Store& store, ProcessorObserver& observer,
            ProcessorOptions options = {});
  ~Processor();

  // Joins the partition membership and starts following it (with `warm_up`, in the background
  // once warmed up, trying again while the join fails).
  Status start();
  // Stops every host after its current batch and leaves the membership. Idempotent.
  void stop();
  // True once this process owns at least one partition and has recovered every one it owns.
  bool ready() const { return !not_ready_because(); }
  // Why it is not ready (warming up, owning nothing yet, recovering which partitions), or
  // nothing when it is.
  std::optional<std::string> not_ready_because() const;
  // Whether this process owns partition p now (its views cover that partition's tenants).
  bool owns(partition_id p) const;

 private:
  void follow_membership();
  void warm_up();
  // Warms partition p (actors::warm_up) and reports it to the observer; logs why not, unless
  // `stop` was set. `standby`: a standby round's, else the warm-up before joining.
  std::optional<WarmedUp> warm(partition_id p, bool standby, const std::atomic<bool>& stop);
  void join_when_warm();
  void keep_standbys();
  void start_host(partition_id p);
  void stop_host(partition_id p);

  events::EventLog& log_;
  projections::Store& store_;
  ProcessorObserver& observer_;
  ProcessorOptions options_;
  std::unique_ptr<caf::actor_system_config> config_;
  std::unique_ptr<caf::actor_system> system_;
  std::unique_ptr<events::Membership> membership_;
  mutable std::mutex mu_;
  std::map<int32_t, std::shared_ptr<PartitionProcessor>> processors_;
  // One partition's snapshot at a time (PartitionProcessor::take_snapshots).
  std::shared_ptr<SnapshotTurn> snapshot_turn_ = std::make_shared<SnapshotTurn>();
  std::map<int32_t, std::unique_ptr<caf::actor>> hosts_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> warming_{false};
  // The standby thread's partition now (-1: none; under mu_), and its stop: set by stop(), and by
  // start_host() for that partition, which waits for it (standby_changed_) before its host starts.
  int32_t standby_partition_ = -1;
  std::atomic<bool> standby_stop_{false};
  std::condition_variable standby_changed_;
  std::set<int32_t> leaving_;  // partitions whose hosts are stopping (under mu_)
  std::thread standby_thread_;
  bool stopped_ = false;
};

}  // namespace omniroute::actors
