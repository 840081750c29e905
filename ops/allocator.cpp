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
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "dirty_decay_ms:-1,muzzy_decay_ms:-1";
}
