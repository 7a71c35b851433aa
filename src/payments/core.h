#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/time.h"
#include "ledger/id_index.h"
#include "ledger/ledger.h"
#include "payments/commands.h"
#include "payments/idempotency.h"
#include "payments/outbox.h"
#include "payments/payment.h"
#include "payments/payment_history.h"
#include "payments/render.h"
#include "payments/reply.h"
#include "payments/wallet_flows.h"
#include "review/review.h"
#include "routing/channel.h"
#include "routing/decision.h"

namespace keel::payments {

// The payments side of keel's state, behind one door: customers, merchants, payments by card or
// wallet (with their attempts and refunds), top-ups, payouts and wallet transfers, idempotency
// keys, and the outbox of merchant events. PaymentsCore applies the journaled Commands of
// commands.h, posts their ledger transfers in the same step (so a payment's state and its
// postings can never disagree after a crash), and says what must happen after the commit: PSP
// calls to make, unknown attempts to resolve, waiting requests to answer.
//
// Nothing a PSP says is dropped: a result the state machines cannot take (result_problem(), a
// status that means nothing for the attempt, or a report that contradicts what was booked)
// flags its object for review with reason psp_result_rejected, opens a review item with the
// PSP's words as evidence, and comes back in ApplyOutcome::rejected for the engine to log and
// count. The review desk (review/review.h) holds every item; the objects' `review` flags say
// which are open, and an item resolves when its object's flag clears.
//
// Idempotency keys store final answers only: a request whose object waits on a PSP keeps its
// key in flight (a retry with the key gets the object as it stands, never a stored body) until
// the object is final, also while it is in review.
//
// Pure and deterministic: no I/O, no clock, no randomness. Thread: the engine's writer thread.

struct CoreOptions {
  PaymentDeadlines deadlines;
  WalletFlowOptions flows;
  OutboxOptions outbox;
  int64_t idempotency_ttl_s = 24 * 3600;
};

// An attempt whose outcome keel does not know: ask the PSP (status query of `reference`) until
// it does, and report each answer as an operation_status command.
struct ResolveRequest {
  std::string attempt_id;
  std::string channel;
  std::string reference;    // the operation to query: the attempt itself, or for a capture or a
                            // void, the authorization it acts on
  std::string traceparent;  // of the request that started the attempt's object (empty: none)
};

// An in-flight idempotency key whose request just settled.
struct CompletedKey {
  std::string client;
  std::string key;
  Reply reply;
};

// A merchant event the outbox had no room for: for the engine's log and metric (admission
// control makes it rare; it is never silent).
struct DroppedEvent {
  std::string object_id;
  std::string reason;  // outbox_result_name(): events_full, event_invalid, ...
};

// A PSP result the core could not take (see above): for the engine's log and metric.
struct RejectedResult {
  std::string attempt_id;
  std::string problem;  // result_problem()'s reason, state_not_applicable, contradicts_settled
};

struct ApplyOutcome {
  bool changed = false;  // false: nothing changed, the command need not be journaled
  Reply reply;
  std::string object_id;  // what the reply is about (a request waits on it when not settled)
  std::vector<PspCall> calls;
  std::vector<ResolveRequest> resolve;
  std::vector<CompletedKey> completed;
  uint64_t postings = 0;                 // ledger events posted
  uint64_t postings_rejected = 0;        // chains the ledger refused: a bug, counted and logged
  std::vector<RejectedResult> rejected;  // PSP results flagged for review instead of applied
  std::vector<DroppedEvent> events_dropped;
  // Merchants whose webhook deliveries began to queue in the history store (Outbox backlogs):
  // their endpoint is slow or down.
  std::vector<std::string> backlogs_started;
};

// What routing must decide for a command before it is applied (PaymentsCore::route_request):
// a channel for a card payment's first authorization, or what follows one that failed without
// charging.
struct RouteAsk {
  routing::Flow flow = routing::Flow::card_payment;
  Currency currency;
  int64_t amount = 0;
  std::string pinned;              // the channel the caller named (pinned payments stay on it)
  std::vector<std::string> tried;  // the payment's authorization channels so far, in order
};

// Read-only questions from the API.
enum class QueryKind : uint8_t {
  get_payment,
  get_customer,
  get_merchant,
  get_wallet,
  list_payments,
  get_refund,
  get_topup,
  get_payout,
  get_wallet_transfer,
  list_events,  // filters: type, merchant_id, object_id
  list_topups,  // filters of the three lists: status, customer_id, created range
  list_payouts,
  list_wallet_transfers,
  list_reviews,  // filters: status (open, resolved), type (a reason), object_id
  get_controls,  // runtime controls in force and the latest changes
  get_payment_method,
  // The vault's rotation (QueryResult::payment_methods, key_versions): stored cards whose data
  // key is not under `key_version`, after `starting_after`, at most `limit`; and how many cards
  // each master key version wraps.
  payment_methods_to_rewrap,
  vault_key_versions,
  // Every merchant's webhook secrets as stored (QueryResult::secrets; a merchant's current one
  // before its previous one), or those of `merchant_id`.
  webhook_secrets,
  // The ids of every erased customer (QueryResult::customers): keeld deletes their personal
  // data keys again when it starts (an erase journaled just before a crash).
  erased_customers,
};

struct Query {
  QueryKind kind = QueryKind::get_payment;
  std::string id;
  size_t limit = 10;
  std::string starting_after;
  std::string status;
  std::string merchant_id;
  std::string customer_id;
  Timestamp created_gte = 0;
  Timestamp created_lt = 0;  // 0: no bound
  std::string type;
  std::string object_id;
  uint32_t key_version = 0;
};

// A read of payments that the history store completes (PaymentsCore::finish_query): a payment
// or refund that is not in memory, or a page of payments whose part in memory is here.
struct PaymentReadInMemory {
  QueryKind kind = QueryKind::get_payment;  // get_payment, get_refund or list_payments
  std::string id;                           // get_payment, get_refund
  bool with_routing = false;  // get_payment: render routing's decisions (some decision exists)
  PaymentFilter filter;       // list_payments: the query's
  size_t limit = 0;
  std::string starting_after;
  // The payments in memory that match, after starting_after: (id, rendering), by id, at most
  // limit. A payment in memory stands for its record in the store.
  std::vector<std::pair<std::string, std::string>> hot;
  bool hot_more = false;  // more in memory match after the last of `hot`
  // Payments in memory that also have a record in the store (brought back): their records are
  // not this page's, whatever they say.
  std::set<std::string, std::less<>> hot_ids;
};

// A read of wallet flows that the history store completes: a top-up, payout or wallet transfer
// that is not in memory, or a page of them whose part in memory is here.
struct FlowReadInMemory {
  QueryKind kind = QueryKind::get_topup;  // get_* or list_* of top-ups, payouts, transfers
  WalletFlowKind flow_kind = WalletFlowKind::topup;
  std::string id;  // get_*
  WalletFlowFilter filter;
  size_t limit = 0;
  std::optional<ListPosition> before;  // the cursor's position (none: from the newest)
  // The flows in memory that match, below `before`, newest first, at most limit + 1: (position,
  // rendering). A flow in memory stands for its record in the store.
  std::vector<std::pair<ListPosition, std::string>> hot;
  bool hot_more = false;
  // Flows in memory that also have a record in the store (brought back): their records are
  // not this page's, whatever their position.
  std::set<std::string, std::less<>> hot_ids;
};

struct QueryResult {
  bool found = false;
  std::string body;  // JSON
  // Set when the answer needs the history store: PaymentsCore::finish_query() completes it
  // (off the writer); body is empty until then.
  std::shared_ptr<const EventPageInMemory> events_page;
  std::shared_ptr<const PaymentReadInMemory> payments_read;
  std::shared_ptr<const FlowReadInMemory> flows_read;
  std::vector<std::shared_ptr<const vault::PaymentMethod>> payment_methods;
  std::map<uint32_t, uint64_t> key_versions;                 // stored cards by master key version
  std::map<uint32_t, uint64_t> secret_key_versions;          // webhook secrets (0: in clear)
  std::vector<std::pair<std::string, std::string>> secrets;  // (merchant, stored bytes)
  std::vector<std::string> customers;                        // erased_customers
  [[nodiscard]] bool needs_history() const { return events_page || payments_read || flows_read; }
};

class PaymentsCore {
 public:
  explicit PaymentsCore(CoreOptions options = {});

