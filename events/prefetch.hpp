// Asking the CPU to fetch memory into its cache ahead of its use, so that the cache misses of
// several lookups overlap instead of following one another. A hint: it changes no result.
#pragma once

#include <cstddef>

namespace omniroute::events {

// Every cache line of the `n` bytes at `p`.
inline void prefetch_bytes(const void* p, size_t n) {
  const char* at = static_cast<const char*>(p);
  for (size_t i = 0; i < n; i += 64) __builtin_prefetch(at + i);
  if (n > 0) __builtin_prefetch(at + n - 1);
}

// Reads the byte at `p` now, which brings its cache line in as a load does, for where a prefetch
// (above) was measured not to help: a visit's detail, prefetched two to four visits ahead,
// missed in Visit::write as often as with no prefetch at all; read with this instead,
// Visit::write fell from 2.8% to 1.1-1.3% of all samples. Why those prefetches did not land was
// not found (the machine has no hardware counters), and at the other prefetch stages a load
// gained nothing. The load costs a wait, not a result: the value goes nowhere.
inline void load_line(const void* p) {
  const char byte = *static_cast<const volatile char*>(p);
  asm volatile("" : : "r"(byte));
}

// Goes over `items` in order, calling `use(item)` on each; `fetch(item, stage)` for stages 0 to
// Stages - 1 is called on the items ahead, each stage two items after the one before it, the
// last two items before `use`. A stage may then read what the stage before it fetched (a slot
// of a table, then the entity the slot points to, then the lists the entity points to).
template <int Stages, typename Items, typename Fetch, typename Use>
void fetching_ahead(const Items& items, Fetch&& fetch, Use&& use) {
  constexpr std::ptrdiff_t step = 2;
  const auto n = static_cast<std::ptrdiff_t>(items.size());
  for (std::ptrdiff_t i = -Stages * step; i < n; ++i) {
    for (int stage = 0; stage < Stages; ++stage) {
      const std::ptrdiff_t j = i + (Stages - stage) * step;
      if (j >= 0 && j < n) fetch(items[static_cast<size_t>(j)], stage);
    }
    if (i >= 0) use(items[static_cast<size_t>(i)]);
  }
}

}  // namespace omniroute::events
