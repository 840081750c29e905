// Strong types and error values shared by every omniroute module.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <variant>

namespace omniroute {

// A value of T that cannot be mixed up with another kind of T (an ingest offset is not a
// journal position, though both are integers).
template <typename Tag, typename T>
class strong {
 public:
  using value_type = T;
  constexpr strong() = default;
  constexpr explicit strong(T v) : value_(v) {}
  constexpr T value() const { return value_; }
  friend constexpr bool operator==(strong a, strong b) { return a.value_ == b.value_; }
  friend constexpr bool operator!=(strong a, strong b) { return a.value_ != b.value_; }
  friend constexpr bool operator<(strong a, strong b) { return a.value_ < b.value_; }
  friend constexpr bool operator<=(strong a, strong b) { return a.value_ <= b.value_; }
  friend constexpr bool operator>(strong a, strong b) { return a.value_ > b.value_; }
  friend constexpr bool operator>=(strong a, strong b) { return a.value_ >= b.value_; }

 private:
  T value_{};
};

// Index of a partition of the ingest log and of the journal (the same number for both).
using partition_id = strong<struct partition_tag, int32_t>;
// Offset of a record in one ingest partition.
using ingest_offset = strong<struct ingest_offset_tag, int64_t>;
// Position of a record in one journal partition.
using journal_pos = strong<struct journal_pos_tag, int64_t>;
// Offset of an event in one tenant's journal (the `seq` of the event contract).
using seq_no = strong<struct seq_tag, uint64_t>;

// The outcome of an operation that can fail for reasons outside the program (I/O, a broker).
// Bad input is not reported with Status but with events::event_error.
class Status {
 public:
  static Status ok() { return Status{}; }
  static Status error(std::string message) { return Status{std::move(message)}; }
  bool is_ok() const { return !failed_; }
  explicit operator bool() const { return is_ok(); }
  const std::string& message() const { return message_; }

 private:
  Status() = default;
  explicit Status(std::string m) : failed_(true), message_(std::move(m)) {}
  bool failed_ = false;
  std::string message_;
};

// A value or the reason there is none.
template <typename T, typename E = Status>
class result {
 public:
  result(T v) : v_(std::move(v)) {}    // NOLINT: implicit by design
  result(E e) : v_(std::move(e)) {}    // NOLINT
  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const E& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

}  // namespace omniroute

namespace std {
template <typename Tag, typename T>
struct hash<omniroute::strong<Tag, T>> {
  size_t operator()(omniroute::strong<Tag, T> s) const { return std::hash<T>{}(s.value()); }
};
}  // namespace std
