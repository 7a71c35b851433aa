// Process-level tests of the HTTP API: each test starts a real keeld on 127.0.0.1:0 with a fresh
// data directory and talks HTTP to it.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/time.h"
#include "net/http_client.h"
#include "security/request_signing.h"
#include "testing/keeld_process.h"
#include "testing/temp_dir.h"

namespace keel {
namespace {

namespace json = boost::json;
using net::HttpClient;
using net::HttpResponse;
using testing::KeeldProcess;

// Sends `bytes` on a new connection and reads until the server closes it (or timeout_ms).
std::string raw_exchange(uint16_t port, const std::string& bytes, int timeout_ms = 10'000) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "connect failed";
  }
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

int count_of(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override { start(); }

  void start(testing::KeeldOptions options = {}) {
    client_.reset();
    keeld_.reset();
    const Status s = KeeldProcess::start(std::move(options), &keeld_);
    ASSERT_TRUE(s.is_ok()) << s.message();
    client_ = std::make_unique<HttpClient>(testing::keeld_client_options(keeld_->port()));
  }

  HttpResponse call(std::string_view method, const std::string& target,
                    const std::string& body = "", const net::HttpHeaders& headers = {}) {
    HttpResponse res;
    const Status s = client_->request(method, target, body, headers, &res);
    EXPECT_TRUE(s.is_ok()) << method << " " << target << ": " << s.message();
    return res;
  }

  // The JSON object of a 200 answer.
  json::object ok(std::string_view method, const std::string& target,
                  const std::string& body = "") {
    const HttpResponse res = call(method, target, body);
    EXPECT_EQ(res.status, 200u) << method << " " << target << " " << body << " -> " << res.body;
    json::error_code ec;
    json::value v = json::parse(res.body, ec);
    if (ec || !v.is_object()) {
      ADD_FAILURE() << "not a JSON object: " << res.body;
      return {};
    }
    return std::move(v.get_object());
  }

  // Per-event results of a create request, in order.
  std::vector<std::string> results(const std::string& target, const std::string& body) {
    std::vector<std::string> out;
    const json::object o = ok("POST", target, body);
    if (!o.contains("data")) return out;
    size_t i = 0;
    for (const auto& r : o.at("data").as_array()) {
      EXPECT_EQ(r.at("index").as_int64(), static_cast<int64_t>(i++));
      out.emplace_back(r.at("result").as_string());
    }
    return out;
  }

  std::string create_account(const std::string& id, const std::string& currency = "USD",
                             const std::string& flags = "[]") {
    const auto r = results("/v1/accounts", R"({"id":")" + id + R"(","currency":")" + currency +
                                               R"(","flags":)" + flags + "}");
    return r.empty() ? "" : r[0];
  }

  std::string transfer(const std::string& id, const std::string& debit, const std::string& credit,
                       int64_t amount, const std::string& extra = "") {
    const auto r = results("/v1/transfers", transfer_json(id, debit, credit, amount, extra));
    return r.empty() ? "" : r[0];
  }

  static std::string transfer_json(const std::string& id, const std::string& debit,
                                   const std::string& credit, int64_t amount,
                                   const std::string& extra = "") {
    return R"({"id":")" + id + R"(","debit_account_id":")" + debit + R"(","credit_account_id":")" +
           credit + R"(","amount":)" + std::to_string(amount) + R"(,"currency":"USD")" + extra +
           "}";
  }

  // {debits_pending, debits_posted, credits_pending, credits_posted}
  std::vector<int64_t> balances(const std::string& account) {
    const json::object a = ok("GET", "/v1/accounts/" + account);
    if (a.empty()) return {};
    return {a.at("debits_pending").as_int64(), a.at("debits_posted").as_int64(),
            a.at("credits_pending").as_int64(), a.at("credits_posted").as_int64()};
  }

  std::string state_hash() {
    const json::object s = ok("GET", "/v1/admin/status?full=true");
    return s.contains("state_hash") ? std::string(s.at("state_hash").as_string()) : "";
  }

  // Checks an error answer: status, code, param (empty: null) and the error shape.
  void expect_error(const HttpResponse& res, unsigned status, const std::string& code,
                    const std::string& param = "") {
    SCOPED_TRACE(res.body);
    EXPECT_EQ(res.status, status);
    json::error_code ec;
    const json::value v = json::parse(res.body, ec);
    ASSERT_FALSE(ec);
    const json::object& e = v.at("error").as_object();
    EXPECT_EQ(e.at("code").as_string(), code);
    EXPECT_EQ(e.at("type").as_string(), status >= 500 ? "api_error" : "invalid_request_error");
    EXPECT_FALSE(e.at("message").as_string().empty());
    if (param.empty()) {
      EXPECT_TRUE(e.at("param").is_null());
    } else {
      EXPECT_EQ(e.at("param").as_string(), param);
    }
    EXPECT_EQ(e.at("request_id").as_string(), res.header("Request-Id"));
  }

  std::unique_ptr<KeeldProcess> keeld_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(ApiTest, HealthReadinessAndRequestIds) {
  const HttpResponse health = call("GET", "/healthz");
  EXPECT_EQ(health.status, 200u);
  EXPECT_EQ(health.body, R"({"status":"ok"})");
  EXPECT_EQ(health.header("Content-Type"), "application/json");
  const std::string id = std::string(health.header("Request-Id"));
  EXPECT_EQ(id.size(), 20u);
  EXPECT_EQ(id.rfind("req_", 0), 0u);
  EXPECT_EQ(call("GET", "/readyz").status, 200u);
  EXPECT_NE(call("GET", "/healthz").header("Request-Id"), id);
}

TEST_F(ApiTest, EchoesValidTraceparentOnly) {
  const std::string tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  EXPECT_EQ(call("GET", "/healthz", "", {{"traceparent", tp}}).header("traceparent"), tp);
  const HttpResponse bad = call("GET", "/v1/accounts/x", "", {{"traceparent", "00-zz-11-01"}});
  EXPECT_EQ(bad.header("traceparent"), "");
  EXPECT_NE(bad.header("Request-Id"), "");
  // Errors carry it too.
  EXPECT_EQ(call("GET", "/nowhere", "", {{"traceparent", tp}}).header("traceparent"), tp);
}

TEST_F(ApiTest, CreatesAndGetsAnAccount) {
  const auto r =
      results("/v1/accounts", R"({"id":"acct_1","currency":"EUR","flags":["debits_must_not_exceed_)"
                              R"(credits"],"metadata":{"owner":"alice","tier":"gold"}})");
  ASSERT_EQ(r, std::vector<std::string>{"ok"});
  const json::object a = ok("GET", "/v1/accounts/acct_1");
  EXPECT_EQ(a.at("id").as_string(), "acct_1");
  EXPECT_EQ(a.at("currency").as_string(), "EUR");
  EXPECT_EQ(json::serialize(a.at("flags")), R"(["debits_must_not_exceed_credits"])");
  EXPECT_EQ(json::serialize(a.at("metadata")), R"({"owner":"alice","tier":"gold"})");
  for (const char* b : {"debits_pending", "debits_posted", "credits_pending", "credits_posted"}) {
    EXPECT_EQ(a.at(b).as_int64(), 0) << b;
  }
  EXPECT_TRUE(parse_rfc3339(std::string_view(a.at("created_at").as_string())).has_value());
}

