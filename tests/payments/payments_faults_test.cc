// Card payments through keeld and keel-psp-sim under each PSP fault on its own, a kill -9 of
// keeld between sending to the PSP and recording the answer, and the processing deadline.
//
// After every test, for every payment: it has settled (not processing, not in review), and what
// the simulator's books say was captured for its attempts (operation reference = attempt id)
// is exactly what keel's ledger posted for it, once; no operation at the simulator belongs to
// no payment; the ledger's invariants hold.

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "testing/payments_stack.h"

namespace keel::testing {
namespace {
namespace json = boost::json;

constexpr std::string_view kClearing = "psp_clearing:cardco:USD";

bool review(const json::value& p) {
  const json::value* f = p.is_object() ? p.as_object().if_contains("requires_review") : nullptr;
  return f != nullptr && f->is_bool() && f->get_bool();
}

// The cause of the transition into `to` (the last one), or "".
std::string cause_of(const json::value& p, std::string_view to) {
  std::string cause;
  for (const json::value& t : p.at("timeline").as_array()) {
    if (str(t, "to") == to && str(t, "from") != to) cause = str(t, "cause");
  }
  return cause;
}

bool timeline_has(const json::value& p, std::string_view cause) {
  for (const json::value& t : p.at("timeline").as_array()) {
    if (str(t, "cause") == cause) return true;
  }
  return false;
}

// What the books of both sides say about a batch of payments.
struct Tally {
  int succeeded = 0;
  int failed = 0;
  int canceled = 0;
  int64_t captured = 0;  // at the simulator, over every payment
  int64_t fees = 0;      // the simulator's fees on those captures
};

class PaymentsFaults : public ::testing::Test {
 protected:
  // Options with `sim_faults` (TOML, appended to the simulator's config) and `payments_toml`
  // ([payments] lines of keeld's config).
  static PaymentsStackOptions options(std::string sim_faults, std::string payments_toml = {}) {
    PaymentsStackOptions o;
    o.sim_toml_extra = std::move(sim_faults);
    o.payments_toml_extra = std::move(payments_toml);
    // Room for every call of a batch at once: no call times out queued in keeld's pool.
    o.channel_toml_extra = "connections_max = 64\n";
    return o;
  }
  void start(std::string sim_faults, std::string payments_toml = {}) {
    start(options(std::move(sim_faults), std::move(payments_toml)));
  }
  void start(PaymentsStackOptions o) {
    ASSERT_TRUE(PaymentsStack::start(std::move(o), &stack_).is_ok());
    merchant_ = stack_->create_merchant();
    ASSERT_FALSE(merchant_.empty());
  }

