#include "connectors/outcome.h"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "core/enum_name.h"

namespace keel::connectors {
namespace {

namespace json = boost::json;
namespace codes = error_codes;

NormalizedAnswer make(AttemptOutcome outcome, std::string_view code) {
  return NormalizedAnswer{outcome, std::string(code), std::nullopt};
}

// `error.code` of a protocol error body; empty if the body has none.
std::string error_code_of(std::string_view body) {
  json::error_code ec;
  const json::value v = json::parse(json::string_view(body.data(), body.size()), ec);
  if (ec || !v.is_object()) return {};
  const json::value* error = v.get_object().if_contains("error");
  if (error == nullptr || !error->is_object()) return {};
  const json::value* code = error->get_object().if_contains("code");
  if (code == nullptr || !code->is_string()) return {};
  return std::string(code->get_string());
}

NormalizedAnswer from_transport(TransportResult r) {
  switch (r) {
    case TransportResult::invalid_request:
      return make(AttemptOutcome::declined_hard, codes::kInvalidRequest);
    case TransportResult::not_sent:
      return make(AttemptOutcome::retryable, codes::kNotSent);
    case TransportResult::connect_refused:
      return make(AttemptOutcome::retryable, codes::kConnectRefused);
    case TransportResult::connect_timeout:
      return make(AttemptOutcome::retryable, codes::kConnectTimeout);
    case TransportResult::connect_failed:
      return make(AttemptOutcome::retryable, codes::kConnectFailed);
    case TransportResult::send_failed:
      return make(AttemptOutcome::retryable, codes::kSendFailed);
    case TransportResult::timeout_after_send:
      return make(AttemptOutcome::unknown, codes::kTimeout);
    case TransportResult::lost_after_send:
      return make(AttemptOutcome::unknown, codes::kConnectionLost);
    case TransportResult::bad_http_after_send:
    case TransportResult::response:
      break;
  }
  return make(AttemptOutcome::unknown, codes::kMalformedResponse);
}

NormalizedAnswer from_operation(std::string_view reference, std::string_view body) {
  std::optional<Operation> op = parse_operation(body);
  if (!op || op->reference != reference) {
    return make(AttemptOutcome::unknown, codes::kMalformedResponse);
  }
  NormalizedAnswer a;
  switch (op->status) {
    case OperationStatus::authorized:
    case OperationStatus::captured:
    case OperationStatus::voided:
    case OperationStatus::refunded:
    case OperationStatus::paid:
      a.outcome = AttemptOutcome::approved;
      break;
    case OperationStatus::pending:
      a.outcome = AttemptOutcome::pending;
      break;
    case OperationStatus::declined:
    case OperationStatus::failed:
      if (!op->decline_type) return make(AttemptOutcome::unknown, codes::kMalformedResponse);
      a.outcome = *op->decline_type == DeclineType::hard ? AttemptOutcome::declined_hard
                                                         : AttemptOutcome::declined_soft;
      a.error_code = op->decline_code.empty() ? std::string(codes::kDeclined) : op->decline_code;
      break;
  }
  a.op = std::move(op);
  return a;
}

NormalizedAnswer from_error_status(unsigned status, std::string_view body) {
  if (status == 503) return make(AttemptOutcome::retryable, codes::kPspUnavailable);
  if (status == 409 && error_code_of(body) == codes::kReferenceReused) {
    return make(AttemptOutcome::unknown, codes::kReferenceReused);
  }
  if (status >= 400 && status < 500)
    return make(AttemptOutcome::declined_hard, codes::kPspRejected);
  if (status >= 500 && status < 600) return make(AttemptOutcome::unknown, codes::kPspError);
  return make(AttemptOutcome::unknown, codes::kMalformedResponse);
}

}  // namespace

std::string_view attempt_outcome_name(AttemptOutcome o) {
  switch (o) {
    KEEL_ENUM_CASE(AttemptOutcome, approved);
    KEEL_ENUM_CASE(AttemptOutcome, declined_hard);
    KEEL_ENUM_CASE(AttemptOutcome, declined_soft);
    KEEL_ENUM_CASE(AttemptOutcome, retryable);
    KEEL_ENUM_CASE(AttemptOutcome, pending);
    KEEL_ENUM_CASE(AttemptOutcome, not_found);
    KEEL_ENUM_CASE(AttemptOutcome, unknown);
  }
  return "?";
}

NormalizedAnswer normalize_answer(RequestKind kind, std::string_view reference,
                                  const TransportSeen& seen) {
  const bool query = kind == RequestKind::status_query;
  if (seen.result != TransportResult::response) {
    NormalizedAnswer a = from_transport(seen.result);
    if (query) a.outcome = AttemptOutcome::unknown;
    return a;
  }
  if (seen.http_status >= 200 && seen.http_status < 300) {
    return from_operation(reference, seen.body);
  }
  if (query && seen.http_status == 404 && error_code_of(seen.body) == codes::kNotFound) {
    return make(AttemptOutcome::not_found, codes::kNotFound);
  }
  NormalizedAnswer a = from_error_status(seen.http_status, seen.body);
  if (query) a.outcome = AttemptOutcome::unknown;
  return a;
}

}  // namespace keel::connectors
