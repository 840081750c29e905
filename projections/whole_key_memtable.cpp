#include "projections/whole_key_memtable.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <new>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "events/key_hash.hpp"

namespace omniroute::projections {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "RocksDB's fixed64 tags are read in place");

constexpr uint32_t none = UINT32_MAX;

// A memtable entry is: varint32 length of the internal key, the internal key (user key, then
// an 8-byte little-endian tag: sequence number << 8 | type), varint32 value length, value.
struct Key {
  std::string_view user;
  uint64_t tag = 0;
};

Key decode_internal(const char* p, size_t size) {
  uint64_t tag;
  std::memcpy(&tag, p + size - 8, 8);
  return {std::string_view(p, size - 8), tag};
}

Key decode(const char* entry) {
  const rocksdb::Slice internal = rocksdb::GetLengthPrefixedSlice(entry);
  return decode_internal(internal.data(), internal.size());
}

// RocksDB's internal key order: user keys bytewise, then newest (largest tag) first.
bool before(const Key& a, const Key& b) {
  const int c = a.user.compare(b.user);
  return c < 0 || (c == 0 && a.tag > b.tag);
}

// An entry with the first 24 bytes of its user key, big-endian, for sorting without a cache
// miss per comparison.
struct SortItem {
  uint64_t prefix[3];
  const char* entry;
};

SortItem sort_item(const char* entry) {
  SortItem s{{0, 0, 0}, entry};
  const std::string_view user = decode(entry).user;
  unsigned char bytes[24] = {};
  std::memcpy(bytes, user.data(), std::min<size_t>(24, user.size()));
  for (int w = 0; w < 3; ++w)
    for (int i = 0; i < 8; ++i) s.prefix[w] = (s.prefix[w] << 8) | bytes[w * 8 + i];
  return s;
}

std::vector<const char*> sorted(const char* const* entries, size_t n) {
  std::vector<SortItem> items;
  items.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (i + 8 < n) __builtin_prefetch(entries[i + 8]);  // a miss each, else
    items.push_back(sort_item(entries[i]));
  }
  std::sort(items.begin(), items.end(), [](const SortItem& a, const SortItem& b) {
    for (int w = 0; w < 3; ++w)
      if (a.prefix[w] != b.prefix[w]) return a.prefix[w] < b.prefix[w];
    return before(decode(a.entry), decode(b.entry));
  });
  std::vector<const char*> out;
  out.reserve(items.size());
  for (const SortItem& s : items) out.push_back(s.entry);
  return out;
}

class WholeKeyMemTable;

// Gives an iterator's room back to its memtable (RocksDB's arena mode: the caller destroys the
// iterator but does not free it). A base class, so that it runs after the iterator's members
// are gone.
struct PlaceReturn {
  WholeKeyMemTable* home = nullptr;
  void* place = nullptr;
  ~PlaceReturn();
};

class WholeKeyMemTable final : public rocksdb::MemTableRep {
 public:
  // `prefix`: the column family's prefix extractor, or null. With one, reads in RocksDB's prefix
  // mode (an iterator without total_order_seek) sort only the entries of the sought prefix.
  WholeKeyMemTable(rocksdb::Allocator* allocator, const rocksdb::SliceTransform* prefix)
      : MemTableRep(allocator), prefix_(prefix) {
    index_.assign(1024, Slot{0, none});
    if (prefix_) prefix_index_.assign(1024, Slot{0, none});
  }

  void Insert(rocksdb::KeyHandle handle) override { InsertKey(handle); }

