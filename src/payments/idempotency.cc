#include "payments/idempotency.h"

#include <algorithm>

#include "core/assert.h"
#include "core/bytes.h"
#include "core/hash.h"

namespace keel::payments {
namespace {

constexpr uint32_t kEncodingVersion = 1;
constexpr uint32_t kEncodingVersionWithHistory = 2;  // some records are in the history store
// The key hash's key: fixed, so that hashes in snapshots mean the same after a restart. Finding
// two keys with one hash takes about 2^32 tries per client: a collision costs a store read, and
// the record's full key in the store tells the two apart.
constexpr SipKey kKeyHashKey{0x6b65656c69646d70ull, 0x6f74656e63796b79ull};

uint64_t key_hash(std::string_view client, std::string_view key) {
  std::string input;
  ByteWriter w(&input);
  w.str16(client);
  w.str16(key);
  return siphash13(kKeyHashKey, input);
}

// The store key of a record (idempotency_record_key, with the key's hash computed already).
std::string record_key(Timestamp expires_at, uint64_t hash, std::string_view client,
                       std::string_view key) {
  std::string k(kIdempotencyRecordPrefix);
  append_be64(&k, static_cast<uint64_t>(expires_at));
  append_be64(&k, hash);
  k += client;
  k += '\0';
  k += key;
  return k;
}

// Splits a store key; false when malformed.
bool parse_record_key(std::string_view k, Timestamp* expires_at, uint64_t* hash,
                      std::string* client, std::string* key) {
  const size_t head = kIdempotencyRecordPrefix.size() + 16;
  if (k.size() < head || !k.starts_with(kIdempotencyRecordPrefix)) return false;
  *expires_at = static_cast<Timestamp>(read_be64_suffix(k.substr(0, head - 8)));
  *hash = read_be64_suffix(k.substr(0, head));
  const std::string_view rest = k.substr(head);
  const size_t zero = rest.find('\0');
  if (zero == std::string_view::npos) return false;
  client->assign(rest.substr(0, zero));
  key->assign(rest.substr(zero + 1));
  return key_hash(*client, *key) == *hash;
}

// Version 1 stored an HTTP status with each record: 200 once completed (only successes are
// stored), 0 while in flight. The field stays, fixed by `completed`, so that snapshots keep
// their bytes and their hash.
constexpr uint16_t stored_status(bool completed) { return completed ? 200 : 0; }

}  // namespace

std::string idempotency_record_key(Timestamp expires_at, std::string_view client,
                                   std::string_view key) {
  return record_key(expires_at, key_hash(client, key), client, key);
}

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
    if (std::optional<Record> cold = read_cold(client, key, now)) {
      if (cold->fingerprint != fingerprint) return {IdempotencyDecision::mismatch, nullptr};
      cold_response_ = std::move(cold->response);
      return {IdempotencyDecision::replay, &cold_response_};
    }
    records_.emplace(std::move(k), Record{std::string(fingerprint), false, {}, 0});
    return {IdempotencyDecision::proceed, nullptr};
  }
  const Record& r = it->second;
  if (r.fingerprint != fingerprint) return {IdempotencyDecision::mismatch, nullptr};
  if (!r.completed) return {IdempotencyDecision::in_flight, nullptr};
  return {IdempotencyDecision::replay, &r.response};
}

std::optional<IdempotencyStore::Record> IdempotencyStore::read_cold(
    std::string_view client, std::string_view key, std::optional<Timestamp> alive_at) const {
  const uint64_t hash = key_hash(client, key);
  const auto [first, last] = cold_.equal_range(hash);
  for (auto it = first; it != last; ++it) {
    if (alive_at && it->second <= *alive_at) continue;  // expired, not yet forgotten
    KEEL_ASSERT(history_ != nullptr);
    std::optional<std::string> value;
    const std::string store_key = record_key(it->second, hash, client, key);
    const Status s = history_->get(store_key, &value);
    // Only a hash collision with another key of the same expiry finds nothing.
    KEEL_ASSERT(s.is_ok());
    if (!value) continue;
    KEEL_ASSERT(value->size() >= kFingerprintBytes);
    Record r;
    r.fingerprint = value->substr(0, kFingerprintBytes);
    r.completed = true;
    r.response.body = value->substr(kFingerprintBytes);
    r.expires_at = it->second;
    return r;
  }
  return std::nullopt;
}

