// Members packed into one string, for state that memory keeps but seldom reads (a closed
// conversation, a closed visit of a customer's journey): integers as base-128 varints (signed
// ones zigzagged), texts as their length and bytes. The packer writes through a pointer into
// room its caller sized first for the most the members can take: appended to a string byte by
// byte, packing a conversation was 2,000 instructions (callgrind), most in the string's calls.
// The appender writes the same into a string that grows, for a whole partition's state written
// once in a while (actors/snapshot.hpp), where sizing it first is not worth the code.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "events/json.hpp"

namespace omniroute::events {

struct Packer {
  static constexpr size_t varint_max = 10;  // bytes a 64-bit varint takes at most
  char* at;                                 // into room the caller sized for what is written
  void varint(uint64_t v) {
    for (; v >= 0x80; v >>= 7) *at++ = static_cast<char>(v | 0x80);
    *at++ = static_cast<char>(v);
  }
  void integer(int64_t v) {
    varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  void bytes(const void* p, size_t n) {
    if (n == 0) return;  // p may be null then (an empty vector's data), which memcpy may not see
    std::memcpy(at, p, n);
    at += n;
  }
  void text(std::string_view s) {
    varint(s.size());
    bytes(s.data(), s.size());
  }
};

// What `write(Packer&)` packs, given `room`, the most it can write: written into this thread's
// buffer, then copied once at its length.
template <typename Write>
std::string packed(size_t room, Write&& write) {
  thread_local std::string buffer;
  if (buffer.size() < room) buffer.resize(room);
  Packer p{buffer.data()};
  write(p);
  return std::string(buffer.data(), static_cast<size_t>(p.at - buffer.data()));
}

// Writes what Packer writes, and more kinds (a double to the bit, a flag, a JSON value as
// MessagePack: every value back as it was), growing `out` as it goes.
struct Appender {
  std::string out;
  void varint(uint64_t v) {
    char room[Packer::varint_max];
    Packer p{room};
    p.varint(v);
    out.append(room, static_cast<size_t>(p.at - room));
  }
  void integer(int64_t v) {
    varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  void text(std::string_view s) {
    varint(s.size());
    out.append(s);
  }
  void real(double d) { out.append(reinterpret_cast<const char*>(&d), sizeof d); }
  void flag(bool b) { out.push_back(b ? '\1' : '\0'); }
  void document(const json& j) {
    const std::vector<uint8_t> bytes = json::to_msgpack(j);
    text(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }
};

// Reads what a Packer or an Appender wrote; a read past the end throws std::out_of_range (a
// bug, or a damaged snapshot).
struct Unpacker {
  std::string_view in;
  size_t at = 0;
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      if (shift > 63) throw std::out_of_range("packed varint too long");
      const auto byte = static_cast<unsigned char>(in.at(at++));
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (byte < 0x80) return v;
    }
  }
  int64_t integer() {
    const uint64_t u = varint();
    return static_cast<int64_t>(u >> 1) ^ -static_cast<int64_t>(u & 1);
  }
  // The next n bytes.
  std::string_view bytes(size_t n) {
    if (n > in.size() - at) throw std::out_of_range("packed members cut short");
    std::string_view s = in.substr(at, n);
    at += n;
    return s;
  }
  std::string_view text() { return bytes(varint()); }
  // A count of members, each of which takes at least a byte: one larger than the bytes left is
  // refused before anything is sized by it (a damaged count asked for gigabytes: fuzzing).
  size_t count() {
    const uint64_t n = varint();
    if (n > in.size() - at) throw std::out_of_range("packed count larger than what is left");
    return static_cast<size_t>(n);
  }
  double real() {
    double d;
    std::memcpy(&d, bytes(sizeof d).data(), sizeof d);
    return d;
  }
  bool flag() { return bytes(1)[0] != 0; }
  json document() {
    const std::string_view b = text();
    return json::from_msgpack(b.begin(), b.end());
  }
  bool done() const { return at == in.size(); }
};

// A hash table's members (key and value) in key order: for bytes that must not depend on the
// table's layout (a snapshot's). IdMap::in_id_order does the same for entities by id.
template <typename Map>
std::vector<const typename Map::value_type*> in_key_order(const Map& table) {
  std::vector<const typename Map::value_type*> members;
  members.reserve(table.size());
  for (const auto& m : table) members.push_back(&m);
  std::sort(members.begin(), members.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  return members;
}

// A container's size, then each member as `each` writes it; read back with for_count.
template <typename C, typename Each>
void each_of(Appender& out, const C& c, Each&& each) {
  out.varint(c.size());
  for (const auto& member : c) each(member);
}
// Calls `one` as many times as the count read first says.
template <typename One>
void for_count(Unpacker& in, One&& one) {
  for (size_t n = in.count(); n > 0; --n) one();
}

}  // namespace omniroute::events
