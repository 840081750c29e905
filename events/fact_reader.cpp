#include "events/fact_reader.hpp"

#include <algorithm>
#include <array>

#include <simdjson.h>

#include "events/time.hpp"

namespace omniroute::events {
// Field names compared as views: the length first (no strlen per comparison).
using namespace std::string_view_literals;
namespace {

namespace dom = simdjson::dom;

// A parser keeps buffers sized to the largest body it has read (about 15 bytes per byte of
// body): each HTTP thread keeps one for bodies up to this size, and frees a larger one after
// use rather than hold tens of MiB per thread for a rare large batch.
constexpr size_t kept_parser_bytes = 1u << 20;

// The thread's parser, for one use: what it parses lives in its buffers until the next use.
// A buffer grown past kept_parser_bytes is freed when the use ends.
struct ParserUse {
  dom::parser& parser = thread_parser();
  ~ParserUse() {
    if (parser.capacity() > kept_parser_bytes) parser = dom::parser();
  }
  static dom::parser& thread_parser() {
    thread_local dom::parser p;
    return p;
  }
};

// True when `body` may hold the number -0: json::parse makes it a signed integer, and
// simdjson the same 0 as for 0 (which json::parse makes unsigned). May say so of a string
// that holds "-0"; such a body just takes the general path.
bool may_hold_minus_zero(std::string_view body) {
  for (size_t at = body.find("-0"); at != std::string_view::npos; at = body.find("-0", at + 2)) {
    const char next = at + 2 < body.size() ? body[at + 2] : ' ';
    if (next != '.' && next != 'e' && next != 'E' && (next < '0' || next > '9')) return true;
  }
  return false;
}

// A value of an event's data as the DOM parser (json::parse) makes it, or false when it nests
// deeper than max_json_depth (`depth` counts the containers open, this one included).
bool to_json(dom::element v, size_t depth, json& out) {
  switch (v.type()) {
    case dom::element_type::OBJECT: {
      if (++depth > max_json_depth) return false;
      // Each member's value read straight into its place in the object, rather than into a
      // value of its own, then moved under a key string built for it. `out` is a fresh value.
      out = json::object();
      auto& members = out.get_ref<json::object_t&>();
      const dom::object object(v);
      members.reserve(std::min<size_t>(object.size(), 64));  // size() saturates; most have a few
      for (dom::key_value_pair member : object) {
        auto [at, added] = members.emplace(member.key);
        if (!added) at->second = json();  // a repeated key keeps the last value
        if (!to_json(member.value, depth, at->second)) return false;
      }
      return true;
    }
    case dom::element_type::ARRAY: {
      if (++depth > max_json_depth) return false;
      out = json::array();
      for (dom::element item : dom::array(v)) {
        out.push_back(json());
        if (!to_json(item, depth, out.back())) return false;
      }
      return true;
    }
    case dom::element_type::STRING: out = std::string(std::string_view(v)); return true;
    // json::parse reads a number without a minus sign as unsigned.
    case dom::element_type::INT64: {
      const int64_t n = int64_t(v);
      out = n >= 0 ? json(static_cast<uint64_t>(n)) : json(n);
      return true;
    }
    case dom::element_type::UINT64: out = uint64_t(v); return true;
    case dom::element_type::DOUBLE: out = double(v); return true;
    case dom::element_type::BOOL: out = bool(v); return true;
    case dom::element_type::NULL_VALUE: out = nullptr; return true;
  }
  return false;
}

// An envelope member's place by its name: id, type, tenant, time, data (a fact's five: 0-4),
// then seq and cause (5, 6, in the journal's); 7 for any other name.
// (Compared one by one, as the front door's reader always has: each a length check first.)
size_t member_index(std::string_view name) {
  return name == "id"sv       ? 0
         : name == "type"sv   ? 1
         : name == "tenant"sv ? 2
         : name == "time"sv   ? 3
         : name == "data"sv   ? 4
         : name == "seq"sv    ? 5
         : name == "cause"sv  ? 6
                              : 7;
}

// One event object at `depth` (1 for a lone event, 2 in a batch), appended to the batch with
// its text when it has exactly the five envelope fields, each once, and parse_fact would
// accept it.
bool read_event(dom::element v, size_t depth, FactBatch& batch) {
  std::vector<Envelope>& out = batch.events;
  dom::object fields;
  if (v.get_object().get(fields) || depth > max_json_depth) return false;
  // The envelope is built once its fields are read, each string constructed from its text:
  // assigned into a default envelope, each was a general replace, and its data an empty
  // object allocated to be replaced.
  std::string_view id, type, tenant, time;
  json data;
  std::array<bool, 5> seen{};  // id, type, tenant, time, data
  for (dom::key_value_pair field : fields) {
    const size_t at = member_index(field.key);
    // Another field: parse_fact ignores it; the general path decides. A field twice: the DOM
    // keeps the last one; the general path reads it.
    if (at >= seen.size() || seen[at]) return false;
    seen[at] = true;
    if (at == 4) {
      if (!field.value.is_object() || !to_json(field.value, depth, data)) return false;
      continue;
    }
    std::string_view text;
    if (field.value.get_string().get(text)) return false;  // id, type, tenant, time: strings
    switch (at) {
      case 0: id = text; break;
      case 1: type = text; break;
      case 2: tenant = text; break;
      default: time = text;
    }
  }
  for (bool s : seen)
    if (!s) return false;
  Envelope& e =
      out.emplace_back(std::string(id), std::string(type), std::string(tenant), 0, std::move(data));
  if (!accept_fact(e, time)) {
    out.pop_back();
    return false;
  }
  batch.texts.push_back(to_text(e));
  return true;
}

}  // namespace

std::optional<Envelope> read_plain_envelope(std::string_view text) {
  ParserUse use;
  if (may_hold_minus_zero(text)) return std::nullopt;
  dom::object fields;
  if (use.parser.parse(text.data(), text.size(), true).get_object().get(fields)) return std::nullopt;
  std::string_view id, type, tenant, time, cause;
  std::optional<seq_no> seq;
  json data;
  std::array<bool, 7> seen{};  // id, type, tenant, time, data, seq, cause
  for (dom::key_value_pair field : fields) {
    const size_t at = member_index(field.key);
    if (at >= seen.size()) continue;    // read_shape passes over other members too
    if (seen[at]) return std::nullopt;  // twice: the general path keeps the last
    seen[at] = true;
    if (at == 4) {
      if (!field.value.is_object() || !to_json(field.value, 1, data)) return std::nullopt;
      continue;
    }
    if (at == 5) {  // json::parse makes an integer without a minus sign unsigned
      int64_t n = -1;
      uint64_t u = 0;
      if (!field.value.get_int64().get(n) && n >= 0) seq = seq_no{static_cast<uint64_t>(n)};
      else if (!field.value.get_uint64().get(u)) seq = seq_no{u};
      else if (!field.value.is_number()) return std::nullopt;  // as read_shape: not a seq
      continue;
    }
    std::string_view value;
    if (field.value.get_string().get(value)) return std::nullopt;  // the general path names it
    switch (at) {
      case 0: id = value; break;
      case 1: type = value; break;
      case 2: tenant = value; break;
      case 3: time = value; break;
      default: cause = value;
    }
  }
  if (id.empty() || type.empty() || tenant.empty() || !seen[4]) return std::nullopt;
  const std::optional<int64_t> ms = parse_rfc3339_ms(time);
  if (!ms) return std::nullopt;
  return Envelope(std::string(id), std::string(type), std::string(tenant), *ms, std::move(data),
                  seq, std::string(cause));
}

std::optional<FactBatch> read_valid_facts(std::string_view body, size_t max_events) {
  ParserUse use;
  if (may_hold_minus_zero(body)) return std::nullopt;
  dom::element root;
  // Copies the body into a padded buffer of its own: simdjson reads past the end in blocks.
  if (use.parser.parse(body.data(), body.size(), true).get(root)) return std::nullopt;
  FactBatch out;
  if (root.is_object()) {
    if (max_events < 1 || !read_event(root, 1, out)) return std::nullopt;
    return out;
  }
  dom::array events;
  if (root.get_array().get(events)) return std::nullopt;  // neither an event nor a batch
  out.array = true;
  const size_t n = events.size();
  // An empty batch is refused, and so is one over the limit, on the general path.
  if (n == 0 || n > max_events) return std::nullopt;
  out.events.reserve(n);
  out.texts.reserve(n);
  for (dom::element event : events)
    if (!read_event(event, 2, out)) return std::nullopt;
  return out;
}

}  // namespace omniroute::events
