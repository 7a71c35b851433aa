#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/currency.h"
#include "core/time.h"
#include "routing/breaker.h"
#include "routing/channel.h"
#include "routing/decision.h"
#include "routing/window.h"

namespace keel::routing {

struct RouterOptions {
  BreakerOptions breaker;
  // Retries on a channel (a try on a channel the payment already tried) at most this share of
  // its first attempts over the breaker's window, plus retry_budget_min whatever the traffic
  // (so a quiet channel can still retry). A failover to another channel is a first attempt
  // there, not a retry.
  uint32_t retry_budget_pct = 20;
  uint32_t retry_budget_min = 3;
  // Authorization tries of one payment, failovers and retries included.
  uint32_t max_tries = 3;
  // A retry waits a uniform random time in [0, min(backoff_max_ms, backoff_base_ms * 2^(n-1))]
  // for its n-th retry on that channel (exponential backoff with full jitter).
  int64_t backoff_base_ms = 100;
  int64_t backoff_max_ms = 2'000;
  // Share of routed decisions (per mille) that take another eligible channel than the best, at
  // random: how a recovered channel wins traffic back.
  uint32_t explore_permille = 50;
  // What a second of median latency costs in the score, in parts per million (10,000: one
  // second weighs as much as one percent of approvals).
  uint32_t latency_penalty_ppm_per_s = 10'000;
  // Approval rates within this many ppm of the best eligible one count as the best (then cost
  // and latency decide): 50,000 = 5 points.
  uint32_t success_band_ppm = 50'000;
  // Statistics: GET /v1/channels shows 30 buckets of this many ms (5 min); the score uses the
  // last 6 (1 min), so an outage's failures stop weighing soon after it ends.
  int64_t stats_bucket_ms = 10'000;
  // Canary rollback: once the canary has this many answered authorizations since its share was
  // set, it is rolled back when its approval rate is below the base channel's (over the same
  // period) by more than canary_margin_pct points.
  uint32_t canary_min_samples = 50;
  uint32_t canary_margin_pct = 5;
  // Seeds exploration and jitter (keeld draws it at start and logs it; tests fix it).
  uint64_t seed = 1;
};

// An automatic canary rollback the Router decided (its share is 0 from then on): the engine
// journals it as a runtime control so the registry agrees.
struct CanaryRollback {
  std::string channel;  // the base channel
  std::string canary;
  std::string reason;
};

[[nodiscard]] std::string router_options_problem(const RouterOptions& o);

// A call's own answer, in routing's terms (payments' AttemptStatus without pending).
enum class CallEnd : uint8_t { approved, declined_hard, declined_soft, retryable, unknown };

// Latency bins (upper bounds, ms) of the statistics; the last bin is everything above.
inline constexpr std::array<uint32_t, 15> kLatencyBinsMs = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1'000, 2'000, 5'000, 10'000, 30'000, 60'000};

// One window's counts of a channel's calls (authorizations only: what the score is about).
struct ChannelCounts {
  uint32_t attempts = 0;  // answered
  uint32_t approved = 0;
  uint32_t declined_hard = 0;
  uint32_t declined_soft = 0;
  uint32_t retryable = 0;
  uint32_t unknown = 0;  // timeouts and lost answers
  std::array<uint32_t, kLatencyBinsMs.size() + 1> latency{};
  ChannelCounts& operator+=(const ChannelCounts& o);
  ChannelCounts& operator-=(const ChannelCounts& o);
  // The upper bound of the bin holding the q-th quantile (0 < q < 1); 0 with no sample.
  [[nodiscard]] uint32_t latency_quantile_ms(double q) const;
};

// A channel's definition and live state, for GET /v1/channels.
struct ChannelView {
  ChannelDef def;
  ChannelControl control;
  BreakerState breaker = BreakerState::closed;
  Timestamp breaker_since = 0;
  uint32_t in_flight = 0;
  ChannelCounts window;  // over the statistics window
  uint32_t success_ppm = 0;
  uint32_t first_attempts = 0;  // in the budget's window
  uint32_t retries = 0;
  bool drained = false;  // draining with nothing left in flight
  // Since the canary share was set: answered authorizations and approvals of the base channel
  // and of its canary.
  uint32_t canary_control_calls = 0;
  uint32_t canary_control_approved = 0;
  uint32_t canary_calls = 0;
  uint32_t canary_approved = 0;
};

struct RouteRequest {
  Flow flow = Flow::card_payment;
  Currency currency;
  int64_t amount = 0;
  std::string_view pinned;             // the caller named the channel: eligibility only
  std::span<const std::string> tried;  // channels of the payment's earlier tries, in order
};

