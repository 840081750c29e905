#include "events/compact_doc.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "events/envelope.hpp"
#include "events/json_text.hpp"

namespace omniroute::events {

void CompactDoc::grow(size_t more) {
  const size_t cap = std::max(cap_ * 2, len_ + more + 1);
  heap_.resize(cap);
  if (data_ == buf_) std::memcpy(heap_.data(), buf_, len_);
  data_ = heap_.data();
  cap_ = cap;
}

CompactDoc& CompactDoc::json(std::string_view key, const events::json& value) {
  std::string text;
  append_json(text, value);
  return raw(key, text);
}

// Reads a stored form back into an ObjectText, field by field, checking every length against
// what is left: a value cut short or with an unknown tag fails instead of reading past it.
struct CompactReader {
  const char* at;
  const char* end;

  bool byte(char& c) {
    if (at == end) return false;
    c = *at++;
    return true;
  }
  bool size(size_t& n) {
    n = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      char c;
      if (!byte(c)) return false;
      n |= static_cast<size_t>(static_cast<unsigned char>(c) & 0x7f) << shift;
      if (!(static_cast<unsigned char>(c) & 0x80)) return true;
    }
    return false;
  }
  // A key or text; one that is not UTF-8 is not one omniroute wrote (json's writer would throw
  // on it: found by fuzzing).
  bool string(std::string_view& s) {
    size_t n;
    if (!size(n) || n > static_cast<size_t>(end - at)) return false;
    s = std::string_view(at, n);
    at += n;
    return utf8_prefix(s) == n;
  }
  bool fixed(int64_t& v) {
    if (end - at < 8) return false;
    uint64_t u = 0;
    for (int i = 0; i < 8; ++i) u |= static_cast<uint64_t>(static_cast<unsigned char>(at[i])) << (8 * i);
    at += 8;
    v = static_cast<int64_t>(u);
    return true;
  }

  // Fields up to an end tag, which ends the bytes for the document itself.
  bool object(ObjectText& out, bool nested, int depth) {
    if (depth > 64) return false;  // none is written deeper than two
    for (;;) {
      char tag;
      if (!byte(tag)) return false;
      if (tag == CompactDoc::tag_end) return nested || at == end;
      std::string_view key;
      if (!string(key)) return false;
      if (!value(tag, key, out, depth)) return false;
    }
  }

  bool value(char tag, std::string_view key, ObjectText& out, int depth) {
    switch (tag) {
      case CompactDoc::tag_text:
      case CompactDoc::tag_raw: {
        std::string_view s;
        if (!string(s)) return false;
        if (tag == CompactDoc::tag_text) {
          out.text(key, s);
          return true;
        }
        // Raw JSON text is what the writer was given; one that is not JSON is not ours. (json
        // takes a NUL byte for the end of its input, and JSON text has none.)
        if (s.find('\0') != std::string_view::npos || !json::accept(s.begin(), s.end()))
          return false;
        out.raw(key, s);
        return true;
      }
      case CompactDoc::tag_integer:
      case CompactDoc::tag_time:
      case CompactDoc::tag_number: {
        int64_t v;
        if (!fixed(v)) return false;
        if (tag == CompactDoc::tag_integer) {
          out.integer(key, v);
        } else if (tag == CompactDoc::tag_time) {
          out.time(key, v);
        } else {
          double d;
          std::memcpy(&d, &v, sizeof d);
          out.number(key, d);
        }
        return true;
      }
      case CompactDoc::tag_true: out.boolean(key, true); return true;
      case CompactDoc::tag_false: out.boolean(key, false); return true;
      case CompactDoc::tag_null: out.null(key); return true;
      case CompactDoc::tag_texts: {
        size_t n;
        if (!size(n) || n > static_cast<size_t>(end - at)) return false;  // a byte each at least
        std::vector<std::string_view> items(n);
        for (auto& s : items)
          if (!string(s)) return false;
        out.texts(key, items);
        return true;
      }
      case CompactDoc::tag_integers: {
        size_t n;
        if (!size(n) || n > static_cast<size_t>(end - at) / 9) return false;  // 9 bytes each at least
        std::vector<std::pair<std::string_view, int64_t>> items(n);
        for (auto& [name, v] : items)
          if (!string(name) || !fixed(v)) return false;
        out.integers(key, items);
        return true;
      }
      case CompactDoc::tag_object: {
        ObjectText child;
        if (!object(child, true, depth + 1)) return false;
        out.object(key, child);
        return true;
      }
      case CompactDoc::tag_array: {
        std::string list = "[";
        for (;;) {
          char t;
          if (!byte(t)) return false;
          if (t == CompactDoc::tag_end) break;
          if (t != CompactDoc::tag_item) return false;
          ObjectText child;
          if (!object(child, true, depth + 1)) return false;
          if (list.size() > 1) list += ',';
          child.append_to(list);
        }
        list += ']';
        out.raw(key, list);
        return true;
      }
      default: return false;
    }
  }
};

std::optional<std::string> document_text(std::string_view stored) {
  if (!is_compact(stored)) return std::string(stored);
  CompactReader in{stored.data() + 1, stored.data() + stored.size()};
  ObjectText out;
  if (!in.object(out, false, 0)) return std::nullopt;
  return out.str();
}

}  // namespace omniroute::events
