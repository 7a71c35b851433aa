#include "payments/outbox.h"

#include <algorithm>
#include <limits>

#include "core/assert.h"
#include "core/bytes.h"
#include "core/codec.h"
#include "core/enum_name.h"
#include "core/hash.h"
#include "core/ids.h"
#include "vault/sealed_secret.h"

namespace keel::payments {
namespace {

constexpr uint32_t kEncodingVersion = 1;
constexpr uint32_t kEncodingVersionWithHistory = 2;   // some events are in the history store
constexpr uint32_t kEncodingVersionWithBacklogs = 3;  // version 2, then the backlogs
// Versions 4, 5 and 6: versions 1, 2 and 3, then the secret rotations in progress.
constexpr uint32_t kEncodingRotationsOffset = 3;
// The most deferred events one refill takes back: bounds the store reads of one command.
constexpr size_t kRefillBatchMax = 64;
// The jitter hash's key: fixed, so that every replay computes the same schedule. Not a secret
// (the jitter only spreads retries; nothing depends on it being unpredictable).
constexpr SipKey kJitterKey{0x6b65656c6f757462ull, 0x6f786a6974746572ull};
// Bounds on durations, so that no sum of them with a timestamp can overflow.
constexpr int64_t kDurationSMax = 10LL * 366 * 24 * 3600;
constexpr int64_t kNanosPerMilli = 1'000'000;

Timestamp add_saturated(Timestamp t, int64_t d) {
  Timestamp out = 0;
  if (__builtin_add_overflow(t, d, &out)) return std::numeric_limits<Timestamp>::max();
  return out;
}

bool is_valid_data(std::string_view data) {
  return data.size() >= 2 && data.front() == '{' && data.back() == '}';
}

// The first problem of an event, or ok.
OutboxResult check_event(const Event& e) {
  if (!is_valid_event_id(e.id)) return OutboxResult::event_id_invalid;
  if (!is_valid_event_type(e.type)) return OutboxResult::type_invalid;
  if (!is_valid_id(e.merchant_id)) return OutboxResult::merchant_id_invalid;
  if (!is_valid_id(e.object_id)) return OutboxResult::object_id_invalid;
  if (e.created_at <= 0) return OutboxResult::created_at_invalid;
  if (e.data.size() > kEventDataBytesMax) return OutboxResult::data_too_large;
  if (!is_valid_data(e.data)) return OutboxResult::data_invalid;
  return OutboxResult::ok;
}

// Walks `index` entries with key `key` and seq < `before`, highest seq first, until `visit`
// returns false.
template <typename Index, typename Visit>
void walk_back(const Index& index, std::string_view key, uint64_t before, Visit visit) {
  auto it = index.lower_bound(std::pair<std::string, uint64_t>(std::string(key), before));
  while (it != index.begin()) {
    --it;
    if (it->first != key || !visit(it->second)) return;
  }
}

// One event as the canonical encoding writes it (also its history store record).
void append_event(ByteWriter& w, uint64_t seq, const StoredEvent& s) {
  const Event& ev = s.event;
  const DeliveryStatus& d = s.delivery;
  w.u64(seq);
  w.str16(ev.id);
  w.str16(ev.type);
  w.str16(ev.merchant_id);
  w.str16(ev.object_id);
  w.i64(ev.created_at);
  w.u32(static_cast<uint32_t>(ev.data.size()));
  w.raw(ev.data.data(), ev.data.size());
  w.u8(static_cast<uint8_t>(d.state));
  w.u32(d.attempts);
  w.i64(d.next_attempt_at);
  w.i64(d.last_attempt_at);
}

bool read_event(ByteReader& r, uint64_t* seq, StoredEvent* s) {
  Event& ev = s->event;
  DeliveryStatus& d = s->delivery;
  uint32_t data_len = 0;
  std::string_view data;
  const bool ok = r.u64(seq) && r.str16(&ev.id) && r.str16(&ev.type) && r.str16(&ev.merchant_id) &&
                  r.str16(&ev.object_id) && r.i64(&ev.created_at) && r.u32(&data_len) &&
                  data_len <= kEventDataBytesMax && r.raw(&data, data_len) &&
                  read_enum(r, DeliveryState::deferred, &d.state) && r.u32(&d.attempts) &&
                  r.i64(&d.next_attempt_at) && r.i64(&d.last_attempt_at);
  if (ok) ev.data.assign(data);
  return ok;
}

bool is_final(DeliveryState s) { return s != DeliveryState::pending; }

// The index of the history store a filter reads: the most selective it allows (as list()).
std::string index_prefix(const EventFilter& f) {
  if (!f.object_id.empty()) return "eo" + f.object_id + '\0';
  if (!f.merchant_id.empty()) return "em" + f.merchant_id + '\0';
  if (!f.type.empty()) return "et" + f.type + '\0';
  return std::string(kEventRecordPrefix);
}

bool matches(const EventFilter& f, const Event& e) {
  return (f.type.empty() || e.type == f.type) &&
         (f.merchant_id.empty() || e.merchant_id == f.merchant_id) &&
         (f.object_id.empty() || e.object_id == f.object_id);
}

std::string event_id_key(std::string_view id) { return "ei" + std::string(id); }

}  // namespace

std::string event_key(uint64_t seq) {
  std::string k(kEventRecordPrefix);
  append_be64(&k, seq);
  return k;
}

std::vector<std::string> event_index_keys(uint64_t seq, const Event& e) {
  std::vector<std::string> keys;
  for (const EventFilter& f : {EventFilter{"", "", e.object_id}, EventFilter{"", e.merchant_id, ""},
                               EventFilter{e.type, "", ""}}) {
    std::string& k = keys.emplace_back(index_prefix(f));
    append_be64(&k, seq);
  }
  keys.push_back(event_id_key(e.id));
  return keys;
}

bool decode_event_record(std::string_view bytes, uint64_t* seq, StoredEvent* out) {
  ByteReader r(bytes);
  return read_event(r, seq, out) && r.at_end();
}

bool OutboxOptions::valid() const {
  const auto in_range = [](int64_t v, int64_t max) { return v > 0 && v <= max; };
  return in_range(delivery_window_s, kDurationSMax) && in_range(retention_s, kDurationSMax) &&
         retention_s >= delivery_window_s && in_range(backoff_first_ms, kDurationSMax * 1000) &&
         in_range(backoff_max_ms, kDurationSMax * 1000) && backoff_max_ms >= backoff_first_ms &&
         events_max > 0 && event_data_bytes_max > 0 && endpoints_max > 0;
}

std::string_view outbox_result_name(OutboxResult r) {
  switch (r) {
    KEEL_ENUM_CASE(OutboxResult, ok);
    KEEL_ENUM_CASE(OutboxResult, event_id_invalid);
    KEEL_ENUM_CASE(OutboxResult, event_exists);
    KEEL_ENUM_CASE(OutboxResult, type_invalid);
    KEEL_ENUM_CASE(OutboxResult, merchant_id_invalid);
    KEEL_ENUM_CASE(OutboxResult, object_id_invalid);
    KEEL_ENUM_CASE(OutboxResult, created_at_invalid);
    KEEL_ENUM_CASE(OutboxResult, data_invalid);
    KEEL_ENUM_CASE(OutboxResult, data_too_large);
    KEEL_ENUM_CASE(OutboxResult, events_full);
    KEEL_ENUM_CASE(OutboxResult, url_invalid);
    KEEL_ENUM_CASE(OutboxResult, secret_invalid);
    KEEL_ENUM_CASE(OutboxResult, endpoints_full);
    KEEL_ENUM_CASE(OutboxResult, endpoint_not_found);
    KEEL_ENUM_CASE(OutboxResult, limit_invalid);
    KEEL_ENUM_CASE(OutboxResult, cursor_not_found);
    KEEL_ENUM_CASE(OutboxResult, secret_unchanged);
  }
  return "unknown";
}

std::string_view attempt_record_result_name(AttemptRecordResult r) {
  switch (r) {
    KEEL_ENUM_CASE(AttemptRecordResult, delivered);
    KEEL_ENUM_CASE(AttemptRecordResult, retry_scheduled);
    KEEL_ENUM_CASE(AttemptRecordResult, gave_up);
    KEEL_ENUM_CASE(AttemptRecordResult, not_found);
    KEEL_ENUM_CASE(AttemptRecordResult, not_pending);
  }
  return "unknown";
}

std::string_view delivery_state_name(DeliveryState s) {
  switch (s) {
    KEEL_ENUM_CASE(DeliveryState, no_endpoint);
    KEEL_ENUM_CASE(DeliveryState, pending);
    KEEL_ENUM_CASE(DeliveryState, delivered);
    KEEL_ENUM_CASE(DeliveryState, gave_up);
    KEEL_ENUM_CASE(DeliveryState, canceled);
    KEEL_ENUM_CASE(DeliveryState, deferred);
  }
  return "unknown";
}

bool is_valid_event_id(std::string_view id) {
  return id.size() > kEventIdPrefix.size() && id.starts_with(kEventIdPrefix) && is_valid_id(id);
}

bool is_valid_event_type(std::string_view type) {
  if (type.empty() || type.size() > kEventTypeLengthMax) return false;
  return std::all_of(type.begin(), type.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
  });
}