  // Applies one command at logical time `now`. Ledger postings take timestamps from `*clock`
  // (each event one, strictly increasing; REQUIRES *clock >= now); on return *clock is the last
  // timestamp used (or unchanged).
  ApplyOutcome apply(const Command& command, Timestamp now, ledger::Ledger& ledger,
                     Timestamp* clock);
  // Deadlines due by `now` (see PaymentMachine::tick), and idempotency keys past their ttl.
  ApplyOutcome tick(Timestamp now, ledger::Ledger& ledger, Timestamp* clock);
  // The earliest deadline, if any (the engine journals a tick when it passes).
  [[nodiscard]] std::optional<Timestamp> next_deadline() const;
  // Every attempt whose outcome is open (pending or unknown), for the resolver after a start.
  [[nodiscard]] std::vector<ResolveRequest> outstanding_attempts() const;

  [[nodiscard]] QueryResult query(const Query& q, const ledger::Ledger& ledger) const;
  // Completes a query() answer that needs the history store (QueryResult::events_page), on any
  // thread: it reads only `history` and the copy in `*r`. Fails when the store does.
  [[nodiscard]] static Status finish_query(const KvReader& history, QueryResult* r);

  // History (docs/storage.md, "Tiers"): merchant events whose delivery is final, completed
  // idempotency records and payments at rest (PaymentMachine::at_rest) leave memory for the
  // history store. take_final() hands out their store records (payments: versioned by
  // `version`, the journal record the state has applied up to); make_cold() drops those the
  // store now holds durably (a payment only if nothing changed it since). set_history() names
  // the store they are read from (before any command that may meet one: a refund of a payment
  // at rest brings it back into memory, on the writer).
  struct HistoryRecords {
    std::vector<std::pair<std::string, std::string>> puts;
    std::vector<uint64_t> events;   // outbox seqs of the events among `puts`
    std::vector<std::string> keys;  // store keys of the idempotency records among `puts`
    std::vector<std::pair<std::string, uint64_t>> payments;  // (id, version) among `puts`
    std::vector<std::pair<std::string, uint64_t>> flows;     // wallet flows, likewise
  };
  void take_final(HistoryRecords* out, uint64_t version);
  void make_cold(const HistoryRecords& durable);
  void set_history(const KvReader* history) {
    history_ = history;
    outbox_.set_history(history);
    idempotency_.set_history(history);
    payments_.track_changes(history != nullptr);
    flows_.track_changes(history != nullptr);
  }
  // The journal position the state stands at, for reads of payments in the history store
  // (payment_history.h): recovery sets it before each record it replays (the store may hold
  // versions written after it), and to payment_history::kNewest after.
  void set_history_horizon(uint64_t seq) { history_horizon_ = seq; }
  // What of the history store no state from now on needs: the merchant events below
  // `events_first_seq`, the idempotency records that expired before `keys_expired_before`.
  struct HistoryMarks {
    uint64_t events_first_seq = 0;
    Timestamp keys_expired_before = 0;
    // The snapshot these marks are of (set by the engine): record versions superseded at or
    // below it are no longer read by any recovery.
    uint64_t snapshot_seq = 0;
  };
  [[nodiscard]] HistoryMarks history_marks(Timestamp now) const {
    return {outbox_.first_seq(), idempotency_.expired_before(now)};
  }
  // Whether some of the state is in the history store (then it cannot run without one).
  [[nodiscard]] bool counts_on_history() const {
    return outbox_.in_history() > 0 || idempotency_.in_history() > 0 || cold_payments_ > 0 ||
           cold_flows_ > 0;
  }

