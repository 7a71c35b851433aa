#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "vault/envelope.h"
#include "vault/keys.h"

namespace keel::vault {

// A secret keel must use again later (a merchant's webhook signing secret) sealed for storage
// under the vault's master keys (docs/security.md, "The card vault"): the journal and the
// snapshots hold this, and the secret is opened only where it is used (signing a delivery).
//
// The bytes: the magic "\0KVS", the master key version (u32, little-endian), the wrapped data
// key, then the ciphertext (Envelope). A secret in clear (what data written before the vault
// holds) is printable ASCII, so it never starts with the magic: both read back.
//
// Pure functions (randomness injected): thread-safe.
inline constexpr std::string_view kSealedSecretMagic{"\0KVS", 4};
inline constexpr size_t kSealedSecretOverhead = 4 + 4 + kWrappedKeyBytes + kNonceBytes + kTagBytes;

// A merchant's stored webhook secret replaced by the same secret sealed under another master
// key version (payments command reseal_webhook_secrets).
struct SecretReseal {
  std::string merchant_id;
  std::string from;  // the bytes stored now
  std::string to;
  friend bool operator==(const SecretReseal&, const SecretReseal&) = default;
};

// The record a merchant's webhook secret is bound to.
[[nodiscard]] std::string webhook_secret_record(std::string_view merchant_id);

[[nodiscard]] bool is_sealed_secret(std::string_view bytes);
// The master key version of sealed bytes; nullopt when they are not sealed (or too short).
[[nodiscard]] std::optional<uint32_t> sealed_secret_version(std::string_view bytes);

[[nodiscard]] std::string seal_secret(const MasterKeys& keys, std::string_view record_id,
                                      std::string_view secret, const RandomFill& random);
// The secret of sealed bytes; bytes that are not sealed are a secret in clear, returned as
// they are. Fails when they do not open (a missing version, changed bytes, another record).
[[nodiscard]] Status open_secret(const MasterKeys& keys, std::string_view record_id,
                                 std::string_view bytes, std::string* secret);
// The sealed bytes under `to_version`: a sealed secret re-wrapped (its ciphertext kept), a
// secret in clear sealed. Fails as open_secret() does.
[[nodiscard]] Status reseal_secret(const MasterKeys& keys, std::string_view record_id,
                                   std::string_view bytes, uint32_t to_version,
                                   const RandomFill& random, std::string* out);

}  // namespace keel::vault
