// The omniroute command: serve, replay, digest, journal.
#include <pthread.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>

#include "actors/partition_processor.hpp"
#include "actors/processor.hpp"
#include "actors/snapshot.hpp"
#include "adapters/credentials.hpp"
#include "adapters/csv_import.hpp"
#include "adapters/webhooks.hpp"
#include "events/journal.hpp"
#include "events/time.hpp"
#include "ops/server.hpp"
#include "ops/version.hpp"
#include "projections/erlang.hpp"
#include "projections/queue_plan.hpp"

namespace {

using namespace omniroute;

void add_engine_options(CLI::App* cmd, ops::EngineOptions& o) {
  cmd->add_option("--data", o.data_dir, "data directory (RocksDB)")->capture_default_str();
  cmd->add_option("--partitions", o.partitions, "partitions of a new log")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--kafka-brokers", o.kafka_brokers,
                  "use the kafka engine with these bootstrap brokers (host:port,...)");
  cmd->add_option("--kafka-topic-prefix", o.kafka_topic_prefix, "prefix of the kafka topics")
      ->capture_default_str();
  cmd->add_option_function<std::vector<std::string>>(
      "--kafka-config",
      [&o](const std::vector<std::string>& pairs) {
        for (const auto& kv : pairs) {
          auto eq = kv.find('=');
          if (eq == std::string::npos || eq == 0)
            throw CLI::ValidationError("--kafka-config", "expected KEY=VALUE, got '" + kv + "'");
          o.kafka_config[kv.substr(0, eq)] = kv.substr(eq + 1);
        }
      },
      "extra librdkafka settings for every client, KEY=VALUE (repeatable): they win over "
      "omniroute's defaults (linger.ms 2, message.timeout.ms 30000); the settings it needs "
      "(acks, enable.idempotence, group.id, the offsets' commits) are refused");
}

int fail(const std::string& message) {
  std::cerr << "omniroute: " << message << "\n";
  return 1;
}

// The port of HOST:PORT: digits only, 0 (any free port) to 65535; nothing otherwise.
std::optional<int> port_of(const std::string& digits) {
  if (digits.empty() || digits.size() > 5) return std::nullopt;
  int port = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + (c - '0');
  }
  if (port > 65535) return std::nullopt;
  return port;
}

// HOST:PORT split at its last colon (the host may be empty), if the port is 0 to 65535.
std::optional<std::pair<std::string, int>> host_port(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  const auto port = port_of(text.substr(colon + 1));
  if (!port) return std::nullopt;
  return std::make_pair(text.substr(0, colon), *port);
}

// The storage of a directory a server wrote, for the commands that read one (replay, digest,
// journal, forecast): a directory of the embedded engine that holds no data is refused, where
// opening it would create an empty one and answer as if it were empty (a mistyped --data).
result<ops::Storage> open_written(const ops::EngineOptions& options) {
  std::error_code ec;
  if (options.kafka_brokers.empty() &&  // on kafka, the views come from the topics
      !std::filesystem::exists(std::filesystem::path(options.data_dir) / "CURRENT", ec))
    return Status::error("no omniroute data in " + options.data_dir +
                         " (this command reads a directory a server wrote: check --data)");
  return ops::open_storage(options);
}

// What `serve` prints once it listens (tests and scripts read the API line for the port), again
// after a restart in place.
void print_serving(ops::Server& server, const ops::ServerOptions& options,
                   const std::string& credentials) {
  const std::string base = "http://" + options.http.host + ":" + std::to_string(server.port());
  std::cout << "omniroute serving\n"
            << "  build:   " << ops::version() << ", commit " << ops::commit() << "\n"
            << "  engine:  " << server.log().describe() << ", data in " << options.engine.data_dir
            << "\n"
            << "  API:     " << base << "/v1/events, /v1/journal, /v1/conversations/{id}, ...\n"
            << "  metrics: " << base << "/metrics   health: " << base << "/healthz, " << base
            << "/readyz\n"
            << "  access:  "
            << (options.http.credentials
                    ? std::to_string(options.http.credentials->size()) + " API keys from " +
                          credentials + " (Authorization: Bearer KEY)"
                    : std::string(
                          "open: no --credentials, any client that reaches the port may use "
                          "every tenant"))
            << "\n";
  for (const auto& w : options.webhooks)
    std::cout << "  webhook: " << w.name << " -> " << w.url << " (tenant " << w.tenant << ")\n";
  std::cout << "  stop with Ctrl-C (SIGINT) or SIGTERM"
            << (credentials.empty() ? "" : "; SIGHUP reads the credentials again") << "\n"
            << std::flush;
}

