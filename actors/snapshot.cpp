#include "actors/snapshot.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "events/key_hash.hpp"
#include "events/log_line.hpp"
#include "events/packing.hpp"

namespace omniroute::actors {
namespace {

constexpr std::string_view magic = "omniroute snapshot\n";
constexpr uint64_t hash_seed = 0x6f6d6e69726f7574ull;  // fixed: the hash is stored

uint64_t hash_of(std::string_view bytes) {
  return events::hash_word(events::hash_more(hash_seed, bytes), bytes.size());
}

// What the bytes of the state depend on besides snapshot_format.
std::string layout() {
  return routing::Tenant::layout() + "; " + projections::IntervalStats::layout();
}

Status io_error(const std::string& what, const std::string& path) {
  return Status::error(what + " " + path + ": " + std::strerror(errno));
}

// Syncs the file or directory at `path` to disk.
Status sync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return io_error("cannot open", path);
  const int r = ::fsync(fd);
  ::close(fd);
  if (r != 0) return io_error("cannot sync", path);
  return Status::ok();
}

}  // namespace

result<uint64_t> fingerprint_before(events::EventLog& log, partition_id p, journal_pos at) {
  std::vector<events::StoredRecord> last;
  const journal_pos before{at.value() - 1};
  if (Status s = log.read_journal(p, before, 1, last); !s) return s;
  if (last.empty() || last[0].pos != before)
    return Status::error("no journal record at position " + std::to_string(before.value()));
  return hash_of(events::encode(last[0].record));
}

std::string encode_snapshot(partition_id p, const SnapshotPoint& point,
                            const PartitionState& state) {
  const std::string body = encode_state(state);
  return snapshot_header(p, point, body) + body;
}

std::string encode_state(const PartitionState& state, size_t room) {
  events::Appender body;
  body.out.reserve(room);
  events::each_of(body, state.tenants, [&](const auto& kv) {
    body.text(kv.first);
    kv.second.save(body);
  });
  state.intervals.save(body);
  state.schedules.save(body);
  return std::move(body.out);
}

std::string snapshot_header(partition_id p, const SnapshotPoint& point, std::string_view body) {
  events::Appender out;
  out.out.append(magic);
  out.varint(snapshot_format);
  out.text(layout());
  out.integer(p.value());
  out.integer(point.known.upto.value());
  out.integer(point.known.epoch.value());
  out.varint(point.last_record);
  out.integer(point.known.resume.value());
  out.varint(body.size());
  out.varint(hash_of(body));
  return std::move(out.out);
}

result<SnapshotPoint> snapshot_point(std::string_view bytes, partition_id p, size_t* state_at) {
  if (bytes.substr(0, magic.size()) != magic) return Status::error("not a snapshot");
  events::Unpacker in{bytes, magic.size()};
  try {
    if (const uint64_t format = in.varint(); format != snapshot_format)
      return Status::error("written in format " + std::to_string(format) + ", this build reads " +
                           std::to_string(snapshot_format));
    if (in.text() != layout())
      return Status::error("written by a build whose state is laid out otherwise");
    if (const int64_t of = in.integer(); of != p.value())
      return Status::error("of partition " + std::to_string(of) + ", not " +
                           std::to_string(p.value()));
    SnapshotPoint point;
    point.known.upto = journal_pos{in.integer()};
    point.known.epoch = journal_pos{in.integer()};
    point.last_record = in.varint();
    point.known.resume = ingest_offset{in.integer()};
    const uint64_t size = in.varint();
    const uint64_t hash = in.varint();
    if (size != bytes.size() - in.at)
      return Status::error("cut short or grown: " + std::to_string(bytes.size() - in.at) +
                           " bytes of state, the header says " + std::to_string(size));
    if (hash_of(bytes.substr(in.at)) != hash)
      return Status::error("damaged: its state does not match its hash");
    if (state_at) *state_at = in.at;
    return point;
  } catch (const std::exception& e) {
    return Status::error(std::string("damaged: ") + e.what());
  }
}

