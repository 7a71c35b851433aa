#include "payments/outbox.h"

#include <algorithm>
#include <limits>

#include "core/assert.h"
#include "core/bytes.h"
#include "core/codec.h"
#include "core/enum_name.h"
#include "core/hash.h"
#include "core/ids.h"

namespace keel::payments {
namespace {

constexpr uint32_t kEncodingVersion = 1;
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

}  // namespace

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
  if (secret.empty() || secret.size() > kEndpointSecretLengthMax) return false;
  return std::all_of(secret.begin(), secret.end(), [](char c) { return c >= 0x21 && c <= 0x7E; });
}

std::optional<EndpointUrl> parse_endpoint_url(std::string_view url) {
  if (url.size() > kEndpointUrlLengthMax) return std::nullopt;
  return parse_http_url_with_target(url);
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

Outbox::Outbox(OutboxOptions options) : options_(options) { KEEL_ASSERT(options_.valid()); }

OutboxResult Outbox::set_endpoint(std::string_view merchant_id, std::string_view url,
                                  std::string_view secret) {
  if (!is_valid_id(merchant_id)) return OutboxResult::merchant_id_invalid;
  if (!is_valid_endpoint_url(url)) return OutboxResult::url_invalid;
  if (!is_valid_endpoint_secret(secret)) return OutboxResult::secret_invalid;
  const auto it = endpoints_.find(merchant_id);
  if (it != endpoints_.end()) {
    it->second = {std::string(url), std::string(secret)};
    return OutboxResult::ok;
  }
  if (endpoints_.size() >= options_.endpoints_max) return OutboxResult::endpoints_full;
  endpoints_.emplace(std::string(merchant_id),
                     WebhookEndpoint{std::string(url), std::string(secret)});
  return OutboxResult::ok;
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
  expire(event.created_at);
  if (by_id_.contains(event.id)) return OutboxResult::event_exists;
  if (const OutboxResult r = check_capacity(event.data.size()); r != OutboxResult::ok) return r;
  Entry e;
  e.seq = next_seq_++;
  e.stored.event = std::move(event);
  if (endpoints_.contains(e.stored.event.merchant_id)) {
    e.stored.delivery.state = DeliveryState::pending;
    e.stored.delivery.next_attempt_at = e.stored.event.created_at;
    ++stats_.deliveries_scheduled;
  }
  ++stats_.events_added;
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
  expiry_.emplace(ev.created_at, seq);
  const Timestamp next = entry.stored.delivery.next_attempt_at;
  const bool pending = entry.stored.delivery.state == DeliveryState::pending;
  const bool inserted = events_.emplace(seq, std::move(entry)).second;
  KEEL_ASSERT(inserted);
  if (pending) schedule_.emplace(next, seq);
}

void Outbox::erase(uint64_t seq) {
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
  expiry_.erase({ev.created_at, seq});
  events_.erase(it);
}

void Outbox::unschedule(const Entry& e) {
  if (e.stored.delivery.state != DeliveryState::pending) return;
  const size_t erased = schedule_.erase({e.stored.delivery.next_attempt_at, e.seq});
  KEEL_ASSERT(erased == 1);
}

void Outbox::schedule(Entry& e, Timestamp at) {
  KEEL_ASSERT(e.stored.delivery.state == DeliveryState::pending);
  e.stored.delivery.next_attempt_at = at;
  const bool inserted = schedule_.emplace(at, e.seq).second;
  KEEL_ASSERT(inserted);
}

Delivery Outbox::make_delivery(const Entry& e) const {
  const Event& ev = e.stored.event;
  const auto endpoint = endpoints_.find(ev.merchant_id);
  KEEL_ASSERT(endpoint != endpoints_.end());  // removing an endpoint cancels its deliveries
  Delivery d;
  d.event_id = ev.id;
  d.merchant_id = ev.merchant_id;
  d.url = endpoint->second.url;
  d.secret = endpoint->second.secret;
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
    out.push_back(make_delivery(e));
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
    return AttemptRecordResult::delivered;
  }
  ++stats_.attempts_failed;
  const Timestamp window_end =
      add_saturated(e.stored.event.created_at, options_.delivery_window_s * kNanosPerSecond);
  if (now >= window_end) {
    d.state = DeliveryState::gave_up;
    ++stats_.deliveries_gave_up;
    return AttemptRecordResult::gave_up;
  }
  const int64_t delay_ns = retry_delay_ns(options_, e.stored.event.id, d.attempts);
  schedule(e, std::min(add_saturated(now, delay_ns), window_end));
  return AttemptRecordResult::retry_scheduled;
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
  const auto visit = [&](uint64_t seq) {
    const StoredEvent& s = events_.find(seq)->second.stored;
    if ((!filter.type.empty() && s.event.type != filter.type) ||
        (!filter.merchant_id.empty() && s.event.merchant_id != filter.merchant_id) ||
        (!filter.object_id.empty() && s.event.object_id != filter.object_id)) {
      return true;
    }
    if (out.data.size() == limit) {
      out.has_more = true;
      return false;
    }
    out.data.push_back(s);
    return true;
  };
  // The most selective index the filter allows.
  if (!filter.object_id.empty()) {
    walk_back(by_object_, filter.object_id, before, visit);
  } else if (!filter.merchant_id.empty()) {
    walk_back(by_merchant_, filter.merchant_id, before, visit);
  } else if (!filter.type.empty()) {
    walk_back(by_type_, filter.type, before, visit);
  } else {
    for (auto it = events_.lower_bound(before); it != events_.begin();) {
      --it;
      if (!visit(it->first)) break;
    }
  }
  return out;
}

