// omniroute's JSON type: nlohmann's basic_json with its objects kept as one sorted vector of
// members instead of a std::map.
//
// Why: the objects omniroute builds and reads for every event are small (an event's data has
// 2-6 members, a decision's 3-8). A std::map allocates a node per member, rebalances on every
// insert, follows pointers on every lookup and frees node by node; perf put the JSON maps'
// tree operations at 6.4% of the ingest benchmark's samples and the trees' destruction at 3.9%.
// Here an object is two allocations whatever its size (json's container and the members'
// buffer, for up to four members), a lookup is a scan of adjacent keys (a binary search past
// 8), and a parse of canonical text (keys already in order) appends.
//
// What stays the same: members are kept in the order std::map<std::string, json, std::less<>>
// keeps them (byte order of the keys), a key is held once, inserting an existing key keeps the
// first value (emplace) or returns it (operator[]), and dump() writes the same bytes. What
// differs: like any vector, an insert or erase moves the members after it, so a reference to a
// member is valid only until the object gains or loses a member (std::map's stay valid).
#pragma once

#include <algorithm>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace omniroute::events {

template <class Key, class T, class IgnoredLess = std::less<>, class IgnoredAllocator = void>
class sorted_map : public std::vector<std::pair<Key, T>> {
 public:
  using Container = std::vector<std::pair<Key, T>>;
  using key_type = Key;
  using mapped_type = T;
  using key_compare = std::less<>;
  using iterator = typename Container::iterator;
  using const_iterator = typename Container::const_iterator;
  using size_type = typename Container::size_type;
  using value_type = typename Container::value_type;

  sorted_map() noexcept = default;
  template <class It>
  sorted_map(It first, It last) {
    insert(first, last);
  }
  sorted_map(std::initializer_list<value_type> init) : sorted_map(init.begin(), init.end()) {}

  template <class K, class... Args>
  std::pair<iterator, bool> emplace(K&& key, Args&&... value) {
    const std::string_view k(key);
    const size_t at = position(k);
    if (at < this->size() && std::string_view(this->data()[at].first) == k)
      return {this->begin() + static_cast<std::ptrdiff_t>(at), false};
    // Most objects have a handful of members: one allocation for the first four.
    if (this->capacity() == 0) this->reserve(4);
    auto it =
        Container::emplace(this->begin() + static_cast<std::ptrdiff_t>(at),
                           std::piecewise_construct, std::forward_as_tuple(std::forward<K>(key)),
                           std::forward_as_tuple(std::forward<Args>(value)...));
    return {it, true};
  }

  template <class K>
  T& operator[](K&& key) {
    return emplace(std::forward<K>(key)).first->second;
  }
  template <class K>
  T& at(const K& key) {
    auto it = find(key);
    if (it == this->end()) throw std::out_of_range("key not found");
    return it->second;
  }
  template <class K>
  const T& at(const K& key) const {
    auto it = find(key);
    if (it == this->end()) throw std::out_of_range("key not found");
    return it->second;
  }

  template <class K>
  iterator find(const K& key) {
    return this->begin() + static_cast<std::ptrdiff_t>(index_of(std::string_view(key)));
  }
  template <class K>
  const_iterator find(const K& key) const {
    return this->begin() + static_cast<std::ptrdiff_t>(index_of(std::string_view(key)));
  }
  template <class K>
  size_type count(const K& key) const {
    return index_of(std::string_view(key)) < this->size() ? 1 : 0;
  }

  using Container::erase;  // by position or range
  template <class K,
            typename = std::enable_if_t<std::is_convertible<const K&, std::string_view>::value>>
  size_type erase(const K& key) {
    auto it = find(key);
    if (it == this->end()) return 0;
    Container::erase(it);
    return 1;
  }

