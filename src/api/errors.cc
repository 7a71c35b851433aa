#include "api/errors.h"

#include <array>
#include <utility>

#include "core/assert.h"

namespace keel::api {
namespace {

struct ErrorInfo {
  ErrorCode code;
  std::string_view name;
  unsigned status;
};

// The one table from error codes to HTTP statuses, in enum order.
constexpr std::array kErrors = {
    ErrorInfo{ErrorCode::json_invalid, "json_invalid", 400},
    ErrorInfo{ErrorCode::body_invalid, "body_invalid", 400},
    ErrorInfo{ErrorCode::parameter_unknown, "parameter_unknown", 400},
    ErrorInfo{ErrorCode::parameter_missing, "parameter_missing", 400},
    ErrorInfo{ErrorCode::parameter_invalid, "parameter_invalid", 400},
    ErrorInfo{ErrorCode::id_invalid, "id_invalid", 400},
    ErrorInfo{ErrorCode::debit_account_id_invalid, "debit_account_id_invalid", 400},
    ErrorInfo{ErrorCode::credit_account_id_invalid, "credit_account_id_invalid", 400},
    ErrorInfo{ErrorCode::pending_id_invalid, "pending_id_invalid", 400},
    ErrorInfo{ErrorCode::amount_invalid, "amount_invalid", 400},
    ErrorInfo{ErrorCode::currency_invalid, "currency_invalid", 400},
    ErrorInfo{ErrorCode::flags_invalid, "flags_invalid", 400},
    ErrorInfo{ErrorCode::timeout_invalid, "timeout_invalid", 400},
    ErrorInfo{ErrorCode::metadata_invalid, "metadata_invalid", 400},
    ErrorInfo{ErrorCode::data_empty, "data_empty", 400},
    ErrorInfo{ErrorCode::too_many_events, "too_many_events", 400},
    ErrorInfo{ErrorCode::limit_invalid, "limit_invalid", 400},
    ErrorInfo{ErrorCode::starting_after_invalid, "starting_after_invalid", 400},
    ErrorInfo{ErrorCode::http_invalid, "http_invalid", 400},
    ErrorInfo{ErrorCode::idempotency_key_missing, "idempotency_key_missing", 400},
    ErrorInfo{ErrorCode::idempotency_key_invalid, "idempotency_key_invalid", 400},
    ErrorInfo{ErrorCode::merchant_not_found, "merchant_not_found", 400},
    ErrorInfo{ErrorCode::customer_not_found, "customer_not_found", 400},
    ErrorInfo{ErrorCode::payment_not_found, "payment_not_found", 400},
    ErrorInfo{ErrorCode::amount_too_large, "amount_too_large", 400},
    ErrorInfo{ErrorCode::payment_method_not_found, "payment_method_not_found", 400},
    ErrorInfo{ErrorCode::card_number_invalid, "card_number_invalid", 400},
    ErrorInfo{ErrorCode::card_brand_unsupported, "card_brand_unsupported", 400},
    ErrorInfo{ErrorCode::card_expiry_invalid, "card_expiry_invalid", 400},
    ErrorInfo{ErrorCode::card_expired, "card_expired", 400},
    ErrorInfo{ErrorCode::card_cvc_invalid, "card_cvc_invalid", 400},
    ErrorInfo{ErrorCode::signature_invalid, "signature_invalid", 401},
    ErrorInfo{ErrorCode::authentication_required, "authentication_required", 401},
    ErrorInfo{ErrorCode::api_key_invalid, "api_key_invalid", 401},
    ErrorInfo{ErrorCode::timestamp_out_of_range, "timestamp_out_of_range", 401},
    ErrorInfo{ErrorCode::nonce_reused, "nonce_reused", 401},
    ErrorInfo{ErrorCode::permission_denied, "permission_denied", 403},
    ErrorInfo{ErrorCode::ledger_namespace_reserved, "ledger_namespace_reserved", 403},
    ErrorInfo{ErrorCode::resource_missing, "resource_missing", 404},
    ErrorInfo{ErrorCode::route_not_found, "route_not_found", 404},
    ErrorInfo{ErrorCode::method_not_allowed, "method_not_allowed", 405},
    ErrorInfo{ErrorCode::body_too_large, "body_too_large", 413},
    ErrorInfo{ErrorCode::headers_too_large, "headers_too_large", 431},
    ErrorInfo{ErrorCode::resource_exists, "resource_exists", 409},
    ErrorInfo{ErrorCode::payment_unexpected_state, "payment_unexpected_state", 409},
    ErrorInfo{ErrorCode::attempt_outstanding, "attempt_outstanding", 409},
    ErrorInfo{ErrorCode::too_many_attempts, "too_many_attempts", 409},
    ErrorInfo{ErrorCode::too_many_refunds, "too_many_refunds", 409},
    ErrorInfo{ErrorCode::endpoints_full, "endpoints_full", 409},
    ErrorInfo{ErrorCode::idempotency_key_in_use, "idempotency_key_in_use", 409},
    ErrorInfo{ErrorCode::stale_result, "stale_result", 409},
    ErrorInfo{ErrorCode::stale_transition, "stale_transition", 409},
    ErrorInfo{ErrorCode::stale_control, "stale_control", 409},
    ErrorInfo{ErrorCode::unchanged, "unchanged", 409},
    ErrorInfo{ErrorCode::already_revoked, "already_revoked", 409},
    ErrorInfo{ErrorCode::too_many_keys, "too_many_keys", 409},
    ErrorInfo{ErrorCode::webhook_endpoint_missing, "webhook_endpoint_missing", 409},
    ErrorInfo{ErrorCode::customer_erased, "customer_erased", 409},
    ErrorInfo{ErrorCode::idempotency_key_reused, "idempotency_key_reused", 422},
    ErrorInfo{ErrorCode::psp_result_rejected, "psp_result_rejected", 422},
    ErrorInfo{ErrorCode::channel_ineligible, "channel_ineligible", 422},
    ErrorInfo{ErrorCode::rate_limited, "rate_limited", 429},
    ErrorInfo{ErrorCode::internal_error, "internal_error", 500},
    ErrorInfo{ErrorCode::snapshot_failed, "snapshot_failed", 500},
    ErrorInfo{ErrorCode::backup_failed, "backup_failed", 500},
    ErrorInfo{ErrorCode::vault_failed, "vault_failed", 500},
    ErrorInfo{ErrorCode::overloaded, "overloaded", 503},
    ErrorInfo{ErrorCode::read_only, "read_only", 503},
    ErrorInfo{ErrorCode::unavailable, "unavailable", 503},
    ErrorInfo{ErrorCode::flow_disabled, "flow_disabled", 503},
    ErrorInfo{ErrorCode::over_capacity, "over_capacity", 503},
    ErrorInfo{ErrorCode::no_channel_available, "no_channel_available", 503},
    ErrorInfo{ErrorCode::vault_unavailable, "vault_unavailable", 503},
};

constexpr bool table_in_enum_order() {
  for (size_t i = 0; i < kErrors.size(); ++i) {
    if (static_cast<size_t>(kErrors[i].code) != i) return false;
  }
  return kErrors.back().code == kErrorCodeLast;
}
static_assert(table_in_enum_order(), "kErrors must list every ErrorCode in enum order");

// The payments core's reasons, in payments::Error order, and the API's code for each.
constexpr std::array kPaymentErrors = {
    std::pair{payments::Error::id_invalid, ErrorCode::id_invalid},
    std::pair{payments::Error::parameter_invalid, ErrorCode::parameter_invalid},
    std::pair{payments::Error::amount_invalid, ErrorCode::amount_invalid},
    std::pair{payments::Error::currency_invalid, ErrorCode::currency_invalid},
    std::pair{payments::Error::amount_too_large, ErrorCode::amount_too_large},
    std::pair{payments::Error::idempotency_key_invalid, ErrorCode::idempotency_key_invalid},
    std::pair{payments::Error::merchant_not_found, ErrorCode::merchant_not_found},
    std::pair{payments::Error::customer_not_found, ErrorCode::customer_not_found},
    std::pair{payments::Error::payment_not_found, ErrorCode::payment_not_found},
    std::pair{payments::Error::resource_missing, ErrorCode::resource_missing},
    std::pair{payments::Error::resource_exists, ErrorCode::resource_exists},
    std::pair{payments::Error::payment_unexpected_state, ErrorCode::payment_unexpected_state},
    std::pair{payments::Error::attempt_outstanding, ErrorCode::attempt_outstanding},
    std::pair{payments::Error::too_many_attempts, ErrorCode::too_many_attempts},
    std::pair{payments::Error::too_many_refunds, ErrorCode::too_many_refunds},
    std::pair{payments::Error::endpoints_full, ErrorCode::endpoints_full},
    std::pair{payments::Error::idempotency_key_in_use, ErrorCode::idempotency_key_in_use},
    std::pair{payments::Error::idempotency_key_reused, ErrorCode::idempotency_key_reused},
    std::pair{payments::Error::stale_result, ErrorCode::stale_result},
    std::pair{payments::Error::stale_transition, ErrorCode::stale_transition},
    std::pair{payments::Error::stale_control, ErrorCode::stale_control},
    std::pair{payments::Error::unchanged, ErrorCode::unchanged},
    std::pair{payments::Error::psp_result_rejected, ErrorCode::psp_result_rejected},
    std::pair{payments::Error::channel_ineligible, ErrorCode::channel_ineligible},
    std::pair{payments::Error::over_capacity, ErrorCode::over_capacity},
    std::pair{payments::Error::read_only, ErrorCode::read_only},
    std::pair{payments::Error::flow_disabled, ErrorCode::flow_disabled},
    std::pair{payments::Error::no_channel_available, ErrorCode::no_channel_available},
    std::pair{payments::Error::internal_error, ErrorCode::internal_error},
    std::pair{payments::Error::webhook_endpoint_missing, ErrorCode::webhook_endpoint_missing},
    std::pair{payments::Error::payment_method_not_found, ErrorCode::payment_method_not_found},
    std::pair{payments::Error::customer_erased, ErrorCode::customer_erased},
};

constexpr bool payment_table_in_enum_order() {
  for (size_t i = 0; i < kPaymentErrors.size(); ++i) {
    if (static_cast<size_t>(kPaymentErrors[i].first) != i) return false;
  }
  return kPaymentErrors.back().first == payments::kErrorLast;
}
static_assert(payment_table_in_enum_order(),
              "kPaymentErrors must list every payments::Error in enum order");

const ErrorInfo& info(ErrorCode code) {
  const auto i = static_cast<size_t>(code);
  KEEL_ASSERT(i < kErrors.size());
  return kErrors[i];
}

}  // namespace

std::string_view error_code_name(ErrorCode code) { return info(code).name; }

unsigned http_status(ErrorCode code) { return info(code).status; }

std::string_view error_type(ErrorCode code) {
  switch (http_status(code)) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 429:
      return "rate_limit_error";
    default:
      return http_status(code) >= 500 ? "api_error" : "invalid_request_error";
  }
}

bool is_retryable(ErrorCode code) {
  return code == ErrorCode::overloaded || code == ErrorCode::read_only ||
         code == ErrorCode::unavailable || code == ErrorCode::flow_disabled ||
         code == ErrorCode::over_capacity || code == ErrorCode::no_channel_available;
}

ErrorCode error_code_of(payments::Error e) {
  const auto i = static_cast<size_t>(e);
  KEEL_ASSERT(i < kPaymentErrors.size());
  return kPaymentErrors[i].second;
}

}  // namespace keel::api