TEST_F(ApiTest, PerEventAccountResults) {
  ASSERT_EQ(create_account("a"), "ok");
  const auto r = results(
      "/v1/accounts",
      R"({"data":[{"id":"a","currency":"USD"},{"id":"a","currency":"EUR"},)"
      R"({"id":"b","currency":"USD","flags":["debits_must_not_exceed_credits",)"
      R"("credits_must_not_exceed_debits"]},{"id":"c","currency":"JPY","flags":["closed"]}]})");
  EXPECT_EQ(r, (std::vector<std::string>{"exists", "exists_with_different_currency",
                                         "flags_are_mutually_exclusive", "ok"}));
  EXPECT_EQ(call("GET", "/v1/accounts/b").status, 404u);
  EXPECT_EQ(json::serialize(ok("GET", "/v1/accounts/c").at("flags")), R"(["closed"])");
}

TEST_F(ApiTest, TransferMovesMoney) {
  ASSERT_EQ(create_account("a"), "ok");
  ASSERT_EQ(create_account("b"), "ok");
  ASSERT_EQ(transfer("t1", "a", "b", 1250, R"(,"metadata":{"order":"42"})"), "ok");
  EXPECT_EQ(balances("a"), (std::vector<int64_t>{0, 1250, 0, 0}));
  EXPECT_EQ(balances("b"), (std::vector<int64_t>{0, 0, 0, 1250}));
  const json::object t = ok("GET", "/v1/transfers/t1");
  EXPECT_EQ(t.at("debit_account_id").as_string(), "a");
  EXPECT_EQ(t.at("credit_account_id").as_string(), "b");
  EXPECT_EQ(t.at("amount").as_int64(), 1250);
  EXPECT_EQ(t.at("currency").as_string(), "USD");
  EXPECT_TRUE(t.at("pending_id").is_null());
  EXPECT_EQ(t.at("metadata").at("order").as_string(), "42");
  EXPECT_FALSE(t.contains("pending_state"));
  // The same transfer again moves nothing.
  EXPECT_EQ(transfer("t1", "a", "b", 1250, R"(,"metadata":{"order":"42"})"), "exists");
  EXPECT_EQ(transfer("t1", "a", "b", 1, R"(,"metadata":{"order":"42"})"),
            "exists_with_different_amount");
  EXPECT_EQ(balances("b"), (std::vector<int64_t>{0, 0, 0, 1250}));
}

TEST_F(ApiTest, PendingPostAndVoid) {
  ASSERT_EQ(create_account("a"), "ok");
  ASSERT_EQ(create_account("b"), "ok");
  ASSERT_EQ(transfer("p1", "a", "b", 100, R"(,"flags":["pending"],"timeout_seconds":3600)"), "ok");
  ASSERT_EQ(transfer("p2", "a", "b", 40, R"(,"flags":["pending"])"), "ok");
  EXPECT_EQ(balances("a"), (std::vector<int64_t>{140, 0, 0, 0}));
  json::object p1 = ok("GET", "/v1/transfers/p1");
  EXPECT_EQ(p1.at("pending_state").as_string(), "pending");
  EXPECT_TRUE(p1.contains("expires_at"));
  EXPECT_FALSE(ok("GET", "/v1/transfers/p2").contains("expires_at"));
  // Post part of p1 (accounts, currency omitted), void p2 whole (amount omitted).
  auto r = results("/v1/transfers",
                   R"({"data":[{"id":"c1","flags":["post_pending"],"pending_id":"p1","amount":60},)"
                   R"({"id":"v2","flags":["void_pending"],"pending_id":"p2"}]})");
  EXPECT_EQ(r, (std::vector<std::string>{"ok", "ok"}));
  EXPECT_EQ(balances("a"), (std::vector<int64_t>{0, 60, 0, 0}));
  EXPECT_EQ(balances("b"), (std::vector<int64_t>{0, 0, 0, 60}));
  EXPECT_EQ(ok("GET", "/v1/transfers/p1").at("pending_state").as_string(), "posted");
  EXPECT_EQ(ok("GET", "/v1/transfers/p2").at("pending_state").as_string(), "voided");
  EXPECT_EQ(ok("GET", "/v1/transfers/c1").at("pending_id").as_string(), "p1");
  r = results("/v1/transfers", R"({"id":"c2","flags":["post_pending"],"pending_id":"p1"})");
  EXPECT_EQ(r, std::vector<std::string>{"pending_transfer_already_posted"});
  r = results("/v1/transfers", R"({"id":"c3","flags":["post_pending"],"pending_id":"nope"})");
  EXPECT_EQ(r, std::vector<std::string>{"pending_transfer_not_found"});
}

TEST_F(ApiTest, PostWithoutAmountPostsTheWholeHold) {
  ASSERT_EQ(create_account("a"), "ok");
  ASSERT_EQ(create_account("b"), "ok");
  ASSERT_EQ(transfer("p", "a", "b", 75, R"(,"flags":["pending"])"), "ok");
  EXPECT_EQ(results("/v1/transfers", R"({"id":"c","flags":["post_pending"],"pending_id":"p"})"),
            std::vector<std::string>{"ok"});
  EXPECT_EQ(balances("b"), (std::vector<int64_t>{0, 0, 0, 75}));
  EXPECT_EQ(ok("GET", "/v1/transfers/c").at("amount").as_int64(), 75);
}

TEST_F(ApiTest, HoldExpires) {
  ASSERT_EQ(create_account("a"), "ok");
  ASSERT_EQ(create_account("b"), "ok");
  ASSERT_EQ(transfer("p", "a", "b", 5, R"(,"flags":["pending"],"timeout_seconds":1)"), "ok");
  std::string state;
  for (int i = 0; i < 100 && state != "expired"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    state = std::string(ok("GET", "/v1/transfers/p").at("pending_state").as_string());
  }
  EXPECT_EQ(state, "expired");
  EXPECT_EQ(balances("a"), (std::vector<int64_t>{0, 0, 0, 0}));
  EXPECT_EQ(results("/v1/transfers", R"({"id":"c","flags":["post_pending"],"pending_id":"p"})"),
            std::vector<std::string>{"pending_transfer_expired"});
}

