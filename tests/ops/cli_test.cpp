// The omniroute command's refusals of bad arguments: each names what is wrong, exits non-zero
// and changes nothing.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "adapters/credentials.hpp"
#include "tests/support/support.hpp"

namespace {

const char* binary = OMNIROUTE_BINARY;

using Run = omniroute::testing::CommandRun;

// Runs the binary with args, its stderr with its stdout, stopped after 20 s (exit 124) if it has
// not ended: a command that took a bad argument for a good one would otherwise run on (a server).
Run run(const std::vector<std::string>& args) {
  return omniroute::testing::run_command(std::string("timeout 20 ") + binary, args, " 2>&1");
}

}  // namespace

TEST_CASE("serve refuses an --http port that is not 0 to 65535, before it starts") {
  omniroute::testing::TempDir dir;
  const std::string data = dir.sub("data");
  for (const std::string http : {"127.0.0.1:99999", "127.0.0.1:65536", "127.0.0.1:-5",
                                 "127.0.0.1:80abc", "127.0.0.1:", "localhost"}) {
    const Run r = run({"serve", "--http", http, "--data", data});
    INFO(http << ": " << r.output);
    CHECK(r.status == 1);
    CHECK(r.output.find("--http must be HOST:PORT") != std::string::npos);
    CHECK(r.output.find(http) != std::string::npos);
  }
  CHECK(!std::filesystem::exists(data));  // refused before the data directory was made
}

TEST_CASE("serve refuses an --advertise address that is not HOST:PORT, or on the embedded engine") {
  omniroute::testing::TempDir dir;
  const std::string data = dir.sub("data");
  for (const std::string advertise : {"node-1", "node-1:0", "node-1:99999", ":8080", "node-1:80x"}) {
    const Run r = run({"serve", "--http", "127.0.0.1:0", "--data", data, "--kafka-brokers",
                       "127.0.0.1:1", "--advertise", advertise});
    INFO(advertise << ": " << r.output);
    CHECK(r.status == 1);
    CHECK(r.output.find("--advertise must be HOST:PORT") != std::string::npos);
  }
  const Run embedded = run({"serve", "--http", "127.0.0.1:0", "--data", data, "--advertise", "node-1:8080"});
  CHECK(embedded.status == 1);
  CHECK(embedded.output.find("--advertise is for the kafka engine") != std::string::npos);
  CHECK(!std::filesystem::exists(data));  // refused before the data directory was made
}

TEST_CASE(
    "serve refuses --no-warm-up and --standby-every on the embedded engine, which warms up "
    "nothing") {
  omniroute::testing::TempDir dir;
  const std::string data = dir.sub("data");
  for (const std::vector<std::string>& flag :
       {std::vector<std::string>{"--no-warm-up"}, {"--standby-every", "60"}}) {
    std::vector<std::string> args = {"serve", "--http", "127.0.0.1:0", "--data", data};
    args.insert(args.end(), flag.begin(), flag.end());
    const Run r = run(args);
    INFO(r.output);
    CHECK(r.status == 1);
    CHECK(r.output.find(flag[0] + " is for the kafka engine") != std::string::npos);
    CHECK(!std::filesystem::exists(data));
  }
}

TEST_CASE("replay, digest, journal and forecast refuse a data directory with no data, and make none") {
  omniroute::testing::TempDir dir;
  const std::string data = dir.sub("mistyped");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"replay", "--rebuild", "--data", data},
        {"digest", "--data", data},
        {"journal", "--data", data},
        {"forecast", "--tenant", "acme", "--queue", "support", "--data", data}}) {
    const Run r = run(args);
    INFO(args[0] << ": " << r.output);
    CHECK(r.status == 1);
    CHECK(r.output.find("no omniroute data in " + data) != std::string::npos);
  }
  CHECK(!std::filesystem::exists(data));
}

TEST_CASE("import fails on a file whose header lacks a column the mapping reads") {
  omniroute::testing::TempDir dir;
  const std::string csv = dir.sub("calls.csv");
  {
    std::ofstream out(csv);
    out << "a,b,c\n1,2,3\n";
  }
  const Run r = run({"import", "--data", dir.sub("data"), "--tenant", "bank", "--mapping",
                     OMNIROUTE_SOURCE_DIR "/examples/import/anonymous-bank.json", csv});
  INFO(r.output);
  CHECK(r.status == 1);
  CHECK(r.output.find("nothing imported (the header has no column") != std::string::npos);
}

TEST_CASE("serve refuses a credentials file it cannot use, before it starts") {
  omniroute::testing::TempDir dir;
  const std::string data = dir.sub("data"), creds = dir.sub("creds.json");
  {
    std::ofstream out(creds);
    out << R"({"keys": [{"name": "web", "sha256": "not-a-digest", "tenants": ["acme"]}]})";
  }
  for (const auto& [file, says] :
       std::vector<std::pair<std::string, std::string>>{{dir.sub("missing.json"), "cannot be read"},
                                                        {creds, "keys[0].sha256: must be the key's SHA-256"}}) {
    const Run r = run({"serve", "--http", "127.0.0.1:0", "--data", data, "--credentials", file});
    INFO(r.output);
    CHECK(r.status == 1);
    CHECK(r.output.find("credentials " + file + ": " + says) != std::string::npos);
  }
  CHECK(!std::filesystem::exists(data));
}

