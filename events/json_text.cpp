#include "events/json_text.hpp"

#include <algorithm>
#include <cstring>

#include "events/envelope.hpp"

namespace omniroute::events {

namespace {

// a < b, byte by byte: keys are a few bytes long, shorter than a call to memcmp takes.
bool key_less(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[i]);
  return a.size() < b.size();
}

}  // namespace

ObjectText::ObjectText() {
  // Room for the documents written for every event, in one allocation each.
  fields_.reserve(16);
  text_.reserve(256);
  text_ += '{';
}

void ObjectText::start(std::string_view key) {
  const bool first = fields_.empty();
  if (!first) in_order_ = in_order_ && key_less(fields_.back().key, key);
  // `,"key":` in one append: keys are short and need no escaping, as a rule.
  char head[64];
  if (key.size() + 4 <= sizeof head && quotes_as_is(key)) {
    size_t n = 0;
    if (!first) head[n++] = ',';
    head[n++] = '"';
    if (!key.empty()) std::memcpy(head + n, key.data(), key.size());
    n += key.size();
    head[n++] = '"';
    head[n++] = ':';
    text_.append(head, n);
  } else {
    if (!first) text_ += ',';
    append_quoted(text_, key);
    text_ += ':';
  }
  fields_.push_back({key, text_.size(), 0});
}

ObjectText& ObjectText::end() {
  fields_.back().end = text_.size();
  return *this;
}

void ObjectText::quote(std::string_view s) { append_quoted(text_, s); }

ObjectText& ObjectText::text(std::string_view key, std::string_view value) {
  start(key);
  quote(value);
  return end();
}

ObjectText& ObjectText::integer(std::string_view key, int64_t value) {
  start(key);
  append_integer(text_, value);
  return end();
}

ObjectText& ObjectText::number(std::string_view key, double value) {
  start(key);
  text_ += nlohmann::json(value).dump();
  return end();
}

ObjectText& ObjectText::boolean(std::string_view key, bool value) {
  start(key);
  text_ += value ? "true" : "false";
  return end();
}

ObjectText& ObjectText::null(std::string_view key) {
  start(key);
  text_ += "null";
  return end();
}

ObjectText& ObjectText::json(std::string_view key, const nlohmann::json& value) {
  start(key);
  append_json(text_, value);
  return end();
}

ObjectText& ObjectText::raw(std::string_view key, std::string_view json_text) {
  start(key);
  text_ += json_text;
  return end();
}

std::string ObjectText::str() const {
  if (in_order_) return text_ + '}';
  std::vector<const Field*> order;
  order.reserve(fields_.size());
  for (const auto& f : fields_) order.push_back(&f);
  // Stable: of a key added twice, the last one added comes last and is the one kept. The
  // documents written for every event have a dozen fields or so, for which an insertion sort
  // is quicker than std::stable_sort and its buffer.
  const auto by_key = [](const Field* a, const Field* b) { return key_less(a->key, b->key); };
  if (order.size() > 32) {
    std::stable_sort(order.begin(), order.end(), by_key);
  } else {
    for (size_t i = 1; i < order.size(); ++i)
      for (size_t k = i; k > 0 && by_key(order[k], order[k - 1]); --k) std::swap(order[k], order[k - 1]);
  }
  std::string out;
  out.reserve(text_.size() + fields_.size() * 16 + 2);
  out += '{';
  bool first = true;
  for (size_t i = 0; i < order.size(); ++i) {
    if (i + 1 < order.size() && order[i + 1]->key == order[i]->key) continue;
    const Field& f = *order[i];
    if (!first) out += ',';
    first = false;
    append_quoted(out, f.key);
    out += ':';
    out.append(text_, f.begin, f.end - f.begin);
  }
  out += '}';
  return out;
}

}  // namespace omniroute::events
