// Events counted by (type, result) for the metrics, within a step of the processor or a request
// at the front door. Either holds a handful of types: a list walked from the entry matched last
// costs no allocation per event, where a map keyed by a copied type allocated and one keyed by
// a view compared the type's bytes at every step (perf: 0.7% of the benchmark's samples).
#pragma once

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace omniroute::events {

class TypeCounts {
 public:
  struct Count {
    std::string type;
    const char* result;  // a string literal: accepted, duplicate, refused
    size_t n;
  };
  void add(std::string_view type, const char* result) {
    if (last_ < counts_.size() && matches(counts_[last_], type, result)) {
      ++counts_[last_].n;
      return;
    }
    for (last_ = 0; last_ < counts_.size(); ++last_)
      if (matches(counts_[last_], type, result)) {
        ++counts_[last_].n;
        return;
      }
    counts_.push_back(Count{std::string(type), result, 1});
  }
  const std::vector<Count>& counts() const { return counts_; }
  void clear() {
    counts_.clear();
    last_ = 0;
  }

 private:
  static bool matches(const Count& c, std::string_view type, const char* result) {
    // Types share beginnings ("conversation."), and often lengths, rarely the last byte: it
    // rejects most others without a call to memcmp (perf: 2.9% of the front door's samples
    // were that memcmp, three types taking turns in the benchmark's batches).
    return c.type.size() == type.size() && (type.empty() || c.type.back() == type.back()) &&
           c.type == type && (c.result == result || std::strcmp(c.result, result) == 0);
  }
  std::vector<Count> counts_;
  size_t last_ = 0;
};

}  // namespace omniroute::events
