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

// Feeds a StateHasher bytes that arrive in pieces, to the same hash as one bytes() call with
// their concatenation would give (bytes() mixes whole 8-byte words, and a short tail only at the
// end): so a canonical encoding can be hashed as it is written, never held whole. Call finish()
// once after the last piece, before the hasher's own finish().
class StateHashStream {
 public:
  explicit StateHashStream(StateHasher* hasher) : hasher_(hasher) {}
  void bytes(std::string_view data);
  void finish();

 private:
  StateHasher* hasher_;
  unsigned char pending_[8] = {};
  size_t pending_size_ = 0;  // < 8 between calls
};

}  // namespace keel
