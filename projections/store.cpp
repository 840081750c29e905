#include "projections/store.hpp"

#include <rocksdb/convenience.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/table.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "events/bytes.hpp"
#include "events/compact_doc.hpp"
#include "events/envelope.hpp"
#include "events/log_line.hpp"
#include "projections/crc32c.hpp"
#include "projections/info_log.hpp"
#include "projections/whole_key_memtable.hpp"

namespace omniroute::projections {
namespace {

using events::get_be;
using events::put_be;

const char* const log_cfs[] = {"ingest", "log_meta"};
// The journal: "journal.<partition>" for each partition; a directory written before the
// journal was split by partition has one "journal" for all.
const char* const legacy_journal = "journal";
constexpr std::string_view journal_prefix = "journal.";
const char* const view_meta = "view_meta";

// Appends tenant_key(tenant, id) to `k`.
void append_tenant_key(std::string& k, std::string_view tenant, std::string_view id) {
  k.reserve(k.size() + tenant.size() + 1 + id.size());
  k.append(tenant).push_back('\0');
  k += id;
}

std::string tenant_key(const std::string& tenant, const std::string& id) {
  std::string k;
  append_tenant_key(k, tenant, id);
  return k;
}

std::string seq_key(const std::string& tenant, uint64_t seq) {
  std::string k = tenant;
  k.push_back('\0');
  put_be(k, seq, 8);
  return k;
}

std::string applied_key(partition_id p) { return "applied/" + std::to_string(p.value()); }

// In view_meta: how the journal index is kept. Earlier versions kept an entry per journal
// record and wrote "local" (or nothing, for copies); their views are rebuilt on opening.
const char* const journal_index_key = "journal_index";
const char* recorded_name(journal_index how) {
  return how == journal_index::local ? "local.buckets" : "copy.buckets";
}

// The journal index keeps a tenant's records in buckets of consecutive seqs: a record is
// added (a RocksDB merge: no read) to the bucket of its first seq. A batch of views adds one
// operand per bucket it touches instead of a key per record, and a bucket's value does not
// depend on how the records were batched, so rebuilt views equal live ones.
constexpr uint64_t index_bucket_seqs = 256;

// The journal index's merge: a bucket's items, in the order they were added.
class AppendItems : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value,
             std::string* new_value, rocksdb::Logger*) const override {
    new_value->assign(existing ? existing->data() : "", existing ? existing->size() : 0);
    new_value->append(value.data(), value.size());
    return true;
  }
  const char* Name() const override { return "omniroute.AppendIndexItems"; }
};

// Interval keys: tenant \0 queue \0 bucket start (8 bytes, big-endian, sign bit flipped so
// that times before 1970 sort first) channel.
std::string interval_prefix(const std::string& tenant, const std::string& queue) {
  std::string k = tenant;
  k.push_back('\0');
  k += queue;
  k.push_back('\0');
  return k;
}

std::string interval_key(const IntervalKey& key) {
  std::string k = interval_prefix(key.tenant, key.queue);
  put_be(k, static_cast<uint64_t>(key.bucket_ms) ^ (uint64_t{1} << 63), 8);
  k += key.channel;
  return k;
}

// Adds interval counters: the intervals view is written with merges only, so no write reads.
class AddCounters : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value,
             std::string* new_value, rocksdb::Logger*) const override {
    auto add = IntervalCounters::decode({value.data(), value.size()});
    if (!add) return false;
    if (existing) {
      auto sum = IntervalCounters::decode({existing->data(), existing->size()});
      if (!sum) return false;
      sum->add(*add);
      *new_value = sum->encode();
    } else {
      *new_value = add->encode();
    }
    return true;
  }
  const char* Name() const override { return "omniroute.AddIntervalCounters"; }
};

