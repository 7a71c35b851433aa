// API keys, tenant isolation, rate limits and the reserved ledger namespaces, end to end against
// keeld with keel-psp-sim (docs/security.md). The route x role table is route_access_test.cc.

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "connectors/webhook_signature.h"
#include "net/http_client.h"
#include "security/request_signing.h"
#include "testing/keeld_process.h"
#include "testing/payments_stack.h"

namespace keel::testing {
namespace {

namespace json = boost::json;

std::string str(const json::value& v, std::string_view key) {
  const json::value* f = v.is_object() ? v.get_object().if_contains(key) : nullptr;
  return f != nullptr && f->is_string() ? std::string(f->get_string()) : std::string();
}

struct Answer {
  unsigned status = 0;
  json::value body;
  std::string text;
  std::string www_authenticate;
  std::string retry_after;
  std::string code() const {
    const json::value* e = body.is_object() ? body.get_object().if_contains("error") : nullptr;
    return e != nullptr ? str(*e, "code") : std::string();
  }
};

class SecurityApi : public ::testing::Test {
 protected:
  void start(std::string toml_extra = {}) {
    PaymentsStackOptions o;
    o.keeld_toml_extra = std::move(toml_extra);
    ASSERT_TRUE(PaymentsStack::start(o, &stack_).is_ok());
  }

  // One request with `authorization` as the Authorization header (empty: none) and `signature`
  // as Keel-Signature (empty: none).
  Answer call(const std::string& authorization, std::string_view method, const std::string& target,
              const std::string& body = {}, std::string idempotency_key = {},
              const std::string& signature = {}) {
    net::HttpClient client(net::HttpClientOptions{{"127.0.0.1", stack_->keeld().port()}});
    net::HttpHeaders headers;
    if (!authorization.empty()) headers.emplace_back("Authorization", authorization);
    if (!signature.empty()) headers.emplace_back("Keel-Signature", signature);
    if (!idempotency_key.empty()) headers.emplace_back("Idempotency-Key", idempotency_key);
    net::HttpResponse res;
    EXPECT_TRUE(client.request(method, target, body, headers, &res).is_ok());
    Answer a;
    a.status = res.status;
    a.text = res.body;
    json::error_code ec;
    a.body = json::parse(res.body, ec);
    a.www_authenticate = std::string(res.header("WWW-Authenticate"));
    a.retry_after = std::string(res.header("Retry-After"));
    return a;
  }
  // A request with `key`, signed (as every key may, and an admin key must).
  Answer as(const std::string& key, std::string_view method, const std::string& target,
            const std::string& body = {}, std::string idempotency_key = {}) {
    return call("Bearer " + key, method, target, body, std::move(idempotency_key),
                security::sign_request(key, method, target, body, now_s(), security::new_nonce()));
  }
  static int64_t now_s() { return static_cast<int64_t>(std::time(nullptr)); }

  // A new key of `role` (owner: a merchant or customer id, for those roles): {id, key}.
  std::pair<std::string, std::string> new_api_key(std::string_view role, std::string owner = {}) {
    std::string body = R"({"role": ")" + std::string(role) + "\"";
    if (role == "merchant") body += R"(, "merchant": ")" + owner + "\"";
    if (role == "customer_app") body += R"(, "customer": ")" + owner + "\"";
    const JsonResponse r = stack_->post("/v1/admin/keys", body + "}");
    EXPECT_EQ(r.status, 200u) << r.text;
    return {str(r.body, "id"), str(r.body, "key")};
  }

  // The ledger's accounts and transfers, as admin status counts them.
  std::string ledger_counts() {
    return json::serialize(stack_->get("/v1/admin/status").body.at("counts"));
  }

  uint64_t last_seq() {
    const JsonResponse s = stack_->get("/v1/admin/status");
    return s.body.at("last_seq").to_number<uint64_t>();
  }

  std::unique_ptr<PaymentsStack> stack_;
};

