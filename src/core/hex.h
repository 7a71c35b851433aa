#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace keel {

// Lower-case hex of n bytes (two digits each): key ids, digests, chain heads.
[[nodiscard]] std::string to_hex(const uint8_t* p, size_t n);

}  // namespace keel
