#include "psp_sim/simulator.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "psp_sim/codec.h"

namespace keel::psp_sim {
namespace {

namespace json = boost::json;

constexpr Timestamp kNow = 1'795'435'200 * kNanosPerSecond;  // 2026-11-23T09:20:00Z

SimConfig make_config(bool webhooks) {
  PspConfig p;
  p.name = "acme";
  p.api_key = "sk";
  p.currencies = {*Currency::from_code("USD")};
  p.fee_fixed = 10;
  if (webhooks) {
    p.webhook = parse_webhook_url("http://127.0.0.1:1/hooks");
    p.webhook_secret = "whsec";
  }
  SimConfig c;
  c.psps.push_back(p);
  return c;
}

struct Call {
  Admission admission;
  Processed processed;
};

Call call(Simulator& sim, std::string_view method, std::string_view target, std::string_view body,
          std::string_view auth = "Bearer sk") {
  const SimRequest r{method, target, auth, body};
  Call c;
  c.admission = sim.admit(r);
  if (c.admission.kind == Admission::Kind::process) {
    c.processed = sim.process(r, c.admission, kNow);
  } else {
    c.processed.reply = c.admission.reply;
  }
  return c;
}

json::object body_of(const Call& c) { return json::parse(c.processed.reply.body).as_object(); }

constexpr std::string_view kAuth =
    R"({"reference":"att_1","amount":1250,"currency":"USD","card_token":"tok","capture":false})";

TEST(Simulator, RoutesAndErrors) {
  Simulator sim(make_config(false), 1);
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/authorizations", kAuth, "").processed.reply.status,
            401u);
  EXPECT_EQ(
      call(sim, "POST", "/psp/acme/v1/authorizations", kAuth, "Bearer x").processed.reply.status,
      401u);
  EXPECT_EQ(call(sim, "POST", "/psp/nope/v1/authorizations", kAuth).processed.reply.status, 404u);
  // Only "this PSP never received that reference" is `not_found`: a status query to a wrong PSP
  // name or path must not read as "never received" (keel would then think a retry is safe).
  EXPECT_EQ(body_of(call(sim, "GET", "/psp/nope/v1/operations/att_1", "")).at("error").at("code"),
            "psp_not_found");
  EXPECT_EQ(body_of(call(sim, "GET", "/psp/acme/v1/nothing", "")).at("error").at("code"),
            "route_not_found");
  const Call never_sent = call(sim, "GET", "/psp/acme/v1/operations/att_1", "");
  EXPECT_EQ(never_sent.processed.reply.status, 404u);
  EXPECT_EQ(body_of(never_sent).at("error").at("code"), "not_found");
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/authorizations", "{").processed.reply.status, 400u);
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/authorizations",
                 R"({"reference":"a b","amount":1,"currency":"USD","card_token":"t"})")
                .processed.reply.status,
            400u);
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/authorizations",
                 R"({"reference":"a","amount":0,"currency":"USD","card_token":"t"})")
                .processed.reply.status,
            400u);

  const Call a = call(sim, "POST", "/psp/acme/v1/authorizations", kAuth);
  ASSERT_EQ(a.processed.reply.status, 200u);
  EXPECT_EQ(body_of(a).at("status"), "authorized");
  EXPECT_EQ(body_of(a).at("decline_code"), nullptr);
  const std::string other = R"({"reference":"att_1","amount":1,"currency":"USD","card_token":"t"})";
  const Call conflict = call(sim, "POST", "/psp/acme/v1/authorizations", other);
  EXPECT_EQ(conflict.processed.reply.status, 409u);
  EXPECT_EQ(body_of(conflict).at("error").at("code"), "reference_reused");
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/authorizations/att_1/capture", R"({"amount":2000})")
                .processed.reply.status,
            422u);
  const Call cap = call(sim, "POST", "/psp/acme/v1/authorizations/att_1/capture", "");
  ASSERT_EQ(cap.processed.reply.status, 200u);
  EXPECT_EQ(body_of(cap).at("captured_amount"), 1250);
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/authorizations/att_1/void", "").processed.reply.status,
            409u);
  const Call refund = call(sim, "POST", "/psp/acme/v1/refunds",
                           R"({"reference":"rfa_1","payment_reference":"att_1","amount":250})");
  ASSERT_EQ(refund.processed.reply.status, 200u);
  EXPECT_EQ(body_of(refund).at("type"), "refund");
  const Call csv = call(sim, "GET", "/psp/acme/v1/settlements/2026-11-23.csv", "");
  EXPECT_EQ(csv.processed.reply.content_type, "text/csv");
  EXPECT_NE(csv.processed.reply.body.find(",att_1,capture,1250,USD,10\n"), std::string::npos);
  EXPECT_NE(csv.processed.reply.body.find(",rfa_1,refund,250,USD,0\n"), std::string::npos);
  EXPECT_EQ(call(sim, "GET", "/psp/acme/v1/settlements/2026-13-01.csv", "").processed.reply.status,
            400u);
}