TEST_F(SecurityApi, MissingMalformedUnknownAndWrongSecretKeysAre401AndChangeNothing) {
  start();
  const auto [id, key] = new_api_key("ledger");
  const uint64_t before = last_seq();
  const std::string body = R"({"data": [{"id": "x1", "currency": "USD"}]})";
  Answer a = call("", "POST", "/v1/accounts", body);
  EXPECT_EQ(a.status, 401u);
  EXPECT_EQ(a.code(), "authentication_required");
  EXPECT_EQ(str(a.body.at("error"), "type"), "authentication_error");
  EXPECT_EQ(a.www_authenticate, "Bearer realm=\"keel\"");
  std::string wrong_secret = key;
  wrong_secret.back() = wrong_secret.back() == '0' ? '1' : '0';
  std::string unknown_id = key;
  unknown_id[5] = unknown_id[5] == '0' ? '1' : '0';
  for (const std::string& header :
       {std::string("Bearer"), std::string("Bearer nonsense"), "Bearer " + wrong_secret,
        "Bearer " + unknown_id, "Token " + key, std::string("Basic !!!!"),
        "Basic " + std::string("a2VlbF8=")}) {
    a = call(header, "POST", "/v1/accounts", body);
    EXPECT_EQ(a.status, 401u) << header;
    EXPECT_EQ(a.code(), "api_key_invalid") << header;
    // One message for every case: nothing tells which keys exist.
    EXPECT_EQ(str(a.body.at("error"), "message"), "the API key is not valid") << header;
  }
  EXPECT_EQ(last_seq(), before);
  EXPECT_EQ(stack_->account_balance("x1", "credits_posted"), -1);
  // The same key works as Bearer (any case of the scheme) and as Basic with an empty password
  // (what `curl -u KEY:` sends).
  EXPECT_EQ(call("bearer " + key, "GET", "/v1/accounts/ext_none").status, 404u);
  const std::string basic = "Basic " + [&] {
    static constexpr char kB64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const std::string in = key + ":";
    std::string out;
    for (size_t i = 0; i < in.size(); i += 3) {
      uint32_t n = static_cast<uint8_t>(in[i]) << 16;
      if (i + 1 < in.size()) n |= static_cast<uint8_t>(in[i + 1]) << 8;
      if (i + 2 < in.size()) n |= static_cast<uint8_t>(in[i + 2]);
      out += kB64[(n >> 18) & 63];
      out += kB64[(n >> 12) & 63];
      out += i + 1 < in.size() ? kB64[(n >> 6) & 63] : '=';
      out += i + 2 < in.size() ? kB64[n & 63] : '=';
    }
    return out;
  }();
  a = call(basic, "POST", "/v1/accounts", body);
  EXPECT_EQ(a.status, 200u) << a.text;
}

TEST_F(SecurityApi, ARevokedKeyStopsAtOnceAndStaysRevokedAfterARestart) {
  start();
  const std::string m = stack_->create_merchant();
  const auto [id, key] = new_api_key("merchant", m);
  const auto [other_id, other_key] = new_api_key("merchant", m);  // its replacement, first
  EXPECT_EQ(as(key, "GET", "/v1/merchants/" + m).status, 200u);
  const JsonResponse shown = stack_->get("/v1/admin/keys/" + id);
  EXPECT_EQ(str(shown.body, "role"), "merchant");
  EXPECT_EQ(str(shown.body, "merchant"), m);
  EXPECT_FALSE(str(shown.body, "last_used_at").empty()) << shown.text;  // the use above
  EXPECT_EQ(shown.text.find(key.substr(22)), std::string::npos) << "a secret is shown again";

  const JsonResponse revoked =
      stack_->post("/v1/admin/keys/" + id + "/revoke", R"({"reason": "leaked"})");
  ASSERT_EQ(revoked.status, 200u) << revoked.text;
  EXPECT_EQ(str(revoked.body, "revoked_reason"), "leaked");
  EXPECT_EQ(as(key, "GET", "/v1/merchants/" + m).code(), "api_key_invalid");
  EXPECT_EQ(as(other_key, "GET", "/v1/merchants/" + m).status, 200u);  // rotation: no outage
  EXPECT_EQ(stack_->post("/v1/admin/keys/" + id + "/revoke", "").status, 409u);
  EXPECT_EQ(stack_->post("/v1/admin/keys/key_0000000000000000/revoke", "").status, 404u);

  ASSERT_TRUE(stack_->restart_keeld(/*kill9=*/true).is_ok());
  EXPECT_EQ(as(key, "GET", "/v1/merchants/" + m).code(), "api_key_invalid");
  EXPECT_EQ(as(other_key, "GET", "/v1/merchants/" + m).status, 200u);
  EXPECT_FALSE(str(stack_->get("/v1/admin/keys/" + id).body, "revoked_at").empty());
}

