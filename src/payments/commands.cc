#include "payments/commands.h"

#include "core/bytes.h"
#include "core/enum_name.h"

namespace keel::payments {
namespace {

constexpr uint8_t kCommandVersion = 1;
constexpr uint8_t kLastKind = static_cast<uint8_t>(CommandKind::set_fees);
constexpr uint8_t kLastOperationState = static_cast<uint8_t>(OperationState::failed);
constexpr uint8_t kLastInstrumentKind = static_cast<uint8_t>(InstrumentKind::account);
constexpr uint8_t kLastAttemptStatus = static_cast<uint8_t>(AttemptStatus::unknown);

bool read_bool(ByteReader& r, bool* b) {
  uint8_t v = 0;
  if (!r.u8(&v) || v > 1) return false;
  *b = v == 1;
  return true;
}

bool read_currency(ByteReader& r, Currency* c) {
  uint16_t index = 0;
  if (!r.u16(&index)) return false;
  if (index == Currency::kNone) {
    *c = Currency();
    return true;
  }
  const auto found = Currency::from_index(index);
  if (!found) return false;
  *c = *found;
  return true;
}

bool read_fees(ByteReader& r, FeeSchedule* fees) {
  uint16_t n = 0;
  if (!r.i64(&fees->default_rate.basis_points) || !r.i64(&fees->default_rate.fixed_minor) ||
      !r.u16(&n) || n > kFeeChannelsMax) {
    return false;
  }
  for (uint16_t i = 0; i < n; ++i) {
    std::string channel;
    FeeRate rate;
    if (!r.str16(&channel) || !r.i64(&rate.basis_points) || !r.i64(&rate.fixed_minor)) {
      return false;
    }
    fees->channels.emplace(std::move(channel), rate);
  }
  return is_valid(*fees);
}

}  // namespace

void encode_command(const Command& c, std::string* out) {
  ByteWriter w(out);
  w.u8(kCommandVersion);
  w.u8(static_cast<uint8_t>(c.kind));
  for (const std::string* s :
       {&c.idempotency.client, &c.idempotency.key, &c.idempotency.fingerprint, &c.id, &c.name,
        &c.url, &c.secret, &c.merchant_id, &c.customer_id, &c.to_customer_id, &c.payment_id,
        &c.channel, &c.instrument, &c.cause, &c.event_id, &c.result.psp_reference,
        &c.result.error_code}) {
    w.str16(*s);
  }
  w.i64(c.amount);
  w.u16(c.currency.index());
  w.u8(static_cast<uint8_t>(c.instrument_kind));
  w.u8(c.capture_manual ? 1 : 0);
  w.u8(c.source_wallet ? 1 : 0);
  w.u8(static_cast<uint8_t>(c.result.status));
  w.u8(c.result.captured ? 1 : 0);
  w.i64(c.result.fee);
  w.u8(c.delivered ? 1 : 0);
  w.u8(static_cast<uint8_t>(c.op_state));
  w.i64(c.fees.default_rate.basis_points);
  w.i64(c.fees.default_rate.fixed_minor);
  w.u16(static_cast<uint16_t>(c.fees.channels.size()));
  for (const auto& [channel, rate] : c.fees.channels) {
    w.str16(channel);
    w.i64(rate.basis_points);
    w.i64(rate.fixed_minor);
  }
}

Status decode_command(std::string_view bytes, Command* out) {
  ByteReader r(bytes);
  Command c;
  uint8_t version = 0;
  uint8_t kind = 0;
  if (!r.u8(&version) || version != kCommandVersion || !r.u8(&kind) || kind == 0 ||
      kind > kLastKind) {
    return Status::error("payments command: unknown version or kind");
  }
  c.kind = static_cast<CommandKind>(kind);
  for (std::string* s :
       {&c.idempotency.client, &c.idempotency.key, &c.idempotency.fingerprint, &c.id, &c.name,
        &c.url, &c.secret, &c.merchant_id, &c.customer_id, &c.to_customer_id, &c.payment_id,
        &c.channel, &c.instrument, &c.cause, &c.event_id, &c.result.psp_reference,
        &c.result.error_code}) {
    if (!r.str16(s)) return Status::error("payments command: malformed string");
  }
  uint8_t instrument_kind = 0;
  uint8_t attempt_status = 0;
  uint8_t op_state = 0;
  const bool ok = r.i64(&c.amount) && read_currency(r, &c.currency) && r.u8(&instrument_kind) &&
                  instrument_kind <= kLastInstrumentKind && read_bool(r, &c.capture_manual) &&
                  read_bool(r, &c.source_wallet) && r.u8(&attempt_status) &&
                  attempt_status <= kLastAttemptStatus && read_bool(r, &c.result.captured) &&
                  r.i64(&c.result.fee) && read_bool(r, &c.delivered) && r.u8(&op_state) &&
                  op_state <= kLastOperationState && read_fees(r, &c.fees) && r.at_end();
  if (!ok) return Status::error("payments command: malformed fields");
  c.instrument_kind = static_cast<InstrumentKind>(instrument_kind);
  c.result.status = static_cast<AttemptStatus>(attempt_status);
  c.op_state = static_cast<OperationState>(op_state);
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
  }
  return "unknown";
}

}  // namespace keel::payments
