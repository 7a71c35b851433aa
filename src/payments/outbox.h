#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/bytes.h"
#include "core/http_url.h"
#include "core/kv_reader.h"
#include "core/status.h"
#include "core/time.h"

namespace keel::payments {

// The transactional outbox of merchant events (docs/webhooks.md), as a pure state machine.
//
// An event is added in the same journaled command as the change it announces, so it exists
// exactly when that change does. Every event is kept for polling (GET /v1/events) for
// `retention_s`, then forgotten by expire(). If its merchant has a webhook endpoint when the
// event is added, a delivery is scheduled at once; the engine asks due() what to send, sends it
// (connectors::MerchantWebhookSender) and reports each try's end with record_attempt(), a
// journaled command. A failed try is retried after an exponential backoff with deterministic
// jitter (retry_delay_ns) until `delivery_window_s` after the event's creation; then the
// delivery gives up. Delivery is therefore at least once (a try whose answer was lost is tried
// again) and possibly out of order: receivers dedupe by event id.
//
// Backlogs: one merchant's pending deliveries in memory are bounded (merchant_pending_max, a
// tenth of events_max), so that a dead endpoint retried for the whole delivery window cannot
// fill the outbox and stop every other merchant's payments. A merchant at its bound gets its
// later events in state `deferred`: final for memory, so they move to the history store like
// any final event, and queued first-in first-out behind the merchant's pending deliveries. As
// those end (delivered or given up), the oldest deferred events come back into memory as pending
// deliveries due at once (refill, reading the store through set_history's reader when they have
// moved). A deferred event is therefore tried at least once, even after its delivery window,
// and then retried within the window as usual. Per merchant, memory holds two sequence numbers
// for the whole backlog: the last event taken from it and its newest event.
//
// History (docs/storage.md, "Tiers"): an event whose delivery is final (no endpoint, delivered,
// gave up, canceled) never changes again, so it may leave memory for the history store. The
// engine asks take_final() for such events (each handed out once, as store records), writes
// them, and once they are durable calls make_cold(), which drops them from memory; only their
// creation time stays (8 bytes each, for expiry and counts). Where an event lives changes no
// answer: lists merge both tiers (list_in_memory() on the writer, finish_list() on any thread
// that can read the store), and the canonical encoding (encode_full) reads the store for the
// events that left memory. Events are created in time order: add() refuses an event older
// than the newest one (created_at_invalid).
//
// Which tries are in flight is not state here (nothing is journaled when a try starts): the
// engine keeps that set in memory and passes it to due(). After a restart the set is empty and
// every due delivery is sent again, which at-least-once allows.
//
// Thread: the engine's writer thread only (every method, const ones included, unless the
// engine hands a frozen copy elsewhere). Never throws; never reads the clock or a random
// source: `now` comes from the journaled command, so replay rebuilds the same state and the
// same retry schedule bit for bit. Every mutating call returns a result code and changes nothing
// unless it is `ok` (record_attempt: unless it is delivered, retry_scheduled or gave_up), with
// one exception: add() of a well-formed event first expires old events, whatever its result.

inline constexpr std::string_view kEventIdPrefix = "evt_";
inline constexpr size_t kEventTypeLengthMax = 64;
inline constexpr size_t kEventDataBytesMax = 32 * 1024;
// The rendered body: the data plus at most ids, type and timestamp (well below this).
inline constexpr size_t kEventBodyBytesMax = kEventDataBytesMax + 1024;
inline constexpr size_t kEndpointUrlLengthMax = 2048;
inline constexpr size_t kEndpointSecretLengthMax = 256;
inline constexpr size_t kEventListLimitMax = 100;

struct OutboxOptions {
  // A delivery that has not succeeded this long after its event's creation gives up.
  int64_t delivery_window_s = 3 * 24 * 3600;
  // Events are listed this long after creation, then forgotten. >= delivery_window_s.
  int64_t retention_s = 30 * 24 * 3600;
  // Backoff before try n+1 after n failed tries: base = backoff_first_ms * 2^(n-1), capped at
  // backoff_max_ms; the wait is in [base/2, base] (equal jitter, see retry_delay_ns).
  int64_t backoff_first_ms = 1'000;
  int64_t backoff_max_ms = 3'600'000;
  size_t events_max = 1'000'000;                      // events stored (listed or pending)
  uint64_t event_data_bytes_max = uint64_t{1} << 30;  // sum of stored `data` sizes
  size_t endpoints_max = 100'000;