// The JSON document a stored value holds (compact or text), or nullopt.
std::optional<json> parsed_document(std::string_view stored) {
  auto text = events::document_text(stored);
  if (!text) return std::nullopt;
  json j = json::parse(*text, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

// Views whose values are JSON documents (the others hold seqs, index items and counters).
bool holds_documents(view v) {
  return v != view::journal && v != view::ids && v != view::intervals;
}

// The journeys are read by customer, a prefix of their keys: the tenant key through the
// customer's 0x1f (journey::Journeys::visit_prefix).
bool reads_by_prefix(view v) { return v == view::journeys; }
const std::shared_ptr<const rocksdb::SliceTransform>& visit_prefix() {
  static const std::shared_ptr<const rocksdb::SliceTransform> p = prefix_through('\x1f');
  return p;
}

constexpr size_t default_memtable_bytes = size_t{128} << 20;

// Table files with a bloom filter of `filter_bits` a key, in data blocks of `block_bytes` (0:
// RocksDB's 4 KiB).
std::shared_ptr<rocksdb::TableFactory> table_factory(size_t block_bytes, double filter_bits = 10) {
  rocksdb::BlockBasedTableOptions t;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(filter_bits));
  if (block_bytes > 0) t.block_size = block_bytes;
  return std::shared_ptr<rocksdb::TableFactory>(rocksdb::NewBlockBasedTableFactory(t));
}

// LZ4 when this RocksDB was built with it (Debian's is), else snappy, RocksDB's default.
rocksdb::CompressionType fast_compression() {
  static const rocksdb::CompressionType c = [] {
    for (auto t : rocksdb::GetSupportedCompressions())
      if (t == rocksdb::kLZ4Compression) return t;
    return rocksdb::kSnappyCompression;
  }();
  return c;
}

// The views whose keys are ids (of events, conversations, customers, tenants' journal
// buckets): they come in no order.
bool keyed_by_id(view v) {
  return v == view::ids || v == view::conversations || v == view::customers ||
         v == view::journeys || v == view::journal;
}

rocksdb::ColumnFamilyOptions cf_options(size_t memtable_bytes) {
  rocksdb::ColumnFamilyOptions o;
  // 128 MiB unless told (RocksDB's default is 64): half as many flushes, so half as many L0
  // files for the compactions below to merge. At 3 million events, 8 interleaved runs each
  // (medians): e2e 70,500 -> 78,300 events/s, RocksDB's threads 5.45 -> 3.9 µs per event. The
  // cost is memory: a full memtable, and the one being flushed, are twice as large.
  o.write_buffer_size = memtable_bytes > 0 ? memtable_bytes : default_memtable_bytes;
  o.table_factory = table_factory(0);
  // When this was measured, the journal was one column family for all partitions and the views were
  // compacted by levels (both since changed, below); then an L0 file of the journal (all
  // partitions' new positions) or of a view keyed by id overlaps nearly all of L1, so each L0 -> L1
  // compaction rewrites L1 whatever the number of L0 files it takes: taking 8 rather than RocksDB's
  // 4 rewrites L1 half as often. Measured on the benchmark at 1 million events, 12 interleaved runs
  // each: RocksDB's threads 4.1 -> 2.2 µs per event (medians), partly because the run ends before a
  // second compaction is due. The lasting gain is smaller: at 3 million events (four runs of each
  // build, one build after the other, so in different spells) 5.2-6.8 -> 4.8-5.2 µs, and a later
  // run of this build in a slow spell 5.2-6.2. Reads see up to twice as many L0 files, each behind
  // a bloom filter; the front door's lookups cost no more within the noise (4.75 -> 4.7 µs per
  // event). A run leaves more uncompacted on disk: 162 -> 176 bytes an event.
  o.level0_file_num_compaction_trigger = 8;
  // Room for a flush asked for (Store::flush, at each snapshot) while the memtables of an
  // automatic one are still being written: with RocksDB's 2, that made two waiting in every
  // column family, and RocksDB stopped all writes until the first was on disk (its LOG:
  // "Stopping writes because we have 2 immutable memtables"): decisions 0.1-1 s late under
  // load. A third memtable is memory only while two are being flushed.
  o.max_write_buffer_number = 3;
  return o;
}

// A partition's column family of the journal. Its keys are the partition's positions, so each
// flush writes a table file whose keys all follow those already stored: a compaction moves it
// down a level as it is (a "trivial move") instead of rewriting the level. In one column family
// for all partitions, every flush's file spanned every partition's range, so each compaction of
// level 0 merged it into, and rewrote, all of level 1 (measured: see docs/design-notes.md).
// The partitions share one memtable's room, so that the journal fills and flushes as often as
// it did in one.
rocksdb::ColumnFamilyOptions journal_options(size_t memtable_bytes, size_t partitions) {
  const size_t bytes = memtable_bytes > 0 ? memtable_bytes : default_memtable_bytes;
  return cf_options(std::max(bytes / std::max<size_t>(partitions, 1), size_t{64} << 10));
}

std::string journal_name(size_t p) { return std::string(journal_prefix) + std::to_string(p); }

// The partition of a column family named journal.<p>, or nullopt for any other name.
std::optional<size_t> journal_partition(const std::string& name) {
  if (name.size() <= journal_prefix.size() ||
      name.compare(0, journal_prefix.size(), journal_prefix) != 0)
    return std::nullopt;
  size_t p = 0;
  for (size_t i = journal_prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || p > 1'000'000) return std::nullopt;
    p = p * 10 + static_cast<size_t>(name[i] - '0');
  }
  return p;
}

}  // namespace

const char* name_of(view v) {
  switch (v) {
    case view::conversations: return "conversations";
    case view::agents: return "agents";
    case view::queues: return "queues";
    case view::journal: return "journal_index";
    case view::ids: return "ids";
    case view::intervals: return "intervals";
    case view::schedules: return "schedules";
    case view::customers: return "customers";
    case view::journeys: return "journeys";
    case view::decisions: return "decisions";
    case view::outcomes: return "outcomes";
    case view::policies: return "policies";
  }
  return "?";
}

