// PSP fees against every amount keel sends, through keeld and keel-psp-sim (issue 8, defect 1).
//
// A PSP's fee is keel's expense (docs/postings.md): it may pass the amount it is charged on (a
// fixed fee on a small payment). Before issue 8 such an answer was refused and dropped, and the
// payment stayed `processing` while the PSP had charged it. Here every flow the PSP charges a fee
// on (card payments captured at once, manual partial captures, top-ups, payouts) runs over
// amounts drawn from the whole range, edges first (1, around the fixed fee, around 10,000 where
// basis points start to count, the simulator's largest amount), in currencies of every exponent
// (JPY 0, USD 2, KWD 3, CLF 4), under fee schedules whose fee is above, equal to and below the
// amount. Each must settle; keel's books must equal the simulator's, operation by operation and
// account by account; the ledger's invariants must hold; and a snapshot taken with these results
// must load again to the same state hash.
//
// A fee past what keel believes (more than kPspFeeAboveAmountMax above the amount) is refused, and
// never dropped: the payment goes to review with the PSP's answer as evidence, counted in /metrics.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <random>
#include <set>

#include "payments/payment.h"
#include "testing/payments_stack.h"

namespace keel::testing {
namespace {
namespace json = boost::json;

constexpr int64_t kSimAmountMax = 1'000'000'000'000;  // keel-psp-sim's largest amount
const std::vector<std::string> kCurrencies = {"JPY", "USD", "KWD", "CLF"};
constexpr std::string_view kChannels[] = {"cardco", "bankco"};

bool review(const json::value& v) {
  const json::value* f = v.is_object() ? v.as_object().if_contains("requires_review") : nullptr;
  return f != nullptr && f->is_bool() && f->get_bool();
}

// Amounts from the whole range: the edges around `fixed` and 10,000 (where basis points start to
// round above 0), the simulator's largest, then log-uniform draws.
std::vector<int64_t> amounts(std::mt19937_64& random, int64_t fixed, int draws) {
  std::vector<int64_t> out = {1, 2, 9'999, 10'000, 10'001, kSimAmountMax};
  for (const int64_t a : {fixed - 1, fixed, fixed + 1}) {
    if (a >= 1) out.push_back(a);
  }
  std::uniform_real_distribution<double> exponent(0.0, 12.0);
  for (int i = 0; i < draws; ++i) {
    out.push_back(std::max<int64_t>(1, static_cast<int64_t>(std::pow(10.0, exponent(random)))));
  }
  return out;
}

int64_t between(std::mt19937_64& random, int64_t low, int64_t high) {
  return std::uniform_int_distribution<int64_t>(low, high)(random);
}

// Sums per (channel, currency): what keel's ledger must show on psp_clearing and psp_fees.
struct Totals {
  int64_t into_keel = 0;  // captured card amounts and top-ups: psp_clearing debits
  int64_t paid_out = 0;   // payouts: psp_clearing credits
  int64_t fees = 0;       // every PSP fee: psp_fees debits, psp_clearing credits
};

class PaymentsFees : public ::testing::Test {
 protected:
  void start(SimPspFees cardco, SimPspFees bankco, std::string payments_toml = {}) {
    PaymentsStackOptions o;
    o.cardco_fees = cardco;
    o.bankco_fees = bankco;
    o.currencies = kCurrencies;
    o.payments_toml_extra = std::move(payments_toml);
    ASSERT_TRUE(PaymentsStack::start(std::move(o), &stack_).is_ok());
    merchant_ = stack_->create_merchant();
    customer_ = stack_->create_customer();
    ASSERT_FALSE(merchant_.empty() || customer_.empty());
  }

  JsonResponse post(const std::string& path, const std::string& body) {
    const JsonResponse r = stack_->post(path, body, new_key());
    EXPECT_EQ(r.status, 200u) << path << " " << body << " -> " << r.text;
    return r;
  }

  // The simulator's operation for `reference` on `channel`, checked settled at the PSP.
  json::object sim_op(std::string_view channel, const std::string& reference) {
    auto& ops = ops_[std::string(channel)];
    if (!ops.contains(reference)) ops = stack_->sim_operations(channel);
    const auto it = ops.find(reference);
    EXPECT_NE(it, ops.end()) << reference;
    return it == ops.end() ? json::object{} : it->second;
  }

  // A card payment of `amount`, captured at once or (manual) `capture` of it later.
  void card_payment(std::string_view channel, int64_t amount, const std::string& currency,
                    int64_t capture) {
    const bool manual = capture > 0;
    const JsonResponse created =
        post("/v1/payments", R"({"amount": )" + std::to_string(amount) + R"(, "currency": ")" +
                                 currency + R"(", "merchant": ")" + merchant_ +
                                 R"(", "payment_method": "tok_visa", "capture_method": ")" +
                                 (manual ? "manual" : "automatic") + "\"}");
    const std::string id = str(created.body, "id");
    JsonResponse p =
        post("/v1/payments/" + id + "/confirm", R"({"channel": ")" + std::string(channel) + "\"}");
    if (manual) {
      ASSERT_EQ(str(p.body, "status"), "requires_capture") << p.text;
      p = post("/v1/payments/" + id + "/capture", R"({"amount": )" + std::to_string(capture) + "}");
    }
    p = stack_->wait_settled("/v1/payments/" + id);
    SCOPED_TRACE(p.text);
    ASSERT_EQ(str(p.body, "status"), "succeeded");
    EXPECT_FALSE(review(p.body));
    const std::string reference = str(p.body.at("attempts").at(0), "id");
    const json::object op = sim_op(channel, reference);
    const int64_t captured =
        op.contains("captured_amount") ? op.at("captured_amount").as_int64() : -1;
    const int64_t fee = op.contains("fee") ? op.at("fee").as_int64() : -1;
    EXPECT_EQ(captured, manual ? capture : amount);
    EXPECT_EQ(num(p.body, "amount_captured"), captured);
    EXPECT_EQ(num(p.body, "psp_fee"), fee);
    const JsonResponse fee_posting = stack_->get("/v1/transfers/" + id + ".psp_fee");
    if (fee > 0) {
      EXPECT_EQ(num(fee_posting.body, "amount"), fee) << fee_posting.text;
    } else {
      EXPECT_EQ(fee_posting.status, 404u);
    }
    Totals& t = totals_[{std::string(channel), currency}];
    t.into_keel += captured;
    t.fees += fee;
  }

