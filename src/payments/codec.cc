#include "payments/codec.h"

#include <utility>

#include "core/codec.h"

namespace keel::payments {
namespace {

void encode_rate(ByteWriter& w, const FeeRate& r) {
  w.i64(r.basis_points);
  w.i64(r.fixed_minor);
}

bool decode_rate(ByteReader& r, FeeRate* out) {
  return r.i64(&out->basis_points) && r.i64(&out->fixed_minor);
}

}  // namespace

void encode_fees(ByteWriter& w, const FeeSchedule& fees) {
  encode_rate(w, fees.default_rate);
  w.u32(static_cast<uint32_t>(fees.channels.size()));
  for (const auto& [channel, rate] : fees.channels) {
    w.str16(channel);
    encode_rate(w, rate);
  }
}

bool decode_fees(ByteReader& r, FeeSchedule* out) {
  uint32_t n = 0;
  if (!decode_rate(r, &out->default_rate) || !r.u32(&n) || n > kFeeChannelsMax) return false;
  for (uint32_t i = 0; i < n; ++i) {
    std::string channel;
    FeeRate rate;
    if (!r.str16(&channel) || !decode_rate(r, &rate)) return false;
    if (!out->channels.emplace(std::move(channel), rate).second) return false;
  }
  return is_valid(*out);
}

void encode_attempt(ByteWriter& w, const Attempt& a) {
  w.str16(a.id);
  w.u8(static_cast<uint8_t>(a.kind));
  w.str16(a.channel);
  w.u8(static_cast<uint8_t>(a.status));
  w.i64(a.amount);
  w.i64(a.fee);
  w.i64(a.latency_ms);
  w.str16(a.psp_reference);
  w.str16(a.error_code);
  w.i64(a.created_at);
  w.i64(a.updated_at);
}

bool decode_attempt(ByteReader& r, Attempt* out) {
  return r.str16(&out->id) && read_enum(r, AttemptKind::topup, &out->kind) &&
         r.str16(&out->channel) && read_enum(r, AttemptStatus::unknown, &out->status) &&
         r.i64(&out->amount) && r.i64(&out->fee) && r.i64(&out->latency_ms) &&
         r.str16(&out->psp_reference) && r.str16(&out->error_code) && r.i64(&out->created_at) &&
         r.i64(&out->updated_at);
}

}  // namespace keel::payments
