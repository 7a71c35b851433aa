#include "vault/vault.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "core/assert.h"

namespace keel::vault {

Vault::Vault(VaultOptions options)
    : options_(std::move(options)), keys_(std::make_shared<const MasterKeys>(options_.keys)) {}

std::shared_ptr<const MasterKeys> Vault::keys() const {
  std::lock_guard lock(mu_);
  return keys_;
}

Vault::Prepared Vault::prepare(std::string id, std::string_view number, int exp_month, int exp_year,
                               OwnerKind owner_kind, std::string owner_id, std::string_view cvc,
                               Timestamp now) const {
  Prepared out;
  CardCheck check = check_card(number, exp_month, exp_year, cvc, now);
  if (check.problem != CardProblem::none) {
    out.problem = check.problem;
    return out;
  }
  const std::shared_ptr<const MasterKeys> k = keys();
  PaymentMethod& m = out.method;
  m.id = std::move(id);
  m.owner_kind = owner_kind;
  m.owner_id = std::move(owner_id);
  m.brand = check.brand;
  m.country = options_.bins.country_of(check.digits);
  m.last4 = check.digits.substr(check.digits.size() - 4);
  m.exp_month = static_cast<uint8_t>(exp_month);
  m.exp_year = static_cast<uint16_t>(exp_year);
  m.fingerprint = card_fingerprint(*k, check.digits);
  m.created_at = now;
  m.sealed = seal(*k, m.id, check.digits, options_.random);
  OPENSSL_cleanse(check.digits.data(), check.digits.size());
  prepared_.fetch_add(1, std::memory_order_relaxed);
  return out;
}

void Vault::expire_cvcs(Timestamp now) {
  for (auto it = cvcs_.begin(); it != cvcs_.end();) {
    if (it->second.expires_at <= now) {
      OPENSSL_cleanse(it->second.cvc.data(), it->second.cvc.size());
      it = cvcs_.erase(it);
    } else {
      ++it;
    }
  }
}

void Vault::hold_cvc(const std::string& id, std::string cvc, Timestamp now) {
  if (cvc.empty() || options_.cvcs_max == 0) return;
  std::lock_guard lock(mu_);
  expire_cvcs(now);
  while (cvcs_.size() >= options_.cvcs_max) {
    auto oldest = std::min_element(cvcs_.begin(), cvcs_.end(), [](const auto& a, const auto& b) {
      return a.second.expires_at < b.second.expires_at;
    });
    OPENSSL_cleanse(oldest->second.cvc.data(), oldest->second.cvc.size());
    cvcs_.erase(oldest);
  }
  cvcs_.insert_or_assign(id, HeldCvc{std::move(cvc), now + options_.cvc_ttl_ns});
}

void Vault::forget_cvc(std::string_view id) {
  std::lock_guard lock(mu_);
  if (const auto it = cvcs_.find(id); it != cvcs_.end()) {
    OPENSSL_cleanse(it->second.cvc.data(), it->second.cvc.size());
    cvcs_.erase(it);
  }
}

Status Vault::open(const PaymentMethod& method, Timestamp now, OpenCard* out) {
  const std::shared_ptr<const MasterKeys> k = keys();
  std::string number;
  if (Status s = vault::open(*k, method.id, method.sealed, &number); !s.is_ok()) {
    decryption_failures_.fetch_add(1, std::memory_order_relaxed);
    return s;
  }
  decryptions_.fetch_add(1, std::memory_order_relaxed);
  out->number = std::move(number);
  out->exp_month = method.exp_month;
  out->exp_year = method.exp_year;
  out->cvc.clear();
  std::lock_guard lock(mu_);
  expire_cvcs(now);
  if (const auto it = cvcs_.find(method.id); it != cvcs_.end()) out->cvc = it->second.cvc;
  return Status::ok();
}

std::string Vault::keyed_digest(std::string_view bytes) const {
  return fingerprint_key_hex(*keys(), bytes, 32);
}

std::string Vault::seal_record(std::string_view record_id, std::string_view secret) const {
  return seal_secret(*keys(), record_id, secret, options_.random);
}

Status Vault::open_record(std::string_view record_id, std::string_view stored,
                          std::string* secret) const {
  if (!is_sealed_secret(stored)) return Status::error("vault: the record is not sealed");
  return open_secret(*keys(), record_id, stored, secret);
}

Status Vault::reseal_record(std::string_view record_id, std::string_view stored, std::string* out,
                            bool* moved) const {
  const std::shared_ptr<const MasterKeys> k = keys();
  *moved = sealed_secret_version(stored) != k->active_version();
  if (!*moved) {
    *out = std::string(stored);
    return Status::ok();
  }
  return reseal_secret(*k, record_id, stored, k->active_version(), options_.random, out);
}

std::string Vault::seal_webhook_secret(std::string_view merchant_id,
                                       std::string_view secret) const {
  return seal_secret(*keys(), webhook_secret_record(merchant_id), secret, options_.random);
}

Status Vault::open_webhook_secret(std::string_view merchant_id, std::string_view stored,
                                  std::string* secret) {
  if (Status s = open_secret(*keys(), webhook_secret_record(merchant_id), stored, secret);
      !s.is_ok()) {
    decryption_failures_.fetch_add(1, std::memory_order_relaxed);
    return s;
  }
  if (is_sealed_secret(stored)) secrets_opened_.fetch_add(1, std::memory_order_relaxed);
  return Status::ok();
}

Status Vault::reseal_webhook_secrets(const std::vector<std::pair<std::string, std::string>>& stored,
                                     std::vector<SecretReseal>* out) const {
  const std::shared_ptr<const MasterKeys> k = keys();
  const uint32_t to = k->active_version();
  for (const auto& [merchant, bytes] : stored) {
    if (sealed_secret_version(bytes) == to) continue;
    SecretReseal r{merchant, bytes, {}};
    if (Status s =
            reseal_secret(*k, webhook_secret_record(merchant), bytes, to, options_.random, &r.to);
        !s.is_ok()) {
      return s;
    }
    out->push_back(std::move(r));
  }
  return Status::ok();
}

Status Vault::check_secret_versions(const std::map<uint32_t, uint64_t>& in_use) const {
  std::map<uint32_t, uint64_t> sealed = in_use;
  sealed.erase(0);
  return check_versions(sealed, "merchant webhook secrets");
}

Status Vault::add_key(uint32_t* version) {
  if (options_.key_file.empty()) {
    return Status::error(
        "the vault's keys come from the environment: add a `key N+1` entry there and restart "
        "keeld, then rotate");
  }
  std::lock_guard lock(mu_);  // one rotation at a time
  uint32_t added = 0;
  if (Status s = add_master_key(options_.key_file, options_.random, &added); !s.is_ok()) {
    return s;
  }
  MasterKeys next;
  if (Status s = MasterKeys::load(options_.key_file, &next); !s.is_ok()) return s;
  if (next.fingerprint_key() != keys_->fingerprint_key() || next.active_version() != added) {
    return Status::error("the vault key file changed under keeld during the rotation");
  }
  keys_ = std::make_shared<const MasterKeys>(std::move(next));
  *version = added;
  return Status::ok();
}

Status Vault::rewrap(const std::vector<std::shared_ptr<const PaymentMethod>>& methods,
                     std::vector<Rewrap>* out) const {
  const std::shared_ptr<const MasterKeys> k = keys();
  const uint32_t to = k->active_version();
  for (const auto& m : methods) {
    if (m->sealed.key_version == to) continue;
    Rewrap r{m->id, m->sealed.key_version, to, {}};
    if (Status s = vault::rewrap(*k, m->id, m->sealed, to, options_.random, &r.wrapped_key);
        !s.is_ok()) {
      return s;
    }
    out->push_back(std::move(r));
  }
  return Status::ok();
}

uint32_t Vault::active_version() const { return keys()->active_version(); }

std::vector<uint32_t> Vault::versions() const { return keys()->versions(); }

Status Vault::check_versions(const std::map<uint32_t, uint64_t>& in_use,
                             std::string_view what) const {
  const std::shared_ptr<const MasterKeys> k = keys();
  for (const auto& [version, count] : in_use) {
    if (k->key(version) == nullptr) {
      return Status::error("the vault keys lack master key version " + std::to_string(version) +
                           ", which " + std::to_string(count) + " " + std::string(what) +
                           " need: restore it (a rotation moves cards off a "
                           "version before its line may be deleted)");
    }
  }
  return Status::ok();
}

Vault::Stats Vault::stats() const {
  Stats s;
  s.decryptions = decryptions_.load(std::memory_order_relaxed);
  s.decryption_failures = decryption_failures_.load(std::memory_order_relaxed);
  s.secrets_opened = secrets_opened_.load(std::memory_order_relaxed);
  s.cards_stored_by_api = prepared_.load(std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  s.cvcs_held = cvcs_.size();
  return s;
}

}  // namespace keel::vault