TEST_F(SecurityApi, BadKeyRequestsAreRefusedAndCreateNoKey) {
  start();
  const std::string m = stack_->create_merchant();
  const size_t before = stack_->get("/v1/admin/keys").body.at("data").as_array().size();
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({})", "parameter_missing"},
      {R"({"role": "root"})", "parameter_invalid"},
      {R"({"role": "merchant"})", "parameter_missing"},
      {R"({"role": "admin", "merchant": ")" + m + "\"}", "parameter_invalid"},
      {R"({"role": "merchant", "merchant": "mch_nobody"})", "merchant_not_found"},
      {R"({"role": "customer_app", "customer": "cus_nobody"})", "customer_not_found"},
      {R"({"role": "ledger", "label": ")" + std::string(101, 'x') + "\"}", "parameter_invalid"},
      {R"({"role": "ledger", "owner": "x"})", "parameter_unknown"},
  };
  for (const auto& [body, code] : bad) {
    const JsonResponse r = stack_->post("/v1/admin/keys", body);
    EXPECT_EQ(r.status, 400u) << body;
    EXPECT_EQ(str(r.body.at("error"), "code"), code) << body << " " << r.text;
  }
  EXPECT_EQ(stack_->get("/v1/admin/keys").body.at("data").as_array().size(), before);
}

TEST_F(SecurityApi, TenantsSeeAndMoveOnlyTheirOwnAndIdempotencyKeysAreTheirs) {
  start();
  const std::string a = stack_->create_merchant();
  const std::string b = stack_->create_merchant();
  const auto key_a = new_api_key("merchant", a).second;
  const auto key_b = new_api_key("merchant", b).second;
  // The same Idempotency-Key from two merchants: two payments, each its merchant's.
  const std::string body = R"({"amount": 1250, "currency": "USD", "payment_method": "tok_visa"})";
  const Answer pa = as(key_a, "POST", "/v1/payments", body, "same-key");
  const Answer pb = as(key_b, "POST", "/v1/payments", body, "same-key");
  ASSERT_EQ(pa.status, 200u) << pa.text;
  ASSERT_EQ(pb.status, 200u) << pb.text;
  EXPECT_EQ(str(pa.body, "merchant"), a);
  EXPECT_EQ(str(pb.body, "merchant"), b);
  EXPECT_NE(str(pa.body, "id"), str(pb.body, "id"));
  EXPECT_EQ(str(as(key_a, "POST", "/v1/payments", body, "same-key").body, "id"),
            str(pa.body, "id"));
  // A merchant confirms its own card payment; the other's is not there for it.
  const std::string id = str(pa.body, "id");
  EXPECT_EQ(as(key_b, "POST", "/v1/payments/" + id + "/confirm", "{}", "c1").status, 404u);
  EXPECT_EQ(as(key_a, "POST", "/v1/payments/" + id + "/confirm", "{}", "c2").status, 200u);
  EXPECT_EQ(str(stack_->wait_settled("/v1/payments/" + id).body, "status"), "succeeded");
  // Lists are the caller's: no filter means its own, another merchant's filter means nothing.
  const Answer mine = as(key_b, "GET", "/v1/payments");
  ASSERT_EQ(mine.status, 200u);
  ASSERT_EQ(mine.body.at("data").as_array().size(), 1u);
  EXPECT_EQ(str(mine.body.at("data").as_array()[0], "merchant"), b);
  EXPECT_TRUE(as(key_b, "GET", "/v1/payments?merchant=" + a).body.at("data").as_array().empty());
  // A customer's app acts for its own customer: the field may be left out, another customer's
  // is not there.
  const std::string c = stack_->create_customer();
  const std::string d = stack_->create_customer();
  const auto key_c = new_api_key("customer_app", c).second;
  const Answer topup = as(key_c, "POST", "/v1/topups",
                          R"({"amount": 1000, "currency": "USD", "source": "tok_visa"})", "t1");
  ASSERT_EQ(topup.status, 200u) << topup.text;
  EXPECT_EQ(str(topup.body, "customer"), c);
  const Answer theirs =
      as(key_c, "POST", "/v1/payouts",
         R"({"customer": ")" + d +
             R"(", "amount": 1, "currency": "USD", "destination": "DE89370400440532013000"})",
         "p1");
  EXPECT_EQ(theirs.status, 400u);
  EXPECT_EQ(theirs.code(), "customer_not_found");
  EXPECT_EQ(as(key_c, "GET", "/v1/wallets/" + d).status, 404u);
}