std::vector<rocksdb::ColumnFamilyDescriptor> Store::column_families(size_t memtable_bytes) {
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  descs.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options(memtable_bytes));
  // The column families read only by whole key keep a memtable that sorts once, at its flush
  // (whole_key_memtable.hpp): the views below, and the two of positions (the ingest cursors,
  // the views' applied positions), whose few keys are rewritten at every step. A skiplist
  // insert of yet another version of one of those keys cost 7,600 instructions (callgrind,
  // a partition host's steps: the agents', queues' and positions' 9,600 inserts 73M, then
  // 3.3M; the host 3,883M -> 3,822M).
  auto hashed = [](rocksdb::ColumnFamilyOptions& o) {
    o.memtable_factory = std::make_shared<WholeKeyMemTableFactory>();
  };
  for (const char* n : log_cfs) {
    descs.emplace_back(n, cf_options(memtable_bytes));
    if (std::string_view(n) == "log_meta") hashed(descs.back().options);
  }
  for (view v : all_views) {
    descs.emplace_back(name_of(v), cf_options(memtable_bytes));
    rocksdb::ColumnFamilyOptions& o = descs.back().options;
    if (v == view::intervals) o.merge_operator = std::make_shared<AddCounters>();
    if (v == view::journal) o.merge_operator = std::make_shared<AppendItems>();
    if (v == view::ids) {
      // Every new event's id is looked up twice (front door and partition host), and almost
      // always missing: a bloom filter in front of the memtable answers those without a search.
      // 0.25% of the write buffer (330 KiB at 128): every column family flushes when the
      // journal's memtable fills, at about 250,000 events in the benchmark, so 10.7 bits a key
      // there (1% false positives; a false positive costs one look into the memtable's index).
      // Each id's fact puts at least its text into the journal's memtable, so this one holds
      // fewer than a million keys. It was 5%, then 1% (1.3 MiB, 43 bits a key): each insert's
      // bit was a cache miss, about 78% of MemTable::Add's own samples; at 330 KiB that
      // instruction's samples fell from 138 to 82 in a benchmark run, and the front door's
      // MultiGet 1.2-1.7% -> 0.9-1.2% of all samples. Without the filter, lookups in the
      // memtable cost 6-7% of all samples instead of 1-2% (measured, dropped).
      o.memtable_prefix_bloom_size_ratio = 0.0025;
      o.memtable_whole_key_filtering = true;
    }
    // So do the journeys, read by customer (a prefix); the others keep RocksDB's skiplist.
    // RocksDB's own hashed memtables (hash-linked lists, the whole key as prefix) were tried
    // for the first and dropped: their flush sorts through a new skiplist, about 10,600
    // instructions a key, on top of a pass over 200,000 buckets (a million events, three runs
    // each: hashed 58,600-65,900 events/s, RocksDB's threads 7.1-8.3 µs per event; skiplists
    // 86,300-93,200, 1.9-2.1 µs).
    if (v == view::ids || v == view::conversations || v == view::customers || v == view::agents ||
        v == view::queues || reads_by_prefix(v))
      hashed(o);
    if (reads_by_prefix(v)) o.prefix_extractor = visit_prefix();
    // The views keyed by id take their keys in no order, so each level-0 file overlaps all of
    // level 1: compacted by levels, every compaction of level 0 rewrote level 1, and each level
    // was rewritten again into the next. Universal compaction merges sorted runs of like sizes
    // instead. One server under bench/serve_load.py, compactions of these views by
    // bench/compactions.py: 10 million events 25.4 and 28.1 s of CPU by levels (36.3 s when the
    // journal was compacted too), 19.2 and 21.4 s universal; 20 million 92.8 s
    // (ids 34.9, journeys 31.6, conversations 18.1, journal index 7.9) against 48.5, 5.0 GB
    // written against 2.8, disk at the end 2.8 against 2.9 GB. The price: when a family's runs
    // outgrow its last one twice over, it is rewritten whole (18 such compactions in the
    // 20-million run, counted above), its disk up to twice its size meanwhile. A directory whose
    // views were compacted by levels opens as it is (each level read as a sorted run).
    if (keyed_by_id(v)) {
      o.compaction_style = rocksdb::kCompactionStyleUniversal;
      // Those compactions rewrite each of these views whole, again and again (nearly all their
      // records are new keys, so the newer runs soon outgrow the last one), so what compacting a
      // record costs is most of what a server under sustained load spends on them: the snappy of
      // the blocks read and written (23% of the compaction threads' samples), and per block its
      // read, index entry and checksum. LZ4 for all five, and blocks of 32 KiB for the documents
      // and the journal index, read only by the query API. One server under bench/serve_load.py,
      // compaction CPU by bench/compactions.py: 10 million events 20.5-22.4 s (three runs) -> 10.0
      // s; 20 million 53.8 s (a build ran beside part of it; 48.5 in an earlier session) -> 30.7 s
      // (30.6 and 34.0 in two runs with the ids' filters below), disk 2.9 -> 2.6 GB. A record's
      // compaction at 20 million: journeys 1,744 -> 792 ns, conversations 1,086 -> 503, journal
      // index 12,416 -> 5,572, ids 401 -> 335 (theirs is a cost per key). The ids keep blocks of 4
      // KiB: every new event's id is looked up in them, and a bloom filter's false positive (per
      // table file; below) reads a whole block. Flushes write these files too: the ingest benchmark
      // (a million events) is unchanged within its spells, and leaves 148 bytes an event on disk
      // instead of 166.
      o.compression = fast_compression();
      // The ids' filters take 16 bits a key instead of 10: a new id is looked up in every table
      // file of them (5 on average, up to 9, over a 10-million-event run), and each false positive
      // (measured on a file of 500,000 ids: 0.97% of absent ids at 10 bits, 0.083% at 16) costs an
      // index seek and a data block's read. Same driver, 10 million events, two runs each,
      // interleaved: the front door's CPU 30.9 and 27.4 s -> 27.7 and 25.9 s (about 0.23 µs an
      // event: within the spells' reach, and about what 5% of lookups each reading a block would
      // cost); 20 million ids take 40 MB of filters, not 25.
      o.table_factory = v == view::ids ? table_factory(0, 16) : table_factory(size_t{32} << 10);
    }
  }
  descs.emplace_back(view_meta, cf_options(memtable_bytes));
  hashed(descs.back().options);
  return descs;
}

rocksdb::DBOptions Store::db_options() {
  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.IncreaseParallelism(2);
  // Measured: the single-writer memtable insert path makes a partition host 17% faster
  // (53k -> 62k events/s on one thread); the concurrent one buys nothing on 2 cores. Again on
  // the ingest benchmark: median of 4 interleaved runs 64,900 -> 50,900 events/s.
  options.allow_concurrent_memtable_write = false;
  // The views are written without the WAL (ViewBatch::commit): every column family is flushed
  // at the same point, so what a crash leaves of them is the views as of one moment with the
  // applied positions of that moment, which recovery brings up to the journal.
  options.atomic_flush = true;
  // RocksDB keeps every table file open unless told how many it may. Under a low limit of
  // descriptors (a hard limit below 65,536: the process raises its soft limit to the hard one
  // at start), it keeps 512 of them (half, under 1,024) for the HTTP connections (one a
  // thread) and Kafka's sockets and caches the tables it opens in the rest, instead of failing
  // to open one ("Too many open files": a background error that stops every write).
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < 65536)
    options.max_open_files =
        static_cast<int>(files.rlim_cur > 1024 ? files.rlim_cur - 512 : files.rlim_cur / 2);
  return options;
}

namespace {

// The column families to open a directory with (`existing`, its families; none if new): every
// directory's, and the journal's it has (see journal_options).
result<std::vector<rocksdb::ColumnFamilyDescriptor>> families_of(
    const std::vector<std::string>& existing, size_t memtable_bytes) {
  std::vector<rocksdb::ColumnFamilyDescriptor> out = Store::column_families(memtable_bytes);
  std::vector<size_t> partitions;
  bool legacy = false;
  for (const std::string& name : existing) {
    if (name == legacy_journal) legacy = true;
    if (auto p = journal_partition(name)) partitions.push_back(*p);
  }
  if (legacy && !partitions.empty())
    return Status::error("the data directory has both a journal and a journal by partition");
  if (legacy) out.emplace_back(legacy_journal, cf_options(memtable_bytes));
  for (size_t p : partitions)
    out.emplace_back(journal_name(p), journal_options(memtable_bytes, partitions.size()));
  return out;
}

// The families a directory has; none for a new one (any other failure shows when DB::Open
// meets the directory).
std::vector<std::string> existing_families(const std::string& dir) {
  std::vector<std::string> existing;
  if (!rocksdb::DB::ListColumnFamilies(Store::db_options(), dir, &existing).ok()) existing.clear();
  return existing;
}

}  // namespace

