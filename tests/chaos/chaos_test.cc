// The chaos suite, short forms (issue 9): every scenario of src/testing/chaos.h on a fresh
// keeld and keel-psp-sim (three PSPs and p1's canary, routing on), a 6 s fault (9 s of
// flapping) after 2 s and 4 s of healthy traffic, open-loop load at 25 payments/s.
// `keel-bench chaos` runs the same scenarios at full size.
//
// Each test asserts safety: no payment charged twice, the simulator's books equal keel's (per
// PSP, and the ledger's clearing accounts), the ledger's invariants, and every payment ended
// succeeded or failed or, its outcome unknown, in review: none left processing. And, by counts
// (never times), that the mechanism worked: payments succeeded on a healthy PSP during the
// fault, the primary's breaker opened (a journaled transition; not for soft declines, which are
// no PSP failure), PSP authorizations stayed within one failover per payment per failing PSP,
// and a failing canary was rolled back (a journaled control). Rates and times are printed,
// never asserted.

#include <gtest/gtest.h>

#include <cstdio>

#include "testing/chaos.h"

namespace keel::testing::chaos {
namespace {

ChaosOptions short_form() {
  ChaosOptions o;
  o.rate_per_s = 25;
  o.lead_ms = 2'000;
  o.fault_ms = 6'000;
  o.tail_ms = 4'000;
  // A down period longer than half the breaker's window holds healthy calls of the lead.
  o.flap_fault_ms = 9'000;
  o.flap_ms = 3'000;
  o.processing_deadline_s = 20;
  o.seed = 9;
  return o;
}

ChaosResult run(std::string_view name) {
  const Scenario* s = find_scenario(name);
  EXPECT_NE(s, nullptr) << name;
  if (s == nullptr) return {};
  const ChaosResult r = run_scenario(*s, short_form());
  std::printf("%s", summary(r).c_str());
  std::fflush(stdout);
  return r;
}

// Safety: what must hold whatever the fault.
void expect_safe(const ChaosResult& r) {
  EXPECT_EQ(r.harness_errors, 0) << summary(r);
  EXPECT_EQ(r.double_charges, 0);
  EXPECT_EQ(r.orphan_charges, 0);
  EXPECT_TRUE(r.books_equal) << summary(r);
  EXPECT_TRUE(r.invariants_ok);
  EXPECT_EQ(r.processing_past_deadline, 0);
  EXPECT_EQ(r.processing, 0) << "payments left processing after settling";
  EXPECT_EQ(r.not_confirmed, 0);
  EXPECT_EQ(r.other, 0);
  EXPECT_EQ(r.succeeded + r.failed + r.in_review, r.offered);
  EXPECT_GT(r.offered, 0);
  EXPECT_GE(r.status_queries, 0) << "keeld's /metrics names no status-query count";
}

// The mechanism, by counts: traffic moved to healthy PSPs during the fault, the primary's
// breaker opened (when the scenario must open it) and each payment failed over at most once
// per failing PSP (healthy PSPs approve everything, and a failover goes to an untried channel
// before any retry), so PSP authorizations stayed within (1 + failing PSPs) per payment.
void expect_mechanism(const ChaosResult& r, std::string_view name) {
  const Scenario* s = find_scenario(name);
  ASSERT_NE(s, nullptr);
  EXPECT_GT(r.offered_during_fault, 0);
  EXPECT_GT(r.succeeded_elsewhere_during_fault, 0) << summary(r);
  if (s->breaker_expected) {
    EXPECT_GE(r.breaker_opened, 1) << summary(r);
  }
  const auto per_payment_max = static_cast<int64_t>(1 + s->failing_psps);
  EXPECT_LE(r.attempts_max, per_payment_max) << summary(r);
  EXPECT_LE(r.authorization_attempts, per_payment_max * r.offered) << summary(r);
}

TEST(Chaos, PrimaryRefusesConnections) {
  const ChaosResult r = run("primary_refuses");
  expect_safe(r);
  expect_mechanism(r, "primary_refuses");
}

TEST(Chaos, PrimaryBlackHolesEveryRequest) {
  const ChaosResult r = run("primary_black_hole");
  expect_safe(r);
  expect_mechanism(r, "primary_black_hole");
}

TEST(Chaos, PrimaryAnswersAfterFiveSeconds) {
  const ChaosResult r = run("primary_slow");
  expect_safe(r);
  expect_mechanism(r, "primary_slow");
}

TEST(Chaos, PrimaryFlaps) {
  const ChaosResult r = run("primary_flaps");
  expect_safe(r);
  expect_mechanism(r, "primary_flaps");
}

TEST(Chaos, TwoOfThreePspsDown) {
  const ChaosResult r = run("two_down");
  expect_safe(r);
  expect_mechanism(r, "two_down");
}

// Soft declines are the card's answer at that PSP, not the PSP failing: no breaker is
// expected, but failover must recover most of them on another PSP.
TEST(Chaos, PrimarySoftDeclinesHalf) {
  const ChaosResult r = run("soft_declines");
  expect_safe(r);
  expect_mechanism(r, "soft_declines");
  EXPECT_GT(r.soft_declined_on_primary, 0);
  EXPECT_GE(r.soft_declined_then_succeeded * 10, r.soft_declined_on_primary * 9) << summary(r);
}

// A canary given 40 % of p1's payments answers 503 to 30 % of them: the router rolls it back (a
// journaled canary_rollback control) once it has its minimum of answers, after which it gets
// nothing, and each payment it failed fails over and succeeds elsewhere.
TEST(Chaos, CanaryWithErrorsIsRolledBack) {
  const ChaosResult r = run("canary_errors");
  expect_safe(r);
  expect_mechanism(r, "canary_errors");
  EXPECT_EQ(r.canary_share_set_pct, kCanarySharePct);
  EXPECT_GE(r.canary_attempts, kCanaryMinSamples) << summary(r);  // it had traffic first
  EXPECT_GT(r.canary_errors, 0) << summary(r);
  EXPECT_EQ(r.canary_errors_then_succeeded, r.canary_errors) << summary(r);
  EXPECT_EQ(r.canary_rollbacks, 1) << summary(r);
  EXPECT_EQ(r.canary_attempts_after_rollback, 0) << summary(r);
  EXPECT_EQ(r.canary_share_at_end_pct, 0) << summary(r);
}

}  // namespace
}  // namespace keel::testing::chaos
