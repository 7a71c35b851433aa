#include "payments/commands.h"

#include <array>

#include "core/bytes.h"
#include "core/codec.h"
#include "core/enum_name.h"
#include "payments/codec.h"

namespace keel::payments {
namespace {

// 2: fees as in payments/codec.h; 3: result latency; 4: a tail of optional parts (channels,
// breaker transition, routing decision) after a byte saying which are present. Version 3
// records still decode (with no tail).
constexpr uint8_t kCommandVersion = 4;
constexpr uint8_t kLastKind = static_cast<uint8_t>(CommandKind::runtime_control);
constexpr uint8_t kTailChannels = 1;
constexpr uint8_t kTailTransition = 2;
constexpr uint8_t kTailRoute = 4;
constexpr uint8_t kTailControl = 8;
constexpr uint8_t kTailTrace = 16;

// The command's strings in their wire order; C is Command or const Command.
template <typename C>
auto string_fields(C& c) {
  return std::to_array({&c.idempotency.client, &c.idempotency.key, &c.idempotency.fingerprint,
                        &c.id, &c.name, &c.url, &c.secret, &c.merchant_id, &c.customer_id,
                        &c.to_customer_id, &c.payment_id, &c.channel, &c.instrument, &c.cause,
                        &c.event_id, &c.result.psp_reference, &c.result.error_code});
}

}  // namespace

void encode_command(const Command& c, std::string* out) {
  ByteWriter w(out);
  w.u8(kCommandVersion);
  w.u8(static_cast<uint8_t>(c.kind));
  for (const std::string* s : string_fields(c)) w.str16(*s);
  w.i64(c.amount);
  write_currency(w, c.currency);
  w.u8(static_cast<uint8_t>(c.instrument_kind));
  write_bool(w, c.capture_manual);
  write_bool(w, c.source_wallet);
  w.u8(static_cast<uint8_t>(c.result.status));
  write_bool(w, c.result.captured);
  w.i64(c.result.fee);
  w.i64(c.result.latency_ms);
  write_bool(w, c.delivered);
  w.u8(static_cast<uint8_t>(c.op_state));
  encode_fees(w, c.fees);
  const bool transition = c.kind == CommandKind::channel_event;
  const bool control = c.kind == CommandKind::runtime_control;
  const uint8_t tail = (c.channels.empty() ? 0 : kTailChannels) |
                       (transition ? kTailTransition : 0) | (c.routed ? kTailRoute : 0) |
                       (control ? kTailControl : 0) | (c.traceparent.empty() ? 0 : kTailTrace);
  w.u8(tail);
  if ((tail & kTailChannels) != 0) routing::encode_channels(w, c.channels);
  if ((tail & kTailTransition) != 0) {
    w.str16(c.transition.channel);
    w.u8(static_cast<uint8_t>(c.transition.from));
    w.u8(static_cast<uint8_t>(c.transition.to));
    w.str16(c.transition.reason);
    w.i64(c.transition.at);
  }
  if ((tail & kTailRoute) != 0) routing::encode_decision(w, c.route);
  if ((tail & kTailControl) != 0) {
    w.u8(static_cast<uint8_t>(c.control.kind));
    w.str16(c.control.target);
    w.str16(c.control.canary);
    w.u32(c.control.share_pct);
    w.str16(c.control.reason);
  }
  if ((tail & kTailTrace) != 0) w.str16(c.traceparent);
}

namespace {

bool decode_tail(ByteReader& r, Command* c) {
  uint8_t tail = 0;
  if (!r.u8(&tail) ||
      (tail & ~(kTailChannels | kTailTransition | kTailRoute | kTailControl | kTailTrace)) != 0) {
    return false;
  }
  if ((tail & kTailChannels) != 0 &&
      (!routing::decode_channels(r, &c->channels) || c->channels.empty())) {
    return false;
  }
  if ((tail & kTailTransition) != 0) {
    routing::BreakerTransition& t = c->transition;
    if (!r.str16(&t.channel) || !read_enum(r, routing::kBreakerStateLast, &t.from) ||
        !read_enum(r, routing::kBreakerStateLast, &t.to) || !r.str16(&t.reason) || !r.i64(&t.at)) {
      return false;
    }
  }
  c->routed = (tail & kTailRoute) != 0;
  if (c->routed && !routing::decode_decision(r, &c->route)) return false;
  if ((tail & kTailControl) != 0) {
    RuntimeControl& k = c->control;
    if (!read_enum(r, kControlKindLast, &k.kind) || !r.str16(&k.target) || !r.str16(&k.canary) ||
        !r.u32(&k.share_pct) || !r.str16(&k.reason)) {
      return false;
    }
  }
  if ((tail & kTailTrace) != 0 &&
      (!r.str16(&c->traceparent) || c->traceparent.size() != kTraceparentLength)) {
    return false;
  }
  return true;
}

}  // namespace

Status decode_command(std::string_view bytes, Command* out) {
  ByteReader r(bytes);
  Command c;
  uint8_t version = 0;
  uint8_t kind = 0;
  if (!r.u8(&version) || version < 3 || version > kCommandVersion || !r.u8(&kind) || kind == 0 ||
      kind > kLastKind) {
    return Status::error("payments command: unknown version or kind");
  }
  c.kind = static_cast<CommandKind>(kind);
  for (std::string* s : string_fields(c)) {
    if (!r.str16(s)) return Status::error("payments command: malformed string");
  }
  const bool ok = r.i64(&c.amount) && read_currency_or_none(r, &c.currency) &&
                  read_enum(r, InstrumentKind::account, &c.instrument_kind) &&
                  read_bool(r, &c.capture_manual) && read_bool(r, &c.source_wallet) &&
                  read_enum(r, AttemptStatus::unknown, &c.result.status) &&
                  read_bool(r, &c.result.captured) && r.i64(&c.result.fee) &&
                  r.i64(&c.result.latency_ms) && read_bool(r, &c.delivered) &&
                  read_enum(r, OperationState::failed, &c.op_state) && decode_fees(r, &c.fees) &&
                  (version < 4 || decode_tail(r, &c)) && r.at_end();
  if (!ok) return Status::error("payments command: malformed fields");
  *out = std::move(c);
  return Status::ok();
}

std::string_view command_kind_name(CommandKind k) {
  using K = CommandKind;
  switch (k) {
    KEEL_ENUM_CASE(K, create_customer);
    KEEL_ENUM_CASE(K, create_merchant);
    KEEL_ENUM_CASE(K, create_payment);
    KEEL_ENUM_CASE(K, confirm_payment);
    KEEL_ENUM_CASE(K, capture_payment);
    KEEL_ENUM_CASE(K, cancel_payment);
    KEEL_ENUM_CASE(K, create_refund);
    KEEL_ENUM_CASE(K, create_topup);
    KEEL_ENUM_CASE(K, create_payout);
    KEEL_ENUM_CASE(K, create_wallet_transfer);
    KEEL_ENUM_CASE(K, attempt_result);
    KEEL_ENUM_CASE(K, mark_pending_unknown);
    KEEL_ENUM_CASE(K, outbox_attempt);
    KEEL_ENUM_CASE(K, operation_status);
    KEEL_ENUM_CASE(K, set_fees);
    KEEL_ENUM_CASE(K, set_channels);
    KEEL_ENUM_CASE(K, channel_event);
    KEEL_ENUM_CASE(K, runtime_control);
  }
  return "unknown";
}

std::string_view control_kind_name(ControlKind k) {
  using K = ControlKind;
  switch (k) {
    KEEL_ENUM_CASE(K, channel_pause);
    KEEL_ENUM_CASE(K, channel_resume);
    KEEL_ENUM_CASE(K, channel_drain);
    KEEL_ENUM_CASE(K, channel_canary);
    KEEL_ENUM_CASE(K, canary_rollback);
    KEEL_ENUM_CASE(K, read_only_on);
    KEEL_ENUM_CASE(K, read_only_off);
    KEEL_ENUM_CASE(K, flow_disable);
    KEEL_ENUM_CASE(K, flow_enable);
  }
  return "unknown";
}

std::string_view flow_switch_name(FlowSwitch f) {
  using F = FlowSwitch;
  switch (f) {
    KEEL_ENUM_CASE(F, card_payments);
    KEEL_ENUM_CASE(F, wallet_payments);
    KEEL_ENUM_CASE(F, topups);
    KEEL_ENUM_CASE(F, payouts);
    KEEL_ENUM_CASE(F, refunds);
    KEEL_ENUM_CASE(F, wallet_transfers);
  }
  return "unknown";
}

std::optional<FlowSwitch> flow_switch_from_name(std::string_view name) {
  for (uint8_t i = 0; i <= static_cast<uint8_t>(kFlowSwitchLast); ++i) {
    const auto f = static_cast<FlowSwitch>(i);
    if (flow_switch_name(f) == name) return f;
  }
  return std::nullopt;
}

std::string_view operation_state_name(OperationState s) {
  using O = OperationState;
  switch (s) {
    KEEL_ENUM_CASE(O, not_found);
    KEEL_ENUM_CASE(O, pending);
    KEEL_ENUM_CASE(O, authorized);
    KEEL_ENUM_CASE(O, captured);
    KEEL_ENUM_CASE(O, voided);
    KEEL_ENUM_CASE(O, declined_hard);
    KEEL_ENUM_CASE(O, declined_soft);
    KEEL_ENUM_CASE(O, refunded);
    KEEL_ENUM_CASE(O, paid);
    KEEL_ENUM_CASE(O, failed);
  }
  return "unknown";
}

}  // namespace keel::payments
