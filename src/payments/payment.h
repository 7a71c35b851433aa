#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/currency.h"
#include "core/ids.h"
#include "core/kv_reader.h"
#include "core/status.h"
#include "core/time.h"
#include "ledger/types.h"
#include "payments/change_tracker.h"
#include "review/review.h"
#include "vault/payment_methods.h"

namespace keel::payments {

using review::ReviewReason;

// Payments to merchants, as a pure state machine: the rules of docs/payments.md and the postings
// of docs/postings.md (flow 2: from a wallet; flow 3: by card through a PSP, authorize then
// capture, with fees; flow 5: refunds). No I/O, no clock: every call takes `now` from its
// journaled command, and returns what must happen next as Effects (ledger events to post as one
// linked chain in the same command, PSP calls to make after commit).
//
// Thread: the engine's writer thread only. Never throws on bad input: every call returns a
// PaymentResult and changes nothing unless it is `ok`. Pointers returned by the queries stay
// valid until the next call that changes the machine.
//
// Ledger transfer ids are the payment's (or refund's) id plus a suffix, so they are unique and
// the same on replay: `{pay}.hold` (card authorization, pending), `{pay}.capture` (its post),
// `{pay}.void` (its release), `{pay}.charge` (wallet payment), `{pay}.fee` (merchant fee),
// `{pay}.psp_fee` (PSP fee), `{refund}.refund`. Payment ids and refund ids share one namespace
// (a refund may not take a payment's id, nor the reverse), so attempt ids `{id}_a{n}` and ledger
// ids never collide.
//
// The engine must create the ledger accounts a chain names before posting it (merchant,
// psp_clearing, psp_fees, fees; the wallet exists before a wallet payment can be confirmed).
//
// Review: a payment or refund whose outcome is unknown at its processing deadline is flagged
// `deadline_unknown`; one whose PSP result cannot be taken (result_problem(), or a report that
// contradicts what was booked) is flagged `psp_result_rejected` by flag_result_rejected(). A
// flagged object waiting on the PSP has no deadline (a person or a late answer ends it); any
// change of its status clears the flag.
//
// Routing (src/routing) picks each authorization's channel outside this machine; its choices
// arrive journaled: the channel of confirm(), and the NextTry of apply_result().
//
// Not yet here: 3-D Secure (`requires_action`).

// Payment and refund ids, card tokens: what a PSP accepts as a reference ([A-Za-z0-9_-]).
inline constexpr size_t kPaymentIdLengthMax = 48;  // leaves room for `_a{n}` and `.psp_fee`
inline constexpr size_t kPaymentMethodLengthMax = 64;
// Merchants, customers and channels, inside ledger account ids (is_valid_id, at most 40 bytes).
inline constexpr size_t kNameLengthMax = 40;
// Bounds on what one payment holds and on what a PSP answer may carry.
inline constexpr size_t kAttemptsPerPaymentMax = 64;
inline constexpr size_t kRefundsPerPaymentMax = 100;
inline constexpr size_t kPspReferenceLengthMax = 255;
inline constexpr size_t kErrorCodeLengthMax = 64;
inline constexpr size_t kCauseLengthMax = 128;
inline constexpr size_t kListLimitMax = 100;
inline constexpr size_t kFeeChannelsMax = 256;
// Authorization tries of one payment when the PSP says nothing happened (retryable).
inline constexpr size_t kAuthorizationTriesMax = 3;
inline constexpr int64_t kBasisPointsMax = 10'000;               // 100 %
inline constexpr int64_t kDeadlineSecondsMax = 365 * 24 * 3600;  // any PaymentDeadlines field
// The timeline cause of the deadline flagging an object waiting on a PSP for review
// (deadline_unknown); snapshots written before the review desk date their items by it.
inline constexpr std::string_view kDeadlineReviewCause = "deadline: review";
// The channel name of wallet payments (their fee schedule entry); not a PSP channel.
inline constexpr std::string_view kWalletChannel = "wallet";

// The values of every enum below are in snapshots and journal records: never renumber one.

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

// Where the money comes from: a card through a PSP, or the customer's wallet (internal).
enum class PaymentSource : uint8_t { card = 0, wallet };

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

// pending -> succeeded | failed. A failed refund's amount may be refunded again.
enum class RefundStatus : uint8_t { pending = 0, succeeded, failed };

// What the connector learnt about one attempt (from its answer, a status query or a webhook).
// Valid when result_problem() finds nothing (else `result_invalid`).
struct AttemptResult {
  AttemptStatus status = AttemptStatus::unknown;  // never `pending`
  bool captured = false;  // authorization approved and captured at once (auto capture)
  std::string psp_reference;
  std::string error_code;  // normalized decline or error code
  int64_t fee = 0;         // what the PSP charged keel for it (minor units), when it says;
                           // keel's expense, and may pass the amount (a fixed fee on a small one)
  int64_t latency_ms = 0;  // how long the call took as keel saw it (0: not from a call)
  friend bool operator==(const AttemptResult&, const AttemptResult&) = default;
};

struct Attempt {
  std::string id;  // the reference sent to the PSP: globally unique, idempotent there
  AttemptKind kind = AttemptKind::authorization;
  std::string channel;
  AttemptStatus status = AttemptStatus::pending;
  int64_t amount = 0;
  int64_t fee = 0;         // the PSP's fee from the result that settled it
  int64_t latency_ms = 0;  // of the call that answered it (0 when a query or webhook did)
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

struct RefundTimelineEntry {
  Timestamp at = 0;
  RefundStatus from = RefundStatus::pending;
  RefundStatus to = RefundStatus::pending;
  std::string cause;
};

// A refund of (part of) a succeeded payment. A card refund has exactly one attempt, id
// `{refund id}_a1`; a wallet refund has none (it succeeds at once).
struct Refund {
  std::string id;
  std::string payment_id;
  int64_t amount = 0;
  RefundStatus status = RefundStatus::pending;
  Timestamp created_at = 0;
  Timestamp deadline = 0;  // while pending and not in review: the processing deadline; else 0
  ReviewReason review = ReviewReason::none;  // why a person must look at it (none: nobody)
  std::vector<Attempt> attempts;
  std::vector<RefundTimelineEntry> timeline;
};

struct Payment {
  std::string id;
  int64_t amount = 0;
  Currency currency;
  std::string merchant_id;
  PaymentSource source = PaymentSource::card;
  CaptureMethod capture_method = CaptureMethod::automatic;
  std::string payment_method;  // card token (card payments only)
  std::string customer_id;     // the wallet's owner (wallet payments); optional for cards
  PaymentStatus status = PaymentStatus::requires_confirmation;
  int64_t authorized_amount = 0;
  int64_t captured_amount = 0;
  int64_t refunded_amount = 0;  // sum of succeeded refunds
  int64_t merchant_fee = 0;     // booked with the capture
  int64_t psp_fee = 0;          // booked with the capture
  std::string channel;          // of the approved authorization; kWalletChannel for wallets
  std::string error_code;       // why it failed: the last attempt's code, or insufficient_funds
  Timestamp created_at = 0;
  Timestamp deadline = 0;  // of the current waiting state; 0 when none is due
  Timestamp authorization_expires_at = 0;
  ReviewReason review = ReviewReason::none;  // why a person must look at it (none: nobody)
  std::vector<Attempt> attempts;
  std::vector<TimelineEntry> timeline;
  std::vector<Refund> refunds;  // in creation order
};

struct CreatePayment {
  std::string id;
  int64_t amount = 0;
  Currency currency;
  std::string merchant_id;
  CaptureMethod capture_method = CaptureMethod::automatic;  // wallet payments: automatic only
  std::string payment_method;  // card: required token; wallet: must be empty
  PaymentSource source = PaymentSource::card;
  std::string customer_id;  // wallet: required; card: optional (for listing)
};

// A call the engine makes after the command that produced it is durable.
struct PspCall {
  AttemptKind kind = AttemptKind::authorization;
  std::string payment_id;
  std::string refund_id;  // refund calls only
  std::string attempt_id;
  std::string channel;
  int64_t amount = 0;
  Currency currency;
  bool capture_now = false;             // authorization with automatic capture
  std::string authorization_reference;  // capture, void, refund: the authorization attempt's id
  InstrumentKind instrument_kind = InstrumentKind::none;
  std::string instrument;  // card token, bank account, IBAN or account id
  // Top-ups and payouts: the customer whose key seals `instrument` (vault/personal_data.h;
  // `payment_id` is the flow's id). The connector path opens it just before the call.
  std::string customer_id;
  int64_t delay_ms = 0;     // wait this long before the call (a retry's backoff)
  std::string traceparent;  // of the request that started its object (empty: none)
  // Authorizations drawing on a vault card (instrument "pm_..."): the stored card,
  // ciphertext only. The connector path opens it just before the call (docs/security.md).
  std::shared_ptr<const vault::PaymentMethod> card;
};

// Routing's word on what follows an authorization that failed without charging (retryable or
// softly declined), journaled with the result: try again on `channel` after `delay_ms`, or
// (channel empty) stop and fail the payment.
struct NextTry {
  std::string channel;
  int64_t delay_ms = 0;
};

struct Effects {
  std::vector<ledger::TransferEvent> postings;  // one linked chain
  std::vector<PspCall> calls;
};

// Result codes, one per reason; every value but `ok` means nothing changed.
enum class PaymentResult : uint8_t {
  ok = 0,
  id_invalid,  // payment id: not 1-48 bytes of [A-Za-z0-9_-]
  exists,      // the payment or refund id is taken (by a payment or a refund)
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
  result_invalid,  // `pending`, a fee out of range, an over-long field or cause
  payment_method_invalid,   // card: not 1-64 bytes of [A-Za-z0-9_-]; wallet: not empty
  customer_id_invalid,      // wallet: missing; any: not a valid name
  capture_method_invalid,   // manual capture of a wallet payment
  wrong_source,             // confirm() of a wallet payment, confirm_from_wallet() of a card one
  refund_id_invalid,        // not 1-48 bytes of [A-Za-z0-9_-]
  refund_exceeds_captured,  // pending and succeeded refunds would pass the captured amount
  too_many_attempts,        // kAttemptsPerPaymentMax reached
  too_many_refunds,         // kRefundsPerPaymentMax reached
  fees_invalid,             // see is_valid(const FeeSchedule&)
  source_invalid,           // not a PaymentSource
  already_in_review,        // flag_result_rejected(): the owner is flagged for that already
};

[[nodiscard]] std::string_view status_name(PaymentStatus s);
[[nodiscard]] std::string_view attempt_status_name(AttemptStatus s);
[[nodiscard]] std::string_view refund_status_name(RefundStatus s);
[[nodiscard]] std::string_view result_name(PaymentResult r);

// A PSP's fee is keel's expense (docs/postings.md): it may pass the amount it was charged on (a
// fixed fee on a small amount) by at most this much; a fee further above the amount is not
// believed (result_problem()), so a garbled answer cannot book an absurd expense.
inline constexpr int64_t kPspFeeAboveAmountMax = 1'000'000;
// 0 <= fee <= amount + kPspFeeAboveAmountMax. The one rule for every PSP fee (payments, refunds,
// top-ups, payouts), in results and in decoded snapshots. False for a negative amount.
[[nodiscard]] bool is_valid_psp_fee(int64_t fee, int64_t amount);
// Why a PSP result for an attempt of `attempt_amount` cannot be taken, as a short snake_case
// reason for the review's evidence; empty when it can: `status_pending`, `status_invalid`,
// `fee_out_of_range`, `psp_reference_too_long`, `error_code_too_long`.
[[nodiscard]] std::string_view result_problem(const AttemptResult& r, int64_t attempt_amount);

// 1..max_length bytes of [A-Za-z0-9_-]: what a PSP takes as a reference (core/ids.h).
using ::keel::is_valid_reference;

struct PaymentDeadlines {
  int64_t confirmation_s = 24 * 3600;
  int64_t processing_s = 30 * 60;     // payments and refunds
  int64_t capture_s = 7 * 24 * 3600;  // authorization validity
  friend bool operator==(const PaymentDeadlines&, const PaymentDeadlines&) = default;
};

// Every field in 1..kDeadlineSecondsMax.
[[nodiscard]] bool is_valid(const PaymentDeadlines& d);

// The merchant's fee on one capture: basis points of the captured amount plus a fixed amount in
// the payment currency's minor units (the same number for every currency).
struct FeeRate {
  int64_t basis_points = 0;  // 0..kBasisPointsMax
  int64_t fixed_minor = 0;   // >= 0
  friend bool operator==(const FeeRate&, const FeeRate&) = default;
};

// Merchant fee rates per channel (kWalletChannel for wallet payments); `default_rate` for the
// channels not listed. The rate in force at capture time applies.
struct FeeSchedule {
  FeeRate default_rate;
  std::map<std::string, FeeRate, std::less<>> channels;
  [[nodiscard]] const FeeRate& rate_for(std::string_view channel) const;
  friend bool operator==(const FeeSchedule&, const FeeSchedule&) = default;
};

// Rates in range, channel names valid, at most kFeeChannelsMax channels.
[[nodiscard]] bool is_valid(const FeeSchedule& f);

// floor(captured * basis_points / 10,000) + fixed, never more than `captured_minor` (also when
// the sum would overflow). REQUIRES: captured_minor >= 0 and a rate in range.
[[nodiscard]] int64_t merchant_fee(const FeeRate& rate, int64_t captured_minor);

// Filters for list(); an empty field (or 0 bound) matches every payment.
struct PaymentFilter {
  std::optional<PaymentStatus> status;
  std::string merchant_id;
  std::string customer_id;
  Timestamp created_gte = 0;  // created_at >= created_gte
  Timestamp created_lt = 0;   // created_at < created_lt, when not 0
};

[[nodiscard]] bool matches(const PaymentFilter& filter, const Payment& p);

class PaymentMachine {
 public:
  // REQUIRES: is_valid(deadlines) and is_valid(fees) (configuration, checked at start-up).
  explicit PaymentMachine(PaymentDeadlines deadlines = {}, FeeSchedule fees = {});

