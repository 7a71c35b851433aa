// End-to-end payment flows through keeld and keel-psp-sim: states, the exact postings of
// docs/postings.md, the simulator's books, merchant webhooks, idempotency and bad input.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <ctime>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "connectors/webhook_signature.h"
#include "core/time.h"
#include "testing/payments_stack.h"
#include "testing/temp_dir.h"
#include "testing/webhook_receiver.h"

namespace keel::testing {
namespace {
namespace json = boost::json;

// Merchant fees for these tests: 1% + 20 on card channels, 0.5% on wallet payments.
constexpr std::string_view kFeesToml =
    "[fees.default]\nbps = 100\nfixed = 20\n[fees.wallet]\nbps = 50\nfixed = 0\n";

// cardco's fee schedule in the simulator: 30 + 2.9% (rounded down).
int64_t cardco_fee(int64_t amount) { return 30 + amount * 290 / 10'000; }
int64_t merchant_card_fee(int64_t amount) { return amount / 100 + 20; }
int64_t merchant_wallet_fee(int64_t amount) { return amount * 50 / 10'000; }

class PaymentsE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    PaymentsStackOptions o;
    o.keeld_toml_extra = std::string(kFeesToml);
    ASSERT_TRUE(PaymentsStack::start(o, &stack_).is_ok());
  }

  int64_t balance(const std::string& account, std::string_view field) {
    return stack_->account_balance(account, field);
  }

  // Creates a payment and returns its id ("" on failure). `extra`: more JSON fields, each
  // starting with a comma.
  std::string create_payment(const std::string& merchant, int64_t amount,
                             const std::string& extra = R"(, "payment_method": "tok_visa")") {
    const JsonResponse r =
        stack_->post("/v1/payments",
                     R"({"amount": )" + std::to_string(amount) +
                         R"(, "currency": "USD", "merchant": ")" + merchant + "\"" + extra + "}",
                     new_key());
    EXPECT_EQ(r.status, 200u) << r.text;
    if (r.status != 200) return {};
    EXPECT_EQ(str(r.body, "status"), "requires_confirmation");
    return str(r.body, "id");
  }

  JsonResponse confirm(const std::string& id, std::string_view body = "{}") {
    return stack_->post("/v1/payments/" + id + "/confirm", body, new_key());
  }

  // Tops up `customer` with `amount` USD by card on cardco; returns the top-up.
  JsonResponse topup(const std::string& customer, int64_t amount) {
    return stack_->post(
        "/v1/topups",
        R"({"customer": ")" + customer + R"(", "amount": )" + std::to_string(amount) +
            R"(, "currency": "USD", "source": "tok_visa", "source_type": "card_token"})",
        new_key());
  }

  // The wallet balance of `customer` in USD: {available, pending_in, pending_out}; all -1 if
  // the wallet has no USD account.
  std::array<int64_t, 3> wallet(const std::string& customer) {
    const JsonResponse r = stack_->get("/v1/wallets/" + customer);
    EXPECT_EQ(r.status, 200u) << r.text;
    if (r.status != 200) return {-1, -1, -1};
    for (const json::value& b : r.body.at("balances").as_array()) {
      if (str(b, "currency") != "USD") continue;
      EXPECT_EQ(str(b, "ledger_account"), "wallet:" + customer + ":USD");
      return {num(b, "available"), num(b, "pending_in"), num(b, "pending_out")};
    }
    return {-1, -1, -1};
  }

  // Expects the ledger transfer `id` to move `amount` from `debit` to `credit`.
  void expect_transfer(const std::string& id, const std::string& debit, const std::string& credit,
                       int64_t amount) {
    const JsonResponse t = stack_->get("/v1/transfers/" + id);
    ASSERT_EQ(t.status, 200u) << id << ": " << t.text;
    EXPECT_EQ(str(t.body, "debit_account_id"), debit) << id;
    EXPECT_EQ(str(t.body, "credit_account_id"), credit) << id;
    EXPECT_EQ(num(t.body, "amount"), amount) << id;
    EXPECT_EQ(str(t.body, "currency"), "USD") << id;
  }
  void expect_no_transfer(const std::string& id) {
    const JsonResponse t = stack_->get("/v1/transfers/" + id);
    EXPECT_EQ(t.status, 404u) << id << ": " << t.text;
  }
  // The hold's pending state ("pending", "posted", "voided", ...).
  std::string pending_state(const std::string& hold_id) {
    return str(stack_->get("/v1/transfers/" + hold_id).body, "pending_state");
  }

  void expect_invariants_ok() {
    const JsonResponse s = stack_->admin_status();
    ASSERT_EQ(s.status, 200u) << s.text;
    EXPECT_TRUE(s.body.at("invariants_ok").as_bool()) << s.text;
  }

  std::unique_ptr<PaymentsStack> stack_;
};

// ---- (1) Card payment, automatic capture -----------------------------------------------------

TEST_F(PaymentsE2E, CardPaymentWithAutomaticCaptureCreditsTheMerchantOnce) {
  const std::string merchant = stack_->create_merchant();
  ASSERT_FALSE(merchant.empty());
  const JsonResponse created = stack_->post("/v1/payments",
                                            R"({"amount": 1250, "currency": "USD", "merchant": ")" +
                                                merchant + R"(", "payment_method": "tok_visa"})",
                                            new_key());
  ASSERT_EQ(created.status, 200u) << created.text;
  const std::string id(created.body.at("id").as_string());
  EXPECT_EQ(created.body.at("status").as_string(), "requires_confirmation");

  const std::string key = new_key();
  const JsonResponse confirmed = stack_->post("/v1/payments/" + id + "/confirm", "{}", key);
  ASSERT_EQ(confirmed.status, 200u) << confirmed.text;
  EXPECT_EQ(confirmed.body.at("status").as_string(), "succeeded");
  EXPECT_FALSE(confirmed.replayed);

  const JsonResponse again = stack_->post("/v1/payments/" + id + "/confirm", "{}", key);
  EXPECT_EQ(again.status, 200u);
  EXPECT_TRUE(again.replayed);
  EXPECT_EQ(again.text, confirmed.text);

  EXPECT_EQ(balance("merchant:" + merchant + ":USD", "credits_posted"), 1250);
  // cardco's fee: 30 + 2.9% of 1250 = 66, booked from the PSP's answer.
  EXPECT_EQ(balance("psp_fees:cardco:USD", "debits_posted"), 66);
  const JsonResponse books = stack_->sim_request("GET", "/admin/psps/cardco/operations");
  ASSERT_EQ(books.status, 200u);
  EXPECT_EQ(books.body.at("operations").as_array().size(), 1u);
}

