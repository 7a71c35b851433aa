#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/bytes.h"
#include "core/chunked_vector.h"
#include "core/hash.h"
#include "core/status.h"
#include "ledger/id_index.h"
#include "ledger/results.h"
#include "ledger/tiered_vector.h"
#include "ledger/types.h"

namespace keel::ledger {

// Most events one request may carry (the same bound as TigerBeetle's batches).
inline constexpr size_t kEventsPerRequestMax = 8190;
// Most transfers one page of an account's history returns.
inline constexpr size_t kPageLimitMax = 1000;

enum class PageResult : uint8_t {
  ok = 0,
  account_not_found,
  starting_after_not_found,  // no such transfer, or not one of this account's
};

struct AccountTransfersPage {
  PageResult result = PageResult::ok;
  std::vector<Transfer> data;  // newest first; empty unless result is ok
  bool has_more = false;
};

// The outcome of check_invariants(): ok, or the first broken invariant in words.
struct InvariantReport {
  bool ok = true;
  std::string problem;
};

struct LedgerCounts {
  uint64_t accounts = 0;
  uint64_t transfers = 0;
  uint64_t pending_with_timeout = 0;
  uint64_t transfers_in_memory = 0;  // the rest are in the history store
};

// Where the ledger reads the transfers it moved out of memory (the engine: its history store;
// tests: a map). Thread: the ledger's. A record the ledger was told is durable (make_cold) must
// be readable: the store is the ledger's memory for history, so a failed read is fatal
// (KEEL_ASSERT), like a failed read of RAM.
class ColdTransfers {
 public:
  virtual ~ColdTransfers() = default;
  // The value take_final() gave for transfer `index`, or nullopt if the store does not hold it.
  [[nodiscard]] virtual std::optional<std::string> read(uint32_t index) const = 0;
  // Calls `fn` for every stored transfer with index < `below`, in ascending index order.
  virtual Status scan(
      uint32_t below,
      const std::function<Status(uint32_t index, std::string_view value)>& fn) const = 0;
};

// A transfer that will never change again (posted, or a hold that was posted, voided or
// expired), encoded for the history store: take_final() hands these out.
struct FinalTransfer {
  uint32_t index = 0;
  std::string value;
};

// A lookup by id that does not touch the store (for reads that run off the ledger's thread): the
// transfer itself when it is in memory, else the store records whose id hash matches, which the
// reader fetches (decode_cold) and compares with the id.
struct TransferLookup {
  std::optional<Transfer> hot;
  std::vector<uint32_t> cold_candidates;
};

// A page of an account's transfers as account_transfers() gives it, with the transfers in the
// store left for the reader: data[i] is nullopt when indexes[i] must be read (decode_cold).
struct TieredTransfersPage {
  PageResult result = PageResult::ok;
  std::vector<std::optional<Transfer>> data;
  std::vector<uint32_t> indexes;
  bool has_more = false;
};

// The double-entry ledger: accounts, transfers and pending transfers (holds).
//
// A pure, deterministic state machine: no I/O, no clock, no randomness reaches its state.
// Thread: one thread at a time (the engine's writer thread); queries may run on the same thread
// between commands. Nothing here throws on bad input: every event gets a result code.
//
// Invariants, checked by KEEL_ASSERT after every change and by check_invariants() in full:
// for every currency, total debits_posted == total credits_posted and total debits_pending ==
// total credits_pending; an account with debits_must_not_exceed_credits never has
// debits_pending + debits_posted > credits_posted (and the mirror for the other flag).
class Ledger {
 public:
  // `index_key` seeds the hash of the id indexes (see SipKey); it never changes the state, its
  // hash or any result.
  explicit Ledger(SipKey index_key = {});
  Ledger(Ledger&&) = default;
  Ledger& operator=(Ledger&&) = default;