  // A new fee schedule (a configuration change the engine journals), for later captures only:
  // fees already booked stay. `fees_invalid` if !is_valid(fees).
  PaymentResult set_fees(FeeSchedule fees);
  [[nodiscard]] const FeeSchedule& fees() const { return fees_; }
  [[nodiscard]] const PaymentDeadlines& deadlines() const { return deadlines_; }

  // Whether an id is taken outside this machine's memory (the history store's payments and
  // refunds, wallet flows): create() and refund() ask it where they check their own ids.
  using IdTaken = std::function<bool(std::string_view id)>;
  // A new payment in requires_confirmation (deadline: confirmation_s).
  PaymentResult create(const CreatePayment& request, Timestamp now, const IdTaken* taken = nullptr);
  // Card payments: requires_confirmation -> processing, with an authorization attempt on
  // `channel` whose PspCall carries the card token. `wrong_source` for a wallet payment.
  PaymentResult confirm(std::string_view id, std::string_view channel, Timestamp now,
                        Effects* effects);
  // Wallet payments: `available_minor` is the wallet's available balance, read by the engine
  // from the ledger in the same writer-thread step. If it covers the amount: posts wallet ->
  // merchant and the merchant fee (rate of kWalletChannel) and succeeds. Otherwise the payment
  // fails with error_code "insufficient_funds" and nothing is posted; both return `ok`.
  // `wrong_source` for a card payment.
  PaymentResult confirm_from_wallet(std::string_view id, int64_t available_minor, Timestamp now,
                                    Effects* effects);
  // requires_capture -> processing, with a capture attempt (amount 0 = all authorized).
  PaymentResult capture(std::string_view id, int64_t amount, Timestamp now, Effects* effects);
  // requires_confirmation -> canceled; requires_capture -> processing with a void attempt.
  PaymentResult cancel(std::string_view id, Timestamp now, Effects* effects);
  // A refund of `amount` (0 = all that remains) of a succeeded payment. Several refunds may be
  // pending at once; pending plus succeeded refunds never exceed the captured amount. A card
  // refund is pending with an attempt and a PspCall until apply_result settles it (approved:
  // posts merchant -> psp_clearing; declined or retryable: failed, the amount is free again;
  // unknown: pending, and in review past its processing deadline). A wallet refund posts
  // merchant -> wallet and succeeds at once. Fees are not returned.
  PaymentResult refund(std::string_view payment_id, std::string_view refund_id, int64_t amount,
                       Timestamp now, Effects* effects, const IdTaken* taken = nullptr);
  // Settles an attempt of a payment or of a refund. On the result that confirms a capture, books
  // the hold's post, the merchant fee and the PSP fee (`result.fee`, which may pass the amount:
  // psp_clearing then goes below zero) in one chain; a fee on any other result is recorded on
  // the attempt only. `result_invalid` (nothing changed) when result_problem() finds one or the
  // cause is too long: the caller must then flag_result_rejected(), never drop it. A retryable or
  // softly declined authorization of a payment in review fails it (its deadline has passed; nobody
  // would own it). Idempotent: a result for an attempt already settled is `stale_result`. `cause`
  // goes to the timeline (at most kCauseLengthMax bytes).
  //
  // What follows a retryable or softly declined authorization: with `next` (routing decided,
  // journaled), a new attempt on next->channel after next->delay_ms, or the payment fails when
  // next->channel is empty; without it (records written before routing), a retryable one is
  // tried again at once on the same channel up to kAuthorizationTriesMax tries and a soft
  // decline fails. Never after `unknown`: that attempt stays open until the resolver settles it.
  PaymentResult apply_result(std::string_view attempt_id, const AttemptResult& result,
                             std::string_view cause, Timestamp now, Effects* effects,
                             const NextTry* next = nullptr);
  // A PSP result for `attempt_id` (open or settled) could not be taken: flags its payment or
  // refund `psp_result_rejected` with `cause` in the timeline (at most kCauseLengthMax bytes),
  // and lifts the processing deadline of one still waiting (a person owns it now; a later valid
  // result still settles it). Moves no money. `already_in_review` if it is flagged for that.
  PaymentResult flag_result_rejected(std::string_view attempt_id, std::string_view cause,
                                     Timestamp now);
  // The attempt with this id (of a payment or a refund), if any.
  [[nodiscard]] const Attempt* find_attempt(std::string_view attempt_id) const;
  // The payment or refund id that owns the attempt (empty if none).
  [[nodiscard]] std::string attempt_owner(std::string_view attempt_id) const;
  // Deadlines due by `now`: cancel unconfirmed payments, void expired authorizations, flag
  // processing payments and pending refunds with an outstanding attempt for review, fail
  // processing payments without one. Returns the ids of the payments and refunds changed, in
  // deadline order.
  std::vector<std::string> tick(Timestamp now, Effects* effects);
  // After a restart: every pending attempt (of payments and refunds) may have reached the PSP,
  // so it becomes unknown. Returns the attempt ids the resolver must ask about.
  std::vector<std::string> mark_pending_unknown(Timestamp now);
  // Attempt ids pending or unknown (the resolver's work list), by payment id, then attempt order
  // (the payment's attempts before its refunds').
  [[nodiscard]] std::vector<std::string> outstanding_attempts() const;

