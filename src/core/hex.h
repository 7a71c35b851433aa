#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace keel {

// Lower-case hex of n bytes (two digits each): key ids, digests, chain heads.
[[nodiscard]] std::string to_hex(const uint8_t* p, size_t n);
[[nodiscard]] inline std::string to_hex(std::string_view bytes) {
  return to_hex(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

// The bytes of hex digits (either case); nullopt for an odd length or a non-hex character.
[[nodiscard]] std::optional<std::string> from_hex(std::string_view hex);

}  // namespace keel
