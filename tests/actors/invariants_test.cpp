// The routing engine's invariants (tests/actors/invariants.hpp) over thousands of seeded
// sequences, each checked after every fact and replayed at the end.
#include "tests/actors/invariants.hpp"

#include <doctest/doctest.h>

using namespace omniroute;
using namespace omniroute::testing::invariants;

TEST_CASE("randomized: invariants hold after every fact, and rebuild equals live") {
  const int sequences = 3000, facts = 150;
  int failed = 0;
  for (int seed = 1; seed <= sequences && failed < 3; ++seed) {
    INFO("seed ", seed);
    Run run(static_cast<uint64_t>(seed));
    run.go(facts);
    CHECK_MESSAGE(!run.failed(), run.failure());
    if (run.failed()) ++failed;
  }
  CHECK(failed == 0);
  std::string summary;
  for (const auto& [type, n] : seen()) summary += "  " + type + ": " + std::to_string(n) + "\n";
  MESSAGE("journal entries by type over all sequences:\n" << summary);
  // Every path the generator aims at was taken, so a quiet run is not an empty one.
  for (const char* type : {"offer.timed_out", "conversation.relaxed", "conversation.overflowed",
                           "agent.went_offline", "agent.went_away", "conversation.abandoned",
                           "conversation.preference_expired", "event.refused", "conversation.assigned"})
    CHECK_MESSAGE(seen()[type] > 0, type);
}
