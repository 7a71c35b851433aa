// Wire names of ledger flags, states and result codes. These strings are part of the HTTP API
// and of docs/ledger.md: never rename one.
#include <array>
#include <string_view>
#include <vector>

#include "core/enum_name.h"
#include "ledger/results.h"
#include "ledger/types.h"

namespace keel::ledger {
namespace {

constexpr std::array<std::string_view, 4> kAccountFlagNames = {
    "debits_must_not_exceed_credits", "credits_must_not_exceed_debits", "closed", "linked"};
constexpr std::array<std::string_view, 4> kTransferFlagNames = {"linked", "pending", "post_pending",
                                                                "void_pending"};

template <size_t N>
uint16_t flag_from_name(const std::array<std::string_view, N>& names, std::string_view name) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == name) return static_cast<uint16_t>(1u << i);
  }
  return 0;
}

template <size_t N>
std::vector<std::string_view> flag_names(const std::array<std::string_view, N>& names,
                                         uint16_t flags) {
  std::vector<std::string_view> out;
  for (size_t i = 0; i < N; ++i) {
    if (flags & (1u << i)) out.push_back(names[i]);
  }
  return out;
}

}  // namespace

uint16_t account_flag_from_name(std::string_view name) {
  return flag_from_name(kAccountFlagNames, name);
}
uint16_t transfer_flag_from_name(std::string_view name) {
  return flag_from_name(kTransferFlagNames, name);
}
std::vector<std::string_view> account_flag_names(uint16_t flags) {
  return flag_names(kAccountFlagNames, flags);
}
std::vector<std::string_view> transfer_flag_names(uint16_t flags) {
  return flag_names(kTransferFlagNames, flags);
}

std::string_view pending_state_name(PendingState s) {
  switch (s) {
    case PendingState::none:
      return "none";
    case PendingState::pending:
      return "pending";
    case PendingState::posted:
      return "posted";
    case PendingState::voided:
      return "voided";
    case PendingState::expired:
      return "expired";
  }
  return "unknown";
}

std::string_view result_name(CreateAccountResult r) {
  using R = CreateAccountResult;
  switch (r) {
    KEEL_ENUM_CASE(R, ok);
    KEEL_ENUM_CASE(R, linked_event_failed);
    KEEL_ENUM_CASE(R, linked_event_chain_open);
    KEEL_ENUM_CASE(R, id_invalid);
    KEEL_ENUM_CASE(R, flags_invalid);
    KEEL_ENUM_CASE(R, flags_are_mutually_exclusive);
    KEEL_ENUM_CASE(R, currency_invalid);
    KEEL_ENUM_CASE(R, metadata_invalid);
    KEEL_ENUM_CASE(R, exists_with_different_currency);
    KEEL_ENUM_CASE(R, exists_with_different_flags);
    KEEL_ENUM_CASE(R, exists_with_different_metadata);
    KEEL_ENUM_CASE(R, exists);
  }
  return "unknown";
}

std::string_view result_name(CreateTransferResult r) {
  using R = CreateTransferResult;
  switch (r) {
    KEEL_ENUM_CASE(R, ok);
    KEEL_ENUM_CASE(R, linked_event_failed);
    KEEL_ENUM_CASE(R, linked_event_chain_open);
    KEEL_ENUM_CASE(R, id_invalid);
    KEEL_ENUM_CASE(R, flags_invalid);
    KEEL_ENUM_CASE(R, flags_are_mutually_exclusive);
    KEEL_ENUM_CASE(R, metadata_invalid);
    KEEL_ENUM_CASE(R, debit_account_id_invalid);
    KEEL_ENUM_CASE(R, credit_account_id_invalid);
    KEEL_ENUM_CASE(R, accounts_must_be_different);
    KEEL_ENUM_CASE(R, pending_id_must_be_empty);
    KEEL_ENUM_CASE(R, timeout_reserved_for_pending_transfer);
    KEEL_ENUM_CASE(R, amount_must_be_positive);
    KEEL_ENUM_CASE(R, currency_invalid);
    KEEL_ENUM_CASE(R, pending_id_required);
    KEEL_ENUM_CASE(R, pending_id_must_be_different);
    KEEL_ENUM_CASE(R, amount_must_not_be_negative);
    KEEL_ENUM_CASE(R, exists_with_different_flags);
    KEEL_ENUM_CASE(R, exists_with_different_debit_account_id);
    KEEL_ENUM_CASE(R, exists_with_different_credit_account_id);
    KEEL_ENUM_CASE(R, exists_with_different_amount);
    KEEL_ENUM_CASE(R, exists_with_different_currency);
    KEEL_ENUM_CASE(R, exists_with_different_pending_id);
    KEEL_ENUM_CASE(R, exists_with_different_timeout);
    KEEL_ENUM_CASE(R, exists_with_different_metadata);
    KEEL_ENUM_CASE(R, exists);
    KEEL_ENUM_CASE(R, account_not_found);
    KEEL_ENUM_CASE(R, currency_mismatch);
    KEEL_ENUM_CASE(R, pending_transfer_not_found);
    KEEL_ENUM_CASE(R, pending_transfer_not_pending);
    KEEL_ENUM_CASE(R, pending_transfer_has_different_debit_account_id);
    KEEL_ENUM_CASE(R, pending_transfer_has_different_credit_account_id);
    KEEL_ENUM_CASE(R, pending_transfer_has_different_currency);
    KEEL_ENUM_CASE(R, pending_transfer_already_posted);
    KEEL_ENUM_CASE(R, pending_transfer_already_voided);
    KEEL_ENUM_CASE(R, pending_transfer_expired);
    KEEL_ENUM_CASE(R, amount_exceeds_pending);
    KEEL_ENUM_CASE(R, void_amount_must_match_pending);
    KEEL_ENUM_CASE(R, account_closed);
    KEEL_ENUM_CASE(R, overflow);
    KEEL_ENUM_CASE(R, exceeds_credits);
    KEEL_ENUM_CASE(R, exceeds_debits);
  }
  return "unknown";
}

std::string_view result_name(SetAccountClosedResult r) {
  using R = SetAccountClosedResult;
  switch (r) {
    KEEL_ENUM_CASE(R, ok);
    KEEL_ENUM_CASE(R, account_not_found);
    KEEL_ENUM_CASE(R, account_already_closed);
    KEEL_ENUM_CASE(R, account_not_closed);
  }
  return "unknown";
}

}  // namespace keel::ledger
