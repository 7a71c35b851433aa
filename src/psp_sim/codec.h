#pragma once

#include <boost/json/object.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "psp_sim/books.h"

namespace keel::psp_sim {

// JSON of docs/psp_protocol.md: operations, webhook events, request bodies, errors.
// Pure functions; any thread.

[[nodiscard]] boost::json::object operation_to_json(const Operation& op);
// The webhook body: {"id", "type": "operation.updated", "created_at", "data": {operation}}.
[[nodiscard]] std::string event_body(const Event& e);
// {"error": {"code", "message"}}.
[[nodiscard]] std::string error_body(std::string_view code, std::string_view message);

// A reference is 1 to 128 of [A-Za-z0-9_-] (it lands in paths and CSV lines as it is).
[[nodiscard]] bool valid_reference(std::string_view s);

// Each parser returns "" and fills *out, or the message of a 400 (bad JSON, a missing or
// mistyped field, an amount outside 1..kAmountMax, an unknown currency, an invalid reference).
// Unknown fields are ignored, as real PSPs do.
[[nodiscard]] std::string parse_authorize(std::string_view body, AuthorizeRequest* out);
// Capture: an empty body or {} captures everything.
[[nodiscard]] std::string parse_capture(std::string_view body, std::optional<int64_t>* amount);
[[nodiscard]] std::string parse_refund(std::string_view body, RefundRequest* out);
[[nodiscard]] std::string parse_payout(std::string_view body, TransferRequest* out);
[[nodiscard]] std::string parse_topup(std::string_view body, TransferRequest* out);

}  // namespace keel::psp_sim