// SIGHUP: the credentials file read again, its keys in force for the server (and for the one
// a restart in place starts). A file that cannot be used changes nothing.
void reload_credentials(const std::string& file, ops::ServerOptions& options, ops::Server* server) {
  if (file.empty()) {
    std::cout << "omniroute: SIGHUP: nothing to read again (no --credentials)\n" << std::flush;
    return;
  }
  auto loaded = adapters::Credentials::load(file);
  if (!loaded) {
    std::cout << "omniroute: SIGHUP: " << loaded.error().message() << "; the keys in force stay\n"
              << std::flush;
    return;
  }
  const size_t keys = loaded->size();
  options.http.credentials = std::make_shared<const adapters::Credentials>(std::move(*loaded));
  if (server) server->set_credentials(options.http.credentials);
  std::cout << "omniroute: SIGHUP: " << keys << " API keys from " << file << " in force\n"
            << std::flush;
}

int serve(ops::ServerOptions options, const std::string& http, const std::string& credentials,
          const std::string& webhooks) {
  if (!webhooks.empty()) {
    auto loaded = adapters::load_webhooks(webhooks);
    if (!loaded) return fail(loaded.error().message());
    options.webhooks = std::move(*loaded);
  }
  if (!credentials.empty()) {
    auto loaded = adapters::Credentials::load(credentials);
    if (!loaded) return fail(loaded.error().message());
    options.http.credentials = std::make_shared<const adapters::Credentials>(std::move(*loaded));
  }
  const auto listen = host_port(http);
  if (!listen)
    return fail("--http must be HOST:PORT, the port 0 (any free one) to 65535, got '" + http + "'");
  std::tie(options.http.host, options.http.port) = *listen;
  if (const std::string& a = options.http.advertise; !a.empty()) {
    const auto advertised = host_port(a);
    if (!advertised || advertised->first.empty() || advertised->second == 0)
      return fail(
          "--advertise must be HOST:PORT where the other nodes reach this one, the port 1 "
          "to 65535, got '" +
          a + "'");
    if (options.engine.kafka_brokers.empty())
      return fail(
          "--advertise is for the kafka engine (--kafka-brokers): the embedded engine has "
          "one node");
  }
  // Block the shutdown signals, and SIGHUP (reload), in every thread; the main thread waits for
  // them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto started = ops::Server::start(options);
  if (!started) return fail(started.error().message());
  std::unique_ptr<ops::Server> server = std::move(*started);
  print_serving(*server, options, credentials);
  // The main thread waits for the signals, and looks every second whether the store has met an
  // error RocksDB does not recover from (a file-size limit, EIO): the server then stops and
  // starts again in this process, as a restart would, until the store opens and takes writes
  // (a supervisor need not be there to do it). Meanwhile the port is closed; nothing
  // acknowledged is lost (the refused writes were answered 503).
  int sig = 0;
  auto last_start = std::chrono::steady_clock::now();
  const auto retry_every = std::chrono::seconds(5);
  for (;;) {
    const timespec second{1, 0};
    sig = sigtimedwait(&signals, nullptr, &second);
    if (sig == SIGINT || sig == SIGTERM) break;
    if (sig == SIGHUP) {
      reload_credentials(credentials, options, server.get());
      continue;
    }
    if (server && !server->store().needs_reopen()) continue;
    if (std::chrono::steady_clock::now() - last_start < retry_every) continue;  // not in a loop
    if (server) {
      std::cout << "omniroute: the store refuses writes until it is opened again ("
                << server->store().write_error().value_or("") << "): restarting in place\n"
                << std::flush;
      server->stop();
      server.reset();
    }
    last_start = std::chrono::steady_clock::now();
    auto again = ops::Server::start(options);
    if (!again) {
      std::cout << "omniroute: cannot start again: " << again.error().message() << " (retrying in "
                << retry_every.count() << " s)\n"
                << std::flush;
      continue;
    }
    server = std::move(*again);
    print_serving(*server, options, credentials);
  }
  std::cout << "omniroute: " << (sig == SIGINT ? "SIGINT" : "SIGTERM")
            << " received, shutting down\n"
            << std::flush;
  if (server) server->stop();
  std::cout << "omniroute: stopped\n";
  return 0;
}