TEST_F(ApiTest, LinkedChainSucceedsOrFailsWhole) {
  ASSERT_EQ(create_account("a"), "ok");
  ASSERT_EQ(create_account("b"), "ok");
  const std::string hash = state_hash();
  auto r = results("/v1/transfers",
                   R"({"data":[)" + transfer_json("l1", "a", "b", 10, R"(,"flags":["linked"])") +
                       "," + transfer_json("l2", "b", "missing", 5) + "," +
                       transfer_json("solo", "a", "b", 1) + "]}");
  EXPECT_EQ(r, (std::vector<std::string>{"linked_event_failed", "account_not_found", "ok"}));
  EXPECT_EQ(call("GET", "/v1/transfers/l1").status, 404u);
  EXPECT_EQ(balances("a"), (std::vector<int64_t>{0, 1, 0, 0}));
  r = results("/v1/transfers", R"({"data":[)" +
                                   transfer_json("k1", "a", "b", 10, R"(,"flags":["linked"])") +
                                   "," + transfer_json("k2", "b", "a", 3) + "]}");
  EXPECT_EQ(r, (std::vector<std::string>{"ok", "ok"}));
  EXPECT_EQ(balances("a"), (std::vector<int64_t>{0, 11, 0, 3}));
  r = results("/v1/transfers", transfer_json("open", "a", "b", 1, R"(,"flags":["linked"])"));
  EXPECT_EQ(r, std::vector<std::string>{"linked_event_chain_open"});
  EXPECT_NE(state_hash(), hash);
}

TEST_F(ApiTest, LedgerRulesComeBackPerEvent) {
  ASSERT_EQ(create_account("wallet", "USD", R"(["debits_must_not_exceed_credits"])"), "ok");
  ASSERT_EQ(create_account("bank"), "ok");
  ASSERT_EQ(create_account("eur", "EUR"), "ok");
  const auto r = results(
      "/v1/transfers",
      R"({"data":[)" + transfer_json("t1", "wallet", "bank", 1) + "," +
          transfer_json("t2", "bank", "wallet", 100) + "," +
          transfer_json("t3", "wallet", "bank", 60) + "," +
          transfer_json("t4", "wallet", "bank", 41) + "," + transfer_json("t5", "bank", "eur", 1) +
          "," + transfer_json("t6", "bank", "bank", 1) + "," +
          transfer_json("t7", "bank", "wallet", 1, R"(,"pending_id":"t2")") + "]}");
  EXPECT_EQ(r, (std::vector<std::string>{"exceeds_credits", "ok", "ok", "exceeds_credits",
                                         "currency_mismatch", "accounts_must_be_different",
                                         "pending_id_must_be_empty"}));
  EXPECT_EQ(balances("wallet"), (std::vector<int64_t>{0, 60, 0, 100}));
}

TEST_F(ApiTest, ListsAccountTransfersNewestFirst) {
  ASSERT_EQ(create_account("a"), "ok");
  ASSERT_EQ(create_account("b"), "ok");
  ASSERT_EQ(create_account("quiet"), "ok");
  for (int i = 0; i < 5; ++i) ASSERT_EQ(transfer("t" + std::to_string(i), "a", "b", 1 + i), "ok");
  json::object page = ok("GET", "/v1/accounts/a/transfers");
  ASSERT_EQ(page.at("data").as_array().size(), 5u);
  EXPECT_EQ(page.at("data").as_array()[0].at("id").as_string(), "t4");
  EXPECT_FALSE(page.at("has_more").as_bool());
  page = ok("GET", "/v1/accounts/b/transfers?limit=2");
  ASSERT_EQ(page.at("data").as_array().size(), 2u);
  EXPECT_EQ(page.at("data").as_array()[1].at("id").as_string(), "t3");
  EXPECT_TRUE(page.at("has_more").as_bool());
  page = ok("GET", "/v1/accounts/b/transfers?limit=2&starting_after=t3");
  EXPECT_EQ(page.at("data").as_array()[0].at("id").as_string(), "t2");
  EXPECT_EQ(page.at("data").as_array()[1].at("id").as_string(), "t1");
  page = ok("GET", "/v1/accounts/b/transfers?limit=1000&starting_after=t1");
  ASSERT_EQ(page.at("data").as_array().size(), 1u);
  EXPECT_FALSE(page.at("has_more").as_bool());
  page = ok("GET", "/v1/accounts/quiet/transfers");
  EXPECT_TRUE(page.at("data").as_array().empty());
  for (const char* bad : {"0", "1001", "abc", "-1", "", "1.5", "99999999999999999999999"}) {
    expect_error(call("GET", std::string("/v1/accounts/a/transfers?limit=") + bad), 400,
                 "limit_invalid", "limit");
  }
  expect_error(call("GET", "/v1/accounts/a/transfers?starting_after=a%20b"), 400,
               "starting_after_invalid", "starting_after");
  expect_error(call("GET", "/v1/accounts/a/transfers?starting_after=nope"), 400,
               "starting_after_invalid", "starting_after");
  expect_error(call("GET", "/v1/accounts/nope/transfers"), 404, "resource_missing", "id");
  expect_error(call("GET", "/v1/accounts/a/transfers?limt=5"), 400, "parameter_unknown", "limt");
}

TEST_F(ApiTest, ClosesAndReopensAccounts) {
  ASSERT_EQ(create_account("a"), "ok");
  ASSERT_EQ(create_account("b"), "ok");
  EXPECT_EQ(json::serialize(ok("POST", "/v1/accounts/a/close")), R"({"id":"a","result":"ok"})");
  EXPECT_EQ(ok("POST", "/v1/accounts/a/close").at("result").as_string(), "account_already_closed");
  EXPECT_EQ(json::serialize(ok("GET", "/v1/accounts/a").at("flags")), R"(["closed"])");
  EXPECT_EQ(transfer("t1", "a", "b", 1), "account_closed");
  EXPECT_EQ(ok("POST", "/v1/accounts/a/reopen", "{}").at("result").as_string(), "ok");
  EXPECT_EQ(ok("POST", "/v1/accounts/a/reopen").at("result").as_string(), "account_not_closed");
  EXPECT_EQ(transfer("t1", "a", "b", 1), "ok");
  EXPECT_EQ(ok("POST", "/v1/accounts/nope/close").at("result").as_string(), "account_not_found");
  expect_error(call("POST", "/v1/accounts/a/close", R"({"force":true})"), 400, "parameter_unknown",
               "force");
  expect_error(call("POST", "/v1/accounts/a/close", "[1]"), 400, "body_invalid");
  EXPECT_TRUE(ok("GET", "/v1/accounts/a").at("flags").as_array().empty());
}