result<std::vector<rocksdb::ColumnFamilyDescriptor>> Store::column_families_of(
    const std::string& dir, size_t memtable_bytes) {
  return families_of(existing_families(dir), memtable_bytes);
}

// RocksDB's background errors: a write or flush that failed puts the database in read-only
// mode (a hard error) until its recovery resumes it; what it refuses writes for meanwhile.
class WriteErrors : public rocksdb::EventListener {
 public:
  const char* Name() const override { return "omniroute.WriteErrors"; }
  void OnBackgroundError(rocksdb::BackgroundErrorReason, rocksdb::Status* error) override {
    // A soft error (a compaction's, for want of space) leaves writes going.
    if (!error || error->ok() || error->severity() < rocksdb::Status::Severity::kHardError) return;
    if (error->IsShutdownInProgress()) return;  // a flush cut short by the close: not the disk
    std::lock_guard<std::mutex> lock(mu_);
    error_ = error->ToString();
    lasting_ = lasting_ || error->severity() >= rocksdb::Status::Severity::kFatalError;
    log_line() << "omniroute: the store refuses writes: " << *error_
               << (lasting_ ? " (RocksDB does not recover from this by itself: the store must be "
                              "opened again)"
                            : "")
               << "\n";
  }
  void OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (info.new_bg_error.ok()) {
      if (error_) log_line() << "omniroute: the store takes writes again\n";
      error_.reset();
    } else {
      error_ = info.new_bg_error.ToString();
    }
  }
  std::optional<std::string> error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }
  bool lasting() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lasting_;
  }

 private:
  mutable std::mutex mu_;
  std::optional<std::string> error_;
  bool lasting_ = false;  // of a severity RocksDB does not resume from: until the store closes
};

std::optional<std::string> Store::write_error() const { return write_errors_->error(); }

bool Store::needs_reopen() const { return write_errors_->lasting(); }

namespace {

// The process holding the RocksDB lock of `dir` (DIR/LOCK, an fcntl lock), if another one does:
// /proc/locks names each lock's process and its file's device and inode. Asked before the open
// so that a second process names the first, and leaves its info log alone (the open moves
// DIR/LOG aside before RocksDB finds the lock taken: the running server's log, renamed).
std::optional<long> lock_holder(const std::string& dir) {
  struct stat lock {};
  if (::stat((dir + "/LOCK").c_str(), &lock) != 0) return std::nullopt;
  std::ifstream locks("/proc/locks");
  std::string line;
  while (std::getline(locks, line)) {
    // "1: POSIX  ADVISORY  WRITE 27140 08:01:1234567 0 EOF"; a waiter's line has "->" first.
    std::istringstream fields(line);
    std::string id, kind, advisory, mode, file;
    long pid = 0;
    fields >> id >> kind;
    if (kind == "->") fields >> kind;
    fields >> advisory >> mode >> pid >> file;
    unsigned major = 0, minor = 0;
    unsigned long long inode = 0;
    if (!fields || std::sscanf(file.c_str(), "%x:%x:%llu", &major, &minor, &inode) != 3) continue;
    if (inode == lock.st_ino && makedev(major, minor) == lock.st_dev && pid > 0 &&
        pid != ::getpid())
      return pid;
  }
  return std::nullopt;
}

}  // namespace

