// API keys and the tenants each may use: the credentials file's checks, and the lookups the
// front door makes with them.
#include "adapters/credentials.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>

using namespace omniroute;
using adapters::Credentials;

namespace {

const std::string acme_digest = adapters::sha256_hex("key-of-acme");
const std::string ops_digest = adapters::sha256_hex("key-of-ops");

std::string two_keys() {
  return R"({"keys": [{"name": "acme-web", "sha256": ")" + acme_digest +
         R"(", "tenants": ["acme", "acme.eu"]},
                      {"name": "ops", "sha256": ")" +
         ops_digest + R"(", "tenants": ["*"]}]})";
}

// The error parse() gives for `text`, or "" if it took it.
std::string refusal(const std::string& text) {
  auto c = Credentials::parse(text, "creds.json");
  return c ? "" : c.error().message();
}

std::string one_key(const std::string& entry_members) {
  return R"({"keys": [{)" + entry_members + "}]}";
}

}  // namespace

TEST_CASE("SHA-256 gives the standard's digests") {
  CHECK(adapters::sha256_hex("abc") ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(adapters::sha256_hex("") ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("a new key is 256 random bits, different each time") {
  std::set<std::string> keys;
  for (int i = 0; i < 100; ++i) {
    auto k = adapters::new_key();
    REQUIRE(k);
    CHECK(k->size() == 4 + 64);
    CHECK(k->rfind("ork_", 0) == 0);
    CHECK(k->find_first_not_of("0123456789abcdef", 4) == std::string::npos);
    keys.insert(*k);
  }
  CHECK(keys.size() == 100);
}

TEST_CASE("a key finds its credential, which allows its tenants only; any other key finds none") {
  auto c = Credentials::parse(two_keys(), "creds.json");
  REQUIRE_MESSAGE(c, (c ? "" : c.error().message()));
  CHECK(c->size() == 2);
  const adapters::Credential* acme = c->find("key-of-acme");
  REQUIRE(acme != nullptr);
  CHECK(acme->name == "acme-web");
  CHECK(acme->allows("acme"));
  CHECK(acme->allows("acme.eu"));
  CHECK_FALSE(acme->allows("globex"));
  CHECK_FALSE(acme->allows("acm"));
  CHECK_FALSE(acme->allows(""));
  const adapters::Credential* ops = c->find("key-of-ops");
  REQUIRE(ops != nullptr);
  CHECK(ops->allows("globex"));
  CHECK(ops->allows("acme"));
  CHECK(c->find("key-of-acm") == nullptr);
  CHECK(c->find("") == nullptr);
  CHECK(c->find(acme_digest) == nullptr);  // the digest is not the key
}

TEST_CASE("a credentials file with anything wrong is refused, naming the file and what is wrong") {
  const std::string digest = "\"sha256\": \"" + acme_digest + "\"";
  struct Case {
    std::string text, says;
  };
  for (const Case& k : std::vector<Case>{
           {"{\"keys\": [", "not valid JSON"},
           {"{\"keys\": [1e999]}",
            "not valid JSON: [json.exception.out_of_range.406] number overflow"},
           {"[]", "must be an object with a \"keys\" array"},
           {"{\"keys\": {}}", "must be an object with a \"keys\" array"},
           {"{\"keys\": []}", "keys: empty"},
           {"{\"keys\": [], \"key\": 1}", "key: unknown member"},
           {"{\"keys\": [1]}", "keys[0]: must be an object"},
           {one_key("\"name\": \"a\", " + digest + ", \"tenants\": [\"acme\"], \"tenant\": \"x\""),
            "keys[0].tenant: unknown member"},
           {one_key(digest + ", \"tenants\": [\"acme\"]"),
            "keys[0].name: must be a non-empty string"},
           {one_key("\"name\": \"\", " + digest + ", \"tenants\": [\"acme\"]"), "keys[0].name"},
           {one_key("\"name\": \"a\", \"tenants\": [\"acme\"]"),
            "keys[0].sha256: must be the key's SHA-256"},
           {one_key("\"name\": \"a\", \"sha256\": \"ork_123\", \"tenants\": [\"acme\"]"),
            "keys[0].sha256"},
           {one_key("\"name\": \"a\", \"sha256\": \"" + std::string(64, 'A') +
                    "\", \"tenants\": [\"acme\"]"),
            "keys[0].sha256"},
           {one_key("\"name\": \"a\", " + digest), "keys[0].tenants: must be a non-empty array"},
           {one_key("\"name\": \"a\", " + digest + ", \"tenants\": []"),
            "keys[0].tenants: must be a non-empty array"},
           {one_key("\"name\": \"a\", " + digest + ", \"tenants\": \"acme\""),
            "keys[0].tenants: must be a non-empty array"},
           {one_key("\"name\": \"a\", " + digest + ", \"tenants\": [7]"),
            "keys[0].tenants: must hold tenant names"},
           {one_key("\"name\": \"a\", " + digest + ", \"tenants\": [\"ac me\"]"),
            "keys[0].tenants: 'ac me' is not a tenant name"},
           {one_key("\"name\": \"a\", " + digest + ", \"tenants\": [\"*\", \"acme\"]"),
            "keys[0].tenants: \"*\" (all tenants) stands alone"},
           {R"({"keys": [{"name": "a", )" + digest + R"(, "tenants": ["acme"]},
                         {"name": "a", "sha256": ")" +
                ops_digest + R"(", "tenants": ["acme"]}]})",
            "keys[1].name: 'a' is named twice"},
           {R"({"keys": [{"name": "a", )" + digest + R"(, "tenants": ["acme"]},
                         {"name": "b", )" +
                digest + R"(, "tenants": ["globex"]}]})",
            "keys[1].sha256: the same key as an earlier entry"},
       }) {
    const std::string why = refusal(k.text);
    INFO(k.text);
    CHECK(why.rfind("credentials creds.json: ", 0) == 0);
    CHECK_MESSAGE(why.find(k.says) != std::string::npos, why);
  }
}

TEST_CASE("a credentials file that cannot be read is refused by its path") {
  auto c = Credentials::load("/nonexistent/creds.json");
  REQUIRE_FALSE(c);
  CHECK(c.error().message() == "credentials /nonexistent/creds.json: cannot be read");
}

TEST_CASE("the key of an Authorization header: Bearer in any case, then the key") {
  CHECK(adapters::bearer_key("Bearer abc") == "abc");
  CHECK(adapters::bearer_key("bearer abc") == "abc");
  CHECK(adapters::bearer_key("BEARER  abc ") == "abc");
  CHECK(adapters::bearer_key("Bearer") == "");
  CHECK(adapters::bearer_key("Bearer ") == "");
  CHECK(adapters::bearer_key("Bearerabc") == "");
  CHECK(adapters::bearer_key("Basic YWJjOmRlZg==") == "");
  CHECK(adapters::bearer_key("") == "");
}

TEST_CASE("the tenants given to a new key") {
  CHECK(adapters::tenants_problem({"acme"}).empty());
  CHECK(adapters::tenants_problem({"*"}).empty());
  CHECK(adapters::tenants_problem({}) == "no tenant");
  CHECK(adapters::tenants_problem({"acme", "*"}).find("stands alone") != std::string::npos);
  CHECK(adapters::tenants_problem({"a/b"}).find("'a/b' is not a tenant name") != std::string::npos);
}
