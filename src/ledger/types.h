#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/currency.h"
#include "core/metadata.h"
#include "core/time.h"

namespace keel::ledger {

// Account flags (bit set).
namespace account_flags {
inline constexpr uint16_t kDebitsMustNotExceedCredits = 1u << 0;
inline constexpr uint16_t kCreditsMustNotExceedDebits = 1u << 1;
inline constexpr uint16_t kClosed = 1u << 2;
// Links this event to the next one in the same request: the chain succeeds or fails whole.
inline constexpr uint16_t kLinked = 1u << 3;
inline constexpr uint16_t kAll = (1u << 4) - 1;
}  // namespace account_flags

// Transfer flags (bit set). At most one of pending, post_pending and void_pending.
namespace transfer_flags {
inline constexpr uint16_t kLinked = 1u << 0;
inline constexpr uint16_t kPending = 1u << 1;
inline constexpr uint16_t kPostPending = 1u << 2;
inline constexpr uint16_t kVoidPending = 1u << 3;
inline constexpr uint16_t kAll = (1u << 4) - 1;
}  // namespace transfer_flags

// Wire names of the flags ("debits_must_not_exceed_credits", "pending", ...), in bit order.
// Returns 0 for an unknown name.
[[nodiscard]] uint16_t account_flag_from_name(std::string_view name);
[[nodiscard]] uint16_t transfer_flag_from_name(std::string_view name);
[[nodiscard]] std::vector<std::string_view> account_flag_names(uint16_t flags);
[[nodiscard]] std::vector<std::string_view> transfer_flag_names(uint16_t flags);

struct Balances {
  int64_t debits_pending = 0;
  int64_t debits_posted = 0;
  int64_t credits_pending = 0;
  int64_t credits_posted = 0;
  friend bool operator==(const Balances&, const Balances&) = default;
};

// A request to create one account.
struct AccountEvent {
  std::string id;
  Currency currency;
  uint16_t flags = 0;  // account_flags; kClosed creates the account closed
  Metadata metadata;
};

// A request to create one transfer.
// - plain and pending transfers name both accounts, a positive amount and the currency;
// - post_pending and void_pending name `pending_id`; the accounts and currency may be left empty
//   (they are taken from the pending transfer) or must match it; amount 0 means the whole
//   pending amount, a smaller positive amount posts part of it and releases the rest.
struct TransferEvent {
  std::string id;
  std::string debit_account_id;
  std::string credit_account_id;
  int64_t amount = 0;
  Currency currency;
  uint16_t flags = 0;  // transfer_flags
  std::string pending_id;
  uint32_t timeout_s = 0;  // pending only; 0 = the hold never expires
  Metadata metadata;
};

// A stored account, as queries return it (owned copy).
struct Account {
  std::string id;
  Currency currency;
  uint16_t flags = 0;
  Balances balances;
  Metadata metadata;
  Timestamp timestamp = 0;  // when it was created
};

enum class PendingState : uint8_t {
  none = 0,  // not a pending transfer
  pending = 1,
  posted = 2,
  voided = 3,
  expired = 4,
};
[[nodiscard]] std::string_view pending_state_name(PendingState s);

// A stored transfer, as queries return it (owned copy).
struct Transfer {
  std::string id;
  std::string debit_account_id;
  std::string credit_account_id;
  int64_t amount = 0;  // for a post: the amount posted; for a void: the amount released
  Currency currency;
  uint16_t flags = 0;
  std::string pending_id;
  uint32_t timeout_s = 0;
  Metadata metadata;
  Timestamp timestamp = 0;
  PendingState pending_state = PendingState::none;  // for pending transfers only
  Timestamp expires_at = 0;                         // pending with timeout only

  friend bool operator==(const Transfer&, const Transfer&) = default;
};

}  // namespace keel::ledger
