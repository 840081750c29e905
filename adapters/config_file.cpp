#include "adapters/config_file.hpp"

#include <fstream>
#include <sstream>

#include "events/envelope.hpp"

namespace omniroute::adapters {

using nlohmann::json;

result<std::string> read_config(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) return Status::error(what + " " + path + ": cannot be read");
  return text.str();
}

result<json> config_array(std::string_view text, const std::string& what, const std::string& source,
                          const char* member) {
  auto wrong = [&](const std::string& problem) {
    return Status::error(what + " " + source + ": " + problem);
  };
  auto parsed = events::parse_json(text);
  if (!parsed) return wrong("not valid JSON: " + parsed.error().reason);
  json doc = std::move(*parsed);
  if (!doc.is_object() || !doc.contains(member) || !doc[member].is_array())
    return wrong("must be an object with a \"" + std::string(member) + "\" array");
  if (const std::string other = unknown_member(doc, {member}); !other.empty())
    return wrong(other + ": unknown member (only " + member + " is)");
  return std::move(doc[member]);
}

std::string unknown_member(const json& object, std::initializer_list<const char*> known) {
  for (const auto& [name, value] : object.items()) {
    bool found = false;
    for (const char* k : known) found = found || name == k;
    if (!found) return name;
  }
  return {};
}

}  // namespace omniroute::adapters