  std::pair<iterator, bool> insert(const value_type& v) { return emplace(v.first, v.second); }
  std::pair<iterator, bool> insert(value_type&& v) {
    return emplace(std::move(v.first), std::move(v.second));
  }
  template <class It, typename = typename std::iterator_traits<It>::iterator_category>
  void insert(It first, It last) {  // from any map's members, without converting each pair
    for (; first != last; ++first) emplace(first->first, first->second);
  }

 private:
  // The index of `k`'s member, or size() when there is none.
  size_t index_of(std::string_view k) const {
    const size_t n = this->size();
    if (n <= 8) {
      for (size_t i = 0; i < n; ++i)
        if (std::string_view(this->data()[i].first) == k) return i;
      return n;
    }
    const size_t at = position(k);
    return at < n && std::string_view(this->data()[at].first) == k ? at : n;
  }
  // Where `k` is or would go: the first member whose key is not less than k. A key past the
  // last (the next key of canonical text) is found without a search.
  size_t position(std::string_view k) const {
    const size_t n = this->size();
    if (n == 0 || std::string_view(this->back().first) < k) return n;
    auto it = std::lower_bound(
        this->begin(), this->end(), k,
        [](const value_type& m, std::string_view key) { return std::string_view(m.first) < key; });
    return static_cast<size_t>(it - this->begin());
  }
};

using json = nlohmann::basic_json<sorted_map>;

namespace detail {
inline void add_members(json::object_t&) {}
template <typename V, typename... Rest>
void add_members(json::object_t& members, std::string_view key, V&& value, Rest&&... rest) {
  members.emplace(key, std::forward<V>(value));
  add_members(members, std::forward<Rest>(rest)...);
}
}  // namespace detail

// An object of the members given as key, value, key, value...: object_of("conversation", id,
// "queue", q). Each value goes straight into its member. A json initializer list builds an
// array of each pair first, then copies key and value out of it. Keys in order append without
// a search.
template <typename... KeysAndValues>
json object_of(KeysAndValues&&... members) {
  static_assert(sizeof...(KeysAndValues) % 2 == 0, "object_of takes keys and values in pairs");
  json o(json::value_t::object);
  auto& m = o.get_ref<json::object_t&>();
  m.reserve(sizeof...(KeysAndValues) / 2);
  detail::add_members(m, std::forward<KeysAndValues>(members)...);
  return o;
}

// Destroys what `j` contains, depth first, leaving it a scalar or an empty container, so that
// its destructor has nothing left to do. nlohmann's destructor takes an object or array apart
// through a heap-allocated stack of its members, even a flat object of two strings: an
// allocation and a move of every member. That was 9.4% of a partition host's instructions
// (callgrind), every fact's and decision's data being a tree. Recursion is as deep as the
// tree, which the front door bounds (max_json_depth) and omniroute's own trees stay within.
inline void dismantle(json& j) noexcept {
  if (j.is_object()) {
    auto& members = j.get_ref<json::object_t&>();
    for (auto& m : members)
      if (m.second.is_structured()) dismantle(m.second);
    members.clear();
  } else if (j.is_array()) {
    auto& items = j.get_ref<json::array_t&>();
    for (auto& item : items)
      if (item.is_structured()) dismantle(item);
    items.clear();
  }
}

// The member `key` of an object (null when absent, or `j` is not an object), and the string
// member (an empty string when absent or not a string). Straight to the members: json's find()
// wraps what it finds in an iterator object of its own, most of a look-up's cost (callgrind:
// 141 instructions a look-up, 11 look-ups an event in a partition host).
inline const json* member(const json& j, std::string_view key) {
  const auto* members = j.get_ptr<const json::object_t*>();
  if (!members) return nullptr;
  const auto it = members->find(key);
  return it == members->end() ? nullptr : &it->second;
}
inline const std::string& string_member(const json& j, std::string_view key) {
  static const std::string empty;
  const json* m = member(j, key);
  const auto* s = m ? m->get_ptr<const std::string*>() : nullptr;
  return s ? *s : empty;
}

}  // namespace omniroute::events
