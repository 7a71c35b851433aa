#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/report.h"

namespace keel::bench {

struct PaymentsBenchOptions {
  std::string keeld_path;               // keeld binary, spawned on 127.0.0.1:0
  std::string psp_sim_path;             // keel-psp-sim binary, spawned beside it
  std::string data_dir = "bench-data";  // parent of keeld's data dir (a real disk, not tmpfs)
  double seconds = 10;
  size_t connections = 64;
  // Every cardco fault of keel-psp-sim at this rate (0: none), as the soak test sets them
  // (testing::all_faults_toml), without latency.
  double faults = 0;
  // How long a confirm waits for the PSP's outcome before answering `processing`.
  int64_t settle_wait_ms = 500;
  uint64_t seed = 1;
  // Routing on ([routing] in keeld.toml): every confirm asks the router and journals its
  // decision; card payments still all go to cardco (bankco carries only top-ups and payouts).
  bool routing = false;
  // [engine] history = "memory": every ledger transfer stays in memory (no history store).
  bool history_in_memory = false;
  // After the run: a snapshot (its duration and size) and a restart of keeld on the same data
  // (stop and start until it listens again; its resident memory then).
  bool snapshot_restart = false;
  // The load pays with a merchant key (plain Bearer; keeld's per-key rate limit lifted for it).
  // False: for a keeld from before API keys (no [auth] in its config, no key sent).
  bool keys = true;
};

// Card payments end to end: keeld and keel-psp-sim (PSP cardco, zero latency, journal on) run as
// child processes; `connections` clients each create and confirm payments one after the other
// (two requests, each with its own Idempotency-Key) for `seconds`. A transport error or a 5xx
// is retried with the same key. Rows: the whole payment (create + confirm) and the confirm
// alone, with payments per second and latency percentiles; extras count how confirms answered.
// Throws std::runtime_error if the programs cannot be started or an answer is wrong.
std::vector<Row> run_payments_bench(const PaymentsBenchOptions& options);

}  // namespace keel::bench
