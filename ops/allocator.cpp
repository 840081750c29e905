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
// benchmark's virtual machine). A CPU's arena outlives every thread.
//
// No background threads: they were that fix before (they take over the purging, which the
// decay above makes a no-op), but with no decay jemalloc 5.3 wakes its background thread on
// every freeing of pages to an arena, to find nothing to purge: 100,000-120,000 wakeups on a
// 300,000-event benchmark, ~5% of the CPU by perf. Six interleaved pairs of benchmarks:
// context switches 263,000-289,000 -> 41,000-44,000, page faults 315,000 -> 299,000 and
// task-clock 28.4 -> 26.8 s (means; four pairs of six lower). docs/design-notes.md.
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "dirty_decay_ms:-1,muzzy_decay_ms:-1,percpu_arena:percpu";
}
