#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/currency.h"
#include "core/time.h"
#include "ledger/types.h"

namespace keel::payments {

// Card payments through a PSP (authorize, then capture), as a pure state machine: the rules of
// docs/payments.md, the postings of docs/postings.md (flow 3). No I/O, no clock: every call
// takes `now` from its journaled command, and returns what must happen next as Effects (ledger
// events to post as one linked chain in the same command, PSP calls to make after commit).
//
// Thread: the engine's writer thread only. Never throws on bad input: every call returns a
// PaymentResult and changes nothing unless it is `ok`.
//
// Not yet here (issue 4): fees, wallet-funded payments, refunds, payouts, top-ups, routing
// across channels (the caller picks the channel), 3-D Secure (`requires_action`).

enum class PaymentStatus : uint8_t {
  requires_confirmation = 0,
  requires_action,
  processing,
  requires_capture,
  succeeded,
  failed,
  canceled,
};

enum class CaptureMethod : uint8_t { automatic = 0, manual };

// Values are in snapshots and journal records: never renumber one.
enum class AttemptKind : uint8_t {
  authorization = 0,
  capture,
  void_authorization,
  refund,  // of a captured card payment
  payout,  // from a wallet to a bank account
  topup,   // into a wallet from a card or a bank account
};

// What a PSP call draws on or pays to (PspCall::instrument).
enum class InstrumentKind : uint8_t { none = 0, card_token, bank_account, iban, account };

enum class AttemptStatus : uint8_t {
  pending = 0,    // sent (or about to be); no answer yet
  approved,       // the PSP did it
  declined_hard,  // the PSP refused; do not retry
  declined_soft,  // the PSP refused for now; another try may succeed
  retryable,      // nothing happened at the PSP (503, refused connection, status query 404)
  unknown,        // may or may not have happened: only a status query or a webhook settles it
};

// What the connector learnt about one attempt (from its answer, a status query or a webhook).
struct AttemptResult {
  AttemptStatus status = AttemptStatus::unknown;  // never `pending`
  bool captured = false;  // authorization approved and captured at once (auto capture)
  std::string psp_reference;
  std::string error_code;  // normalized decline or error code
  int64_t fee = 0;         // what the PSP charged keel for it (minor units), when it says
};

struct Attempt {
  std::string id;  // the reference sent to the PSP: globally unique, idempotent there
  AttemptKind kind = AttemptKind::authorization;
  std::string channel;
  AttemptStatus status = AttemptStatus::pending;
  int64_t amount = 0;
  std::string psp_reference;
  std::string error_code;
  Timestamp created_at = 0;
  Timestamp updated_at = 0;
};

struct TimelineEntry {
  Timestamp at = 0;
  PaymentStatus from = PaymentStatus::requires_confirmation;
  PaymentStatus to = PaymentStatus::requires_confirmation;
  std::string cause;  // "api", "psp_response", "webhook:evt_1", "deadline", "restart", ...
};

struct Payment {
  std::string id;
  int64_t amount = 0;
  Currency currency;
  std::string merchant_id;
  CaptureMethod capture_method = CaptureMethod::automatic;
  PaymentStatus status = PaymentStatus::requires_confirmation;
  int64_t authorized_amount = 0;
  int64_t captured_amount = 0;
  std::string channel;  // of the approved authorization
  Timestamp created_at = 0;
  Timestamp deadline = 0;  // of the current waiting state; 0 when none is due
  Timestamp authorization_expires_at = 0;
  bool in_review = false;  // processing past its deadline with an unknown attempt
  std::vector<Attempt> attempts;
  std::vector<TimelineEntry> timeline;
};

struct CreatePayment {
  std::string id;
  int64_t amount = 0;
  Currency currency;
  std::string merchant_id;
  CaptureMethod capture_method = CaptureMethod::automatic;
};

// A call the engine makes after the command that produced it is durable.
struct PspCall {
  AttemptKind kind = AttemptKind::authorization;
  std::string payment_id;
  std::string attempt_id;
  std::string channel;
  int64_t amount = 0;
  Currency currency;
  bool capture_now = false;             // authorization with automatic capture
  std::string authorization_reference;  // capture, void, refund: the authorization attempt's id
  InstrumentKind instrument_kind = InstrumentKind::none;
  std::string instrument;  // card token, bank account, IBAN or account id
};

struct Effects {
  std::vector<ledger::TransferEvent> postings;  // one linked chain
  std::vector<PspCall> calls;
};

enum class PaymentResult : uint8_t {
  ok = 0,
  id_invalid,
  exists,
  amount_invalid,
  currency_invalid,
  merchant_id_invalid,
  channel_invalid,
  not_found,
  invalid_state,        // the call is not allowed in the payment's status
  attempt_outstanding,  // an attempt is pending or unknown: no new one (invariant 2)
  capture_exceeds_authorized,
  attempt_not_found,
  stale_result,    // the attempt is already settled; nothing changes (late or duplicate webhook)
  result_invalid,  // `pending` is not a result
};

[[nodiscard]] std::string_view status_name(PaymentStatus s);
[[nodiscard]] std::string_view attempt_status_name(AttemptStatus s);
[[nodiscard]] std::string_view result_name(PaymentResult r);

struct PaymentDeadlines {
  int64_t confirmation_s = 24 * 3600;
  int64_t processing_s = 30 * 60;
  int64_t capture_s = 7 * 24 * 3600;  // authorization validity
};

class PaymentMachine {
 public:
  explicit PaymentMachine(PaymentDeadlines deadlines = {}) : deadlines_(deadlines) {}

