// CSV import: mapping and row errors, idempotency, and the real Anonymous Bank January 1999 log
// (Guedj and Mandelbaum, Technion), whose per-day figures the interval statistics must
// reproduce as the raw rows give them, computed here independently of the importer.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "actors/partition_processor.hpp"
#include "adapters/csv_import.hpp"
#include "adapters/ingest.hpp"
#include "projections/queue_plan.hpp"
#include "events/embedded_log.hpp"
#include "events/time.hpp"
#include "tests/support/support.hpp"

using namespace omniroute;
using nlohmann::json;

namespace {

std::string bank_file() {
  const char* env = std::getenv("OMNIROUTE_BANK_DATA");
  for (const char* p : {static_cast<const char*>(env), OMNIROUTE_BANK_DATA_NEAR,
                        "/work/shared/data/anonymous-bank/january.txt"})
    if (p && std::filesystem::exists(p)) return p;
  return "";
}

json bank_mapping() {
  std::ifstream in(std::string(OMNIROUTE_SOURCE_DIR) + "/examples/import/anonymous-bank.json");
  return json::parse(in);
}

struct Node {
  std::unique_ptr<projections::Store> store;
  std::unique_ptr<events::EventLog> log;
  explicit Node(const std::string& dir) {
    store = std::move(projections::Store::open(dir).value());
    log = std::move(events::EmbeddedLog::open(store->log_handles(), 2, false).value());
  }
  adapters::ImportSummary import(std::istream& in, const json& mapping) {
    adapters::CsvImporter importer(adapters::ImportMapping::parse(mapping).value(), "bank");
    auto summary = importer.run(in, *log, *store);
    REQUIRE(summary.has_value());
    for (partition_id p : summary->partitions) REQUIRE(actors::drain(*log, *store, p));
    return *summary;
  }
};

// The raw file's own account of one local day.
struct Day {
  long queued = 0, abandoned = 0, served = 0, served_within_20 = 0, served_without_service = 0;
  double wait_sum = 0;
};

int seconds_of_day(const std::string& t) {  // H:MM:SS
  int h = 0, m = 0, s = 0;
  std::sscanf(t.c_str(), "%d:%d:%d", &h, &m, &s);
  return h * 3600 + m * 60 + s;
}

// Per local day of arrival (YYMMDD, shifted to the next day when the arrival is after
// midnight), straight from the tab-separated fields.
std::map<std::string, Day> raw_days(const std::string& path) {
  std::map<std::string, Day> days;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, '\t');) f.push_back(x);
    REQUIRE(f.size() == 17);
    const std::string &date = f[5], &vru_entry = f[6], &vru_exit = f[7], &q_start = f[9],
                      &outcome = f[12], &ser_start = f[13];
    const long q_time = std::stol(f[11]), ser_time = std::stol(f[15]);
    const bool queued = q_start != "0:00:00";
    if (outcome == "PHANTOM" || (outcome == "HANG" && !queued)) continue;  // never in a queue
    int arrival = seconds_of_day(queued ? q_start : vru_exit);
    int64_t day_ms = (events::parse_rfc3339_ms("19" + date.substr(0, 2) + "-" + date.substr(2, 2) +
                                               "-" + date.substr(4, 2) + "T00:00:00Z")
                          .value());
    if (arrival < seconds_of_day(vru_entry)) day_ms += 86400000;
    Day& d = days[events::format_rfc3339_ms(day_ms).substr(0, 10)];
    if (queued) ++d.queued;
    if (outcome == "HANG") {
      ++d.abandoned;
      d.wait_sum += static_cast<double>(q_time);
    } else if (outcome == "AGENT") {
      if (ser_start == "0:00:00" && ser_time == 0) {
        ++d.served_without_service;  // the importer reports these rows as bad
        if (queued) --d.queued;
        continue;
      }
      ++d.served;
      const long wait = queued ? q_time : 0;
      if (wait <= 20) ++d.served_within_20;
      d.wait_sum += static_cast<double>(wait);
    }
  }
  return days;
}

}  // namespace

