#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/hash.h"
#include "psp_sim/books.h"

namespace keel::psp_sim {

struct RangeMs {
  int64_t min = 0;
  int64_t max = 0;  // min <= max <= kFaultDelayMsMax
  friend bool operator==(const RangeMs&, const RangeMs&) = default;
};

inline constexpr int64_t kFaultDelayMsMax = 600'000;

// The faults of one PSP (docs/psp_protocol.md, "Faults"). Rates are probabilities in [0, 1].
// A default FaultConfig injects nothing.
struct FaultConfig {
  RangeMs latency_ms;
  double decline_rate = 0;
  std::vector<Decline> decline_codes;  // empty: {"do_not_honor", soft}
  double error_5xx_rate = 0;
  double refuse_rate = 0;
  double black_hole_rate = 0;
  double response_lost_rate = 0;
  double async_rate = 0;
  RangeMs async_delay_ms{100, 2000};
  double webhook_loss_rate = 0;
  double webhook_duplicate_rate = 0;
  RangeMs webhook_delay_ms;
  bool webhook_reorder = false;
  friend bool operator==(const FaultConfig&, const FaultConfig&) = default;
};

// Parses the faults from JSON of the config's shape:
//   {"latency_ms": {"min": 5, "max": 50}, "decline_rate": 0.05,
//    "decline_codes": [{"code": "insufficient_funds", "type": "hard"}], "webhook_reorder": true}
// Every key is optional; an unknown key, a wrong type, a rate outside [0, 1] or a range with
// min > max (or above kFaultDelayMsMax) is an error. Returns the error message, or "" and *out.
// The config file's TOML table is converted to this JSON shape first (config.h).
[[nodiscard]] std::string parse_faults(const boost::json::value& v, FaultConfig* out);
[[nodiscard]] boost::json::object faults_to_json(const FaultConfig& f);

// Every random choice of the simulator: a pure function of (seed, PSP, subject, decision, n),
// a keyed hash and not a shared random stream, so the same seed gives the same outcomes
// whatever the concurrency. `subject` is an operation's reference (or an event id, or a request
// target); `n` tells apart the repeated requests of one subject (the n-th retry of a reference
// may succeed where the first try got a 503).
//
// Thread: immutable after construction; any thread.
class FaultDecider {
 public:
  FaultDecider(uint64_t seed, std::string psp);

  // A uniform draw in [0, 1).
  [[nodiscard]] double unit(std::string_view subject, std::string_view decision,
                            uint64_t n = 0) const;
  // True with probability `rate`.
  [[nodiscard]] bool happens(double rate, std::string_view subject, std::string_view decision,
                             uint64_t n = 0) const;
  // A uniform integer in [range.min, range.max].
  [[nodiscard]] int64_t pick_ms(RangeMs range, std::string_view subject, std::string_view decision,
                                uint64_t n = 0) const;
  // The raw 64-bit hash.
  [[nodiscard]] uint64_t hash(std::string_view subject, std::string_view decision,
                              uint64_t n = 0) const;

  // The decline (if any) and asynchrony of a new authorization, payout or top-up.
  [[nodiscard]] Decisions operation_decisions(const FaultConfig& f,
                                              std::string_view reference) const;

 private:
  SipKey key_;
  std::string psp_;
};

}  // namespace keel::psp_sim
