#include "actors/recent_keys.hpp"

#include <cstring>
#include <stdexcept>

#include "events/key_hash.hpp"

namespace omniroute::actors {
namespace {

constexpr uint32_t empty_slot = UINT32_MAX;  // Slot::at of a slot never used
constexpr size_t min_capacity = 1024;

size_t capacity_for(size_t keys) {
  size_t c = min_capacity;
  while (c < keys * 3) c *= 2;
  return c;
}

}  // namespace

RecentKeys::RecentKeys() { clear(); }

uint64_t RecentKeys::hash_of(std::string_view tenant, std::string_view id) {
  return events::key_hash(tenant, id);
}

bool RecentKeys::equal(const Slot& s, std::string_view tenant, std::string_view id) const {
  const std::string& bytes = generations_[uint32_t(s.gen - first_gen_)].bytes;
  uint32_t size;
  std::memcpy(&size, bytes.data() + s.at, 4);
  const char* key = bytes.data() + s.at + 4;
  return size == tenant.size() + 1 + id.size() && std::memcmp(key, tenant.data(), tenant.size()) == 0 &&
         key[tenant.size()] == '\0' && std::memcmp(key + tenant.size() + 1, id.data(), id.size()) == 0;
}

size_t RecentKeys::probe(uint64_t h, std::string_view tenant, std::string_view id, size_t* dead) const {
  if (dead) *dead = SIZE_MAX;
  for (size_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.at == empty_slot) return i;
    if (!live(s.gen)) {
      if (dead && *dead == SIZE_MAX) *dead = i;
    } else if (s.hash == h && equal(s, tenant, id)) {
      return i;
    }
  }
}

bool RecentKeys::contains(std::string_view tenant, std::string_view id) const {
  return slots_[probe(hash_of(tenant, id), tenant, id)].at != empty_slot;
}

bool RecentKeys::insert(std::string_view tenant, std::string_view id) {
  const uint64_t h = hash_of(tenant, id);
  size_t reuse;
  const size_t i = probe(h, tenant, id, &reuse);
  if (slots_[i].at != empty_slot) return false;
  Generation& open = generations_.back();
  const uint32_t size = static_cast<uint32_t>(tenant.size() + 1 + id.size());
  const uint32_t at = static_cast<uint32_t>(open.bytes.size());
  open.bytes.append(reinterpret_cast<const char*>(&size), 4);
  open.bytes.append(tenant).push_back('\0');
  open.bytes.append(id);
  ++open.count;
  ++live_;
  if (reuse == SIZE_MAX) {
    reuse = i;
    ++used_;
  }
  slots_[reuse] = Slot{h, uint32_t(first_gen_ + generations_.size() - 1), at};
  // Rebuilt when half the slots are used, and at least every capacity inserts: a dead slot's
  // generation number is then never old enough to wrap around into the live ones.
  if (used_ * 2 > slots_.size() || ++inserts_since_rebuild_ > slots_.size()) rebuild(capacity_for(live_));
  return true;
}

void RecentKeys::rebuild(size_t capacity) {
  std::vector<Slot> old(capacity, Slot{0, 0, empty_slot});
  old.swap(slots_);
  mask_ = capacity - 1;
  used_ = 0;
  inserts_since_rebuild_ = 0;
  for (const Slot& s : old) {
    if (s.at == empty_slot || !live(s.gen)) continue;
    size_t i = s.hash & mask_;
    while (slots_[i].at != empty_slot) i = (i + 1) & mask_;
    slots_[i] = s;
    ++used_;
  }
}

void RecentKeys::close(uint64_t stamp) {
  if (generations_.back().count == 0) return;
  generations_.back().stamp = stamp;
  generations_.emplace_back();
}

uint64_t RecentKeys::drop_oldest() {
  if (generations_.size() < 2) throw std::logic_error("RecentKeys::drop_oldest: no closed generation");
  const uint64_t stamp = generations_.front().stamp;
  live_ -= generations_.front().count;
  generations_.pop_front();
  ++first_gen_;
  return stamp;
}

void RecentKeys::clear() {
  slots_.assign(min_capacity, Slot{0, 0, empty_slot});
  mask_ = min_capacity - 1;
  used_ = live_ = inserts_since_rebuild_ = 0;
  generations_.clear();
  generations_.emplace_back();
}

}  // namespace omniroute::actors
