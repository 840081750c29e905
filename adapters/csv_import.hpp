// Import of call-by-call history (a CSV/TSV export of an ACD or ticket system) as
// `contact.recorded` events, through the same validation and ingest path as live events.
//
// A mapping (JSON, documented in docs/import.md) names the columns and formats and how to derive
// each contact's queue, arrival, wait, outcome and handle time. Rows the mapping cannot turn
// into a valid event are reported with their line number and reason and change nothing; rows the
// mapping says are not queue contacts (e.g. callers who hung up in the IVR) are counted as
// skipped. Event ids come from the row (the mapping's `id` template), so importing a file again
// appends nothing new.
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "events/envelope.hpp"
#include "events/event_log.hpp"
#include "projections/store.hpp"

namespace omniroute::adapters {

struct ImportMapping {
  char delimiter = ',';
  int64_t utc_offset_ms = 0;  // local time = UTC + offset
  std::string id, queue, channel, customer, agent;  // templates: "{column}" parts and text
  std::vector<std::string> none_values;             // values meaning "none" (customer, agent)
  std::map<std::string, std::string> attributes;    // name -> template
  std::string date_column, date_format;             // strptime-like: %Y %y %m %d
  std::string time_format;                          // %H %M %S
  std::string day_reference;  // a time column: an arrival earlier than it is on the next day
  std::string outcome_column;
  std::vector<std::string> answered, abandoned, skip;  // outcome values
  std::string queue_start, wait_s, not_queued;  // queue entry time, wait in seconds, "no entry"
  std::string arrival_if_not_queued;            // time column used when there is no queue entry
  std::string service_start, handle_s;

  // Reads a mapping; the error names the key that is missing or wrong.
  static result<ImportMapping, std::string> parse(const events::json& j);
};

struct BadRow {
  size_t line;  // 1-based, the header is line 1
  std::string reason;
};

struct ImportSummary {
  size_t rows = 0, accepted = 0, duplicates = 0, skipped = 0;
  std::map<std::string, size_t> skipped_by_reason;
  std::vector<BadRow> bad;  // every bad row, in file order
  std::set<partition_id> partitions;  // the ingest partitions written to
};

// What one row becomes: an event, a skip (with why), or a bad row (with why).
struct RowResult {
  std::optional<events::json> event;
  std::string skipped;  // reason, when skipped
  std::string bad;      // reason, when bad
};

class CsvImporter {
 public:
  CsvImporter(ImportMapping mapping, std::string tenant)
      : mapping_(std::move(mapping)), tenant_(std::move(tenant)) {}

  // Checks the header against the mapping's columns; the error names a missing column.
  result<bool, std::string> read_header(const std::string& line);
  // Turns one data row (without its line ending) into an event (not yet validated).
  RowResult convert(const std::string& line) const;

  // Reads the whole stream: converts, validates (events::parse_fact, as the front door does)
  // and ingests in batches. `progress` is called now and then with the rows read so far.
  // Fails when the file has no header it can read (nothing is imported) or when the ingest log
  // fails; bad rows are counted, not a failure.
  result<ImportSummary> run(std::istream& in, events::EventLog& log, const projections::Store& store,
                            const std::function<void(size_t rows)>& progress = {});

 private:
  ImportMapping mapping_;
  std::string tenant_;
  std::map<std::string, size_t> index_;  // column name -> position
  std::vector<std::pair<size_t, std::string>>
      used_;  // the columns the mapping reads: position, name
  size_t columns_ = 0;
};

}  // namespace omniroute::adapters
