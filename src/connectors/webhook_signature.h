#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace keel::connectors {

// Webhook signatures, as PSPs send them to keel (header `PSP-Signature`) and keel sends them to
// merchants (header `Keel-Signature`): `t={unix seconds},v1={hex HMAC-SHA256(secret, t + "." +
// body)}` (docs/psp_protocol.md). Several `v1=` entries are allowed (secret rotation): any
// one matching is enough. Never throws; `now_s` is a parameter (no clock read here).

inline constexpr int64_t kSignatureToleranceS = 300;

// The header value for `body` signed at `t_s`; with `also_secret`, a second v1 under it
// follows (a rotation's overlap: a receiver that knows either secret accepts it).
[[nodiscard]] std::string sign_webhook(std::string_view secret, int64_t t_s, std::string_view body,
                                       std::string_view also_secret = {});

enum class SignatureCheck : uint8_t {
  ok = 0,
  malformed,  // no t=, no v1=, or not numbers/hex
  too_old,    // t more than the tolerance before now
  in_future,  // t more than the tolerance after now
  mismatch,   // no v1 matches (wrong secret, or the body was changed)
};
[[nodiscard]] std::string_view signature_check_name(SignatureCheck c);

// Checks `header` for `body` at `now_s`. The comparison takes the same time whatever the bytes.
[[nodiscard]] SignatureCheck verify_webhook(std::string_view secret, std::string_view header,
                                            std::string_view body, int64_t now_s,
                                            int64_t tolerance_s = kSignatureToleranceS);

// Lower-case hex HMAC-SHA256 of `message` under `key`.
[[nodiscard]] std::string hmac_sha256_hex(std::string_view key, std::string_view message);

}  // namespace keel::connectors