// A new API key for `tenants`: the key on the first line, then its entry for a credentials
// file.
int make_key(const std::string& name, const std::vector<std::string>& tenants) {
  if (name.empty()) return fail("--name: must not be empty (it names the key in errors)");
  if (const std::string problem = adapters::tenants_problem(tenants); !problem.empty())
    return fail("--tenant: " + problem);
  auto key = adapters::new_key();
  if (!key) return fail(key.error().message());
  const nlohmann::json entry = {{"name", name}, {"sha256", adapters::sha256_hex(*key)}, {"tenants", tenants}};
  std::cout << *key << "\n" << entry.dump() << "\n";
  return 0;
}

// Brings every partition's views up to the end of its journal, from the partition's snapshot
// where it can be used (replay --rebuild has removed them).
Status catch_up(ops::Storage& storage) {
  auto& log = *storage.log;
  for (int i = 0; i < log.partitions(); ++i) {
    partition_id p{i};
    auto end = log.journal_end(p);
    if (!end) return end.error();
    actors::PartitionState state;
    std::string why;  // logged
    const auto point = actors::restore_snapshot(log, *storage.store, p, state, why);
    if (Status s = actors::replay(log, *storage.store, p, *end, state,
                                  point ? point->known : events::KnownHistory{});
        !s)
      return s;
  }
  return Status::ok();
}

int replay(const ops::EngineOptions& options, bool rebuild) {
  auto storage = open_written(options);
  if (!storage) return fail(storage.error().message());
  auto& store = *storage->store;
  // A rebuild starts from the journal alone: the snapshots go too, and the server writes new ones.
  if (rebuild) {
    if (Status s = store.clear_views(); !s) return fail(s.message());
    if (Status s = actors::remove_snapshots(store.dir()); !s) return fail(s.message());
  }
  if (Status s = catch_up(*storage); !s) return fail(s.message());
  std::cout << store.digests().dump(2) << "\n";
  return 0;
}

int digest(const ops::EngineOptions& options) {
  auto storage = open_written(options);
  if (!storage) return fail(storage.error().message());
  // The views are brought up to the journal first, as a server would: after a crash they are
  // what RocksDB last flushed (they are written without its WAL), and views cleared on opening
  // (built by an older version the other way) are absent. The digest is of the journal's views.
  if (Status s = catch_up(*storage); !s) return fail(s.message());
  std::cout << storage->store->digests().dump(2) << "\n";
  return 0;
}

int journal(const ops::EngineOptions& options, const std::string& tenant) {
  auto storage = open_written(options);
  if (!storage) return fail(storage.error().message());
  auto& log = *storage->log;
  for (int i = 0; i < log.partitions(); ++i) {
    partition_id p{i};
    auto end = log.journal_end(p);
    if (!end) return fail(end.error().message());
    Status s = events::scan_history(log, p, *end, [&](const events::StoredRecord& r) {
      for (const auto& e : r.record.entries)
        if (tenant.empty() || e.tenant == tenant) std::cout << e.envelope << "\n";
      return Status::ok();
    });
    if (!s) return fail(s.message());
  }
  return 0;
}

struct AtArgs {
  std::string tenant, time;
  int64_t seq = -1;
  std::vector<std::string> conversations, agents, queues, customers;
};