TEST_F(PaymentsE2E, CardAutoCapturePostsTheHoldTheMerchantFeeAndThePspFeeAsDocumented) {
  const std::string m = stack_->create_merchant();
  const std::string id = create_payment(m, 1250);
  const JsonResponse r = confirm(id);
  ASSERT_EQ(r.status, 200u) << r.text;
  EXPECT_EQ(str(r.body, "status"), "succeeded");
  EXPECT_EQ(num(r.body, "amount_captured"), 1250);
  EXPECT_EQ(num(r.body, "psp_fee"), cardco_fee(1250));
  EXPECT_EQ(num(r.body, "merchant_fee"), merchant_card_fee(1250));
  ASSERT_EQ(r.body.at("attempts").as_array().size(), 1u);
  const std::string attempt = str(r.body.at("attempts").at(0), "id");

  const std::string merchant = "merchant:" + m + ":USD";
  expect_transfer(id + ".hold", "psp_clearing:cardco:USD", merchant, 1250);
  EXPECT_EQ(pending_state(id + ".hold"), "posted");
  EXPECT_EQ(num(stack_->get("/v1/transfers/" + id + ".capture").body, "amount"), 1250);
  expect_transfer(id + ".fee", merchant, "fees:USD", merchant_card_fee(1250));  // 32
  expect_transfer(id + ".psp_fee", "psp_fees:cardco:USD", "psp_clearing:cardco:USD", 66);

  EXPECT_EQ(balance(merchant, "credits_posted"), 1250);
  EXPECT_EQ(balance(merchant, "debits_posted"), 32);
  EXPECT_EQ(balance(merchant, "credits_pending"), 0);
  EXPECT_EQ(balance("psp_clearing:cardco:USD", "debits_posted"), 1250);
  EXPECT_EQ(balance("psp_clearing:cardco:USD", "credits_posted"), 66);
  EXPECT_EQ(balance("psp_fees:cardco:USD", "debits_posted"), 66);
  EXPECT_EQ(balance("fees:USD", "credits_posted"), 32);

  const auto ops = stack_->sim_operations("cardco");
  ASSERT_EQ(ops.size(), 1u);
  const json::object& op = ops.at(attempt);
  EXPECT_EQ(op.at("status").as_string(), "captured");
  EXPECT_EQ(op.at("captured_amount").as_int64(), 1250);
  EXPECT_EQ(op.at("fee").as_int64(), 66);
  expect_invariants_ok();
}

// ---- (2) Card payment, manual capture; cancel voids -------------------------------------------

TEST_F(PaymentsE2E, ManualCaptureHoldsThenPostsOnlyTheCapturedAmount) {
  const std::string m = stack_->create_merchant();
  const std::string merchant = "merchant:" + m + ":USD";
  const std::string id =
      create_payment(m, 1000, R"(, "payment_method": "tok_visa", "capture_method": "manual")");
  const JsonResponse authorized = confirm(id);
  ASSERT_EQ(authorized.status, 200u) << authorized.text;
  EXPECT_EQ(str(authorized.body, "status"), "requires_capture");
  EXPECT_EQ(num(authorized.body, "amount_authorized"), 1000);
  EXPECT_EQ(num(authorized.body, "amount_captured"), 0);
  const std::string attempt = str(authorized.body.at("attempts").at(0), "id");

  // The hold: pending on both sides, nothing posted.
  expect_transfer(id + ".hold", "psp_clearing:cardco:USD", merchant, 1000);
  EXPECT_EQ(pending_state(id + ".hold"), "pending");
  EXPECT_EQ(balance(merchant, "credits_pending"), 1000);
  EXPECT_EQ(balance(merchant, "credits_posted"), 0);
  EXPECT_EQ(balance("psp_clearing:cardco:USD", "debits_pending"), 1000);
  auto ops = stack_->sim_operations("cardco");
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops.at(attempt).at("status").as_string(), "authorized");
  EXPECT_EQ(ops.at(attempt).at("captured_amount").as_int64(), 0);

  // More than authorized: refused, nothing changes.
  const JsonResponse too_much =
      stack_->post("/v1/payments/" + id + "/capture", R"({"amount": 1001})", new_key());
  EXPECT_EQ(too_much.status, 400u) << too_much.text;
  EXPECT_EQ(str(too_much.body.at("error"), "code"), "amount_too_large");
  EXPECT_EQ(str(too_much.body.at("error"), "param"), "amount");

  const JsonResponse captured =
      stack_->post("/v1/payments/" + id + "/capture", R"({"amount": 600})", new_key());
  ASSERT_EQ(captured.status, 200u) << captured.text;
  EXPECT_EQ(str(captured.body, "status"), "succeeded");
  EXPECT_EQ(num(captured.body, "amount_captured"), 600);
  EXPECT_EQ(num(captured.body, "psp_fee"), cardco_fee(600));  // 47

  EXPECT_EQ(pending_state(id + ".hold"), "posted");
  EXPECT_EQ(num(stack_->get("/v1/transfers/" + id + ".capture").body, "amount"), 600);
  expect_transfer(id + ".fee", merchant, "fees:USD", merchant_card_fee(600));  // 26
  expect_transfer(id + ".psp_fee", "psp_fees:cardco:USD", "psp_clearing:cardco:USD", 47);
  EXPECT_EQ(balance(merchant, "credits_pending"), 0);  // the other 400 is released
  EXPECT_EQ(balance(merchant, "credits_posted"), 600);
  EXPECT_EQ(balance(merchant, "debits_posted"), 26);
  EXPECT_EQ(balance("psp_clearing:cardco:USD", "debits_pending"), 0);
  EXPECT_EQ(balance("psp_clearing:cardco:USD", "debits_posted"), 600);
  EXPECT_EQ(balance("psp_clearing:cardco:USD", "credits_posted"), 47);

  ops = stack_->sim_operations("cardco");
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops.at(attempt).at("status").as_string(), "captured");
  EXPECT_EQ(ops.at(attempt).at("captured_amount").as_int64(), 600);
  EXPECT_EQ(ops.at(attempt).at("fee").as_int64(), 47);
  expect_invariants_ok();
}

TEST_F(PaymentsE2E, CancelOfAnAuthorizationVoidsTheHoldAtKeelAndAtThePsp) {
  const std::string m = stack_->create_merchant();
  const std::string merchant = "merchant:" + m + ":USD";
  const std::string id =
      create_payment(m, 700, R"(, "payment_method": "tok_visa", "capture_method": "manual")");
  const JsonResponse authorized = confirm(id);
  ASSERT_EQ(str(authorized.body, "status"), "requires_capture") << authorized.text;
  EXPECT_EQ(balance(merchant, "credits_pending"), 700);
  const std::string attempt = str(authorized.body.at("attempts").at(0), "id");

  const JsonResponse canceled = stack_->post("/v1/payments/" + id + "/cancel", "{}", new_key());
  ASSERT_EQ(canceled.status, 200u) << canceled.text;
  EXPECT_EQ(str(canceled.body, "status"), "canceled");
  EXPECT_EQ(num(canceled.body, "amount_captured"), 0);
  EXPECT_EQ(pending_state(id + ".hold"), "voided");
  EXPECT_EQ(stack_->get("/v1/transfers/" + id + ".void").status, 200u);
  expect_no_transfer(id + ".capture");
  expect_no_transfer(id + ".fee");
  EXPECT_EQ(balance(merchant, "credits_pending"), 0);
  EXPECT_EQ(balance(merchant, "credits_posted"), 0);
  EXPECT_EQ(balance("psp_clearing:cardco:USD", "debits_pending"), 0);
  EXPECT_EQ(balance("psp_clearing:cardco:USD", "debits_posted"), 0);

  const auto ops = stack_->sim_operations("cardco");
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops.at(attempt).at("status").as_string(), "voided");
  EXPECT_EQ(ops.at(attempt).at("captured_amount").as_int64(), 0);

  // A canceled payment cannot be captured.
  const JsonResponse late = stack_->post("/v1/payments/" + id + "/capture", "{}", new_key());
  EXPECT_EQ(late.status, 409u) << late.text;
  expect_invariants_ok();
}

// ---- (3) Top-up -------------------------------------------------------------------------------