  // Applies `events` in order; event i gets timestamp `base + i`. REQUIRES: base greater than
  // every timestamp applied before, events.size() <= kEventsPerRequestMax.
  // Expires every hold whose deadline is <= base first. A chain of events joined by the linked
  // flag succeeds or fails whole.
  std::vector<CreateAccountResult> create_accounts(std::span<const AccountEvent> events,
                                                   Timestamp base);
  std::vector<CreateTransferResult> create_transfers(std::span<const TransferEvent> events,
                                                     Timestamp base);
  // Closes or reopens an account. A closed account takes no new transfers and no posts; holds on
  // it may still be voided or expire.
  SetAccountClosedResult set_account_closed(std::string_view id, bool closed, Timestamp now);
  // Releases every pending transfer whose deadline is <= now. Returns how many expired.
  size_t expire_pending(Timestamp now);
  // The earliest deadline of a live hold, if any.
  [[nodiscard]] std::optional<Timestamp> next_expiry() const;

  // ---- history (docs/storage.md, "Tiers") ----
  // Moving transfers out of memory never changes the state, its hash or any result: a transfer
  // in the store answers exactly as it did in memory. Without `cold` (the default) every transfer
  // stays in memory and take_final() hands out nothing.
  // REQUIRES: set before any transfer exists, or decode() was given the same store.
  void set_cold_transfers(const ColdTransfers* cold) { cold_ = cold; }
  // Appends every transfer that became final since the last call (in memory, not yet handed
  // out). REQUIRES: set_cold_transfers was given a store; not inside a command.
  void take_final(std::vector<FinalTransfer>* out);
  // Drops transfers from memory once their take_final() values are durable in the store.
  // REQUIRES: each was handed out by take_final() and is still in memory.
  void make_cold(std::span<const uint32_t> indexes);
  // Decodes a take_final() value into the transfer a query answers (any thread).
  [[nodiscard]] static Status decode_cold(std::string_view value, Transfer* out);
  [[nodiscard]] TransferLookup lookup_transfer(std::string_view id) const;
  [[nodiscard]] TieredTransfersPage account_transfers_tiered(std::string_view account_id,
                                                             size_t limit,
                                                             std::string_view starting_after) const;

  [[nodiscard]] std::optional<Account> find_account(std::string_view id) const;
  [[nodiscard]] std::optional<Transfer> find_transfer(std::string_view id) const;
  // An account's transfers (as debit or credit side), newest first. `starting_after` is a transfer
  // id from a previous page (empty: from the newest). limit is clamped to [1, kPageLimitMax].
  [[nodiscard]] AccountTransfersPage account_transfers(std::string_view account_id, size_t limit,
                                                       std::string_view starting_after) const;

  [[nodiscard]] LedgerCounts counts() const;
  // Full check of every invariant, O(accounts + transfers). For tests, verify and start-up.
  // Reads every transfer in the store.
  [[nodiscard]] InvariantReport check_invariants() const;
  // The part of it that needs no transfer, O(accounts): each account within its flags, and per
  // currency the debits equal the credits.
  [[nodiscard]] InvariantReport check_accounts() const;
  // Hash of the canonical encoding of all state (encode()'s version 1, every transfer included
  // wherever it is: reads the store).
  [[nodiscard]] uint64_t state_hash() const;

  // Encoding of the state for snapshots: every account and the transfers in memory (version 2
  // when some transfer is in the store, else version 1: every transfer). decode() rebuilds an
  // equal ledger (same state_hash), reading the indexes of the transfers in the store from
  // `cold` (which it keeps, as set_cold_transfers), or fails with a message if the bytes are
  // malformed or the store lacks a transfer the snapshot counts on.
  void encode(std::string* out) const;
  [[nodiscard]] static Status decode(std::string_view bytes, SipKey index_key,
                                     const ColdTransfers* cold, Ledger* out);

  // Approximate heap bytes held, for the memory benchmark.
  [[nodiscard]] size_t memory_bytes() const;

 private:
  static constexpr uint32_t kNoIndex = 0xFFFFFFFFu;

  struct AccountRecord {
    std::string id;
    Balances balances;
    Timestamp timestamp = 0;
    std::unique_ptr<Metadata> metadata;  // null when empty
    std::vector<uint32_t> transfers;     // indexes into transfers_, ascending
    uint16_t currency = Currency::kNone;
    uint16_t flags = 0;
  };

