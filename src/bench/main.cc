// keel-bench: load generator and benchmarks. Prints a table and writes the same figures as JSON.
//   keel-bench ledger [--json FILE]   in-process engine throughput with the journal on
//   keel-bench micro [benchmark flags] Google Benchmark micro benchmarks
#include <benchmark/benchmark.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "bench/ledger_bench.h"

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

  CLI11_PARSE(app, argc, argv);
  try {
    if (ledger->parsed()) {
      const auto rows = keel::bench::run_ledger_bench(ledger_options);
      keel::bench::report("keel-bench ledger", rows, ledger_json);
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
