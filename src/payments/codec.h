#pragma once

#include "core/bytes.h"
#include "payments/payment.h"

namespace keel::payments {

// Codecs for the payments values that more than one format carries: the payment snapshot
// (payment.cc), the wallet flows snapshot (wallet_flows.cc) and the journaled command
// (commands.cc). Little-endian through core/bytes.h. The decoders never throw and return false
// on short, out-of-range or invalid input; `*out` is then unspecified and must be discarded.

// Fee schedule: i64 basis_points, i64 fixed_minor (the default rate), u32 count, then count x
// (str16 channel, i64 basis_points, i64 fixed_minor), channels in ascending order.
void encode_fees(ByteWriter& w, const FeeSchedule& fees);
// Refuses more than kFeeChannelsMax channels, a channel twice, and a schedule is_valid refuses.
// REQUIRES: `out` is a default FeeSchedule (decoded channels are added to it).
[[nodiscard]] bool decode_fees(ByteReader& r, FeeSchedule* out);

// One PSP attempt: str16 id, u8 kind, str16 channel, u8 status, i64 amount, i64 fee,
// str16 psp_reference, str16 error_code, i64 created_at, i64 updated_at.
void encode_attempt(ByteWriter& w, const Attempt& a);
// Checks the enums' ranges only; what an owner allows of an attempt is the owner's to check.
[[nodiscard]] bool decode_attempt(ByteReader& r, Attempt* out);

}  // namespace keel::payments
