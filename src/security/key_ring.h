#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <variant>

#include "core/status.h"
#include "core/time.h"
#include "security/api_key.h"

namespace keel::security {

// An API key as keeld keeps it: never the secret, only its digest.
struct ApiKey {
  std::string id;  // "key_..." (api_key.h)
  Role role = Role::admin;
  std::string owner;  // merchant: a merchant id; customer_app: a customer id; others: empty
  Digest hash{};
  std::string label;  // the operator's note ("checkout service, eu-1"); may be empty
  Timestamp created = 0;
  // When a request last used it, to within kLastUsedResolution (keeld journals a use only when
  // the one on record is older than that).
  Timestamp last_used = 0;
  Timestamp revoked = 0;  // 0: active
  std::string revoked_reason;
  [[nodiscard]] bool active() const { return revoked == 0; }
  friend bool operator==(const ApiKey&, const ApiKey&) = default;
};

inline constexpr Timestamp kLastUsedResolution = Timestamp{3600} * 1'000'000'000;
inline constexpr size_t kKeysMax = 100'000;  // active and revoked: a revoked key is kept
inline constexpr size_t kKeyLabelLengthMax = 100;
inline constexpr size_t kRevokeReasonLengthMax = 200;
// Nonces of signed writes are kept while their signature could still be accepted (its t within
// the allowed skew of now) and a while more, so a restart never reopens a replay window.
inline constexpr int64_t kNonceKeepS = 2 * 300;
inline constexpr size_t kNoncesMax = 200'000;  // in that window, over every key

// The key ring's commands, journaled as engine RecordType::security. Values of CommandKind are
// on disk and are the body's index + 1: never renumber, only append.
enum class CommandKind : uint8_t {
  create_key = 1,
  revoke_key = 2,
  key_used = 3,
  use_nonce = 4,
};

namespace cmd {
struct CreateKey {
  std::string id;
  Role role = Role::admin;
  std::string owner;
  Digest hash{};
  std::string label;
  friend bool operator==(const CreateKey&, const CreateKey&) = default;
};
struct RevokeKey {
  std::string id;
  std::string reason;
  friend bool operator==(const RevokeKey&, const RevokeKey&) = default;
};
// A request authenticated with the key (at the record's time).
struct KeyUsed {
  std::string id;
  friend bool operator==(const KeyUsed&, const KeyUsed&) = default;
};
// A signed write's nonce, taken before the write is (request_signing.h).
struct UseNonce {
  std::string key_id;
  std::string nonce;
  int64_t t = 0;  // the signature's unix seconds
  friend bool operator==(const UseNonce&, const UseNonce&) = default;
};
}  // namespace cmd

using Command = std::variant<cmd::CreateKey, cmd::RevokeKey, cmd::KeyUsed, cmd::UseNonce>;

void encode_command(const Command& c, std::string* out);
// Fails on bytes this version did not write (unknown kind or role, bad lengths, trailing bytes).
Status decode_command(std::string_view bytes, Command* out);

// Why the key ring refused a command. The state is unchanged on anything but ok.
enum class Result : uint8_t {
  ok = 0,
  key_exists,       // create_key: the id is taken (ids are random: a retried command)
  key_not_found,    // revoke_key, key_used
  already_revoked,  // revoke_key
  key_invalid,      // create_key: bad id, an owner where the role takes none (or none where
                    // it needs one), a label too long or not printable; revoke: reason too long
  too_many_keys,    // create_key beyond kKeysMax
  nonce_reused,     // use_nonce: this key signed a request with this nonce before
  too_many_nonces,  // use_nonce: kNoncesMax nonces within kNonceKeepS
};
[[nodiscard]] std::string_view result_name(Result r);

// The API keys: a pure state machine (no I/O, no clock: time comes from the command's record).
// Keys are never deleted; a revoked key stays, for the audit trail, and never works again.
//
// Thread: the engine's writer applies commands; the engine publishes an immutable copy after
// each durable change, which the API threads read (api/auth.h).
class KeyRing {
 public:
  Result apply(const Command& c, Timestamp now);

  [[nodiscard]] const ApiKey* find(std::string_view id) const;
  [[nodiscard]] const std::map<std::string, ApiKey, std::less<>>& keys() const { return keys_; }
  [[nodiscard]] bool empty() const { return keys_.empty(); }
  [[nodiscard]] size_t nonces() const { return nonces_.size(); }
  // A copy of the keys without the nonces: what authentication reads (O(keys), not O(nonces)).
  [[nodiscard]] KeyRing keys_only() const;

  // Canonical encoding (snapshot part); decode refuses anything else.
  void encode(std::string* out) const;
  static Status decode(std::string_view bytes, KeyRing* out);
  // The keys' part of the engine's state hash: every field but last_used, and not the nonces
  // (bookkeeping that each signed request moves; operator== covers them).
  [[nodiscard]] uint64_t state_hash() const;

  friend bool operator==(const KeyRing&, const KeyRing&) = default;

 private:
  Result use_nonce(const cmd::UseNonce& n, Timestamp now);

  std::map<std::string, ApiKey, std::less<>> keys_;
  // Nonces of signed writes: (key id, nonce) for lookup, and by signature time for expiry.
  std::set<std::pair<std::string, std::string>> nonces_;
  std::multimap<int64_t, std::pair<std::string, std::string>> nonces_by_time_;
};

}  // namespace keel::security
