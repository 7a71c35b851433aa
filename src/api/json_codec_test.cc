#include "api/json_codec.h"

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <set>
#include <string>

#include "api/errors.h"
#include "api/router.h"

namespace keel::api {
namespace {

namespace json = boost::json;
using ledger::AccountEvent;
using ledger::TransferEvent;

// The error of parsing `body` as transfers; fails the test if it parsed.
ApiError transfer_error(const std::string& body) {
  auto p = parse_transfer_events(body);
  EXPECT_FALSE(p.ok()) << body;
  return p.error.value_or(ApiError{});
}

ApiError account_error(const std::string& body) {
  auto p = parse_account_events(body);
  EXPECT_FALSE(p.ok()) << body;
  return p.error.value_or(ApiError{});
}

void expect_error(const ApiError& e, ErrorCode code, const std::string& param) {
  EXPECT_EQ(error_code_name(e.code), error_code_name(code)) << e.message;
  EXPECT_EQ(e.param, param) << e.message;
  EXPECT_FALSE(e.message.empty());
}

const std::string kPlain =
    R"("id":"tr_1","debit_account_id":"a","credit_account_id":"b","currency":"USD")";

// A plain transfer body with `amount_json` as its amount.
std::string with_amount(const std::string& amount_json) {
  return "{" + kPlain + R"(,"amount":)" + amount_json + "}";
}

TEST(ParseJson, RejectsMalformedAndNonStandardJson) {
  for (const char* text : {"", "{", "{\"a\":}", "[1,]", "{\"a\":1,}", "// c\n{}", "{'a':1}",
                           "{\"a\":1} x", "\"\xff\"", "NaN"}) {
    auto p = parse_json(text);
    ASSERT_FALSE(p.ok()) << text;
    EXPECT_EQ(p.error->code, ErrorCode::json_invalid) << text;
  }
}

TEST(ParseJson, RejectsDuplicateKeysAtAnyDepth) {
  for (const char* text : {R"({"amount":1,"amount":1000})", R"({"a":{"b":1,"c":2,"b":3}})",
                           R"({"data":[{"x":1},{"y":1,"y":1}]})"}) {
    auto p = parse_json(text);
    ASSERT_FALSE(p.ok()) << text;
    EXPECT_EQ(p.error->code, ErrorCode::json_invalid);
    EXPECT_NE(p.error->message.find("duplicate key"), std::string::npos);
  }
  EXPECT_TRUE(parse_json(R"({"a":{"b":1},"b":{"a":2}})").ok());
}

TEST(ParseJson, RejectsDeepNesting) {
  const std::string deep = std::string(40, '[') + std::string(40, ']');
  EXPECT_FALSE(parse_json(deep).ok());
  const std::string ok = std::string(30, '[') + std::string(30, ']');
  EXPECT_TRUE(parse_json(ok).ok());
}

TEST(AccountEvents, ParsesOneObject) {
  auto p = parse_account_events(
      R"({"id":"acct_1","currency":"USD","flags":["debits_must_not_exceed_credits","linked"],)"
      R"("metadata":{"z":"1","a":"2"}})");
  ASSERT_TRUE(p.ok()) << p.error->message;
  ASSERT_EQ(p.value.size(), 1u);
  const AccountEvent& e = p.value[0];
  EXPECT_EQ(e.id, "acct_1");
  EXPECT_EQ(e.currency.code(), "USD");
  EXPECT_EQ(e.flags,
            ledger::account_flags::kDebitsMustNotExceedCredits | ledger::account_flags::kLinked);
  ASSERT_EQ(e.metadata.size(), 2u);
  EXPECT_EQ(e.metadata[0].first, "a");  // normalized: sorted by key
}

TEST(AccountEvents, ParsesBatchAndNullOptionals) {
  auto p = parse_account_events(
      R"({"data":[{"id":"a","currency":"EUR"},{"id":"b","currency":"JPY","flags":null,)"
      R"("metadata":null}]})");
  ASSERT_TRUE(p.ok()) << p.error->message;
  ASSERT_EQ(p.value.size(), 2u);
  EXPECT_EQ(p.value[1].id, "b");
  EXPECT_EQ(p.value[1].currency.code(), "JPY");
  EXPECT_EQ(p.value[1].flags, 0);
}

TEST(AccountEvents, RejectsBodyShapes) {
  expect_error(account_error("[]"), ErrorCode::body_invalid, "");
  expect_error(account_error("42"), ErrorCode::body_invalid, "");
  expect_error(account_error(R"({"data":{}})"), ErrorCode::body_invalid, "data");
  expect_error(account_error(R"({"data":[]})"), ErrorCode::data_empty, "data");
  expect_error(account_error(R"({"data":[{"id":"a","currency":"USD"},7]})"),
               ErrorCode::body_invalid, "data[1]");
  expect_error(account_error(R"({"data":[{"id":"a","currency":"USD"}],"extra":1})"),
               ErrorCode::parameter_unknown, "extra");
  expect_error(account_error("{oops"), ErrorCode::json_invalid, "");
}

TEST(AccountEvents, EventCountBound) {
  std::string body = R"({"data":[)";
  for (size_t i = 0; i < ledger::kEventsPerRequestMax; ++i) {
    body += (i == 0 ? "" : ",");
    body += R"({"id":"a)" + std::to_string(i) + R"(","currency":"USD"})";
  }
  auto p = parse_account_events(body + "]}");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.value.size(), ledger::kEventsPerRequestMax);
  expect_error(account_error(body + R"(,{"id":"x","currency":"USD"}]})"),
               ErrorCode::too_many_events, "data");
}

TEST(AccountEvents, RejectsBadFields) {
  expect_error(account_error(R"({"id":"a","curency":"USD"})"), ErrorCode::parameter_unknown,
               "curency");
  expect_error(account_error(R"({"data":[{"id":"a","currency":"USD","x":1}]})"),
               ErrorCode::parameter_unknown, "data[0].x");
  expect_error(account_error(R"({"currency":"USD"})"), ErrorCode::parameter_missing, "id");
  expect_error(account_error(R"({"id":null,"currency":"USD"})"), ErrorCode::parameter_missing,
               "id");
  expect_error(account_error(R"({"id":7,"currency":"USD"})"), ErrorCode::id_invalid, "id");
  expect_error(account_error(R"({"id":"a b","currency":"USD"})"), ErrorCode::id_invalid, "id");
  expect_error(account_error(R"({"id":")" + std::string(65, 'a') + R"(","currency":"USD"})"),
               ErrorCode::id_invalid, "id");
  expect_error(account_error(R"({"id":""  ,"currency":"USD"})"), ErrorCode::id_invalid, "id");
  expect_error(account_error(R"({"id":"a"})"), ErrorCode::parameter_missing, "currency");
  for (const char* c : {R"("usd")", R"("XXX")", R"("US")", "840", "true"}) {
    expect_error(account_error(R"({"id":"a","currency":)" + std::string(c) + "}"),
                 ErrorCode::currency_invalid, "currency");
  }
}

TEST(AccountEvents, RejectsBadFlags) {
  const std::string base = R"({"id":"a","currency":"USD","flags":)";
  expect_error(account_error(base + R"("linked"})"), ErrorCode::flags_invalid, "flags");
  expect_error(account_error(base + R"(["linked","pending"]})"), ErrorCode::flags_invalid,
               "flags[1]");
  expect_error(account_error(base + R"(["linked","linked"]})"), ErrorCode::flags_invalid,
               "flags[1]");
  expect_error(account_error(base + R"([1]})"), ErrorCode::flags_invalid, "flags[0]");
  expect_error(account_error(base + R"(["Linked"]})"), ErrorCode::flags_invalid, "flags[0]");
}

TEST(AccountEvents, RejectsBadMetadata) {
  const std::string base = R"({"data":[{"id":"a","currency":"USD","metadata":)";
  const std::string end = "}]}";
  expect_error(account_error(base + "[]" + end), ErrorCode::metadata_invalid, "data[0].metadata");
  expect_error(account_error(base + R"({"k":1})" + end), ErrorCode::metadata_invalid,
               "data[0].metadata.k");
  expect_error(account_error(base + R"({"k":{"n":"v"}})" + end), ErrorCode::metadata_invalid,
               "data[0].metadata.k");
  expect_error(account_error(base + R"({"bad key":"v"})" + end), ErrorCode::metadata_invalid,
               "data[0].metadata");
  expect_error(account_error(base + R"({"k":")" + std::string(257, 'v') + R"("})" + end),
               ErrorCode::metadata_invalid, "data[0].metadata");
  std::string many = "{";
  for (size_t i = 0; i <= kMetadataEntriesMax; ++i) {
    many += (i == 0 ? "\"k" : ",\"k") + std::to_string(i) + R"(":"v")";
  }
  expect_error(account_error(base + many + "}" + end), ErrorCode::metadata_invalid,
               "data[0].metadata");
  EXPECT_TRUE(
      parse_account_events(base + R"({"k":")" + std::string(256, 'v') + R"("})" + end).ok());
}

