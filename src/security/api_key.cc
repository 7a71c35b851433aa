#include "security/api_key.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>

#include "core/assert.h"
#include "core/hex.h"

namespace keel::security {
namespace {

constexpr std::array<std::string_view, 5> kRoleNames = {"admin", "merchant", "customer_app",
                                                        "auditor", "ledger"};
static_assert(kRoleNames.size() == static_cast<size_t>(kRoleLast) + 1);

constexpr std::string_view kKeyPrefix = "keel_";
constexpr std::string_view kIdPrefix = "key_";

}  // namespace

bool is_lower_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string to_hex(const uint8_t* p, size_t n) { return keel::to_hex(p, n); }

std::string_view role_name(Role r) { return kRoleNames[static_cast<size_t>(r)]; }

std::optional<Role> role_from_name(std::string_view name) {
  for (size_t i = 0; i < kRoleNames.size(); ++i) {
    if (kRoleNames[i] == name) return static_cast<Role>(i);
  }
  return std::nullopt;
}

bool role_has_owner(Role r) { return r == Role::merchant || r == Role::customer_app; }

Digest sha256(std::string_view data) {
  Digest d{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d.data());
  return d;
}

std::string to_hex(const Digest& d) { return to_hex(d.data(), d.size()); }

bool digest_equal(const Digest& a, const Digest& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

GeneratedKey generate_key() {
  std::array<uint8_t, 8 + 32> random{};
  const bool random_ok = RAND_bytes(random.data(), static_cast<int>(random.size())) == 1;
  KEEL_ASSERT(random_ok);
  const std::string tail = to_hex(random.data(), 8);
  const std::string secret = to_hex(random.data() + 8, 32);
  GeneratedKey k;
  k.id = std::string(kIdPrefix) + tail;
  k.text = std::string(kKeyPrefix) + tail + "_" + secret;
  k.hash = sha256(secret);
  KEEL_ASSERT(k.text.size() == kKeyTextLength && k.id.size() == kKeyIdLength);
  return k;
}

std::optional<PresentedKey> parse_key(std::string_view text) {
  if (text.size() != kKeyTextLength || !text.starts_with(kKeyPrefix)) return std::nullopt;
  const std::string_view tail = text.substr(kKeyPrefix.size(), 16);
  const std::string_view secret = text.substr(kKeyPrefix.size() + 17);
  if (text[kKeyPrefix.size() + 16] != '_' || !is_lower_hex(tail) || !is_lower_hex(secret)) {
    return std::nullopt;
  }
  return PresentedKey{std::string(kIdPrefix) + std::string(tail), sha256(secret)};
}

bool is_valid_key_id(std::string_view id) {
  return id.size() == kKeyIdLength && id.starts_with(kIdPrefix) &&
         is_lower_hex(id.substr(kIdPrefix.size()));
}

}  // namespace keel::security
