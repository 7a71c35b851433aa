#include "api/errors.h"

#include <array>

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
    ErrorInfo{ErrorCode::signature_invalid, "signature_invalid", 401},
    ErrorInfo{ErrorCode::resource_missing, "resource_missing", 404},
    ErrorInfo{ErrorCode::route_not_found, "route_not_found", 404},
    ErrorInfo{ErrorCode::method_not_allowed, "method_not_allowed", 405},
    ErrorInfo{ErrorCode::body_too_large, "body_too_large", 413},
    ErrorInfo{ErrorCode::headers_too_large, "headers_too_large", 431},
    ErrorInfo{ErrorCode::internal_error, "internal_error", 500},
    ErrorInfo{ErrorCode::snapshot_failed, "snapshot_failed", 500},
    ErrorInfo{ErrorCode::overloaded, "overloaded", 503},
    ErrorInfo{ErrorCode::read_only, "read_only", 503},
    ErrorInfo{ErrorCode::unavailable, "unavailable", 503},
};

constexpr bool table_in_enum_order() {
  for (size_t i = 0; i < kErrors.size(); ++i) {
    if (static_cast<size_t>(kErrors[i].code) != i) return false;
  }
  return kErrors.back().code == ErrorCode::unavailable;
}
static_assert(table_in_enum_order(), "kErrors must list every ErrorCode in enum order");

const ErrorInfo& info(ErrorCode code) {
  const auto i = static_cast<size_t>(code);
  KEEL_ASSERT(i < kErrors.size());
  return kErrors[i];
}

}  // namespace

std::string_view error_code_name(ErrorCode code) { return info(code).name; }

unsigned http_status(ErrorCode code) { return info(code).status; }

std::string_view error_type(ErrorCode code) {
  return http_status(code) >= 500 ? "api_error" : "invalid_request_error";
}

bool is_retryable(ErrorCode code) {
  return code == ErrorCode::overloaded || code == ErrorCode::read_only ||
         code == ErrorCode::unavailable;
}

}  // namespace keel::api
