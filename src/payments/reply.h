#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace keel::payments {

// Why the payments core refused a command. The core speaks no HTTP: the one table in
// api/errors.cc gives each reason its wire code and HTTP status. A refused command changed
// nothing (no state, no postings, no calls, no idempotency key taken).
enum class Error : uint8_t {
  // The request's own values.
  id_invalid,
  parameter_invalid,  // no finer reason; Reply::error_param names the field
  amount_invalid,
  currency_invalid,
  amount_too_large,  // a capture above the authorization, refunds above the capture
  idempotency_key_invalid,
  // What the request refers to.
  merchant_not_found,
  customer_not_found,
  payment_not_found,
  resource_missing,  // the object the route names (a payment, a channel)
  resource_exists,
  // The state does not allow it.
  payment_unexpected_state,
  attempt_outstanding,  // an attempt is still open at the PSP
  too_many_attempts,
  too_many_refunds,
  endpoints_full,
  idempotency_key_in_use,  // the key's first request is still being processed
  idempotency_key_reused,  // the key came with another request
  stale_result,            // a PSP result for an attempt that is not open: nothing changes
  stale_transition,        // a breaker transition that does not follow the recorded state
  stale_control,           // a canary rollback of a canary not in force
  unchanged,               // configuration equal to what is in force
  psp_result_rejected,     // a PSP result the state machines cannot take: flagged for review
  channel_ineligible,      // no channel could ever take the payment
  // Try again later.
  over_capacity,         // the merchant-event outbox is near its limit: no new payments
  read_only,             // an operator's read-only mode
  flow_disabled,         // an operator's kill switch
  no_channel_available,  // every eligible channel is paused, open, full or over budget
  // A bug: a result the core does not map.
  internal_error,
  // Appended after the groups above (values are kept stable).
  webhook_endpoint_missing,  // a webhook secret rotation for a merchant without an endpoint
  payment_method_not_found,  // a pm_ the caller (the payment's merchant or customer) lacks
  customer_erased,           // a top-up, payout or card for a customer whose data was erased
};
inline constexpr Error kErrorLast = Error::customer_erased;

[[nodiscard]] std::string_view error_name(Error e);

// The answer to an API command, as stored for an idempotency key and replayed.
struct Reply {
  std::optional<Error> error;  // nullopt: success, and `body` is the object
  std::string body;            // the object as JSON (success only)
  std::string error_message;   // on error: for humans
  std::string error_param;     // on error: the parameter at fault, if one is
  bool replayed = false;       // answered from an idempotency key's stored response
  bool settled = true;  // false: the outcome waits on a PSP; `body` is the object as it stands

  [[nodiscard]] bool ok() const { return !error.has_value(); }
  [[nodiscard]] static Reply success(std::string body) {
    Reply r;
    r.body = std::move(body);
    return r;
  }
};

[[nodiscard]] Reply error_reply(Error error, std::string message, std::string param = {});

}  // namespace keel::payments