result<std::unique_ptr<Store>> Store::open(const std::string& dir, size_t memtable_bytes,
                                           rocksdb::Env* env) {
  (void)rocksdb_crc32c();  // chosen and checked before RocksDB reads or writes a checksum
  // The column families the directory has are opened; the missing ones (all of them in a new
  // directory) are then created in one call. DB::Open with create_missing_column_families
  // creates them one by one, each rewriting and re-reading the options file: a new directory
  // took 0.34 s to open, now 0.10 s. The journal's are made when the log is opened
  // (journal_families), which knows how many partitions it has.
  const std::vector<std::string> existing = existing_families(dir);
  auto all = families_of(existing, memtable_bytes);
  if (!all)
    return Status::error("cannot open the data directory " + dir + ": " + all.error().message());
  std::vector<rocksdb::ColumnFamilyDescriptor> present, missing;
  for (const auto& d : *all) {
    const bool exists = d.name == rocksdb::kDefaultColumnFamilyName ||
                        std::find(existing.begin(), existing.end(), d.name) != existing.end();
    (exists ? present : missing).push_back(d);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles, created;
  rocksdb::DB* raw = nullptr;
  if (auto pid = lock_holder(dir))
    return Status::error("cannot open the data directory " + dir + ": process " +
                         std::to_string(*pid) + " has it open (a server? stop it first)");
  rocksdb::DBOptions options = db_options();
  options.info_log = open_info_log(dir);  // if it cannot be opened, RocksDB's own (and its error)
  if (env) options.env = env;
  auto write_errors = std::make_shared<WriteErrors>();
  options.listeners.push_back(write_errors);
  auto s = rocksdb::DB::Open(options, dir, present, &handles, &raw);
  if (!s.ok()) return Status::error("cannot open the data directory " + dir + ": " + s.ToString());
  std::unique_ptr<Store> store(new Store);
  store->dir_ = dir;
  store->write_errors_ = std::move(write_errors);
  store->db_.reset(raw);
  store->memtable_bytes_ = memtable_bytes;
  for (size_t i = 0; i < present.size(); ++i) store->keep_family(present[i].name, handles[i]);
  if (!missing.empty()) {
    s = raw->CreateColumnFamilies(missing, &created);
    for (size_t i = 0; i < created.size(); ++i) store->keep_family(missing[i].name, created[i]);
    if (!s.ok())
      return Status::error("cannot create the column families of " + dir + ": " + s.ToString());
  }
  for (view v : all_views) store->view_cfs_[static_cast<size_t>(v)] = store->cfs_.at(name_of(v));
  store->meta_cf_ = store->cfs_.at(view_meta);
  std::string how;
  auto got = raw->Get(rocksdb::ReadOptions(), store->meta_cf_, journal_index_key, &how);
  if (!got.ok() && !got.IsNotFound())
    return Status::error("cannot read how the journal index is kept: " + got.ToString());
  // Nothing recorded: a new directory, or copies kept by an earlier version.
  if (got.ok()) {
    if (how == recorded_name(journal_index::local) || how == recorded_name(journal_index::copy)) {
      store->index_ = how == recorded_name(journal_index::local) ? journal_index::local : journal_index::copy;
      store->index_current_ = true;
    } else if (how == "local") {  // pointers kept by an earlier version
      store->index_ = journal_index::local;
    } else {
      return Status::error("the data directory records an unknown journal index '" + how + "'");
    }
  }
  return store;
}

Store::~Store() {
  if (!db_) return;
  for (auto& [name, h] : cfs_) db_->DestroyColumnFamilyHandle(h);
  db_->Close();
}

void Store::keep_family(const std::string& name, rocksdb::ColumnFamilyHandle* handle) {
  cfs_[name] = handle;
  // The old layout's one journal serves every partition: at 0, the only place.
  const std::optional<size_t> p =
      name == legacy_journal ? std::optional<size_t>{0} : journal_partition(name);
  if (!p) return;
  if (journal_cfs_.size() <= *p) journal_cfs_.resize(*p + 1, nullptr);
  journal_cfs_[*p] = handle;
}

events::EmbeddedHandles Store::log_handles() {
  return {db_.get(), cfs_.at("ingest"), cfs_.at("log_meta"),
          [this](int partitions) { return journal_families(partitions); }};
}

result<std::vector<rocksdb::ColumnFamilyHandle*>> Store::journal_families(int partitions) {
  const size_t n = partitions > 0 ? static_cast<size_t>(partitions) : 0;
  if (cfs_.count(legacy_journal))
    return std::vector<rocksdb::ColumnFamilyHandle*>(n, cfs_.at(legacy_journal));
  if (journal_cfs_.size() > n)
    return Status::error("the data directory's journal has " + std::to_string(journal_cfs_.size()) +
                         " partitions, the log " + std::to_string(n));
  // Those missing: all of them for a new log, or those a crash kept from being made (the
  // partition count is recorded before they are).
  std::vector<rocksdb::ColumnFamilyDescriptor> missing;
  for (size_t p = 0; p < n; ++p)
    if (p >= journal_cfs_.size() || !journal_cfs_[p])
      missing.emplace_back(journal_name(p), journal_options(memtable_bytes_, n));
  if (!missing.empty()) {
    std::vector<rocksdb::ColumnFamilyHandle*> created;
    auto s = db_->CreateColumnFamilies(missing, &created);
    for (size_t i = 0; i < created.size(); ++i) keep_family(missing[i].name, created[i]);
    if (!s.ok())
      return Status::error("cannot create the journal's column families: " + s.ToString());
  }
  return journal_cfs_;
}

result<bool> Store::index_journal(journal_index how) {
  if (how == index_ && index_current_) return false;
  index_ = how;
  // Every view write stores an applied position: with none, no view holds anything, and a
  // clear would only leave range tombstones for every later lookup to step over.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_cf_));
  it->Seek("applied/");
  if (!it->Valid() || !it->key().starts_with("applied/")) {
    if (Status s = record_index(); !s) return s;
    return false;
  }
  if (Status s = clear_views(); !s) return s;  // records the new way once the views are empty
  return true;
}

Status Store::record_index() {
  auto s = db_->Put(rocksdb::WriteOptions(), meta_cf_, journal_index_key, recorded_name(index_));
  if (!s.ok()) return Status::error("cannot record how the journal index is kept: " + s.ToString());
  index_current_ = true;
  return Status::ok();
}

rocksdb::ColumnFamilyHandle* Store::cf(view v) const { return view_cfs_[static_cast<size_t>(v)]; }

std::optional<json> Store::document(view v, const std::string& tenant, const std::string& id) const {
  std::string value;
  if (!db_->Get(rocksdb::ReadOptions(), cf(v), tenant_key(tenant, id), &value).ok())
    return std::nullopt;
  return parsed_document(value);
}

std::vector<json> Store::documents_with_prefix(view v, const std::string& tenant,
                                               const std::string& prefix, size_t limit) const {
  std::vector<json> out;
  if (limit == 0) return out;
  const std::string lower = tenant_key(tenant, prefix);
  auto add = [&](const rocksdb::Iterator& it) {
    if (auto j = parsed_document(std::string_view(it.value().data(), it.value().size())))
      out.push_back(std::move(*j));
  };
  rocksdb::Slice lower_slice(lower);
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lower_slice;
  if (reads_by_prefix(v) && visit_prefix()->InDomain(lower)) {
    // RocksDB's prefix mode: the memtables sort only this prefix's entries, not the whole
    // memtable (WholeKeyMemTable). Read backwards from a target past the prefix's keys, unless
    // a key lies beyond it (one that continues the prefix with eight 0xff bytes): then forwards.
    ro.prefix_same_as_start = true;
    const std::string target = lower + std::string(8, '\xff');
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(v)));
    it->Seek(target);
    if (!it->Valid()) {
      for (it->SeekForPrev(target); it->Valid() && out.size() < limit; it->Prev()) add(*it);
      std::reverse(out.begin(), out.end());
      return out;
    }
    for (it->Seek(lower); it->Valid() && it->key().starts_with(lower_slice); it->Next()) add(*it);
    if (out.size() > limit) out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(limit));
    return out;
  }
  std::string upper = lower;
  // The first key after every key with the prefix: drop trailing 0xff bytes, add one to the last.
  while (!upper.empty() && static_cast<unsigned char>(upper.back()) == 0xff) upper.pop_back();
  if (!upper.empty()) upper.back() = static_cast<char>(static_cast<unsigned char>(upper.back()) + 1);
  rocksdb::Slice upper_slice(upper);
  if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
  ro.total_order_seek = true;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(v)));
  for (it->SeekToLast(); it->Valid() && out.size() < limit; it->Prev()) add(*it);
  std::reverse(out.begin(), out.end());
  return out;
}

