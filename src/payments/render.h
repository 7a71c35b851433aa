#pragma once

#include <string>
#include <string_view>

#include "core/json_writer.h"
#include "core/time.h"
#include "payments/payment.h"
#include "payments/wallet_flows.h"

namespace keel::payments {

// The JSON of payments, refunds and wallet flows as the API shows them (docs/payments.md). Pure
// and deterministic: the same object renders to the same bytes in every build, because these
// bodies are stored for idempotency keys and in merchant events (so a replay of the journal
// rebuilds them byte for byte). Keep old renderings stable: a field added for a new state shows
// only in that state (like `review_reason`), so objects of older data render as they did.
// Thread: any (no state).
[[nodiscard]] std::string render_payment(const Payment& p);
[[nodiscard]] std::string render_refund(const Refund& r);
[[nodiscard]] std::string render_wallet_flow(const WalletFlow& f);

// `"key": "RFC 3339"`, or `"key": null` when `t` is 0.
void write_time_or_null(JsonWriter& w, std::string_view key, Timestamp t);

}  // namespace keel::payments
