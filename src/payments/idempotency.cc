#include "payments/idempotency.h"

#include <algorithm>

#include "core/assert.h"
#include "core/bytes.h"

namespace keel::payments {
namespace {

constexpr uint32_t kEncodingVersion = 1;

// Version 1 stored an HTTP status with each record: 200 once completed (only successes are
// stored), 0 while in flight. The field stays, fixed by `completed`, so that snapshots keep
// their bytes and their hash.
constexpr uint16_t stored_status(bool completed) { return completed ? 200 : 0; }

}  // namespace

bool is_valid_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > kIdempotencyKeyLengthMax) return false;
  return std::all_of(key.begin(), key.end(), [](char c) { return c >= 0x21 && c <= 0x7E; });
}

IdempotencyOutcome IdempotencyStore::begin(std::string_view client, std::string_view key,
                                           std::string_view fingerprint, Timestamp now) {
  KEEL_ASSERT(fingerprint.size() == kFingerprintBytes);
  if (!is_valid_idempotency_key(key)) return {IdempotencyDecision::key_invalid, nullptr};
  expire(now);
  Key k{std::string(client), std::string(key)};
  const auto it = records_.find(k);
  if (it == records_.end()) {
    records_.emplace(std::move(k), Record{std::string(fingerprint), false, {}, 0});
    return {IdempotencyDecision::proceed, nullptr};
  }
  const Record& r = it->second;
  if (r.fingerprint != fingerprint) return {IdempotencyDecision::mismatch, nullptr};
  if (!r.completed) return {IdempotencyDecision::in_flight, nullptr};
  return {IdempotencyDecision::replay, &r.response};
}

const StoredResponse* IdempotencyStore::completed(std::string_view client, std::string_view key,
                                                  std::string_view fingerprint,
                                                  Timestamp now) const {
  const auto it = records_.find(Key{std::string(client), std::string(key)});
  if (it == records_.end()) return nullptr;
  const Record& r = it->second;
  if (!r.completed || r.expires_at <= now || r.fingerprint != fingerprint) return nullptr;
  return &r.response;
}

CompleteResult IdempotencyStore::complete(std::string_view client, std::string_view key,
                                          StoredResponse response, Timestamp now) {
  const auto it = records_.find(Key{std::string(client), std::string(key)});
  if (it == records_.end()) return CompleteResult::not_found;
  Record& r = it->second;
  if (r.completed) return CompleteResult::not_in_flight;
  if (response.body.size() > kStoredBodyBytesMax) return CompleteResult::body_too_large;
  r.completed = true;
  r.response = std::move(response);
  r.expires_at = now + ttl_s_ * kNanosPerSecond;
  expiry_.insert({r.expires_at, it->first});
  return CompleteResult::ok;
}

bool IdempotencyStore::release(std::string_view client, std::string_view key) {
  const auto it = records_.find(Key{std::string(client), std::string(key)});
  if (it == records_.end() || it->second.completed) return false;
  records_.erase(it);
  return true;
}

size_t IdempotencyStore::expire(Timestamp now) {
  size_t n = 0;
  while (!expiry_.empty() && expiry_.begin()->first <= now) {
    const size_t erased = records_.erase(expiry_.begin()->second);
    KEEL_ASSERT(erased == 1);
    expiry_.erase(expiry_.begin());
    ++n;
  }
  return n;
}

void IdempotencyStore::encode(std::string* out) const {
  ByteWriter w(out);
  w.u32(kEncodingVersion);
  w.i64(ttl_s_);
  w.u64(records_.size());
  for (const auto& [k, r] : records_) {
    w.str16(k.first);
    w.str16(k.second);
    w.str16(r.fingerprint);
    w.u8(r.completed ? 1 : 0);
    w.u16(stored_status(r.completed));
    w.u32(static_cast<uint32_t>(r.response.body.size()));
    w.raw(r.response.body.data(), r.response.body.size());
    w.i64(r.expires_at);
  }
}

Status IdempotencyStore::decode(std::string_view bytes, IdempotencyStore* out) {
  ByteReader r(bytes);
  uint32_t version = 0;
  int64_t ttl_s = 0;
  uint64_t n = 0;
  if (!r.u32(&version) || version != kEncodingVersion || !r.i64(&ttl_s) || ttl_s <= 0 ||
      !r.u64(&n)) {
    return Status::error("idempotency store: bad header");
  }
  IdempotencyStore s(ttl_s);
  for (uint64_t i = 0; i < n; ++i) {
    Key k;
    Record rec;
    uint8_t completed = 0;
    uint16_t status = 0;
    uint32_t body_len = 0;
    std::string_view body;
    const bool ok = r.str16(&k.first) && r.str16(&k.second) && r.str16(&rec.fingerprint) &&
                    r.u8(&completed) && completed <= 1 && r.u16(&status) &&
                    status == stored_status(completed == 1) && r.u32(&body_len) &&
                    body_len <= kStoredBodyBytesMax && r.raw(&body, body_len) &&
                    r.i64(&rec.expires_at) && rec.fingerprint.size() == kFingerprintBytes &&
                    is_valid_idempotency_key(k.second);
    if (!ok) return Status::error("idempotency store: record " + std::to_string(i) + " malformed");
    rec.completed = completed == 1;
    rec.response.body.assign(body);
    if (rec.completed) s.expiry_.insert({rec.expires_at, k});
    if (!s.records_.emplace(std::move(k), std::move(rec)).second) {
      return Status::error("idempotency store: duplicate key");
    }
  }
  if (!r.at_end()) return Status::error("idempotency store: trailing bytes");
  *out = std::move(s);
  return Status::ok();
}

}  // namespace keel::payments
