#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api/errors.h"
#include "engine/engine.h"
#include "ledger/ledger.h"
#include "ledger/results.h"
#include "ledger/types.h"

// JSON codecs between the HTTP API's wire format and the ledger's types. No I/O, no Beast:
// everything here is a pure function, safe to call from any thread, and never throws on bad
// input (errors come back as ApiError with the offending parameter).
namespace keel::api {

// Parses `text` strictly: standard JSON only (no comments, no trailing commas), valid UTF-8,
// nesting depth <= 32, and no object with a duplicate key (a second "amount" must not silently
// win). json_invalid otherwise, with the parser's reason.
[[nodiscard]] Parsed<boost::json::value> parse_json(std::string_view text);

// The body of POST /v1/accounts or POST /v1/transfers: one event object, or {"data": [...]}
// holding 1 to ledger::kEventsPerRequestMax event objects. Checks the syntax, JSON types and
// bounds of every field and rejects unknown fields; parameters in errors are "data[3].amount"
// (or "amount" for a single object). Checks that need the ledger's state or the relation of
// fields to each other (equal accounts, a pending_id on a plain transfer, exclusive flags) are
// left to the ledger, which answers them per event.
[[nodiscard]] Parsed<std::vector<ledger::AccountEvent>> parse_account_events(std::string_view body);
[[nodiscard]] Parsed<std::vector<ledger::TransferEvent>> parse_transfer_events(
    std::string_view body);

// One event object; `param_prefix` ("data[3].") is put before field names in errors.
// Accounts: {"id", "currency", "flags"?, "metadata"?}.
// Transfers: {"id", "debit_account_id", "credit_account_id", "amount", "currency", "flags"?,
// "pending_id"?, "timeout_seconds"?, "metadata"?}; with post_pending or void_pending the
// accounts, amount and currency may be omitted (amount omitted: 0, the whole pending amount)
// and pending_id is required. A present amount is always a JSON integer in [1, 2^63-1].
// A null value counts as absent.
[[nodiscard]] Parsed<ledger::AccountEvent> account_event_from_json(const boost::json::value& v,
                                                                   std::string_view param_prefix);
[[nodiscard]] Parsed<ledger::TransferEvent> transfer_event_from_json(const boost::json::value& v,
                                                                     std::string_view param_prefix);

// Request bodies for clients (CLI, benchmark, tests): the inverse of *_from_json for valid
// events. Empty and zero optional fields are left out.
[[nodiscard]] boost::json::object account_event_to_json(const ledger::AccountEvent& e);
[[nodiscard]] boost::json::object transfer_event_to_json(const ledger::TransferEvent& e);

// Response bodies. Amounts and balances are integers (minor units), times RFC 3339 UTC.
[[nodiscard]] boost::json::object account_to_json(const ledger::Account& a);
[[nodiscard]] boost::json::object transfer_to_json(const ledger::Transfer& t);
[[nodiscard]] boost::json::object account_transfers_page_to_json(
    const ledger::AccountTransfersPage& page);
// {"data": [{"index": i, "id": ids[i], "result": "ok"}, ...]}. REQUIRES: equal sizes.
[[nodiscard]] boost::json::object create_results_to_json(
    std::span<const std::string> ids, std::span<const ledger::CreateAccountResult> results);
[[nodiscard]] boost::json::object create_results_to_json(
    std::span<const std::string> ids, std::span<const ledger::CreateTransferResult> results);
// {"id": id, "result": "ok" | "account_not_found" | ...}
[[nodiscard]] boost::json::object set_account_closed_result_to_json(
    std::string_view id, ledger::SetAccountClosedResult result);
// EngineStatus; state_hash (16 hex digits), invariants_ok and invariant_problem only if `full`.
// GET /v1/admin/audit/head: {"object":"audit_head","seq","head","last_seq"}; seq and head are
// null before the first chain record.
[[nodiscard]] boost::json::object audit_head_to_json(const engine::EngineStatus& s);
// The first 48 bits of a chain head as an integer (exact in a Prometheus float sample).
[[nodiscard]] uint64_t audit_head_prefix(const journal::ChainDigest& head);
[[nodiscard]] boost::json::object status_to_json(const engine::EngineStatus& s, bool full,
                                                 bool healthy);
// {"error": {"type", "code", "message", "param" (null when empty), "request_id"}}
[[nodiscard]] boost::json::object error_to_json(const ApiError& e, std::string_view request_id);

// 16 lower-case hex digits.
[[nodiscard]] std::string hash_to_hex(uint64_t hash);

}  // namespace keel::api
