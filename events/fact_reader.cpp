#include "events/fact_reader.hpp"

#include <array>

namespace omniroute::events {
// Field names compared as views: the length first (no strlen per comparison).
using namespace std::string_view_literals;
namespace {

// A SAX handler for nlohmann's parser (the interface json::sax_parse expects). Any callback
// that meets something the fast path does not take returns false, which stops the parse.
class Reader {
 public:
  explicit Reader(size_t max_events) : max_events_(max_events) {}

  FactBatch out;

  bool null() { return scalar(json(nullptr)); }
  bool boolean(bool b) { return scalar(json(b)); }
  bool number_integer(json::number_integer_t n) { return scalar(json(n)); }
  bool number_unsigned(json::number_unsigned_t n) { return scalar(json(n)); }
  bool number_float(json::number_float_t x, const json::string_t&) { return scalar(json(x)); }
  bool binary(json::binary_t&) { return false; }  // JSON text has none

  bool string(json::string_t& s) {
    if (!data_.empty()) {
      insert(json(std::move(s)));
      return true;
    }
    if (!at_event_level()) return false;
    switch (field_) {
      case field::id: event_.id = std::move(s); return true;
      case field::type: event_.type = std::move(s); return true;
      case field::tenant: event_.tenant = std::move(s); return true;
      case field::time: time_ = std::move(s); return true;
      default: return false;  // data must be an object
    }
  }

  bool start_object(std::size_t) {
    if (++depth_ > max_json_depth) return false;
    if (!data_.empty()) {
      data_.push_back(&insert(json(json::value_t::object)));
      return true;
    }
    if (depth_ == 1) return begin_event(1);  // the body is one event
    if (depth_ == 2 && out.array && !in_event_) return begin_event(2);
    if (at_event_level(1) && field_ == field::data) {
      event_.data = json::object();
      data_.push_back(&event_.data);
      return true;
    }
    return false;
  }

  bool start_array(std::size_t) {
    if (++depth_ > max_json_depth) return false;
    if (!data_.empty()) {
      data_.push_back(&insert(json(json::value_t::array)));
      return true;
    }
    if (depth_ == 1) {
      out.array = true;
      return true;
    }
    return false;  // an array outside data, but the batch itself
  }

  bool key(json::string_t& k) {
    if (!data_.empty()) {
      key_ = std::move(k);
      return true;
    }
    if (!at_event_level()) return false;
    field_ = k == "id"sv      ? field::id
             : k == "type"sv   ? field::type
             : k == "tenant"sv ? field::tenant
             : k == "time"sv   ? field::time
             : k == "data"sv   ? field::data
                               : field::other;
    if (field_ == field::other) return false;  // parse_fact ignores it; the general path decides
    auto& seen = seen_[static_cast<size_t>(field_)];
    if (seen) return false;  // a field twice: the DOM keeps the last one; the general path reads it
    seen = true;
    return true;
  }

  bool end_object() {
    if (close_in_data()) return true;
    if (!at_event_level()) return false;
    for (bool seen : seen_)
      if (!seen) return false;
    if (!accept_fact(event_, time_)) return false;
    out.events.push_back(std::move(event_));
    in_event_ = false;
    --depth_;
    return true;
  }

  bool end_array() {
    if (close_in_data()) return true;
    if (depth_ != 1 || !out.array) return false;
    --depth_;
    return !out.events.empty();  // an empty batch is refused, on the general path
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }

 private:
  enum class field { id, type, tenant, time, data, other };

  bool begin_event(size_t depth) {
    if (out.events.size() >= max_events_) return false;
    event_ = Envelope{};
    time_.clear();
    seen_.fill(false);
    event_depth_ = depth;
    in_event_ = true;
    field_ = field::other;
    return true;
  }

  // Inside an event's object, outside its data: where its fields' names and values are; with
  // `inner`, one level further in (the data object's start).
  bool at_event_level(size_t inner = 0) const {
    return in_event_ && data_.empty() && depth_ == event_depth_ + inner;
  }

  // Closes the data's innermost container, if in the data.
  bool close_in_data() {
    if (data_.empty()) return false;
    data_.pop_back();
    --depth_;
    return true;
  }

  bool scalar(json&& v) {
    if (data_.empty()) return false;  // id, type, tenant and time are strings; data an object
    insert(std::move(v));
    return true;
  }

  // Puts a value in the innermost open container of the data, as the DOM parser would: under
  // the last key read (a repeated key keeps the last value), or at the end of an array.
  json& insert(json&& v) {
    json& container = *data_.back();
    if (container.is_object()) {
      json& slot = container[std::move(key_)];
      slot = std::move(v);
      return slot;
    }
    container.push_back(std::move(v));
    return container.back();
  }

  size_t max_events_;
  size_t depth_ = 0;        // containers open
  size_t event_depth_ = 0;  // the depth of the event's object: 1 for a lone event, 2 in a batch
  bool in_event_ = false;
  Envelope event_;
  std::string time_;
  field field_ = field::other;
  std::array<bool, 5> seen_{};  // id, type, tenant, time, data
  // The data's open containers, innermost last. A pointer into an array is taken only for its
  // last element, and that array grows again only after this element's container closes.
  std::vector<json*> data_;
  std::string key_;
};

}  // namespace

std::optional<FactBatch> read_valid_facts(std::string_view body, size_t max_events) {
  Reader reader(max_events);
  if (!json::sax_parse(body.begin(), body.end(), &reader, json::input_format_t::json, true))
    return std::nullopt;
  return std::move(reader.out);
}

}  // namespace omniroute::events