  // Creates `n` card payments (amounts 1000 + 37 i, so that each is told apart).
  std::vector<std::string> create_payments(int n, bool manual = false) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      const JsonResponse r =
          stack_->post("/v1/payments",
                       R"({"amount": )" + std::to_string(1000 + 37 * i) +
                           R"(, "currency": "USD", "merchant": ")" + merchant_ +
                           R"(", "payment_method": "tok_visa", "capture_method": ")" +
                           (manual ? "manual" : "automatic") + "\"}",
                       new_key());
      EXPECT_EQ(r.status, 200u) << r.text;
      ids.push_back(str(r.body, "id"));
    }
    return ids;
  }

  // POSTs `/v1/payments/{id}/{step}` for every payment at once, one thread each; returns the
  // answers in the order of `ids`. `keys` (if given) receives the Idempotency-Keys used.
  std::vector<JsonResponse> all_at_once(const std::vector<std::string>& ids, std::string_view step,
                                        std::vector<std::string>* keys = nullptr) {
    std::vector<JsonResponse> answers(ids.size());
    std::vector<std::string> used(ids.size());
    for (auto& k : used) k = new_key();
    std::vector<std::thread> threads;
    for (size_t i = 0; i < ids.size(); ++i) {
      threads.emplace_back([&, i] {
        answers[i] = stack_->post_unshared("/v1/payments/" + ids[i] + "/" + std::string(step), "{}",
                                           used[i]);
      });
    }
    for (auto& t : threads) t.join();
    if (keys != nullptr) *keys = used;
    return answers;
  }

  // Waits for every payment to settle; returns each as GET shows it last.
  std::vector<json::value> settle_all(const std::vector<std::string>& ids,
                                      int64_t timeout_ms = 30'000) {
    std::vector<json::value> out;
    for (const std::string& id : ids) {
      const JsonResponse r = stack_->wait_settled("/v1/payments/" + id, timeout_ms);
      EXPECT_EQ(r.status, 200u) << r.text;
      out.push_back(r.body);
    }
    return out;
  }

  // The core check: for each payment, the simulator's books for its attempts against keel's
  // state and ledger, exactly once. Returns the tally of both sides' agreement.
  Tally expect_books_match(const std::vector<json::value>& payments) {
    Tally t;
    const auto ops = stack_->sim_operations("cardco");
    std::set<std::string> claimed;
    for (const json::value& p : payments) {
      const std::string id = str(p, "id");
      SCOPED_TRACE(id + " " + json::serialize(p));
      const std::string status = str(p, "status");
      EXPECT_NE(status, "processing");
      EXPECT_FALSE(review(p));
      int64_t captured = 0;
      int64_t fee = 0;
      int holding = 0;  // operations that hold or took money: never more than one
      for (const json::value& a : p.at("attempts").as_array()) {
        const std::string ref = str(a, "id");
        EXPECT_NE(str(a, "status"), "pending");
        EXPECT_NE(str(a, "status"), "unknown");
        if (str(a, "kind") != "authorization") continue;
        claimed.insert(ref);
        const auto op = ops.find(ref);
        if (op == ops.end()) continue;
        const std::string op_status(op->second.at("status").as_string());
        EXPECT_NE(op_status, "pending") << ref;
        if (op_status == "captured") {
          captured += op->second.at("captured_amount").as_int64();
          fee += op->second.at("fee").as_int64();
          ++holding;
        } else if (op_status == "authorized") {
          // Held at the PSP: only right while keel holds it too.
          EXPECT_EQ(status, "requires_capture") << ref;
          ++holding;
        }
      }
      EXPECT_LE(holding, 1) << "two authorizations hold money for one payment";
      EXPECT_EQ(num(p, "amount_captured"), captured);
      const JsonResponse post = stack_->get("/v1/transfers/" + id + ".capture");
      const JsonResponse hold = stack_->get("/v1/transfers/" + id + ".hold");
      if (captured > 0) {
        EXPECT_EQ(status, "succeeded");
        EXPECT_EQ(num(p, "psp_fee"), fee);
        EXPECT_EQ(post.status, 200u) << post.text;
        EXPECT_EQ(num(post.body, "amount"), captured);
        EXPECT_EQ(str(hold.body, "pending_state"), "posted");
        const JsonResponse psp_fee = stack_->get("/v1/transfers/" + id + ".psp_fee");
        EXPECT_EQ(num(psp_fee.body, "amount"), fee) << psp_fee.text;
        ++t.succeeded;
      } else {
        EXPECT_TRUE(status == "failed" || status == "canceled" || status == "requires_capture")
            << status;
        EXPECT_EQ(post.status, 404u) << post.text;
        if (hold.status == 200 && status != "requires_capture") {
          EXPECT_EQ(str(hold.body, "pending_state"), "voided");
        }
        status == "failed" ? ++t.failed : ++t.canceled;
      }
      t.captured += captured;
      t.fees += fee;
    }
    for (const auto& [ref, op] : ops) {
      if (op.at("type").as_string() != "authorization") continue;
      EXPECT_TRUE(claimed.contains(ref)) << "the PSP holds " << ref << " for no keel payment";
    }
    // The totals, from the ledger's own accounts.
    const std::string merchant = "merchant:" + merchant_ + ":USD";
    const auto posted = [&](const std::string& account, std::string_view field) {
      const int64_t v = stack_->account_balance(account, field);
      return v < 0 ? 0 : v;  // an account never opened holds nothing
    };
    EXPECT_EQ(posted(merchant, "credits_posted"), t.captured);
    EXPECT_EQ(posted(std::string(kClearing), "debits_posted"), t.captured);
    EXPECT_EQ(posted(std::string(kClearing), "credits_posted"), t.fees);
    EXPECT_EQ(posted("psp_fees:cardco:USD", "debits_posted"), t.fees);
    const JsonResponse status = stack_->admin_status();
    EXPECT_TRUE(status.body.at("invariants_ok").as_bool()) << status.text;
    EXPECT_EQ(status.body.at("payments").at("in_review").as_int64(), 0);
    return t;
  }

  // The common run: `n` automatic-capture payments confirmed at once, settled, and checked.
  Tally run_batch(int n, std::vector<json::value>* settled = nullptr) {
    const std::vector<std::string> ids = create_payments(n);
    for (const JsonResponse& a : all_at_once(ids, "confirm")) {
      EXPECT_EQ(a.status, 200u) << a.text;  // settled or still processing: never an error
    }
    std::vector<json::value> out = settle_all(ids);
    const Tally t = expect_books_match(out);
    if (settled != nullptr) *settled = std::move(out);
    return t;
  }

  std::unique_ptr<PaymentsStack> stack_;
  std::string merchant_;
};

// Every request takes longer than keeld's 2 s bound on a PSP call: each confirm ends unknown,
// the status queries time out as well, and the webhook the PSP sends after processing is what
// settles each payment, once.
TEST_F(PaymentsFaults, LatencyAboveTheConnectorTimeoutResolvesByWebhookOnce) {
  start("[psps.cardco.faults]\nlatency_ms = { min = 2200, max = 2600 }\n");
  std::vector<json::value> settled;
  const Tally t = run_batch(8, &settled);
  EXPECT_EQ(t.succeeded, 8);
  for (const json::value& p : settled) {
    ASSERT_EQ(p.at("attempts").as_array().size(), 1u);
    EXPECT_TRUE(cause_of(p, "succeeded").starts_with("webhook:")) << json::serialize(p);
  }
}

