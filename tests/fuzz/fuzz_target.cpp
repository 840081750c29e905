// One libFuzzer target: the check named by OMNIROUTE_FUZZ_TARGET (tests/fuzz/checks.hpp) on
// every input libFuzzer makes; a problem is a crash, which libFuzzer reports and keeps.
// Built by tests/fuzz/run (clang, -DOMNIROUTE_FUZZ=ON).
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "tests/fuzz/checks.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string problem = omniroute::fuzz::check(
      OMNIROUTE_FUZZ_TARGET, std::string_view(reinterpret_cast<const char*>(data), size));
  if (!problem.empty()) {
    std::fprintf(stderr, "omniroute fuzz target %s: %s\n", OMNIROUTE_FUZZ_TARGET, problem.c_str());
    std::abort();
  }
  return 0;
}
