// JSON object text written field by field, without building an nlohmann::json tree: the view
// documents a partition host stores compact (events/compact_doc.hpp) read as text this way.
// The text is byte for byte what nlohmann::json::dump() gives for the same object
// (keys in byte order, whatever order the fields are added in; strings escaped alike; numbers
// formatted alike), so the documents and their digests do not depend on which way they were
// written.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace omniroute::events {

class ObjectText {
 public:
  ObjectText() { buf_[0] = '{'; }
  ObjectText(const ObjectText&) = delete;
  ObjectText& operator=(const ObjectText&) = delete;
  // A field added twice keeps the value added last, as json's operator[] would.
  ObjectText& text(std::string_view key, std::string_view value);
  ObjectText& integer(std::string_view key, int64_t value);
  ObjectText& number(std::string_view key, double value);
  ObjectText& boolean(std::string_view key, bool value);
  ObjectText& null(std::string_view key);
  // A time as RFC 3339 text, as format_rfc3339_ms writes it.
  ObjectText& time(std::string_view key, int64_t ms);
  // An object of integers, in the map's (key) order.
  template <typename Map>
  ObjectText& integers(std::string_view key, const Map& values) {
    start(key);
    put('{');
    bool first = true;
    for (const auto& [name, value] : values) {
      if (!first) put(',');
      first = false;
      quote(name);
      put(':');
      put_integer(value);
    }
    put('}');
    return end();
  }
  // A value already written as JSON text (e.g. another ObjectText's result).
  ObjectText& raw(std::string_view key, std::string_view json_text);
  // Another object's text, appended without a string of its own in between.
  ObjectText& object(std::string_view key, const ObjectText& value);
  // An array of strings, in the order the range gives them.
  template <typename Range>
  ObjectText& texts(std::string_view key, const Range& values) {
    start(key);
    put('[');
    bool first = true;
    for (const auto& v : values) {
      if (!first) put(',');
      first = false;
      quote(v);
    }
    put(']');
    return end();
  }

  // The object's text. The keys must outlive the ObjectText until then. Fields added in key
  // order are already in place; others are put in order here.
  std::string str() const;
  // The same, appended to `out`.
  void append_to(std::string& out) const;

 private:
  // Trivial, so that the inline fields cost nothing until used.
  struct Field {
    const char* key_data;
    size_t key_size;
    size_t begin, end;  // of the value in the text
    std::string_view key() const { return {key_data, key_size}; }
  };
  // A field is appended to the text as `"key":value` (comma-separated), its value between
  // start() and end().
  void start(std::string_view key);
  ObjectText& end();
  void quote(std::string_view s);
  void put_integer(int64_t value);
  // Appends to the text. The text is its first len_ bytes at data_: the inline buffer until it
  // is full, then heap_. These appends are inline, where each std::string append is a call
  // into libstdc++, and a view document fits the inline buffers: rendering one allocates
  // nothing until str().
  void put(std::string_view s) {
    if (len_ + s.size() > cap_) grow(s.size());
    if (!s.empty()) std::memcpy(data_ + len_, s.data(), s.size());
    len_ += s.size();
  }
  void put(char c) {
    if (len_ == cap_) grow(1);
    data_[len_++] = c;
  }
  void grow(size_t more);  // to at least len_ + more
  std::string_view written() const { return {data_, len_}; }
  void add_field(Field f) {
    if (n_fields_ < inline_fields) few_[n_fields_] = f;
    else more_.push_back(f);
    ++n_fields_;
  }
  Field& field(size_t i) { return i < inline_fields ? few_[i] : more_[i - inline_fields]; }
  const Field& field(size_t i) const { return i < inline_fields ? few_[i] : more_[i - inline_fields]; }

  static constexpr size_t inline_bytes = 512, inline_fields = 20;
  char buf_[inline_bytes];  // uninitialised: only the first len_ bytes are read
  std::string heap_;
  char* data_ = buf_;
  size_t len_ = 1, cap_ = inline_bytes;
  Field few_[inline_fields];
  std::vector<Field> more_;
  size_t n_fields_ = 0;
  bool in_order_ = true;  // every key so far after the one before it: the text is the object
};

}  // namespace omniroute::events