bool is_valid_endpoint_secret(std::string_view secret) {
  // Sealed by the vault (binary), or in clear as data from before the vault holds it.
  if (vault::is_sealed_secret(secret)) {
    return secret.size() > vault::kSealedSecretOverhead &&
           secret.size() <= vault::kSealedSecretOverhead + kEndpointSecretLengthMax;
  }
  if (secret.empty() || secret.size() > kEndpointSecretLengthMax) return false;
  return std::all_of(secret.begin(), secret.end(), [](char c) { return c >= 0x21 && c <= 0x7E; });
}

std::optional<EndpointUrl> parse_endpoint_url(std::string_view url) {
  if (url.size() > kEndpointUrlLengthMax) return std::nullopt;
  return parse_http_url_with_target(url, {.https = true});
}

bool is_valid_endpoint_url(std::string_view url) { return parse_endpoint_url(url).has_value(); }

std::string render_event_json(const Event& e) {
  // Ids and types are plain id characters: nothing to escape.
  std::string out;
  out.reserve(96 + e.id.size() + e.type.size() + e.data.size());
  out += R"({"id":")";
  out += e.id;
  out += R"(","type":")";
  out += e.type;
  out += R"(","created_at":")";
  out += format_rfc3339(e.created_at);
  out += R"(","data":)";
  out += e.data;
  out += '}';
  return out;
}

int64_t retry_delay_ns(const OutboxOptions& o, std::string_view event_id,
                       uint32_t failed_attempts) {
  KEEL_ASSERT(failed_attempts >= 1);
  int64_t base_ms = o.backoff_first_ms;
  for (uint32_t i = 1; i < failed_attempts && base_ms < o.backoff_max_ms; ++i) {
    base_ms = base_ms > o.backoff_max_ms / 2 ? o.backoff_max_ms : base_ms * 2;
  }
  base_ms = std::min(base_ms, o.backoff_max_ms);
  const int64_t base_ns = base_ms * kNanosPerMilli;  // no overflow: valid() bounds it
  const int64_t half_ns = base_ns / 2;
  std::string input(event_id);
  ByteWriter(&input).u32(failed_attempts);
  const uint64_t h = siphash13(kJitterKey, input);
  return (base_ns - half_ns) + static_cast<int64_t>(h % static_cast<uint64_t>(half_ns + 1));
}

size_t merchant_pending_max(const OutboxOptions& options) {
  return std::max<size_t>(1, options.events_max / 10);
}

Outbox::Outbox(OutboxOptions options) : options_(options) { KEEL_ASSERT(options_.valid()); }