TEST(Simulator, PayoutsTopupsBodies) {
  Simulator sim(make_config(false), 1);
  EXPECT_EQ(
      call(sim, "POST", "/psp/acme/v1/payouts",
           R"({"reference":"poa_1","amount":5,"currency":"USD","destination":{"iban":"DE89"}})")
          .processed.reply.status,
      200u);
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/payouts",
                 R"({"reference":"poa_2","amount":5,"currency":"USD","destination":{}})")
                .processed.reply.status,
            400u);
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/topups",
                 R"({"reference":"top_1","amount":5,"currency":"USD","bank_account":"NL91"})")
                .processed.reply.status,
            200u);
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/topups",
                 R"({"reference":"top_2","amount":5,"currency":"EUR","bank_account":"NL91"})")
                .processed.reply.status,
            400u);
}

TEST(Simulator, FaultsOverAdminAndRetries) {
  Simulator sim(make_config(true), 1);
  const Call put = call(sim, "PUT", "/admin/psps/acme/faults", R"({"error_5xx_rate": 0.5})");
  ASSERT_EQ(put.processed.reply.status, 200u);
  EXPECT_EQ(call(sim, "PUT", "/admin/psps/acme/faults", R"({"error_5xx_rate": 5})")
                .processed.reply.status,
            400u);
  // Every retry of a reference is a new draw: some attempt gets through, and the 503s changed
  // nothing.
  int unavailable = 0;
  Call c;
  for (int i = 0; i < 64; ++i) {
    c = call(sim, "POST", "/psp/acme/v1/authorizations", kAuth);
    if (c.processed.reply.status != 503) break;
    ++unavailable;
    EXPECT_EQ(c.admission.kind, Admission::Kind::answer);
  }
  EXPECT_EQ(c.processed.reply.status, 200u);
  EXPECT_LT(unavailable, 64);
  ASSERT_EQ(c.processed.effects.webhooks.size(), 1u);
  EXPECT_NE(c.processed.effects.webhooks[0].body.find("\"authorized\""), std::string::npos);

  ASSERT_EQ(call(sim, "PUT", "/admin/psps/acme/faults",
                 R"({"refuse_rate": 1, "webhook_duplicate_rate": 1})")
                .processed.reply.status,
            200u);
  EXPECT_EQ(call(sim, "GET", "/psp/acme/v1/operations/att_1", "").admission.kind,
            Admission::Kind::refuse);
  const Call psps = call(sim, "GET", "/admin/psps", "");
  EXPECT_EQ(body_of(psps).at("psps").at(0).at("faults").at("refuse_rate"), 1.0);
  const Call ops = call(sim, "GET", "/admin/psps/acme/operations", "");
  EXPECT_EQ(body_of(ops).at("operations").as_array().size(), 1u);
  EXPECT_EQ(body_of(ops).at("totals").at(0).at("status"), "authorized");
  EXPECT_EQ(call(sim, "GET", "/admin/healthz", "").processed.reply.status, 200u);
}

TEST(Simulator, AsyncAndAfterProcessingFaults) {
  Simulator sim(make_config(true), 1);
  ASSERT_EQ(call(sim, "PUT", "/admin/psps/acme/faults",
                 R"({"async_rate": 1, "async_delay_ms": {"min": 7, "max": 7},
                     "response_lost_rate": 1, "webhook_loss_rate": 1})")
                .processed.reply.status,
            200u);
  const Call a = call(sim, "POST", "/psp/acme/v1/authorizations", kAuth);
  EXPECT_EQ(a.processed.delivery, Delivery::response_lost);
  EXPECT_TRUE(a.processed.effects.webhooks.empty());  // lost
  ASSERT_EQ(a.processed.effects.settles.size(), 1u);
  EXPECT_EQ(a.processed.effects.settles[0].delay_ms, 7);
  EXPECT_EQ(body_of(a).at("status"), "pending");
  ASSERT_EQ(call(sim, "PUT", "/admin/psps/acme/faults", "{}").processed.reply.status, 200u);
  const Effects e = sim.settle(0, "att_1", kNow + 1);
  ASSERT_EQ(e.webhooks.size(), 1u);
  EXPECT_NE(e.webhooks[0].body.find("\"authorized\""), std::string::npos);
  EXPECT_EQ(body_of(call(sim, "GET", "/psp/acme/v1/operations/att_1", "")).at("status"),
            "authorized");
}

TEST(Simulator, SameSeedSameOutcomes) {
  const auto run = [](uint64_t seed) {
    Simulator sim(make_config(false), seed);
    EXPECT_EQ(call(sim, "PUT", "/admin/psps/acme/faults", R"({"decline_rate": 0.5})")
                  .processed.reply.status,
              200u);
    std::string statuses;
    for (int i = 0; i < 40; ++i) {
      const std::string body = R"({"reference":"att_)" + std::to_string(i) +
                               R"(","amount":5,"currency":"USD","card_token":"t"})";
      statuses += body_of(call(sim, "POST", "/psp/acme/v1/authorizations", body))
                      .at("status")
                      .as_string()
                      .c_str();
      statuses += ',';
    }
    return statuses;
  };
  EXPECT_EQ(run(5), run(5));
  EXPECT_NE(run(5), run(6));
}

}  // namespace
}  // namespace keel::psp_sim
