#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "core/currency.h"
#include "core/kv_reader.h"
#include "core/status.h"
#include "core/time.h"
#include "ledger/types.h"
#include "payments/change_tracker.h"
#include "payments/payment.h"

namespace keel::payments {

// Top-ups, wallet-to-wallet transfers and payouts (docs/postings.md flows 1, 4 and 6) as one
// pure, deterministic state machine: no I/O, no clock, no randomness. Every call takes `now`
// from its journaled command and returns what must happen next as Effects:
//   - `postings`: ledger events the engine posts in the same journaled command. Each call appends
//     at most one chain and links it (kLinked on all of its events but the last), so a flow's
//     state and its money can never disagree after a crash.
//   - `calls`: PSP calls the engine makes after the command is durable. Their results come back
//     through apply_result() (answer, status query or webhook: whichever comes first settles the
//     attempt, later ones are `stale_result` and change nothing).
//
// Flows and their states (processing, succeeded, failed; the names match PaymentStatus):
//   top-up:    processing (one `topup` attempt `{id}_a1` at the PSP; nothing posted) -> approved:
//              succeeded, `psp_clearing -> wallet` (+ `psp_fees -> psp_clearing` when the PSP
//              charged a fee); declined_hard, declined_soft, retryable: failed, nothing posted.
//   transfer:  immediate. succeeded with `wallet:{from} -> wallet:{to}`, or failed with
//              error_code `insufficient_funds` and nothing posted.
//   payout:    processing with a hold `wallet -> psp_clearing` (pending, NO ledger timeout) and
//              one `payout` attempt -> approved (paid): the hold is posted (+ the fee chain),
//              succeeded; declined_*, retryable: the hold is voided, failed. Not enough funds:
//              stored as failed (error_code `insufficient_funds`), nothing posted, no PSP call.
//   An `unknown` result leaves the flow processing (the resolver owns it). A PSP that answers
//   `pending` for a payout is not a result: the engine does not call apply_result for it and the
//   resolver keeps polling. There is no retry with a new attempt: a retryable or softly declined
//   top-up or payout fails, and the client may start a new one.
//
// Deadlines: a processing flow is due at created_at + the flow's deadline (WalletFlowOptions).
// tick() flags a due flow for review (deadline_unknown) (its attempt is outstanding by
// construction): it never moves money and never releases a payout hold; the timeline records it. A
// late result still settles the flow and clears the flag.
//
// Ids: flow ids are 1..48 bytes of [A-Za-z0-9_-]; attempt ids are `{id}_a{n}` (the PSP reference);
// ledger transfer ids are `{id}.topup`, `{id}.transfer`, `{id}.hold`, `{id}.post`, `{id}.void`
// and `{id}.psp_fee`. Top-ups, transfers and payouts share one id space here; the ledger and the
// PSPs share theirs with the other payment machines, so the API's type prefixes (`tu_`, `tr_`,
// `po_`, `pay_`) must keep flow ids apart from payment ids.
//
// Thread: the engine's writer thread only (queries too, between commands). Never throws on bad
// input: every call returns a WalletFlowResult and changes nothing unless it is `ok`, with one
// documented exception: `insufficient_funds` stores the transfer or payout as failed (so that
// GET shows it and its id is taken) while posting nothing and calling no PSP.
//
// REQUIRES of the engine: the accounts of wallet_flow_accounts() exist (created, flags as given)
// before it posts a flow's effects, and `available_minor` is the sender wallet's available
// balance read from the ledger in the same writer step (wallet_flow_available_minor()). Under
// those, every chain returned here is accepted by the ledger; a rejected chain is a bug and the
// engine must stop before journaling it.

// Values are in snapshots: never renumber one.
enum class WalletFlowKind : uint8_t { topup = 0, transfer, payout };
enum class WalletFlowStatus : uint8_t { processing = 0, succeeded, failed };

enum class WalletFlowResult : uint8_t {
  ok = 0,
  id_invalid,           // not 1..48 bytes of [A-Za-z0-9_-]
  exists,               // a top-up, transfer or payout with this id exists; nothing changed
  amount_invalid,       // not positive
  currency_invalid,     // not an ISO 4217 currency
  customer_id_invalid,  // not 1..40 bytes of [A-Za-z0-9_-]
  channel_invalid,      // not 1..40 bytes of [A-Za-z0-9_-]
  instrument_invalid,   // wrong kind for the flow, or not 1..128 bytes of printable ASCII
  same_wallet,          // transfer from a wallet to itself
  insufficient_funds,   // amount above available_minor: stored as failed, nothing moved
  attempt_not_found,
  stale_result,    // the attempt is already settled; nothing changes (late or duplicate answer)
  result_invalid,  // result_problem() finds one (payment.h): nothing changed; flag it
  cause_invalid,   // not 1..128 bytes
  starting_after_not_found,  // list cursor: no such flow of that kind
  already_in_review,         // flag_result_rejected(): the flow is flagged for that already
};

[[nodiscard]] std::string_view result_name(WalletFlowResult r);
[[nodiscard]] std::string_view wallet_flow_kind_name(WalletFlowKind k);
[[nodiscard]] std::string_view wallet_flow_status_name(WalletFlowStatus s);

// Bounds (TigerStyle: a limit on everything that reaches state or a snapshot).
inline constexpr size_t kWalletFlowIdLengthMax = 48;    // room for `_a{n}` and `.psp_fee`
inline constexpr size_t kWalletFlowNameLengthMax = 40;  // customers, channels (in account ids)
inline constexpr size_t kWalletFlowInstrumentLengthMax = 128;
inline constexpr size_t kWalletFlowResultTextLengthMax = 255;  // psp_reference, error_code
inline constexpr size_t kWalletFlowCauseLengthMax = 128;
inline constexpr size_t kWalletFlowPageLimitMax = 100;
inline constexpr int64_t kWalletFlowDeadlineSecondsMax = 90 * 24 * 3600;

struct WalletFlowOptions {
  int64_t topup_processing_s = 30 * 60;         // top-up processing -> review
  int64_t payout_processing_s = 3 * 24 * 3600;  // payout processing -> review (hold kept)
};
// Both deadlines within [1, kWalletFlowDeadlineSecondsMax]. For the config loader.
[[nodiscard]] bool wallet_flow_options_valid(const WalletFlowOptions& options);

struct WalletFlowTimelineEntry {
  Timestamp at = 0;
  WalletFlowStatus from = WalletFlowStatus::processing;
  WalletFlowStatus to = WalletFlowStatus::processing;
  // "api" (creation: from == to), "psp_response", "status_query", "webhook:evt_1",
  // "deadline: review" (from == to == processing, the review flag), ...
  std::string cause;
};

struct WalletFlow {
  std::string id;
  WalletFlowKind kind = WalletFlowKind::topup;
  std::string customer_id;     // top-up: the wallet credited; payout and transfer: debited
  std::string to_customer_id;  // transfer only: the wallet credited
  int64_t amount = 0;
  Currency currency;
  // Top-up and payout: the PSP channel, and what the PSP draws on (top-up: card_token or
  // bank_account) or pays to (payout: iban or account). Empty and `none` for a transfer.
  std::string channel;
  InstrumentKind instrument_kind = InstrumentKind::none;
  std::string instrument;
  WalletFlowStatus status = WalletFlowStatus::processing;
  // Why a person must look at it: deadline_unknown (processing past its deadline with the
  // attempt outstanding) or psp_result_rejected (a PSP result that could not be taken).
  ReviewReason review = ReviewReason::none;
  std::string error_code;  // failed: the PSP's normalized code, or `insufficient_funds`
  int64_t fee = 0;  // succeeded: what the PSP charged keel (booked to psp_fees; is_valid_psp_fee)
  Timestamp created_at = 0;
  Timestamp updated_at = 0;
  Timestamp deadline = 0;         // processing and not yet in review; 0 otherwise
  std::vector<Attempt> attempts;  // at most one today
  std::vector<WalletFlowTimelineEntry> timeline;
};

struct TopupRequest {
  std::string id;
  std::string customer_id;
  int64_t amount = 0;
  Currency currency;
  std::string channel;
  InstrumentKind source_kind = InstrumentKind::none;  // card_token or bank_account
  std::string source;
};

struct WalletTransferRequest {
  std::string id;
  std::string from_customer_id;
  std::string to_customer_id;
  int64_t amount = 0;
  Currency currency;
  int64_t available_minor = 0;  // the sender wallet's available balance, now
};

struct PayoutRequest {
  std::string id;
  std::string customer_id;
  int64_t amount = 0;
  Currency currency;
  std::string channel;
  InstrumentKind destination_kind = InstrumentKind::none;  // iban or account
  std::string destination;
  int64_t available_minor = 0;  // the wallet's available balance, now
};

struct WalletFlowFilter {
  std::optional<WalletFlowStatus> status;
  std::string customer_id;  // empty: any. A transfer matches its sender and its receiver.
  std::optional<Timestamp> created_gte;
  std::optional<Timestamp> created_lt;
};

struct WalletFlowPage {
  WalletFlowResult result = WalletFlowResult::ok;
  std::vector<WalletFlow> data;  // newest first (created_at, then id, descending)
  bool has_more = false;
};

// Where a flow stands in its kind's lists: newest first by (created_at, id).
struct ListPosition {
  Timestamp created_at = 0;
  std::string id;
  auto operator<=>(const ListPosition&) const = default;
};

// The buckets a flow is listed in: "" (every flow of its kind), its customer, and a transfer's
// receiver.
[[nodiscard]] std::vector<std::string> wallet_flow_buckets(const WalletFlow& f);

// The history store's list index of flows at rest (docs/storage.md, "Layout"): "fl" + kind
// ('0' + its value) + bucket + '\0' + created_at (8 bytes, big-endian) + id -> empty. A key of
// one bucket sorts by position, so a reverse scan of the bucket is a list, newest first.
[[nodiscard]] std::string flow_list_prefix(WalletFlowKind kind, std::string_view bucket);
[[nodiscard]] std::string flow_list_key(WalletFlowKind kind, std::string_view bucket,
                                        const ListPosition& at);
// The position in a key of the bucket whose prefix is `prefix_size` bytes (false: malformed).
[[nodiscard]] bool parse_flow_list_key(std::string_view key, size_t prefix_size, ListPosition* out);

class WalletFlows {
 public:
  using Options = WalletFlowOptions;

