#include "payments/wallet_flows.h"

#include <algorithm>
#include <limits>

#include "core/assert.h"
#include "core/bytes.h"
#include "core/checked.h"
#include "core/codec.h"
#include "core/enum_name.h"
#include "payments/codec.h"
#include "payments/payment_history.h"
#include "vault/personal_data.h"

namespace keel::payments {
namespace {

constexpr uint32_t kEncodingVersion = 3;  // 2: attempts carry their fee; 3: and latency
constexpr std::string_view kInsufficientFunds = "insufficient_funds";

// 1..max bytes of [A-Za-z0-9_-]: flow ids (they reach the PSP inside attempt ids), customers
// and channels (inside ledger account ids, where ':' separates the parts).
bool plain(std::string_view s, size_t max) { return is_valid_reference(s, max); }

// 1..max bytes of printable ASCII without spaces: card tokens, bank accounts, IBANs.
bool printable(std::string_view s, size_t max) {
  return !s.empty() && s.size() <= max &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x21 && c <= 0x7E; });
}

bool outstanding(const Attempt& a) {
  return a.status == AttemptStatus::pending || a.status == AttemptStatus::unknown;
}

AttemptKind attempt_kind(WalletFlowKind k) {
  return k == WalletFlowKind::payout ? AttemptKind::payout : AttemptKind::topup;
}

bool instrument_fits(WalletFlowKind k, InstrumentKind i) {
  switch (k) {
    case WalletFlowKind::topup:
      return i == InstrumentKind::card_token || i == InstrumentKind::bank_account;
    case WalletFlowKind::payout:
      return i == InstrumentKind::iban || i == InstrumentKind::account;
    case WalletFlowKind::transfer:
      return i == InstrumentKind::none;
  }
  return false;
}

// Deadlines come from engine time (nanoseconds since 1970, far below 2^63) plus a validated
// option: an overflow is a bug, not input.
Timestamp deadline_after(Timestamp now, int64_t seconds) {
  const auto nanos = checked_mul(seconds, kNanosPerSecond);
  KEEL_ASSERT(nanos.has_value());
  const auto at = checked_add(now, *nanos);
  KEEL_ASSERT(at.has_value());
  return *at;
}

