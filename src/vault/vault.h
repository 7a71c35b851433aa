#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/time.h"
#include "vault/bin_table.h"
#include "vault/card.h"
#include "vault/envelope.h"
#include "vault/keys.h"
#include "vault/payment_methods.h"
#include "vault/sealed_secret.h"

namespace keel::vault {

// keeld's card vault (docs/security.md, "The card vault"): the master keys and the BIN table in
// memory, the CVCs awaiting their first authorization, and the two places a card number is
// ever in clear: prepare() at the API edge (the number arrives, leaves sealed) and open() on
// the connector path (sealed in, the number goes into the PSP's request and nowhere else).
//
// Thread: every method may be called from any thread (one mutex; none of them does I/O except
// add_key()).
struct VaultOptions {
  MasterKeys keys;
  BinTable bins;
  // The key file `keys` came from; empty when they came from the environment (then
  // add_key() fails: a new version arrives with a restart).
  std::string key_file;
  RandomFill random = system_random;
  // A CVC is held in memory only, until its payment method's first authorization settles or
  // this long has passed; then authorizations go out without one.
  int64_t cvc_ttl_ns = 10 * 60 * kNanosPerSecond;
  size_t cvcs_max = 100'000;  // beyond it the oldest CVC is dropped first
};

// A card ready for the PSP's request: in clear, for the call only.
struct OpenCard {
  std::string number;
  int exp_month = 0;
  int exp_year = 0;
  std::string cvc;  // empty: none held (after a restart, ten minutes, or a first attempt)
};

class Vault {
 public:
  explicit Vault(VaultOptions options);

  // Checks a card and seals it into a new payment method `id` owned by (owner_kind, owner_id)
  // as of `now`. On a problem the method is untouched and nothing was kept.
  struct Prepared {
    CardProblem problem = CardProblem::none;
    PaymentMethod method;
  };
  [[nodiscard]] Prepared prepare(std::string id, std::string_view number, int exp_month,
                                 int exp_year, OwnerKind owner_kind, std::string owner_id,
                                 std::string_view cvc, Timestamp now) const;
  // Holds the CVC of a stored method (after its command is durable), until forget_cvc() or
  // the ttl. An empty CVC holds nothing.
  void hold_cvc(const std::string& id, std::string cvc, Timestamp now);
  // The first authorization of the method settled (approved or declined): its CVC is dropped.
  void forget_cvc(std::string_view id);

  // Decrypts `method` for one PSP call (`purpose`: the attempt id, logged by the caller);
  // counted. Fails when the master key version is gone or the bytes were changed.
  [[nodiscard]] Status open(const PaymentMethod& method, Timestamp now, OpenCard* out);

  // Merchant webhook secrets: sealed at the API edge before any command holds them, opened
  // where a delivery is signed (counted apart from cards). A stored secret in clear (data from
  // before the vault) opens as itself.
  [[nodiscard]] std::string seal_webhook_secret(std::string_view merchant_id,
                                                std::string_view secret) const;
  [[nodiscard]] Status open_webhook_secret(std::string_view merchant_id, std::string_view stored,
                                           std::string* secret);
  // The re-seals that put stored (merchant, bytes) secrets under the active version, those in
  // clear included; secrets already there are skipped.
  [[nodiscard]] Status reseal_webhook_secrets(
      const std::vector<std::pair<std::string, std::string>>& stored,
      std::vector<SecretReseal>* out) const;
  // Fails naming a master key version some stored webhook secret needs and the keys lack
  // (version 0, secrets in clear, needs none).
  [[nodiscard]] Status check_secret_versions(const std::map<uint32_t, uint64_t>& in_use) const;

  // A secret of keel's own bound to `record_id` (a customer's personal data key,
  // personal_data.h): sealed and opened under the master keys as a webhook secret is, not
  // counted. reseal_record() puts sealed bytes under the active version; `*moved` false: they
  // were there already (`*out` is `stored`).
  [[nodiscard]] std::string seal_record(std::string_view record_id, std::string_view secret) const;
  [[nodiscard]] Status open_record(std::string_view record_id, std::string_view stored,
                                   std::string* secret) const;
  [[nodiscard]] Status reseal_record(std::string_view record_id, std::string_view stored,
                                     std::string* out, bool* moved) const;
  // The injected randomness (nonces and keys of what uses the vault's keys).
  [[nodiscard]] const RandomFill& random() const { return options_.random; }

  // A digest of `bytes` under the fingerprint key: what stands for a request that carries a
  // card number wherever a hash of the request is kept (idempotency fingerprints), since a
  // plain hash of a card number can be reversed by trying every number.
  [[nodiscard]] std::string keyed_digest(std::string_view bytes) const;

  // Rotation: adds a new master key version to the key file and loads it (it becomes the
  // active version); then rewrap() moves data keys onto the active version.
  [[nodiscard]] Status add_key(uint32_t* version);
  [[nodiscard]] Status rewrap(const std::vector<std::shared_ptr<const PaymentMethod>>& methods,
                              std::vector<Rewrap>* out) const;
  [[nodiscard]] uint32_t active_version() const;
  [[nodiscard]] std::vector<uint32_t> versions() const;
  // Fails naming a version that some stored method uses and the keys lack (keeld refuses to
  // start: those cards could never be charged).
  [[nodiscard]] Status check_versions(const std::map<uint32_t, uint64_t>& in_use,
                                      std::string_view what = "stored cards") const;

  struct Stats {
    uint64_t decryptions = 0;
    uint64_t decryption_failures = 0;
    uint64_t cards_stored_by_api = 0;  // prepare() successes
    uint64_t cvcs_held = 0;
    uint64_t secrets_opened = 0;  // webhook secrets opened to sign a delivery
  };
  [[nodiscard]] Stats stats() const;

 private:
  [[nodiscard]] std::shared_ptr<const MasterKeys> keys() const;
  void expire_cvcs(Timestamp now);  // REQUIRES: mu_ held

  const VaultOptions options_;
  mutable std::mutex mu_;
  std::shared_ptr<const MasterKeys> keys_;
  struct HeldCvc {
    std::string cvc;
    Timestamp expires_at = 0;
  };
  std::map<std::string, HeldCvc, std::less<>> cvcs_;
  std::atomic<uint64_t> decryptions_{0};
  std::atomic<uint64_t> decryption_failures_{0};
  std::atomic<uint64_t> secrets_opened_{0};
  mutable std::atomic<uint64_t> prepared_{0};
};

}  // namespace keel::vault
