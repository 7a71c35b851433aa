#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keel {

// A small string map attached to accounts and transfers, kept sorted by key so that equality,
// encoding and hashing are canonical. Bounds: at most kMetadataEntriesMax entries, keys of 1
// to 40 bytes of [A-Za-z0-9_.-], values of at most 256 bytes, no duplicate keys.
using Metadata = std::vector<std::pair<std::string, std::string>>;

inline constexpr size_t kMetadataEntriesMax = 16;
inline constexpr size_t kMetadataKeyLengthMax = 40;
inline constexpr size_t kMetadataValueLengthMax = 256;

enum class MetadataError {
  ok,
  too_many_entries,
  key_invalid,
  value_too_long,
  duplicate_key,
};

// Sorts `m` by key and checks its bounds. Returns the first problem found.
[[nodiscard]] MetadataError normalize_metadata(Metadata* m);
[[nodiscard]] bool is_valid_metadata_key(std::string_view key);

}  // namespace keel
