#include "adapters/csv_import.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "adapters/ingest.hpp"
#include "events/envelope.hpp"
#include "events/time.hpp"

namespace omniroute::adapters {
namespace {

using events::json;

constexpr size_t batch_rows = 2000;

std::vector<std::string_view> split(std::string_view line, char delimiter) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t at = line.find(delimiter, start);
    if (at == std::string_view::npos) {
      out.push_back(line.substr(start));
      return out;
    }
    out.push_back(line.substr(start, at - start));
    start = at + 1;
  }
}

// The column names a template refers to ("{a}-{b}" -> a, b).
std::vector<std::string> template_columns(const std::string& t) {
  std::vector<std::string> out;
  for (size_t at = t.find('{'); at != std::string::npos; at = t.find('{', at + 1)) {
    size_t end = t.find('}', at);
    if (end == std::string::npos) break;
    out.push_back(t.substr(at + 1, end - at - 1));
  }
  return out;
}

// Reads `text` by a strptime-like format (%Y %y %m %d %H %M %S; other characters literal).
// Returns the fields read, or nullopt when the text does not fit.
struct parts {
  int year = 1970, month = 1, day = 1, hour = 0, minute = 0, second = 0;
};
std::optional<parts> scan(std::string_view text, const std::string& format) {
  parts p;
  size_t i = 0;
  auto digits = [&](size_t min, size_t max) -> std::optional<int> {
    size_t n = 0;
    int v = 0;
    while (n < max && i < text.size() && text[i] >= '0' && text[i] <= '9') {
      v = v * 10 + (text[i] - '0');
      ++i, ++n;
    }
    if (n < min) return std::nullopt;
    return v;
  };
  for (size_t f = 0; f < format.size(); ++f) {
    if (format[f] != '%' || f + 1 == format.size()) {
      if (i >= text.size() || text[i] != format[f]) return std::nullopt;
      ++i;
      continue;
    }
    std::optional<int> v;
    switch (format[++f]) {
      case 'Y': v = digits(4, 4); if (v) p.year = *v; break;
      case 'y': v = digits(2, 2); if (v) p.year = *v < 69 ? 2000 + *v : 1900 + *v; break;
      case 'm': v = digits(1, 2); if (v) p.month = *v; break;
      case 'd': v = digits(1, 2); if (v) p.day = *v; break;
      case 'H': v = digits(1, 2); if (v) p.hour = *v; break;
      case 'M': v = digits(1, 2); if (v) p.minute = *v; break;
      case 'S': v = digits(1, 2); if (v) p.second = *v; break;
      default: return std::nullopt;
    }
    if (!v) return std::nullopt;
  }
  if (i != text.size()) return std::nullopt;
  if (p.month < 1 || p.month > 12 || p.day < 1 || p.day > 31 || p.hour > 23 || p.minute > 59 ||
      p.second > 59)
    return std::nullopt;
  return p;
}

std::optional<double> seconds_of(std::string_view text) {
  if (text.empty() || text.size() > 32) return std::nullopt;
  std::string s(text);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v) || v < 0) return std::nullopt;
  return v;
}

bool contains(const std::vector<std::string>& values, std::string_view v) {
  return std::find(values.begin(), values.end(), v) != values.end();
}

}  // namespace

