// The JSON configuration files the server reads as it starts (--credentials, --webhooks): read
// and checked the same way, every error naming the file and what is wrong in it.
#pragma once

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "events/types.hpp"

namespace omniroute::adapters {

// The file's text, or "<what> <path>: cannot be read".
result<std::string> read_config(const std::string& path, const std::string& what);

// The array `member` of a file's text, which must be an object with that member alone; errors
// read "<what> <source>: ...".
result<nlohmann::json> config_array(std::string_view text, const std::string& what,
                                    const std::string& source, const char* member);

// The first member of `object` that is not one of `known`, or "" when there is none.
std::string unknown_member(const nlohmann::json& object, std::initializer_list<const char*> known);

}  // namespace omniroute::adapters