std::optional<seq_no> Store::seq_of(const std::string& tenant, const std::string& id) const {
  std::string value;
  if (!db_->Get(rocksdb::ReadOptions(), cf(view::ids), tenant_key(tenant, id), &value).ok() ||
      value.size() != 8)
    return std::nullopt;
  return seq_no{get_be(value, 0, 8)};
}

std::vector<uint32_t> bytewise_order(const std::vector<std::string_view>& keys) {
  // A batch's keys share a beginning (the tenant key's length and tenant, often the start of
  // the ids): compared as strings, each of the ~10 comparisons a key went through it again in
  // a call to memcmp. Past the shared bytes, each key's next 16 are read once as two
  // big-endian words, zeros past its end, and compared as integers. Words that differ order
  // the keys as their bytes do (a zero padding a shorter key is below any byte the longer
  // has there, or equal to it); equal words leave it to the whole keys.
  size_t shared = keys.empty() ? 0 : keys[0].size();
  for (const auto& k : keys) {
    size_t i = 0;
    const size_t n = std::min(shared, k.size());
    while (i < n && k[i] == keys[0][i]) ++i;
    shared = i;
  }
  auto word = [shared](std::string_view k, size_t at) {
    const size_t from = shared + at;
    if (from + 8 <= k.size()) return get_be(k, from, 8);
    uint64_t w = 0;
    for (size_t i = from; i < from + 8; ++i)
      w = (w << 8) | (i < k.size() ? static_cast<unsigned char>(k[i]) : 0u);
    return w;
  };
  struct Sortable {
    uint64_t w0, w1;
    uint32_t at;
  };
  std::vector<Sortable> s;
  s.reserve(keys.size());
  for (uint32_t i = 0; i < keys.size(); ++i) s.push_back({word(keys[i], 0), word(keys[i], 8), i});
  std::sort(s.begin(), s.end(), [&keys](const Sortable& a, const Sortable& b) {
    if (a.w0 != b.w0) return a.w0 < b.w0;
    if (a.w1 != b.w1) return a.w1 < b.w1;
    return keys[a.at] < keys[b.at];
  });
  std::vector<uint32_t> order;
  order.reserve(s.size());
  for (const auto& k : s) order.push_back(k.at);
  return order;
}

std::vector<std::optional<seq_no>> Store::seqs_of(
    const std::vector<std::pair<std::string_view, std::string_view>>& keys) const {
  // Every key in one buffer: a string apiece was an allocation apiece (a tenant key is longer
  // than a string keeps inline).
  std::string bytes;
  size_t total = 0;
  for (const auto& [tenant, id] : keys) total += tenant.size() + 1 + id.size();
  bytes.reserve(total);
  std::vector<std::string_view> raw;
  raw.reserve(keys.size());
  for (const auto& [tenant, id] : keys) {
    const size_t at = bytes.size();
    append_tenant_key(bytes, tenant, id);
    raw.emplace_back(bytes.data() + at, bytes.size() - at);  // `bytes` was sized: it does not move
  }
  // RocksDB's MultiGet sorts the keys it is given unless told they are sorted, through its
  // comparator objects: 1,540 instructions a key (callgrind), against about 700 for a sort
  // of the keys' bytes here (the ids view compares keys bytewise), 360 by their words
  // (bytewise_order).
  const std::vector<uint32_t> order = bytewise_order(raw);
  // 32 keys a call (RocksDB's MultiGetContext::MAX_BATCH_SIZE): MultiGet keeps that many key
  // contexts in place and put the rest of a request's thousand into a vector it grew a
  // doubling at a time, copying them and allocating anew at each step. Each key is looked up
  // on its own after `changes()` was read (ingest), so the calls need not share a snapshot.
  constexpr size_t chunk = 32;
  std::array<rocksdb::Slice, chunk> slices;
  std::array<rocksdb::PinnableSlice, chunk> values;
  std::array<rocksdb::Status, chunk> statuses;
  const rocksdb::ReadOptions read;
  std::vector<std::optional<seq_no>> out(raw.size());
  for (size_t from = 0; from < order.size(); from += chunk) {
    const size_t n = std::min(chunk, order.size() - from);
    for (size_t k = 0; k < n; ++k) {
      const std::string_view key = raw[order[from + k]];
      slices[k] = rocksdb::Slice(key.data(), key.size());
      values[k].Reset();
    }
    db_->MultiGet(read, cf(view::ids), n, slices.data(), values.data(), statuses.data(),
                  /*sorted_input=*/true);
    for (size_t k = 0; k < n; ++k)
      if (statuses[k].ok() && values[k].size() == 8)
        out[order[from + k]] = seq_no{get_be({values[k].data(), values[k].size()}, 0, 8)};
  }
  return out;
}

