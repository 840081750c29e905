// Entities by id, for the hottest lookups by id (the routing state's conversations, open and
// packed, the journeys' customers, the interval statistics' contacts): T's own `id` member is
// the key.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "events/key_hash.hpp"

namespace omniroute {

// Each entity in its own allocation (a reference stays valid until it is erased), found through
// an open-addressing table of hashes and pointers (linear probing, at most half full). A lookup
// reads one slot, and the entity only when the slot's hash matches. The
// std::unordered_map<std::string, Conversation> it replaces went from a bucket to the node
// before the first of the bucket, to that node, and to the hash kept at the node's end, 720
// bytes after its key: perf put most of find_conversation's samples on those loads. The
// benchmark at 300,000 events, perf: the conversations' lookups 4.1-4.3% of all samples with
// that map (and a memory of the last one found), 1.4-1.5% with this. No iterators: erase_if()
// and for_each() visit every entity, in an order that depends on the table's history, so
// nothing whose result depends on an order may use them.
template <typename T>
class IdMap {
 public:
  IdMap() = default;
  // A map moved from is empty (its count goes with its slots).
  IdMap(IdMap&& other) noexcept : slots_(std::move(other.slots_)), size_(std::exchange(other.size_, 0)) {
    other.slots_.clear();
  }
  IdMap& operator=(IdMap&& other) noexcept {
    slots_ = std::move(other.slots_);
    other.slots_.clear();
    size_ = std::exchange(other.size_, 0);
    return *this;
  }
  // A deep copy: the copy owns copies of the entities.
  IdMap(const IdMap& other) : slots_(other.slots_.size()), size_(other.size_) {
    for (size_t i = 0; i < other.slots_.size(); ++i)
      if (other.slots_[i].entry)
        slots_[i] = Slot{other.slots_[i].hash, std::make_unique<T>(*other.slots_[i].entry)};
  }
  IdMap& operator=(const IdMap& other) {
    if (this != &other) *this = IdMap(other);
    return *this;
  }

