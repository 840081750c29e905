// key_hash reads a key's last bytes in overlapping loads: the same words, so the same hash, as
// copying them into a zeroed word.
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <string>

#include "events/key_hash.hpp"

namespace {

// `n` bytes of `s` from `at`, copied into a zeroed word.
uint64_t copied_word(std::string_view s, size_t at, size_t n) {
  uint64_t w = 0;
  std::memcpy(&w, s.data() + at, n);
  return w;
}

// key_hash as it was: every word, the last one short, copied into a zeroed word.
uint64_t copied_hash(std::string_view s) {
  using namespace omniroute::events;
  uint64_t h = hash_start();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) h = hash_word(h, copied_word(s, i, 8));
  return hash_finish(hash_word(h, copied_word(s, i, s.size() - i) ^ (uint64_t(s.size()) << 56)));
}

}  // namespace

TEST_CASE("key_hash folds every byte of keys of any length, as a copy into a zeroed word would") {
  std::mt19937 rng(3);
  for (size_t n = 0; n <= 40; ++n) {
    for (int round = 0; round < 50; ++round) {
      std::string s(n, '\0');
      for (char& c : s) c = static_cast<char>(rng());
      CAPTURE(n);
      REQUIRE(omniroute::events::key_hash(s) == copied_hash(s));
      // A change to any one byte changes the word it is read in.
      for (size_t at = 0; at < n; ++at) {
        std::string t = s;
        t[at] = static_cast<char>(t[at] ^ 0x5a);
        REQUIRE(omniroute::events::key_hash(t) == copied_hash(t));
        REQUIRE(omniroute::events::key_hash(t) != omniroute::events::key_hash(s));
      }
    }
  }
}