  // Merchant webhooks due by `now` (wall time is fine: a query), skipping those `in_flight`.
  // Each one's end comes back as an outbox_attempt command.
  [[nodiscard]] std::vector<Delivery> due_deliveries(
      Timestamp now, size_t limit, const std::function<bool(std::string_view)>& in_flight) const;
  [[nodiscard]] std::optional<Timestamp> next_delivery_at() const;

  // Canonical encoding of all state: encode_full() reads what is in the history store from the
  // one set_history() named (fails when the store fails or lacks a record, or none is set while
  // some state is there), for the state hash; encode() is the snapshot's, which leaves out what
  // the store holds. decode() rebuilds an equal core from either (the history store must then
  // hold what the snapshot left out; set it on the result).
  [[nodiscard]] Status encode_full(std::string* out) const;
  // encode_full() handed to `sink` in pieces, part by part (their concatenation is the
  // encoding), so that a hash of it never holds it whole.
  using EncodingSink = std::function<void(std::string_view piece)>;
  [[nodiscard]] Status encode_full(const EncodingSink& sink) const;
  void encode(std::string* out) const;
  [[nodiscard]] static Status decode(std::string_view bytes, CoreOptions options,
                                     PaymentsCore* out);
  // The merchant-event outbox, read only (tests; the engine hands deliveries out through
  // due_deliveries).
  [[nodiscard]] const Outbox& outbox() const { return outbox_; }
  // The vault's stored cards (ciphertext only), read only: `keel vault rotate` walks them.
  [[nodiscard]] const vault::PaymentMethods& payment_methods() const { return payment_methods_; }

