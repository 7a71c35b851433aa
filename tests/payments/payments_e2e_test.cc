// End-to-end payment flows through keeld and keel-psp-sim: states, postings, idempotency.

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "testing/payments_stack.h"

namespace keel::testing {
namespace {
namespace json = boost::json;

class PaymentsE2E : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(PaymentsStack::start({}, &stack_).is_ok()); }

  int64_t balance(const std::string& account, std::string_view field) {
    const JsonResponse r = stack_->get("/v1/accounts/" + account);
    if (r.status != 200) return -1;
    return r.body.at(field).as_int64();
  }

  std::unique_ptr<PaymentsStack> stack_;
};

TEST_F(PaymentsE2E, CardPaymentWithAutomaticCaptureCreditsTheMerchantOnce) {
  const std::string merchant = stack_->create_merchant();
  ASSERT_FALSE(merchant.empty());
  const JsonResponse created = stack_->post(
      "/v1/payments",
      R"({"amount": 1250, "currency": "USD", "merchant": ")" + merchant +
          R"(", "payment_method": "tok_visa"})",
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

TEST_F(PaymentsE2E, MoneyMovingPostWithoutIdempotencyKeyIsRefusedAndChangesNothing) {
  const std::string merchant = stack_->create_merchant();
  const JsonResponse r = stack_->post(
      "/v1/payments",
      R"({"amount": 1250, "currency": "USD", "merchant": ")" + merchant +
          R"(", "payment_method": "tok_visa"})");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(r.body.at("error").at("code").as_string(), "idempotency_key_missing");
  const JsonResponse list = stack_->get("/v1/payments");
  ASSERT_EQ(list.status, 200u);
  EXPECT_TRUE(list.body.at("data").as_array().empty());
}

}  // namespace
}  // namespace keel::testing