TEST(TransferEvents, ParsesPlainPendingPostAndVoid) {
  auto p = parse_transfer_events(
      R"({"data":[)"
      R"({"id":"t1","debit_account_id":"a","credit_account_id":"b","amount":1250,)"
      R"("currency":"USD","metadata":{"order":"42"}},)"
      R"({"id":"t2","debit_account_id":"a","credit_account_id":"b","amount":9,)"
      R"("currency":"USD","flags":["pending"],"timeout_seconds":4294967295,"pending_id":null},)"
      R"({"id":"t3","flags":["post_pending"],"pending_id":"t2"},)"
      R"({"id":"t4","flags":["void_pending","linked"],"pending_id":"t2","amount":9}]})");
  ASSERT_TRUE(p.ok()) << p.error->message;
  ASSERT_EQ(p.value.size(), 4u);
  EXPECT_EQ(p.value[0].amount, 1250);
  EXPECT_EQ(p.value[0].metadata.size(), 1u);
  EXPECT_EQ(p.value[1].flags, ledger::transfer_flags::kPending);
  EXPECT_EQ(p.value[1].timeout_s, 4294967295u);
  EXPECT_TRUE(p.value[1].pending_id.empty());
  EXPECT_EQ(p.value[2].amount, 0);  // omitted: the whole pending amount
  EXPECT_EQ(p.value[2].pending_id, "t2");
  EXPECT_FALSE(p.value[2].currency.valid());
  EXPECT_TRUE(p.value[2].debit_account_id.empty());
  EXPECT_EQ(p.value[3].flags,
            ledger::transfer_flags::kVoidPending | ledger::transfer_flags::kLinked);
  EXPECT_EQ(p.value[3].amount, 9);
}

