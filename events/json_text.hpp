// JSON object text written field by field, without building an nlohmann::json tree: the views
// a partition host writes for every event (conversations, customers, journeys) are rendered
// this way. The text is byte for byte what nlohmann::json::dump() gives for the same object
// (keys in byte order, whatever order the fields are added in; strings escaped alike; numbers
// formatted alike), so the documents and their digests do not depend on which way they were
// written.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace omniroute::events {

class ObjectText {
 public:
  ObjectText();
  // A field added twice keeps the value added last, as json's operator[] would.
  ObjectText& text(std::string_view key, std::string_view value);
  ObjectText& integer(std::string_view key, int64_t value);
  ObjectText& number(std::string_view key, double value);
  ObjectText& boolean(std::string_view key, bool value);
  ObjectText& null(std::string_view key);
  ObjectText& json(std::string_view key, const nlohmann::json& value);
  // A value already written as JSON text (e.g. another ObjectText's result).
  ObjectText& raw(std::string_view key, std::string_view json_text);
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

 private:
  struct Field {
    std::string_view key;
    size_t begin, end;  // of the value in text_
  };
  // A field is appended to the text as `"key":value` (comma-separated), its value between
  // start() and end().
  void start(std::string_view key);
  ObjectText& end();
  void quote(std::string_view s);
  // Appends to the text. text_ is kept as long as its room, and the text is its first len_
  // bytes: these appends are inline, where each std::string append is a call into libstdc++.
  void put(std::string_view s) {
    if (len_ + s.size() > text_.size()) grow(s.size());
    if (!s.empty()) std::memcpy(&text_[len_], s.data(), s.size());
    len_ += s.size();
  }
  void put(char c) {
    if (len_ == text_.size()) grow(1);
    text_[len_++] = c;
  }
  void grow(size_t more);  // to at least len_ + more

  std::vector<Field> fields_;
  std::string text_;
  size_t len_ = 0;
  bool in_order_ = true;  // every key so far after the one before it: the text is the object
};

}  // namespace omniroute::events