OutboxResult Outbox::set_endpoint(std::string_view merchant_id, std::string_view url,
                                  std::string_view secret) {
  if (!is_valid_id(merchant_id)) return OutboxResult::merchant_id_invalid;
  if (!is_valid_endpoint_url(url)) return OutboxResult::url_invalid;
  if (!is_valid_endpoint_secret(secret)) return OutboxResult::secret_invalid;
  const auto it = endpoints_.find(merchant_id);
  if (it != endpoints_.end()) {
    it->second = {std::string(url), std::string(secret), {}, 0};
    return OutboxResult::ok;
  }
  if (endpoints_.size() >= options_.endpoints_max) return OutboxResult::endpoints_full;
  endpoints_.emplace(std::string(merchant_id),
                     WebhookEndpoint{std::string(url), std::string(secret)});
  return OutboxResult::ok;
}

OutboxResult Outbox::rotate_secret(std::string_view merchant_id, std::string_view secret,
                                   Timestamp now, Timestamp previous_until) {
  const auto it = endpoints_.find(merchant_id);
  if (it == endpoints_.end()) return OutboxResult::endpoint_not_found;
  if (!is_valid_endpoint_secret(secret)) return OutboxResult::secret_invalid;
  WebhookEndpoint& ep = it->second;
  if (ep.secret == secret) return OutboxResult::secret_unchanged;
  const bool overlap = previous_until > now;
  ep.previous_secret = overlap ? std::move(ep.secret) : std::string();
  ep.previous_until = overlap ? previous_until : 0;
  ep.secret = std::string(secret);
  KEEL_ASSERT(ep.previous_secret.empty() == (ep.previous_until == 0));
  return OutboxResult::ok;
}

bool Outbox::reseal_secret(std::string_view merchant_id, std::string_view from,
                           std::string_view to) {
  const auto it = endpoints_.find(merchant_id);
  if (it == endpoints_.end() || !is_valid_endpoint_secret(to) || from.empty()) return false;
  WebhookEndpoint& ep = it->second;
  std::string* target = ep.secret == from            ? &ep.secret
                        : ep.previous_secret == from ? &ep.previous_secret
                                                     : nullptr;
  if (target == nullptr) return false;
  *target = std::string(to);
  return true;
}

std::vector<std::pair<std::string, std::string>> Outbox::endpoint_secrets() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [merchant, ep] : endpoints_) {
    out.emplace_back(merchant, ep.secret);
    if (!ep.previous_secret.empty()) out.emplace_back(merchant, ep.previous_secret);
  }
  return out;
}

void Outbox::end_overlap(std::string_view merchant_id, Timestamp now) {
  const auto it = endpoints_.find(merchant_id);
  if (it == endpoints_.end() || it->second.previous_until == 0 || it->second.previous_until > now) {
    return;
  }
  it->second.previous_secret.clear();
  it->second.previous_until = 0;
}

OutboxResult Outbox::remove_endpoint(std::string_view merchant_id) {
  const auto it = endpoints_.find(merchant_id);
  if (it == endpoints_.end()) return OutboxResult::endpoint_not_found;
  endpoints_.erase(it);
  walk_back(by_merchant_, merchant_id, std::numeric_limits<uint64_t>::max(), [&](uint64_t seq) {
    Entry& e = events_.find(seq)->second;
    if (e.stored.delivery.state == DeliveryState::pending) {
      unschedule(e);
      e.stored.delivery.state = DeliveryState::canceled;
      e.stored.delivery.next_attempt_at = 0;
      ++stats_.deliveries_canceled;
      note_if_final(e);
    }
    return true;
  });
  return OutboxResult::ok;
}

const WebhookEndpoint* Outbox::endpoint(std::string_view merchant_id) const {
  const auto it = endpoints_.find(merchant_id);
  return it == endpoints_.end() ? nullptr : &it->second;
}

OutboxResult Outbox::check_capacity(size_t data_size) const {
  if (events_.size() >= options_.events_max) return OutboxResult::events_full;
  if (data_size >
      options_.event_data_bytes_max - std::min(data_bytes_, options_.event_data_bytes_max)) {
    return OutboxResult::events_full;
  }
  return OutboxResult::ok;
}

OutboxResult Outbox::add(Event event) {
  if (const OutboxResult r = check_event(event); r != OutboxResult::ok) return r;
  if (!created_.empty() && event.created_at < created_.back()) {
    return OutboxResult::created_at_invalid;
  }
  expire(event.created_at);
  if (by_id_.contains(event.id)) return OutboxResult::event_exists;
  if (const OutboxResult r = check_capacity(event.data.size()); r != OutboxResult::ok) return r;
  end_overlap(event.merchant_id, event.created_at);
  Entry e;
  e.seq = next_seq_++;
  e.stored.event = std::move(event);
  const std::string& merchant = e.stored.event.merchant_id;
  if (endpoints_.contains(merchant)) {
    refill(merchant, e.stored.event.created_at, 1, e.stored.event.data.size());
    const auto backlog = backlogs_.find(merchant);
    if (backlog != backlogs_.end() || pending(merchant) >= merchant_pending_max(options_)) {
      // Behind the merchant's pending deliveries, first in first out.
      e.stored.delivery.state = DeliveryState::deferred;
      if (backlog == backlogs_.end()) {
        backlogs_.emplace(merchant, Backlog{e.seq - 1, e.seq});
        backlogs_started_.push_back(merchant);
      } else {
        backlog->second.newest = e.seq;
      }
      ++deferred_since_start_;
    } else {
      e.stored.delivery.state = DeliveryState::pending;
      e.stored.delivery.next_attempt_at = e.stored.event.created_at;
    }
    ++stats_.deliveries_scheduled;
  }
  ++stats_.events_added;
  created_.push_back(e.stored.event.created_at);
  note_if_final(e);
  insert(std::move(e));
  return OutboxResult::ok;
}

