#include "cli/output.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <cstdio>

#include "core/currency.h"
#include "core/time.h"

namespace keel::cli {
namespace json = boost::json;

std::string hash_hex(uint64_t hash) {
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(hash));
  return out;
}

json::object rebuild_report_to_json(const engine::RebuildReport& r) {
  return json::object{{"records_replayed", r.records_replayed},
                      {"transfers_moved", r.transfers_moved},
                      {"events_moved", r.events_moved},
                      {"idempotency_keys_moved", r.keys_moved},
                      {"payments_moved", r.payments_moved},
                      {"flows_moved", r.flows_moved},
                      {"state_hash", hash_hex(r.state_hash)},
                      {"replaced_store", r.replaced_store.empty() ? json::value(nullptr)
                                                                  : json::value(r.replaced_store)}};
}

json::object audit_report_to_json(const engine::AuditReport& r) {
  const journal::ChainReport& c = r.chain;
  json::array problems;
  for (const std::string& p : c.problems) problems.emplace_back(p);
  return json::object{
      {"ok", c.ok()},
      {"records", c.records},
      {"first_seq", c.first_seq},
      {"chain_records", c.chain_records},
      {"covered_from", c.covered_from},
      {"uncovered_head", c.uncovered_head},
      {"uncovered_tail", c.uncovered_tail},
      {"head_seq", c.head ? json::value(c.head->seq) : json::value(nullptr)},
      {"head", c.head ? json::value(journal::to_hex(c.head->head)) : json::value(nullptr)},
      {"anchors_checked", c.anchors_checked},
      {"torn_tail_bytes", r.journal.torn_tail_bytes},
      {"problems", std::move(problems)},
  };
}

json::object verify_report_to_json(const engine::VerifyReport& r) {
  const journal::OpenReport& j = r.journal;
  const auto text_or_null = [](const std::string& s) {
    return s.empty() ? json::value(nullptr) : json::value(s);
  };
  const std::string hash = hash_hex(r.state_hash);
  return json::object{
      {"ok", r.invariants.ok},
      {"journal", json::object{{"segments", j.segments},
                               {"records", j.records},
                               {"first_seq", j.first_seq},
                               {"last_seq", j.last_seq},
                               {"torn_tail_bytes", j.torn_tail_bytes},
                               {"torn_tail_at", text_or_null(j.torn_tail_at)}}},
      {"snapshot_seq", r.snapshot_seq},
      {"records_replayed", r.records_replayed},
      {"last_timestamp", r.last_timestamp == 0 ? json::value(nullptr)
                                               : json::value(format_rfc3339(r.last_timestamp))},
      {"counts", json::object{{"accounts", r.counts.accounts},
                              {"transfers", r.counts.transfers},
                              {"pending_with_timeout", r.counts.pending_with_timeout}}},
      {"state_hash", hash},
      {"invariants_ok", r.invariants.ok},
      {"invariant_problem", text_or_null(r.invariants.problem)},
  };
}

void print_table(const Table& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

std::string cell(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "-";
    case json::kind::string:
      return std::string(v.get_string());
    case json::kind::array: {
      std::string out;
      for (const auto& item : v.get_array()) out += (out.empty() ? "" : ",") + cell(item);
      return out.empty() ? "-" : out;
    }
    default:
      return json::serialize(v);
  }
}

std::string format_amount(const json::value& minor, const json::value& currency) {
  const auto c = currency.is_string() ? Currency::from_code(std::string_view(currency.get_string()))
                                      : std::nullopt;
  if (!minor.is_int64() || !c || c->exponent() == 0) return cell(minor);
  if (minor.get_int64() < 0) return cell(minor);  // never for amounts and balances
  std::string digits = std::to_string(minor.get_int64());
  const auto exp = static_cast<size_t>(c->exponent());
  if (digits.size() <= exp) digits.insert(0, exp + 1 - digits.size(), '0');
  digits.insert(digits.size() - exp, ".");
  return digits;
}