  // Positive durations, retention_s >= delivery_window_s, backoff_max_ms >= backoff_first_ms,
  // nonzero limits. Check it on configuration input before constructing an Outbox.
  [[nodiscard]] bool valid() const;
  friend bool operator==(const OutboxOptions&, const OutboxOptions&) = default;
};

// A merchant's webhook endpoint.
struct WebhookEndpoint {
  std::string url;     // http://HOST[:PORT][/PATH] (is_valid_endpoint_url)
  std::string secret;  // the HMAC key of Keel-Signature
  // During a rotation (rotate_secret): the secret before, which also signs every delivery made
  // before previous_until (a second v1 in Keel-Signature). Empty and 0 otherwise.
  std::string previous_secret;
  Timestamp previous_until = 0;
  friend bool operator==(const WebhookEndpoint&, const WebhookEndpoint&) = default;
};

struct Event {
  std::string id;            // "evt_" + more id characters (is_valid_id); unique, caller-chosen
  std::string type;          // e.g. "payment.succeeded": 1..64 of [a-z0-9_.]
  std::string merchant_id;   // is_valid_id
  std::string object_id;     // the payment, refund... it is about; is_valid_id
  Timestamp created_at = 0;  // > 0; the command's time
  // A JSON object, rendered by the caller (canonically, so replay renders the same bytes).
  // REQUIRES: well-formed JSON; only the outer braces and the size are checked here.
  std::string data;
  friend bool operator==(const Event&, const Event&) = default;
};

// Values are in snapshots: never renumber one.
enum class DeliveryState : uint8_t {
  no_endpoint = 0,  // the merchant had no endpoint when the event was added: polling only
  pending,          // to be tried at next_attempt_at (or being tried)
  delivered,        // a try got a 2xx
  gave_up,          // the delivery window ran out
  canceled,         // the endpoint was removed while the delivery was pending
  deferred,         // queued behind the merchant's pending deliveries (see "Backlogs" above)
};

struct DeliveryStatus {
  DeliveryState state = DeliveryState::no_endpoint;
  uint32_t attempts = 0;          // tries reported through record_attempt, the last included
  Timestamp next_attempt_at = 0;  // pending only; 0 otherwise
  Timestamp last_attempt_at = 0;  // when the last try was reported; 0 before any
  friend bool operator==(const DeliveryStatus&, const DeliveryStatus&) = default;
};

struct StoredEvent {
  Event event;
  DeliveryStatus delivery;
  friend bool operator==(const StoredEvent&, const StoredEvent&) = default;
};

// One try to send: what connectors::MerchantWebhookSender posts.
struct Delivery {
  std::string event_id;  // also the Keel-Event-Id header
  std::string merchant_id;
  std::string url;       // the merchant's endpoint now (a changed endpoint applies to retries)
  std::string secret;    // likewise
  std::string body;      // render_event_json(event)
  uint32_t attempt = 1;  // this try's number: 1 for the first
  std::string previous_secret;  // during a rotation's overlap: signs too (empty: none)
  friend bool operator==(const Delivery&, const Delivery&) = default;
};

// Results of add, set_endpoint, remove_endpoint and list. Each value is one distinct reason.
enum class OutboxResult : uint8_t {
  ok = 0,
  event_id_invalid,     // not "evt_" + id characters
  event_exists,         // an event with this id is stored (or was, and is not yet expired)
  type_invalid,         // empty, longer than kEventTypeLengthMax, or not [a-z0-9_.]
  merchant_id_invalid,  // not is_valid_id
  object_id_invalid,    // not is_valid_id
  created_at_invalid,   // <= 0, or before the newest stored event's
  data_invalid,         // not a {...} JSON object text
  data_too_large,       // more than kEventDataBytesMax
  events_full,          // events_max or event_data_bytes_max reached (after expiring old ones)
  url_invalid,          // not is_valid_endpoint_url
  secret_invalid,       // empty, longer than 256 bytes, or not printable ASCII
  endpoints_full,       // endpoints_max merchants have an endpoint
  endpoint_not_found,   // remove_endpoint: the merchant has none
  limit_invalid,        // list: limit 0 or above kEventListLimitMax
  cursor_not_found,     // list: starting_after names no stored event
  secret_unchanged,     // rotate_secret: the new secret is the current one
};
[[nodiscard]] std::string_view outbox_result_name(OutboxResult r);

// What record_attempt did.
enum class AttemptRecordResult : uint8_t {
  delivered = 0,    // the delivery is done
  retry_scheduled,  // failed; next_attempt_at is set
  gave_up,          // failed and the delivery window is over
  not_found,        // no such event (never added, or expired): nothing changes
  not_pending,      // the event has no pending delivery (done, gave up, canceled, no endpoint)
};
[[nodiscard]] std::string_view attempt_record_result_name(AttemptRecordResult r);
[[nodiscard]] std::string_view delivery_state_name(DeliveryState s);

// list() filters: an empty field matches every event.
struct EventFilter {
  std::string type;
  std::string merchant_id;
  std::string object_id;
};

struct EventList {
  OutboxResult result = OutboxResult::ok;
  std::vector<StoredEvent> data;  // copies, newest first: safe to hand to another thread
  bool has_more = false;          // more matching events are older than the last one
};

// A page of list() while some events are in the history store: what the writer found in
// memory, for finish_list() to complete against the store (on another thread: it is a copy).
struct EventPageInMemory {
  size_t limit = 0;
  EventFilter filter;
  std::string cursor;      // starting_after when it is not in memory (empty otherwise)
  uint64_t before = 0;     // the page holds events with seq below this
  uint64_t first_seq = 0;  // the oldest event still stored (older ones are expired)
  uint64_t next_seq = 0;   // events added later are not on the page
  std::vector<std::pair<uint64_t, StoredEvent>> hot;  // matching, newest first, <= limit + 1
};

// The history store's layout for events: "ev" + seq (8 bytes, big-endian) -> the event as the
// canonical encoding writes it (event_record); indexes "eo" + object id, "em" + merchant id,
// "et" + type, each + '\0' + seq -> empty, and "ei" + event id -> seq (8 bytes, big-endian).
inline constexpr std::string_view kEventRecordPrefix = "ev";
[[nodiscard]] std::string event_key(uint64_t seq);
// The keys of every record of the event but its own (the indexes), for deletion at expiry.
[[nodiscard]] std::vector<std::string> event_index_keys(uint64_t seq, const Event& e);
// Decodes an "ev" record (false when malformed).
[[nodiscard]] bool decode_event_record(std::string_view bytes, uint64_t* seq, StoredEvent* out);

// The most deliveries of one merchant pending in memory: a tenth of events_max (at least 1).
[[nodiscard]] size_t merchant_pending_max(const OutboxOptions& options);

// Counters since the outbox began (they are state: in snapshots, identical after replay).
struct OutboxStats {
  uint64_t events_added = 0;
  uint64_t events_expired = 0;
  uint64_t deliveries_scheduled = 0;
  uint64_t deliveries_delivered = 0;
  uint64_t deliveries_gave_up = 0;
  uint64_t deliveries_canceled = 0;
  uint64_t attempts_failed = 0;
  friend bool operator==(const OutboxStats&, const OutboxStats&) = default;
};

class Outbox {
 public:
  // REQUIRES: options.valid().
  explicit Outbox(OutboxOptions options = {});

