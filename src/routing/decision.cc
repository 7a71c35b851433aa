#include "routing/decision.h"

#include <utility>

#include "core/codec.h"
#include "core/enum_name.h"

namespace keel::routing {

std::string_view rejection_name(Rejection r) {
  using R = Rejection;
  switch (r) {
    KEEL_ENUM_CASE(R, flow);
    KEEL_ENUM_CASE(R, currency);
    KEEL_ENUM_CASE(R, amount_below_min);
    KEEL_ENUM_CASE(R, amount_above_max);
    KEEL_ENUM_CASE(R, paused);
    KEEL_ENUM_CASE(R, draining);
    KEEL_ENUM_CASE(R, breaker_open);
    KEEL_ENUM_CASE(R, concurrency_full);
    KEEL_ENUM_CASE(R, retry_budget);
    KEEL_ENUM_CASE(R, already_tried);
    KEEL_ENUM_CASE(R, not_found);
    KEEL_ENUM_CASE(R, canary_only);
  }
  return "unknown";
}

bool is_transient(Rejection r) {
  switch (r) {
    case Rejection::paused:
    case Rejection::draining:
    case Rejection::breaker_open:
    case Rejection::concurrency_full:
    case Rejection::retry_budget:
      return true;
    default:
      return false;
  }
}

std::string_view decision_kind_name(DecisionKind k) {
  using K = DecisionKind;
  switch (k) {
    KEEL_ENUM_CASE(K, routed);
    KEEL_ENUM_CASE(K, pinned);
    KEEL_ENUM_CASE(K, failover);
    KEEL_ENUM_CASE(K, retry);
    KEEL_ENUM_CASE(K, none);
  }
  return "unknown";
}

void encode_decision(ByteWriter& w, const Decision& d) {
  w.u8(static_cast<uint8_t>(d.kind));
  w.str16(d.channel);
  write_bool(w, d.explored);
  write_bool(w, d.canary);
  write_bool(w, d.tries_exhausted);
  w.u32(d.try_number);
  w.i64(d.delay_ms);
  w.u16(static_cast<uint16_t>(d.candidates.size()));
  for (const Candidate& c : d.candidates) {
    w.str16(c.channel);
    w.u32(static_cast<uint32_t>(c.score_ppm));
    w.u32(c.success_ppm);
    w.u32(c.cost_ppm);
    w.u32(c.latency_p50_ms);
    w.u32(c.samples);
  }
  w.u16(static_cast<uint16_t>(d.rejected.size()));
  for (const Rejected& r : d.rejected) {
    w.str16(r.channel);
    w.u8(static_cast<uint8_t>(r.reason));
  }
}

bool decode_decision(ByteReader& r, Decision* out) {
  Decision d;
  uint16_t n = 0;
  if (!read_enum(r, kDecisionKindLast, &d.kind) || !r.str16(&d.channel) ||
      !read_bool(r, &d.explored) || !read_bool(r, &d.canary) || !read_bool(r, &d.tries_exhausted) ||
      !r.u32(&d.try_number) || !r.i64(&d.delay_ms) || d.delay_ms < 0 || !r.u16(&n) ||
      n > kDecisionChannelsMax) {
    return false;
  }
  if ((d.kind == DecisionKind::none) != d.channel.empty()) return false;
  d.candidates.resize(n);
  for (Candidate& c : d.candidates) {
    uint32_t score = 0;
    if (!r.str16(&c.channel) || !r.u32(&score) || !r.u32(&c.success_ppm) || !r.u32(&c.cost_ppm) ||
        !r.u32(&c.latency_p50_ms) || !r.u32(&c.samples)) {
      return false;
    }
    c.score_ppm = static_cast<int32_t>(score);
  }
  if (!r.u16(&n) || n > kDecisionChannelsMax) return false;
  d.rejected.resize(n);
  for (Rejected& x : d.rejected) {
    if (!r.str16(&x.channel) || !read_enum(r, kRejectionLast, &x.reason)) return false;
  }
  *out = std::move(d);
  return true;
}

}  // namespace keel::routing