  struct TransferRecord {
    std::string id;
    int64_t amount = 0;
    Timestamp timestamp = 0;
    std::unique_ptr<Metadata> metadata;  // null when empty
    uint32_t debit = kNoIndex;           // index into accounts_
    uint32_t credit = kNoIndex;
    uint32_t pending = kNoIndex;  // post/void: index of the pending transfer
    uint32_t timeout_s = 0;
    uint16_t currency = Currency::kNone;
    uint16_t flags = 0;
    PendingState state = PendingState::none;
    bool handed = false;  // given out by take_final()
    bool cold = false;    // in the store only (TieredVector's slot marker)
  };

  // One change to undo if a linked chain fails, newest last.
  struct UndoEntry {
    enum class Kind : uint8_t { account_created, transfer_created, balances, pending_state };
    Kind kind;
    uint32_t index;
    Balances balances;
    PendingState state;
  };

  CreateAccountResult create_account(const AccountEvent& e, Timestamp ts);
  // What create_transfers() resolves for each event before applying any: the id's hash and,
  // for plain and pending transfers, the account indexes (kNoIndex if unknown).
  struct EventKeys {
    uint64_t id_hash = 0;
    uint32_t debit = kNoIndex;
    uint32_t credit = kNoIndex;
  };
  CreateTransferResult create_transfer(const TransferEvent& e, Timestamp ts, const EventKeys& keys);
  CreateTransferResult validate_transfer_fields(const TransferEvent& e) const;
  CreateTransferResult transfer_exists(const TransferEvent& e, const TransferRecord& t) const;
  CreateTransferResult create_plain_or_pending(const TransferEvent& e, Timestamp ts,
                                               const EventKeys& keys);
  CreateTransferResult post_or_void(const TransferEvent& e, Timestamp ts, uint64_t id_hash);
  uint32_t append_transfer(TransferRecord&& t, uint64_t id_hash);
  // get_id functions for the indexes.
  auto account_id_of() const {
    return [this](uint32_t i) -> std::string_view { return accounts_[i].id; };
  }
  auto transfer_id_of() const {
    return [this](uint32_t i) -> std::string_view {
      const TransferRecord* t = transfers_.hot(i);
      return t != nullptr ? std::string_view(t->id) : cold_id(i);
    };
  }
  // The record of transfer i: in memory, or read from the store into `*scratch`.
  const TransferRecord& record(uint32_t i, TransferRecord* scratch) const;
  std::string_view cold_id(uint32_t i) const;  // valid until the next cold read
  // Calls fn for every transfer, in index order, wherever it is.
  void for_each_transfer(const std::function<void(uint32_t, const TransferRecord&)>& fn) const;
  void encode_transfers(ByteWriter& w, const std::function<void()>& flush) const;
  // The slice [*begin, *end) of the account's transfer list that a page shows.
  PageResult page_bounds(std::string_view account_id, size_t limit, std::string_view starting_after,
                         uint32_t* account, size_t* begin, size_t* end) const;
  void set_balances(uint32_t account, const Balances& b);
  void set_pending_state(uint32_t transfer, PendingState s);
  void release_hold(uint32_t transfer);
  void rollback(size_t undo_mark);
  Transfer to_transfer(const TransferRecord& t) const;
  Account to_account(const AccountRecord& a) const;
  void rebuild_derived();

  SipKey index_key_;
  ChunkedVector<AccountRecord> accounts_;
  TieredVector<TransferRecord> transfers_;
  IdIndex account_index_;
  IdIndex transfer_index_;
  // Live holds with a deadline: (expires_at, transfer index), earliest first.
  std::set<std::pair<Timestamp, uint32_t>> expiries_;
  std::vector<UndoEntry> undo_;
  bool in_chain_ = false;
  // History: where transfers out of memory are read, the first transfer take_final() has not
  // looked at, and holds that became final since (filtered by their state when taken).
  const ColdTransfers* cold_ = nullptr;
  uint32_t next_unexamined_ = 0;
  std::vector<uint32_t> finalized_;
  mutable std::string cold_scratch_;
};

}  // namespace keel::ledger
