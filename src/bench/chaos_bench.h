#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace keel::bench {

struct ChaosBenchOptions {
  std::string keeld_path;               // keeld binary, spawned on 127.0.0.1:0 per scenario
  std::string psp_sim_path;             // keel-psp-sim binary, spawned beside it
  std::string data_dir = "bench-data";  // parent of keeld's data dirs (a real disk, not tmpfs)
  std::string scenario = "all";         // a name of testing::chaos::scenarios(), or "all"
  double rate = 0;               // payments/s offered; 0: half the healthy capacity, measured first
  double capacity_seconds = 10;  // closed-loop capacity measurement (when rate is 0)
  size_t capacity_connections = 32;
  double lead_seconds = 10;   // healthy load before the fault
  double fault_seconds = 60;  // primary_flaps: twice this, flapping every fault_seconds / 6
  // Load per scenario (lead + fault + the rest); 0: lead + fault + 30 s of recovery.
  // primary_flaps runs its longer fault on top.
  double seconds = 0;
  int64_t processing_deadline_s = 120;
  uint64_t seed = 1;
  std::string json_path;  // write the figures as JSON here when set
};

// The chaos suite at full size (src/testing/chaos.h): the baseline, then each scenario asked
// for, each on a fresh keeld and keel-psp-sim at the same open-loop rate. Prints a table on
// stdout (progress on stderr) and writes JSON when asked. Returns 0, or 1 if a safety figure
// failed (double charges, books that differ, broken invariants, payments processing past their
// deadline, answers the harness did not expect). Throws std::runtime_error on bad options or if
// the programs cannot be run.
int run_chaos_bench(const ChaosBenchOptions& options);

}  // namespace keel::bench
