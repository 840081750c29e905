// RFC 3339 timestamps, held as milliseconds since the Unix epoch (UTC).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace omniroute::events {

// Parses "2026-11-20T10:00:00Z", "2026-11-20T10:00:00.123+08:00", etc. Fractions beyond
// milliseconds are truncated. Returns nullopt for anything that is not RFC 3339, and for a time
// outside the years 0000-9999 in UTC (what format_rfc3339_ms writes, and so this reads back).
std::optional<int64_t> parse_rfc3339_ms(std::string_view text);

// Days since 1970-01-01 of a proleptic Gregorian date (month 1-12, day 1-31).
int64_t days_from_civil(int64_t year, unsigned month, unsigned day);
// Parses a UTC offset "+02:00", "-05:30" or "Z" as milliseconds east of UTC.
std::optional<int64_t> parse_utc_offset_ms(std::string_view text);
// Formats as "2026-11-20T10:00:00.000Z" (always UTC, always milliseconds).
std::string format_rfc3339_ms(int64_t ms);
// The same into `out` (room for max_rfc3339_bytes), without a string: the 24 bytes are past
// what std::string holds without allocating. Returns the length.
constexpr size_t max_rfc3339_bytes = 64;
size_t write_rfc3339_ms(int64_t ms, char* out);
// The same appended to `out`.
void append_rfc3339_ms(std::string& out, int64_t ms);

// The wall clock, microseconds since the epoch. Only for what is not domain logic (append
// stamps, latency, the age shown at a query); domain logic uses event time.
int64_t wall_clock_us();

// Seconds since `t` on the steady clock (how long something took, for logs and metrics).
inline double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace omniroute::events
