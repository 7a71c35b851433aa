#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/time.h"
#include "routing/channel.h"
#include "routing/window.h"

namespace keel::routing {

struct BreakerOptions {
  // The window the rates are taken over (ten buckets of window_ms / 10).
  int64_t window_ms = 10'000;
  // No decision on fewer calls than this in the window (completed plus slow ones in flight).
  uint32_t min_calls = 10;
  // Opens when failures (nothing happened: refused, 5xx; or unknown: timeouts, lost answers)
  // reach this share of the calls, in percent.
  uint32_t failure_rate_pct = 50;
  // A call is slow once it has taken this long, answered or still in flight: a black hole
  // opens the breaker without waiting for its calls to time out.
  int64_t slow_call_ms = 2'000;
  uint32_t slow_rate_pct = 50;
  // Also opens at once on this many failed calls in a row, or this many calls in flight past
  // slow_call_ms with no good answer since they started (0: never): an outage trips it in
  // well under a window, however many healthy calls the window still holds.
  uint32_t consecutive_failures = 20;
  // Open this long, then half-open.
  int64_t open_ms = 5'000;
  // Half-open lets this many probe calls through; all of them good closes, one bad reopens.
  uint32_t half_open_probes = 3;
};

// Why the options cannot work; empty when they can.
[[nodiscard]] std::string breaker_options_problem(const BreakerOptions& o);

// One channel's circuit breaker (closed / open / half-open), in the manner of Resilience4j: a
// failure-rate and slow-call-rate window over the last window_ms, a minimum number of calls,
// an open wait, then probes. Pure: time comes in every call; nothing is journaled here (the
// Router returns transitions for the engine to journal).
//
// Thread: one owner (the engine's writer thread).
class CircuitBreaker {
 public:
  explicit CircuitBreaker(BreakerOptions options = {});

  [[nodiscard]] BreakerState state() const { return state_; }
  [[nodiscard]] Timestamp since() const { return since_; }
  // Whether a new call may start now (closed; half-open with a probe slot free).
  [[nodiscard]] bool admits() const;
  // A call started (call only when admits()): in half-open it takes a probe slot.
  void on_start();
  // A call ended: `failure` when nothing happened or the outcome is unknown; `latency_ms` as
  // keel saw it. May change the state.
  std::optional<BreakerTransition> on_end(bool failure, int64_t latency_ms, Timestamp now);
  // Time passed with `slow_in_flight` calls in flight longer than slow_call_ms, the oldest of
  // them started at `oldest_slow_start`: may open a closed breaker (slow calls), or move an open
  // one to half-open after its wait.
  std::optional<BreakerTransition> evaluate(Timestamp now, uint32_t slow_in_flight,
                                            Timestamp oldest_slow_start = 0);
  // Where a restart starts: the last journaled state and when it began.
  void restore(BreakerState state, Timestamp since);

  struct Counts {
    uint32_t calls = 0;
    uint32_t failures = 0;
    uint32_t slow = 0;
    Counts& operator+=(const Counts& o) {
      calls += o.calls;
      failures += o.failures;
      slow += o.slow;
      return *this;
    }
    Counts& operator-=(const Counts& o) {
      calls -= o.calls;
      failures -= o.failures;
      slow -= o.slow;
      return *this;
    }
  };
  // The window's counts at `now` (completed calls only).
  [[nodiscard]] Counts window(Timestamp now) { return window_.total(now); }
  [[nodiscard]] const BreakerOptions& options() const { return options_; }

 private:
  BreakerTransition move(BreakerState to, std::string reason, Timestamp now);
  std::optional<BreakerTransition> check_rates(Timestamp now, uint32_t slow_in_flight);

  BreakerOptions options_;
  RollingWindow<Counts, 10> window_;
  BreakerState state_ = BreakerState::closed;
  Timestamp since_ = 0;
  uint32_t probes_started_ = 0;
  uint32_t probes_good_ = 0;
  uint32_t failures_in_a_row_ = 0;
  Timestamp last_good_at_ = 0;  // the end of the last call that was neither failed nor slow
};

}  // namespace keel::routing
