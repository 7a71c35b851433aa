#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/currency.h"
#include "core/time.h"

namespace keel::routing {

// Channels: where keel can send a PSP call. A channel is one PSP (or bank) x the flows, currencies
// and amounts it takes, with its cost and its limits. Two channels may share a PSP (a canary: a
// new connector version or configuration beside the old one).
//
// Definitions come from keeld's configuration and are journaled when keeld starts (a set_channels
// command), so replay knows exactly which channels existed when; live state (statistics, breakers,
// in-flight calls) is the Router's (router.h). Pure data and checks; no I/O.

inline constexpr size_t kChannelsMax = 64;
inline constexpr size_t kChannelNameLengthMax = 40;  // inside ledger account ids
inline constexpr size_t kPspNameLengthMax = 64;
inline constexpr int64_t kChannelTimeoutMsMax = 600'000;
inline constexpr uint32_t kConcurrencyMax = 100'000;
inline constexpr int64_t kCostBasisPointsMax = 10'000;  // 100 %

// What a channel carries. Values are on disk (bits of ChannelDef::flows): never renumber.
enum class Flow : uint8_t {
  card_payment = 0,  // authorizations (and their captures, voids and refunds)
  topup = 1,
  payout = 2,
};
inline constexpr Flow kFlowLast = Flow::payout;
inline constexpr uint8_t kAllFlows = 0b111;
[[nodiscard]] constexpr uint8_t flow_bit(Flow f) {
  return static_cast<uint8_t>(1U << static_cast<uint8_t>(f));
}
[[nodiscard]] std::string_view flow_name(Flow f);

struct ChannelDef {
  std::string name;  // 1..kChannelNameLengthMax of [a-z0-9_-]
  std::string psp;   // the PSP behind it: 1..kPspNameLengthMax of [a-z0-9_-]
  // Sorted by index, no duplicates; empty: every currency.
  std::vector<Currency> currencies;
  uint8_t flows = kAllFlows;                                 // flow_bit()s, not 0
  int64_t min_amount = 1;                                    // minor units, inclusive, >= 1
  int64_t max_amount = std::numeric_limits<int64_t>::max();  // inclusive, >= min_amount
  // Breaks ties between equal scores: higher first (then the name).
  int32_t priority = 0;
  // What the channel costs keel per authorization: basis points of the amount plus a fixed
  // amount in minor units. Part of the score.
  int64_t cost_bps = 0;    // 0..kCostBasisPointsMax
  int64_t cost_fixed = 0;  // >= 0
  // Calls in flight at most (bulkhead): when full, routing picks another channel at once.
  uint32_t concurrency_max = 512;  // 1..kConcurrencyMax
  int64_t timeout_ms = 30'000;     // a call's whole budget: 1..kChannelTimeoutMsMax
  // Not empty: this channel is a canary of that one (same PSP, a new connector version or
  // configuration). It takes no traffic of its own, only the share a canary control gives it.
  std::string canary_of;
  friend bool operator==(const ChannelDef&, const ChannelDef&) = default;
};

// Why `def` is not valid, as one line naming the field; empty when it is.
[[nodiscard]] std::string channel_problem(const ChannelDef& def);
// Each one valid, names unique, at most kChannelsMax.
[[nodiscard]] std::string channels_problem(const std::vector<ChannelDef>& defs);
[[nodiscard]] bool is_valid_channel_name(std::string_view name);

[[nodiscard]] bool carries(const ChannelDef& def, Flow f);
[[nodiscard]] bool accepts_currency(const ChannelDef& def, Currency c);

// The channel's cost of an authorization of `amount`, in parts per million of the amount
// (saturating): what the score subtracts. REQUIRES: amount > 0.
[[nodiscard]] uint32_t cost_ppm(const ChannelDef& def, int64_t amount);

// Encoding in journal records and snapshots.
void encode_channels(ByteWriter& w, const std::vector<ChannelDef>& defs);
// False on malformed bytes or definitions channels_problem() refuses.
[[nodiscard]] bool decode_channels(ByteReader& r, std::vector<ChannelDef>* out);

// Circuit breaker states. Values are on disk (breaker transitions): never renumber.
enum class BreakerState : uint8_t {
  closed = 0,     // calls flow
  open = 1,       // no new calls; after the wait, half-open
  half_open = 2,  // a few probe calls decide: all good closes, one bad opens again
};
inline constexpr BreakerState kBreakerStateLast = BreakerState::half_open;
[[nodiscard]] std::string_view breaker_state_name(BreakerState s);

// A breaker's change of state, as journaled (payments' channel_event command) and shown.
struct BreakerTransition {
  std::string channel;
  BreakerState from = BreakerState::closed;
  BreakerState to = BreakerState::closed;
  std::string reason;  // e.g. "failure rate 62% of 13 calls"
  Timestamp at = 0;
  friend bool operator==(const BreakerTransition&, const BreakerTransition&) = default;
};

inline constexpr size_t kBreakerReasonLengthMax = 128;

// Runtime controls of one channel, journaled (payments' runtime_control command) and applied to
// the Router. Paused: no new traffic (an operator will resume it). Draining: no new traffic,
// being taken out (it finishes what it has). Canary: `canary_share_pct` % of this channel's
// routed traffic goes to `canary_to` (a channel whose canary_of is this one).
struct ChannelControl {
  bool paused = false;
  bool draining = false;
  std::string canary_to;
  uint32_t canary_share_pct = 0;  // 0..100; 0: no canary
  friend bool operator==(const ChannelControl&, const ChannelControl&) = default;
};

// The journaled side of channels: the definitions in force and each breaker's last transition
// (what GET /v1/channels shows after a restart, and where the Router's breakers start again).
// Thread: the engine's writer thread.
class ChannelRegistry {
 public:
  struct BreakerRecord {
    BreakerState state = BreakerState::closed;
    Timestamp since = 0;
    std::string reason;
    uint64_t opened = 0;  // transitions to open, since the channel was defined
    friend bool operator==(const BreakerRecord&, const BreakerRecord&) = default;
  };