  [[nodiscard]] const Payment* find(std::string_view id) const;
  [[nodiscard]] const Refund* find_refund(std::string_view refund_id) const;
  [[nodiscard]] size_t size() const { return payments_.size(); }
  // Every payment, by id (snapshot checks; O(n)).
  [[nodiscard]] std::vector<const Payment*> all() const {
    std::vector<const Payment*> out;
    out.reserve(payments_.size());
    for (const auto& entry : payments_) out.push_back(&entry.second);
    return out;
  }
  // The earliest deadline tick() has to fire, if any.
  [[nodiscard]] std::optional<Timestamp> next_deadline() const;
  // Payments and refunds flagged for review, any reason (the keel_payments_in_review gauge).
  [[nodiscard]] size_t in_review_count() const { return in_review_count_; }
  // Payments matching `filter`, ordered by id, after `starting_after` (an id; empty: from the
  // first; it need not exist). `limit` is clamped to [1, kListLimitMax]; `*has_more` (if not
  // null) tells whether more match after the last one returned. Cost: linear in the payments
  // scanned.
  [[nodiscard]] std::vector<const Payment*> list(const PaymentFilter& filter, size_t limit,
                                                 std::string_view starting_after,
                                                 bool* has_more) const;

  // Canonical encoding of all state for snapshots: every payment (by id) with its attempts,
  // timeline and refunds, and the fee schedule (changed by journaled set_fees, so it is state).
  // The deadlines are not in it: they are start-up configuration, given again to decode().
  // decode() rebuilds an equal machine (same encoding, same indexes and due deadlines), or fails
  // with a message and leaves `*out` alone if the bytes are malformed or describe a state this
  // machine cannot reach, or if `deadlines` is not valid.
  void encode(std::string* out) const;
  [[nodiscard]] static Status decode(std::string_view bytes, PaymentDeadlines deadlines,
                                     PaymentMachine* out);