// The PSP processes every request and never answers: resolved by its webhooks.
TEST_F(PaymentsFaults, BlackHoledCallsAreProcessedOnceAndResolved) {
  start("[psps.cardco.faults]\nblack_hole_rate = 1.0\n");
  std::vector<json::value> settled;
  const Tally t = run_batch(8, &settled);
  EXPECT_EQ(t.succeeded, 8);
  for (const json::value& p : settled) {
    EXPECT_EQ(p.at("attempts").as_array().size(), 1u);
    EXPECT_TRUE(cause_of(p, "succeeded").starts_with("webhook:")) << json::serialize(p);
  }
  EXPECT_EQ(stack_->sim_operations("cardco").size(), 8u);
}

// The PSP processes every request and drops the connection before answering.
TEST_F(PaymentsFaults, LostResponsesAreProcessedOnceAndResolved) {
  start("[psps.cardco.faults]\nresponse_lost_rate = 1.0\n");
  std::vector<json::value> settled;
  const Tally t = run_batch(8, &settled);
  EXPECT_EQ(t.succeeded, 8);
  for (const json::value& p : settled) EXPECT_EQ(p.at("attempts").as_array().size(), 1u);
  EXPECT_EQ(stack_->sim_operations("cardco").size(), 8u);
}

// A 503 means nothing happened: keel tries again at once with a new attempt, a few times, and
// fails the payment when every try was refused. Only the tries the PSP took are in its books.
TEST_F(PaymentsFaults, ServiceUnavailableIsRetriedAndNeverChargesTwice) {
  // Payment ids (so the simulator's draws) differ per run: at 0.8, about half the payments
  // fail (0.8^3) and half succeed, and a batch of 20 all one way is a one in a million run.
  start("[psps.cardco.faults]\nerror_5xx_rate = 0.8\n");
  std::vector<json::value> settled;
  const Tally t = run_batch(20, &settled);
  EXPECT_EQ(t.succeeded + t.failed, 20);
  EXPECT_GT(t.succeeded, 0);
  EXPECT_GT(t.failed, 0);
  int retried = 0;
  for (const json::value& p : settled) {
    const json::array& attempts = p.at("attempts").as_array();
    ASSERT_FALSE(attempts.empty());
    // Every try before the last one was refused with a 503; a failed payment's last one too.
    for (size_t i = 0; i < attempts.size(); ++i) {
      if (i + 1 == attempts.size() && str(p, "status") == "succeeded") continue;
      EXPECT_EQ(str(attempts[i], "status"), "retryable") << json::serialize(p);
      EXPECT_EQ(str(attempts[i], "error_code"), "psp_unavailable") << json::serialize(p);
    }
    if (str(p, "status") == "failed") {
      EXPECT_EQ(str(p, "error_code"), "psp_unavailable") << json::serialize(p);
    }
    retried += attempts.size() > 1 ? 1 : 0;
  }
  EXPECT_GT(retried, 0);
  // Only the captured tries reached the PSP's books.
  EXPECT_EQ(stack_->sim_operations("cardco").size(), static_cast<size_t>(t.succeeded));
}

// A reset connection is unknown; only the status query's 404 (never received) makes another
// try safe. Payments whose every try was refused fail without ever charging.
TEST_F(PaymentsFaults, RefusedConnectionsAreResolvedAsNeverReceived) {
  // 0.7: a third of the payments fail (0.7^3), and status queries, refused as often, come
  // every half second at most.
  PaymentsStackOptions o = options("[psps.cardco.faults]\nrefuse_rate = 0.7\n");
  o.resolve_max_ms = 500;
  start(o);
  std::vector<json::value> settled;
  const Tally t = run_batch(20, &settled);
  EXPECT_EQ(t.succeeded + t.failed, 20);
  EXPECT_GT(t.succeeded, 0);
  EXPECT_GT(t.failed, 0);
  for (const json::value& p : settled) {
    const json::array& attempts = p.at("attempts").as_array();
    for (size_t i = 0; i < attempts.size(); ++i) {
      if (i + 1 == attempts.size() && str(p, "status") == "succeeded") continue;
      EXPECT_EQ(str(attempts[i], "status"), "retryable") << json::serialize(p);
      EXPECT_EQ(str(attempts[i], "error_code"), "not_received") << json::serialize(p);
    }
    if (str(p, "status") == "failed") {
      EXPECT_EQ(str(p, "error_code"), "not_received") << json::serialize(p);
    }
  }
  EXPECT_EQ(stack_->sim_operations("cardco").size(), static_cast<size_t>(t.succeeded));
}