const StoredResponse* IdempotencyStore::completed(std::string_view client, std::string_view key,
                                                  std::string_view fingerprint,
                                                  Timestamp now) const {
  const auto it = records_.find(Key{std::string(client), std::string(key)});
  if (it == records_.end()) {
    std::optional<Record> cold = read_cold(client, key, now);
    if (!cold || cold->fingerprint != fingerprint) return nullptr;
    cold_response_ = std::move(cold->response);
    return &cold_response_;
  }
  const Record& r = it->second;
  if (!r.completed || r.expires_at <= now || r.fingerprint != fingerprint) return nullptr;
  return &r.response;
}

CompleteResult IdempotencyStore::complete(std::string_view client, std::string_view key,
                                          StoredResponse response, Timestamp now) {
  const auto it = records_.find(Key{std::string(client), std::string(key)});
  if (it == records_.end()) {
    return read_cold(client, key, std::nullopt) ? CompleteResult::not_in_flight
                                                : CompleteResult::not_found;
  }
  Record& r = it->second;
  if (r.completed) return CompleteResult::not_in_flight;
  if (response.body.size() > kStoredBodyBytesMax) return CompleteResult::body_too_large;
  r.completed = true;
  r.response = std::move(response);
  r.expires_at = now + ttl_s_ * kNanosPerSecond;
  expiry_.insert({r.expires_at, it->first});
  if (history_ != nullptr) final_.emplace_back(r.expires_at, it->first);
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
  while (!cold_expiry_.empty() && cold_expiry_.front().first <= now) {
    const auto [at, hash] = cold_expiry_.front();
    const auto [first, last] = cold_.equal_range(hash);
    auto it = std::find_if(first, last, [at = at](const auto& e) { return e.second == at; });
    KEEL_ASSERT(it != last);
    cold_.erase(it);
    cold_expiry_.pop_front();
    ++n;
  }
  return n;
}

void IdempotencyStore::set_history(const KvReader* history) {
  history_ = history;
  // Every completed record in memory is handed out (again), in expiry order as they completed.
  final_.clear();
  if (history_ != nullptr) final_.assign(expiry_.begin(), expiry_.end());
}

std::optional<Timestamp> IdempotencyStore::next_expiry() const {
  std::optional<Timestamp> out;
  if (!expiry_.empty()) out = expiry_.begin()->first;
  if (!cold_expiry_.empty() && (!out || cold_expiry_.front().first < *out)) {
    out = cold_expiry_.front().first;
  }
  return out;
}

Timestamp IdempotencyStore::expired_before(Timestamp now) const {
  return std::min(now, next_expiry().value_or(now));
}

void IdempotencyStore::take_final(std::vector<std::pair<std::string, std::string>>* puts,
                                  std::vector<std::string>* keys) {
  for (const auto& [at, k] : final_) {
    const auto it = records_.find(k);
    if (it == records_.end() || !it->second.completed || it->second.expires_at != at) continue;
    std::string key = idempotency_record_key(at, k.first, k.second);
    puts->emplace_back(key, it->second.fingerprint + it->second.response.body);
    keys->push_back(std::move(key));
  }
  final_.clear();
}

void IdempotencyStore::make_cold(const std::vector<std::string>& keys) {
  for (const std::string& store_key : keys) {
    Timestamp at = 0;
    uint64_t hash = 0;
    Key k;
    if (!parse_record_key(store_key, &at, &hash, &k.first, &k.second)) continue;
    const auto it = records_.find(k);
    if (it == records_.end() || !it->second.completed || it->second.expires_at != at) continue;
    records_.erase(it);
    expiry_.erase({at, k});
    cold_.emplace(hash, at);
    // In expiry order: records complete in time order, and are handed out in it.
    const std::pair<Timestamp, uint64_t> entry{at, hash};
    if (cold_expiry_.empty() || cold_expiry_.back() <= entry) {
      cold_expiry_.push_back(entry);
    } else {
      cold_expiry_.insert(std::upper_bound(cold_expiry_.begin(), cold_expiry_.end(), entry), entry);
    }
  }
}

namespace {

using Key = std::pair<std::string, std::string>;

void encode_record(ByteWriter& w, const Key& k, std::string_view fingerprint, bool completed,
                   std::string_view body, Timestamp expires_at) {
  w.str16(k.first);
  w.str16(k.second);
  w.str16(fingerprint);
  w.u8(completed ? 1 : 0);
  w.u16(stored_status(completed));
  w.u32(static_cast<uint32_t>(body.size()));
  w.raw(body.data(), body.size());
  w.i64(expires_at);
}

}  // namespace