ledger::TransferEvent transfer(std::string id, std::string debit, std::string credit,
                               int64_t amount, Currency c, uint16_t flags) {
  ledger::TransferEvent e;
  e.id = std::move(id);
  e.debit_account_id = std::move(debit);
  e.credit_account_id = std::move(credit);
  e.amount = amount;
  e.currency = c;
  e.flags = flags;
  return e;  // timeout_s stays 0: no hold here ever expires by itself
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

void psp_fee(const WalletFlow& f, int64_t fee, Effects* effects) {
  if (fee == 0) return;
  effects->postings.push_back(transfer(f.id + ".psp_fee", psp_fees_account(f.channel, f.currency),
                                       psp_clearing_account(f.channel, f.currency), fee, f.currency,
                                       0));
}

// Joins the events appended since `first` into one chain (all or nothing in the ledger).
void link_from(size_t first, Effects* effects) {
  auto& p = effects->postings;
  for (size_t i = first; i + 1 < p.size(); ++i) p[i].flags |= ledger::transfer_flags::kLinked;
}

// The PSP fee of a flow is kept on the flow (`fee`), never on its attempt. Error codes of
// results taken before result_problem() bounded them at kErrorCodeLengthMax may be longer.
bool attempt_consistent(const WalletFlow& f, const Attempt& a, size_t index) {
  return a.id == f.id + "_a" + std::to_string(index + 1) && a.kind == attempt_kind(f.kind) &&
         a.channel == f.channel && a.amount == f.amount && a.fee == 0 &&
         a.psp_reference.size() <= kWalletFlowResultTextLengthMax &&
         a.error_code.size() <= kWalletFlowResultTextLengthMax && a.created_at <= a.updated_at;
}

// What the status, the attempt, the deadline and the review flag say must agree. Asserted after
// every transition and checked on decode, so that a decoded machine obeys the same rules.
bool status_consistent(const WalletFlow& f) {
  const bool processing = f.status == WalletFlowStatus::processing;
  const bool flagged = f.review != ReviewReason::none;
  if (f.review == ReviewReason::deadline_unknown && !processing) return false;
  if (!processing && f.deadline != 0) return false;
  if (processing && flagged == (f.deadline != 0)) return false;
  if (!is_valid_psp_fee(f.fee, f.amount) ||
      (f.fee != 0 && f.status != WalletFlowStatus::succeeded)) {
    return false;
  }
  if (f.kind == WalletFlowKind::transfer) {
    return f.attempts.empty() && !processing &&
           (f.status == WalletFlowStatus::succeeded ? f.error_code.empty()
                                                    : f.error_code == kInsufficientFunds);
  }
  if (f.attempts.empty()) {  // only a payout refused for its balance
    return f.kind == WalletFlowKind::payout && f.status == WalletFlowStatus::failed &&
           f.error_code == kInsufficientFunds;
  }
  if (f.attempts.size() != 1) return false;
  const AttemptStatus a = f.attempts[0].status;
  switch (f.status) {
    case WalletFlowStatus::processing:
      return outstanding(f.attempts[0]) && f.error_code.empty();
    case WalletFlowStatus::succeeded:
      return a == AttemptStatus::approved && f.error_code.empty();
    case WalletFlowStatus::failed:
      return a != AttemptStatus::approved && !outstanding(f.attempts[0]) && !f.error_code.empty();
  }
  return false;
}

// A source or destination as the API sent it, or sealed under its customer's key at the API
// edge (vault/personal_data.h), which makes it longer.
bool instrument_ok(std::string_view text) {
  return printable(text, vault::is_sealed_personal(text)
                             ? vault::sealed_personal_length(kWalletFlowInstrumentLengthMax)
                             : kWalletFlowInstrumentLengthMax);
}

bool consistent(const WalletFlow& f) {
  const bool external = f.kind != WalletFlowKind::transfer;
  const bool fields =
      plain(f.id, kWalletFlowIdLengthMax) && plain(f.customer_id, kWalletFlowNameLengthMax) &&
      f.amount > 0 && f.currency.valid() && instrument_fits(f.kind, f.instrument_kind) &&
      f.error_code.size() <= kWalletFlowResultTextLengthMax && f.created_at <= f.updated_at &&
      (external ? plain(f.channel, kWalletFlowNameLengthMax) && instrument_ok(f.instrument) &&
                      f.to_customer_id.empty()
                : f.channel.empty() && f.instrument.empty() &&
                      plain(f.to_customer_id, kWalletFlowNameLengthMax) &&
                      f.to_customer_id != f.customer_id);
  if (!fields || f.timeline.empty() || !status_consistent(f)) return false;
  for (size_t i = 0; i < f.attempts.size(); ++i) {
    if (!attempt_consistent(f, f.attempts[i], i)) return false;
  }
  for (const WalletFlowTimelineEntry& t : f.timeline) {
    if (t.cause.empty() || t.cause.size() > kWalletFlowCauseLengthMax) return false;
  }
  return f.timeline.back().to == f.status;
}

void encode_flow(ByteWriter& w, const WalletFlow& f) {
  w.str16(f.id);
  w.u8(static_cast<uint8_t>(f.kind));
  w.str16(f.customer_id);
  w.str16(f.to_customer_id);
  w.i64(f.amount);
  write_currency(w, f.currency);
  w.str16(f.channel);
  w.u8(static_cast<uint8_t>(f.instrument_kind));
  w.str16(f.instrument);
  w.u8(static_cast<uint8_t>(f.status));
  w.u8(static_cast<uint8_t>(f.review));  // was a bool: true is deadline_unknown
  w.str16(f.error_code);
  w.i64(f.fee);
  w.i64(f.created_at);
  w.i64(f.updated_at);
  w.i64(f.deadline);
  w.u32(static_cast<uint32_t>(f.attempts.size()));
  for (const Attempt& a : f.attempts) encode_attempt(w, a);
  w.u32(static_cast<uint32_t>(f.timeline.size()));
  for (const WalletFlowTimelineEntry& t : f.timeline) {
    w.i64(t.at);
    w.u8(static_cast<uint8_t>(t.from));
    w.u8(static_cast<uint8_t>(t.to));
    w.str16(t.cause);
  }
}

bool decode_flow(ByteReader& r, WalletFlow* f) {
  uint32_t attempts = 0;
  uint32_t entries = 0;
  if (!(r.str16(&f->id) && read_enum(r, WalletFlowKind::payout, &f->kind) &&
        r.str16(&f->customer_id) && r.str16(&f->to_customer_id) && r.i64(&f->amount) &&
        read_currency(r, &f->currency) && r.str16(&f->channel) &&
        read_enum(r, InstrumentKind::account, &f->instrument_kind) && r.str16(&f->instrument) &&
        read_enum(r, WalletFlowStatus::failed, &f->status) &&
        read_enum(r, review::kReviewReasonLast, &f->review) && r.str16(&f->error_code) &&
        r.i64(&f->fee) && r.i64(&f->created_at) && r.i64(&f->updated_at) && r.i64(&f->deadline) &&
        r.u32(&attempts))) {
    return false;
  }
  for (uint32_t i = 0; i < attempts; ++i) {
    Attempt a;
    if (!decode_attempt(r, &a)) return false;
    f->attempts.push_back(std::move(a));
  }
  if (!r.u32(&entries)) return false;
  for (uint32_t i = 0; i < entries; ++i) {
    WalletFlowTimelineEntry t;
    if (!(r.i64(&t.at) && read_enum(r, WalletFlowStatus::failed, &t.from) &&
          read_enum(r, WalletFlowStatus::failed, &t.to) && r.str16(&t.cause))) {
      return false;
    }
    f->timeline.push_back(std::move(t));
  }
  return consistent(*f);
}

}  // namespace

