#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/report.h"

namespace keel::bench {

struct HttpBenchOptions {
  // A running keeld to measure ("http://127.0.0.1:8080"). Empty: spawn `keeld_path` on
  // 127.0.0.1:0 with a fresh data directory under `data_dir`, and stop it (SIGTERM) at the end.
  std::string url;
  std::string keeld_path;
  std::string data_dir = "bench-data";  // on a real disk, not tmpfs
  double seconds = 10;                  // per scenario
  size_t accounts = 10'000;
  size_t batch = 8190;  // transfers per request in the batch scenario
  size_t batch_connections = 2;
  size_t single_connections = 64;
  uint64_t seed = 1;
  // The load's key on a keeld this bench starts: "ledger" (a key made for the run, sent as plain
  // Bearer) or "admin" (signed: each write also journals its nonce first). A keeld with no keys
  // (an older build) gets none. With --url: $KEEL_API_KEY, signed.
  std::string key = "ledger";
};

// End-to-end throughput and latency over HTTP, journal on: (a) batches of `batch` transfers
// from `batch_connections` keep-alive connections, (b) one transfer per request from
// `single_connections` connections, each scenario for `seconds`. Request bodies are built
// before the clock starts (only the ids are rewritten in place), so the client spends its CPU
// on HTTP, not on JSON. Every answer is checked (200, every result ok); 503s are counted and
// retried. Throws std::runtime_error if keeld cannot be started or set up, or stops badly.
std::vector<Row> run_http_bench(const HttpBenchOptions& options);

}  // namespace keel::bench