TEST_F(SecurityApi, AKeyAboveItsRoleRateLimitGets429WithRetryAfterAndOthersGoOn) {
  start("[auth.rate_limits.merchant]\nper_second = 1\nburst = 3\n");
  const std::string m = stack_->create_merchant();
  const auto key = new_api_key("merchant", m).second;
  const auto other = new_api_key("merchant", m).second;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(as(key, "GET", "/v1/merchants/" + m).status, 200u) << i;
  const Answer limited = as(key, "GET", "/v1/merchants/" + m);
  EXPECT_EQ(limited.status, 429u);
  EXPECT_EQ(limited.code(), "rate_limited");
  EXPECT_EQ(str(limited.body.at("error"), "type"), "rate_limit_error");
  EXPECT_EQ(limited.retry_after, "1");
  EXPECT_EQ(as(other, "GET", "/v1/merchants/" + m).status, 200u);  // its own bucket
  EXPECT_EQ(stack_->get("/v1/merchants/" + m).status, 200u);       // admin: no limit
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(as(key, "GET", "/v1/merchants/" + m).status, 200u);
}

TEST_F(SecurityApi, ThePaymentsCoresLedgerNamespacesAreRefusedToEveryLedgerCall) {
  start();
  const std::string m = stack_->create_merchant();
  const std::string c = stack_->create_customer();
  ASSERT_EQ(stack_
                ->post("/v1/topups",
                       R"({"customer": ")" + c +
                           R"(", "amount": 1000, "currency": "USD", "source": "tok_visa"})",
                       new_key())
                .status,
            200u);
  const std::string wallet = "wallet:" + c + ":USD";
  const auto ledger_key = new_api_key("ledger").second;
  ASSERT_EQ(stack_->post("/v1/accounts", R"({"data": [{"id": "ext", "currency": "USD"}]})").status,
            200u);
  const std::string counts_before = ledger_counts();
  const std::string transfer = R"({"data": [{"id": "%ID%", "debit_account_id": "%D%",
      "credit_account_id": "%C%", "amount": 1, "currency": "USD"%P%}]})";
  const auto transfer_body = [&](std::string id, std::string debit, std::string credit,
                                 std::string pending = {}) {
    std::string b = transfer;
    const auto put = [&b](std::string_view k, const std::string& v) {
      b.replace(b.find(k), k.size(), v);
    };
    put("%ID%", id);
    put("%D%", debit);
    put("%C%", credit);
    put("%P%", pending.empty()
                   ? ""
                   : R"(, "pending_id": ")" + pending + R"(", "flags": ["post_pending"])");
    return b;
  };
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"/v1/accounts", R"({"data": [{"id": "merchant:)" + m + R"(:EUR", "currency": "EUR"}]})"},
      {"/v1/accounts", R"({"data": [{"id": "psp_clearing:x:USD", "currency": "USD"}]})"},
      {"/v1/accounts", R"({"data": [{"id": "suspense:USD", "currency": "USD"}]})"},
      {"/v1/transfers", transfer_body("t1", wallet, "ext")},
      {"/v1/transfers", transfer_body("t2", "ext", "fees:USD")},
      {"/v1/transfers", transfer_body("pay_future.capture", "ext", "ext")},
      {"/v1/transfers", transfer_body("t3", "ext", "ext", "pay_x.hold")},
      {"/v1/accounts/" + wallet + "/close", ""},
  };
  for (const std::string& key : {stack_->keeld().admin_key(), ledger_key}) {
    for (const auto& [target, body] : refused) {
      const Answer a = as(key, "POST", target, body);
      EXPECT_EQ(a.status, 403u) << target << " " << body;
      EXPECT_EQ(a.code(), "ledger_namespace_reserved") << a.text;
    }
  }
  // (A signed write spends its nonce even when refused; the books do not move.)
  EXPECT_EQ(ledger_counts(), counts_before);
  EXPECT_EQ(stack_->account_balance(wallet, "credits_posted"), 1000);
  // A ledger key does not see them either; an admin does.
  EXPECT_EQ(as(ledger_key, "GET", "/v1/accounts/" + wallet).status, 404u);
  EXPECT_EQ(as(ledger_key, "GET", "/v1/accounts/" + wallet + "/transfers").status, 404u);
  EXPECT_EQ(stack_->get("/v1/accounts/" + wallet).status, 200u);
  EXPECT_EQ(as(ledger_key, "GET", "/v1/accounts/ext").status, 200u);
}