result<ImportMapping, std::string> ImportMapping::parse(const json& j) {
  if (!j.is_object()) return std::string("the mapping must be a JSON object");
  ImportMapping m;
  std::string why;
  auto text = [&](const json& obj, const char* key, std::string& out, bool required,
                  const std::string& where) {
    auto it = obj.find(key);
    if (it == obj.end()) {
      if (required && why.empty()) why = where + key + ": missing";
      return;
    }
    if (!it->is_string()) {
      if (why.empty()) why = where + key + ": must be a string";
      return;
    }
    out = it->get<std::string>();
  };
  auto list = [&](const json& obj, const char* key, std::vector<std::string>& out,
                  const std::string& where) {
    auto it = obj.find(key);
    if (it == obj.end()) return;
    if (!it->is_array() || !std::all_of(it->begin(), it->end(), [](const json& v) { return v.is_string(); })) {
      if (why.empty()) why = where + key + ": must be a list of strings";
      return;
    }
    out = it->get<std::vector<std::string>>();
  };
  auto object = [&](const char* key) -> const json& {
    static const json empty = json::object();
    auto it = j.find(key);
    if (it == j.end() || !it->is_object()) {
      if (why.empty()) why = std::string(key) + ": missing (an object)";
      return empty;
    }
    return *it;
  };
  std::string delimiter = ",";
  text(j, "delimiter", delimiter, false, "");
  if (delimiter.size() != 1 && why.empty()) why = "delimiter: must be one character";
  m.delimiter = delimiter.empty() ? ',' : delimiter[0];
  std::string offset = "+00:00";
  text(j, "utc_offset", offset, false, "");
  if (auto t = events::parse_utc_offset_ms(offset)) {
    m.utc_offset_ms = *t;
  } else if (why.empty()) {
    why = "utc_offset: must be like +02:00 or -05:30";
  }
  text(j, "id", m.id, true, "");
  text(j, "queue", m.queue, true, "");
  text(j, "channel", m.channel, true, "");
  text(j, "customer", m.customer, false, "");
  text(j, "agent", m.agent, false, "");
  list(j, "none_values", m.none_values, "");
  if (auto it = j.find("attributes"); it != j.end()) {
    if (!it->is_object()) {
      if (why.empty()) why = "attributes: must be an object of name to template";
    } else {
      for (const auto& [k, v] : it->items()) {
        if (!v.is_string()) {
          if (why.empty()) why = "attributes." + k + ": must be a string template";
          continue;
        }
        m.attributes[k] = v.get<std::string>();
      }
    }
  }
  const json& date = object("date");
  text(date, "column", m.date_column, true, "date.");
  text(date, "format", m.date_format, true, "date.");
  text(j, "time_format", m.time_format, true, "");
  text(j, "day_reference", m.day_reference, false, "");
  const json& outcome = object("outcome");
  text(outcome, "column", m.outcome_column, true, "outcome.");
  list(outcome, "answered", m.answered, "outcome.");
  list(outcome, "abandoned", m.abandoned, "outcome.");
  list(outcome, "skip", m.skip, "outcome.");
  if (why.empty() && m.answered.empty()) why = "outcome.answered: must list at least one value";
  const json& queue_entry = object("queue_entry");
  text(queue_entry, "start", m.queue_start, true, "queue_entry.");
  text(queue_entry, "wait_s", m.wait_s, true, "queue_entry.");
  text(queue_entry, "not_queued", m.not_queued, true, "queue_entry.");
  text(j, "arrival_if_not_queued", m.arrival_if_not_queued, true, "");
  const json& service = object("service");
  text(service, "start", m.service_start, true, "service.");
  text(service, "handle_s", m.handle_s, true, "service.");
  if (!why.empty()) return why;
  return m;
}

result<bool, std::string> CsvImporter::read_header(const std::string& raw) {
  std::string line = raw;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  index_.clear();
  auto names = split(line, mapping_.delimiter);
  columns_ = names.size();
  for (size_t i = 0; i < names.size(); ++i) index_.emplace(std::string(names[i]), i);
  std::vector<std::string> needed = {mapping_.date_column,  mapping_.outcome_column,
                                     mapping_.queue_start,  mapping_.wait_s,
                                     mapping_.arrival_if_not_queued, mapping_.service_start,
                                     mapping_.handle_s};
  if (!mapping_.day_reference.empty()) needed.push_back(mapping_.day_reference);
  for (const auto* t : {&mapping_.id, &mapping_.queue, &mapping_.channel, &mapping_.customer,
                        &mapping_.agent})
    for (auto& c : template_columns(*t)) needed.push_back(c);
  for (const auto& [name, t] : mapping_.attributes)
    for (auto& c : template_columns(t)) needed.push_back(c);
  used_.clear();
  for (const auto& c : needed) {
    const auto found = index_.find(c);
    if (found == index_.end()) return "the header has no column '" + c + "' (the mapping uses it)";
    used_.emplace_back(found->second, c);
  }
  std::sort(used_.begin(), used_.end());
  used_.erase(std::unique(used_.begin(), used_.end()), used_.end());
  return true;
}