  // Sets (or replaces) the merchant's endpoint. Pending deliveries of earlier events go to the
  // new url, signed with the new secret, from their next try; events added while the merchant
  // had no endpoint are not delivered (they stay listed).
  OutboxResult set_endpoint(std::string_view merchant_id, std::string_view url,
                            std::string_view secret);
  // Replaces the merchant's signing secret at `now`. The secret it replaces keeps signing every
  // delivery made before `previous_until` (both signatures in Keel-Signature), so the merchant
  // can switch its verification over without missing an event; previous_until <= now ends the
  // old secret at once. A rotation during another's overlap drops the older secret.
  OutboxResult rotate_secret(std::string_view merchant_id, std::string_view secret, Timestamp now,
                             Timestamp previous_until);
  // Removes the merchant's endpoint and cancels its pending deliveries (DeliveryState::canceled;
  // a try in flight then reports not_pending).
  OutboxResult remove_endpoint(std::string_view merchant_id);
  [[nodiscard]] const WebhookEndpoint* endpoint(std::string_view merchant_id) const;
  // Replaces the merchant's current or previous secret whose bytes are `from` with `to` (the
  // vault's re-seal of the same secret under another master key version). False when neither
  // is `from`, or `to` is not a valid secret.
  bool reseal_secret(std::string_view merchant_id, std::string_view from, std::string_view to);
  // Every endpoint secret, current and previous, as (merchant, bytes), by merchant.
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> endpoint_secrets() const;

