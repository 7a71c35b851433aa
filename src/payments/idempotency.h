#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/kv_reader.h"
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
// History (docs/storage.md, "Tiers"): a completed record never changes, so it may leave memory
// for the history store. take_final() hands out each completed record once as a store record;
// once it is durable, make_cold() drops it from memory and keeps 16 bytes of it: its expiry
// and a 64-bit hash of (client, key), which says whether a request's key may be in the store.
// A request that meets one reads the store (a point read, on the writer: only retries of
// settled requests do), so every answer is the same as from memory, byte for byte.
//
// Thread: the engine's writer thread only. Never throws; never reads the clock. A failed read
// of the history store, or a record it lacks, is fatal (KEEL_ASSERT): the store lost what it
// acknowledged.

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
  const StoredResponse* response = nullptr;  // for replay; valid until the next call
};

// The history store's layout for completed records: "ik" + expires_at (8 bytes, big-endian) +
// hash of (client, key) (8 bytes) + client + '\0' + key -> fingerprint (32 bytes) + body. Keys
// sort by expiry, so expired records go with one range deletion.
inline constexpr std::string_view kIdempotencyRecordPrefix = "ik";
[[nodiscard]] std::string idempotency_record_key(Timestamp expires_at, std::string_view client,
                                                 std::string_view key);

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

  [[nodiscard]] size_t size() const { return records_.size() + cold_expiry_.size(); }
  [[nodiscard]] size_t in_memory() const { return records_.size(); }
  [[nodiscard]] size_t in_history() const { return cold_expiry_.size(); }
  // When the next completed record runs out of ttl, if any.
  [[nodiscard]] std::optional<Timestamp> next_expiry() const;
  [[nodiscard]] int64_t ttl_s() const { return ttl_s_; }

  // History. The store the records in history are read from (null: none, and take_final() then
  // has nothing: no record is collected for it). Set it before any call that may meet one; it
  // makes every completed record in memory due for take_final() again.
  void set_history(const KvReader* history);
  // Appends the store record of every record completed since the last call (each once) to
  // `puts`, and its key to `keys`.
  void take_final(std::vector<std::pair<std::string, std::string>>* puts,
                  std::vector<std::string>* keys);
  // Drops from memory the records of `keys` (store keys from take_final, now durable) that are
  // still stored and completed; others are ignored.
  void make_cold(const std::vector<std::string>& keys);
  // Records of the store that expired before this are in no state from now on (the earliest
  // expiry still stored, and never later than `now`: records completed later expire later).
  [[nodiscard]] Timestamp expired_before(Timestamp now) const;

  // Canonical encoding: version 1, every record in (client, key) order. encode_full() reads the
  // records in the history store (fails when the store fails or lacks one). encode() is the
  // snapshot's: version 1 while every record is in memory, else version 2 (the records in
  // memory, then the expiry and hash of each in the store). decode() takes both, fails on
  // malformed bytes.
  [[nodiscard]] Status encode_full(std::string* out) const;
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

  // The completed record `client`, `key` names in the store, if there and (with `alive_at`)
  // not expired then.
  [[nodiscard]] std::optional<Record> read_cold(std::string_view client, std::string_view key,
                                                std::optional<Timestamp> alive_at) const;

  int64_t ttl_s_;
  std::map<Key, Record> records_;               // ordered: deterministic encoding
  std::set<std::pair<Timestamp, Key>> expiry_;  // completed records in memory by expires_at
  // Completed records in the history store: (expires_at, key hash) by expiry, and key hash ->
  // expires_at for lookups.
  std::deque<std::pair<Timestamp, uint64_t>> cold_expiry_;
  std::unordered_multimap<uint64_t, Timestamp> cold_;
  const KvReader* history_ = nullptr;
  // Completed records not yet handed out by take_final() (not state).
  std::vector<std::pair<Timestamp, Key>> final_;
  mutable StoredResponse cold_response_;  // what begin() and completed() replay from the store
};

[[nodiscard]] bool is_valid_idempotency_key(std::string_view key);

}  // namespace keel::payments
