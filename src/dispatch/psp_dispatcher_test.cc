#include "dispatch/psp_dispatcher.h"

#include <gtest/gtest.h>

namespace keel::dispatch {
namespace {

TEST(Resolver, JitterStaysWithinHalfToAllOfTheDelayAndReplaysFromItsSeed) {
  std::mt19937_64 a(42);
  std::mt19937_64 b(42);
  std::mt19937_64 other(43);
  bool differs = false;
  for (const int64_t ms :
       std::initializer_list<int64_t>{1, 2, 3, 1'000, 60'000, int64_t{1} << 40}) {
    for (int i = 0; i < 200; ++i) {
      const int64_t x = jittered_ms(ms, a);
      EXPECT_GE(x, ms / 2);
      EXPECT_LE(x, ms);
      EXPECT_EQ(jittered_ms(ms, b), x);  // the same seed, the same schedule
      differs = differs || jittered_ms(ms, other) != x;
    }
  }
  EXPECT_TRUE(differs);
}

TEST(Resolver, DelaysDoubleUpToTheirMaximumWithoutOverflow) {
  EXPECT_EQ(next_resolve_delay_ms(1'000, 60'000), 2'000);
  EXPECT_EQ(next_resolve_delay_ms(40'000, 60'000), 60'000);
  EXPECT_EQ(next_resolve_delay_ms(60'000, 60'000), 60'000);
  EXPECT_EQ(next_resolve_delay_ms(2, 5), 4);
  EXPECT_EQ(next_resolve_delay_ms(3, 5), 5);
  const int64_t big = int64_t{1} << 62;
  EXPECT_EQ(next_resolve_delay_ms(big, INT64_MAX), INT64_MAX);
}

TEST(Webhooks, AnOperationBecomesTheCommandThatReportsIt) {
  connectors::Operation op;
  op.reference = "pay_1_a1";
  op.psp_reference = "psp_9";
  op.status = connectors::OperationStatus::declined;
  op.decline_type = connectors::DeclineType::soft;
  op.decline_code = "do_not_honor";
  op.fee_minor = 3;
  const payments::cmd::OperationStatus c =
      operation_status_command("cardco", op, payments::ResultSource::webhook, "evt_1");
  EXPECT_EQ(c.channel, "cardco");
  EXPECT_EQ(c.reference, "pay_1_a1");
  EXPECT_EQ(c.state, payments::OperationState::declined_soft);
  EXPECT_EQ(c.result.psp_reference, "psp_9");
  EXPECT_EQ(c.result.error_code, "do_not_honor");
  EXPECT_EQ(c.result.fee, 3);
  EXPECT_EQ(c.source, payments::ResultSource::webhook);
  EXPECT_EQ(c.webhook_event, "evt_1");
  op.decline_type = connectors::DeclineType::hard;
  EXPECT_EQ(operation_state(op), payments::OperationState::declined_hard);
}

}  // namespace
}  // namespace keel::dispatch
