// The journal record: the unit written to a journal partition (docs/journal-format.md).
//
// One record holds everything that one ingest record caused: the fact (or its refusal) and the
// decisions taken because of it. A record is written whole or not at all, on both engines, so a
// fact is never journaled without its decisions. An epoch marker is a record with no entries,
// written by a new owner of the partition before anything else; its position is that owner's
// epoch, and every record it writes carries that epoch.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "events/types.hpp"

namespace omniroute::events {

enum class entry_kind : uint8_t { fact = 1, decision = 2, refusal = 3 };

struct JournalEntry {
  entry_kind kind = entry_kind::fact;
  seq_no seq;            // offset in the tenant's journal
  std::string tenant;
  // Facts: the sender's idempotency key. Refusals: the key of the refused fact (a refused key
  // is spent: resending it gets the same refusal). Decisions: the decision's own id.
  std::string id;
  std::string envelope;  // canonical envelope JSON, with seq (and cause on decisions)
};

struct JournalRecord {
  bool marker = false;
  journal_pos epoch{-1};        // the writer's epoch: the position of its marker
  ingest_offset ingest{-1};     // the ingest record these entries came from (-1 on markers)
  std::vector<JournalEntry> entries;
};

struct StoredRecord {
  journal_pos pos;
  JournalRecord record;
};

std::string encode(const JournalRecord& r);
// encode(r) appended to `out`; encoded_size(r) is the number of bytes it appends.
void encode_into(std::string& out, const JournalRecord& r);
size_t encoded_size(const JournalRecord& r);
// Fails with a message naming what is corrupt.
result<JournalRecord> decode(std::string_view bytes);

// Tells which records of a journal partition are history. Feed it every record in journal
// order from position 0 (or from a position with the epoch current there): a marker raises the
// epoch, and a record whose epoch is older than the current one was written by an owner that
// had already lost the partition (a zombie) and is ignored.
class EpochFilter {
 public:
  EpochFilter() = default;
  explicit EpochFilter(journal_pos current) : current_(current) {}
  // True when `r` is history (a non-marker record of the current epoch).
  bool accept(const StoredRecord& r) {
    if (r.record.marker) {
      if (r.pos > current_) current_ = r.pos;
      return false;
    }
    return r.record.epoch >= current_;
  }
  journal_pos current() const { return current_; }

 private:
  journal_pos current_{-1};
};

}  // namespace omniroute::events
