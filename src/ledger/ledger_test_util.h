#pragma once

// Builders shared by the ledger tests.

#include <string>

#include "ledger/ledger.h"

namespace keel::ledger::testing {

inline Currency usd() { return *Currency::from_code("USD"); }
inline Currency eur() { return *Currency::from_code("EUR"); }

inline AccountEvent account(std::string id, uint16_t flags = 0, Currency c = usd()) {
  AccountEvent e;
  e.id = std::move(id);
  e.currency = c;
  e.flags = flags;
  return e;
}

inline TransferEvent transfer(std::string id, std::string debit, std::string credit, int64_t amount,
                              uint16_t flags = 0, Currency c = usd()) {
  TransferEvent e;
  e.id = std::move(id);
  e.debit_account_id = std::move(debit);
  e.credit_account_id = std::move(credit);
  e.amount = amount;
  e.currency = c;
  e.flags = flags;
  return e;
}

inline TransferEvent pending(std::string id, std::string debit, std::string credit, int64_t amount,
                             uint32_t timeout_s = 0) {
  TransferEvent e = transfer(std::move(id), std::move(debit), std::move(credit), amount,
                             transfer_flags::kPending);
  e.timeout_s = timeout_s;
  return e;
}

inline TransferEvent post(std::string id, std::string pending_id, int64_t amount = 0) {
  TransferEvent e;
  e.id = std::move(id);
  e.pending_id = std::move(pending_id);
  e.amount = amount;
  e.flags = transfer_flags::kPostPending;
  return e;
}

inline TransferEvent void_pending(std::string id, std::string pending_id) {
  TransferEvent e = post(std::move(id), std::move(pending_id));
  e.flags = transfer_flags::kVoidPending;
  return e;
}

}  // namespace keel::ledger::testing
