#include "api/service.h"

#include <boost/json/serialize.hpp>
#include <charconv>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>

#include "api/json_codec.h"
#include "api/router.h"
#include "api/service_internal.h"
#include "core/assert.h"
#include "core/ids.h"
#include "core/json_writer.h"
#include "payments/payment.h"
#include "payments/render.h"

namespace keel::api {
namespace json = boost::json;

HttpReply error_reply(const ApiError& e, std::string_view request_id, std::string allow) {
  return HttpReply{http_status(e.code), json::serialize(error_to_json(e, request_id)),
                   std::move(allow), is_retryable(e.code) ? 1u : 0u};
}

namespace {

// Bodies of routes that take no parameters: empty, or an empty JSON object.
std::optional<ApiError> check_empty_body(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return std::nullopt;
  auto doc = parse_json(body);
  if (!doc.ok()) return doc.error;
  if (!doc.value.is_object()) {
    return make_error(ErrorCode::body_invalid, "the body must be empty or a JSON object");
  }
  if (!doc.value.get_object().empty()) {
    const std::string key(doc.value.get_object().begin()->key());
    return make_error(ErrorCode::parameter_unknown, "unknown field " + key, key);
  }
  return std::nullopt;
}

template <typename Event>
std::vector<std::string> event_ids(const std::vector<Event>& events) {
  std::vector<std::string> ids;
  ids.reserve(events.size());
  for (const Event& e : events) ids.push_back(e.id);
  return ids;
}

ApiError reserved(std::string_view what, std::string_view id, std::string param) {
  return make_error(ErrorCode::ledger_namespace_reserved,
                    std::string(what) + " " + std::string(id) +
                        " is in a namespace the payments core owns: the ledger API cannot "
                        "create, move, post or void it",
                    std::move(param));
}

std::optional<ApiError> check_accounts_not_reserved(const std::vector<ledger::AccountEvent>& ev) {
  for (size_t i = 0; i < ev.size(); ++i) {
    if (payments::is_reserved_account_id(ev[i].id)) {
      return reserved("account", ev[i].id, "data[" + std::to_string(i) + "].id");
    }
  }
  return std::nullopt;
}

std::optional<ApiError> check_transfers_not_reserved(const std::vector<ledger::TransferEvent>& ev) {
  for (size_t i = 0; i < ev.size(); ++i) {
    const std::string at = "data[" + std::to_string(i) + "].";
    const ledger::TransferEvent& e = ev[i];
    if (payments::is_reserved_transfer_id(e.id)) return reserved("transfer", e.id, at + "id");
    if (!e.pending_id.empty() && payments::is_reserved_transfer_id(e.pending_id)) {
      return reserved("transfer", e.pending_id, at + "pending_id");
    }
    for (const auto& [account, field] : {std::pair{&e.debit_account_id, "debit_account_id"},
                                         std::pair{&e.credit_account_id, "credit_account_id"}}) {
      if (payments::is_reserved_account_id(*account)) {
        return reserved("account", *account, at + field);
      }
    }
  }
  return std::nullopt;
}

// Whether a ledger key may see the account or transfer: not when the payments core owns it
// (it answers 404, as for one that does not exist).
bool hidden_from(const Caller& caller, bool reserved) {
  return reserved && caller.role == security::Role::ledger;
}

void create_accounts(engine::Engine* engine, std::string_view body, const ResponderPtr& r) {
  auto events = parse_account_events(body);
  if (!events.ok()) return r->fail(*events.error);
  if (auto e = check_accounts_not_reserved(events.value)) return r->fail(*e);
  auto ids = event_ids(events.value);
  using Results = std::vector<ledger::CreateAccountResult>;
  engine->create_accounts(
      std::move(events.value),
      on_io_thread<Results>(r, [ids = std::move(ids)](const Responder& r, Results results) {
        r.ok(create_results_to_json(ids, results));
      }));
}

void create_transfers(engine::Engine* engine, std::string_view body, const ResponderPtr& r) {
  auto events = parse_transfer_events(body);
  if (!events.ok()) return r->fail(*events.error);
  if (auto e = check_transfers_not_reserved(events.value)) return r->fail(*e);
  auto ids = event_ids(events.value);
  using Results = std::vector<ledger::CreateTransferResult>;
  engine->create_transfers(
      std::move(events.value),
      on_io_thread<Results>(r, [ids = std::move(ids)](const Responder& r, Results results) {
        r.ok(create_results_to_json(ids, results));
      }));
}

void get_account(engine::Engine* engine, const std::string& id, const ResponderPtr& r) {
  engine->get_account(id, on_io_thread<std::optional<ledger::Account>>(
                              r, [id](const Responder& r, std::optional<ledger::Account> a) {
                                if (!a) return r.fail(not_found("account", id));
                                r.ok(account_to_json(*a));
                              }));
}

void get_transfer(engine::Engine* engine, const std::string& id, const ResponderPtr& r) {
  engine->get_transfer(id, on_io_thread<std::optional<ledger::Transfer>>(
                               r, [id](const Responder& r, std::optional<ledger::Transfer> t) {
                                 if (!t) return r.fail(not_found("transfer", id));
                                 r.ok(transfer_to_json(*t));
                               }));
}

void list_account_transfers(engine::Engine* engine, const RouteMatch& m, const ResponderPtr& r) {
  const auto limit = parse_limit(m.query);
  if (!limit) return r->fail(limit_error());
  const std::string after(query_value(m.query, "starting_after").value_or(""));
  if (query_value(m.query, "starting_after") && !is_valid_id(after)) {
    return r->fail(make_error(ErrorCode::starting_after_invalid,
                              "starting_after must be a transfer id", "starting_after"));
  }
  engine::AccountTransfersQuery query{m.id, *limit, after};
  using Page = ledger::AccountTransfersPage;
  engine->list_account_transfers(
      std::move(query), on_io_thread<Page>(r, [id = m.id, after](const Responder& r, Page page) {
        switch (page.result) {
          case ledger::PageResult::ok:
            return r.ok(account_transfers_page_to_json(page));
          case ledger::PageResult::account_not_found:
            return r.fail(not_found("account", id));
          case ledger::PageResult::starting_after_not_found:
            return r.fail(
                make_error(ErrorCode::starting_after_invalid,
                           "starting_after " + after + " is not a transfer of account " + id,
                           "starting_after"));
        }
      }));
}

void set_account_closed(engine::Engine* engine, const std::string& id, bool closed,
                        std::string_view body, const ResponderPtr& r) {
  if (auto e = check_empty_body(body)) return r->fail(*e);
  if (payments::is_reserved_account_id(id)) return r->fail(reserved("account", id, "id"));
  engine->set_account_closed(
      id, closed,
      on_io_thread<ledger::SetAccountClosedResult>(
          r, [id](const Responder& r, ledger::SetAccountClosedResult result) {
            r.ok(set_account_closed_result_to_json(id, result));
          }));
}

void admin_status(engine::Engine* engine, const RouteMatch& m, const ResponderPtr& r) {
  const auto full_text = query_value(m.query, "full").value_or("false");
  if (full_text != "true" && full_text != "false") {
    return r->fail(make_error(ErrorCode::parameter_invalid, "full must be true or false", "full"));
  }
  const bool full = full_text == "true";
  engine->get_status(full, on_io_thread<engine::EngineStatus>(
                               r, [engine, full](const Responder& r, engine::EngineStatus s) {
                                 r.ok(status_to_json(s, full, engine->healthy()));
                               }));
}

void admin_snapshot(engine::Engine* engine, std::string_view body, const ResponderPtr& r) {
  if (auto e = check_empty_body(body)) return r->fail(*e);
  engine->take_snapshot(on_io_thread<Status>(r, [](const Responder& r, Status s) {
    if (!s.is_ok()) return r.fail(make_error(ErrorCode::snapshot_failed, s.message()));
    r.ok(json::object{{"result", "ok"}});
  }));
}

// Seconds until each certificate keeld serves with or trusts expires (negative: expired).
std::string certificate_metrics_text(const std::vector<std::pair<std::string, int64_t>>& certs,
                                     int64_t now_s) {
  if (certs.empty()) return {};
  std::string out =
      "# HELP keel_tls_certificate_expiry_seconds Seconds until the certificate expires "
      "(negative: expired).\n# TYPE keel_tls_certificate_expiry_seconds gauge\n";
  for (const auto& [name, not_after] : certs) {
    out += "keel_tls_certificate_expiry_seconds{certificate=\"" + name + "\"} " +
           std::to_string(not_after - now_s) + "\n";
  }
  return out;
}

// One metric without labels, with its HELP and TYPE lines.
void append_metric(std::string* out, std::string_view name, std::string_view type,
                   std::string_view help, uint64_t value) {
  *out += "# HELP " + std::string(name) + " " + std::string(help) + "\n# TYPE " +
          std::string(name) + " " + std::string(type) + "\n" + std::string(name) + " " +
          std::to_string(value) + "\n";
}

// The card vault's counters: cards opened for PSP calls (and failures), CVCs held in memory,
// the active master key version; and the customers' personal data keys.
std::string vault_metrics_text(const vault::Vault* v, const vault::CustomerKeys* keys) {
  if (v == nullptr) return {};
  const vault::Vault::Stats s = v->stats();
  std::string out;
  const auto metric = [&out](std::string_view name, std::string_view type, std::string_view help,
                             uint64_t value) { append_metric(&out, name, type, help, value); };
  metric("keel_vault_decryptions_total", "counter",
         "Stored cards decrypted for a PSP call (the only place keel decrypts a card).",
         s.decryptions);
  metric("keel_vault_decryption_failures_total", "counter",
         "Stored cards that did not decrypt (a missing master key version, changed bytes).",
         s.decryption_failures);
  metric("keel_vault_webhook_secrets_opened_total", "counter",
         "Merchant webhook secrets opened to sign a delivery.", s.secrets_opened);
  metric("keel_vault_cvcs_held", "gauge", "CVCs waiting in memory for a first authorization.",
         s.cvcs_held);
  metric("keel_vault_active_key_version", "gauge",
         "The master key version new cards are wrapped under.", v->active_version());
  if (keys == nullptr) return out;
  const vault::CustomerKeys::Stats k = keys->stats();
  metric("keel_personal_data_keys_created_total", "counter",
         "Customer personal data keys made (at a customer's first sealed value).", k.keys_created);
  metric("keel_personal_data_keys_erased_total", "counter",
         "Customer personal data keys deleted by an erasure (crypto-shredding).", k.keys_erased);
  metric("keel_personal_data_opened_total", "counter",
         "Sealed personal data values opened (for an answer or a PSP call).", k.opened);
  metric("keel_personal_data_open_failures_total", "counter",
         "Sealed personal data values that did not open under their customer's key.",
         k.open_failures);
  return out;
}

// The engine's counters in the Prometheus text format. keel_payments_in_review is the alert:
// objects a person must look at (an outcome unknown at its deadline, a PSP result refused).
std::string metrics_text(const engine::EngineStatus& s) {
  std::string out;
  const auto metric = [&out](std::string_view name, std::string_view type, std::string_view help,
                             uint64_t value) { append_metric(&out, name, type, help, value); };
  metric("keel_journal_last_seq", "gauge", "Last durable journal record.", s.last_seq);
  metric("keel_audit_chain_head_seq", "gauge",
         "Journal record of the audit chain's head (GET /v1/admin/audit/head has its hash).",
         s.audit_head ? s.audit_head->seq : 0);
  metric("keel_audit_chain_head_prefix", "gauge",
         "The first 48 bits of the audit chain head's SHA-256, as an integer: a sample kept by "
         "the metrics store anchors the chain outside keel.",
         s.audit_head ? audit_head_prefix(s.audit_head->head) : 0);
  metric("keel_engine_queue_depth", "gauge", "Commands waiting for the writer.", s.queue_depth);
  metric("keel_engine_batches_committed_total", "counter", "Group commits since start.",
         s.batches_committed);
  const auto seconds = [&out](std::string_view name, std::string_view help, uint64_t ns) {
    out += "# HELP " + std::string(name) + " " + std::string(help) + "\n# TYPE " +
           std::string(name) + " gauge\n" + std::string(name) + " " +
           std::to_string(static_cast<double>(ns) / 1e9) + "\n";
  };
  seconds("keel_engine_writer_longest_pause_seconds",
          "The writer's longest stretch of work between two waits for commands since start.",
          s.writer_longest_pause_ns);
  seconds("keel_engine_snapshot_encode_longest_seconds",
          "The longest snapshot encoding on the writer since start.", s.snapshot_encode_longest_ns);
  metric("keel_ledger_accounts", "gauge", "Ledger accounts.", s.counts.accounts);
  metric("keel_ledger_transfers", "gauge", "Ledger transfers.", s.counts.transfers);
  metric("keel_ledger_transfers_in_memory", "gauge",
         "Ledger transfers held in memory (open holds and those not yet in the history store).",
         s.counts.transfers_in_memory);
  metric("keel_history_transfers_moved_total", "counter",
         "Transfers written to the history store since start.", s.history_moved);
  metric("keel_history_events_moved_total", "counter",
         "Merchant events (delivery final) written to the history store since start.",
         s.history_events_moved);
  metric("keel_history_idempotency_keys_moved_total", "counter",
         "Completed idempotency records written to the history store since start.",
         s.history_keys_moved);
  metric("keel_history_payments_moved_total", "counter",
         "Payment records (a payment at rest, each time it comes to rest) written to the history "
         "store since start.",
         s.history_payments_moved);
  metric("keel_history_superseded_deleted_total", "counter",
         "Superseded versions of payment and wallet flow records (and their markers) deleted from "
         "the history store since start, once no kept snapshot needs them.",
         s.history_superseded_deleted);
  metric("keel_history_flows_moved_total", "counter",
         "Top-up, payout and wallet transfer records (each time one comes to rest) written to "
         "the history store since start.",
         s.history_flows_moved);
  metric("keel_history_events_deleted_total", "counter",
         "Expired merchant events deleted from the history store since start.",
         s.history_events_deleted);
  metric("keel_history_queued", "gauge", "Records handed to the history store, not yet written.",
         s.history_queued);
  metric("keel_history_write_failures_total", "counter",
         "Failed history store writes (each logged and retried; alert when it grows).",
         s.history_write_failures);
  metric("keel_history_store_bytes", "gauge", "The history store's size on disk.",
         s.history_disk_bytes);
  metric("keel_memory_resident_bytes", "gauge",
         "keeld's resident memory as the budget last read it (0 without a budget).",
         s.memory_resident_bytes);
  metric("keel_memory_budget_bytes", "gauge", "[engine] memory_max_mb in bytes (0: none).",
         s.memory_max_bytes);
  metric("keel_over_capacity", "gauge",
         "1 while resident memory is above the budget and new work is refused (alert).",
         s.over_capacity ? 1 : 0);
  metric("keel_over_capacity_refused_total", "counter",
         "Requests for new work refused with over_capacity since start.", s.refused_over_capacity);
  metric("keel_payments", "gauge", "Payments stored.", s.payments.payments);
  metric("keel_payments_in_memory", "gauge",
         "Payments held in memory (not at rest, or not yet in the history store).",
         s.payments.payments_in_memory);
  metric("keel_payments_in_review", "gauge",
         "Payments, refunds, top-ups and payouts flagged for review, any reason (alert when > 0).",
         s.payments.in_review);
  metric("keel_wallet_flows", "gauge", "Top-ups, payouts and wallet transfers stored.",
         s.payments.wallet_flows);
  metric("keel_wallet_flows_in_memory", "gauge",
         "Top-ups, payouts and wallet transfers held in memory (not at rest, or not yet in the "
         "history store).",
         s.payments.wallet_flows_in_memory);
  metric("keel_idempotency_keys", "gauge", "Idempotency keys kept.", s.payments.idempotency_keys);
  metric("keel_idempotency_keys_in_memory", "gauge",
         "Idempotency records held in memory (in flight, or not yet in the history store).",
         s.payments.idempotency_keys_in_memory);
  metric("keel_webhook_deliveries_pending", "gauge", "Merchant webhooks not yet delivered.",
         s.payments.deliveries_pending);
  metric("keel_events", "gauge", "Merchant events stored (within their retention).",
         s.payments.events);
  metric("keel_events_in_memory", "gauge",
         "Merchant events held in memory (delivery pending, or not yet in the history store).",
         s.payments.events_in_memory);
  metric("keel_webhook_merchants_backlogged", "gauge",
         "Merchants whose webhook deliveries queue in the history store (endpoint slow or down; "
         "each logged when it begins).",
         s.payments.merchants_backlogged);
  metric("keel_webhook_deliveries_deferred_total", "counter",
         "Merchant events deferred behind their merchant's pending deliveries since start.",
         s.payments.deliveries_deferred);
  metric("keel_webhook_deliveries_refilled_total", "counter",
         "Deferred merchant events taken back as pending deliveries since start.",
         s.payments.deliveries_refilled);
  metric("keel_payment_postings_rejected_total", "counter",
         "Payment postings the ledger refused (a bug: alert when > 0).", s.postings_rejected);
  metric("keel_breaker_transitions_total", "counter",
         "Circuit breaker transitions journaled since start (all channels).",
         s.breaker_transitions);
  metric("keel_psp_results_rejected_total", "counter",
         "PSP results keel could not take and flagged for review (alert when it grows).",
         s.psp_results_rejected);
  metric("keel_outbox_events_dropped_total", "counter",
         "Merchant events the outbox had no room for (each logged; alert when > 0).",
         s.events_dropped);
  out +=
      "# HELP keel_review_items_open Open review items, by reason.\n"
      "# TYPE keel_review_items_open gauge\n";
  out += "keel_review_items_open{reason=\"deadline_unknown\"} " +
         std::to_string(s.payments.review_open_deadline_unknown) + "\n";
  out += "keel_review_items_open{reason=\"psp_result_rejected\"} " +
         std::to_string(s.payments.review_open_psp_result_rejected) + "\n";
  return out;
}

// The dispatcher's PSP traffic: every call keel made (first attempts, retries, failovers,
// captures, voids, refunds, top-ups, payouts) and, apart, the status queries that resolve
// unknown outcomes (they have their own backoff and never count against a breaker).
std::string psp_metrics_text(const dispatch::PspDispatcher::Stats& s) {
  std::string out;
  append_metric(&out, "keel_psp_calls_total", "counter",
                "PSP calls made (every kind of attempt; status queries apart).", s.calls);
  append_metric(&out, "keel_psp_status_queries_total", "counter",
                "Status queries sent to resolve unknown outcomes.", s.status_queries);
  append_metric(&out, "keel_psp_credential_fallbacks_total", "counter",
                "PSP calls sent again with another API key after a 401 (a credential rotation "
                "in progress; above 0 for long: a key the PSP no longer takes is first).",
                s.credential_fallbacks);
  append_metric(&out, "keel_psp_credential_reloads_total", "counter",
                "Changed API key files taken by the channels since start.", s.credential_reloads);
  return out;
}

// GET /v1/channels: every routing channel, its definition and live state (docs/routing.md).
std::string channels_to_json(const std::vector<engine::ChannelStatus>& channels) {
  JsonWriter w;
  w.begin_object();
  w.field("object", "list");
  w.key("data");
  w.begin_array();
  for (const engine::ChannelStatus& c : channels) {
    const routing::ChannelDef& d = c.live.def;
    const routing::ChannelCounts& n = c.live.window;
    w.begin_object();
    w.field("id", d.name);
    w.field("object", "channel");
    w.field("psp", d.psp);
    w.key("currencies");  // empty: every currency
    w.begin_array();
    for (const Currency cur : d.currencies) w.string(cur.code());
    w.end_array();
    w.key("flows");
    w.begin_array();
    for (uint8_t i = 0; i <= static_cast<uint8_t>(routing::kFlowLast); ++i) {
      const auto f = static_cast<routing::Flow>(i);
      if (routing::carries(d, f)) w.string(routing::flow_name(f));
    }
    w.end_array();
    w.field("min_amount", d.min_amount);
    w.field("max_amount", d.max_amount);
    w.field("priority", static_cast<int64_t>(d.priority));
    w.field("cost_bps", d.cost_bps);
    w.field("cost_fixed", d.cost_fixed);
    w.field("concurrency_max", static_cast<int64_t>(d.concurrency_max));
    w.field("timeout_ms", d.timeout_ms);
    w.field("paused", c.live.control.paused);
    w.field("draining", c.live.control.draining);
    w.field_or_null("canary_of", d.canary_of);
    w.key("canary");  // the canary taking a share of this channel's traffic, if one does
    if (c.live.control.canary_share_pct == 0) {
      w.null();
    } else {
      w.begin_object();
      w.field("to", c.live.control.canary_to);
      w.field("share", static_cast<int64_t>(c.live.control.canary_share_pct));
      w.end_object();
    }
    w.key("breaker");
    w.begin_object();
    w.field("state", routing::breaker_state_name(c.live.breaker));
    payments::write_time_or_null(w, "since", c.breaker_changed_at);
    w.field_or_null("reason", c.breaker_reason);
    w.field("opened", static_cast<int64_t>(c.breaker_opened));
    w.end_object();
    w.field("in_flight", static_cast<int64_t>(c.live.in_flight));
    w.key("window");
    w.begin_object();
    w.field("attempts", static_cast<int64_t>(n.attempts));
    w.field("approved", static_cast<int64_t>(n.approved));
    w.field("declined_hard", static_cast<int64_t>(n.declined_hard));
    w.field("declined_soft", static_cast<int64_t>(n.declined_soft));
    w.field("retryable", static_cast<int64_t>(n.retryable));
    w.field("unknown", static_cast<int64_t>(n.unknown));
    w.field("success_ppm", static_cast<int64_t>(c.live.success_ppm));
    w.field("latency_p50_ms", static_cast<int64_t>(n.latency_quantile_ms(0.5)));
    w.field("latency_p99_ms", static_cast<int64_t>(n.latency_quantile_ms(0.99)));
    w.field("first_attempts", static_cast<int64_t>(c.live.first_attempts));
    w.field("retries", static_cast<int64_t>(c.live.retries));
    w.end_object();
    w.end_object();
  }
  w.end_array();
  w.end_object();
  return w.take();
}

// Per channel: breaker state (0 closed, 1 open, 2 half-open) and calls in flight. Channel names
// come from the configuration: a bounded label set.
std::string channel_metrics_text(const std::vector<engine::ChannelStatus>& channels) {
  std::string out =
      "# HELP keel_channel_breaker_state Circuit breaker per channel: 0 closed, 1 open, 2 "
      "half-open.\n# TYPE keel_channel_breaker_state gauge\n";
  for (const engine::ChannelStatus& c : channels) {
    out += "keel_channel_breaker_state{channel=\"" + c.live.def.name + "\"} " +
           std::to_string(static_cast<int>(c.live.breaker)) + "\n";
  }
  out +=
      "# HELP keel_channel_breaker_opened_total Transitions to open per channel.\n"
      "# TYPE keel_channel_breaker_opened_total counter\n";
  for (const engine::ChannelStatus& c : channels) {
    out += "keel_channel_breaker_opened_total{channel=\"" + c.live.def.name + "\"} " +
           std::to_string(c.breaker_opened) + "\n";
  }
  out +=
      "# HELP keel_channel_in_flight PSP calls in flight per channel.\n"
      "# TYPE keel_channel_in_flight gauge\n";
  for (const engine::ChannelStatus& c : channels) {
    out += "keel_channel_in_flight{channel=\"" + c.live.def.name + "\"} " +
           std::to_string(c.live.in_flight) + "\n";
  }
  return out;
}

}  // namespace

struct Service::KeyUses {
  std::mutex mutex;
  std::set<std::string, std::less<>> in_flight;
};

namespace {
int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Service::Service(engine::Engine* engine, PaymentsApiOptions payments, AuthOptions auth)
    : engine_(engine),
      psp_stats_(payments.psp_stats),
      certificates_(payments.certificates),
      vault_(payments.vault),
      customer_keys_(payments.customer_keys),
      wall_now_(auth.wall_now ? std::move(auth.wall_now) : wall_clock_now),
      admin_listener_(auth.admin_listener),
      limiter_(auth.rate_limits, auth.monotonic_ns ? std::move(auth.monotonic_ns) : steady_ns),
      key_uses_(std::make_shared<KeyUses>()),
      payments_(std::make_unique<PaymentRoutes>(engine, std::move(payments))),
      keys_(std::make_unique<KeyRoutes>(engine)) {}

Service::~Service() = default;

std::optional<HttpReply> Service::admit(const RouteAccess& access, std::string_view method,
                                        std::string_view target, const RequestHeaders& headers,
                                        std::string_view body, std::string_view request_id,
                                        Admitted* out) {
  KEEL_ASSERT(!access.public_route);
  const auto keys = engine_->keys();  // the key's digest below lives in it
  const Timestamp now = wall_now_();
  Authenticated a = authenticate(headers.authorization, *keys, now);
  if (a.error) return error_reply(*a.error, request_id);
  KEEL_ASSERT(a.caller.has_value());
  if (admin_listener_ && role_in(kOperatorRoles, a.caller->role) != headers.admin_listener) {
    return error_reply(
        make_error(ErrorCode::permission_denied,
                   headers.admin_listener ? "the admin listener takes admin and auditor keys only"
                                          : "admin and auditor keys are taken on the admin "
                                            "listener only"),
        request_id);
  }
  // Admin keys sign every request; other keys may (docs/security.md, "Signed requests").
  if (a.caller->role == security::Role::admin || !headers.signature.empty()) {
    const security::ApiKey* key = keys->find(a.caller->key_id);
    KEEL_ASSERT(key != nullptr);
    security::SignatureHeader signature;
    const auto check = headers.signature.empty()
                           ? security::SignatureCheck::malformed
                           : security::verify_request(key->hash, headers.signature, method, target,
                                                      body, now / 1'000'000'000, &signature);
    if (check == security::SignatureCheck::timestamp_out_of_range) {
      return error_reply(make_error(ErrorCode::timestamp_out_of_range,
                                    "the signature's t is more than " +
                                        std::to_string(security::kSignatureSkewMaxS) +
                                        " s from keeld's clock; sign with the current time"),
                         request_id);
    }
    if (check != security::SignatureCheck::ok) {
      return error_reply(
          make_error(ErrorCode::signature_invalid,
                     headers.signature.empty()
                         ? "requests with an admin key must be signed (Keel-Signature)"
                         : "Keel-Signature does not verify for this request"),
          request_id);
    }
    // A signed write takes its nonce (journaled) before it runs; a read checks the time only.
    if (method != "GET") out->nonce = std::move(signature);
  }
  if (!role_in(access.roles, a.caller->role)) {
    return error_reply(make_error(ErrorCode::permission_denied,
                                  "a key of role " + std::string(role_name(a.caller->role)) +
                                      " may not call this route"),
                       request_id);
  }
  if (const uint32_t wait_s = limiter_.take(*a.caller); wait_s > 0) {
    HttpReply reply = error_reply(
        make_error(ErrorCode::rate_limited, "too many requests for this API key; retry after " +
                                                std::to_string(wait_s) + " s"),
        request_id);
    reply.retry_after_s = wait_s;
    return reply;
  }
  if (a.note_use) note_use(a.caller->key_id);
  out->caller = std::move(*a.caller);
  return std::nullopt;
}

void Service::note_use(const std::string& key_id) {
  {
    std::lock_guard lock(key_uses_->mutex);
    if (!key_uses_->in_flight.insert(key_id).second) return;
  }
  // Best effort: a use that is not journaled (overloaded, stopping) is noted by a later request.
  engine_->security_command(security::cmd::KeyUsed{key_id},
                            [uses = key_uses_, key_id](engine::Outcome<security::Result>) {
                              std::lock_guard lock(uses->mutex);
                              uses->in_flight.erase(key_id);
                            });
}

void Service::handle(std::string_view method, std::string_view target,
                     const RequestHeaders& headers, std::string body, std::string request_id,
                     PostFn post, ReplyFn reply) {
  if (customer_keys_ != nullptr) {  // personal data leaves sealed records opened
    reply = [keys = customer_keys_, inner = std::move(reply)](HttpReply answer) {
      if (answer.status == 200) answer.body = reveal_personal_data(*keys, std::move(answer.body));
      inner(std::move(answer));
    };
  }
  const RouteMatch m = match_route(method, target);
  if (m.error) return reply(error_reply(*m.error, request_id, m.allow));
  const RouteAccess access = route_access(m.route);
  // With an admin listener, the operators' routes do not exist on the main one: answered as
  // any unknown path is, so the main port tells nothing about them.
  if (admin_listener_ && !headers.admin_listener && !access.public_route &&
      (access.roles & ~kOperatorRoles) == 0) {
    return reply(error_reply(
        make_error(ErrorCode::route_not_found, "no route for " + std::string(method) + " " +
                                                   std::string(target.substr(0, target.find('?')))),
        request_id));
  }
  std::optional<Caller> caller;
  std::optional<security::SignatureHeader> nonce;
  if (!access.public_route) {
    Admitted admitted;
    if (auto refused = admit(access, method, target, headers, body, request_id, &admitted)) {
      return reply(std::move(*refused));
    }
    caller = std::move(admitted.caller);
    nonce = std::move(admitted.nonce);
  }
  const auto r =
      std::make_shared<const Responder>(std::move(post), std::move(reply), std::move(request_id));
  if (!nonce) return dispatch(m, caller ? &*caller : nullptr, method, target, headers, body, r);
  // The nonce is durable before the write runs: a replay, even after a restart, is refused.
  engine_->security_command(
      security::cmd::UseNonce{caller->key_id, nonce->nonce, nonce->t},
      on_io_thread<security::Result>(r, [this, r, m, caller = *caller, method = std::string(method),
                                         target = std::string(target), headers,
                                         body = std::move(body)](const Responder& responder,
                                                                 security::Result result) {
        if (result == security::Result::nonce_reused) {
          return responder.fail(make_error(ErrorCode::nonce_reused,
                                           "this key signed a request with this nonce "
                                           "before: sign each request with a new one"));
        }
        if (result != security::Result::ok) {
          return responder.fail(make_error(
              ErrorCode::overloaded, "too many signed writes in the last minutes; retry later"));
        }
        dispatch(m, &caller, method, target, headers, body, r);
      }));
}

void Service::dispatch(const RouteMatch& m, const Caller* caller, std::string_view method,
                       std::string_view target, const RequestHeaders& headers,
                       std::string_view body, const ResponderPtr& r) {
  if (payments_->handle(m, caller ? &*caller : nullptr, method, target, headers, body, r)) return;
  if (keys_->handle(m, body, r)) return;
  switch (m.route) {
    case Route::create_accounts:
      return create_accounts(engine_, body, r);
    case Route::create_transfers:
      return create_transfers(engine_, body, r);
    case Route::get_account:
      if (hidden_from(*caller, payments::is_reserved_account_id(m.id))) {
        return r->fail(not_found("account", m.id));
      }
      return get_account(engine_, m.id, r);
    case Route::get_transfer:
      if (hidden_from(*caller, payments::is_reserved_transfer_id(m.id))) {
        return r->fail(not_found("transfer", m.id));
      }
      return get_transfer(engine_, m.id, r);
    case Route::list_account_transfers:
      if (hidden_from(*caller, payments::is_reserved_account_id(m.id))) {
        return r->fail(not_found("account", m.id));
      }
      return list_account_transfers(engine_, m, r);
    case Route::close_account:
      return set_account_closed(engine_, m.id, true, body, r);
    case Route::reopen_account:
      return set_account_closed(engine_, m.id, false, body, r);
    case Route::admin_status:
      return admin_status(engine_, m, r);
    case Route::admin_snapshot:
      return admin_snapshot(engine_, body, r);
    case Route::audit_head:
      return engine_->get_status(false, on_io_thread<engine::EngineStatus>(
                                            r, [](const Responder& r, engine::EngineStatus s) {
                                              r.ok(audit_head_to_json(s));
                                            }));
    case Route::healthz:
      return r->ok(json::object{{"status", "ok"}});
    case Route::metrics: {
      engine::Engine* engine = engine_;
      std::string psp = psp_stats_ ? psp_metrics_text(psp_stats_()) : std::string();
      psp += certificate_metrics_text(certificates_, wall_now_() / kNanosPerSecond);
      psp += vault_metrics_text(vault_, customer_keys_);
      return engine_->get_status(
          false,
          on_io_thread<engine::EngineStatus>(
              r, [engine, r, psp = std::move(psp)](const Responder&, engine::EngineStatus s) {
                engine->get_channels(on_io_thread<std::vector<engine::ChannelStatus>>(
                    r, [text = metrics_text(s) + psp](const Responder& r,
                                                      std::vector<engine::ChannelStatus> channels) {
                      HttpReply reply{200, text + channel_metrics_text(channels)};
                      reply.content_type = "text/plain; version=0.0.4";
                      r.reply(std::move(reply));
                    }));
              }));
    }
    case Route::list_channels:
      return engine_->get_channels(on_io_thread<std::vector<engine::ChannelStatus>>(
          r, [](const Responder& r, std::vector<engine::ChannelStatus> channels) {
            HttpReply reply{200, channels_to_json(channels)};
            r.reply(std::move(reply));
          }));
    case Route::readyz:
      if (draining_.load() || !engine_->healthy()) {
        return r->fail(make_error(ErrorCode::unavailable, "not ready"));
      }
      return r->ok(json::object{{"status", "ready"}});
    default:
      break;
  }
  r->fail(make_error(ErrorCode::internal_error, "unhandled route"));
}

}  // namespace keel::api
