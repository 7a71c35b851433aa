#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/report.h"

namespace keel::bench {

struct LedgerBenchOptions {
  uint64_t transfers = 4'000'000;  // per scenario
  size_t accounts = 10'000;
  size_t batch = 8190;   // transfers per request
  size_t in_flight = 8;  // requests submitted but not yet answered
  std::string data_dir;  // journal location (on a real disk, not tmpfs)
  uint64_t seed = 1;
  bool history_in_memory = false;  // keep every transfer in memory (no history store)
  bool zipf_only = false;          // run the Zipf scenario only (long runs)
  // Instead: the uniform scenario with the journal's audit chain off, then on, twice (A B A B).
  bool audit_chain_ab = false;
};

// In-process engine throughput, journal on (one fdatasync per group commit), no HTTP:
// uniform and Zipf-skewed (s = 1) account choice. Adds the memory per stored transfer, measured
// once the history tier has moved every transfer to the store (docs/storage.md).
std::vector<Row> run_ledger_bench(const LedgerBenchOptions& options);

}  // namespace keel::bench
