#include "psp_sim/config.h"

#include <gtest/gtest.h>

namespace keel::psp_sim {
namespace {

constexpr std::string_view kGood = R"(
[psps.acme]
api_key = "sk_acme"
webhook_url = "http://127.0.0.1:8080/v1/webhooks/acme"
webhook_secret = "whsec_acme"
fee_fixed = 30
fee_bps = 290
currencies = ["USD", "EUR"]

[psps.acme.faults]
latency_ms = { min = 5, max = 50 }
decline_rate = 0.05
decline_codes = [ { code = "insufficient_funds", type = "hard" } ]
webhook_reorder = true

[psps.bank]
api_key = "sk_bank"
webhook_url = ""
currencies = ["EUR"]
)";

TEST(Config, Parses) {
  SimConfig c;
  const Status s = parse_config(kGood, &c);
  ASSERT_TRUE(s.is_ok()) << s.message();
  ASSERT_EQ(c.psps.size(), 2u);
  const PspConfig& acme = c.psps[0];
  EXPECT_EQ(acme.name, "acme");
  EXPECT_EQ(acme.api_key, "sk_acme");
  ASSERT_TRUE(acme.webhook);
  EXPECT_EQ(acme.webhook->host, "127.0.0.1");
  EXPECT_EQ(acme.webhook->port, 8080);
  EXPECT_EQ(acme.webhook->target, "/v1/webhooks/acme");
  EXPECT_EQ(acme.fee_fixed, 30);
  EXPECT_EQ(acme.fee_bps, 290);
  EXPECT_EQ(acme.currencies.size(), 2u);
  EXPECT_EQ(acme.faults.latency_ms, (RangeMs{5, 50}));
  EXPECT_EQ(acme.faults.decline_codes.at(0).code, "insufficient_funds");
  EXPECT_TRUE(acme.faults.webhook_reorder);
  EXPECT_EQ(c.psps[1].name, "bank");
  EXPECT_FALSE(c.psps[1].webhook);
  EXPECT_EQ(c.psps[1].faults, FaultConfig{});
}

// Each bad config fails with a message naming what is wrong.
TEST(Config, Errors) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"[psps.acme\n", "line 1"},
      {"", "psps"},
      {"other = 1\n[psps.a]\napi_key=\"k\"\ncurrencies=[\"USD\"]", "other: unknown key"},
      {"[psps.a]\ncurrencies=[\"USD\"]", "psps.a.api_key"},
      {"[psps.a]\napi_key=\"k\"", "psps.a.currencies"},
      {"[psps.a]\napi_key=\"k\"\ncurrencies=[\"XXX\"]", "psps.a.currencies"},
      {"[psps.a]\napi_key=\"k\"\ncurrencies=[\"USD\"]\nfee_bps=10001", "psps.a.fee_bps"},
      {"[psps.a]\napi_key=\"k\"\ncurrencies=[\"USD\"]\nfee_fixed=-1", "psps.a.fee_fixed"},
      {"[psps.a]\napi_key=\"k\"\ncurrencies=[\"USD\"]\ncolour=1", "psps.a.colour: unknown key"},
      {"[psps.a]\napi_key=\"k\"\ncurrencies=[\"USD\"]\nwebhook_url=\"https://x/\"\n"
       "webhook_secret=\"s\"",
       "psps.a.webhook_url"},
      {"[psps.a]\napi_key=\"k\"\ncurrencies=[\"USD\"]\nwebhook_url=\"http://x:1/\"",
       "psps.a.webhook_secret"},
      {"[psps.A]\napi_key=\"k\"\ncurrencies=[\"USD\"]", "psps.A"},
      {"[psps.a]\napi_key=\"k\"\ncurrencies=[\"USD\"]\n[psps.a.faults]\nrefuse_rate=2",
       "psps.a.faults: refuse_rate"},
      {"[psps.a]\napi_key=\"k\"\ncurrencies=[\"USD\"]\nlisten=\"127.0.0.1\"", "psps.a.listen"},
      {"[psps.a]\napi_key=\"k\"\ncurrencies=[\"USD\"]\nlisten=\"127.0.0.1:70000\"",
       "psps.a.listen"},
      {"[psps.a]\napi_key=\"k\"\ncurrencies=[\"USD\"]\nlisten=9090", "psps.a.listen"},
      {"[psps.a]\napi_key=\"k\"\ncurrencies=[\"USD\"]\nschedule=1", "psps.a.schedule"},
      {"[psps.a]\napi_key=\"k\"\ncurrencies=[\"USD\"]\n[[psps.a.schedule.phases]]\nat_ms=5",
       "psps.a.schedule: phases[0].at_ms"},
      {"[psps.a]\napi_key=\"k\"\ncurrencies=[\"USD\"]\n[psps.a.schedule]\nrepeat_ms=5",
       "psps.a.schedule: phases: required"},
      {"[psps.a]\napi_key=\"k\"\ncurrencies=[\"USD\"]\n[[psps.a.schedule.phases]]\nat_ms=0\n"
       "accepting=false",
       "psps.a.schedule: phases[0].accepting: false needs a listener"},
  };
  for (const auto& [text, expected] : cases) {
    SimConfig c;
    const Status s = parse_config(text, &c);
    ASSERT_FALSE(s.is_ok()) << text;
    EXPECT_NE(s.message().find(expected), std::string::npos) << s.message();
  }
  SimConfig c;
  const Status missing = load_config("/nonexistent/psp.toml", &c);
  EXPECT_NE(missing.message().find("/nonexistent/psp.toml"), std::string::npos);
}

