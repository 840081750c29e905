// fetching_ahead changes no result: every item is used once, in order, and each item's fetch
// stages come in order before it is used, a stage reading what the one before fetched.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "events/prefetch.hpp"

using omniroute::events::fetching_ahead;

TEST_CASE("fetching_ahead uses every item once, in order, after all its stages in order") {
  for (size_t n : {0, 1, 2, 5, 9, 40}) {
    CAPTURE(n);
    std::vector<int> items;
    for (size_t i = 0; i < n; ++i) items.push_back(static_cast<int>(i) * 10);
    std::vector<std::string> calls;
    fetching_ahead<3>(
        items, [&](int item, int stage) { calls.push_back("fetch " + std::to_string(item) + " " + std::to_string(stage)); },
        [&](int item) { calls.push_back("use " + std::to_string(item)); });
    std::vector<int> used;
    for (size_t k = 0; k < calls.size(); ++k) {
      const bool use = calls[k].rfind("use ", 0) == 0;
      const int item = std::stoi(calls[k].substr(use ? 4 : 6));
      if (use) {
        used.push_back(item);
        continue;
      }
      const int stage = std::stoi(calls[k].substr(calls[k].rfind(' ') + 1));
      // Stage s of an item comes after its stage s - 1 and before it is used.
      const auto earlier = std::vector<std::string>(calls.begin(), calls.begin() + static_cast<std::ptrdiff_t>(k));
      for (int s = 0; s < stage; ++s)
        CHECK(std::count(earlier.begin(), earlier.end(), "fetch " + std::to_string(item) + " " + std::to_string(s)) == 1);
      CHECK(std::count(earlier.begin(), earlier.end(), "use " + std::to_string(item)) == 0);
    }
    CHECK(used == items);
    CHECK(calls.size() == 4 * n);  // three stages and a use each
  }
}
