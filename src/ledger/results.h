#pragma once

#include <cstdint>
#include <string_view>

namespace keel::ledger {

// One result per account event. Checks run in the order listed; the first failing check is the
// result. Every result but `ok` leaves the ledger unchanged for that event.
enum class CreateAccountResult : uint8_t {
  ok = 0,
  linked_event_failed,           // another event of this linked chain failed
  linked_event_chain_open,       // the last event of the request has the linked flag
  id_invalid,                    // not 1-64 bytes of [A-Za-z0-9_-.:]
  flags_invalid,                 // unknown flag bits
  flags_are_mutually_exclusive,  // both debits_must_not_exceed_credits and its mirror
  currency_invalid,
  metadata_invalid,
  exists_with_different_currency,
  exists_with_different_flags,
  exists_with_different_metadata,
  exists,  // identical account already there; nothing changed
};

// One result per transfer event; checks run in the order listed. Every result but `ok` leaves the
// ledger unchanged for that event.
enum class CreateTransferResult : uint8_t {
  ok = 0,
  linked_event_failed,
  linked_event_chain_open,
  id_invalid,
  flags_invalid,
  flags_are_mutually_exclusive,  // more than one of pending, post_pending, void_pending
  metadata_invalid,
  // Plain and pending transfers.
  debit_account_id_invalid,
  credit_account_id_invalid,
  accounts_must_be_different,
  pending_id_must_be_empty,
  timeout_reserved_for_pending_transfer,
  amount_must_be_positive,
  currency_invalid,
  // Post and void.
  pending_id_required,
  pending_id_must_be_different,  // pending_id equals the transfer's own id
  amount_must_not_be_negative,
  // The id is taken: identical fields give `exists`, otherwise the first field that differs.
  exists_with_different_flags,
  exists_with_different_debit_account_id,
  exists_with_different_credit_account_id,
  exists_with_different_amount,
  exists_with_different_currency,
  exists_with_different_pending_id,
  exists_with_different_timeout,
  exists_with_different_metadata,
  exists,
  // Plain and pending transfers.
  account_not_found,  // the debit or the credit account does not exist
  currency_mismatch,  // transfer currency differs from an account's
  // Post and void.
  pending_transfer_not_found,
  pending_transfer_not_pending,  // pending_id names a transfer without the pending flag
  pending_transfer_has_different_debit_account_id,
  pending_transfer_has_different_credit_account_id,
  pending_transfer_has_different_currency,
  pending_transfer_already_posted,
  pending_transfer_already_voided,
  pending_transfer_expired,
  amount_exceeds_pending,          // post of more than the pending amount
  void_amount_must_match_pending,  // a void names an amount other than 0 or the pending amount
  // Both.
  account_closed,   // a new transfer or a post touches a closed account (voids are allowed)
  overflow,         // a balance (or pending + posted) would pass 2^63 - 1
  exceeds_credits,  // debit account has debits_must_not_exceed_credits
  exceeds_debits,   // credit account has credits_must_not_exceed_debits
};

enum class SetAccountClosedResult : uint8_t {
  ok = 0,
  account_not_found,
  account_already_closed,
  account_not_closed,
};

[[nodiscard]] std::string_view result_name(CreateAccountResult r);
[[nodiscard]] std::string_view result_name(CreateTransferResult r);
[[nodiscard]] std::string_view result_name(SetAccountClosedResult r);

}  // namespace keel::ledger
