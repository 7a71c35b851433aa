#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/currency.h"
#include "core/hash.h"
#include "core/time.h"

namespace keel::psp_sim {

// The books of one simulated PSP: every operation it keeps, keyed by keel's reference, with the
// state machine of docs/psp_protocol.md. Pure and deterministic: no I/O, no clock, no random
// source; time and every random decision (decline, asynchronous outcome) come from the caller.
//
// Thread: not thread-safe; the owner serialises calls (one mutex per PSP in the server).

enum class OperationType : uint8_t { authorization, refund, payout, topup };
enum class OperationStatus : uint8_t {
  pending,     // authorization, payout, topup: the outcome comes later (settle())
  authorized,  // authorization
  captured,    // authorization
  voided,      // authorization
  declined,    // authorization, refund
  refunded,    // refund
  paid,        // payout, topup
  failed,      // payout, topup
};
enum class DeclineType : uint8_t { hard, soft };

[[nodiscard]] std::string_view type_name(OperationType t);
[[nodiscard]] std::string_view status_name(OperationStatus s);
[[nodiscard]] std::string_view decline_type_name(DeclineType t);

struct Decline {
  std::string code;  // "insufficient_funds"
  DeclineType type = DeclineType::hard;
  friend bool operator==(const Decline&, const Decline&) = default;
};

struct Operation {
  std::string psp_reference;  // "sim_" + 16 hex digits, a keyed hash of the reference
  std::string reference;
  OperationType type = OperationType::authorization;
  OperationStatus status = OperationStatus::pending;
  int64_t amount = 0;
  Currency currency;
  int64_t captured_amount = 0;
  int64_t refunded_amount = 0;
  int64_t fee = 0;
  std::optional<Decline> decline;
  std::string payment_reference;  // refunds: the refunded authorization's reference
  // Authorizations of a card sent in clear (not a token): its last 4 digits, and whether a CVC
  // came with the first request of this reference.
  std::string card_last4;
  bool cvc_provided = false;
  // Payouts and top-ups: where the money went or came from, as received ("iban:FR76...").
  std::string counterparty;
  Timestamp created_at = 0;
  Timestamp updated_at = 0;
};

// A change of an operation's status, to be delivered as a webhook. `id` is "evt_" + 16 hex
// digits, a keyed hash of (reference, n-th change of that operation): the same run gives the
// same ids.
struct Event {
  std::string id;
  Timestamp created_at = 0;
  Operation operation;  // as it stands right after the change
};

// What every operation call returns. One value per distinct reason.
enum class BookResult : uint8_t {
  ok,                     // applied (or a replay of the same request: `replayed`)
  reference_reused,       // the reference is taken by an operation with another body
  not_found,              // capture/void of an unknown reference, refund of an unknown payment
  invalid_state,          // the operation's type or status forbids it
  amount_exceeds,         // capture above authorized, refund above captured minus refunded
  currency_not_accepted,  // not in the PSP's currencies
  books_full,             // operations_max reached: nothing was recorded
};

struct Outcome {
  BookResult result = BookResult::ok;
  bool replayed = false;  // ok without any change: the operation as it stands
  Operation operation;    // set when result is ok
  std::vector<Event> events;
};

// The random decisions of one request, taken by the caller (faults.h) before the call.
// Ignored on a replay.
struct Decisions {
  std::optional<Decline> decline;  // authorizations, payouts, topups
  bool async = false;              // answer `pending`; the outcome comes with settle()
};

struct AuthorizeRequest {
  std::string reference;
  int64_t amount = 0;  // > 0, at most kAmountMax (the codec checks)
  Currency currency;
  std::string card_token;  // a token, or for a card in clear "card_" + its last 4 digits
  bool capture = false;
  bool cvc_provided = false;  // a card in clear came with its CVC
};
struct RefundRequest {
  std::string reference;
  std::string payment_reference;
  int64_t amount = 0;
};
// Payouts and top-ups: `counterparty` is the destination ("iban:DE89...", "account:...") or the
// source ("card_token:tok_1", "bank_account:...").
struct TransferRequest {
  std::string reference;
  int64_t amount = 0;
  Currency currency;
  std::string counterparty;
};

struct SettlementLine {
  int64_t day = 0;  // days since 1970-01-01, UTC
  std::string psp_reference;
  std::string reference;
  std::string_view type;  // "capture", "refund", "payout", "topup"
  int64_t amount = 0;
  Currency currency;
  int64_t fee = 0;
};

struct Total {
  OperationStatus status = OperationStatus::pending;
  Currency currency;
  int64_t count = 0;
  int64_t amount = 0;  // sum of `amount`
};

// Limits: amounts up to kAmountMax and at most kOperationsLimit operations, so that no sum in
// the books (a total of amounts, fees or refunds) can overflow int64.
inline constexpr int64_t kAmountMax = 1'000'000'000'000;  // 10^12 minor units
inline constexpr size_t kOperationsLimit =
    static_cast<size_t>(std::numeric_limits<int64_t>::max() / kAmountMax);  // 9,223,372
// Enough for a million-payment run on one PSP with its captures and refunds.
inline constexpr size_t kOperationsMaxDefault = 8'000'000;
static_assert(kOperationsMaxDefault <= kOperationsLimit);

struct BooksOptions {
  std::string psp;
  SipKey key;  // for psp_reference and event ids
  int64_t fee_fixed = 0;
  int64_t fee_bps = 0;  // 0..10000
  std::vector<Currency> currencies;
  size_t operations_max = kOperationsMaxDefault;  // 1..kOperationsLimit; then books_full
};

class Books {
 public:
  explicit Books(BooksOptions options);