TEST_F(ApiTest, StatusAndSnapshot) {
  ASSERT_EQ(create_account("a"), "ok");
  json::object s = ok("GET", "/v1/admin/status");
  EXPECT_TRUE(s.at("healthy").as_bool());
  EXPECT_EQ(s.at("counts").at("accounts").as_int64(), 1);
  EXPECT_GE(s.at("last_seq").as_int64(), 1);
  EXPECT_FALSE(s.contains("state_hash"));
  s = ok("GET", "/v1/admin/status?full=true");
  const std::string hash(s.at("state_hash").as_string());
  EXPECT_EQ(hash.size(), 16u);
  EXPECT_EQ(hash.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_TRUE(s.at("invariants_ok").as_bool());
  expect_error(call("GET", "/v1/admin/status?full=yes"), 400, "parameter_invalid", "full");
  EXPECT_EQ(json::serialize(ok("POST", "/v1/admin/snapshot")), R"({"result":"ok"})");
  EXPECT_EQ(state_hash(), hash);
}

TEST_F(ApiTest, NotFoundAndMethodNotAllowed) {
  expect_error(call("GET", "/v1/accounts/nope"), 404, "resource_missing", "id");
  expect_error(call("GET", "/v1/transfers/nope"), 404, "resource_missing", "id");
  expect_error(call("GET", "/v1/accounts/bad%20id"), 400, "id_invalid", "id");
  expect_error(call("GET", "/v1/nothing"), 404, "route_not_found");
  expect_error(call("GET", "/"), 404, "route_not_found");
  HttpResponse res = call("DELETE", "/v1/accounts/a");
  expect_error(res, 405, "method_not_allowed");
  EXPECT_EQ(res.header("Allow"), "GET");
  res = call("GET", "/v1/transfers");
  expect_error(res, 405, "method_not_allowed");
  EXPECT_EQ(res.header("Allow"), "POST");
  res = call("PUT", "/healthz");
  EXPECT_EQ(res.header("Allow"), "GET");
}

struct BadInput {
  const char* target;
  std::string body;
  const char* code;
  const char* param;
};

// One request for every validation error of the create routes.
std::vector<BadInput> bad_create_requests() {
  const std::string t =
      R"("id":"t","debit_account_id":"a","credit_account_id":"b","currency":"USD")";
  const std::string good = "{" + t + R"(,"amount":5})";
  return {
      {"/v1/transfers", "{" + t + R"(,"amount":5)", "json_invalid", ""},
      {"/v1/transfers", "", "json_invalid", ""},
      {"/v1/transfers", "{" + t + R"(,"amount":5,"amount":500})", "json_invalid", ""},
      {"/v1/transfers", "[" + good + "]", "body_invalid", ""},
      {"/v1/transfers", R"({"data":{}})", "body_invalid", "data"},
      {"/v1/transfers", R"({"data":[)" + good + R"(,"x"]})", "body_invalid", "data[1]"},
      {"/v1/transfers", R"({"data":[]})", "data_empty", "data"},
      {"/v1/transfers", "{" + t + R"(,"amount":5,"ammount":5})", "parameter_unknown", "ammount"},
      {"/v1/transfers", "{" + t + "}", "parameter_missing", "amount"},
      {"/v1/transfers", "{" + t + R"(,"amount":"5"})", "amount_invalid", "amount"},
      {"/v1/transfers", "{" + t + R"(,"amount":5.0})", "amount_invalid", "amount"},
      {"/v1/transfers", "{" + t + R"(,"amount":true})", "amount_invalid", "amount"},
      {"/v1/transfers", "{" + t + R"(,"amount":0})", "amount_invalid", "amount"},
      {"/v1/transfers", "{" + t + R"(,"amount":-5})", "amount_invalid", "amount"},
      {"/v1/transfers", "{" + t + R"(,"amount":9223372036854775808})", "amount_invalid", "amount"},
      {"/v1/transfers",
       R"({"data":[)" + good +
           R"(,{"id":"u","debit_account_id":"a",)"
           R"("credit_account_id":"b","currency":"USD","amount":-1}]})",
       "amount_invalid", "data[1].amount"},
      {"/v1/transfers",
       R"({"id":"t","debit_account_id":"a","credit_account_id":"b",)"
       R"("currency":"XYZ","amount":5})",
       "currency_invalid", "currency"},
      {"/v1/transfers",
       R"({"id":"t t","debit_account_id":"a","credit_account_id":"b",)"
       R"("currency":"USD","amount":5})",
       "id_invalid", "id"},
      {"/v1/transfers",
       R"({"id":"t","debit_account_id":"a/","credit_account_id":"b",)"
       R"("currency":"USD","amount":5})",
       "debit_account_id_invalid", "debit_account_id"},
      {"/v1/transfers", "{" + t + R"(,"amount":5,"flags":["pendng"]})", "flags_invalid",
       "flags[0]"},
      {"/v1/transfers", "{" + t + R"(,"amount":5,"timeout_seconds":4294967296})", "timeout_invalid",
       "timeout_seconds"},
      {"/v1/transfers", "{" + t + R"(,"amount":5,"timeout_seconds":-1})", "timeout_invalid",
       "timeout_seconds"},
      {"/v1/transfers", "{" + t + R"(,"amount":5,"metadata":{"k":{"n":"v"}}})", "metadata_invalid",
       "metadata.k"},
      {"/v1/transfers", "{" + t + R"(,"amount":5,"metadata":"x"})", "metadata_invalid", "metadata"},
      {"/v1/transfers", R"({"id":"c","flags":["post_pending"]})", "parameter_missing",
       "pending_id"},
      {"/v1/transfers", R"({"id":"c","flags":["void_pending"],"pending_id":"p q"})",
       "pending_id_invalid", "pending_id"},
      {"/v1/accounts", R"({"id":"n","currency":"usd"})", "currency_invalid", "currency"},
      {"/v1/accounts", R"({"id":"n","currency":"USD","flags":["pending"]})", "flags_invalid",
       "flags[0]"},
      {"/v1/accounts", R"({"id":"n","currency":"USD","typo":1})", "parameter_unknown", "typo"},
      {"/v1/accounts", R"({"id":"n","currency":"USD","metadata":{"bad key":"v"}})",
       "metadata_invalid", "metadata"},
      {"/v1/accounts", R"({"id":")" + std::string(65, 'n') + R"(","currency":"USD"})", "id_invalid",
       "id"},
      {"/v1/accounts", R"({"data":[{"id":"n","currency":"USD"},{"id":"m"}]})", "parameter_missing",
       "data[1].currency"},
  };
}

// Every validation error of the create routes: 400 with its code and param, and nothing changes.
TEST_F(ApiTest, BadInputIsRejectedAndChangesNothing) {
  ASSERT_EQ(create_account("a"), "ok");
  ASSERT_EQ(create_account("b"), "ok");
  const std::string before = state_hash();
  const std::vector<BadInput> cases = bad_create_requests();
  for (const BadInput& c : cases) {
    SCOPED_TRACE(c.body);
    expect_error(call("POST", c.target, c.body), 400, c.code, c.param);
  }
  EXPECT_EQ(call("GET", "/v1/accounts/n").status, 404u);
  EXPECT_EQ(call("GET", "/v1/transfers/t").status, 404u);
  EXPECT_EQ(call("GET", "/v1/transfers/u").status, 404u);
  EXPECT_EQ(balances("a"), (std::vector<int64_t>{0, 0, 0, 0}));
  EXPECT_EQ(state_hash(), before);
}

TEST_F(ApiTest, EventCountBound) {
  std::string body = R"({"data":[)";
  for (int i = 0; i < 8190; ++i) {
    body += (i == 0 ? "" : ",");
    body += R"({"id":"acct_)" + std::to_string(i) + R"(","currency":"USD"})";
  }
  const std::string too_many = body + R"(,{"id":"one_more","currency":"USD"}]})";
  expect_error(call("POST", "/v1/accounts", too_many), 400, "too_many_events", "data");
  EXPECT_EQ(ok("GET", "/v1/admin/status").at("counts").at("accounts").as_int64(), 0);
  const json::object r = ok("POST", "/v1/accounts", body + "]}");
  ASSERT_EQ(r.at("data").as_array().size(), 8190u);
  EXPECT_EQ(r.at("data").as_array()[8189].at("id").as_string(), "acct_8189");
  EXPECT_EQ(r.at("data").as_array()[8189].at("result").as_string(), "ok");
  EXPECT_EQ(ok("GET", "/v1/admin/status").at("counts").at("accounts").as_int64(), 8190);
}

TEST_F(ApiTest, BodyTooLarge) {
  const std::string body = R"({"id":"a","currency":"USD","metadata":{"k":")" +
                           std::string(size_t{5} << 20, 'x') + R"("}})";
  const HttpResponse res = call("POST", "/v1/accounts", body);
  expect_error(res, 413, "body_too_large");
  EXPECT_EQ(call("GET", "/v1/accounts/a").status, 404u);  // a new connection still works
}