  // Replaces the definitions (a journaled set_channels). Breaker records of channels that stay
  // are kept; others go. REQUIRES: channels_problem(defs) is empty.
  void set_channels(std::vector<ChannelDef> defs);
  // Records a transition. False (nothing changed) for an unknown channel, a `from` that is not
  // the recorded state, an unchanged state or an over-long reason.
  bool record(const BreakerTransition& t);
  // Sets a channel's controls. REQUIRES: the channel exists; a canary_to names a channel whose
  // canary_of is this one, share in 1..100 (or canary_to empty and share 0).
  void set_control(std::string_view channel, ChannelControl control);
  // The channel's controls (all off for a channel never controlled).
  [[nodiscard]] ChannelControl control(std::string_view channel) const;

  [[nodiscard]] const std::vector<ChannelDef>& channels() const { return defs_; }
  [[nodiscard]] const ChannelDef* find(std::string_view name) const;
  [[nodiscard]] const BreakerRecord* breaker(std::string_view name) const;
  [[nodiscard]] bool empty() const {
    return defs_.empty() && breakers_.empty() && controls_.empty();
  }

  void encode(std::string* out) const;
  // Rebuilds a registry from encode()'s bytes; false (leaving *out alone) if malformed.
  [[nodiscard]] static bool decode(std::string_view bytes, ChannelRegistry* out);

  friend bool operator==(const ChannelRegistry&, const ChannelRegistry&) = default;

 private:
  std::vector<ChannelDef> defs_;
  std::map<std::string, BreakerRecord, std::less<>> breakers_;   // only channels ever changed
  std::map<std::string, ChannelControl, std::less<>> controls_;  // only channels not all off
};

}  // namespace keel::routing
