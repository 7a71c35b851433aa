// Every route of the API, called by every kind of caller, against the answer this table
// expects (docs/security.md, "Roles"). The table is the test's own statement of the policy: a
// route added to router.h without a row here fails RouteAccess.EveryRouteHasARow, and a row that
// disagrees with what keeld does fails RouteAccess.EveryRouteAnswersEveryCallerAsTheTableSays.
//
// The calls go to a real keeld (with keel-psp-sim) holding objects of two tenants, so that
// "another tenant's object" is a real object, not a missing one.

#include <gtest/gtest.h>

#include <array>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "api/router.h"
#include "connectors/webhook_signature.h"
#include "net/http_client.h"
#include "security/request_signing.h"
#include "testing/payments_stack.h"

namespace keel::api {
namespace {

namespace json = boost::json;
using testing::JsonResponse;
using testing::new_key;
using testing::PaymentsStack;

// The callers: no key, a key of each role, and for merchant and customer_app keys one of the
// tenant that owns the objects (A) and one of another tenant (B).
enum Caller : size_t {
  none,
  admin,
  auditor,
  ledger,
  merchant_a,
  merchant_b,
  customer_a,
  customer_b
};
constexpr size_t kCallers = 8;
constexpr std::array<std::string_view, kCallers> kCallerNames = {
    "none", "admin", "auditor", "ledger", "merchant_a", "merchant_b", "customer_a", "customer_b"};

// What a caller gets, as one letter in the table:
//   O  served: any answer but 401 (no or bad key), 403 and the tenant's 404
//   D  denied: 403 permission_denied
//   H  hidden: another tenant's object answers as one that does not exist (404, or the 400 the
//      route gives for a missing merchant, customer or payment in its body)
//   E  empty: a list filtered to the caller, asked for another tenant's objects: 200, no data
//   U  unauthenticated: 401 (no key, or a public route's own signature failed)
struct Row {
  Route route;
  std::string_view expected;  // one letter per caller, in Caller order
};

// clang-format off
//                                              none admin auditor ledger mA mB cA cB
constexpr std::array kTable = {
    Row{Route::create_accounts,                "UODODDDD"},
    Row{Route::get_account,                    "UOOODDDD"},
    Row{Route::list_account_transfers,         "UOOODDDD"},
    Row{Route::close_account,                  "UODODDDD"},
    Row{Route::reopen_account,                 "UODODDDD"},
    Row{Route::create_transfers,               "UODODDDD"},
    Row{Route::get_transfer,                   "UOOODDDD"},
    Row{Route::admin_status,                   "UOODDDDD"},
    Row{Route::admin_snapshot,                 "UODDDDDD"},
    Row{Route::healthz,                        "OOOOOOOO"},
    Row{Route::readyz,                         "OOOOOOOO"},
    Row{Route::create_customer,                "UODDDDDD"},
    Row{Route::get_customer,                   "UOODDDOH"},
    Row{Route::erase_customer,                 "UODDDDDD"},
    Row{Route::create_merchant,                "UODDDDDD"},
    Row{Route::get_merchant,                   "UOODOHDD"},
    Row{Route::rotate_webhook_secret,          "UODDOHDD"},
    Row{Route::get_wallet,                     "UOODDDOH"},
    Row{Route::create_payment,                 "UODDOHDD"},
    Row{Route::list_payments,                  "UOODOEDD"},
    Row{Route::get_payment,                    "UOODOHOH"},
    Row{Route::confirm_payment,                "UODDDHOH"},  // a wallet payment: its customer
    Row{Route::capture_payment,                "UODDOHDD"},
    Row{Route::cancel_payment,                 "UODDOHDD"},
    Row{Route::psp_webhook,                    "OOOOOOOO"},  // its signature authenticates it
    Row{Route::create_refund,                  "UODDOHDD"},
    Row{Route::get_refund,                     "UOODOHDD"},
    Row{Route::create_topup,                   "UODDDDOH"},
    Row{Route::get_topup,                      "UOODDDOH"},
    Row{Route::create_payout,                  "UODDDDOH"},
    Row{Route::get_payout,                     "UOODDDOH"},
    Row{Route::create_wallet_transfer,         "UODDDDOH"},
    Row{Route::get_wallet_transfer,            "UOODDDOH"},
    Row{Route::list_events,                    "UOODOEDD"},
    Row{Route::list_topups,                    "UOODDDOE"},
    Row{Route::list_payouts,                   "UOODDDOE"},
    Row{Route::list_wallet_transfers,          "UOODDDOE"},
    Row{Route::list_reviews,                   "UOODDDDD"},
    Row{Route::metrics,                        "UOODDDDD"},
    Row{Route::list_channels,                  "UOODDDDD"},
    Row{Route::admin_channel_pause,            "UODDDDDD"},
    Row{Route::admin_channel_resume,           "UODDDDDD"},
    Row{Route::admin_channel_drain,            "UODDDDDD"},
    Row{Route::admin_channel_canary,           "UODDDDDD"},
    Row{Route::admin_mode,                     "UODDDDDD"},
    Row{Route::admin_flow_disable,             "UODDDDDD"},
    Row{Route::admin_flow_enable,              "UODDDDDD"},
    Row{Route::admin_controls,                 "UOODDDDD"},
    Row{Route::admin_clock,                    "UOODDDDD"},
    Row{Route::admin_clock_advance,            "UODDDDDD"},
    Row{Route::admin_backup,                   "UODDDDDD"},
    Row{Route::create_key,                     "UODDDDDD"},
    Row{Route::list_keys,                      "UOODDDDD"},
    Row{Route::get_key,                        "UOODDDDD"},
    Row{Route::revoke_key,                     "UODDDDDD"},
    Row{Route::audit_head,                     "UOODDDDD"},
    Row{Route::create_payment_method,          "UODDOOOO"},  // each for its own tenant
    Row{Route::get_payment_method,             "UOODOHHH"},  // merchant A's card
    Row{Route::detach_payment_method,          "UODDOHHH"},  // merchant A's cards
    Row{Route::vault_status,                   "UOODDDDD"},
    Row{Route::vault_rotate,                   "UODDDDDD"},
};
// clang-format on

const Row* row_of(Route route) {
  for (const Row& row : kTable) {
    if (row.route == route) return &row;
  }
  return nullptr;
}

TEST(RouteAccess, EveryRouteHasARow) {
  for (uint8_t r = 0; r <= static_cast<uint8_t>(kRouteLast); ++r) {
    const auto route = static_cast<Route>(r);
    const Row* row = row_of(route);
    ASSERT_NE(row, nullptr) << route_pattern(route) << " has no row in kTable";
    EXPECT_EQ(row->expected.size(), kCallers) << route_pattern(route);
    // The table and the route table agree on what is public.
    EXPECT_EQ(row->expected[none] == 'O', route_access(route).public_route) << route_pattern(route);
  }
  EXPECT_EQ(kTable.size(), static_cast<size_t>(kRouteLast) + 1) << "a route has two rows";
}

std::string str(const json::value& v, std::string_view key) {
  const json::value* f = v.is_object() ? v.get_object().if_contains(key) : nullptr;
  return f != nullptr && f->is_string() ? std::string(f->get_string()) : std::string();
}

// One request of the walk.
struct Request {
  std::string method;
  std::string target;
  std::string body;
};

class RouteAccessWalk : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::PaymentsStackOptions o;
    // Runtime controls and the movable clock on, and no rate limit in the way of the walk.
    o.movable_clock = true;
    o.keeld_toml_extra =
        "[admin]\ncontrols = true\n"
        "[auth.rate_limits.customer_app]\nper_second = 0\n"
        "[auth.rate_limits.merchant]\nper_second = 0\n"
        "[auth.rate_limits.auditor]\nper_second = 0\n";
    ASSERT_TRUE(PaymentsStack::start(o, &stack_).is_ok());
    mch_a_ = stack_->create_merchant();
    mch_b_ = stack_->create_merchant();
    cus_a_ = stack_->create_customer();
    cus_b_ = stack_->create_customer();
    cus_c_ = stack_->create_customer();
    cus_erasable_ = stack_->create_customer();
    keys_[admin] = stack_->keeld().admin_key();
    keys_[auditor] = new_api_key(R"({"role": "auditor"})");
    keys_[ledger] = new_api_key(R"({"role": "ledger"})");
    keys_[merchant_a] = new_api_key(R"({"role": "merchant", "merchant": ")" + mch_a_ + "\"}");
    keys_[merchant_b] = new_api_key(R"({"role": "merchant", "merchant": ")" + mch_b_ + "\"}");
    keys_[customer_a] = new_api_key(R"({"role": "customer_app", "customer": ")" + cus_a_ + "\"}");
    keys_[customer_b] = new_api_key(R"({"role": "customer_app", "customer": ")" + cus_b_ + "\"}");
    spare_key_id_ = new_api_key_id(R"({"role": "auditor", "label": "to revoke"})");
    make_objects();
  }

  std::string new_api_key(const std::string& body) {
    const JsonResponse r = stack_->post("/v1/admin/keys", body);
    EXPECT_EQ(r.status, 200u) << r.text;
    return str(r.body, "key");
  }
  std::string new_api_key_id(const std::string& body) {
    const JsonResponse r = stack_->post("/v1/admin/keys", body);
    EXPECT_EQ(r.status, 200u) << r.text;
    return str(r.body, "id");
  }

  // Tenant A's objects: a captured card payment with a refund, a wallet payment waiting for its
  // customer, a top-up, a payout, a wallet transfer; and ledger accounts outside the reserved
  // namespaces.
  void make_objects() {
    const JsonResponse topup =
        stack_->post("/v1/topups",
                     R"({"customer": ")" + cus_a_ +
                         R"(", "amount": 100000, "currency": "USD", "source": "tok_visa"})",
                     new_key());
    ASSERT_EQ(str(topup.body, "status"), "succeeded") << topup.text;
    topup_ = str(topup.body, "id");
    const JsonResponse payment =
        stack_->post("/v1/payments",
                     R"({"amount": 5000, "currency": "USD", "merchant": ")" + mch_a_ +
                         R"(", "customer": ")" + cus_a_ + R"(", "payment_method": "tok_visa"})",
                     new_key());
    payment_ = str(payment.body, "id");
    const JsonResponse confirmed =
        stack_->post("/v1/payments/" + payment_ + "/confirm", "{}", new_key());
    ASSERT_EQ(str(stack_->wait_settled("/v1/payments/" + payment_).body, "status"), "succeeded")
        << confirmed.text;
    const JsonResponse refund = stack_->post(
        "/v1/refunds", R"({"payment": ")" + payment_ + R"(", "amount": 100})", new_key());
    refund_ = str(refund.body, "id");
    ASSERT_FALSE(refund_.empty()) << refund.text;
    const JsonResponse wallet_payment =
        stack_->post("/v1/payments",
                     R"({"amount": 700, "currency": "USD", "merchant": ")" + mch_a_ +
                         R"(", "source": "wallet", "customer": ")" + cus_a_ + "\"}",
                     new_key());
    wallet_payment_ = str(wallet_payment.body, "id");
    ASSERT_FALSE(wallet_payment_.empty()) << wallet_payment.text;
    const JsonResponse payout = stack_->post(
        "/v1/payouts",
        R"({"customer": ")" + cus_a_ +
            R"(", "amount": 300, "currency": "USD", "destination": "DE89370400440532013000"})",
        new_key());
    payout_ = str(payout.body, "id");
    ASSERT_FALSE(payout_.empty()) << payout.text;
    const JsonResponse transfer = stack_->post("/v1/wallet_transfers",
                                               R"({"from": ")" + cus_a_ + R"(", "to": ")" + cus_c_ +
                                                   R"(", "amount": 200, "currency": "USD"})",
                                               new_key());
    wallet_transfer_ = str(transfer.body, "id");
    ASSERT_FALSE(wallet_transfer_.empty()) << transfer.text;
    const JsonResponse accounts = stack_->post(
        "/v1/accounts",
        R"({"data": [{"id": "ext_a", "currency": "USD"}, {"id": "ext_b", "currency": "USD"},
                     {"id": "ext_close", "currency": "USD"}]})");
    ASSERT_EQ(accounts.status, 200u) << accounts.text;
    const JsonResponse transfers = stack_->post(
        "/v1/transfers",
        R"({"data": [{"id": "ext_t", "debit_account_id": "ext_a", "credit_account_id": "ext_b",
                      "amount": 5, "currency": "USD"}]})");
    ASSERT_EQ(transfers.status, 200u) << transfers.text;
    const JsonResponse card = stack_->post(
        "/v1/payment_methods",
        R"({"merchant": ")" + mch_a_ +
            R"(", "card": {"number": "5555555555554444", "exp_month": 1, "exp_year": 2040}})");
    payment_method_ = str(card.body, "id");
    ASSERT_FALSE(payment_method_.empty()) << card.text;
    // Cards to detach: one for each caller the table lets detach merchant A's cards (the
    // others try payment_method_, which stays).
    for (const Caller c : {Caller::admin, Caller::merchant_a}) {
      const JsonResponse spare = stack_->post(
          "/v1/payment_methods",
          R"({"merchant": ")" + mch_a_ +
              R"(", "card": {"number": "4000056655665556", "exp_month": 2, "exp_year": 2041}})");
      detachable_[c] = str(spare.body, "id");
      ASSERT_FALSE(detachable_[c].empty()) << spare.text;
    }
  }

  // The request the walk sends for `route` (as caller number `n`: ids that must be new differ
  // per caller). Tenant A owns every object named. Bodies of admin-only routes are refused
  // after authorization (400) so that the walk changes no control.
  Request request_for(Route route, size_t n) {
    const std::string k = std::to_string(n);
    switch (route) {
      case Route::create_accounts:
        return {"POST", "/v1/accounts",
                R"({"data": [{"id": "new_)" + k + R"(", "currency": "USD"}]})"};
      case Route::get_account:
        return {"GET", "/v1/accounts/ext_a", ""};
      case Route::list_account_transfers:
        return {"GET", "/v1/accounts/ext_a/transfers", ""};
      case Route::close_account:
        return {"POST", "/v1/accounts/ext_close/close", ""};
      case Route::reopen_account:
        return {"POST", "/v1/accounts/ext_close/reopen", ""};
      case Route::create_transfers:
        return {
            "POST", "/v1/transfers",
            R"({"data": [{"id": "t_)" + k +
                R"(", "debit_account_id": "ext_a", "credit_account_id": "ext_b", "amount": 1, "currency": "USD"}]})"};
      case Route::get_transfer:
        return {"GET", "/v1/transfers/ext_t", ""};
      case Route::admin_status:
        return {"GET", "/v1/admin/status", ""};
      case Route::admin_snapshot:
        return {"POST", "/v1/admin/snapshot", ""};
      case Route::healthz:
        return {"GET", "/healthz", ""};
      case Route::readyz:
        return {"GET", "/readyz", ""};
      case Route::create_customer:
        return {"POST", "/v1/customers", "{}"};
      case Route::get_customer:
        return {"GET", "/v1/customers/" + cus_a_, ""};
      case Route::erase_customer:  // a customer of its own: the walk goes on with the others
        return {"POST", "/v1/customers/" + cus_erasable_ + "/erase", ""};
      case Route::create_merchant:
        return {"POST", "/v1/merchants", "{}"};
      case Route::get_merchant:
        return {"GET", "/v1/merchants/" + mch_a_, ""};
      case Route::rotate_webhook_secret:
        return {"POST", "/v1/merchants/" + mch_a_ + "/webhook_secret/rotate", "{}"};
      case Route::get_wallet:
        return {"GET", "/v1/wallets/" + cus_a_, ""};
      case Route::create_payment:
        return {"POST", "/v1/payments",
                R"({"amount": 100, "currency": "USD", "merchant": ")" + mch_a_ +
                    R"(", "payment_method": "tok_visa"})"};
      case Route::list_payments:
        return {"GET", "/v1/payments?merchant=" + mch_a_, ""};
      case Route::get_payment:
        return {"GET", "/v1/payments/" + payment_, ""};
      case Route::confirm_payment:
        return {"POST", "/v1/payments/" + wallet_payment_ + "/confirm", "{}"};
      case Route::capture_payment:
        return {"POST", "/v1/payments/" + payment_ + "/capture", "{}"};
      case Route::cancel_payment:
        return {"POST", "/v1/payments/" + payment_ + "/cancel", "{}"};
      case Route::psp_webhook:  // signed by the PSP, an operation that is not one: 400
        return {"POST", "/v1/webhooks/cardco", R"({"id": "evt_x", "data": {}})"};
      case Route::create_refund:
        return {"POST", "/v1/refunds", R"({"payment": ")" + payment_ + R"(", "amount": 1})"};
      case Route::get_refund:
        return {"GET", "/v1/refunds/" + refund_, ""};
      case Route::create_topup:
        return {"POST", "/v1/topups",
                R"({"customer": ")" + cus_a_ +
                    R"(", "amount": 100, "currency": "USD", "source": "tok_visa"})"};
      case Route::get_topup:
        return {"GET", "/v1/topups/" + topup_, ""};
      case Route::create_payout:
        return {
            "POST", "/v1/payouts",
            R"({"customer": ")" + cus_a_ +
                R"(", "amount": 1, "currency": "USD", "destination": "DE89370400440532013000"})"};
      case Route::get_payout:
        return {"GET", "/v1/payouts/" + payout_, ""};
      case Route::create_wallet_transfer:
        return {"POST", "/v1/wallet_transfers",
                R"({"from": ")" + cus_a_ + R"(", "to": ")" + cus_c_ +
                    R"(", "amount": 1, "currency": "USD"})"};
      case Route::get_wallet_transfer:
        return {"GET", "/v1/wallet_transfers/" + wallet_transfer_, ""};
      case Route::list_events:
        return {"GET", "/v1/events?merchant=" + mch_a_, ""};
      case Route::list_topups:
        return {"GET", "/v1/topups?customer=" + cus_a_, ""};
      case Route::list_payouts:
        return {"GET", "/v1/payouts?customer=" + cus_a_, ""};
      case Route::list_wallet_transfers:
        return {"GET", "/v1/wallet_transfers?customer=" + cus_a_, ""};
      case Route::list_reviews:
        return {"GET", "/v1/admin/reviews", ""};
      case Route::metrics:
        return {"GET", "/metrics", ""};
      case Route::list_channels:
        return {"GET", "/v1/channels", ""};
      case Route::admin_channel_pause:
        return {"POST", "/v1/admin/channels/cardco/pause", R"({"bogus": 1})"};
      case Route::admin_channel_resume:
        return {"POST", "/v1/admin/channels/cardco/resume", R"({"bogus": 1})"};
      case Route::admin_channel_drain:
        return {"POST", "/v1/admin/channels/cardco/drain", R"({"bogus": 1})"};
      case Route::admin_channel_canary:
        return {"POST", "/v1/admin/channels/cardco/canary", R"({"bogus": 1})"};
      case Route::admin_mode:
        return {"POST", "/v1/admin/mode", R"({"bogus": 1})"};
      case Route::admin_flow_disable:
        return {"POST", "/v1/admin/flows/refunds/disable", R"({"bogus": 1})"};
      case Route::admin_flow_enable:
        return {"POST", "/v1/admin/flows/refunds/enable", R"({"bogus": 1})"};
      case Route::admin_controls:
        return {"GET", "/v1/admin/controls", ""};
      case Route::admin_clock:
        return {"GET", "/v1/admin/clock", ""};
      case Route::admin_clock_advance:
        return {"POST", "/v1/admin/clock/advance", R"({"seconds": 1})"};
      case Route::admin_backup:
        return {"POST", "/v1/admin/backup", R"({"dir": "relative"})"};
      case Route::create_key:
        return {"POST", "/v1/admin/keys", R"({"role": "auditor"})"};
      case Route::list_keys:
        return {"GET", "/v1/admin/keys", ""};
      case Route::get_key:
        return {"GET", "/v1/admin/keys/" + spare_key_id_, ""};
      case Route::revoke_key:
        return {"POST", "/v1/admin/keys/" + spare_key_id_ + "/revoke", ""};
      case Route::audit_head:
        return {"GET", "/v1/admin/audit/head", ""};
      case Route::create_payment_method:
        return {"POST", "/v1/payment_methods",
                R"({"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040}})"};
      case Route::get_payment_method:
        return {"GET", "/v1/payment_methods/" + payment_method_, ""};
      case Route::detach_payment_method:
        return {"POST",
                "/v1/payment_methods/" +
                    (detachable_[n].empty() ? payment_method_ : detachable_[n]) + "/detach",
                ""};
      case Route::vault_status:
        return {"GET", "/v1/admin/vault", ""};
      case Route::vault_rotate:
        return {"POST", "/v1/admin/vault/rotate", R"({"new_key": "bogus"})"};
    }
    return {};
  }

  std::unique_ptr<PaymentsStack> stack_;
  std::string mch_a_, mch_b_, cus_a_, cus_b_, cus_c_, cus_erasable_;
  std::array<std::string, kCallers> keys_;
  std::string spare_key_id_;
  std::string topup_, payment_, refund_, wallet_payment_, payout_, wallet_transfer_;
  std::string payment_method_;
  std::array<std::string, kCallers> detachable_;  // by caller: a card of its own to detach
};