TEST_F(PaymentsE2E, TopUpCreditsTheWalletOnlyAfterThePspApprovesWithThePspFee) {
  const std::string c = stack_->create_customer();
  // The PSP answers `pending` and approves 1.5 s later: the wallet must stay empty until then.
  ASSERT_TRUE(stack_->set_sim_faults(
      "cardco", R"({"async_rate": 1.0, "async_delay_ms": {"min": 1500, "max": 1500}})"));
  JsonResponse done;
  std::thread client([&] {
    done = stack_->post_unshared(
        "/v1/topups",
        R"({"customer": ")" + c +
            R"(", "amount": 5000, "currency": "USD", "source": "tok_visa", "source_type": "card_token"})",
        new_key());
  });
  // Wait until the PSP holds the top-up as pending, then look at keel's side.
  bool seen_pending = false;
  for (int i = 0; i < 200 && !seen_pending; ++i) {
    for (const auto& [ref, op] : stack_->sim_operations("cardco")) {
      seen_pending = seen_pending || op.at("status").as_string() == "pending";
    }
    if (seen_pending) {
      const auto w = wallet(c);
      EXPECT_TRUE(w[0] <= 0 && w[1] <= 0) << "the wallet was credited before the PSP approved";
      EXPECT_LE(balance("wallet:" + c + ":USD", "credits_posted"), 0);
      EXPECT_LE(balance("wallet:" + c + ":USD", "credits_pending"), 0);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  client.join();
  EXPECT_TRUE(seen_pending);
  ASSERT_EQ(done.status, 200u) << done.text;
  EXPECT_EQ(str(done.body, "object"), "topup");
  EXPECT_EQ(str(done.body, "status"), "succeeded");
  const std::string tu = str(done.body, "id");
  const int64_t fee = cardco_fee(5000);  // 175
  EXPECT_EQ(num(done.body, "fee"), fee);

  EXPECT_EQ(wallet(c), (std::array<int64_t, 3>{5000, 0, 0}));
  expect_transfer(tu + ".topup", "psp_clearing:cardco:USD", "wallet:" + c + ":USD", 5000);
  expect_transfer(tu + ".psp_fee", "psp_fees:cardco:USD", "psp_clearing:cardco:USD", fee);
  EXPECT_EQ(balance("psp_clearing:cardco:USD", "debits_posted"), 5000);
  EXPECT_EQ(balance("psp_clearing:cardco:USD", "credits_posted"), fee);
  EXPECT_EQ(balance("psp_fees:cardco:USD", "debits_posted"), fee);

  const auto ops = stack_->sim_operations("cardco");
  ASSERT_EQ(ops.size(), 1u);
  const json::object& op = ops.at(str(done.body.at("attempts").at(0), "id"));
  EXPECT_EQ(op.at("type").as_string(), "topup");
  EXPECT_EQ(op.at("status").as_string(), "paid");
  EXPECT_EQ(op.at("amount").as_int64(), 5000);
  EXPECT_EQ(op.at("fee").as_int64(), fee);
  expect_invariants_ok();
}

TEST_F(PaymentsE2E, DeclinedTopUpCreditsNothing) {
  const std::string c = stack_->create_customer();
  ASSERT_TRUE(stack_->set_sim_faults("cardco", R"({"decline_rate": 1.0})"));
  const JsonResponse r = topup(c, 5000);
  ASSERT_EQ(r.status, 200u) << r.text;
  EXPECT_EQ(str(r.body, "status"), "failed");
  expect_no_transfer(str(r.body, "id") + ".topup");
  EXPECT_EQ(balance("wallet:" + c + ":USD", "credits_posted"), -1);  // never even opened
  EXPECT_EQ(stack_->sim_operations("cardco").begin()->second.at("status").as_string(), "failed");
}

// ---- (4) Wallet payment -----------------------------------------------------------------------

TEST_F(PaymentsE2E, WalletPaymentMovesMoneyAtOnceAndFailsWithoutFundsMovingNothing) {
  const std::string m = stack_->create_merchant();
  const std::string c = stack_->create_customer();
  ASSERT_EQ(str(topup(c, 5000).body, "status"), "succeeded");
  const std::string merchant = "merchant:" + m + ":USD";

  const std::string id =
      create_payment(m, 1200, R"(, "source": "wallet", "customer": ")" + c + "\"");
  const JsonResponse paid = confirm(id);
  ASSERT_EQ(paid.status, 200u) << paid.text;
  EXPECT_EQ(str(paid.body, "status"), "succeeded");
  EXPECT_EQ(str(paid.body, "channel"), "wallet");
  EXPECT_EQ(num(paid.body, "amount_captured"), 1200);
  EXPECT_TRUE(paid.body.at("attempts").as_array().empty());
  EXPECT_EQ(wallet(c), (std::array<int64_t, 3>{3800, 0, 0}));
  expect_transfer(id + ".charge", "wallet:" + c + ":USD", merchant, 1200);
  expect_transfer(id + ".fee", merchant, "fees:USD", merchant_wallet_fee(1200));  // 6
  EXPECT_EQ(balance(merchant, "credits_posted"), 1200);
  EXPECT_EQ(balance(merchant, "debits_posted"), 6);

  // More than the wallet holds: the payment fails and nothing moves.
  const std::string big =
      create_payment(m, 3801, R"(, "source": "wallet", "customer": ")" + c + "\"");
  const JsonResponse refused = confirm(big);
  ASSERT_EQ(refused.status, 200u) << refused.text;
  EXPECT_EQ(str(refused.body, "status"), "failed");
  EXPECT_EQ(str(refused.body, "error_code"), "insufficient_funds");
  EXPECT_EQ(num(refused.body, "amount_captured"), 0);
  expect_no_transfer(big + ".charge");
  expect_no_transfer(big + ".fee");
  EXPECT_EQ(wallet(c), (std::array<int64_t, 3>{3800, 0, 0}));
  EXPECT_EQ(balance(merchant, "credits_posted"), 1200);
  EXPECT_EQ(balance(merchant, "debits_posted"), 6);
  // No PSP took part in either payment: the simulator only saw the top-up.
  EXPECT_EQ(stack_->sim_operations("cardco").size(), 1u);
  expect_invariants_ok();
}

// ---- (5) Wallet-to-wallet transfer ------------------------------------------------------------

TEST_F(PaymentsE2E, WalletTransferMovesOnceAndRefusesAnOverdraftMovingNothing) {
  const std::string a = stack_->create_customer();
  const std::string b = stack_->create_customer();
  ASSERT_EQ(str(topup(a, 3000).body, "status"), "succeeded");
  const auto send = [&](int64_t amount) {
    return stack_->post("/v1/wallet_transfers",
                        R"({"from": ")" + a + R"(", "to": ")" + b + R"(", "amount": )" +
                            std::to_string(amount) + R"(, "currency": "USD"})",
                        new_key());
  };
  const JsonResponse ok = send(1000);
  ASSERT_EQ(ok.status, 200u) << ok.text;
  EXPECT_EQ(str(ok.body, "object"), "wallet_transfer");
  EXPECT_EQ(str(ok.body, "status"), "succeeded");
  const std::string wt = str(ok.body, "id");
  expect_transfer(wt + ".transfer", "wallet:" + a + ":USD", "wallet:" + b + ":USD", 1000);
  EXPECT_EQ(wallet(a), (std::array<int64_t, 3>{2000, 0, 0}));
  EXPECT_EQ(wallet(b), (std::array<int64_t, 3>{1000, 0, 0}));
  const JsonResponse got = stack_->get("/v1/wallet_transfers/" + wt);
  EXPECT_EQ(got.status, 200u);
  EXPECT_EQ(str(got.body, "status"), "succeeded");

  const JsonResponse over = send(2001);
  ASSERT_EQ(over.status, 200u) << over.text;
  EXPECT_EQ(str(over.body, "status"), "failed");
  EXPECT_EQ(str(over.body, "error_code"), "insufficient_funds");
  expect_no_transfer(str(over.body, "id") + ".transfer");
  EXPECT_EQ(wallet(a), (std::array<int64_t, 3>{2000, 0, 0}));
  EXPECT_EQ(wallet(b), (std::array<int64_t, 3>{1000, 0, 0}));
  expect_invariants_ok();
}

