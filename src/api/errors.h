#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "payments/reply.h"

namespace keel::api {

// Every error the HTTP API can answer with. Each code has exactly one HTTP status and one error
// type, kept in the table in errors.cc (the only place that maps codes to statuses).
enum class ErrorCode : uint8_t {
  // 400: the request itself is malformed.
  json_invalid,       // not JSON, or a JSON object with a duplicate key
  body_invalid,       // JSON of the wrong shape (not an object, `data` not an array, ...)
  parameter_unknown,  // a field or query parameter the route does not know (typos)
  parameter_missing,  // a required field is absent or null
  parameter_invalid,  // a field or query parameter with a wrong type or value, no finer code
  id_invalid,         // not 1-64 bytes of [A-Za-z0-9_-.:] (core/ids.h)
  debit_account_id_invalid,
  credit_account_id_invalid,
  pending_id_invalid,
  amount_invalid,    // not a JSON integer in [1, 2^63-1] where an amount is required
  currency_invalid,  // not an ISO 4217 code (core/currency.h)
  flags_invalid,     // not an array of known, distinct flag names
  timeout_invalid,   // timeout_seconds not an integer in [0, 2^32-1]
  metadata_invalid,  // not a flat string map within core/metadata.h bounds
  data_empty,        // {"data": []}
  too_many_events,   // more than ledger::kEventsPerRequestMax events
  limit_invalid,     // ?limit= not an integer in [1, ledger::kPageLimitMax]
  starting_after_invalid,
  http_invalid,              // the HTTP message itself could not be parsed
  idempotency_key_missing,   // a money-moving POST without an Idempotency-Key header
  idempotency_key_invalid,   // not 1-255 printable ASCII characters
  merchant_not_found,        // a payment's merchant does not exist
  customer_not_found,        // a payment's or a flow's customer does not exist
  payment_not_found,         // a refund's payment does not exist
  amount_too_large,          // a capture above the authorization, refunds above the capture
  payment_method_not_found,  // a payment's pm_ is not the merchant's or the customer's
  card_number_invalid,       // not 12-19 digits, a wrong check digit, a length its scheme lacks
  card_brand_unsupported,    // a number of no scheme keel knows
  card_expiry_invalid,       // exp_month outside 1-12 or exp_year outside 2000-2099
  card_expired,
  card_cvc_invalid,  // not 3 digits (4 for American Express)
  // 401.
  signature_invalid,        // a PSP webhook's PSP-Signature or a request's Keel-Signature: no match
  authentication_required,  // no API key sent (Authorization: Bearer KEY, or Basic KEY:)
  api_key_invalid,          // malformed, unknown or revoked: one code, so a guess learns nothing
  timestamp_out_of_range,   // a Keel-Signature whose t is more than 300 s from keeld's clock
  nonce_reused,             // a signed write whose nonce this key used before
  // 403.
  permission_denied,          // the key's role may not call this route (or do this to the object)
  ledger_namespace_reserved,  // a ledger account or transfer id the payments core owns
  // 404, 405, 413, 431.
  resource_missing,  // no account / transfer with that id
  route_not_found,
  method_not_allowed,  // the route exists; the Allow header lists its methods
  body_too_large,
  headers_too_large,
  // 409: the state does not allow it.
  resource_exists,
  payment_unexpected_state,
  attempt_outstanding,  // an attempt of the payment is still open at the PSP
  too_many_attempts,
  too_many_refunds,
  endpoints_full,
  idempotency_key_in_use,  // the key's first request is still being processed
  stale_result,            // a PSP result (webhook) for no open attempt: nothing changes
  stale_transition,
  stale_control,
  unchanged,
  already_revoked,           // the API key was revoked before
  too_many_keys,             // the key ring holds security::kKeysMax keys
  webhook_endpoint_missing,  // a webhook secret rotation for a merchant without an endpoint
  customer_erased,           // the customer was erased: no new personal data or cards for them
  // 422.
  idempotency_key_reused,  // the key came with another request
  psp_result_rejected,     // a PSP result keel cannot take: its object is flagged for review
  channel_ineligible,      // no channel takes this payment (currency, amount, flow)
  // 429.
  rate_limited,  // the key's request rate is above its role's limit; Retry-After says when
  // 500, 503.
  internal_error,
  snapshot_failed,
  backup_failed,
  vault_failed,          // the card vault could not add a key or open a card (its log says why)
  overloaded,            // the engine's queue is full; Retry-After: 1
  read_only,             // an operator put keel in read-only mode (docs/routing.md); Retry-After: 1
  unavailable,           // the engine is stopping or its journal failed; Retry-After: 1
  flow_disabled,         // an operator switched the flow off; Retry-After: 1
  over_capacity,         // a bound on stored state is near (the outbox); Retry-After: 1
  no_channel_available,  // every channel that could take it is paused, open or full
  vault_unavailable,     // keeld runs without a card vault
};
inline constexpr ErrorCode kErrorCodeLast = ErrorCode::vault_unavailable;

// An error answer: code, a message for humans, and the offending parameter ("data[3].amount"),
// empty when no single parameter is at fault.
struct ApiError {
  ErrorCode code = ErrorCode::internal_error;
  std::string message;
  std::string param;
};

// The value of a parse, or the first error found.
template <typename T>
struct Parsed {
  T value{};
  std::optional<ApiError> error;
  [[nodiscard]] bool ok() const { return !error.has_value(); }
};

[[nodiscard]] inline ApiError make_error(ErrorCode code, std::string message,
                                         std::string param = {}) {
  return ApiError{code, std::move(message), std::move(param)};
}

// The wire name ("amount_invalid"), HTTP status (400) and error type of a code:
// "authentication_error" (401), "permission_error" (403), "rate_limit_error" (429), "api_error"
// (5xx), "invalid_request_error" (the rest).
[[nodiscard]] std::string_view error_code_name(ErrorCode code);
[[nodiscard]] unsigned http_status(ErrorCode code);
[[nodiscard]] std::string_view error_type(ErrorCode code);
// Whether the answer asks the client to retry later (Retry-After: 1).
[[nodiscard]] bool is_retryable(ErrorCode code);

// The API's code for a reason the payments core refused a command (the core speaks no HTTP).
[[nodiscard]] ErrorCode error_code_of(payments::Error e);

}  // namespace keel::api