bool wallet_flow_options_valid(const WalletFlowOptions& o) {
  return o.topup_processing_s >= 1 && o.topup_processing_s <= kWalletFlowDeadlineSecondsMax &&
         o.payout_processing_s >= 1 && o.payout_processing_s <= kWalletFlowDeadlineSecondsMax;
}

std::vector<ledger::AccountEvent> wallet_flow_accounts(const WalletFlow& f) {
  constexpr uint16_t kWallet = ledger::account_flags::kDebitsMustNotExceedCredits;
  std::vector<ledger::AccountEvent> out;
  out.push_back({wallet_account(f.customer_id, f.currency), f.currency, kWallet, {}});
  if (f.kind == WalletFlowKind::transfer) {
    out.push_back({wallet_account(f.to_customer_id, f.currency), f.currency, kWallet, {}});
  } else {
    out.push_back({psp_clearing_account(f.channel, f.currency), f.currency, 0, {}});
    out.push_back({psp_fees_account(f.channel, f.currency), f.currency, 0, {}});
  }
  return out;
}

std::optional<int64_t> wallet_flow_available_minor(const ledger::Balances& b) {
  const auto spent = checked_add(b.debits_posted, b.debits_pending);
  if (!spent) return std::nullopt;
  return checked_sub(b.credits_posted, *spent);
}

WalletFlows::WalletFlows(Options options) : options_(options) {
  KEEL_ASSERT(wallet_flow_options_valid(options_));
}

WalletFlow* WalletFlows::lookup(std::string_view id) {
  const auto it = flows_.find(id);
  if (it == flows_.end()) return nullptr;
  note_changed(id);
  return &it->second;
}

const WalletFlow* WalletFlows::find(std::string_view id) const {
  const auto it = flows_.find(id);
  return it == flows_.end() ? nullptr : &it->second;
}

const WalletFlow* WalletFlows::find_by_attempt(std::string_view attempt_id) const {
  const auto it = attempt_owner_.find(attempt_id);
  return it == attempt_owner_.end() ? nullptr : find(it->second);
}

// Stores a new (or decoded) flow and indexes it. REQUIRES: consistent(f), id not taken.
WalletFlow& WalletFlows::store(WalletFlow f) {
  auto& listed = listed_[static_cast<size_t>(f.kind)];
  for (std::string& bucket : wallet_flow_buckets(f)) {
    listed.insert({std::move(bucket), f.created_at, f.id});
  }
  note_changed(f.id);
  if (f.deadline != 0) due_.insert({f.deadline, f.id});
  if (f.review != ReviewReason::none) ++in_review_count_;
  for (const Attempt& a : f.attempts) {
    const bool fresh = attempt_owner_.emplace(a.id, f.id).second;
    KEEL_ASSERT(fresh);
    if (outstanding(a)) outstanding_.insert(a.id);
  }
  const auto [it, inserted] = flows_.emplace(f.id, std::move(f));
  KEEL_ASSERT(inserted);
  return it->second;
}

void WalletFlows::set_deadline(WalletFlow& f, Timestamp deadline) {
  if (f.deadline != 0) due_.erase({f.deadline, f.id});
  f.deadline = deadline;
  if (deadline != 0) due_.insert({deadline, f.id});
}

void WalletFlows::set_review(WalletFlow& f, ReviewReason reason) {
  if (f.review == ReviewReason::none && reason != ReviewReason::none) ++in_review_count_;
  if (f.review != ReviewReason::none && reason == ReviewReason::none) {
    KEEL_ASSERT(in_review_count_ > 0);
    --in_review_count_;
  }
  f.review = reason;
}