// ---- (6) Refunds ------------------------------------------------------------------------------

TEST_F(PaymentsE2E, PartialRefundsNeverExceedTheCapturedAmountAndMatchThePspsBooks) {
  const std::string m = stack_->create_merchant();
  const std::string merchant = "merchant:" + m + ":USD";
  const std::string id = create_payment(m, 3000);
  const JsonResponse paid = confirm(id);
  ASSERT_EQ(str(paid.body, "status"), "succeeded") << paid.text;
  const std::string attempt = str(paid.body.at("attempts").at(0), "id");

  const auto refund = [&](std::string_view amount_field) {
    return stack_->post(
        "/v1/refunds", R"({"payment": ")" + id + "\"" + std::string(amount_field) + "}", new_key());
  };
  std::vector<std::string> refunds;
  for (const int64_t amount : {1000, 1500}) {
    const JsonResponse r = refund(R"(, "amount": )" + std::to_string(amount));
    ASSERT_EQ(r.status, 200u) << r.text;
    EXPECT_EQ(str(r.body, "object"), "refund");
    EXPECT_EQ(str(r.body, "status"), "succeeded");
    EXPECT_EQ(num(r.body, "amount"), amount);
    refunds.push_back(str(r.body, "id"));
    expect_transfer(refunds.back() + ".refund", merchant, "psp_clearing:cardco:USD", amount);
  }
  // 1000 + 1500 + 600 > 3000: refused, nothing moves.
  const JsonResponse over = refund(R"(, "amount": 600)");
  EXPECT_EQ(over.status, 400u) << over.text;
  EXPECT_EQ(str(over.body.at("error"), "code"), "amount_too_large");
  EXPECT_EQ(str(over.body.at("error"), "param"), "amount");
  // The rest (no amount: all that remains) is 500.
  const JsonResponse rest = refund("");
  ASSERT_EQ(rest.status, 200u) << rest.text;
  EXPECT_EQ(num(rest.body, "amount"), 500);
  EXPECT_EQ(str(rest.body, "status"), "succeeded");
  refunds.push_back(str(rest.body, "id"));
  // Nothing left to refund.
  EXPECT_EQ(refund("").status, 400u);
  EXPECT_EQ(refund(R"(, "amount": 1)").status, 400u);

  const JsonResponse p = stack_->get("/v1/payments/" + id);
  EXPECT_EQ(num(p.body, "amount_refunded"), 3000);
  EXPECT_EQ(p.body.at("refunds").as_array().size(), 3u);
  // Merchant: +3000 captured, -fee, -3000 refunded. psp_clearing: +3000, -psp fee, -3000.
  EXPECT_EQ(balance(merchant, "credits_posted"), 3000);
  EXPECT_EQ(balance(merchant, "debits_posted"), merchant_card_fee(3000) + 3000);
  EXPECT_EQ(balance("psp_clearing:cardco:USD", "debits_posted"), 3000);
  EXPECT_EQ(balance("psp_clearing:cardco:USD", "credits_posted"), cardco_fee(3000) + 3000);

  // The simulator's books: the authorization shows 3000 refunded, and one refund operation per
  // keel refund, each for the same amount, referring to the authorization.
  const auto ops = stack_->sim_operations("cardco");
  ASSERT_EQ(ops.size(), 4u);
  EXPECT_EQ(ops.at(attempt).at("refunded_amount").as_int64(), 3000);
  int64_t refunded_at_psp = 0;
  for (const std::string& re : refunds) {
    const JsonResponse got = stack_->get("/v1/refunds/" + re);
    ASSERT_EQ(got.status, 200u);
    const std::string ref = str(got.body.at("attempts").at(0), "id");
    ASSERT_TRUE(ops.contains(ref)) << ref;
    EXPECT_EQ(ops.at(ref).at("status").as_string(), "refunded");
    EXPECT_EQ(ops.at(ref).at("payment_reference").as_string(), attempt);
    EXPECT_EQ(ops.at(ref).at("amount").as_int64(), num(got.body, "amount"));
    refunded_at_psp += ops.at(ref).at("amount").as_int64();
  }
  EXPECT_EQ(refunded_at_psp, 3000);
  expect_invariants_ok();
}

TEST_F(PaymentsE2E, RefundOfAWalletPaymentIsImmediate) {
  const std::string m = stack_->create_merchant();
  const std::string c = stack_->create_customer();
  ASSERT_EQ(str(topup(c, 2000).body, "status"), "succeeded");
  const std::string id =
      create_payment(m, 1000, R"(, "source": "wallet", "customer": ")" + c + "\"");
  ASSERT_EQ(str(confirm(id).body, "status"), "succeeded");
  EXPECT_EQ(wallet(c)[0], 1000);

  const JsonResponse r =
      stack_->post("/v1/refunds", R"({"payment": ")" + id + R"(", "amount": 400})", new_key());
  ASSERT_EQ(r.status, 200u) << r.text;
  EXPECT_EQ(str(r.body, "status"), "succeeded");
  EXPECT_TRUE(r.body.at("attempts").as_array().empty());
  expect_transfer(str(r.body, "id") + ".refund", "merchant:" + m + ":USD", "wallet:" + c + ":USD",
                  400);
  EXPECT_EQ(wallet(c), (std::array<int64_t, 3>{1400, 0, 0}));
  EXPECT_EQ(num(stack_->get("/v1/payments/" + id).body, "amount_refunded"), 400);
  EXPECT_EQ(stack_->sim_operations("cardco").size(), 1u);  // the top-up only
  expect_invariants_ok();
}

// ---- (7) Payout -------------------------------------------------------------------------------

