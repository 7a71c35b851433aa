#include "psp_sim/books.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <tuple>

#include "core/assert.h"
#include "core/enum_name.h"

namespace keel::psp_sim {

std::string_view type_name(OperationType t) {
  switch (t) {
    KEEL_ENUM_CASE(OperationType, authorization);
    KEEL_ENUM_CASE(OperationType, refund);
    KEEL_ENUM_CASE(OperationType, payout);
    KEEL_ENUM_CASE(OperationType, topup);
  }
  return "unknown";
}

std::string_view status_name(OperationStatus s) {
  switch (s) {
    KEEL_ENUM_CASE(OperationStatus, pending);
    KEEL_ENUM_CASE(OperationStatus, authorized);
    KEEL_ENUM_CASE(OperationStatus, captured);
    KEEL_ENUM_CASE(OperationStatus, voided);
    KEEL_ENUM_CASE(OperationStatus, declined);
    KEEL_ENUM_CASE(OperationStatus, refunded);
    KEEL_ENUM_CASE(OperationStatus, paid);
    KEEL_ENUM_CASE(OperationStatus, failed);
  }
  return "unknown";
}

std::string_view decline_type_name(DeclineType t) {
  return t == DeclineType::hard ? "hard" : "soft";
}

int64_t utc_day(Timestamp t) {
  constexpr int64_t kNanosPerDay = 86'400 * kNanosPerSecond;
  return t >= 0 ? t / kNanosPerDay : -((-t + kNanosPerDay - 1) / kNanosPerDay);
}

std::string format_day(int64_t day) {
  const std::chrono::year_month_day ymd{std::chrono::sys_days{std::chrono::days{day}}};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

std::optional<int64_t> parse_day(std::string_view text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  int parts[3] = {0, 0, 0};
  const std::pair<size_t, size_t> spans[3] = {{0, 4}, {5, 2}, {8, 2}};
  for (int i = 0; i < 3; ++i) {
    for (size_t k = 0; k < spans[i].second; ++k) {
      const char c = text[spans[i].first + k];
      if (c < '0' || c > '9') return std::nullopt;
      parts[i] = parts[i] * 10 + (c - '0');
    }
  }
  const std::chrono::year_month_day ymd{std::chrono::year{parts[0]},
                                        std::chrono::month{static_cast<unsigned>(parts[1])},
                                        std::chrono::day{static_cast<unsigned>(parts[2])}};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::sys_days{ymd}.time_since_epoch().count();
}

Books::Books(BooksOptions options) : options_(std::move(options)) {
  KEEL_ASSERT(options_.fee_bps >= 0 && options_.fee_bps <= 10'000);
  KEEL_ASSERT(options_.fee_fixed >= 0 && options_.fee_fixed <= kAmountMax);
  KEEL_ASSERT(options_.operations_max >= 1 && options_.operations_max <= kOperationsLimit);
}

bool Books::accepts(Currency c) const {
  return std::find(options_.currencies.begin(), options_.currencies.end(), c) !=
         options_.currencies.end();
}

int64_t Books::fee_for(int64_t amount) const {
  KEEL_ASSERT(amount >= 0 && amount <= kAmountMax);
  // amount <= 10^12 and bps <= 10^4: the product fits easily in int64.
  return options_.fee_fixed + amount * options_.fee_bps / 10'000;
}

std::string Books::hash_id(std::string_view prefix, std::string_view data) const {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx",
                static_cast<unsigned long long>(siphash13(options_.key, data)));
  return std::string(prefix) + buf;
}

void Books::record_event(Entry& entry, Timestamp now, Outcome* out) {
  ++entry.changes;
  const Operation& op = operations_[entry.index];
  Event e;
  e.id = hash_id("evt_", op.reference + ":" + std::to_string(entry.changes));
  e.created_at = now;
  e.operation = op;
  out->events.push_back(std::move(e));
}

Outcome Books::replay_or_conflict(const Entry& entry, const std::string& fingerprint) const {
  Outcome out;
  if (entry.fingerprint != fingerprint) {
    out.result = BookResult::reference_reused;
    return out;
  }
  out.replayed = true;
  out.operation = operations_[entry.index];
  return out;
}

void Books::apply_capture(Operation& op, int64_t amount, Timestamp now) {
  KEEL_ASSERT(op.type == OperationType::authorization);
  KEEL_ASSERT(amount > 0 && amount <= op.amount);
  op.status = OperationStatus::captured;
  op.captured_amount = amount;
  op.fee = fee_for(amount);
  op.updated_at = now;
  lines_.push_back(
      {utc_day(now), op.psp_reference, op.reference, "capture", amount, op.currency, op.fee});
}

// Moves a new or pending operation to its final status.
void Books::finish(Entry& entry, const std::optional<Decline>& decline, bool capture, Timestamp now,
                   Outcome* out) {
  Operation& op = operations_[entry.index];
  KEEL_ASSERT(op.status == OperationStatus::pending);
  op.updated_at = now;
  if (decline) {
    op.decline = decline;
    op.status = op.type == OperationType::authorization ? OperationStatus::declined
                                                        : OperationStatus::failed;
  } else if (op.type == OperationType::authorization) {
    op.status = OperationStatus::authorized;
    if (capture) apply_capture(op, op.amount, now);
  } else {
    KEEL_ASSERT(op.type == OperationType::payout || op.type == OperationType::topup);
    op.status = OperationStatus::paid;
    op.fee = fee_for(op.amount);
    lines_.push_back({utc_day(now), op.psp_reference, op.reference, type_name(op.type), op.amount,
                      op.currency, op.fee});
  }
  entry.pending_decline.reset();
  record_event(entry, now, out);
}

Outcome Books::create(Operation op, std::string fingerprint, const Decisions& decisions,
                      bool capture, Timestamp now) {
  Outcome out;
  if (auto it = by_reference_.find(op.reference); it != by_reference_.end()) {
    return replay_or_conflict(it->second, fingerprint);
  }
  if (!accepts(op.currency)) {
    out.result = BookResult::currency_not_accepted;
    return out;
  }
  if (operations_.size() >= options_.operations_max) {
    out.result = BookResult::books_full;
    return out;
  }
  KEEL_ASSERT(op.amount > 0 && op.amount <= kAmountMax);
  op.psp_reference = hash_id("sim_", op.reference);
  op.status = OperationStatus::pending;
  op.created_at = now;
  op.updated_at = now;
  Entry entry;
  entry.index = operations_.size();
  entry.fingerprint = std::move(fingerprint);
  operations_.push_back(std::move(op));
  auto& stored =
      by_reference_.emplace(operations_.back().reference, std::move(entry)).first->second;
  if (decisions.async) {
    stored.pending_decline = decisions.decline;
    stored.capture_on_settle = capture;
    record_event(stored, now, &out);
  } else {
    finish(stored, decisions.decline, capture, now, &out);
  }
  out.operation = operations_[stored.index];
  return out;
}

Outcome Books::authorize(const AuthorizeRequest& r, const Decisions& decisions, Timestamp now) {
  Operation op;
  op.reference = r.reference;
  op.type = OperationType::authorization;
  op.amount = r.amount;
  op.currency = r.currency;
  if (r.card_token.starts_with("card_")) {
    op.card_last4 = r.card_token.substr(5);
    op.cvc_provided = r.cvc_provided;
  }
  std::string fingerprint = "authorization|" + std::to_string(r.amount) + "|" +
                            std::string(r.currency.code()) + "|" + r.card_token + "|" +
                            (r.capture ? "capture" : "hold");
  return create(std::move(op), std::move(fingerprint), decisions, r.capture, now);
}

Outcome Books::payout(const TransferRequest& r, const Decisions& decisions, Timestamp now) {
  Operation op;
  op.reference = r.reference;
  op.type = OperationType::payout;
  op.amount = r.amount;
  op.currency = r.currency;
  op.counterparty = r.counterparty;
  std::string fingerprint = "payout|" + std::to_string(r.amount) + "|" +
                            std::string(r.currency.code()) + "|" + r.counterparty;
  return create(std::move(op), std::move(fingerprint), decisions, false, now);
}

Outcome Books::topup(const TransferRequest& r, const Decisions& decisions, Timestamp now) {
  Operation op;
  op.reference = r.reference;
  op.type = OperationType::topup;
  op.amount = r.amount;
  op.currency = r.currency;
  op.counterparty = r.counterparty;
  std::string fingerprint = "topup|" + std::to_string(r.amount) + "|" +
                            std::string(r.currency.code()) + "|" + r.counterparty;
  return create(std::move(op), std::move(fingerprint), decisions, false, now);
}

Outcome Books::capture(std::string_view reference, std::optional<int64_t> amount, Timestamp now) {
  Outcome out;
  auto it = by_reference_.find(reference);
  if (it == by_reference_.end()) {
    out.result = BookResult::not_found;
    return out;
  }
  Operation& op = operations_[it->second.index];
  if (op.type != OperationType::authorization) {
    out.result = BookResult::invalid_state;
    return out;
  }
  if (op.status == OperationStatus::captured &&
      amount.value_or(op.captured_amount) == op.captured_amount) {
    out.replayed = true;
    out.operation = op;
    return out;
  }
  if (op.status != OperationStatus::authorized) {
    out.result = BookResult::invalid_state;
    return out;
  }
  const int64_t to_capture = amount.value_or(op.amount);
  if (to_capture > op.amount) {
    out.result = BookResult::amount_exceeds;
    return out;
  }
  apply_capture(op, to_capture, now);
  record_event(it->second, now, &out);
  out.operation = op;
  return out;
}

Outcome Books::void_authorization(std::string_view reference, Timestamp now) {
  Outcome out;
  auto it = by_reference_.find(reference);
  if (it == by_reference_.end()) {
    out.result = BookResult::not_found;
    return out;
  }
  Operation& op = operations_[it->second.index];
  if (op.type == OperationType::authorization && op.status == OperationStatus::voided) {
    out.replayed = true;
    out.operation = op;
    return out;
  }
  if (op.type != OperationType::authorization || op.status != OperationStatus::authorized) {
    out.result = BookResult::invalid_state;
    return out;
  }
  op.status = OperationStatus::voided;
  op.updated_at = now;
  record_event(it->second, now, &out);
  out.operation = op;
  return out;
}

Outcome Books::refund(const RefundRequest& r, Timestamp now) {
  Outcome out;
  std::string fingerprint = "refund|" + r.payment_reference + "|" + std::to_string(r.amount);
  if (auto it = by_reference_.find(r.reference); it != by_reference_.end()) {
    return replay_or_conflict(it->second, fingerprint);
  }
  auto payment_it = by_reference_.find(r.payment_reference);
  if (payment_it == by_reference_.end()) {
    out.result = BookResult::not_found;
    return out;
  }
  Operation& payment = operations_[payment_it->second.index];
  if (payment.type != OperationType::authorization || payment.status != OperationStatus::captured) {
    out.result = BookResult::invalid_state;
    return out;
  }
  KEEL_ASSERT(payment.refunded_amount >= 0 && payment.refunded_amount <= payment.captured_amount);
  KEEL_ASSERT(r.amount > 0 && r.amount <= kAmountMax);
  if (r.amount > payment.captured_amount - payment.refunded_amount) {
    out.result = BookResult::amount_exceeds;
    return out;
  }
  if (operations_.size() >= options_.operations_max) {
    out.result = BookResult::books_full;
    return out;
  }
  payment.refunded_amount += r.amount;
  payment.updated_at = now;
  Operation op;
  op.psp_reference = hash_id("sim_", r.reference);
  op.reference = r.reference;
  op.type = OperationType::refund;
  op.status = OperationStatus::refunded;
  op.amount = r.amount;
  op.currency = payment.currency;
  op.refunded_amount = r.amount;
  op.payment_reference = r.payment_reference;
  op.created_at = now;
  op.updated_at = now;
  lines_.push_back(
      {utc_day(now), op.psp_reference, op.reference, "refund", op.amount, op.currency, 0});
  Entry entry;
  entry.index = operations_.size();
  entry.fingerprint = std::move(fingerprint);
  operations_.push_back(std::move(op));
  auto& stored = by_reference_.emplace(r.reference, std::move(entry)).first->second;
  record_event(stored, now, &out);
  out.operation = operations_[stored.index];
  return out;
}

Outcome Books::settle(std::string_view reference, Timestamp now) {
  Outcome out;
  auto it = by_reference_.find(reference);
  if (it == by_reference_.end()) {
    out.result = BookResult::not_found;
    return out;
  }
  Entry& entry = it->second;
  if (operations_[entry.index].status != OperationStatus::pending) {
    out.replayed = true;
    out.operation = operations_[entry.index];
    return out;
  }
  const std::optional<Decline> decline = entry.pending_decline;
  finish(entry, decline, entry.capture_on_settle, now, &out);
  out.operation = operations_[entry.index];
  return out;
}

const Operation* Books::find(std::string_view reference) const {
  auto it = by_reference_.find(reference);
  return it == by_reference_.end() ? nullptr : &operations_[it->second.index];
}

std::vector<Total> Books::totals() const {
  std::map<std::tuple<uint8_t, std::string_view>, Total> sums;
  for (const Operation& op : operations_) {
    Total& t = sums[{static_cast<uint8_t>(op.status), op.currency.code()}];
    t.status = op.status;
    t.currency = op.currency;
    t.count += 1;
    t.amount += op.amount;  // <= kOperationsLimit * kAmountMax: no overflow
  }
  std::vector<Total> out;
  out.reserve(sums.size());
  for (auto& [key, total] : sums) out.push_back(total);
  return out;
}

std::string Books::settlement_csv(int64_t day) const {
  std::string out = "date,psp_reference,reference,type,amount,currency,fee\n";
  const std::string date = format_day(day);
  for (const SettlementLine& l : lines_) {
    if (l.day != day) continue;
    out += date + "," + l.psp_reference + "," + l.reference + "," + std::string(l.type) + "," +
           std::to_string(l.amount) + "," + std::string(l.currency.code()) + "," +
           std::to_string(l.fee) + "\n";
  }
  return out;
}

}  // namespace keel::psp_sim