void WalletFlows::move_to(WalletFlow& f, WalletFlowStatus to, std::string_view cause,
                          Timestamp now) {
  f.timeline.push_back({now, f.status, to, std::string(cause)});
  f.status = to;
  f.updated_at = now;
  if (to != WalletFlowStatus::processing) {
    set_deadline(f, 0);
    set_review(f, ReviewReason::none);
  }
}

void WalletFlows::add_attempt(WalletFlow& f, AttemptKind kind, Timestamp now, Effects* effects) {
  KEEL_ASSERT(f.attempts.empty());  // one attempt per flow today: no retries
  Attempt a;
  a.id = f.id + "_a" + std::to_string(f.attempts.size() + 1);
  a.kind = kind;
  a.channel = f.channel;
  a.amount = f.amount;
  a.created_at = now;
  a.updated_at = now;
  PspCall call;
  call.kind = kind;
  call.payment_id = f.id;
  call.attempt_id = a.id;
  call.channel = f.channel;
  call.amount = f.amount;
  call.currency = f.currency;
  call.instrument_kind = f.instrument_kind;
  call.instrument = f.instrument;
  call.customer_id = f.customer_id;
  effects->calls.push_back(std::move(call));
  f.attempts.push_back(std::move(a));
}

WalletFlowResult WalletFlows::create_topup(const TopupRequest& r, Timestamp now, Effects* effects,
                                           const IdTaken* taken_outside) {
  if (!plain(r.id, kWalletFlowIdLengthMax)) return WalletFlowResult::id_invalid;
  if (r.amount <= 0) return WalletFlowResult::amount_invalid;
  if (!r.currency.valid()) return WalletFlowResult::currency_invalid;
  if (!plain(r.customer_id, kWalletFlowNameLengthMax)) return WalletFlowResult::customer_id_invalid;
  if (!plain(r.channel, kWalletFlowNameLengthMax)) return WalletFlowResult::channel_invalid;
  if (!instrument_fits(WalletFlowKind::topup, r.source_kind) || !instrument_ok(r.source)) {
    return WalletFlowResult::instrument_invalid;
  }
  if (taken(r.id, taken_outside)) return WalletFlowResult::exists;
  WalletFlow f;
  f.id = r.id;
  f.kind = WalletFlowKind::topup;
  f.customer_id = r.customer_id;
  f.amount = r.amount;
  f.currency = r.currency;
  f.channel = r.channel;
  f.instrument_kind = r.source_kind;
  f.instrument = r.source;
  f.created_at = now;
  f.updated_at = now;
  f.deadline = deadline_after(now, options_.topup_processing_s);
  f.timeline.push_back({now, f.status, f.status, "api"});
  add_attempt(f, AttemptKind::topup, now, effects);
  KEEL_ASSERT(consistent(f));
  store(std::move(f));
  return WalletFlowResult::ok;
}

WalletFlowResult WalletFlows::create_wallet_transfer(const WalletTransferRequest& r, Timestamp now,
                                                     Effects* effects,
                                                     const IdTaken* taken_outside) {
  if (!plain(r.id, kWalletFlowIdLengthMax)) return WalletFlowResult::id_invalid;
  if (r.amount <= 0) return WalletFlowResult::amount_invalid;
  if (!r.currency.valid()) return WalletFlowResult::currency_invalid;
  if (!plain(r.from_customer_id, kWalletFlowNameLengthMax) ||
      !plain(r.to_customer_id, kWalletFlowNameLengthMax)) {
    return WalletFlowResult::customer_id_invalid;
  }
  if (r.from_customer_id == r.to_customer_id) return WalletFlowResult::same_wallet;
  if (taken(r.id, taken_outside)) return WalletFlowResult::exists;
  const bool funded = r.amount <= r.available_minor;
  WalletFlow f;
  f.id = r.id;
  f.kind = WalletFlowKind::transfer;
  f.customer_id = r.from_customer_id;
  f.to_customer_id = r.to_customer_id;
  f.amount = r.amount;
  f.currency = r.currency;
  f.status = funded ? WalletFlowStatus::succeeded : WalletFlowStatus::failed;
  if (!funded) f.error_code = std::string(kInsufficientFunds);
  f.created_at = now;
  f.updated_at = now;
  f.timeline.push_back({now, f.status, f.status, "api"});
  KEEL_ASSERT(consistent(f));
  if (funded) {
    effects->postings.push_back(
        transfer(f.id + ".transfer", wallet_account(f.customer_id, f.currency),
                 wallet_account(f.to_customer_id, f.currency), f.amount, f.currency, 0));
  }
  store(std::move(f));
  return funded ? WalletFlowResult::ok : WalletFlowResult::insufficient_funds;
}

