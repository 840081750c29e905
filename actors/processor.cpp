#include "actors/processor.hpp"

#include <caf/all.hpp>

#include "events/log_line.hpp"
#include "events/time.hpp"

namespace omniroute::actors {
namespace {

using step_atom = caf::atom_constant<caf::atom("step")>;

struct host_state {
  std::shared_ptr<PartitionProcessor> processor;
  ProcessorObserver* observer = nullptr;
  std::chrono::milliseconds wait{50};
  std::chrono::milliseconds backoff{100};
  static inline const char* name = "partition_host";
};

// The partition host: a detached actor (it blocks in the ingest read) that steps its
// partition's processor, one batch per `step` message, and backs off while the log fails.
caf::behavior partition_host(caf::stateful_actor<host_state>* self,
                             std::shared_ptr<PartitionProcessor> processor,
                             ProcessorObserver* observer, std::chrono::milliseconds wait) {
  self->state.processor = std::move(processor);
  self->state.observer = observer;
  self->state.wait = wait;
  self->send(self, step_atom::value);
  return {
      [=](step_atom) {
        auto& st = self->state;
        result<size_t> n = Status::error("not run");
        try {
          n = st.processor->step(st.wait);
        } catch (const std::exception& e) {
          // A bug, not bad input (that is refused before it gets here). The step's state may
          // be half-changed, so the processor recovers from the journal before the retry.
          st.processor->invalidate();
          n = Status::error(std::string("unexpected exception: ") + e.what());
        }
        if (!n) {
          st.observer->on_error(st.processor->partition(), n.error().message());
          log_line() << "omniroute: partition " << st.processor->partition().value() << ": "
                     << n.error().message() << " (retrying in " << st.backoff.count() << " ms)\n";
          self->delayed_send(self, st.backoff, step_atom::value);
          st.backoff = std::min(st.backoff * 2, std::chrono::milliseconds(5000));
          return;
        }
        st.backoff = std::chrono::milliseconds(100);
        self->send(self, step_atom::value);
      },
  };
}

using events::seconds_since;

}  // namespace

Processor::Processor(events::EventLog& log, projections::Store& store,
                     ProcessorObserver& observer, ProcessorOptions options)
    : log_(log), store_(store), observer_(observer), options_(options) {}

Processor::~Processor() { stop(); }

Status Processor::start() {
  if (!options_.warm_up) {
    auto membership = log_.join();
    if (!membership) return membership.error();
    membership_ = std::move(membership.value());
  }
  config_ = std::make_unique<caf::actor_system_config>();
  config_->set("scheduler.max-threads", 2);
  system_ = std::make_unique<caf::actor_system>(*config_);
  warming_ = options_.warm_up;
  thread_ = std::thread([this] {
    if (options_.warm_up) join_when_warm();
    // After the warm-up: never two warm-ups of one partition at once.
    if (options_.standby_every.count() > 0 && !stopping_)
      standby_thread_ = std::thread([this] { keep_standbys(); });
    follow_membership();
  });
  return Status::ok();
}

void Processor::join_when_warm() {
  warm_up();
  warming_ = false;
  while (!stopping_) {
    auto membership = log_.join();
    if (membership) {
      membership_ = std::move(membership.value());
      return;
    }
    log_line() << "omniroute: joining the group: " << membership.error().message()
               << " (trying again in 1 s)\n";
    for (int i = 0; i < 10 && !stopping_; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void Processor::warm_up() {
  const auto started = std::chrono::steady_clock::now();
  const int partitions = log_.partitions();
  const int workers =
      std::max(1, std::min<int>(partitions, static_cast<int>(std::thread::hardware_concurrency())));
  // A pass takes as long as the journal it replays; what was appended meanwhile is replayed by
  // the next, until one finds little (the recoveries replay that) or three have run.
  constexpr size_t little = 10000;
  size_t total = 0;
  for (int pass = 1; pass <= 3 && !stopping_; ++pass) {
    std::atomic<int> next{0};
    std::atomic<size_t> entries{0};
    std::vector<std::thread> threads;
    for (int w = 0; w < workers; ++w)
      threads.emplace_back([&] {
        for (int i = next++; i < partitions && !stopping_; i = next++) {
          const auto warmed = warm(partition_id{i}, false, stopping_);
          if (!warmed) continue;  // its recovery replays what this would have
          entries += warmed->entries;
          if (warmed->entries > 0)
            log_line() << "omniroute: warm-up: partition " << i << ": "
                       << replayed_from(warmed->snapshot, warmed->entries) << " to position "
                       << warmed->end.value() << " in " << warmed->seconds << " s\n";
        }
      });
    for (auto& t : threads) t.join();
    total += entries;
    if (entries < little) break;
  }
  if (!stopping_)
    log_line() << "omniroute: warmed up " << partitions << " partitions in "
               << seconds_since(started) << " s (" << total
               << " journal entries replayed); joining the group\n";
}

std::optional<WarmedUp> Processor::warm(partition_id p, bool standby,
                                        const std::atomic<bool>& stop) {
  auto warmed = actors::warm_up(log_, store_, p, stop);
  if (!warmed) {
    if (!stop)
      log_line() << "omniroute: " << (standby ? "standby" : "warm-up") << ": partition "
                 << p.value() << ": " << warmed.error().message() << "\n";
    return std::nullopt;
  }
  observer_.on_warm_up(p, standby, warmed->entries, warmed->seconds);
  return *warmed;
}

void Processor::keep_standbys() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    standby_changed_.wait_for(lock, options_.standby_every, [&] { return stopping_.load(); });
    const auto started = std::chrono::steady_clock::now();
    std::string warmed;
    size_t entries = 0;
    for (int32_t i = 0; i < log_.partitions() && !stopping_; ++i) {
      if (processors_.count(i) || leaving_.count(i)) continue;  // its host keeps it
      standby_partition_ = i;
      standby_stop_ = false;
      lock.unlock();
      const auto w = warm(partition_id{i}, true, standby_stop_);
      lock.lock();
      standby_partition_ = -1;
      standby_changed_.notify_all();
      if (w && w->entries > 0) {
        warmed += (warmed.empty() ? "" : ", ") + std::to_string(i);
        entries += w->entries;
      }
    }
    if (!warmed.empty())
      log_line() << "omniroute: standby: partition " << warmed
                 << " brought up to the journal's end (" << entries
                 << " journal entries replayed in " << seconds_since(started) << " s)\n";
  }
}

void Processor::follow_membership() {
  while (!stopping_ && membership_) {
    std::vector<partition_id> assigned, revoked;
    Status s = membership_->poll(assigned, revoked, std::chrono::milliseconds(100));
    if (!s) log_line() << "omniroute: membership: " << s.message() << "\n";
    for (auto p : revoked) stop_host(p);
    for (auto p : assigned) start_host(p);
  }
}

void Processor::start_host(partition_id p) {
  std::unique_lock<std::mutex> lock(mu_);
  if (hosts_.count(p.value())) return;
  if (standby_partition_ == p.value()) {  // its standby stops at its next step
    standby_stop_ = true;
    standby_changed_.wait(lock, [&] { return standby_partition_ != p.value(); });
  }
  auto processor =
      std::make_shared<PartitionProcessor>(log_, store_, p, observer_, options_.max_batch,
                                                        options_.clock_ticks, options_.projection_interval);
  processor->take_snapshots(options_.snapshot_every, snapshot_turn_);
  processors_[p.value()] = processor;
  hosts_[p.value()] = std::make_unique<caf::actor>(
      system_->spawn<caf::detached>(partition_host, processor, &observer_, options_.wait));
}

void Processor::stop_host(partition_id p) {
  std::unique_ptr<caf::actor> host;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = hosts_.find(p.value());
    if (it == hosts_.end()) return;
    host = std::move(it->second);
    hosts_.erase(it);
    processors_.erase(p.value());
    leaving_.insert(p.value());
  }
  caf::scoped_actor self{*system_};
  self->monitor(*host);
  self->send_exit(*host, caf::exit_reason::user_shutdown);
  // Down once its state is destroyed: the processor with it, its last snapshot written.
  self->receive([](const caf::down_msg&) {});
  log_.stop_reading(p);  // no fetching ahead for a partition another node may have now
  std::lock_guard<std::mutex> lock(mu_);
  leaving_.erase(p.value());
}

void Processor::stop() {
  if (stopped_ || !system_) return;
  stopped_ = true;
  {
    std::lock_guard<std::mutex> lock(mu_);  // so that the standby thread cannot miss it
    stopping_ = true;
    standby_stop_ = true;
  }
  standby_changed_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (standby_thread_.joinable()) standby_thread_.join();
  std::vector<int32_t> owned;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [p, host] : hosts_) owned.push_back(p);
  }
  for (int32_t p : owned) stop_host(partition_id{p});
  membership_.reset();
  system_.reset();
}

std::optional<std::string> Processor::not_ready_because() const {
  if (warming_)
    return std::string(
        "warming up: bringing this node's copy of every partition up to the journal's end "
        "before it joins the group");
  std::lock_guard<std::mutex> lock(mu_);
  if (processors_.empty()) return std::string("no partition is this node's yet");
  std::string recovering;
  for (const auto& [p, proc] : processors_)
    if (!proc->recovered()) recovering += (recovering.empty() ? "" : ", ") + std::to_string(p);
  if (!recovering.empty()) return "recovering partition " + recovering;
  return std::nullopt;
}

bool Processor::owns(partition_id p) const {
  std::lock_guard<std::mutex> lock(mu_);
  return processors_.count(p.value()) > 0;
}

}  // namespace omniroute::actors