void Outbox::insert(Entry entry) {
  const uint64_t seq = entry.seq;
  const Event& ev = entry.stored.event;
  data_bytes_ += ev.data.size();
  by_id_.emplace(ev.id, seq);
  by_merchant_.emplace(ev.merchant_id, seq);
  by_object_.emplace(ev.object_id, seq);
  by_type_.emplace(ev.type, seq);
  const Timestamp next = entry.stored.delivery.next_attempt_at;
  const bool pending = entry.stored.delivery.state == DeliveryState::pending;
  if (pending) ++pending_by_merchant_[ev.merchant_id];
  const bool inserted = events_.emplace(seq, std::move(entry)).second;
  KEEL_ASSERT(inserted);
  if (pending) schedule_.emplace(next, seq);
}

void Outbox::note_if_final(Entry& e) {
  if (!tracking_final_ || e.noted || !is_final(e.stored.delivery.state)) return;
  final_.push_back(e.seq);
  e.noted = true;
}

void Outbox::track_final(bool on) {
  final_.clear();
  tracking_final_ = on;
  for (auto& [seq, e] : events_) {
    e.noted = false;
    note_if_final(e);
  }
}

void Outbox::drop(uint64_t seq) {
  const auto it = events_.find(seq);
  KEEL_ASSERT(it != events_.end());
  const Entry& e = it->second;
  const Event& ev = e.stored.event;
  unschedule(e);
  KEEL_ASSERT(data_bytes_ >= ev.data.size());
  data_bytes_ -= ev.data.size();
  by_id_.erase(ev.id);
  by_merchant_.erase({ev.merchant_id, seq});
  by_object_.erase({ev.object_id, seq});
  by_type_.erase({ev.type, seq});
  events_.erase(it);
}

void Outbox::unschedule(const Entry& e) {
  if (e.stored.delivery.state != DeliveryState::pending) return;
  const size_t erased = schedule_.erase({e.stored.delivery.next_attempt_at, e.seq});
  KEEL_ASSERT(erased == 1);
  const auto count = pending_by_merchant_.find(e.stored.event.merchant_id);
  KEEL_ASSERT(count != pending_by_merchant_.end() && count->second > 0);
  if (--count->second == 0) pending_by_merchant_.erase(count);
}

void Outbox::schedule(Entry& e, Timestamp at) {
  KEEL_ASSERT(e.stored.delivery.state == DeliveryState::pending);
  e.stored.delivery.next_attempt_at = at;
  const bool inserted = schedule_.emplace(at, e.seq).second;
  KEEL_ASSERT(inserted);
  ++pending_by_merchant_[e.stored.event.merchant_id];
}

size_t Outbox::pending(std::string_view merchant_id) const {
  const auto it = pending_by_merchant_.find(merchant_id);
  return it == pending_by_merchant_.end() ? 0 : it->second;
}

std::vector<std::string> Outbox::take_backlogs_started() {
  std::vector<std::string> out;
  std::swap(out, backlogs_started_);
  return out;
}

bool Outbox::read_deferred(uint64_t seq, std::string_view merchant_id, StoredEvent* out) const {
  KEEL_ASSERT(history_ != nullptr);
  std::optional<std::string> record;
  const Status s = history_->get(event_key(seq), &record);
  KEEL_ASSERT(s.is_ok());  // the store is memory for what it holds
  uint64_t stored_seq = 0;
  // A record of another merchant under this seq: an index record the store kept from a
  // journal a backup restore cut short (docs/storage.md). Not this backlog's.
  return record && decode_event_record(*record, &stored_seq, out) && stored_seq == seq &&
         out->event.merchant_id == merchant_id;
}

void Outbox::refill(std::string_view merchant_id, Timestamp now, size_t keep_slots,
                    uint64_t keep_bytes) {
  const auto backlog = backlogs_.find(merchant_id);
  if (backlog == backlogs_.end() || !endpoints_.contains(merchant_id)) return;
  Backlog& b = backlog->second;
  const size_t max = merchant_pending_max(options_);
  size_t room = max - std::min(max, pending(merchant_id));
  room = std::min(room, kRefillBatchMax);
  room = std::min(room,
                  options_.events_max - std::min(options_.events_max, events_.size() + keep_slots));
  const std::string prefix = index_prefix({"", std::string(merchant_id), ""});
  bool exhausted = false;
  bool full = false;  // no room for the data of the next one: the next refill goes on
  while (room > 0 && !exhausted && !full) {
    // The oldest deferred events still stored, from both tiers (memory wins), at most `room`.
    const uint64_t from = std::max(b.taken + 1, first_seq());
    std::set<uint64_t> next;
    for (auto it = by_merchant_.lower_bound({std::string(merchant_id), from});
         it != by_merchant_.end() && it->first == merchant_id && it->second <= b.newest &&
         next.size() < room;
         ++it) {
      next.insert(it->second);
    }
    if (history_ != nullptr && in_history() > 0) {
      std::string begin = prefix;
      std::string end = prefix;
      append_be64(&begin, from);
      append_be64(&end, b.newest + 1);
      size_t cold = 0;
      const Status s =
          history_->scan_range(begin, end, false, [&](std::string_view key, std::string_view) {
            const uint64_t seq = read_be64_suffix(key);
            if (!events_.contains(seq)) {
              next.insert(seq);
              ++cold;
            }
            return cold < room;
          });
      KEEL_ASSERT(s.is_ok());  // the store is memory for what it holds
    }
    exhausted = next.empty();  // every deferred event was taken back (or expired)
    size_t taken = 0;
    for (const uint64_t seq : next) {
      if (taken == room) break;
      if (const auto it = events_.find(seq); it != events_.end()) {
        Entry& e = it->second;
        if (e.stored.event.merchant_id == merchant_id &&
            e.stored.delivery.state == DeliveryState::deferred) {
          e.stored.delivery.state = DeliveryState::pending;
          e.changed = true;  // a hand-out of it as deferred no longer stands for it
          schedule(e, now);
          ++taken;
        }
      } else {
        StoredEvent stored;
        if (read_deferred(seq, merchant_id, &stored)) {
          full =
              stored.event.data.size() + keep_bytes >
              options_.event_data_bytes_max - std::min(data_bytes_, options_.event_data_bytes_max);
          if (full) break;
          // The store may hold a later state of it (a replay from an older snapshot): what a
          // deferred event is comes from the backlog, only its content from the record.
          stored.delivery = DeliveryStatus{DeliveryState::pending, 0, now, 0};
          insert(Entry{seq, std::move(stored)});
          ++taken;
        }
      }
      b.taken = seq;
    }
    room -= taken;
    refilled_since_start_ += taken;
    exhausted = exhausted || b.taken >= b.newest;
  }
  if (exhausted) backlogs_.erase(backlog);
}

