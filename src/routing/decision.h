#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"

namespace keel::routing {

// A routing decision as it is journaled with the attempt it chose a channel for, kept on the
// payment and shown by GET /v1/payments/{id} (`routing`): replay reads it and never asks live
// statistics again. Numbers are integers (parts per million, milliseconds) so the record is
// exact on every machine.

// Why a channel was not taken. Values are on disk: never renumber.
enum class Rejection : uint8_t {
  flow = 0,          // the channel does not carry this flow
  currency,          // nor this currency
  amount_below_min,  //
  amount_above_max,  //
  paused,            // runtime control
  draining,          // runtime control: finishes what it has, takes nothing new
  breaker_open,      // open, or half-open with every probe slot taken
  concurrency_full,  // bulkhead: its calls in flight are at its limit
  retry_budget,      // a retry on it would pass its retry budget
  already_tried,     // tried by this payment, and a channel not yet tried was eligible
  not_found,         // a pinned channel that is not defined
  canary_only,       // a canary channel: only its base channel's canary share reaches it
};
inline constexpr Rejection kRejectionLast = Rejection::canary_only;
[[nodiscard]] std::string_view rejection_name(Rejection r);
// Rejections that pass with time (paused, breaker, full, budget): "try later", not "never".
[[nodiscard]] bool is_transient(Rejection r);

// How the channel was chosen. Values are on disk: never renumber.
enum class DecisionKind : uint8_t {
  routed = 0,  // the best score among the eligible (or an exploration pick)
  pinned,      // the caller named the channel; only its eligibility was checked
  failover,    // a new try, on a channel this payment had not tried
  retry,       // a new try on a channel already tried (after a backoff)
  none,        // no channel: see Decision::rejected (or tries_exhausted)
};
inline constexpr DecisionKind kDecisionKindLast = DecisionKind::none;
[[nodiscard]] std::string_view decision_kind_name(DecisionKind k);

struct Candidate {
  std::string channel;
  int32_t score_ppm = 0;        // success - cost - latency penalty, in ppm
  uint32_t success_ppm = 0;     // estimated approval rate (Laplace prior over the window)
  uint32_t cost_ppm = 0;        // cost_ppm(def, amount)
  uint32_t latency_p50_ms = 0;  // over the window (0: no sample yet)
  uint32_t samples = 0;         // answered authorizations in the window
  friend bool operator==(const Candidate&, const Candidate&) = default;
};

struct Rejected {
  std::string channel;
  Rejection reason = Rejection::flow;
  friend bool operator==(const Rejected&, const Rejected&) = default;
};

struct Decision {
  DecisionKind kind = DecisionKind::none;
  std::string channel;                // empty when kind == none
  bool explored = false;              // picked by exploration, not by the best score
  bool canary = false;                // sent to the chosen channel's canary (its share)
  bool tries_exhausted = false;       // none: the payment used all its tries
  uint32_t try_number = 1;            // 1 for the first authorization of a payment
  int64_t delay_ms = 0;               // wait before the call (backoff of a retry)
  std::vector<Candidate> candidates;  // the eligible ones, best score first
  std::vector<Rejected> rejected;     // in channel order
  friend bool operator==(const Decision&, const Decision&) = default;
};

inline constexpr size_t kDecisionChannelsMax = 64;  // candidates + rejected, each

void encode_decision(ByteWriter& w, const Decision& d);
// False on malformed bytes (unknown enum values, more than kDecisionChannelsMax entries, a
// channel on a `none` decision).
[[nodiscard]] bool decode_decision(ByteReader& r, Decision* out);

}  // namespace keel::routing
