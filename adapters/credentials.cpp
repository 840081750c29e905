#include "adapters/credentials.hpp"

#include <cctype>
#include <nlohmann/json.hpp>
#include <set>

#include "adapters/config_file.hpp"
#include "events/envelope.hpp"

namespace omniroute::adapters {

namespace {

using nlohmann::json;

bool is_hex_digest(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// The entry at keys[i], or what is wrong with it (prefixed with where it is).
result<std::pair<std::string, Credential>> entry_of(const json& e, size_t i) {
  const std::string at = "keys[" + std::to_string(i) + "]";
  auto wrong = [&](const std::string& what) { return Status::error(at + what); };
  if (!e.is_object()) return wrong(": must be an object with name, sha256 and tenants");
  if (const std::string other = unknown_member(e, {"name", "sha256", "tenants"}); !other.empty())
    return wrong("." + other + ": unknown member (name, sha256 and tenants are)");
  Credential c;
  if (!e.contains("name") || !e["name"].is_string() || e["name"].get<std::string>().empty())
    return wrong(".name: must be a non-empty string");
  c.name = e["name"].get<std::string>();
  if (!e.contains("sha256") || !e["sha256"].is_string() ||
      !is_hex_digest(e["sha256"].get<std::string>()))
    return wrong(
        ".sha256: must be the key's SHA-256 as 64 lowercase hex digits (omniroute key "
        "makes a key and its entry)");
  std::string digest = e["sha256"].get<std::string>();
  if (!e.contains("tenants") || !e["tenants"].is_array() || e["tenants"].empty())
    return wrong(".tenants: must be a non-empty array of tenant names, or [\"*\"] for all");
  std::vector<std::string> tenants;
  for (const json& name : e["tenants"]) {
    if (!name.is_string()) return wrong(".tenants: must hold tenant names (strings)");
    tenants.push_back(name.get<std::string>());
  }
  if (const std::string problem = tenants_problem(tenants); !problem.empty())
    return wrong(".tenants: " + problem);
  c.all_tenants = tenants.front() == "*";
  if (!c.all_tenants) c.tenants = std::move(tenants);
  return std::make_pair(std::move(digest), std::move(c));
}

}  // namespace

std::string tenants_problem(const std::vector<std::string>& tenants) {
  if (tenants.empty()) return "no tenant";
  for (const auto& t : tenants) {
    if (t == "*") {
      if (tenants.size() > 1) return "\"*\" (all tenants) stands alone, without names beside it";
      continue;
    }
    if (!events::valid_tenant(t))
      return "'" + t + "' is not a tenant name (" + events::tenant_rule + ")";
  }
  return {};
}

bool Credential::allows(std::string_view tenant) const {
  if (all_tenants) return true;
  for (const auto& t : tenants)
    if (t == tenant) return true;
  return false;
}

result<Credentials> Credentials::load(const std::string& path) {
  auto text = read_config(path, "credentials");
  if (!text) return text.error();
  return parse(*text, path);
}

result<Credentials> Credentials::parse(std::string_view text, const std::string& source) {
  auto wrong = [&](const std::string& what) {
    return Status::error("credentials " + source + ": " + what);
  };
  auto keys = config_array(text, "credentials", source, "keys");
  if (!keys) return keys.error();
  if (keys->empty()) return wrong("keys: empty (a server with no key would refuse every request)");
  Credentials out;
  std::set<std::string> names;
  for (size_t i = 0; i < keys->size(); ++i) {
    auto e = entry_of((*keys)[i], i);
    if (!e) return wrong(e.error().message());
    if (!names.insert(e->second.name).second)
      return wrong("keys[" + std::to_string(i) + "].name: '" + e->second.name + "' is named twice");
    const std::string name = e->second.name;
    if (!out.by_digest_.emplace(std::move(e->first), std::move(e->second)).second)
      return wrong("keys[" + std::to_string(i) + "].sha256: the same key as an earlier entry ('" +
                   name + "' would be ambiguous)");
  }
  return out;
}

const Credential* Credentials::find(std::string_view key) const {
  if (key.empty()) return nullptr;
  auto it = by_digest_.find(sha256_hex(key));
  return it == by_digest_.end() ? nullptr : &it->second;
}

result<std::string> new_key() {
  auto bytes = random_hex(32);
  if (!bytes) return bytes.error();
  return "ork_" + *bytes;
}

std::string_view bearer_key(std::string_view value) {
  constexpr std::string_view scheme = "bearer";
  if (value.size() <= scheme.size() || value[scheme.size()] != ' ') return {};
  for (size_t i = 0; i < scheme.size(); ++i)
    if (static_cast<char>(std::tolower(static_cast<unsigned char>(value[i]))) != scheme[i])
      return {};
  value.remove_prefix(scheme.size() + 1);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  return value;
}

}  // namespace omniroute::adapters
