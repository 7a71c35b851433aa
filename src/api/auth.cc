#include "api/auth.h"

#include <algorithm>
#include <cmath>

#include "core/assert.h"

namespace keel::api {
namespace {

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    const char a = s[i] >= 'A' && s[i] <= 'Z' ? static_cast<char>(s[i] - 'A' + 'a') : s[i];
    if (a != prefix[i]) return false;
  }
  return true;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard base64 with padding; nullopt on anything else.
std::optional<std::string> base64_decode(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      const char c = in[i + j];
      if (c == '=' && i + 4 == in.size() && j >= 2) {
        v[j] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) return std::nullopt;  // data after padding
      v[j] = base64_value(c);
      if (v[j] < 0) return std::nullopt;
    }
    const uint32_t n =
        (uint32_t(v[0]) << 18) | (uint32_t(v[1]) << 12) | (uint32_t(v[2]) << 6) | uint32_t(v[3]);
    out.push_back(static_cast<char>(n >> 16));
    if (pad < 2) out.push_back(static_cast<char>((n >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(n & 0xFF));
  }
  return out;
}

// The key text an Authorization header carries; nullopt when the header is malformed.
std::optional<std::string> key_text(std::string_view authorization) {
  if (iequals_prefix(authorization, "bearer ")) {
    std::string_view key = authorization.substr(7);
    while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
    return std::string(key);
  }
  if (iequals_prefix(authorization, "basic ")) {
    std::string_view encoded = authorization.substr(6);
    while (!encoded.empty() && encoded.front() == ' ') encoded.remove_prefix(1);
    const auto decoded = base64_decode(encoded);
    if (!decoded) return std::nullopt;
    const size_t colon = decoded->find(':');
    return colon == std::string::npos ? *decoded : decoded->substr(0, colon);
  }
  return std::nullopt;
}

ApiError invalid_key() {
  return make_error(ErrorCode::api_key_invalid, "the API key is not valid");
}

}  // namespace

std::string Caller::idempotency_client() const {
  switch (role) {
    case security::Role::merchant:
      return "merchant:" + owner;
    case security::Role::customer_app:
      return "customer:" + owner;
    default:
      return "key:" + key_id;
  }
}

Authenticated authenticate(std::string_view authorization, const security::KeyRing& keys,
                           Timestamp now) {
  Authenticated out;
  if (authorization.empty()) {
    out.error = make_error(ErrorCode::authentication_required,
                           "this route needs an API key: Authorization: Bearer KEY");
    return out;
  }
  const auto text = key_text(authorization);
  const auto presented = text ? security::parse_key(*text) : std::nullopt;
  const security::ApiKey* key = presented ? keys.find(presented->id) : nullptr;
  // The digest is compared even for a revoked key, so that timing says nothing of its state.
  if (key == nullptr || !security::digest_equal(key->hash, presented->hash) || !key->active()) {
    out.error = invalid_key();
    return out;
  }
  out.caller = Caller{key->id, key->role, key->owner};
  out.note_use = key->last_used == 0 || now - key->last_used >= security::kLastUsedResolution;
  return out;
}

RateLimiter::RateLimiter(RateLimits limits, std::function<int64_t()> now_ns)
    : limits_(limits), now_ns_(std::move(now_ns)) {
  KEEL_ASSERT(now_ns_ != nullptr);
}

uint32_t RateLimiter::take(const Caller& caller) {
  const RateLimit& limit = limits_[static_cast<size_t>(caller.role)];
  if (limit.per_second <= 0) return 0;
  const double burst = std::max(limit.burst, 1.0);
  const int64_t now = now_ns_();
  std::lock_guard lock(mutex_);
  auto [it, fresh] = buckets_.try_emplace(caller.key_id, Bucket{burst, now});
  Bucket& b = it->second;
  if (!fresh && now > b.at_ns) {
    b.tokens =
        std::min(burst, b.tokens + static_cast<double>(now - b.at_ns) / 1e9 * limit.per_second);
    b.at_ns = now;
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return 0;
  }
  const double wait_s = (1.0 - b.tokens) / limit.per_second;
  return static_cast<uint32_t>(std::max(1.0, std::ceil(wait_s)));
}

RateLimits default_rate_limits() {
  RateLimits limits{};
  limits[static_cast<size_t>(security::Role::merchant)] = {500, 1000};
  limits[static_cast<size_t>(security::Role::customer_app)] = {20, 40};
  limits[static_cast<size_t>(security::Role::auditor)] = {50, 100};
  return limits;  // admin and ledger: none (operators and the bulk ledger API)
}

}  // namespace keel::api