Delivery Outbox::make_delivery(const Entry& e, Timestamp now) const {
  const Event& ev = e.stored.event;
  const auto endpoint = endpoints_.find(ev.merchant_id);
  KEEL_ASSERT(endpoint != endpoints_.end());  // removing an endpoint cancels its deliveries
  Delivery d;
  d.event_id = ev.id;
  d.merchant_id = ev.merchant_id;
  d.url = endpoint->second.url;
  d.secret = endpoint->second.secret;
  if (endpoint->second.previous_until > now) d.previous_secret = endpoint->second.previous_secret;
  d.body = render_event_json(ev);
  d.attempt = e.stored.delivery.attempts + 1;
  return d;
}

std::vector<Delivery> Outbox::due(Timestamp now, size_t limit,
                                  const std::function<bool(std::string_view)>& in_flight) const {
  std::vector<Delivery> out;
  for (auto it = schedule_.begin(); it != schedule_.end() && out.size() < limit; ++it) {
    if (it->first > now) break;
    const Entry& e = events_.find(it->second)->second;
    if (in_flight && in_flight(e.stored.event.id)) continue;
    out.push_back(make_delivery(e, now));
  }
  return out;
}

std::optional<Timestamp> Outbox::next_attempt_at() const {
  if (schedule_.empty()) return std::nullopt;
  return schedule_.begin()->first;
}

AttemptRecordResult Outbox::record_attempt(std::string_view event_id, bool delivered,
                                           Timestamp now) {
  const auto id = by_id_.find(event_id);
  if (id == by_id_.end()) return AttemptRecordResult::not_found;
  Entry& e = events_.find(id->second)->second;
  DeliveryStatus& d = e.stored.delivery;
  if (d.state != DeliveryState::pending) return AttemptRecordResult::not_pending;
  unschedule(e);
  d.attempts = d.attempts == std::numeric_limits<uint32_t>::max() ? d.attempts : d.attempts + 1;
  d.last_attempt_at = now;
  d.next_attempt_at = 0;
  if (delivered) {
    d.state = DeliveryState::delivered;
    ++stats_.deliveries_delivered;
    note_if_final(e);
    refill(e.stored.event.merchant_id, now, 0, 0);
    return AttemptRecordResult::delivered;
  }
  ++stats_.attempts_failed;
  const Timestamp window_end =
      add_saturated(e.stored.event.created_at, options_.delivery_window_s * kNanosPerSecond);
  if (now >= window_end) {
    d.state = DeliveryState::gave_up;
    ++stats_.deliveries_gave_up;
    note_if_final(e);
    refill(e.stored.event.merchant_id, now, 0, 0);
    return AttemptRecordResult::gave_up;
  }
  const int64_t delay_ns = retry_delay_ns(options_, e.stored.event.id, d.attempts);
  schedule(e, std::min(add_saturated(now, delay_ns), window_end));
  return AttemptRecordResult::retry_scheduled;
}

void Outbox::walk(const EventFilter& filter, uint64_t before,
                  const std::function<bool(uint64_t, const StoredEvent&)>& visit) const {
  const auto step = [&](uint64_t seq) {
    const StoredEvent& s = events_.find(seq)->second.stored;
    return !matches(filter, s.event) || visit(seq, s);
  };
  // The most selective index the filter allows.
  if (!filter.object_id.empty()) {
    walk_back(by_object_, filter.object_id, before, step);
  } else if (!filter.merchant_id.empty()) {
    walk_back(by_merchant_, filter.merchant_id, before, step);
  } else if (!filter.type.empty()) {
    walk_back(by_type_, filter.type, before, step);
  } else {
    for (auto it = events_.lower_bound(before); it != events_.begin();) {
      --it;
      if (!step(it->first)) break;
    }
  }
}

EventList Outbox::list(size_t limit, std::string_view starting_after,
                       const EventFilter& filter) const {
  EventList out;
  if (limit == 0 || limit > kEventListLimitMax) {
    out.result = OutboxResult::limit_invalid;
    return out;
  }
  uint64_t before = std::numeric_limits<uint64_t>::max();
  if (!starting_after.empty()) {
    const auto it = by_id_.find(starting_after);
    if (it == by_id_.end()) {
      out.result = OutboxResult::cursor_not_found;
      return out;
    }
    before = it->second;
  }
  walk(filter, before, [&](uint64_t, const StoredEvent& s) {
    if (out.data.size() == limit) {
      out.has_more = true;
      return false;
    }
    out.data.push_back(s);
    return true;
  });
  return out;
}

EventPageInMemory Outbox::list_in_memory(size_t limit, std::string_view starting_after,
                                         const EventFilter& filter,
                                         std::optional<EventList>* done) const {
  done->reset();
  EventPageInMemory page;
  page.limit = limit;
  page.filter = filter;
  page.first_seq = first_seq();
  page.next_seq = next_seq_;
  page.before = next_seq_;
  if (limit == 0 || limit > kEventListLimitMax) {
    done->emplace().result = OutboxResult::limit_invalid;
    return page;
  }
  if (!starting_after.empty()) {
    if (const auto it = by_id_.find(starting_after); it != by_id_.end()) {
      page.before = it->second;
    } else {
      // In the store, or unknown (finish_list tells). Ids grow with seqs (the core numbers
      // them), so the events in memory older than the cursor are those with smaller ids.
      page.cursor = starting_after;
      const auto above = by_id_.upper_bound(starting_after);
      if (above != by_id_.end()) page.before = above->second;
    }
  }
  walk(filter, page.before, [&](uint64_t seq, const StoredEvent& s) {
    page.hot.emplace_back(seq, s);
    return page.hot.size() <= limit;
  });
  return page;
}

