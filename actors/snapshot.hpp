// Snapshots of a partition host's state (PartitionState: every tenant's routing state, the
// interval statistics, the schedules), so that a recovery replays the journal from where the
// snapshot was taken instead of from its start: restart time bounded by the journal written
// since the last snapshot, not by all of it.
//
// A snapshot is only ever a shortcut: the journal stays the truth, and recovery replays it
// from position 0 whenever a snapshot cannot be used: none, damaged, of another partition or
// journal, written by a build whose state is laid out otherwise (Tenant::layout()), or ahead
// of the views (whose records replay must write). docs/design-notes.md, "Snapshots".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "actors/partition_processor.hpp"

namespace omniroute::actors {

// A hash of the encoding of partition p's journal record just before position `at`, or an
// error when the journal has none there: a snapshot is used only with the journal whose record
// before its position has the fingerprint it recorded (not another journal that reached the
// same position).
result<uint64_t> fingerprint_before(events::EventLog& log, partition_id p, journal_pos at);

// Bumped when what a journal entry does to the state changes without the layout changing: a
// snapshot written before would restore a state the journal no longer makes.
constexpr uint64_t snapshot_format = 1;

// The bytes of a snapshot of partition p's `state` at `point`: a header (format, layout,
// partition, point, length and hash of the body), then the state. In two parts for a partition
// host, which pauses for the first alone: the state's bytes (`room`: how many to make room for
// at once; the last snapshot's size), then the header that goes before them (their hash made
// in the background; the file is written from both, the bytes not copied).
std::string encode_snapshot(partition_id p, const SnapshotPoint& point,
                            const PartitionState& state);
std::string encode_state(const PartitionState& state, size_t room = 0);
std::string snapshot_header(partition_id p, const SnapshotPoint& point, std::string_view state);
// Where a snapshot of partition p was taken, its header and hash checked but its state not
// decoded (`state_at`, if given, receives where the state's bytes begin); the error says why it
// cannot be used.
result<SnapshotPoint> snapshot_point(std::string_view bytes, partition_id p,
                                     size_t* state_at = nullptr);
// Reads a snapshot of partition p into `state` (a fresh one); the error says why it cannot be
// used (and `state` is then to be dropped).
result<SnapshotPoint> decode_snapshot(std::string_view bytes, partition_id p,
                                      PartitionState& state);

// Restores partition p's snapshot into `state` (a fresh one) when it can be used with the
// journal and the views as they are, and answers where it was taken. Otherwise nothing, `state`
// is fresh again, and `why` says why not (left empty when there is no snapshot), as the log does.
std::optional<SnapshotPoint> restore_snapshot(events::EventLog& log, projections::Store& store,
                                              partition_id p, PartitionState& state,
                                              std::string& why);
// Where partition p's snapshot was taken, if restore_snapshot would use it (nothing decoded
// beyond its header, nothing logged).
std::optional<journal_pos> usable_snapshot_at(events::EventLog& log, projections::Store& store,
                                              partition_id p);

// The snapshot files of a data directory: DIR/snapshots/partition-P, each replaced whole
// (written to a temporary file, synced, renamed over the old one, the directory synced).
std::string snapshot_path(const std::string& data_dir, partition_id p);
// The file holds `bytes`, then `more` (a header, then the state it heads).
Status write_snapshot_file(const std::string& data_dir, partition_id p, std::string_view bytes,
                           std::string_view more = {});
// The file's bytes, nothing when there is none, or an error when it cannot be read.
result<std::optional<std::string>> read_snapshot_file(const std::string& data_dir, partition_id p);
// Removes every partition's snapshot (replay --rebuild starts from the journal alone).
Status remove_snapshots(const std::string& data_dir);

}  // namespace omniroute::actors
