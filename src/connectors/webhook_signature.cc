#include "connectors/webhook_signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>
#include <vector>

#include "core/enum_name.h"

namespace keel::connectors {

std::string hmac_sha256_hex(std::string_view key, std::string_view message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(len * 2, '0');
  for (unsigned int i = 0; i < len; ++i) {
    out[2 * i] = kHex[mac[i] >> 4];
    out[2 * i + 1] = kHex[mac[i] & 0xF];
  }
  return out;
}

std::string sign_webhook(std::string_view secret, int64_t t_s, std::string_view body,
                         std::string_view also_secret) {
  const std::string t = std::to_string(t_s);
  std::string message = t;
  message += '.';
  message += body;
  std::string header = "t=" + t + ",v1=" + hmac_sha256_hex(secret, message);
  if (!also_secret.empty()) header += ",v1=" + hmac_sha256_hex(also_secret, message);
  return header;
}

std::string_view signature_check_name(SignatureCheck c) {
  switch (c) {
    KEEL_ENUM_CASE(SignatureCheck, ok);
    KEEL_ENUM_CASE(SignatureCheck, malformed);
    KEEL_ENUM_CASE(SignatureCheck, too_old);
    KEEL_ENUM_CASE(SignatureCheck, in_future);
    KEEL_ENUM_CASE(SignatureCheck, mismatch);
  }
  return "unknown";
}

SignatureCheck verify_webhook(std::string_view secret, std::string_view header,
                              std::string_view body, int64_t now_s, int64_t tolerance_s) {
  std::string_view t_text;
  std::vector<std::string_view> candidates;
  while (!header.empty()) {
    const size_t comma = header.find(',');
    std::string_view part = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.starts_with("t=")) t_text = part.substr(2);
    if (part.starts_with("v1=")) candidates.push_back(part.substr(3));
  }
  int64_t t = 0;
  const auto parsed = std::from_chars(t_text.data(), t_text.data() + t_text.size(), t);
  if (t_text.empty() || parsed.ec != std::errc() || parsed.ptr != t_text.data() + t_text.size() ||
      candidates.empty()) {
    return SignatureCheck::malformed;
  }
  if (t < now_s - tolerance_s) return SignatureCheck::too_old;
  if (t > now_s + tolerance_s) return SignatureCheck::in_future;
  std::string message(t_text);
  message += '.';
  message += body;
  const std::string expected = hmac_sha256_hex(secret, message);
  bool match = false;
  for (std::string_view c : candidates) {
    if (c.size() == expected.size()) {
      match |= CRYPTO_memcmp(c.data(), expected.data(), expected.size()) == 0;
    }
  }
  return match ? SignatureCheck::ok : SignatureCheck::mismatch;
}

}  // namespace keel::connectors
