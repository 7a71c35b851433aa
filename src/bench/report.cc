#include "bench/report.h"

#include <cstdlib>

#include "security/request_signing.h"
#include "testing/keeld_process.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

namespace keel::bench {

Row timed_row(std::string scenario, uint64_t operations, double seconds,
              std::vector<double>& samples_ms) {
  Row r;
  r.scenario = std::move(scenario);
  r.operations = operations;
  r.seconds = seconds;
  r.ops_per_s = static_cast<double>(operations) / seconds;
  r.p50_ms = percentile_ms(samples_ms, 50);
  r.p99_ms = percentile_ms(samples_ms, 99);
  r.max_ms = percentile_ms(samples_ms, 100);
  return r;
}

double percentile_ms(std::vector<double>& samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const size_t i = std::min(samples.size() - 1, static_cast<size_t>(p / 100.0 * samples.size()));
  return samples[i];
}

void use_bench_key(net::HttpClientOptions* o) {
  testing::use_admin_key(o);
  if (!o->api_key.empty()) return;
  if (const char* env = std::getenv("KEEL_API_KEY"); env != nullptr && *env != '\0') {
    o->api_key = env;
    o->sign = security::request_signer<net::HttpHeaders>(o->api_key);
  }
}

uint64_t resident_bytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

void report(const std::string& title, const std::vector<Row>& rows, const std::string& json_path) {
  std::printf("\n%s\n", title.c_str());
  std::printf("%-44s %12s %9s %14s %9s %9s %9s\n", "scenario", "ops", "seconds", "ops/s", "p50 ms",
              "p99 ms", "max ms");
  for (const Row& r : rows) {
    std::printf("%-44s %12llu %9.3f %14.0f %9.3f %9.3f %9.3f\n", r.scenario.c_str(),
                static_cast<unsigned long long>(r.operations), r.seconds, r.ops_per_s, r.p50_ms,
                r.p99_ms, r.max_ms);
    for (const auto& [k, v] : r.extra) std::printf("    %-40s %14.1f\n", k.c_str(), v);
  }
  std::fflush(stdout);
  if (json_path.empty()) return;
  std::ofstream out(json_path);
  out << "{\"title\": \"" << title << "\", \"rows\": [";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    out << (i ? ", " : "") << "{\"scenario\": \"" << r.scenario
        << "\", \"operations\": " << r.operations << ", \"seconds\": " << r.seconds
        << ", \"ops_per_s\": " << r.ops_per_s << ", \"p50_ms\": " << r.p50_ms
        << ", \"p99_ms\": " << r.p99_ms << ", \"max_ms\": " << r.max_ms;
    for (const auto& [k, v] : r.extra) out << ", \"" << k << "\": " << v;
    out << "}";
  }
  out << "]}\n";
}

}  // namespace keel::bench