TEST_F(PaymentsE2E, PayoutHoldsTheFundsUntilThePspPaysAndRefusesAnOverdraftWithoutAHold) {
  const std::string c = stack_->create_customer();
  ASSERT_EQ(str(topup(c, 5000).body, "status"), "succeeded");
  const int64_t topup_fee = cardco_fee(5000);
  // The PSP takes 1.5 s to answer: long enough to see the hold.
  ASSERT_TRUE(stack_->set_sim_faults("cardco", R"({"latency_ms": {"min": 1500, "max": 1500}})"));
  JsonResponse done;
  std::thread client([&] {
    done = stack_->post_unshared(
        "/v1/payouts",
        R"({"customer": ")" + c +
            R"(", "amount": 2000, "currency": "USD", "destination": "DE89370400440532013000", "destination_type": "iban"})",
        new_key());
  });
  bool held = false;
  for (int i = 0; i < 100 && !held; ++i) {
    held = wallet(c) == std::array<int64_t, 3>{3000, 0, 2000};
    if (!held) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(held) << "the payout's hold never showed";
  EXPECT_EQ(balance("wallet:" + c + ":USD", "debits_pending"), 2000);
  client.join();
  ASSERT_EQ(done.status, 200u) << done.text;
  EXPECT_EQ(str(done.body, "object"), "payout");
  EXPECT_EQ(str(done.body, "status"), "succeeded");
  const std::string po = str(done.body, "id");
  const int64_t fee = cardco_fee(2000);  // 88
  EXPECT_EQ(num(done.body, "fee"), fee);
  EXPECT_EQ(wallet(c), (std::array<int64_t, 3>{3000, 0, 0}));
  expect_transfer(po + ".hold", "wallet:" + c + ":USD", "psp_clearing:cardco:USD", 2000);
  EXPECT_EQ(pending_state(po + ".hold"), "posted");
  EXPECT_EQ(num(stack_->get("/v1/transfers/" + po + ".post").body, "amount"), 2000);
  expect_transfer(po + ".psp_fee", "psp_fees:cardco:USD", "psp_clearing:cardco:USD", fee);
  EXPECT_EQ(balance("wallet:" + c + ":USD", "debits_posted"), 2000);
  EXPECT_EQ(balance("psp_clearing:cardco:USD", "credits_posted"), topup_fee + 2000 + fee);
  EXPECT_EQ(balance("psp_fees:cardco:USD", "debits_posted"), topup_fee + fee);
  const auto ops = stack_->sim_operations("cardco");
  const json::object& op = ops.at(str(done.body.at("attempts").at(0), "id"));
  EXPECT_EQ(op.at("type").as_string(), "payout");
  EXPECT_EQ(op.at("status").as_string(), "paid");
  EXPECT_EQ(op.at("amount").as_int64(), 2000);
  EXPECT_EQ(op.at("fee").as_int64(), fee);

  // More than available: failed at once, no hold, no PSP call.
  ASSERT_TRUE(stack_->set_sim_faults("cardco", "{}"));
  const JsonResponse over = stack_->post(
      "/v1/payouts",
      R"({"customer": ")" + c +
          R"(", "amount": 3001, "currency": "USD", "destination": "acct_1", "destination_type": "account"})",
      new_key());
  ASSERT_EQ(over.status, 200u) << over.text;
  EXPECT_EQ(str(over.body, "status"), "failed");
  EXPECT_EQ(str(over.body, "error_code"), "insufficient_funds");
  EXPECT_TRUE(over.body.at("attempts").as_array().empty());
  expect_no_transfer(str(over.body, "id") + ".hold");
  EXPECT_EQ(wallet(c), (std::array<int64_t, 3>{3000, 0, 0}));
  EXPECT_EQ(stack_->sim_operations("cardco").size(), 2u);  // the top-up and the first payout
  expect_invariants_ok();
}

// ---- (8) Merchant webhooks ----------------------------------------------------------------------