result<SnapshotPoint> decode_snapshot(std::string_view bytes, partition_id p,
                                      PartitionState& state) {
  size_t state_at = 0;
  auto point = snapshot_point(bytes, p, &state_at);
  if (!point) return point;
  events::Unpacker in{bytes, state_at};
  try {
    events::for_count(in, [&] {
      std::string name(in.text());
      auto t = state.tenants.emplace(name, routing::Tenant(name)).first;
      t->second.restore(in);
    });
    state.intervals.restore(in);
    state.schedules.restore(in);
    if (!in.done()) return Status::error("damaged: bytes after the state");
    return point;
  } catch (const std::exception& e) {
    return Status::error(std::string("damaged: ") + e.what());
  }
}

namespace {

// Why a snapshot taken at `point` cannot be used with the journal and the views as they are,
// or nothing when it can.
std::optional<std::string> unusable(events::EventLog& log, projections::Store& store,
                                    partition_id p, const SnapshotPoint& point) {
  const journal_pos at = point.known.upto;
  const std::string taken = "taken at position " + std::to_string(at.value());
  if (at > store.applied(p))
    return taken + ", ahead of the views at " + std::to_string(store.applied(p).value());
  // The journal holds the record the snapshot was taken after (and so reaches its position).
  auto fingerprint = fingerprint_before(log, p, at);
  if (!fingerprint || *fingerprint != point.last_record)
    return taken + " after a record the journal does not have at " + std::to_string(at.value() - 1);
  return std::nullopt;
}

}  // namespace

std::optional<journal_pos> usable_snapshot_at(events::EventLog& log, projections::Store& store,
                                              partition_id p) {
  auto bytes = read_snapshot_file(store.dir(), p);
  if (!bytes || !*bytes) return std::nullopt;
  auto point = snapshot_point(**bytes, p);
  if (!point || unusable(log, store, p, *point)) return std::nullopt;
  return point->known.upto;
}

std::optional<SnapshotPoint> restore_snapshot(events::EventLog& log, projections::Store& store,
                                              partition_id p, PartitionState& state,
                                              std::string& why) {
  auto unused = [&](std::string reason) {
    log_line() << "omniroute: partition " << p.value() << ": the snapshot is not used (" << reason
               << "); replaying the whole journal\n";
    why = std::move(reason);
    state.clear();
    return std::nullopt;
  };
  auto bytes = read_snapshot_file(store.dir(), p);
  if (!bytes) return unused(bytes.error().message());
  if (!*bytes) return std::nullopt;
  auto point = decode_snapshot(**bytes, p, state);
  if (!point) return unused(point.error().message());
  if (auto why_not = unusable(log, store, p, *point)) return unused(std::move(*why_not));
  return *point;
}

namespace {
std::string snapshots_dir(const std::string& data_dir) { return data_dir + "/snapshots"; }
}  // namespace

std::string snapshot_path(const std::string& data_dir, partition_id p) {
  return snapshots_dir(data_dir) + "/partition-" + std::to_string(p.value());
}

Status write_snapshot_file(const std::string& data_dir, partition_id p, std::string_view bytes,
                           std::string_view more) {
  const std::string dir = snapshots_dir(data_dir), path = snapshot_path(data_dir, p),
                    temp = path + ".new";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::error("cannot make " + dir + ": " + ec.message());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.write(more.data(), static_cast<std::streamsize>(more.size()));
    out.close();
    if (!out) {  // a full disk, most likely: the part written would hold its space until the next
      Status s = io_error("cannot write", temp);
      std::filesystem::remove(temp, ec);
      return s;
    }
  }
  if (Status s = sync_path(temp, O_RDONLY); !s) {
    std::filesystem::remove(temp, ec);
    return s;
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) return io_error("cannot rename over", path);
  return sync_path(dir, O_RDONLY | O_DIRECTORY);
}

result<std::optional<std::string>> read_snapshot_file(const std::string& data_dir, partition_id p) {
  const std::string path = snapshot_path(data_dir, p);
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec == std::errc::no_such_file_or_directory) return std::optional<std::string>();
  if (ec) return Status::error("cannot read " + path + ": " + ec.message());
  std::string bytes(size, '\0');
  std::ifstream in(path, std::ios::binary);
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (!in) return Status::error("cannot read " + path);
  return std::optional<std::string>(std::move(bytes));
}

Status remove_snapshots(const std::string& data_dir) {
  std::error_code ec;
  const std::string dir = snapshots_dir(data_dir);
  std::filesystem::remove_all(dir, ec);
  if (ec) return Status::error("cannot remove " + dir + ": " + ec.message());
  return Status::ok();
}

}  // namespace omniroute::actors
