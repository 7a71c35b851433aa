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

}  // namespace keel
