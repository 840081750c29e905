// A view document in the form it is stored in: the fields an ObjectText would be given, in
// binary (a tag, the key, the value as it is in memory: a time as its milliseconds, a number
// as its 8 bytes), and rendered as JSON text only when it is read. A partition host writes the
// documents of every conversation it touches, and reads seldom come; rendering on write was
// about a tenth of the server's work per event (times, numbers and escaped strings as text).
//
// document_text() gives the text by handing the same fields to an ObjectText, so a document
// reads byte for byte as if it had been written as text (keys in order, strings escaped and
// numbers formatted as json's dump() does). A stored value that is already text (a document
// written by an earlier version, or a view not written this way) reads as it is.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "events/json.hpp"

namespace omniroute::events {

class CompactDoc {
 public:
  CompactDoc() { clear(); }
  CompactDoc(const CompactDoc&) = delete;
  CompactDoc& operator=(const CompactDoc&) = delete;

  // Starts a new document, keeping the memory.
  void clear() {
    len_ = 0;
    put_byte(marker);
  }

  // As ObjectText's: a field added twice keeps the value added last, and the fields may come
  // in any order (the text has them in key order).
  CompactDoc& text(std::string_view key, std::string_view value) {
    field(tag_text, key);
    put_string(value);
    return *this;
  }
  CompactDoc& integer(std::string_view key, int64_t value) {
    field(tag_integer, key);
    put_fixed(value);
    return *this;
  }
  CompactDoc& number(std::string_view key, double value) {
    field(tag_number, key);
    put_fixed(value);
    return *this;
  }
  CompactDoc& boolean(std::string_view key, bool value) {
    field(value ? tag_true : tag_false, key);
    return *this;
  }
  CompactDoc& null(std::string_view key) {
    field(tag_null, key);
    return *this;
  }
  // A time (ms since the epoch), read as RFC 3339 text.
  CompactDoc& time(std::string_view key, int64_t ms) {
    field(tag_time, key);
    put_fixed(ms);
    return *this;
  }
  // An object of integers, in the map's (key) order.
  template <typename Map>
  CompactDoc& integers(std::string_view key, const Map& values) {
    field(tag_integers, key);
    put_size(values.size());
    for (const auto& [name, value] : values) {
      put_string(name);
      put_fixed(static_cast<int64_t>(value));
    }
    return *this;
  }
  // An array of strings, in the order the range gives them.
  template <typename Range>
  CompactDoc& texts(std::string_view key, const Range& values) {
    field(tag_texts, key);
    put_size(values.size());
    for (const auto& v : values) put_string(v);
    return *this;
  }
  // A json value, kept as its text (as json's dump() writes it).
  CompactDoc& json(std::string_view key, const events::json& value);
  // A value already written as JSON text.
  CompactDoc& raw(std::string_view key, std::string_view json_text) {
    field(tag_raw, key);
    put_string(json_text);
    return *this;
  }
  // An object whose fields follow, up to end_object().
  CompactDoc& begin_object(std::string_view key) {
    field(tag_object, key);
    return *this;
  }
  CompactDoc& end_object() {
    put_byte(tag_end);
    return *this;
  }
  // An array of objects: each begins with item() and its fields end with end_object(); the
  // array ends with end_array().
  CompactDoc& begin_array(std::string_view key) {
    field(tag_array, key);
    return *this;
  }
  CompactDoc& item() {
    put_byte(tag_item);
    return *this;
  }
  CompactDoc& end_array() {
    put_byte(tag_end);
    return *this;
  }

  // The stored form, valid until the next change: the fields and an end tag, which a read
  // requires, so that a form cut short anywhere does not read as a smaller document.
  std::string_view bytes() {
    data_[len_] = tag_end;  // there is always room for it (cap_ > len_)
    return {data_, len_ + 1};
  }
  std::string str() { return std::string(bytes()); }

  // The first byte of the stored form. JSON text starts with '{', '[', a quote, a digit, a
  // sign, or a letter of true, false or null, and never with this byte.
  static constexpr char marker = '\x01';

 private:
  friend struct CompactReader;
  enum : char {
    tag_end = 0,
    tag_text,
    tag_integer,
    tag_number,
    tag_true,
    tag_false,
    tag_null,
    tag_time,
    tag_raw,
    tag_object,
    tag_texts,
    tag_integers,
    tag_array,
    tag_item,
  };

  void field(char tag, std::string_view key) {
    put_byte(tag);
    put_string(key);
  }
  // A size as 7 bits a byte, low bits first, the high bit set on every byte but the last.
  void put_size(size_t n) {
    if (len_ + 10 >= cap_) grow(10);
    while (n >= 0x80) {
      data_[len_++] = static_cast<char>(n | 0x80);
      n >>= 7;
    }
    data_[len_++] = static_cast<char>(n);
  }
  void put_string(std::string_view s) {
    put_size(s.size());
    put_bytes(s.data(), s.size());
  }
  // 8 bytes, least significant first (a double's bits as an integer's).
  void put_fixed(int64_t value) {
    if (len_ + 8 >= cap_) grow(8);
    const auto u = static_cast<uint64_t>(value);
    for (int i = 0; i < 8; ++i) data_[len_ + i] = static_cast<char>(u >> (8 * i));
    len_ += 8;
  }
  void put_fixed(double value) {
    int64_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    put_fixed(bits);
  }
  void put_bytes(const void* p, size_t n) {
    if (len_ + n >= cap_) grow(n);
    if (n > 0) std::memcpy(data_ + len_, p, n);
    len_ += n;
  }
  void put_byte(char c) {
    if (len_ + 1 >= cap_) grow(1);
    data_[len_++] = c;
  }
  void grow(size_t more);  // to more than len_ + more: room for the end tag

  // The documents written for every event (a few hundred bytes) fit the inline buffer: a
  // CompactDoc reused from one document to the next allocates nothing.
  static constexpr size_t inline_bytes = 1024;
  char buf_[inline_bytes];  // uninitialised: only the first len_ bytes are read
  std::string heap_;
  char* data_ = buf_;
  size_t len_ = 0, cap_ = inline_bytes;
};

// True when `stored` is a CompactDoc's stored form.
inline bool is_compact(std::string_view stored) {
  return !stored.empty() && stored[0] == CompactDoc::marker;
}

// The JSON text of a stored document: a CompactDoc's rendered, anything else as it is.
// nullopt when a CompactDoc's bytes are cut short or malformed (a text in it that is not
// UTF-8 too: found by fuzzing, it threw).
std::optional<std::string> document_text(std::string_view stored);

// The text of the document `write` writes into a CompactDoc, or nullopt when `write` returns
// false (there is none).
template <typename Write>
std::optional<std::string> text_of(Write write) {
  CompactDoc doc;
  if (!write(doc)) return std::nullopt;
  return document_text(doc.bytes());
}

}  // namespace omniroute::events
