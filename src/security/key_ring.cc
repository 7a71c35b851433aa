#include "security/key_ring.h"

#include <array>

#include "core/assert.h"
#include "core/codec.h"
#include "core/hash.h"
#include "core/ids.h"

namespace keel::security {
namespace {

constexpr uint8_t kCommandVersion = 1;
// 1: the keys, then the nonces of signed writes.
constexpr uint8_t kRingVersion = 1;

constexpr std::array<std::string_view, 8> kResultNames = {
    "ok",          "key_exists",    "key_not_found", "already_revoked",
    "key_invalid", "too_many_keys", "nonce_reused",  "too_many_nonces"};
static_assert(kResultNames.size() == static_cast<size_t>(Result::too_many_nonces) + 1);

bool printable(std::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// Merchant and customer ids: what the payments core takes (1..40 of [A-Za-z0-9_-]).
bool valid_owner(std::string_view s) {
  if (s.empty() || s.size() > 40 || !is_valid_id(s)) return false;
  return s.find_first_of(".:") == std::string_view::npos;
}

void write_digest(ByteWriter& w, const Digest& d) { w.raw(d.data(), d.size()); }

bool read_digest(ByteReader& r, Digest* d) {
  std::string_view bytes;
  if (!r.raw(&bytes, d->size())) return false;
  std::copy(bytes.begin(), bytes.end(), d->begin());
  return true;
}

void write_key(ByteWriter& w, const ApiKey& k) {
  w.str16(k.id);
  w.u8(static_cast<uint8_t>(k.role));
  w.str16(k.owner);
  write_digest(w, k.hash);
  w.str16(k.label);
  w.i64(k.created);
  w.i64(k.last_used);
  w.i64(k.revoked);
  w.str16(k.revoked_reason);
}

bool read_key(ByteReader& r, ApiKey* k) {
  return r.str16(&k->id) && read_enum(r, kRoleLast, &k->role) && r.str16(&k->owner) &&
         read_digest(r, &k->hash) && r.str16(&k->label) && r.i64(&k->created) &&
         r.i64(&k->last_used) && r.i64(&k->revoked) && r.str16(&k->revoked_reason);
}

}  // namespace

std::string_view result_name(Result r) { return kResultNames[static_cast<size_t>(r)]; }

void encode_command(const Command& c, std::string* out) {
  ByteWriter w(out);
  w.u8(kCommandVersion);
  w.u8(static_cast<uint8_t>(c.index() + 1));
  if (const auto* k = std::get_if<cmd::CreateKey>(&c)) {
    w.str16(k->id);
    w.u8(static_cast<uint8_t>(k->role));
    w.str16(k->owner);
    write_digest(w, k->hash);
    w.str16(k->label);
  } else if (const auto* k = std::get_if<cmd::RevokeKey>(&c)) {
    w.str16(k->id);
    w.str16(k->reason);
  } else if (const auto* k = std::get_if<cmd::KeyUsed>(&c)) {
    w.str16(k->id);
  } else if (const auto* n = std::get_if<cmd::UseNonce>(&c)) {
    w.str16(n->key_id);
    w.str16(n->nonce);
    w.i64(n->t);
  }
}

Status decode_command(std::string_view bytes, Command* out) {
  ByteReader r(bytes);
  uint8_t version = 0;
  uint8_t kind = 0;
  if (!r.u8(&version) || version != kCommandVersion || !r.u8(&kind)) {
    return Status::error("security command: unknown version");
  }
  bool ok = false;
  switch (static_cast<CommandKind>(kind)) {
    case CommandKind::create_key: {
      cmd::CreateKey k;
      ok = r.str16(&k.id) && read_enum(r, kRoleLast, &k.role) && r.str16(&k.owner) &&
           read_digest(r, &k.hash) && r.str16(&k.label);
      *out = std::move(k);
      break;
    }
    case CommandKind::revoke_key: {
      cmd::RevokeKey k;
      ok = r.str16(&k.id) && r.str16(&k.reason);
      *out = std::move(k);
      break;
    }
    case CommandKind::key_used: {
      cmd::KeyUsed k;
      ok = r.str16(&k.id);
      *out = std::move(k);
      break;
    }
    case CommandKind::use_nonce: {
      cmd::UseNonce n;
      ok = r.str16(&n.key_id) && r.str16(&n.nonce) && r.i64(&n.t);
      *out = std::move(n);
      break;
    }
    default:
      return Status::error("security command: unknown kind " + std::to_string(kind));
  }
  if (!ok || !r.at_end()) return Status::error("security command: malformed");
  return Status::ok();
}

Result KeyRing::apply(const Command& c, Timestamp now) {
  KEEL_ASSERT(now > 0);
  if (const auto* k = std::get_if<cmd::CreateKey>(&c)) {
    if (!is_valid_key_id(k->id) || role_has_owner(k->role) != !k->owner.empty() ||
        (!k->owner.empty() && !valid_owner(k->owner)) || k->label.size() > kKeyLabelLengthMax ||
        !printable(k->label)) {
      return Result::key_invalid;
    }
    if (keys_.contains(k->id)) return Result::key_exists;
    if (keys_.size() >= kKeysMax) return Result::too_many_keys;
    ApiKey key;
    key.id = k->id;
    key.role = k->role;
    key.owner = k->owner;
    key.hash = k->hash;
    key.label = k->label;
    key.created = now;
    keys_.emplace(key.id, std::move(key));
    return Result::ok;
  }
  if (const auto* k = std::get_if<cmd::RevokeKey>(&c)) {
    if (k->reason.size() > kRevokeReasonLengthMax || !printable(k->reason)) {
      return Result::key_invalid;
    }
    const auto it = keys_.find(k->id);
    if (it == keys_.end()) return Result::key_not_found;
    if (!it->second.active()) return Result::already_revoked;
    it->second.revoked = now;
    it->second.revoked_reason = k->reason;
    KEEL_ASSERT(!it->second.active());
    return Result::ok;
  }
  if (const auto* n = std::get_if<cmd::UseNonce>(&c)) return use_nonce(*n, now);
  const auto& used = std::get<cmd::KeyUsed>(c);
  const auto it = keys_.find(used.id);
  if (it == keys_.end()) return Result::key_not_found;
  it->second.last_used = std::max(it->second.last_used, now);
  return Result::ok;
}

Result KeyRing::use_nonce(const cmd::UseNonce& n, Timestamp now) {
  // Forget what no signature can reuse any more: its t is far outside the allowed skew.
  const int64_t cutoff_s = now / 1'000'000'000 - kNonceKeepS;
  while (!nonces_by_time_.empty() && nonces_by_time_.begin()->first < cutoff_s) {
    nonces_.erase(nonces_by_time_.begin()->second);
    nonces_by_time_.erase(nonces_by_time_.begin());
  }
  if (!keys_.contains(n.key_id)) return Result::key_not_found;
  if (n.nonce.empty() || n.nonce.size() > 64 || !printable(n.nonce)) return Result::key_invalid;
  auto entry = std::make_pair(n.key_id, n.nonce);
  if (nonces_.contains(entry)) return Result::nonce_reused;
  if (nonces_.size() >= kNoncesMax) return Result::too_many_nonces;
  nonces_by_time_.emplace(n.t, entry);
  nonces_.insert(std::move(entry));
  KEEL_ASSERT(nonces_.size() == nonces_by_time_.size());
  return Result::ok;
}

KeyRing KeyRing::keys_only() const {
  KeyRing out;
  out.keys_ = keys_;
  return out;
}

const ApiKey* KeyRing::find(std::string_view id) const {
  const auto it = keys_.find(id);
  return it == keys_.end() ? nullptr : &it->second;
}

void KeyRing::encode(std::string* out) const {
  ByteWriter w(out);
  w.u8(kRingVersion);
  w.u32(static_cast<uint32_t>(keys_.size()));
  for (const auto& [id, key] : keys_) write_key(w, key);
  w.u32(static_cast<uint32_t>(nonces_by_time_.size()));
  for (const auto& [t, entry] : nonces_by_time_) {  // by time, then as they came
    w.i64(t);
    w.str16(entry.first);
    w.str16(entry.second);
  }
}

Status KeyRing::decode(std::string_view bytes, KeyRing* out) {
  ByteReader r(bytes);
  uint8_t version = 0;
  uint32_t n = 0;
  if (!r.u8(&version) || version != kRingVersion || !r.u32(&n) || n > kKeysMax) {
    return Status::error("key ring: unknown version or bad count");
  }
  KeyRing ring;
  for (uint32_t i = 0; i < n; ++i) {
    ApiKey k;
    if (!read_key(r, &k) || !is_valid_key_id(k.id)) return Status::error("key ring: bad key");
    const std::string id = k.id;
    if (!ring.keys_.emplace(id, std::move(k)).second) {
      return Status::error("key ring: key " + id + " twice");
    }
  }
  if (!r.u32(&n) || n > kNoncesMax) return Status::error("key ring: bad nonce count");
  for (uint32_t i = 0; i < n; ++i) {
    int64_t t = 0;
    std::pair<std::string, std::string> entry;
    if (!r.i64(&t) || !r.str16(&entry.first) || !r.str16(&entry.second) ||
        !ring.nonces_.insert(entry).second) {
      return Status::error("key ring: bad nonce");
    }
    ring.nonces_by_time_.emplace(t, std::move(entry));
  }
  if (!r.at_end()) return Status::error("key ring: trailing bytes");
  *out = std::move(ring);
  return Status::ok();
}

uint64_t KeyRing::state_hash() const {
  // The keys as they are, but not when each was last used nor the nonces of signed writes:
  // bookkeeping that every signed request changes, which would make "this request changed
  // nothing" unprovable by the hash. Recovery keeps them all the same (operator==, tested).
  std::string bytes;
  ByteWriter w(&bytes);
  for (const auto& [id, key] : keys_) {
    ApiKey k = key;
    k.last_used = 0;
    write_key(w, k);
  }
  StateHasher h;
  h.bytes(bytes);
  return h.finish();
}

}  // namespace keel::security
