#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace keel {

using KvScanFn = std::function<bool(std::string_view key, std::string_view value)>;

// The read side of an ordered key-value store (the history store, store/store.h), as the pure
// state machines see it: they name keys and read records, never open or write a store.
//
// Thread: as the implementation says (store::Store: any thread). A failed read returns an error
// Status with the store's message (a damaged store or a failed disk), never "not found".
class KvReader {
 public:
  virtual ~KvReader() = default;
  // `*out` is nullopt when the key is not stored.
  virtual Status get(std::string_view key, std::optional<std::string>* out) const = 0;
  // Calls `fn` for every key in [begin, end), ascending, or descending when `reverse`, while it
  // returns true. Keys and values are valid only during the call.
  virtual Status scan_range(std::string_view begin, std::string_view end, bool reverse,
                            const KvScanFn& fn) const = 0;
};

// Big-endian integers in keys, so that keys sort in numeric order.
inline void append_be64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 0xFF));
}

// The big-endian integer in the last 8 bytes of `key` (REQUIRES key.size() >= 8).
inline uint64_t read_be64_suffix(std::string_view key) {
  uint64_t v = 0;
  for (size_t i = key.size() - 8; i < key.size(); ++i) v = (v << 8) | static_cast<uint8_t>(key[i]);
  return v;
}

}  // namespace keel