  // Adds the entry to the list; the index takes it with the next ones, a group at a time
  // (index_pending). Reads look through the entries still waiting (at most 15) as well, so they
  // share the lock with each other. Always true: an entry whose internal key (user key
  // and sequence number) is already held comes only from writers that RocksDB pairs with
  // memtables that say they handle duplicates (CanHandleDuplicatedKey, false here).
  //
  // The lock is taken only when something a reader reads changes: the indexes (a group is
  // indexed, an index grows) or where the lists are (they grow). Else the entry goes on the
  // lists' ends, where no reader looks, and published_ then shows it: perf put the writer's
  // lock and unlock at every insert at 0.8% of the ingest benchmark's samples, with no reader
  // waiting (RocksDB writes from one thread at a time: IsInsertConcurrentlySupported).
  bool InsertKey(rocksdb::KeyHandle handle) override {
    const char* entry = static_cast<const char*>(handle);
    const size_t n = entries_.size();         // the writer's own: only it changes the lists
    const size_t waiting = n + 1 - indexed_;  // with this one
    // Room in the indexes for every waiting entry as a new key, made before it waits rather
    // than when it is indexed: RocksDB counts a memtable's memory as it becomes immutable,
    // before it is marked read-only (which indexes the last ones), and wants the count
    // unchanged after.
    const bool lists_have_room = n < entries_.capacity() && n < older_.capacity() &&
                                 (!prefix_ || n < same_prefix_.capacity());
    const bool indexes_have_room = (keys_ + waiting) * 2 <= index_.size() &&
                                   (!prefix_ || (prefixes_ + waiting) * 2 <= prefix_index_.size());
    if (waiting < index_group && lists_have_room && indexes_have_room) {
      append(entry);  // no capacity changes: the memory counted stays as it is
      return true;
    }
    std::unique_lock lock(mu_);
    append(entry);
    while ((keys_ + waiting) * 2 > index_.size()) grow(index_);
    if (prefix_)
      while ((prefixes_ + waiting) * 2 > prefix_index_.size()) grow(prefix_index_);
    if (waiting >= index_group) index_pending();
    memory_.store(entries_.capacity() * sizeof(const char*) +
                      (older_.capacity() + same_prefix_.capacity()) * sizeof(uint32_t) +
                      (index_.size() + prefix_index_.size()) * sizeof(Slot),
                  std::memory_order_relaxed);
    return true;
  }

  bool Contains(const char* entry) const override {
    const Key k = decode(entry);
    std::shared_lock lock(mu_);
    for (size_t e = published(); e-- > indexed_;) {
      const Key w = decode(entries_[e]);
      if (w.user == k.user && w.tag == k.tag) return true;
    }
    const Slot& slot = index_[find(k.user, events::key_hash(k.user))];
    for (uint32_t e = slot.newest; e != none; e = older_[e])
      if (decode(entries_[e]).tag == k.tag) return true;
    return false;
  }

  // The entries of the looked-up user key that the lookup's sequence number sees, newest
  // first, until `callback` says stop: what a skiplist's seek would give before it reached
  // the next user key (on which RocksDB's callback stops).
  void Get(const rocksdb::LookupKey& lookup, void* arg,
           bool (*callback)(void*, const char*)) override {
    // rocksdb::LookupKey is not in RocksDB's public headers; its first member is the memtable
    // key (length-prefixed internal key) it was built for. Every read of a view by key goes
    // through here, so the store's tests would fail at once if that ever changed.
    const char* memtable_key = *reinterpret_cast<const char* const*>(&lookup);
    const Key k = decode(memtable_key);
    std::shared_lock lock(mu_);
    // The entries waiting for the index first: they are the newest (inserted last).
    for (size_t e = published(); e-- > indexed_;) {
      const Key w = decode(entries_[e]);
      if (w.user != k.user || w.tag > k.tag) continue;
      if (!callback(arg, entries_[e])) return;
    }
    const Slot& slot = index_[find(k.user, events::key_hash(k.user))];
    for (uint32_t e = slot.newest; e != none; e = older_[e]) {
      if (decode(entries_[e]).tag > k.tag) continue;  // newer than the read's snapshot
      if (!callback(arg, entries_[e])) return;
    }
  }

  void MarkReadOnly() override {
    std::unique_lock lock(mu_);
    index_pending();
    read_only_ = true;
  }

  size_t ApproximateMemoryUsage() override { return memory_.load(std::memory_order_relaxed); }

  Iterator* GetIterator(rocksdb::Arena* arena) override { return make_iterator(arena, false); }
  // RocksDB's prefix mode: each seek reads the sought key's prefix only (the entries of other
  // prefixes are not in order after it, which that mode allows).
  Iterator* GetDynamicPrefixIterator(rocksdb::Arena* arena) override {
    return make_iterator(arena, prefix_ != nullptr);
  }

 private:
  friend struct PlaceReturn;

  struct Slot {
    uint64_t hash;
    uint32_t newest;  // index in entries_ of the newest entry with the slot's key; none: empty
  };

  // Entries wait for the index in groups of this many (index_pending).
  static constexpr size_t index_group = 16;
  struct Pending {
    Key key;
    uint64_t hash = 0;
    std::optional<std::string_view> prefix;  // with a prefix extractor, in its domain
    uint64_t prefix_hash = 0;
  };