TEST_F(PaymentsE2E, MerchantReceivesASignedPaymentSucceededWebhookAlsoListedByEvents) {
  WebhookReceiver receiver("whsec_merchant_1");
  ASSERT_NE(receiver.port(), 0);
  const std::string m = stack_->create_merchant(receiver.url(), "whsec_merchant_1");
  ASSERT_FALSE(m.empty());
  const std::string id = create_payment(m, 1250);
  ASSERT_EQ(str(confirm(id).body, "status"), "succeeded");

  // Wait for the payment.succeeded delivery.
  const auto find_succeeded = [&]() -> std::optional<WebhookReceiver::Received> {
    for (const auto& e : receiver.events()) {
      const json::value body = json::parse(e.body);
      if (str(body, "type") == "payment.succeeded") return e;
    }
    return std::nullopt;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!find_succeeded() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto got = find_succeeded();
  ASSERT_TRUE(got.has_value()) << "no payment.succeeded webhook";
  EXPECT_EQ(receiver.bad_signatures(), 0u);
  const json::value body = json::parse(got->body);
  EXPECT_EQ(str(body, "id"), got->event_id);
  EXPECT_EQ(str(body.at("data"), "id"), id);
  EXPECT_EQ(str(body.at("data"), "status"), "succeeded");
  EXPECT_EQ(num(body.at("data"), "amount_captured"), 1250);

  // Polling shows the same event, with the same id, delivered.
  JsonResponse listed;
  bool delivered = false;
  for (int i = 0; i < 200 && !delivered; ++i) {
    listed = stack_->get("/v1/events?type=payment.succeeded&object_id=" + id);
    ASSERT_EQ(listed.status, 200u) << listed.text;
    ASSERT_EQ(listed.body.at("data").as_array().size(), 1u) << listed.text;
    delivered = str(listed.body.at("data").at(0).at("delivery"), "state") == "delivered";
    if (!delivered) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(delivered) << listed.text;
  const json::value& event = listed.body.at("data").at(0);
  EXPECT_EQ(str(event, "id"), got->event_id);
  EXPECT_EQ(str(event.at("data"), "id"), id);

  // Every event of the payment reached the endpoint exactly once after dedupe, with the ids
  // polling shows.
  const JsonResponse all = stack_->get("/v1/events?object_id=" + id + "&limit=100");
  std::set<std::string> listed_ids;
  for (const json::value& e : all.body.at("data").as_array()) listed_ids.insert(str(e, "id"));
  const auto wait_all = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (receiver.events().size() < listed_ids.size() &&
         std::chrono::steady_clock::now() < wait_all) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::set<std::string> received_ids;
  for (const auto& e : receiver.events()) received_ids.insert(e.event_id);
  EXPECT_EQ(received_ids, listed_ids);
}

// The SSRF guard (docs/security.md, "Merchant webhooks over https, and where they may go"):
// keeld's default refuses a merchant endpoint on loopback; the delivery fails without a
// connection, is retried like any failed try, and the log says why. (Every other stack in
// these tests allows 127.0.0.0/8 in [webhooks].)
TEST(MerchantWebhookGuard, AnEndpointOnLoopbackIsRefusedUnlessConfigAllowsIt) {
  TempDir scratch;
  PaymentsStackOptions o;
  o.webhooks_toml = "";  // the default guard: global addresses only
  o.keeld_log_file = scratch.path() / "keeld.log";
  std::unique_ptr<PaymentsStack> stack;
  ASSERT_TRUE(PaymentsStack::start(o, &stack).is_ok());
  WebhookReceiver receiver("whsec_guarded");
  const std::string m = stack->create_merchant(receiver.url(), "whsec_guarded");
  ASSERT_FALSE(m.empty());
  const JsonResponse created = stack->post(
      "/v1/payments",
      R"({"amount": 700, "currency": "USD", "payment_method": "tok_visa", "merchant": ")" + m +
          "\"}",
      new_key());
  ASSERT_EQ(created.status, 200u) << created.text;
  const std::string id = str(created.body, "id");
  ASSERT_EQ(str(stack->post("/v1/payments/" + id + "/confirm", "{}", new_key()).body, "status"),
            "succeeded");
  // The first try of each event is made at once: wait until one was recorded as failed.
  JsonResponse listed;
  bool tried = false;
  for (int i = 0; i < 500 && !tried; ++i) {
    listed = stack->get("/v1/events?object_id=" + id + "&limit=100");
    ASSERT_EQ(listed.status, 200u) << listed.text;
    for (const json::value& e : listed.body.at("data").as_array()) {
      const json::value& delivery = e.at("delivery");
      if (num(delivery, "attempts") >= 1) {
        tried = true;
        EXPECT_EQ(str(delivery, "state"), "pending") << listed.text;  // retried later
      }
    }
    if (!tried) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(tried) << listed.text;
  EXPECT_TRUE(receiver.events().empty());
  stack.reset();  // flushes and closes keeld's log
  std::ifstream log(o.keeld_log_file);
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("to merchant " + m +
                      " not delivered: destination refused: 127.0.0.1 is "
                      "loopback"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find(receiver.url()), std::string::npos);  // the URL stays out of the log
}

// A rotation (docs/webhooks.md "Rotating the signing secret"): during the overlap every delivery
// carries a signature under each secret, so the merchant verifies with either while it switches;
// a rotation without overlap stops the old secret at once.
TEST_F(PaymentsE2E, ARotatedWebhookSecretSignsBesideTheOldOneUntilTheOverlapEnds) {
  WebhookReceiver receiver("whsec_before");
  ASSERT_NE(receiver.port(), 0);
  const std::string m = stack_->create_merchant(receiver.url(), "whsec_before");
  const std::string rotate = "/v1/merchants/" + m + "/webhook_secret/rotate";
  // Bad requests change nothing.
  EXPECT_EQ(stack_->post(rotate, R"({"overlap_seconds": 604801})").status, 400u);
  EXPECT_EQ(stack_->post(rotate, R"({"overlap_seconds": -1})").status, 400u);
  EXPECT_EQ(stack_->post(rotate, R"({"overlap": 60})").status, 400u);
  EXPECT_EQ(stack_->post(rotate, R"({"secret": "whsec_before"})").status, 409u);
  const JsonResponse none =
      stack_->post("/v1/merchants/" + stack_->create_merchant() + "/webhook_secret/rotate", "{}");
  EXPECT_EQ(none.status, 409u);
  EXPECT_EQ(str(none.body.at("error"), "code"), "webhook_endpoint_missing");
  EXPECT_EQ(stack_->post("/v1/merchants/mch_nobody/webhook_secret/rotate", "{}").status, 404u);

  const JsonResponse rotated =
      stack_->post(rotate, "{}");  // keel makes the secret; a day's overlap
  ASSERT_EQ(rotated.status, 200u) << rotated.text;
  const std::string fresh = str(rotated.body, "webhook_secret");
  EXPECT_TRUE(fresh.starts_with("whsec_") && fresh.size() == 6 + 64) << fresh;
  EXPECT_FALSE(str(rotated.body, "previous_secret_expires_at").empty());

  // Every event of the merchant so far, received (so none is still in flight at a switch).
  const auto wait_for_events = [&]() {
    const size_t n =
        stack_->get("/v1/events?merchant=" + m + "&limit=100").body.at("data").as_array().size();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (receiver.events().size() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return receiver.events();
  };
  ASSERT_EQ(str(confirm(create_payment(m, 1250)).body, "status"), "succeeded");
  std::vector<WebhookReceiver::Received> got = wait_for_events();
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(receiver.bad_signatures(), 0u);  // still verifying with the old secret: accepted
  const auto now_s = [] { return static_cast<int64_t>(std::time(nullptr)); };
  const WebhookReceiver::Received during = got.back();
  EXPECT_EQ(std::count(during.signature.begin(), during.signature.end(), 'v'), 2)
      << during.signature;
  EXPECT_EQ(connectors::verify_webhook(fresh, during.signature, during.body, now_s()),
            connectors::SignatureCheck::ok);

  // The merchant switched; the next rotation has no overlap: one signature, the old secret is
  // refused.
  receiver.set_secret(fresh);
  const JsonResponse at_once =
      stack_->post(rotate, R"({"secret": "whsec_after_2", "overlap_seconds": 0})");
  ASSERT_EQ(at_once.status, 200u) << at_once.text;
  EXPECT_TRUE(at_once.body.at("previous_secret_expires_at").is_null());
  receiver.set_secret("whsec_after_2");
  const size_t before = got.size();
  ASSERT_EQ(str(confirm(create_payment(m, 990)).body, "status"), "succeeded");
  got = wait_for_events();
  ASSERT_GT(got.size(), before);
  const WebhookReceiver::Received after = got.back();
  EXPECT_EQ(std::count(after.signature.begin(), after.signature.end(), 'v'), 1) << after.signature;
  EXPECT_EQ(connectors::verify_webhook(fresh, after.signature, after.body, now_s()),
            connectors::SignatureCheck::mismatch);
  EXPECT_EQ(receiver.bad_signatures(), 0u);
}

// ---- (9) Idempotency ----------------------------------------------------------------------------

TEST_F(PaymentsE2E, ConcurrentConfirmsWithOneKeyAuthorizeOnceAndReplayAfterRestart) {
  const std::string m = stack_->create_merchant();
  const std::string id = create_payment(m, 1250);
  // Slow the PSP so that the first confirm is still in flight when the others arrive.
  ASSERT_TRUE(stack_->set_sim_faults("cardco", R"({"latency_ms": {"min": 400, "max": 400}})"));
  const std::string key = new_key();
  const std::string path = "/v1/payments/" + id + "/confirm";
  constexpr int kThreads = 8;
  std::vector<JsonResponse> answers(kThreads);
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      ++ready;
      while (ready.load() < kThreads) std::this_thread::yield();
      answers[i] = stack_->post_unshared(path, "{}", key);
    });
  }
  for (auto& t : threads) t.join();

  int fresh = 0;
  int replayed = 0;
  int in_use = 0;
  std::string first;
  for (const JsonResponse& a : answers) {
    if (a.status == 200 && !a.replayed) {
      ++fresh;
      first = a.text;
      EXPECT_EQ(str(a.body, "status"), "succeeded");
    } else if (a.status == 200) {
      ++replayed;
    } else if (a.status == 409) {
      ++in_use;
      EXPECT_EQ(str(a.body.at("error"), "code"), "idempotency_key_in_use");
    } else {
      ADD_FAILURE() << "unexpected answer " << a.status << " " << a.text;
    }
  }
  EXPECT_EQ(fresh, 1);
  EXPECT_EQ(fresh + replayed + in_use, kThreads);
  EXPECT_GE(in_use, 1) << "no request arrived while the first was in flight";
  for (const JsonResponse& a : answers) {
    if (a.status == 200 && a.replayed) {
      EXPECT_EQ(a.text, first);
    }
  }
  // Exactly one authorization reached the PSP.
  const auto ops = stack_->sim_operations("cardco");
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops.begin()->second.at("status").as_string(), "captured");
  EXPECT_EQ(balance("merchant:" + m + ":USD", "credits_posted"), 1250);

  // The same key with another body.
  const JsonResponse other = stack_->post(path, R"({"channel": "bankco"})", key);
  EXPECT_EQ(other.status, 422u) << other.text;
  EXPECT_EQ(str(other.body.at("error"), "code"), "idempotency_key_reused");

  // The key survives a restart: the stored answer comes back byte for byte.
  ASSERT_TRUE(stack_->set_sim_faults("cardco", "{}"));
  ASSERT_TRUE(stack_->restart_keeld(false).is_ok());
  const JsonResponse after = stack_->post(path, "{}", key);
  EXPECT_EQ(after.status, 200u) << after.text;
  EXPECT_TRUE(after.replayed);
  EXPECT_EQ(after.text, first);
  EXPECT_EQ(stack_->sim_operations("cardco").size(), 1u);
  EXPECT_EQ(balance("merchant:" + m + ":USD", "credits_posted"), 1250);
}

// ---- (10) Bad input -----------------------------------------------------------------------------

