// For processor_test: processes a workload into the data directory argv[1] on the embedded
// engine with small memtables, so that RocksDB flushes many times meanwhile, then kills itself
// with SIGKILL: nothing is closed, and what no flush reached is lost, as in a crash. With a
// second argument `flush`, it calls Store::flush() before it dies (as a snapshot does).
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "actors/partition_processor.hpp"
#include "events/embedded_log.hpp"
#include "events/time.hpp"
#include "tests/support/support.hpp"

using namespace omniroute;

namespace {

// The text of an event of tenant acme, `s` seconds into the day the tests use.
std::string event(const std::string& id, const std::string& type, int64_t s, nlohmann::json data) {
  return testing::event(id, type, events::format_rfc3339_ms(1795168800000 + s * 1000), std::move(data)).dump();
}

int fail(const std::string& what) {
  std::fprintf(stderr, "crash_writer: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || (argc == 3 && std::string(argv[2]) != "flush"))
    return fail("usage: crash_writer DIR [flush]");
  auto store = projections::Store::open(argv[1], 64 * 1024);
  if (!store) return fail(store.error().message());
  if (auto how = (*store)->index_journal(projections::journal_index::local); !how)
    return fail(how.error().message());
  auto log = events::EmbeddedLog::open((*store)->log_handles(), 1, false);
  if (!log) return fail(log.error().message());

  // Two agents take what they can; the rest waits and is abandoned. Customers come back.
  std::vector<std::string> texts = {
      event("q", "queue.configured", 0, {{"queue", "billing"}, {"auto_accept", true}}),
      event("a1", "agent.logged_in", 1, {{"agent", "alice"}, {"queues", {"billing"}}, {"capacity", {{"chat", 3}}}}),
      event("a2", "agent.logged_in", 1, {{"agent", "bob"}, {"queues", {"billing"}}, {"capacity", {{"chat", 2}}}})};
  for (int i = 0; i < 4000; ++i) {
    const std::string c = "c-" + std::to_string(i), k = std::to_string(i);
    texts.push_back(event("s" + k, "conversation.started", 10 + 2 * i,
                          {{"conversation", c}, {"customer", "u" + std::to_string(i % 40)},
                           {"channel", "web"}, {"queue", "billing"}}));
    texts.push_back(event("e" + k, "conversation.ended", 11 + 2 * i, {{"conversation", c}, {"by", "customer"}}));
  }
  // Appended a hundred at a time (the embedded log keeps an append's records under one key),
  // then processed by the drain tools use: steps of up to 4,096 records, each step's views
  // written before the next.
  for (size_t at = 0; at < texts.size(); at += 100) {
    std::vector<std::string> chunk(texts.begin() + static_cast<long>(at),
                                   texts.begin() + static_cast<long>(std::min(at + 100, texts.size())));
    if (Status s = (*log)->append_ingest(partition_id{0}, chunk, nullptr); !s) return fail(s.message());
  }
  if (Status s = actors::drain(**log, **store, partition_id{0}); !s) return fail(s.message());
  if (argc == 3)
    if (Status s = (*store)->flush(); !s) return fail(s.message());
  std::raise(SIGKILL);
  return fail("still alive after SIGKILL");
}