TEST_CASE("ingest: a key met earlier in the batch is a duplicate; the same id in another tenant is not") {
  testing::TempDir dir;
  Node node(dir.str());
  // 3,000 events over three tenants, each id in all three; every seventh event repeats the
  // tenant and id an event before it was given.
  std::vector<events::Envelope> envs;
  std::vector<bool> expect_duplicate;
  std::set<std::pair<std::string, std::string>> seen;
  std::map<std::pair<std::string, std::string>, size_t> expect_counts;  // (type, result)
  for (int i = 0; i < 3000; ++i) {
    events::Envelope e;
    const int like = i % 7 == 6 ? i / 2 : i;
    e.tenant = "t" + std::to_string(like % 3);
    e.id = "e-" + std::to_string(like / 3);
    e.type = like % 2 ? "agent.logged_in" : "agent.heartbeat";  // a repeat keeps its type
    e.time_ms = 1795168800000 + i;
    e.data = {{"agent", "a-" + std::to_string(i)}};
    expect_duplicate.push_back(!seen.insert({e.tenant, e.id}).second);
    ++expect_counts[{e.type, expect_duplicate.back() ? "duplicate" : "accepted"}];
    envs.push_back(std::move(e));
  }
  const size_t repeats = static_cast<size_t>(std::count(expect_duplicate.begin(), expect_duplicate.end(), true));
  REQUIRE(repeats > 200);  // those whose earlier event was not a repeat itself
  events::TypeCounts counts;
  auto results = adapters::ingest(*node.log, *node.store, envs, std::nullopt, nullptr, nullptr, &counts);
  REQUIRE(results.has_value());
  REQUIRE(results->size() == envs.size());
  // Counted by type and result, though the accepted events' types went to the log.
  std::map<std::pair<std::string, std::string>, size_t> got_counts;
  for (const auto& c : counts.counts()) got_counts[{c.type, c.result}] += c.n;
  CHECK(got_counts == expect_counts);
  CHECK(expect_counts.size() == 4);
  for (size_t i = 0; i < envs.size(); ++i) {
    CHECK_MESSAGE((*results)[i].duplicate == expect_duplicate[i], "event " << i);
    CHECK((*results)[i].offset.has_value() != expect_duplicate[i]);
  }
}

TEST_CASE("a mapping with a missing or wrong key is refused, naming it") {
  json m = bank_mapping();
  m.erase("queue");
  CHECK(adapters::ImportMapping::parse(m).error() == "queue: missing");
  m = bank_mapping();
  m["outcome"]["answered"] = 3;
  CHECK(adapters::ImportMapping::parse(m).error() == "outcome.answered: must be a list of strings");
  m = bank_mapping();
  m["utc_offset"] = "2 hours";
  CHECK(adapters::ImportMapping::parse(m).error() == "utc_offset: must be like +02:00 or -05:30");
  m = bank_mapping();
  m.erase("date");
  CHECK(adapters::ImportMapping::parse(m).error() == "date: missing (an object)");
}