void print_object(const json::object& o) {
  Table rows;
  for (const auto& [key, value] : o) {
    if (value.is_object()) {
      for (const auto& [k, v] : value.get_object()) {
        rows.push_back({std::string(key) + "." + std::string(k), cell(v)});
      }
      continue;
    }
    std::string text = cell(value);
    const bool is_money = key == "amount" || key.ends_with("_pending") || key.ends_with("_posted");
    if (is_money && o.contains("currency")) {
      text = format_amount(value, o.at("currency")) + " " + cell(o.at("currency"));
    }
    rows.push_back({std::string(key), text});
  }
  print_table(rows);
}

void print_results(const json::object& body) {
  Table rows = {{"INDEX", "ID", "RESULT"}};
  for (const auto& r : body.at("data").as_array()) {
    const auto& o = r.as_object();
    rows.push_back({cell(o.at("index")), cell(o.at("id")), cell(o.at("result"))});
  }
  print_table(rows);
}

void print_transfers(const json::object& body) {
  Table rows = {{"ID", "DEBIT", "CREDIT", "AMOUNT", "CURRENCY", "FLAGS", "STATE", "CREATED_AT"}};
  for (const auto& item : body.at("data").as_array()) {
    const auto& t = item.as_object();
    const json::value* state = t.if_contains("pending_state");
    rows.push_back(
        {cell(t.at("id")), cell(t.at("debit_account_id")), cell(t.at("credit_account_id")),
         format_amount(t.at("amount"), t.at("currency")), cell(t.at("currency")),
         cell(t.at("flags")), state != nullptr ? cell(*state) : "-", cell(t.at("created_at"))});
  }
  print_table(rows);
  if (body.at("has_more").as_bool())
    std::printf("(more: --starting-after %s)\n", rows.size() > 1 ? rows.back()[0].c_str() : "");
}

namespace {

std::string field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v == nullptr ? "-" : cell(*v);
}

std::string percent_ppm(const json::value& ppm) {
  if (!ppm.is_int64()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", static_cast<double>(ppm.get_int64()) / 10'000.0);
  return buf;
}

}  // namespace

void print_payment(const json::object& p) {
  Table rows;
  for (const std::string_view key :
       {"id", "status", "amount", "currency", "merchant", "source", "channel", "error_code",
        "amount_captured", "amount_refunded", "merchant_fee", "psp_fee", "requires_review",
        "created_at", "deadline"}) {
    std::string text = field(p, key);
    if ((key == "amount" || key.starts_with("amount_") || key.ends_with("_fee")) &&
        p.contains("currency") && p.contains(key)) {
      text = format_amount(p.at(key), p.at("currency"));
    }
    rows.push_back({std::string(key), text});
  }
  print_table(rows);
  Table attempts = {{"ATTEMPT", "KIND", "CHANNEL", "STATUS", "AMOUNT", "LATENCY_MS", "ERROR"}};
  for (const auto& a : p.at("attempts").as_array()) {
    const auto& o = a.as_object();
    attempts.push_back({field(o, "id"), field(o, "kind"), field(o, "channel"), field(o, "status"),
                        format_amount(o.at("amount"), p.at("currency")), field(o, "latency_ms"),
                        field(o, "error_code")});
  }
  std::printf("\n");
  print_table(attempts);
  const json::value* routing = p.if_contains("routing");
  if (routing == nullptr || !routing->is_array() || routing->get_array().empty()) return;
  Table decisions = {
      {"ATTEMPT", "DECISION", "CHANNEL", "TRY", "DELAY_MS", "CANDIDATES", "REJECTED"}};
  for (const auto& d : routing->get_array()) {
    const auto& o = d.as_object();
    std::string candidates;
    for (const auto& c : o.at("candidates").as_array()) {
      const auto& co = c.as_object();
      candidates += (candidates.empty() ? "" : " ") + field(co, "channel") + "(" +
                    percent_ppm(co.at("score_ppm")) + ")";
    }
    std::string rejected;
    for (const auto& r : o.at("rejected").as_array()) {
      const auto& ro = r.as_object();
      rejected += (rejected.empty() ? "" : " ") + field(ro, "channel") + ":" + field(ro, "reason");
    }
    std::string kind = field(o, "kind");
    if (o.at("explored").as_bool()) kind += "(explored)";
    if (o.contains("canary") && o.at("canary").as_bool()) kind += "(canary)";
    decisions.push_back({field(o, "attempt"), kind, field(o, "channel"), field(o, "try"),
                         field(o, "delay_ms"), candidates.empty() ? "-" : candidates,
                         rejected.empty() ? "-" : rejected});
  }
  std::printf("\n");
  print_table(decisions);
}

