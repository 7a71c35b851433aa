#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace keel::vault {

// The vault's master keys (docs/security.md, "The card vault"): AES-256 keys by version, and a
// separate HMAC key for card fingerprints (so a fingerprint stays the same across rotations).
// They come from a key file or the environment, never from the journal.
//
// The text form, one entry per line (or separated by ';', for an environment variable):
//   fingerprint <64 hex digits>
//   key <version> <64 hex digits>        version 1 to 2^32-1, each once
// Blank lines and '#' comments are skipped. The highest version is the active one: new data
// keys are wrapped under it; older versions only unwrap, until `keel vault rotate` moved every
// data key off them (then the operator may delete their lines).
//
// Immutable once built: thread-safe to read.
inline constexpr size_t kKeyBytes = 32;
using Key = std::array<uint8_t, kKeyBytes>;

// Fills n bytes with cryptographically random bytes, or aborts: nothing in keel continues with
// a weak key or nonce. Tests inject their own.
using RandomFill = std::function<void(uint8_t* p, size_t n)>;
void system_random(uint8_t* p, size_t n);

class MasterKeys {
 public:
  // Fails on a malformed line (naming it), a version given twice, no fingerprint key, no key.
  [[nodiscard]] static Status parse(std::string_view text, MasterKeys* out);
  // Reads a key file; refuses one that anyone but its owner may read or write (mode & 077), as
  // ssh does with private keys.
  [[nodiscard]] static Status load(const std::string& path, MasterKeys* out);

  [[nodiscard]] uint32_t active_version() const { return keys_.rbegin()->first; }
  // nullptr when the version is not in this ring.
  [[nodiscard]] const Key* key(uint32_t version) const;
  [[nodiscard]] const Key& fingerprint_key() const { return fingerprint_; }
  [[nodiscard]] std::vector<uint32_t> versions() const;

 private:
  Key fingerprint_{};
  std::map<uint32_t, Key> keys_;  // never empty once parsed
};

// The text of a new key file: a fingerprint key and key version 1.
[[nodiscard]] std::string new_key_file_text(const RandomFill& random);

// Adds `key N+1` (N: the file's highest version) to the key file at `path`, written whole to
// a temporary file (owner-only), synced and renamed over it, so a crash leaves the old file or
// the new one. Returns the new version. Fails when the file does not parse.
[[nodiscard]] Status add_master_key(const std::string& path, const RandomFill& random,
                                    uint32_t* version);

}  // namespace keel::vault
