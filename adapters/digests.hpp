// The digests and random bytes of API keys and webhook signatures (OpenSSL's libcrypto), as
// lowercase hex.
#pragma once

#include <string>
#include <string_view>

#include "events/types.hpp"

namespace omniroute::adapters {

// SHA-256 of `bytes`: 64 hex digits.
std::string sha256_hex(std::string_view bytes);

// HMAC-SHA256 of `bytes` keyed with `key`: 64 hex digits.
std::string hmac_sha256_hex(std::string_view key, std::string_view bytes);

// `n` bytes from the system's random source: 2n hex digits.
result<std::string> random_hex(size_t n);

}  // namespace omniroute::adapters