  struct Counts {
    uint64_t customers = 0;
    uint64_t merchants = 0;
    uint64_t payments = 0;  // in memory and in the history store
    uint64_t payments_in_memory = 0;
    uint64_t in_review = 0;  // payments, refunds and wallet flows flagged for review (the alert)
    uint64_t review_open_deadline_unknown = 0;  // open review items by reason
    uint64_t review_open_psp_result_rejected = 0;
    uint64_t wallet_flows = 0;  // in memory and in the history store
    uint64_t wallet_flows_in_memory = 0;
    uint64_t idempotency_keys = 0;  // kept (in memory and in the history store)
    uint64_t idempotency_keys_in_memory = 0;
    uint64_t events = 0;  // stored (in memory and in the history store)
    uint64_t events_in_memory = 0;
    uint64_t deliveries_pending = 0;
    // Webhook backlogs (Outbox): merchants with deferred deliveries now, and since start the
    // events deferred and the deferred events taken back as pending deliveries.
    uint64_t merchants_backlogged = 0;
    uint64_t deliveries_deferred = 0;
    uint64_t deliveries_refilled = 0;
  };
  [[nodiscard]] Counts counts() const;
  // The object as the API shows it (JSON); empty if there is no such object.
  [[nodiscard]] std::string render(std::string_view object_id) const;
  // The merchant fee schedule in force (changed by the journaled set_fees command).
  [[nodiscard]] const FeeSchedule& fees() const { return payments_.fees(); }
  // Routing channels in force and each breaker's last transition (set_channels and
  // channel_event commands).
  [[nodiscard]] const routing::ChannelRegistry& channels() const { return channels_; }
  // Whether `c` needs a routing decision (Command::route) before apply(), and its inputs:
  // confirming a card payment that awaits confirmation; a result that settles a payment's
  // authorization as retryable or softly declined (not after `unknown`: only once the answer
  // or the resolver says nothing was charged), while the payment is not in review; creating a
  // top-up or a payout (the channel of its one call; a named channel is pinned). The engine
  // decides, fills Command::routed and Command::route, then applies and journals the command.
  [[nodiscard]] std::optional<RouteAsk> route_request(const Command& c) const;
  // Read-only mode (runtime_control): client writes answer 503 read_only; PSP results,
  // resolution, deadlines, merchant events and configuration go on. The engine refuses ledger
  // writes meanwhile.
  [[nodiscard]] bool read_only() const { return read_only_; }