WalletFlowResult WalletFlows::create_payout(const PayoutRequest& r, Timestamp now, Effects* effects,
                                            const IdTaken* taken_outside) {
  if (!plain(r.id, kWalletFlowIdLengthMax)) return WalletFlowResult::id_invalid;
  if (r.amount <= 0) return WalletFlowResult::amount_invalid;
  if (!r.currency.valid()) return WalletFlowResult::currency_invalid;
  if (!plain(r.customer_id, kWalletFlowNameLengthMax)) return WalletFlowResult::customer_id_invalid;
  if (!plain(r.channel, kWalletFlowNameLengthMax)) return WalletFlowResult::channel_invalid;
  if (!instrument_fits(WalletFlowKind::payout, r.destination_kind) ||
      !instrument_ok(r.destination)) {
    return WalletFlowResult::instrument_invalid;
  }
  if (taken(r.id, taken_outside)) return WalletFlowResult::exists;
  const bool funded = r.amount <= r.available_minor;
  WalletFlow f;
  f.id = r.id;
  f.kind = WalletFlowKind::payout;
  f.customer_id = r.customer_id;
  f.amount = r.amount;
  f.currency = r.currency;
  f.channel = r.channel;
  f.instrument_kind = r.destination_kind;
  f.instrument = r.destination;
  f.created_at = now;
  f.updated_at = now;
  if (!funded) {
    f.status = WalletFlowStatus::failed;
    f.error_code = std::string(kInsufficientFunds);
    f.timeline.push_back({now, f.status, f.status, "api"});
    KEEL_ASSERT(consistent(f));
    store(std::move(f));
    return WalletFlowResult::insufficient_funds;
  }
  f.deadline = deadline_after(now, options_.payout_processing_s);
  f.timeline.push_back({now, f.status, f.status, "api"});
  // The hold never expires in the ledger: an unknown payout must not be spendable twice.
  effects->postings.push_back(transfer(f.id + ".hold", wallet_account(f.customer_id, f.currency),
                                       psp_clearing_account(f.channel, f.currency), f.amount,
                                       f.currency, ledger::transfer_flags::kPending));
  add_attempt(f, AttemptKind::payout, now, effects);
  KEEL_ASSERT(consistent(f));
  store(std::move(f));
  return WalletFlowResult::ok;
}

WalletFlowResult WalletFlows::apply_result(std::string_view attempt_id, const AttemptResult& result,
                                           std::string_view cause, Timestamp now,
                                           Effects* effects) {
  if (cause.empty() || cause.size() > kWalletFlowCauseLengthMax) {
    return WalletFlowResult::cause_invalid;
  }
  const auto owner = attempt_owner_.find(attempt_id);
  if (owner == attempt_owner_.end()) return WalletFlowResult::attempt_not_found;
  WalletFlow* f = lookup(owner->second);
  KEEL_ASSERT(f != nullptr);
  const auto a = std::find_if(f->attempts.begin(), f->attempts.end(),
                              [&](const Attempt& x) { return x.id == attempt_id; });
  KEEL_ASSERT(a != f->attempts.end());
  if (!outstanding(*a)) return WalletFlowResult::stale_result;
  KEEL_ASSERT(f->status == WalletFlowStatus::processing);
  if (!result_problem(result, a->amount).empty()) return WalletFlowResult::result_invalid;
  const bool approved = result.status == AttemptStatus::approved;
  a->status = result.status;
  a->psp_reference = result.psp_reference;
  a->latency_ms = result.latency_ms;
  a->error_code = result.error_code;
  a->updated_at = now;
  f->updated_at = now;
  if (result.status == AttemptStatus::unknown) {  // still outstanding: the resolver's now
    KEEL_ASSERT(consistent(*f));
    return WalletFlowResult::ok;
  }
  outstanding_.erase(a->id);
  const Attempt settled = *a;
  const size_t first = effects->postings.size();
  if (f->kind == WalletFlowKind::topup) {
    settle_topup(*f, settled, approved ? result.fee : 0, cause, now, effects);
  } else {
    settle_payout(*f, settled, approved ? result.fee : 0, cause, now, effects);
  }
  link_from(first, effects);
  KEEL_ASSERT(consistent(*f));
  return WalletFlowResult::ok;
}

