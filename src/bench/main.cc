// keel-bench: load generator and benchmarks. Prints a table and writes the same figures as JSON.
//   keel-bench ledger [--json FILE]   in-process engine throughput with the journal on
//   keel-bench micro [benchmark flags] Google Benchmark micro benchmarks
//   keel-bench http --keeld PATH | --url URL [--json FILE] [--seconds N]
//                                       end-to-end over HTTP against a real keeld
#include <benchmark/benchmark.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "bench/ledger_bench.h"
#ifdef KEEL_BENCH_HTTP
#include "bench/http_bench.h"
#endif

int main(int argc, char** argv) {
  CLI::App app{"keel-bench: keel benchmarks"};
  app.require_subcommand(1);

  keel::bench::LedgerBenchOptions ledger_options;
  ledger_options.data_dir = "bench-data";
  std::string ledger_json;
  auto* ledger = app.add_subcommand("ledger", "in-process engine throughput, journal on");
  ledger->add_option("--json", ledger_json, "write the figures as JSON to this file");
  ledger->add_option("--transfers", ledger_options.transfers, "transfers per scenario");
  ledger->add_option("--accounts", ledger_options.accounts, "accounts");
  ledger->add_option("--batch", ledger_options.batch, "transfers per request (max 8190)")
      ->check(CLI::Range(1, 8190));
  ledger->add_option("--in-flight", ledger_options.in_flight, "requests in flight");
  ledger->add_option("--data", ledger_options.data_dir, "journal directory (a real disk)");

  auto* micro = app.add_subcommand("micro", "Google Benchmark micro benchmarks");
  micro->allow_extras();

#ifdef KEEL_BENCH_HTTP
  keel::bench::HttpBenchOptions http_options;
  std::string http_json;
  auto* http = app.add_subcommand("http", "end-to-end throughput and latency over HTTP");
  http->add_option("--keeld", http_options.keeld_path,
                   "keeld binary to spawn on 127.0.0.1:0 with a fresh data dir");
  http->add_option("--url", http_options.url, "measure this running keeld instead (http://H:P)");
  http->add_option("--json", http_json, "write the figures as JSON to this file");
  http->add_option("--seconds", http_options.seconds, "duration of each scenario")
      ->check(CLI::Range(0.1, 3600.0));
  http->add_option("--data", http_options.data_dir,
                   "parent of the spawned keeld's data dir (a real disk)");
  http->add_option("--accounts", http_options.accounts, "accounts")
      ->check(CLI::Range(2, 1'000'000));
  http->add_option("--batch", http_options.batch, "transfers per request (max 8190)")
      ->check(CLI::Range(2, 8190));
  http->add_option("--batch-connections", http_options.batch_connections,
                   "connections sending batches")
      ->check(CLI::Range(1, 256));
  http->add_option("--single-connections", http_options.single_connections,
                   "connections sending one transfer per request")
      ->check(CLI::Range(1, 1024));
#endif

  CLI11_PARSE(app, argc, argv);
  try {
    if (ledger->parsed()) {
      const auto rows = keel::bench::run_ledger_bench(ledger_options);
      keel::bench::report("keel-bench ledger", rows, ledger_json);
#ifdef KEEL_BENCH_HTTP
    } else if (http->parsed()) {
      const auto rows = keel::bench::run_http_bench(http_options);
      keel::bench::report("keel-bench http", rows, http_json);
#endif
    } else if (micro->parsed()) {
      std::vector<std::string> extras = micro->remaining();
      std::vector<char*> args = {argv[0]};
      for (auto& e : extras) args.push_back(e.data());
      int n = static_cast<int>(args.size());
      benchmark::Initialize(&n, args.data());
      benchmark::RunSpecifiedBenchmarks();
      benchmark::Shutdown();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "keel-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
