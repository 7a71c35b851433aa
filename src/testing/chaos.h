#pragma once

// The chaos suite (issue 9): keeld with routing on in front of three simulated PSPs, an
// open-loop load of card payments, and one PSP fault per scenario, played by the simulator's
// fault schedules. The same scenarios run at full size in `keel-bench chaos` (figures) and at a
// small one in tests/chaos (safety, and by counts that each mechanism worked).
//
// The PSPs are p1, p2 and p3, each with a listener of its own (an outage is a refused
// connection before anything is sent). They charge 10 + 1 %, 20 + 2 % and 30 + 2.9 %; healthy,
// they answer in 2..20 ms and approve everything. p1c is p1's canary channel (`canary_of =
// "p1"`: a new connector version of the same PSP), played by a simulated PSP of its own with
// p1's fees and a listener of its own, so that its faults can differ from p1's; it takes no
// traffic until a scenario gives it a share of p1's. p1 is the primary: keel's channel costs make
// it by far the best score (1 % against 70 % and 75 %, same fixed parts) for every amount, so
// that the router keeps sending it the traffic until its breaker opens. With costs a percent
// apart, the score alone moves the traffic after a handful of failures (a channel's success
// rate is over 5 minutes) and the breaker, whose failure rate counts the healthy calls of its
// window, does not open at modest rates: the suite would not exercise breakers.
//
// keeld: routing on (max_tries 3, breaker_slow_call_ms 1000, breaker_open_ms 5000,
// canary_min_samples kCanaryMinSamples, the other keys at their defaults: 5 % exploration, a
// 10 s breaker window, a 5 point canary margin), the runtime-control routes on ([admin]
// controls = true; the harness is a loopback client), each PSP call bounded at 2 s,
// status queries from 200 ms doubling to 2 s, "not found" believed after 10 s, confirms waiting
// up to settle_wait_ms; the PSPs send their webhooks to keeld.
//
// Load: payment i is scheduled at start + i / rate and its latency counts from that time, so a
// slow keeld cannot slow the client down (no coordinated omission). A pool of worker threads,
// each with its own keep-alive connection, takes the payments in order; one that starts late
// because every worker was busy is counted. A payment is a create then a confirm, each with its
// own Idempotency-Key (retried with the same key on a transport error or a 5xx; a 503
// no_channel_available is retried for up to 10 s). Amounts cover the range with its edges: 1,
// amounts below each PSP's fixed fee, ordinary ones, and up to 10^12 minor units.

#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace keel::testing::chaos {

// Every simulated PSP, each with a keel channel of the same name: p1, p2, p3, then p1's canary.
inline constexpr std::array<std::string_view, 4> kPsps = {"p1", "p2", "p3", "p1c"};
inline constexpr std::string_view kPrimary = "p1";
inline constexpr std::string_view kCanary = "p1c";  // canary_of = kPrimary
// canary_errors: the share of p1's routed payments given to the canary at the fault's start,
// and keeld's canary_min_samples (the canary answers a rollback is judged on: few enough that
// the short form's canary reaches them within a couple of seconds).
inline constexpr int64_t kCanarySharePct = 40;
inline constexpr int64_t kCanaryMinSamples = 20;

enum class FaultKind {
  none,           // the baseline
  refuse,         // own listener down: connections refused
  black_hole,     // every request processed, never answered
  slow,           // every request answered after 5 s
  flap,           // own listener down and up again, flap_ms each
  soft_decline,   // half of the authorizations declined with a soft code
  canary_errors,  // the canary, given kCanarySharePct of p1's traffic, answers 503 to 30 %
};

struct Scenario {
  std::string_view name;
  std::string_view description;
  FaultKind fault = FaultKind::none;
  size_t failing_psps = 0;  // how many fail, from p1 on (canary_errors: 1, the canary)
  // The primary's breaker must open during the fault (a journaled transition).
  bool breaker_expected = false;
};

