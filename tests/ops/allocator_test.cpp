// The executables that run the server link jemalloc with omniroute's settings
// (ops/allocator.cpp); this suite links them the same way.
#include <doctest/doctest.h>
#include <jemalloc/jemalloc.h>
#include <sys/types.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

// True when MALLOC_CONF is set: the environment's settings override the executable's where
// they differ, and nothing of omniroute's is left to check.
bool settings_overridden() {
  const char* env = std::getenv("MALLOC_CONF");
  if (!env || !*env) return false;
  MESSAGE("MALLOC_CONF=" << env << " may override omniroute's allocator settings");
  return true;
}

ssize_t decay_ms(const char* name) {
  ssize_t value = 0;
  size_t size = sizeof value;
  REQUIRE_MESSAGE(mallctl(name, &value, &size, nullptr, 0) == 0, "jemalloc has no ", name);
  return value;
}

// The kernel's transparent huge page mode (the bracketed word of its setting), or "" where
// it has none.
std::string kernel_thp_mode() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(f, line);
  const size_t open = line.find('['), close = line.find(']');
  return open == std::string::npos || close == std::string::npos ? "" : line.substr(open + 1, close - open - 1);
}

// The flags (VmFlags, two letters each) of the mapping of this process that holds `p`, from
// /proc/self/smaps; "" when none holds it.
std::string mapping_flags(const void* p) {
  const auto at = reinterpret_cast<uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t from = 0, to = 0;
    char dash = 0;
    std::istringstream range(line);
    // A mapping's first line: "from-to perms offset dev inode [path]", in hex.
    if (range >> std::hex >> from >> dash >> to && dash == '-' && line.find(':') > line.find(' ')) {
      inside = from <= at && at < to;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) return line.substr(8);
  }
  return "";
}

}  // namespace

TEST_CASE("jemalloc runs with omniroute's settings: freed pages are kept, not given back") {
  if (settings_overridden()) return;
  CHECK(decay_ms("opt.dirty_decay_ms") == -1);
  CHECK(decay_ms("opt.muzzy_decay_ms") == -1);
  // An arena per CPU, and no background thread to wake for nothing (ops/allocator.cpp).
  const char* arenas = nullptr;
  size_t size = sizeof arenas;
  REQUIRE(mallctl("opt.percpu_arena", &arenas, &size, nullptr, 0) == 0);
  CHECK(std::string(arenas) == "percpu");
  bool background = true;
  size = sizeof background;
  REQUIRE(mallctl("opt.background_thread", &background, &size, nullptr, 0) == 0);
  CHECK(!background);
  const char* thp = nullptr;
  size = sizeof thp;
  REQUIRE(mallctl("opt.thp", &thp, &size, nullptr, 0) == 0);
  CHECK(std::string(thp) == "always");
  size_t fit = 0;
  size = sizeof fit;
  REQUIRE(mallctl("opt.lg_extent_max_active_fit", &fit, &size, nullptr, 0) == 0);
  CHECK(fit == 30);
}

TEST_CASE("jemalloc's memory is advised for transparent huge pages: a fault brings 2 MiB") {
  if (settings_overridden()) return;
  const std::string mode = kernel_thp_mode();
  if (mode.empty() || mode == "never") {
    MESSAGE("the kernel's transparent huge pages are '" << mode << "': nothing to advise");
    return;
  }
  const size_t bytes = size_t{32} << 20;
  char* block = static_cast<char*>(std::malloc(bytes));
  REQUIRE(block != nullptr);
  block[0] = 1;
  // "hg": the mapping was given MADV_HUGEPAGE, which the kernel's "madvise" mode waits for.
  const std::string flags = mapping_flags(block + bytes / 2);
  std::free(block);
  INFO("VmFlags:" << flags);
  CHECK(flags.find(" hg") != std::string::npos);
}

TEST_CASE("a freed block of 32 MiB stays resident, for the next allocation") {
  if (settings_overridden()) return;
  // 32 MiB: above the size (8 MiB) that jemalloc otherwise gives back to the kernel at once.
  const size_t bytes = size_t{32} << 20;
  char* first = static_cast<char*>(std::malloc(bytes));
  REQUIRE(first != nullptr);
  for (size_t i = 0; i < bytes; i += 4096) first[i] = 1;
  size_t resident_before = 0, size = sizeof resident_before;
  uint64_t epoch = 1;
  size_t esize = sizeof epoch;
  REQUIRE(mallctl("epoch", &epoch, &esize, &epoch, esize) == 0);
  REQUIRE(mallctl("stats.resident", &resident_before, &size, nullptr, 0) == 0);
  std::free(first);
  REQUIRE(mallctl("epoch", &epoch, &esize, &epoch, esize) == 0);
  size_t resident_after = 0;
  REQUIRE(mallctl("stats.resident", &resident_after, &size, nullptr, 0) == 0);
  // Kept resident: jemalloc's default would have purged the whole block on free.
  CHECK(resident_after + bytes / 2 > resident_before);
}

TEST_CASE("a freed large extent serves smaller requests: the process does not grow beside it") {
  if (settings_overridden()) return;
  // An arena of this test's own and no thread cache: what the arena maps is this test's alone.
  unsigned arena = 0;
  size_t size = sizeof arena;
  REQUIRE(mallctl("arenas.create", &arena, &size, nullptr, 0) == 0);
  const int flags = MALLOCX_ARENA(arena) | MALLOCX_TCACHE_NONE;
  const std::string mapped_stat = "stats.arenas." + std::to_string(arena) + ".mapped";
  auto mapped = [&] {
    uint64_t epoch = 1;
    size_t esize = sizeof epoch, bytes = 0, bsize = sizeof bytes;
    REQUIRE(mallctl("epoch", &epoch, &esize, &epoch, esize) == 0);
    REQUIRE(mallctl(mapped_stat.c_str(), &bytes, &bsize, nullptr, 0) == 0);
    return bytes;
  };
  const size_t large = size_t{32} << 20, small = size_t{64} << 10, count = 256;  // 16 MiB
  void* block = mallocx(large, flags);
  REQUIRE(block != nullptr);
  dallocx(block, flags);
  const size_t before = mapped();
  std::vector<void*> blocks;
  for (size_t i = 0; i < count; ++i) {
    blocks.push_back(mallocx(small, flags));
    REQUIRE(blocks.back() != nullptr);
  }
  const size_t after = mapped();
  for (void* b : blocks) dallocx(b, flags);
  // jemalloc's default would not split an extent 512 times the request: 16 MiB more mapped.
  CHECK(after == before);
}