  // Over every entry in key order, or, by prefix, over the entries of the prefix last sought.
  class SortedIterator final : private PlaceReturn, public rocksdb::MemTableRep::Iterator {
   public:
    SortedIterator(WholeKeyMemTable* table, bool by_prefix, void* room)
        : table_(table), by_prefix_(by_prefix) {
      if (room) {
        home = table;
        place = room;
      }
      if (!by_prefix_) load_all();
    }

    bool Valid() const override { return i_ < v_->size(); }
    const char* key() const override { return (*v_)[i_]; }
    // A few entries ahead fetched as it goes: in key order, each entry is somewhere else in the
    // arena, and a flush reads every one (perf: RocksDB's reads of their keys were a miss each).
    void Next() override {
      ++i_;
      if (i_ + prefetch_ahead < v_->size()) {
        const char* e = (*v_)[i_ + prefetch_ahead];
        __builtin_prefetch(e);
        __builtin_prefetch(e + 64);  // the value's length and start, after the key
      }
    }
    void Prev() override { i_ = i_ == 0 ? v_->size() : i_ - 1; }
    void Seek(const rocksdb::Slice& internal_key, const char* memtable_key) override {
      const Key k = target(internal_key, memtable_key);
      load_for(k.user);
      i_ = static_cast<size_t>(
          std::partition_point(v_->begin(), v_->end(),
                               [&](const char* e) { return before(decode(e), k); }) -
          v_->begin());
    }
    void SeekForPrev(const rocksdb::Slice& internal_key, const char* memtable_key) override {
      const Key k = target(internal_key, memtable_key);
      load_for(k.user);
      const size_t after = static_cast<size_t>(
          std::partition_point(v_->begin(), v_->end(),
                               [&](const char* e) { return !before(k, decode(e)); }) -
          v_->begin());
      i_ = after == 0 ? v_->size() : after - 1;
    }
    void SeekToFirst() override {
      if (by_prefix_) load_all();
      i_ = 0;
    }
    void SeekToLast() override {
      if (by_prefix_) load_all();
      i_ = v_->empty() ? 0 : v_->size() - 1;
    }

   private:
    static constexpr size_t prefetch_ahead = 8;
    static Key target(const rocksdb::Slice& internal_key, const char* memtable_key) {
      return memtable_key ? decode(memtable_key)
                          : decode_internal(internal_key.data(), internal_key.size());
    }
    void load_all() {
      v_ = table_->all_sorted(own_);
      all_ = true;
    }
    // By prefix: the entries of `user`'s prefix, or all of them for a key outside the
    // extractor's domain.
    void load_for(std::string_view user) {
      if (!by_prefix_) return;
      if (table_->with_prefix_of(user, own_)) {
        v_ = &own_;
        all_ = false;
      } else if (!all_) {
        load_all();
      }
    }
    WholeKeyMemTable* table_;
    const bool by_prefix_;
    bool all_ = false;
    std::vector<const char*> own_;
    const std::vector<const char*>* v_ = &own_;
    size_t i_ = SIZE_MAX;
  };

  Iterator* make_iterator(rocksdb::Arena* arena, bool by_prefix) {
    void* at = arena ? place() : nullptr;
    return at ? new (at) SortedIterator(this, by_prefix, at)
              : new SortedIterator(this, by_prefix, nullptr);
  }

  // Every entry in key order: sorted once for a read-only memtable, else a sorted copy in
  // `scratch`.
  const std::vector<const char*>* all_sorted(std::vector<const char*>& scratch) {
    std::shared_lock lock(mu_);
    if (read_only_) {
      std::call_once(sorted_once_, [&] { sorted_ = sorted(entries_.data(), published()); });
      return &sorted_;
    }
    scratch = sorted(entries_.data(), published());
    return &scratch;
  }

  // The entries whose user keys have `user`'s prefix, in key order, into `out`; false (and
  // `out` untouched) when `user` is outside the prefix extractor's domain.
  bool with_prefix_of(std::string_view user, std::vector<const char*>& out) const {
    const std::optional<std::string_view> wanted = prefix_of_key(user);
    if (!wanted) return false;
    out.clear();
    {
      std::shared_lock lock(mu_);
      for (size_t e = indexed_, end = published(); e < end; ++e)  // waiting for the index
        if (prefix_of_key(decode(entries_[e]).user) == wanted) out.push_back(entries_[e]);
      const Slot& slot = prefix_index_[find_prefix(*wanted, events::key_hash(*wanted))];
      for (uint32_t e = slot.newest; e != none; e = same_prefix_[e]) out.push_back(entries_[e]);
    }
    std::sort(out.begin(), out.end(),
              [](const char* a, const char* b) { return before(decode(a), decode(b)); });
    return true;
  }

