// A memory of the map entry found last, for the next lookup of the same key: the facts and
// decisions of one event look the same conversation or customer up several times, and the
// second time on a comparison of keys replaces a hash and a walk to a node likely out of cache.
#pragma once

namespace omniroute {

// The entry is reached through its owner's own map (whose nodes do not move) and must be
// forgotten when it leaves the map. A copy of the owner starts with nothing remembered: the
// pointer would reach into the original's map.
template <typename T>
struct LastFound {
  T* entry = nullptr;
  LastFound() = default;
  LastFound(const LastFound&) {}
  LastFound& operator=(const LastFound&) {
    entry = nullptr;
    return *this;
  }
};

}  // namespace omniroute
