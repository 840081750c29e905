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
// background_thread:true: without jemalloc's background threads, a thread that exits leaving
// its arena with no thread purges every freed page of that arena whatever the decay. A server
// stopped in a process (an embedding application's, the benchmark's) then hands back what its
// threads freed, and the next one faults it in again: a page fault costs 13-16 µs on the
// benchmark's virtual machine. With them, a later benchmark run faults 0.05 times an event
// instead of 0.135 (medians, three interleaved rounds of a million events a run).
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "dirty_decay_ms:-1,muzzy_decay_ms:-1,background_thread:true";
}
