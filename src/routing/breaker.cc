#include "routing/breaker.h"

#include <utility>

namespace keel::routing {
namespace {

std::string rate_reason(std::string_view what, uint32_t part, uint32_t calls) {
  return std::string(what) + " " + std::to_string(part * 100 / calls) + "% of " +
         std::to_string(calls) + " calls";
}

}  // namespace

std::string breaker_options_problem(const BreakerOptions& o) {
  if (o.window_ms < 10 || o.window_ms > 3'600'000) return "window_ms must be from 10 to 3600000";
  if (o.min_calls < 1) return "min_calls must be at least 1";
  if (o.failure_rate_pct < 1 || o.failure_rate_pct > 100) {
    return "failure_rate_pct must be from 1 to 100";
  }
  if (o.slow_rate_pct < 1 || o.slow_rate_pct > 100) return "slow_rate_pct must be from 1 to 100";
  if (o.slow_call_ms < 1) return "slow_call_ms must be at least 1";
  if (o.open_ms < 1 || o.open_ms > 3'600'000) return "open_ms must be from 1 to 3600000";
  if (o.consecutive_failures > 1'000'000) return "consecutive_failures must be at most 1000000";
  if (o.half_open_probes < 1 || o.half_open_probes > 1000) {
    return "half_open_probes must be from 1 to 1000";
  }
  return {};
}

CircuitBreaker::CircuitBreaker(BreakerOptions options)
    : options_(options), window_(options.window_ms / 10) {
  KEEL_ASSERT(breaker_options_problem(options_).empty());
}

bool CircuitBreaker::admits() const {
  switch (state_) {
    case BreakerState::closed:
      return true;
    case BreakerState::open:
      return false;
    case BreakerState::half_open:
      return probes_started_ < options_.half_open_probes;
  }
  return false;
}

void CircuitBreaker::on_start() {
  KEEL_ASSERT(admits());
  if (state_ == BreakerState::half_open) ++probes_started_;
}

std::optional<BreakerTransition> CircuitBreaker::on_end(bool failure, int64_t latency_ms,
                                                        Timestamp now) {
  const bool slow = latency_ms >= options_.slow_call_ms;
  switch (state_) {
    case BreakerState::closed: {
      window_.add(now, {1, failure ? 1U : 0U, slow ? 1U : 0U});
      failures_in_a_row_ = failure ? failures_in_a_row_ + 1 : 0;
      if (!failure && !slow) last_good_at_ = now;
      if (options_.consecutive_failures > 0 &&
          failures_in_a_row_ >= options_.consecutive_failures) {
        return move(BreakerState::open,
                    std::to_string(failures_in_a_row_) + " failed calls in a row", now);
      }
      return check_rates(now, 0);
    }
    case BreakerState::open:
      return std::nullopt;  // a call from before it opened: the wait decides, not this
    case BreakerState::half_open:
      if (failure || slow) {
        return move(BreakerState::open, failure ? "probe failed" : "probe slow", now);
      }
      if (++probes_good_ >= options_.half_open_probes) {
        return move(BreakerState::closed,
                    std::to_string(options_.half_open_probes) + " probes succeeded", now);
      }
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<BreakerTransition> CircuitBreaker::evaluate(Timestamp now, uint32_t slow_in_flight,
                                                          Timestamp oldest_slow_start) {
  switch (state_) {
    case BreakerState::closed:
      if (slow_in_flight == 0) return std::nullopt;
      // A black hole: many calls hanging, and not one good answer since the oldest began.
      if (options_.consecutive_failures > 0 && slow_in_flight >= options_.consecutive_failures &&
          last_good_at_ <= oldest_slow_start) {
        return move(BreakerState::open,
                    std::to_string(slow_in_flight) + " calls hanging past " +
                        std::to_string(options_.slow_call_ms) + " ms, none answered well since",
                    now);
      }
      return check_rates(now, slow_in_flight);
    case BreakerState::open:
      if (now - since_ >= options_.open_ms * kNanosPerMilli) {
        return move(BreakerState::half_open,
                    "open " + std::to_string(options_.open_ms) + " ms: probing", now);
      }
      return std::nullopt;
    case BreakerState::half_open:
      // Probes that hang past the slow threshold count as slow ones.
      if (slow_in_flight > 0 && probes_started_ > 0) {
        return move(BreakerState::open, "probe slow", now);
      }
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<BreakerTransition> CircuitBreaker::check_rates(Timestamp now,
                                                             uint32_t slow_in_flight) {
  Counts c = window_.total(now);
  c.calls += slow_in_flight;
  c.slow += slow_in_flight;
  if (c.calls < options_.min_calls) return std::nullopt;
  if (c.failures * 100 >= options_.failure_rate_pct * c.calls) {
    return move(BreakerState::open, rate_reason("failure rate", c.failures, c.calls), now);
  }
  if (c.slow * 100 >= options_.slow_rate_pct * c.calls) {
    return move(BreakerState::open, rate_reason("slow calls", c.slow, c.calls), now);
  }
  return std::nullopt;
}

void CircuitBreaker::restore(BreakerState state, Timestamp since) {
  state_ = state;
  since_ = since;
  probes_started_ = 0;
  probes_good_ = 0;
  failures_in_a_row_ = 0;
  last_good_at_ = since;
  window_.clear();
}

BreakerTransition CircuitBreaker::move(BreakerState to, std::string reason, Timestamp now) {
  BreakerTransition t;
  t.from = state_;
  t.to = to;
  t.reason = std::move(reason);
  t.at = now;
  restore(to, now);
  return t;
}

}  // namespace keel::routing
