// omniroute-bench-id-order: the time to list 200,000 conversations in id order, as a snapshot's
// encoding does for each hash table of entities (IdMap::in_id_order), with short ids (`c` and a
// number) and with ids that share a long prefix (`conversation-2026-12-07-` and a number), as
// platforms often name them. The baseline in the same run sorts the entities' pointers by
// their ids with std::sort (each comparison reads two entities).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "events/id_map.hpp"

using clock_type = std::chrono::steady_clock;

namespace {

struct Entity {
  std::string id;
  char rest[200] = {};  // about a closed conversation's size, so that each is a cache miss
};

template <typename F>
double best_ms(F&& f) {
  double best = 1e9;
  for (int run = 0; run < 5; ++run) {
    const auto t0 = clock_type::now();
    f();
    best =
        std::min(best, std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
  }
  return best;
}

}  // namespace

int main() {
  for (const std::string prefix : {"c", "conversation-2026-12-07-"}) {
    omniroute::IdMap<Entity> m;
    std::mt19937 rng(42);
    for (int i = 0; i < 200000; ++i) m[prefix + std::to_string(rng() % 100000000)];
    size_t listed = 0;
    const double ours = best_ms([&] { listed = m.in_id_order().size(); });
    const double baseline = best_ms([&] {
      std::vector<const Entity*> all;
      m.for_each([&](const Entity& e) { all.push_back(&e); });
      std::sort(all.begin(), all.end(),
                [](const Entity* a, const Entity* b) { return a->id < b->id; });
      listed = all.size();
    });
    std::printf("id order, %zu ids '%s...': %.1f ms (baseline, pointers sorted by id: %.1f ms)\n",
                listed, prefix.c_str(), ours, baseline);
  }
}
