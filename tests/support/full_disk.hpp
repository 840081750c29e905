// A full disk for tests: the process's file system, but while `full` every write fails as on a
// full disk (ENOSPC) and no space is free; with room, a terabyte is (RocksDB resumes only with
// a memtable's worth free). While `failing`, every write fails with another I/O error (EIO),
// which RocksDB does not recover from by itself. And an Env on it, through which RocksDB's own
// info log goes too.
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <memory>
#include <string>

namespace omniroute::testing {

class FullDisk : public rocksdb::FileSystemWrapper {
 public:
  FullDisk() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "FullDisk"; }

  std::atomic<bool> full{false};
  std::atomic<bool> failing{false};
  std::atomic<int> asked_while_full{0};  // how often RocksDB asked for free space meanwhile

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* d) override {
    return wrap(target()->NewWritableFile(f, o, r, d), r);
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* d) override {
    return wrap(target()->ReopenWritableFile(f, o, r, d), r);
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                                      const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* d) override {
    return wrap(target()->ReuseWritableFile(f, old, o, r, d), r);
  }
  rocksdb::IOStatus GetFreeSpace(const std::string&, const rocksdb::IOOptions&, uint64_t* free,
                                 rocksdb::IODebugContext*) override {
    if (full) ++asked_while_full;
    *free = full ? 0 : uint64_t{1} << 40;
    return rocksdb::IOStatus::OK();
  }

 private:
  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile>&& f, const FullDisk& disk)
        : FSWritableFileOwnerWrapper(std::move(f)), disk_(disk) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* d) override {
      const auto refused = fault();
      return refused.ok() ? target()->Append(data, o, d) : refused;
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                             const rocksdb::DataVerificationInfo& v,
                             rocksdb::IODebugContext* d) override {
      const auto refused = fault();
      return refused.ok() ? target()->Append(data, o, v, d) : refused;
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t at,
                                       const rocksdb::IOOptions& o,
                                       rocksdb::IODebugContext* d) override {
      const auto refused = fault();
      return refused.ok() ? target()->PositionedAppend(data, at, o, d) : refused;
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t at,
                                       const rocksdb::IOOptions& o,
                                       const rocksdb::DataVerificationInfo& v,
                                       rocksdb::IODebugContext* d) override {
      const auto refused = fault();
      return refused.ok() ? target()->PositionedAppend(data, at, o, v, d) : refused;
    }

   private:
    // What a write meets: the disk's fault, or OK.
    rocksdb::IOStatus fault() const {
      if (disk_.full) return rocksdb::IOStatus::NoSpace("No space left on device");
      if (disk_.failing) return rocksdb::IOStatus::IOError("Input/output error");
      return rocksdb::IOStatus::OK();
    }
    const FullDisk& disk_;
  };
  rocksdb::IOStatus wrap(rocksdb::IOStatus s, std::unique_ptr<rocksdb::FSWritableFile>* r) const {
    if (s.ok()) *r = std::make_unique<File>(std::move(*r), *this);
    return s;
  }
};

// The process's Env on that file system. RocksDB's own info log is written through it too (a
// composite Env's logger is not: it writes through the process's file system).
class OnDisk : public rocksdb::EnvWrapper {
 public:
  explicit OnDisk(const std::shared_ptr<rocksdb::FileSystem>& fs)
      : EnvWrapper(rocksdb::NewCompositeEnv(fs)) {}
  const char* Name() const override { return "OnDisk"; }
  rocksdb::Status NewLogger(const std::string& f, std::shared_ptr<rocksdb::Logger>* r) override {
    return rocksdb::NewEnvLogger(f, this, r);
  }
};

}  // namespace omniroute::testing
