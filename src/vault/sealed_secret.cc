#include "vault/sealed_secret.h"

#include <cstring>

#include "core/assert.h"

namespace keel::vault {
namespace {

std::string encode(const Envelope& e) {
  std::string out(kSealedSecretMagic);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((e.key_version >> (8 * i)) & 0xff));
  out += e.wrapped_key;
  out += e.ciphertext;
  return out;
}

bool decode(std::string_view bytes, Envelope* e) {
  const std::optional<uint32_t> version = sealed_secret_version(bytes);
  if (!version || bytes.size() < kSealedSecretOverhead) return false;
  e->key_version = *version;
  e->wrapped_key = std::string(bytes.substr(8, kWrappedKeyBytes));
  e->ciphertext = std::string(bytes.substr(8 + kWrappedKeyBytes));
  return true;
}

}  // namespace

std::string webhook_secret_record(std::string_view merchant_id) {
  return "webhook_secret:" + std::string(merchant_id);
}

bool is_sealed_secret(std::string_view bytes) { return bytes.starts_with(kSealedSecretMagic); }

std::optional<uint32_t> sealed_secret_version(std::string_view bytes) {
  if (!is_sealed_secret(bytes) || bytes.size() < 8) return std::nullopt;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    v |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[4 + static_cast<size_t>(i)])) << (8 * i);
  }
  return v;
}

std::string seal_secret(const MasterKeys& keys, std::string_view record_id, std::string_view secret,
                        const RandomFill& random) {
  const std::string out = encode(seal(keys, record_id, secret, random));
  KEEL_ASSERT(out.size() == kSealedSecretOverhead + secret.size());
  return out;
}

Status open_secret(const MasterKeys& keys, std::string_view record_id, std::string_view bytes,
                   std::string* secret) {
  if (!is_sealed_secret(bytes)) {
    *secret = std::string(bytes);
    return Status::ok();
  }
  Envelope e;
  if (!decode(bytes, &e)) return Status::error("vault: a sealed secret too short to open");
  return open(keys, record_id, e, secret);
}

Status reseal_secret(const MasterKeys& keys, std::string_view record_id, std::string_view bytes,
                     uint32_t to_version, const RandomFill& random, std::string* out) {
  if (!is_sealed_secret(bytes)) {
    if (keys.key(to_version) == nullptr || to_version != keys.active_version()) {
      return Status::error("vault: a secret in clear is sealed under the active version only");
    }
    *out = seal_secret(keys, record_id, bytes, random);
    return Status::ok();
  }
  Envelope e;
  if (!decode(bytes, &e)) return Status::error("vault: a sealed secret too short to open");
  if (Status s = rewrap(keys, record_id, e, to_version, random, &e.wrapped_key); !s.is_ok()) {
    return s;
  }
  e.key_version = to_version;
  *out = encode(e);
  return Status::ok();
}

}  // namespace keel::vault
