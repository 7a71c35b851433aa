// Routing end to end (issue 9): keeld with routing on, in front of two simulated PSPs. Failover
// on retryable answers and soft declines, never on hard declines; pinned channels; channels no
// payment can use; circuit breakers that open, survive a restart and close again. Every test
// checks the books: each payment is charged at most once across both PSPs, and keel's record
// of each charge matches the PSP that made it.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <set>
#include <thread>
#include <tuple>

#include "testing/payments_stack.h"

namespace keel::testing {
namespace {
namespace json = boost::json;

constexpr std::string_view kPsps[] = {"bankco", "cardco"};

class PaymentsRouting : public ::testing::Test {
 protected:
  // Routing on, no exploration (decisions follow the score), a fixed seed. bankco is the
  // cheaper channel, so the router tries it first.
  static PaymentsStackOptions options(std::string routing_extra = {}) {
    PaymentsStackOptions o;
    o.channel_toml_extra = "connections_max = 64\n";
    o.channel_toml["bankco"] = "cost_bps = 50\ncost_fixed = 10\n";
    o.channel_toml["cardco"] = "cost_bps = 290\ncost_fixed = 30\n";
    o.routing_toml =
        "explore_permille = 0\nseed = 7\nbackoff_base_ms = 20\nbackoff_max_ms = 100\n" +
        routing_extra;
    return o;
  }
  void start(PaymentsStackOptions o) {
    ASSERT_TRUE(PaymentsStack::start(std::move(o), &stack_).is_ok());
    merchant_ = stack_->create_merchant();
    ASSERT_FALSE(merchant_.empty());
  }

  std::string create_payment(int64_t amount, std::string_view currency = "USD") {
    const JsonResponse r = stack_->post(
        "/v1/payments",
        R"({"amount": )" + std::to_string(amount) + R"(, "currency": ")" + std::string(currency) +
            R"(", "merchant": ")" + merchant_ + R"(", "payment_method": "tok_visa"})",
        new_key());
    EXPECT_EQ(r.status, 200u) << r.text;
    return str(r.body, "id");
  }

  // Creates, confirms (body `confirm_body`) and waits for one payment; returns it as GET shows.
  json::value pay(int64_t amount, std::string_view confirm_body = "{}") {
    const std::string id = create_payment(amount);
    const JsonResponse c = stack_->post("/v1/payments/" + id + "/confirm", confirm_body, new_key());
    EXPECT_EQ(c.status, 200u) << c.text;
    const JsonResponse r = stack_->wait_settled("/v1/payments/" + id, 30'000);
    EXPECT_EQ(r.status, 200u) << r.text;
    return r.body;
  }

  json::object channel(std::string_view name) {
    const JsonResponse r = stack_->get("/v1/channels");
    EXPECT_EQ(r.status, 200u) << r.text;
    for (const json::value& c : r.body.at("data").as_array()) {
      if (str(c, "id") == name) return c.as_object();
    }
    ADD_FAILURE() << "no channel " << name << " in " << r.text;
    return {};
  }

  // The books: every authorization the PSPs hold or captured belongs to a keel attempt on that
  // channel; each payment holds or took money at one PSP at most, the one keel names, for the
  // amount keel booked; no attempt before the last one was left unknown or approved (failover
  // only after nothing was charged).
  void expect_books_match(const std::vector<json::value>& payments) {
    std::map<std::string, std::map<std::string, json::object>> ops;
    for (const std::string_view psp : kPsps) ops[std::string(psp)] = stack_->sim_operations(psp);
    std::set<std::string> claimed;
    for (const json::value& p : payments) {
      const std::string id = str(p, "id");
      SCOPED_TRACE(id + " " + json::serialize(p));
      const json::array& attempts = p.at("attempts").as_array();
      int charged = 0;
      for (size_t i = 0; i < attempts.size(); ++i) {
        const json::value& a = attempts[i];
        if (str(a, "kind") != "authorization") continue;
        const std::string ref = str(a, "id");
        const std::string ch = str(a, "channel");
        claimed.insert(ch + "/" + ref);
        const std::string st = str(a, "status");
        EXPECT_NE(st, "pending");
        EXPECT_NE(st, "unknown");
        const bool last_authorization = [&] {
          for (size_t j = i + 1; j < attempts.size(); ++j) {
            if (str(attempts[j], "kind") == "authorization") return false;
          }
          return true;
        }();
        if (!last_authorization) {
          EXPECT_TRUE(st == "retryable" || st == "declined_soft") << ref << " " << st;
        }
        const auto op = ops[ch].find(ref);
        if (op == ops[ch].end()) continue;
        const std::string op_status(op->second.at("status").as_string());
        if (op_status == "captured" || op_status == "authorized") {
          ++charged;
          EXPECT_EQ(str(p, "channel"), ch);
          EXPECT_EQ(op->second.at("captured_amount").as_int64(), num(p, "amount_captured"));
        }
      }
      EXPECT_LE(charged, 1) << "charged twice";
      EXPECT_EQ(charged == 1, str(p, "status") == "succeeded");
    }
    for (const auto& [psp, book] : ops) {
      for (const auto& [ref, op] : book) {
        if (op.at("type").as_string() != "authorization") continue;
        const std::string st(op.at("status").as_string());
        if (st != "captured" && st != "authorized") continue;
        EXPECT_TRUE(claimed.contains(psp + "/" + ref)) << psp << " holds " << ref << " for nobody";
      }
    }
    const JsonResponse status = stack_->admin_status();
    EXPECT_EQ(status.body.at("invariants_ok").as_bool(), true) << status.text;
  }

  std::unique_ptr<PaymentsStack> stack_;
  std::string merchant_;
};