  // Each call either applies completely (result ok) or changes nothing. Same reference and same
  // request: ok, replayed, the operation as it stands now, no events.
  Outcome authorize(const AuthorizeRequest& request, const Decisions& decisions, Timestamp now);
  // authorized -> captured; `amount` omitted captures everything. Capturing a captured
  // authorization again with the captured amount (or none) is a replay.
  Outcome capture(std::string_view reference, std::optional<int64_t> amount, Timestamp now);
  // authorized -> voided; voiding a voided authorization is a replay.
  Outcome void_authorization(std::string_view reference, Timestamp now);
  // A refund of a captured authorization, at most captured minus already refunded.
  Outcome refund(const RefundRequest& request, Timestamp now);
  Outcome payout(const TransferRequest& request, const Decisions& decisions, Timestamp now);
  Outcome topup(const TransferRequest& request, const Decisions& decisions, Timestamp now);
  // The asynchronous outcome of a pending operation: authorized (or captured if it was asked to
  // capture) or declined; paid or failed. ok and replayed if it is no longer pending.
  Outcome settle(std::string_view reference, Timestamp now);

  // nullptr if the PSP never received `reference`.
  [[nodiscard]] const Operation* find(std::string_view reference) const;
  // Every operation, in order of creation.
  [[nodiscard]] const std::vector<Operation>& operations() const { return operations_; }
  // Count and sum of amounts per (status, currency), ordered by status then currency code.
  [[nodiscard]] std::vector<Total> totals() const;
  // The settlement report of `day` (days since the epoch): header line, then one line per money
  // movement of that UTC day in the order they happened.
  [[nodiscard]] std::string settlement_csv(int64_t day) const;
  [[nodiscard]] const std::vector<SettlementLine>& settlement_lines() const { return lines_; }

 private:
  struct Entry {
    size_t index = 0;         // into operations_
    std::string fingerprint;  // the request as first received
    std::optional<Decline> pending_decline;
    bool capture_on_settle = false;
    uint32_t changes = 0;  // status changes so far, for event ids
  };

  Outcome create(Operation op, std::string fingerprint, const Decisions& decisions, bool capture,
                 Timestamp now);
  Outcome replay_or_conflict(const Entry& entry, const std::string& fingerprint) const;
  void finish(Entry& entry, const std::optional<Decline>& decline, bool capture, Timestamp now,
              Outcome* out);
  void apply_capture(Operation& op, int64_t amount, Timestamp now);
  void record_event(Entry& entry, Timestamp now, Outcome* out);
  [[nodiscard]] bool accepts(Currency c) const;
  [[nodiscard]] int64_t fee_for(int64_t amount) const;
  [[nodiscard]] std::string hash_id(std::string_view prefix, std::string_view data) const;

  BooksOptions options_;
  std::vector<Operation> operations_;
  std::map<std::string, Entry, std::less<>> by_reference_;
  std::vector<SettlementLine> lines_;
};

// Days since 1970-01-01 of a timestamp (UTC), and back and forth to "YYYY-MM-DD".
[[nodiscard]] int64_t utc_day(Timestamp t);
[[nodiscard]] std::string format_day(int64_t day);
[[nodiscard]] std::optional<int64_t> parse_day(std::string_view text);

}  // namespace keel::psp_sim