TEST_F(PaymentsE2E, BadInputGetsA400NamingTheParameterAndChangesNothing) {
  const std::string m = stack_->create_merchant();
  const std::string c = stack_->create_customer();
  const std::string pay = create_payment(m, 1000);
  const JsonResponse before = stack_->admin_status();
  ASSERT_EQ(before.status, 200u);
  const std::string hash = str(before.body, "state_hash");
  ASSERT_FALSE(hash.empty());

  struct Case {
    std::string path;
    std::string body;
    std::string param;  // "" for a body that is not JSON at all
  };
  const std::string pm = R"(, "payment_method": "tok_visa")";
  const std::string mm = R"("merchant": ")" + m + "\"";
  const std::vector<Case> cases = {
      {"/v1/payments", R"({"amount": -5, "currency": "USD", )" + mm + pm + "}", "amount"},
      {"/v1/payments", R"({"amount": "12", "currency": "USD", )" + mm + pm + "}", "amount"},
      {"/v1/payments", R"({"amount": 1.5, "currency": "USD", )" + mm + pm + "}", "amount"},
      {"/v1/payments", R"({"currency": "USD", )" + mm + pm + "}", "amount"},
      {"/v1/payments", R"({"amount": 10, )" + mm + pm + "}", "currency"},
      {"/v1/payments", R"({"amount": 10, "currency": "XYZ", )" + mm + pm + "}", "currency"},
      {"/v1/payments", R"({"amount": 10, "currency": "USD")" + pm + "}", "merchant"},
      {"/v1/payments", R"({"amount": 10, "currency": "USD", "merchant": "mch_nobody")" + pm + "}",
       "merchant"},
      {"/v1/payments", R"({"amount": 10, "currency": "USD", )" + mm + "}", "payment_method"},
      {"/v1/payments",
       R"({"amount": 10, "currency": "USD", )" + mm + R"(, "payment_method": "tok visa!"})",
       "payment_method"},
      {"/v1/payments", R"({"amount": 10, "currency": "USD", )" + mm + pm + R"(, "tip": 5})", "tip"},
      {"/v1/payments",
       R"({"amount": 10, "currency": "USD", )" + mm + pm + R"(, "capture_method": "later"})",
       "capture_method"},
      {"/v1/payments", R"({"amount": 10, "currency": "USD", )" + mm + R"(, "source": "wallet"})",
       "customer"},
      {"/v1/payments", R"({"amount": 10, "currency": "USD", )" + mm + R"(, "source": "gold"})",
       "source"},
      {"/v1/payments", R"({"amount": 10,)", ""},
      {"/v1/payments/" + pay + "/confirm", R"({"channel": "nope"})", "channel"},
      {"/v1/payments/" + pay + "/confirm", R"({"channel": 7})", "channel"},
      {"/v1/payments/" + pay + "/confirm", R"({"chanel": "cardco"})", "chanel"},
      {"/v1/payments/" + pay + "/capture", R"({"amount": 0})", "amount"},
      {"/v1/payments/" + pay + "/capture", R"({"amount": -1})", "amount"},
      {"/v1/payments/" + pay + "/cancel", R"({"reason": "x"})", "reason"},
      {"/v1/refunds", R"({"amount": 10})", "payment"},
      {"/v1/refunds", R"({"payment": ")" + pay + R"(", "amount": "all"})", "amount"},
      {"/v1/refunds", R"({"payment": "pay_nothing", "amount": 10})", "payment"},
      {"/v1/topups", R"({"amount": 10, "currency": "USD", "source": "tok_visa"})", "customer"},
      {"/v1/topups", R"({"customer": ")" + c + R"(", "amount": 10, "currency": "USD"})", "source"},
      {"/v1/topups",
       R"({"customer": ")" + c +
           R"(", "amount": 10, "currency": "USD", "source": "tok_visa", "source_type": "cash"})",
       "source_type"},
      {"/v1/topups",
       R"({"customer": ")" + c + R"(", "amount": 0, "currency": "USD", "source": "tok_visa"})",
       "amount"},
      {"/v1/topups",
       R"({"customer": "cus_nobody", "amount": 10, "currency": "USD", "source": "tok_visa"})",
       "customer"},
      {"/v1/payouts", R"({"customer": ")" + c + R"(", "amount": 10, "currency": "USD"})",
       "destination"},
      {"/v1/payouts",
       R"({"customer": ")" + c +
           R"(", "amount": 10, "currency": "USD", "destination": "x", "destination_type": "btc"})",
       "destination_type"},
      {"/v1/payouts",
       R"({"customer": ")" + c +
           R"(", "amount": 10, "currency": "ZZZ", "destination": "DE89370400440532013000"})",
       "currency"},
      {"/v1/wallet_transfers", R"({"from": ")" + c + R"(", "amount": 10, "currency": "USD"})",
       "to"},
      {"/v1/wallet_transfers",
       R"({"from": ")" + c + R"(", "to": ")" + c + R"(", "amount": 10, "currency": "USD"})", "to"},
      {"/v1/wallet_transfers",
       R"({"from": ")" + c + R"(", "to": "cus_nobody", "amount": 10, "currency": "USD"})", "to"},
      {"/v1/merchants", R"({"name": "x", "webhook_url": "http://127.0.0.1:1/h"})",
       "webhook_secret"},
      {"/v1/merchants", R"({"name": "x", "webhook_url": "ftp://h", "webhook_secret": "s"})",
       "webhook_url"},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(tc.path + " " + tc.body);
    const JsonResponse r = stack_->post(tc.path, tc.body, new_key());
    EXPECT_EQ(r.status, 400u) << r.text;
    ASSERT_TRUE(r.body.is_object()) << r.text;
    const json::value& e = r.body.at("error");
    EXPECT_FALSE(str(e, "code").empty()) << r.text;
    EXPECT_FALSE(str(e, "message").empty()) << r.text;
    if (tc.param.empty()) {
      EXPECT_TRUE(e.at("param").is_null()) << r.text;
    } else {
      EXPECT_EQ(str(e, "param"), tc.param) << r.text;
    }
  }
  const JsonResponse after = stack_->admin_status();
  EXPECT_EQ(str(after.body, "state_hash"), hash);
  EXPECT_TRUE(after.body.at("invariants_ok").as_bool());
  EXPECT_TRUE(stack_->sim_operations("cardco").empty());
  EXPECT_EQ(str(stack_->get("/v1/payments/" + pay).body, "status"), "requires_confirmation");
}

TEST_F(PaymentsE2E, MoneyMovingPostWithoutIdempotencyKeyIsRefusedAndChangesNothing) {
  const std::string merchant = stack_->create_merchant();
  const JsonResponse r =
      stack_->post("/v1/payments", R"({"amount": 1250, "currency": "USD", "merchant": ")" +
                                       merchant + R"(", "payment_method": "tok_visa"})");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(r.body.at("error").at("code").as_string(), "idempotency_key_missing");
  const JsonResponse list = stack_->get("/v1/payments");
  ASSERT_EQ(list.status, 200u);
  EXPECT_TRUE(list.body.at("data").as_array().empty());
}

}  // namespace
}  // namespace keel::testing

namespace keel::testing {
namespace {

// A stack whose keel-psp-sim serves HTTPS (its CA trusted by keeld, or another CA when
// `foreign_ca`), a merchant, and a confirmed card payment of `amount`: {merchant, the confirm's
// answer, the payment id}.
struct TlsPayment {
  std::unique_ptr<PaymentsStack> stack;
  std::string merchant;
  std::string id;
  JsonResponse confirmed;
};
TlsPayment pay_over_tls(bool foreign_ca, int64_t amount) {
  TlsPayment t;
  PaymentsStackOptions o;
  o.psp_tls = true;
  o.psp_tls_foreign_ca = foreign_ca;
  EXPECT_TRUE(PaymentsStack::start(o, &t.stack).is_ok());
  if (!t.stack) return t;
  t.merchant = t.stack->create_merchant();
  const JsonResponse created = t.stack->post("/v1/payments",
                                             R"({"amount": )" + std::to_string(amount) +
                                                 R"(, "currency": "USD", "merchant": ")" +
                                                 t.merchant + R"(", "payment_method": "tok_visa"})",
                                             "tls-create");
  EXPECT_EQ(created.status, 200u) << created.text;
  if (created.status != 200u) return t;
  t.id = std::string(created.body.at("id").as_string());
  t.confirmed = t.stack->post("/v1/payments/" + t.id + "/confirm", "{}", "tls-confirm");
  EXPECT_EQ(t.confirmed.status, 200u) << t.confirmed.text;
  return t;
}

