#pragma once

#include <cstdint>

#include <string>
#include <vector>
#include "net/http_client.h"

namespace keel::bench {

// One measured scenario: printed as a row of the table and written as a JSON object.
struct Row {
  std::string scenario;
  uint64_t operations = 0;  // transfers (or requests) completed
  double seconds = 0;
  double ops_per_s = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
  std::vector<std::pair<std::string, double>> extra;  // e.g. bytes per transfer
};

// Prints the rows as an aligned table on stdout; writes them as JSON to `json_path` if set.
void report(const std::string& title, const std::vector<Row>& rows, const std::string& json_path);

// Percentile (0..100) of samples in milliseconds; sorts `samples`.
double percentile_ms(std::vector<double>& samples, double p);

// A row of `operations` done in `seconds`, with the latency percentiles of `samples_ms` (sorted).
Row timed_row(std::string scenario, uint64_t operations, double seconds,
              std::vector<double>& samples_ms);

// The API key for requests to keeld at o->endpoint: the admin key of a keeld this bench started
// there, else $KEEL_API_KEY (a keeld measured with --url); none if neither. Requests are signed
// with it (an admin key must sign; another key's signature is checked too).
void use_bench_key(net::HttpClientOptions* o);

// Resident set size of this process, from /proc/self/statm.
uint64_t resident_bytes();

}  // namespace keel::bench