void print_payments(const json::object& body) {
  Table rows = {{"ID", "STATUS", "AMOUNT", "CURRENCY", "CHANNEL", "MERCHANT", "CREATED_AT"}};
  for (const auto& item : body.at("data").as_array()) {
    const auto& p = item.as_object();
    rows.push_back({field(p, "id"), field(p, "status"),
                    format_amount(p.at("amount"), p.at("currency")), field(p, "currency"),
                    field(p, "channel"), field(p, "merchant"), field(p, "created_at")});
  }
  print_table(rows);
  if (body.at("has_more").as_bool())
    std::printf("(more: --starting-after %s)\n", rows.size() > 1 ? rows.back()[0].c_str() : "");
}

void print_keys(const json::object& body) {
  Table rows = {{"ID", "ROLE", "OWNER", "LABEL", "CREATED_AT", "LAST_USED_AT", "REVOKED_AT"}};
  for (const auto& item : body.at("data").as_array()) {
    const auto& k = item.as_object();
    const std::string merchant = field(k, "merchant");
    rows.push_back({field(k, "id"), field(k, "role"),
                    merchant != "-" ? merchant : field(k, "customer"), field(k, "label"),
                    field(k, "created_at"), field(k, "last_used_at"), field(k, "revoked_at")});
  }
  print_table(rows);
  if (body.at("has_more").as_bool())
    std::printf("(more: --starting-after %s)\n", rows.size() > 1 ? rows.back()[0].c_str() : "");
}

void print_channels(const json::object& body) {
  Table rows = {{"CHANNEL", "PSP", "FLOWS", "BREAKER", "SINCE", "IN_FLIGHT", "CONTROL", "ATTEMPTS",
                 "SUCCESS", "P50_MS", "P99_MS", "RETRIES"}};
  for (const auto& item : body.at("data").as_array()) {
    const auto& c = item.as_object();
    const auto& b = c.at("breaker").as_object();
    const auto& w = c.at("window").as_object();
    std::string control = c.at("paused").as_bool() ? "paused" : "";
    if (c.at("draining").as_bool()) control += control.empty() ? "draining" : ",draining";
    rows.push_back({field(c, "id"), field(c, "psp"), field(c, "flows"), field(b, "state"),
                    field(b, "since"), field(c, "in_flight"), control.empty() ? "-" : control,
                    field(w, "attempts"), percent_ppm(w.at("success_ppm")),
                    field(w, "latency_p50_ms"), field(w, "latency_p99_ms"), field(w, "retries")});
  }
  print_table(rows);
}

void print_controls(const json::object& body) {
  Table head = {{"read_only", field(body, "read_only")},
                {"flows_disabled", field(body, "flows_disabled")}};
  print_table(head);
  Table channels = {{"CHANNEL", "PAUSED", "DRAINING", "CANARY"}};
  for (const auto& item : body.at("channels").as_array()) {
    const auto& c = item.as_object();
    std::string canary = "-";
    if (c.at("canary").is_object()) {
      const auto& k = c.at("canary").as_object();
      canary = field(k, "to") + " " + field(k, "share") + "%";
    }
    channels.push_back({field(c, "id"), field(c, "paused"), field(c, "draining"), canary});
  }
  std::printf("\n");
  print_table(channels);
  Table changes = {{"AT", "KIND", "TARGET", "CANARY", "SHARE", "REASON"}};
  for (const auto& item : body.at("changes").as_array()) {
    const auto& c = item.as_object();
    changes.push_back({field(c, "at"), field(c, "kind"), field(c, "target"), field(c, "canary"),
                       field(c, "share"), field(c, "reason")});
  }
  std::printf("\n");
  print_table(changes);
}

}  // namespace keel::cli