Status Outbox::finish_list(const EventPageInMemory& page, const KvReader& history, EventList* out) {
  *out = {};
  uint64_t before = page.before;
  if (!page.cursor.empty()) {
    std::optional<std::string> v;
    if (Status s = history.get(event_id_key(page.cursor), &v); !s.is_ok()) return s;
    const uint64_t seq = v && v->size() == 8 ? read_be64_suffix(*v) : 0;
    if (!v || seq < page.first_seq || seq >= page.next_seq) {
      out->result = OutboxResult::cursor_not_found;
      return Status::ok();
    }
    before = std::min(before, seq);
  }
  // The newest limit + 1 matches of each tier hold the newest limit + 1 of both.
  std::vector<std::pair<uint64_t, StoredEvent>> cold;
  const std::string prefix = index_prefix(page.filter);
  const bool by_index = prefix != kEventRecordPrefix;
  std::string begin = prefix;
  std::string end = prefix;
  append_be64(&begin, page.first_seq);
  append_be64(&end, before);
  Status failed;
  Status scanned =
      history.scan_range(begin, end, true, [&](std::string_view key, std::string_view value) {
        const uint64_t seq = read_be64_suffix(key);
        std::optional<std::string> record;
        if (by_index) {
          if (failed = history.get(event_key(seq), &record); !failed.is_ok()) return false;
          if (!record) {
            failed = Status::error("the history store lacks event record " + std::to_string(seq));
            return false;
          }
          value = *record;
        }
        uint64_t stored_seq = 0;
        StoredEvent s;
        if (!decode_event_record(value, &stored_seq, &s) || stored_seq != seq) {
          failed = Status::error("the history store holds a malformed event record " +
                                 std::to_string(seq));
          return false;
        }
        if (matches(page.filter, s.event)) cold.emplace_back(seq, std::move(s));
        return cold.size() <= page.limit;
      });
  if (!scanned.is_ok()) return scanned;
  if (!failed.is_ok()) return failed;
  // Merge, newest first; an event in both (it left memory meanwhile) counts once.
  auto h = page.hot.begin();
  auto c = cold.begin();
  const auto skip_newer = [&] {
    while (h != page.hot.end() && h->first >= before) ++h;
  };
  skip_newer();
  while (h != page.hot.end() || c != cold.end()) {
    const bool take_hot = c == cold.end() || (h != page.hot.end() && h->first >= c->first);
    const uint64_t seq = take_hot ? h->first : c->first;
    if (out->data.size() == page.limit) {
      out->has_more = true;
      break;
    }
    out->data.push_back(take_hot ? h->second : c->second);
    if (take_hot) ++h;
    if (c != cold.end() && c->first == seq) ++c;
  }
  return Status::ok();
}

const StoredEvent* Outbox::find(std::string_view event_id) const {
  const auto it = by_id_.find(event_id);
  return it == by_id_.end() ? nullptr : &events_.find(it->second)->second.stored;
}

void Outbox::take_final(std::vector<std::pair<std::string, std::string>>* puts,
                        std::vector<uint64_t>* seqs) {
  for (const uint64_t seq : final_) {
    const auto it = events_.find(seq);
    if (it == events_.end()) continue;  // expired meanwhile
    Entry& e = it->second;
    e.noted = false;
    if (!is_final(e.stored.delivery.state)) continue;  // taken back from a backlog meanwhile
    ++e.takes;
    e.changed = false;
    const StoredEvent& s = e.stored;
    std::string record;
    ByteWriter w(&record);
    append_event(w, seq, s);
    puts->emplace_back(event_key(seq), std::move(record));
    for (std::string& key : event_index_keys(seq, s.event)) {
      std::string value;
      if (key.starts_with("ei")) append_be64(&value, seq);
      puts->emplace_back(std::move(key), std::move(value));
    }
    seqs->push_back(seq);
  }
  final_.clear();
}

void Outbox::make_cold(const std::vector<uint64_t>& seqs) {
  for (const uint64_t seq : seqs) {
    const auto it = events_.find(seq);
    if (it == events_.end()) continue;
    Entry& e = it->second;
    if (e.takes > 0) --e.takes;
    // Still in memory as handed out, and no later hand-out on its way (the store may not
    // have the newest yet).
    if (e.takes == 0 && !e.changed && is_final(e.stored.delivery.state)) drop(seq);
  }
}

size_t Outbox::expire(Timestamp now) {
  const int64_t retention_ns = options_.retention_s * kNanosPerSecond;
  size_t n = 0;
  while (!created_.empty() && add_saturated(created_.front(), retention_ns) <= now) {
    const uint64_t seq = first_seq();
    if (events_.contains(seq)) drop(seq);
    created_.pop_front();
    ++n;
  }
  stats_.events_expired += n;
  if (n > 0) {
    std::erase_if(backlogs_, [&](const auto& b) { return b.second.newest < first_seq(); });
  }
  return n;
}

void Outbox::encode_header(std::string* out, uint32_t version) const {
  ByteWriter w(out);
  w.u32(version);
  w.i64(options_.delivery_window_s);
  w.i64(options_.retention_s);
  w.i64(options_.backoff_first_ms);
  w.i64(options_.backoff_max_ms);
  w.u64(options_.events_max);
  w.u64(options_.event_data_bytes_max);
  w.u64(options_.endpoints_max);
  w.u64(next_seq_);
  for (uint64_t c : {stats_.events_added, stats_.events_expired, stats_.deliveries_scheduled,
                     stats_.deliveries_delivered, stats_.deliveries_gave_up,
                     stats_.deliveries_canceled, stats_.attempts_failed}) {
    w.u64(c);
  }
  w.u64(endpoints_.size());
  for (const auto& [merchant, ep] : endpoints_) {
    w.str16(merchant);
    w.str16(ep.url);
    w.str16(ep.secret);
  }
}

bool Outbox::rotating() const {
  return std::any_of(endpoints_.begin(), endpoints_.end(),
                     [](const auto& e) { return e.second.previous_until != 0; });
}

