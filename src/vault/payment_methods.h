#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "core/time.h"
#include "vault/card.h"
#include "vault/envelope.h"

namespace keel::vault {

// The stored cards (docs/security.md, "The card vault"): the journaled, replayed part of the
// vault, owned by the payments core and changed only by its commands (store_payment_method,
// rewrap_payment_methods). It holds ciphertext and what may be shown (brand, country, last 4,
// expiry, fingerprint), never a card number or a CVC: those are encrypted at the API edge
// before the command exists. Single-threaded (the engine's writer).

// Who may use a payment method: the merchant or the customer whose key stored it.
enum class OwnerKind : uint8_t { merchant = 0, customer = 1 };

inline constexpr std::string_view kPaymentMethodPrefix = "pm_";

struct PaymentMethod {
  std::string id;  // "pm_" + 24 hex digits
  OwnerKind owner_kind = OwnerKind::merchant;
  std::string owner_id;
  CardBrand brand = CardBrand::visa;
  std::string country;  // issuing country from the BIN file, "" when unknown
  std::string last4;
  uint8_t exp_month = 0;
  uint16_t exp_year = 0;
  std::string fingerprint;  // card_fingerprint()
  Timestamp created_at = 0;
  Envelope sealed;  // the card number
  friend bool operator==(const PaymentMethod&, const PaymentMethod&) = default;
};

// One data key moved to another master key version (a rotation's step). Applies only while the
// method is still under `from_version`: a stale re-wrap changes nothing.
struct Rewrap {
  std::string id;
  uint32_t from_version = 0;
  uint32_t to_version = 0;
  std::string wrapped_key;
  friend bool operator==(const Rewrap&, const Rewrap&) = default;
};

enum class StoreResult : uint8_t { stored, exists, invalid };

class PaymentMethods {
 public:
  // Adds a method; `invalid` when a field breaks the record's shape (the API checked it: a
  // command that breaks it is a bug or a forged journal), `exists` when the id is taken.
  StoreResult store(PaymentMethod method);
  // Applies each re-wrap that still matches; returns how many did.
  size_t rewrap(const std::vector<Rewrap>& rewraps);
  // Removes a method (a detach); false when there is none with this id.
  bool erase(std::string_view id);
  // The ids of the methods of one owner, in id order (O(methods): erasing a customer).
  [[nodiscard]] std::vector<std::string> owned_by(OwnerKind kind, std::string_view owner_id) const;

  [[nodiscard]] std::shared_ptr<const PaymentMethod> find(std::string_view id) const;
  // Up to `limit` methods whose data key is not under `version`, in id order after `after`.
  [[nodiscard]] std::vector<std::shared_ptr<const PaymentMethod>> not_under(uint32_t version,
                                                                            std::string_view after,
                                                                            size_t limit) const;
  // How many methods each master key version wraps.
  [[nodiscard]] std::map<uint32_t, uint64_t> by_key_version() const;
  [[nodiscard]] size_t size() const { return methods_.size(); }
  [[nodiscard]] bool empty() const { return methods_.empty(); }

  void encode(ByteWriter& w) const;
  [[nodiscard]] static Status decode(ByteReader& r, PaymentMethods* out);

 private:
  std::map<std::string, std::shared_ptr<const PaymentMethod>, std::less<>> methods_;
};

// Whether the record's fields have their shapes (ids, lengths, the envelope's sizes).
[[nodiscard]] bool well_formed(const PaymentMethod& m);
void encode_payment_method(ByteWriter& w, const PaymentMethod& m);
[[nodiscard]] bool decode_payment_method(ByteReader& r, PaymentMethod* m);
void encode_rewrap(ByteWriter& w, const Rewrap& r);
[[nodiscard]] bool decode_rewrap(ByteReader& r, Rewrap* out);

}  // namespace keel::vault