void WalletFlows::settle_topup(WalletFlow& f, const Attempt& a, int64_t fee, std::string_view cause,
                               Timestamp now, Effects* effects) {
  if (a.status != AttemptStatus::approved) {  // declined or retryable: nothing happened
    f.error_code = a.error_code.empty() ? std::string(attempt_status_name(a.status)) : a.error_code;
    move_to(f, WalletFlowStatus::failed, cause, now);
    return;
  }
  effects->postings.push_back(transfer(f.id + ".topup", psp_clearing_account(f.channel, f.currency),
                                       wallet_account(f.customer_id, f.currency), f.amount,
                                       f.currency, 0));
  psp_fee(f, fee, effects);
  f.fee = fee;
  move_to(f, WalletFlowStatus::succeeded, cause, now);
}

void WalletFlows::settle_payout(WalletFlow& f, const Attempt& a, int64_t fee,
                                std::string_view cause, Timestamp now, Effects* effects) {
  if (a.status != AttemptStatus::approved) {  // the bank did not pay: the wallet gets it back
    effects->postings.push_back(
        post_or_void(f.id + ".void", f.id + ".hold", 0, ledger::transfer_flags::kVoidPending));
    f.error_code = a.error_code.empty() ? std::string(attempt_status_name(a.status)) : a.error_code;
    move_to(f, WalletFlowStatus::failed, cause, now);
    return;
  }
  effects->postings.push_back(
      post_or_void(f.id + ".post", f.id + ".hold", f.amount, ledger::transfer_flags::kPostPending));
  psp_fee(f, fee, effects);
  f.fee = fee;
  move_to(f, WalletFlowStatus::succeeded, cause, now);
}

std::vector<std::string> WalletFlows::tick(Timestamp now, Effects* effects) {
  KEEL_ASSERT(effects != nullptr);
  std::vector<std::string> changed;
  while (!due_.empty() && due_.begin()->first <= now) {
    WalletFlow& f = *lookup(due_.begin()->second);
    KEEL_ASSERT(f.status == WalletFlowStatus::processing && f.review == ReviewReason::none);
    KEEL_ASSERT(!f.attempts.empty() && outstanding(f.attempts.back()));
    // Never silently processing, never a timer on money: an operator or a late answer ends it.
    set_review(f, ReviewReason::deadline_unknown);
    f.updated_at = now;
    f.timeline.push_back({now, f.status, f.status, std::string(kDeadlineReviewCause)});
    set_deadline(f, 0);
    KEEL_ASSERT(consistent(f));
    changed.push_back(f.id);
  }
  return changed;
}

WalletFlowResult WalletFlows::flag_result_rejected(std::string_view attempt_id,
                                                   std::string_view cause, Timestamp now) {
  if (cause.empty() || cause.size() > kWalletFlowCauseLengthMax) {
    return WalletFlowResult::cause_invalid;
  }
  const auto owner = attempt_owner_.find(attempt_id);
  if (owner == attempt_owner_.end()) return WalletFlowResult::attempt_not_found;
  WalletFlow& f = *lookup(owner->second);
  if (f.review == ReviewReason::psp_result_rejected) return WalletFlowResult::already_in_review;
  set_review(f, ReviewReason::psp_result_rejected);
  f.updated_at = now;
  f.timeline.push_back({now, f.status, f.status, std::string(cause)});
  set_deadline(f, 0);
  KEEL_ASSERT(consistent(f));
  return WalletFlowResult::ok;
}

std::vector<std::string> WalletFlows::mark_pending_unknown(Timestamp now) {
  std::vector<std::string> ids;
  for (const std::string& attempt_id : outstanding_) {
    WalletFlow& f = *lookup(attempt_owner_.find(attempt_id)->second);
    for (Attempt& a : f.attempts) {
      if (a.id != attempt_id || a.status != AttemptStatus::pending) continue;
      a.status = AttemptStatus::unknown;
      a.updated_at = now;
      f.updated_at = now;
      ids.push_back(a.id);
    }
  }
  return ids;
}

std::vector<std::string> WalletFlows::outstanding_attempts() const {
  return {outstanding_.begin(), outstanding_.end()};
}

std::optional<Timestamp> WalletFlows::next_deadline() const {
  if (due_.empty()) return std::nullopt;
  return due_.begin()->first;
}

WalletFlowPage WalletFlows::list(WalletFlowKind kind, const WalletFlowFilter& filter, size_t limit,
                                 std::string_view starting_after) const {
  std::optional<ListPosition> before;
  if (!starting_after.empty()) {
    const WalletFlow* cursor = find(starting_after);
    if (cursor == nullptr || cursor->kind != kind) {
      WalletFlowPage page;
      page.result = WalletFlowResult::starting_after_not_found;
      return page;
    }
    before = ListPosition{cursor->created_at, cursor->id};
  }
  return list_below(kind, filter, std::clamp<size_t>(limit, 1, kWalletFlowPageLimitMax),
                    before ? &*before : nullptr);
}

