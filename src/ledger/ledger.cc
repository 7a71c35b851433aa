#include "ledger/ledger.h"

#include <algorithm>
#include <bit>
#include <map>

#include "core/assert.h"
#include "core/checked.h"
#include "core/ids.h"

namespace keel::ledger {
namespace {

using R = CreateTransferResult;
using AR = CreateAccountResult;

constexpr uint16_t kTransferKindFlags =
    transfer_flags::kPending | transfer_flags::kPostPending | transfer_flags::kVoidPending;

bool metadata_is_normalized(const Metadata& m) {
  if (m.size() > kMetadataEntriesMax) return false;
  for (size_t i = 0; i < m.size(); ++i) {
    if (!is_valid_metadata_key(m[i].first) || m[i].second.size() > kMetadataValueLengthMax) {
      return false;
    }
    if (i > 0 && !(m[i - 1].first < m[i].first)) return false;
  }
  return true;
}

bool metadata_equal(const Metadata& event, const std::unique_ptr<Metadata>& stored) {
  if (!stored) return event.empty();
  return event == *stored;
}

std::unique_ptr<Metadata> copy_metadata(const Metadata& m) {
  return m.empty() ? nullptr : std::make_unique<Metadata>(m);
}

bool within_limits(uint16_t flags, const Balances& b) {
  // Sums cannot overflow: every change checks debits_pending + debits_posted (and credits).
  if ((flags & account_flags::kDebitsMustNotExceedCredits) &&
      b.debits_pending + b.debits_posted > b.credits_posted) {
    return false;
  }
  if ((flags & account_flags::kCreditsMustNotExceedDebits) &&
      b.credits_pending + b.credits_posted > b.debits_posted) {
    return false;
  }
  return true;
}

// Adds `amount` to a pending or posted side of `b`; false on overflow of the field or of the
// side's pending + posted total.
bool add_checked(int64_t* field, int64_t amount, int64_t other_field_of_side) {
  const auto sum = checked_add(*field, amount);
  if (!sum || !checked_add(*sum, other_field_of_side)) return false;
  *field = *sum;
  return true;
}

void encode_metadata(ByteWriter& w, const std::unique_ptr<Metadata>& m) {
  const size_t n = m ? m->size() : 0;
  w.u8(static_cast<uint8_t>(n));
  for (size_t i = 0; i < n; ++i) {
    w.str16((*m)[i].first);
    w.str16((*m)[i].second);
  }
}

bool decode_metadata(ByteReader& r, std::unique_ptr<Metadata>* out) {
  uint8_t n = 0;
  if (!r.u8(&n)) return false;
  if (n == 0) return true;
  auto m = std::make_unique<Metadata>(n);
  for (auto& [k, v] : *m) {
    if (!r.str16(&k) || !r.str16(&v)) return false;
  }
  if (!metadata_is_normalized(*m)) return false;
  *out = std::move(m);
  return true;
}

}  // namespace

Ledger::Ledger(SipKey index_key)
    : index_key_(index_key), account_index_(index_key), transfer_index_(index_key) {}

// ---- chains ---------------------------------------------------------------------------------

namespace {

// Runs `apply` over events, honouring linked chains. `exists` counts as success inside a chain:
// the event's effect is already in the ledger, so retrying a whole chain answers `exists` for
// every event and changes nothing.
template <typename Event, typename Result, typename Apply, typename Begin, typename Rollback>
std::vector<Result> run_chains(std::span<const Event> events, Timestamp base, uint16_t linked,
                               Apply&& apply, Begin&& begin_chain, Rollback&& end_chain) {
  std::vector<Result> results(events.size(), Result::ok);
  size_t i = 0;
  while (i < events.size()) {
    size_t last = i;
    while (last < events.size() && (events[last].flags & linked)) ++last;
    if (last == i) {
      results[i] = apply(i, base + static_cast<Timestamp>(i));
      ++i;
      continue;
    }
    const bool open = last == events.size();
    if (open) last = events.size() - 1;
    begin_chain();
    size_t failed = events.size();
    for (size_t k = i; k <= last; ++k) {
      const Result r = (open && k == last) ? Result::linked_event_chain_open
                                           : apply(k, base + static_cast<Timestamp>(k));
      results[k] = r;
      if (r != Result::ok && r != Result::exists) {
        failed = k;
        break;
      }
    }
    const bool chain_failed = failed != events.size();
    end_chain(chain_failed);
    if (chain_failed) {
      for (size_t k = i; k <= last; ++k) {
        if (k != failed) results[k] = Result::linked_event_failed;
      }
    }
    i = last + 1;
  }
  return results;
}

}  // namespace

std::vector<CreateAccountResult> Ledger::create_accounts(std::span<const AccountEvent> events,
                                                         Timestamp base) {
  KEEL_ASSERT(events.size() <= kEventsPerRequestMax);
  expire_pending(base);
  return run_chains<AccountEvent, CreateAccountResult>(
      events, base, account_flags::kLinked,
      [&](size_t i, Timestamp ts) { return create_account(events[i], ts); },
      [this] { in_chain_ = true; },
      [this](bool failed) {
        if (failed) rollback(0);
        undo_.clear();
        in_chain_ = false;
      });
}

std::vector<CreateTransferResult> Ledger::create_transfers(std::span<const TransferEvent> events,
                                                           Timestamp base) {
  KEEL_ASSERT(events.size() <= kEventsPerRequestMax);
  expire_pending(base);
  // Pre-pass: hash every id and resolve every account once (no account can appear during a
  // transfer request); the apply loop prefetches the index slot of the event kAhead further on.
  constexpr size_t kAhead = 16;
  std::vector<EventKeys> keys(events.size());
  const auto account_id = account_id_of();
  for (size_t i = 0; i < events.size(); ++i) {
    const TransferEvent& e = events[i];
    keys[i].id_hash = transfer_index_.hash(e.id);
    if (i < kAhead) transfer_index_.prefetch(keys[i].id_hash);
    if (e.flags & (transfer_flags::kPostPending | transfer_flags::kVoidPending)) continue;
    keys[i].debit = account_index_.find(e.debit_account_id, account_id).value_or(kNoIndex);
    keys[i].credit = account_index_.find(e.credit_account_id, account_id).value_or(kNoIndex);
  }
  return run_chains<TransferEvent, CreateTransferResult>(
      events, base, transfer_flags::kLinked,
      [&](size_t i, Timestamp ts) {
        if (i + kAhead < keys.size()) transfer_index_.prefetch(keys[i + kAhead].id_hash);
        return create_transfer(events[i], ts, keys[i]);
      },
      [this] { in_chain_ = true; },
      [this](bool failed) {
        if (failed) rollback(0);
        undo_.clear();
        in_chain_ = false;
      });
}

void Ledger::rollback(size_t undo_mark) {
  const auto account_id = account_id_of();
  const auto transfer_id = transfer_id_of();
  while (undo_.size() > undo_mark) {
    const UndoEntry u = undo_.back();
    undo_.pop_back();
    switch (u.kind) {
      case UndoEntry::Kind::account_created:
        KEEL_ASSERT(u.index == accounts_.size() - 1);
        account_index_.erase(accounts_.back().id, account_id);
        accounts_.pop_back();
        break;
      case UndoEntry::Kind::transfer_created: {
        KEEL_ASSERT(u.index == transfers_.size() - 1);
        TransferRecord& t = *transfers_.hot(u.index);
        if (t.state == PendingState::pending && t.timeout_s > 0) {
          expiries_.erase({t.timestamp + t.timeout_s * kNanosPerSecond, u.index});
        }
        for (uint32_t a : {t.debit, t.credit}) {
          KEEL_ASSERT(accounts_[a].transfers.back() == u.index);
          accounts_[a].transfers.pop_back();
        }
        transfer_index_.erase(t.id, transfer_id);
        transfers_.pop_back();
        break;
      }
      case UndoEntry::Kind::balances:
        accounts_[u.index].balances = u.balances;
        break;
      case UndoEntry::Kind::pending_state: {
        TransferRecord& t = *transfers_.hot(u.index);
        t.state = u.state;
        if (u.state == PendingState::pending && t.timeout_s > 0) {
          expiries_.insert({t.timestamp + t.timeout_s * kNanosPerSecond, u.index});
        }
        break;
      }
    }
  }
}

// ---- accounts -------------------------------------------------------------------------------

CreateAccountResult Ledger::create_account(const AccountEvent& e, Timestamp ts) {
  if (!is_valid_id(e.id)) return AR::id_invalid;
  if (e.flags & ~account_flags::kAll) return AR::flags_invalid;
  if ((e.flags & account_flags::kDebitsMustNotExceedCredits) &&
      (e.flags & account_flags::kCreditsMustNotExceedDebits)) {
    return AR::flags_are_mutually_exclusive;
  }
  if (!e.currency.valid()) return AR::currency_invalid;
  if (!metadata_is_normalized(e.metadata)) return AR::metadata_invalid;

  const auto account_id = account_id_of();
  if (const auto found = account_index_.find(e.id, account_id)) {
    const AccountRecord& a = accounts_[*found];
    constexpr uint16_t kLimitFlags =
        account_flags::kDebitsMustNotExceedCredits | account_flags::kCreditsMustNotExceedDebits;
    if (a.currency != e.currency.index()) return AR::exists_with_different_currency;
    if ((a.flags & kLimitFlags) != (e.flags & kLimitFlags)) return AR::exists_with_different_flags;
    if (!metadata_equal(e.metadata, a.metadata)) return AR::exists_with_different_metadata;
    return AR::exists;
  }

  KEEL_ASSERT(accounts_.size() < kNoIndex - 1);
  const auto index = static_cast<uint32_t>(accounts_.size());
  AccountRecord record;
  record.id = e.id;
  record.timestamp = ts;
  record.metadata = copy_metadata(e.metadata);
  record.currency = e.currency.index();
  record.flags = static_cast<uint16_t>(e.flags & ~account_flags::kLinked);
  accounts_.push_back(std::move(record));
  account_index_.insert(e.id, index);
  if (in_chain_) undo_.push_back({UndoEntry::Kind::account_created, index, {}, {}});
  return AR::ok;
}

SetAccountClosedResult Ledger::set_account_closed(std::string_view id, bool closed, Timestamp now) {
  expire_pending(now);
  const auto found = account_index_.find(id, account_id_of());
  if (!found) return SetAccountClosedResult::account_not_found;
  AccountRecord& a = accounts_[*found];
  const bool is_closed = a.flags & account_flags::kClosed;
  if (closed && is_closed) return SetAccountClosedResult::account_already_closed;
  if (!closed && !is_closed) return SetAccountClosedResult::account_not_closed;
  a.flags = static_cast<uint16_t>(closed ? (a.flags | account_flags::kClosed)
                                         : (a.flags & ~account_flags::kClosed));
  return SetAccountClosedResult::ok;
}

// ---- transfers ------------------------------------------------------------------------------

CreateTransferResult Ledger::validate_transfer_fields(const TransferEvent& e) const {
  if (!is_valid_id(e.id)) return R::id_invalid;
  if (e.flags & ~transfer_flags::kAll) return R::flags_invalid;
  if (std::popcount(static_cast<unsigned>(e.flags & kTransferKindFlags)) > 1) {
    return R::flags_are_mutually_exclusive;
  }
  if (!metadata_is_normalized(e.metadata)) return R::metadata_invalid;
  if (e.flags & (transfer_flags::kPostPending | transfer_flags::kVoidPending)) {
    if (!e.debit_account_id.empty() && !is_valid_id(e.debit_account_id)) {
      return R::debit_account_id_invalid;
    }
    if (!e.credit_account_id.empty() && !is_valid_id(e.credit_account_id)) {
      return R::credit_account_id_invalid;
    }
    if (e.pending_id.empty()) return R::pending_id_required;
    if (e.pending_id == e.id) return R::pending_id_must_be_different;
    if (e.timeout_s != 0) return R::timeout_reserved_for_pending_transfer;
    if (e.amount < 0) return R::amount_must_not_be_negative;
    return R::ok;
  }
  if (!is_valid_id(e.debit_account_id)) return R::debit_account_id_invalid;
  if (!is_valid_id(e.credit_account_id)) return R::credit_account_id_invalid;
  if (e.debit_account_id == e.credit_account_id) return R::accounts_must_be_different;
  if (!e.pending_id.empty()) return R::pending_id_must_be_empty;
  if (e.timeout_s != 0 && !(e.flags & transfer_flags::kPending)) {
    return R::timeout_reserved_for_pending_transfer;
  }
  if (e.amount <= 0) return R::amount_must_be_positive;
  if (!e.currency.valid()) return R::currency_invalid;
  return R::ok;
}

CreateTransferResult Ledger::transfer_exists(const TransferEvent& e,
                                             const TransferRecord& t) const {
  if (e.flags != t.flags) return R::exists_with_different_flags;
  const bool post_or_void = e.flags & (transfer_flags::kPostPending | transfer_flags::kVoidPending);
  const std::string_view debit = accounts_[t.debit].id;
  const std::string_view credit = accounts_[t.credit].id;
  if (post_or_void) {
    TransferRecord scratch;
    const TransferRecord& p = record(t.pending, &scratch);
    if (e.pending_id != p.id) return R::exists_with_different_pending_id;
    if (!e.debit_account_id.empty() && e.debit_account_id != debit) {
      return R::exists_with_different_debit_account_id;
    }
    if (!e.credit_account_id.empty() && e.credit_account_id != credit) {
      return R::exists_with_different_credit_account_id;
    }
    if ((e.amount == 0 ? p.amount : e.amount) != t.amount) return R::exists_with_different_amount;
    if (e.currency.valid() && e.currency.index() != t.currency) {
      return R::exists_with_different_currency;
    }
  } else {
    if (e.debit_account_id != debit) return R::exists_with_different_debit_account_id;
    if (e.credit_account_id != credit) return R::exists_with_different_credit_account_id;
    if (e.amount != t.amount) return R::exists_with_different_amount;
    if (e.currency.index() != t.currency) return R::exists_with_different_currency;
    if (t.pending != kNoIndex) return R::exists_with_different_pending_id;
    if (e.timeout_s != t.timeout_s) return R::exists_with_different_timeout;
  }
  if (!metadata_equal(e.metadata, t.metadata)) return R::exists_with_different_metadata;
  return R::exists;
}

CreateTransferResult Ledger::create_transfer(const TransferEvent& e, Timestamp ts,
                                             const EventKeys& keys) {
  const uint64_t id_hash = keys.id_hash;
  if (const R r = validate_transfer_fields(e); r != R::ok) return r;
  const auto found = transfer_index_.find(e.id, id_hash, transfer_id_of());
  if (found) {
    TransferRecord scratch;
    return transfer_exists(e, record(*found, &scratch));
  }
  if (e.flags & (transfer_flags::kPostPending | transfer_flags::kVoidPending)) {
    return post_or_void(e, ts, id_hash);
  }
  return create_plain_or_pending(e, ts, keys);
}

CreateTransferResult Ledger::create_plain_or_pending(const TransferEvent& e, Timestamp ts,
                                                     const EventKeys& keys) {
  const uint64_t id_hash = keys.id_hash;
  const std::optional<uint32_t> dr =
      keys.debit == kNoIndex ? std::nullopt : std::optional<uint32_t>(keys.debit);
  const std::optional<uint32_t> cr =
      keys.credit == kNoIndex ? std::nullopt : std::optional<uint32_t>(keys.credit);
  if (!dr || !cr) return R::account_not_found;
  const AccountRecord& d = accounts_[*dr];
  const AccountRecord& c = accounts_[*cr];
  if (d.currency != e.currency.index() || c.currency != e.currency.index()) {
    return R::currency_mismatch;
  }
  if ((d.flags | c.flags) & account_flags::kClosed) return R::account_closed;

  const bool pending = e.flags & transfer_flags::kPending;
  Balances db = d.balances;
  Balances cb = c.balances;
  const bool fits = pending ? add_checked(&db.debits_pending, e.amount, db.debits_posted) &&
                                  add_checked(&cb.credits_pending, e.amount, cb.credits_posted)
                            : add_checked(&db.debits_posted, e.amount, db.debits_pending) &&
                                  add_checked(&cb.credits_posted, e.amount, cb.credits_pending);
  if (!fits) return R::overflow;
  if (!within_limits(d.flags & account_flags::kDebitsMustNotExceedCredits, db)) {
    return R::exceeds_credits;
  }
  if (!within_limits(c.flags & account_flags::kCreditsMustNotExceedDebits, cb)) {
    return R::exceeds_debits;
  }

  TransferRecord t;
  t.id = e.id;
  t.amount = e.amount;
  t.timestamp = ts;
  t.metadata = copy_metadata(e.metadata);
  t.debit = *dr;
  t.credit = *cr;
  t.timeout_s = e.timeout_s;
  t.currency = e.currency.index();
  t.flags = e.flags;
  t.state = pending ? PendingState::pending : PendingState::none;
  const uint32_t index = append_transfer(std::move(t), id_hash);
  if (pending && e.timeout_s > 0) {
    expiries_.insert({ts + e.timeout_s * kNanosPerSecond, index});
  }
  set_balances(*dr, db);
  set_balances(*cr, cb);
  return R::ok;
}

CreateTransferResult Ledger::post_or_void(const TransferEvent& e, Timestamp ts, uint64_t id_hash) {
  const auto found = transfer_index_.find(e.pending_id, transfer_id_of());
  if (!found) return R::pending_transfer_not_found;
  TransferRecord scratch;  // a hold in the store is final: the checks below refuse it
  const TransferRecord& p = record(*found, &scratch);
  if (!(p.flags & transfer_flags::kPending)) return R::pending_transfer_not_pending;
  if (!e.debit_account_id.empty() && e.debit_account_id != accounts_[p.debit].id) {
    return R::pending_transfer_has_different_debit_account_id;
  }
  if (!e.credit_account_id.empty() && e.credit_account_id != accounts_[p.credit].id) {
    return R::pending_transfer_has_different_credit_account_id;
  }
  if (e.currency.valid() && e.currency.index() != p.currency) {
    return R::pending_transfer_has_different_currency;
  }
  switch (p.state) {
    case PendingState::posted:
      return R::pending_transfer_already_posted;
    case PendingState::voided:
      return R::pending_transfer_already_voided;
    case PendingState::expired:
      return R::pending_transfer_expired;
    case PendingState::pending:
      break;
    case PendingState::none:
      KEEL_ASSERT(false);
  }
  if (p.timeout_s > 0 && p.timestamp + p.timeout_s * kNanosPerSecond <= ts) {
    return R::pending_transfer_expired;
  }
  const bool post = e.flags & transfer_flags::kPostPending;
  int64_t amount = p.amount;
  if (post) {
    if (e.amount > p.amount) return R::amount_exceeds_pending;
    if (e.amount > 0) amount = e.amount;
  } else if (e.amount != 0 && e.amount != p.amount) {
    return R::void_amount_must_match_pending;
  }
  const AccountRecord& d = accounts_[p.debit];
  const AccountRecord& c = accounts_[p.credit];
  if (post && ((d.flags | c.flags) & account_flags::kClosed)) return R::account_closed;

  Balances db = d.balances;
  Balances cb = c.balances;
  db.debits_pending -= p.amount;
  cb.credits_pending -= p.amount;
  KEEL_ASSERT(db.debits_pending >= 0 && cb.credits_pending >= 0);
  if (post && (!add_checked(&db.debits_posted, amount, db.debits_pending) ||
               !add_checked(&cb.credits_posted, amount, cb.credits_pending))) {
    return R::overflow;
  }
  KEEL_ASSERT(within_limits(d.flags, db) || !within_limits(d.flags, d.balances));
  KEEL_ASSERT(within_limits(c.flags, cb) || !within_limits(c.flags, c.balances));

  const uint32_t pending_index = *found;
  TransferRecord t;
  t.id = e.id;
  t.amount = amount;
  t.timestamp = ts;
  t.metadata = copy_metadata(e.metadata);
  t.debit = p.debit;
  t.credit = p.credit;
  t.pending = pending_index;
  t.currency = p.currency;
  t.flags = e.flags;
  const uint32_t debit = p.debit;
  const uint32_t credit = p.credit;
  append_transfer(std::move(t), id_hash);  // `p` is not used after this
  set_pending_state(pending_index, post ? PendingState::posted : PendingState::voided);
  set_balances(debit, db);
  set_balances(credit, cb);
  return R::ok;
}

uint32_t Ledger::append_transfer(TransferRecord&& t, uint64_t id_hash) {
  KEEL_ASSERT(transfers_.size() < kNoIndex - 1);
  const auto index = static_cast<uint32_t>(transfers_.size());
  accounts_[t.debit].transfers.push_back(index);
  accounts_[t.credit].transfers.push_back(index);
  transfers_.push_back(std::move(t));
  transfer_index_.insert_hashed(id_hash, index);
  if (in_chain_) undo_.push_back({UndoEntry::Kind::transfer_created, index, {}, {}});
  return index;
}

void Ledger::set_balances(uint32_t account, const Balances& b) {
  AccountRecord& a = accounts_[account];
  if (in_chain_) undo_.push_back({UndoEntry::Kind::balances, account, a.balances, {}});
  a.balances = b;
}

void Ledger::set_pending_state(uint32_t transfer, PendingState s) {
  TransferRecord& t = *transfers_.hot(transfer);
  KEEL_ASSERT(t.state == PendingState::pending && s != PendingState::pending);
  if (in_chain_) undo_.push_back({UndoEntry::Kind::pending_state, transfer, {}, t.state});
  if (t.timeout_s > 0) expiries_.erase({t.timestamp + t.timeout_s * kNanosPerSecond, transfer});
  t.state = s;
  if (cold_ != nullptr) finalized_.push_back(transfer);
}

size_t Ledger::expire_pending(Timestamp now) {
  KEEL_ASSERT(!in_chain_);
  size_t expired = 0;
  while (!expiries_.empty() && expiries_.begin()->first <= now) {
    const uint32_t index = expiries_.begin()->second;
    const TransferRecord& t = *transfers_.hot(index);
    Balances db = accounts_[t.debit].balances;
    Balances cb = accounts_[t.credit].balances;
    db.debits_pending -= t.amount;
    cb.credits_pending -= t.amount;
    KEEL_ASSERT(db.debits_pending >= 0 && cb.credits_pending >= 0);
    set_balances(t.debit, db);
    set_balances(t.credit, cb);
    set_pending_state(index, PendingState::expired);  // erases the expiry entry
    ++expired;
  }
  return expired;
}

std::optional<Timestamp> Ledger::next_expiry() const {
  if (expiries_.empty()) return std::nullopt;
  return expiries_.begin()->first;
}

// ---- queries --------------------------------------------------------------------------------

Account Ledger::to_account(const AccountRecord& a) const {
  Account out;
  out.id = a.id;
  out.currency = *Currency::from_index(a.currency);
  out.flags = a.flags;
  out.balances = a.balances;
  if (a.metadata) out.metadata = *a.metadata;
  out.timestamp = a.timestamp;
  return out;
}

Transfer Ledger::to_transfer(const TransferRecord& t) const {
  Transfer out;
  out.id = t.id;
  out.debit_account_id = accounts_[t.debit].id;
  out.credit_account_id = accounts_[t.credit].id;
  out.amount = t.amount;
  out.currency = *Currency::from_index(t.currency);
  out.flags = t.flags;
  if (t.pending != kNoIndex) out.pending_id = transfer_id_of()(t.pending);
  out.timeout_s = t.timeout_s;
  if (t.metadata) out.metadata = *t.metadata;
  out.timestamp = t.timestamp;
  out.pending_state = t.state;
  if (t.timeout_s > 0) out.expires_at = t.timestamp + t.timeout_s * kNanosPerSecond;
  return out;
}

std::optional<Account> Ledger::find_account(std::string_view id) const {
  const auto found = account_index_.find(id, account_id_of());
  if (!found) return std::nullopt;
  return to_account(accounts_[*found]);
}

std::optional<Transfer> Ledger::find_transfer(std::string_view id) const {
  const auto found = transfer_index_.find(id, transfer_id_of());
  if (!found) return std::nullopt;
  TransferRecord scratch;
  return to_transfer(record(*found, &scratch));
}

PageResult Ledger::page_bounds(std::string_view account_id, size_t limit,
                               std::string_view starting_after, uint32_t* account, size_t* begin,
                               size_t* end) const {
  const auto found = account_index_.find(account_id, account_id_of());
  if (!found) return PageResult::account_not_found;
  *account = *found;
  const std::vector<uint32_t>& list = accounts_[*found].transfers;
  *end = list.size();  // exclusive; pages walk down from here
  if (!starting_after.empty()) {
    const auto cursor = transfer_index_.find(starting_after, transfer_id_of());
    const auto it = cursor ? std::lower_bound(list.begin(), list.end(), *cursor) : list.end();
    if (it == list.end() || *it != *cursor) return PageResult::starting_after_not_found;
    *end = static_cast<size_t>(it - list.begin());
  }
  limit = std::clamp<size_t>(limit, 1, kPageLimitMax);
  *begin = *end > limit ? *end - limit : 0;
  return PageResult::ok;
}

AccountTransfersPage Ledger::account_transfers(std::string_view account_id, size_t limit,
                                               std::string_view starting_after) const {
  TieredTransfersPage tiered = account_transfers_tiered(account_id, limit, starting_after);
  AccountTransfersPage page;
  page.result = tiered.result;
  page.has_more = tiered.has_more;
  page.data.reserve(tiered.data.size());
  TransferRecord scratch;
  for (size_t i = 0; i < tiered.data.size(); ++i) {
    page.data.push_back(tiered.data[i] ? std::move(*tiered.data[i])
                                       : to_transfer(record(tiered.indexes[i], &scratch)));
  }
  return page;
}

TieredTransfersPage Ledger::account_transfers_tiered(std::string_view account_id, size_t limit,
                                                     std::string_view starting_after) const {
  TieredTransfersPage page;
  uint32_t account = 0;
  size_t begin = 0;
  size_t end = 0;
  page.result = page_bounds(account_id, limit, starting_after, &account, &begin, &end);
  if (page.result != PageResult::ok) return page;
  const std::vector<uint32_t>& list = accounts_[account].transfers;
  page.data.reserve(end - begin);
  page.indexes.reserve(end - begin);
  for (size_t i = end; i > begin; --i) {
    const TransferRecord* t = transfers_.hot(list[i - 1]);
    page.data.push_back(t != nullptr ? std::optional<Transfer>(to_transfer(*t)) : std::nullopt);
    page.indexes.push_back(list[i - 1]);
  }
  page.has_more = begin > 0;
  return page;
}

TransferLookup Ledger::lookup_transfer(std::string_view id) const {
  TransferLookup out;
  transfer_index_.for_each_candidate(transfer_index_.hash(id), [&](uint32_t i) {
    const TransferRecord* t = transfers_.hot(i);
    if (t == nullptr) {
      out.cold_candidates.push_back(i);
    } else if (t->id == id) {
      out.hot = to_transfer(*t);
    }
  });
  if (out.hot) out.cold_candidates.clear();
  return out;
}

LedgerCounts Ledger::counts() const {
  return {accounts_.size(), transfers_.size(), expiries_.size(), transfers_.hot_count()};
}

// ---- invariants -----------------------------------------------------------------------------

InvariantReport Ledger::check_invariants() const {
  // Balances recomputed from the transfers, compared with the stored ones account by account.
  std::vector<Balances> recomputed(accounts_.size());
  size_t live_holds_with_deadline = 0;
  std::string problem;
  for_each_transfer([&](uint32_t i, const TransferRecord& t) {
    if (!problem.empty()) return;
    Balances& d = recomputed[t.debit];
    Balances& c = recomputed[t.credit];
    if (t.flags & transfer_flags::kPending) {
      if (t.state == PendingState::pending) {
        d.debits_pending += t.amount;
        c.credits_pending += t.amount;
        if (t.timeout_s > 0) {
          ++live_holds_with_deadline;
          if (!expiries_.contains({t.timestamp + t.timeout_s * kNanosPerSecond, i})) {
            problem = "live hold " + t.id + " has no expiry entry";
          }
        }
      }
    } else if (!(t.flags & transfer_flags::kVoidPending)) {
      d.debits_posted += t.amount;
      c.credits_posted += t.amount;
    }
  });
  if (!problem.empty()) return {false, problem};
  if (live_holds_with_deadline != expiries_.size()) return {false, "stale expiry entries"};
  for (size_t i = 0; i < accounts_.size(); ++i) {
    if (!(accounts_[i].balances == recomputed[i])) {
      return {false,
              "account " + accounts_[i].id + " balances differ from the sum of its transfers"};
    }
  }
  return check_accounts();
}

InvariantReport Ledger::check_accounts() const {
  struct Totals {
    __int128 debits_pending = 0, debits_posted = 0, credits_pending = 0, credits_posted = 0;
  };
  std::map<uint16_t, Totals> totals;
  for (size_t i = 0; i < accounts_.size(); ++i) {
    const AccountRecord& a = accounts_[i];
    if (!within_limits(a.flags, a.balances))
      return {false, "account " + a.id + " breaks its flags"};
    Totals& t = totals[a.currency];
    t.debits_pending += a.balances.debits_pending;
    t.debits_posted += a.balances.debits_posted;
    t.credits_pending += a.balances.credits_pending;
    t.credits_posted += a.balances.credits_posted;
  }
  for (const auto& [currency, t] : totals) {
    const std::string code(Currency::from_index(currency)->code());
    if (t.debits_posted != t.credits_posted)
      return {false, code + ": debits_posted != credits_posted"};
    if (t.debits_pending != t.credits_pending) {
      return {false, code + ": debits_pending != credits_pending"};
    }
  }
  return {};
}

// ---- history ---------------------------------------------------------------------------------

namespace {

// One transfer's fields, as both encodings and the store values lay them out.
void encode_transfer_fields(ByteWriter& w, const auto& t) {
  w.str16(t.id);
  w.i64(t.amount);
  w.i64(t.timestamp);
  w.u32(t.debit);
  w.u32(t.credit);
  w.u32(t.pending);
  w.u32(t.timeout_s);
  w.u16(t.currency);
  w.u16(t.flags);
  w.u8(static_cast<uint8_t>(t.state));
  encode_metadata(w, t.metadata);
}

bool decode_account(ByteReader& r, auto* a) {
  return r.str16(&a->id) && r.u16(&a->currency) && r.u16(&a->flags) && r.i64(&a->timestamp) &&
         r.i64(&a->balances.debits_pending) && r.i64(&a->balances.debits_posted) &&
         r.i64(&a->balances.credits_pending) && r.i64(&a->balances.credits_posted) &&
         decode_metadata(r, &a->metadata);
}

bool decode_transfer(ByteReader& r, auto* t) {
  uint8_t state = 0;
  const bool ok = r.str16(&t->id) && r.i64(&t->amount) && r.i64(&t->timestamp) &&
                  r.u32(&t->debit) && r.u32(&t->credit) && r.u32(&t->pending) &&
                  r.u32(&t->timeout_s) && r.u16(&t->currency) && r.u16(&t->flags) && r.u8(&state) &&
                  decode_metadata(r, &t->metadata);
  if (!ok || state > static_cast<uint8_t>(PendingState::expired)) return false;
  t->state = static_cast<PendingState>(state);
  return true;
}

bool is_final(uint16_t flags, PendingState state) {
  return !(flags & transfer_flags::kPending) || state != PendingState::pending;
}

}  // namespace

const Ledger::TransferRecord& Ledger::record(uint32_t i, TransferRecord* scratch) const {
  if (const TransferRecord* t = transfers_.hot(i)) return *t;
  KEEL_ASSERT(cold_ != nullptr);
  const std::optional<std::string> value = cold_->read(i);
  KEEL_ASSERT(value.has_value());
  ByteReader r(*value);
  *scratch = TransferRecord{};
  KEEL_ASSERT(decode_transfer(r, scratch));
  return *scratch;
}

std::string_view Ledger::cold_id(uint32_t i) const {
  KEEL_ASSERT(cold_ != nullptr);
  const std::optional<std::string> value = cold_->read(i);
  KEEL_ASSERT(value.has_value());
  ByteReader r(*value);
  KEEL_ASSERT(r.str16(&cold_scratch_));
  return cold_scratch_;
}

// In index order, merging memory with one ordered scan of the store (not a read per transfer).
void Ledger::for_each_transfer(
    const std::function<void(uint32_t, const TransferRecord&)>& fn) const {
  const auto size = static_cast<uint32_t>(transfers_.size());
  uint32_t next = 0;
  // Every transfer not in the store is in memory.
  const auto in_memory_below = [&](uint32_t limit) {
    for (; next < limit; ++next) {
      const TransferRecord* t = transfers_.hot(next);
      KEEL_ASSERT(t != nullptr);
      fn(next, *t);
    }
  };
  if (cold_ != nullptr && transfers_.hot_count() < size) {
    TransferRecord scratch;
    const Status s = cold_->scan(size, [&](uint32_t i, std::string_view value) {
      KEEL_ASSERT(i >= next);
      in_memory_below(i);
      if (const TransferRecord* t = transfers_.hot(i)) {
        fn(i, *t);  // written, not yet dropped from memory
      } else {
        ByteReader r(value);
        scratch = TransferRecord{};
        KEEL_ASSERT(decode_transfer(r, &scratch));
        fn(i, scratch);
      }
      next = i + 1;
      return Status::ok();
    });
    KEEL_ASSERT(s.is_ok());
  }
  in_memory_below(size);
}

void Ledger::take_final(std::vector<FinalTransfer>* out) {
  KEEL_ASSERT(cold_ != nullptr && !in_chain_);
  const auto hand = [&](uint32_t i) {
    if (i >= transfers_.size()) return;  // a hold created and finalized in a chain rolled back
    TransferRecord* t = transfers_.hot(i);
    if (t == nullptr || t->handed || !is_final(t->flags, t->state)) return;
    t->handed = true;
    FinalTransfer f;
    f.index = i;
    ByteWriter w(&f.value);
    encode_transfer_fields(w, *t);
    // What a reader off this thread needs to answer with the transfer: the ids it refers to.
    w.str16(accounts_[t->debit].id);
    w.str16(accounts_[t->credit].id);
    w.str16(t->pending == kNoIndex ? std::string_view() : transfer_id_of()(t->pending));
    out->push_back(std::move(f));
  };
  const auto size = static_cast<uint32_t>(transfers_.size());
  for (uint32_t i = next_unexamined_; i < size; ++i) hand(i);
  next_unexamined_ = size;
  for (const uint32_t i : finalized_) hand(i);
  finalized_.clear();
}

void Ledger::make_cold(std::span<const uint32_t> indexes) {
  KEEL_ASSERT(cold_ != nullptr && !in_chain_);
  for (const uint32_t i : indexes) {
    const TransferRecord* t = transfers_.hot(i);
    KEEL_ASSERT(t != nullptr && t->handed && is_final(t->flags, t->state));
    transfers_.make_cold(i);
  }
}

Status Ledger::decode_cold(std::string_view value, Transfer* out) {
  TransferRecord t;
  std::string debit;
  std::string credit;
  std::string pending;
  ByteReader r(value);
  if (!decode_transfer(r, &t) || !r.str16(&debit) || !r.str16(&credit) || !r.str16(&pending) ||
      !r.at_end() || !Currency::from_index(t.currency)) {
    return Status::error("malformed transfer record in the history store");
  }
  *out = Transfer{};
  out->id = std::move(t.id);
  out->debit_account_id = std::move(debit);
  out->credit_account_id = std::move(credit);
  out->amount = t.amount;
  out->currency = *Currency::from_index(t.currency);
  out->flags = t.flags;
  out->pending_id = std::move(pending);
  out->timeout_s = t.timeout_s;
  if (t.metadata) out->metadata = *t.metadata;
  out->timestamp = t.timestamp;
  out->pending_state = t.state;
  if (t.timeout_s > 0) out->expires_at = t.timestamp + t.timeout_s * kNanosPerSecond;
  return Status::ok();
}

// ---- encoding -------------------------------------------------------------------------------

namespace {

// Version 1: every account, then every transfer. Version 2 (some transfers in the store): every
// account, the transfer count, then the transfers in memory, each after its index.
constexpr uint32_t kEncodingAllInMemory = 1;
constexpr uint32_t kEncodingWithStore = 2;

void encode_accounts(ByteWriter& w, const auto& accounts) {
  w.u64(accounts.size());
  for (size_t i = 0; i < accounts.size(); ++i) {
    const auto& a = accounts[i];
    w.str16(a.id);
    w.u16(a.currency);
    w.u16(a.flags);
    w.i64(a.timestamp);
    w.i64(a.balances.debits_pending);
    w.i64(a.balances.debits_posted);
    w.i64(a.balances.credits_pending);
    w.i64(a.balances.credits_posted);
    encode_metadata(w, a.metadata);
  }
}

}  // namespace

void Ledger::encode(std::string* out) const {
  ByteWriter w(out);
  const bool all_in_memory = transfers_.hot_count() == transfers_.size();
  w.u32(all_in_memory ? kEncodingAllInMemory : kEncodingWithStore);
  encode_accounts(w, accounts_);
  w.u64(transfers_.size());
  if (!all_in_memory) w.u64(transfers_.hot_count());
  for (size_t i = 0; i < transfers_.size(); ++i) {
    const TransferRecord* t = transfers_.hot(i);
    if (t == nullptr) continue;
    if (!all_in_memory) w.u32(static_cast<uint32_t>(i));
    encode_transfer_fields(w, *t);
  }
}

// The hash of the version 1 encoding, whichever tier each transfer is in: streamed (the store's
// part does not fit in memory), in 8-byte words so the chunks hash as the whole would.
uint64_t Ledger::state_hash() const {
  StateHasher h;
  std::string buf;
  ByteWriter w(&buf);
  const auto flush = [&](bool last) {
    const size_t n = last ? buf.size() : buf.size() & ~size_t{7};
    h.bytes(std::string_view(buf.data(), n));
    buf.erase(0, n);
  };
  w.u32(kEncodingAllInMemory);
  encode_accounts(w, accounts_);
  w.u64(transfers_.size());
  for_each_transfer([&](uint32_t, const TransferRecord& t) {
    encode_transfer_fields(w, t);
    if (buf.size() >= (size_t{1} << 20)) flush(false);
  });
  flush(true);
  return h.finish();
}

Status Ledger::decode(std::string_view bytes, SipKey index_key, const ColdTransfers* cold,
                      Ledger* out) {
  Ledger l(index_key);
  l.cold_ = cold;
  ByteReader r(bytes);
  uint32_t version = 0;
  uint64_t n = 0;
  if (!r.u32(&version) || (version != kEncodingAllInMemory && version != kEncodingWithStore)) {
    return Status::error("unknown version");
  }
  if (version == kEncodingWithStore && cold == nullptr) {
    return Status::error("the snapshot counts on a history store, and none is open");
  }
  if (!r.u64(&n) || n >= kNoIndex) return Status::error("bad account count");
  const auto account_id = l.account_id_of();
  for (uint64_t i = 0; i < n; ++i) {
    AccountRecord a;
    if (!decode_account(r, &a) || !is_valid_id(a.id) || !Currency::from_index(a.currency) ||
        (a.flags & ~account_flags::kAll) || l.account_index_.find(a.id, account_id)) {
      return Status::error("account " + std::to_string(i) + " is malformed");
    }
    l.accounts_.push_back(std::move(a));
    l.account_index_.insert(l.accounts_.back().id, static_cast<uint32_t>(i));
  }
  if (!r.u64(&n) || n >= kNoIndex) return Status::error("bad transfer count");
  uint64_t in_memory = n;
  if (version == kEncodingWithStore && (!r.u64(&in_memory) || in_memory > n)) {
    return Status::error("bad count of transfers in memory");
  }
  // Appends transfer `i` (from the snapshot, or from the store when `from_store`).
  const auto transfer_id = l.transfer_id_of();
  const auto place = [&](uint32_t i, TransferRecord&& t, bool from_store) -> Status {
    const bool ok =
        is_valid_id(t.id) && t.debit < l.accounts_.size() && t.credit < l.accounts_.size() &&
        t.debit != t.credit && (t.pending == kNoIndex || t.pending < i) &&
        Currency::from_index(t.currency) && !(t.flags & ~transfer_flags::kAll) &&
        (!from_store || is_final(t.flags, t.state)) && !l.transfer_index_.find(t.id, transfer_id);
    if (!ok) {
      return Status::error("transfer " + std::to_string(i) + " is malformed" +
                           (from_store ? " (in the history store)" : ""));
    }
    l.accounts_[t.debit].transfers.push_back(i);
    l.accounts_[t.credit].transfers.push_back(i);
    if (t.state == PendingState::pending && t.timeout_s > 0) {
      l.expiries_.insert({t.timestamp + t.timeout_s * kNanosPerSecond, i});
    }
    const uint64_t h = l.transfer_index_.hash(t.id);
    if (from_store) {
      t = TransferRecord{};
      t.handed = true;
      l.transfers_.push_back(std::move(t));
      l.transfers_.make_cold(i);
    } else {
      // Handed out again (writing a value twice changes nothing in the store).
      if (l.cold_ != nullptr && is_final(t.flags, t.state)) l.finalized_.push_back(i);
      l.transfers_.push_back(std::move(t));
    }
    l.transfer_index_.insert_hashed(h, i);
    return Status::ok();
  };
  if (version == kEncodingAllInMemory) {
    for (uint64_t i = 0; i < n; ++i) {
      TransferRecord t;
      if (!decode_transfer(r, &t))
        return Status::error("transfer " + std::to_string(i) + " is malformed");
      if (Status s = place(static_cast<uint32_t>(i), std::move(t), false); !s.is_ok()) return s;
    }
  } else {
    std::vector<std::pair<uint32_t, TransferRecord>> hot;
    hot.reserve(in_memory);
    for (uint64_t k = 0; k < in_memory; ++k) {
      uint32_t index = 0;
      TransferRecord t;
      if (!r.u32(&index) || index >= n || (!hot.empty() && index <= hot.back().first) ||
          !decode_transfer(r, &t)) {
        return Status::error("transfer in memory " + std::to_string(k) + " is malformed");
      }
      hot.emplace_back(index, std::move(t));
    }
    uint32_t next = 0;  // the next transfer to place
    size_t h = 0;       // the next in-memory transfer
    const auto missing = [&] {
      return Status::error("the history store lacks transfer " + std::to_string(next) +
                           ", which the snapshot counts on (a store older than the snapshot?)");
    };
    // Places the snapshot's transfers with index < limit; they must follow on without a gap.
    const auto place_hot_below = [&](uint64_t limit) -> Status {
      for (; h < hot.size() && hot[h].first < limit; ++h, ++next) {
        if (hot[h].first != next) return missing();
        if (Status s = place(next, std::move(hot[h].second), false); !s.is_ok()) return s;
      }
      return Status::ok();
    };
    Status failed;
    Status scanned = cold->scan(static_cast<uint32_t>(n), [&](uint32_t i, std::string_view value) {
      if (failed = place_hot_below(i); !failed.is_ok()) return failed;
      if (h < hot.size() && hot[h].first == i) return Status::ok();  // the snapshot's copy wins
      if (i != next) return failed = missing();
      TransferRecord t;
      ByteReader v(value);
      if (!decode_transfer(v, &t)) {
        return failed = Status::error("transfer " + std::to_string(i) +
                                      " is malformed (in the history store)");
      }
      failed = place(next++, std::move(t), true);
      return failed;
    });
    if (!scanned.is_ok()) return scanned;
    if (Status s = place_hot_below(n); !s.is_ok()) return s;
    if (next != n) return missing();
  }
  if (!r.at_end()) return Status::error("trailing bytes after the ledger state");
  l.next_unexamined_ = static_cast<uint32_t>(n);
  // The full check reads every transfer; with history in the store, start-up checks what memory
  // holds (`keel journal verify` and a full status run the whole check).
  const InvariantReport inv =
      version == kEncodingAllInMemory ? l.check_invariants() : l.check_accounts();
  if (!inv.ok) return Status::error("decoded ledger breaks an invariant: " + inv.problem);
  *out = std::move(l);
  return Status::ok();
}

size_t Ledger::memory_bytes() const {
  size_t bytes = accounts_.capacity_bytes() + transfers_.memory_bytes() +
                 account_index_.memory_bytes() + transfer_index_.memory_bytes() +
                 finalized_.capacity() * sizeof(uint32_t);
  // std::string keeps up to 15 bytes inline; longer ids live on the heap.
  const auto heap_string = [](const std::string& s) {
    return s.size() > 15 ? s.capacity() + 1 : 0;
  };
  for (size_t i = 0; i < accounts_.size(); ++i) {
    bytes += accounts_[i].transfers.capacity() * sizeof(uint32_t) + heap_string(accounts_[i].id);
  }
  for (size_t i = 0; i < transfers_.size(); ++i) {
    const TransferRecord* t = transfers_.hot(i);
    if (t == nullptr) continue;
    bytes += heap_string(t->id);
    if (t->metadata) bytes += sizeof(Metadata) + t->metadata->capacity() * 64;
  }
  bytes += expiries_.size() * 48;  // red-black tree node
  return bytes;
}

}  // namespace keel::ledger