TEST_CASE("key makes a new key and the credentials entry of its SHA-256; bad tenants are refused") {
  const Run r = run({"key", "--name", "acme-web", "--tenant", "acme", "--tenant", "acme.eu"});
  REQUIRE(r.status == 0);
  const size_t eol = r.output.find('\n');
  REQUIRE(eol != std::string::npos);
  const std::string key = r.output.substr(0, eol);
  CHECK(key.rfind("ork_", 0) == 0);
  const auto entry = nlohmann::json::parse(r.output.substr(eol + 1));
  CHECK(entry["name"] == "acme-web");
  CHECK(entry["sha256"] == omniroute::adapters::sha256_hex(key));
  CHECK(entry["tenants"] == nlohmann::json({"acme", "acme.eu"}));
  CHECK(run({"key", "--name", "acme-web", "--tenant", "acme"}).output.substr(0, eol) != key);

  for (const auto& [args, says] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"key", "--name", "x", "--tenant", "a b"}, "--tenant: 'a b' is not a tenant name"},
           {{"key", "--name", "x", "--tenant", "*", "--tenant", "acme"}, "stands alone"},
           {{"key", "--name", "", "--tenant", "acme"}, "--name: must not be empty"}}) {
    const Run bad = run(args);
    INFO(bad.output);
    CHECK(bad.status == 1);
    CHECK(bad.output.find(says) != std::string::npos);
  }
}

TEST_CASE("serve refuses a webhooks file it cannot use, before it starts") {
  omniroute::testing::TempDir dir;
  const std::string data = dir.sub("data"), hooks = dir.sub("hooks.json");
  {
    std::ofstream out(hooks);
    out << R"({"webhooks": [{"name": "crm", "tenant": "acme", "url": "crm.example", "secret": "0123456789abcdef"}]})";
  }
  const Run r = run({"serve", "--http", "127.0.0.1:0", "--data", data, "--webhooks", hooks});
  INFO(r.output);
  CHECK(r.status == 1);
  CHECK(r.output.find("webhooks " + hooks + ": webhooks[0].url: must be an http:// or https:// URL") !=
        std::string::npos);
  CHECK(!std::filesystem::exists(data));
}

TEST_CASE("at refuses a moment it cannot read, and a data directory with no data") {
  omniroute::testing::TempDir dir;
  const std::string data = dir.sub("data");
  for (const auto& [args, says] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"at", "--data", data, "--tenant", "acme"}, "name the moment with one of --seq or --time"},
           {{"at", "--data", data, "--tenant", "acme", "--seq", "3", "--time", "2026-11-20T10:00:00Z"},
            "name the moment with one of --seq or --time"},
           {{"at", "--data", data, "--tenant", "acme", "--time", "yesterday"}, "--time 'yesterday' is not an RFC 3339 time"},
           {{"at", "--data", data, "--tenant", "a b", "--seq", "1"}, "--tenant 'a b' is not a valid tenant"},
           {{"at", "--data", data, "--tenant", "acme", "--seq", "1"}, "no omniroute data in " + data}}) {
    const Run r = run(args);
    INFO(r.output);
    CHECK(r.status == 1);
    CHECK(r.output.find(says) != std::string::npos);
  }
  CHECK(!std::filesystem::exists(data));
}

TEST_CASE("a command on a data directory a server has open names that server, and leaves its log") {
  omniroute::testing::TempDir dir;
  const std::string data = dir.sub("data");
  // The server: its stdout read until it says it serves (it holds the directory by then).
  // With a soft limit of descriptors below its hard one (this process's), which the server
  // raises (prlimit: util-linux, essential in Debian).
  rlimit own{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &own) == 0);
  REQUIRE(own.rlim_max >= 128);
  const std::string hard_limit =
                        own.rlim_max == RLIM_INFINITY ? "unlimited" : std::to_string(own.rlim_max),
                    soft_limit = std::to_string(std::min<rlim_t>(1024, own.rlim_max / 2));
  FILE* server =
      ::popen(("exec prlimit --nofile=" + soft_limit + ":" + hard_limit + " timeout 60 " +
               std::string(binary) + " serve --http 127.0.0.1:0 --data " + data + " 2>/dev/null")
                  .c_str(),
              "r");
  REQUIRE(server);
  char line[512];
  bool serving = false;
  while (!serving && std::fgets(line, sizeof line, server))
    serving = std::string(line).find("omniroute serving") != std::string::npos;
  REQUIRE(serving);

  const Run r = run({"digest", "--data", data});
  CHECK(r.status != 0);
  const std::string prefix = "omniroute: cannot open the data directory " + data + ": process ";
  REQUIRE(r.output.rfind(prefix, 0) == 0);
  CHECK(r.output.find(" has it open (a server? stop it first)") != std::string::npos);
  const long pid = std::stol(r.output.substr(prefix.size()));
  for (const auto& f : std::filesystem::directory_iterator(data))  // its info log left alone
    CHECK(f.path().filename().string().rfind("LOG.old", 0) != 0);
  std::ifstream limits("/proc/" + std::to_string(pid) + "/limits");
  std::string limit;
  while (std::getline(limits, limit) && limit.rfind("Max open files", 0) != 0) {
  }
  std::istringstream words(limit.substr(std::string("Max open files").size()));
  std::string soft, hard;
  words >> soft >> hard;
  CHECK(soft == hard_limit);  // raised to the hard limit
  CHECK(hard == hard_limit);
  CHECK(::kill(static_cast<pid_t>(pid), SIGTERM) == 0);  // the process named is the server
  CHECK(::pclose(server) == 0);                          // which stops gracefully
}

TEST_CASE("--version names the build's version and commit") {
  const Run r = run({"--version"});
  CHECK(r.status == 0);
  CHECK(r.output.rfind("omniroute 0.1.0 (commit ", 0) == 0);  // CMakeLists.txt's project version
}