void IdempotencyStore::encode(std::string* out) const {
  ByteWriter w(out);
  w.u32(cold_expiry_.empty() ? kEncodingVersion : kEncodingVersionWithHistory);
  w.i64(ttl_s_);
  w.u64(records_.size());
  for (const auto& [k, r] : records_) {
    encode_record(w, k, r.fingerprint, r.completed, r.response.body, r.expires_at);
  }
  if (cold_expiry_.empty()) return;
  w.u64(cold_expiry_.size());
  for (const auto& [at, hash] : cold_expiry_) {
    w.i64(at);
    w.u64(hash);
  }
}

Status IdempotencyStore::encode_full(std::string* out) const {
  if (cold_expiry_.empty()) {
    encode(out);
    return Status::ok();
  }
  if (history_ == nullptr)
    return Status::error("idempotency store: records are in a history store");
  // The records in the store that this state holds (the store may still hold expired ones).
  std::map<Key, Record> cold;
  std::string begin(kIdempotencyRecordPrefix);
  std::string end(kIdempotencyRecordPrefix);
  append_be64(&begin, static_cast<uint64_t>(cold_expiry_.front().first));
  append_be64(&end, static_cast<uint64_t>(cold_expiry_.back().first) + 1);
  bool malformed = false;
  const Status scanned =
      history_->scan_range(begin, end, false, [&](std::string_view key, std::string_view value) {
        Timestamp at = 0;
        uint64_t hash = 0;
        Key k;
        if (!parse_record_key(key, &at, &hash, &k.first, &k.second) ||
            value.size() < kFingerprintBytes) {
          malformed = true;
          return false;
        }
        const auto [first, last] = cold_.equal_range(hash);
        if (std::none_of(first, last, [at = at](const auto& e) { return e.second == at; })) {
          return true;  // expired, not yet deleted
        }
        Record r{std::string(value.substr(0, kFingerprintBytes)),
                 true,
                 {std::string(value.substr(kFingerprintBytes))},
                 at};
        cold.emplace(std::move(k), std::move(r));
        return true;
      });
  if (!scanned.is_ok()) return scanned;
  if (malformed) return Status::error("idempotency store: a malformed record in the history store");
  if (cold.size() != cold_expiry_.size()) {
    return Status::error(
        "idempotency store: the history store lacks " +
        std::to_string(cold_expiry_.size() - std::min(cold.size(), cold_expiry_.size())) +
        " record(s)");
  }
  ByteWriter w(out);
  w.u32(kEncodingVersion);
  w.i64(ttl_s_);
  w.u64(records_.size() + cold.size());
  auto h = records_.begin();
  auto c = cold.begin();
  while (h != records_.end() || c != cold.end()) {
    const bool hot = c == cold.end() || (h != records_.end() && h->first < c->first);
    const auto& [k, r] = hot ? *h : *c;
    encode_record(w, k, r.fingerprint, r.completed, r.response.body, r.expires_at);
    hot ? ++h : ++c;
  }
  return Status::ok();
}

Status IdempotencyStore::decode(std::string_view bytes, IdempotencyStore* out) {
  ByteReader r(bytes);
  uint32_t version = 0;
  int64_t ttl_s = 0;
  uint64_t n = 0;
  if (!r.u32(&version) || (version != kEncodingVersion && version != kEncodingVersionWithHistory) ||
      !r.i64(&ttl_s) || ttl_s <= 0 || !r.u64(&n)) {
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
  if (version == kEncodingVersionWithHistory) {
    uint64_t cold = 0;
    if (!r.u64(&cold) || cold == 0 || cold > r.remaining() / 16) {
      return Status::error("idempotency store: bad count of records in the history store");
    }
    for (uint64_t i = 0; i < cold; ++i) {
      Timestamp at = 0;
      uint64_t hash = 0;
      if (!r.i64(&at) || !r.u64(&hash) ||
          (!s.cold_expiry_.empty() && std::pair(at, hash) < s.cold_expiry_.back())) {
        return Status::error("idempotency store: record in the history store " + std::to_string(i) +
                             " malformed");
      }
      s.cold_expiry_.emplace_back(at, hash);
      s.cold_.emplace(hash, at);
    }
  }
  if (!r.at_end()) return Status::error("idempotency store: trailing bytes");
  *out = std::move(s);
  return Status::ok();
}

}  // namespace keel::payments
