// The idempotency keys a partition host journaled lately, held by generation (a generation is
// the keys of one projection), so that the host answers most keys without the ids view.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace omniroute::actors {

// A set of (tenant, id) keys. New keys join the open generation; close() stamps it and opens
// the next; drop_oldest() forgets the oldest closed one. Every partition host adds every
// event's key and forgets it a few projections later, so the set is built for that: one flat
// open-addressing table of hashes (one cache line touched by most lookups), the keys' bytes in
// one buffer per generation, and a generation forgotten at once, not key by key. The
// std::unordered_set<std::string> it replaces allocated two blocks per key (node and string)
// and touched a bucket and a node per lookup and per erase: 5-6% of the ingest benchmark's
// CPU samples.
class RecentKeys {
 public:
  RecentKeys();

  // Adds the key to the open generation: true if it was not held (in any generation).
  bool insert(std::string_view tenant, std::string_view id);
  bool contains(std::string_view tenant, std::string_view id) const;
  // Asks the CPU to fetch into its cache the slot where a lookup of this key starts: called a
  // few keys ahead of insert() or contains(), so that the cache misses of several lookups
  // overlap.
  void prefetch(std::string_view tenant, std::string_view id) const {
    __builtin_prefetch(&slots_[hash_of(tenant, id) & mask_]);
  }

  // Closes the open generation with `stamp` (PartitionProcessor: Store::changes() read after
  // its projection), if it holds any key.
  void close(uint64_t stamp);
  // Forgets the oldest closed generation's keys and returns its stamp; at least one must be
  // closed.
  uint64_t drop_oldest();

  size_t open_keys() const { return generations_.back().count; }
  size_t closed_keys() const { return live_ - open_keys(); }
  size_t closed_generations() const { return generations_.size() - 1; }
  size_t size() const { return live_; }
  void clear();

 private:
  // A slot never used has `at` == UINT32_MAX. A slot of a generation older than first_gen_ is
  // dead: lookups probe past it, inserts may reuse it. Generation numbers are 32 bits and
  // compared modulo 2^32: the table is rebuilt (dead slots dropped) at least every `capacity`
  // inserts, and every generation holds a key, so a dead slot's number is never more than
  // that many generations old.
  struct Slot {
    uint64_t hash;
    uint32_t gen;
    uint32_t at;  // where the key is in its generation's bytes
  };
  struct Generation {
    uint64_t stamp = 0;
    size_t count = 0;
    std::string bytes;  // each key: 4-byte length, tenant, '\0', id
  };

  static uint64_t hash_of(std::string_view tenant, std::string_view id);
  bool live(uint32_t gen) const { return uint32_t(gen - first_gen_) < generations_.size(); }
  bool equal(const Slot& s, std::string_view tenant, std::string_view id) const;
  // The slot holding the key, or the empty slot that ends its run; `dead`, if given, gets the
  // first dead slot on the way (SIZE_MAX if none).
  size_t probe(uint64_t h, std::string_view tenant, std::string_view id, size_t* dead = nullptr) const;
  void rebuild(size_t capacity);

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t used_ = 0;  // slots not empty: live and dead
  size_t live_ = 0;
  size_t inserts_since_rebuild_ = 0;
  uint32_t first_gen_ = 1;               // the number of generations_.front()
  std::deque<Generation> generations_;   // oldest first; the last is open
};

}  // namespace omniroute::actors