TEST_F(ApiTest, HeadersTooLargeAndMalformedHttp) {
  const HttpResponse res = call("GET", "/healthz", "", {{"X-Big", std::string(9000, 'h')}});
  expect_error(res, 431, "headers_too_large");
  const std::string garbage = raw_exchange(keeld_->port(), "NOT HTTP AT ALL\r\n\r\n");
  EXPECT_EQ(garbage.rfind("HTTP/1.1 400", 0), 0u) << garbage;
  EXPECT_NE(garbage.find("http_invalid"), std::string::npos);
  EXPECT_EQ(call("GET", "/healthz").status, 200u);
}

TEST_F(ApiTest, KeepAliveServesPipelinedRequestsInOrder) {
  // An admin key signs; a read's signature may be sent again (only writes take nonces).
  const std::string req = "GET /v1/accounts/x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " +
                          keeld_->admin_key() + "\r\nKeel-Signature: " +
                          security::sign_request(keeld_->admin_key(), "GET", "/v1/accounts/x", "",
                                                 std::time(nullptr), security::new_nonce()) +
                          "\r\n\r\n";
  const std::string last = "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  const std::string out = raw_exchange(keeld_->port(), req + req + req + last);
  EXPECT_EQ(count_of(out, "HTTP/1.1 404"), 3) << out;
  EXPECT_EQ(count_of(out, "HTTP/1.1 200"), 1) << out;
  EXPECT_GT(out.find("HTTP/1.1 200"), out.rfind("HTTP/1.1 404"));
}

