// The keys of the entities whose views a projection owes, each entity marked with the round it
// was last added in: the facts and decisions of one event add the same conversation, agent or
// customer several times, and each time after the first costs a comparison. (Hash sets of ids
// hashed the id on every add and allocated a node on the first: perf put them at about 3.5% of
// the benchmark's samples.)
#pragma once

#include <cstdint>
#include <vector>

namespace omniroute {

// Key: the id (a string) or (customer, conversation) of a visit. An entity is marked through a
// `uint64_t` it owns, 0 when new: no round is 0.
template <typename Key>
class TouchedIds {
 public:
  // Adds the key made of `parts` unless `mark` says it was added in this round; marks it. The
  // key is made only then, in its place (a visit's key made at each call, then copied in, was
  // four string copies a change: perf, 0.4% of all samples).
  template <typename... Parts>
  void add(uint64_t& mark, const Parts&... parts) {
    if (mark == round_) return;
    mark = round_;
    keys_.emplace_back(parts...);
  }
  // The keys added since the last take, in the order added; a new round starts. Each entity is
  // listed once, but one dropped and made again within the round (its mark starts at 0 again)
  // is listed twice: a view is rendered from what its key finds when it is written, so both
  // write the same document. They were sorted and made unique here while the views' memtables
  // were skiplists, which took keys in order for less (view writes +20% in hash order); those
  // views' memtables now index keys by hash, and the sort was 1.3-1.6% of all samples (perf,
  // mostly comparing strings), against 0.05-0.09% unsorted.
  std::vector<Key> take() {
    ++round_;
    std::vector<Key> out;
    out.swap(keys_);
    return out;
  }
  // Whether the entity marked `mark` was added in this round.
  bool holds(uint64_t mark) const { return mark == round_; }
  bool empty() const { return keys_.empty(); }

 private:
  uint64_t round_ = 1;
  std::vector<Key> keys_;
};

}  // namespace omniroute