// Prints a tenant's entities as they were at a moment of its history: a line naming the moment
// (the last journal entry it includes), then a line per entity, {"view", "id", "document"}
// (null for an id unknown then). Without entities named: every queue, then every agent.
int at(const ops::EngineOptions& options, const AtArgs& a) {
  if (!events::valid_tenant(a.tenant)) return fail("--tenant '" + a.tenant + "' is not a valid tenant");
  if ((a.seq >= 0) == !a.time.empty()) return fail("name the moment with one of --seq or --time");
  std::optional<int64_t> until_ms;
  if (!a.time.empty()) {
    until_ms = events::parse_rfc3339_ms(a.time);
    if (!until_ms) return fail("--time '" + a.time + "' is not an RFC 3339 time, e.g. 2026-11-20T10:05:00Z");
  }
  auto storage = open_written(options);
  if (!storage) return fail(storage.error().message());
  auto moment = actors::tenant_at(*storage->log, a.tenant,
                                  a.seq >= 0 ? std::optional<seq_no>(seq_no{static_cast<uint64_t>(a.seq)}) : std::nullopt,
                                  until_ms);
  if (!moment) return fail(moment.error().message());
  const routing::Tenant& t = (*moment)->tenant;
  events::json head = {{"tenant", a.tenant}, {"seq", nullptr}, {"time", nullptr}};
  if ((*moment)->seq) {
    head["seq"] = (*moment)->seq->value();
    head["time"] = events::format_rfc3339_ms((*moment)->time_ms);
  }
  std::cout << head.dump() << "\n";
  auto print = [](const char* view, const std::string& id, std::optional<events::json> doc) {
    const events::json line = {{"view", view}, {"id", id}, {"document", doc ? std::move(*doc) : nullptr}};
    std::cout << line.dump() << "\n";
  };
  const bool named = !a.conversations.empty() || !a.agents.empty() || !a.queues.empty() || !a.customers.empty();
  for (const auto& id : named ? a.queues : t.queue_ids()) print("queues", id, t.queue_view(id));
  for (const auto& id : named ? a.agents : t.agent_ids()) print("agents", id, t.agent_view(id));
  for (const auto& id : a.conversations) print("conversations", id, t.conversation_view(id));
  for (const auto& id : a.customers) print("customers", id, t.customer_view(id));
  return 0;
}

struct ImportArgs {
  std::string tenant, mapping, file;
};

int import(const ops::EngineOptions& options, const ImportArgs& a) {
  if (!events::valid_tenant(a.tenant)) return fail("--tenant '" + a.tenant + "' is not a valid tenant");
  std::ifstream mapping_file(a.mapping);
  if (!mapping_file) return fail("cannot read the mapping " + a.mapping);
  auto mapping_json = nlohmann::json::parse(mapping_file, nullptr, false);
  if (mapping_json.is_discarded()) return fail("the mapping " + a.mapping + " is not valid JSON");
  auto mapping = adapters::ImportMapping::parse(mapping_json);
  if (!mapping) return fail("mapping " + a.mapping + ": " + mapping.error());
  std::ifstream in(a.file, std::ios::binary);
  if (!in) return fail("cannot read " + a.file);
  auto storage = ops::open_storage(options);
  if (!storage) return fail(storage.error().message());
  auto& log = *storage->log;
  auto& store = *storage->store;

  adapters::CsvImporter importer(*mapping, a.tenant);
  size_t reported = 0;
  auto summary = importer.run(in, log, store, [&](size_t rows) {
    if (rows >= reported + 10000) {
      std::cerr << "import: " << rows << " rows read\n";
      reported = rows;
    }
  });
  if (!summary) return fail(a.file + ": " + summary.error().message());
  const size_t shown = std::min<size_t>(summary->bad.size(), 1000);
  for (size_t i = 0; i < shown; ++i)
    std::cerr << a.file << ":" << summary->bad[i].line << ": " << summary->bad[i].reason << "\n";
  if (shown < summary->bad.size())
    std::cerr << "... and " << summary->bad.size() - shown << " more bad rows\n";

  // On the embedded engine nobody else can hold the data directory, so the import journals and
  // projects what it appended before it returns; on kafka the servers of the group do.
  std::string processed = "by the servers consuming the ingest topic";
  if (options.kafka_brokers.empty()) {
    for (partition_id p : summary->partitions)
      if (Status s = actors::drain(log, store, p, actors::ProcessorOptions{}.snapshot_every); !s)
        return fail("processing partition " + std::to_string(p.value()) + ": " + s.message());
    processed = "journaled and projected";
  }
  nlohmann::json skipped = summary->skipped_by_reason;
  std::cout << nlohmann::json{{"file", a.file},
                              {"tenant", a.tenant},
                              {"rows", summary->rows},
                              {"imported", summary->accepted},
                              {"duplicates", summary->duplicates},
                              {"skipped", summary->skipped},
                              {"skipped_by_reason", skipped},
                              {"bad_rows", summary->bad.size()},
                              {"events", processed}}
                   .dump(2)
            << "\n";
  return 0;
}

struct ForecastArgs {
  projections::QueuePlanRequest request;
  std::string history, svg, utc_offset = "+00:00", method;
  int interval_s = 900;
  double patience_s = 0;
};

