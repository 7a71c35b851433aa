// The payment routes of the HTTP API: customers, merchants, wallets, payments, PSP webhooks.
// Parses and checks each request on the I/O thread, turns it into one payments::Command or
// payments::Query for the engine, and writes the engine's answer. Bad input never reaches the
// engine.

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <ctime>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>

#include "api/json_codec.h"
#include "api/router.h"
#include "api/service.h"
#include "api/service_internal.h"
#include "connectors/operation.h"
#include "connectors/webhook_signature.h"
#include "core/ids.h"
#include "dispatch/psp_dispatcher.h"
#include "payments/commands.h"
#include "payments/payment.h"

namespace keel::api {
namespace json = boost::json;

namespace {

constexpr size_t kWebhookEventsRemembered = 100'000;
constexpr size_t kTextBytesMax = 200;
constexpr size_t kTokenBytesMax = 64;
constexpr size_t kListLimitMax = 100;  // the state machines' page limit

// A new object id: `prefix` and 24 random characters of [0-9A-Za-z].
std::string new_object_id(std::string_view prefix) {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id(prefix);
  for (int i = 0; i < 24; ++i) id.push_back(kAlphabet[rng() % 62]);
  return id;
}

// Reads the fields of one request object strictly: every field must be one the route takes.
class Fields {
 public:
  explicit Fields(const json::object* o) : o_(o) {}

  // The first field not in `allowed`, as an error.
  std::optional<ApiError> only(std::initializer_list<std::string_view> allowed) const {
    for (const auto& kv : *o_) {
      bool known = false;
      for (const std::string_view a : allowed) known = known || kv.key() == a;
      if (!known) {
        const std::string key(kv.key());
        return make_error(ErrorCode::parameter_unknown, "unknown field " + key, key);
      }
    }
    return std::nullopt;
  }

  // A string field; nullopt value when absent or null.
  Parsed<std::optional<std::string>> text(std::string_view key, size_t max_bytes) const {
    const json::value* v = o_->if_contains(key);
    if (v == nullptr || v->is_null()) return {};
    if (!v->is_string() || v->get_string().size() > max_bytes) {
      return {{},
              make_error(ErrorCode::parameter_invalid,
                         std::string(key) + " must be a string of at most " +
                             std::to_string(max_bytes) + " bytes",
                         std::string(key))};
    }
    return {std::string(v->get_string())};
  }

  Parsed<std::optional<int64_t>> amount(std::string_view key) const {
    const json::value* v = o_->if_contains(key);
    if (v == nullptr || v->is_null()) return {};
    if (v->is_int64() && v->get_int64() > 0) return {v->get_int64()};
    if (v->is_uint64() && v->get_uint64() > 0 &&
        v->get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
      return {static_cast<int64_t>(v->get_uint64())};
    }
    return {{},
            make_error(ErrorCode::amount_invalid,
                       std::string(key) + " must be an integer from 1 to 2^63-1 (minor units)",
                       std::string(key))};
  }

