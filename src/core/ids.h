#pragma once

#include <cstddef>
#include <string_view>

namespace keel {

// Client-chosen identifiers (accounts, transfers): 1 to 64 bytes of [A-Za-z0-9_-.:].
// The colon allows system accounts such as `psp_clearing:stripe_usd`.
inline constexpr size_t kIdLengthMax = 64;

namespace detail {
struct IdCharTable {
  bool allowed[256] = {};
  constexpr IdCharTable() {
    for (int c = 'a'; c <= 'z'; ++c) allowed[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c) allowed[c] = true;
    for (int c = '0'; c <= '9'; ++c) allowed[c] = true;
    for (unsigned char c : {'_', '-', '.', ':'}) allowed[c] = true;
  }
};
inline constexpr IdCharTable kIdChars;
}  // namespace detail

[[nodiscard]] constexpr bool is_valid_id(std::string_view id) {
  if (id.empty() || id.size() > kIdLengthMax) return false;
  bool ok = true;
  for (char c : id) ok &= detail::kIdChars.allowed[static_cast<unsigned char>(c)];
  return ok;
}

// References keel makes or passes on (payment, customer and flow ids, PSP references, request
// nonces): 1 to `max_length` bytes of [A-Za-z0-9_-], safe inside other ids, URLs, headers and
// file names.
[[nodiscard]] constexpr bool is_valid_reference(std::string_view s, size_t max_length) {
  if (s.empty() || s.size() > max_length) return false;
  for (const char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace keel