TEST(TransferEvents, AmountMustBeAPositiveJsonInteger) {
  for (const char* bad : {"0", "-1", "\"100\"", "1.5", "1.0", "1e3", "true", "[]", "{}",
                          "9223372036854775808", "18446744073709551616", "-9223372036854775808"}) {
    expect_error(transfer_error(with_amount(bad)), ErrorCode::amount_invalid, "amount");
  }
  auto p = parse_transfer_events(with_amount("9223372036854775807"));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.value[0].amount, INT64_MAX);
  expect_error(transfer_error("{" + kPlain + "}"), ErrorCode::parameter_missing, "amount");
  expect_error(transfer_error(R"({"id":"p","flags":["post_pending"],"pending_id":"x","amount":0})"),
               ErrorCode::amount_invalid, "amount");
}

TEST(TransferEvents, RejectsBadFields) {
  const std::string ok = R"("id":"t","debit_account_id":"a","credit_account_id":"b",)"
                         R"("amount":5,"currency":"USD")";
  expect_error(transfer_error("{" + ok + R"(,"ammount":5})"), ErrorCode::parameter_unknown,
               "ammount");
  expect_error(transfer_error(R"({"data":[{)" + ok + R"(},{)" + ok + R"(,"debit_account_id":1}]})"),
               ErrorCode::json_invalid, "");  // duplicate key
  expect_error(transfer_error(R"({"data":[{)" + ok +
                              R"(},{"id":"u","debit_account_id":"a b",)"
                              R"("credit_account_id":"b","amount":5,"currency":"USD"}]})"),
               ErrorCode::debit_account_id_invalid, "data[1].debit_account_id");
  expect_error(transfer_error(R"({"id":"t","debit_account_id":"a","amount":5,"currency":"USD"})"),
               ErrorCode::parameter_missing, "credit_account_id");
  expect_error(transfer_error("{" + ok + R"(,"pending_id":"*"})"), ErrorCode::pending_id_invalid,
               "pending_id");
  expect_error(transfer_error("{" + ok + R"(,"flags":["pending","closed"]})"),
               ErrorCode::flags_invalid, "flags[1]");
  expect_error(transfer_error(R"({"id":"t","flags":["post_pending"]})"),
               ErrorCode::parameter_missing, "pending_id");
  expect_error(transfer_error(R"({"id":"t","flags":["void_pending"],"pending_id":"p",)"
                              R"("currency":"EURO"})"),
               ErrorCode::currency_invalid, "currency");
  for (const char* bad : {"-1", "4294967296", "\"5\"", "1.5", "true"}) {
    expect_error(transfer_error("{" + ok + R"(,"timeout_seconds":)" + bad + "}"),
                 ErrorCode::timeout_invalid, "timeout_seconds");
  }
  expect_error(transfer_error("{" + ok + R"(,"metadata":{"k":false}})"),
               ErrorCode::metadata_invalid, "metadata.k");
}

