#pragma once

#include <cstdint>
#include <map>
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

// The key ring's commands, journaled as engine RecordType::security. Values of CommandKind are
// on disk and are the body's index + 1: never renumber, only append.
enum class CommandKind : uint8_t {
  create_key = 1,
  revoke_key = 2,
  key_used = 3,
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
}  // namespace cmd

using Command = std::variant<cmd::CreateKey, cmd::RevokeKey, cmd::KeyUsed>;

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

  // Canonical encoding (snapshot part); decode refuses anything else.
  void encode(std::string* out) const;
  static Status decode(std::string_view bytes, KeyRing* out);
  [[nodiscard]] uint64_t state_hash() const;

  friend bool operator==(const KeyRing&, const KeyRing&) = default;

 private:
  std::map<std::string, ApiKey, std::less<>> keys_;
};

}  // namespace keel::security
