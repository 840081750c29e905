// JSON object text written field by field, without building an nlohmann::json tree: the views
// a partition host writes for every event (conversations, customers, journeys) are rendered
// this way. The text is byte for byte what nlohmann::json::dump() gives for the same object
// (keys in byte order, whatever order the fields are added in; strings escaped alike; numbers
// formatted alike), so the documents and their digests do not depend on which way they were
// written.
#pragma once

#include <cstdint>
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
    text_ += '[';
    bool first = true;
    for (const auto& v : values) {
      if (!first) text_ += ',';
      first = false;
      quote(v);
    }
    text_ += ']';
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
  // A field is appended to text_ as `"key":value` (comma-separated), its value between
  // start() and end().
  void start(std::string_view key);
  ObjectText& end();
  void quote(std::string_view s);

  std::vector<Field> fields_;
  std::string text_;
  bool in_order_ = true;  // every key so far after the one before it: text_ is the object
};

}  // namespace omniroute::events