  // The prefix extractor's prefix of a user key, or nothing outside its domain.
  std::optional<std::string_view> prefix_of_key(std::string_view user) const {
    const rocksdb::Slice key(user.data(), user.size());
    if (!prefix_->InDomain(key)) return std::nullopt;
    const rocksdb::Slice p = prefix_->Transform(key);
    return std::string_view(p.data(), p.size());
  }

  // The writer's: an entry on the lists' ends, then shown to readers.
  void append(const char* entry) {
    entries_.push_back(entry);
    older_.push_back(none);
    if (prefix_) same_prefix_.push_back(none);
    published_.store(entries_.size(), std::memory_order_release);
  }
  // The readers': how many entries they may read (entries_.size() is the writer's, which it
  // changes without the lock).
  size_t published() const { return published_.load(std::memory_order_acquire); }

  // Under the writer's lock: indexes the entries inserted since the last time, a group at a
  // time. Nearly every key's slot is a cache miss (the index of a full memtable is megabytes,
  // at a random place for each key), as is, for a key already held, its newest entry, whose key
  // and sequence number are compared: a group's are fetched together, then its keys go in one
  // by one. Measured: the slot's load was two thirds of an insert's samples.
  void index_pending() {
    while (indexed_ < entries_.size()) {
      const size_t n = std::min(index_group, entries_.size() - indexed_);
      Pending group[index_group];  // the indexes have room for them all (InsertKey)
      for (size_t i = 0; i < n; ++i) {
        Pending& g = group[i];
        g.key = decode(entries_[indexed_ + i]);
        g.hash = events::key_hash(g.key.user);
        __builtin_prefetch(&index_[g.hash & (index_.size() - 1)]);
        if (!prefix_) continue;
        g.prefix = prefix_of_key(g.key.user);
        if (!g.prefix) continue;
        g.prefix_hash = events::key_hash(*g.prefix);
        __builtin_prefetch(&prefix_index_[g.prefix_hash & (prefix_index_.size() - 1)]);
      }
      for (size_t i = 0; i < n; ++i) {
        const Slot& s = index_[group[i].hash & (index_.size() - 1)];
        if (s.newest != none && s.hash == group[i].hash) __builtin_prefetch(entries_[s.newest]);
        if (!group[i].prefix) continue;
        const Slot& p = prefix_index_[group[i].prefix_hash & (prefix_index_.size() - 1)];
        if (p.newest != none && p.hash == group[i].prefix_hash) __builtin_prefetch(entries_[p.newest]);
      }
      for (size_t i = 0; i < n; ++i) {
        const uint32_t at = static_cast<uint32_t>(indexed_ + i);
        add_to_index(group[i].key, group[i].hash, at);
        if (group[i].prefix) add_to_prefix(*group[i].prefix, group[i].prefix_hash, at);
      }
      indexed_ += n;
    }
  }

  // Makes entry `at` its key's newest version, or puts it among the older ones by its
  // sequence number (which only a writer other than RocksDB's single write thread would make
  // older than the newest's).
  void add_to_index(const Key& k, uint64_t h, uint32_t at) {
    Slot& slot = index_[find(k.user, h)];
    if (slot.newest == none) {
      slot = Slot{h, at};
      ++keys_;
      return;
    }
    if (k.tag > decode(entries_[slot.newest]).tag) {
      older_[at] = slot.newest;
      slot.newest = at;
      return;
    }
    uint32_t prev = slot.newest;
    while (older_[prev] != none && decode(entries_[older_[prev]]).tag > k.tag) prev = older_[prev];
    older_[at] = older_[prev];
    older_[prev] = at;
  }

  // Links entry `at` into the list of its prefix (entries outside the domain are in none).
  void add_to_prefix(std::string_view prefix, uint64_t h, uint32_t at) {
    Slot& slot = prefix_index_[find_prefix(prefix, h)];
    if (slot.newest == none) ++prefixes_;
    same_prefix_[at] = slot.newest;
    slot = Slot{h, at};
  }