  // Stores `event` for polling; if its merchant has an endpoint, schedules a delivery due at
  // event.created_at, or defers it when the merchant has a backlog or merchant_pending_max
  // deliveries pending in memory. First forgets events past retention at event.created_at (as
  // expire()), and refills the merchant's pending deliveries from its backlog.
  OutboxResult add(Event event);

  // The deliveries due by `now`: earliest next_attempt_at first (then oldest event), at most
  // `limit`, leaving out those for which `in_flight(event_id)` is true. Changes nothing.
  [[nodiscard]] std::vector<Delivery> due(
      Timestamp now, size_t limit,
      const std::function<bool(std::string_view event_id)>& in_flight = {}) const;
  // The earliest next_attempt_at of any pending delivery (in flight included): when to look
  // again. nullopt when none is pending.
  [[nodiscard]] std::optional<Timestamp> next_attempt_at() const;

  // Reports the end of a try of the event's pending delivery at `now`: delivered (any 2xx) or
  // not (anything else: non-2xx, timeout, refused...). A failure at or after created_at +
  // delivery_window_s gives up; otherwise the next try is due at now + retry_delay_ns(...),
  // but never later than created_at + delivery_window_s (so the last try is at the window's
  // end). A delivery that ends makes room for the merchant's backlog: its oldest deferred
  // events become pending, due at `now`.
  AttemptRecordResult record_attempt(std::string_view event_id, bool delivered, Timestamp now);

  // GET /v1/events: stored events matching `filter`, newest first (the reverse of the order of
  // add(), which the engine's strictly increasing time makes created_at order), at most `limit`
  // (1..kEventListLimitMax). `starting_after` (empty: from the newest) is an event id, normally
  // the last of the previous page: the page holds the events added before it. It need not match
  // the filter, but must still be stored (else cursor_not_found).
  [[nodiscard]] EventList list(size_t limit, std::string_view starting_after,
                               const EventFilter& filter) const;
  // In memory only (an event in the history store is final: nothing asks for it by id but
  // lists).
  [[nodiscard]] const StoredEvent* find(std::string_view event_id) const;

  // History. track_final(true) (off by default, and in a decoded outbox: with no history store
  // nothing is collected) makes take_final() hand out every event in memory that is final or
  // becomes final: it appends the store records of each to `puts`, and their seqs to `seqs`.
  // An event is handed out again only if it changed since (a deferred event taken from the
  // backlog). set_history() also names the store a backlog is read from (refill); null: none.
  void track_final(bool on);
  void set_history(const KvReader* history) {
    history_ = history;
    track_final(history != nullptr);
  }
  // make_cold() drops from memory the events of `seqs` that are still stored (those durable in
  // the store), unless they changed after that hand-out; seqs of events already gone are
  // ignored. Call it once per take_final(), with its seqs, in the same order.
  void take_final(std::vector<std::pair<std::string, std::string>>* puts,
                  std::vector<uint64_t>* seqs);
  void make_cold(const std::vector<uint64_t>& seqs);
  // list() when in_history() > 0: the part of the page in memory, or a final answer (an error,
  // or a page with nothing in the store to look at) in `*done`.
  [[nodiscard]] EventPageInMemory list_in_memory(size_t limit, std::string_view starting_after,
                                                 const EventFilter& filter,
                                                 std::optional<EventList>* done) const;
  // Completes a page from the history store (any thread). Fails only when the store does (or
  // lacks a record it must hold).
  [[nodiscard]] static Status finish_list(const EventPageInMemory& page, const KvReader& history,
                                          EventList* out);
  // The seq below which every event has expired (the oldest stored event's, or the next).
  [[nodiscard]] uint64_t first_seq() const { return next_seq_ - created_.size(); }

  // Forgets events created retention_s or longer before `now` (a delivery still pending then is
  // dropped with them). Returns how many.
  size_t expire(Timestamp now);

