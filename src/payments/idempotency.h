#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "core/status.h"
#include "core/time.h"

namespace keel::payments {

// Idempotency keys with Stripe's semantics, as a pure state machine (journaled through the
// commands that call it, so keys survive restarts and replay exactly).
//
// A key is scoped to one API client. The first request with a key begins a record holding the
// request's fingerprint (a hash of method, path and body, computed by the caller); when the
// request's answer is final, complete() stores it. Then:
//   - same key, same fingerprint, completed  -> replay the stored answer;
//   - same key, same fingerprint, in flight  -> conflict (HTTP 409): the first is still running;
//   - same key, other fingerprint            -> mismatch (HTTP 422 idempotency_key_reused).
// Completed records are kept `ttl` after completion (at least 24 h by default), then forgotten
// by expire(). A request that failed before it had any effect may release() its record so that
// a retry runs again.
//
// Thread: the engine's writer thread only. Never throws; never reads the clock.

inline constexpr size_t kIdempotencyKeyLengthMax = 255;
inline constexpr size_t kFingerprintBytes = 32;  // SHA-256
inline constexpr size_t kStoredBodyBytesMax = 64 * 1024;

// A request's final, successful answer: the object as JSON. Failed requests are never stored
// (they changed nothing; the key is released so that a corrected retry runs).
struct StoredResponse {
  std::string body;
  friend bool operator==(const StoredResponse&, const StoredResponse&) = default;
};

enum class IdempotencyDecision : uint8_t {
  proceed = 0,  // new key: a record was begun; run the request, then complete() or release()
  replay,       // answer with the stored response (and `Idempotent-Replayed: true`)
  in_flight,    // 409: the first request with this key has not finished
  mismatch,     // 422: the key was used with another request
  key_invalid,  // empty, longer than kIdempotencyKeyLengthMax, or not printable ASCII
};

struct IdempotencyOutcome {
  IdempotencyDecision decision = IdempotencyDecision::proceed;
  const StoredResponse* response = nullptr;  // for replay; valid until the next change
};

enum class CompleteResult : uint8_t { ok = 0, not_found, not_in_flight, body_too_large };

class IdempotencyStore {
 public:
  explicit IdempotencyStore(int64_t ttl_s = 24 * 3600) : ttl_s_(ttl_s) {}

  // REQUIRES: fingerprint.size() == kFingerprintBytes.
  IdempotencyOutcome begin(std::string_view client, std::string_view key,
                           std::string_view fingerprint, Timestamp now);
  // The stored answer begin() would replay for this request at `now`, without changing
  // anything (no record begun, nothing expired); null when begin() would not replay.
  [[nodiscard]] const StoredResponse* completed(std::string_view client, std::string_view key,
                                                std::string_view fingerprint, Timestamp now) const;
  // Stores the final answer of an in-flight record.
  CompleteResult complete(std::string_view client, std::string_view key, StoredResponse response,
                          Timestamp now);
  // Forgets an in-flight record (the request had no effect). False if there is none in flight.
  bool release(std::string_view client, std::string_view key);
  // Forgets completed records whose ttl ran out by `now`. Returns how many.
  size_t expire(Timestamp now);

  [[nodiscard]] size_t size() const { return records_.size(); }
  // When the next completed record runs out of ttl, if any.
  [[nodiscard]] std::optional<Timestamp> next_expiry() const {
    if (expiry_.empty()) return std::nullopt;
    return expiry_.begin()->first;
  }
  [[nodiscard]] int64_t ttl_s() const { return ttl_s_; }

  // Canonical encoding for snapshots; decode() fails on malformed bytes.
  void encode(std::string* out) const;
  [[nodiscard]] static Status decode(std::string_view bytes, IdempotencyStore* out);

 private:
  using Key = std::pair<std::string, std::string>;  // (client, key)
  struct Record {
    std::string fingerprint;
    bool completed = false;
    StoredResponse response;
    Timestamp expires_at = 0;  // completed records only
  };

  int64_t ttl_s_;
  std::map<Key, Record> records_;               // ordered: deterministic encoding
  std::set<std::pair<Timestamp, Key>> expiry_;  // completed records by expires_at
};

[[nodiscard]] bool is_valid_idempotency_key(std::string_view key);

}  // namespace keel::payments