 private:
  struct Customer {
    std::string id;
    std::string name;  // sealed personal data (vault/personal_data.h), or clear from before
    Timestamp created_at = 0;
    std::set<uint16_t> currencies;  // of the wallet accounts the ledger has (Currency::index)
    Timestamp erased_at = 0;        // 0: not erased (cmd::EraseCustomer)
  };
  struct Merchant {
    std::string id;
    std::string name;
    std::string webhook_url;
    Timestamp created_at = 0;
  };
  using KeyRef = std::pair<std::string, std::string>;  // (client, key)

  ApplyOutcome run(const Command& c, Timestamp now, ledger::Ledger& ledger, Timestamp* clock);
  Reply create_customer(const cmd::CreateCustomer& c, Timestamp now);
  Reply create_merchant(const cmd::CreateMerchant& c, Timestamp now);
  Reply erase_customer(const cmd::EraseCustomer& c, Timestamp now);
  // customer_erased when `customer_id` names an erased customer: new personal data (a top-up's
  // source, a payout's destination, a card) is not taken for them.
  [[nodiscard]] std::optional<Reply> refused_erased(std::string_view customer_id,
                                                    std::string_view param) const;
  Reply rotate_webhook_secret(const cmd::RotateWebhookSecret& c, Timestamp now);
  Reply store_payment_method(const cmd::StorePaymentMethod& c);
  Reply detach_payment_method(const cmd::DetachPaymentMethod& c, Timestamp now);
  // An error when `instrument` names a vault payment method ("pm_") that is not stored or
  // belongs to neither `merchant_id` nor `customer_id` (empty: not a party).
  [[nodiscard]] std::optional<Reply> payment_method_refused(std::string_view instrument,
                                                            std::string_view merchant_id,
                                                            std::string_view customer_id) const;
  Reply create_payment(const cmd::CreatePayment& c, Timestamp now);
  // `c` carries routing's decision (when routed) around its body `b`.
  Reply confirm_payment(const Command& c, const cmd::ConfirmPayment& b, Timestamp now,
                        const ledger::Ledger& ledger, Effects* effects);
  // The answer to a step of payment `id` that the machine answered with `r`.
  [[nodiscard]] Reply payment_done(const std::string& id, PaymentResult r) const;
  Reply create_refund(const cmd::CreateRefund& c, Timestamp now, Effects* effects);
  // A top-up, payout or wallet transfer `id` of `customer` (to `to_customer`, empty for none)
  // that `create` makes once both exist.
  Reply create_flow(const std::string& id, const std::string& customer,
                    const std::string& to_customer,
                    const std::function<WalletFlowResult()>& create);
  Reply outbox_attempt(const cmd::OutboxAttempt& c, Timestamp now, ApplyOutcome* out);
  [[nodiscard]] int64_t available(std::string_view customer, Currency currency,
                                  const ledger::Ledger& ledger) const;
  // Merchant events: the status an object shows (with review), and an event when it changed.
  [[nodiscard]] std::string event_status(std::string_view object_id) const;
  void note_change(std::string_view object_id, const std::string& before, Timestamp now,
                   ApplyOutcome* out);
  // Whether the outbox takes new payments and refunds: below kOutboxAdmissionPct of its event
  // and byte limits, so the rest stays for the events of objects already started.
  static constexpr uint64_t kOutboxAdmissionPct = 90;
  [[nodiscard]] bool outbox_admits() const;
  // A PSP's word as settle() and reject_result() take it: who said it (timeline words), the
  // operation's state when it is a status report (nullopt: a direct answer), and routing's
  // journaled decision on what follows a failed authorization (null: routing was not asked).
  struct Report {
    std::string cause;
    std::optional<OperationState> state;
    const routing::Decision* route = nullptr;
  };
  void attempt_result(const Command& c, const cmd::AttemptResult& b, Timestamp now,
                      Effects* effects, ApplyOutcome* out);
  void operation_status(const Command& command, const cmd::OperationStatus& c, Timestamp now,
                        Effects* effects, ApplyOutcome* out);
  enum class Settled : uint8_t { applied, stale, rejected };
  // Settles one open attempt, or flags it for review when the machines refuse the result.
  Settled settle(const std::string& attempt_id, const AttemptResult& result, const Report& report,
                 Timestamp now, Effects* effects, ApplyOutcome* out);
  // A PSP result for `attempt_id` (open or settled) that cannot be taken: flags the owner
  // psp_result_rejected, opens a review item with the PSP's words, answers psp_result_rejected.
  void reject_result(const std::string& attempt_id, std::string_view problem, const Report& report,
                     const AttemptResult& reported, Timestamp now, ApplyOutcome* out);
  // An operation_status for no open attempt: a report on a settled attempt that contradicts
  // what keel booked is rejected (review); one that agrees is stale.
  void check_settled(const cmd::OperationStatus& c, const Report& report, Timestamp now,
                     ApplyOutcome* out);
  // The review flag, the object type ("payment", "refund", "topup", "payout") and the status
  // of any object with a review flag; type empty when there is no such object.
  struct ReviewView {
    std::string_view type;
    ReviewReason reason = ReviewReason::none;
    std::string status;
    std::string attempt;  // its last attempt (the outstanding one while it waits)
  };
  [[nodiscard]] const Attempt* attempt_of(std::string_view attempt_id) const;
  // The payment, refund or wallet flow owning the attempt (empty if none).
  [[nodiscard]] std::string attempt_owner(std::string_view attempt_id) const;
  // The open attempts whose operation is `reference`, by attempt id.
  [[nodiscard]] std::vector<std::string> attempts_on(std::string_view reference) const;
  [[nodiscard]] ReviewView review_view(std::string_view object_id) const;
  // Opens the deadline_unknown item of an object the deadline just flagged.
  void open_deadline_review(std::string_view object_id, Timestamp at);
  // Resolves the open items of an object whose flag cleared.
  void sync_review(std::string_view object_id, std::string_view resolved_by, Timestamp now);
  // Every payment, refund and wallet flow flagged for review, with when the deadline flagged it
  // (its last kDeadlineReviewCause), if it did.
  struct Flagged {
    std::string id;
    ReviewReason reason = ReviewReason::none;
    std::optional<Timestamp> deadline_at;
  };
  [[nodiscard]] std::vector<Flagged> flagged_objects() const;
  // A state encoded before the review desk existed: opens the items of its flagged objects.
  [[nodiscard]] Status migrate_reviews();
  [[nodiscard]] Status check_reviews() const;
  [[nodiscard]] QueryResult render_review_list(const Query& q) const;
  // Routing: what follows the authorization attempt `attempt_id`; the answer to a confirm no
  // channel can take; the decision of the attempt a routed command just created.
  [[nodiscard]] std::optional<RouteAsk> failover_ask(std::string_view attempt_id) const;
  [[nodiscard]] static Reply no_channel(const routing::Decision& d, std::string_view pinned);
  void note_decision(const Effects& effects, size_t calls_before, std::string_view payment_id,
                     const routing::Decision& d);
  Reply set_channels(const cmd::SetChannels& c);
  [[nodiscard]] Status check_decisions() const;
  // Runtime controls: applying one; and what is refused before anything runs (nullopt:
  // nothing): client writes in read-only mode, new requests of a disabled flow, new payments
  // and refunds while the outbox is past its admission share (over_capacity).
  Reply runtime_control(const RuntimeControl& k, Timestamp now);
  [[nodiscard]] std::optional<Reply> refused_by_controls(const Command& c) const;
  [[nodiscard]] std::string render_controls() const;
  void encode_controls(std::string* out) const;
  // Tagged snapshot sections after the review desk's. Values are on disk: never renumber.
  // `history` is in snapshots only (encode(), never encode_full()): what of the payments the
  // history store holds, which the state hash covers through the records themselves.
  enum class SectionTag : uint8_t {
    channels = 1,
    decisions = 2,
    controls = 3,
    traces = 4,
    history = 5,
    flow_history = 6,
    vault = 7,  // stored cards (payment methods)
  };
  static constexpr SectionTag kSectionTagLast = SectionTag::vault;
  // The traceparent of the object `id` (empty when none).
  [[nodiscard]] std::string trace_of(std::string_view id) const;
  void note_trace(const Command& c);
  [[nodiscard]] Status decode_section(SectionTag tag, std::string_view bytes);

