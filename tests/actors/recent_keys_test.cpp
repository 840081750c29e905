// The partition host's recent idempotency keys: a set held by generation.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <string>

#include "actors/recent_keys.hpp"

using omniroute::actors::RecentKeys;

TEST_CASE("recent keys: a key is new once, in any generation, until its generation is dropped") {
  RecentKeys keys;
  CHECK(keys.insert("t1", "e1"));
  CHECK_FALSE(keys.insert("t1", "e1"));
  CHECK(keys.insert("t2", "e1"));  // the same id in another tenant is another key
  // The same bytes split otherwise are another key too.
  CHECK(keys.insert("ab", "c"));
  CHECK(keys.insert("a", "bc"));
  CHECK(keys.open_keys() == 4);
  CHECK(keys.closed_generations() == 0);

  keys.close(10);
  CHECK(keys.closed_generations() == 1);
  CHECK(keys.closed_keys() == 4);
  keys.close(11);  // nothing new: no empty generation
  CHECK(keys.closed_generations() == 1);
  CHECK_FALSE(keys.insert("t1", "e1"));  // held by a closed generation
  CHECK(keys.insert("t1", "e2"));
  keys.close(12);
  CHECK(keys.insert("t1", "e3"));  // the open generation

  CHECK(keys.drop_oldest() == 10);
  CHECK_FALSE(keys.contains("t1", "e1"));
  CHECK_FALSE(keys.contains("ab", "c"));
  CHECK(keys.contains("t1", "e2"));
  CHECK(keys.contains("t1", "e3"));
  CHECK(keys.size() == 2);
  CHECK(keys.insert("t1", "e1"));  // new again

  CHECK(keys.drop_oldest() == 12);
  CHECK_THROWS_AS(keys.drop_oldest(), std::logic_error);  // the open one is never dropped
  CHECK(keys.contains("t1", "e3"));
  CHECK(keys.contains("t1", "e1"));

  keys.clear();
  CHECK(keys.size() == 0);
  CHECK_FALSE(keys.contains("t1", "e3"));
  CHECK(keys.insert("t1", "e3"));
}

TEST_CASE("recent keys: agree with a plain set through growth, reuse of dropped slots and rebuilds") {
  // A partition host's life in miniature: keys arrive (some repeated), a projection closes a
  // generation every so often, and the oldest go while more than `limit` are held. Every answer
  // is checked against a std::set kept alongside; enough keys pass that the table grows,
  // reuses the slots of dropped keys and is rebuilt many times.
  RecentKeys keys;
  std::map<std::string, int> generation_of;  // reference: key -> generation
  std::set<std::pair<int, std::string>> by_generation;
  std::mt19937_64 rng(7);
  int open = 0, oldest = 0;
  uint64_t stamp = 0;
  const size_t limit = 3000;
  size_t rebuilt_checks = 0;
  for (int step = 0; step < 200000; ++step) {
    const std::string tenant = "tenant" + std::to_string(rng() % 5);
    // Mostly new ids, some repeats of recent ones, some of long-dropped ones.
    const uint64_t r = rng() % 100;
    const uint64_t any = rng() % (step + 1), recent = step - rng() % std::min(step + 1, 2000);
    const uint64_t n = r < 80 ? static_cast<uint64_t>(step) : r < 95 ? recent : any;
    const std::string id = "e" + std::to_string(n);
    const std::string key = tenant + '\0' + id;
    const bool held = generation_of.count(key) > 0;
    REQUIRE(keys.contains(tenant, id) == held);
    REQUIRE(keys.insert(tenant, id) == !held);
    if (!held) {
      generation_of[key] = open;
      by_generation.emplace(open, key);
    }
    if (rng() % 500 == 0) {  // a projection
      const size_t before = keys.closed_generations();
      keys.close(++stamp);
      if (keys.closed_generations() > before) ++open;
      while (keys.closed_keys() > limit && keys.closed_generations() > 1) {
        keys.drop_oldest();
        while (!by_generation.empty() && by_generation.begin()->first == oldest) {
          generation_of.erase(by_generation.begin()->second);
          by_generation.erase(by_generation.begin());
        }
        ++oldest;
      }
      REQUIRE(keys.size() == generation_of.size());
      ++rebuilt_checks;
    }
  }
  CHECK(rebuilt_checks > 300);
  // Every key ever inserted answers as the reference does.
  for (int n = 0; n < 200000; n += 7)
    for (int t = 0; t < 5; ++t) {
      const std::string tenant = "tenant" + std::to_string(t), id = "e" + std::to_string(n);
      CHECK(keys.contains(tenant, id) == (generation_of.count(tenant + '\0' + id) > 0));
    }
}