WalletFlowPage WalletFlows::list_below(WalletFlowKind kind, const WalletFlowFilter& filter,
                                       size_t limit, const ListPosition* before) const {
  WalletFlowPage page;
  if (!filter.customer_id.empty() && !plain(filter.customer_id, kWalletFlowNameLengthMax)) {
    page.result = WalletFlowResult::customer_id_invalid;
    return page;
  }
  const std::string& c = filter.customer_id;  // "" is the bucket of every flow of the kind
  constexpr Timestamp kMin = std::numeric_limits<Timestamp>::min();
  // Scan [low, high) newest first: high is the cursor, created_lt or the end of c's bucket.
  ListKey high = filter.created_lt ? ListKey{c, *filter.created_lt, ""}
                                   : ListKey{c + std::string(1, '\0'), kMin, ""};
  if (before != nullptr) high = std::min(high, ListKey{c, before->created_at, before->id});
  const ListKey low{c, filter.created_gte.value_or(kMin), ""};
  if (!(low < high)) return page;
  const auto& index = listed_[static_cast<size_t>(kind)];
  const auto begin = index.lower_bound(low);
  for (auto it = index.lower_bound(high); it != begin;) {
    --it;
    const WalletFlow& f = flows_.find(std::get<2>(*it))->second;
    if (filter.status && f.status != *filter.status) continue;
    if (page.data.size() == limit) {
      page.has_more = true;
      break;
    }
    page.data.push_back(f);
  }
  return page;
}

bool WalletFlows::matches(const WalletFlowFilter& filter, const WalletFlow& f) {
  return (!filter.status || f.status == *filter.status) &&
         (filter.customer_id.empty() || f.customer_id == filter.customer_id ||
          f.to_customer_id == filter.customer_id) &&
         (!filter.created_gte || f.created_at >= *filter.created_gte) &&
         (!filter.created_lt || f.created_at < *filter.created_lt);
}

std::string flow_list_prefix(WalletFlowKind kind, std::string_view bucket) {
  std::string k = "fl";
  k += static_cast<char>('0' + static_cast<uint8_t>(kind));
  k += bucket;
  k += '\0';
  return k;
}

std::string flow_list_key(WalletFlowKind kind, std::string_view bucket, const ListPosition& at) {
  KEEL_ASSERT(at.created_at >= 0);
  std::string k = flow_list_prefix(kind, bucket);
  append_be64(&k, static_cast<uint64_t>(at.created_at));
  k += at.id;
  return k;
}

bool parse_flow_list_key(std::string_view key, size_t prefix_size, ListPosition* out) {
  if (key.size() <= prefix_size + 8) return false;
  const uint64_t created = read_be64_suffix(key.substr(0, prefix_size + 8));
  if (created > static_cast<uint64_t>(std::numeric_limits<Timestamp>::max())) return false;
  out->created_at = static_cast<Timestamp>(created);
  out->id.assign(key.substr(prefix_size + 8));
  return true;
}

std::vector<std::string> wallet_flow_buckets(const WalletFlow& f) {
  std::vector<std::string> out = {"", f.customer_id};
  if (!f.to_customer_id.empty()) out.push_back(f.to_customer_id);
  return out;
}

bool WalletFlows::at_rest(const WalletFlow& f) {
  return f.status != WalletFlowStatus::processing && f.review == ReviewReason::none &&
         f.deadline == 0 && std::none_of(f.attempts.begin(), f.attempts.end(), outstanding);
}

void WalletFlows::track_changes(bool on) { changed_.start(on, flows_); }

std::vector<std::string> WalletFlows::take_changed() { return changed_.take(); }

WalletFlow WalletFlows::remove(std::string_view id) {
  const auto it = flows_.find(id);
  KEEL_ASSERT(it != flows_.end() && at_rest(it->second));
  WalletFlow f = std::move(it->second);
  flows_.erase(it);
  auto& listed = listed_[static_cast<size_t>(f.kind)];
  for (std::string& bucket : wallet_flow_buckets(f)) {
    KEEL_ASSERT(listed.erase({std::move(bucket), f.created_at, f.id}) == 1);
  }
  for (const Attempt& a : f.attempts) KEEL_ASSERT(attempt_owner_.erase(a.id) == 1);
  return f;
}

