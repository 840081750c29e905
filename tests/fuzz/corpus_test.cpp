// Every input kept under tests/fuzz/corpus/TARGET/ (the seeds, and what fuzzing found) checked
// again as its fuzz target checks it (tests/fuzz/checks.hpp): a problem fuzzing found stays found.
#include <doctest/doctest.h>
#include <sys/resource.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "tests/fuzz/checks.hpp"

namespace fs = std::filesystem;

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OMNIROUTE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define OMNIROUTE_ASAN 1
#endif

namespace {

const fs::path corpus = fs::path(OMNIROUTE_SOURCE_DIR) / "tests" / "fuzz" / "corpus";

std::string read_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("every fuzz target has a corpus, and every corpus a target") {
  std::set<std::string> dirs;
  for (const auto& entry : fs::directory_iterator(corpus))
    if (entry.is_directory()) dirs.insert(entry.path().filename().string());
  const auto& targets = omniroute::fuzz::targets();
  CHECK(dirs == std::set<std::string>(targets.begin(), targets.end()));
  CHECK(omniroute::fuzz::check("no such target", "") == "no fuzz target 'no such target'");
}

TEST_CASE("the kept inputs show no problem") {
  // Within 4 GiB of address space, as libFuzzer's limit on memory (tests/fuzz/run) makes an
  // input that asks for more a problem: here the allocation fails, and the check says it threw.
  // Not under AddressSanitizer, whose shadow alone takes terabytes of address space (the
  // ordinary build's run is the one that holds the limit).
#ifndef OMNIROUTE_ASAN
  const rlimit space{rlim_t{4} << 30, rlim_t{4} << 30};
  REQUIRE(::setrlimit(RLIMIT_AS, &space) == 0);
#endif
  for (const std::string& target : omniroute::fuzz::targets()) {
    size_t inputs = 0;
    for (const auto& entry : fs::directory_iterator(corpus / target)) {
      if (!entry.is_regular_file()) continue;
      ++inputs;
      INFO(target << " " << entry.path().filename().string());
      CHECK(omniroute::fuzz::check(target, read_file(entry.path())) == "");
    }
    INFO(target);
    CHECK(inputs > 0);
  }
}
