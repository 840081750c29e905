#include "events/event_log.hpp"

namespace omniroute::events {

partition_id EventLog::partition_of(std::string_view tenant) const {
  uint32_t h = 2166136261u;
  for (unsigned char c : tenant) {
    h ^= c;
    h *= 16777619u;
  }
  return partition_id{static_cast<int32_t>(h % static_cast<uint32_t>(partitions()))};
}

Status scan_history(EventLog& log, partition_id p, journal_pos end,
                    const std::function<Status(const StoredRecord&)>& fn, journal_pos from,
                    EpochFilter filter, journal_pos* epoch) {
  journal_pos at = from;
  std::vector<StoredRecord> chunk;
  while (at < end) {
    chunk.clear();
    if (Status s = log.read_journal(p, at, 1024, chunk); !s) return s;
    if (chunk.empty()) return Status::error("journal partition " + std::to_string(p.value()) +
                                            " ends before position " +
                                            std::to_string(end.value()));
    for (const auto& r : chunk) {
      if (r.pos >= end) {
        at = end;
        break;
      }
      if (filter.accept(r))
        if (Status s = fn(r); !s) return s;
      at = journal_pos{r.pos.value() + 1};
    }
  }
  if (epoch) *epoch = filter.current();
  return Status::ok();
}

}  // namespace omniroute::events
