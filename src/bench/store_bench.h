#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "bench/report.h"

namespace keel::bench {

// `keel-bench store`: the two embedded stores Debian packages (RocksDB, LMDB) under the access
// pattern keel's history tier would give them (docs/storage.md): records written in batches by
// a background thread, each batch durable before the next (sync), keyed by object id (random
// order: ids are not written in key order); point reads by id; short ordered scans (a list
// page). The figures choose the store; the bench stays so the choice can be re-checked.
struct StoreBenchOptions {
  std::filesystem::path dir = "bench-data/store";  // a real disk; emptied first
  uint64_t records = 1'000'000;
  uint32_t value_bytes = 600;  // about a settled payment with its attempts and timeline
  uint32_t batch = 1'000;      // records per durable write batch
  uint64_t reads = 200'000;    // point reads (and reads / 100 scans of 100 records)
  uint64_t seed = 1;
};

[[nodiscard]] std::vector<Row> run_store_bench(const StoreBenchOptions& options);

}  // namespace keel::bench
