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

// A jemalloc setting or statistic, read as T.
template <typename T>
T ctl(const std::string& name) {
  T value{};
  size_t size = sizeof value;
  REQUIRE_MESSAGE(mallctl(name.c_str(), &value, &size, nullptr, 0) == 0, "jemalloc has no ", name);
  return value;
}

// A statistic in bytes, as of now (jemalloc refreshes its statistics at each new epoch).
size_t stat_bytes(const std::string& name) {
  uint64_t epoch = 1;
  size_t size = sizeof epoch;
  REQUIRE(mallctl("epoch", &epoch, &size, &epoch, size) == 0);
  return ctl<size_t>(name);
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
  CHECK(ctl<ssize_t>("opt.dirty_decay_ms") == -1);
  CHECK(ctl<ssize_t>("opt.muzzy_decay_ms") == -1);
  // An arena per CPU, and no background thread to wake for nothing (ops/allocator.cpp).
  CHECK(std::string(ctl<const char*>("opt.percpu_arena")) == "percpu");
  CHECK(!ctl<bool>("opt.background_thread"));
  CHECK(std::string(ctl<const char*>("opt.thp")) == "always");
  CHECK(ctl<size_t>("opt.lg_extent_max_active_fit") == 30);
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
  const size_t resident_before = stat_bytes("stats.resident");
  std::free(first);
  const size_t resident_after = stat_bytes("stats.resident");
  // Kept resident: jemalloc's default would have purged the whole block on free.
  CHECK(resident_after + bytes / 2 > resident_before);
}

TEST_CASE("a freed large extent serves smaller requests: the process does not grow beside it") {
  if (settings_overridden()) return;
  // An arena of this test's own and no thread cache: what the arena maps is this test's alone.
  const auto arena = ctl<unsigned>("arenas.create");
  const int flags = MALLOCX_ARENA(arena) | MALLOCX_TCACHE_NONE;
  const std::string mapped_stat = "stats.arenas." + std::to_string(arena) + ".mapped";
  auto mapped = [&] { return stat_bytes(mapped_stat); };
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