  // The slot of `user`, or the empty slot where it would go (linear probing).
  size_t find(std::string_view user, uint64_t h) const {
    const size_t mask = index_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = index_[i];
      if (s.newest == none || (s.hash == h && decode(entries_[s.newest]).user == user)) return i;
    }
  }
  size_t find_prefix(std::string_view prefix, uint64_t h) const {
    const size_t mask = prefix_index_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = prefix_index_[i];
      if (s.newest == none || (s.hash == h && prefix_of_key(decode(entries_[s.newest]).user) == prefix))
        return i;
    }
  }

  // Doubles an index (its slots keep their hashes).
  static void grow(std::vector<Slot>& index) {
    std::vector<Slot> old(index.size() * 2, Slot{0, none});
    old.swap(index);
    const size_t mask = index.size() - 1;
    for (const Slot& s : old) {
      if (s.newest == none) continue;
      size_t i = s.hash & mask;
      while (index[i].newest != none) i = (i + 1) & mask;
      index[i] = s;
    }
  }

  // Room for an iterator that its caller will destroy but not free (RocksDB's arena mode):
  // held by this memtable, which outlives its iterators, and given back when the iterator is
  // destroyed (PlaceReturn), for the next. Not taken from the memtable's allocator: RocksDB
  // requires an immutable memtable's memory not to grow.
  void* place() {
    std::lock_guard lock(places_mu_);
    if (!free_places_.empty()) {
      void* p = free_places_.back();
      free_places_.pop_back();
      return p;
    }
    return &places_.emplace_back();
  }
  void give_back(void* p) {
    std::lock_guard lock(places_mu_);
    free_places_.push_back(p);
  }
  struct alignas(SortedIterator) Place {
    unsigned char bytes[sizeof(SortedIterator)];
  };
  std::mutex places_mu_;
  std::deque<Place> places_;
  std::vector<void*> free_places_;

  const rocksdb::SliceTransform* prefix_;
  mutable std::shared_mutex mu_;
  // In insertion order. Readers, under the shared lock, read the first published_ entries and
  // their links (older_, same_prefix_); the writer appends past them without the lock, and
  // under it only moves the lists (they grow) and links entries (index_pending).
  std::vector<const char*> entries_;
  std::atomic<size_t> published_{0};
  std::vector<uint32_t> older_;       // per entry: its key's next older version, or none
  std::vector<Slot> index_;           // by user key; a power of two, at most half full
  size_t keys_ = 0;
  size_t indexed_ = 0;  // entries_ below this are in the indexes
  // With a prefix extractor: per entry, the next older entry of its prefix (or none), and an
  // index by prefix of each prefix's newest entry.
  std::vector<uint32_t> same_prefix_;
  std::vector<Slot> prefix_index_;
  size_t prefixes_ = 0;
  std::atomic<size_t> memory_{0};
  bool read_only_ = false;
  std::once_flag sorted_once_;
  std::vector<const char*> sorted_;  // entries_ in key order, once read-only
};

PlaceReturn::~PlaceReturn() {
  if (home) home->give_back(place);
}

}  // namespace

namespace {

class PrefixThrough final : public rocksdb::SliceTransform {
 public:
  explicit PrefixThrough(char separator)
      : separator_(separator),
        name_("omniroute.PrefixThrough." + std::to_string(static_cast<unsigned char>(separator))) {}
  const char* Name() const override { return name_.c_str(); }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    const void* at = std::memchr(key.data(), separator_, key.size());
    return rocksdb::Slice(key.data(),
                          static_cast<size_t>(static_cast<const char*>(at) - key.data()) + 1);
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return std::memchr(key.data(), separator_, key.size()) != nullptr;
  }

 private:
  char separator_;
  std::string name_;
};

}  // namespace

std::shared_ptr<const rocksdb::SliceTransform> prefix_through(char separator) {
  return std::make_shared<PrefixThrough>(separator);
}

rocksdb::MemTableRep* WholeKeyMemTableFactory::CreateMemTableRep(
    const rocksdb::MemTableRep::KeyComparator&, rocksdb::Allocator* allocator,
    const rocksdb::SliceTransform* prefix, rocksdb::Logger*) {
  return new WholeKeyMemTable(allocator, prefix);
}

}  // namespace omniroute::projections
