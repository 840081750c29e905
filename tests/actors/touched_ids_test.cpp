// TouchedIds: each entity once per round, in the order added; a new round after each take.
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "actors/touched_ids.hpp"

using omniroute::TouchedIds;

TEST_CASE("touched ids: an entity is added once per round; take keeps their order and starts a new round") {
  TouchedIds<std::string> touched;
  uint64_t b = 0, a = 0, c = 0;
  CHECK(touched.empty());
  touched.add(b, "b");
  touched.add(a, "a");
  touched.add(b, "b");
  touched.add(c, "c");
  touched.add(a, "a");
  CHECK(touched.holds(a));
  CHECK(touched.take() == std::vector<std::string>{"b", "a", "c"});
  // A new round: nothing held, and an entity added before is added again.
  CHECK_FALSE(touched.holds(a));
  CHECK(touched.empty());
  touched.add(c, "c");
  touched.add(c, "c");
  CHECK(touched.holds(c));
  CHECK_FALSE(touched.holds(b));
  CHECK(touched.take() == std::vector<std::string>{"c"});
  CHECK(touched.take().empty());
}

TEST_CASE("touched ids: an entity dropped and made again in one round is listed again") {
  TouchedIds<std::pair<std::string, std::string>> touched;
  uint64_t first = 0;
  touched.add(first, "u-1", "c-1");
  uint64_t again = 0;  // the same key, a new entity (its mark starts at 0)
  touched.add(again, "u-1", "c-1");
  uint64_t other = 0;
  touched.add(other, "u-0", "c-9");
  using visit = std::pair<std::string, std::string>;
  CHECK(touched.take() == std::vector<visit>{{"u-1", "c-1"}, {"u-1", "c-1"}, {"u-0", "c-9"}});
}