// keeld calls the PSP over HTTPS (docs/security.md "TLS"): keel-psp-sim serves TLS with a
// certificate from a CA the stack made, which keeld's channels trust (ca_file).
TEST(PaymentsOverTls, ACardPaymentAndItsRefundReachThePspOverHttps) {
  TlsPayment t = pay_over_tls(false, 1250);
  ASSERT_TRUE(t.stack && !t.id.empty());
  EXPECT_EQ(t.confirmed.body.at("status").as_string(), "succeeded");
  const JsonResponse refund = t.stack->post(
      "/v1/refunds", R"({"payment": ")" + t.id + R"(", "amount": 250})", "tls-refund");
  ASSERT_EQ(refund.status, 200u) << refund.text;
  EXPECT_EQ(refund.body.at("status").as_string(), "succeeded");
  const JsonResponse books = t.stack->sim_request("GET", "/admin/psps/cardco/operations");
  ASSERT_EQ(books.status, 200u) << books.text;  // the simulator's admin API over TLS too
  EXPECT_EQ(books.body.at("operations").as_array().size(), 2u);  // the payment and the refund
}

// A PSP whose certificate keel does not trust is never sent a payment: the handshake fails
// before any byte of the request, so the attempt is known not sent and the payment fails
// safely; the PSP's books stay empty.
TEST(PaymentsOverTls, APspCertificateFromAnUntrustedCaIsRefusedBeforeAnythingIsSent) {
  TlsPayment t = pay_over_tls(true, 990);
  ASSERT_TRUE(t.stack && !t.id.empty());
  EXPECT_EQ(t.confirmed.body.at("status").as_string(), "failed") << t.confirmed.text;
  const JsonResponse books = t.stack->sim_request("GET", "/admin/psps/cardco/operations");
  ASSERT_EQ(books.status, 200u) << books.text;
  EXPECT_TRUE(books.body.at("operations").as_array().empty());
  // Nothing was posted to the merchant (its account is not even created: -1).
  EXPECT_LE(t.stack->account_balance("merchant:" + t.merchant + ":USD", "credits_posted"), 0);
}

}  // namespace
}  // namespace keel::testing

// --- A clock tests can move (issue 12, section 0) --------------------------------------------

namespace keel::testing {
namespace {

constexpr int64_t kWeekS = 7 * 24 * 3600;

int64_t clock_offset_s(PaymentsStack& stack) {
  const JsonResponse c = stack.get("/v1/admin/clock");
  EXPECT_EQ(c.status, 200u) << c.text;
  return c.body.is_object() ? c.body.at("offset_seconds").as_int64() : -1;
}

// keeld and keel-psp-sim on movable clocks move a week forward in one request each: an
// authorization left uncaptured expires by its deadline (the payment canceled, its hold voided),
// a payment never confirmed is canceled, keeld stamps the change a week on, the simulator stamps
// its operations a week on, a PSP webhook signed on the simulator's moved clock verifies on
// keeld's (the resolver is too slow here to settle the payment instead), and keeld's clock is
// still ahead after a restart. Bad moves answer 400 and move nothing.
TEST(MovableClock, KeeldAndTheSimulatorMoveAWeekForwardInASecond) {
  PaymentsStackOptions o;
  o.movable_clock = true;
  o.resolve_initial_ms = 60'000;
  o.resolve_max_ms = 60'000;
  std::unique_ptr<PaymentsStack> stack;
  ASSERT_TRUE(PaymentsStack::start(o, &stack).is_ok());
  const std::string m = stack->create_merchant();
  const auto create = [&](std::string_view extra) {
    const JsonResponse r =
        stack->post("/v1/payments",
                    R"({"amount": 1250, "currency": "USD", "merchant": ")" + m +
                        R"(", "payment_method": "tok_visa")" + std::string(extra) + "}",
                    new_key());
    EXPECT_EQ(r.status, 200u) << r.text;
    return str(r.body, "id");
  };
  const std::string held = create(R"(, "capture_method": "manual")");
  stack->post("/v1/payments/" + held + "/confirm", "{}", new_key());
  ASSERT_EQ(str(stack->wait_settled("/v1/payments/" + held).body, "status"), "requires_capture");
  const std::string unconfirmed = create("");
  const Timestamp created =
      *parse_rfc3339(str(stack->get("/v1/payments/" + held).body, "created_at"));
  EXPECT_EQ(clock_offset_s(*stack), 0);

  ASSERT_TRUE(stack->advance_clocks(kWeekS + 3600));
  EXPECT_EQ(clock_offset_s(*stack), kWeekS + 3600);
  JsonResponse p;
  for (int i = 0; i < 100; ++i) {
    p = stack->get("/v1/payments/" + held);
    if (str(p.body, "status") == "canceled") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(str(p.body, "status"), "canceled") << p.text;
  const json::value& last = p.body.at("timeline").as_array().back();
  EXPECT_EQ(str(last, "cause"), "deadline");
  EXPECT_GE(*parse_rfc3339(str(last, "at")), created + kWeekS * kNanosPerSecond);
  EXPECT_EQ(stack->get("/v1/transfers/" + held + ".void").status, 200u) << "the hold voided";
  EXPECT_EQ(str(stack->get("/v1/payments/" + unconfirmed).body, "status"), "canceled");

  // The simulator's clock moved too, and its webhooks (signed on it) verify at keeld.
  ASSERT_TRUE(stack->set_sim_faults("cardco", R"({"async_rate": 1.0})"));
  const std::string later = create("");
  stack->post("/v1/payments/" + later + "/confirm", "{}", new_key());
  const JsonResponse settled = stack->wait_settled("/v1/payments/" + later, 10'000);
  EXPECT_EQ(str(settled.body, "status"), "succeeded") << settled.text;
  const auto ops = stack->sim_operations("cardco");
  const std::string attempt = str(settled.body.at("attempts").at(0), "id");
  ASSERT_TRUE(ops.contains(attempt));
  EXPECT_GE(*parse_rfc3339(str(json::value(ops.at(attempt)), "created_at")),
            wall_clock_now() + kWeekS * kNanosPerSecond);

  // Bad moves: 400, nothing moved.
  for (const char* bad :
       {"", "{}", R"({"seconds": 0})", R"({"seconds": -5})", R"({"seconds": 1.5})",
        R"({"seconds": "60"})", R"({"seconds": 31622401})", R"({"seconds": 60, "days": 1})"}) {
    const JsonResponse r = stack->post("/v1/admin/clock/advance", bad);
    EXPECT_EQ(r.status, 400u) << bad << ": " << r.text;
    EXPECT_EQ(stack->sim_request("POST", "/admin/clock/advance", bad).status, 400u) << bad;
  }
  EXPECT_EQ(clock_offset_s(*stack), kWeekS + 3600);
  // A restart keeps keeld's clock where it was (DATA/clock-offset).
  ASSERT_TRUE(stack->restart_keeld(false).is_ok());
  EXPECT_EQ(clock_offset_s(*stack), kWeekS + 3600);
}

// Never on by default: without the setting neither clock route exists.
TEST(MovableClock, IsOffUnlessTheSettingIsOn) {
  std::unique_ptr<PaymentsStack> stack;
  ASSERT_TRUE(PaymentsStack::start({}, &stack).is_ok());
  const JsonResponse keeld = stack->post("/v1/admin/clock/advance", R"({"seconds": 60})");
  EXPECT_EQ(keeld.status, 404u) << keeld.text;
  EXPECT_EQ(stack->get("/v1/admin/clock").status, 404u);
  EXPECT_EQ(stack->sim_request("POST", "/admin/clock/advance", R"({"seconds": 60})").status, 404u);
}

}  // namespace
}  // namespace keel::testing
