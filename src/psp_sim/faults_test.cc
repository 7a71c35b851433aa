#include "psp_sim/faults.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "connectors/webhook_signature.h"

namespace keel::psp_sim {
namespace {

namespace json = boost::json;

std::vector<bool> draws(const FaultDecider& d, double rate) {
  std::vector<bool> out;
  for (int i = 0; i < 200; ++i) out.push_back(d.happens(rate, "att_" + std::to_string(i), "x"));
  return out;
}

TEST(FaultDecider, SameSeedSameDecisions) {
  const FaultDecider a(42, "acme");
  const FaultDecider b(42, "acme");
  EXPECT_EQ(draws(a, 0.3), draws(b, 0.3));
  EXPECT_EQ(a.pick_ms({5, 50}, "att_1", "latency", 3), b.pick_ms({5, 50}, "att_1", "latency", 3));
  // Order of asking does not matter: no shared stream.
  const double first = a.unit("att_9", "decline");
  (void)a.unit("att_1", "decline");
  EXPECT_EQ(a.unit("att_9", "decline"), first);
}

TEST(FaultDecider, DifferentSeedPspDecisionOrAttemptDiffer) {
  const FaultDecider a(42, "acme");
  EXPECT_NE(draws(a, 0.5), draws(FaultDecider(43, "acme"), 0.5));
  EXPECT_NE(draws(a, 0.5), draws(FaultDecider(42, "bank"), 0.5));
  EXPECT_NE(a.hash("att_1", "decline"), a.hash("att_1", "async"));
  EXPECT_NE(a.hash("att_1", "error_5xx", 0), a.hash("att_1", "error_5xx", 1));
}

TEST(FaultDecider, RatesAndRanges) {
  const FaultDecider d(1, "acme");
  int hits = 0;
  for (int i = 0; i < 10'000; ++i) hits += d.happens(0.25, std::to_string(i), "x");
  EXPECT_GT(hits, 2'200);
  EXPECT_LT(hits, 2'800);
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(d.happens(0.0, std::to_string(i), "x"));
    EXPECT_TRUE(d.happens(1.0, std::to_string(i), "x"));
    const int64_t ms = d.pick_ms({5, 7}, std::to_string(i), "latency");
    EXPECT_GE(ms, 5);
    EXPECT_LE(ms, 7);
  }
  EXPECT_EQ(d.pick_ms({4, 4}, "a", "b"), 4);
}

TEST(FaultDecider, OperationDecisions) {
  const FaultDecider d(1, "acme");
  FaultConfig f;
  EXPECT_FALSE(d.operation_decisions(f, "att_1").decline);
  f.decline_rate = 1.0;
  f.decline_codes = {{"insufficient_funds", DeclineType::hard}, {"issuer_down", DeclineType::soft}};
  f.async_rate = 1.0;
  int hard = 0;
  for (int i = 0; i < 100; ++i) {
    const Decisions x = d.operation_decisions(f, "att_" + std::to_string(i));
    ASSERT_TRUE(x.decline);
    EXPECT_TRUE(x.async);
    hard += x.decline->type == DeclineType::hard;
  }
  EXPECT_GT(hard, 20);
  EXPECT_LT(hard, 80);
}

TEST(Faults, ParseAndRoundTrip) {
  FaultConfig f;
  const json::value v = json::parse(R"({"latency_ms": {"min": 5, "max": 50},
      "decline_rate": 0.05, "decline_codes": [{"code": "insufficient_funds", "type": "hard"}],
      "refuse_rate": 1, "webhook_reorder": true})");
  ASSERT_EQ(parse_faults(v, &f), "");
  EXPECT_EQ(f.latency_ms, (RangeMs{5, 50}));
  EXPECT_EQ(f.decline_rate, 0.05);
  EXPECT_EQ(f.refuse_rate, 1.0);
  EXPECT_TRUE(f.webhook_reorder);
  ASSERT_EQ(f.decline_codes.size(), 1u);
  FaultConfig back;
  ASSERT_EQ(parse_faults(faults_to_json(f), &back), "");
  EXPECT_EQ(back, f);
}

TEST(Faults, ParseErrors) {
  FaultConfig f;
  f.refuse_rate = 0.5;
  const auto err = [&](std::string_view text) { return parse_faults(json::parse(text), &f); };
  EXPECT_NE(err(R"({"decline_rate": 1.5})"), "");
  EXPECT_NE(err(R"({"decline_rate": "x"})"), "");
  EXPECT_NE(err(R"({"latency_ms": {"min": 9, "max": 5}})"), "");
  EXPECT_NE(err(R"({"latency_ms": {"min": 1, "max": 5, "avg": 3}})"), "");
  EXPECT_NE(err(R"({"decline_codes": [{"code": "x", "type": "medium"}]})"), "");
  EXPECT_NE(err(R"({"surprise_rate": 0.1})"), "");
  EXPECT_NE(err(R"([1])"), "");
  EXPECT_EQ(f.refuse_rate, 0.5);  // unchanged by failures
}

// The signature the simulator sends (src/connectors' sign_webhook) against a vector computed
// independently (Python hmac): t=1700000000, secret "whsec", body {"id":"evt_1"}.
TEST(Signature, KnownVector) {
  const std::string body = R"({"id":"evt_1"})";
  EXPECT_EQ(connectors::sign_webhook("whsec", 1'700'000'000, body),
            "t=1700000000,v1=e7e846cdb96220c3674ade89e534304fc91f6f15064facee1e7a7096f5f57f62");
  // RFC 4231, test case 2.
  EXPECT_EQ(connectors::hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

}  // namespace
}  // namespace keel::psp_sim