// The routing block of a payment, as kinds in attempt order ("routed,failover").
std::string decision_kinds(const json::value& p) {
  std::string out;
  for (const json::value& d : p.at("routing").as_array()) {
    out += (out.empty() ? "" : ",") + str(d, "kind");
  }
  return out;
}

TEST_F(PaymentsRouting, RetryablesAndSoftDeclinesFailOverToTheOtherPspAndChargeOnce) {
  PaymentsStackOptions o = options("breaker_min_calls = 100000\n");  // breakers out of it
  // cardco costs 90 %: bankco keeps the first tries however often it fails, so failover is
  // exercised on most payments rather than learnt away by the score.
  o.channel_toml["cardco"] = "cost_bps = 9000\n";
  o.sim_toml_extra =
      "[psps.bankco.faults]\nerror_5xx_rate = 0.4\ndecline_rate = 0.5\n"
      "decline_codes = [ { code = \"issuer_unavailable\", type = \"soft\" } ]\n";
  start(std::move(o));
  std::vector<json::value> payments;
  // Amounts across the range: 1, below cardco's fixed fee, ordinary, large.
  const int64_t amounts[] = {1, 29, 30, 31, 999, 12'345, 99'999'999, 1'000'000'000'000};
  int failed_over = 0;
  for (int round = 0; round < 3; ++round) {
    for (const int64_t amount : amounts) {
      const json::value p = pay(amount);
      EXPECT_EQ(str(p, "status"), "succeeded") << json::serialize(p);
      const std::string kinds = decision_kinds(p);
      EXPECT_EQ(kinds.substr(0, 6), "routed") << kinds;
      if (kinds.find("failover") != std::string::npos) {
        ++failed_over;
        EXPECT_EQ(str(p, "channel"), "cardco");
      }
      payments.push_back(p);
    }
  }
  // bankco fails 70 % of first tries (about 17 of 24): failover happened, every payment
  // succeeded.
  EXPECT_GE(failed_over, 5);
  expect_books_match(payments);
}

TEST_F(PaymentsRouting, AHardDeclineFailsThePaymentWithoutFailover) {
  PaymentsStackOptions o = options();
  o.sim_toml_extra =
      "[psps.bankco.faults]\ndecline_rate = 1.0\n"
      "decline_codes = [ { code = \"stolen_card\", type = \"hard\" } ]\n";
  start(std::move(o));
  const json::value p = pay(500);
  EXPECT_EQ(str(p, "status"), "failed");
  EXPECT_EQ(str(p, "error_code"), "stolen_card");
  EXPECT_EQ(p.at("attempts").as_array().size(), 1u);
  EXPECT_EQ(decision_kinds(p), "routed");
  expect_books_match({p});
}

TEST_F(PaymentsRouting, APinnedChannelIsRetriedNeverLeft) {
  PaymentsStackOptions o = options("breaker_min_calls = 100000\nmax_tries = 3\n");
  o.sim_toml_extra = "[psps.bankco.faults]\nerror_5xx_rate = 1.0\n";
  start(std::move(o));
  const json::value p = pay(700, R"({"channel": "bankco"})");
  EXPECT_EQ(str(p, "status"), "failed");
  const json::array& attempts = p.at("attempts").as_array();
  ASSERT_EQ(attempts.size(), 3u) << json::serialize(p);
  for (const json::value& a : attempts) EXPECT_EQ(str(a, "channel"), "bankco");
  EXPECT_EQ(decision_kinds(p), "pinned,retry,retry");
  EXPECT_TRUE(stack_->sim_operations("cardco").empty());
  expect_books_match({p});
}

TEST_F(PaymentsRouting, APaymentNoChannelTakesGets422AndStaysUnconfirmed) {
  PaymentsStackOptions o = options();
  o.channel_toml["bankco"] += "currencies = [\"USD\"]\nmax_amount = 100000\n";
  o.channel_toml["cardco"] += "currencies = [\"USD\"]\nmin_amount = 50\nmax_amount = 150000\n";
  start(std::move(o));
  for (const auto& [amount, currency] :
       std::vector<std::pair<int64_t, std::string>>{{500, "EUR"}, {200'000, "USD"}}) {
    SCOPED_TRACE(currency + " " + std::to_string(amount));
    const std::string id = create_payment(amount, currency);
    const JsonResponse r = stack_->post("/v1/payments/" + id + "/confirm", "{}", new_key());
    EXPECT_EQ(r.status, 422u) << r.text;
    EXPECT_EQ(str(r.body.at("error"), "code"), "channel_ineligible");
    const JsonResponse after = stack_->get("/v1/payments/" + id);
    EXPECT_EQ(str(after.body, "status"), "requires_confirmation");
    EXPECT_TRUE(after.body.at("attempts").as_array().empty());
  }
  // An amount below cardco's minimum goes to bankco; one above bankco's maximum nowhere (above).
  const json::value p = pay(10);
  EXPECT_EQ(str(p, "channel"), "bankco");
  // A pinned channel that does not exist: 400, as before routing.
  const std::string id = create_payment(500);
  const JsonResponse r =
      stack_->post("/v1/payments/" + id + "/confirm", R"({"channel": "nope"})", new_key());
  EXPECT_EQ(r.status, 400u) << r.text;
}

TEST_F(PaymentsRouting, ABreakerOpensMovesTrafficSurvivesARestartAndClosesWhenThePspRecovers) {
  PaymentsStackOptions o =
      options("breaker_min_calls = 4\nbreaker_open_ms = 1500\nbreaker_half_open_probes = 2\n");
  o.sim_toml_extra = "[psps.bankco.faults]\nerror_5xx_rate = 1.0\n";
  // cardco costs 90 %: bankco's falling success rate alone would not move traffic before its
  // breaker sees enough calls, so the breaker is what moves it.
  o.channel_toml["cardco"] = "cost_bps = 9000\n";
  start(std::move(o));
  std::vector<json::value> payments;
  for (int i = 0; i < 8; ++i) payments.push_back(pay(1'000 + i));
  for (const json::value& p : payments) EXPECT_EQ(str(p, "status"), "succeeded");
  json::object bankco = channel("bankco");
  EXPECT_EQ(str(bankco.at("breaker"), "state"), "open") << json::serialize(bankco);
  EXPECT_GE(num(bankco.at("breaker"), "opened"), 1);
  // While it is open, payments go to cardco at once, saying why bankco was not taken.
  const json::value p = pay(2'000);
  EXPECT_EQ(str(p, "channel"), "cardco");
  EXPECT_EQ(p.at("attempts").as_array().size(), 1u);
  const json::value& rejected = p.at("routing").at(0).at("rejected").at(0);
  EXPECT_EQ(str(rejected, "channel"), "bankco");
  EXPECT_EQ(str(rejected, "reason"), "breaker_open");
  payments.push_back(p);
  // The transition is journaled: after a restart the breaker is still open.
  ASSERT_TRUE(stack_->restart_keeld(false).is_ok());
  bankco = channel("bankco");
  EXPECT_NE(str(bankco.at("breaker"), "state"), "closed") << json::serialize(bankco);
  // bankco recovers: after the wait, probes go to it and close the breaker.
  ASSERT_TRUE(stack_->set_sim_faults("bankco", "{}"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1'700));
  int on_bankco = 0;
  for (int i = 0; i < 6; ++i) {
    const json::value q = pay(3'000 + i);
    EXPECT_EQ(str(q, "status"), "succeeded");
    on_bankco += str(q, "channel") == "bankco" ? 1 : 0;
    payments.push_back(q);
  }
  EXPECT_GE(on_bankco, 4);  // traffic is back on the recovered PSP
  bankco = channel("bankco");
  EXPECT_EQ(str(bankco.at("breaker"), "state"), "closed") << json::serialize(bankco);
  expect_books_match(payments);
  // /metrics shows the breaker per channel.
  const JsonResponse m = stack_->get("/metrics");
  EXPECT_NE(m.text.find("keel_channel_breaker_state{channel=\"bankco\"} 0"), std::string::npos);
  EXPECT_NE(m.text.find("keel_channel_breaker_opened_total{channel=\"bankco\"}"),
            std::string::npos);
}

// ---- Runtime controls ----------------------------------------------------------------------

constexpr std::string_view kAdminToml = "[admin]\ncontrols = true\n";

TEST_F(PaymentsRouting, RuntimeControlsAreServedOnlyWhenEnabled) {
  start(options());
  for (const auto& [path, body] : std::vector<std::pair<std::string, std::string>>{
           {"/v1/admin/channels/bankco/pause", "{}"},
           {"/v1/admin/mode", R"({"read_only": true})"},
           {"/v1/admin/flows/card_payments/disable", "{}"}}) {
    const JsonResponse r = stack_->post(path, body);
    EXPECT_EQ(r.status, 404u) << r.text;
    EXPECT_EQ(str(r.body.at("error"), "code"), "route_not_found");
  }
  EXPECT_EQ(stack_->get("/v1/admin/controls").status, 404u);
  EXPECT_EQ(str(pay(100), "status"), "succeeded");  // nothing was paused or switched off
}

TEST_F(PaymentsRouting, PauseDrainAndResumeMoveTrafficAndSurviveARestart) {
  PaymentsStackOptions o = options();
  o.keeld_toml_extra = std::string(kAdminToml);
  start(std::move(o));
  EXPECT_EQ(str(pay(100), "channel"), "bankco");  // the cheaper one
  JsonResponse r =
      stack_->post("/v1/admin/channels/bankco/pause", R"({"reason": "bank maintenance"})");
  ASSERT_EQ(r.status, 200u) << r.text;
  json::value p = pay(101);
  EXPECT_EQ(str(p, "channel"), "cardco");
  EXPECT_EQ(str(p.at("routing").at(0).at("rejected").at(0), "reason"), "paused");
  // Journaled: still paused after a restart.
  ASSERT_TRUE(stack_->restart_keeld(false).is_ok());
  EXPECT_EQ(channel("bankco").at("paused").as_bool(), true);
  EXPECT_EQ(str(pay(102), "channel"), "cardco");
  ASSERT_EQ(stack_->post("/v1/admin/channels/bankco/resume", "{}").status, 200u);
  EXPECT_EQ(str(pay(103), "channel"), "bankco");
  ASSERT_EQ(stack_->post("/v1/admin/channels/bankco/drain", "{}").status, 200u);
  const json::object bankco = channel("bankco");
  EXPECT_TRUE(bankco.at("draining").as_bool());
  EXPECT_EQ(str(pay(104), "channel"), "cardco");
  // The audit trail, newest first, with the operator's reason.
  r = stack_->get("/v1/admin/controls");
  ASSERT_EQ(r.status, 200u) << r.text;
  const json::array& changes = r.body.at("changes").as_array();
  ASSERT_EQ(changes.size(), 3u) << r.text;
  EXPECT_EQ(str(changes[0], "kind"), "channel_drain");
  EXPECT_EQ(str(changes[2], "kind"), "channel_pause");
  EXPECT_EQ(str(changes[2], "reason"), "bank maintenance");
  // Bad input: a clear error, nothing changed.
  for (const auto& [path, body, status] :
       std::vector<std::tuple<std::string, std::string, unsigned>>{
           {"/v1/admin/channels/nope/pause", "{}", 404},
           {"/v1/admin/channels/cardco/canary", R"({"to": "bankco", "share": 101})", 400},
           {"/v1/admin/channels/cardco/canary", R"({"to": "bankco", "share": 10})", 400},
           {"/v1/admin/channels/cardco/canary", R"({"share": 10})", 400},
           {"/v1/admin/flows/cards/disable", "{}", 400},
           {"/v1/admin/mode", R"({"read_only": "yes"})", 400},
           {"/v1/admin/channels/cardco/pause", R"({"surprise": 1})", 400}}) {
    const JsonResponse bad = stack_->post(path, body);
    EXPECT_EQ(bad.status, status) << path << " " << bad.text;
  }
  EXPECT_EQ(stack_->get("/v1/admin/controls").body.at("changes").as_array().size(), 3u);
}

TEST_F(PaymentsRouting, ReadOnlyModeRefusesNewWritesWhileStartedWorkFinishes) {
  PaymentsStackOptions o = options();
  o.keeld_toml_extra = std::string(kAdminToml);
  o.sim_toml_extra = "[psps.bankco.faults]\nlatency_ms = { min = 1500, max = 1500 }\n";
  start(std::move(o));
  // A payment in flight at bankco when read-only mode starts.
  const std::string id = create_payment(500);
  std::thread confirm(
      [&] { (void)stack_->post_unshared("/v1/payments/" + id + "/confirm", "{}", new_key()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(
      stack_->post("/v1/admin/mode", R"({"read_only": true, "reason": "failover drill"})").status,
      200u);
  JsonResponse r = stack_->post("/v1/payments",
                                R"({"amount": 5, "currency": "USD", "merchant": ")" + merchant_ +
                                    R"(", "payment_method": "tok_visa"})",
                                new_key());
  EXPECT_EQ(r.status, 503u) << r.text;
  EXPECT_EQ(str(r.body.at("error"), "code"), "read_only");
  r = stack_->post(
      "/v1/transfers",
      R"({"id": "t1", "debit_account_id": "a", "credit_account_id": "b", "amount": 1, "currency": "USD"})");
  EXPECT_EQ(r.status, 503u) << r.text;
  EXPECT_EQ(str(r.body.at("error"), "code"), "read_only");
  confirm.join();
  // The PSP's answer was still taken: the payment settled, reads work.
  const JsonResponse settled = stack_->wait_settled("/v1/payments/" + id, 10'000);
  EXPECT_EQ(str(settled.body, "status"), "succeeded") << settled.text;
  EXPECT_EQ(stack_->get("/v1/channels").status, 200u);
  ASSERT_EQ(stack_->post("/v1/admin/mode", R"({"read_only": false})").status, 200u);
  EXPECT_EQ(str(pay(600), "status"), "succeeded");
}

TEST_F(PaymentsRouting, AKillSwitchStopsCardPaymentsAndNothingElse) {
  PaymentsStackOptions o = options();
  o.keeld_toml_extra = std::string(kAdminToml);
  start(std::move(o));
  const std::string id = create_payment(700);
  ASSERT_EQ(stack_->post("/v1/admin/flows/card_payments/disable", "{}").status, 200u);
  JsonResponse r = stack_->post("/v1/payments/" + id + "/confirm", "{}", new_key());
  EXPECT_EQ(r.status, 503u) << r.text;
  EXPECT_EQ(str(r.body.at("error"), "code"), "flow_disabled");
  EXPECT_EQ(str(stack_->get("/v1/payments/" + id).body, "status"), "requires_confirmation");
  EXPECT_EQ(stack_->post("/v1/customers", "{}", new_key()).status, 200u);
  ASSERT_EQ(stack_->post("/v1/admin/flows/card_payments/enable", "{}").status, 200u);
  r = stack_->post("/v1/payments/" + id + "/confirm", "{}", new_key());
  EXPECT_EQ(r.status, 200u) << r.text;
}

// GET /v1/channels shows which channel is whose canary and the share a canary takes.
TEST_F(PaymentsRouting, ChannelsShowTheirCanaryAndItsShare) {
  PaymentsStackOptions o = options();
  o.keeld_toml_extra = std::string(kAdminToml) +
                       "[channels.cardco_v2]\nurl = \"http://127.0.0.1:9\"\npsp = \"cardco\"\n"
                       "api_key = \"sk_cardco\"\nwebhook_secret = \"whsec_cardco\"\n"
                       "canary_of = \"cardco\"\n";
  start(std::move(o));
  EXPECT_EQ(str(channel("cardco_v2"), "canary_of"), "cardco");
  EXPECT_TRUE(channel("cardco").at("canary").is_null());
  ASSERT_EQ(stack_->post("/v1/admin/channels/cardco/canary", R"({"to": "cardco_v2", "share": 30})")
                .status,
            200u);
  const json::object cardco = channel("cardco");
  EXPECT_EQ(str(cardco.at("canary"), "to"), "cardco_v2") << json::serialize(cardco);
  EXPECT_EQ(num(cardco.at("canary"), "share"), 30) << json::serialize(cardco);
  EXPECT_TRUE(cardco.at("canary_of").is_null());
  ASSERT_EQ(stack_->post("/v1/admin/channels/cardco/canary", R"({"share": 0})").status, 200u);
  EXPECT_TRUE(channel("cardco").at("canary").is_null());
}

// Top-ups and payouts are routed too: to a channel that carries their flow, a named one pinned
// (eligibility still checked), and a clear error when none can take them, with nothing created.
TEST_F(PaymentsRouting, TopUpsAndPayoutsGoWhereTheirFlowIsCarried) {
  PaymentsStackOptions o = options();
  o.channel_toml["cardco"] += "flows = [\"card_payment\", \"topup\"]\n";
  o.channel_toml["bankco"] += "flows = [\"card_payment\", \"payout\"]\n";
  o.keeld_toml_extra = std::string(kAdminToml);
  start(std::move(o));
  const std::string customer = stack_->create_customer();
  ASSERT_FALSE(customer.empty());
  const auto create = [&](std::string_view what, std::string_view extra) {
    const bool topup = what == "topups";
    return stack_->post("/v1/" + std::string(what),
                        R"({"customer": ")" + customer +
                            R"(", "amount": 5000, "currency": "USD", )" +
                            (topup ? R"("source": "tok_visa")" : R"("destination": "DE89")") +
                            std::string(extra) + "}",
                        new_key());
  };
  const auto settled_channel = [&](std::string_view what, const JsonResponse& created) {
    EXPECT_EQ(created.status, 200u) << created.text;
    const JsonResponse r =
        stack_->wait_settled("/v1/" + std::string(what) + "/" + str(created.body, "id"), 30'000);
    EXPECT_EQ(str(r.body, "status"), "succeeded") << r.text;
    return str(r.body.at("attempts").at(0), "channel");
  };
  EXPECT_EQ(settled_channel("topups", create("topups", "")), "cardco");
  EXPECT_EQ(settled_channel("payouts", create("payouts", "")), "bankco");
  // Pinned where the flow is not carried: 422, nothing created.
  JsonResponse r = create("topups", R"(, "channel": "bankco")");
  EXPECT_EQ(r.status, 422u) << r.text;
  EXPECT_EQ(str(r.body.at("error"), "code"), "channel_ineligible") << r.text;
  // The only top-up channel paused: 503 and Retry-After, nothing created.
  ASSERT_EQ(stack_->post("/v1/admin/channels/cardco/pause", "{}").status, 200u);
  r = create("topups", "");
  EXPECT_EQ(r.status, 503u) << r.text;
  EXPECT_EQ(str(r.body.at("error"), "code"), "no_channel_available") << r.text;
  const JsonResponse list = stack_->get("/v1/topups?customer=" + customer);
  ASSERT_EQ(list.status, 200u) << list.text;
  EXPECT_EQ(list.body.at("data").as_array().size(), 1u) << list.text;
  // Bad input answers as before routing: the core's own error, not a routing one.
  r = stack_->post("/v1/topups",
                   R"({"customer": "cus_nobody", "amount": 5000, "currency": "USD", )"
                   R"("source": "tok_visa"})",
                   new_key());
  EXPECT_EQ(r.status, 400u) << r.text;
  EXPECT_EQ(str(r.body.at("error"), "code"), "customer_not_found") << r.text;
}

}  // namespace
}  // namespace keel::testing