int forecast(const ops::EngineOptions& options, ForecastArgs a) {
  auto offset = events::parse_utc_offset_ms(a.utc_offset);
  if (!offset) return fail("--utc-offset must be like +02:00, got '" + a.utc_offset + "'");
  auto& r = a.request;
  r.utc_offset_ms = *offset;
  r.interval_ms = int64_t{a.interval_s} * 1000;
  if (a.patience_s > 0) r.options.patience_s = a.patience_s;
  if (!a.method.empty()) {
    r.options.method = projections::forecast_method_named(a.method);
    if (!r.options.method) return fail("--method must be seasonal_naive, seasonal_mean or holt_winters");
  }
  if (auto why = projections::check(r.options.target)) return fail(*why);
  projections::QueuePlan plan;
  if (!a.history.empty()) {
    std::ifstream in(a.history);
    if (!in) return fail("cannot read " + a.history);
    auto h = projections::history_from_csv(in, *offset);
    if (!h) return fail(a.history + ": " + h.error());
    plan.history = std::move(*h);
    plan.available_source = "none";
    plan.plan = projections::make_plan(plan.history, r.options, {});
  } else {
    if (r.tenant.empty() || r.queue.empty()) return fail("give --tenant and --queue, or --history FILE");
    auto storage = open_written(options);
    if (!storage) return fail(storage.error().message());
    auto p = projections::plan_queue(*storage->store, r);
    if (!p) return fail(p.error());
    plan = std::move(*p);
  }
  for (const auto& acc : plan.plan.accuracy)
    std::fprintf(stderr, "backtest %-15s MASE %.3f  sMAPE %.1f%%  (%d daily origins)\n",
                 projections::name_of(acc.method), acc.mase, acc.smape, acc.origins);
  std::fprintf(stderr, "forecast with %s; available agents from: %s\n",
               projections::name_of(plan.plan.method), plan.available_source.c_str());
  std::cout << "start,forecast_volume,forecast_aht_s,raw_agents,required_agents,available_agents,gap,"
               "service_level\n";
  for (const auto& row : plan.plan.rows) {
    char line[256];
    std::snprintf(line, sizeof line, "%s,%.3f,%.1f,%d,%d,%s,%s,%.4f\n",
                  events::format_rfc3339_ms(row.start_ms).c_str(), row.volume, row.aht_s,
                  row.raw_agents, row.agents,
                  row.available ? std::to_string(*row.available).c_str() : "",
                  row.gap ? std::to_string(*row.gap).c_str() : "", row.service_level);
    std::cout << line;
  }
  if (!a.svg.empty()) {
    std::ofstream out(a.svg);
    out << projections::plan_svg(plan.history, plan.plan,
                                 (r.queue.empty() ? a.history : r.tenant + " / " + r.queue), *offset);
    if (!out) return fail("cannot write " + a.svg);
  }
  return 0;
}

struct ErlangArgs {
  projections::Workload workload;
  projections::Target target;
  std::optional<int> agents;
  bool has_target = false;
  double patience_s = 0;
};

nlohmann::json performance_json(const projections::Performance& p) {
  nlohmann::json j = {{"agents", p.agents},
                      {"p_wait", p.p_wait},
                      {"service_level", p.service_level},
                      {"asa_s", p.asa_s ? nlohmann::json(*p.asa_s) : nlohmann::json(nullptr)},
                      {"occupancy", p.occupancy}};
  if (p.p_abandon) j["p_abandon"] = *p.p_abandon;
  return j;
}

int erlang(ErlangArgs a, bool model_a) {
  if (model_a) a.workload.patience_s = a.patience_s;
  if (auto why = projections::check(a.workload)) return fail(*why);
  if (auto why = projections::check(a.target)) return fail(*why);
  if (!a.agents && !a.has_target) return fail("give --agents N, --target-sl S, or both");
  nlohmann::json out = {{"model", model_a ? "erlang_a" : "erlang_c"},
                        {"load_erlangs", a.workload.load()}};
  if (a.agents) out.update(performance_json(projections::perform(a.workload, *a.agents)));
  if (a.has_target) {
    auto r = projections::required(a.workload, a.target);
    nlohmann::json req = performance_json(r.at_raw);
    req["raw_agents"] = r.raw_agents;
    req["agents"] = r.agents;
    req["target_sl"] = a.target.service_level;
    req["max_occupancy"] = a.target.max_occupancy;
    req["shrinkage"] = a.target.shrinkage;
    if (a.agents)
      out["required"] = req;
    else
      out.update(req);
  }
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace

// Lets the process open as many files as its hard limit allows. A shell's soft limit is
// usually 1,024 (Debian's default), and the server holds a descriptor for each HTTP connection
// (--http-threads, 256 by default), each of RocksDB's table files (it keeps them open: hundreds,
// a long-lived server's data grown to tens of GB) and Kafka's sockets. Every descriptor the
// process makes is used with poll, never select (cpp-httplib is built with CPPHTTPLIB_USE_POLL),
// so numbers past 1,023 are safe.
void raise_open_files_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur >= r.rlim_max) return;
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);  // failing, the soft limit stays (the store sizes to it)
}