TEST(TransferEvents, LeavesSemanticChecksToTheLedger) {
  // Equal accounts, a pending_id on a plain transfer, a timeout without pending and two
  // exclusive flags are per-event results of the ledger, not API errors.
  auto p = parse_transfer_events(
      R"({"id":"t","debit_account_id":"a","credit_account_id":"a","amount":5,"currency":"USD",)"
      R"("pending_id":"p","timeout_seconds":5,"flags":["post_pending","void_pending"]})");
  ASSERT_TRUE(p.ok()) << p.error->message;
}

void expect_same(const AccountEvent& a, const AccountEvent& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.currency, b.currency);
  EXPECT_EQ(a.flags, b.flags);
  EXPECT_EQ(a.metadata, b.metadata);
}

void expect_same(const TransferEvent& a, const TransferEvent& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.debit_account_id, b.debit_account_id);
  EXPECT_EQ(a.credit_account_id, b.credit_account_id);
  EXPECT_EQ(a.amount, b.amount);
  EXPECT_EQ(a.currency, b.currency);
  EXPECT_EQ(a.flags, b.flags);
  EXPECT_EQ(a.pending_id, b.pending_id);
  EXPECT_EQ(a.timeout_s, b.timeout_s);
  EXPECT_EQ(a.metadata, b.metadata);
}

TEST(RoundTrip, AccountEvents) {
  AccountEvent e;
  e.id = "psp_clearing:stripe_usd";
  e.currency = *Currency::from_code("KWD");
  e.flags = ledger::account_flags::kAll;
  e.metadata = {{"a", "1"}, {"b", std::string(256, 'x')}};
  AccountEvent plain;
  plain.id = "w";
  plain.currency = *Currency::from_code("USD");
  for (const AccountEvent& in : {e, plain}) {
    const json::value v = account_event_to_json(in);
    auto out = parse_account_events(json::serialize(v));
    ASSERT_TRUE(out.ok()) << out.error->message;
    expect_same(in, out.value[0]);
  }
}

TEST(RoundTrip, TransferEvents) {
  TransferEvent pending;
  pending.id = "tr_1";
  pending.debit_account_id = "a";
  pending.credit_account_id = "b";
  pending.amount = INT64_MAX;
  pending.currency = *Currency::from_code("JPY");
  pending.flags = ledger::transfer_flags::kPending | ledger::transfer_flags::kLinked;
  pending.timeout_s = UINT32_MAX;
  pending.metadata = {{"k", ""}};
  TransferEvent post;
  post.id = "tr_2";
  post.flags = ledger::transfer_flags::kPostPending;
  post.pending_id = "tr_1";
  json::array data{transfer_event_to_json(pending), transfer_event_to_json(post)};
  auto out = parse_transfer_events(json::serialize(json::object{{"data", data}}));
  ASSERT_TRUE(out.ok()) << out.error->message;
  ASSERT_EQ(out.value.size(), 2u);
  expect_same(pending, out.value[0]);
  expect_same(post, out.value[1]);
}

TEST(Encode, Account) {
  ledger::Account a;
  a.id = "acct_1";
  a.currency = *Currency::from_code("USD");
  a.flags = ledger::account_flags::kClosed;
  a.balances = {1, 2, 3, INT64_MAX};
  a.metadata = {{"k", "v"}};
  a.timestamp = 1'700'000'000'123'456'789;
  const json::object o = account_to_json(a);
  EXPECT_EQ(json::serialize(o),
            R"({"id":"acct_1","currency":"USD","flags":["closed"],"metadata":{"k":"v"},)"
            R"("debits_pending":1,"debits_posted":2,"credits_pending":3,)"
            R"("credits_posted":9223372036854775807,"created_at":")" +
                format_rfc3339(a.timestamp) + R"("})");
}

