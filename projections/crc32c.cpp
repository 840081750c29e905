#include "projections/crc32c.hpp"

#include <dlfcn.h>
#include <nmmintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace {

using extend_fn = uint32_t (*)(uint32_t, const char*, size_t);

// RocksDB's own crc32c::Extend: the next definition after this executable's.
extend_fn rocksdb_extend() {
  static const extend_fn next =
      reinterpret_cast<extend_fn>(dlsym(RTLD_NEXT, "_ZN7rocksdb6crc32c6ExtendEjPKcm"));
  return next;
}

// CRC-32C (Castagnoli, reflected, 0x82F63B78) continued from `crc`, as RocksDB's Extend:
// the register inverted on the way in and out. Eight bytes an instruction once aligned.
__attribute__((target("sse4.2"))) uint32_t extend_sse42(uint32_t crc, const char* data, size_t n) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  uint64_t l = crc ^ 0xffffffffu;
  for (; n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0; --n) l = _mm_crc32_u8(static_cast<uint32_t>(l), *p++);
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    l = _mm_crc32_u64(l, word);
  }
  for (; n > 0; --n) l = _mm_crc32_u8(static_cast<uint32_t>(l), *p++);
  return static_cast<uint32_t>(l) ^ 0xffffffffu;
}

// Bit by bit, from the definition: the reference the others are checked against.
uint32_t extend_reference(uint32_t crc, const char* data, size_t n) {
  uint32_t l = crc ^ 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    l ^= static_cast<unsigned char>(data[i]);
    for (int bit = 0; bit < 8; ++bit) l = (l >> 1) ^ (0x82F63B78u & (0u - (l & 1u)));
  }
  return l ^ 0xffffffffu;
}

// Whether `f` agrees with the reference (and with RocksDB's own, when found) on the standard
// check value, on every length up to 40 at every alignment (each path of extend_sse42 alone
// and together), and on a few long ones; each also continued from its first half.
bool agrees(extend_fn f) {
  if (f(0, "123456789", 9) != 0xE3069283u) return false;
  std::vector<char> bytes(4096 + 8);
  std::mt19937 random(20261205);
  for (auto& b : bytes) b = static_cast<char>(random());
  const extend_fn own = rocksdb_extend();
  auto same = [&](const char* p, size_t n) {
    const uint32_t seed = static_cast<uint32_t>(n * 2654435761u);
    const uint32_t want = extend_reference(seed, p, n);
    return f(seed, p, n) == want && (!own || own(seed, p, n) == want) &&
           f(f(seed, p, n / 2), p + n / 2, n - n / 2) == want;
  };
  for (size_t offset = 0; offset < 8; ++offset) {
    for (size_t n = 0; n <= 40; ++n)
      if (!same(bytes.data() + offset, n)) return false;
    for (size_t n : {size_t{255}, size_t{1000}, size_t{4096}})
      if (!same(bytes.data() + offset, n)) return false;
  }
  return true;
}

struct Choice {
  extend_fn fn;
  const char* name;
};

const Choice& chosen() {
  static const Choice c = [] {
    __builtin_cpu_init();  // in case this runs before libgcc's constructor that does it
    if (__builtin_cpu_supports("sse4.2") && agrees(extend_sse42)) return Choice{extend_sse42, "sse4.2"};
    if (rocksdb_extend()) return Choice{rocksdb_extend(), "rocksdb"};
    return Choice{extend_reference, "reference"};  // no SSE4.2 and RocksDB's own not found
  }();
  return c;
}

}  // namespace

// The definition RocksDB's calls bind to (declared in RocksDB's util/crc32c.h, not a public
// header): the same signature and result.
namespace rocksdb::crc32c {
uint32_t Extend(uint32_t crc, const char* data, size_t n);
uint32_t Extend(uint32_t crc, const char* data, size_t n) { return chosen().fn(crc, data, n); }
}  // namespace rocksdb::crc32c

namespace omniroute::projections {

std::string_view rocksdb_crc32c() { return chosen().name; }

}  // namespace omniroute::projections
