#pragma once

#include <cstdint>
#include <string_view>

namespace keel {

// SipHash-1-3 with a 128-bit key: the keyed hash for in-memory indexes of client-chosen ids,
// so that a client cannot pick ids that collide on purpose. Index order never reaches any
// output, so a per-process random key keeps replay deterministic.
struct SipKey {
  uint64_t k0 = 0;
  uint64_t k1 = 0;
};
[[nodiscard]] uint64_t siphash13(SipKey key, std::string_view data);

// Streaming 64-bit hash of canonical bytes, for the ledger's state hash. Deterministic across
// runs and machines of the same byte order; not for security.
class StateHasher {
 public:
  void bytes(std::string_view data);
  void u64(uint64_t v);
  [[nodiscard]] uint64_t finish() const;

 private:
  uint64_t h_ = 0x9E3779B97F4A7C15ull;
  uint64_t length_ = 0;
};

}  // namespace keel
