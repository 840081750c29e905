// A RocksDB memtable for the column families read by whole key (the ids, conversations,
// customers, agents and queues views; the ingest cursors and the views' applied positions) or
// by a key prefix (journeys, by customer): inserts go to a hash index and a list, and the list is
// sorted once, when the memtable is flushed (or iterated in key order, which only tools and
// tests do while it is written). Given the column family's prefix extractor, it also links the
// entries of each prefix, and a read in RocksDB's prefix mode (an iterator without
// total_order_seek) sorts only the sought prefix's entries.
//
// RocksDB's skiplist memtable sorts on every insert: about 30 key comparisons, each through
// RocksDB's comparator objects and perf counters, and most of them cache misses in a 64 MiB
// structure. It was 10% of the ingest benchmark's CPU samples, on the partition hosts' threads.
// Here an insert costs a hash probe, and the flush sorts the memtable's entries by a 24-byte
// inline prefix of each key before it looks at the key itself. The probes are made 16 entries
// at a time, their slots fetched from memory together (a read looks through the few entries
// still waiting as well): one at a time, the slot's cache miss was two thirds of an insert.
//
// Requirements, which the views meet: the column family compares keys bytewise (RocksDB's
// default comparator) and writes are not concurrent (allow_concurrent_memtable_write = false).
#pragma once

#include <rocksdb/memtablerep.h>
#include <rocksdb/slice_transform.h>

#include <memory>

namespace omniroute::projections {

class WholeKeyMemTableFactory : public rocksdb::MemTableRepFactory {
 public:
  rocksdb::MemTableRep* CreateMemTableRep(const rocksdb::MemTableRep::KeyComparator&,
                                          rocksdb::Allocator*, const rocksdb::SliceTransform*,
                                          rocksdb::Logger*) override;
  const char* Name() const override { return "omniroute.WholeKeyMemTable"; }
  bool IsInsertConcurrentlySupported() const override { return false; }
  // An entry whose user key and sequence number are already held is not looked for: RocksDB
  // sends one only to memtables that say they handle them (WritePrepared transactions).
  bool CanHandleDuplicatedKey() const override { return false; }
};

// A prefix extractor: a key up to and including its first `separator`; keys without one are
// outside its domain.
std::shared_ptr<const rocksdb::SliceTransform> prefix_through(char separator);

}  // namespace omniroute::projections