  PaymentResult create(const CreatePayment& request, Timestamp now);
  // requires_confirmation -> processing, with an authorization attempt on `channel`.
  PaymentResult confirm(std::string_view id, std::string_view channel, Timestamp now,
                        Effects* effects);
  // A new authorization attempt after the last one was retryable or softly declined.
  PaymentResult retry(std::string_view id, std::string_view channel, Timestamp now,
                      Effects* effects);
  // requires_capture -> processing, with a capture attempt (amount 0 = all authorized).
  PaymentResult capture(std::string_view id, int64_t amount, Timestamp now, Effects* effects);
  // requires_confirmation -> canceled; requires_capture -> processing with a void attempt.
  PaymentResult cancel(std::string_view id, Timestamp now, Effects* effects);
  // Settles an attempt. Idempotent: a result for an attempt already settled is `stale_result`.
  PaymentResult apply_result(std::string_view attempt_id, const AttemptResult& result,
                             std::string_view cause, Timestamp now, Effects* effects);
  // Deadlines due by `now`: cancel unconfirmed payments, void expired authorizations, flag
  // processing payments with an unknown attempt for review. Returns the payments changed.
  std::vector<std::string> tick(Timestamp now, Effects* effects);
  // After a restart: every pending attempt may have reached the PSP, so it becomes unknown.
  // Returns the attempt ids the resolver must ask about.
  std::vector<std::string> mark_pending_unknown(Timestamp now);

  [[nodiscard]] const Payment* find(std::string_view id) const;
  [[nodiscard]] size_t size() const { return payments_.size(); }

 private:
  Payment* lookup(std::string_view id);
  void move_to(Payment& p, PaymentStatus to, std::string_view cause, Timestamp now);
  Attempt& add_attempt(Payment& p, AttemptKind kind, std::string_view channel, int64_t amount,
                       Timestamp now, Effects* effects);
  void settle_authorization(Payment& p, const Attempt& a, std::string_view cause, Timestamp now,
                            Effects* effects);
  void settle_capture(Payment& p, const Attempt& a, std::string_view cause, Timestamp now,
                      Effects* effects);
  void settle_void(Payment& p, const Attempt& a, std::string_view cause, Timestamp now,
                   Effects* effects);

  void set_deadline(Payment& p, Timestamp deadline);

  PaymentDeadlines deadlines_;
  std::map<std::string, Payment, std::less<>> payments_;
  std::set<std::pair<Timestamp, std::string>> due_;  // (deadline, payment id), earliest first
  std::map<std::string, std::string, std::less<>> attempt_owner_;  // attempt id -> payment id
};

// Ledger account ids of docs/postings.md.
[[nodiscard]] std::string psp_clearing_account(std::string_view channel, Currency c);
[[nodiscard]] std::string merchant_account(std::string_view merchant, Currency c);

}  // namespace keel::payments
