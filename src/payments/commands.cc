#include "payments/commands.h"

#include "payments/idempotency.h"

#include <array>
#include <optional>
#include <utility>

#include "core/bytes.h"
#include "core/codec.h"
#include "core/enum_name.h"
#include "core/overloaded.h"
#include "payments/codec.h"

namespace keel::payments {
namespace {

// 2: fees as in payments/codec.h; 3: result latency; 4: a tail of optional parts (channels,
// breaker transition, routing decision, control, trace) after a byte saying which are present;
// 5: an envelope, then only the fields of the command's kind. Versions 3 and 4 still decode.
constexpr uint8_t kCommandVersion = 5;
constexpr uint8_t kFlatVersionFirst = 3;
constexpr uint8_t kEnvelopeRouted = 1;
constexpr uint8_t kEnvelopeTrace = 2;

void write_result(ByteWriter& w, const AttemptResult& r) {
  w.u8(static_cast<uint8_t>(r.status));
  write_bool(w, r.captured);
  w.str16(r.psp_reference);
  w.str16(r.error_code);
  w.i64(r.fee);
  w.i64(r.latency_ms);
}

bool read_result(ByteReader& r, AttemptResult* out) {
  return read_enum(r, AttemptStatus::unknown, &out->status) && read_bool(r, &out->captured) &&
         r.str16(&out->psp_reference) && r.str16(&out->error_code) && r.i64(&out->fee) &&
         r.i64(&out->latency_ms);
}

void write_flow(ByteWriter& w, const cmd::CreateFlow& f) {
  w.str16(f.id);
  w.str16(f.customer_id);
  w.i64(f.amount);
  write_currency(w, f.currency);
  w.str16(f.channel);
  w.u8(static_cast<uint8_t>(f.instrument_kind));
  w.str16(f.instrument);
}

bool read_flow(ByteReader& r, cmd::CreateFlow* f) {
  return r.str16(&f->id) && r.str16(&f->customer_id) && r.i64(&f->amount) &&
         read_currency_or_none(r, &f->currency) && r.str16(&f->channel) &&
         read_enum(r, InstrumentKind::account, &f->instrument_kind) && r.str16(&f->instrument);
}

void write_control(ByteWriter& w, const RuntimeControl& k) {
  w.u8(static_cast<uint8_t>(k.kind));
  w.str16(k.target);
  w.str16(k.canary);
  w.u32(k.share_pct);
  w.str16(k.reason);
}

bool read_control(ByteReader& r, RuntimeControl* k) {
  return read_enum(r, kControlKindLast, &k->kind) && r.str16(&k->target) && r.str16(&k->canary) &&
         r.u32(&k->share_pct) && r.str16(&k->reason);
}

void write_transition(ByteWriter& w, const routing::BreakerTransition& t) {
  w.str16(t.channel);
  w.u8(static_cast<uint8_t>(t.from));
  w.u8(static_cast<uint8_t>(t.to));
  w.str16(t.reason);
  w.i64(t.at);
}

bool read_transition(ByteReader& r, routing::BreakerTransition* t) {
  return r.str16(&t->channel) && read_enum(r, routing::kBreakerStateLast, &t->from) &&
         read_enum(r, routing::kBreakerStateLast, &t->to) && r.str16(&t->reason) && r.i64(&t->at);
}

// Each kind's fields, in their wire order.
void write_body(ByteWriter& w, const CommandBody& body) {
  std::visit(
      Overloaded{
          [&](const cmd::CreateCustomer& b) {
            w.str16(b.id);
            w.str16(b.name);
          },
          [&](const cmd::CreateMerchant& b) {
            for (const std::string* s : {&b.id, &b.name, &b.url, &b.secret}) w.str16(*s);
          },
          [&](const cmd::CreatePayment& b) {
            w.str16(b.id);
            w.i64(b.amount);
            write_currency(w, b.currency);
            for (const std::string* s : {&b.merchant_id, &b.customer_id, &b.instrument}) {
              w.str16(*s);
            }
            write_bool(w, b.capture_manual);
            write_bool(w, b.source_wallet);
          },
          [&](const cmd::ConfirmPayment& b) {
            w.str16(b.id);
            w.str16(b.channel);
          },
          [&](const cmd::CapturePayment& b) {
            w.str16(b.id);
            w.i64(b.amount);
          },
          [&](const cmd::CancelPayment& b) { w.str16(b.id); },
          [&](const cmd::CreateRefund& b) {
            w.str16(b.id);
            w.str16(b.payment_id);
            w.i64(b.amount);
          },
          [&](const cmd::CreateTopup& b) { write_flow(w, b); },
          [&](const cmd::CreatePayout& b) { write_flow(w, b); },
          [&](const cmd::CreateWalletTransfer& b) {
            for (const std::string* s : {&b.id, &b.customer_id, &b.to_customer_id}) w.str16(*s);
            w.i64(b.amount);
            write_currency(w, b.currency);
          },
          [&](const cmd::AttemptResult& b) {
            w.str16(b.attempt_id);
            write_result(w, b.result);
          },
          [&](const cmd::MarkPendingUnknown&) {},
          [&](const cmd::OutboxAttempt& b) {
            w.str16(b.event_id);
            write_bool(w, b.delivered);
          },
          [&](const cmd::OperationStatus& b) {
            w.str16(b.channel);
            w.str16(b.reference);
            w.u8(static_cast<uint8_t>(b.state));
            write_result(w, b.result);
            w.u8(static_cast<uint8_t>(b.source));
            w.str16(b.webhook_event);
          },
          [&](const cmd::SetFees& b) { encode_fees(w, b.fees); },
          [&](const cmd::SetChannels& b) { routing::encode_channels(w, b.channels); },
          [&](const cmd::ChannelEvent& b) { write_transition(w, b.transition); },
          [&](const cmd::Control& b) { write_control(w, b.control); },
          [&](const cmd::RotateWebhookSecret& b) {
            w.str16(b.merchant_id);
            w.str16(b.secret);
            w.i64(b.overlap_s);
          },
          [&](const cmd::StorePaymentMethod& b) { vault::encode_payment_method(w, b.method); },
          [&](const cmd::RewrapPaymentMethods& b) {
            w.u16(static_cast<uint16_t>(b.rewraps.size()));
            for (const vault::Rewrap& r : b.rewraps) vault::encode_rewrap(w, r);
          },
          [&](const cmd::DetachPaymentMethod& b) {
            w.str16(b.id);
            w.u8(static_cast<uint8_t>(b.owner_kind));
            w.str16(b.owner_id);
          },
          [&](const cmd::EraseCustomer& b) { w.str16(b.customer_id); },
          [&](const cmd::ResealWebhookSecrets& b) {
            w.u16(static_cast<uint16_t>(b.reseals.size()));
            for (const cmd::SecretReseal& r : b.reseals) {
              w.str16(r.merchant_id);
              w.str16(r.from);
              w.str16(r.to);
            }
          },
      },
      body);
}

bool read_fields(ByteReader& r, cmd::CreateCustomer* b) {
  return r.str16(&b->id) && r.str16(&b->name);
}
bool read_fields(ByteReader& r, cmd::CreateMerchant* b) {
  return r.str16(&b->id) && r.str16(&b->name) && r.str16(&b->url) && r.str16(&b->secret);
}
bool read_fields(ByteReader& r, cmd::CreatePayment* b) {
  return r.str16(&b->id) && r.i64(&b->amount) && read_currency_or_none(r, &b->currency) &&
         r.str16(&b->merchant_id) && r.str16(&b->customer_id) && r.str16(&b->instrument) &&
         read_bool(r, &b->capture_manual) && read_bool(r, &b->source_wallet);
}
bool read_fields(ByteReader& r, cmd::ConfirmPayment* b) {
  return r.str16(&b->id) && r.str16(&b->channel);
}
bool read_fields(ByteReader& r, cmd::CapturePayment* b) {
  return r.str16(&b->id) && r.i64(&b->amount);
}
bool read_fields(ByteReader& r, cmd::CancelPayment* b) { return r.str16(&b->id); }
bool read_fields(ByteReader& r, cmd::CreateRefund* b) {
  return r.str16(&b->id) && r.str16(&b->payment_id) && r.i64(&b->amount);
}
bool read_fields(ByteReader& r, cmd::CreateTopup* b) { return read_flow(r, b); }
bool read_fields(ByteReader& r, cmd::CreatePayout* b) { return read_flow(r, b); }
bool read_fields(ByteReader& r, cmd::CreateWalletTransfer* b) {
  return r.str16(&b->id) && r.str16(&b->customer_id) && r.str16(&b->to_customer_id) &&
         r.i64(&b->amount) && read_currency_or_none(r, &b->currency);
}
bool read_fields(ByteReader& r, cmd::AttemptResult* b) {
  return r.str16(&b->attempt_id) && read_result(r, &b->result);
}
bool read_fields(ByteReader&, cmd::MarkPendingUnknown*) { return true; }
bool read_fields(ByteReader& r, cmd::OutboxAttempt* b) {
  return r.str16(&b->event_id) && read_bool(r, &b->delivered);
}
bool read_fields(ByteReader& r, cmd::OperationStatus* b) {
  return r.str16(&b->channel) && r.str16(&b->reference) &&
         read_enum(r, OperationState::failed, &b->state) && read_result(r, &b->result) &&
         read_enum(r, kResultSourceLast, &b->source) && r.str16(&b->webhook_event) &&
         (b->source == ResultSource::webhook) == !b->webhook_event.empty() &&
         b->webhook_event.size() <= kWebhookEventLengthMax;
}
bool read_fields(ByteReader& r, cmd::SetFees* b) { return decode_fees(r, &b->fees); }
// An empty list is a command too: keeld journals it when routing is turned off.
bool read_fields(ByteReader& r, cmd::SetChannels* b) {
  return routing::decode_channels(r, &b->channels);
}
bool read_fields(ByteReader& r, cmd::ChannelEvent* b) { return read_transition(r, &b->transition); }
bool read_fields(ByteReader& r, cmd::Control* b) { return read_control(r, &b->control); }
bool read_fields(ByteReader& r, cmd::RotateWebhookSecret* b) {
  return r.str16(&b->merchant_id) && r.str16(&b->secret) && r.i64(&b->overlap_s);
}
bool read_fields(ByteReader& r, cmd::StorePaymentMethod* b) {
  return vault::decode_payment_method(r, &b->method);
}
bool read_fields(ByteReader& r, cmd::RewrapPaymentMethods* b) {
  uint16_t n = 0;
  if (!r.u16(&n) || n == 0 || n > cmd::kRewrapsPerCommandMax) return false;
  b->rewraps.resize(n);
  for (vault::Rewrap& rewrap : b->rewraps) {
    if (!vault::decode_rewrap(r, &rewrap)) return false;
  }
  return true;
}

bool read_fields(ByteReader& r, cmd::ResealWebhookSecrets* b) {
  uint16_t n = 0;
  if (!r.u16(&n) || n == 0 || n > cmd::kRewrapsPerCommandMax) return false;
  b->reseals.resize(n);
  for (cmd::SecretReseal& s : b->reseals) {
    if (!r.str16(&s.merchant_id) || !r.str16(&s.from) || !r.str16(&s.to)) return false;
  }
  return true;
}

bool read_fields(ByteReader& r, cmd::DetachPaymentMethod* b) {
  uint8_t kind = 0;
  if (!r.str16(&b->id) || !r.u8(&kind) || !r.str16(&b->owner_id)) return false;
  if (kind > static_cast<uint8_t>(vault::OwnerKind::customer)) return false;
  b->owner_kind = static_cast<vault::OwnerKind>(kind);
  return true;
}

bool read_fields(ByteReader& r, cmd::EraseCustomer* b) { return r.str16(&b->customer_id); }

template <size_t I>
bool read_alternative(ByteReader& r, CommandBody* body) {
  std::variant_alternative_t<I, CommandBody> b;
  if (!read_fields(r, &b)) return false;
  body->emplace<I>(std::move(b));
  return true;
}

template <size_t... I>
bool read_body(size_t index, ByteReader& r, CommandBody* body, std::index_sequence<I...>) {
  bool ok = false;
  (void)((index == I && (ok = read_alternative<I>(r, body), true)) || ...);
  return ok;
}

// Versions 3 and 4: every kind wrote every field of one flat record.
struct FlatRecord {
  IdempotencyScope idempotency;
  std::string id, name, url, secret, merchant_id, customer_id, to_customer_id, payment_id, channel,
      instrument, cause, event_id;
  int64_t amount = 0;
  Currency currency;
  InstrumentKind instrument_kind = InstrumentKind::none;
  bool capture_manual = false;
  bool source_wallet = false;
  AttemptResult result;
  bool delivered = false;
  OperationState op_state = OperationState::not_found;
  FeeSchedule fees;
  std::vector<routing::ChannelDef> channels;
  routing::BreakerTransition transition;
  bool routed = false;
  routing::Decision route;
  RuntimeControl control;
  std::string traceparent;
};

constexpr uint8_t kTailChannels = 1;
constexpr uint8_t kTailTransition = 2;
constexpr uint8_t kTailRoute = 4;
constexpr uint8_t kTailControl = 8;
constexpr uint8_t kTailTrace = 16;

bool read_flat_tail(ByteReader& r, FlatRecord* c) {
  uint8_t tail = 0;
  if (!r.u8(&tail) ||
      (tail & ~(kTailChannels | kTailTransition | kTailRoute | kTailControl | kTailTrace)) != 0) {
    return false;
  }
  if ((tail & kTailChannels) != 0 &&
      (!routing::decode_channels(r, &c->channels) || c->channels.empty())) {
    return false;
  }
  if ((tail & kTailTransition) != 0 && !read_transition(r, &c->transition)) return false;
  c->routed = (tail & kTailRoute) != 0;
  if (c->routed && !routing::decode_decision(r, &c->route)) return false;
  if ((tail & kTailControl) != 0 && !read_control(r, &c->control)) return false;
  return (tail & kTailTrace) == 0 || r.str16(&c->traceparent);
}

bool read_flat(ByteReader& r, uint8_t version, FlatRecord* c) {
  for (std::string* s : {&c->idempotency.client, &c->idempotency.key, &c->idempotency.fingerprint,
                         &c->id, &c->name, &c->url, &c->secret, &c->merchant_id, &c->customer_id,
                         &c->to_customer_id, &c->payment_id, &c->channel, &c->instrument, &c->cause,
                         &c->event_id, &c->result.psp_reference, &c->result.error_code}) {
    if (!r.str16(s)) return false;
  }
  return r.i64(&c->amount) && read_currency_or_none(r, &c->currency) &&
         read_enum(r, InstrumentKind::account, &c->instrument_kind) &&
         read_bool(r, &c->capture_manual) && read_bool(r, &c->source_wallet) &&
         read_enum(r, AttemptStatus::unknown, &c->result.status) &&
         read_bool(r, &c->result.captured) && r.i64(&c->result.fee) &&
         r.i64(&c->result.latency_ms) && read_bool(r, &c->delivered) &&
         read_enum(r, OperationState::failed, &c->op_state) && decode_fees(r, &c->fees) &&
         (version < 4 || read_flat_tail(r, c));
}

// The cause strings versions 3 and 4 carried, as a source; nullopt for any other.
std::optional<std::pair<ResultSource, std::string>> source_of(std::string_view cause) {
  if (cause == "psp_response") return std::pair{ResultSource::psp_response, std::string()};
  if (cause == "status_query") return std::pair{ResultSource::status_query, std::string()};
  constexpr std::string_view kWebhook = "webhook:";
  if (cause.starts_with(kWebhook) && cause.size() > kWebhook.size() &&
      cause.size() - kWebhook.size() <= kWebhookEventLengthMax) {
    return std::pair{ResultSource::webhook, std::string(cause.substr(kWebhook.size()))};
  }
  return std::nullopt;
}

// The body a flat record of `kind` meant; nullopt when its cause is not one keel wrote.
std::optional<CommandBody> body_of(CommandKind kind, FlatRecord& c) {
  using K = CommandKind;
  const auto flow = [&c] {
    return cmd::CreateFlow{c.id,      c.customer_id,     c.amount,    c.currency,
                           c.channel, c.instrument_kind, c.instrument};
  };
  switch (kind) {
    case K::create_customer:
      return cmd::CreateCustomer{c.id, c.name};
    case K::create_merchant:
      return cmd::CreateMerchant{c.id, c.name, c.url, c.secret};
    case K::create_payment:
      return cmd::CreatePayment{c.id,          c.amount,     c.currency,       c.merchant_id,
                                c.customer_id, c.instrument, c.capture_manual, c.source_wallet};
    case K::confirm_payment:
      return cmd::ConfirmPayment{c.id, c.channel};
    case K::capture_payment:
      return cmd::CapturePayment{c.id, c.amount};
    case K::cancel_payment:
      return cmd::CancelPayment{c.id};
    case K::create_refund:
      return cmd::CreateRefund{c.id, c.payment_id, c.amount};
    case K::create_topup:
      return cmd::CreateTopup{flow()};
    case K::create_payout:
      return cmd::CreatePayout{flow()};
    case K::create_wallet_transfer:
      return cmd::CreateWalletTransfer{c.id, c.customer_id, c.to_customer_id, c.amount, c.currency};
    case K::attempt_result:
      if (c.cause != "psp_response") return std::nullopt;
      return cmd::AttemptResult{c.id, c.result};
    case K::mark_pending_unknown:
      return cmd::MarkPendingUnknown{};
    case K::outbox_attempt:
      return cmd::OutboxAttempt{c.id, c.delivered};
    case K::operation_status: {
      auto source = source_of(c.cause);
      if (!source) return std::nullopt;
      return cmd::OperationStatus{c.channel, c.id,          c.op_state,
                                  c.result,  source->first, source->second};
    }
    case K::set_fees:
      return cmd::SetFees{c.fees};
    case K::set_channels:
      return cmd::SetChannels{std::move(c.channels)};
    case K::channel_event:
      return cmd::ChannelEvent{c.transition};
    case K::runtime_control:
      return cmd::Control{c.control};
    case K::rotate_webhook_secret:  // these came after the flat records
    case K::store_payment_method:
    case K::rewrap_payment_methods:
    case K::reseal_webhook_secrets:
    case K::detach_payment_method:
    case K::erase_customer:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

std::string result_cause(ResultSource source, std::string_view webhook_event) {
  switch (source) {
    case ResultSource::psp_response:
      return "psp_response";
    case ResultSource::status_query:
      return "status_query";
    case ResultSource::webhook:
      return "webhook:" + std::string(webhook_event);
  }
  return "unknown";
}

void encode_command(const Command& c, std::string* out) {
  ByteWriter w(out);
  w.u8(kCommandVersion);
  w.u8(static_cast<uint8_t>(c.kind()));
  w.str16(c.idempotency.client);
  w.str16(c.idempotency.key);
  w.str16(c.idempotency.fingerprint);
  w.u8((c.routed ? kEnvelopeRouted : 0) | (c.traceparent.empty() ? 0 : kEnvelopeTrace));
  if (c.routed) routing::encode_decision(w, c.route);
  if (!c.traceparent.empty()) w.str16(c.traceparent);
  write_body(w, c.body);
}

Status decode_command(std::string_view bytes, Command* out) {
  ByteReader r(bytes);
  uint8_t version = 0;
  uint8_t kind = 0;
  if (!r.u8(&version) || version < kFlatVersionFirst || version > kCommandVersion || !r.u8(&kind) ||
      kind == 0 || kind > static_cast<uint8_t>(kCommandKindLast)) {
    return Status::error("payments command: unknown version or kind");
  }
  Command c;
  if (version < kCommandVersion) {
    FlatRecord flat;
    if (!read_flat(r, version, &flat) || !r.at_end()) {
      return Status::error("payments command: malformed fields");
    }
    std::optional<CommandBody> body = body_of(static_cast<CommandKind>(kind), flat);
    if (!body) return Status::error("payments command: a result of unknown cause");
    c.body = std::move(*body);
    c.idempotency = std::move(flat.idempotency);
    c.routed = flat.routed;
    c.route = std::move(flat.route);
    c.traceparent = std::move(flat.traceparent);
  } else {
    uint8_t envelope = 0;
    const bool ok = r.str16(&c.idempotency.client) && r.str16(&c.idempotency.key) &&
                    r.str16(&c.idempotency.fingerprint) && r.u8(&envelope) &&
                    (envelope & ~(kEnvelopeRouted | kEnvelopeTrace)) == 0 &&
                    ((envelope & kEnvelopeRouted) == 0 || routing::decode_decision(r, &c.route)) &&
                    ((envelope & kEnvelopeTrace) == 0 || r.str16(&c.traceparent)) &&
                    read_body(kind - 1U, r, &c.body,
                              std::make_index_sequence<std::variant_size_v<CommandBody>>{}) &&
                    r.at_end();
    if (!ok) return Status::error("payments command: malformed fields");
    c.routed = (envelope & kEnvelopeRouted) != 0;
  }
  if (!c.traceparent.empty() && c.traceparent.size() != kTraceparentLength) {
    return Status::error("payments command: malformed traceparent");
  }
  // A key is journaled with its request's fingerprint (a SHA-256), never another length: the
  // idempotency store relies on it (found by fuzzing the journal record decoder).
  if (!c.idempotency.key.empty() && c.idempotency.fingerprint.size() != kFingerprintBytes) {
    return Status::error("payments command: malformed idempotency fingerprint");
  }
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
    KEEL_ENUM_CASE(K, rotate_webhook_secret);
    KEEL_ENUM_CASE(K, store_payment_method);
    KEEL_ENUM_CASE(K, rewrap_payment_methods);
    KEEL_ENUM_CASE(K, reseal_webhook_secrets);
    KEEL_ENUM_CASE(K, detach_payment_method);
    KEEL_ENUM_CASE(K, erase_customer);
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
