// Big-endian integer encoding for keys and records: big-endian keys sort in numeric order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace omniroute::events {

inline void put_be(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}

// Overwrites the `bytes` bytes at `pos` (already in `out`) with v.
inline void set_be(std::string& out, size_t pos, uint64_t v, int bytes) {
  // Through a pointer taken once: a char written through out[] may alias the string's own
  // pointer, which the compiler then reloads for every byte.
  char* p = out.data() + pos;
  for (int i = bytes - 1; i >= 0; --i, v >>= 8) p[i] = static_cast<char>(v & 0xff);
}

// Reads `bytes` bytes at `pos`; the caller has checked the size.
inline uint64_t get_be(std::string_view in, size_t pos, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(in[pos + i]);
  return v;
}

}  // namespace omniroute::events