RowResult CsvImporter::convert(const std::string& raw) const {
  RowResult out;
  std::string_view line = raw;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const auto fields = split(line, mapping_.delimiter);
  if (fields.size() != columns_) {
    out.bad = "has " + std::to_string(fields.size()) + " fields, the header has " +
              std::to_string(columns_);
    return out;
  }
  // A value that is not UTF-8 (a file exported in Latin-1, say) cannot be put in an event's
  // JSON: the row is bad, named by its column (before, writing the event aborted the import).
  for (const auto& [at, name] : used_)
    if (const size_t ok = events::utf8_prefix(fields[at]); ok != fields[at].size()) {
      out.bad = name + ": not UTF-8 (byte " + std::to_string(ok + 1) + " of the value)";
      return out;
    }
  // read_header checked every column the mapping names, and the row has them all.
  auto get = [&](const std::string& name) { return std::string(fields[index_.at(name)]); };
  auto bad = [&](const std::string& col, const std::string& what) {
    out.bad = col + ": '" + get(col) + "' is not " + what;
    return out;
  };
  auto expand = [&](const std::string& t) {
    std::string s;
    for (size_t i = 0; i < t.size(); ++i) {
      size_t end = t[i] == '{' ? t.find('}', i) : std::string::npos;
      if (end == std::string::npos) {
        s.push_back(t[i]);
        continue;
      }
      s += get(t.substr(i + 1, end - i - 1));
      i = end;
    }
    return s;
  };

  const std::string outcome = get(mapping_.outcome_column);
  if (contains(mapping_.skip, outcome)) {
    out.skipped = "outcome " + outcome;
    return out;
  }
  const bool answered = contains(mapping_.answered, outcome);
  if (!answered && !contains(mapping_.abandoned, outcome)) {
    out.bad = mapping_.outcome_column + ": unknown outcome '" + outcome + "'";
    return out;
  }
  const auto date = scan(get(mapping_.date_column), mapping_.date_format);
  if (!date) return bad(mapping_.date_column, "a date of the form " + mapping_.date_format);
  const std::string a_time = "a time of the form " + mapping_.time_format;
  auto time_of = [&](const std::string& col) -> std::optional<int64_t> {
    auto t = scan(get(col), mapping_.time_format);
    if (!t) return std::nullopt;
    return (t->hour * 3600 + t->minute * 60 + t->second) * int64_t{1000};
  };
  const bool queued = get(mapping_.queue_start) != mapping_.not_queued;
  if (!queued && !answered) {
    out.skipped = "abandoned before reaching a queue";
    return out;
  }
  const std::string& arrival_col = queued ? mapping_.queue_start : mapping_.arrival_if_not_queued;
  auto arrival = time_of(arrival_col);
  if (!arrival) return bad(arrival_col, a_time);
  if (!mapping_.day_reference.empty()) {
    auto reference = time_of(mapping_.day_reference);
    if (!reference) return bad(mapping_.day_reference, a_time);
    if (*arrival < *reference) *arrival += 86400000;  // past midnight
  }
  std::optional<double> waited = queued ? seconds_of(get(mapping_.wait_s)) : 0.0;
  if (!waited) return bad(mapping_.wait_s, "a number of seconds");
  std::optional<double> handled = 0.0;
  if (answered) {
    handled = seconds_of(get(mapping_.handle_s));
    if (!handled) return bad(mapping_.handle_s, "a number of seconds");
    if (*handled == 0 && get(mapping_.service_start) == mapping_.not_queued) {
      out.bad = "outcome " + outcome + " but no service was recorded (" + mapping_.service_start +
                " " + get(mapping_.service_start) + ", " + mapping_.handle_s + " 0)";
      return out;
    }
  }
  const int64_t local_ms =
      events::days_from_civil(date->year, static_cast<unsigned>(date->month), static_cast<unsigned>(date->day)) *
          86400000 +
      *arrival;
  const std::string id = expand(mapping_.id);
  json data = {{"contact", id},
               {"queue", expand(mapping_.queue)},
               {"channel", expand(mapping_.channel)},
               {"outcome", answered ? "answered" : "abandoned"},
               {"waited_s", *waited},
               {"queued", queued}};
  if (answered) data["handled_s"] = *handled;
  for (auto [key, t] : {std::pair{"customer", &mapping_.customer}, std::pair{"agent", &mapping_.agent}}) {
    if (t->empty()) continue;
    std::string v = expand(*t);
    if (!v.empty() && !contains(mapping_.none_values, v)) data[key] = v;
  }
  if (!mapping_.attributes.empty()) {
    json attrs = json::object();
    for (const auto& [name, t] : mapping_.attributes) attrs[name] = expand(t);
    data["attributes"] = attrs;
  }
  out.event = json{{"id", id},
                   {"type", "contact.recorded"},
                   {"tenant", tenant_},
                   {"time", events::format_rfc3339_ms(local_ms - mapping_.utc_offset_ms)},
                   {"data", std::move(data)}};
  return out;
}

result<ImportSummary> CsvImporter::run(std::istream& in, events::EventLog& log,
                                       const projections::Store& store,
                                       const std::function<void(size_t)>& progress) {
  ImportSummary summary;
  std::string line;
  size_t line_no = 0;
  std::vector<events::Envelope> batch;
  auto flush = [&]() -> Status {
    if (batch.empty()) return Status::ok();
    auto ingested = ingest(log, store, batch);
    if (!ingested) return Status::error(ingested.error().message);
    for (const auto& r : *ingested) {
      if (r.duplicate) {
        ++summary.duplicates;
      } else {
        ++summary.accepted;
        summary.partitions.insert(r.partition);
      }
    }
    batch.clear();
    return Status::ok();
  };
  // No header to read the rows by: nothing can be imported, and the import fails.
  if (!std::getline(in, line))
    return Status::error("nothing imported (the file is empty: no header line)");
  line_no = 1;
  if (auto header = read_header(line); !header)
    return Status::error("nothing imported (" + header.error() + ")");
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line == "\r") continue;
    ++summary.rows;
    RowResult r = convert(line);
    if (!r.bad.empty()) {
      summary.bad.push_back({line_no, r.bad});
    } else if (!r.skipped.empty()) {
      ++summary.skipped;
      ++summary.skipped_by_reason[r.skipped];
    } else {
      auto env = events::parse_fact(std::move(*r.event));  // the front door's validation
      if (!env) {
        summary.bad.push_back({line_no, env.error().field + ": " + env.error().reason});
      } else {
        batch.push_back(std::move(env.value()));
      }
    }
    if (batch.size() >= batch_rows) {
      if (Status s = flush(); !s) return s;
      if (progress) progress(summary.rows);
    }
  }
  if (Status s = flush(); !s) return s;
  if (progress) progress(summary.rows);
  return summary;
}

}  // namespace omniroute::adapters