  // REQUIRES: wallet_flow_options_valid(options).
  explicit WalletFlows(Options options = {});

  // Whether an id is taken outside memory (flows in the history store): `exists` then, where
  // an id in memory would be.
  using IdTaken = std::function<bool(std::string_view id)>;
  // A new top-up, processing, with its PSP call. Posts nothing.
  WalletFlowResult create_topup(const TopupRequest& request, Timestamp now, Effects* effects,
                                const IdTaken* taken = nullptr);
  // An immediate transfer: succeeded with its posting, or insufficient_funds (stored as failed).
  WalletFlowResult create_wallet_transfer(const WalletTransferRequest& request, Timestamp now,
                                          Effects* effects, const IdTaken* taken = nullptr);
  // A new payout, processing, with its hold and its PSP call; or insufficient_funds (stored as
  // failed, nothing posted, no call).
  WalletFlowResult create_payout(const PayoutRequest& request, Timestamp now, Effects* effects,
                                 const IdTaken* taken = nullptr);
  // Settles an attempt (see the flows above). `cause` goes to the timeline. A result for an
  // attempt already settled is `stale_result`; `unknown` keeps the attempt outstanding.
  WalletFlowResult apply_result(std::string_view attempt_id, const AttemptResult& result,
                                std::string_view cause, Timestamp now, Effects* effects);
  // A PSP result for `attempt_id` could not be taken: flags its flow psp_result_rejected with
  // `cause` in the timeline and lifts a processing flow's deadline (a person owns it; a later
  // valid result still settles it). Moves no money, never releases a payout hold.
  WalletFlowResult flag_result_rejected(std::string_view attempt_id, std::string_view cause,
                                        Timestamp now);
  // Flags every flow due by `now` for review. Returns the flows changed, in deadline order.
  // Never moves money: it adds nothing to `effects` (kept for the shape of PaymentMachine::tick).
  std::vector<std::string> tick(Timestamp now, Effects* effects);
  // After a restart: every pending attempt may have reached the PSP, so it becomes unknown.
  // Returns those attempt ids (sorted), for the resolver.
  std::vector<std::string> mark_pending_unknown(Timestamp now);
  // Attempts pending or unknown (sorted): what the resolver must settle.
  [[nodiscard]] std::vector<std::string> outstanding_attempts() const;
  // The earliest deadline tick() will act on, if any (for the engine's timer).
  [[nodiscard]] std::optional<Timestamp> next_deadline() const;

