// A fast 64-bit hash of short keys (ids, tenant keys) for hash tables whose keys come from
// clients: seeded once per process, so that no client can choose keys that all land in one run
// of an open-addressing table.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <string_view>

namespace omniroute::events {

// The hash to start from: random, once per process.
inline uint64_t hash_start() {
  static const uint64_t seed = (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
  return seed;
}

// Folds `s` into the running hash `h`, eight bytes at a time.
inline uint64_t hash_more(uint64_t h, std::string_view s) {
  constexpr uint64_t k = 0x9E3779B97F4A7C15ull;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * k;
    h ^= h >> 29;
  }
  uint64_t w = 0;
  std::memcpy(&w, s.data() + i, s.size() - i);
  h = (h ^ w ^ (uint64_t(s.size()) << 56)) * k;
  return h ^ (h >> 29);
}

// MurmurHash3's finalizer: every bit of the key reaches the low bits a table indexes by.
inline uint64_t hash_finish(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 33);
}

inline uint64_t key_hash(std::string_view s) { return hash_finish(hash_more(hash_start(), s)); }

}  // namespace omniroute::events