// Every scenario, the baseline first, then the seven in order.
[[nodiscard]] const std::vector<Scenario>& scenarios();
// nullptr for an unknown name.
[[nodiscard]] const Scenario* find_scenario(std::string_view name);
// The PSPs the scenario's fault schedule applies to: the first failing_psps of kPsps, or the
// canary for canary_errors.
[[nodiscard]] std::vector<std::string_view> failing_psps_of(const Scenario& scenario);

struct ChaosOptions {
  // The programs; empty: this build tree's (KEEL_BUILD_DIR).
  std::filesystem::path keeld_binary;
  std::filesystem::path sim_binary;
  // Parent of keeld's data directory (a real disk for figures); empty: a temporary directory.
  std::filesystem::path data_parent;
  double rate_per_s = 20;         // payments offered per second
  int64_t lead_ms = 2'000;        // healthy load before the fault
  int64_t fault_ms = 6'000;       // every scenario's but primary_flaps'
  int64_t flap_fault_ms = 9'000;  // primary_flaps': down and up flap_ms each, down first
  int64_t tail_ms = 4'000;        // load after the fault
  int64_t flap_ms = 3'000;
  size_t workers = 0;  // 0: enough for the rate (see workers_for())
  uint64_t seed = 1;
  // keeld's [payments] processing_deadline_s; the run waits, after the load, for every
  // payment to settle or for this (plus a margin) to pass.
  int64_t processing_deadline_s = 20;
  // How long a confirm waits for the PSP's outcome before answering `processing`.
  int64_t settle_wait_ms = 1'000;
  // Progress lines (phases of the run) go here when set.
  std::FILE* progress = nullptr;
};

// How long the scenario's fault lasts: fault_ms, or flap_fault_ms for primary_flaps.
[[nodiscard]] int64_t fault_ms_of(const Scenario& scenario, const ChaosOptions& options);

// Worker threads for an open-loop rate: enough for every payment to start on time while each
// takes up to settle_wait_ms plus half a second, within 4..512.
[[nodiscard]] size_t workers_for(double rate_per_s, int64_t settle_wait_ms);

// One PSP's books: the simulator's against keel's.
struct PspBooks {
  int64_t sim_captured = 0;            // captured authorizations at the simulator: amounts
  int64_t sim_fees = 0;                // and their fees
  int64_t keel_captured = 0;           // keel's succeeded payments on the channel: amount_captured
  int64_t keel_fees = 0;               // and psp_fee
  int64_t clearing_debits = 0;         // psp_clearing:{psp}:USD debits_posted (-1: no account)
  int64_t clearing_credits = 0;        // and credits_posted
  int64_t authorization_attempts = 0;  // keel's, on this channel
  int64_t succeeded = 0;               // keel's payments that succeeded on this channel
  int64_t breaker_opened = 0;          // GET /v1/channels breaker.opened at the end
};

struct ChaosResult {
  std::string scenario;
  double rate_per_s = 0;
  double seconds = 0;  // of load (lead + fault + tail)
  size_t workers = 0;

  // Outcomes, one per offered payment, after settling.
  int64_t offered = 0;
  int64_t succeeded = 0;
  int64_t failed = 0;
  int64_t in_review = 0;                 // outcome unknown at the deadline: a person owns it
  int64_t processing = 0;                // still processing, not in review
  int64_t processing_past_deadline = 0;  // of those, past their deadline: must be 0
  int64_t not_confirmed = 0;   // never confirmed (no channel for 10 s, or a harness error)
  int64_t other = 0;           // any other status
  int64_t harness_errors = 0;  // answers the harness did not expect
  std::vector<std::string> error_samples;  // the first few of them
  int64_t no_channel_answers = 0;          // confirms answered 503 no_channel_available
  int64_t delayed_starts = 0;              // started > 10 ms after their scheduled time
  double start_delay_ms_max = 0;
  double success_rate = 0;  // succeeded / offered

  // Latency of the whole payment, from its scheduled start to its final outcome: the confirm's
  // answer when final, else the final transition in the payment's timeline (keeld's clock).
  // Over the payments that reached a final state.
  double p50_ms = 0, p99_ms = 0, max_ms = 0;

