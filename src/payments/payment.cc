#include "payments/payment.h"

#include "core/assert.h"
#include "core/enum_name.h"
#include "core/ids.h"

namespace keel::payments {
namespace {

// Payment ids leave room for the suffixes of attempt and ledger ids (64 bytes at most).
constexpr size_t kPaymentIdLengthMax = 48;
constexpr size_t kNameLengthMax = 40;  // channels and merchants, inside ledger account ids

bool outstanding(const Attempt& a) {
  return a.status == AttemptStatus::pending || a.status == AttemptStatus::unknown;
}

bool any_outstanding(const Payment& p) {
  for (const Attempt& a : p.attempts) {
    if (outstanding(a)) return true;
  }
  return false;
}

const Attempt* approved_authorization(const Payment& p) {
  for (const Attempt& a : p.attempts) {
    if (a.kind == AttemptKind::authorization && a.status == AttemptStatus::approved) return &a;
  }
  return nullptr;
}

bool valid_name(std::string_view s) { return is_valid_id(s) && s.size() <= kNameLengthMax; }

ledger::TransferEvent posting(std::string id, std::string debit, std::string credit, int64_t amount,
                              Currency c, uint16_t flags) {
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

}  // namespace

std::string psp_clearing_account(std::string_view channel, Currency c) {
  return "psp_clearing:" + std::string(channel) + ":" + std::string(c.code());
}

std::string merchant_account(std::string_view merchant, Currency c) {
  return "merchant:" + std::string(merchant) + ":" + std::string(c.code());
}

Payment* PaymentMachine::lookup(std::string_view id) {
  const auto it = payments_.find(id);
  return it == payments_.end() ? nullptr : &it->second;
}

const Payment* PaymentMachine::find(std::string_view id) const {
  const auto it = payments_.find(id);
  return it == payments_.end() ? nullptr : &it->second;
}

void PaymentMachine::set_deadline(Payment& p, Timestamp deadline) {
  if (p.deadline != 0) due_.erase({p.deadline, p.id});
  p.deadline = deadline;
  if (deadline != 0) due_.insert({deadline, p.id});
}

void PaymentMachine::move_to(Payment& p, PaymentStatus to, std::string_view cause, Timestamp now) {
  p.timeline.push_back({now, p.status, to, std::string(cause)});
  p.status = to;
  switch (to) {
    case PaymentStatus::requires_confirmation:
      set_deadline(p, now + deadlines_.confirmation_s * kNanosPerSecond);
      break;
    case PaymentStatus::processing:
      set_deadline(p, now + deadlines_.processing_s * kNanosPerSecond);
      break;
    case PaymentStatus::requires_capture:
      set_deadline(p, p.authorization_expires_at);
      break;
    default:
      set_deadline(p, 0);
  }
  if (to != PaymentStatus::processing) p.in_review = false;
}

Attempt& PaymentMachine::add_attempt(Payment& p, AttemptKind kind, std::string_view channel,
                                     int64_t amount, Timestamp now, Effects* effects) {
  KEEL_ASSERT(!any_outstanding(p));
  Attempt a;
  a.id = p.id + "_a" + std::to_string(p.attempts.size() + 1);
  a.kind = kind;
  a.channel = std::string(channel);
  a.amount = amount;
  a.created_at = now;
  a.updated_at = now;
  attempt_owner_.emplace(a.id, p.id);
  PspCall call;
  call.kind = kind;
  call.payment_id = p.id;
  call.attempt_id = a.id;
  call.channel = a.channel;
  call.amount = amount;
  call.currency = p.currency;
  call.capture_now = kind == AttemptKind::authorization && p.capture_method == CaptureMethod::automatic;
  if (kind != AttemptKind::authorization)
    call.authorization_reference = approved_authorization(p)->id;
  effects->calls.push_back(std::move(call));
  p.attempts.push_back(std::move(a));
  return p.attempts.back();
}

PaymentResult PaymentMachine::create(const CreatePayment& r, Timestamp now) {
  if (!is_valid_id(r.id) || r.id.size() > kPaymentIdLengthMax) return PaymentResult::id_invalid;
  if (r.amount <= 0) return PaymentResult::amount_invalid;
  if (!r.currency.valid()) return PaymentResult::currency_invalid;
  if (!valid_name(r.merchant_id)) return PaymentResult::merchant_id_invalid;
  if (payments_.contains(r.id)) return PaymentResult::exists;
  Payment p;
  p.id = r.id;
  p.amount = r.amount;
  p.currency = r.currency;
  p.merchant_id = r.merchant_id;
  p.capture_method = r.capture_method;
  p.created_at = now;
  Payment& stored = payments_.emplace(r.id, std::move(p)).first->second;
  move_to(stored, PaymentStatus::requires_confirmation, "api", now);
  return PaymentResult::ok;
}

PaymentResult PaymentMachine::confirm(std::string_view id, std::string_view channel, Timestamp now,
                                      Effects* effects) {
  Payment* p = lookup(id);
  if (p == nullptr) return PaymentResult::not_found;
  if (!valid_name(channel)) return PaymentResult::channel_invalid;
  if (p->status != PaymentStatus::requires_confirmation) return PaymentResult::invalid_state;
  add_attempt(*p, AttemptKind::authorization, channel, p->amount, now, effects);
  move_to(*p, PaymentStatus::processing, "api", now);
  return PaymentResult::ok;
}

PaymentResult PaymentMachine::retry(std::string_view id, std::string_view channel, Timestamp now,
                                    Effects* effects) {
  Payment* p = lookup(id);
  if (p == nullptr) return PaymentResult::not_found;
  if (!valid_name(channel)) return PaymentResult::channel_invalid;
  if (p->status != PaymentStatus::processing || approved_authorization(*p) != nullptr) {
    return PaymentResult::invalid_state;
  }
  if (any_outstanding(*p)) return PaymentResult::attempt_outstanding;
  const AttemptStatus last = p->attempts.back().status;
  if (last != AttemptStatus::retryable && last != AttemptStatus::declined_soft) {
    return PaymentResult::invalid_state;
  }
  add_attempt(*p, AttemptKind::authorization, channel, p->amount, now, effects);
  return PaymentResult::ok;
}

PaymentResult PaymentMachine::capture(std::string_view id, int64_t amount, Timestamp now,
                                      Effects* effects) {
  Payment* p = lookup(id);
  if (p == nullptr) return PaymentResult::not_found;
  if (p->status != PaymentStatus::requires_capture) return PaymentResult::invalid_state;
  if (amount < 0) return PaymentResult::amount_invalid;
  if (amount > p->authorized_amount) return PaymentResult::capture_exceeds_authorized;
  if (any_outstanding(*p)) return PaymentResult::attempt_outstanding;
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
  if (any_outstanding(*p)) return PaymentResult::attempt_outstanding;
  const std::string channel = p->channel;
  add_attempt(*p, AttemptKind::void_authorization, channel, p->authorized_amount, now, effects);
  move_to(*p, PaymentStatus::processing, "api", now);
  return PaymentResult::ok;
}

PaymentResult PaymentMachine::apply_result(std::string_view attempt_id, const AttemptResult& result,
                                           std::string_view cause, Timestamp now,
                                           Effects* effects) {
  if (result.status == AttemptStatus::pending) return PaymentResult::result_invalid;
  const auto owner = attempt_owner_.find(attempt_id);
  if (owner == attempt_owner_.end()) return PaymentResult::attempt_not_found;
  Payment& p = *lookup(owner->second);
  Attempt* a = nullptr;
  for (Attempt& candidate : p.attempts) {
    if (candidate.id == attempt_id) a = &candidate;
  }
  KEEL_ASSERT(a != nullptr);
  if (!outstanding(*a)) return PaymentResult::stale_result;
  a->status = result.status;
  a->psp_reference = result.psp_reference;
  a->error_code = result.error_code;
  a->updated_at = now;
  if (result.status == AttemptStatus::unknown) return PaymentResult::ok;  // the resolver's now
  const Attempt settled = *a;
  switch (settled.kind) {
    case AttemptKind::authorization:
      settle_authorization(p, settled, cause, now, effects);
      if (result.captured && p.status == PaymentStatus::requires_capture) {
        // The PSP captured although we asked to authorize only: the books follow the PSP.
        effects->postings.push_back(post_or_void(p.id + ".capture", p.id + ".hold", p.amount,
                                                 ledger::transfer_flags::kPostPending));
        p.captured_amount = p.amount;
        move_to(p, PaymentStatus::succeeded, cause, now);
      }
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
      KEEL_ASSERT(false);  // a card payment makes none of these attempts (yet)
  }
  link(effects);
  return PaymentResult::ok;
}

void PaymentMachine::settle_authorization(Payment& p, const Attempt& a, std::string_view cause,
                                          Timestamp now, Effects* effects) {
  switch (a.status) {
    case AttemptStatus::approved: {
      p.authorized_amount = a.amount;
      p.channel = a.channel;
      p.authorization_expires_at = now + deadlines_.capture_s * kNanosPerSecond;
      effects->postings.push_back(posting(p.id + ".hold",
                                          psp_clearing_account(a.channel, p.currency),
                                          merchant_account(p.merchant_id, p.currency), a.amount,
                                          p.currency, ledger::transfer_flags::kPending));
      if (p.capture_method == CaptureMethod::automatic) {
        effects->postings.push_back(post_or_void(p.id + ".capture", p.id + ".hold", a.amount,
                                                 ledger::transfer_flags::kPostPending));
        p.captured_amount = a.amount;
        move_to(p, PaymentStatus::succeeded, cause, now);
      } else {
        move_to(p, PaymentStatus::requires_capture, cause, now);
      }
      return;
    }
    case AttemptStatus::declined_hard:
      move_to(p, PaymentStatus::failed, cause, now);
      return;
    default:  // soft decline or retryable: processing; the caller may retry until the deadline
      return;
  }
}

void PaymentMachine::settle_capture(Payment& p, const Attempt& a, std::string_view cause,
                                    Timestamp now, Effects* effects) {
  if (a.status == AttemptStatus::approved) {
    effects->postings.push_back(post_or_void(p.id + ".capture", p.id + ".hold", a.amount,
                                             ledger::transfer_flags::kPostPending));
    p.captured_amount = a.amount;
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

std::vector<std::string> PaymentMachine::tick(Timestamp now, Effects* effects) {
  std::vector<std::string> changed;
  while (!due_.empty() && due_.begin()->first <= now) {
    Payment& p = *lookup(due_.begin()->second);
    changed.push_back(p.id);
    switch (p.status) {
      case PaymentStatus::requires_confirmation:
        move_to(p, PaymentStatus::canceled, "deadline", now);
        break;
      case PaymentStatus::requires_capture:  // the authorization expired at the PSP too
        effects->postings.push_back(
            post_or_void(p.id + ".void", p.id + ".hold", 0, ledger::transfer_flags::kVoidPending));
        move_to(p, PaymentStatus::canceled, "deadline", now);
        break;
      case PaymentStatus::processing:
        if (any_outstanding(p)) {
          p.in_review = true;  // never silently processing: an operator or a late answer ends it
          p.timeline.push_back({now, p.status, p.status, "deadline: review"});
          set_deadline(p, 0);
        } else {
          move_to(p, PaymentStatus::failed, "deadline", now);
        }
        break;
      default:
        KEEL_ASSERT(false);  // terminal states have no deadline
    }
  }
  link(effects);
  return changed;
}

std::vector<std::string> PaymentMachine::mark_pending_unknown(Timestamp now) {
  std::vector<std::string> ids;
  for (auto& [id, p] : payments_) {
    for (Attempt& a : p.attempts) {
      if (a.status != AttemptStatus::pending) continue;
      a.status = AttemptStatus::unknown;
      a.updated_at = now;
      ids.push_back(a.id);
    }
  }
  return ids;
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
  }
  return "unknown";
}

}  // namespace keel::payments