  // ---- History (docs/storage.md, "Tiers") ----
  // A payment at rest: succeeded, failed or canceled, nothing open on it or its refunds (no
  // outstanding attempt, no pending refund, no deadline, no review flag). Only a refund of a
  // succeeded payment, or a PSP report on one of its attempts, changes it again.
  [[nodiscard]] static bool at_rest(const Payment& p);
  // With tracking on, the machine notes the id of every payment a call reaches to change
  // (whether or not it then changes), for the history tier; take_changed() hands those ids out
  // (ascending) and forgets them. Turning it on notes every payment in memory (one at rest
  // already must be taken too).
  void track_changes(bool on);
  [[nodiscard]] std::vector<std::string> take_changed();
  [[nodiscard]] bool changed_since_take(std::string_view id) const { return changed_.noted(id); }
  // Removes a payment at rest from memory, with its attempt and refund indexes, and returns it.
  // REQUIRES: it is here and at_rest().
  Payment remove(std::string_view id);
  // Brings back a payment the history store held: fails, changing nothing, if the record is not
  // one this machine could hold or its id, a refund id or an attempt id is taken. Noted as
  // changed.
  [[nodiscard]] Status restore(Payment p);
  // One payment's record (the bytes encode() writes for it), and back (checked as decode()
  // checks each payment).
  static void encode_payment(const Payment& p, std::string* out);
  [[nodiscard]] static Status decode_payment(std::string_view bytes, Payment* out);
  // encode() with the payments of the history store `history` (as they stood at journal
  // position `horizon`, payment_history.h) merged in by id; a payment in memory stands for its
  // record. Fails when the store does.
  [[nodiscard]] Status encode_merged(std::string* out, const KvReader& history,
                                     uint64_t horizon) const;