  // A top-up of `amount` into the customer's wallet, or a payout of it (payout = true).
  void wallet_flow(std::string_view channel, int64_t amount, const std::string& currency,
                   bool payout) {
    const std::string body =
        R"({"customer": ")" + customer_ + R"(", "amount": )" + std::to_string(amount) +
        R"(, "currency": ")" + currency + R"(", "channel": ")" + std::string(channel) + "\", " +
        (payout ? R"("destination": "DE89370400440532013000"})" : R"("source": "tok_visa"})");
    const std::string path = payout ? "/v1/payouts" : "/v1/topups";
    const std::string id = str(post(path, body).body, "id");
    const JsonResponse f = stack_->wait_settled(path + "/" + id);
    SCOPED_TRACE(f.text);
    ASSERT_EQ(str(f.body, "status"), "succeeded");
    EXPECT_FALSE(review(f.body));
    const json::object op = sim_op(channel, str(f.body.at("attempts").at(0), "id"));
    EXPECT_EQ(op.contains("status") ? std::string(op.at("status").as_string()) : "", "paid");
    const int64_t fee = op.contains("fee") ? op.at("fee").as_int64() : -1;
    EXPECT_EQ(num(f.body, "fee"), fee);
    Totals& t = totals_[{std::string(channel), currency}];
    (payout ? t.paid_out : t.into_keel) += amount;
    t.fees += fee;
  }

  // Every flow over the amounts of `fixed`'s edges, on both channels and every currency.
  void every_flow(int64_t cardco_fixed, int64_t bankco_fixed, uint64_t seed) {
    std::mt19937_64 random(seed);
    SCOPED_TRACE("seed " + std::to_string(seed));
    for (const std::string_view channel : kChannels) {
      const int64_t fixed = channel == "cardco" ? cardco_fixed : bankco_fixed;
      size_t n = 0;
      for (const int64_t amount : amounts(random, fixed, 4)) {
        const std::string& currency = kCurrencies[n++ % kCurrencies.size()];
        SCOPED_TRACE(std::string(channel) + " " + std::to_string(amount) + " " + currency);
        card_payment(channel, amount, currency, 0);
        card_payment(channel, amount, currency, between(random, 1, amount));
        wallet_flow(channel, amount, currency, false);
        wallet_flow(channel, between(random, 1, amount), currency, true);
      }
    }
  }