std::vector<std::string> Store::journal_after(const std::string& tenant,
                                              std::optional<seq_no> after, size_t limit) const {
  std::vector<std::string> out;
  const uint64_t from = after ? after->value() + 1 : 0;
  std::string lower = tenant;
  lower.push_back('\0');
  std::string upper = tenant;
  upper.push_back('\x01');
  rocksdb::Slice lower_slice(lower), upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lower_slice;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(view::journal)));
  // Every item of either kind starts with a seq: a record's first, or an entry's own.
  auto first_seq = [](const rocksdb::Slice& v) {
    return v.size() >= 8 ? get_be(std::string_view(v.data(), v.size()), 0, 8) : UINT64_MAX;
  };
  // The bucket holding `from` is the last one starting at or before it, unless `from` is inside
  // a record of an earlier bucket (one that reaches past its own bucket's end).
  it->SeekForPrev(seq_key(tenant, from));
  while (it->Valid() && first_seq(it->value()) > from) it->Prev();
  if (!it->Valid()) it->Seek(lower);
  std::optional<events::EmbeddedLog::RecordReader> records;
  if (index_ == journal_index::local) records.emplace(db_.get(), journal_cfs_);
  for (; it->Valid() && out.size() < limit; it->Next()) {
    const std::string_view value(it->value().data(), it->value().size());
    if (index_ == journal_index::copy) {
      // Entries: seq(8) length(4) envelope.
      for (size_t at = 0; at + 12 <= value.size() && out.size() < limit;) {
        const uint64_t seq = get_be(value, at, 8);
        const size_t len = get_be(value, at + 8, 4);
        if (at + 12 + len > value.size()) return out;
        if (seq >= from) out.emplace_back(value.substr(at + 12, len));
        at += 12 + len;
      }
      continue;
    }
    // Records in the embedded journal: first seq(8) partition(4) position(8). A record was
    // written before its item. Should one not be readable, the answer stops before it rather
    // than skip it: a reader asks again from there and never misses an entry.
    constexpr size_t item = 20;
    if (value.size() % item != 0) return out;
    for (size_t at = 0; at < value.size() && out.size() < limit; at += item) {
      // A record that ends before `from` (the next one starts at or before it) is not read.
      if (at + item < value.size() && get_be(value, at + item, 8) <= from) continue;
      const partition_id p{static_cast<int32_t>(get_be(value, at + 8, 4))};
      const int64_t pos = static_cast<int64_t>(get_be(value, at + 12, 8));
      auto record = records->at(p, pos);
      if (!record) return out;
      auto r = events::decode(*record);
      if (!r) return out;
      for (auto& e : r->entries)
        if (e.seq.value() >= from && out.size() < limit) out.push_back(std::move(e.envelope));
    }
  }
  return out;
}

std::vector<IntervalRow> Store::intervals(const std::string& tenant,
                                                 const std::string& queue, int64_t from_ms,
                                                 int64_t to_ms, const std::string& channel) const {
  std::vector<IntervalRow> out;
  if (from_ms >= to_ms) return out;
  const std::string prefix = interval_prefix(tenant, queue);
  std::string lower = interval_key({tenant, queue, from_ms, ""});
  std::string upper = interval_key({tenant, queue, to_ms, ""});
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(view::intervals)));
  for (it->Seek(lower); it->Valid(); it->Next()) {
    std::string_view k(it->key().data(), it->key().size());
    if (k.size() < prefix.size() + 8) continue;
    std::string_view row_channel = k.substr(prefix.size() + 8);
    if (!channel.empty() && row_channel != channel) continue;
    auto counters = IntervalCounters::decode({it->value().data(), it->value().size()});
    if (!counters) continue;
    const int64_t bucket =
        static_cast<int64_t>(get_be(k, prefix.size(), 8) ^ (uint64_t{1} << 63));
    out.push_back({bucket, std::string(row_channel), *counters});
  }
  return out;
}

journal_pos Store::applied(partition_id p) const {
  std::string value;
  if (!db_->Get(rocksdb::ReadOptions(), meta_cf_, applied_key(p), &value).ok() ||
      value.size() != 8)
    return journal_pos{0};
  return journal_pos{static_cast<int64_t>(get_be(value, 0, 8))};
}

namespace {
// A webhook's cursor, in the default column family (nothing else is kept there).
std::string egress_key(const std::string& webhook, const std::string& tenant) {
  return "webhook\x1f" + webhook + "\x1f" + tenant;
}
}  // namespace

std::optional<seq_no> Store::egress_cursor(const std::string& webhook, const std::string& tenant) const {
  std::string value;
  if (!db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), egress_key(webhook, tenant), &value).ok() ||
      value.size() != 8)
    return std::nullopt;
  return seq_no{events::get_be(value, 0, 8)};
}

Status Store::set_egress_cursor(const std::string& webhook, const std::string& tenant, seq_no delivered) {
  std::string value;
  events::put_be(value, delivered.value(), 8);
  auto s = db_->Put(rocksdb::WriteOptions(), db_->DefaultColumnFamily(), egress_key(webhook, tenant), value);
  if (!s.ok()) return Status::error("cannot store the delivery position: " + s.ToString());
  return Status::ok();
}

Status Store::clear_views() {
  const std::string end(8, '\xff');
  for (view v : all_views) {
    auto s = db_->DeleteRange(rocksdb::WriteOptions(), cf(v), "", end);
    if (!s.ok()) return Status::error(std::string("cannot clear ") + name_of(v) + ": " + s.ToString());
  }
  auto s = db_->DeleteRange(rocksdb::WriteOptions(), cfs_.at(view_meta), "", end);
  if (!s.ok()) return Status::error("cannot clear the applied positions: " + s.ToString());
  // Empty views can be built either way: record the way this store builds them. A crash before
  // this leaves the old record, and the next index_journal() clears the (empty) views again.
  if (Status recorded = record_index(); !recorded) return recorded;
  notify();
  return Status::ok();
}

Status Store::flush() {
  const uint64_t asked = ++flushes_asked_;
  std::lock_guard<std::mutex> lock(flush_mu_);
  if (flushed_for_ >= asked) return Status::ok();  // a flush begun after this call was made
  const uint64_t serves = flushes_asked_.load();   // each call so far wrote its views before it
  // Every column family: with atomic_flush, Debian's RocksDB 7.8 aborts on an assertion
  // (`cfd->GetFlushReason() == cfds[0]->GetFlushReason()`) when a flush of some of them meets
  // an automatic flush of the rest (9 runs in 20 of the test of this function, which flushes
  // the views alone with 64 KiB memtables), and likewise with allow_write_stall false.
  std::vector<rocksdb::ColumnFamilyHandle*> all;
  for (const auto& [name, handle] : cfs_) all.push_back(handle);
  rocksdb::FlushOptions o;
  o.wait = true;
  o.allow_write_stall = true;  // the room is there: see max_write_buffer_number in cf_options
  const rocksdb::Status s = db_->Flush(o, all);
  if (!s.ok()) return Status::error("cannot flush the views: " + s.ToString());
  flushed_for_ = serves;
  return Status::ok();
}

