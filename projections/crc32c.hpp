// RocksDB checksums every write-ahead log record and table block with CRC-32C. Debian builds
// RocksDB portable, without SSE4.2, so its crc32c::Extend runs a table-driven loop at about
// 1 GB/s: on the ingest benchmark 4.4% of a partition host's instructions (the journal's log
// records), and the front door's ingest records besides. This process defines the same
// function with the CPU's crc32 instruction; the dynamic linker binds RocksDB's calls to it
// (ELF symbol interposition: RocksDB calls its own exported function through its PLT).
//
// It is the same function, byte for byte: before first use it is checked against RocksDB's
// own (found with dlsym(RTLD_NEXT)) and against the standard check values on lengths and
// alignments that exercise every path; on any difference, or a CPU without SSE4.2, every call
// goes to RocksDB's own.
#pragma once

#include <string_view>

namespace omniroute::projections {

// Which CRC-32C RocksDB's checksums use in this process: "sse4.2" (this file's) or
// "rocksdb" (the library's own). Store::open asks, so that the choice is made, and checked,
// before the database writes anything.
std::string_view rocksdb_crc32c();

}  // namespace omniroute::projections
