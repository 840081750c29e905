// Tenant isolation at the HTTP front door (DESIGN.md, invariant 6): API keys, each allowed a
// list of tenants. A server given credentials answers a /v1 request only with a known key
// (`Authorization: Bearer KEY`), and only for the tenants that key may use.
//
// The credentials file holds SHA-256 digests of the keys, never the keys: reading it grants
// nothing. `omniroute key` makes a key and the entry for it. Format (docs/http-api.md):
//
//   {"keys": [{"name": "acme-web", "sha256": "<64 hex digits>", "tenants": ["acme"]},
//             {"name": "ops",      "sha256": "<64 hex digits>", "tenants": ["*"]}]}
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "adapters/digests.hpp"
#include "events/types.hpp"

namespace omniroute::adapters {

// What one key may do.
struct Credential {
  std::string name;                  // for errors and logs; never the key
  std::vector<std::string> tenants;  // empty when all_tenants
  bool all_tenants = false;          // "*"
  bool allows(std::string_view tenant) const;
};

class Credentials {
 public:
  // Reads and checks a credentials file; the error names the file and what is wrong in it.
  static result<Credentials> load(const std::string& path);
  // The same for the file's text (`source` names it in errors).
  static result<Credentials> parse(std::string_view text, const std::string& source);

  // The credential of `key`, or nullptr for a key no entry has.
  const Credential* find(std::string_view key) const;
  size_t size() const { return by_digest_.size(); }

 private:
  std::unordered_map<std::string, Credential> by_digest_;  // by the key's SHA-256, hex
};

// What is wrong with the tenants given to a key, or "" when nothing: each must be a tenant
// name, or "*" (all tenants) alone.
std::string tenants_problem(const std::vector<std::string>& tenants);

// A new random key ("ork_" and 64 hex digits: 256 bits from the system's random source).
result<std::string> new_key();

// The key of an `Authorization` header's value: "Bearer KEY" (the scheme in any case), or an
// empty view when the value is not of that form.
std::string_view bearer_key(std::string_view authorization);

}  // namespace omniroute::adapters