 private:
  const json::object* o_;
};

// The request body as an object; an empty body is an empty object.
Parsed<json::object> body_object(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return {json::object{}};
  auto doc = parse_json(body);
  if (!doc.ok()) return {{}, doc.error};
  if (!doc.value.is_object()) {
    return {{}, make_error(ErrorCode::body_invalid, "the body must be a JSON object")};
  }
  return {std::move(doc.value.get_object())};
}

ApiError missing(std::string_view key) {
  return make_error(ErrorCode::parameter_missing, std::string(key) + " is required",
                    std::string(key));
}

// The required "amount" and "currency" of a request, into the command's body.
template <typename Body>
std::optional<ApiError> read_money(const Fields& f, Body* c) {
  auto amount = f.amount("amount");
  if (!amount.ok()) return amount.error;
  if (!amount.value) return missing("amount");
  auto currency = f.text("currency", 3);
  if (!currency.ok()) return currency.error;
  if (!currency.value) return missing("currency");
  const auto cur = Currency::from_code(*currency.value);
  if (!cur) {
    return make_error(ErrorCode::currency_invalid, "not an ISO 4217 currency code", "currency");
  }
  c->amount = *amount.value;
  c->currency = *cur;
  return std::nullopt;
}

// A fingerprint of the request for its idempotency key: a keyed SHA-256 of method, path and
// body (32 bytes).
std::string fingerprint(std::string_view method, std::string_view target, std::string_view body) {
  const std::string hex = connectors::hmac_sha256_hex(
      "keel-idempotency-fingerprint",
      std::string(method) + " " + std::string(target) + "\n" + std::string(body));
  std::string raw;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    raw.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return raw;
}

HttpReply to_http(const payments::Reply& r, std::string_view request_id) {
  if (r.ok()) {
    HttpReply out{200, r.body};
    out.idempotent_replayed = r.replayed;
    return out;
  }
  return error_reply(make_error(error_code_of(*r.error), r.error_message, r.error_param),
                     request_id);
}

std::optional<Timestamp> parse_time_param(const QueryParams& q, std::string_view name,
                                          std::optional<ApiError>* error) {
  const auto v = query_value(q, name);
  if (!v) return Timestamp{0};
  const auto t = parse_rfc3339(*v);
  if (!t) {
    *error = make_error(ErrorCode::parameter_invalid,
                        std::string(name) + " must be an RFC 3339 time", std::string(name));
  }
  return t;
}

}  // namespace

bool PaymentRoutes::channel_known(std::string_view channel) const {
  for (const auto& c : options_.channels) {
    if (c == channel) return true;
  }
  return false;
}

// Sends `c` to the engine and answers with its reply.
void PaymentRoutes::submit(payments::Command c, int64_t wait_ms, const ResponderPtr& r) {
  engine_->payments_command(
      std::move(c), wait_ms,
      on_io_thread<payments::Reply>(r, [](const Responder& r, payments::Reply reply) {
        r.reply(to_http(reply, r.request_id));
      }));
}

void PaymentRoutes::query(payments::Query q, std::string what, const ResponderPtr& r) {
  const std::string id = q.id;
  engine_->payments_query(std::move(q),
                          on_io_thread<payments::QueryResult>(
                              r, [what, id](const Responder& r, payments::QueryResult result) {
                                if (!result.found) return r.fail(not_found(what, id));
                                r.reply(HttpReply{200, std::move(result.body)});
                              }));
}

// Fills the command's idempotency scope. Money-moving routes require a key.
std::optional<ApiError> PaymentRoutes::scope(const RequestHeaders& h, bool required,
                                             std::string_view method, std::string_view target,
                                             std::string_view body, payments::Command* c) const {
  if (!h.idempotency_key) {
    if (!required) return std::nullopt;
    return make_error(ErrorCode::idempotency_key_missing,
                      "this request moves money: send an Idempotency-Key header");
  }
  if (!payments::is_valid_idempotency_key(*h.idempotency_key)) {
    return make_error(ErrorCode::idempotency_key_invalid,
                      "Idempotency-Key must be 1-255 printable ASCII characters");
  }
  c->idempotency.client = options_.client;
  c->idempotency.key = *h.idempotency_key;
  c->idempotency.fingerprint = fingerprint(method, target, body);
  return std::nullopt;
}

void PaymentRoutes::create_customer(std::string_view body, payments::Command c,
                                    const ResponderPtr& r) {
  auto o = body_object(body);
  if (!o.ok()) return r->fail(*o.error);
  Fields f(&o.value);
  if (auto e = f.only({"name"})) return r->fail(*e);
  auto name = f.text("name", kTextBytesMax);
  if (!name.ok()) return r->fail(*name.error);
  c.body = payments::cmd::CreateCustomer{new_object_id("cus_"), name.value.value_or("")};
  submit(std::move(c), 0, r);
}

void PaymentRoutes::create_merchant(std::string_view body, payments::Command c,
                                    const ResponderPtr& r) {
  auto o = body_object(body);
  if (!o.ok()) return r->fail(*o.error);
  Fields f(&o.value);
  if (auto e = f.only({"name", "webhook_url", "webhook_secret"})) return r->fail(*e);
  auto name = f.text("name", kTextBytesMax);
  auto url = f.text("webhook_url", 2048);
  auto secret = f.text("webhook_secret", 256);
  for (const auto* p : {&name, &url, &secret}) {
    if (!p->ok()) return r->fail(*p->error);
  }
  if (url.value.has_value() != secret.value.has_value()) {
    return r->fail(make_error(ErrorCode::parameter_invalid,
                              "webhook_url and webhook_secret go together", "webhook_secret"));
  }
  if (url.value && !url.value->starts_with("http://") && !url.value->starts_with("https://")) {
    return r->fail(make_error(ErrorCode::parameter_invalid,
                              "webhook_url must be an http:// or https:// URL", "webhook_url"));
  }
  c.body = payments::cmd::CreateMerchant{new_object_id("mch_"), name.value.value_or(""),
                                         url.value.value_or(""), secret.value.value_or("")};
  submit(std::move(c), 0, r);
}

void PaymentRoutes::create_payment(std::string_view body, payments::Command c,
                                   const ResponderPtr& r) {
  auto o = body_object(body);
  if (!o.ok()) return r->fail(*o.error);
  Fields f(&o.value);
  if (auto e = f.only({"amount", "currency", "merchant", "payment_method", "capture_method",
                       "source", "customer"})) {
    return r->fail(*e);
  }
  payments::cmd::CreatePayment p;
  if (auto e = read_money(f, &p)) return r->fail(*e);
  auto merchant = f.text("merchant", 64);
  if (!merchant.ok()) return r->fail(*merchant.error);
  if (!merchant.value) return r->fail(missing("merchant"));
  auto method = f.text("payment_method", kTokenBytesMax);
  if (!method.ok()) return r->fail(*method.error);
  if (method.value && !payments::is_valid_reference(*method.value, kTokenBytesMax)) {
    return r->fail(make_error(ErrorCode::parameter_invalid,
                              "payment_method must be a card token of [A-Za-z0-9_-]",
                              "payment_method"));
  }
  auto capture = f.text("capture_method", 16);
  if (!capture.ok()) return r->fail(*capture.error);
  if (capture.value && *capture.value != "automatic" && *capture.value != "manual") {
    return r->fail(make_error(ErrorCode::parameter_invalid,
                              "capture_method must be automatic or manual", "capture_method"));
  }
  auto source = f.text("source", 16);
  if (!source.ok()) return r->fail(*source.error);
  if (source.value && *source.value != "card" && *source.value != "wallet") {
    return r->fail(
        make_error(ErrorCode::parameter_invalid, "source must be card or wallet", "source"));
  }
  auto customer = f.text("customer", 64);
  if (!customer.ok()) return r->fail(*customer.error);
  p.source_wallet = source.value == "wallet";
  if (p.source_wallet && !customer.value) return r->fail(missing("customer"));
  if (!p.source_wallet && !method.value) return r->fail(missing("payment_method"));
  p.customer_id = customer.value.value_or("");
  p.id = new_object_id("pay_");
  p.merchant_id = *merchant.value;
  p.instrument = method.value.value_or("");
  p.capture_manual = capture.value == "manual";
  c.body = std::move(p);
  submit(std::move(c), 0, r);
}

void PaymentRoutes::payment_step(const RouteMatch& m, std::string_view body, payments::Command c,
                                 const ResponderPtr& r) {
  auto o = body_object(body);
  if (!o.ok()) return r->fail(*o.error);
  Fields f(&o.value);
  switch (m.route) {
    case Route::confirm_payment: {
      if (auto e = f.only({"channel"})) return r->fail(*e);
      auto channel = f.text("channel", 40);
      if (!channel.ok()) return r->fail(*channel.error);
      payments::cmd::ConfirmPayment confirm{m.id, ""};
      if (!options_.routing || channel.value) {  // else the router chooses
        const auto picked = pick_channel(channel.value, r);
        if (!picked) return;
        confirm.channel = *picked;
      }
      c.body = std::move(confirm);
      break;
    }
    case Route::capture_payment: {
      if (auto e = f.only({"amount"})) return r->fail(*e);
      auto amount = f.amount("amount");
      if (!amount.ok()) return r->fail(*amount.error);
      c.body = payments::cmd::CapturePayment{m.id, amount.value.value_or(0)};
      break;
    }
    default:
      if (auto e = f.only({})) return r->fail(*e);
      c.body = payments::cmd::CancelPayment{m.id};
  }
  submit(std::move(c), options_.settle_wait_ms, r);
}

std::optional<std::string> PaymentRoutes::pick_channel(const std::optional<std::string>& named,
                                                       const ResponderPtr& r) const {
  if (options_.channels.empty()) {
    r->fail(
        make_error(ErrorCode::parameter_invalid, "keeld has no PSP channel configured", "channel"));
    return std::nullopt;
  }
  std::string channel = named.value_or(options_.channels.front());
  if (!channel_known(channel)) {
    r->fail(make_error(ErrorCode::parameter_invalid, "no channel named " + channel, "channel"));
    return std::nullopt;
  }
  return channel;
}

void PaymentRoutes::create_refund(std::string_view body, payments::Command c,
                                  const ResponderPtr& r) {
  auto o = body_object(body);
  if (!o.ok()) return r->fail(*o.error);
  Fields f(&o.value);
  if (auto e = f.only({"payment", "amount"})) return r->fail(*e);
  auto payment = f.text("payment", 64);
  if (!payment.ok()) return r->fail(*payment.error);
  if (!payment.value) return r->fail(missing("payment"));
  auto amount = f.amount("amount");
  if (!amount.ok()) return r->fail(*amount.error);
  c.body =
      payments::cmd::CreateRefund{new_object_id("re_"), *payment.value, amount.value.value_or(0)};
  submit(std::move(c), options_.settle_wait_ms, r);
}

// Top-ups, payouts and wallet transfers.
void PaymentRoutes::create_flow(Route route, std::string_view body, payments::Command c,
                                const ResponderPtr& r) {
  auto o = body_object(body);
  if (!o.ok()) return r->fail(*o.error);
  Fields f(&o.value);
  const bool transfer = route == Route::create_wallet_transfer;
  const bool topup = route == Route::create_topup;
  const std::string_view what = topup ? "source" : "destination";
  const std::string what_type = std::string(what) + "_type";
  std::optional<ApiError> unknown =
      transfer ? f.only({"from", "to", "amount", "currency"})
               : f.only({"customer", "amount", "currency", "channel", what, what_type});
  if (unknown) return r->fail(*unknown);
  payments::cmd::CreateFlow flow;
  if (auto e = read_money(f, &flow)) return r->fail(*e);
  if (transfer) {
    auto from = f.text("from", 64);
    auto to = f.text("to", 64);
    for (const auto* p : {&from, &to}) {
      if (!p->ok()) return r->fail(*p->error);
    }
    if (!from.value) return r->fail(missing("from"));
    if (!to.value) return r->fail(missing("to"));
    c.body = payments::cmd::CreateWalletTransfer{new_object_id("wt_"), *from.value, *to.value,
                                                 flow.amount, flow.currency};
    return submit(std::move(c), 0, r);
  }
  auto customer = f.text("customer", 64);
  auto channel = f.text("channel", 40);
  auto instrument = f.text(what, 128);
  auto type = f.text(what_type, 16);
  for (const auto* p : {&customer, &channel, &instrument, &type}) {
    if (!p->ok()) return r->fail(*p->error);
  }
  if (!customer.value) return r->fail(missing("customer"));
  if (!instrument.value) return r->fail(missing(what));
  if (!options_.routing || channel.value) {  // else the router chooses
    const auto picked = pick_channel(channel.value, r);
    if (!picked) return;
    flow.channel = *picked;
  }
  using K = payments::InstrumentKind;
  if (topup) {
    const std::string t = type.value.value_or("card_token");
    if (t != "card_token" && t != "bank_account") {
      return r->fail(make_error(ErrorCode::parameter_invalid,
                                "source_type must be card_token or bank_account", what_type));
    }
    flow.instrument_kind = t == "card_token" ? K::card_token : K::bank_account;
    flow.id = new_object_id("tu_");
  } else {
    const std::string t = type.value.value_or("iban");
    if (t != "iban" && t != "account") {
      return r->fail(make_error(ErrorCode::parameter_invalid,
                                "destination_type must be iban or account", what_type));
    }
    flow.instrument_kind = t == "iban" ? K::iban : K::account;
    flow.id = new_object_id("po_");
  }
  flow.customer_id = *customer.value;
  flow.instrument = *instrument.value;
  if (topup) {
    c.body = payments::cmd::CreateTopup{std::move(flow)};
  } else {
    c.body = payments::cmd::CreatePayout{std::move(flow)};
  }
  submit(std::move(c), options_.settle_wait_ms, r);
}

void PaymentRoutes::list_events(const RouteMatch& m, const ResponderPtr& r) {
  payments::Query q;
  q.kind = payments::QueryKind::list_events;
  const auto limit = parse_limit(m.query, payments::kEventListLimitMax);
  if (!limit) return r->fail(limit_error(payments::kEventListLimitMax));
  q.limit = *limit;
  q.starting_after = std::string(query_value(m.query, "starting_after").value_or(""));
  q.type = std::string(query_value(m.query, "type").value_or(""));
  q.object_id = std::string(query_value(m.query, "object_id").value_or(""));
  q.merchant_id = std::string(query_value(m.query, "merchant").value_or(""));
  list_query(std::move(q), r);
}

void PaymentRoutes::list_query(payments::Query q, const ResponderPtr& r) {
  engine_->payments_query(
      std::move(q),
      on_io_thread<payments::QueryResult>(r, [](const Responder& r, payments::QueryResult result) {
        if (!result.found) {
          return r.fail(make_error(ErrorCode::starting_after_invalid,
                                   "starting_after is not an item of this list", "starting_after"));
        }
        r.reply(HttpReply{200, std::move(result.body)});
      }));
}

// The review desk: every item a person must decide, oldest first (docs/payments.md).
void PaymentRoutes::list_reviews(const RouteMatch& m, const ResponderPtr& r) {
  payments::Query q;
  q.kind = payments::QueryKind::list_reviews;
  const auto limit = parse_limit(m.query, review::kListLimitMax);
  if (!limit) return r->fail(limit_error(review::kListLimitMax));
  q.limit = *limit;
  q.status = std::string(query_value(m.query, "status").value_or(""));
  if (!q.status.empty() && q.status != "open" && q.status != "resolved") {
    return r->fail(
        make_error(ErrorCode::parameter_invalid, "status must be open or resolved", "status"));
  }
  q.type = std::string(query_value(m.query, "reason").value_or(""));
  if (!q.type.empty() && !review::reason_from_name(q.type)) {
    return r->fail(make_error(ErrorCode::parameter_invalid,
                              "reason must be deadline_unknown or psp_result_rejected", "reason"));
  }
  q.starting_after = std::string(query_value(m.query, "starting_after").value_or(""));
  q.object_id = std::string(query_value(m.query, "object_id").value_or(""));
  list_query(std::move(q), r);
}

// The lists of payments, top-ups, payouts and wallet transfers: one set of filters.
void PaymentRoutes::list_objects(const RouteMatch& m, const ResponderPtr& r) {
  payments::Query q;
  const bool payments = m.route == Route::list_payments;
  q.kind = payments                         ? payments::QueryKind::list_payments
           : m.route == Route::list_topups  ? payments::QueryKind::list_topups
           : m.route == Route::list_payouts ? payments::QueryKind::list_payouts
                                            : payments::QueryKind::list_wallet_transfers;
  const auto limit = parse_limit(m.query, kListLimitMax);
  if (!limit) return r->fail(limit_error(kListLimitMax));
  q.limit = *limit;
  q.starting_after = std::string(query_value(m.query, "starting_after").value_or(""));
  q.status = std::string(query_value(m.query, "status").value_or(""));
  static constexpr std::string_view kPaymentStatuses[] = {"requires_confirmation",
                                                          "requires_action",
                                                          "processing",
                                                          "requires_capture",
                                                          "succeeded",
                                                          "failed",
                                                          "canceled"};
  static constexpr std::string_view kFlowStatuses[] = {"processing", "succeeded", "failed"};
  const auto known = [&](const auto& names) {
    return std::find(std::begin(names), std::end(names), q.status) != std::end(names);
  };
  if (!q.status.empty() && !(payments ? known(kPaymentStatuses) : known(kFlowStatuses))) {
    return r->fail(
        make_error(ErrorCode::parameter_invalid, "unknown status " + q.status, "status"));
  }
  q.merchant_id = std::string(query_value(m.query, "merchant").value_or(""));
  q.customer_id = std::string(query_value(m.query, "customer").value_or(""));
  std::optional<ApiError> error;
  q.created_gte = parse_time_param(m.query, "created_gte", &error).value_or(0);
  q.created_lt = parse_time_param(m.query, "created_lt", &error).value_or(0);
  if (error) return r->fail(*error);
  engine_->payments_query(
      std::move(q),
      on_io_thread<payments::QueryResult>(r, [](const Responder& r, payments::QueryResult result) {
        if (!result.found) {
          return r.fail(make_error(ErrorCode::starting_after_invalid,
                                   "starting_after is not an object of this list",
                                   "starting_after"));
        }
        r.reply(HttpReply{200, std::move(result.body)});
      }));
}

void PaymentRoutes::webhook(const RouteMatch& m, const RequestHeaders& h, std::string_view body,
                            const ResponderPtr& r) {
  const auto secret = options_.webhook_secrets.find(m.id);
  if (secret == options_.webhook_secrets.end()) return r->fail(not_found("channel", m.id));
  const auto check = connectors::verify_webhook(secret->second, h.psp_signature, body,
                                                static_cast<int64_t>(std::time(nullptr)));
  if (check != connectors::SignatureCheck::ok) {
    return r->fail(
        make_error(ErrorCode::signature_invalid,
                   "PSP-Signature: " + std::string(connectors::signature_check_name(check))));
  }
  auto o = body_object(body);
  if (!o.ok()) return r->fail(*o.error);
  const json::value* id = o.value.if_contains("id");
  const json::value* data = o.value.if_contains("data");
  if (id == nullptr || !id->is_string() || data == nullptr || !data->is_object()) {
    return r->fail(make_error(ErrorCode::body_invalid, "a webhook needs an id and a data object"));
  }
  const std::string event_id(id->get_string());
  // The id goes into the timeline as "webhook:{id}" (at most payments::kCauseLengthMax bytes).
  if (event_id.empty() || event_id.size() > payments::kWebhookEventLengthMax) {
    return r->fail(make_error(ErrorCode::body_invalid, "a webhook id is 1 to 100 bytes", "id"));
  }
  const auto op = connectors::parse_operation(json::serialize(*data));
  if (!op) return r->fail(make_error(ErrorCode::body_invalid, "data is not an operation", "data"));
  {
    std::lock_guard lock(mutex_);
    if (webhook_events_.contains(event_id)) {
      return r->reply(HttpReply{200, R"({"received":true,"duplicate":true})"});
    }
  }
  payments::Command c =
      dispatch::operation_status_command(m.id, *op, payments::ResultSource::webhook, event_id);
  engine_->payments_command(
      std::move(c), 0,
      on_io_thread<payments::Reply>(r, [this, event_id](const Responder& r, payments::Reply) {
        // Durable (or a no-op because already known): remember the event id, answer 200.
        {
          std::lock_guard lock(mutex_);
          if (webhook_events_.insert(event_id).second) webhook_order_.push_back(event_id);
          if (webhook_order_.size() > kWebhookEventsRemembered) {
            webhook_events_.erase(webhook_order_.front());
            webhook_order_.pop_front();
          }
        }
        r.reply(HttpReply{200, R"({"received":true})"});
      }));
}

void PaymentRoutes::control(const RouteMatch& m, const RequestHeaders& h, std::string_view body,
                            const ResponderPtr& r) {
  if (!options_.admin_controls || !h.loopback) {
    return r->fail(make_error(ErrorCode::route_not_found,
                              "runtime controls are served only when [admin] controls = true in "
                              "keeld.toml, and only to loopback clients"));
  }
  if (m.route == Route::admin_controls) {
    return query({payments::QueryKind::get_controls, ""}, "controls", r);
  }
  if (m.route == Route::admin_backup) return backup(body, r);
  auto o = body_object(body);
  if (!o.ok()) return r->fail(*o.error);
  Fields f(&o.value);
  payments::RuntimeControl k;
  k.target = m.id;
  switch (m.route) {
    case Route::admin_channel_canary: {
      if (auto e = f.only({"to", "share", "reason"})) return r->fail(*e);
      auto to = f.text("to", 40);
      if (!to.ok()) return r->fail(*to.error);
      const json::value* share = o.value.if_contains("share");
      if (share == nullptr || !share->is_int64() || share->get_int64() < 0 ||
          share->get_int64() > 100) {
        return r->fail(make_error(ErrorCode::parameter_invalid,
                                  "share must be an integer from 0 to 100 (percent)", "share"));
      }
      k.share_pct = static_cast<uint32_t>(share->get_int64());
      if (k.share_pct > 0 && !to.value) return r->fail(missing("to"));
      k.canary = to.value.value_or("");
      k.kind = payments::ControlKind::channel_canary;
      break;
    }
    case Route::admin_mode: {
      if (auto e = f.only({"read_only", "reason"})) return r->fail(*e);
      const json::value* ro = o.value.if_contains("read_only");
      if (ro == nullptr || !ro->is_bool()) {
        return r->fail(make_error(ErrorCode::parameter_invalid, "read_only must be true or false",
                                  "read_only"));
      }
      k.kind = ro->get_bool() ? payments::ControlKind::read_only_on
                              : payments::ControlKind::read_only_off;
      k.target.clear();
      break;
    }
    default:
      if (auto e = f.only({"reason"})) return r->fail(*e);
      k.kind = m.route == Route::admin_channel_pause    ? payments::ControlKind::channel_pause
               : m.route == Route::admin_channel_resume ? payments::ControlKind::channel_resume
               : m.route == Route::admin_channel_drain  ? payments::ControlKind::channel_drain
               : m.route == Route::admin_flow_disable   ? payments::ControlKind::flow_disable
                                                        : payments::ControlKind::flow_enable;
  }
  auto reason = f.text("reason", payments::kControlReasonLengthMax);
  if (!reason.ok()) return r->fail(*reason.error);
  k.reason = reason.value.value_or("");
  submit(payments::cmd::Control{std::move(k)}, 0, r);
}

void PaymentRoutes::backup(std::string_view body, const ResponderPtr& r) {
  auto o = body_object(body);
  if (!o.ok()) return r->fail(*o.error);
  Fields f(&o.value);
  if (auto e = f.only({"dir"})) return r->fail(*e);
  auto dir = f.text("dir", 4096);
  if (!dir.ok()) return r->fail(*dir.error);
  if (!dir.value) return r->fail(missing("dir"));
  const std::filesystem::path path(*dir.value);
  if (!path.is_absolute() || !engine::absent_or_empty_dir(path)) {
    return r->fail(make_error(ErrorCode::parameter_invalid,
                              "dir must be an absolute path that does not exist or is an empty "
                              "directory, on keeld's machine",
                              "dir"));
  }
  engine_->backup(path, on_io_thread<engine::BackupResult>(r, [path](const Responder& r,
                                                                     engine::BackupResult b) {
                    if (!b.status.is_ok()) {
                      return r.fail(make_error(ErrorCode::backup_failed, b.status.message()));
                    }
                    r.ok(json::object{{"result", "ok"},
                                      {"dir", path.string()},
                                      {"seq", b.seq},
                                      {"snapshot_bytes", b.snapshot_bytes},
                                      {"with_store", b.with_store}});
                  }));
}

bool PaymentRoutes::handle(const RouteMatch& m, std::string_view method, std::string_view target,
                           const RequestHeaders& h, std::string_view body, const ResponderPtr& r) {
  if (m.route < Route::create_customer) return false;
  payments::Command c;
  const bool moves_money = m.route == Route::create_payment || m.route == Route::confirm_payment ||
                           m.route == Route::capture_payment || m.route == Route::cancel_payment ||
                           m.route == Route::create_refund || m.route == Route::create_topup ||
                           m.route == Route::create_payout ||
                           m.route == Route::create_wallet_transfer;
  const bool takes_key =
      moves_money || m.route == Route::create_customer || m.route == Route::create_merchant;
  if (takes_key) {
    if (auto e = scope(h, moves_money, method, target, body, &c)) {
      r->fail(*e);
      return true;
    }
  }
  // The request's trace goes with the PSP calls it causes (server.cc keeps only valid ones).
  if (moves_money && h.traceparent.size() == payments::kTraceparentLength) {
    c.traceparent = h.traceparent;
  }
  switch (m.route) {
    case Route::create_customer:
      create_customer(body, std::move(c), r);
      return true;
    case Route::create_merchant:
      create_merchant(body, std::move(c), r);
      return true;
    case Route::create_payment:
      create_payment(body, std::move(c), r);
      return true;
    case Route::confirm_payment:
    case Route::capture_payment:
    case Route::cancel_payment:
      payment_step(m, body, std::move(c), r);
      return true;
    case Route::get_customer:
      query({payments::QueryKind::get_customer, m.id}, "customer", r);
      return true;
    case Route::get_merchant:
      query({payments::QueryKind::get_merchant, m.id}, "merchant", r);
      return true;
    case Route::get_wallet:
      query({payments::QueryKind::get_wallet, m.id}, "wallet", r);
      return true;
    case Route::get_payment:
      query({payments::QueryKind::get_payment, m.id}, "payment", r);
      return true;
    case Route::list_payments:
    case Route::list_topups:
    case Route::list_payouts:
    case Route::list_wallet_transfers:
      list_objects(m, r);
      return true;
    case Route::psp_webhook:
      webhook(m, h, body, r);
      return true;
    case Route::create_refund:
      create_refund(body, std::move(c), r);
      return true;
    case Route::create_topup:
    case Route::create_payout:
    case Route::create_wallet_transfer:
      create_flow(m.route, body, std::move(c), r);
      return true;
    case Route::get_refund:
      query({payments::QueryKind::get_refund, m.id}, "refund", r);
      return true;
    case Route::get_topup:
      query({payments::QueryKind::get_topup, m.id}, "topup", r);
      return true;
    case Route::get_payout:
      query({payments::QueryKind::get_payout, m.id}, "payout", r);
      return true;
    case Route::get_wallet_transfer:
      query({payments::QueryKind::get_wallet_transfer, m.id}, "wallet transfer", r);
      return true;
    case Route::list_events:
      list_events(m, r);
      return true;
    case Route::list_reviews:
      list_reviews(m, r);
      return true;
    case Route::admin_channel_pause:
    case Route::admin_channel_resume:
    case Route::admin_channel_drain:
    case Route::admin_channel_canary:
    case Route::admin_mode:
    case Route::admin_flow_disable:
    case Route::admin_flow_enable:
    case Route::admin_controls:
    case Route::admin_backup:
      control(m, h, body, r);
      return true;
    default:
      return false;
  }
}

}  // namespace keel::api
