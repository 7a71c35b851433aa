#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "core/json_writer.h"
#include "core/time.h"
#include "payments/payment.h"
#include "payments/wallet_flows.h"
#include "routing/decision.h"

namespace keel::payments {

// The JSON of payments, refunds and wallet flows as the API shows them (docs/payments.md). Pure
// and deterministic: the same object renders to the same bytes in every build, because these
// bodies are stored for idempotency keys and in merchant events (so a replay of the journal
// rebuilds them byte for byte). Keep old renderings stable: a field added for a new state shows
// only in that state (like `review_reason`), so objects of older data render as they did.
// Thread: any (no state).
[[nodiscard]] std::string render_payment(const Payment& p);
// A vault card as the API shows it: brand, country, last 4, expiry, fingerprint, its owner
// ("merchant" or "customer"). Never the number or anything to recover it.
// `detached_at` non-zero: the answer to its detach, which says when.
[[nodiscard]] std::string render_payment_method(const vault::PaymentMethod& m,
                                                Timestamp detached_at = 0);
// The routing decision of an attempt, if routing chose its channel.
using DecisionOf = std::function<const routing::Decision*(std::string_view attempt_id)>;
// The payment with a trailing `routing` array: one entry per authorization attempt whose channel
// routing chose (attempt, kind, channel, try, delay_ms, explored, candidates with their score
// inputs, rejected channels with why). GET /v1/payments/{id} only: stored bodies (idempotency
// keys, events) stay as render_payment() makes them.
[[nodiscard]] std::string render_payment_with_routing(const Payment& p, const DecisionOf& decision);
[[nodiscard]] std::string render_refund(const Refund& r);
[[nodiscard]] std::string render_wallet_flow(const WalletFlow& f);

// `"key": "RFC 3339"`, or `"key": null` when `t` is 0.
void write_time_or_null(JsonWriter& w, std::string_view key, Timestamp t);

}  // namespace keel::payments