json Store::digests() const {
  json out = json::object();
  for (view v : all_views) {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&](const char* data, size_t n) {
      for (size_t i = 0; i < n; ++i) {
        h ^= static_cast<unsigned char>(data[i]);
        h *= 1099511628211ull;
      }
    };
    uint64_t count = 0;
    rocksdb::ReadOptions ro;
    ro.total_order_seek = true;  // the journeys have a prefix extractor
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(v)));
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++count) {
      // A document's text, not its stored form: the digest is the same however it was stored.
      std::string_view value(it->value().data(), it->value().size());
      std::optional<std::string> text;
      if (holds_documents(v) && events::is_compact(value)) text = events::document_text(value);
      if (text) value = *text;
      std::string sizes;
      put_be(sizes, it->key().size(), 4);
      put_be(sizes, value.size(), 4);
      mix(sizes.data(), sizes.size());
      mix(it->key().data(), it->key().size());
      mix(value.data(), value.size());
    }
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016" PRIx64, h);
    out[name_of(v)] = {{"entries", count}, {"digest", hex}};
  }
  return out;
}

Store::WriteTotals Store::write_totals() const {
  std::map<std::string, std::string> stats;
  WriteTotals t;
  if (!db_->GetMapProperty(rocksdb::DB::Properties::kDBStats, &stats)) return t;
  auto number = [&](const char* name) -> uint64_t {
    auto it = stats.find(name);
    return it == stats.end() ? 0 : std::strtoull(it->second.c_str(), nullptr, 10);
  };
  t.writes = number("db.user_writes_by_self") + number("db.user_writes_by_other");
  t.keys = number("db.user_keys_written");
  t.wal_bytes = number("db.wal_bytes_written");
  t.stall_micros = number("db.user_write_stall_micros");
  return t;
}

uint64_t Store::memtable_bytes() const {
  uint64_t bytes = 0;
  return db_->GetAggregatedIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &bytes) ? bytes : 0;
}

uint64_t Store::pinned_memtable_bytes() const {
  uint64_t all = 0, current = 0;
  if (!db_->GetAggregatedIntProperty(rocksdb::DB::Properties::kSizeAllMemTables, &all) ||
      !db_->GetAggregatedIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &current))
    return 0;
  return all > current ? all - current : 0;
}

uint64_t Store::changes() const {
  std::lock_guard<std::mutex> lock(change_mu_);
  return changes_;
}

uint64_t Store::wait_for_change(uint64_t seen, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(change_mu_);
  changed_.wait_for(lock, timeout, [&] { return changes_ != seen; });
  return changes_;
}

void Store::notify() {
  {
    std::lock_guard<std::mutex> lock(change_mu_);
    ++changes_;
  }
  changed_.notify_all();
}

void ViewBatch::put_document(view v, const std::string& tenant, const std::string& id,
                             const json& doc) {
  std::string text;
  events::append_json(text, doc);
  put_document(v, tenant, id, std::string_view(text));
}

void ViewBatch::put_document(view v, const std::string& tenant, const std::string& id,
                             std::string_view text) {
  batch_.Put(store_.cf(v), tenant_key(tenant, id), rocksdb::Slice(text.data(), text.size()));
  ++entries_;
}

void ViewBatch::put_record(const events::JournalRecord& r, partition_id p, journal_pos pos) {
  if (r.entries.empty()) return;
  for (const auto& e : r.entries) {
    if (e.kind != events::entry_kind::decision) {
      const size_t at = id_keys_.size();
      append_tenant_key(id_keys_, e.tenant, e.id);
      ids_.push_back(IdKey{static_cast<uint32_t>(at), static_cast<uint32_t>(id_keys_.size() - at),
                           e.seq.value()});
    }
  }
  const auto& first = r.entries.front();
  const uint64_t seq = first.seq.value();
  const uint64_t bucket = seq - seq % index_bucket_seqs;
  if (!last_items_ || bucket != last_bucket_ || first.tenant != last_tenant_) {
    last_items_ = &index_[seq_key(first.tenant, bucket)];  // a map's values do not move
    last_bucket_ = bucket;
    last_tenant_ = first.tenant;
  }
  std::string& items = *last_items_;
  if (store_.index_ == journal_index::local) {
    put_be(items, seq, 8);
    put_be(items, static_cast<uint32_t>(p.value()), 4);
    put_be(items, static_cast<uint64_t>(pos.value()), 8);
  } else {
    for (const auto& e : r.entries) {
      put_be(items, e.seq.value(), 8);
      put_be(items, e.envelope.size(), 4);
      items += e.envelope;
    }
  }
  entries_ += r.entries.size();
}

void ViewBatch::add_intervals(const IntervalDeltas& deltas) {
  for (const auto& [key, counters] : deltas) {
    if (counters.empty()) continue;
    batch_.Merge(store_.cf(view::intervals), interval_key(key), counters.encode());
    ++entries_;
  }
}

Status ViewBatch::commit(partition_id p, journal_pos applied) {
  // In the order journaled: the ids view's memtable hashes its keys and sorts them once, at
  // its flush (whole_key_memtable.hpp), so sorting them here first, as a skiplist wanted, was
  // 77M of a partition host's 4,322M instructions for nothing.
  auto key_of = [this](const IdKey& k) { return std::string_view(id_keys_).substr(k.at, k.size); };
  for (const IdKey& k : ids_) {
    std::string seq;  // 8 bytes: held inline, no allocation
    put_be(seq, k.seq, 8);
    const std::string_view key = key_of(k);
    batch_.Put(store_.cf(view::ids), rocksdb::Slice(key.data(), key.size()), seq);
  }
  ids_.clear();
  id_keys_.clear();
  for (const auto& [bucket, items] : index_) batch_.Merge(store_.cf(view::journal), bucket, items);
  index_.clear();
  last_items_ = nullptr;
  std::string pos;
  put_be(pos, static_cast<uint64_t>(applied.value()), 8);
  batch_.Put(store_.meta_cf_, applied_key(p), pos);
  rocksdb::WriteOptions o;
  o.disableWAL = true;  // derived from the journal: see Store::db_options
  auto s = store_.db_->Write(o, &batch_);
  if (!s.ok()) return Status::error("view write failed: " + s.ToString());
  batch_.Clear();
  entries_ = 0;
  store_.notify();
  return Status::ok();
}

void stop_rocksdb_perf_counts() { rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable); }

}  // namespace omniroute::projections
