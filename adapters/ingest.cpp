#include "adapters/ingest.hpp"

#include <algorithm>
#include <map>
#include <string_view>

#include "events/key_hash.hpp"

namespace omniroute::adapters {
namespace {

using key_view = std::pair<std::string_view, std::string_view>;  // (tenant, id)

// The keys of a batch met so far, as their places in the batch, in an open-addressing table
// sized for the whole batch: a node-based hash set allocated a node for each event and walked
// them all to free them at the end (perf: 16% of ingest's own samples on that walk).
class BatchKeys {
 public:
  explicit BatchKeys(const std::vector<key_view>& keys) : keys_(keys) {
    size_t room = 16;
    while (room < 2 * keys.size()) room *= 2;
    slots_.assign(room, none);
  }
  // Adds keys[i]; false when an equal key was added before.
  bool insert(uint32_t i) {
    const key_view& key = keys_[i];
    const size_t mask = slots_.size() - 1;
    for (size_t s = events::key_hash(key.first, key.second);; ++s) {
      uint32_t& slot = slots_[s & mask];
      if (slot == none) {
        slot = i;
        return true;
      }
      if (keys_[slot] == key) return false;
    }
  }

 private:
  static constexpr uint32_t none = ~uint32_t{0};
  const std::vector<key_view>& keys_;
  std::vector<uint32_t> slots_;
};

}  // namespace

result<std::vector<IngestResult>, IngestError> ingest(
    events::EventLog& log, const projections::Store& store, std::vector<events::Envelope>& envs,
    std::optional<std::chrono::milliseconds> room_wait, std::chrono::steady_clock::duration* waited,
    std::vector<std::string>* texts, events::TypeCounts* counts) {
  using answer = result<std::vector<IngestResult>, IngestError>;
  // Views of the envelopes' keys: below, only their data move out.
  std::vector<key_view> keys;
  keys.reserve(envs.size());
  for (const auto& e : envs) keys.emplace_back(e.tenant, e.id);
  // Read before the lookup: the partition hosts need not look the keys found unknown up again
  // (PartitionProcessor::decide).
  const uint64_t looked_up_as_of = store.changes();
  const auto known = store.seqs_of(keys);
  std::vector<IngestResult> results(envs.size());
  struct PartitionBatch {
    std::vector<std::string> texts;
    std::vector<events::Envelope> envelopes;  // handed to the log with their texts
    std::vector<size_t> slots;                // where each one is in `envs`
    size_t count = 0;
  };
  std::map<int32_t, PartitionBatch> batches;
  BatchKeys in_batch(keys);  // the keys seen so far in this batch
  std::vector<size_t> fresh;  // the new events, in order; each partition's are counted first
  fresh.reserve(envs.size());
  for (size_t i = 0; i < envs.size(); ++i) {
    // A type's text is out of the cache by now (the parse wrote it a whole batch ago): fetched
    // a few events ahead of its count.
    if (counts && i + 8 < envs.size()) __builtin_prefetch(envs[i + 8].type.data());
    IngestResult& r = results[i];
    if (known[i]) {
      r.duplicate = true;
      r.seq = known[i];
    } else if (!in_batch.insert(static_cast<uint32_t>(i))) {
      r.duplicate = true;
    } else {
      r.partition = log.partition_of(envs[i].tenant);
      ++batches[r.partition.value()].count;
      fresh.push_back(i);
    }
    if (counts) counts->add(envs[i].type, r.duplicate ? "duplicate" : "accepted");
  }
  // Each partition's vectors sized once: growing them moved every envelope again.
  for (auto& [p, b] : batches) {
    b.texts.reserve(b.count);
    b.envelopes.reserve(b.count);
    b.slots.reserve(b.count);
  }
  const size_t most = log.max_payload_bytes();
  for (const size_t i : fresh) {
    PartitionBatch& b = batches[results[i].partition.value()];
    b.texts.push_back(texts ? std::move((*texts)[i]) : events::to_text(envs[i]));
    if (b.texts.back().size() > most)
      return answer(IngestError{"event " + std::to_string(i) + " ('" + envs[i].id + "') is " +
                                    std::to_string(b.texts.back().size()) +
                                    " bytes as JSON; this server's event log takes at most " +
                                    std::to_string(most),
                                false, i});
    b.slots.push_back(i);
    // The type moves: each copy was an allocation and a read of a text out of the cache (perf:
    // 1.1% of all samples). The id and tenant, short enough to be kept inline, are copied for
    // the answer.
    events::Envelope& e = envs[i];
    b.envelopes.push_back(
        events::Envelope{e.id, std::move(e.type), e.tenant, e.time_ms, std::move(e.data), e.seq, e.cause});
  }
  if (room_wait) {
    // One deadline for all: a batch over several partitions waits no longer than one.
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + *room_wait;
    for (auto& [p, b] : batches) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      // Without room now: while the store refuses writes, the hosts can make none (the
      // embedded engine's journal is in it), and waiting would only delay the answer that
      // names why.
      bool room = log.await_room(partition_id{p}, b.texts, std::chrono::milliseconds(0));
      std::optional<std::string> refused;
      if (!room) refused = store.write_error();
      if (!room && !refused)
        room =
            log.await_room(partition_id{p}, b.texts, std::max(left, std::chrono::milliseconds(0)));
      if (waited) *waited = std::chrono::steady_clock::now() - start;
      if (!room && refused)
        return answer(IngestError{"the store refuses writes: " + *refused, false, std::nullopt});
      if (!room)
        return answer(IngestError{"partition " + std::to_string(p) +
                                      " has more events waiting to be processed than it holds "
                                      "in memory, and had no room after " +
                                      std::to_string(room_wait->count()) + " ms",
                                  true, std::nullopt});
    }
  }
  for (auto& [p, b] : batches) {
    std::vector<ingest_offset> offsets;
    if (Status s = log.append_validated(partition_id{p}, std::move(b.texts), std::move(b.envelopes),
                                       looked_up_as_of, &offsets); !s)
      return answer(IngestError{s.message(), false, std::nullopt});
    for (size_t k = 0; k < b.slots.size(); ++k) results[b.slots[k]].offset = offsets[k];
  }
  return results;
}

}  // namespace omniroute::adapters
