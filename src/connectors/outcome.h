#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "connectors/operation.h"

namespace keel::connectors {

// How one PSP call ended, from keel's point of view: the normalization table of
// docs/payments.md ("Attempts"). Pure: no I/O, no clock. The PspClient feeds it what the
// transport saw; tests feed it directly.

enum class AttemptOutcome : uint8_t {
  approved,       // the PSP did what was asked (authorized, captured, voided, refunded, paid)
  declined_hard,  // the PSP said no; do not retry (the payment fails)
  declined_soft,  // the PSP said no; another attempt (another channel, later) may succeed
  retryable,      // nothing happened at the PSP; a new attempt may go out
  pending,        // the PSP has the operation without a final answer (3-D Secure, slow bank):
                  // resolve by status query or webhook
  not_found,      // status query only: the PSP never received the reference
  unknown,        // it may or may not have happened: resolve before sending anything else
};
[[nodiscard]] std::string_view attempt_outcome_name(AttemptOutcome o);

// Normalized error codes (PspResult::error_code). A decline carries the PSP's decline_code
// instead (kDeclined when the PSP gave none); approved and pending carry "".
namespace error_codes {
// Nothing sent (retryable).
inline constexpr std::string_view kConnectRefused = "connect_refused";
inline constexpr std::string_view kConnectTimeout = "connect_timeout";
inline constexpr std::string_view kConnectFailed = "connect_failed";
inline constexpr std::string_view kSendFailed = "send_failed";
inline constexpr std::string_view kNotSent = "not_sent";  // queue full, timed out queued, shut down
// Never sent because keel's own request was invalid (a reference outside [A-Za-z0-9_-]{1,128}):
// declined_hard, since resending it cannot work either.
inline constexpr std::string_view kInvalidRequest = "invalid_request";
// Sent, no full answer (unknown).
inline constexpr std::string_view kTimeout = "timeout";
inline constexpr std::string_view kConnectionLost = "connection_lost";
// Answers.
inline constexpr std::string_view kPspUnavailable = "psp_unavailable";    // 503
inline constexpr std::string_view kNotFound = "not_found";                // 404, status query
inline constexpr std::string_view kReferenceReused = "reference_reused";  // 409
inline constexpr std::string_view kPspRejected = "psp_rejected";          // other 4xx
inline constexpr std::string_view kPspError = "psp_error";                // other 5xx
inline constexpr std::string_view kMalformedResponse = "malformed_response";
inline constexpr std::string_view kDeclined = "declined";
}  // namespace error_codes

// What the transport saw of one call.
enum class TransportResult : uint8_t {
  response,             // a whole HTTP response was read (status and body below)
  invalid_request,      // never sent: keel's request was invalid
  not_sent,             // never left keel: pool queue full or timed out there, client shut down
  connect_refused,      // nothing sent
  connect_timeout,      // nothing sent
  connect_failed,       // nothing sent (resolve error, unreachable, ...)
  send_failed,          // the request was not fully written (error or timeout while writing)
  timeout_after_send,   // written whole; no whole response within the timeout
  lost_after_send,      // written whole; reset or EOF before a whole response
  bad_http_after_send,  // written whole; the answer is not HTTP/1.1 we can parse
};

enum class RequestKind : uint8_t {
  operation,     // authorize, capture, void, refund, payout, topup
  status_query,  // GET operations/{reference}
};

struct TransportSeen {
  TransportResult result = TransportResult::response;
  unsigned http_status = 0;  // result == response only
  std::string_view body;     // result == response only
};

struct NormalizedAnswer {
  AttemptOutcome outcome = AttemptOutcome::unknown;
  std::string error_code;
  std::optional<Operation> op;  // set whenever a 2xx carried a valid operation
};

// The table. For an operation:
//   nothing sent (not_sent, connect_*, send_failed)          -> retryable, the transport's code
//   sent, no whole answer (timeout/lost/bad_http_after_send) -> unknown
//   2xx: authorized/captured/voided/refunded/paid -> approved; pending -> pending;
//        declined/failed -> declined_hard or declined_soft by decline_type, code = decline_code;
//        a body that is not a valid operation for `reference` (or a decline without a valid
//        decline_type) -> unknown, malformed_response
//   503 -> retryable; 409 with error.code reference_reused -> unknown, reference_reused (the
//   PSP holds another body under this reference: resolve, never resend); other 4xx ->
//   declined_hard, psp_rejected; other 5xx, 1xx, 3xx -> unknown.
// For a status query, 2xx maps as above; 404 with error.code not_found -> not_found; any other
// answer or transport failure -> unknown with the same codes (a failed query says nothing about
// the attempt, so it must never read as retryable or declined).
// `reference` is the reference the call was about; a 2xx operation naming another is malformed.
[[nodiscard]] NormalizedAnswer normalize_answer(RequestKind kind, std::string_view reference,
                                                const TransportSeen& seen);

}  // namespace keel::connectors