// Chooses a channel for each authorization, from live statistics that are not journaled (the
// decision is): eligibility first (flow, currency, amount limits; paused, draining, breaker,
// bulkhead, retry budget), then the best score (success - cost - latency penalty) among those
// eligible, with a seeded exploration share. A failover prefers channels the payment has not
// tried; a retry on a tried one waits a jittered backoff and spends retry budget.
//
// Statistics and breakers learn from the calls' own answers only (call_started / call_ended):
// status queries and webhooks never count as traffic. Calls still in flight past the slow-call
// threshold count as slow ones at each tick(), so a black hole opens a breaker before its
// calls time out.
//
// Pure and deterministic given its inputs and seed. Thread: the engine's writer thread. Costs:
// decide() is O(channels) with no allocation beyond the Decision; call_* are O(log in flight);
// tick() is O(calls in flight).
class Router {
 public:
  // REQUIRES: router_options_problem(options) and channels_problem(channels) are empty.
  Router(RouterOptions options, std::vector<ChannelDef> channels);

  [[nodiscard]] Decision decide(const RouteRequest& request, Timestamp now);

  // A call to `channel` left for the PSP (after the command that made it is durable). `retry`:
  // the decision was a retry on a channel the payment had tried. Unknown channels are ignored.
  void call_started(std::string_view attempt_id, std::string_view channel, bool authorization,
                    bool retry, Timestamp now);
  // The call's own answer (not a status query's or a webhook's). Ignored for a call not
  // started in this run. Appends breaker transitions to `out`.
  void call_ended(std::string_view attempt_id, CallEnd end, int64_t latency_ms, Timestamp now,
                  std::vector<BreakerTransition>* out);
  // Time passes: slow calls in flight, open breakers whose wait is over.
  void tick(Timestamp now, std::vector<BreakerTransition>* out);

  // Where a breaker starts after a restart (its last journaled transition).
  void restore_breaker(std::string_view channel, BreakerState state, Timestamp since);
  // False for an unknown channel. A canary share set or changed starts its comparison afresh.
  bool set_control(std::string_view channel, ChannelControl control);
  // Canary rollbacks decided since the last call (by call_ended()).
  [[nodiscard]] std::vector<CanaryRollback> take_rollbacks();

  [[nodiscard]] std::vector<ChannelView> view(Timestamp now);
  [[nodiscard]] const RouterOptions& options() const { return options_; }
  [[nodiscard]] size_t calls_in_flight() const { return in_flight_.size(); }
  [[nodiscard]] bool has_channel(std::string_view name) const { return index_of(name) >= 0; }

 private:
  struct Budget {
    uint32_t firsts = 0;
    uint32_t retries = 0;
    Budget& operator+=(const Budget& o) {
      firsts += o.firsts;
      retries += o.retries;
      return *this;
    }
    Budget& operator-=(const Budget& o) {
      firsts -= o.firsts;
      retries -= o.retries;
      return *this;
    }
  };
  struct CanaryCounts {
    uint32_t control_calls = 0;
    uint32_t control_approved = 0;
    uint32_t calls = 0;
    uint32_t approved = 0;
  };
  struct Channel {
    Channel(ChannelDef d, const RouterOptions& o)
        : def(std::move(d)),
          breaker(o.breaker),
          stats(o.stats_bucket_ms),
          recent(o.stats_bucket_ms),
          budget(o.breaker.window_ms / 10) {}
    ChannelDef def;
    ChannelControl control;
    CircuitBreaker breaker;
    RollingWindow<ChannelCounts, 30> stats;  // shown
    RollingWindow<ChannelCounts, 6> recent;  // scored; cleared when its breaker closes
    RollingWindow<Budget, 10> budget;
    uint32_t in_flight = 0;
    CanaryCounts canary;  // of this channel's canary, while it has one
  };
  struct InFlight {
    size_t channel = 0;
    Timestamp started = 0;
    bool authorization = false;
  };

  [[nodiscard]] int index_of(std::string_view name) const;
  // Why channel `i` cannot take this request now; nullopt when it can.
  [[nodiscard]] std::optional<Rejection> reject(size_t i, const RouteRequest& r, bool retry,
                                                Timestamp now);
  [[nodiscard]] Candidate score(size_t i, int64_t amount, Timestamp now);
  [[nodiscard]] uint64_t next_random();
  // Takes the canary share of the chosen (routed) channel into account.
  void maybe_canary(const RouteRequest& r, Timestamp now, Decision* d);
  void count_canary(size_t channel, CallEnd end);

  RouterOptions options_;
  std::vector<Channel> channels_;
  std::map<std::string, InFlight, std::less<>> in_flight_;
  std::vector<CanaryRollback> rollbacks_;
  uint64_t random_state_;
};

}  // namespace keel::routing
