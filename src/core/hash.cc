#include "core/hash.h"

#include <algorithm>
#include <cstring>

namespace keel {
namespace {

constexpr uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

struct SipState {
  uint64_t v0, v1, v2, v3;
  void round() {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
  }
};

constexpr uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

uint64_t siphash13(SipKey key, std::string_view data) {
  SipState s{key.k0 ^ 0x736f6d6570736575ull, key.k1 ^ 0x646f72616e646f6dull,
             key.k0 ^ 0x6c7967656e657261ull, key.k1 ^ 0x7465646279746573ull};
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const size_t n = data.size();
  const size_t whole = n & ~size_t{7};
  for (size_t i = 0; i < whole; i += 8) {
    uint64_t m;
    std::memcpy(&m, p + i, 8);
    s.v3 ^= m;
    s.round();
    s.v0 ^= m;
  }
  uint64_t last = static_cast<uint64_t>(n) << 56;
  for (size_t i = 0; i < (n & 7); ++i) last |= static_cast<uint64_t>(p[whole + i]) << (8 * i);
  s.v3 ^= last;
  s.round();
  s.v0 ^= last;
  s.v2 ^= 0xFF;
  s.round();
  s.round();
  s.round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

void StateHasher::bytes(std::string_view data) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size();
  length_ += n;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h_ = mix64(h_ ^ w) + 0x9E3779B97F4A7C15ull;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h_ = mix64(h_ ^ w ^ (static_cast<uint64_t>(n) << 59)) + 0x9E3779B97F4A7C15ull;
  }
}

void StateHasher::u64(uint64_t v) {
  length_ += 8;
  h_ = mix64(h_ ^ v) + 0x9E3779B97F4A7C15ull;
}

uint64_t StateHasher::finish() const { return mix64(h_ ^ length_); }

void StateHashStream::bytes(std::string_view data) {
  if (pending_size_ > 0) {
    const size_t take = std::min(data.size(), sizeof(pending_) - pending_size_);
    std::memcpy(pending_ + pending_size_, data.data(), take);
    pending_size_ += take;
    data.remove_prefix(take);
    if (pending_size_ < sizeof(pending_)) return;
    hasher_->bytes({reinterpret_cast<const char*>(pending_), sizeof(pending_)});
    pending_size_ = 0;
  }
  const size_t whole = data.size() / sizeof(pending_) * sizeof(pending_);
  if (whole > 0) hasher_->bytes(data.substr(0, whole));
  pending_size_ = data.size() - whole;
  std::memcpy(pending_, data.data() + whole, pending_size_);
}

void StateHashStream::finish() {
  if (pending_size_ > 0) hasher_->bytes({reinterpret_cast<const char*>(pending_), pending_size_});
  pending_size_ = 0;
}

}  // namespace keel
