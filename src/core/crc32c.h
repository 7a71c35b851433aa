#pragma once

#include <cstdint>
#include <string_view>

namespace keel {

// CRC-32C (Castagnoli), as used by iSCSI, ext4 and LevelDB. Uses the SSE4.2 instruction when
// the CPU has it, a table otherwise; both give the same value.
// `crc` continues a previous value: crc32c(b, crc32c(a)) == crc32c(a + b).
[[nodiscard]] uint32_t crc32c(std::string_view data, uint32_t crc = 0);

}  // namespace keel
