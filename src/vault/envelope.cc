#include "vault/envelope.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <memory>

#include "core/assert.h"
#include "core/hex.h"

namespace keel::vault {
namespace {

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

int len(size_t n) { return static_cast<int>(n); }

}  // namespace

std::string gcm_encrypt(const Key& key, std::string_view aad, std::string_view plaintext,
                        const RandomFill& random) {
  std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  auto* bytes = reinterpret_cast<unsigned char*>(out.data());
  random(bytes, kNonceBytes);
  Ctx ctx(EVP_CIPHER_CTX_new());
  int n = 0;
  bool ok =
      ctx != nullptr &&
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), bytes) == 1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &n, reinterpret_cast<const unsigned char*>(aad.data()),
                        len(aad.size())) == 1 &&
      EVP_EncryptUpdate(ctx.get(), bytes + kNonceBytes, &n,
                        reinterpret_cast<const unsigned char*>(plaintext.data()),
                        len(plaintext.size())) == 1 &&
      static_cast<size_t>(n) == plaintext.size() &&
      EVP_EncryptFinal_ex(ctx.get(), bytes + kNonceBytes + n, &n) == 1 && n == 0 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, len(kTagBytes),
                          bytes + kNonceBytes + plaintext.size()) == 1;
  KEEL_ASSERT(ok);  // AES-GCM with a valid key cannot fail but by a broken OpenSSL
  return out;
}

bool gcm_decrypt(const Key& key, std::string_view aad, std::string_view sealed,
                 std::string* plaintext) {
  if (sealed.size() < kNonceBytes + kTagBytes) return false;
  const auto* bytes = reinterpret_cast<const unsigned char*>(sealed.data());
  const size_t body = sealed.size() - kNonceBytes - kTagBytes;
  std::string out(body, '\0');
  unsigned char tag[kTagBytes];
  std::copy(bytes + kNonceBytes + body, bytes + sealed.size(), tag);
  Ctx ctx(EVP_CIPHER_CTX_new());
  int n = 0;
  const bool ok =
      ctx != nullptr &&
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), bytes) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &n, reinterpret_cast<const unsigned char*>(aad.data()),
                        len(aad.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &n,
                        bytes + kNonceBytes, len(body)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, len(kTagBytes), tag) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + n, &n) == 1;
  if (!ok) return false;
  *plaintext = std::move(out);
  return true;
}

namespace {

std::string key_aad(std::string_view record_id, uint32_t version) {
  return "keel-vault data key|" + std::string(record_id) + "|" + std::to_string(version);
}
std::string data_aad(std::string_view record_id) {
  return "keel-vault record|" + std::string(record_id);
}

Status unwrap(const MasterKeys& keys, std::string_view record_id, const Envelope& envelope,
              Key* data_key) {
  const Key* master = keys.key(envelope.key_version);
  if (master == nullptr) {
    return Status::error("vault: master key version " + std::to_string(envelope.key_version) +
                         " is not in the key file");
  }
  std::string raw;
  if (envelope.wrapped_key.size() != kWrappedKeyBytes ||
      !gcm_decrypt(*master, key_aad(record_id, envelope.key_version), envelope.wrapped_key, &raw)) {
    return Status::error("vault: the data key of " + std::string(record_id) +
                         " does not open (wrong key or changed bytes)");
  }
  KEEL_ASSERT(raw.size() == kKeyBytes);
  std::copy(raw.begin(), raw.end(), data_key->begin());
  return Status::ok();
}

}  // namespace

Envelope seal(const MasterKeys& keys, std::string_view record_id, std::string_view plaintext,
              const RandomFill& random) {
  KEEL_ASSERT(plaintext.size() <= kPlaintextBytesMax);
  Key data_key{};
  random(data_key.data(), data_key.size());
  Envelope e;
  e.key_version = keys.active_version();
  e.ciphertext = gcm_encrypt(data_key, data_aad(record_id), plaintext, random);
  e.wrapped_key = gcm_encrypt(
      *keys.key(e.key_version), key_aad(record_id, e.key_version),
      std::string_view(reinterpret_cast<const char*>(data_key.data()), data_key.size()), random);
  KEEL_ASSERT(e.wrapped_key.size() == kWrappedKeyBytes);
  KEEL_ASSERT(e.ciphertext.size() == kNonceBytes + plaintext.size() + kTagBytes);
  return e;
}

Status open(const MasterKeys& keys, std::string_view record_id, const Envelope& envelope,
            std::string* plaintext) {
  Key data_key{};
  if (Status s = unwrap(keys, record_id, envelope, &data_key); !s.is_ok()) return s;
  if (!gcm_decrypt(data_key, data_aad(record_id), envelope.ciphertext, plaintext)) {
    return Status::error("vault: the record " + std::string(record_id) +
                         " does not open (changed bytes)");
  }
  return Status::ok();
}

Status rewrap(const MasterKeys& keys, std::string_view record_id, const Envelope& envelope,
              uint32_t to_version, const RandomFill& random, std::string* wrapped_key) {
  const Key* target = keys.key(to_version);
  if (target == nullptr) {
    return Status::error("vault: master key version " + std::to_string(to_version) +
                         " is not in the key file");
  }
  Key data_key{};
  if (Status s = unwrap(keys, record_id, envelope, &data_key); !s.is_ok()) return s;
  *wrapped_key = gcm_encrypt(
      *target, key_aad(record_id, to_version),
      std::string_view(reinterpret_cast<const char*>(data_key.data()), data_key.size()), random);
  return Status::ok();
}

std::string fingerprint_key_hex(const MasterKeys& keys, std::string_view bytes,
                                size_t digest_bytes) {
  KEEL_ASSERT(digest_bytes >= 1 && digest_bytes <= 32);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  const Key& k = keys.fingerprint_key();
  HMAC(EVP_sha256(), k.data(), static_cast<int>(k.size()),
       reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), mac, &n);
  KEEL_ASSERT(n == 32);
  return to_hex(mac, digest_bytes);
}

std::string card_fingerprint(const MasterKeys& keys, std::string_view digits) {
  return "fp_" + fingerprint_key_hex(keys, digits, 16);
}

}  // namespace keel::vault