TEST_F(SecurityApi, AdminRequestsAreSignedOnceAndAReplayIsRefusedEvenAfterARestart) {
  start();
  const std::string admin = stack_->keeld().admin_key();
  const std::string target = "/v1/accounts";
  const std::string body = R"({"data": [{"id": "signed_1", "currency": "USD"}]})";
  // Unsigned, wrongly signed, signed for another body or too long ago: 401, nothing changes.
  Answer a = call("Bearer " + admin, "POST", target, body);
  EXPECT_EQ(a.status, 401u);
  EXPECT_EQ(a.code(), "signature_invalid");
  const std::string other_body = R"({"data": [{"id": "signed_2", "currency": "USD"}]})";
  a = call(
      "Bearer " + admin, "POST", target, body, {},
      security::sign_request(admin, "POST", target, other_body, now_s(), security::new_nonce()));
  EXPECT_EQ(a.code(), "signature_invalid");
  a = call(
      "Bearer " + admin, "POST", target, body, {},
      security::sign_request(admin, "POST", target, body, now_s() - 301, security::new_nonce()));
  EXPECT_EQ(a.code(), "timestamp_out_of_range");
  a = call("Bearer " + admin, "POST", target, body, {}, "t=1,n=x,v1=y");
  EXPECT_EQ(a.code(), "signature_invalid");
  EXPECT_EQ(stack_->account_balance("signed_1", "credits_posted"), -1);

  // Signed: served once. The same request again (a replay, within the skew) is refused, also
  // after keeld restarts; a new signature of the same request is a new request.
  const std::string signature =
      security::sign_request(admin, "POST", target, body, now_s(), security::new_nonce());
  a = call("Bearer " + admin, "POST", target, body, {}, signature);
  ASSERT_EQ(a.status, 200u) << a.text;
  a = call("Bearer " + admin, "POST", target, body, {}, signature);
  EXPECT_EQ(a.status, 401u);
  EXPECT_EQ(a.code(), "nonce_reused");
  ASSERT_TRUE(stack_->restart_keeld(/*kill9=*/true).is_ok());
  a = call("Bearer " + admin, "POST", target, body, {}, signature);
  EXPECT_EQ(a.code(), "nonce_reused");
  EXPECT_EQ(as(admin, "POST", target, body).status, 200u);  // "exists" per event: a new request
  // A read's signature may come again: reads check the time only (no journal write).
  const std::string read = security::sign_request(admin, "GET", "/v1/accounts/signed_1", "",
                                                  now_s(), security::new_nonce());
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(call("Bearer " + admin, "GET", "/v1/accounts/signed_1", "", {}, read).status, 200u);
  }
  // Other keys may sign; a signature they send is checked.
  const auto [id, ledger] = new_api_key("ledger");
  EXPECT_EQ(call("Bearer " + ledger, "GET", "/v1/accounts/signed_1", "", {}, read).code(),
            "signature_invalid");
  EXPECT_EQ(as(ledger, "GET", "/v1/accounts/signed_1").status, 200u);
  EXPECT_EQ(call("Bearer " + ledger, "GET", "/v1/accounts/signed_1").status, 200u);
}

