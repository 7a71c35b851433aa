#include "vault/payment_methods.h"

#include <algorithm>

#include "core/assert.h"
#include "core/ids.h"

namespace keel::vault {
namespace {

constexpr size_t kPaymentMethodIdLength = 3 + 24;

bool digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool envelope_shaped(const Envelope& e) {
  return e.key_version != 0 && e.wrapped_key.size() == kWrappedKeyBytes &&
         e.ciphertext.size() >= kNonceBytes + 12 + kTagBytes &&
         e.ciphertext.size() <= kNonceBytes + 19 + kTagBytes;
}

}  // namespace

bool well_formed(const PaymentMethod& m) {
  const bool country_ok =
      m.country.empty() || (m.country.size() == 2 && m.country[0] >= 'A' && m.country[0] <= 'Z' &&
                            m.country[1] >= 'A' && m.country[1] <= 'Z');
  return m.id.size() == kPaymentMethodIdLength && m.id.starts_with(kPaymentMethodPrefix) &&
         is_valid_id(m.id) && is_valid_id(m.owner_id) && m.owner_kind <= OwnerKind::customer &&
         m.brand <= kCardBrandLast && country_ok && m.last4.size() == 4 && digits(m.last4) &&
         m.exp_month >= 1 && m.exp_month <= 12 && m.exp_year >= 2000 && m.exp_year <= 2099 &&
         m.fingerprint.size() == 3 + 32 && m.fingerprint.starts_with("fp_") &&
         envelope_shaped(m.sealed);
}

StoreResult PaymentMethods::store(PaymentMethod method) {
  if (!well_formed(method)) return StoreResult::invalid;
  if (methods_.contains(method.id)) return StoreResult::exists;
  std::string id = method.id;
  methods_.emplace(std::move(id), std::make_shared<const PaymentMethod>(std::move(method)));
  return StoreResult::stored;
}

size_t PaymentMethods::rewrap(const std::vector<Rewrap>& rewraps) {
  size_t applied = 0;
  for (const Rewrap& r : rewraps) {
    const auto it = methods_.find(r.id);
    if (it == methods_.end() || it->second->sealed.key_version != r.from_version ||
        r.to_version == 0 || r.wrapped_key.size() != kWrappedKeyBytes) {
      continue;
    }
    auto next = std::make_shared<PaymentMethod>(*it->second);
    next->sealed.key_version = r.to_version;
    next->sealed.wrapped_key = r.wrapped_key;
    it->second = std::move(next);
    ++applied;
  }
  KEEL_ASSERT(applied <= rewraps.size());
  return applied;
}

std::vector<std::string> PaymentMethods::owned_by(OwnerKind kind, std::string_view owner_id) const {
  std::vector<std::string> out;
  for (const auto& [id, m] : methods_) {
    if (m->owner_kind == kind && m->owner_id == owner_id) out.push_back(id);
  }
  return out;
}

bool PaymentMethods::erase(std::string_view id) {
  const auto it = methods_.find(id);
  if (it == methods_.end()) return false;
  methods_.erase(it);
  return true;
}

std::shared_ptr<const PaymentMethod> PaymentMethods::find(std::string_view id) const {
  const auto it = methods_.find(id);
  return it == methods_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const PaymentMethod>> PaymentMethods::not_under(uint32_t version,
                                                                            std::string_view after,
                                                                            size_t limit) const {
  std::vector<std::shared_ptr<const PaymentMethod>> out;
  for (auto it = methods_.upper_bound(after); it != methods_.end() && out.size() < limit; ++it) {
    if (it->second->sealed.key_version != version) out.push_back(it->second);
  }
  return out;
}

std::map<uint32_t, uint64_t> PaymentMethods::by_key_version() const {
  std::map<uint32_t, uint64_t> out;
  for (const auto& [id, m] : methods_) ++out[m->sealed.key_version];
  return out;
}

void encode_payment_method(ByteWriter& w, const PaymentMethod& m) {
  w.str16(m.id);
  w.u8(static_cast<uint8_t>(m.owner_kind));
  w.str16(m.owner_id);
  w.u8(static_cast<uint8_t>(m.brand));
  w.str16(m.country);
  w.str16(m.last4);
  w.u8(m.exp_month);
  w.u16(m.exp_year);
  w.str16(m.fingerprint);
  w.i64(m.created_at);
  w.u32(m.sealed.key_version);
  w.str16(m.sealed.wrapped_key);
  w.str16(m.sealed.ciphertext);
}

bool decode_payment_method(ByteReader& r, PaymentMethod* m) {
  uint8_t owner = 0;
  uint8_t brand = 0;
  if (!r.str16(&m->id) || !r.u8(&owner) || !r.str16(&m->owner_id) || !r.u8(&brand) ||
      !r.str16(&m->country) || !r.str16(&m->last4) || !r.u8(&m->exp_month) ||
      !r.u16(&m->exp_year) || !r.str16(&m->fingerprint) || !r.i64(&m->created_at) ||
      !r.u32(&m->sealed.key_version) || !r.str16(&m->sealed.wrapped_key) ||
      !r.str16(&m->sealed.ciphertext)) {
    return false;
  }
  if (owner > static_cast<uint8_t>(OwnerKind::customer) ||
      brand > static_cast<uint8_t>(kCardBrandLast)) {
    return false;
  }
  m->owner_kind = static_cast<OwnerKind>(owner);
  m->brand = static_cast<CardBrand>(brand);
  return well_formed(*m);
}

void encode_rewrap(ByteWriter& w, const Rewrap& r) {
  w.str16(r.id);
  w.u32(r.from_version);
  w.u32(r.to_version);
  w.str16(r.wrapped_key);
}

bool decode_rewrap(ByteReader& r, Rewrap* out) {
  return r.str16(&out->id) && r.u32(&out->from_version) && r.u32(&out->to_version) &&
         r.str16(&out->wrapped_key);
}

void PaymentMethods::encode(ByteWriter& w) const {
  w.u64(methods_.size());
  for (const auto& [id, m] : methods_) encode_payment_method(w, *m);
}

Status PaymentMethods::decode(ByteReader& r, PaymentMethods* out) {
  PaymentMethods methods;
  uint64_t n = 0;
  if (!r.u64(&n) || n > r.remaining()) return Status::error("vault: malformed payment methods");
  for (uint64_t i = 0; i < n; ++i) {
    PaymentMethod m;
    if (!decode_payment_method(r, &m) || methods.store(std::move(m)) != StoreResult::stored) {
      return Status::error("vault: malformed payment method");
    }
  }
  *out = std::move(methods);
  return Status::ok();
}

}  // namespace keel::vault