  // keel's ledger against the sums of the simulator's books, and the state after a snapshot.
  void expect_ledger_matches() {
    const auto posted = [&](const std::string& account, std::string_view field) {
      const int64_t v = stack_->account_balance(account, field);
      return v < 0 ? 0 : v;
    };
    for (const auto& [key, t] : totals_) {
      const std::string suffix = key.first + ":" + key.second;
      SCOPED_TRACE(suffix);
      EXPECT_EQ(posted("psp_clearing:" + suffix, "debits_posted"), t.into_keel);
      EXPECT_EQ(posted("psp_clearing:" + suffix, "credits_posted"), t.paid_out + t.fees);
      EXPECT_EQ(posted("psp_fees:" + suffix, "debits_posted"), t.fees);
    }
    const JsonResponse before = stack_->admin_status();
    ASSERT_TRUE(before.body.at("invariants_ok").as_bool()) << before.text;
    EXPECT_EQ(before.body.at("payments").at("in_review").as_int64(), 0);
    EXPECT_EQ(before.body.at("payments").at("psp_results_rejected").as_int64(), 0);
    ASSERT_EQ(stack_->post("/v1/admin/snapshot", "{}").status, 200u);
    ASSERT_TRUE(stack_->restart_keeld(false).is_ok());
    const JsonResponse after = stack_->admin_status();
    EXPECT_EQ(str(after.body, "state_hash"), str(before.body, "state_hash"));
    EXPECT_TRUE(after.body.at("invariants_ok").as_bool()) << after.text;
  }

  std::unique_ptr<PaymentsStack> stack_;
  std::string merchant_;
  std::string customer_;
  std::map<std::string, std::map<std::string, json::object>> ops_;  // channel -> reference -> op
  std::map<std::pair<std::string, std::string>, Totals> totals_;
};

// The issue's cases as reported, with `make run`'s cardco (30 + 290 bps): a payment of 20, a
// capture of 4 of 1000, a top-up of 5, a payout of 5. Each settles; the fees are keel's expense.
TEST_F(PaymentsFees, FeesAboveTheAmountSettleAndAreBookedAsReported) {
  start({30, 290}, {10, 50});
  card_payment("cardco", 20, "USD", 0);
  card_payment("cardco", 1000, "USD", 4);
  wallet_flow("cardco", 5, "USD", false);
  wallet_flow("cardco", 5, "USD", true);
  const Totals& t = totals_[{"cardco", "USD"}];
  EXPECT_EQ(t.fees, 4 * 30);  // each below 10,000 / 290 minor units: the fixed fee alone
  expect_ledger_matches();
}

// Fee schedules with the fee above, equal to and below the amount, and basis points that round
// to 0 for every amount below 10,000.
TEST_F(PaymentsFees, EveryFlowSettlesForEveryAmountAndFeeSchedule) {
  start({30, 290}, {0, 1});
  every_flow(30, 0, 8101);
  expect_ledger_matches();
}

TEST_F(PaymentsFees, FixedFeesAtTheBoundAndFeesOfTheWholeAmountSettle) {
  start({payments::kPspFeeAboveAmountMax, 0}, {7, 10'000});
  every_flow(payments::kPspFeeAboveAmountMax, 7, 8102);
  expect_ledger_matches();
}

// A fee past what keel believes: refused, never dropped. The payment goes to review at once
// with the PSP's answer as evidence; nothing is booked on a guess; /metrics counts it.
TEST_F(PaymentsFees, AFeeKeelDoesNotBelieveGoesToReviewWithEvidence) {
  constexpr int64_t kFee = 100 + payments::kPspFeeAboveAmountMax + 1;  // on a payment of 100
  start({kFee, 0}, {10, 50}, "settle_wait_ms = 500\n");
  const JsonResponse created =
      post("/v1/payments", R"({"amount": 100, "currency": "USD", "merchant": ")" + merchant_ +
                               R"(", "payment_method": "tok_visa"})");
  const std::string id = str(created.body, "id");
  const JsonResponse confirmed = post("/v1/payments/" + id + "/confirm", "{}");
  EXPECT_EQ(str(confirmed.body, "status"), "processing") << confirmed.text;
  EXPECT_TRUE(review(confirmed.body)) << confirmed.text;
  const JsonResponse p = stack_->get("/v1/payments/" + id);
  EXPECT_EQ(str(p.body, "review_reason"), "psp_result_rejected") << p.text;
  EXPECT_TRUE(p.body.at("deadline").is_null()) << p.text;
  bool in_timeline = false;
  for (const json::value& t : p.body.at("timeline").as_array()) {
    in_timeline = in_timeline || str(t, "cause") == "psp_result_rejected: fee_out_of_range";
  }
  EXPECT_TRUE(in_timeline) << p.text;
  EXPECT_EQ(stack_->get("/v1/transfers/" + id + ".hold").status, 404u);  // nothing booked

  const JsonResponse items = stack_->get("/v1/admin/reviews?status=open");
  ASSERT_EQ(items.status, 200u) << items.text;
  ASSERT_EQ(items.body.at("data").as_array().size(), 1u) << items.text;
  const json::value& item = items.body.at("data").at(0);
  EXPECT_EQ(str(item, "object_id"), id);
  EXPECT_EQ(str(item, "object_type"), "payment");
  EXPECT_EQ(str(item, "reason"), "psp_result_rejected");
  EXPECT_EQ(str(item.at("evidence"), "problem"), "fee_out_of_range");
  EXPECT_EQ(num(item.at("evidence").at("reported"), "fee"), kFee);
  EXPECT_EQ(stack_->get("/v1/admin/reviews?status=resolved").body.at("data").as_array().size(), 0u);
  for (const char* bad : {"/v1/admin/reviews?status=closed", "/v1/admin/reviews?reason=other",
                          "/v1/admin/reviews?limit=0", "/v1/admin/reviews?starting_after=rev_x"}) {
    const JsonResponse r = stack_->get(bad);
    EXPECT_EQ(r.status, 400u) << bad << " " << r.text;
  }

  // Counted once per refused message: the call's answer, and the PSP's webhook if it came.
  const JsonResponse status = stack_->admin_status();
  const int64_t rejected = status.body.at("payments").at("psp_results_rejected").as_int64();
  EXPECT_GE(rejected, 1) << status.text;
  EXPECT_EQ(status.body.at("payments").at("in_review").as_int64(), 1);
  const std::string metrics = stack_->get("/metrics").text;
  EXPECT_NE(metrics.find("\nkeel_psp_results_rejected_total "), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\nkeel_review_items_open{reason=\"psp_result_rejected\"} 1\n"),
            std::string::npos)
      << metrics;
  // The flag survives a kill -9 and a replay of the journal.
  ASSERT_TRUE(stack_->restart_keeld(true).is_ok());
  EXPECT_EQ(str(stack_->get("/v1/payments/" + id).body, "review_reason"), "psp_result_rejected");
  EXPECT_EQ(stack_->get("/v1/admin/reviews?status=open").body.at("data").as_array().size(), 1u);
}

