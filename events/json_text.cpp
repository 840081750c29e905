#include "events/json_text.hpp"

#include <algorithm>
#include <cstring>

#include "events/envelope.hpp"
#include "events/time.hpp"

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

void ObjectText::grow(size_t more) {
  const size_t cap = std::max(cap_ * 2, len_ + more);
  heap_.resize(cap);
  if (data_ == buf_) std::memcpy(heap_.data(), buf_, len_);
  data_ = heap_.data();
  cap_ = cap;
}

void ObjectText::start(std::string_view key) {
  if (n_fields_ > 0) {
    in_order_ = in_order_ && key_less(field(n_fields_ - 1).key(), key);
    put(',');
  }
  quote(key);
  put(':');
  add_field({key.data(), key.size(), len_, 0});
}

ObjectText& ObjectText::end() {
  field(n_fields_ - 1).end = len_;
  return *this;
}

void ObjectText::quote(std::string_view s) {
  if (quotes_as_is(s)) {  // as a rule
    put('"');
    put(s);
    put('"');
    return;
  }
  std::string quoted;
  append_quoted(quoted, s);
  put(quoted);
}

ObjectText& ObjectText::text(std::string_view key, std::string_view value) {
  start(key);
  quote(value);
  return end();
}

ObjectText& ObjectText::integer(std::string_view key, int64_t value) {
  start(key);
  put_integer(value);
  return end();
}

void ObjectText::put_integer(int64_t value) {
  char digits[max_number_bytes];
  put(std::string_view(digits, write_integer(value, digits)));
}

ObjectText& ObjectText::time(std::string_view key, int64_t ms) {
  start(key);
  char text[max_rfc3339_bytes];
  const size_t n = write_rfc3339_ms(ms, text);
  put('"');
  put(std::string_view(text, n));  // digits, '-', ':', '.', 'T' and 'Z': nothing to escape
  put('"');
  return end();
}

ObjectText& ObjectText::number(std::string_view key, double value) {
  start(key);
  char digits[max_number_bytes];
  put(std::string_view(digits, write_double(value, digits)));
  return end();
}

ObjectText& ObjectText::boolean(std::string_view key, bool value) {
  start(key);
  put(value ? "true" : "false");
  return end();
}

ObjectText& ObjectText::null(std::string_view key) {
  start(key);
  put("null");
  return end();
}

ObjectText& ObjectText::raw(std::string_view key, std::string_view json_text) {
  start(key);
  put(json_text);
  return end();
}

ObjectText& ObjectText::object(std::string_view key, const ObjectText& value) {
  start(key);
  if (value.in_order_) {
    put(value.written());
    put('}');
  } else {
    put(value.str());
  }
  return end();
}

std::string ObjectText::str() const {
  std::string out;
  append_to(out);
  return out;
}

void ObjectText::append_to(std::string& out) const {
  if (in_order_) {
    out.reserve(out.size() + len_ + 1);
    out.append(data_, len_);
    out += '}';
    return;
  }
  std::vector<const Field*> order;
  order.reserve(n_fields_);
  for (size_t i = 0; i < n_fields_; ++i) order.push_back(&field(i));
  // Stable: of a key added twice, the last one added comes last and is the one kept. The
  // documents written for every event have a dozen fields or so, for which an insertion sort
  // is quicker than std::stable_sort and its buffer.
  const auto by_key = [](const Field* a, const Field* b) { return key_less(a->key(), b->key()); };
  if (order.size() > 32) {
    std::stable_sort(order.begin(), order.end(), by_key);
  } else {
    for (size_t i = 1; i < order.size(); ++i)
      for (size_t k = i; k > 0 && by_key(order[k], order[k - 1]); --k) std::swap(order[k], order[k - 1]);
  }
  out.reserve(out.size() + len_ + n_fields_ * 16 + 2);
  out += '{';
  bool first = true;
  for (size_t i = 0; i < order.size(); ++i) {
    if (i + 1 < order.size() && order[i + 1]->key() == order[i]->key()) continue;
    const Field& f = *order[i];
    if (!first) out += ',';
    first = false;
    append_quoted(out, f.key());
    out += ':';
    out.append(data_ + f.begin, f.end - f.begin);
  }
  out += '}';
}

}  // namespace omniroute::events
