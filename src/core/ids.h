#pragma once

#include <cstddef>
#include <string_view>

namespace keel {

// Client-chosen identifiers (accounts, transfers): 1 to 64 bytes of [A-Za-z0-9_-.:].
// The colon allows system accounts such as `psp_clearing:stripe_usd`.
inline constexpr size_t kIdLengthMax = 64;

[[nodiscard]] constexpr bool is_valid_id(std::string_view id) {
  if (id.empty() || id.size() > kIdLengthMax) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.' || c == ':';
    if (!ok) return false;
  }
  return true;
}

}  // namespace keel
