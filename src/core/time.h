#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace keel {

// Logical time: nanoseconds since the Unix epoch, UTC. The engine stamps every command with a
// strictly increasing Timestamp and journals it; state machines read time only from there.
using Timestamp = int64_t;

inline constexpr int64_t kNanosPerSecond = 1'000'000'000;

// RFC 3339 in UTC with nanoseconds, e.g. "2026-11-23T13:13:34.123456789Z".
[[nodiscard]] std::string format_rfc3339(Timestamp t);
// Parses "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (UTC only). nullopt on anything else.
[[nodiscard]] std::optional<Timestamp> parse_rfc3339(std::string_view text);

// The wall clock, for the engine's time stamping only. Never call it from a state machine.
[[nodiscard]] Timestamp wall_clock_now();

}  // namespace keel
