// Ring: the same sequence as a vector under the same operations, each element constructed and
// destroyed exactly once, wherever the ring wraps.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "events/ring.hpp"

using omniroute::Ring;

namespace {

// A value that counts the live objects holding one (moved-from ones hold none).
struct Counted {
  static inline int live = 0;
  std::string text;  // long enough to live on the heap: a bad move or a double destroy shows
  bool holds = false;
  explicit Counted(std::string t) : text(std::move(t)), holds(true) { ++live; }
  Counted(Counted&& o) noexcept : text(std::move(o.text)), holds(std::exchange(o.holds, false)) {}
  Counted& operator=(Counted&& o) noexcept {
    if (holds) --live;
    text = std::move(o.text);
    holds = std::exchange(o.holds, false);
    return *this;
  }
  ~Counted() {
    if (holds) --live;
  }
};

std::vector<std::string> texts_of(const Ring<Counted>& ring) {
  std::vector<std::string> out;
  for (const auto& c : ring) out.push_back(c.text);
  return out;
}

}  // namespace

TEST_CASE("ring: the same sequence as a vector under the same operations, nothing leaked") {
  std::mt19937 rng(7);
  int made = 0;
  {
    Ring<Counted> ring;
    std::vector<std::string> model;
    for (int step = 0; step < 20000; ++step) {
      const int op = static_cast<int>(rng() % 10);
      if (op < 5 || model.empty()) {
        std::string t = "visit-" + std::to_string(made++) + std::string(24, 'x');
        model.push_back(t);
        ring.push_back(Counted(t));
      } else if (op < 7) {
        const size_t n = rng() % 3;
        ring.erase_front(n);
        model.erase(model.begin(), model.begin() + static_cast<std::ptrdiff_t>(std::min(n, model.size())));
      } else if (op < 9) {
        const size_t i = rng() % model.size();
        auto next = ring.erase(ring.begin() + static_cast<std::ptrdiff_t>(i));
        model.erase(model.begin() + static_cast<std::ptrdiff_t>(i));
        CHECK(next.index() == i);  // the element that followed, now at i
        if (i < model.size()) CHECK(next->text == model[i]);
      } else {
        ring.reserve(ring.size() + rng() % 8);
      }
      // Kept short, so that it wraps around its room again and again.
      while (model.size() > 24) {
        ring.erase_front(1);
        model.erase(model.begin());
      }
      REQUIRE(ring.size() == model.size());
      REQUIRE(Counted::live == static_cast<int>(model.size()));
      REQUIRE(ring.capacity() >= ring.size());
      REQUIRE(texts_of(ring) == model);
      if (!model.empty()) {
        CHECK(ring.front().text == model.front());
        CHECK(ring.back().text == model.back());
        const size_t k = rng() % model.size();
        CHECK(ring[k].text == model[k]);
      }
      std::vector<std::string> backwards;
      for (auto it = ring.rbegin(); it != ring.rend(); ++it) backwards.push_back(it->text);
      REQUIRE(std::equal(backwards.begin(), backwards.end(), model.rbegin(), model.rend()));
    }
    // Moved whole, the ring's elements go with it and the source is empty.
    Ring<Counted> moved(std::move(ring));
    CHECK(ring.empty());
    CHECK(texts_of(moved) == model);
    Ring<Counted> assigned;
    assigned.push_back(Counted("replaced"));
    assigned = std::move(moved);
    CHECK(texts_of(assigned) == model);
    CHECK(Counted::live == static_cast<int>(model.size()));
  }
  CHECK(Counted::live == 0);
}

TEST_CASE("ring: dropping the first element moves no other") {
  Ring<Counted> ring;
  ring.reserve(4);
  for (int i = 0; i < 4; ++i) ring.push_back(Counted("v" + std::to_string(i)));
  const Counted* second = &ring[1];
  const Counted* last = &ring.back();
  ring.erase(ring.begin());
  CHECK(&ring.front() == second);
  CHECK(&ring.back() == last);
  // The room freed at the front takes the next element, wrapping: nothing moves, nothing grows.
  ring.push_back(Counted("v4"));
  CHECK(ring.capacity() == 4);
  CHECK(&ring.front() == second);
  CHECK(texts_of(ring) == std::vector<std::string>{"v1", "v2", "v3", "v4"});
  // An element near the end is erased by moving those after it; near the start, those before.
  const Counted* first = &ring.front();
  ring.erase(ring.begin() + 2);
  CHECK(&ring.front() == first);
  CHECK(texts_of(ring) == std::vector<std::string>{"v1", "v2", "v4"});
  ring.clear();
  CHECK(ring.empty());
  CHECK(Counted::live == 0);
}