// Every authorization answers `pending` and no webhook ever comes: the status queries alone
// settle each payment.
TEST_F(PaymentsFaults, LostWebhooksLeaveStatusQueriesToResolve) {
  start(
      "[psps.cardco.faults]\nasync_rate = 1.0\nasync_delay_ms = { min = 100, max = 1000 }\n"
      "webhook_loss_rate = 1.0\n");
  std::vector<json::value> settled;
  const Tally t = run_batch(10, &settled);
  EXPECT_EQ(t.succeeded, 10);
  for (const json::value& p : settled) {
    EXPECT_EQ(cause_of(p, "succeeded"), "status_query") << json::serialize(p);
  }
  // /metrics counts the status queries apart from the calls: one authorization per payment,
  // and at least one query each.
  const std::string metrics = stack_->get("/metrics").text;
  EXPECT_NE(metrics.find("\nkeel_psp_calls_total 10\n"), std::string::npos) << metrics;
  const size_t at = metrics.find("\nkeel_psp_status_queries_total ");
  ASSERT_NE(at, std::string::npos) << metrics;
  EXPECT_GE(std::stoll(metrics.substr(at + 31)), 10) << metrics;
}

// Every webhook comes twice: the second is a no-op, and the merchant hears of each success
// once.
TEST_F(PaymentsFaults, DuplicatedWebhooksChangeNothingTwice) {
  PaymentsStackOptions o = options(
      "[psps.cardco.faults]\nasync_rate = 1.0\nasync_delay_ms = { min = 100, max = 500 }\n"
      "webhook_duplicate_rate = 1.0\n");
  o.resolve_initial_ms = 10'000;  // late status queries: the webhooks settle
  start(o);
  std::vector<json::value> settled;
  const Tally t = run_batch(10, &settled);
  EXPECT_EQ(t.succeeded, 10);
  for (const json::value& p : settled) {
    EXPECT_TRUE(cause_of(p, "succeeded").starts_with("webhook:")) << json::serialize(p);
    const JsonResponse events =
        stack_->get("/v1/events?type=payment.succeeded&object_id=" + str(p, "id"));
    ASSERT_EQ(events.status, 200u);
    EXPECT_EQ(events.body.at("data").as_array().size(), 1u) << events.text;
  }
}

// Webhooks late and out of order (a `pending` after the `captured`, an `authorized` after the
// capture was sent): stale ones are ignored. Half of the payments capture manually right after
// the authorization, while the older events are still on their way.
TEST_F(PaymentsFaults, ReorderedAndDelayedWebhooksNeverUndoAStep) {
  start(
      "[psps.cardco.faults]\nasync_rate = 1.0\nasync_delay_ms = { min = 50, max = 300 }\n"
      "webhook_reorder = true\nwebhook_delay_ms = { min = 200, max = 800 }\n"
      // Slow answers keep each capture open while older events arrive.
      "latency_ms = { min = 300, max = 600 }\n");
  const std::vector<std::string> automatic = create_payments(6);
  const std::vector<std::string> manual = create_payments(6, true);
  for (const JsonResponse& a : all_at_once(automatic, "confirm")) EXPECT_EQ(a.status, 200u);
  for (const JsonResponse& a : all_at_once(manual, "confirm")) {
    EXPECT_EQ(a.status, 200u) << a.text;
    EXPECT_EQ(str(a.body, "status"), "requires_capture") << a.text;
  }
  for (const JsonResponse& a : all_at_once(manual, "capture")) EXPECT_EQ(a.status, 200u);
  std::vector<std::string> ids = automatic;
  ids.insert(ids.end(), manual.begin(), manual.end());
  const Tally t = expect_books_match(settle_all(ids));
  EXPECT_EQ(t.succeeded, 12);
}

// Every authorization answers `pending` and settles later: webhook or status query, whichever
// comes first.
TEST_F(PaymentsFaults, AsynchronousAuthorizationsSettleOnce) {
  start("[psps.cardco.faults]\nasync_rate = 1.0\n");
  const Tally t = run_batch(10);
  EXPECT_EQ(t.succeeded, 10);
}

// Latency on both sides of keeld's 2 s bound: a status query sent after a call timed out can
// reach the PSP before that call is processed (it is still queued there) and answer 404. Taken
// at its word, that 404 made keel try again with a new reference and both tries captured; the
// resolver now believes "never received" only after not_found_grace_ms.
TEST_F(PaymentsFaults, LatencyStraddlingTheTimeoutNeverChargesTwice) {
  start("[psps.cardco.faults]\nlatency_ms = { min = 0, max = 4000 }\n");
  const Tally t = run_batch(30);
  EXPECT_EQ(t.succeeded, 30);
}

