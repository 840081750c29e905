// Interval statistics: per tenant, queue, channel and 5-minute bucket, what the queue was
// offered and what became of it. Plain C++: fed journal envelopes, it yields counter deltas that
// the store adds to its `intervals` view; queries add base buckets up to 15, 30 or 60 minutes.
//
// Counting rules (the same for live conversations and imported history):
// - Every count lands in the bucket of the contact's arrival in the queue (when it was
//   offered), as ACD interval reports do, so an interval's answered + abandoned never exceed
//   its offered once the contacts are finished.
// - offered: contacts that entered the queue. A conversation re-queued to the same queue after
//   a decline or a lost offer is still one contact; one transferred or overflowed to another
//   queue is offered there too (and is neither answered nor abandoned in the first).
// - queued: offered contacts that had to wait (not answered on arrival).
// - answered / abandoned, and *_within_threshold: the wait was at most the queue's
//   `sl_threshold_s` (20 s when the queue does not configure one) at the time of arrival.
// - wait_time: time in queue of answered and abandoned contacts; handle_time: from answer to
//   the end of wrap-up (to closing), for answered contacts.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "events/envelope.hpp"
#include "events/forgotten_on_copy.hpp"
#include "events/id_map.hpp"

namespace omniroute::events {
struct Appender;
struct Unpacker;
}  // namespace omniroute::events

namespace omniroute::projections {

constexpr int64_t base_interval_ms = 5 * 60 * 1000;
constexpr int64_t default_sl_threshold_ms = 20 * 1000;

struct IntervalCounters {
  int64_t offered = 0, queued = 0, answered = 0, abandoned = 0, answered_within_threshold = 0,
          abandoned_within_threshold = 0, handle_time_ms = 0, wait_time_ms = 0;

  static constexpr size_t fields = 8;
  void add(const IntervalCounters& o);
  // Counts a contact answered or abandoned after `waited_ms` in the queue: whether it waited
  // (queued), and whether within the threshold.
  void count_finished(bool answered, bool queued, int64_t waited_ms, int64_t threshold_ms);
  bool empty() const;
  std::string encode() const;  // 8 big-endian int64
  static std::optional<IntervalCounters> decode(std::string_view bytes);
  // {"offered":..,...,"handle_time_s":..,"wait_time_s":..}
  events::json to_json() const;
};

struct IntervalKey {
  std::string tenant, queue;
  int64_t bucket_ms = 0;  // start of the 5-minute bucket
  std::string channel;
  bool operator<(const IntervalKey& o) const {
    return std::tie(tenant, queue, bucket_ms, channel) <
           std::tie(o.tenant, o.queue, o.bucket_ms, o.channel);
  }
};

using IntervalDeltas = std::map<IntervalKey, IntervalCounters>;

// A queue's counters of one interval (from bucket_ms, interval_ms long) and channel; channel
// "*" when the channels are added together.
struct IntervalRow {
  int64_t bucket_ms = 0;
  std::string channel;
  IntervalCounters counters;
};

// Adds base rows (in time order) up to intervals of `interval_ms` (a multiple of the base
// interval), per channel or, with `all_channels`, over every channel ("*").
// `utc_offset_ms` aligns the intervals to local time (a day from local midnight).
std::vector<IntervalRow> roll_up(const std::vector<IntervalRow>& rows, int64_t interval_ms,
                                 bool all_channels, int64_t utc_offset_ms = 0);

// The start of the bucket of `interval_ms` that holds `time_ms` (floor, also before 1970).
int64_t bucket_of(int64_t time_ms, int64_t interval_ms);
// The same on a grid aligned to local time `utc_offset_ms` east of UTC (e.g. local midnights).
inline int64_t local_bucket_of(int64_t time_ms, int64_t interval_ms, int64_t utc_offset_ms) {
  return bucket_of(time_ms + utc_offset_ms, interval_ms) - utc_offset_ms;
}

class IntervalStats {
 public:
  // Applies one journal entry (fact or decision) of any tenant.
  void apply(const events::Envelope& e);
  // The counter changes since the last take_deltas().
  IntervalDeltas take_deltas() {
    last_.ptr = nullptr;
    return std::exchange(deltas_, IntervalDeltas{});
  }
  // The contacts followed and the queues' thresholds, for a snapshot, and back into empty
  // statistics (actors/snapshot.hpp): after take_deltas() only (the deltas are not written).
  void save(events::Appender& out) const;
  void restore(events::Unpacker& in);
  static std::string layout();

 private:
  struct Contact {
    std::string id;  // the conversation
    std::string channel, queue;
    int64_t arrived_ms = -1, answered_ms = -1, threshold_ms = default_sl_threshold_ms;
    bool finished = false;  // answered or abandoned in its current queue
  };
  struct TenantState {
    // Every conversation's until it closes, looked up at each of its entries (IdMap: the
    // std::unordered_map before it was 0.5-0.6% of the benchmark's samples).
    IdMap<Contact> contacts;
    std::unordered_map<std::string, int64_t> threshold_ms;  // per queue
  };
  IntervalCounters& at(const std::string& tenant, const Contact& c);
  int64_t threshold_of(const TenantState& t, const std::string& queue) const;
  void record_history(const events::Envelope& e, TenantState& t);

  std::map<std::string, TenantState> tenants_;
  IntervalDeltas deltas_;
  // The member of deltas_ at() gave last: a contact's next change (assigned after queued)
  // and the next contact's mostly fall in the same one, found again without building a key
  // and searching the map (which compared three strings at every level).
  // It points into deltas_, so a copy of the statistics starts without one.
  ForgottenOnCopy<std::pair<const IntervalKey, IntervalCounters>> last_;
};

}  // namespace omniroute::projections