// A PSP webhook that contradicts what keel booked (a captured payment reported voided) is not
// dropped as stale: the payment goes to review, with the PSP's words as evidence. A webhook that
// agrees changes nothing; one whose id does not fit the timeline is refused with a 400.
TEST_F(PaymentsFees, AWebhookContradictingTheBooksGoesToReview) {
  start({30, 290}, {10, 50});
  card_payment("cardco", 1250, "USD", 0);
  const JsonResponse list = stack_->get("/v1/payments?status=succeeded");
  ASSERT_EQ(list.body.at("data").as_array().size(), 1u) << list.text;
  const json::value& p = list.body.at("data").at(0);
  const std::string id = str(p, "id");
  const json::value& attempt = p.at("attempts").at(0);
  const auto report = [&](std::string_view event_id, std::string_view status) {
    return R"({"id": ")" + std::string(event_id) + R"(", "data": {"psp_reference": ")" +
           str(attempt, "psp_reference") + R"(", "reference": ")" + str(attempt, "id") +
           R"(", "type": "authorization", "status": ")" + std::string(status) +
           R"(", "currency": "USD", "amount": 1250}})";
  };
  EXPECT_EQ(stack_->post_webhook("cardco", report("evt_agrees", "captured")).status, 200u);
  EXPECT_FALSE(review(stack_->get("/v1/payments/" + id).body));  // agrees: stale, no change

  const JsonResponse long_id =
      stack_->post_webhook("cardco", report(std::string(101, 'e'), "voided"));
  EXPECT_EQ(long_id.status, 400u) << long_id.text;
  EXPECT_EQ(str(long_id.body.at("error"), "param"), "id") << long_id.text;
  EXPECT_FALSE(review(stack_->get("/v1/payments/" + id).body));

  EXPECT_EQ(stack_->post_webhook("cardco", report("evt_contradicts", "voided")).status, 200u);
  const JsonResponse flagged = stack_->get("/v1/payments/" + id);
  EXPECT_EQ(str(flagged.body, "status"), "succeeded") << flagged.text;  // the books stand
  EXPECT_EQ(str(flagged.body, "review_reason"), "psp_result_rejected") << flagged.text;
  const JsonResponse items = stack_->get("/v1/admin/reviews?object_id=" + id);
  ASSERT_EQ(items.body.at("data").as_array().size(), 1u) << items.text;
  const json::value& evidence = items.body.at("data").at(0).at("evidence");
  EXPECT_EQ(str(evidence, "problem"), "contradicts_settled_attempt");
  EXPECT_EQ(str(evidence, "source"), "webhook:evt_contradicts");
  EXPECT_EQ(str(evidence.at("reported"), "operation_status"), "voided");
  EXPECT_EQ(str(evidence, "attempt_status"), "approved");
}

}  // namespace
}  // namespace keel::testing