  // Posts `effects` to the ledger (creating missing accounts) and moves its calls to `out`.
  void carry_out(Effects& effects, bool wallet_flow, ledger::Ledger& ledger, Timestamp* clock,
                 ApplyOutcome* out);
  void ensure_accounts(const std::vector<ledger::TransferEvent>& chain, ledger::Ledger& ledger,
                       Timestamp* clock, ApplyOutcome* out);
  void note_wallet_currency(std::string_view account_id, Currency currency);
  // Completes the idempotency keys waiting on objects that have settled.
  void complete_waiters(Timestamp now, ApplyOutcome* out);
  [[nodiscard]] bool settled(std::string_view object_id) const;
  [[nodiscard]] std::string render_wallet(const Customer& c, const ledger::Ledger& ledger) const;
  [[nodiscard]] QueryResult render_payment_list(const Query& q) const;
  [[nodiscard]] QueryResult render_event_list(const Query& q) const;
  [[nodiscard]] QueryResult render_flow_list(const Query& q) const;
  // encode() (full: false) and encode_full().
  [[nodiscard]] Status encode_parts(std::string* out, bool full, const EncodingSink* sink) const;

  // Payments in the history store (payment_history.h). cold_exists(): whether a payment or
  // refund id is taken by one there. fault_in(): brings back into memory the payments a command
  // may change (a payment named, or the owner of a PSP report's attempt). A read the store
  // fails is fatal (KEEL_ASSERT): the store is memory for what it holds.
  [[nodiscard]] bool cold_exists(std::string_view id) const;
  // Only payments and refunds (kind payment), or only wallet flows (kind flow).
  [[nodiscard]] bool cold_exists(std::string_view id, payment_history::Kind kind) const;