  [[nodiscard]] size_t size() const { return created_.size(); }  // in memory and in the store
  [[nodiscard]] size_t in_memory() const { return events_.size(); }
  [[nodiscard]] size_t in_history() const { return created_.size() - events_.size(); }
  [[nodiscard]] size_t pending() const { return schedule_.size(); }
  [[nodiscard]] size_t pending(std::string_view merchant_id) const;
  // Merchants with a backlog (deferred events not yet taken back), and whether one has.
  [[nodiscard]] size_t backlogged_merchants() const { return backlogs_.size(); }
  [[nodiscard]] bool backlogged(std::string_view merchant_id) const {
    return backlogs_.contains(merchant_id);
  }
  // Since this object was built or decoded (not state: they restart at zero): events deferred,
  // and deferred events taken back as pending deliveries.
  [[nodiscard]] uint64_t deferred_since_start() const { return deferred_since_start_; }
  [[nodiscard]] uint64_t refilled_since_start() const { return refilled_since_start_; }
  // The merchants whose backlog began since the last call (for the engine's log; not state).
  [[nodiscard]] std::vector<std::string> take_backlogs_started();
  [[nodiscard]] uint64_t data_bytes() const { return data_bytes_; }
  [[nodiscard]] const OutboxStats& stats() const { return stats_; }
  [[nodiscard]] const OutboxOptions& options() const { return options_; }

  // Canonical encoding (options, counters, endpoints, events in order of addition): version 1,
  // every event; versions 4 to 6 are versions 1 to 3 followed by the secret rotations in
  // progress (the endpoints with a previous secret: merchant, previous secret, until), used
  // only while there is one, so a state that never rotated encodes as before. encode_full() reads
  // the events in the history store from `history` (null when none are there; fails when it lacks
  // one). encode() is the snapshot's: version 1 while every event is in memory and no merchant has
  // a backlog, version 2 when some events are in the store (the creation times of all, then the
  // events in memory; the rest is in the store), version 3 when a merchant has a backlog (version
  // 2's layout, then the backlogs). A backlog is not in the canonical encoding: its deferred events
  // there say all it holds. decode() takes every version, checks every field as the calls above do,
  // rebuilds the indexes (and the backlogs from the deferred events, versions 1 and 2), and fails
  // on malformed, inconsistent or trailing bytes, leaving *out unchanged.
  [[nodiscard]] Status encode_full(std::string* out, const KvReader* history) const;
  void encode(std::string* out) const;
  [[nodiscard]] static Status decode(std::string_view bytes, Outbox* out);

 private:
  struct Entry {
    uint64_t seq = 0;  // order of addition; list order and tie-breaker
    StoredEvent stored;
    // History hand-outs (not state): whether final_ holds it, hand-outs not yet made cold, and
    // whether it changed since the last one (then make_cold keeps it).
    bool noted = false;
    bool changed = false;
    uint32_t takes = 0;
  };
  // A merchant's deferred events: its events with seq in (taken, newest], oldest first.
  struct Backlog {
    uint64_t taken = 0;   // the last seq taken back (or the one before the first deferred)
    uint64_t newest = 0;  // the merchant's newest deferred event
    friend bool operator==(const Backlog&, const Backlog&) = default;
  };
  using SeqIndex = std::set<std::pair<std::string, uint64_t>, std::less<>>;

