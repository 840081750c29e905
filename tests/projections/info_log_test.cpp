// RocksDB's info log as the store writes it (projections/info_log.hpp).
#include "projections/info_log.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/support.hpp"

using namespace omniroute;

namespace {
std::string read_all(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
}  // namespace

TEST_CASE("the info log writes a line a call, stamped, and moves the last log aside") {
  testing::TempDir dir;
  const std::string long_text(3000, 'x');  // past the line's room on the stack
  {
    auto log = projections::open_info_log(dir.str());
    REQUIRE(log);
    rocksdb::Info(log, "first %d", 1);
    rocksdb::Warn(log, "second %s", long_text.c_str());
    rocksdb::Debug(log, "below the level");
    CHECK(log->dropped() == 0);
  }
  const std::string text = read_all(dir.sub("LOG"));
  std::istringstream lines(text);
  std::string first, second, rest;
  REQUIRE(std::getline(lines, first));
  REQUIRE(std::getline(lines, second));
  CHECK_FALSE(std::getline(lines, rest));
  // "2026/12/07-15:25:55.348478 27593 first 1"
  REQUIRE(first.size() > 27);
  CHECK(first[4] == '/');
  CHECK(first[10] == '-');
  CHECK(first[19] == '.');
  CHECK(first.substr(first.size() - 8) == " first 1");
  CHECK(second.find("[WARN] second " + long_text) != std::string::npos);
  CHECK(second.substr(second.size() - long_text.size()) == long_text);

  auto again = projections::open_info_log(dir.str());  // a second open, as a restart
  REQUIRE(again);
  rocksdb::Info(again, "after the restart");
  again.reset();
  size_t old = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir.str()))
    if (f.path().filename().string().rfind("LOG.old.", 0) == 0) {
      ++old;
      CHECK(read_all(f.path().string()) == text);
    }
  CHECK(old == 1);
  CHECK(read_all(dir.sub("LOG")).find("after the restart\n") != std::string::npos);
}

TEST_CASE("a line the info log cannot write is dropped and counted, and the process goes on") {
  // /dev/full answers every write with ENOSPC, as a full disk does. RocksDB's own logger aborts
  // at the write after a failed one (its assertions are on in Debian's build).
  auto log = projections::InfoLog::open("/dev/full");
  REQUIRE(log);
  for (int i = 0; i < 3; ++i) rocksdb::Error(log, "Cannot clear hard error %d", i);
  CHECK(log->dropped() == 3);
  CHECK(log->GetLogFileSize() == 0);
}