  // Pointers stay valid until the next change.
  [[nodiscard]] const WalletFlow* find(std::string_view id) const;
  [[nodiscard]] const WalletFlow* find_by_attempt(std::string_view attempt_id) const;
  // One page of the flows of `kind` matching `filter`, newest first. `starting_after` is the
  // last id of the previous page (empty: from the newest); limit is clamped to
  // [1, kWalletFlowPageLimitMax]. result: ok, customer_id_invalid (non-empty and malformed) or
  // starting_after_not_found. A status filter scans the (customer, created) range it narrows.
  [[nodiscard]] WalletFlowPage list(WalletFlowKind kind, const WalletFlowFilter& filter,
                                    size_t limit, std::string_view starting_after) const;
  // list() from a cursor position given as (created_at, id) (null: from the newest), for a
  // cursor that is not in memory; `limit` is not clamped (the history tier asks one more).
  [[nodiscard]] WalletFlowPage list_below(WalletFlowKind kind, const WalletFlowFilter& filter,
                                          size_t limit, const ListPosition* before) const;
  [[nodiscard]] size_t size() const { return flows_.size(); }  // in memory
  // Every walletflow, by id (snapshot checks; O(n)).
  [[nodiscard]] std::vector<const WalletFlow*> all() const {
    std::vector<const WalletFlow*> out;
    out.reserve(flows_.size());
    for (const auto& entry : flows_) out.push_back(&entry.second);
    return out;
  }
  // Flows flagged for review, any reason.
  [[nodiscard]] size_t in_review_count() const { return in_review_count_; }
  [[nodiscard]] const Options& options() const { return options_; }