// A PSP rotating its webhook secret: during the overlap keeld takes webhooks signed with either.
TEST_F(SecurityApi, APspWebhookSignedWithThePreviousSecretIsTakenDuringTheRotation) {
  PaymentsStackOptions o;
  o.channel_toml["cardco"] = "previous_webhook_secret = \"whsec_old\"\n";
  ASSERT_TRUE(PaymentsStack::start(o, &stack_).is_ok());
  const std::string body = R"({"id": "evt_rotation", "data": {}})";  // verified, then refused
  const auto post = [&](const std::string& secret) {
    net::HttpClient client(net::HttpClientOptions{{"127.0.0.1", stack_->keeld().port()}});
    net::HttpResponse res;
    EXPECT_TRUE(client
                    .request("POST", "/v1/webhooks/cardco", body,
                             {{"PSP-Signature", connectors::sign_webhook(secret, now_s(), body)}},
                             &res)
                    .is_ok());
    return res.status;
  };
  EXPECT_EQ(post("whsec_cardco"), 400u);  // the current secret: past the signature, a bad body
  EXPECT_EQ(post("whsec_old"), 400u);     // the previous one too
  EXPECT_EQ(post("whsec_other"), 401u);
  EXPECT_EQ(post("whsec_bankco"), 401u);  // another channel's
}

