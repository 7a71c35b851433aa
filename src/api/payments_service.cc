// The payment routes of the HTTP API: customers, merchants, wallets, payments, PSP webhooks.
// Parses and checks each request on the I/O thread, turns it into one payments::Command or
// payments::Query for the engine, and writes the engine's answer. Bad input never reaches the
// engine.

#include <spdlog/spdlog.h>
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
#include "core/assert.h"
#include "core/ids.h"
#include "dispatch/psp_dispatcher.h"
#include "payments/commands.h"
#include "payments/payment.h"
#include "security/request_signing.h"

namespace keel::api {
namespace json = boost::json;

namespace {

constexpr size_t kWebhookEventsRemembered = 100'000;
constexpr size_t kTextBytesMax = 200;
constexpr size_t kTokenBytesMax = 64;
constexpr size_t kListLimitMax = 100;  // the state machines' page limit
// A webhook secret rotation's overlap when the request names none: a day.
constexpr int64_t kWebhookSecretOverlapDefaultS = 24 * 3600;

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

// Whether a payment (as rendered) is the caller's: its merchant's, or its customer's.
bool owns_payment(const Caller& caller, const json::object& payment) {
  if (caller.sees_all()) return true;
  if (caller.is_merchant()) return string_field(payment, "merchant") == caller.owner;
  if (caller.is_customer()) return string_field(payment, "customer") == caller.owner;
  return false;
}

// Whether a top-up, payout or wallet transfer is the caller's (a transfer: either side's).
bool owns_flow(const Caller& caller, const json::object& flow) {
  if (caller.sees_all()) return true;
  if (!caller.is_customer()) return false;
  return string_field(flow, "customer") == caller.owner ||
         string_field(flow, "from") == caller.owner || string_field(flow, "to") == caller.owner;
}

// A customer_app key acts for its own customer: an absent field is it, and another customer
// answers as one that does not exist.
std::optional<ApiError> own_customer(const Caller& caller, std::optional<std::string>* field,
                                     std::string_view param) {
  if (!caller.is_customer()) return std::nullopt;
  if (*field && **field != caller.owner) {
    return make_error(ErrorCode::customer_not_found, "no customer with id " + **field,
                      std::string(param));
  }
  *field = caller.owner;
  return std::nullopt;
}

// A page with nothing on it: a list filtered to another tenant than the caller's.
HttpReply empty_page() { return HttpReply{200, R"({"object":"list","data":[],"has_more":false})"}; }

// Confines a list filter to the caller's tenant. False: the filter names another tenant, so the
// page is empty.
bool confine(std::string* filter, const Caller& caller, bool tenant_kind) {
  if (caller.sees_all() || !tenant_kind) return true;
  if (!filter->empty() && *filter != caller.owner) return false;
  *filter = caller.owner;
  return true;
}

}  // namespace

std::string_view string_field(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  return v != nullptr && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
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

// A new object id: `prefix` and 24 random characters of [0-9A-Za-z].
std::string new_object_id(std::string_view prefix) {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id(prefix);
  for (int i = 0; i < 24; ++i) id.push_back(kAlphabet[rng() % 62]);
  return id;
}

void PaymentRoutes::read_owned(payments::Query q, std::string what, const ResponderPtr& r,
                               std::function<bool(const json::object&)> owns,
                               std::function<void(const json::object&)> then) {
  const std::string id = q.id;
  engine_->payments_query(
      std::move(q),
      on_io_thread<payments::QueryResult>(
          r, [what, id, owns = std::move(owns), then = std::move(then)](
                 const Responder& r, payments::QueryResult result) {
            if (!result.found) return r.fail(not_found(what, id));
            const auto doc = parse_json(result.body);
            // Another tenant's object answers as one that does not exist: never 403, never data.
            if (!doc.ok() || !doc.value.is_object() || !owns(doc.value.get_object())) {
              return r.fail(not_found(what, id));
            }
            then(doc.value.get_object());
          }));
}

void PaymentRoutes::query_owned(payments::Query q, std::string what, const Caller& caller,
                                const ResponderPtr& r,
                                std::function<bool(const json::object&)> owns) {
  if (caller.sees_all()) return query(std::move(q), std::move(what), r);
  read_owned(std::move(q), std::move(what), r, std::move(owns),
             [r](const json::object& o) { r->ok(o); });
}

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
std::optional<ApiError> PaymentRoutes::scope(const Caller& caller, const RequestHeaders& h,
                                             bool required, std::string_view method,
                                             std::string_view target, std::string_view body,
                                             payments::Command* c) const {
  if (!h.idempotency_key) {
    if (!required) return std::nullopt;
    return make_error(ErrorCode::idempotency_key_missing,
                      "this request moves money: send an Idempotency-Key header");
  }
  if (!payments::is_valid_idempotency_key(*h.idempotency_key)) {
    return make_error(ErrorCode::idempotency_key_invalid,
                      "Idempotency-Key must be 1-255 printable ASCII characters");
  }
  c->idempotency.client = caller.idempotency_client();
  c->idempotency.key = *h.idempotency_key;
  c->idempotency.fingerprint = fingerprint(method, target, body);
  return std::nullopt;
}

// Seals `*value` under the customer's personal data key, in place (no key store: kept as sent).
std::optional<ApiError> PaymentRoutes::seal_personal(const std::string& customer_id,
                                                     std::string_view field,
                                                     const std::string& record_id,
                                                     std::string* value) const {
  vault::CustomerKeys* keys = options_.customer_keys;
  if (keys == nullptr) return std::nullopt;
  if (!vault::valid_customer_key_id(customer_id)) {  // no customer has such an id
    return make_error(ErrorCode::customer_not_found, "no customer with id " + customer_id,
                      "customer");
  }
  std::string sealed;
  vault::CustomerKeys::Found found = vault::CustomerKeys::Found::missing;
  if (Status s = keys->seal(customer_id, field, record_id, *value, &sealed, &found); !s.is_ok()) {
    spdlog::error("personal data: cannot seal the {} of {}: {}", field, record_id, s.message());
    return make_error(ErrorCode::vault_failed, "the personal data key store failed");
  }
  if (found == vault::CustomerKeys::Found::erased) {
    return make_error(ErrorCode::customer_erased, "customer " + customer_id + " was erased",
                      "customer");
  }
  *value = std::move(sealed);
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
  payments::cmd::CreateCustomer create{new_object_id("cus_"), name.value.value_or("")};
  if (!create.name.empty()) {
    if (auto e = seal_personal(create.id, vault::kCustomerNameField, create.id, &create.name)) {
      return r->fail(*e);
    }
  }
  c.body = std::move(create);
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
  const std::string id = new_object_id("mch_");
  std::string stored = secret.value.value_or("");
  // Sealed by the vault before any command holds it (docs/security.md, "The card vault").
  if (options_.vault != nullptr && !stored.empty()) {
    if (vault::is_sealed_secret(stored) || !payments::is_valid_endpoint_secret(stored)) {
      return r->fail(make_error(ErrorCode::parameter_invalid,
                                "webhook_secret must be 1 to 256 bytes of printable ASCII",
                                "webhook_secret"));
    }
    stored = options_.vault->seal_webhook_secret(id, stored);
  }
  c.body = payments::cmd::CreateMerchant{id, name.value.value_or(""), url.value.value_or(""),
                                         std::move(stored)};
  submit(std::move(c), 0, r);
}

// The new secret is the caller's, or 256 random bits ("whsec_" + 64 hex digits); either way the
// answer shows it (it is journaled, as the merchant's first secret is).
void PaymentRoutes::rotate_webhook_secret(std::string_view merchant_id, std::string_view body,
                                          const ResponderPtr& r) {
  auto o = body_object(body);
  if (!o.ok()) return r->fail(*o.error);
  Fields f(&o.value);
  if (auto e = f.only({"secret", "overlap_seconds"})) return r->fail(*e);
  auto secret = f.text("secret", 256);
  if (!secret.ok()) return r->fail(*secret.error);
  auto overlap = f.integer("overlap_seconds", 0, payments::kWebhookSecretOverlapMaxS);
  if (!overlap.ok()) return r->fail(*overlap.error);
  payments::cmd::RotateWebhookSecret rotate;
  rotate.merchant_id = std::string(merchant_id);
  const std::string clear =
      secret.value.value_or("whsec_" + security::new_nonce() + security::new_nonce());
  rotate.secret = clear;
  rotate.overlap_s = overlap.value.value_or(kWebhookSecretOverlapDefaultS);
  if (options_.vault == nullptr) return submit(std::move(rotate), 0, r);
  if (vault::is_sealed_secret(clear) || !payments::is_valid_endpoint_secret(clear)) {
    return r->fail(make_error(ErrorCode::parameter_invalid,
                              "secret must be 1 to 256 bytes of printable ASCII", "secret"));
  }
  // Journaled sealed; the answer shows the new secret in clear, once. Sealed bytes differ each
  // time, so the current secret is opened first to refuse a rotation to itself.
  vault::Vault* v = options_.vault;
  engine::Engine* engine = engine_;
  payments::Query current;
  current.kind = payments::QueryKind::webhook_secrets;
  current.merchant_id = std::string(merchant_id);
  engine_->payments_query(
      std::move(current),
      on_io_thread<payments::QueryResult>(
          r, [v, engine, r, clear, rotate = std::move(rotate)](
                 const Responder&, payments::QueryResult stored) mutable {
            std::string now;
            if (!stored.secrets.empty() &&
                v->open_webhook_secret(rotate.merchant_id, stored.secrets.front().second, &now)
                    .is_ok() &&
                now == clear) {
              return r->fail(
                  make_error(ErrorCode::unchanged, "the new secret is the current one", "secret"));
            }
            rotate.secret = v->seal_webhook_secret(rotate.merchant_id, clear);
            engine->payments_command(std::move(rotate), 0,
                                     on_io_thread<payments::Reply>(
                                         r, [clear](const Responder& r, payments::Reply reply) {
                                           if (reply.ok()) {
                                             auto doc = parse_json(reply.body);
                                             if (doc.ok() && doc.value.is_object()) {
                                               doc.value.get_object()["webhook_secret"] = clear;
                                               reply.body = json::serialize(doc.value);
                                             }
                                           }
                                           r.reply(to_http(reply, r.request_id));
                                         }));
          }));
}

void PaymentRoutes::create_payment(const Caller& caller, std::string_view body, payments::Command c,
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
  if (caller.is_merchant()) {
    // A merchant key creates payments for its own merchant; another merchant does not exist.
    if (merchant.value && *merchant.value != caller.owner) {
      return r->fail(make_error(ErrorCode::merchant_not_found,
                                "no merchant with id " + *merchant.value, "merchant"));
    }
    merchant.value = caller.owner;
  }
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

void PaymentRoutes::payment_step(const Caller& caller, const RouteMatch& m, std::string_view body,
                                 payments::Command c, const ResponderPtr& r) {
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
  if (caller.sees_all()) return submit(std::move(c), options_.settle_wait_ms, r);
  // A merchant steps its own card payments; a wallet payment is confirmed by its customer's
  // app, which pays from its wallet (the merchant cannot spend a customer's balance).
  const bool confirm = m.route == Route::confirm_payment;
  read_owned(
      {payments::QueryKind::get_payment, m.id}, "payment", r,
      [caller](const json::object& p) { return owns_payment(caller, p); },
      [this, r, confirm, caller, c = std::move(c)](const json::object& p) mutable {
        const bool wallet = string_field(p, "source") == "wallet";
        if (confirm && wallet != caller.is_customer()) {
          return r->fail(make_error(ErrorCode::permission_denied,
                                    wallet
                                        ? "a wallet payment is confirmed by its customer's app key"
                                        : "a card payment is confirmed by its merchant's key"));
        }
        submit(std::move(c), options_.settle_wait_ms, r);
      });
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

void PaymentRoutes::create_refund(const Caller& caller, std::string_view body, payments::Command c,
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
  if (caller.sees_all()) return submit(std::move(c), options_.settle_wait_ms, r);
  // Another merchant's payment answers as one that does not exist.
  const std::string id = *payment.value;
  engine_->payments_query({payments::QueryKind::get_payment, id},
                          on_io_thread<payments::QueryResult>(
                              r, [this, r, caller, id, c = std::move(c)](
                                     const Responder&, payments::QueryResult result) mutable {
                                const auto doc =
                                    result.found ? parse_json(result.body) : Parsed<json::value>{};
                                if (!result.found || !doc.ok() || !doc.value.is_object() ||
                                    !owns_payment(caller, doc.value.get_object())) {
                                  return r->fail(make_error(ErrorCode::payment_not_found,
                                                            "no payment with id " + id, "payment"));
                                }
                                submit(std::move(c), options_.settle_wait_ms, r);
                              }));
}

void PaymentRoutes::get_refund(const Caller& caller, const std::string& id, const ResponderPtr& r) {
  if (caller.sees_all()) return query({payments::QueryKind::get_refund, id}, "refund", r);
  // A refund is its payment's merchant's.
  read_owned(
      {payments::QueryKind::get_refund, id}, "refund", r, [](const json::object&) { return true; },
      [this, r, caller, id](const json::object& refund) {
        json::object body = refund;
        read_owned(
            {payments::QueryKind::get_payment, std::string(string_field(refund, "payment"))},
            "refund", r, [caller](const json::object& p) { return owns_payment(caller, p); },
            [r, body = std::move(body)](const json::object&) { r->ok(body); });
      });
}

// Top-ups, payouts and wallet transfers.
void PaymentRoutes::create_flow(const Caller& caller, Route route, std::string_view body,
                                payments::Command c, const ResponderPtr& r) {
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
    if (auto e = own_customer(caller, &from.value, "from")) return r->fail(*e);
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
  if (auto e = own_customer(caller, &customer.value, "customer")) return r->fail(*e);
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
  // Checked here, before it is sealed and the core can no longer see what it is.
  if (topup && flow.instrument.starts_with(vault::kPaymentMethodPrefix)) {
    return r->fail(make_error(ErrorCode::parameter_invalid,
                              "top-ups take a PSP's card token or a bank account; vault cards "
                              "(pm_) pay card payments",
                              "source"));
  }
  if (auto e = seal_personal(flow.customer_id,
                             topup ? vault::kTopupSourceField : vault::kPayoutDestinationField,
                             flow.id, &flow.instrument)) {
    return r->fail(*e);
  }
  if (topup) {
    c.body = payments::cmd::CreateTopup{std::move(flow)};
  } else {
    c.body = payments::cmd::CreatePayout{std::move(flow)};
  }
  submit(std::move(c), options_.settle_wait_ms, r);
}

void PaymentRoutes::list_events(const Caller& caller, const RouteMatch& m, const ResponderPtr& r) {
  payments::Query q;
  q.kind = payments::QueryKind::list_events;
  const auto limit = parse_limit(m.query, payments::kEventListLimitMax);
  if (!limit) return r->fail(limit_error(payments::kEventListLimitMax));
  q.limit = *limit;
  q.starting_after = std::string(query_value(m.query, "starting_after").value_or(""));
  q.type = std::string(query_value(m.query, "type").value_or(""));
  q.object_id = std::string(query_value(m.query, "object_id").value_or(""));
  q.merchant_id = std::string(query_value(m.query, "merchant").value_or(""));
  if (!confine(&q.merchant_id, caller, caller.is_merchant())) return r->reply(empty_page());
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
void PaymentRoutes::list_objects(const Caller& caller, const RouteMatch& m, const ResponderPtr& r) {
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
  if (!confine(&q.merchant_id, caller, caller.is_merchant()) ||
      !confine(&q.customer_id, caller, caller.is_customer())) {
    return r->reply(empty_page());
  }
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
  const auto secrets = options_.webhook_secrets.find(m.id);
  if (secrets == options_.webhook_secrets.end()) return r->fail(not_found("channel", m.id));
  // Any of the channel's secrets (a rotation's overlap); the first one's answer otherwise.
  auto check = connectors::SignatureCheck::malformed;
  for (size_t i = 0; i < secrets->second.size(); ++i) {
    const auto c = connectors::verify_webhook(secrets->second[i], h.psp_signature, body,
                                              options_.clock != nullptr
                                                  ? options_.clock->now() / kNanosPerSecond
                                                  : static_cast<int64_t>(std::time(nullptr)));
    if (i == 0 || c == connectors::SignatureCheck::ok) check = c;
    if (check == connectors::SignatureCheck::ok) break;
  }
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

// The movable clock (tests only; docs/testing.md, "A clock tests can move"): where it
// stands, and a move forward. Not journaled: the offset is kept in DATA/clock-offset, and the
// engine's stamps stay strictly increasing whatever the clock says.
void PaymentRoutes::clock_route(bool advance, std::string_view body, const ResponderPtr& r) {
  MovableClock* clock = options_.clock;
  if (clock == nullptr) {
    return r->fail(make_error(ErrorCode::route_not_found,
                              "the clock moves only when [testing] movable_clock = true in "
                              "keeld.toml (tests only)"));
  }
  if (advance) {
    auto o = body_object(body);
    if (!o.ok()) return r->fail(*o.error);
    const json::value* seconds = o.value.if_contains("seconds");
    if (o.value.size() != 1 || seconds == nullptr || !seconds->is_int64() ||
        seconds->get_int64() < 1 ||
        seconds->get_int64() > MovableClock::kAdvanceMaxNs / kNanosPerSecond) {
      return r->fail(make_error(ErrorCode::parameter_invalid,
                                "the body is {\"seconds\": N}, N a whole number of seconds from 1 "
                                "to 31622400 (366 days)",
                                "seconds"));
    }
    if (Status s = clock->advance(seconds->get_int64() * kNanosPerSecond); !s.is_ok()) {
      return r->fail(make_error(ErrorCode::parameter_invalid, s.message(), "seconds"));
    }
  }
  r->ok(json::object{{"object", "clock"},
                     {"now", format_rfc3339(clock->now())},
                     {"offset_seconds", clock->offset_ns() / kNanosPerSecond}});
}

void PaymentRoutes::control(const RouteMatch& m, std::string_view body, const ResponderPtr& r) {
  if (!options_.admin_controls) {
    return r->fail(make_error(ErrorCode::route_not_found,
                              "runtime controls are served only when [admin] controls = true in "
                              "keeld.toml"));
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

bool PaymentRoutes::handle(const RouteMatch& m, const Caller* caller, std::string_view method,
                           std::string_view target, const RequestHeaders& h, std::string_view body,
                           const ResponderPtr& r) {
  const bool vault_route =
      m.route >= Route::create_payment_method && m.route <= Route::vault_rotate;
  if (!vault_route && (m.route < Route::create_customer || m.route > Route::admin_backup)) {
    return false;
  }
  if (m.route == Route::psp_webhook) {  // public: its PSP-Signature authenticates it
    webhook(m, h, body, r);
    return true;
  }
  KEEL_ASSERT(caller != nullptr);
  const Caller& who = *caller;
  payments::Command c;
  const bool moves_money = m.route == Route::create_payment || m.route == Route::confirm_payment ||
                           m.route == Route::capture_payment || m.route == Route::cancel_payment ||
                           m.route == Route::create_refund || m.route == Route::create_topup ||
                           m.route == Route::create_payout ||
                           m.route == Route::create_wallet_transfer;
  const bool takes_key =
      moves_money || m.route == Route::create_customer || m.route == Route::create_merchant;
  if (takes_key) {
    // A merchant's body carries its webhook secret, a customer's their name, a top-up's or a
    // payout's an account: their fingerprint is a keyed digest, never a plain hash of it.
    const bool secret_body = m.route == Route::create_merchant ||
                             m.route == Route::create_customer || m.route == Route::create_topup ||
                             m.route == Route::create_payout;
    const std::string digest = secret_body && options_.vault != nullptr
                                   ? options_.vault->keyed_digest(body)
                                   : std::string();
    if (auto e = scope(who, h, moves_money, method, target, digest.empty() ? body : digest, &c)) {
      r->fail(*e);
      return true;
    }
  }
  // The request's trace goes with the PSP calls it causes (server.cc keeps only valid ones).
  if (moves_money && h.traceparent.size() == payments::kTraceparentLength) {
    c.traceparent = h.traceparent;
  }
  // The customer's and merchant's own records: another one's answers 404.
  const bool own_customer_id = !who.is_customer() || m.id == who.owner;
  const bool own_merchant_id = !who.is_merchant() || m.id == who.owner;
  const auto owns_payment_of = [who](const json::object& o) { return owns_payment(who, o); };
  const auto owns_flow_of = [who](const json::object& o) { return owns_flow(who, o); };
  switch (m.route) {
    case Route::create_customer:
      create_customer(body, std::move(c), r);
      return true;
    case Route::create_merchant:
      create_merchant(body, std::move(c), r);
      return true;
    case Route::create_payment:
      create_payment(who, body, std::move(c), r);
      return true;
    case Route::confirm_payment:
    case Route::capture_payment:
    case Route::cancel_payment:
      payment_step(who, m, body, std::move(c), r);
      return true;
    case Route::get_customer:
      if (!own_customer_id) {
        r->fail(not_found("customer", m.id));
        return true;
      }
      query({payments::QueryKind::get_customer, m.id}, "customer", r);
      return true;
    case Route::erase_customer:
      erase_customer(m.id, body, r);
      return true;
    case Route::get_merchant:
      if (!own_merchant_id) {
        r->fail(not_found("merchant", m.id));
        return true;
      }
      query({payments::QueryKind::get_merchant, m.id}, "merchant", r);
      return true;
    case Route::rotate_webhook_secret:
      if (!own_merchant_id) {
        r->fail(not_found("merchant", m.id));
        return true;
      }
      rotate_webhook_secret(m.id, body, r);
      return true;
    case Route::get_wallet:
      if (!own_customer_id) {
        r->fail(not_found("wallet", m.id));
        return true;
      }
      query({payments::QueryKind::get_wallet, m.id}, "wallet", r);
      return true;
    case Route::get_payment:
      query_owned({payments::QueryKind::get_payment, m.id}, "payment", who, r, owns_payment_of);
      return true;
    case Route::create_payment_method:
      create_payment_method(who, h, method, target, body, r);
      return true;
    case Route::get_payment_method:  // shown as its owner's, like a payment
      query_owned({payments::QueryKind::get_payment_method, m.id}, "payment method", who, r,
                  owns_payment_of);
      return true;
    case Route::detach_payment_method:
      detach_payment_method(who, h, m.id, method, target, body, r);
      return true;
    case Route::vault_status:
      vault_status(r);
      return true;
    case Route::vault_rotate:
      vault_rotate(body, r);
      return true;
    case Route::list_payments:
    case Route::list_topups:
    case Route::list_payouts:
    case Route::list_wallet_transfers:
      list_objects(who, m, r);
      return true;
    case Route::create_refund:
      create_refund(who, body, std::move(c), r);
      return true;
    case Route::create_topup:
    case Route::create_payout:
    case Route::create_wallet_transfer:
      create_flow(who, m.route, body, std::move(c), r);
      return true;
    case Route::get_refund:
      get_refund(who, m.id, r);
      return true;
    case Route::get_topup:
      query_owned({payments::QueryKind::get_topup, m.id}, "topup", who, r, owns_flow_of);
      return true;
    case Route::get_payout:
      query_owned({payments::QueryKind::get_payout, m.id}, "payout", who, r, owns_flow_of);
      return true;
    case Route::get_wallet_transfer:
      query_owned({payments::QueryKind::get_wallet_transfer, m.id}, "wallet transfer", who, r,
                  owns_flow_of);
      return true;
    case Route::list_events:
      list_events(who, m, r);
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
      control(m, body, r);
      return true;
    case Route::admin_clock:
    case Route::admin_clock_advance:
      clock_route(m.route == Route::admin_clock_advance, body, r);
      return true;
    default:
      return false;
  }
}

}  // namespace keel::api
