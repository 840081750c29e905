// A fast 64-bit hash of short keys (ids, tenant keys) for hash tables whose keys come from
// clients: seeded once per process, so that no client can choose keys that all land in one run
// of an open-addressing table.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <string_view>

namespace omniroute::events {

// The hash to start from: random, once per process (fixed in a fuzzing build, so that an input
// that showed a problem replays it).
inline uint64_t hash_start() {
#ifdef OMNIROUTE_FIXED_HASH_SEED
  return 0x243F6A8885A308D3ull;
#else
  static const uint64_t seed = (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
  return seed;
#endif
}

// Folds one word into the running hash `h`.
inline uint64_t hash_word(uint64_t h, uint64_t w) {
  h = (h ^ w) * 0x9E3779B97F4A7C15ull;
  return h ^ (h >> 29);
}

// Folds `s` into the running hash `h`, eight bytes at a time.
inline uint64_t hash_more(uint64_t h, std::string_view s) {
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = hash_word(h, w);
  }
  // The last 0-7 bytes, as a little-endian word. Read in place, in loads that overlap: copied
  // into a word on the stack first (a memcpy of a variable size), the load of the word waited for
  // the copy's stores (a store-forwarding stall: perf put most of a staged prefetch's samples on
  // it, the lookups hashing every id).
  const size_t n = s.size() - i;
  const char* p = s.data();
  uint64_t w = 0;
  if (n > 0 && s.size() >= 8) {  // the last eight bytes, less those already folded in
    std::memcpy(&w, p + s.size() - 8, 8);
    w >>= 8 * (8 - n);
  } else if (n >= 4) {  // a key of 4-7 bytes: its first four and last four, overlapping
    uint32_t first, last;
    std::memcpy(&first, p, 4);
    std::memcpy(&last, p + n - 4, 4);
    w = first | (uint64_t(last) << (8 * (n - 4)));
  } else if (n > 0) {  // 1-3 bytes: the first, middle and last (some the same)
    auto byte = [&](size_t k) { return uint64_t(static_cast<unsigned char>(p[k])) << (8 * k); };
    w = byte(0) | byte(n / 2) | byte(n - 1);
  }
  return hash_word(h, w ^ (uint64_t(s.size()) << 56));
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

// The hash of a key in two parts, e.g. (tenant, id).
inline uint64_t key_hash(std::string_view first, std::string_view second) {
  return hash_finish(hash_more(hash_more(hash_start(), first), second));
}

}  // namespace omniroute::events