TEST(Encode, Transfer) {
  ledger::Transfer t;
  t.id = "t";
  t.debit_account_id = "a";
  t.credit_account_id = "b";
  t.amount = 7;
  t.currency = *Currency::from_code("EUR");
  const json::object plain = transfer_to_json(t);
  EXPECT_TRUE(plain.at("pending_id").is_null());
  EXPECT_FALSE(plain.contains("pending_state"));
  EXPECT_FALSE(plain.contains("expires_at"));
  EXPECT_EQ(plain.at("amount").as_int64(), 7);
  t.flags = ledger::transfer_flags::kPending;
  t.timeout_s = 60;
  t.pending_state = ledger::PendingState::expired;
  t.timestamp = 5 * kNanosPerSecond;
  t.expires_at = 65 * kNanosPerSecond;
  const json::object pending = transfer_to_json(t);
  EXPECT_EQ(pending.at("pending_state").as_string(), "expired");
  EXPECT_EQ(pending.at("expires_at").as_string(), format_rfc3339(t.expires_at));
  EXPECT_EQ(pending.at("timeout_seconds").as_int64(), 60);
  EXPECT_EQ(pending.at("flags").as_array().at(0).as_string(), "pending");
}

TEST(Encode, ResultsPagesStatusAndErrors) {
  const std::vector<std::string> ids = {"a", "b"};
  const std::vector<ledger::CreateTransferResult> results = {
      ledger::CreateTransferResult::ok, ledger::CreateTransferResult::linked_event_failed};
  EXPECT_EQ(json::serialize(create_results_to_json(ids, results)),
            R"({"data":[{"index":0,"id":"a","result":"ok"},)"
            R"({"index":1,"id":"b","result":"linked_event_failed"}]})");
  EXPECT_EQ(json::serialize(set_account_closed_result_to_json(
                "a", ledger::SetAccountClosedResult::account_already_closed)),
            R"({"id":"a","result":"account_already_closed"})");
  ledger::AccountTransfersPage page;
  page.has_more = true;
  EXPECT_EQ(json::serialize(account_transfers_page_to_json(page)),
            R"({"data":[],"has_more":true})");
  engine::EngineStatus s;
  s.state_hash = 0xabc;
  EXPECT_FALSE(status_to_json(s, false, true).contains("state_hash"));
  const json::object full = status_to_json(s, true, true);
  EXPECT_EQ(full.at("state_hash").as_string(), "0000000000000abc");
  EXPECT_TRUE(full.at("invariants_ok").as_bool());
  EXPECT_TRUE(full.at("history").is_null());
  s.history_enabled = true;
  s.history_moved = 7;
  s.counts.transfers_in_memory = 3;
  const json::object tiered = status_to_json(s, false, true);
  EXPECT_EQ(tiered.at("history").at("transfers_moved").as_uint64(), 7u);
  EXPECT_EQ(tiered.at("counts").at("transfers_in_memory").as_uint64(), 3u);
  const json::object e =
      error_to_json(make_error(ErrorCode::amount_invalid, "m", "data[3].amount"), "req_1");
  EXPECT_EQ(json::serialize(e),
            R"({"error":{"type":"invalid_request_error","code":"amount_invalid","message":"m",)"
            R"("param":"data[3].amount","request_id":"req_1"}})");
  EXPECT_TRUE(
      error_to_json(make_error(ErrorCode::overloaded, "m"), "r").at("error").at("param").is_null());
  EXPECT_EQ(hash_to_hex(UINT64_MAX), "ffffffffffffffff");
}

TEST(Errors, EveryCodeHasAStatusAndAUniqueName) {
  std::set<std::string_view> names;
  for (int i = 0; i <= static_cast<int>(kErrorCodeLast); ++i) {
    const auto code = static_cast<ErrorCode>(i);
    EXPECT_TRUE(names.insert(error_code_name(code)).second);
    EXPECT_GE(http_status(code), 400u);
  }
  EXPECT_EQ(http_status(ErrorCode::amount_invalid), 400u);
  EXPECT_EQ(http_status(ErrorCode::resource_missing), 404u);
  EXPECT_EQ(http_status(ErrorCode::method_not_allowed), 405u);
  EXPECT_EQ(http_status(ErrorCode::body_too_large), 413u);
  EXPECT_EQ(http_status(ErrorCode::overloaded), 503u);
  EXPECT_EQ(error_type(ErrorCode::unavailable), "api_error");
  EXPECT_TRUE(is_retryable(ErrorCode::overloaded));
  EXPECT_FALSE(is_retryable(ErrorCode::internal_error));
}

