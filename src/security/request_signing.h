#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include "security/api_key.h"

namespace keel::security {

// Signed requests (docs/security.md, "Signed requests"): a client proves, besides its API key,
// that this exact request (method, path, query, body) was made now and only once. Header:
//
//   Keel-Signature: t=<unix seconds>,n=<nonce>,v1=<hex HMAC-SHA256(K, canonical)>
//
//   canonical = METHOD "\n" PATH "\n" QUERY "\n" t "\n" nonce "\n" hex(SHA-256(body))
//
// PATH and QUERY as sent (percent-encoded), the query's `&`-separated parameters sorted
// bytewise (empty when there is none). K is the SHA-256 of the key's secret (the 64 hex digits
// after the key id): what the client can compute and keeld keeps. The nonce is 16 to 64 of
// [A-Za-z0-9_-]. Pure functions; no clock read here.

inline constexpr std::string_view kSignatureHeader = "Keel-Signature";
inline constexpr int64_t kSignatureSkewMaxS = 300;
inline constexpr size_t kNonceLengthMin = 16;
inline constexpr size_t kNonceLengthMax = 64;

struct SignatureHeader {
  int64_t t = 0;
  std::string nonce;
  std::string v1;  // 64 lower-case hex digits
};

// nullopt unless the header is exactly t=, n=, v1= (in that order) with valid values.
[[nodiscard]] std::optional<SignatureHeader> parse_signature_header(std::string_view header);

[[nodiscard]] std::string canonical_request(std::string_view method, std::string_view target,
                                            int64_t t, std::string_view nonce,
                                            std::string_view body);

// The header a client sends: `key_text` is its API key (api_key.h form). Empty if it is not one.
[[nodiscard]] std::string sign_request(std::string_view key_text, std::string_view method,
                                       std::string_view target, std::string_view body, int64_t t,
                                       std::string_view nonce);

// A fresh nonce: 32 hex digits from OpenSSL's generator. Thread-safe.
[[nodiscard]] std::string new_nonce();

enum class SignatureCheck : uint8_t {
  ok = 0,
  malformed,               // not the form above
  timestamp_out_of_range,  // t more than kSignatureSkewMaxS from now
  mismatch,                // another key, or the request was changed
};

// Checks a request's signature header under `key` (the key's digest) at `now_s`. The comparison
// takes the same time wherever the bytes differ. On ok, `*out` (if given) gets the header.
[[nodiscard]] SignatureCheck verify_request(const Digest& key, std::string_view header,
                                            std::string_view method, std::string_view target,
                                            std::string_view body, int64_t now_s,
                                            SignatureHeader* out = nullptr);

// For an HTTP client (net::HttpClientOptions::sign): signs each request with `key_text`, at the
// system clock's time and with a new nonce. Client side; keeld's own checks never read a clock
// here.
template <typename Headers>
[[nodiscard]] auto request_signer(std::string key_text) {
  return [key = std::move(key_text)](std::string_view method, std::string_view target,
                                     std::string_view body, Headers* headers) {
    headers->emplace_back(std::string(kSignatureHeader),
                          sign_request(key, method, target, body,
                                       static_cast<int64_t>(std::time(nullptr)), new_nonce()));
  };
}

}  // namespace keel::security
