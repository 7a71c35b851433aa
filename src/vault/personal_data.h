#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/ids.h"
#include "core/status.h"
#include "vault/keys.h"

namespace keel::vault {

class Vault;

// Personal data under its customer's own key (docs/security.md, "Personal data and erasure"):
// a customer's name, a top-up's source and a payout's destination are sealed at the API edge,
// before any command holds them, with AES-256-GCM under a random 256-bit key of that customer.
// The journal, the snapshots, the history store and every backup of them hold only the sealed
// text. Erasing the customer deletes the key, and with it every copy of their personal data,
// while the ledger's amounts stay.
//
// The sealed text: "pd1." then the hex of nonce (12 bytes) || ciphertext || tag (16 bytes),
// printable, so it fits the fields and JSON that held the clear value. The GCM additional data
// binds it to its record and field ("keel personal|payout_destination|po_..."): moved to another
// record or field, it fails to open. A value without the prefix is clear text written before
// sealing existed, and reads back as it is.
inline constexpr std::string_view kSealedPersonalPrefix = "pd1.";

// The length of the sealed text of `plaintext_bytes` bytes.
[[nodiscard]] constexpr size_t sealed_personal_length(size_t plaintext_bytes) {
  return kSealedPersonalPrefix.size() + 2 * (12 + plaintext_bytes + 16);
}
[[nodiscard]] bool is_sealed_personal(std::string_view text);

// Which field of which record a value is (the additional data).
inline constexpr std::string_view kCustomerNameField = "customer_name";
inline constexpr std::string_view kTopupSourceField = "topup_source";
inline constexpr std::string_view kPayoutDestinationField = "payout_destination";

// Whether a customer id can have a key: every customer id is a reference of at most 48 bytes
// (core/ids.h), so it names a file safely.
inline constexpr size_t kCustomerIdLengthMax = 48;
[[nodiscard]] constexpr bool valid_customer_key_id(std::string_view customer_id) {
  return is_valid_reference(customer_id, kCustomerIdLengthMax);
}

// Pure (randomness injected): thread-safe.
[[nodiscard]] std::string seal_personal(const Key& key, std::string_view field,
                                        std::string_view record_id, std::string_view plaintext,
                                        const RandomFill& random);
// Fails when `text` is not sealed text, or was sealed under another key, record or field.
[[nodiscard]] Status open_personal(const Key& key, std::string_view field,
                                   std::string_view record_id, std::string_view text,
                                   std::string* plaintext);

// The customers' keys: one file per customer in a directory of the data directory
// (DATA/customer-keys/{customer}.key, owner-only), holding the key sealed under the vault's
// master keys, so that the directory alone opens nothing. Never in the journal or a snapshot:
// a file can be deleted, a journal record cannot. Erasing a customer writes a tombstone
// ({customer}.erased) first, then overwrites and deletes the key file and syncs the directory;
// from then on the customer's sealed values open to nothing, and no new key is made for them.
//
// Keep the directory out of long-lived backups: a backup of it restores keys that were erased
// (docs/security.md says so).
//
// Thread: every method may be called from any thread (one mutex; get() and erase() do file I/O
// under it, a few small files per call).
struct CustomerKeysOptions {
  std::string dir;
  size_t cache_max = 4096;  // keys kept in memory; the whole cache is dropped past it
};

class CustomerKeys {
 public:
  // Creates `dir` (0700) when missing. `vault` outlives this.
  [[nodiscard]] static Status open(CustomerKeysOptions options, const Vault* vault,
                                   std::unique_ptr<CustomerKeys>* out);

  enum class Found : uint8_t { ok, missing, erased };
  // The customer's key. `create`: made and stored durably when missing (a customer id that is
  // not 1-48 bytes of [A-Za-z0-9_-] fails). Fails when a key file does not open.
  [[nodiscard]] Status get(std::string_view customer_id, bool create, Key* key, Found* found);

  // `plaintext` sealed under the customer's key (made when missing). `*found` erased: nothing
  // is sealed, the customer is gone.
  [[nodiscard]] Status seal(std::string_view customer_id, std::string_view field,
                            std::string_view record_id, std::string_view plaintext,
                            std::string* out, Found* found);
  // The clear value of a stored one: sealed text opened under the customer's key, anything else
  // (written before sealing) as it is. `*found` erased or missing: no key, `*out` empty.
  [[nodiscard]] Status open(std::string_view customer_id, std::string_view field,
                            std::string_view record_id, std::string_view stored, std::string* out,
                            Found* found);

  // Deletes the customer's key for good (see above). Erasing again, or a customer without a
  // key, succeeds. `*deleted` (when given): whether a key file was there to delete.
  [[nodiscard]] Status erase(std::string_view customer_id, bool* deleted = nullptr);
  [[nodiscard]] bool erased(std::string_view customer_id);

  // Re-seals every key file under the vault's active master key version (`keel vault rotate`).
  [[nodiscard]] Status rewrap(uint64_t* moved);

  struct Stats {
    uint64_t keys_created = 0;
    uint64_t keys_erased = 0;
    uint64_t opened = 0;  // sealed values opened
    uint64_t open_failures = 0;
  };
  [[nodiscard]] Stats stats() const;

 private:
  CustomerKeys(CustomerKeysOptions options, const Vault* vault);
  [[nodiscard]] std::string path(std::string_view customer_id, std::string_view ext) const;
  [[nodiscard]] Status get_locked(std::string_view customer_id, bool create, Key* key,
                                  Found* found);

  const CustomerKeysOptions options_;
  const Vault* vault_;
  mutable std::mutex mu_;
  std::map<std::string, Key, std::less<>> cache_;
  Stats stats_;
};

}  // namespace keel::vault