 private:
  // Who an attempt belongs to: a payment, and a refund of it when refund_id is not empty.
  struct AttemptOwner {
    std::string payment_id;
    std::string refund_id;
  };

  Payment* lookup(std::string_view id);
  void move_to(Payment& p, PaymentStatus to, std::string_view cause, Timestamp now);
  void move_refund(Refund& r, RefundStatus to, std::string_view cause, Timestamp now);
  PaymentResult can_add_attempt(const Payment& p) const;
  Attempt& add_attempt(Payment& p, AttemptKind kind, std::string_view channel, int64_t amount,
                       Timestamp now, Effects* effects);
  PaymentResult apply_payment_result(Payment& p, std::string_view attempt_id,
                                     const AttemptResult& result, std::string_view cause,
                                     Timestamp now, Effects* effects, const NextTry* next);
  PaymentResult apply_refund_result(Payment& p, std::string_view refund_id,
                                    const AttemptResult& result, std::string_view cause,
                                    Timestamp now, Effects* effects);
  void settle_authorization(Payment& p, const Attempt& a, bool captured, std::string_view cause,
                            Timestamp now, Effects* effects, const NextTry* next);
  void settle_capture(Payment& p, const Attempt& a, std::string_view cause, Timestamp now,
                      Effects* effects);
  void settle_void(Payment& p, const Attempt& a, std::string_view cause, Timestamp now,
                   Effects* effects);
  void book_capture(Payment& p, int64_t amount, int64_t psp_fee, Effects* effects);
  void book_merchant_fee(Payment& p, Effects* effects);
  void refund_card(Payment& p, Refund& r, Timestamp now, Effects* effects);
  void refund_wallet(Payment& p, Refund& r, Timestamp now, Effects* effects);
  void tick_payment(Payment& p, Timestamp now, Effects* effects);
  void tick_refund(Refund& r, Timestamp now);
  Refund* lookup_refund(std::string_view refund_id);