  // Canonical encoding of all state for snapshots (options are configuration, not state).
  // decode() checks every field and every flow's consistency, rebuilds the indexes, and leaves
  // `out` untouched on failure.
  void encode(std::string* out) const;
  [[nodiscard]] static Status decode(std::string_view bytes, Options options, WalletFlows* out);

  // ---- History (docs/storage.md, "Tiers") ----
  // A flow at rest: succeeded or failed, no outstanding attempt, no review flag, no deadline.
  // Only a PSP report that contradicts its settled attempt changes it again (a review flag).
  [[nodiscard]] static bool at_rest(const WalletFlow& f);
  // As PaymentMachine's: with tracking on, every flow a call reaches to change (or creates) is
  // noted; take_changed() hands the ids out (ascending) and forgets them. Turning it on notes
  // every flow in memory.
  void track_changes(bool on);
  [[nodiscard]] std::vector<std::string> take_changed();
  [[nodiscard]] bool changed_since_take(std::string_view id) const { return changed_.noted(id); }
  // Removes a flow at rest from memory with its indexes, and returns it. REQUIRES: it is here
  // and at_rest().
  WalletFlow remove(std::string_view id);
  // Brings back a flow the history store held: fails, changing nothing, if the record is not
  // one this machine could hold or its id or attempt id is taken. Noted as changed.
  [[nodiscard]] Status restore(WalletFlow f);
  // One flow's record (the bytes encode() writes for it), and back (checked as decode() checks).
  static void encode_flow_record(const WalletFlow& f, std::string* out);
  [[nodiscard]] static Status decode_flow_record(std::string_view bytes, WalletFlow* out);
  // encode() with the flows of the history store (as they stood at journal position `horizon`,
  // payment_history.h) merged in by id; a flow in memory stands for its record.
  [[nodiscard]] Status encode_merged(std::string* out, const KvReader& history,
                                     uint64_t horizon) const;
  // Whether `f` passes `filter` (status, customer, created range), as list() applies it.
  [[nodiscard]] static bool matches(const WalletFlowFilter& filter, const WalletFlow& f);

 private:
  // (customer id, or "" for all flows of a kind; created_at; id): the list indexes.
  using ListKey = std::tuple<std::string, Timestamp, std::string>;

  WalletFlow* lookup(std::string_view id);
  [[nodiscard]] bool taken(std::string_view id, const IdTaken* outside) const {
    return flows_.contains(id) || (outside != nullptr && (*outside)(id));
  }
  WalletFlow& store(WalletFlow f);
  void set_deadline(WalletFlow& f, Timestamp deadline);
  void set_review(WalletFlow& f, ReviewReason reason);  // keeps in_review_count_
  void move_to(WalletFlow& f, WalletFlowStatus to, std::string_view cause, Timestamp now);
  void add_attempt(WalletFlow& f, AttemptKind kind, Timestamp now, Effects* effects);
  void settle_topup(WalletFlow& f, const Attempt& a, int64_t fee, std::string_view cause,
                    Timestamp now, Effects* effects);
  void settle_payout(WalletFlow& f, const Attempt& a, int64_t fee, std::string_view cause,
                     Timestamp now, Effects* effects);

  Options options_;
  std::map<std::string, WalletFlow, std::less<>> flows_;
  std::set<std::pair<Timestamp, std::string>> due_;  // (deadline, flow id), earliest first
  std::map<std::string, std::string, std::less<>> attempt_owner_;  // attempt id -> flow id
  std::set<std::string, std::less<>> outstanding_;                 // pending or unknown attempts
  std::array<std::set<ListKey>, 3> listed_;                        // per WalletFlowKind
  size_t in_review_count_ = 0;
  ChangeTracker changed_;  // since the last take_changed()
  void note_changed(std::string_view id) { changed_.note(id); }
};

// Ledger account ids: wallet_account(), psp_fees_account() and psp_clearing_account() of
// payment.h.
// The accounts a flow's postings touch, with their flags (wallets:
// debits_must_not_exceed_credits). Create them (ok or exists) before posting its effects.
[[nodiscard]] std::vector<ledger::AccountEvent> wallet_flow_accounts(const WalletFlow& flow);
// What a wallet may spend: credits_posted - debits_posted - debits_pending (holds count).
// nullopt on overflow.
[[nodiscard]] std::optional<int64_t> wallet_flow_available_minor(const ledger::Balances& wallet);

}  // namespace keel::payments