TEST_F(ApiTest, ConcurrentClientsAllGetAnswers) {
  ASSERT_EQ(create_account("a"), "ok");
  ASSERT_EQ(create_account("b"), "ok");
  constexpr int kThreads = 4;
  constexpr int kEach = 25;
  std::vector<std::thread> threads;
  std::atomic<int> oks{0};
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      HttpClient c(testing::keeld_client_options(keeld_->port()));
      for (int i = 0; i < kEach; ++i) {
        HttpResponse res;
        const std::string id = "t" + std::to_string(th) + "_" + std::to_string(i);
        if (c.post("/v1/transfers", transfer_json(id, "a", "b", 1), &res).is_ok() &&
            res.status == 200 && res.body.find(R"("result":"ok")") != std::string::npos) {
          ++oks;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(oks.load(), kThreads * kEach);
  EXPECT_EQ(balances("b"), (std::vector<int64_t>{0, 0, 0, kThreads * kEach}));
}

TEST_F(ApiTest, IdleConnectionsAreClosed) {
  const testing::TempDir dir;
  const auto config = dir.path() / "keeld.toml";
  std::ofstream(config) << "[http]\nidle_timeout_ms = 300\n";
  start(testing::KeeldOptions{.extra_args = {"--config", config.string()}});
  const auto t0 = std::chrono::steady_clock::now();
  const std::string out = raw_exchange(keeld_->port(), "", 10'000);
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(out, "");
  EXPECT_LT(waited, std::chrono::seconds(5));  // closed by the server, not by our timeout
}

TEST_F(ApiTest, StopsCleanlyAndKeepsAcknowledgedWrites) {
  const testing::TempDir dir;
  start(testing::KeeldOptions{.data_dir = dir.path() / "data"});
  ASSERT_EQ(create_account("a"), "ok");
  ASSERT_EQ(create_account("b"), "ok");
  ASSERT_EQ(transfer("t", "a", "b", 7), "ok");
  const std::string hash = state_hash();
  client_.reset();
  EXPECT_EQ(keeld_->stop(), 0);
  start(testing::KeeldOptions{.data_dir = dir.path() / "data"});
  EXPECT_EQ(balances("b"), (std::vector<int64_t>{0, 0, 0, 7}));
  EXPECT_EQ(state_hash(), hash);
  // kill -9 after an acknowledged write: still there.
  ASSERT_EQ(transfer("t2", "a", "b", 3), "ok");
  client_.reset();
  EXPECT_EQ(keeld_->kill9(), 128 + 9);
  start(testing::KeeldOptions{.data_dir = dir.path() / "data"});
  EXPECT_EQ(balances("b"), (std::vector<int64_t>{0, 0, 0, 10}));
}

// The history tier seen from outside: every transfer and every page of an account's history
// answers byte for byte the same while in memory, once in the store, and after restarts.
TEST_F(ApiTest, TransfersReadTheSameFromMemoryFromTheStoreAndAfterRestarts) {
  const testing::TempDir dir;
  start(testing::KeeldOptions{.data_dir = dir.path() / "data"});
  ASSERT_EQ(create_account("a"), "ok");
  ASSERT_EQ(create_account("b"), "ok");
  for (int i = 0; i < 30; ++i) {
    const std::string n = std::to_string(i);
    if (i % 3 == 0) {
      ASSERT_EQ(transfer("h" + n, "a", "b", 5 + i, R"(,"flags":["pending"])"), "ok");
      ASSERT_EQ(results("/v1/transfers", R"({"id":"p)" + n + R"(","pending_id":"h)" + n +
                                             R"(","amount":2,"flags":["post_pending"]})")[0],
                "ok");
    } else {
      ASSERT_EQ(transfer("t" + n, i % 2 ? "a" : "b", i % 2 ? "b" : "a", 1 + i,
                         R"(,"metadata":{"order":")" + n + R"("})"),
                "ok");
    }
  }
  const auto read_all = [&] {
    std::vector<std::string> bodies;
    for (int i = 0; i < 30; ++i) {
      for (const char* prefix : {"t", "h", "p"}) {
        const HttpResponse r = call("GET", "/v1/transfers/" + (prefix + std::to_string(i)));
        bodies.push_back(std::to_string(r.status) + " " + (r.status == 200 ? r.body : ""));
      }
    }
    for (const char* account : {"a", "b"}) {
      std::string target = std::string("/v1/accounts/") + account + "/transfers?limit=7";
      for (;;) {
        const json::object page = ok("GET", target);
        bodies.push_back(json::serialize(page));
        const auto& data = page.at("data").as_array();
        if (!page.at("has_more").as_bool() || data.empty()) break;
        target = std::string("/v1/accounts/") + account + "/transfers?limit=7&starting_after=" +
                 std::string(data.back().at("id").as_string());
      }
    }
    return bodies;
  };
  const std::vector<std::string> before = read_all();
  const std::string hash = state_hash();
  // Every transfer here is final: all of them leave memory.
  bool moved = false;
  for (int i = 0; i < 500 && !moved; ++i) {
    const json::object s = ok("GET", "/v1/admin/status");
    moved = s.at("counts").at("transfers_in_memory").as_int64() == 0 &&
            s.at("history").at("queued").as_int64() == 0;
    if (!moved) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(moved);
  EXPECT_NE(call("GET", "/metrics").body.find("\nkeel_history_transfers_moved_total 40\n"),
            std::string::npos);
  EXPECT_EQ(read_all(), before);
  EXPECT_EQ(state_hash(), hash);
  EXPECT_EQ(json::serialize(ok("POST", "/v1/admin/snapshot")), R"({"result":"ok"})");
  client_.reset();
  EXPECT_EQ(keeld_->stop(), 0);
  start(testing::KeeldOptions{.data_dir = dir.path() / "data"});
  EXPECT_EQ(read_all(), before);
  EXPECT_EQ(state_hash(), hash);
  EXPECT_EQ(transfer("t1", "a", "b", 2, R"(,"metadata":{"order":"1"})"), "exists");
  client_.reset();
  EXPECT_EQ(keeld_->kill9(), 128 + 9);
  start(testing::KeeldOptions{.data_dir = dir.path() / "data"});
  EXPECT_EQ(read_all(), before);
  EXPECT_EQ(state_hash(), hash);
}

TEST_F(ApiTest, StopAnswersRequestsInFlight) {
  ASSERT_EQ(create_account("a"), "ok");
  ASSERT_EQ(create_account("b"), "ok");
  std::atomic<int> answered{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int th = 0; th < 4; ++th) {
    threads.emplace_back([&, th] {
      HttpClient c(testing::keeld_client_options(keeld_->port()));
      for (int i = 0; i < 200; ++i) {
        HttpResponse res;
        const std::string id = "s" + std::to_string(th) + "_" + std::to_string(i);
        if (!c.post("/v1/transfers", transfer_json(id, "a", "b", 1), &res).is_ok()) break;
        // Every answer is complete: a result or a clean 503 while stopping.
        if (res.status == 200 || res.status == 503) {
          ++answered;
        } else {
          ++failed;
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(keeld_->stop(), 0);
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(answered.load(), 0);
}

// keeld above its memory budget (1 MiB: it is above it from the start) answers new work 503
// over_capacity with Retry-After, keeps answering reads, and shows it in status and metrics.
TEST_F(ApiTest, AboveTheMemoryBudgetNewWorkIsA503OverCapacity) {
  const testing::TempDir dir;
  const auto config = dir.path() / "keeld.toml";
  std::ofstream(config) << "[engine]\nmemory_max_mb = 1\ntick_interval_ms = 10\n";
  start(testing::KeeldOptions{.extra_args = {"--config", config.string()}});
  HttpResponse res;
  for (int i = 0; i < 500; ++i) {  // the first check comes within a tick
    res = call("POST", "/v1/accounts", R"({"id":"a","currency":"USD"})");
    if (res.status == 503) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(res.status, 503u) << res.body;
  EXPECT_EQ(res.header("Retry-After"), "1");
  EXPECT_NE(res.body.find(R"("code":"over_capacity")"), std::string::npos) << res.body;
  EXPECT_NE(res.body.find("memory_max_mb"), std::string::npos) << res.body;
  res = call("POST", "/v1/customers", R"({"name":"Ann"})");
  EXPECT_EQ(res.status, 503u) << res.body;
  EXPECT_EQ(call("GET", "/v1/accounts/nobody").status, 404u);  // reads go on
  const json::object status = ok("GET", "/v1/admin/status");
  const json::object& memory = status.at("memory").as_object();
  EXPECT_TRUE(memory.at("over_capacity").as_bool());
  EXPECT_EQ(memory.at("max_bytes").as_int64(), 1 << 20);
  EXPECT_GT(memory.at("resident_bytes").as_int64(), 1 << 20);
  EXPECT_GE(memory.at("refused").as_int64(), 2);
  const std::string metrics = call("GET", "/metrics").body;
  EXPECT_NE(metrics.find("\nkeel_over_capacity 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\nkeel_memory_budget_bytes 1048576\n"), std::string::npos);
}

// With a one-command queue, concurrent writers may be refused: every refusal must be a clean
// 503 overloaded with Retry-After, never a hang or a broken answer.
TEST_F(ApiTest, OverloadIsA503WithRetryAfter) {
  const testing::TempDir dir;
  const auto config = dir.path() / "keeld.toml";
  std::ofstream(config) << "io_threads = 4\n[engine]\nqueue_capacity = 1\n";
  start(testing::KeeldOptions{.extra_args = {"--config", config.string()}});
  std::string batch = R"({"data":[)";
  for (int i = 0; i < 2000; ++i) {
    batch += (i == 0 ? "" : ",") + std::string(R"({"id":"x)") + std::to_string(i) +
             R"(","currency":"USD"})";
  }
  batch += "]}";
  std::atomic<int> ok_count{0};
  std::atomic<int> overloaded{0};
  std::atomic<int> other{0};
  std::vector<std::thread> threads;
  for (int th = 0; th < 6; ++th) {
    threads.emplace_back([&] {
      HttpClient c(testing::keeld_client_options(keeld_->port()));
      for (int i = 0; i < 10; ++i) {
        HttpResponse res;
        if (!c.post("/v1/accounts", batch, &res).is_ok()) {
          ++other;
        } else if (res.status == 200) {
          ++ok_count;
        } else if (res.status == 503 && res.header("Retry-After") == "1" &&
                   res.body.find(R"("code":"overloaded")") != std::string::npos) {
          ++overloaded;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(ok_count.load(), 0);
  EXPECT_EQ(ok_count.load() + overloaded.load(), 60);
  RecordProperty("overloaded", overloaded.load());
}

TEST(KeeldStartup, FailsClearlyOnBadConfigAndPortInUse) {
  const auto keeld = testing::build_path("src/keeld/keeld").string();
  const testing::TempDir dir;
  auto r = testing::run_program({keeld, "--listen", "nowhere", "--data", dir.path().string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_of(r.err, "\n"), 1) << r.err;
  EXPECT_NE(r.err.find("--listen"), std::string::npos) << r.err;
  const auto config = dir.path() / "bad.toml";
  std::ofstream(config) << "[engine]\nqueue_capacty = 5\n";
  r = testing::run_program({keeld, "--config", config.string(), "--data", dir.path().string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("queue_capacty"), std::string::npos) << r.err;

  std::unique_ptr<KeeldProcess> running;
  ASSERT_TRUE(KeeldProcess::start({}, &running).is_ok());
  r = testing::run_program({keeld, "--listen", "127.0.0.1:" + std::to_string(running->port()),
                            "--data", (dir.path() / "other").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("listen 127.0.0.1:" + std::to_string(running->port())), std::string::npos)
      << r.err;
}

TEST(KeeldStartup, RefusesACorruptJournal) {
  const testing::TempDir dir;
  const auto data = dir.path() / "data";
  {
    std::unique_ptr<KeeldProcess> k;
    ASSERT_TRUE(KeeldProcess::start({.data_dir = data}, &k).is_ok());
    HttpClient c(testing::keeld_client_options(k->port()));
    HttpResponse res;
    for (const char* id : {"a", "b", "c"}) {
      ASSERT_TRUE(
          c.post("/v1/accounts", std::string(R"({"id":")") + id + R"(","currency":"USD"})", &res)
              .is_ok());
    }
    ASSERT_EQ(k->stop(), 0);
  }
  // Flip one byte inside the first record (not the tail): recovery must refuse, not skip it.
  std::filesystem::path segment;
  for (const auto& e : std::filesystem::directory_iterator(data)) {
    if (e.path().extension() == ".seg") segment = e.path();
  }
  ASSERT_FALSE(segment.empty());
  {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(60);
    char c = 0;
    f.read(&c, 1);
    f.seekp(60);
    c = static_cast<char>(c ^ 0x5A);
    f.write(&c, 1);
  }
  const auto r = testing::run_program({testing::build_path("src/keeld/keeld").string(), "--listen",
                                       "127.0.0.1:0", "--data", data.string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("keeld: "), std::string::npos) << r.err;
}

class CliTest : public ApiTest {
 protected:
  testing::ProgramResult keel(std::vector<std::string> args) {
    args.insert(args.begin(), {testing::build_path("src/cli/keel").string(), "--server",
                               keeld_->base_url(), "--key", keeld_->admin_key()});
    return testing::run_program(args);
  }
};

TEST_F(CliTest, CreatesAndShowsAccountsAndTransfers) {
  auto r = keel({"account", "create", "--id", "a", "--currency", "USD", "--metadata", "k=v"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("ok"), std::string::npos);
  ASSERT_EQ(keel({"account", "create", "--id", "b", "--currency", "USD"}).exit_code, 0);
  r = keel({"transfer", "create", "--id", "t", "--debit", "a", "--credit", "b", "--amount", "1250",
            "--currency", "USD"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = keel({"account", "get", "b"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("12.50 USD"), std::string::npos) << r.out;
  r = keel({"-o", "json", "transfer", "get", "t"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(json::parse(r.out).at("amount").as_int64(), 1250);
  r = keel({"account", "transfers", "a", "--limit", "5"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("CREATED_AT"), std::string::npos);
  r = keel({"transfer", "create", "--id", "p", "--debit", "a", "--credit", "b", "--amount", "5",
            "--currency", "USD", "--pending", "--timeout", "60"});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(keel({"transfer", "create", "--id", "v", "--void", "p"}).exit_code, 0);
  EXPECT_EQ(keel({"status", "--full"}).exit_code, 0);
  EXPECT_EQ(keel({"account", "close", "a"}).exit_code, 0);
}

TEST_F(CliTest, ErrorsExitOne) {
  auto r = keel({"account", "get", "nope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no account with id nope"), std::string::npos) << r.err;
  r = keel({"transfer", "create", "--id", "t", "--debit", "a", "--credit", "b", "--amount", "0",
            "--currency", "USD"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("amount"), std::string::npos) << r.err;
  ASSERT_EQ(keel({"account", "create", "--id", "a", "--currency", "USD"}).exit_code, 0);
  r = keel({"account", "create", "--id", "a", "--currency", "EUR"});
  EXPECT_EQ(r.exit_code, 1);  // a per-event result other than ok or exists
  EXPECT_NE(r.out.find("exists_with_different_currency"), std::string::npos);
  r = testing::run_program(
      {testing::build_path("src/cli/keel").string(), "--server", "http://127.0.0.1:1", "status"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("127.0.0.1:1"), std::string::npos) << r.err;
}

TEST_F(CliTest, JournalVerify) {
  ASSERT_EQ(create_account("a"), "ok");
  const auto data = keeld_->data_dir();
  client_.reset();
  ASSERT_EQ(keeld_->stop(), 0);
  const auto keel = testing::build_path("src/cli/keel").string();
  auto r = testing::run_program({keel, "journal", "verify", data.string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("invariants_ok"), std::string::npos);
  r = testing::run_program({keel, "-o", "json", "journal", "verify", data.string()});
  EXPECT_EQ(json::parse(r.out).at("counts").at("accounts").as_int64(), 1);
}

// keeld's options with `toml` as its config file (written into `dir`).
testing::KeeldOptions with_config(const testing::TempDir& dir, const std::string& toml) {
  const auto config = dir.path() / "keeld.toml";
  std::ofstream(config) << toml;
  testing::KeeldOptions o;
  o.extra_args = {"--config", config.string()};
  return o;
}

// Runs the keel CLI against `keeld`.
testing::ProgramResult keel_at(const testing::KeeldProcess& keeld, std::vector<std::string> args) {
  args.insert(args.begin(), {testing::build_path("src/cli/keel").string(), "--server",
                             keeld.base_url(), "--key", keeld.admin_key()});
  return testing::run_program(args);
}

// `keel backup` while keeld serves, `keel restore` into a new data directory, and keeld on it:
// the same state hash, the same balances, the history in its store. Refused without
// [admin] controls (a backup writes files on keeld's machine), and into a directory in use.
TEST(CliBackup, BackupRestoreAndStartOnTheCopy) {
  testing::TempDir dir;
  testing::KeeldOptions o = with_config(dir, "[admin]\ncontrols = true\n");
  o.data_dir = dir.path() / "data";
  std::unique_ptr<testing::KeeldProcess> keeld;
  ASSERT_TRUE(testing::KeeldProcess::start(o, &keeld).is_ok());
  const auto keel = [&](std::vector<std::string> args) { return keel_at(*keeld, std::move(args)); };
  ASSERT_EQ(keel({"account", "create", "--id", "a", "--currency", "USD"}).exit_code, 0);
  ASSERT_EQ(keel({"account", "create", "--id", "b", "--currency", "USD"}).exit_code, 0);
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(keel({"transfer", "create", "--id", "t" + std::to_string(i), "--debit", "a",
                    "--credit", "b", "--amount", std::to_string(10 + i), "--currency", "USD"})
                  .exit_code,
              0);
  }
  auto r = keel({"-o", "json", "status", "--full"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string hash(json::parse(r.out).at("state_hash").as_string());
  const auto backup = dir.path() / "backup";
  r = keel({"-o", "json", "backup", backup.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json::value b = json::parse(r.out);
  EXPECT_EQ(b.at("result").as_string(), "ok");
  EXPECT_TRUE(b.at("with_store").as_bool());
  r = keel({"backup", backup.string()});  // not empty any more
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("dir must be an absolute path"), std::string::npos) << r.err;
  ASSERT_EQ(keeld->stop(), 0);

  const auto cli = testing::build_path("src/cli/keel").string();
  r = testing::run_program({cli, "restore", backup.string(), o.data_dir.string()});
  EXPECT_EQ(r.exit_code, 1);  // the original data directory is not empty
  EXPECT_NE(r.err.find("not an empty directory"), std::string::npos) << r.err;
  const auto restored = dir.path() / "restored";
  r = testing::run_program({cli, "-o", "json", "restore", backup.string(), restored.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).at("state_hash").as_string(), hash);

  // The operator kept the admin key (a backup holds the key ring, never a key's secret).
  std::filesystem::copy_file(dir.path() / "data" / "bootstrap-keys", restored / "bootstrap-keys");
  o.data_dir = restored;
  ASSERT_TRUE(testing::KeeldProcess::start(o, &keeld).is_ok());
  r = keel({"-o", "json", "status", "--full"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).at("state_hash").as_string(), hash);
  r = keel({"-o", "json", "account", "get", "b"});
  EXPECT_EQ(json::parse(r.out).at("credits_posted").as_int64(), 10 + 11 + 12 + 13 + 14);
  r = keel({"-o", "json", "transfer", "get", "t3"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).at("amount").as_int64(), 13);
  ASSERT_EQ(keeld->stop(), 0);

  // Without [admin] controls the route does not exist.
  testing::KeeldOptions plain;
  ASSERT_TRUE(testing::KeeldProcess::start(plain, &keeld).is_ok());
  r = keel({"backup", (dir.path() / "other").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "other"));
}

// `keel store rebuild` from the CLI: keeld archives old segments, the store is lost, and the
// rebuild (with the archive; refused without it) brings keeld back to the same state.
TEST(CliStoreRebuild, RebuildsALostStoreFromTheArchivedJournal) {
  testing::TempDir dir;
  const auto archive = dir.path() / "archive";
  testing::KeeldOptions o = with_config(
      dir, "[engine]\nsegment_bytes_max = 4096\narchive_dir = \"" + archive.string() + "\"\n");
  o.data_dir = dir.path() / "data";
  std::unique_ptr<testing::KeeldProcess> keeld;
  ASSERT_TRUE(testing::KeeldProcess::start(o, &keeld).is_ok());
  HttpClient c(testing::keeld_client_options(keeld->port()));
  HttpResponse res;
  for (const char* id : {"a", "b"}) {
    ASSERT_TRUE(
        c.post("/v1/accounts", std::string(R"({"id":")") + id + R"(","currency":"USD"})", &res)
            .is_ok());
    ASSERT_NE(res.body.find(R"("result":"ok")"), std::string::npos) << res.body;
  }
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 30; ++i) {
      const std::string id = "t" + std::to_string(round) + "_" + std::to_string(i);
      ASSERT_TRUE(c.post("/v1/transfers",
                         R"({"id":")" + id +
                             R"(","debit_account_id":"a","credit_account_id":"b","amount":5,)"
                             R"("currency":"USD"})",
                         &res)
                      .is_ok());
      ASSERT_NE(res.body.find(R"("result":"ok")"), std::string::npos) << res.body;
    }
    ASSERT_TRUE(c.post("/v1/admin/snapshot", "", &res).is_ok());
    ASSERT_EQ(res.status, 200u) << res.body;
  }
  ASSERT_TRUE(c.get("/v1/admin/status?full=true", &res).is_ok());
  const std::string hash(json::parse(res.body).at("state_hash").as_string());
  ASSERT_EQ(keeld->stop(), 0);
  ASSERT_TRUE(std::filesystem::exists(archive));
  std::filesystem::remove_all(o.data_dir / "store");

  const auto cli = testing::build_path("src/cli/keel").string();
  auto r = testing::run_program({cli, "store", "rebuild", o.data_dir.string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("the archive is incomplete"), std::string::npos) << r.err;
  r = testing::run_program(
      {cli, "-o", "json", "store", "rebuild", o.data_dir.string(), "--archive", archive.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).at("state_hash").as_string(), hash);

  ASSERT_TRUE(testing::KeeldProcess::start(o, &keeld).is_ok());
  HttpClient again(testing::keeld_client_options(keeld->port()));
  ASSERT_TRUE(again.get("/v1/admin/status?full=true", &res).is_ok());
  EXPECT_EQ(json::parse(res.body).at("state_hash").as_string(), hash);
  ASSERT_TRUE(again.get("/v1/transfers/t0_3", &res).is_ok());
  EXPECT_EQ(res.status, 200u) << res.body;
  ASSERT_TRUE(again.get("/v1/accounts/b", &res).is_ok());
  EXPECT_EQ(json::parse(res.body).at("credits_posted").as_int64(), 3 * 30 * 5);
}

// The runtime-control and payment commands against a keeld with routing channels and
// [admin] controls = true (no PSP needed: nothing is paid here).
TEST(CliControls, ChannelsModeFlowsAndPayments) {
  testing::TempDir dir;
  testing::KeeldOptions o = with_config(
      dir,
      "[channels.cardco]\nurl = \"http://127.0.0.1:1\"\ncost_bps = 290\n"
      "[channels.cardco_v2]\nurl = \"http://127.0.0.1:1\"\npsp = \"cardco\"\n"
      "canary_of = \"cardco\"\n"
      "[channels.bankco]\nurl = \"http://127.0.0.1:1\"\nflows = [\"topup\", \"payout\"]\n"
      "[routing]\n[admin]\ncontrols = true\n");
  std::unique_ptr<testing::KeeldProcess> keeld;
  ASSERT_TRUE(testing::KeeldProcess::start(o, &keeld).is_ok());
  const auto keel = [&](std::vector<std::string> args) { return keel_at(*keeld, std::move(args)); };
  auto r = keel({"channel", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("cardco_v2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("closed"), std::string::npos) << r.out;
  r = keel({"channel", "pause", "cardco", "--reason", "maintenance"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("channel_pause"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("maintenance"), std::string::npos) << r.out;
  r = keel({"channel", "canary", "cardco", "--to", "cardco_v2", "--share", "10"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("cardco_v2 10%"), std::string::npos) << r.out;
  r = keel({"channel", "canary", "cardco", "--to", "bankco", "--share", "10"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bankco is not a canary of cardco"), std::string::npos) << r.err;
  r = keel({"channel", "pause", "nope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no channel nope"), std::string::npos) << r.err;
  r = keel({"flow", "disable", "refunds"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("refunds"), std::string::npos);
  r = keel({"flow", "disable", "cards"});
  EXPECT_EQ(r.exit_code, 1);
  r = keel({"mode", "read-only", "--reason", "drill"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = keel({"-o", "json", "controls"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const json::value controls = json::parse(r.out);
  EXPECT_TRUE(controls.at("read_only").as_bool());
  EXPECT_EQ(controls.at("changes").as_array().size(), 4u) << r.out;
  r = keel({"account", "create", "--id", "a", "--currency", "USD"});
  EXPECT_EQ(r.exit_code, 1);  // read-only: 503 read_only
  EXPECT_NE(r.err.find("read-only"), std::string::npos) << r.err;
  EXPECT_EQ(keel({"mode", "read-write"}).exit_code, 0);
  r = keel({"payment", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("STATUS"), std::string::npos);
  r = keel({"payment", "get", "pay_nope"});
  EXPECT_EQ(r.exit_code, 1);
  ASSERT_EQ(keeld->stop(), 0);
}

}  // namespace
}  // namespace keel