  [[nodiscard]] std::optional<std::string> read_cold(payment_history::Kind kind,
                                                     std::string_view id) const;
  void fault_in(const Command& c);
  // Whether payment `id` is in memory now (brought back, or there already).
  bool fault_in_payment(std::string_view id);
  void fault_in_attempt(std::string_view attempt_id);
  // Store records of payment `p` (at rest) and of its decisions and traces, at `version`.
  void put_payment(const Payment& p, uint64_t version, HistoryRecords* out) const;
  // Drops payment `id` (at rest, durable in the store) from memory.
  void drop_payment(std::string_view id);
  void note_cold_ids(const Payment& p);
  void note_cold_id(std::string_view id);
  // Wallet flows in the history store, as payments: fault_in_flow() brings flow `id` back when
  // it is there (whether it is in memory now), put_flow() writes the records of one at rest.
  bool fault_in_flow(std::string_view id);
  void put_flow(const WalletFlow& f, uint64_t version, HistoryRecords* out) const;
  [[nodiscard]] QueryResult cold_flow_read(FlowReadInMemory read) const;
  // The position of flow `id` of `kind` in lists: from memory, or a point read of the store
  // (a list cursor that left memory). nullopt: no such flow of that kind.
  [[nodiscard]] std::optional<ListPosition> flow_position(WalletFlowKind kind,
                                                          std::string_view id) const;
  // Whether GET /v1/payments/{id} shows a `routing` array: once any decision exists.
  [[nodiscard]] bool any_decision() const { return !decisions_.empty() || cold_decisions_; }
  [[nodiscard]] QueryResult cold_read(PaymentReadInMemory read) const;
  void encode_history(std::string* out) const;
  [[nodiscard]] Status decode_history(std::string_view bytes);

