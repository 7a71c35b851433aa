#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "api/errors.h"
#include "security/api_key.h"
#include "security/key_ring.h"

namespace keel::api {

// Who sent a request: the API key it authenticated with.
struct Caller {
  std::string key_id;
  security::Role role = security::Role::admin;
  std::string owner;  // merchant: its merchant id; customer_app: its customer id; else empty

  // Whether the caller sees every tenant's objects (admin, auditor); the others see their own.
  [[nodiscard]] bool sees_all() const {
    return role == security::Role::admin || role == security::Role::auditor;
  }
  [[nodiscard]] bool is_merchant() const { return role == security::Role::merchant; }
  [[nodiscard]] bool is_customer() const { return role == security::Role::customer_app; }
  // The scope of its Idempotency-Keys: the key's owner ("merchant:mch_..", "customer:cus_.."),
  // or the key itself for keys with no owner ("key:key_..").
  [[nodiscard]] std::string idempotency_client() const;
};

// The outcome of authenticate(): a caller, or the error to answer (nothing else happens).
struct Authenticated {
  std::optional<Caller> caller;
  std::optional<ApiError> error;
  // The key's last use on record is older than security::kLastUsedResolution: journal a use.
  bool note_use = false;
};

// Checks the Authorization header against the key ring: "Bearer KEY", or "Basic" with
// base64("KEY:") (what `curl -u KEY:` and Stripe's clients send; any password is ignored).
// authentication_required when the header is absent; api_key_invalid when it is malformed, the
// key is unknown, its secret does not match or it is revoked (the same code and message for
// each, so that a caller learns nothing about which keys exist). `now` is the wall clock.
// Pure; thread-safe.
[[nodiscard]] Authenticated authenticate(std::string_view authorization,
                                         const security::KeyRing& keys, Timestamp now);

// A token bucket: `per_second` tokens a second, at most `burst` saved. per_second 0: no limit.
struct RateLimit {
  double per_second = 0;
  double burst = 0;
};
using RateLimits = std::array<RateLimit, static_cast<size_t>(security::kRoleLast) + 1>;

// Per-key request rate limits by role (keeld.toml [auth.rate_limits]): one token bucket per key,
// so one tenant's burst never spends another's. In memory only: a restart refills every bucket.
//
// Thread: every method may be called from any thread (one mutex; a request holds it for one
// map lookup).
class RateLimiter {
 public:
  // `now_ns` is a monotonic clock (injected by tests).
  RateLimiter(RateLimits limits, std::function<int64_t()> now_ns);

  // Takes one token from the key's bucket. 0: allowed; otherwise the whole seconds until a
  // token is there (Retry-After), at least 1.
  uint32_t take(const Caller& caller);

 private:
  struct Bucket {
    double tokens = 0;
    int64_t at_ns = 0;
  };
  RateLimits limits_;
  std::function<int64_t()> now_ns_;
  std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;  // by key id: at most security::kKeysMax
};

// The per-role defaults keeld uses when keeld.toml names none (docs/security.md).
[[nodiscard]] RateLimits default_rate_limits();

}  // namespace keel::api