Status WalletFlows::restore(WalletFlow f) {
  if (!consistent(f)) return Status::error("wallet flows: flow " + f.id + " is malformed");
  bool clash = flows_.contains(f.id);
  for (const Attempt& a : f.attempts) clash = clash || attempt_owner_.contains(a.id);
  if (clash) return Status::error("wallet flows: flow " + f.id + " clashes with one in memory");
  store(std::move(f));
  return Status::ok();
}

void WalletFlows::encode_flow_record(const WalletFlow& f, std::string* out) {
  ByteWriter w(out);
  encode_flow(w, f);
}

Status WalletFlows::decode_flow_record(std::string_view bytes, WalletFlow* out) {
  ByteReader r(bytes);
  WalletFlow f;
  if (!decode_flow(r, &f) || !r.at_end()) return Status::error("wallet flows: malformed record");
  *out = std::move(f);
  return Status::ok();
}

Status WalletFlows::encode_merged(std::string* out, const KvReader& history,
                                  uint64_t horizon) const {
  std::string flows;
  ByteWriter fw(&flows);
  uint64_t n = 0;
  if (Status s = payment_history::merge_by_id(
          flows_, &history, payment_history::Kind::flow, horizon,
          [&](std::string_view, const WalletFlow& f) {
            encode_flow(fw, f);
            ++n;
          },
          [&](std::string_view, std::string_view record) {
            fw.raw(record.data(), record.size());
            ++n;
          });
      !s.is_ok()) {
    return s;
  }
  ByteWriter w(out);
  w.u32(kEncodingVersion);
  w.u64(n);
  *out += flows;
  return Status::ok();
}

void WalletFlows::encode(std::string* out) const {
  ByteWriter w(out);
  w.u32(kEncodingVersion);
  w.u64(flows_.size());
  for (const auto& [id, f] : flows_) encode_flow(w, f);
}

Status WalletFlows::decode(std::string_view bytes, Options options, WalletFlows* out) {
  if (!wallet_flow_options_valid(options)) return Status::error("wallet flows: bad options");
  ByteReader r(bytes);
  uint32_t version = 0;
  uint64_t n = 0;
  if (!r.u32(&version) || version != kEncodingVersion || !r.u64(&n)) {
    return Status::error("wallet flows: bad header");
  }
  WalletFlows s(options);
  const std::string* previous = nullptr;
  for (uint64_t i = 0; i < n; ++i) {
    WalletFlow f;
    if (!decode_flow(r, &f)) {
      return Status::error("wallet flows: flow " + std::to_string(i) + " malformed");
    }
    if (previous != nullptr && !(*previous < f.id)) {
      return Status::error("wallet flows: flow " + std::to_string(i) + " out of order");
    }
    previous = &s.store(std::move(f)).id;
  }
  if (!r.at_end()) return Status::error("wallet flows: trailing bytes");
  *out = std::move(s);
  return Status::ok();
}

std::string_view result_name(WalletFlowResult r) {
  using R = WalletFlowResult;
  switch (r) {
    KEEL_ENUM_CASE(R, ok);
    KEEL_ENUM_CASE(R, id_invalid);
    KEEL_ENUM_CASE(R, exists);
    KEEL_ENUM_CASE(R, amount_invalid);
    KEEL_ENUM_CASE(R, currency_invalid);
    KEEL_ENUM_CASE(R, customer_id_invalid);
    KEEL_ENUM_CASE(R, channel_invalid);
    KEEL_ENUM_CASE(R, instrument_invalid);
    KEEL_ENUM_CASE(R, same_wallet);
    KEEL_ENUM_CASE(R, insufficient_funds);
    KEEL_ENUM_CASE(R, attempt_not_found);
    KEEL_ENUM_CASE(R, stale_result);
    KEEL_ENUM_CASE(R, result_invalid);
    KEEL_ENUM_CASE(R, cause_invalid);
    KEEL_ENUM_CASE(R, starting_after_not_found);
    KEEL_ENUM_CASE(R, already_in_review);
  }
  return "unknown";
}

std::string_view wallet_flow_kind_name(WalletFlowKind k) {
  using K = WalletFlowKind;
  switch (k) {
    KEEL_ENUM_CASE(K, topup);
    KEEL_ENUM_CASE(K, transfer);
    KEEL_ENUM_CASE(K, payout);
  }
  return "unknown";
}

std::string_view wallet_flow_status_name(WalletFlowStatus s) {
  using S = WalletFlowStatus;
  switch (s) {
    KEEL_ENUM_CASE(S, processing);
    KEEL_ENUM_CASE(S, succeeded);
    KEEL_ENUM_CASE(S, failed);
  }
  return "unknown";
}

}  // namespace keel::payments