TEST(Config, OwnListenerAndSchedule) {
  constexpr std::string_view kText = R"(
[psps.acme]
api_key = "sk_acme"
currencies = ["USD"]
listen = "127.0.0.1:0"

[psps.acme.schedule]
repeat_ms = 20000

[[psps.acme.schedule.phases]]
at_ms = 0

[[psps.acme.schedule.phases]]
at_ms = 10000
accepting = false
[psps.acme.schedule.phases.faults]
latency_ms = { min = 5000, max = 5000 }

[psps.bank]
api_key = "sk_bank"
currencies = ["EUR"]
listen = "[::1]:9091"
)";
  SimConfig c;
  const Status s = parse_config(kText, &c);
  ASSERT_TRUE(s.is_ok()) << s.message();
  const PspConfig& acme = c.psps[0];
  ASSERT_TRUE(acme.listen);
  EXPECT_EQ(acme.listen->host, "127.0.0.1");
  EXPECT_EQ(acme.listen->port, 0);
  ASSERT_TRUE(acme.schedule);
  EXPECT_EQ(acme.schedule->repeat_ms, 20'000);
  ASSERT_EQ(acme.schedule->phases.size(), 2u);
  EXPECT_TRUE(acme.schedule->phases[0].accepting);
  EXPECT_FALSE(acme.schedule->phases[1].accepting);
  EXPECT_EQ(acme.schedule->phases[1].faults.latency_ms, (RangeMs{5000, 5000}));
  ASSERT_TRUE(c.psps[1].listen);
  EXPECT_EQ(c.psps[1].listen->host, "::1");
  EXPECT_EQ(c.psps[1].listen->port, 9091);
  EXPECT_FALSE(c.psps[1].schedule);

  // Without the keys: the shared port only, no schedule (as before).
  SimConfig plain;
  ASSERT_TRUE(parse_config(kGood, &plain).is_ok());
  EXPECT_FALSE(plain.psps[0].listen);
  EXPECT_FALSE(plain.psps[0].schedule);
}

TEST(Config, WebhookUrl) {
  EXPECT_EQ(parse_webhook_url("http://h")->port, 80);
  EXPECT_EQ(parse_webhook_url("http://h")->target, "/");
  EXPECT_EQ(parse_webhook_url("http://h:9/a?b=c")->target, "/a?b=c");
  EXPECT_FALSE(parse_webhook_url("http://u:p@h/"));
  EXPECT_FALSE(parse_webhook_url("http://h:0/"));
  EXPECT_FALSE(parse_webhook_url("h:80"));
}

}  // namespace
}  // namespace keel::psp_sim
