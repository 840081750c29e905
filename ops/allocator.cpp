// The allocator settings of the omniroute binary and of the benchmarks that measure it.
// jemalloc reads `malloc_conf` as the process starts; MALLOC_CONF in the environment, read
// after it, overrides any of them.
//
// dirty_decay_ms:-1, muzzy_decay_ms:-1: freed pages stay with the process for its next
// allocations instead of going back to the kernel. jemalloc's default hands them back over 10
// seconds, and those of allocations of 8 MiB or more at once; the memory is then wanted again
// (the next memtables, the next request bodies, the hash tables that grow by doubling), and
// every page of it comes back through a page fault: on the benchmark's virtual machine, 17% of
// a partition host's time. The process keeps what it needed at its peak: for a server that
// runs under its load, the memory it needs anyway. docs/design-notes.md gives the measurements.
//
// percpu_arena:percpu: an arena per CPU, which the threads running on it use, rather than
// arenas handed to threads as they start. With the latter, a thread that exits leaving its
// arena with no thread purges every freed page of that arena whatever the decay: a server
// stopped in a process (an embedding application's, the benchmark's) handed back what its
// threads freed, and the next one faulted it in again (a page fault costs 13-16 µs on the
// benchmark's virtual machine). A CPU's arena outlives every thread (but not always its memory:
// the arena keepers below).
//
// No background threads: they were that fix before (they take over the purging, which the
// decay above makes a no-op), but with no decay jemalloc 5.3 wakes its background thread on
// every freeing of pages to an arena, to find nothing to purge: 100,000-120,000 wakeups on a
// 300,000-event benchmark, ~5% of the CPU by perf. Six interleaved pairs of benchmarks:
// context switches 263,000-289,000 -> 41,000-44,000, page faults 315,000 -> 299,000 and
// task-clock 28.4 -> 26.8 s (means; four pairs of six lower). docs/design-notes.md.
//
// thp:always: jemalloc asks the kernel (madvise MADV_HUGEPAGE) for transparent huge pages in all
// its memory, so that a page fault brings 2 MiB rather than 4 KiB. The process grows while it runs
// (the memtables, the routing state, the journeys), and every fresh page it touches was a fault:
// 0.06-0.14 an event in the benchmark's runs after its first, 0.25-0.51 in the first, at 13-16 µs a
// fault on the benchmark's virtual machine. With it, 0.00-0.05. Five interleaved pairs of
// million-event benchmarks: best e2e +1% to +35%, 151,600 -> 179,400 events/s on their mean (+18%),
// CPU in the best runs 11.4-13.6 -> 10.2-11.6 µs an event; five pairs at 300,000 events: +9% on the
// mean of the bests. The price is memory: a huge page is resident as a whole once touched. One
// server under 2 million events: 1,768 MiB resident against 1,710 (measured with a driver found later
// to send only the conversations' starts); the benchmark's process (four
// servers in turn, the memory each frees kept for the next) peaked 1-57% higher in five pairs at a
// million events. Where the kernel's THP setting is "never", this changes nothing; where memory is
// short and huge pages must be compacted at a fault, `MALLOC_CONF=thp:default` turns it off.
// docs/design-notes.md gives the measurements.
//
// lg_extent_max_active_fit:30: a freed extent of any size may be split for a smaller request.
// jemalloc's default (6) splits a freed extent only for a request of at least 1/64 of its
// size, keeping large extents whole for large requests and mapping fresh pages for the small
// ones. With nothing given back (above), the large extent then stays resident and idle while
// the process grows beside it, every fresh page zeroed by the kernel at its fault. A server
// frees large extents all the time (a flushed memtable's arena blocks, 1 MiB each and freed
// together; everything a stopped server held; neighbours freed coalesce), and its next
// requests are small (slabs, hash tables, request bodies): in a 300,000-event benchmark the
// kernel's page zeroing was 2-12% of each second's samples after the first run, and the
// process grew by 134-154 MiB with each of the next two servers. With it, no page zeroing in
// the third and fourth runs (76-131 samples a second before). Five
// interleaved pairs at a million events: the process's peak 2,623-3,309 -> 1,884-2,261 MiB,
// best e2e 180,800 -> 192,100 events/s on their mean (+6%; -2% to +15%, inside the machine's
// noise); one server under 2 million events, 1,746 MiB resident against 1,804 (the same
// driver).
// docs/design-notes.md gives the measurements.
//
// Arena keepers (below): jemalloc purges every freed page of an arena, whatever the decay, when
// a thread that ends leaves the arena with no thread (tcache_destroy's "force purging when no
// threads assigned to the arena anymore"). With an arena per CPU, a thread belongs to the arena
// of the CPU it last allocated on; when a server stops, its threads end one by one, and the last
// one of each CPU gave that arena's memory back to the kernel: the memtables, the routing state,
// everything the next server of the process (an embedding application's, the benchmark's) then
// faulted in again, the kernel zeroing each huge page. So that an arena never has no thread, the
// process starts one thread per CPU it may run on, which allocates once on that CPU (taking its
// arena) and then sleeps for good, with every signal blocked. Without them, a thread that freed
// 32 MiB on a CPU of its own saw all of it purged as it ended (tests/ops/allocator_test.cpp);
// the benchmark's process, whose servers stop in turn, was seen to drop from 1,601 to 1,317 MiB
// resident. docs/design-notes.md gives the measurements.
//
// oversize_threshold:262144: blocks of 256 KiB and more come from one arena that every thread
// shares (jemalloc's arena for large blocks; 8 MiB and more by default), the smaller ones still
// from the CPU's. Memory freed into one CPU's arena does not serve another's, so with an arena
// per CPU each arena grew to its own peak of large blocks (request bodies, write batches, the
// memtables' blocks), and the servers of one process grew them in turn: the benchmark's process
// was resident 1,550, 1,943 and 1,969 MiB after its first three runs, each new page zeroed by the
// kernel at its fault. With it: 1,521-1,583, then 1,573-1,625 MiB; 785-800 huge-page faults a
// benchmark against 802-981, and 7.4 against 7.8 µs of CPU an event in the runs after the first
// (five interleaved pairs). Large blocks are few (about one per request or batch of a thousand
// events), so their arena's locks are not contended as one arena for everything would be.
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "dirty_decay_ms:-1,muzzy_decay_ms:-1,percpu_arena:percpu,thp:always,"
                          "lg_extent_max_active_fit:30,oversize_threshold:262144";
}

#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

namespace {

void* keep_arena(void*) {
  // The first allocation binds this thread to the arena of the CPU it is pinned to.
  dallocx(mallocx(1, 0), 0);
  for (;;) pause();
  return nullptr;
}

// One sleeping thread per CPU of the process's affinity, started before main.
struct ArenaKeepers {
  ArenaKeepers() {
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof cpus, &cpus) != 0) return;
    sigset_t all, before;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &before);  // inherited: no signal is ever delivered to them
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &cpus)) continue;
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setaffinity_np(&attr, sizeof one, &one);
      pthread_attr_setstacksize(&attr, size_t{64} << 10);
      pthread_t thread;
      if (pthread_create(&thread, &attr, keep_arena, nullptr) == 0) {
        pthread_setname_np(thread, "arena-keeper");
        pthread_detach(thread);
      }
      pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &before, nullptr);
  }
};

const ArenaKeepers arena_keepers;

}  // namespace