  // The entity with this id, or null. A const map's entities are not const: the map only
  // indexes them (Tenant::find_conversation is const and gives a conversation to change).
  T* find(std::string_view id) const {
    if (size_ == 0) return nullptr;
    const Slot& s = slots_[probe(id, events::key_hash(id))];
    return s.entry.get();
  }
  // Asks the CPU to fetch into its cache the slot where a lookup of an id with this hash
  // (events::key_hash) starts, a few lookups ahead of it (their cache misses then overlap).
  void prefetch(uint64_t hash) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[hash & (slots_.size() - 1)]);
  }
  // The entity that a lookup of an id with this hash most likely finds, or null: the one in the
  // slot where the lookup starts, if its hash matches. For fetching ahead only: the id is not
  // compared, so it may be another entity.
  const T* likely(uint64_t hash) const {
    if (slots_.empty()) return nullptr;
    const Slot& s = slots_[hash & (slots_.size() - 1)];
    return s.hash == hash ? s.entry.get() : nullptr;
  }
  T& at(std::string_view id) const {
    if (T* found = find(id)) return *found;
    throw std::out_of_range("no entry '" + std::string(id) + "'");
  }
  // The entity with this id, made (default, with the id) if there is none.
  T& operator[](std::string_view id) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    const uint64_t h = events::key_hash(id);
    Slot& s = slots_[probe(id, h)];
    if (!s.entry) {
      s = Slot{h, std::make_unique<T>()};
      s.entry->id = std::string(id);
      ++size_;
    }
    return *s.entry;
  }
  // Erases the entity with this id, if there is one; true if there was.
  bool erase(std::string_view id) {
    if (size_ == 0) return false;
    size_t hole = probe(id, events::key_hash(id));
    if (!slots_[hole].entry) return false;
    slots_[hole] = Slot{};
    --size_;
    // Backward shift: an entry further along the run moves into the hole when the hole lies
    // between its home slot and where it is, so that every entry stays reachable from its home
    // without tombstones.
    const size_t mask = slots_.size() - 1;
    for (size_t i = (hole + 1) & mask; slots_[i].entry; i = (i + 1) & mask) {
      const size_t home = slots_[i].hash & mask;
      if (((i - home) & mask) >= ((i - hole) & mask)) {
        slots_[hole] = std::move(slots_[i]);
        hole = i;
      }
    }
    return true;
  }
  // Calls `drop(T&)` once for each entity (it may change the entity), then erases those it
  // returned true for; if a call throws, nothing is erased. Linear in the table's size.
  template <typename F>
  void erase_if(F&& drop) {
    std::vector<bool> gone(slots_.size());
    size_t erased = 0;
    for (size_t i = 0; i < slots_.size(); ++i)
      if (slots_[i].entry && drop(*slots_[i].entry)) {
        gone[i] = true;
        ++erased;
      }
    if (erased == 0) return;
    // Put back what stays, into a table of the same size: no run has holes to shift back.
    std::vector<Slot> old(slots_.size());
    old.swap(slots_);
    for (size_t i = 0; i < old.size(); ++i)
      if (old[i].entry && !gone[i]) place(std::move(old[i]));
    size_ -= erased;
  }
  // Calls `f(const T&)` once for each entity.
  template <typename F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_)
      if (s.entry) f(*s.entry);
  }
  // Every entity in the order of its `id` member: for what must not depend on the table's
  // layout (a snapshot's bytes). Sorted by eight bytes of the ids at a time, kept beside the
  // pointers (sorting the pointers by their ids read an entity at every comparison: 62% of a
  // snapshot's encoding, perf, 25 MB snapshots of 200,000 conversations a partition; 1,233 ->
  // 566 samples for four), the next eight only among those equal so far: ids that share a
  // prefix (`conversation-2026-12-07-...`) took 5 times as long with the first eight alone,
  // 200,000 in 97 ms against 18. Each entity is a cache miss (they are allocated one by one):
  // the ids are fetched a few ahead of their reads (35% of the encoding's samples under load
  // were on those reads).
  std::vector<const T*> in_id_order() const {
    std::vector<std::pair<uint64_t, const T*>> keyed;
    keyed.reserve(size_);
    for (const Slot& s : slots_)
      if (s.entry) keyed.emplace_back(0, s.entry.get());
    sort_by_id(keyed, 0, keyed.size(), 0);
    std::vector<const T*> out(keyed.size());
    for (size_t i = 0; i < keyed.size(); ++i) out[i] = keyed[i].second;
    return out;
  }
  // Eight bytes of `id` from `at` as a big-endian number (zeros past its end): ordered as the
  // ids' bytes are (std::string compares as unsigned bytes), equal when those eight are.
  static uint64_t order_prefix(std::string_view id, size_t at = 0) {
    uint64_t v = 0;
    for (size_t i = at; i < at + 8; ++i)
      v = (v << 8) | (i < id.size() ? static_cast<unsigned char>(id[i]) : 0u);
    return v;
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  struct Slot {
    uint64_t hash = 0;
    std::unique_ptr<T> entry;  // null: empty
  };

  // Sorts keyed[from, to), whose ids are equal in their first `at` bytes, by their ids.
  static void sort_by_id(std::vector<std::pair<uint64_t, const T*>>& keyed, size_t from, size_t to,
                         size_t at) {
    if (at >= 32 || to - from < 16) {  // few, or long alike: by whole ids (zeros in ids tie here)
      std::sort(keyed.begin() + from, keyed.begin() + to,
                [](const auto& a, const auto& b) { return a.second->id < b.second->id; });
      return;
    }
    constexpr size_t ahead = 8;
    bool alike = true;  // all equal in these eight bytes too: nothing to sort
    for (size_t i = from; i < to; ++i) {
      if (i + ahead < to) __builtin_prefetch(&keyed[i + ahead].second->id);
      keyed[i].first = order_prefix(keyed[i].second->id, at);
      alike = alike && keyed[i].first == keyed[from].first;
    }
    if (alike) return sort_by_id(keyed, from, to, at + 8);
    std::sort(keyed.begin() + from, keyed.begin() + to,
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = from; i < to;) {
      size_t j = i + 1;
      while (j < to && keyed[j].first == keyed[i].first) ++j;
      if (j - i > 1) sort_by_id(keyed, i, j, at + 8);
      i = j;
    }
  }

  // The slot holding `id`, or the empty slot that ends its run. The table is never full.
  size_t probe(std::string_view id, uint64_t h) const {
    const size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (!s.entry || (s.hash == h && s.entry->id == id)) return i;
    }
  }
  // Puts an entry into the first empty slot of its run (it is not in the table).
  void place(Slot&& s) {
    const size_t mask = slots_.size() - 1;
    size_t i = s.hash & mask;
    while (slots_[i].entry) i = (i + 1) & mask;
    slots_[i] = std::move(s);
  }
  void grow() {
    std::vector<Slot> old(slots_.empty() ? 16 : slots_.size() * 2);
    old.swap(slots_);
    for (Slot& s : old)
      if (s.entry) place(std::move(s));
  }

  std::vector<Slot> slots_;  // a power of two of them, or none
  size_t size_ = 0;
};

}  // namespace omniroute