// Refunds whose answers are lost: each settles once (webhook or status query), and the PSP's
// refunded amount per payment is keel's.
TEST_F(PaymentsFaults, RefundsWithLostResponsesRefundOnce) {
  start("");
  std::vector<json::value> paid;
  ASSERT_EQ(run_batch(5, &paid).succeeded, 5);
  ASSERT_TRUE(stack_->set_sim_faults("cardco", R"({"response_lost_rate": 1.0})"));
  std::vector<std::string> refunds;
  for (const json::value& p : paid) {
    for (const int64_t amount : {300, 200}) {
      const JsonResponse r = stack_->post(
          "/v1/refunds",
          R"({"payment": ")" + str(p, "id") + R"(", "amount": )" + std::to_string(amount) + "}",
          new_key());
      ASSERT_EQ(r.status, 200u) << r.text;
      refunds.push_back(str(r.body, "id"));
    }
  }
  int64_t refunded = 0;
  for (const std::string& re : refunds) {
    const JsonResponse r = stack_->wait_settled("/v1/refunds/" + re);
    EXPECT_EQ(str(r.body, "status"), "succeeded") << r.text;
    ASSERT_EQ(r.body.at("attempts").as_array().size(), 1u);
    const std::string ref = str(r.body.at("attempts").at(0), "id");
    const auto ops = stack_->sim_operations("cardco");
    ASSERT_TRUE(ops.contains(ref)) << ref;
    EXPECT_EQ(ops.at(ref).at("amount").as_int64(), num(r.body, "amount"));
    const JsonResponse posting = stack_->get("/v1/transfers/" + re + ".refund");
    EXPECT_EQ(num(posting.body, "amount"), num(r.body, "amount")) << posting.text;
    refunded += num(r.body, "amount");
  }
  EXPECT_EQ(refunded, 5 * 500);
  const auto ops = stack_->sim_operations("cardco");
  EXPECT_EQ(ops.size(), 5u + refunds.size());
  for (const json::value& p : paid) {
    const std::string auth = str(p.at("attempts").at(0), "id");
    const JsonResponse now = stack_->get("/v1/payments/" + str(p, "id"));
    EXPECT_EQ(ops.at(auth).at("refunded_amount").as_int64(), 500);
    EXPECT_EQ(num(now.body, "amount_refunded"), 500);
  }
  const std::string merchant = "merchant:" + merchant_ + ":USD";
  int64_t fees = 0;
  for (const json::value& p : paid) fees += num(p, "merchant_fee");
  EXPECT_EQ(stack_->account_balance(merchant, "debits_posted"), fees + refunded);
  EXPECT_TRUE(stack_->admin_status().body.at("invariants_ok").as_bool());
}

// Top-ups and payouts whose calls are black-holed: the wallet is credited once per top-up the
// PSP paid, and each payout's hold is posted once.
TEST_F(PaymentsFaults, TopUpsAndPayoutsWithBlackHolesMoveMoneyOnce) {
  start("[psps.cardco.faults]\nblack_hole_rate = 1.0\n");
  const std::string c = stack_->create_customer();
  std::vector<std::string> flows;
  for (int i = 0; i < 4; ++i) {
    const JsonResponse r =
        stack_->post("/v1/topups",
                     R"({"customer": ")" + c + R"(", "amount": )" + std::to_string(2000 + i) +
                         R"(, "currency": "USD", "source": "tok_visa"})",
                     new_key());
    ASSERT_EQ(r.status, 200u) << r.text;
    flows.push_back("/v1/topups/" + str(r.body, "id"));
  }
  for (const std::string& f : flows) {
    EXPECT_EQ(str(stack_->wait_settled(f).body, "status"), "succeeded");
  }
  for (int i = 0; i < 3; ++i) {
    const JsonResponse r =
        stack_->post("/v1/payouts",
                     R"({"customer": ")" + c + R"(", "amount": )" + std::to_string(1000 + i) +
                         R"(, "currency": "USD", "destination": "DE89370400440532013000"})",
                     new_key());
    ASSERT_EQ(r.status, 200u) << r.text;
    flows.push_back("/v1/payouts/" + str(r.body, "id"));
  }
  int64_t in = 0;
  int64_t out = 0;
  int64_t fees = 0;
  for (const std::string& f : flows) {
    const JsonResponse r = stack_->wait_settled(f);
    EXPECT_EQ(str(r.body, "status"), "succeeded") << r.text;
    ASSERT_EQ(r.body.at("attempts").as_array().size(), 1u);
    const auto ops = stack_->sim_operations("cardco");
    const std::string ref = str(r.body.at("attempts").at(0), "id");
    ASSERT_TRUE(ops.contains(ref)) << ref;
    EXPECT_EQ(ops.at(ref).at("status").as_string(), "paid");
    EXPECT_EQ(ops.at(ref).at("amount").as_int64(), num(r.body, "amount"));
    EXPECT_EQ(ops.at(ref).at("fee").as_int64(), num(r.body, "fee"));
    (f.starts_with("/v1/topups/") ? in : out) += num(r.body, "amount");
    fees += num(r.body, "fee");
  }
  EXPECT_EQ(stack_->sim_operations("cardco").size(), flows.size());
  const std::string wallet = "wallet:" + c + ":USD";
  EXPECT_EQ(stack_->account_balance(wallet, "credits_posted"), in);
  EXPECT_EQ(stack_->account_balance(wallet, "debits_posted"), out);
  EXPECT_EQ(stack_->account_balance(wallet, "debits_pending"), 0);
  EXPECT_EQ(stack_->account_balance(std::string(kClearing), "debits_posted"), in);
  EXPECT_EQ(stack_->account_balance(std::string(kClearing), "credits_posted"), out + fees);
  EXPECT_EQ(stack_->account_balance("psp_fees:cardco:USD", "debits_posted"), fees);
  EXPECT_TRUE(stack_->admin_status().body.at("invariants_ok").as_bool());
}

