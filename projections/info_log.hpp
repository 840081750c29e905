// RocksDB's info log (DIR/LOG), written with plain write(2) calls.
//
// RocksDB's own logger writes through a WritableFileWriter, and Debian's librocksdb 7.8 is built
// with its assertions on: the first write after one that failed aborts the process
// (`sync_without_flush_called_`, writable_file_writer.h). A full disk did exactly that to the
// server: the WAL's append failed, the write was refused as it should be, and seconds later
// RocksDB's own recovery thread logged "Cannot clear hard error" into the LOG it could no longer
// write (gdb: SstFileManagerImpl::ClearError -> EnvLogger::Logv -> WritableFileWriter::Append).
// This one drops a line it cannot write, counts it, and writes the next one when it can.
#pragma once

#include <rocksdb/env.h>

#include <atomic>
#include <cstdarg>
#include <memory>
#include <string>

namespace omniroute::projections {

class InfoLog : public rocksdb::Logger {
 public:
  // Appends to `path` (created if missing); nullptr if it cannot be opened.
  static std::shared_ptr<InfoLog> open(
      const std::string& path, rocksdb::InfoLogLevel level = rocksdb::InfoLogLevel::INFO_LEVEL);
  ~InfoLog() override;

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override;
  size_t GetLogFileSize() const override { return written_.load(std::memory_order_relaxed); }

  // Lines that could not be written (whole or in part).
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  InfoLog(int fd, size_t size, rocksdb::InfoLogLevel level);
  rocksdb::Status CloseImpl() override;

  std::atomic<int> fd_;
  std::atomic<size_t> written_;
  std::atomic<uint64_t> dropped_{0};
};

// Where RocksDB keeps a data directory's info log, and moves the last one aside at open:
// DIR/LOG, and DIR/LOG.old.<microseconds> (RocksDB deletes the oldest of those beyond
// keep_log_file_num).
std::shared_ptr<InfoLog> open_info_log(const std::string& dir);

}  // namespace omniroute::projections