// A file grown past the process's file-size limit (`ulimit -f`, systemd's LimitFSIZE) makes
// the kernel send SIGXFSZ, whose default action ends the process without a word. Ignored, the
// write fails with EFBIG instead, and the store reports it as any other write error: writes
// refused (503) and named in the log and on /readyz, the process up, nothing acknowledged lost.
void report_file_size_limit_as_error() { ::signal(SIGXFSZ, SIG_IGN); }

int main(int argc, char** argv) {
  raise_open_files_limit();
  report_file_size_limit_as_error();
  CLI::App app{"omniroute: event-sourced routing and orchestration for omnichannel service"};
  app.set_version_flag(
      "--version", std::string("omniroute ") + ops::version() + " (commit " + ops::commit() + ")");
  app.require_subcommand(1);

  ops::ServerOptions server_options;
  std::string http = "127.0.0.1:8080";
  auto* serve_cmd = app.add_subcommand("serve", "run the server");
  add_engine_options(serve_cmd, server_options.engine);
  serve_cmd->add_option("--http", http, "HTTP listen address HOST:PORT")->capture_default_str();
  serve_cmd->add_option("--advertise", server_options.http.advertise,
                        "kafka engine: HOST:PORT where the other nodes reach this one, to forward "
                        "queries of its partitions (default: --http, unless it is 0.0.0.0 or ::)");
  serve_cmd->add_option("--http-threads", server_options.http.threads,
                        "HTTP threads: one per open connection (keep-alive or long-poll); "
                        "three quarters of them at most for waiting long-polls")
      ->check(CLI::Range(8, 4096))
      ->capture_default_str();
  serve_cmd->add_option("--max-body", server_options.http.max_body_bytes,
                        "largest request body in bytes (larger: 413)")
      ->capture_default_str();
  serve_cmd->add_option_function<int64_t>(
               "--backlog-wait-ms",
               [&](int64_t ms) { server_options.http.backlog_wait = std::chrono::milliseconds(ms); },
               "how long POST /v1/events waits for room while the partition hosts are behind, "
               "before it answers 503 backlog_full (default 5000)")
      ->check(CLI::Range(int64_t{0}, int64_t{3600000}));
  std::string credentials;
  serve_cmd->add_option("--credentials", credentials,
                        "API keys and the tenants each may use (JSON; see docs/http-api.md); "
                        "without, the API is open to any client that reaches the port");
  serve_cmd->add_option("--metrics-queues", server_options.metrics_queues,
                        "at most this many queues (and tenants) get gauges of their own on "
                        "/metrics; names come from clients, each queue is a dozen series")
      ->check(CLI::Range(size_t{0}, size_t{1000000}))
      ->capture_default_str();
  std::string webhooks;
  serve_cmd->add_option("--webhooks", webhooks,
                        "deliver tenants' decisions to URLs (JSON; see docs/http-api.md)");
  serve_cmd
      ->add_option("--snapshot-every", server_options.processor.snapshot_every,
                   "write a snapshot of a partition's state after this many journal entries, "
                   "and at shutdown, so that a restart replays only the journal since (0: never)")
      ->capture_default_str();
  bool no_warm_up = false;
  serve_cmd->add_flag("--no-warm-up", no_warm_up,
                      "kafka engine: join the group at once, without first bringing this node's "
                      "copy of every partition up to the journal's end (a partition it is given "
                      "then replays the journal since its own last snapshot, or all of it)");
  int64_t standby_every = 0;
  serve_cmd
      ->add_option(
          "--standby-every", standby_every,
          "kafka engine: every this many seconds, bring this node's copy of the partitions "
          "it does not own up to the journal's end, so that taking one over (a node "
          "failed) replays at most about that long of its journal (0: never; each node "
          "then writes every partition's views)")
      ->check(CLI::Range(int64_t{0}, int64_t{86400 * 7}))
      ->capture_default_str();
  serve_cmd->add_flag("--sync", server_options.engine.sync,
                      "fsync every append (survives power loss, not only a killed process)");

  ops::EngineOptions replay_options;
  bool rebuild = false;
  auto* replay_cmd = app.add_subcommand("replay", "bring the views up to the journal");
  add_engine_options(replay_cmd, replay_options);
  replay_cmd->add_flag("--rebuild", rebuild, "drop every view first and rebuild it from scratch");

  ops::EngineOptions digest_options;
  auto* digest_cmd = app.add_subcommand("digest", "print a digest of every view");
  add_engine_options(digest_cmd, digest_options);

  ops::EngineOptions journal_options;
  std::string tenant;
  auto* journal_cmd = app.add_subcommand("journal", "print the journal (one envelope a line)");
  add_engine_options(journal_cmd, journal_options);
  journal_cmd->add_option("--tenant", tenant, "only this tenant");

  ops::EngineOptions at_options;
  AtArgs at_args;
  auto* at_cmd = app.add_subcommand(
      "at", "a tenant's queues, agents, conversations or customers as they were at a moment");
  add_engine_options(at_cmd, at_options);
  at_cmd->add_option("--tenant", at_args.tenant, "the tenant")->required();
  at_cmd->add_option("--seq", at_args.seq, "the moment: after the tenant's journal entry SEQ")
      ->check(CLI::NonNegativeNumber);
  at_cmd->add_option("--time", at_args.time,
                     "the moment: after the last entry at or before TIME (RFC 3339)");
  at_cmd->add_option("--conversation", at_args.conversations, "a conversation (repeat for more)");
  at_cmd->add_option("--agent", at_args.agents, "an agent (repeat for more)");
  at_cmd->add_option("--queue", at_args.queues, "a queue (repeat for more)");
  at_cmd->add_option("--customer", at_args.customers, "a customer (repeat for more)");

  ops::EngineOptions import_options;
  ImportArgs import_args;
  auto* import_cmd = app.add_subcommand(
      "import", "import call-by-call history (CSV/TSV) as contact.recorded events");
  add_engine_options(import_cmd, import_options);
  import_cmd->add_option("--tenant", import_args.tenant, "tenant the history belongs to")->required();
  import_cmd->add_option("--mapping", import_args.mapping, "mapping JSON (see docs/import.md)")
      ->required();
  import_cmd->add_option("file", import_args.file, "the CSV/TSV file")->required();

  ops::EngineOptions forecast_options;
  ForecastArgs fa;
  auto* forecast_cmd = app.add_subcommand(
      "forecast", "forecast volume and handle time, staff to it, and show the gap (CSV out)");
  add_engine_options(forecast_cmd, forecast_options);
  forecast_cmd->add_option("--tenant", fa.request.tenant, "tenant");
  forecast_cmd->add_option("--queue", fa.request.queue, "queue");
  forecast_cmd->add_option("--channel", fa.request.channel, "only this channel (default: all)");
  forecast_cmd->add_option("--history", fa.history,
                           "interval-volume CSV (timestamp,count[,aht_s]) instead of --data");
  forecast_cmd->add_option("--interval-s", fa.interval_s, "interval length")
      ->check(CLI::IsMember({300, 900, 1800, 3600}))
      ->capture_default_str();
  forecast_cmd->add_option("--utc-offset", fa.utc_offset, "local time of the queue's days, e.g. +02:00")
      ->capture_default_str();
  forecast_cmd->add_option("--horizon-days", fa.request.options.horizon_days, "days to forecast")
      ->check(CLI::Range(1, 56))
      ->capture_default_str();
  forecast_cmd->add_option("--method", fa.method, "seasonal_naive, seasonal_mean or holt_winters (default: best backtest)");
  forecast_cmd->add_option_function<double>("--target-sl", [&](double v) {
    fa.request.options.target.service_level = v, fa.request.target_given = true;
  }, "service level target (default: the queue's sl_target, else 0.8)");
  forecast_cmd->add_option_function<double>("--threshold-s", [&](double v) {
    fa.request.options.threshold_s = v, fa.request.threshold_given = true;
  }, "service level threshold (default: the queue's sl_threshold_s, else 20)");
  forecast_cmd->add_option("--max-occupancy", fa.request.options.target.max_occupancy, "occupancy cap")
      ->capture_default_str();
  forecast_cmd->add_option("--shrinkage", fa.request.options.target.shrinkage, "shrinkage [0..1)")
      ->capture_default_str();
  forecast_cmd->add_option("--patience-s", fa.patience_s, "mean patience: staff with Erlang A");
  forecast_cmd->add_option("--concurrency", fa.request.options.concurrency, "chats per agent")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  forecast_cmd->add_option("--aht-s", fa.request.options.default_aht_s,
                           "handle time when the history has none")
      ->capture_default_str();
  forecast_cmd->add_option("--svg", fa.svg, "also write a chart to this SVG file");

  ErlangArgs erlang_args;
  auto* erlang_cmd = app.add_subcommand(
      "erlang", "staffing math: performance with N agents, or the agents a target needs (JSON)");
  erlang_cmd->require_subcommand(1);
  auto* erlang_c_cmd = erlang_cmd->add_subcommand("c", "Erlang C (M/M/N)");
  auto* erlang_a_cmd = erlang_cmd->add_subcommand("a", "Erlang A (M/M/N+M, with abandonment)");
  for (auto* cmd : {erlang_c_cmd, erlang_a_cmd}) {
    auto& w = erlang_args.workload;
    auto& t = erlang_args.target;
    cmd->add_option("--arrivals", w.arrivals, "contacts per interval")->required();
    cmd->add_option("--interval-s", w.interval_s, "interval length in seconds")->capture_default_str();
    cmd->add_option("--aht-s", w.aht_s, "average handle time in seconds")->required();
    cmd->add_option("--threshold-s", w.threshold_s, "service level threshold in seconds")
        ->capture_default_str();
    cmd->add_option("--concurrency", w.concurrency, "contacts one agent serves at once (chat)")
        ->capture_default_str();
    cmd->add_option("--agents", erlang_args.agents, "agents to evaluate");
    cmd->add_option_function<double>(
        "--target-sl", [&](double v) { erlang_args.has_target = true, t.service_level = v; },
        "service level target (0..1): answer with the agents needed");
    cmd->add_option("--max-occupancy", t.max_occupancy, "occupancy cap (0..1]")->capture_default_str();
    cmd->add_option("--shrinkage", t.shrinkage, "share of paid time away from contacts [0..1)")
        ->capture_default_str();
  }
  erlang_a_cmd->add_option("--patience-s", erlang_args.patience_s, "mean patience in seconds")
      ->required();

  std::string key_name;
  std::vector<std::string> key_tenants;
  auto* key_cmd = app.add_subcommand(
      "key", "make an API key: prints the key, and the entry for the --credentials file");
  key_cmd->add_option("--name", key_name, "what the key is for (named in errors and logs)")->required();
  key_cmd->add_option("--tenant", key_tenants, "a tenant the key may use (repeat for more; * for all)")
      ->required();

  CLI11_PARSE(app, argc, argv);
  if (*key_cmd) return make_key(key_name, key_tenants);
  if (*at_cmd) return at(at_options, at_args);
  if (*forecast_cmd) return forecast(forecast_options, fa);
  if (*import_cmd) return import(import_options, import_args);
  if (*erlang_cmd) return erlang(erlang_args, erlang_a_cmd->parsed());
  if (*serve_cmd) {
    if (no_warm_up && server_options.engine.kafka_brokers.empty())
      return fail(
          "--no-warm-up is for the kafka engine (--kafka-brokers): on the embedded engine "
          "one node has every partition, and warms up nothing");
    if (standby_every > 0 && server_options.engine.kafka_brokers.empty())
      return fail(
          "--standby-every is for the kafka engine (--kafka-brokers): on the embedded engine "
          "one node has every partition");
    server_options.processor.warm_up = !no_warm_up;
    server_options.processor.standby_every = std::chrono::seconds(standby_every);
    return serve(server_options, http, credentials, webhooks);
  }
  if (*replay_cmd) return replay(replay_options, rebuild);
  if (*digest_cmd) return digest(digest_options);
  if (*journal_cmd) return journal(journal_options, tenant);
  return 1;
}