// The letter of the table an answer is.
char classify(const net::HttpResponse& res) {
  json::error_code ec;
  const json::value body = json::parse(res.body, ec);
  const json::value* error =
      !ec && body.is_object() ? body.get_object().if_contains("error") : nullptr;
  const std::string code = error != nullptr ? str(*error, "code") : std::string();
  if (res.status == 401) return 'U';
  if (res.status == 403 && code == "permission_denied") return 'D';
  if (res.status == 404 ||
      (res.status == 400 && (code == "merchant_not_found" || code == "customer_not_found" ||
                             code == "payment_not_found"))) {
    return 'H';
  }
  if (res.status == 200 && !ec && body.is_object() && str(body, "object") == "list" &&
      body.get_object().at("data").as_array().empty()) {
    return 'E';
  }
  if (res.status == 403 || res.status == 404) return '?';  // another 403 or 404: not in the table
  return 'O';
}

bool tenant_list(Route r) {
  return r == Route::list_payments || r == Route::list_events || r == Route::list_topups ||
         r == Route::list_payouts || r == Route::list_wallet_transfers;
}

TEST_F(RouteAccessWalk, EveryRouteAnswersEveryCallerAsTheTableSays) {
  std::array<std::unique_ptr<net::HttpClient>, kCallers> clients;
  for (size_t c = 0; c < kCallers; ++c) {
    net::HttpClientOptions o;
    o.endpoint = {"127.0.0.1", stack_->keeld().port()};
    o.api_key = keys_[c];
    // Every key signs (an admin key must; the others' signatures are checked too).
    if (!o.api_key.empty()) o.sign = security::request_signer<net::HttpHeaders>(o.api_key);
    clients[c] = std::make_unique<net::HttpClient>(o);
  }
  std::string mismatches;
  for (const Row& row : kTable) {
    for (size_t c = 0; c < kCallers; ++c) {
      const Request q = request_for(row.route, c);
      net::HttpHeaders headers;
      if (q.method == "POST") headers.emplace_back("Idempotency-Key", new_key());
      if (row.route == Route::psp_webhook) {
        headers.emplace_back("PSP-Signature",
                             connectors::sign_webhook("whsec_cardco", std::time(nullptr), q.body));
      }
      net::HttpResponse res;
      ASSERT_TRUE(clients[c]->request(q.method, q.target, q.body, headers, &res).is_ok());
      char got = classify(res);
      // An empty list is served too, where the caller has nothing of its own to see (no
      // reviews, no routing channels); the tenant lists below always have tenant A's objects.
      if (got == 'E' && row.expected[c] == 'O' && !tenant_list(row.route)) got = 'O';
      if (got != row.expected[c]) {
        mismatches += route_pattern(row.route) + " as " + std::string(kCallerNames[c]) +
                      ": expected " + row.expected[c] + ", got " + got + " (HTTP " +
                      std::to_string(res.status) + " " + res.body.substr(0, 200) + ")\n";
      }
      // A refusal is an error body, never an object.
      if (got == 'H' || got == 'D' || got == 'U') {
        EXPECT_EQ(res.body.find("\"object\""), std::string::npos)
            << route_pattern(row.route) << " leaked to " << kCallerNames[c] << ": " << res.body;
      }
    }
  }
  EXPECT_TRUE(mismatches.empty()) << mismatches;
}

}  // namespace
}  // namespace keel::api