  OutboxResult check_capacity(size_t data_size) const;
  void insert(Entry entry);
  // Drops an in-memory event and its indexes (not its creation time).
  void drop(uint64_t seq);
  void note_if_final(Entry& e);
  // Takes the oldest deferred events of the merchant back as pending deliveries due at `now`,
  // while it has fewer than merchant_pending_max pending and the outbox has room, keeping
  // room for `keep_slots` more events with `keep_bytes` of data; at most kRefillBatchMax.
  void refill(std::string_view merchant_id, Timestamp now, size_t keep_slots, uint64_t keep_bytes);
  // Reads a deferred event of `merchant_id` that left memory (false: the store holds no such
  // event of that merchant under `seq`).
  bool read_deferred(uint64_t seq, std::string_view merchant_id, StoredEvent* out) const;
  // Calls `visit` for the in-memory events matching `filter` with seq < `before`, newest first,
  // while it returns true.
  void walk(const EventFilter& filter, uint64_t before,
            const std::function<bool(uint64_t seq, const StoredEvent&)>& visit) const;
  void encode_header(std::string* out, uint32_t version) const;
  [[nodiscard]] bool rotating() const;  // some endpoint has a previous secret
  void encode_rotations(std::string* out) const;
  [[nodiscard]] static Status decode_rotations(ByteReader& r, Outbox* s);
  // Reads the backlogs of a version 3 encoding (`encoded`), or derives them from the deferred
  // events in memory; checks that every deferred event in memory is in its merchant's backlog.
  [[nodiscard]] static Status decode_backlogs(ByteReader& r, bool encoded, Outbox* s);
  void unschedule(const Entry& e);
  void schedule(Entry& e, Timestamp at);
  [[nodiscard]] Delivery make_delivery(const Entry& e, Timestamp now) const;
  // Forgets the merchant's previous secret once its overlap ended at `now`.
  void end_overlap(std::string_view merchant_id, Timestamp now);

  OutboxOptions options_;
  uint64_t next_seq_ = 1;
  uint64_t data_bytes_ = 0;
  OutboxStats stats_;
  std::map<std::string, WebhookEndpoint, std::less<>> endpoints_;
  std::map<uint64_t, Entry> events_;                    // by seq: the canonical order
  std::map<std::string, uint64_t, std::less<>> by_id_;  // event id -> seq
  SeqIndex by_merchant_;                                // (merchant_id, seq)
  SeqIndex by_object_;                                  // (object_id, seq)
  SeqIndex by_type_;                                    // (type, seq)
  std::set<std::pair<Timestamp, uint64_t>> schedule_;   // pending: (next_attempt_at, seq)
  std::map<std::string, size_t, std::less<>> pending_by_merchant_;  // from schedule_ (derived)
  std::map<std::string, Backlog, std::less<>> backlogs_;            // merchants with one
  // The creation time of every stored event, in memory or not, by seq: created_[i] is event
  // first_seq() + i's. Nondecreasing, so expiry pops from the front.
  std::deque<Timestamp> created_;
  // In-memory events whose delivery became final, not yet handed out by take_final() (not state).
  std::vector<uint64_t> final_;
  bool tracking_final_ = false;        // track_final() (not state)
  const KvReader* history_ = nullptr;  // set_history() (not state)
  uint64_t deferred_since_start_ = 0;
  uint64_t refilled_since_start_ = 0;
  std::vector<std::string> backlogs_started_;
};

// The event as JSON, exactly as delivered and listed: {"id":..,"type":..,"created_at":"RFC 3339
// with nanoseconds",.."data":{..}} with fields in that order and no spaces.
[[nodiscard]] std::string render_event_json(const Event& event);

// The wait before try `failed_attempts + 1` (failed_attempts >= 1): base = backoff_first_ms *
// 2^(failed_attempts-1), capped at backoff_max_ms; the wait is base/2 + j, j in [0, base/2],
// where j comes from a fixed-key SipHash of (event_id, failed_attempts): deterministic, so
// replay gives the same schedule, yet spread across events so that retries after an outage do
// not arrive together. In nanoseconds.
[[nodiscard]] int64_t retry_delay_ns(const OutboxOptions& options, std::string_view event_id,
                                     uint32_t failed_attempts);

// http[s]://HOST[:PORT][/PATH][?QUERY], lower-case scheme; HOST is a name or IPv4 address of
// [A-Za-z0-9.-] (no IPv6 literal, no user info); PORT 1..65535 (default 80, or 443 for https);
// PATH and QUERY of RFC 3986 characters (no fragment); at most kEndpointUrlLengthMax bytes.
// Where it may lead (not loopback or private networks, unless allowed) is the sender's check
// after DNS (net/destination_guard.h).
using EndpointUrl = HttpUrl;  // core/http_url.h
[[nodiscard]] std::optional<EndpointUrl> parse_endpoint_url(std::string_view url);
[[nodiscard]] bool is_valid_endpoint_url(std::string_view url);
[[nodiscard]] bool is_valid_endpoint_secret(std::string_view secret);
[[nodiscard]] bool is_valid_event_id(std::string_view id);
[[nodiscard]] bool is_valid_event_type(std::string_view type);

}  // namespace keel::payments
