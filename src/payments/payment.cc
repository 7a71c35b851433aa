#include "payments/payment.h"

#include <array>

#include <algorithm>

#include "core/assert.h"
#include "core/bytes.h"
#include "core/checked.h"
#include "core/codec.h"
#include "core/enum_name.h"
#include "core/ids.h"
#include "payments/codec.h"
#include "payments/payment_history.h"

namespace keel::payments {
namespace {

bool outstanding(const Attempt& a) {
  return a.status == AttemptStatus::pending || a.status == AttemptStatus::unknown;
}

bool any_outstanding(const std::vector<Attempt>& attempts) {
  return std::any_of(attempts.begin(), attempts.end(), outstanding);
}

const Attempt* approved_authorization(const Payment& p) {
  for (const Attempt& a : p.attempts) {
    if (a.kind == AttemptKind::authorization && a.status == AttemptStatus::approved) return &a;
  }
  return nullptr;
}

Attempt* attempt_in(std::vector<Attempt>& attempts, std::string_view id) {
  for (Attempt& a : attempts) {
    if (a.id == id) return &a;
  }
  return nullptr;
}

Refund* find_refund_of(Payment& p, std::string_view refund_id) {
  for (Refund& r : p.refunds) {
    if (r.id == refund_id) return &r;
  }
  return nullptr;
}

bool valid_name(std::string_view s) { return is_valid_id(s) && s.size() <= kNameLengthMax; }

bool valid_channel(std::string_view s) { return valid_name(s) && s != kWalletChannel; }

std::string attempt_id(std::string_view owner_id, size_t n) {
  return std::string(owner_id) + "_a" + std::to_string(n);
}

// a + b where the state's invariants bound the sum (refunds never pass the captured amount).
int64_t bounded_add(int64_t a, int64_t b) {
  const std::optional<int64_t> sum = checked_add(a, b);
  KEEL_ASSERT(sum.has_value());
  return *sum;
}

// What may still be refunded: captured minus pending and succeeded refunds.
int64_t refundable(const Payment& p) {
  int64_t taken = 0;
  for (const Refund& r : p.refunds) {
    if (r.status != RefundStatus::failed) taken = bounded_add(taken, r.amount);
  }
  const std::optional<int64_t> left = checked_sub(p.captured_amount, taken);
  KEEL_ASSERT(left.has_value() && *left >= 0);
  return *left;
}

ledger::TransferEvent posting(std::string id, std::string debit, std::string credit, int64_t amount,
                              Currency c, uint16_t flags) {
  KEEL_ASSERT(amount > 0);
  ledger::TransferEvent e;
  e.id = std::move(id);
  e.debit_account_id = std::move(debit);
  e.credit_account_id = std::move(credit);
  e.amount = amount;
  e.currency = c;
  e.flags = flags;
  return e;
}

ledger::TransferEvent post_or_void(std::string id, std::string pending_id, int64_t amount,
                                   uint16_t flag) {
  ledger::TransferEvent e;
  e.id = std::move(id);
  e.pending_id = std::move(pending_id);
  e.amount = amount;
  e.flags = flag;
  return e;
}

// Joins the postings into one linked chain (all or nothing in the ledger).
void link(Effects* effects) {
  auto& p = effects->postings;
  for (size_t i = 0; i + 1 < p.size(); ++i) p[i].flags |= ledger::transfer_flags::kLinked;
}

// The checks of create(), in order; also what decode() requires of a stored payment.
PaymentResult validate(const CreatePayment& r) {
  if (!is_valid_reference(r.id, kPaymentIdLengthMax)) return PaymentResult::id_invalid;
  if (r.amount <= 0) return PaymentResult::amount_invalid;
  if (!r.currency.valid()) return PaymentResult::currency_invalid;
  if (!valid_name(r.merchant_id)) return PaymentResult::merchant_id_invalid;
  if (r.source != PaymentSource::card && r.source != PaymentSource::wallet) {
    return PaymentResult::source_invalid;
  }
  if (r.capture_method != CaptureMethod::automatic && r.capture_method != CaptureMethod::manual) {
    return PaymentResult::capture_method_invalid;
  }
  if (!r.customer_id.empty() && !valid_name(r.customer_id)) {
    return PaymentResult::customer_id_invalid;
  }
  if (r.source == PaymentSource::card) {
    if (!is_valid_reference(r.payment_method, kPaymentMethodLengthMax)) {
      return PaymentResult::payment_method_invalid;
    }
    return PaymentResult::ok;
  }
  if (!r.payment_method.empty()) return PaymentResult::payment_method_invalid;
  if (r.customer_id.empty()) return PaymentResult::customer_id_invalid;
  if (r.capture_method != CaptureMethod::automatic) return PaymentResult::capture_method_invalid;
  return PaymentResult::ok;
}

// Stores a result on an outstanding attempt: `stale_result` if it is settled already,
// `result_invalid` if result_problem() finds one.
PaymentResult record_result(Attempt& a, const AttemptResult& result, Timestamp now) {
  if (!outstanding(a)) return PaymentResult::stale_result;
  if (!result_problem(result, a.amount).empty()) return PaymentResult::result_invalid;
  a.status = result.status;
  a.psp_reference = result.psp_reference;
  a.latency_ms = result.latency_ms;
  a.error_code = result.error_code;
  a.fee = result.fee;
  a.updated_at = now;
  return PaymentResult::ok;
}

}  // namespace

bool matches(const PaymentFilter& f, const Payment& p) {
  if (f.status.has_value() && p.status != *f.status) return false;
  if (!f.merchant_id.empty() && p.merchant_id != f.merchant_id) return false;
  if (!f.customer_id.empty() && p.customer_id != f.customer_id) return false;
  if (p.created_at < f.created_gte) return false;
  return f.created_lt == 0 || p.created_at < f.created_lt;
}

std::string psp_clearing_account(std::string_view channel, Currency c) {
  return "psp_clearing:" + std::string(channel) + ":" + std::string(c.code());
}

std::string merchant_account(std::string_view merchant, Currency c) {
  return "merchant:" + std::string(merchant) + ":" + std::string(c.code());
}

std::string wallet_account(std::string_view customer, Currency c) {
  return "wallet:" + std::string(customer) + ":" + std::string(c.code());
}

std::string fees_account(Currency c) { return "fees:" + std::string(c.code()); }

namespace {
constexpr std::array<std::string_view, 11> kReservedAccountPrefixes = {
    "wallet:",  "merchant:", "psp_clearing:", "psp_fees:",   "fees:",   "suspense:",
    "fx_pool:", "fx:",       "bank:",         "settlement:", "reserve:"};
constexpr std::array<std::string_view, 10> kReservedTransferPrefixes = {
    "pay_", "re_", "tu_", "po_", "wt_", "fx_", "st_", "dp_", "rc_", "sg_"};

template <size_t N>
bool starts_with_any(std::string_view id, const std::array<std::string_view, N>& prefixes) {
  for (std::string_view p : prefixes) {
    if (id.starts_with(p)) return true;
  }
  return false;
}
}  // namespace

bool is_reserved_account_id(std::string_view id) {
  return starts_with_any(id, kReservedAccountPrefixes);
}

bool is_reserved_transfer_id(std::string_view id) {
  return starts_with_any(id, kReservedTransferPrefixes);
}

std::string psp_fees_account(std::string_view channel, Currency c) {
  return "psp_fees:" + std::string(channel) + ":" + std::string(c.code());
}

bool is_valid_psp_fee(int64_t fee, int64_t amount) {
  return amount >= 0 && fee >= 0 && (fee <= amount || fee - amount <= kPspFeeAboveAmountMax);
}

std::string_view result_problem(const AttemptResult& r, int64_t attempt_amount) {
  if (r.status == AttemptStatus::pending) return "status_pending";
  if (r.status > AttemptStatus::unknown) return "status_invalid";
  if (!is_valid_psp_fee(r.fee, attempt_amount)) return "fee_out_of_range";
  if (r.psp_reference.size() > kPspReferenceLengthMax) return "psp_reference_too_long";
  if (r.error_code.size() > kErrorCodeLengthMax) return "error_code_too_long";
  return {};
}

bool is_valid(const PaymentDeadlines& d) {
  for (int64_t s : {d.confirmation_s, d.processing_s, d.capture_s}) {
    if (s < 1 || s > kDeadlineSecondsMax) return false;
  }
  return true;
}

namespace {
bool valid_rate(const FeeRate& r) {
  return r.basis_points >= 0 && r.basis_points <= kBasisPointsMax && r.fixed_minor >= 0;
}
}  // namespace

bool is_valid(const FeeSchedule& f) {
  if (!valid_rate(f.default_rate) || f.channels.size() > kFeeChannelsMax) return false;
  return std::all_of(f.channels.begin(), f.channels.end(),
                     [](const auto& kv) { return valid_name(kv.first) && valid_rate(kv.second); });
}

const FeeRate& FeeSchedule::rate_for(std::string_view channel) const {
  const auto it = channels.find(channel);
  return it == channels.end() ? default_rate : it->second;
}

int64_t merchant_fee(const FeeRate& rate, int64_t captured_minor) {
  KEEL_ASSERT(captured_minor >= 0 && valid_rate(rate));
  // floor(c * bp / 10^4) computed as (c / 10^4) * bp + (c % 10^4) * bp / 10^4: exact, and no
  // product passes c. Checked all the same; any overflow caps the fee at the captured amount.
  const auto whole = checked_mul(captured_minor / kBasisPointsMax, rate.basis_points);
  const auto part = checked_mul(captured_minor % kBasisPointsMax, rate.basis_points);
  if (!whole || !part) return captured_minor;
  const auto variable = checked_add(*whole, *part / kBasisPointsMax);
  if (!variable) return captured_minor;
  const auto total = checked_add(*variable, rate.fixed_minor);
  if (!total || *total > captured_minor) return captured_minor;
  return *total;
}

PaymentMachine::PaymentMachine(PaymentDeadlines deadlines, FeeSchedule fees)
    : deadlines_(deadlines), fees_(std::move(fees)) {
  KEEL_ASSERT(is_valid(deadlines_) && is_valid(fees_));
}

PaymentResult PaymentMachine::set_fees(FeeSchedule fees) {
  if (!is_valid(fees)) return PaymentResult::fees_invalid;
  fees_ = std::move(fees);
  return PaymentResult::ok;
}

Payment* PaymentMachine::lookup(std::string_view id) {
  const auto it = payments_.find(id);
  if (it == payments_.end()) return nullptr;
  note_changed(id);
  return &it->second;
}

const Payment* PaymentMachine::find(std::string_view id) const {
  const auto it = payments_.find(id);
  return it == payments_.end() ? nullptr : &it->second;
}

const Refund* PaymentMachine::find_refund(std::string_view refund_id) const {
  const auto owner = refund_owner_.find(refund_id);
  if (owner == refund_owner_.end()) return nullptr;
  const Payment* p = find(owner->second);
  KEEL_ASSERT(p != nullptr);
  for (const Refund& r : p->refunds) {
    if (r.id == refund_id) return &r;
  }
  KEEL_ASSERT(false);  // the index names a refund its payment does not hold
  return nullptr;
}

Refund* PaymentMachine::lookup_refund(std::string_view refund_id) {
  if (const auto owner = refund_owner_.find(refund_id); owner != refund_owner_.end()) {
    note_changed(owner->second);
  }
  return const_cast<Refund*>(find_refund(refund_id));  // *this is not const here
}

void PaymentMachine::set_deadline(std::string_view id, Timestamp* deadline, Timestamp value) {
  if (*deadline != 0) due_.erase({*deadline, std::string(id)});
  *deadline = value;
  if (value != 0) due_.insert({value, std::string(id)});
}

// A flag for review ends when the payment stops waiting on the PSP (the answer came). A payment
// flagged in another status (a PSP report contradicting a capture, say) keeps its flag through
// what the API or a deadline does to it, and waits on no timer while processing: a person owns it.
void PaymentMachine::move_to(Payment& p, PaymentStatus to, std::string_view cause, Timestamp now) {
  p.timeline.push_back({now, p.status, to, std::string(cause)});
  const bool answered = p.status == PaymentStatus::processing && to != PaymentStatus::processing;
  if (answered) set_review(&p.review, ReviewReason::none);
  p.status = to;
  Timestamp deadline = 0;
  switch (to) {
    case PaymentStatus::requires_confirmation:
      deadline = now + deadlines_.confirmation_s * kNanosPerSecond;
      break;
    case PaymentStatus::processing:
      if (p.review == ReviewReason::none)
        deadline = now + deadlines_.processing_s * kNanosPerSecond;
      break;
    case PaymentStatus::requires_capture:
      deadline = p.authorization_expires_at;
      break;
    default:
      break;
  }
  set_deadline(p.id, &p.deadline, deadline);
}

void PaymentMachine::set_review(ReviewReason* flag, ReviewReason value) {
  if (*flag == value) return;
  if (*flag == ReviewReason::none) {
    ++in_review_count_;
  } else if (value == ReviewReason::none) {
    KEEL_ASSERT(in_review_count_ > 0);
    --in_review_count_;
  }
  *flag = value;
}

std::optional<Timestamp> PaymentMachine::next_deadline() const {
  if (due_.empty()) return std::nullopt;
  return due_.begin()->first;
}

void PaymentMachine::move_refund(Refund& r, RefundStatus to, std::string_view cause,
                                 Timestamp now) {
  r.timeline.push_back({now, r.status, to, std::string(cause)});
  r.status = to;
  const bool waiting = to == RefundStatus::pending;
  set_deadline(r.id, &r.deadline, waiting ? now + deadlines_.processing_s * kNanosPerSecond : 0);
  if (!waiting) set_review(&r.review, ReviewReason::none);
}

PaymentResult PaymentMachine::can_add_attempt(const Payment& p) const {
  if (any_outstanding(p.attempts)) return PaymentResult::attempt_outstanding;
  if (p.attempts.size() >= kAttemptsPerPaymentMax) return PaymentResult::too_many_attempts;
  return PaymentResult::ok;
}

Attempt& PaymentMachine::add_attempt(Payment& p, AttemptKind kind, std::string_view channel,
                                     int64_t amount, Timestamp now, Effects* effects) {
  KEEL_ASSERT(can_add_attempt(p) == PaymentResult::ok && p.source == PaymentSource::card);
  Attempt a;
  a.id = attempt_id(p.id, p.attempts.size() + 1);
  a.kind = kind;
  a.channel = std::string(channel);
  a.amount = amount;
  a.created_at = now;
  a.updated_at = now;
  const bool indexed = attempt_owner_.emplace(a.id, AttemptOwner{p.id, ""}).second;
  KEEL_ASSERT(indexed);  // ids share one namespace: `{id}_a{n}` is never taken
  PspCall call;
  call.kind = kind;
  call.payment_id = p.id;
  call.attempt_id = a.id;
  call.channel = a.channel;
  call.amount = amount;
  call.currency = p.currency;
  if (kind == AttemptKind::authorization) {
    call.capture_now = p.capture_method == CaptureMethod::automatic;
    call.instrument_kind = InstrumentKind::card_token;
    call.instrument = p.payment_method;
  } else {
    const Attempt* authorization = approved_authorization(p);
    KEEL_ASSERT(authorization != nullptr);
    call.authorization_reference = authorization->id;
  }
  effects->calls.push_back(std::move(call));
  p.attempts.push_back(std::move(a));
  return p.attempts.back();
}

PaymentResult PaymentMachine::create(const CreatePayment& r, Timestamp now, const IdTaken* taken) {
  const PaymentResult valid = validate(r);
  if (valid != PaymentResult::ok) return valid;
  if (payments_.contains(r.id) || refund_owner_.contains(r.id) || (taken && (*taken)(r.id))) {
    return PaymentResult::exists;
  }
  Payment p;
  p.id = r.id;
  p.amount = r.amount;
  p.currency = r.currency;
  p.merchant_id = r.merchant_id;
  p.source = r.source;
  p.capture_method = r.capture_method;
  p.payment_method = r.payment_method;
  p.customer_id = r.customer_id;
  p.created_at = now;
  note_changed(r.id);
  Payment& stored = payments_.emplace(r.id, std::move(p)).first->second;
  move_to(stored, PaymentStatus::requires_confirmation, "api", now);
  return PaymentResult::ok;
}

PaymentResult PaymentMachine::confirm(std::string_view id, std::string_view channel, Timestamp now,
                                      Effects* effects) {
  Payment* p = lookup(id);
  if (p == nullptr) return PaymentResult::not_found;
  if (p->source != PaymentSource::card) return PaymentResult::wrong_source;
  if (!valid_channel(channel)) return PaymentResult::channel_invalid;
  if (p->status != PaymentStatus::requires_confirmation) return PaymentResult::invalid_state;
  add_attempt(*p, AttemptKind::authorization, channel, p->amount, now, effects);
  move_to(*p, PaymentStatus::processing, "api", now);
  return PaymentResult::ok;
}

PaymentResult PaymentMachine::confirm_from_wallet(std::string_view id, int64_t available_minor,
                                                  Timestamp now, Effects* effects) {
  Payment* p = lookup(id);
  if (p == nullptr) return PaymentResult::not_found;
  if (p->source != PaymentSource::wallet) return PaymentResult::wrong_source;
  if (p->status != PaymentStatus::requires_confirmation) return PaymentResult::invalid_state;
  if (available_minor < p->amount) {
    p->error_code = "insufficient_funds";
    move_to(*p, PaymentStatus::failed, "api", now);
    return PaymentResult::ok;
  }
  p->channel = std::string(kWalletChannel);
  p->authorized_amount = p->amount;
  p->captured_amount = p->amount;
  effects->postings.push_back(
      posting(p->id + ".charge", wallet_account(p->customer_id, p->currency),
              merchant_account(p->merchant_id, p->currency), p->amount, p->currency, 0));
  book_merchant_fee(*p, effects);
  move_to(*p, PaymentStatus::succeeded, "api", now);
  link(effects);
  return PaymentResult::ok;
}

PaymentResult PaymentMachine::capture(std::string_view id, int64_t amount, Timestamp now,
                                      Effects* effects) {
  Payment* p = lookup(id);
  if (p == nullptr) return PaymentResult::not_found;
  if (p->status != PaymentStatus::requires_capture) return PaymentResult::invalid_state;
  if (amount < 0) return PaymentResult::amount_invalid;
  if (amount > p->authorized_amount) return PaymentResult::capture_exceeds_authorized;
  const PaymentResult can = can_add_attempt(*p);
  if (can != PaymentResult::ok) return can;
  const std::string channel = p->channel;
  add_attempt(*p, AttemptKind::capture, channel, amount == 0 ? p->authorized_amount : amount, now,
              effects);
  move_to(*p, PaymentStatus::processing, "api", now);
  return PaymentResult::ok;
}

PaymentResult PaymentMachine::cancel(std::string_view id, Timestamp now, Effects* effects) {
  Payment* p = lookup(id);
  if (p == nullptr) return PaymentResult::not_found;
  if (p->status == PaymentStatus::requires_confirmation) {
    move_to(*p, PaymentStatus::canceled, "api", now);
    return PaymentResult::ok;
  }
  if (p->status != PaymentStatus::requires_capture) return PaymentResult::invalid_state;
  const PaymentResult can = can_add_attempt(*p);
  if (can != PaymentResult::ok) return can;
  const std::string channel = p->channel;
  add_attempt(*p, AttemptKind::void_authorization, channel, p->authorized_amount, now, effects);
  move_to(*p, PaymentStatus::processing, "api", now);
  return PaymentResult::ok;
}

PaymentResult PaymentMachine::refund(std::string_view payment_id, std::string_view refund_id,
                                     int64_t amount, Timestamp now, Effects* effects,
                                     const IdTaken* taken) {
  if (!is_valid_reference(refund_id, kPaymentIdLengthMax)) return PaymentResult::refund_id_invalid;
  if (amount < 0) return PaymentResult::amount_invalid;
  Payment* p = lookup(payment_id);
  if (p == nullptr) return PaymentResult::not_found;
  if (p->status != PaymentStatus::succeeded) return PaymentResult::invalid_state;
  if (refund_owner_.contains(refund_id) || payments_.contains(refund_id) ||
      (taken && (*taken)(refund_id))) {
    return PaymentResult::exists;
  }
  if (p->refunds.size() >= kRefundsPerPaymentMax) return PaymentResult::too_many_refunds;
  const int64_t left = refundable(*p);
  const int64_t take = amount == 0 ? left : amount;
  if (take == 0 || take > left) return PaymentResult::refund_exceeds_captured;
  Refund r;
  r.id = std::string(refund_id);
  r.payment_id = p->id;
  r.amount = take;
  r.created_at = now;
  refund_owner_.emplace(r.id, p->id);
  p->refunds.push_back(std::move(r));
  Refund& stored = p->refunds.back();
  move_refund(stored, RefundStatus::pending, "api", now);
  if (p->source == PaymentSource::card) {
    refund_card(*p, stored, now, effects);
  } else {
    refund_wallet(*p, stored, now, effects);
  }
  link(effects);
  return PaymentResult::ok;
}

void PaymentMachine::refund_card(Payment& p, Refund& r, Timestamp now, Effects* effects) {
  const Attempt* authorization = approved_authorization(p);
  KEEL_ASSERT(authorization != nullptr);
  Attempt a;
  a.id = attempt_id(r.id, 1);
  a.kind = AttemptKind::refund;
  a.channel = p.channel;
  a.amount = r.amount;
  a.created_at = now;
  a.updated_at = now;
  const bool indexed = attempt_owner_.emplace(a.id, AttemptOwner{p.id, r.id}).second;
  KEEL_ASSERT(indexed);
  PspCall call;
  call.kind = AttemptKind::refund;
  call.payment_id = p.id;
  call.refund_id = r.id;
  call.attempt_id = a.id;
  call.channel = a.channel;
  call.amount = a.amount;
  call.currency = p.currency;
  call.authorization_reference = authorization->id;
  effects->calls.push_back(std::move(call));
  r.attempts.push_back(std::move(a));
}

void PaymentMachine::refund_wallet(Payment& p, Refund& r, Timestamp now, Effects* effects) {
  effects->postings.push_back(posting(r.id + ".refund", merchant_account(p.merchant_id, p.currency),
                                      wallet_account(p.customer_id, p.currency), r.amount,
                                      p.currency, 0));
  p.refunded_amount = bounded_add(p.refunded_amount, r.amount);
  move_refund(r, RefundStatus::succeeded, "api", now);
}

PaymentResult PaymentMachine::apply_result(std::string_view attempt_id, const AttemptResult& result,
                                           std::string_view cause, Timestamp now, Effects* effects,
                                           const NextTry* next) {
  if (cause.size() > kCauseLengthMax) return PaymentResult::result_invalid;
  const auto owner = attempt_owner_.find(attempt_id);
  if (owner == attempt_owner_.end()) return PaymentResult::attempt_not_found;
  Payment* p = lookup(owner->second.payment_id);
  KEEL_ASSERT(p != nullptr);
  if (owner->second.refund_id.empty()) {
    return apply_payment_result(*p, attempt_id, result, cause, now, effects, next);
  }
  return apply_refund_result(*p, owner->second.refund_id, result, cause, now, effects);
}

PaymentResult PaymentMachine::apply_payment_result(Payment& p, std::string_view attempt_id,
                                                   const AttemptResult& result,
                                                   std::string_view cause, Timestamp now,
                                                   Effects* effects, const NextTry* next) {
  Attempt* a = attempt_in(p.attempts, attempt_id);
  KEEL_ASSERT(a != nullptr);
  const PaymentResult recorded = record_result(*a, result, now);
  if (recorded != PaymentResult::ok) return recorded;
  if (result.status == AttemptStatus::unknown) return PaymentResult::ok;  // the resolver's now
  const Attempt settled = *a;
  switch (settled.kind) {
    case AttemptKind::authorization:
      settle_authorization(p, settled, result.captured, cause, now, effects, next);
      break;
    case AttemptKind::capture:
      settle_capture(p, settled, cause, now, effects);
      break;
    case AttemptKind::void_authorization:
      settle_void(p, settled, cause, now, effects);
      break;
    case AttemptKind::refund:
    case AttemptKind::payout:
    case AttemptKind::topup:
      KEEL_ASSERT(false);  // refund attempts belong to refunds; the others to other machines
  }
  link(effects);
  return PaymentResult::ok;
}

PaymentResult PaymentMachine::apply_refund_result(Payment& p, std::string_view refund_id,
                                                  const AttemptResult& result,
                                                  std::string_view cause, Timestamp now,
                                                  Effects* effects) {
  Refund* r = find_refund_of(p, refund_id);
  KEEL_ASSERT(r != nullptr && r->attempts.size() == 1);
  Attempt& a = r->attempts.back();
  const PaymentResult recorded = record_result(a, result, now);
  if (recorded != PaymentResult::ok) return recorded;
  if (result.status == AttemptStatus::unknown) return PaymentResult::ok;
  if (result.status != AttemptStatus::approved) {
    move_refund(*r, RefundStatus::failed, cause, now);  // nothing moved: the amount is free again
    return PaymentResult::ok;
  }
  effects->postings.push_back(
      posting(r->id + ".refund", merchant_account(p.merchant_id, p.currency),
              psp_clearing_account(a.channel, p.currency), r->amount, p.currency, 0));
  p.refunded_amount = bounded_add(p.refunded_amount, r->amount);
  move_refund(*r, RefundStatus::succeeded, cause, now);
  link(effects);
  return PaymentResult::ok;
}

void PaymentMachine::settle_authorization(Payment& p, const Attempt& a, bool captured,
                                          std::string_view cause, Timestamp now, Effects* effects,
                                          const NextTry* next) {
  switch (a.status) {
    case AttemptStatus::approved:
      p.authorized_amount = a.amount;
      p.channel = a.channel;
      p.authorization_expires_at = now + deadlines_.capture_s * kNanosPerSecond;
      effects->postings.push_back(posting(p.id + ".hold",
                                          psp_clearing_account(a.channel, p.currency),
                                          merchant_account(p.merchant_id, p.currency), a.amount,
                                          p.currency, ledger::transfer_flags::kPending));
      // Manual capture but the PSP captured at once all the same: the books follow the PSP.
      if (p.capture_method == CaptureMethod::automatic || captured) {
        book_capture(p, a.amount, a.fee, effects);
        move_to(p, PaymentStatus::succeeded, cause, now);
      } else {
        move_to(p, PaymentStatus::requires_capture, cause, now);
      }
      return;
    case AttemptStatus::declined_hard:
      p.error_code = a.error_code;
      move_to(p, PaymentStatus::failed, cause, now);
      return;
    default: {
      // Nothing was charged (retryable, or a soft decline). A payment in review has passed its
      // deadline: nobody would own another try, so it fails.
      const bool may_try =
          p.review == ReviewReason::none && can_add_attempt(p) == PaymentResult::ok;
      if (next != nullptr) {
        // Routing's journaled choice: another try (failover or a retry after its backoff).
        if (may_try && valid_channel(next->channel) && next->delay_ms >= 0) {
          add_attempt(p, AttemptKind::authorization, next->channel, p.amount, now, effects);
          effects->calls.back().delay_ms = next->delay_ms;
          return;
        }
      } else {
        // Records from before routing: retryable tries again at once on the same channel, up
        // to kAuthorizationTriesMax tries in all; a soft decline fails.
        size_t tries = 0;
        for (const Attempt& t : p.attempts) tries += t.kind == AttemptKind::authorization ? 1 : 0;
        if (a.status == AttemptStatus::retryable && tries < kAuthorizationTriesMax && may_try) {
          add_attempt(p, AttemptKind::authorization, a.channel, p.amount, now, effects);
          return;
        }
      }
      p.error_code =
          a.error_code.empty() ? std::string(attempt_status_name(a.status)) : a.error_code;
      move_to(p, PaymentStatus::failed, cause, now);
      return;
    }
  }
}

void PaymentMachine::settle_capture(Payment& p, const Attempt& a, std::string_view cause,
                                    Timestamp now, Effects* effects) {
  if (a.status == AttemptStatus::approved) {
    book_capture(p, a.amount, a.fee, effects);
    move_to(p, PaymentStatus::succeeded, cause, now);
    return;
  }
  move_to(p, PaymentStatus::requires_capture, cause, now);  // the authorization still stands
}

void PaymentMachine::settle_void(Payment& p, const Attempt& a, std::string_view cause,
                                 Timestamp now, Effects* effects) {
  if (a.status == AttemptStatus::approved) {
    effects->postings.push_back(
        post_or_void(p.id + ".void", p.id + ".hold", 0, ledger::transfer_flags::kVoidPending));
    move_to(p, PaymentStatus::canceled, cause, now);
    return;
  }
  move_to(p, PaymentStatus::requires_capture, cause, now);
}

// The post of the hold, the merchant fee and the PSP fee (docs/postings.md flow 3).
void PaymentMachine::book_capture(Payment& p, int64_t amount, int64_t psp_fee, Effects* effects) {
  KEEL_ASSERT(amount > 0 && amount <= p.authorized_amount && psp_fee >= 0);
  effects->postings.push_back(post_or_void(p.id + ".capture", p.id + ".hold", amount,
                                           ledger::transfer_flags::kPostPending));
  p.captured_amount = amount;
  book_merchant_fee(p, effects);
  p.psp_fee = psp_fee;
  if (psp_fee > 0) {
    effects->postings.push_back(posting(p.id + ".psp_fee", psp_fees_account(p.channel, p.currency),
                                        psp_clearing_account(p.channel, p.currency), psp_fee,
                                        p.currency, 0));
  }
}

void PaymentMachine::book_merchant_fee(Payment& p, Effects* effects) {
  p.merchant_fee = merchant_fee(fees_.rate_for(p.channel), p.captured_amount);
  if (p.merchant_fee == 0) return;
  effects->postings.push_back(posting(p.id + ".fee", merchant_account(p.merchant_id, p.currency),
                                      fees_account(p.currency), p.merchant_fee, p.currency, 0));
}

std::vector<std::string> PaymentMachine::tick(Timestamp now, Effects* effects) {
  std::vector<std::string> changed;
  while (!due_.empty() && due_.begin()->first <= now) {
    const std::pair<Timestamp, std::string> due = *due_.begin();
    changed.push_back(due.second);
    if (Payment* p = lookup(due.second)) {
      tick_payment(*p, now, effects);
    } else {
      Refund* r = lookup_refund(due.second);
      KEEL_ASSERT(r != nullptr);
      tick_refund(*r, now);
    }
    KEEL_ASSERT(!due_.contains(due));  // every deadline handled moves on
  }
  link(effects);
  return changed;
}

void PaymentMachine::tick_payment(Payment& p, Timestamp now, Effects* effects) {
  switch (p.status) {
    case PaymentStatus::requires_confirmation:
      move_to(p, PaymentStatus::canceled, "deadline", now);
      return;
    case PaymentStatus::requires_capture:  // the authorization expired at the PSP too
      effects->postings.push_back(
          post_or_void(p.id + ".void", p.id + ".hold", 0, ledger::transfer_flags::kVoidPending));
      move_to(p, PaymentStatus::canceled, "deadline", now);
      return;
    case PaymentStatus::processing:
      if (any_outstanding(p.attempts)) {
        // Never silently processing: an operator or a late answer ends it.
        set_review(&p.review, ReviewReason::deadline_unknown);
        p.timeline.push_back({now, p.status, p.status, std::string(kDeadlineReviewCause)});
        set_deadline(p.id, &p.deadline, 0);
      } else {
        p.error_code = p.attempts.back().error_code;
        move_to(p, PaymentStatus::failed, "deadline", now);
      }
      return;
    default:
      KEEL_ASSERT(false);  // terminal states have no deadline
  }
}

void PaymentMachine::tick_refund(Refund& r, Timestamp now) {
  KEEL_ASSERT(r.status == RefundStatus::pending && any_outstanding(r.attempts));
  set_review(&r.review, ReviewReason::deadline_unknown);
  r.timeline.push_back({now, r.status, r.status, std::string(kDeadlineReviewCause)});
  set_deadline(r.id, &r.deadline, 0);
}

const Attempt* PaymentMachine::find_attempt(std::string_view attempt_id) const {
  const auto owner = attempt_owner_.find(attempt_id);
  if (owner == attempt_owner_.end()) return nullptr;
  const Payment* p = find(owner->second.payment_id);
  KEEL_ASSERT(p != nullptr);
  const std::vector<Attempt>* attempts = &p->attempts;
  if (!owner->second.refund_id.empty()) attempts = &find_refund(owner->second.refund_id)->attempts;
  for (const Attempt& a : *attempts) {
    if (a.id == attempt_id) return &a;
  }
  KEEL_ASSERT(false);  // the index names an attempt its owner does not hold
  return nullptr;
}

std::string PaymentMachine::attempt_owner(std::string_view attempt_id) const {
  const auto owner = attempt_owner_.find(attempt_id);
  if (owner == attempt_owner_.end()) return {};
  return owner->second.refund_id.empty() ? owner->second.payment_id : owner->second.refund_id;
}

PaymentResult PaymentMachine::flag_result_rejected(std::string_view attempt_id,
                                                   std::string_view cause, Timestamp now) {
  if (cause.empty() || cause.size() > kCauseLengthMax) return PaymentResult::result_invalid;
  const auto owner = attempt_owner_.find(attempt_id);
  if (owner == attempt_owner_.end()) return PaymentResult::attempt_not_found;
  Payment* p = lookup(owner->second.payment_id);
  KEEL_ASSERT(p != nullptr);
  constexpr ReviewReason kRejected = ReviewReason::psp_result_rejected;
  if (!owner->second.refund_id.empty()) {
    Refund* r = find_refund_of(*p, owner->second.refund_id);
    KEEL_ASSERT(r != nullptr);
    if (r->review == kRejected) return PaymentResult::already_in_review;
    set_review(&r->review, kRejected);
    r->timeline.push_back({now, r->status, r->status, std::string(cause)});
    set_deadline(r->id, &r->deadline, 0);
    return PaymentResult::ok;
  }
  if (p->review == kRejected) return PaymentResult::already_in_review;
  set_review(&p->review, kRejected);
  p->timeline.push_back({now, p->status, p->status, std::string(cause)});
  // A payment waiting on the PSP no longer waits on a timer; other deadlines (confirmation,
  // authorization expiry) still fire, and move it on.
  if (p->status == PaymentStatus::processing) set_deadline(p->id, &p->deadline, 0);
  return PaymentResult::ok;
}

std::vector<std::string> PaymentMachine::mark_pending_unknown(Timestamp now) {
  std::vector<std::string> ids;
  const auto mark = [&](std::vector<Attempt>& attempts) {
    bool marked = false;
    for (Attempt& a : attempts) {
      if (a.status != AttemptStatus::pending) continue;
      a.status = AttemptStatus::unknown;
      a.updated_at = now;
      ids.push_back(a.id);
      marked = true;
    }
    return marked;
  };
  for (auto& [id, p] : payments_) {
    if (mark(p.attempts)) p.timeline.push_back({now, p.status, p.status, "restart"});
    for (Refund& r : p.refunds) {
      if (mark(r.attempts)) r.timeline.push_back({now, r.status, r.status, "restart"});
    }
  }
  return ids;
}

std::vector<std::string> PaymentMachine::outstanding_attempts() const {
  std::vector<std::string> ids;
  const auto collect = [&](const std::vector<Attempt>& attempts) {
    for (const Attempt& a : attempts) {
      if (outstanding(a)) ids.push_back(a.id);
    }
  };
  for (const auto& [id, p] : payments_) {
    collect(p.attempts);
    for (const Refund& r : p.refunds) collect(r.attempts);
  }
  return ids;
}

std::vector<const Payment*> PaymentMachine::list(const PaymentFilter& filter, size_t limit,
                                                 std::string_view starting_after,
                                                 bool* has_more) const {
  limit = std::clamp<size_t>(limit, 1, kListLimitMax);
  std::vector<const Payment*> page;
  bool more = false;
  auto it = starting_after.empty() ? payments_.begin() : payments_.upper_bound(starting_after);
  for (; it != payments_.end(); ++it) {
    if (!matches(filter, it->second)) continue;
    if (page.size() == limit) {
      more = true;
      break;
    }
    page.push_back(&it->second);
  }
  if (has_more != nullptr) *has_more = more;
  return page;
}

// ---- Snapshot codec -------------------------------------------------------------------------
//
// Version 1, little-endian (core/bytes.h):
//   u32 version;
//   fees: rate, u32 count, count x (str16 channel, rate)       rate = i64 basis_points, fixed_minor
//   u64 count, count x payment (by id):
//     str16 id, i64 amount, u16 currency, str16 merchant_id, u8 source, u8 capture_method,
//     str16 payment_method, str16 customer_id, u8 status, i64 authorized, captured, refunded,
//     merchant_fee, psp_fee, str16 channel, str16 error_code, i64 created_at, deadline,
//     authorization_expires_at, u8 review, attempts, timeline, u32 count x refund
//   refund: str16 id, i64 amount, u8 status, i64 created_at, deadline, u8 review, attempts,
//     timeline
//   attempts: u32 count x (str16 id, u8 kind, str16 channel, u8 status, i64 amount, fee,
//     str16 psp_reference, str16 error_code, i64 created_at, updated_at)
//   timeline: u32 count x (i64 at, u8 from, u8 to, str16 cause)
// The indexes (attempt owners, refund owners, due deadlines) are rebuilt, not stored.
// `review` is a ReviewReason; it was a bool (in_review) before psp_result_rejected existed, and
// true was deadline_unknown's value, so older snapshots read the same.

namespace {

constexpr uint32_t kEncodingVersion = 2;  // 2: attempts carry their latency

template <typename E>
uint8_t u8_of(E e) {
  return static_cast<uint8_t>(e);
}

void write_attempts(ByteWriter& w, const std::vector<Attempt>& attempts) {
  w.u32(static_cast<uint32_t>(attempts.size()));
  for (const Attempt& a : attempts) encode_attempt(w, a);
}

template <typename Entry>
void write_timeline(ByteWriter& w, const std::vector<Entry>& timeline) {
  w.u32(static_cast<uint32_t>(timeline.size()));
  for (const Entry& e : timeline) {
    w.i64(e.at);
    w.u8(u8_of(e.from));
    w.u8(u8_of(e.to));
    w.str16(e.cause);
  }
}

void write_refund(ByteWriter& w, const Refund& r) {
  w.str16(r.id);
  w.i64(r.amount);
  w.u8(u8_of(r.status));
  w.i64(r.created_at);
  w.i64(r.deadline);
  w.u8(u8_of(r.review));
  write_attempts(w, r.attempts);
  write_timeline(w, r.timeline);
}

void write_payment(ByteWriter& w, const Payment& p) {
  w.str16(p.id);
  w.i64(p.amount);
  write_currency(w, p.currency);
  w.str16(p.merchant_id);
  w.u8(u8_of(p.source));
  w.u8(u8_of(p.capture_method));
  w.str16(p.payment_method);
  w.str16(p.customer_id);
  w.u8(u8_of(p.status));
  for (int64_t v :
       {p.authorized_amount, p.captured_amount, p.refunded_amount, p.merchant_fee, p.psp_fee}) {
    w.i64(v);
  }
  w.str16(p.channel);
  w.str16(p.error_code);
  w.i64(p.created_at);
  w.i64(p.deadline);
  w.i64(p.authorization_expires_at);
  w.u8(u8_of(p.review));
  write_attempts(w, p.attempts);
  write_timeline(w, p.timeline);
  w.u32(static_cast<uint32_t>(p.refunds.size()));
  for (const Refund& r : p.refunds) write_refund(w, r);
}

bool read_attempts(ByteReader& r, std::vector<Attempt>* out) {
  uint32_t n = 0;
  if (!r.u32(&n) || n > kAttemptsPerPaymentMax) return false;
  for (uint32_t i = 0; i < n; ++i) {
    Attempt a;
    if (!decode_attempt(r, &a)) return false;
    out->push_back(std::move(a));
  }
  return true;
}

template <typename Entry, typename State>
bool read_timeline(ByteReader& r, State last, std::vector<Entry>* out) {
  uint32_t n = 0;
  if (!r.u32(&n)) return false;
  for (uint32_t i = 0; i < n; ++i) {
    Entry e;
    const bool ok = r.i64(&e.at) && read_enum(r, last, &e.from) && read_enum(r, last, &e.to) &&
                    r.str16(&e.cause);
    if (!ok) return false;
    out->push_back(std::move(e));
  }
  return true;
}

bool read_refund(ByteReader& r, const std::string& payment_id, Refund* out) {
  out->payment_id = payment_id;
  return r.str16(&out->id) && r.i64(&out->amount) &&
         read_enum(r, RefundStatus::failed, &out->status) && r.i64(&out->created_at) &&
         r.i64(&out->deadline) && read_enum(r, review::kReviewReasonLast, &out->review) &&
         read_attempts(r, &out->attempts) && read_timeline(r, RefundStatus::failed, &out->timeline);
}

bool read_payment(ByteReader& r, Payment* p) {
  bool ok = r.str16(&p->id) && r.i64(&p->amount) && read_currency(r, &p->currency) &&
            r.str16(&p->merchant_id) && read_enum(r, PaymentSource::wallet, &p->source) &&
            read_enum(r, CaptureMethod::manual, &p->capture_method) &&
            r.str16(&p->payment_method) && r.str16(&p->customer_id) &&
            read_enum(r, PaymentStatus::canceled, &p->status);
  for (int64_t* v : {&p->authorized_amount, &p->captured_amount, &p->refunded_amount,
                     &p->merchant_fee, &p->psp_fee}) {
    ok = ok && r.i64(v);
  }
  ok = ok && r.str16(&p->channel) && r.str16(&p->error_code) && r.i64(&p->created_at) &&
       r.i64(&p->deadline) && r.i64(&p->authorization_expires_at) &&
       read_enum(r, review::kReviewReasonLast, &p->review) && read_attempts(r, &p->attempts) &&
       read_timeline(r, PaymentStatus::canceled, &p->timeline);
  uint32_t refunds = 0;
  if (!ok || !r.u32(&refunds) || refunds > kRefundsPerPaymentMax) return false;
  for (uint32_t i = 0; i < refunds; ++i) {
    Refund refund;
    if (!read_refund(r, p->id, &refund)) return false;
    p->refunds.push_back(std::move(refund));
  }
  return true;
}

// The problems below name what a decoded payment breaks; nullptr when this machine could have
// produced it. They keep a corrupt snapshot from reaching a state the calls assert against.

const char* attempts_problem(const std::vector<Attempt>& attempts, std::string_view owner_id,
                             bool of_refund) {
  for (size_t i = 0; i < attempts.size(); ++i) {
    const Attempt& a = attempts[i];
    if (a.id != attempt_id(owner_id, i + 1)) return "attempt id";
    const bool kind_ok =
        of_refund ? a.kind == AttemptKind::refund : a.kind <= AttemptKind::void_authorization;
    if (!kind_ok || !valid_channel(a.channel)) return "attempt kind or channel";
    if (a.amount <= 0 || !is_valid_psp_fee(a.fee, a.amount)) return "attempt amounts";
    if (a.psp_reference.size() > kPspReferenceLengthMax ||
        a.error_code.size() > kErrorCodeLengthMax) {
      return "attempt fields too long";
    }
    if (outstanding(a) && i + 1 != attempts.size()) return "outstanding attempt not the last";
  }
  return nullptr;
}

const char* status_problem(const Payment& p) {
  const bool waiting = any_outstanding(p.attempts);
  const bool authorized = approved_authorization(p) != nullptr;
  // deadline_unknown only while processing with an open attempt; psp_result_rejected anywhere.
  if (p.review == ReviewReason::deadline_unknown &&
      (p.status != PaymentStatus::processing || !waiting)) {
    return "review flag";
  }
  if (p.source == PaymentSource::wallet && !p.attempts.empty()) return "wallet with attempts";
  if (p.status >= PaymentStatus::succeeded && (waiting || p.deadline != 0)) {
    return "terminal payment waiting";
  }
  switch (p.status) {
    case PaymentStatus::requires_confirmation:
      return p.attempts.empty() && p.deadline != 0 ? nullptr : "unconfirmed with attempts";
    case PaymentStatus::processing:
      if (p.attempts.empty() || (p.deadline != 0) == (p.review != ReviewReason::none)) {
        return "processing deadline";
      }
      if (authorized && !(waiting && p.attempts.back().kind != AttemptKind::authorization)) {
        return "processing an authorized payment without a capture or void";
      }
      return nullptr;
    case PaymentStatus::requires_capture:
      return authorized && !waiting && p.deadline == p.authorization_expires_at && p.deadline != 0
                 ? nullptr
                 : "requires_capture without an authorization";
    case PaymentStatus::succeeded:
      return (authorized || p.source == PaymentSource::wallet) && p.captured_amount > 0
                 ? nullptr
                 : "succeeded without a capture";
    case PaymentStatus::failed:
    case PaymentStatus::canceled:
      return nullptr;
    case PaymentStatus::requires_action:
      return "requires_action is not produced yet";
  }
  return "status";
}

const char* refund_problem(const Payment& p, const Refund& r) {
  if (!is_valid_reference(r.id, kPaymentIdLengthMax) || r.amount <= 0) return "refund fields";
  const bool waiting = r.status == RefundStatus::pending;
  const bool flagged = r.review != ReviewReason::none;
  if (waiting ? (r.deadline != 0) == flagged
              : (r.deadline != 0 || r.review == ReviewReason::deadline_unknown)) {
    return "refund deadline";
  }
  if (p.source == PaymentSource::wallet) {
    return r.attempts.empty() && r.status == RefundStatus::succeeded ? nullptr : "wallet refund";
  }
  if (r.attempts.size() != 1) return "card refund without its attempt";
  if (const char* problem = attempts_problem(r.attempts, r.id, true)) return problem;
  const Attempt& a = r.attempts[0];
  if (a.amount != r.amount || a.channel != p.channel) return "refund attempt";
  const bool consistent = waiting ? outstanding(a)
                                  : !outstanding(a) && (r.status == RefundStatus::succeeded) ==
                                                           (a.status == AttemptStatus::approved);
  return consistent ? nullptr : "refund status";
}

// Authorizations are for the whole amount, captures within the authorization, voids of all of
// it; a card payment is authorized for its amount once an authorization is approved.
const char* attempt_amounts_problem(const Payment& p) {
  const bool authorized = approved_authorization(p) != nullptr;
  if (p.source == PaymentSource::wallet) {
    const int64_t paid = p.status == PaymentStatus::succeeded ? p.amount : 0;
    return p.authorized_amount == paid && p.captured_amount == paid ? nullptr : "wallet amounts";
  }
  if (p.authorized_amount != (authorized ? p.amount : 0)) return "authorized amount";
  for (const Attempt& a : p.attempts) {
    const bool ok = a.kind == AttemptKind::authorization ? a.amount == p.amount
                    : a.kind == AttemptKind::capture     ? a.amount <= p.authorized_amount
                                                         : a.amount == p.authorized_amount;
    if (!ok) return "attempt amount";
  }
  return nullptr;
}

const char* amounts_problem(const Payment& p) {
  if (p.captured_amount < 0 || p.captured_amount > p.authorized_amount ||
      p.authorized_amount > p.amount) {
    return "amounts";
  }
  if (const char* problem = attempt_amounts_problem(p)) return problem;
  if (p.merchant_fee < 0 || p.merchant_fee > p.captured_amount ||
      !is_valid_psp_fee(p.psp_fee, p.captured_amount)) {
    return "fees";
  }
  if (!p.refunds.empty() && p.status != PaymentStatus::succeeded) return "refunds of no capture";
  int64_t taken = 0;
  int64_t refunded = 0;
  for (const Refund& r : p.refunds) {
    if (const char* problem = refund_problem(p, r)) return problem;
    if (r.status == RefundStatus::failed) continue;
    const auto t = checked_add(taken, r.amount);
    if (!t || *t > p.captured_amount) return "refunds exceed the captured amount";
    taken = *t;
    if (r.status == RefundStatus::succeeded) refunded += r.amount;  // <= taken: no overflow
  }
  return refunded == p.refunded_amount ? nullptr : "refunded amount";
}

const char* payment_problem(const Payment& p) {
  const CreatePayment request{p.id,          p.amount,         p.currency,
                              p.merchant_id, p.capture_method, p.payment_method,
                              p.source,      p.customer_id};
  if (validate(request) != PaymentResult::ok) return "request fields";
  const Attempt* authorization = approved_authorization(p);
  std::string_view channel;
  if (p.source == PaymentSource::wallet && p.status == PaymentStatus::succeeded) {
    channel = kWalletChannel;
  } else if (authorization != nullptr) {
    channel = authorization->channel;
  }
  if (p.channel != channel || p.error_code.size() > kErrorCodeLengthMax) return "channel or error";
  if (const char* problem = attempts_problem(p.attempts, p.id, false)) return problem;
  if (const char* problem = status_problem(p)) return problem;
  return amounts_problem(p);
}

}  // namespace

void PaymentMachine::encode(std::string* out) const {
  ByteWriter w(out);
  w.u32(kEncodingVersion);
  encode_fees(w, fees_);
  w.u64(payments_.size());
  for (const auto& [id, p] : payments_) write_payment(w, p);
}

bool PaymentMachine::at_rest(const Payment& p) {
  if (p.status != PaymentStatus::succeeded && p.status != PaymentStatus::failed &&
      p.status != PaymentStatus::canceled) {
    return false;
  }
  if (p.deadline != 0 || p.review != ReviewReason::none || any_outstanding(p.attempts)) {
    return false;
  }
  return std::all_of(p.refunds.begin(), p.refunds.end(), [](const Refund& r) {
    return r.status != RefundStatus::pending && r.deadline == 0 && r.review == ReviewReason::none &&
           !any_outstanding(r.attempts);
  });
}

void PaymentMachine::track_changes(bool on) { changed_.start(on, payments_); }

std::vector<std::string> PaymentMachine::take_changed() { return changed_.take(); }

Payment PaymentMachine::remove(std::string_view id) {
  const auto it = payments_.find(id);
  KEEL_ASSERT(it != payments_.end() && at_rest(it->second));
  Payment p = std::move(it->second);
  payments_.erase(it);
  for (const Attempt& a : p.attempts) KEEL_ASSERT(attempt_owner_.erase(a.id) == 1);
  for (const Refund& r : p.refunds) {
    KEEL_ASSERT(refund_owner_.erase(r.id) == 1);
    for (const Attempt& a : r.attempts) KEEL_ASSERT(attempt_owner_.erase(a.id) == 1);
  }
  return p;
}

Status PaymentMachine::restore(Payment p) {
  if (const char* problem = payment_problem(p)) {
    return Status::error("payments: payment " + p.id + ": " + problem);
  }
  // Its ids (the payment's, its refunds', their attempts') are distinct and none is in memory.
  std::set<std::string_view> ids;
  bool clash = false;
  const auto claim = [&](const std::string& id) {
    clash = clash || !ids.insert(id).second || payments_.contains(id) ||
            refund_owner_.contains(id) || attempt_owner_.contains(id);
  };
  claim(p.id);
  for (const Attempt& a : p.attempts) claim(a.id);
  for (const Refund& r : p.refunds) {
    claim(r.id);
    for (const Attempt& a : r.attempts) claim(a.id);
  }
  if (clash) return Status::error("payments: payment " + p.id + " clashes with one in memory");
  const Status indexed = index(p);
  KEEL_ASSERT(indexed.is_ok());  // no clash, checked above
  note_changed(p.id);
  std::string id = p.id;
  payments_.emplace(std::move(id), std::move(p));
  return Status::ok();
}

void PaymentMachine::encode_payment(const Payment& p, std::string* out) {
  ByteWriter w(out);
  write_payment(w, p);
}

Status PaymentMachine::decode_payment(std::string_view bytes, Payment* out) {
  ByteReader r(bytes);
  Payment p;
  if (!read_payment(r, &p) || !r.at_end()) return Status::error("payments: malformed record");
  if (const char* problem = payment_problem(p)) {
    return Status::error("payments: payment " + p.id + ": " + problem);
  }
  *out = std::move(p);
  return Status::ok();
}

Status PaymentMachine::encode_merged(std::string* out, const KvReader& history,
                                     uint64_t horizon) const {
  std::string records;
  ByteWriter each(&records);
  uint64_t count = 0;
  const Status s = payment_history::merge_by_id(
      payments_, &history, payment_history::Kind::payment, horizon,
      [&](const std::string&, const Payment& p) {
        write_payment(each, p);
        ++count;
      },
      [&](std::string_view, std::string_view record) {
        each.raw(record.data(), record.size());
        ++count;
      });
  if (!s.is_ok()) return s;
  ByteWriter w(out);
  w.u32(kEncodingVersion);
  encode_fees(w, fees_);
  w.u64(count);
  w.raw(records.data(), records.size());
  return Status::ok();
}

Status PaymentMachine::index(const Payment& p) {
  const auto own = [&](const Attempt& a, const std::string& refund_id) {
    return attempt_owner_.emplace(a.id, AttemptOwner{p.id, refund_id}).second;
  };
  for (const Attempt& a : p.attempts) {
    if (!own(a, "")) return Status::error("payments: attempt " + a.id + " twice");
  }
  if (p.deadline != 0) due_.insert({p.deadline, p.id});
  in_review_count_ += p.review != ReviewReason::none ? 1 : 0;
  for (const Refund& r : p.refunds) {
    if (!refund_owner_.emplace(r.id, p.id).second) {
      return Status::error("payments: refund " + r.id + " twice");
    }
    for (const Attempt& a : r.attempts) {
      if (!own(a, r.id)) return Status::error("payments: attempt " + a.id + " twice");
    }
    if (r.deadline != 0) due_.insert({r.deadline, r.id});
    in_review_count_ += r.review != ReviewReason::none ? 1 : 0;
  }
  return Status::ok();
}

Status PaymentMachine::decode(std::string_view bytes, PaymentDeadlines deadlines,
                              PaymentMachine* out) {
  if (!is_valid(deadlines)) return Status::error("payments: deadlines invalid");
  ByteReader r(bytes);
  uint32_t version = 0;
  FeeSchedule fees;
  uint64_t n = 0;
  if (!r.u32(&version) || version != kEncodingVersion) return Status::error("payments: bad header");
  if (!decode_fees(r, &fees)) return Status::error("payments: bad fee schedule");
  if (!r.u64(&n)) return Status::error("payments: bad payment count");
  PaymentMachine m(deadlines, std::move(fees));
  for (uint64_t i = 0; i < n; ++i) {
    Payment p;
    if (!read_payment(r, &p)) {
      return Status::error("payments: record " + std::to_string(i) + " malformed");
    }
    if (const char* problem = payment_problem(p)) {
      return Status::error("payments: payment " + p.id + ": " + problem);
    }
    if (m.payments_.contains(p.id)) return Status::error("payments: payment " + p.id + " twice");
    const Status indexed = m.index(p);
    if (!indexed.is_ok()) return indexed;
    std::string id = p.id;
    m.payments_.emplace(std::move(id), std::move(p));
  }
  for (const auto& [refund_id, payment_id] : m.refund_owner_) {
    if (m.payments_.contains(refund_id)) {
      return Status::error("payments: refund " + refund_id + " is also a payment id");
    }
  }
  if (!r.at_end()) return Status::error("payments: trailing bytes");
  *out = std::move(m);
  return Status::ok();
}

std::string_view status_name(PaymentStatus s) {
  using S = PaymentStatus;
  switch (s) {
    KEEL_ENUM_CASE(S, requires_confirmation);
    KEEL_ENUM_CASE(S, requires_action);
    KEEL_ENUM_CASE(S, processing);
    KEEL_ENUM_CASE(S, requires_capture);
    KEEL_ENUM_CASE(S, succeeded);
    KEEL_ENUM_CASE(S, failed);
    KEEL_ENUM_CASE(S, canceled);
  }
  return "unknown";
}

std::string_view attempt_status_name(AttemptStatus s) {
  using S = AttemptStatus;
  switch (s) {
    KEEL_ENUM_CASE(S, pending);
    KEEL_ENUM_CASE(S, approved);
    KEEL_ENUM_CASE(S, declined_hard);
    KEEL_ENUM_CASE(S, declined_soft);
    KEEL_ENUM_CASE(S, retryable);
    KEEL_ENUM_CASE(S, unknown);
  }
  return "unknown";
}

std::string_view refund_status_name(RefundStatus s) {
  using S = RefundStatus;
  switch (s) {
    KEEL_ENUM_CASE(S, pending);
    KEEL_ENUM_CASE(S, succeeded);
    KEEL_ENUM_CASE(S, failed);
  }
  return "unknown";
}

std::string_view result_name(PaymentResult r) {
  using R = PaymentResult;
  switch (r) {
    KEEL_ENUM_CASE(R, ok);
    KEEL_ENUM_CASE(R, id_invalid);
    KEEL_ENUM_CASE(R, exists);
    KEEL_ENUM_CASE(R, amount_invalid);
    KEEL_ENUM_CASE(R, currency_invalid);
    KEEL_ENUM_CASE(R, merchant_id_invalid);
    KEEL_ENUM_CASE(R, channel_invalid);
    KEEL_ENUM_CASE(R, not_found);
    KEEL_ENUM_CASE(R, invalid_state);
    KEEL_ENUM_CASE(R, attempt_outstanding);
    KEEL_ENUM_CASE(R, capture_exceeds_authorized);
    KEEL_ENUM_CASE(R, attempt_not_found);
    KEEL_ENUM_CASE(R, stale_result);
    KEEL_ENUM_CASE(R, result_invalid);
    KEEL_ENUM_CASE(R, payment_method_invalid);
    KEEL_ENUM_CASE(R, customer_id_invalid);
    KEEL_ENUM_CASE(R, capture_method_invalid);
    KEEL_ENUM_CASE(R, wrong_source);
    KEEL_ENUM_CASE(R, refund_id_invalid);
    KEEL_ENUM_CASE(R, refund_exceeds_captured);
    KEEL_ENUM_CASE(R, too_many_attempts);
    KEEL_ENUM_CASE(R, too_many_refunds);
    KEEL_ENUM_CASE(R, fees_invalid);
    KEEL_ENUM_CASE(R, source_invalid);
    KEEL_ENUM_CASE(R, already_in_review);
  }
  return "unknown";
}

}  // namespace keel::payments