  void set_deadline(std::string_view id, Timestamp* deadline, Timestamp value);
  void set_review(ReviewReason* flag, ReviewReason value);  // keeps in_review_count_
  Status index(const Payment& p);  // decode: attempt owners, refund owners, deadlines
  void note_changed(std::string_view id) { changed_.note(id); }

  PaymentDeadlines deadlines_;
  FeeSchedule fees_;
  std::map<std::string, Payment, std::less<>> payments_;
  // (deadline, payment or refund id), earliest first. One namespace holds both kinds of id.
  std::set<std::pair<Timestamp, std::string>> due_;
  std::map<std::string, AttemptOwner, std::less<>> attempt_owner_;
  std::map<std::string, std::string, std::less<>> refund_owner_;  // refund id -> payment id
  size_t in_review_count_ = 0;
  ChangeTracker changed_;  // since the last take_changed()
};

// Ledger account ids of docs/postings.md.
[[nodiscard]] std::string psp_clearing_account(std::string_view channel, Currency c);
[[nodiscard]] std::string merchant_account(std::string_view merchant, Currency c);
[[nodiscard]] std::string wallet_account(std::string_view customer, Currency c);
[[nodiscard]] std::string fees_account(Currency c);
[[nodiscard]] std::string psp_fees_account(std::string_view channel, Currency c);

// The ledger namespaces the payments core owns (docs/security.md, "Reserved ledger namespaces"):
// accounts named like the ones above (and the system accounts money operations add: suspense,
// FX pools, bank and settlement accounts), and transfers whose id starts with the prefix of an
// object the core posts for (pay_, re_, tu_, po_, wt_ and those reserved for later flows). Their
// ids are predictable, so the raw ledger API must never create, move, post or void them: a
// transfer created there first would break the core's posting chain.
[[nodiscard]] bool is_reserved_account_id(std::string_view id);
[[nodiscard]] bool is_reserved_transfer_id(std::string_view id);

}  // namespace keel::payments
