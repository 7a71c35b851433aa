#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "routing/breaker.h"
#include "routing/channel.h"
#include "routing/decision.h"
#include "routing/router.h"

namespace keel::routing {
namespace {

constexpr Timestamp kT0 = 1'700'000'000 * kNanosPerSecond;
Timestamp at_ms(int64_t ms) { return kT0 + ms * kNanosPerMilli; }

Currency usd() { return *Currency::from_code("USD"); }
Currency eur() { return *Currency::from_code("EUR"); }

ChannelDef channel(std::string name) {
  ChannelDef d;
  d.psp = name;
  d.name = std::move(name);
  return d;
}

// --- channels ------------------------------------------------------------------------------

TEST(Channels, ValidationNamesTheField) {
  EXPECT_EQ(channel_problem(channel("cardco")), "");
  ChannelDef d = channel("Card");
  EXPECT_NE(channel_problem(d).find("channel names"), std::string::npos);
  d = channel("cardco");
  d.min_amount = 0;
  EXPECT_NE(channel_problem(d).find("min_amount"), std::string::npos);
  d = channel("cardco");
  d.max_amount = 0;
  EXPECT_NE(channel_problem(d).find("max_amount"), std::string::npos);
  d = channel("cardco");
  d.flows = 0;
  EXPECT_NE(channel_problem(d).find("flows"), std::string::npos);
  d = channel("cardco");
  d.currencies = {usd(), usd()};
  EXPECT_NE(channel_problem(d).find("currencies"), std::string::npos);
  d = channel("cardco");
  d.cost_bps = 10'001;
  EXPECT_NE(channel_problem(d).find("cost_bps"), std::string::npos);
  d = channel("cardco");
  d.concurrency_max = 0;
  EXPECT_NE(channel_problem(d).find("concurrency_max"), std::string::npos);
  d = channel("cardco");
  d.timeout_ms = 0;
  EXPECT_NE(channel_problem(d).find("timeout_ms"), std::string::npos);
  EXPECT_NE(channels_problem({channel("a"), channel("a")}).find("twice"), std::string::npos);
}

TEST(Channels, CostIsBasisPointsPlusFixedOverTheAmountSaturating) {
  ChannelDef d = channel("c");
  d.cost_bps = 290;
  d.cost_fixed = 30;
  EXPECT_EQ(cost_ppm(d, 10'000), 29'000U + 3'000U);
  EXPECT_EQ(cost_ppm(d, 1), 1'000'000U);  // a fixed fee above the amount: all of it
  EXPECT_EQ(cost_ppm(d, std::numeric_limits<int64_t>::max()), 29'000U);
}

TEST(Channels, CodecAndRegistryRoundTrip) {
  ChannelDef a = channel("cardco");
  a.currencies = {usd()};
  a.flows = flow_bit(Flow::card_payment);
  a.min_amount = 50;
  a.max_amount = 1'000'000;
  a.priority = -3;
  a.cost_bps = 290;
  a.cost_fixed = 30;
  a.concurrency_max = 7;
  a.timeout_ms = 2'000;
  ChannelRegistry reg;
  reg.set_channels({a, channel("bankco")});
  EXPECT_TRUE(reg.record({"cardco", BreakerState::closed, BreakerState::open, "failure rate", 5}));
  EXPECT_FALSE(reg.record({"cardco", BreakerState::closed, BreakerState::open, "again", 6}));
  EXPECT_FALSE(reg.record({"nope", BreakerState::closed, BreakerState::open, "x", 6}));
  EXPECT_FALSE(reg.record({"bankco", BreakerState::open, BreakerState::closed, "x", 6}));
  EXPECT_EQ(reg.breaker("bankco"), nullptr);  // a refused record leaves nothing behind
  std::string bytes;
  reg.encode(&bytes);
  ChannelRegistry back;
  ASSERT_TRUE(ChannelRegistry::decode(bytes, &back));
  EXPECT_EQ(back, reg);
  EXPECT_EQ(back.breaker("cardco")->opened, 1U);
  EXPECT_FALSE(ChannelRegistry::decode(bytes.substr(0, bytes.size() - 1), &back));
  EXPECT_FALSE(ChannelRegistry::decode(bytes + "x", &back));
  // Redefining the channels drops the breakers of channels that went.
  reg.set_channels({channel("bankco")});
  EXPECT_EQ(reg.breaker("cardco"), nullptr);
}

// --- window --------------------------------------------------------------------------------

struct Count {
  uint32_t n = 0;
  Count& operator+=(const Count& o) {
    n += o.n;
    return *this;
  }
  Count& operator-=(const Count& o) {
    n -= o.n;
    return *this;
  }
};

TEST(RollingWindow, OldBucketsFallOutOfTheTotal) {
  RollingWindow<Count, 10> w(100);  // 1 s
  w.add(at_ms(0), {1});
  w.add(at_ms(450), {2});
  EXPECT_EQ(w.total(at_ms(999)).n, 3U);
  EXPECT_EQ(w.total(at_ms(1'050)).n, 2U);  // the first bucket left
  EXPECT_EQ(w.total(at_ms(1'500)).n, 0U);
  w.add(at_ms(1'000), {5});  // time going back counts in the newest bucket
  EXPECT_EQ(w.total(at_ms(1'500)).n, 5U);
  EXPECT_EQ(w.total(at_ms(100'000)).n, 0U);  // a long gap empties everything
}

// --- breaker -------------------------------------------------------------------------------

BreakerOptions breaker_options() {
  BreakerOptions o;
  o.window_ms = 10'000;
  o.min_calls = 4;
  o.failure_rate_pct = 50;
  o.slow_call_ms = 1'000;
  o.slow_rate_pct = 50;
  o.open_ms = 5'000;
  o.half_open_probes = 2;
  return o;
}

TEST(CircuitBreaker, OpensOnFailureRateOnlyWithEnoughCalls) {
  CircuitBreaker b(breaker_options());
  EXPECT_FALSE(b.on_end(true, 10, at_ms(0)));
  EXPECT_FALSE(b.on_end(true, 10, at_ms(1)));
  EXPECT_FALSE(b.on_end(true, 10, at_ms(2)));  // 3 calls: below min_calls
  const auto t = b.on_end(false, 10, at_ms(3));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->from, BreakerState::closed);
  EXPECT_EQ(t->to, BreakerState::open);
  EXPECT_EQ(t->reason, "failure rate 75% of 4 calls");
  EXPECT_FALSE(b.admits());
}

TEST(CircuitBreaker, StaysClosedBelowTheRate) {
  CircuitBreaker b(breaker_options());
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(b.on_end(i % 3 == 1, 10, at_ms(i)));
  EXPECT_EQ(b.state(), BreakerState::closed);
}

TEST(CircuitBreaker, SlowCallsInFlightOpenItBeforeAnyAnswer) {
  CircuitBreaker b(breaker_options());
  EXPECT_FALSE(b.evaluate(at_ms(0), 3));  // below min_calls
  const auto t = b.evaluate(at_ms(1), 4);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->reason, "slow calls 100% of 4 calls");
}

TEST(CircuitBreaker, AnOutageTripsItAtOnceWhateverTheWindowStillHolds) {
  BreakerOptions o = breaker_options();
  o.consecutive_failures = 5;
  CircuitBreaker b(o);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(b.on_end(false, 10, at_ms(i)));  // healthy
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(b.on_end(true, 10, at_ms(200 + i)));
  const auto t = b.on_end(true, 10, at_ms(205));  // 5 of 105: far below the rate
  ASSERT_TRUE(t);
  EXPECT_EQ(t->reason, "5 failed calls in a row");
}

TEST(CircuitBreaker, ManyCallsHangingWithNoGoodAnswerSinceTripIt) {
  BreakerOptions o = breaker_options();
  o.consecutive_failures = 5;
  CircuitBreaker b(o);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(b.on_end(false, 10, at_ms(i)));
  // A good answer came after the oldest hanging call started: a slow PSP, not a dead one.
  EXPECT_FALSE(b.evaluate(at_ms(1'100), 5, at_ms(50)));
  // None since the oldest one began: a black hole.
  const auto t = b.evaluate(at_ms(1'300), 5, at_ms(200));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->reason, "5 calls hanging past 1000 ms, none answered well since");
}

TEST(CircuitBreaker, HalfOpensAfterTheWaitThenProbesDecide) {
  CircuitBreaker b(breaker_options());
  for (int i = 0; i < 4; ++i) (void)b.on_end(true, 10, at_ms(i));
  ASSERT_EQ(b.state(), BreakerState::open);
  EXPECT_FALSE(b.evaluate(at_ms(4'000), 0));
  const auto half = b.evaluate(at_ms(5'003), 0);
  ASSERT_TRUE(half);
  EXPECT_EQ(half->to, BreakerState::half_open);
  // Two probe slots, then no more calls until they answer.
  EXPECT_TRUE(b.admits());
  b.on_start();
  b.on_start();
  EXPECT_FALSE(b.admits());
  EXPECT_FALSE(b.on_end(false, 10, at_ms(5'010)));
  const auto closed = b.on_end(false, 10, at_ms(5'020));
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->to, BreakerState::closed);
  EXPECT_EQ(closed->reason, "2 probes succeeded");
  // The old window is gone: one failure does not reopen it.
  EXPECT_FALSE(b.on_end(true, 10, at_ms(5'030)));
}

TEST(CircuitBreaker, AFailedOrSlowProbeOpensAgain) {
  CircuitBreaker b(breaker_options());
  b.restore(BreakerState::half_open, at_ms(0));
  b.on_start();
  const auto t = b.on_end(false, 1'500, at_ms(10));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->to, BreakerState::open);
  EXPECT_EQ(t->reason, "probe slow");
  b.restore(BreakerState::half_open, at_ms(20));
  b.on_start();
  ASSERT_TRUE(b.evaluate(at_ms(1'100), 1));  // a probe hanging past the slow threshold
  EXPECT_EQ(b.state(), BreakerState::open);
}

// --- decisions -----------------------------------------------------------------------------

TEST(Decisions, CodecRoundTripsAndRefusesGarbage) {
  Decision d;
  d.kind = DecisionKind::failover;
  d.channel = "bankco";
  d.explored = true;
  d.try_number = 2;
  d.delay_ms = 17;
  d.candidates = {{"bankco", -5, 900'000, 20'000, 35, 12}};
  d.rejected = {{"cardco", Rejection::already_tried}, {"x", Rejection::breaker_open}};
  std::string bytes;
  ByteWriter w(&bytes);
  encode_decision(w, d);
  Decision back;
  ByteReader r(bytes);
  ASSERT_TRUE(decode_decision(r, &back));
  EXPECT_TRUE(r.at_end());
  EXPECT_EQ(back, d);
  std::string bad = bytes;
  bad[0] = static_cast<char>(9);  // no such kind
  ByteReader r2(bad);
  EXPECT_FALSE(decode_decision(r2, &back));
  Decision none;  // kind none with a channel is not a decision
  none.channel = "x";
  std::string b2;
  ByteWriter w2(&b2);
  encode_decision(w2, none);
  ByteReader r3(b2);
  EXPECT_FALSE(decode_decision(r3, &back));
}

// --- router --------------------------------------------------------------------------------

RouterOptions quiet_options() {
  RouterOptions o;
  o.breaker = breaker_options();
  o.explore_permille = 0;
  o.seed = 42;
  return o;
}

// Feeds `n` authorization answers of `end` through the router on `ch`.
void feed(Router& r, std::string_view ch, CallEnd end, int n, int64_t latency_ms, Timestamp now,
          std::vector<BreakerTransition>* out) {
  static int counter = 0;
  for (int i = 0; i < n; ++i) {
    const std::string id = "pay_" + std::to_string(++counter) + "_a1";
    r.call_started(id, ch, true, false, now);
    r.call_ended(id, end, latency_ms, now, out);
  }
}

TEST(Router, EligibilityChecksFlowCurrencyAndAmountLimits) {
  ChannelDef eur_only = channel("eurco");
  eur_only.currencies = {eur()};
  ChannelDef small = channel("small");
  small.max_amount = 1'000;
  ChannelDef big = channel("big");
  big.min_amount = 5'000;
  ChannelDef payouts = channel("payco");
  payouts.flows = flow_bit(Flow::payout);
  Router r(quiet_options(), {eur_only, small, big, payouts});
  const Decision d = r.decide({Flow::card_payment, usd(), 2'000, "", {}}, at_ms(0));
  EXPECT_EQ(d.kind, DecisionKind::none);
  EXPECT_FALSE(d.tries_exhausted);
  ASSERT_EQ(d.rejected.size(), 4U);
  EXPECT_EQ(d.rejected[0].reason, Rejection::currency);
  EXPECT_EQ(d.rejected[1].reason, Rejection::amount_above_max);
  EXPECT_EQ(d.rejected[2].reason, Rejection::amount_below_min);
  EXPECT_EQ(d.rejected[3].reason, Rejection::flow);
  // The edges are inclusive.
  EXPECT_EQ(r.decide({Flow::card_payment, usd(), 1'000, "", {}}, at_ms(0)).channel, "small");
  EXPECT_EQ(r.decide({Flow::card_payment, usd(), 5'000, "", {}}, at_ms(0)).channel, "big");
  EXPECT_EQ(r.decide({Flow::card_payment, eur(), 1, "", {}}, at_ms(0)).channel, "eurco");
}

TEST(Router, TheBestSuccessRateWinsThenCostThenPriority) {
  ChannelDef a = channel("aco");
  ChannelDef b = channel("bco");
  b.cost_bps = 100;
  ChannelDef c = channel("cco");
  c.cost_bps = 100;
  c.priority = 5;
  Router r(quiet_options(), {a, b, c});
  // No statistics: equal success; aco is cheapest.
  Decision d = r.decide({Flow::card_payment, usd(), 10'000, "", {}}, at_ms(0));
  EXPECT_EQ(d.kind, DecisionKind::routed);
  EXPECT_EQ(d.channel, "aco");
  ASSERT_EQ(d.candidates.size(), 3U);
  EXPECT_EQ(d.candidates[1].channel, "cco");  // equal score with bco: the higher priority
  std::vector<BreakerTransition> t;
  feed(r, "aco", CallEnd::declined_soft, 4, 10, at_ms(1), &t);
  feed(r, "aco", CallEnd::approved, 1, 10, at_ms(1), &t);
  feed(r, "bco", CallEnd::approved, 5, 10, at_ms(1), &t);
  d = r.decide({Flow::card_payment, usd(), 10'000, "", {}}, at_ms(2));
  // aco's (19+1)/25 = 80 % is more than the 5-point band below bco's (19+5)/25 = 96 %: its
  // lower cost no longer wins. cco (untried, 95 %) is within the band of the best, so it counts
  // as 96 % too, ties bco on cost, and wins on priority.
  ASSERT_EQ(d.candidates.size(), 3U);
  EXPECT_EQ(d.channel, "cco");
  EXPECT_EQ(d.candidates[1].channel, "bco");
  EXPECT_EQ(d.candidates[1].samples, 5U);
  EXPECT_EQ(d.candidates[1].success_ppm, 960'000U);
  EXPECT_EQ(d.candidates[1].score_ppm, 960'000 - 10'000 - 100);  // 10 ms: 100 ppm
  EXPECT_EQ(d.candidates[2].channel, "aco");
  EXPECT_EQ(d.candidates[2].success_ppm, 800'000U);
  EXPECT_EQ(d.candidates[2].score_ppm, 800'000 - 100);
  // Hard declines are the card's answer: they do not lower a channel's score.
  feed(r, "bco", CallEnd::declined_hard, 50, 10, at_ms(3), &t);
  EXPECT_EQ(r.decide({Flow::card_payment, usd(), 10'000, "", {}}, at_ms(3)).candidates[1].score_ppm,
            960'000 - 10'000 - 100);
}

TEST(Router, TrafficComesBackWhenTheBreakerClosesAfterAnOutage) {
  ChannelDef primary = channel("aco");
  ChannelDef backup = channel("bco");
  backup.cost_bps = 100;  // dearer
  RouterOptions o = quiet_options();
  Router r(o, {primary, backup});
  std::vector<BreakerTransition> t;
  feed(r, "aco", CallEnd::approved, 50, 10, at_ms(0), &t);
  feed(r, "bco", CallEnd::approved, 50, 10, at_ms(0), &t);
  EXPECT_EQ(r.decide({Flow::card_payment, usd(), 100, "", {}}, at_ms(1)).channel, "aco");
  // An outage 20 s later: the breaker opens, traffic goes to the backup, which keeps approving.
  feed(r, "aco", CallEnd::retryable, 4, 1, at_ms(20'000), &t);
  ASSERT_EQ(t.size(), 1U);
  EXPECT_EQ(r.decide({Flow::card_payment, usd(), 100, "", {}}, at_ms(20'100)).channel, "bco");
  feed(r, "bco", CallEnd::approved, 200, 10, at_ms(20'200), &t);
  // Before the breaker closes, the failures weigh: the primary is out of the band.
  // It recovers: half-open after the wait, probes succeed, the breaker closes, and its outage
  // failures no longer weigh: the cheaper primary takes the traffic again at once.
  r.tick(at_ms(25'100), &t);
  ASSERT_EQ(t.back().to, BreakerState::half_open);
  feed(r, "aco", CallEnd::approved, 2, 10, at_ms(25'200), &t);
  ASSERT_EQ(t.back().to, BreakerState::closed);
  const Decision d = r.decide({Flow::card_payment, usd(), 100, "", {}}, at_ms(25'300));
  EXPECT_EQ(d.channel, "aco");
}

TEST(Router, LatencyCostsScore) {
  RouterOptions o = quiet_options();
  o.breaker.slow_call_ms = 60'000;
  Router r(o, {channel("fast"), channel("slow")});
  std::vector<BreakerTransition> t;
  feed(r, "fast", CallEnd::approved, 10, 40, at_ms(0), &t);
  feed(r, "slow", CallEnd::approved, 10, 4'000, at_ms(0), &t);
  const Decision d = r.decide({Flow::card_payment, usd(), 100, "", {}}, at_ms(1));
  EXPECT_EQ(d.channel, "fast");
  EXPECT_EQ(d.candidates[1].latency_p50_ms, 5'000U);  // the bin's upper bound
  EXPECT_EQ(d.candidates[0].score_ppm - d.candidates[1].score_ppm, 50'000 - 500);
}

TEST(Router, ExplorationIsSeededAndTakesTheShareAsked) {
  RouterOptions o = quiet_options();
  o.explore_permille = 100;
  const auto run = [&] {
    Router r(o, {channel("aco"), channel("bco"), channel("cco")});
    std::string picks;
    int explored = 0;
    for (int i = 0; i < 2'000; ++i) {
      const Decision d = r.decide({Flow::card_payment, usd(), 100, "", {}}, at_ms(i));
      explored += d.explored ? 1 : 0;
      EXPECT_EQ(d.explored, d.channel != "aco");
      picks += d.channel[0];
    }
    EXPECT_GT(explored, 140);  // 10 % of 2,000 is 200
    EXPECT_LT(explored, 260);
    return picks;
  };
  EXPECT_EQ(run(), run());  // same seed, same picks
}

TEST(Router, FailoverPrefersUntriedChannelsAndRetriesWaitABackoff) {
  RouterOptions o = quiet_options();
  o.backoff_base_ms = 100;
  o.backoff_max_ms = 250;
  Router r(o, {channel("aco"), channel("bco")});
  const std::vector<std::string> tried_a = {"aco"};
  Decision d = r.decide({Flow::card_payment, usd(), 100, "", tried_a}, at_ms(0));
  EXPECT_EQ(d.kind, DecisionKind::failover);
  EXPECT_EQ(d.channel, "bco");
  EXPECT_EQ(d.delay_ms, 0);
  EXPECT_EQ(d.try_number, 2U);
  ASSERT_EQ(d.rejected.size(), 1U);
  EXPECT_EQ(d.rejected[0].reason, Rejection::already_tried);
  // Both tried: a retry, after a jittered backoff within its cap.
  const std::vector<std::string> tried_ab = {"aco", "bco"};
  for (int i = 0; i < 200; ++i) {
    RouterOptions many = o;
    many.max_tries = 16;
    Router rr(many, {channel("aco"), channel("bco")});
    const std::vector<std::string> tried = {"aco", "bco", "aco", "bco", "aco"};
    d = rr.decide({Flow::card_payment, usd(), 100, "", tried}, at_ms(i));
    EXPECT_EQ(d.kind, DecisionKind::retry);
    EXPECT_GE(d.delay_ms, 0);
    EXPECT_LE(d.delay_ms, 250);  // 100 * 2^2 capped at 250
  }
  d = r.decide({Flow::card_payment, usd(), 100, "", tried_ab}, at_ms(0));
  EXPECT_EQ(d.kind, DecisionKind::retry);
  EXPECT_LE(d.delay_ms, 100);
  // Out of tries.
  const std::vector<std::string> three = {"aco", "bco", "aco"};
  d = r.decide({Flow::card_payment, usd(), 100, "", three}, at_ms(0));
  EXPECT_EQ(d.kind, DecisionKind::none);
  EXPECT_TRUE(d.tries_exhausted);
}

TEST(Router, RetryBudgetCapsRetriesAtAShareOfFirstAttempts) {
  RouterOptions o = quiet_options();
  o.retry_budget_pct = 20;
  o.retry_budget_min = 1;
  o.max_tries = 16;
  o.breaker.min_calls = 1'000'000;  // keep the breaker out of it
  Router r(o, {channel("aco")});
  const std::vector<std::string> tried = {"aco"};
  // 10 first attempts: 20 % is 2, plus the floor of 1.
  for (int i = 0; i < 10; ++i) {
    r.call_started("f" + std::to_string(i), "aco", true, false, at_ms(0));
  }
  int allowed = 0;
  for (int i = 0; i < 10; ++i) {
    const Decision d = r.decide({Flow::card_payment, usd(), 100, "", tried}, at_ms(1));
    if (d.kind != DecisionKind::retry) {
      ASSERT_EQ(d.rejected.size(), 1U);
      EXPECT_EQ(d.rejected[0].reason, Rejection::retry_budget);
      break;
    }
    ++allowed;
    r.call_started("r" + std::to_string(i), "aco", true, true, at_ms(1));
  }
  EXPECT_EQ(allowed, 3);
  // The budget's window passes: retries are allowed again (the floor).
  EXPECT_EQ(r.decide({Flow::card_payment, usd(), 100, "", tried}, at_ms(20'000)).kind,
            DecisionKind::retry);
}

TEST(Router, AFullBulkheadOrAnOpenBreakerSendsTrafficElsewhereAtOnce) {
  ChannelDef a = channel("aco");
  a.concurrency_max = 2;
  ChannelDef b = channel("bco");
  b.cost_bps = 10;  // aco is the cheaper one
  Router r(quiet_options(), {a, b});
  r.call_started("x1", "aco", true, false, at_ms(0));
  r.call_started("x2", "aco", true, false, at_ms(0));
  Decision d = r.decide({Flow::card_payment, usd(), 100, "", {}}, at_ms(0));
  EXPECT_EQ(d.channel, "bco");
  ASSERT_EQ(d.rejected.size(), 1U);
  EXPECT_EQ(d.rejected[0].reason, Rejection::concurrency_full);
  std::vector<BreakerTransition> t;
  r.call_ended("x1", CallEnd::approved, 5, at_ms(1), &t);
  EXPECT_EQ(r.decide({Flow::card_payment, usd(), 100, "", {}}, at_ms(1)).channel, "aco");
  // Refused connections open aco's breaker: traffic goes to bco, and the transition is told.
  feed(r, "aco", CallEnd::retryable, 4, 1, at_ms(2), &t);
  ASSERT_EQ(t.size(), 1U);
  EXPECT_EQ(t[0].channel, "aco");
  EXPECT_EQ(t[0].to, BreakerState::open);
  d = r.decide({Flow::card_payment, usd(), 100, "", {}}, at_ms(3));
  EXPECT_EQ(d.channel, "bco");
  EXPECT_EQ(d.rejected[0].reason, Rejection::breaker_open);
  // The wait passes: tick() half-opens it; probes that succeed close it.
  t.clear();
  r.tick(at_ms(5'003), &t);
  ASSERT_EQ(t.size(), 1U);
  EXPECT_EQ(t[0].to, BreakerState::half_open);
  feed(r, "aco", CallEnd::approved, 2, 5, at_ms(5'004), &t);
  ASSERT_EQ(t.size(), 2U);
  EXPECT_EQ(t[1].to, BreakerState::closed);
}

TEST(Router, ABlackHoleOpensTheBreakerFromCallsStillInFlight) {
  Router r(quiet_options(), {channel("aco"), channel("bco")});
  for (int i = 0; i < 5; ++i) r.call_started("h" + std::to_string(i), "aco", true, false, at_ms(0));
  std::vector<BreakerTransition> t;
  r.tick(at_ms(500), &t);
  EXPECT_TRUE(t.empty());  // not slow yet
  r.tick(at_ms(1'000), &t);
  ASSERT_EQ(t.size(), 1U);
  EXPECT_EQ(t[0].reason, "slow calls 100% of 5 calls");
  // Their answers (timeouts) later change nothing while it is open.
  for (int i = 0; i < 5; ++i) {
    r.call_ended("h" + std::to_string(i), CallEnd::unknown, 2'000, at_ms(2'000), &t);
  }
  EXPECT_EQ(t.size(), 1U);
  EXPECT_EQ(r.calls_in_flight(), 0U);
}

TEST(Router, APinnedChannelIsOnlyCheckedForEligibility) {
  ChannelDef a = channel("aco");
  a.cost_bps = 5'000;  // far worse than bco
  Router r(quiet_options(), {a, channel("bco")});
  Decision d = r.decide({Flow::card_payment, usd(), 100, "aco", {}}, at_ms(0));
  EXPECT_EQ(d.kind, DecisionKind::pinned);
  EXPECT_EQ(d.channel, "aco");
  EXPECT_EQ(d.candidates.size(), 1U);
  d = r.decide({Flow::card_payment, usd(), 100, "nope", {}}, at_ms(0));
  EXPECT_EQ(d.kind, DecisionKind::none);
  EXPECT_EQ(d.rejected[0].reason, Rejection::not_found);
  ASSERT_TRUE(r.set_control("aco", {.paused = true}));
  d = r.decide({Flow::card_payment, usd(), 100, "aco", {}}, at_ms(0));
  EXPECT_EQ(d.kind, DecisionKind::none);
  EXPECT_EQ(d.rejected[0].reason, Rejection::paused);
  EXPECT_TRUE(is_transient(d.rejected[0].reason));
  EXPECT_FALSE(r.set_control("nope", {}));
}

TEST(Router, ACanaryTakesItsShareAndIsRolledBackWhenWorseThanItsBase) {
  ChannelDef base = channel("aco");
  ChannelDef canary = channel("aco_v2");
  canary.psp = "aco";
  canary.canary_of = "aco";
  RouterOptions o = quiet_options();
  o.canary_min_samples = 20;
  o.canary_margin_pct = 5;
  o.breaker.min_calls = 1'000'000;
  ChannelDef other = channel("bco");
  other.cost_bps = 10;  // aco is the cheaper one
  Router r(o, {base, canary, other});
  // Without a share the canary takes nothing of its own.
  Decision d = r.decide({Flow::card_payment, usd(), 100, "", {}}, at_ms(0));
  EXPECT_EQ(d.channel, "aco");
  EXPECT_EQ(d.rejected[0].channel, "aco_v2");
  EXPECT_EQ(d.rejected[0].reason, Rejection::canary_only);
  ASSERT_TRUE(r.set_control("aco", {.canary_to = "aco_v2", .canary_share_pct = 30}));
  int to_canary = 0;
  std::vector<BreakerTransition> t;
  for (int i = 0; i < 400 && r.take_rollbacks().empty(); ++i) {
    d = r.decide({Flow::card_payment, usd(), 100, "", {}}, at_ms(i));
    ASSERT_TRUE(d.channel == "aco" || d.channel == "aco_v2") << d.channel;
    const std::string id = "c" + std::to_string(i);
    r.call_started(id, d.channel, true, false, at_ms(i));
    if (d.canary) {
      ++to_canary;
      EXPECT_EQ(d.channel, "aco_v2");
      // The canary fails a third of its calls; its base approves all.
      r.call_ended(id, i % 3 == 0 ? CallEnd::retryable : CallEnd::approved, 5, at_ms(i), &t);
    } else {
      r.call_ended(id, CallEnd::approved, 5, at_ms(i), &t);
    }
    if (r.view(at_ms(i))[0].def.name == "aco" &&
        r.view(at_ms(i))[0].control.canary_share_pct == 0) {
      break;
    }
  }
  // Rolled back after its 20th answered call: the share is 0, traffic is the base's again.
  const auto v = r.view(at_ms(500));
  EXPECT_EQ(v[0].control.canary_share_pct, 0U);
  EXPECT_EQ(to_canary, 20);
  d = r.decide({Flow::card_payment, usd(), 100, "", {}}, at_ms(501));
  EXPECT_EQ(d.channel, "aco");
  EXPECT_FALSE(d.canary);
}

// A payment the canary did not charge fails over like any other: to a channel it has not tried
// (its base first), never back to the canary, even with the whole share on the canary.
TEST(Router, APaymentTheCanaryFailedFailsOverToItsBaseNotToTheCanaryAgain) {
  ChannelDef canary = channel("aco_v2");
  canary.canary_of = "aco";
  Router r(quiet_options(), {channel("aco"), canary});
  ASSERT_TRUE(r.set_control("aco", {.canary_to = "aco_v2", .canary_share_pct = 100}));
  Decision d = r.decide({Flow::card_payment, usd(), 100, "", {}}, at_ms(0));
  ASSERT_EQ(d.channel, "aco_v2");
  EXPECT_TRUE(d.canary);
  const std::vector<std::string> tried = {"aco_v2"};
  for (int i = 1; i <= 20; ++i) {
    d = r.decide({Flow::card_payment, usd(), 100, "", tried}, at_ms(i));
    EXPECT_EQ(d.channel, "aco");
    EXPECT_FALSE(d.canary);
    EXPECT_EQ(d.kind, DecisionKind::failover);
  }
}

TEST(Router, ACanaryAsGoodAsItsBaseStays) {
  ChannelDef canary = channel("aco_v2");
  canary.canary_of = "aco";
  RouterOptions o = quiet_options();
  o.canary_min_samples = 10;
  Router r(o, {channel("aco"), canary});
  ASSERT_TRUE(r.set_control("aco", {.canary_to = "aco_v2", .canary_share_pct = 50}));
  std::vector<BreakerTransition> t;
  std::map<std::string, int> calls;  // each side soft-declines every 10th of its own calls
  for (int i = 0; i < 200; ++i) {
    const Decision d = r.decide({Flow::card_payment, usd(), 100, "", {}}, at_ms(i));
    const std::string id = "g" + std::to_string(i);
    r.call_started(id, d.channel, true, false, at_ms(i));
    const bool decline = ++calls[d.channel] % 10 == 0;
    r.call_ended(id, decline ? CallEnd::declined_soft : CallEnd::approved, 5, at_ms(i), &t);
  }
  EXPECT_GT(calls["aco_v2"], 50);
  EXPECT_TRUE(r.take_rollbacks().empty());
  EXPECT_EQ(r.view(at_ms(300))[0].control.canary_share_pct, 50U);
}

TEST(Channels, ControlsAreRegistryStateWithCanaryRules) {
  ChannelDef canary = channel("aco_v2");
  canary.canary_of = "aco";
  EXPECT_NE(channels_problem({canary}).find("canary_of"), std::string::npos);  // no base
  ChannelDef self = channel("aco");
  self.canary_of = "aco";
  EXPECT_NE(channel_problem(self).find("canary_of"), std::string::npos);
  ChannelRegistry reg;
  reg.set_channels({channel("aco"), canary});
  reg.set_control("aco", {.paused = true, .canary_to = "aco_v2", .canary_share_pct = 10});
  std::string bytes;
  reg.encode(&bytes);
  ChannelRegistry back;
  ASSERT_TRUE(ChannelRegistry::decode(bytes, &back));
  EXPECT_EQ(back.control("aco").canary_share_pct, 10U);
  EXPECT_TRUE(back.control("aco").paused);
  // The canary's definition goes: its share goes with it.
  reg.set_channels({channel("aco")});
  EXPECT_EQ(reg.control("aco").canary_share_pct, 0U);
  EXPECT_TRUE(reg.control("aco").paused);
  reg.set_control("aco", {});
  EXPECT_TRUE(reg.empty() == false);  // still defines a channel
  EXPECT_EQ(reg.control("aco"), ChannelControl{});
}

TEST(Router, ViewShowsLiveState) {
  Router r(quiet_options(), {channel("aco")});
  std::vector<BreakerTransition> t;
  feed(r, "aco", CallEnd::approved, 3, 30, at_ms(0), &t);
  feed(r, "aco", CallEnd::unknown, 1, 2'000, at_ms(0), &t);
  r.call_started("z", "aco", true, false, at_ms(0));
  const auto v = r.view(at_ms(1));
  ASSERT_EQ(v.size(), 1U);
  EXPECT_EQ(v[0].in_flight, 1U);
  EXPECT_EQ(v[0].window.attempts, 4U);
  EXPECT_EQ(v[0].window.unknown, 1U);
  EXPECT_EQ(v[0].window.latency_quantile_ms(0.5), 50U);
  EXPECT_EQ(v[0].window.latency_quantile_ms(0.99), 2'000U);
  EXPECT_EQ(v[0].first_attempts, 5U);
  // Five minutes later the statistics are gone.
  EXPECT_EQ(r.view(at_ms(301'000))[0].window.attempts, 0U);
}

}  // namespace
}  // namespace keel::routing