void Outbox::encode_rotations(std::string* out) const {
  ByteWriter w(out);
  uint64_t n = 0;
  for (const auto& [merchant, ep] : endpoints_) n += ep.previous_until != 0;
  w.u64(n);
  for (const auto& [merchant, ep] : endpoints_) {
    if (ep.previous_until == 0) continue;
    w.str16(merchant);
    w.str16(ep.previous_secret);
    w.i64(ep.previous_until);
  }
}

Status Outbox::decode_rotations(ByteReader& r, Outbox* s) {
  uint64_t n = 0;
  if (!r.u64(&n) || n == 0 || n > s->endpoints_.size()) {
    return Status::error("outbox: bad rotation count");
  }
  std::string last;
  for (uint64_t i = 0; i < n; ++i) {
    std::string merchant, previous;
    Timestamp until = 0;
    if (!r.str16(&merchant) || !r.str16(&previous) || !r.i64(&until) || until <= 0 ||
        (i > 0 && merchant <= last) || !is_valid_endpoint_secret(previous)) {
      return Status::error("outbox: rotation " + std::to_string(i) + " malformed");
    }
    const auto it = s->endpoints_.find(merchant);
    if (it == s->endpoints_.end() || it->second.secret == previous) {
      return Status::error("outbox: rotation " + std::to_string(i) + " inconsistent");
    }
    it->second.previous_secret = std::move(previous);
    it->second.previous_until = until;
    last = std::move(merchant);
  }
  return Status::ok();
}

void Outbox::encode(std::string* out) const {
  const uint32_t base = !backlogs_.empty()  ? kEncodingVersionWithBacklogs
                        : in_history() == 0 ? kEncodingVersion
                                            : kEncodingVersionWithHistory;
  const bool rotations = rotating();
  encode_header(out, base + (rotations ? kEncodingRotationsOffset : 0));
  const uint32_t version = base;
  ByteWriter w(out);
  if (version != kEncodingVersion) {
    w.u64(created_.size());
    for (const Timestamp t : created_) w.i64(t);
  }
  w.u64(events_.size());
  for (const auto& [seq, e] : events_) append_event(w, seq, e.stored);
  if (version == kEncodingVersionWithBacklogs) {
    w.u64(backlogs_.size());
    for (const auto& [merchant, b] : backlogs_) {
      w.str16(merchant);
      w.u64(b.taken);
      w.u64(b.newest);
    }
  }
  if (rotations) encode_rotations(out);
}

Status Outbox::encode_full(std::string* out, const KvReader* history) const {
  if (in_history() == 0 && backlogs_.empty()) {
    encode(out);  // version 1
    return Status::ok();
  }
  if (in_history() > 0 && history == nullptr) {
    return Status::error("outbox: events are in a history store");
  }
  const bool rotations = rotating();
  encode_header(out, kEncodingVersion + (rotations ? kEncodingRotationsOffset : 0));
  ByteWriter w(out);
  w.u64(created_.size());
  // Every seq from first_seq() on, from memory (which wins) or else from the store.
  uint64_t expect = first_seq();
  const auto from_memory_until = [&](uint64_t stop) {
    for (; expect < stop; ++expect) {
      const auto it = events_.find(expect);
      if (it == events_.end()) return false;
      append_event(w, expect, it->second.stored);
    }
    return true;
  };
  bool malformed = false;
  const Status scanned =
      in_history() == 0 ? Status::ok()
                        : history->scan_range(event_key(first_seq()), event_key(next_seq_), false,
                                              [&](std::string_view key, std::string_view value) {
                                                const uint64_t seq = read_be64_suffix(key);
                                                if (!from_memory_until(seq)) return false;
                                                if (events_.contains(seq)) {
                                                  from_memory_until(seq + 1);
                                                  return true;
                                                }
                                                uint64_t stored_seq = 0;
                                                ByteReader r(value);
                                                if (!r.u64(&stored_seq) || stored_seq != seq) {
                                                  malformed = true;
                                                  return false;
                                                }
                                                w.raw(value.data(), value.size());
                                                ++expect;
                                                return true;
                                              });
  if (!scanned.is_ok()) return scanned;
  if (malformed) {
    return Status::error("outbox: the history store holds a malformed event " +
                         std::to_string(expect));
  }
  if (!from_memory_until(next_seq_)) {
    return Status::error("outbox: the history store lacks event " + std::to_string(expect));
  }
  if (rotations) encode_rotations(out);
  return Status::ok();
}

namespace {

bool decode_options(ByteReader& r, OutboxOptions* o) {
  uint64_t events_max = 0;
  uint64_t endpoints_max = 0;
  if (!r.i64(&o->delivery_window_s) || !r.i64(&o->retention_s) || !r.i64(&o->backoff_first_ms) ||
      !r.i64(&o->backoff_max_ms) || !r.u64(&events_max) || !r.u64(&o->event_data_bytes_max) ||
      !r.u64(&endpoints_max)) {
    return false;
  }
  o->events_max = events_max;
  o->endpoints_max = endpoints_max;
  return o->valid();
}

// A delivery status that add() and record_attempt() can produce.
bool consistent(const DeliveryStatus& d, bool has_endpoint) {
  switch (d.state) {
    case DeliveryState::no_endpoint:
      return d.attempts == 0 && d.next_attempt_at == 0 && d.last_attempt_at == 0;
    case DeliveryState::pending:
      return has_endpoint && d.next_attempt_at > 0;
    case DeliveryState::delivered:
    case DeliveryState::gave_up:
      return d.attempts > 0 && d.next_attempt_at == 0;
    case DeliveryState::canceled:
      return d.next_attempt_at == 0;
    case DeliveryState::deferred:
      return d.attempts == 0 && d.next_attempt_at == 0 && d.last_attempt_at == 0;
  }
  return false;
}

}  // namespace

