#include "security/request_signing.h"
#include "core/ids.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <vector>

#include "core/assert.h"

namespace keel::security {
namespace {

bool valid_nonce(std::string_view n) {
  return n.size() >= kNonceLengthMin && is_valid_reference(n, kNonceLengthMax);
}

std::string hmac_hex(const Digest& key, std::string_view message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  return to_hex(mac, len);
}

// "a=1&c=3&b=2" -> "a=1&b=2&c=3".
std::string sorted_query(std::string_view query) {
  std::vector<std::string_view> params;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    params.push_back(query.substr(0, amp));
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (size_t i = 0; i < params.size(); ++i) {
    if (i > 0) out += '&';
    out += params[i];
  }
  return out;
}

}  // namespace

std::optional<SignatureHeader> parse_signature_header(std::string_view header) {
  SignatureHeader h;
  const auto field = [&header](std::string_view name,
                               bool last) -> std::optional<std::string_view> {
    if (!header.starts_with(name)) return std::nullopt;
    header.remove_prefix(name.size());
    const size_t comma = header.find(',');
    if (last != (comma == std::string_view::npos)) return std::nullopt;
    const std::string_view value = header.substr(0, comma);
    header = last ? std::string_view() : header.substr(comma + 1);
    return value;
  };
  const auto t = field("t=", false);
  const auto n = field("n=", false);
  const auto v1 = field("v1=", true);
  if (!t || !n || !v1 || t->empty() || t->size() > 12) return std::nullopt;
  const auto [end, ec] = std::from_chars(t->data(), t->data() + t->size(), h.t);
  if (ec != std::errc() || end != t->data() + t->size() || h.t <= 0) return std::nullopt;
  if (!valid_nonce(*n) || v1->size() != 64 || !is_lower_hex(*v1)) return std::nullopt;
  h.nonce = std::string(*n);
  h.v1 = std::string(*v1);
  return h;
}

std::string canonical_request(std::string_view method, std::string_view target, int64_t t,
                              std::string_view nonce, std::string_view body) {
  const size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? "" : target.substr(q + 1);
  const Digest body_hash = sha256(body);
  std::string out;
  out.reserve(method.size() + target.size() + 120);
  out.append(method).append("\n").append(path).append("\n").append(sorted_query(query));
  out.append("\n").append(std::to_string(t)).append("\n").append(nonce).append("\n");
  out.append(to_hex(body_hash));
  return out;
}

std::string sign_request(std::string_view key_text, std::string_view method,
                         std::string_view target, std::string_view body, int64_t t,
                         std::string_view nonce) {
  const auto key = parse_key(key_text);
  if (!key) return {};
  return "t=" + std::to_string(t) + ",n=" + std::string(nonce) +
         ",v1=" + hmac_hex(key->hash, canonical_request(method, target, t, nonce, body));
}

std::string new_nonce() {
  unsigned char random[16];
  const bool ok = RAND_bytes(random, sizeof random) == 1;
  KEEL_ASSERT(ok);
  return to_hex(random, sizeof random);
}

SignatureCheck verify_request(const Digest& key, std::string_view header, std::string_view method,
                              std::string_view target, std::string_view body, int64_t now_s,
                              SignatureHeader* out) {
  auto h = parse_signature_header(header);
  if (!h) return SignatureCheck::malformed;
  if (h->t < now_s - kSignatureSkewMaxS || h->t > now_s + kSignatureSkewMaxS) {
    return SignatureCheck::timestamp_out_of_range;
  }
  const std::string expected =
      hmac_hex(key, canonical_request(method, target, h->t, h->nonce, body));
  if (CRYPTO_memcmp(expected.data(), h->v1.data(), expected.size()) != 0) {
    return SignatureCheck::mismatch;
  }
  if (out != nullptr) *out = std::move(*h);
  return SignatureCheck::ok;
}

}  // namespace keel::security