  // PSP requests: authorization attempts (from each payment's `attempts`) over every channel.
  int64_t authorization_attempts = 0;
  int64_t same_channel_retries = 0;  // a try on a channel the payment had already tried
  int64_t failed_over = 0;           // payments with authorization attempts on two channels or more
  int64_t attempts_max = 0;          // most authorization attempts of one payment
  double amplification = 0;          // authorization_attempts / offered
  // Status queries keeld sent to resolve unknown outcomes (keel_psp_status_queries_total at the
  // end of the run; -1 when /metrics did not say), and per offered payment.
  int64_t status_queries = -1;
  double status_queries_per_payment = 0;

  // During the fault (payments scheduled in it).
  int64_t offered_during_fault = 0;
  int64_t succeeded_during_fault = 0;
  int64_t succeeded_elsewhere_during_fault = 0;  // on a PSP that is not failing
  // Payments soft-declined by the primary, and how many of them then succeeded elsewhere.
  int64_t soft_declined_on_primary = 0;
  int64_t soft_declined_then_succeeded = 0;

  // From polling GET /v1/channels every 100 ms: the primary's breaker first seen open after
  // the fault started (ms after; -1 never), and its `opened` count at the end.
  int64_t breaker_open_after_ms = -1;
  int64_t breaker_opened = 0;
  // Traffic back on the primary: the first payment scheduled after the fault ended that
  // succeeded on the primary, its scheduled time after the end (ms; -1 never; exploration sends
  // a few payments to every channel, so this can be early), and the first second after the end
  // in which half the payments that succeeded did so on the primary (ms; -1 never).
  int64_t recovery_ms = -1;
  int64_t traffic_back_ms = -1;

  // The canary (canary_errors; zeros and -1 elsewhere). Its share was set through
  // POST /v1/admin/channels/p1/canary at the fault's start; the rest is from keeld's journaled
  // controls (GET /v1/admin/controls) and the payments' attempts, all on keeld's clock.
  int64_t canary_share_set_pct = 0;            // the share the harness set (0: none)
  int64_t canary_rollbacks = 0;                // canary_rollback controls journaled for p1
  int64_t canary_rollback_after_ms = -1;       // from the share's control to the first rollback
  std::string canary_rollback_reason;          // the first rollback's, as journaled
  int64_t canary_share_at_end_pct = 0;         // p1's canary share in force after the run
  int64_t canary_attempts = 0;                 // authorizations on the canary
  int64_t canary_attempts_after_rollback = 0;  // of those, created after the first rollback
  // Payments the canary answered with an error (retryable), and how many of them then
  // succeeded elsewhere.
  int64_t canary_errors = 0;
  int64_t canary_errors_then_succeeded = 0;

  // Safety.
  int64_t double_charges = 0;  // payments with two operations or more holding money at PSPs
  int64_t orphan_charges = 0;  // operations holding money that no keel attempt names
  std::map<std::string, PspBooks> books;    // by PSP
  std::vector<std::string> books_problems;  // empty: the books agree
  bool books_equal = false;
  bool invariants_ok = false;
};

// Runs one scenario on a fresh keeld and keel-psp-sim and measures it: the load, then a wait
// for every payment to settle, then the books. Thread: any one thread (it starts its own
// workers). Throws std::runtime_error if the programs cannot be started or the run cannot be
// measured.
[[nodiscard]] ChaosResult run_scenario(const Scenario& scenario, const ChaosOptions& options);

// Closed-loop capacity of the healthy system: `connections` clients each paying one payment
// after the other for `seconds`; payments per second. Throws as run_scenario() does.
[[nodiscard]] double measure_capacity(const ChaosOptions& options, double seconds,
                                      size_t connections);

// Every figure of `r` as JSON (one object).
[[nodiscard]] std::string to_json(const ChaosResult& r);

// Every figure of `r` as a few lines of text, for logs.
[[nodiscard]] std::string summary(const ChaosResult& r);

}  // namespace keel::testing::chaos