const StoredEvent* Outbox::find(std::string_view event_id) const {
  const auto it = by_id_.find(event_id);
  return it == by_id_.end() ? nullptr : &events_.find(it->second)->second.stored;
}

size_t Outbox::expire(Timestamp now) {
  const int64_t retention_ns = options_.retention_s * kNanosPerSecond;
  size_t n = 0;
  while (!expiry_.empty() && add_saturated(expiry_.begin()->first, retention_ns) <= now) {
    erase(expiry_.begin()->second);
    ++n;
  }
  stats_.events_expired += n;
  return n;
}

void Outbox::encode(std::string* out) const {
  ByteWriter w(out);
  w.u32(kEncodingVersion);
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
  w.u64(events_.size());
  for (const auto& [seq, e] : events_) {
    const Event& ev = e.stored.event;
    const DeliveryStatus& d = e.stored.delivery;
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
  }
  return false;
}

}  // namespace

Status Outbox::decode(std::string_view bytes, Outbox* out) {
  ByteReader r(bytes);
  uint32_t version = 0;
  OutboxOptions options;
  if (!r.u32(&version) || version != kEncodingVersion || !decode_options(r, &options)) {
    return Status::error("outbox: bad header");
  }
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
  if (!r.u64(&n) || n > options.events_max) return Status::error("outbox: bad event count");
  for (uint64_t i = 0; i < n; ++i) {
    Entry e;
    Event& ev = e.stored.event;
    DeliveryStatus& d = e.stored.delivery;
    uint32_t data_len = 0;
    std::string_view data;
    const bool ok = r.u64(&e.seq) && r.str16(&ev.id) && r.str16(&ev.type) &&
                    r.str16(&ev.merchant_id) && r.str16(&ev.object_id) && r.i64(&ev.created_at) &&
                    r.u32(&data_len) && data_len <= kEventDataBytesMax && r.raw(&data, data_len) &&
                    read_enum(r, DeliveryState::canceled, &d.state) && r.u32(&d.attempts) &&
                    r.i64(&d.next_attempt_at) && r.i64(&d.last_attempt_at);
    if (!ok) return Status::error("outbox: event " + std::to_string(i) + " truncated");
    ev.data.assign(data);
    const bool in_order = e.seq > 0 && e.seq < s.next_seq_ &&
                          (s.events_.empty() || s.events_.rbegin()->first < e.seq);
    if (!in_order || check_event(ev) != OutboxResult::ok ||
        !consistent(d, s.endpoints_.contains(ev.merchant_id)) || s.by_id_.contains(ev.id) ||
        s.check_capacity(ev.data.size()) != OutboxResult::ok) {
      return Status::error("outbox: event " + std::to_string(i) + " malformed or inconsistent");
    }
    s.insert(std::move(e));
  }
  if (!r.at_end()) return Status::error("outbox: trailing bytes");
  *out = std::move(s);
  return Status::ok();
}

}  // namespace keel::payments