  CoreOptions options_;
  const KvReader* history_ = nullptr;  // set_history()
  PaymentMachine payments_;
  WalletFlows flows_;
  Outbox outbox_;
  vault::PaymentMethods payment_methods_;
  uint64_t next_event_seq_ = 1;
  IdempotencyStore idempotency_;
  std::map<std::string, Customer, std::less<>> customers_;
  std::map<std::string, Merchant, std::less<>> merchants_;
  struct OpenAttempt {
    std::string channel;
    AttemptKind kind = AttemptKind::authorization;
    std::string reference;  // what a status query asks about (ResolveRequest::reference)
    std::string owner;      // the payment, refund or wallet flow it belongs to
    bool wallet_flow = false;
  };
  std::map<std::string, OpenAttempt, std::less<>> open_attempts_;  // attempt id -> what it is
  // (reference, attempt id) of every open attempt: who a PSP's report on an operation is about,
  // without a scan (rebuilt on decode).
  std::set<std::pair<std::string, std::string>> by_reference_;
  std::map<std::string, std::set<KeyRef>, std::less<>> waiting_;  // object id -> keys
  std::map<KeyRef, std::string> waiting_object_;  // key -> object id (waiting_ inverted; rebuilt)
  review::ReviewDesk reviews_;
  routing::ChannelRegistry channels_;
  // The routing decision of each authorization attempt whose channel routing chose.
  std::map<std::string, routing::Decision, std::less<>> decisions_;
  // Runtime controls beyond the channels' (those are in channels_), and the latest changes of
  // any control (at most kControlLogMax, oldest first).
  bool read_only_ = false;
  uint8_t flows_disabled_ = 0;  // bits of FlowSwitch
  struct ControlRecord {
    Timestamp at = 0;
    RuntimeControl control;
  };
  static constexpr size_t kControlLogMax = 256;
  std::deque<ControlRecord> control_log_;
  // Payment, refund or wallet flow id -> the traceparent of the latest API request on it that
  // carried one: their PSP calls and status queries carry it.
  std::map<std::string, std::string, std::less<>> traces_;

  // Payments in the history store. cold_ids_: the hash tags of every payment and refund id with
  // a record there (a filter: a hit is confirmed by a read). cold_payments_: how many payments
  // have one; cold_and_hot_: those of them that are in memory too (brought back, or changed
  // after they were written). taken_: payment -> version of its latest take not yet durable.
  // cold_decisions_: some decision is in the store. In snapshots (SectionTag::history), not in
  // the state hash; taken_ is not (every payment in memory is taken again after a restart).
  uint64_t history_horizon_ = payment_history::kNewest;
  ledger::IdIndex cold_ids_{kColdIdsKey};
  uint64_t cold_payments_ = 0;
  std::set<std::string, std::less<>> cold_and_hot_;
  std::map<std::string, uint64_t, std::less<>> taken_;
  bool cold_decisions_ = false;
  // Wallet flows in the history store, as the payments above (their ids are in cold_ids_ too).
  // In snapshots (SectionTag::flow_history).
  uint64_t cold_flows_ = 0;
  std::set<std::string, std::less<>> flows_cold_and_hot_;
  std::map<std::string, uint64_t, std::less<>> flows_taken_;
  // Fixed, so snapshots can keep the tags: a crafted id costs a store read, never a wrong answer.
  static constexpr SipKey kColdIdsKey{0x6b65656c2d706179ull, 0x636f6c642d696473ull};
};

}  // namespace keel::payments
