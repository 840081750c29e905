// The executables that run the server link jemalloc with omniroute's settings
// (ops/allocator.cpp); this suite links them the same way, and runs alone in its process (one
// of its tests counts on no thread but its own).
#include <doctest/doctest.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <sched.h>
#include <sys/types.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

// True when MALLOC_CONF is set: the environment's settings override the executable's where
// they differ, and nothing of omniroute's is left to check.
bool settings_overridden() {
  const char* env = std::getenv("MALLOC_CONF");
  if (!env || !*env) return false;
  MESSAGE("MALLOC_CONF=" << std::string(env) << " may override omniroute's allocator settings");
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

// A statistic as of now (jemalloc refreshes its statistics at each new epoch).
template <typename T>
T stat(const std::string& name) {
  uint64_t epoch = 1;
  size_t size = sizeof epoch;
  REQUIRE(mallctl("epoch", &epoch, &size, &epoch, size) == 0);
  return ctl<T>(name);
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

// The CPUs this process may run on.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  REQUIRE(sched_getaffinity(0, sizeof set, &set) == 0);
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  return cpus;
}

// Two CPUs this process may run on, or none on a machine of one, where the test has nothing to
// check (`one_cpu` says why).
std::vector<int> two_cpus(const char* one_cpu) {
  const std::vector<int> cpus = allowed_cpus();
  if (cpus.size() >= 2) return {cpus[0], cpus[1]};
  MESSAGE(one_cpu);
  return {};
}

void run_only_on(int cpu) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  REQUIRE(pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0);
}

// How many of this process's threads have the name.
size_t threads_named(const std::string& name) {
  size_t n = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string line;
    if (std::getline(comm, line) && line == name) ++n;
  }
  return n;
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
  CHECK(ctl<size_t>("opt.oversize_threshold") == size_t{256} << 10);
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
  const size_t resident_before = stat<size_t>("stats.resident");
  std::free(first);
  const size_t resident_after = stat<size_t>("stats.resident");
  // Kept resident: jemalloc's default would have purged the whole block on free.
  CHECK(resident_after + bytes / 2 > resident_before);
}

TEST_CASE("a freed large extent serves smaller requests: the process does not grow beside it") {
  if (settings_overridden()) return;
  // An arena of this test's own and no thread cache: what the arena maps is this test's alone.
  const auto arena = ctl<unsigned>("arenas.create");
  const int flags = MALLOCX_ARENA(arena) | MALLOCX_TCACHE_NONE;
  const std::string mapped_stat = "stats.arenas." + std::to_string(arena) + ".mapped";
  auto mapped = [&] { return stat<size_t>(mapped_stat); };
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

TEST_CASE("an arena keeper sleeps on each CPU the process may run on") {
  if (settings_overridden()) return;
  CHECK(threads_named("arena-keeper") == allowed_cpus().size());
}

TEST_CASE("a thread that ends alone on its CPU leaves what it freed with the process") {
  if (settings_overridden()) return;
  const std::vector<int> cpus =
      two_cpus("one CPU: the thread would share its arena with this test's own");
  if (cpus.empty()) return;
  // This test's thread on one CPU, the worker alone on another: the worker is the only thread
  // of that CPU's arena but for the arena's keeper, and jemalloc purges an arena left with no
  // thread when a thread ends.
  cpu_set_t before;
  REQUIRE(pthread_getaffinity_np(pthread_self(), sizeof before, &before) == 0);
  run_only_on(cpus[0]);
  unsigned arena = 0;
  uint64_t purged_before = 0;
  size_t dirty_before = 0;  // pages
  // Above the thread cache's sizes, below those of the arena for large blocks.
  const size_t block = size_t{128} << 10, blocks = 256;
  std::thread worker([&] {
    run_only_on(cpus[1]);
    std::vector<char*> held;
    for (size_t i = 0; i < blocks; ++i) {
      held.push_back(static_cast<char*>(std::malloc(block)));
      for (size_t b = 0; b < block; b += 4096) held.back()[b] = 1;
    }
    for (char* p : held) std::free(p);
    arena = ctl<unsigned>("thread.arena");
    const std::string stats = "stats.arenas." + std::to_string(arena);
    dirty_before = stat<size_t>(stats + ".pdirty");
    purged_before = stat<uint64_t>(stats + ".dirty_purged");
  });
  worker.join();
  REQUIRE(pthread_setaffinity_np(pthread_self(), sizeof before, &before) == 0);
  const std::string stats = "stats.arenas." + std::to_string(arena);
  INFO("arena " << arena << ": " << dirty_before << " dirty pages before the worker ended");
  CHECK(dirty_before * 4096 >= blocks * block);
  CHECK(stat<size_t>(stats + ".pdirty") >= dirty_before);  // and its cache's last slabs
  CHECK(stat<uint64_t>(stats + ".dirty_purged") == purged_before);
}

TEST_CASE("blocks of 256 KiB and more come from one arena whatever the CPU, smaller ones from the CPU's") {
  if (settings_overridden()) return;
  const std::vector<int> cpus = two_cpus("one CPU: one arena for everything");
  if (cpus.empty()) return;
  // The arena of a block of `bytes` allocated on each of two CPUs, each by a thread of its own
  // (a thread keeps its arena while no other thread has used it, wherever it runs).
  auto arenas_of = [&](size_t bytes) {
    std::vector<unsigned> arenas;
    for (int cpu : {cpus[0], cpus[1]}) {
      std::thread([&] {
        run_only_on(cpu);
        void* block = std::malloc(bytes);
        REQUIRE(block != nullptr);
        unsigned arena = 0;
        size_t size = sizeof arena;
        REQUIRE(mallctl("arenas.lookup", &arena, &size, &block, sizeof block) == 0);
        std::free(block);
        arenas.push_back(arena);
      }).join();
    }
    return arenas;
  };
  const auto small = arenas_of(size_t{64} << 10), large = arenas_of(size_t{256} << 10);
  CHECK(small[0] != small[1]);  // an arena per CPU
  CHECK(large[0] == large[1]);  // one for the large blocks: freed on one CPU, reused on another
}
