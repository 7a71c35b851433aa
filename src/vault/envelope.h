#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "vault/keys.h"

namespace keel::vault {

// Envelope encryption (docs/security.md, "The card vault"): each record is encrypted with its
// own random 256-bit data key under AES-256-GCM, and the data key is encrypted ("wrapped")
// with a master key version, also AES-256-GCM. Rotating the master key re-wraps the data keys
// and leaves the records' ciphertext alone.
//
// Both ciphertexts are bound to the record's id (the GCM additional data), the wrapped key to
// its master key version too: a ciphertext moved to another record, or a version byte edited,
// fails to open instead of yielding another card.
//
// Pure functions of their inputs (randomness injected): thread-safe.
struct Envelope {
  uint32_t key_version = 0;  // the master key version that wrapped the data key
  std::string wrapped_key;   // 12-byte nonce || 32-byte encrypted data key || 16-byte tag
  std::string ciphertext;    // 12-byte nonce || encrypted plaintext || 16-byte tag
  friend bool operator==(const Envelope&, const Envelope&) = default;
};
inline constexpr size_t kNonceBytes = 12;
inline constexpr size_t kTagBytes = 16;
inline constexpr size_t kWrappedKeyBytes = kNonceBytes + kKeyBytes + kTagBytes;
inline constexpr size_t kPlaintextBytesMax = 1024;

// One AES-256-GCM sealing: nonce (12 random bytes) || ciphertext || tag (16 bytes), with `aad`
// authenticated. gcm_decrypt() fails (false, `plaintext` untouched) when anything was changed.
[[nodiscard]] std::string gcm_encrypt(const Key& key, std::string_view aad,
                                      std::string_view plaintext, const RandomFill& random);
[[nodiscard]] bool gcm_decrypt(const Key& key, std::string_view aad, std::string_view sealed,
                               std::string* plaintext);

// Encrypts `plaintext` (at most kPlaintextBytesMax bytes) for the record `record_id` under a new
// data key wrapped by the active master key.
[[nodiscard]] Envelope seal(const MasterKeys& keys, std::string_view record_id,
                            std::string_view plaintext, const RandomFill& random);

// Decrypts. Fails when the master key version is not in `keys`, or when anything was changed
// (GCM's tag): the envelope, the record id.
[[nodiscard]] Status open(const MasterKeys& keys, std::string_view record_id,
                          const Envelope& envelope, std::string* plaintext);

// The data key of `envelope` wrapped under `to_version` instead (the ciphertext stays). Fails
// as open() does, or when `to_version` is not in `keys`.
[[nodiscard]] Status rewrap(const MasterKeys& keys, std::string_view record_id,
                            const Envelope& envelope, uint32_t to_version, const RandomFill& random,
                            std::string* wrapped_key);

// Hex of the first `digest_bytes` (1 to 32) bytes of HMAC-SHA256(fingerprint key, bytes): the
// vault's one keyed digest, for card fingerprints and for request fingerprints that must not be
// a plain hash (Vault::keyed_digest).
[[nodiscard]] std::string fingerprint_key_hex(const MasterKeys& keys, std::string_view bytes,
                                              size_t digest_bytes);

// A card number's fingerprint: "fp_" + 32 hex digits of HMAC-SHA256(fingerprint key, digits).
// The same card gives the same fingerprint under every master key version, so risk rules can
// count a card without ever decrypting it.
[[nodiscard]] std::string card_fingerprint(const MasterKeys& keys, std::string_view digits);

}  // namespace keel::vault
