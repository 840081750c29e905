#include "projections/info_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <vector>

namespace omniroute::projections {

std::shared_ptr<InfoLog> InfoLog::open(const std::string& path, rocksdb::InfoLogLevel level) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return nullptr;
  struct stat st {};
  const size_t size = ::fstat(fd, &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
  return std::shared_ptr<InfoLog>(new InfoLog(fd, size, level));
}

InfoLog::InfoLog(int fd, size_t size, rocksdb::InfoLogLevel level)
    : rocksdb::Logger(level), fd_(fd), written_(size) {}

InfoLog::~InfoLog() {
  if (const int fd = fd_.exchange(-1); fd >= 0) ::close(fd);
}

rocksdb::Status InfoLog::CloseImpl() {
  const int fd = fd_.exchange(-1);  // a line logged after this is dropped
  if (fd >= 0 && ::close(fd) != 0)
    return rocksdb::Status::IOError("closing the info log", std::strerror(errno));
  return rocksdb::Status::OK();
}

void InfoLog::Logv(const char* format, va_list ap) {
  // RocksDB's line: "2026/12/07-15:25:55.348478 27593 text\n" (time, thread).
  timeval now{};
  ::gettimeofday(&now, nullptr);
  tm t{};
  ::localtime_r(&now.tv_sec, &t);
  char stack[512];
  int head =
      std::snprintf(stack, sizeof stack, "%04d/%02d/%02d-%02d:%02d:%02d.%06ld %ld ",
                    t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                    static_cast<long>(now.tv_usec), static_cast<long>(::syscall(SYS_gettid)));
  if (head < 0) head = 0;
  va_list copy;
  va_copy(copy, ap);
  const int body =
      std::vsnprintf(stack + head, sizeof stack - static_cast<size_t>(head), format, copy);
  va_end(copy);
  if (body < 0) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::vector<char> heap;
  char* line = stack;
  size_t n = static_cast<size_t>(head) + static_cast<size_t>(body);
  if (n + 2 > sizeof stack) {  // room for the newline and vsnprintf's terminator
    heap.resize(n + 2);
    std::copy(stack, stack + head, heap.data());
    std::vsnprintf(heap.data() + head, heap.size() - static_cast<size_t>(head), format, ap);
    line = heap.data();
  }
  if (n == 0 || line[n - 1] != '\n') line[n++] = '\n';
  // One write a line: with O_APPEND, lines of threads writing at once do not interleave.
  const int fd = fd_.load(std::memory_order_relaxed);
  const ssize_t w = fd >= 0 ? ::write(fd, line, n) : -1;
  if (w > 0) written_.fetch_add(static_cast<size_t>(w), std::memory_order_relaxed);
  if (w != static_cast<ssize_t>(n)) dropped_.fetch_add(1, std::memory_order_relaxed);
}

std::shared_ptr<InfoLog> open_info_log(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = dir + "/LOG";
  if (std::filesystem::exists(path, ec)) {
    timeval now{};
    ::gettimeofday(&now, nullptr);
    const long long us = static_cast<long long>(now.tv_sec) * 1000000 + now.tv_usec;
    std::filesystem::rename(path, path + ".old." + std::to_string(us), ec);
  }
  return InfoLog::open(path);
}

}  // namespace omniroute::projections
