#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"

// Human-readable tables for the `keel` CLI. Pure formatting of the server's JSON; writes to
// stdout.
namespace keel::cli {

// `keel journal verify`'s report as JSON (its -o json output, and the table's rows).
[[nodiscard]] boost::json::object verify_report_to_json(const engine::VerifyReport& r);
// `keel audit verify`'s report.
[[nodiscard]] boost::json::object audit_report_to_json(const engine::AuditReport& r);
// `keel store rebuild`'s report.
[[nodiscard]] boost::json::object rebuild_report_to_json(const engine::RebuildReport& r);

// Rows of cells, printed with columns padded to their widest cell (first row: the header).
using Table = std::vector<std::vector<std::string>>;
void print_table(const Table& rows);

// A JSON scalar as text: strings bare, null as "-", arrays joined with ",".
[[nodiscard]] std::string cell(const boost::json::value& v);
// An amount in minor units as a decimal in major units: (1250, "USD") -> "12.50".
[[nodiscard]] std::string format_amount(const boost::json::value& minor,
                                        const boost::json::value& currency);

// One object as two columns, field and value; nested objects (metadata) as "metadata.key".
void print_object(const boost::json::object& o);
// {"data":[{"index","id","result"}]} as a table.
void print_results(const boost::json::object& body);
// {"data":[transfer...],"has_more"} as a table.
void print_transfers(const boost::json::object& body);
// A payment: its fields, then its attempts and routing decisions as tables.
void print_payment(const boost::json::object& payment);
// {"data":[payment...],"has_more"} as a table.
void print_payments(const boost::json::object& body);
// {"data":[api_key...],"has_more"} as a table (never a secret: the list has none).
void print_keys(const boost::json::object& body);
// GET /v1/channels as a table of live state.
void print_channels(const boost::json::object& body);
// GET /v1/admin/controls (and every control's answer): mode, flows, channels, latest changes.
void print_controls(const boost::json::object& body);

}  // namespace keel::cli
