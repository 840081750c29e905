// A sequence kept in a ring: dropping its first element moves none of the others. A customer's
// visits (actors/journey.hpp): memory keeps the latest 20, and each new visit past them dropped
// the oldest from the front of a vector, which moved the other 19 (192 bytes each): perf put
// that erase at 1.2-1.5% of the benchmark's samples. And the embedded engine's in-memory tail
// of ingest records (embedded_log.hpp), a queue that a deque kept in blocks of two records.
//
// Like a vector but for where its elements are: they are contiguous only up to the end of the
// room, then go on from its start. Iterators are random access, and an erase invalidates them
// as a vector's erase does (those at or after the erased element; here also those before it,
// when the erase moves the front instead).
#pragma once

#include <cstddef>
#include <iterator>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace omniroute {

template <typename T>
class Ring {
  template <bool Const>
  class Iterator {
    using ring_type = std::conditional_t<Const, const Ring, Ring>;

   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = std::conditional_t<Const, const T*, T*>;
    using reference = std::conditional_t<Const, const T&, T&>;

    Iterator() = default;
    Iterator(ring_type* ring, size_t i) : ring_(ring), i_(i) {}
    operator Iterator<true>() const { return {ring_, i_}; }  // NOLINT: as a vector's converts

    reference operator*() const { return (*ring_)[i_]; }
    pointer operator->() const { return &(*ring_)[i_]; }
    reference operator[](difference_type k) const { return (*ring_)[i_ + static_cast<size_t>(k)]; }
    Iterator& operator++() { return ++i_, *this; }
    Iterator& operator--() { return --i_, *this; }
    Iterator operator++(int) { return {ring_, i_++}; }
    Iterator operator--(int) { return {ring_, i_--}; }
    Iterator& operator+=(difference_type k) { return i_ += static_cast<size_t>(k), *this; }
    Iterator& operator-=(difference_type k) { return i_ -= static_cast<size_t>(k), *this; }
    Iterator operator+(difference_type k) const { return {ring_, i_ + static_cast<size_t>(k)}; }
    Iterator operator-(difference_type k) const { return {ring_, i_ - static_cast<size_t>(k)}; }
    difference_type operator-(const Iterator& o) const {
      return static_cast<difference_type>(i_) - static_cast<difference_type>(o.i_);
    }
    bool operator==(const Iterator& o) const { return i_ == o.i_; }
    bool operator!=(const Iterator& o) const { return i_ != o.i_; }
    bool operator<(const Iterator& o) const { return i_ < o.i_; }
    bool operator>(const Iterator& o) const { return i_ > o.i_; }
    bool operator<=(const Iterator& o) const { return i_ <= o.i_; }
    bool operator>=(const Iterator& o) const { return i_ >= o.i_; }
    size_t index() const { return i_; }

   private:
    ring_type* ring_ = nullptr;
    size_t i_ = 0;
  };

 public:
  using value_type = T;
  using iterator = Iterator<false>;
  using const_iterator = Iterator<true>;
  using reverse_iterator = std::reverse_iterator<iterator>;
  using const_reverse_iterator = std::reverse_iterator<const_iterator>;

  Ring() = default;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  Ring(Ring&& o) noexcept
      : slots_(std::move(o.slots_)), room_(std::exchange(o.room_, 0)), head_(std::exchange(o.head_, 0)),
        size_(std::exchange(o.size_, 0)) {}
  Ring& operator=(Ring&& o) noexcept {
    if (this != &o) {
      clear();
      slots_ = std::move(o.slots_);
      room_ = std::exchange(o.room_, 0);
      head_ = std::exchange(o.head_, 0);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~Ring() { clear(); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t capacity() const { return room_; }

  T& operator[](size_t i) { return *slot(i); }
  const T& operator[](size_t i) const { return *slot(i); }
  T& front() { return *slot(0); }
  const T& front() const { return *slot(0); }
  T& back() { return *slot(size_ - 1); }
  const T& back() const { return *slot(size_ - 1); }

  iterator begin() { return {this, 0}; }
  iterator end() { return {this, size_}; }
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, size_}; }
  reverse_iterator rbegin() { return reverse_iterator(end()); }
  reverse_iterator rend() { return reverse_iterator(begin()); }
  const_reverse_iterator rbegin() const { return const_reverse_iterator(end()); }
  const_reverse_iterator rend() const { return const_reverse_iterator(begin()); }

  // Room for at least `n` elements; grows as a vector does, moving each element once.
  void reserve(size_t n) {
    if (n <= room_) return;
    std::unique_ptr<Slot[]> slots(new Slot[n]);
    for (size_t i = 0; i < size_; ++i) {
      new (&slots[i]) T(std::move(*slot(i)));
      slot(i)->~T();
    }
    slots_ = std::move(slots);
    room_ = n;
    head_ = 0;
  }

  void push_back(T&& v) {
    if (size_ == room_) reserve(room_ == 0 ? 1 : 2 * room_);
    new (at(size_)) T(std::move(v));
    ++size_;
  }

  // Drops the first `n` elements (at most size()): no other element moves.
  void erase_front(size_t n) {
    for (size_t i = 0; i < n && size_ > 0; ++i) {
      slot(0)->~T();
      head_ = head_ + 1 == room_ ? 0 : head_ + 1;
      --size_;
    }
  }

  // Drops the element at `pos`, moving the shorter side of the ring (the elements before it or
  // those after it) by one. Returns the element that followed it.
  iterator erase(const_iterator pos) {
    const size_t i = pos.index();
    if (i < size_ - 1 - i) {
      for (size_t k = i; k > 0; --k) *slot(k) = std::move(*slot(k - 1));
      erase_front(1);
    } else {
      for (size_t k = i; k + 1 < size_; ++k) *slot(k) = std::move(*slot(k + 1));
      slot(size_ - 1)->~T();
      --size_;
    }
    return {this, i};
  }

  void clear() {
    erase_front(size_);
    head_ = 0;
  }

 private:
  struct alignas(T) Slot {
    unsigned char bytes[sizeof(T)];
  };
  // Where the i-th element is (or goes, for i == size_ < room_).
  void* at(size_t i) const {
    size_t k = head_ + i;
    if (k >= room_) k -= room_;
    return &slots_[k];
  }
  T* slot(size_t i) const { return std::launder(static_cast<T*>(at(i))); }

  std::unique_ptr<Slot[]> slots_;
  size_t room_ = 0, head_ = 0, size_ = 0;
};

}  // namespace omniroute