Status Outbox::decode_backlogs(ByteReader& r, bool encoded, Outbox* s) {
  // Every deferred event in memory, by merchant: the oldest and the newest.
  std::map<std::string, Backlog, std::less<>> seen;
  for (const auto& [seq, e] : s->events_) {
    if (e.stored.delivery.state != DeliveryState::deferred) continue;
    const auto [it, first] = seen.try_emplace(e.stored.event.merchant_id, Backlog{seq - 1, seq});
    it->second.newest = seq;
  }
  if (!encoded) {  // versions 1 and 2: deferred events are all in memory
    s->backlogs_ = std::move(seen);
    return Status::ok();
  }
  uint64_t n = 0;
  if (!r.u64(&n) || n == 0 || n > r.remaining() / 18) {
    return Status::error("outbox: bad backlog count");
  }
  for (uint64_t i = 0; i < n; ++i) {
    std::string merchant;
    Backlog b;
    const bool ok = r.str16(&merchant) && r.u64(&b.taken) && r.u64(&b.newest) &&
                    is_valid_id(merchant) && b.taken < b.newest && b.newest < s->next_seq_ &&
                    b.newest >= s->first_seq() &&
                    (s->backlogs_.empty() || s->backlogs_.rbegin()->first < merchant);
    if (!ok) return Status::error("outbox: backlog " + std::to_string(i) + " malformed");
    s->backlogs_.emplace(std::move(merchant), b);
  }
  for (const auto& [merchant, b] : seen) {
    const auto it = s->backlogs_.find(merchant);
    if (it == s->backlogs_.end() || b.taken < it->second.taken || b.newest > it->second.newest) {
      return Status::error("outbox: deferred events of " + merchant + " outside its backlog");
    }
  }
  return Status::ok();
}

Status Outbox::decode(std::string_view bytes, Outbox* out) {
  ByteReader r(bytes);
  uint32_t version = 0;
  OutboxOptions options;
  if (!r.u32(&version) || version < kEncodingVersion ||
      version > kEncodingVersionWithBacklogs + kEncodingRotationsOffset ||
      !decode_options(r, &options)) {
    return Status::error("outbox: bad header");
  }
  const bool with_rotations = version > kEncodingVersionWithBacklogs;
  if (with_rotations) version -= kEncodingRotationsOffset;
  Outbox s(options);
  OutboxStats& st = s.stats_;
  uint64_t n = 0;
  if (!r.u64(&s.next_seq_) || !r.u64(&st.events_added) || !r.u64(&st.events_expired) ||
      !r.u64(&st.deliveries_scheduled) || !r.u64(&st.deliveries_delivered) ||
      !r.u64(&st.deliveries_gave_up) || !r.u64(&st.deliveries_canceled) ||
      !r.u64(&st.attempts_failed) || s.next_seq_ == 0 || !r.u64(&n) || n > options.endpoints_max) {
    return Status::error("outbox: bad counters or endpoint count");
  }
  for (uint64_t i = 0; i < n; ++i) {
    std::string merchant;
    WebhookEndpoint ep;
    const bool ok = r.str16(&merchant) && r.str16(&ep.url) && r.str16(&ep.secret) &&
                    is_valid_id(merchant) && is_valid_endpoint_url(ep.url) &&
                    is_valid_endpoint_secret(ep.secret) &&
                    (s.endpoints_.empty() || s.endpoints_.rbegin()->first < merchant);
    if (!ok) return Status::error("outbox: endpoint " + std::to_string(i) + " malformed");
    s.endpoints_.emplace(std::move(merchant), std::move(ep));
  }
  // Versions 2 and 3: the creation time of every stored event (the store holds those not
  // below).
  const bool with_history = version != kEncodingVersion;
  uint64_t total = 0;
  if (with_history) {
    if (!r.u64(&total) || total == 0 || total >= s.next_seq_ || total > r.remaining() / 8) {
      return Status::error("outbox: bad stored event count");
    }
    for (uint64_t i = 0; i < total; ++i) {
      Timestamp t = 0;
      if (!r.i64(&t) || t <= 0 || (!s.created_.empty() && t < s.created_.back())) {
        return Status::error("outbox: creation time " + std::to_string(i) + " malformed");
      }
      s.created_.push_back(t);
    }
  }
  const bool with_backlogs = version == kEncodingVersionWithBacklogs;
  if (!r.u64(&n) || n > options.events_max || (with_history && n > total) ||
      (version == kEncodingVersionWithHistory && n == total) ||
      (!with_history && n >= s.next_seq_)) {
    return Status::error("outbox: bad event count");
  }
  const uint64_t first = s.next_seq_ - (with_history ? total : n);
  for (uint64_t i = 0; i < n; ++i) {
    Entry e;
    if (!read_event(r, &e.seq, &e.stored)) {
      return Status::error("outbox: event " + std::to_string(i) + " truncated");
    }
    const Event& ev = e.stored.event;
    // Version 1 holds every stored event (consecutive seqs up to the last added); version 2
    // those in memory, each at its creation time.
    const bool in_place =
        with_history
            ? e.seq >= first && e.seq < s.next_seq_ &&
                  (s.events_.empty() || s.events_.rbegin()->first < e.seq) &&
                  s.created_[e.seq - first] == ev.created_at
            : e.seq == first + i && (s.created_.empty() || s.created_.back() <= ev.created_at);
    if (!in_place || check_event(ev) != OutboxResult::ok ||
        !consistent(e.stored.delivery, s.endpoints_.contains(ev.merchant_id)) ||
        s.by_id_.contains(ev.id) || s.check_capacity(ev.data.size()) != OutboxResult::ok) {
      return Status::error("outbox: event " + std::to_string(i) + " malformed or inconsistent");
    }
    if (!with_history) s.created_.push_back(ev.created_at);
    s.insert(std::move(e));
  }
  if (Status b = decode_backlogs(r, with_backlogs, &s); !b.is_ok()) return b;
  if (with_rotations) {
    if (Status rot = decode_rotations(r, &s); !rot.is_ok()) return rot;
  }
  if (!r.at_end()) return Status::error("outbox: trailing bytes");
  *out = std::move(s);
  return Status::ok();
}

}  // namespace keel::payments