// The payments core answers with reasons, never HTTP: each reaches the client under the same
// name, with the status of the one table.
TEST(Errors, EveryPaymentsReasonHasTheCodeOfItsName) {
  for (int i = 0; i <= static_cast<int>(payments::kErrorLast); ++i) {
    const auto e = static_cast<payments::Error>(i);
    EXPECT_EQ(error_code_name(error_code_of(e)), payments::error_name(e));
  }
  EXPECT_EQ(http_status(error_code_of(payments::Error::merchant_not_found)), 400u);
  EXPECT_EQ(http_status(error_code_of(payments::Error::stale_result)), 409u);
  EXPECT_EQ(http_status(error_code_of(payments::Error::channel_ineligible)), 422u);
  EXPECT_EQ(http_status(error_code_of(payments::Error::no_channel_available)), 503u);
  EXPECT_TRUE(is_retryable(error_code_of(payments::Error::flow_disabled)));
  EXPECT_FALSE(is_retryable(error_code_of(payments::Error::payment_unexpected_state)));
}

TEST(Router, MatchesEveryRoute) {
  struct Case {
    const char* method;
    const char* target;
    Route route;
    const char* id;
  };
  for (const Case& c : {
           Case{"POST", "/v1/accounts", Route::create_accounts, ""},
           Case{"GET", "/v1/accounts/acct_1", Route::get_account, "acct_1"},
           Case{"GET", "/v1/accounts/a%3Ab/transfers?limit=5", Route::list_account_transfers,
                "a:b"},
           Case{"POST", "/v1/accounts/a/close", Route::close_account, "a"},
           Case{"POST", "/v1/accounts/a/reopen", Route::reopen_account, "a"},
           Case{"POST", "/v1/transfers", Route::create_transfers, ""},
           Case{"GET", "/v1/transfers/t.1", Route::get_transfer, "t.1"},
           Case{"GET", "/v1/admin/status?full=true", Route::admin_status, ""},
           Case{"POST", "/v1/admin/snapshot", Route::admin_snapshot, ""},
           Case{"GET", "/healthz", Route::healthz, ""},
           Case{"GET", "/readyz", Route::readyz, ""},
       }) {
    const RouteMatch m = match_route(c.method, c.target);
    ASSERT_FALSE(m.error.has_value()) << c.target << ": " << m.error->message;
    EXPECT_EQ(m.route, c.route) << c.target;
    EXPECT_EQ(m.id, c.id) << c.target;
  }
  const RouteMatch m = match_route("GET", "/v1/accounts/a/transfers?limit=5&starting_after=t%2E1");
  EXPECT_EQ(query_value(m.query, "limit"), "5");
  EXPECT_EQ(query_value(m.query, "starting_after"), "t.1");
  EXPECT_FALSE(query_value(m.query, "x").has_value());
}

TEST(Router, Errors) {
  auto code = [](const char* method, const char* target) {
    const RouteMatch m = match_route(method, target);
    return m.error ? error_code_name(m.error->code) : "none";
  };
  EXPECT_EQ(code("GET", "/v2/accounts"), "route_not_found");
  EXPECT_EQ(code("GET", "/v1/accounts/"), "id_invalid");  // empty id
  EXPECT_EQ(code("GET", "/v1/accounts/a/b/c/d/e/f/g/h/i"), "route_not_found");
  EXPECT_EQ(code("GET", "/v1/accounts/a%20b"), "id_invalid");
  EXPECT_EQ(code("POST", "/v1/accounts//close"), "id_invalid");
  EXPECT_EQ(code("GET", "/v1/accounts/a?limit=1"), "parameter_unknown");
  EXPECT_EQ(code("GET", "/v1/accounts/a/transfers?limit=1&limit=2"), "parameter_invalid");
  EXPECT_EQ(code("GET", "http://x/healthz"), "http_invalid");
  EXPECT_EQ(code("GET", "*"), "http_invalid");
  const RouteMatch m = match_route("DELETE", "/v1/accounts/a");
  ASSERT_TRUE(m.error.has_value());
  EXPECT_EQ(m.error->code, ErrorCode::method_not_allowed);
  EXPECT_EQ(m.allow, "GET");
  EXPECT_EQ(match_route("GET", "/v1/accounts").allow, "POST");
}

TEST(RequestContext, RequestIdsAndTraceparent) {
  const std::string a = new_request_id();
  EXPECT_EQ(a.size(), 20u);
  EXPECT_EQ(a.rfind("req_", 0), 0u);
  EXPECT_NE(a, new_request_id());
  EXPECT_TRUE(is_valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_TRUE(is_valid_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"));
  for (const char* bad : {"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                          "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                          "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                          "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"}) {
    EXPECT_FALSE(is_valid_traceparent(bad)) << bad;
  }
}

}  // namespace
}  // namespace keel::api