// keeld dies (kill -9) while its calls are at the PSP. After the restart each attempt is
// unknown, the resolver asks the PSP, and each payment captures once; the confirms' keys answer
// the final state.
TEST_F(PaymentsFaults, KillNineWhileCallsAreInFlightResolvesEveryPaymentOnce) {
  // Each call is processed 2.5 s after it arrives, well after the kill, and well within keeld's
  // bound on a call (so the resolver's status queries get their answers).
  PaymentsStackOptions o =
      options("[psps.cardco.faults]\nlatency_ms = { min = 2500, max = 2500 }\n");
  o.total_timeout_ms = 5'000;
  start(o);
  constexpr int kPayments = 8;
  const std::vector<std::string> ids = create_payments(kPayments);
  std::vector<std::string> keys;
  std::thread confirms([&] { (void)all_at_once(ids, "confirm", &keys); });
  // Every payment processing: each authorization is journaled and its call on its way.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int processing = 0;
  while (processing < kPayments && std::chrono::steady_clock::now() < deadline) {
    const JsonResponse list = stack_->get("/v1/payments?status=processing&limit=100");
    processing = list.status == 200 ? static_cast<int>(list.body.at("data").as_array().size()) : 0;
    if (processing < kPayments) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(processing, kPayments);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(stack_->sim_operations("cardco").empty()) << "the PSP answered before the kill";
  ASSERT_TRUE(stack_->restart_keeld(true).is_ok());
  confirms.join();  // their connections died with keeld

  const std::vector<json::value> settled = settle_all(ids);
  const Tally t = expect_books_match(settled);
  EXPECT_EQ(t.succeeded, kPayments);
  for (const json::value& p : settled) {
    EXPECT_EQ(p.at("attempts").as_array().size(), 1u);
    EXPECT_TRUE(timeline_has(p, "restart")) << json::serialize(p);
  }
  // The keys of the interrupted confirms now answer the settled payment.
  for (size_t i = 0; i < ids.size(); ++i) {
    const JsonResponse again = stack_->post("/v1/payments/" + ids[i] + "/confirm", "{}", keys[i]);
    EXPECT_EQ(again.status, 200u) << again.text;
    EXPECT_TRUE(again.replayed);
    EXPECT_EQ(str(again.body, "status"), "succeeded") << again.text;
  }
  EXPECT_EQ(stack_->sim_operations("cardco").size(), static_cast<size_t>(kPayments));
}

// The same for captures: keeld dies while manual captures are at the PSP; after the restart
// the resolver asks about each authorization and books each capture once.
TEST_F(PaymentsFaults, KillNineWhileCapturesAreInFlightBooksEachCaptureOnce) {
  PaymentsStackOptions o = options("");
  o.total_timeout_ms = 5'000;  // room for the 2.5 s latency below
  start(o);
  constexpr int kPayments = 4;
  const std::vector<std::string> ids = create_payments(kPayments, true);
  for (const JsonResponse& a : all_at_once(ids, "confirm")) {
    ASSERT_EQ(str(a.body, "status"), "requires_capture") << a.text;
  }
  ASSERT_TRUE(stack_->set_sim_faults("cardco", R"({"latency_ms": {"min": 2500, "max": 2500}})"));
  std::thread captures([&] { (void)all_at_once(ids, "capture"); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int processing = 0;
  while (processing < kPayments && std::chrono::steady_clock::now() < deadline) {
    const JsonResponse list = stack_->get("/v1/payments?status=processing&limit=100");
    processing = list.status == 200 ? static_cast<int>(list.body.at("data").as_array().size()) : 0;
    if (processing < kPayments) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(processing, kPayments);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (const auto& [ref, op] : stack_->sim_operations("cardco")) {
    EXPECT_EQ(op.at("status").as_string(), "authorized") << "captured before the kill: " << ref;
  }
  ASSERT_TRUE(stack_->restart_keeld(true).is_ok());
  captures.join();

  const std::vector<json::value> settled = settle_all(ids);
  const Tally t = expect_books_match(settled);
  EXPECT_EQ(t.succeeded, kPayments);
  for (const json::value& p : settled) {
    ASSERT_EQ(p.at("attempts").as_array().size(), 2u);
    EXPECT_EQ(str(p.at("attempts").at(1), "kind"), "capture");
    EXPECT_TRUE(timeline_has(p, "restart")) << json::serialize(p);
    EXPECT_EQ(num(p, "amount_captured"), num(p, "amount"));
  }
}

// keeld dies while top-ups and payouts are at the PSP: after the restart each one settles once
// (the payouts' holds are posted, the top-ups credit the wallet), and the requests' own
// Idempotency-Keys answer the outcome.
TEST_F(PaymentsFaults, KillNineWhileTopUpsAndPayoutsAreInFlightMovesEachOnce) {
  PaymentsStackOptions o = options("");
  o.total_timeout_ms = 5'000;  // room for the 2.5 s latency below
  start(o);
  const std::string c = stack_->create_customer();
  const JsonResponse funded = stack_->post(
      "/v1/topups",
      R"({"customer": ")" + c + R"(", "amount": 10000, "currency": "USD", "source": "tok_visa"})",
      new_key());
  ASSERT_EQ(str(funded.body, "status"), "succeeded") << funded.text;
  ASSERT_TRUE(stack_->set_sim_faults("cardco", R"({"latency_ms": {"min": 2500, "max": 2500}})"));
  struct Request {
    std::string path;
    std::string body;
    std::string key;
  };
  std::vector<Request> requests;
  for (const int64_t amount : {3000, 3001}) {
    requests.push_back({"/v1/topups",
                        R"({"customer": ")" + c + R"(", "amount": )" + std::to_string(amount) +
                            R"(, "currency": "USD", "source": "tok_visa"})",
                        new_key()});
  }
  for (const int64_t amount : {2000, 2001}) {
    requests.push_back({"/v1/payouts",
                        R"({"customer": ")" + c + R"(", "amount": )" + std::to_string(amount) +
                            R"(, "currency": "USD", "destination": "DE89370400440532013000"})",
                        new_key()});
  }
  std::vector<std::thread> threads;
  for (const Request& r : requests) {
    threads.emplace_back([&] { (void)stack_->post_unshared(r.path, r.body, r.key); });
  }
  const std::string wallet = "wallet:" + c + ":USD";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (stack_->account_balance(wallet, "debits_pending") != 4001 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(stack_->account_balance(wallet, "debits_pending"), 4001);  // both payouts held
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(stack_->sim_operations("cardco").size(), 1u) << "the PSP answered before the kill";
  ASSERT_TRUE(stack_->restart_keeld(true).is_ok());
  for (auto& t : threads) t.join();

  // The same requests again: 409 while in flight, then the stored outcome.
  int64_t fees = num(funded.body, "fee");
  for (const Request& r : requests) {
    JsonResponse answer;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    do {
      answer = stack_->post(r.path, r.body, r.key);
      if (answer.status == 200 && str(answer.body, "status") != "processing") break;
      EXPECT_TRUE(answer.status == 409 || answer.status == 200) << answer.text;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } while (std::chrono::steady_clock::now() < until);
    ASSERT_EQ(answer.status, 200u) << answer.text;
    EXPECT_TRUE(answer.replayed) << "the request had not reached keeld before the kill";
    EXPECT_EQ(str(answer.body, "status"), "succeeded") << answer.text;
    ASSERT_EQ(answer.body.at("attempts").as_array().size(), 1u);
    const std::string ref = str(answer.body.at("attempts").at(0), "id");
    const auto ops = stack_->sim_operations("cardco");
    ASSERT_TRUE(ops.contains(ref)) << ref;
    EXPECT_EQ(ops.at(ref).at("status").as_string(), "paid");
    EXPECT_EQ(ops.at(ref).at("amount").as_int64(), num(answer.body, "amount"));
    EXPECT_EQ(ops.at(ref).at("fee").as_int64(), num(answer.body, "fee"));
    fees += num(answer.body, "fee");
  }
  EXPECT_EQ(stack_->sim_operations("cardco").size(), 5u);
  EXPECT_EQ(stack_->account_balance(wallet, "credits_posted"), 10000 + 3000 + 3001);
  EXPECT_EQ(stack_->account_balance(wallet, "debits_posted"), 2000 + 2001);
  EXPECT_EQ(stack_->account_balance(wallet, "debits_pending"), 0);
  EXPECT_EQ(stack_->account_balance(std::string(kClearing), "debits_posted"), 16001);
  EXPECT_EQ(stack_->account_balance(std::string(kClearing), "credits_posted"), 4001 + fees);
  EXPECT_EQ(stack_->account_balance("psp_fees:cardco:USD", "debits_posted"), fees);
  EXPECT_TRUE(stack_->admin_status().body.at("invariants_ok").as_bool());
}

// The PSP takes the money but nothing tells keel: every call and every status query is
// black-holed and every webhook lost. At the processing deadline each payment is flagged for
// review (never silently processing, no money moved on a guess); when the PSP answers again the
// resolver settles it and the flag goes.
//
// Review is not an outcome (issue 8): the confirms' Idempotency-Keys stay in flight through it.
// A retry with the key while in review gets the payment as it stands (200, not a stored body);
// once the PSP answers, the key replays the final payment, also after a kill -9.
TEST_F(PaymentsFaults, UnknownPastTheDeadlineGoesToReviewAndResolvesWhenThePspIsBack) {
  PaymentsStackOptions o =
      options("[psps.cardco.faults]\nblack_hole_rate = 1.0\nwebhook_loss_rate = 1.0\n",
              "processing_deadline_s = 2\nsettle_wait_ms = 3000\n");
  o.not_found_grace_ms = 1'000;  // below the deadline (keeld refuses it otherwise)
  start(std::move(o));
  constexpr int kPayments = 3;
  const std::vector<std::string> ids = create_payments(kPayments);
  std::vector<std::string> keys;
  for (const JsonResponse& a : all_at_once(ids, "confirm", &keys)) {
    ASSERT_EQ(a.status, 200u) << a.text;
    EXPECT_EQ(str(a.body, "status"), "processing") << a.text;
    EXPECT_TRUE(review(a.body)) << a.text;  // the confirm's wait ends showing the review flag
  }
  // A retry with the same key while in review: the payment as it stands, never a stored body.
  for (size_t i = 0; i < ids.size(); ++i) {
    const JsonResponse retry = stack_->post("/v1/payments/" + ids[i] + "/confirm", "{}", keys[i]);
    EXPECT_EQ(retry.status, 200u) << retry.text;
    EXPECT_FALSE(retry.replayed) << retry.text;
    EXPECT_EQ(str(retry.body, "status"), "processing") << retry.text;
    EXPECT_TRUE(review(retry.body)) << retry.text;
    EXPECT_EQ(str(retry.body, "review_reason"), "deadline_unknown") << retry.text;
  }
  // The PSP captured them all; keel moved nothing, and says so.
  for (const auto& [ref, op] : stack_->sim_operations("cardco")) {
    EXPECT_EQ(op.at("status").as_string(), "captured") << ref;
  }
  EXPECT_EQ(stack_->sim_operations("cardco").size(), static_cast<size_t>(kPayments));
  // A while later: still in review, still nothing posted.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  for (const std::string& id : ids) {
    const JsonResponse p = stack_->get("/v1/payments/" + id);
    EXPECT_EQ(str(p.body, "status"), "processing");
    EXPECT_TRUE(review(p.body)) << p.text;
    EXPECT_TRUE(timeline_has(p.body, "deadline: review")) << p.text;
    EXPECT_EQ(stack_->get("/v1/transfers/" + id + ".hold").status, 404u);
    const JsonResponse events =
        stack_->get("/v1/events?type=payment.requires_review&object_id=" + id);
    EXPECT_EQ(events.body.at("data").as_array().size(), 1u) << events.text;
  }
  EXPECT_EQ(stack_->admin_status().body.at("payments").at("in_review").as_int64(), kPayments);
  // The alert an operator scrapes.
  const JsonResponse metrics = stack_->get("/metrics");
  EXPECT_EQ(metrics.status, 200u);
  EXPECT_NE(metrics.text.find("\nkeel_payments_in_review " + std::to_string(kPayments) + "\n"),
            std::string::npos)
      << metrics.text;
  EXPECT_LE(stack_->account_balance("merchant:" + merchant_ + ":USD", "credits_posted"), 0);

  // The PSP answers again: the resolver's next status query settles each payment.
  ASSERT_TRUE(stack_->set_sim_faults("cardco", "{}"));
  const std::vector<json::value> settled = settle_all(ids);
  const Tally t = expect_books_match(settled);
  EXPECT_EQ(t.succeeded, kPayments);
  for (const json::value& p : settled) {
    EXPECT_EQ(cause_of(p, "succeeded"), "status_query") << json::serialize(p);
  }
  // Each key now replays the final payment, before and after a kill -9.
  for (const bool restarted : {false, true}) {
    if (restarted) {
      ASSERT_TRUE(stack_->restart_keeld(true).is_ok());
    }
    for (size_t i = 0; i < ids.size(); ++i) {
      const JsonResponse replay =
          stack_->post("/v1/payments/" + ids[i] + "/confirm", "{}", keys[i]);
      EXPECT_EQ(replay.status, 200u) << replay.text;
      EXPECT_TRUE(replay.replayed) << restarted << " " << replay.text;
      EXPECT_EQ(str(replay.body, "status"), "succeeded") << restarted << " " << replay.text;
      EXPECT_FALSE(review(replay.body)) << replay.text;
    }
  }
  // The review desk kept each item, resolved by the PSP's answer.
  const JsonResponse items = stack_->get("/v1/admin/reviews?reason=deadline_unknown");
  ASSERT_EQ(items.body.at("data").as_array().size(), static_cast<size_t>(kPayments)) << items.text;
  for (const json::value& item : items.body.at("data").as_array()) {
    EXPECT_EQ(str(item, "status"), "resolved") << json::serialize(item);
    EXPECT_EQ(str(item, "resolved_by"), "psp") << json::serialize(item);
    EXPECT_EQ(str(item, "resolution"), "status: succeeded") << json::serialize(item);
  }
}

}  // namespace
}  // namespace keel::testing