TEST_CASE("bad rows are reported by line with the reason; good rows around them import") {
  const std::string header =
      "vru+line\tcall_id\tcustomer_id\tpriority\ttype\tdate\tvru_entry\tvru_exit\tvru_time\tq_start\t"
      "q_exit\tq_time\toutcome\tser_start\tser_exit\tser_time\tserver\r\n";
  const std::string text =
      header +
      "AA0101\t1\t9664491\t2\tPS\t990101\t10:00:31\t10:00:36\t5\t10:00:36\t10:01:09\t33\tAGENT\t10:"
      "01:09\t10:03:00\t111\tMICHAL\r\n"
      "AA0101\t2\t0\t0\tPS\t990101\t10:00:31\r\n"  // line 3
      "AA0101\t3\t0\t0\tPS\t991301\t10:00:31\t10:00:36\t5\t0:00:00\t0:00:00\t0\tAGENT\t10:00:"
      "36\t10:01:00\t24\tDANA\r\n"  // line 4
      "AA0101\t4\t0\t0\tPS\t990101\t10:00:31\t10:00:36\t5\t10:00:36\t10:00:40\t4\tBUSY\t0:00:00\t0:"
      "00:00\t0\tNO_SERVER\r\n"  // 5
      "AA0101\t5\t0\t0\tPS\t990101\t10:00:31\t10:00:36\t5\t10:00:36\t10:00:40\tx4\tHANG\t0:00:"
      "00\t0:00:00\t0\tNO_SERVER\r\n"  // 6
      "AA0101\t6\t0\t0\tPS\t990101\t10:00:31\t10:00:36\t5\t0:00:00\t0:00:00\t0\tHANG\t0:00:00\t0:"
      "00:00\t0\tNO_SERVER\r\n"  // skipped
      "AA0101\t7\t0\t0\tPS\t990101\t23:59:50\t23:59:55\t5\t0:00:02\t0:00:10\t8\tHANG\t0:00:00\t0:"
      "00:00\t0\tNO_SERVER\r\n"  // next day
      // An agent's name in Latin-1 (not UTF-8: the import aborted on it), then a byte that is not
      // UTF-8 in a column the mapping does not read (imported).
      "AA0101\t8\t0\t0\tPS\t990101\t11:00:31\t11:00:36\t5\t11:00:36\t11:01:09\t33\tAGENT\t11:01:"
      "09\t11:03:00\t111\tJOS\xC9\r\n"  // 9
      "AA0101\t9\t0\t0\tPS\t990101\t12:00:31\t12:00:36\t5\t12:00:36\t12:01:09\t33\tAGENT\t12:01:"
      "09\t12:03:\xff\t111\tDANA\r\n";
  testing::TempDir dir;
  Node node(dir.str());
  std::istringstream in(text);
  auto s = node.import(in, bank_mapping());
  CHECK(s.rows == 9);
  CHECK(s.accepted == 3);
  CHECK(s.skipped == 1);
  REQUIRE(s.bad.size() == 5);
  CHECK(s.bad[0].line == 3);
  CHECK(s.bad[0].reason == "has 7 fields, the header has 17");
  CHECK(s.bad[1].line == 4);
  CHECK(s.bad[1].reason == "date: '991301' is not a date of the form %y%m%d");
  CHECK(s.bad[2].line == 5);
  CHECK(s.bad[2].reason == "outcome: unknown outcome 'BUSY'");
  CHECK(s.bad[3].line == 6);
  CHECK(s.bad[3].reason == "q_time: 'x4' is not a number of seconds");
  CHECK(s.bad[4].line == 9);
  CHECK(s.bad[4].reason == "server: not UTF-8 (byte 4 of the value)");

  // The answered call: arrival 10:00:36 local (+02:00), waited 33 s, handled 111 s, by MICHAL.
  auto journal = node.store->journal_after("bank", std::nullopt, 10);
  REQUIRE(journal.size() == 3);
  json first = json::parse(journal[0]);
  CHECK(first["time"] == "1999-01-01T08:00:36.000Z");
  CHECK(first["data"]["waited_s"] == 33);
  CHECK(first["data"]["handled_s"] == 111);
  CHECK(first["data"]["agent"] == "MICHAL");
  CHECK(first["data"]["customer"] == "9664491");
  // The abandoned call entered the queue after midnight: it belongs to January 2.
  json second = json::parse(journal[1]);
  CHECK(second["time"] == "1999-01-01T22:00:02.000Z");
  CHECK_FALSE(second["data"].contains("agent"));

  auto rows = node.store->intervals("bank", "PS", INT64_MIN / 2, INT64_MAX / 2);
  auto total = projections::roll_up(rows, 86400000, true);  // one UTC day holds both
  REQUIRE(total.size() == 1);
  const auto& c = total[0].counters;
  CHECK(c.offered == 3);
  CHECK(c.queued == 3);
  CHECK(c.answered == 2);
  CHECK(c.answered_within_threshold == 0);  // 33 s > 20 s
  CHECK(c.handle_time_ms == 222000);
  CHECK(c.abandoned == 1);
  CHECK(c.abandoned_within_threshold == 1);  // 8 s
  CHECK(c.wait_time_ms == 74000);
}

