// Encoding half of json_codec.h: ledger and engine types to response and request bodies.

#include <fmt/format.h>

#include "api/json_codec.h"
#include "core/assert.h"
#include "core/time.h"

namespace keel::api {
namespace json = boost::json;

namespace {

json::string_view jv(std::string_view s) { return json::string_view(s.data(), s.size()); }

json::array flag_names_to_json(const std::vector<std::string_view>& names) {
  json::array out;
  out.reserve(names.size());
  for (std::string_view n : names) out.emplace_back(jv(n));
  return out;
}

json::object metadata_to_json(const Metadata& m) {
  json::object out;
  out.reserve(m.size());
  for (const auto& [key, value] : m) out.emplace(key, value);
  return out;
}

json::value optional_string(std::string_view s) {
  if (s.empty()) return nullptr;
  return jv(s);
}

json::object counts_to_json(const ledger::LedgerCounts& c) {
  return json::object{{"accounts", c.accounts},
                      {"transfers", c.transfers},
                      {"pending_with_timeout", c.pending_with_timeout},
                      {"transfers_in_memory", c.transfers_in_memory}};
}

json::value optional_time(Timestamp t) {
  if (t <= 0) return nullptr;
  return json::value(format_rfc3339(t));
}

template <typename Result>
json::object results_to_json(std::span<const std::string> ids, std::span<const Result> results) {
  KEEL_ASSERT(ids.size() == results.size());
  json::array data;
  data.reserve(results.size());
  for (size_t i = 0; i < results.size(); ++i) {
    data.emplace_back(json::object{
        {"index", i}, {"id", ids[i]}, {"result", jv(ledger::result_name(results[i]))}});
  }
  return json::object{{"data", std::move(data)}};
}

}  // namespace

json::object account_event_to_json(const ledger::AccountEvent& e) {
  json::object out{{"id", e.id}, {"currency", jv(e.currency.code())}};
  if (e.flags != 0) out["flags"] = flag_names_to_json(ledger::account_flag_names(e.flags));
  if (!e.metadata.empty()) out["metadata"] = metadata_to_json(e.metadata);
  return out;
}

json::object transfer_event_to_json(const ledger::TransferEvent& e) {
  json::object out{{"id", e.id}};
  if (!e.debit_account_id.empty()) out["debit_account_id"] = e.debit_account_id;
  if (!e.credit_account_id.empty()) out["credit_account_id"] = e.credit_account_id;
  if (e.amount != 0) out["amount"] = e.amount;
  if (e.currency.valid()) out["currency"] = jv(e.currency.code());
  if (e.flags != 0) out["flags"] = flag_names_to_json(ledger::transfer_flag_names(e.flags));
  if (!e.pending_id.empty()) out["pending_id"] = e.pending_id;
  if (e.timeout_s != 0) out["timeout_seconds"] = static_cast<int64_t>(e.timeout_s);
  if (!e.metadata.empty()) out["metadata"] = metadata_to_json(e.metadata);
  return out;
}

json::object account_to_json(const ledger::Account& a) {
  return json::object{
      {"id", a.id},
      {"currency", jv(a.currency.code())},
      {"flags", flag_names_to_json(ledger::account_flag_names(a.flags))},
      {"metadata", metadata_to_json(a.metadata)},
      {"debits_pending", a.balances.debits_pending},
      {"debits_posted", a.balances.debits_posted},
      {"credits_pending", a.balances.credits_pending},
      {"credits_posted", a.balances.credits_posted},
      {"created_at", format_rfc3339(a.timestamp)},
  };
}

json::object transfer_to_json(const ledger::Transfer& t) {
  json::object out{
      {"id", t.id},
      {"debit_account_id", t.debit_account_id},
      {"credit_account_id", t.credit_account_id},
      {"amount", t.amount},
      {"currency", jv(t.currency.code())},
      {"flags", flag_names_to_json(ledger::transfer_flag_names(t.flags))},
      {"pending_id", optional_string(t.pending_id)},
      {"timeout_seconds", static_cast<int64_t>(t.timeout_s)},
      {"metadata", metadata_to_json(t.metadata)},
      {"created_at", format_rfc3339(t.timestamp)},
  };
  if (t.pending_state != ledger::PendingState::none) {
    out["pending_state"] = jv(ledger::pending_state_name(t.pending_state));
  }
  if (t.expires_at > 0) out["expires_at"] = format_rfc3339(t.expires_at);
  return out;
}

json::object account_transfers_page_to_json(const ledger::AccountTransfersPage& page) {
  json::array data;
  data.reserve(page.data.size());
  for (const auto& t : page.data) data.emplace_back(transfer_to_json(t));
  return json::object{{"data", std::move(data)}, {"has_more", page.has_more}};
}

json::object create_results_to_json(std::span<const std::string> ids,
                                    std::span<const ledger::CreateAccountResult> results) {
  return results_to_json(ids, results);
}

json::object create_results_to_json(std::span<const std::string> ids,
                                    std::span<const ledger::CreateTransferResult> results) {
  return results_to_json(ids, results);
}

json::object set_account_closed_result_to_json(std::string_view id,
                                               ledger::SetAccountClosedResult result) {
  return json::object{{"id", jv(id)}, {"result", jv(ledger::result_name(result))}};
}

json::object audit_head_to_json(const engine::EngineStatus& s) {
  return json::object{
      {"object", "audit_head"},
      {"seq", s.audit_head ? json::value(s.audit_head->seq) : json::value(nullptr)},
      {"head",
       s.audit_head ? json::value(journal::to_hex(s.audit_head->head)) : json::value(nullptr)},
      {"last_seq", s.last_seq},
  };
}

uint64_t audit_head_prefix(const journal::ChainDigest& head) {
  uint64_t v = 0;
  for (size_t i = 0; i < 6; ++i) v = v << 8 | head[i];
  return v;
}

json::object status_to_json(const engine::EngineStatus& s, bool full, bool healthy) {
  json::object out{
      {"healthy", healthy},
      {"last_seq", s.last_seq},
      {"last_timestamp", optional_time(s.last_timestamp)},
      {"counts", counts_to_json(s.counts)},
      {"queue_depth", s.queue_depth},
      {"batches_committed", s.batches_committed},
      {"writer_longest_pause_ms", static_cast<double>(s.writer_longest_pause_ns) / 1e6},
      {"snapshot_encode_longest_ms", static_cast<double>(s.snapshot_encode_longest_ns) / 1e6},
      {"events_committed", s.events_committed},
      {"payments",
       json::object{{"customers", s.payments.customers},
                    {"merchants", s.payments.merchants},
                    {"payments", s.payments.payments},
                    {"payments_in_memory", s.payments.payments_in_memory},
                    {"in_review", s.payments.in_review},
                    {"wallet_flows", s.payments.wallet_flows},
                    {"wallet_flows_in_memory", s.payments.wallet_flows_in_memory},
                    {"idempotency_keys", s.payments.idempotency_keys},
                    {"idempotency_keys_in_memory", s.payments.idempotency_keys_in_memory},
                    {"events", s.payments.events},
                    {"events_in_memory", s.payments.events_in_memory},
                    {"merchants_backlogged", s.payments.merchants_backlogged},
                    {"deliveries_deferred", s.payments.deliveries_deferred},
                    {"deliveries_refilled", s.payments.deliveries_refilled},
                    {"deliveries_pending", s.payments.deliveries_pending},
                    {"postings_rejected", s.postings_rejected},
                    {"psp_results_rejected", s.psp_results_rejected}}},
      {"review",
       json::object{{"open_deadline_unknown", s.payments.review_open_deadline_unknown},
                    {"open_psp_result_rejected", s.payments.review_open_psp_result_rejected}}},
  };
  if (s.history_enabled) {
    out["history"] = json::object{{"transfers_moved", s.history_moved},
                                  {"events_moved", s.history_events_moved},
                                  {"events_deleted", s.history_events_deleted},
                                  {"idempotency_keys_moved", s.history_keys_moved},
                                  {"payments_moved", s.history_payments_moved},
                                  {"flows_moved", s.history_flows_moved},
                                  {"superseded_deleted", s.history_superseded_deleted},
                                  {"queued", s.history_queued},
                                  {"write_failures", s.history_write_failures},
                                  {"applied_seq", s.history_applied_seq},
                                  {"store_bytes", s.history_disk_bytes}};
  } else {
    out["history"] = nullptr;  // every transfer in memory ([engine] history = "memory")
  }
  if (s.memory_max_bytes > 0) {
    out["memory"] = json::object{{"resident_bytes", s.memory_resident_bytes},
                                 {"max_bytes", s.memory_max_bytes},
                                 {"over_capacity", s.over_capacity},
                                 {"refused", s.refused_over_capacity}};
  } else {
    out["memory"] = nullptr;  // no budget ([engine] memory_max_mb = 0)
  }
  if (full) {
    out["state_hash"] = hash_to_hex(s.state_hash);
    out["invariants_ok"] = s.invariants_ok;
    out["invariant_problem"] = optional_string(s.invariant_problem);
  }
  return out;
}

json::object error_to_json(const ApiError& e, std::string_view request_id) {
  return json::object{{"error", json::object{{"type", jv(error_type(e.code))},
                                             {"code", jv(error_code_name(e.code))},
                                             {"message", e.message},
                                             {"param", optional_string(e.param)},
                                             {"request_id", jv(request_id)}}}};
}

std::string hash_to_hex(uint64_t hash) { return fmt::format("{:016x}", hash); }

}  // namespace keel::api
