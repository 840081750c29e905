// The routing state's map of entities by id (events/id_map.hpp).
#include "events/id_map.hpp"

#include <doctest/doctest.h>

#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <string>

using omniroute::IdMap;

namespace {

struct Entity {
  std::string id;
  int value = 0;
};

// The map holds exactly the model's ids among prefix0 .. prefix<ids-1>, with the model's values,
// each entity where it was when last held (an entity does not move while it is held).
void check_against(const IdMap<Entity>& m, const std::map<std::string, int>& model,
                   std::map<std::string, const Entity*>& where, const std::string& prefix, int ids) {
  REQUIRE(m.size() == model.size());
  for (int k = 0; k < ids; ++k) {
    const std::string key = prefix + std::to_string(k);
    const Entity* e = m.find(key);
    auto it = model.find(key);
    REQUIRE((e != nullptr) == (it != model.end()));
    if (e) {
      CHECK(e->id == key);
      CHECK(e->value == it->second);
      CHECK(where[key] == e);
    }
  }
}

}  // namespace

TEST_CASE("id map: an entity is made once, found by its id, and gone once erased") {
  IdMap<Entity> m;
  CHECK(m.find("a") == nullptr);
  CHECK_FALSE(m.erase("a"));
  Entity& a = m["a"];
  CHECK(a.id == "a");
  a.value = 7;
  CHECK(&m["a"] == &a);  // made once
  CHECK(m.size() == 1);
  REQUIRE(m.find("a") != nullptr);
  CHECK(m.find("a")->value == 7);
  CHECK(m.at("a").value == 7);
  CHECK_THROWS_AS(m.at("b"), std::out_of_range);
  CHECK(m.erase("a"));
  CHECK(m.find("a") == nullptr);
  CHECK(m.empty());
  CHECK(m["a"].value == 0);  // made again, new
}

TEST_CASE("id map: against std::map, through growth, long runs and erases in every order") {
  // Many ids for tables that start at 16 slots: runs of colliding slots that wrap around the
  // table's end, each erase shifting what follows it back.
  std::mt19937 rng(20261206);
  IdMap<Entity> m;
  std::map<std::string, int> model;
  std::map<std::string, const Entity*> where;  // an entity does not move while it is held
  for (int round = 0; round < 20000; ++round) {
    const std::string id = "c" + std::to_string(rng() % 600);
    if (rng() % 3 == 0) {
      CHECK(m.erase(id) == (model.erase(id) == 1));
      where.erase(id);
    } else {
      Entity& e = m[id];
      if (where.count(id)) CHECK(where[id] == &e);
      where[id] = &e;
      e.value = round;
      model[id] = round;
    }
    if (round % 97 == 0 || round > 19900) check_against(m, model, where, "c", 600);
  }
}

TEST_CASE("id map: erase_if visits every entity once and erases those it says") {
  std::mt19937 rng(6122026);
  IdMap<Entity> m;
  std::map<std::string, int> model;
  std::map<std::string, const Entity*> where;
  for (int round = 0; round < 40; ++round) {
    for (int k = 0; k < 50; ++k) {
      const std::string id = "e" + std::to_string(rng() % 400);
      Entity& e = m[id];
      e.value = static_cast<int>(rng() % 1000);
      model[id] = e.value;
      where[id] = &e;
    }
    // Each entity once: its value changed, and those with an odd value erased.
    std::map<std::string, int> visits;
    m.erase_if([&](Entity& e) {
      ++visits[e.id];
      e.value += 1;
      return e.value % 2 == 1;
    });
    REQUIRE(visits.size() == model.size());
    for (const auto& [id, n] : visits) CHECK(n == 1);
    for (auto it = model.begin(); it != model.end();) {
      it->second += 1;
      if (it->second % 2 == 1) {
        where.erase(it->first);
        it = model.erase(it);
      } else {
        ++it;
      }
    }
    check_against(m, model, where, "e", 400);  // what stays does not move
    // Still usable: erased ids made again, others found.
    if (!model.empty()) CHECK(m.erase(model.begin()->first));
    if (!model.empty()) {
      where.erase(model.begin()->first);
      model.erase(model.begin());
    }
  }
  // A call that throws erases nothing.
  const size_t before = m.size();
  int calls = 0;
  CHECK_THROWS_AS(m.erase_if([&](Entity&) -> bool {
    if (++calls == 3) throw std::runtime_error("stop");
    return true;
  }), std::runtime_error);
  CHECK(m.size() == before);
  for (const auto& [id, value] : model) CHECK(m.find(id) != nullptr);
}

TEST_CASE("id map: a copy owns copies of the entities") {
  IdMap<Entity> m;
  for (int i = 0; i < 100; ++i) m["e" + std::to_string(i)].value = i;
  IdMap<Entity> copy = m;
  copy["e1"].value = -1;
  copy.erase("e2");
  CHECK(m.at("e1").value == 1);
  CHECK(m.find("e2") != nullptr);
  CHECK(copy.find("e2") == nullptr);
  CHECK(&copy.at("e3") != &m.at("e3"));
  CHECK(copy.at("e3").value == 3);
  IdMap<Entity> moved = std::move(copy);
  CHECK(moved.size() == 99);
  CHECK(moved.at("e1").value == -1);
  // What was moved from is empty, and usable.
  CHECK(copy.empty());
  CHECK(copy.find("e1") == nullptr);
  copy["e1"].value = 5;
  CHECK(copy.at("e1").value == 5);
  CHECK(moved.at("e1").value == -1);
}

TEST_CASE("id map: in id order lists every entity once, ordered as std::string orders the ids") {
  std::mt19937 rng(5);
  // Ids that share their first eight bytes, or their first 30 (sorted eight bytes at a time,
  // then whole), or are shorter than eight, with bytes of every value (as unsigned, past 0x7f,
  // and zero), and the empty id.
  const std::string alphabet = std::string("ab\x7f\x80\xff", 5) + std::string(1, '\0');
  IdMap<Entity> m;
  std::set<std::string> ids;
  for (int i = 0; i < 4000; ++i) {
    std::string id = i % 4 == 0 ? "conversa" : i % 4 == 1 ? "conversation-2026-12-07-000000" : "";
    for (size_t n = rng() % 12; n > 0; --n) id += alphabet[rng() % alphabet.size()];
    ids.insert(id);
    m[id].value = i;
  }
  const auto listed = m.in_id_order();
  REQUIRE(listed.size() == ids.size());
  auto it = ids.begin();
  for (const Entity* e : listed) CHECK(e->id == *it++);
}