TEST_CASE("the January 1999 bank log imports; the projections match the raw rows per day") {
  const std::string path = bank_file();
  INFO("set OMNIROUTE_BANK_DATA to the path of anonymous-bank/january.txt");
  REQUIRE(!path.empty());
  testing::TempDir dir;
  Node node(dir.str());
  std::ifstream in(path, std::ios::binary);
  auto s = node.import(in, bank_mapping());
  CHECK(s.rows == 31599);
  CHECK(s.bad.size() == 42);  // answered calls with no service recorded
  for (const auto& b : s.bad) CHECK(b.reason.rfind("outcome AGENT but no service was recorded", 0) == 0);
  CHECK(s.skipped_by_reason["outcome PHANTOM"] == 240);
  CHECK(s.accepted + s.skipped + s.bad.size() == s.rows);
  const auto digest = node.store->digests();

  // Per local day (UTC+2), over every queue (service type) and channel.
  std::map<std::string, projections::IntervalCounters> projected;
  for (const char* queue : {"PS", "PE", "IN", "NE", "NW", "TT", "AA"})
    for (const auto& r : node.store->intervals("bank", queue, INT64_MIN / 2, INT64_MAX / 2))
      projected[events::format_rfc3339_ms(r.bucket_ms + 2 * 3600000).substr(0, 10)].add(r.counters);
  const auto raw = raw_days(path);
  REQUIRE(raw.size() == projected.size());
  long served_without_service = 0;
  for (const auto& raw_day : raw) {
    const std::string& day = raw_day.first;  // a name a message's lambda can capture
    const auto& d = raw_day.second;
    CAPTURE(day);
    REQUIRE(projected.count(day));
    const auto& p = projected[day];
    CHECK(p.queued == d.queued);
    CHECK(p.abandoned == d.abandoned);
    CHECK(p.answered == d.served);
    CHECK(p.answered_within_threshold == d.served_within_20);
    const double finished = static_cast<double>(p.answered + p.abandoned);
    CHECK(static_cast<double>(p.wait_time_ms) / 1000.0 / finished ==
          doctest::Approx(d.wait_sum / static_cast<double>(d.served + d.abandoned)));
    served_without_service += d.served_without_service;
  }
  CHECK(served_without_service == 42);

  SUBCASE("the busiest queue's forecast beats seasonal naive in the backtest") {
    projections::QueuePlanRequest r;
    r.tenant = "bank", r.queue = "PS", r.interval_ms = 900000, r.utc_offset_ms = 2 * 3600000;
    r.options.horizon_days = 1;
    auto plan = projections::plan_queue(*node.store, r);
    REQUIRE(plan.has_value());
    double naive = 0, chosen = 0;
    for (const auto& a : plan->plan.accuracy) {
      CHECK(a.origins == 17);  // Jan 15 .. 31 (11 and 12 are missing from the log)
      if (a.method == projections::forecast_method::seasonal_naive) naive = a.mase;
      if (a.method == plan->plan.method) chosen = a.mase;
    }
    CHECK(plan->plan.method != projections::forecast_method::seasonal_naive);
    CHECK(chosen < naive);
    CHECK(plan->plan.rows.size() == 96);
  }
  SUBCASE("importing the file again changes nothing") {
    std::ifstream again(path, std::ios::binary);
    auto s2 = node.import(again, bank_mapping());
    CHECK(s2.accepted == 0);
    CHECK(s2.duplicates == s.accepted);
    CHECK(node.store->digests() == digest);
  }
  SUBCASE("rebuilding the views from the journal gives the same digests") {
    REQUIRE(node.store->clear_views());
    for (int p = 0; p < node.log->partitions(); ++p) {
      actors::PartitionState state;
      auto end = node.log->journal_end(partition_id{p});
      REQUIRE(actors::replay(*node.log, *node.store, partition_id{p}, *end, state));
    }
    CHECK(node.store->digests() == digest);
  }
}