// A PSP rotating keel's API key (docs/security.md, "Rotating secrets"): the operator writes the
// new key into the channel's api_key_file while keeld runs, before the PSP takes it; keeld picks
// the file up, calls answered 401 go out again with the old key, and once the PSP retires the
// old key the new one carries every call. No payment fails and nothing is charged twice. A file
// that turns unsafe (group-readable) is refused and the keys in use stay.
TEST_F(SecurityApi, APspCredentialRotatesWhileKeeldRunsWithoutAFailedPayment) {
  TempDir scratch;
  const auto file = scratch.path() / "cardco.keys";
  const auto write_keys = [&](const std::string& text) {  // as an operator would: atomically
    const auto tmp = scratch.path() / "cardco.keys.tmp";
    std::ofstream(tmp) << text;
    std::filesystem::permissions(
        tmp, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    std::filesystem::rename(tmp, file);
  };
  write_keys("sk_cardco\n");
  PaymentsStackOptions o;
  o.api_key_files["cardco"] = file;
  o.payments_toml_extra = "credentials_check_ms = 100\n";
  ASSERT_TRUE(PaymentsStack::start(o, &stack_).is_ok());
  const std::string m = stack_->create_merchant();
  ASSERT_FALSE(m.empty());
  const auto metric = [&](const std::string& name) -> int64_t {
    const JsonResponse r = stack_->get("/metrics");
    const size_t at = r.text.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::stoll(r.text.substr(at + name.size() + 2));
  };
  const auto wait_reloads = [&](int64_t n) {
    for (int i = 0; i < 500 && metric("keel_psp_credential_reloads_total") < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return metric("keel_psp_credential_reloads_total");
  };
  std::vector<std::string> paid;
  const auto pay = [&]() {
    const JsonResponse p = stack_->post(
        "/v1/payments",
        R"({"amount": 1000, "currency": "USD", "payment_method": "tok_visa", "merchant": ")" + m +
            "\"}",
        new_key());
    const std::string id = str(p.body, "id");
    const JsonResponse c = stack_->post("/v1/payments/" + id + "/confirm", "{}", new_key());
    paid.push_back(id);
    return str(c.body, "status");
  };
  ASSERT_EQ(pay(), "succeeded");
  EXPECT_EQ(metric("keel_psp_credential_fallbacks_total"), 0);

  write_keys("sk_cardco_2\nsk_cardco\n");  // keel first: the PSP does not take sk_cardco_2 yet
  ASSERT_EQ(wait_reloads(1), 1);
  EXPECT_EQ(pay(), "succeeded");
  EXPECT_EQ(metric("keel_psp_credential_fallbacks_total"), 1);
  ASSERT_TRUE(stack_
                  ->sim_request("PUT", "/admin/psps/cardco/api_keys",
                                R"({"keys": ["sk_cardco_2", "sk_cardco"]})")
                  .status == 200);
  EXPECT_EQ(pay(), "succeeded");
  ASSERT_TRUE(
      stack_->sim_request("PUT", "/admin/psps/cardco/api_keys", R"({"keys": ["sk_cardco_2"]})")
          .status == 200);  // the PSP retires the old key
  EXPECT_EQ(pay(), "succeeded");
  EXPECT_EQ(pay(), "succeeded");
  EXPECT_EQ(metric("keel_psp_credential_fallbacks_total"), 2);  // one switch back, then none

  std::filesystem::permissions(file, std::filesystem::perms::group_read,
                               std::filesystem::perm_options::add);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // three checks
  EXPECT_EQ(pay(), "succeeded");
  write_keys("sk_cardco_2\n");  // the rotation's end: the old key leaves the file
  EXPECT_EQ(wait_reloads(2), 2);
  EXPECT_EQ(pay(), "succeeded");
  EXPECT_EQ(metric("keel_psp_credential_fallbacks_total"), 2);

  const auto ops = stack_->sim_operations("cardco");
  EXPECT_EQ(ops.size(), paid.size());  // each payment reached the PSP once
  for (const std::string& id : paid) {
    EXPECT_EQ(str(stack_->get("/v1/payments/" + id).body, "status"), "succeeded") << id;
  }
}

TEST(Bootstrap, TheFirstStartWritesItsKeysOwnerOnlyOnceAndNewAdminKeyAddsOne) {
  const TempDir temp;
  std::unique_ptr<KeeldProcess> keeld;
  ASSERT_TRUE(KeeldProcess::start({.data_dir = temp.path() / "data"}, &keeld).is_ok());
  const auto file = keeld->data_dir() / "bootstrap-keys";
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string admin = keeld->admin_key();
  const std::string merchant = keeld->demo_merchant_key();
  ASSERT_FALSE(admin.empty());
  ASSERT_FALSE(merchant.empty());
  net::HttpClientOptions o{{"127.0.0.1", keeld->port()}};
  o.api_key = merchant;
  net::HttpClient as_merchant(o);
  net::HttpResponse res;
  ASSERT_TRUE(as_merchant.get("/v1/merchants/mch_demo", &res).is_ok());
  EXPECT_EQ(res.status, 200u) << res.body;
  const auto dir = keeld->data_dir();
  ASSERT_EQ(keeld->stop(), 0);

  // A restart makes no key and leaves the file as it was.
  KeeldOptions again;
  again.data_dir = dir;
  ASSERT_TRUE(KeeldProcess::start(again, &keeld).is_ok());
  EXPECT_EQ(keeld->admin_key(), admin);
  ASSERT_EQ(keeld->stop(), 0);

  // --new-admin-key: a new admin key in the file; the old one still works.
  again.extra_args = {"--new-admin-key"};
  ASSERT_TRUE(KeeldProcess::start(again, &keeld).is_ok());
  const std::string fresh = keeld->admin_key();
  EXPECT_NE(fresh, admin);
  EXPECT_TRUE(keeld->demo_merchant_key().empty());
  for (const std::string& key : {admin, fresh}) {
    net::HttpClientOptions ko{{"127.0.0.1", keeld->port()}};
    ko.api_key = key;
    ko.sign = security::request_signer<net::HttpHeaders>(key);
    net::HttpClient client(ko);
    ASSERT_TRUE(client.get("/v1/admin/keys", &res).is_ok());
    EXPECT_EQ(res.status, 200u);
    EXPECT_EQ(json::parse(res.body).at("data").as_array().size(), 3u);
  }
}

// The keel CLI against `keeld` with its admin key.
ProgramResult keel_as_admin(const KeeldProcess& keeld, std::vector<std::string> args) {
  args.insert(args.begin(), {build_path("src/cli/keel").string(), "--server", keeld.base_url(),
                             "--key", keeld.admin_key()});
  return run_program(args);
}

TEST(KeysCli, CreatesListsAndRevokesKeys) {
  std::unique_ptr<KeeldProcess> keeld;
  ASSERT_TRUE(KeeldProcess::start({}, &keeld).is_ok());
  const auto keel = [&](std::vector<std::string> args) { return keel_as_admin(*keeld, args); };
  auto r = keel({"-o", "json", "keys", "create", "--role", "ledger", "--label", "batch job"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json::value created = json::parse(r.out);
  const std::string id = str(created, "id");
  EXPECT_TRUE(str(created, "key").starts_with("keel_")) << r.out;
  r = keel({"keys", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(id), std::string::npos);
  EXPECT_NE(r.out.find("batch job"), std::string::npos);
  EXPECT_EQ(r.out.find(str(created, "key")), std::string::npos);
  r = keel({"keys", "revoke", id, "--reason", "done"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = keel({"-o", "json", "keys", "show", id});
  EXPECT_EQ(str(json::parse(r.out), "revoked_reason"), "done");
  // Any route, signed: what the operator's steps without a command of their own use.
  r = keel({"-o", "json", "api", "POST", "/v1/customers", R"({"name": "Ann"})", "--header",
            "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(str(json::parse(r.out), "id").starts_with("cus_")) << r.out;
  r = keel({"api", "POST", "/v1/customers", "{}", "--header", "no colon"});
  EXPECT_EQ(r.exit_code, 1);
  // Without a key the CLI gets the API's 401, not a crash.
  r = run_program(
      {build_path("src/cli/keel").string(), "--server", keeld->base_url(), "keys", "list"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("API key"), std::string::npos) << r.err;
}

// The audit chain end to end: the head keeld serves (route, CLI, metric) anchors `keel audit
// verify` on the data directory keeld leaves; a head that differs, or lies past the end of the
// journal, fails it and says where. audit_chain_test.cc tampers with the records themselves.
TEST(AuditCli, TheServedHeadAnchorsVerifyAndAnotherHeadFailsIt) {
  std::unique_ptr<KeeldProcess> keeld;
  ASSERT_TRUE(KeeldProcess::start({}, &keeld).is_ok());
  const auto keel = [&](std::vector<std::string> args) { return keel_as_admin(*keeld, args); };
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(keel({"api", "POST", "/v1/customers", "{}"}).exit_code, 0);
  }
  auto r = keel({"-o", "json", "audit", "head"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json::value head = json::parse(r.out);
  const uint64_t seq = head.at("seq").to_number<uint64_t>();
  const std::string hash = str(head, "head");
  EXPECT_EQ(seq, head.at("last_seq").to_number<uint64_t>());  // every batch ends with its link
  EXPECT_EQ(hash.size(), 64u);
  net::HttpClientOptions options = keeld_client_options(keeld->port());
  net::HttpClient client(options);
  net::HttpResponse metrics;
  ASSERT_TRUE(client.request("GET", "/metrics", "", {}, &metrics).is_ok());
  EXPECT_NE(metrics.body.find("keel_audit_chain_head_seq " + std::to_string(seq) + "\n"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("keel_audit_chain_head_prefix " +
                              std::to_string(std::stoull(hash.substr(0, 12), nullptr, 16)) + "\n"),
            std::string::npos);
  ASSERT_EQ(keeld->stop(), 0);

  const std::string data = keeld->data_dir().string();
  const std::string cli = build_path("src/cli/keel").string();
  r = run_program(
      {cli, "-o", "json", "audit", "verify", data, "--anchor", std::to_string(seq) + ":" + hash});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json::value report = json::parse(r.out);
  EXPECT_TRUE(report.at("ok").as_bool());
  EXPECT_EQ(report.at("head_seq").to_number<uint64_t>(), seq);
  EXPECT_EQ(str(report, "head"), hash);
  EXPECT_EQ(report.at("covered_from").to_number<uint64_t>(), 1u);
  EXPECT_GE(report.at("anchors_checked").to_number<uint64_t>(), 1u);

  std::string other = hash;
  other[0] = other[0] == '0' ? '1' : '0';
  r = run_program({cli, "audit", "verify", data, "--anchor", std::to_string(seq) + ":" + other});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("record " + std::to_string(seq) + ": its head differs"), std::string::npos)
      << r.err;
  r = run_program(
      {cli, "audit", "verify", data, "--anchor", std::to_string(seq + 10) + ":" + hash});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("records were dropped from the end"), std::string::npos) << r.err;
  for (const std::string& bad : std::vector<std::string>{"12", "x:" + hash, "0:" + hash, "5:abc"}) {
    r = run_program({cli, "audit", "verify", data, "--anchor", bad});
    EXPECT_EQ(r.exit_code, 1) << bad;
    EXPECT_NE(r.err.find("--anchor takes SEQ:HEAD"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace keel::testing
