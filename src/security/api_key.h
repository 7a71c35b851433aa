#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace keel::security {

// Who an API key speaks for (docs/security.md, "Roles"). Values are on disk: never renumber.
enum class Role : uint8_t {
  admin = 0,         // everything, runtime controls and keys included
  merchant = 1,      // its own payments, refunds and events (owner: a merchant id)
  customer_app = 2,  // its own wallet, top-ups, payouts and wallet transfers (owner: a customer)
  auditor = 3,       // reads everything, changes nothing
  ledger = 4,        // the raw ledger API, outside the payments core's reserved namespaces
};
inline constexpr Role kRoleLast = Role::ledger;

[[nodiscard]] std::string_view role_name(Role r);
[[nodiscard]] std::optional<Role> role_from_name(std::string_view name);
// Whether a key of this role belongs to a merchant or a customer (and must name it); keys of
// the other roles have no owner.
[[nodiscard]] bool role_has_owner(Role r);

using Digest = std::array<uint8_t, 32>;

[[nodiscard]] Digest sha256(std::string_view data);
[[nodiscard]] std::string to_hex(const Digest& d);
// Lower-case hex of `n` bytes at `p`.
[[nodiscard]] std::string to_hex(const uint8_t* p, size_t n);
[[nodiscard]] bool is_lower_hex(std::string_view s);
// Compares in time independent of where the digests differ.
[[nodiscard]] bool digest_equal(const Digest& a, const Digest& b);

// An API key as clients send it: "keel_" + 16 lower-case hex digits (the tail of its id) + "_" +
// 64 lower-case hex digits (its secret: 256 random bits). Its id is "key_" + the same 16 digits.
// keeld keeps the SHA-256 of the secret, never the secret: a key of 256 random bits needs no
// slow hash, since nothing can be guessed from its digest.
inline constexpr size_t kKeyTextLength = 5 + 16 + 1 + 64;
inline constexpr size_t kKeyIdLength = 4 + 16;

struct GeneratedKey {
  std::string id;    // "key_..."
  std::string text;  // what the client sends: shown once, stored nowhere
  Digest hash{};     // sha256 of the secret
};

// A new key from OpenSSL's random generator. Thread-safe. Aborts if the generator fails (it
// only fails when the system has no entropy source at all).
[[nodiscard]] GeneratedKey generate_key();

struct PresentedKey {
  std::string id;
  Digest hash{};  // sha256 of the secret part
};

// Splits a key a client sent into its id and the digest of its secret; nullopt when it is not
// of the form above.
[[nodiscard]] std::optional<PresentedKey> parse_key(std::string_view text);

[[nodiscard]] bool is_valid_key_id(std::string_view id);

}  // namespace keel::security
