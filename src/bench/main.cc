// keel-bench: load generator and benchmarks. Prints a table and writes the same figures as JSON.
//   keel-bench ledger [--json FILE]   in-process engine throughput with the journal on
//   keel-bench micro [benchmark flags] Google Benchmark micro benchmarks
//   keel-bench http --keeld PATH | --url URL [--json FILE] [--seconds N]
//                                       end-to-end over HTTP against a real keeld
//   keel-bench payments --keeld PATH --psp-sim PATH [--connections N] [--seconds N]
//                       [--faults RATE] [--json FILE]
//                                       card payments end to end: keeld + keel-psp-sim
//   keel-bench chaos --keeld PATH --psp-sim PATH [--scenario NAME|all] [--rate N]
//                    [--seconds N] [--json FILE]
//                                       the chaos suite: PSP faults under open-loop load
#include <benchmark/benchmark.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "bench/ledger_bench.h"
#include "bench/store_bench.h"
#ifdef KEEL_BENCH_HTTP
#include "bench/http_bench.h"
#endif
#ifdef KEEL_BENCH_PAYMENTS
#include "bench/payments_bench.h"
#endif
#ifdef KEEL_BENCH_CHAOS
#include "bench/chaos_bench.h"
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
  ledger->add_flag("--history-in-memory", ledger_options.history_in_memory,
                   "keep every transfer in memory (no history store), as before issue 10");
  ledger->add_flag("--zipf-only", ledger_options.zipf_only, "run the Zipf scenario only");
  ledger->add_flag("--audit-chain-ab", ledger_options.audit_chain_ab,
                   "the uniform scenario with the audit chain off, on, off, on");

  keel::bench::StoreBenchOptions store_options;
  std::string store_json;
  auto* store = app.add_subcommand(
      "store", "the embedded stores (RocksDB, LMDB) under the history tier's access pattern");
  store->add_option("--json", store_json, "write the figures as JSON to this file");
  store->add_option("--dir", store_options.dir, "where the stores are written (a real disk)");
  store->add_option("--records", store_options.records, "records written")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1'000'000'000}));
  store->add_option("--value-bytes", store_options.value_bytes, "bytes per record")
      ->check(CLI::Range(1U, 1U << 20));
  store->add_option("--batch", store_options.batch, "records per durable batch")
      ->check(CLI::Range(1U, 1'000'000U));
  store->add_option("--reads", store_options.reads, "point reads (scans: reads / 100)");

  auto* micro = app.add_subcommand("micro", "Google Benchmark micro benchmarks");
  micro->allow_extras();

#ifdef KEEL_BENCH_HTTP
  keel::bench::HttpBenchOptions http_options;
  std::string http_json;
  auto* http = app.add_subcommand("http", "end-to-end throughput and latency over HTTP");
  http->add_option("--keeld", http_options.keeld_path,
                   "keeld binary to spawn on 127.0.0.1:0 with a fresh data dir");
  http->add_option("--url", http_options.url, "measure this running keeld instead (http://H:P)");
  http->add_option("--key", http_options.key,
                   "the load's key on a spawned keeld: ledger (bearer) or admin (signed)")
      ->check(CLI::IsMember({"ledger", "admin"}));
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

#ifdef KEEL_BENCH_PAYMENTS
  keel::bench::PaymentsBenchOptions payments_options;
  std::string payments_json;
  auto* payments = app.add_subcommand(
      "payments", "card payments end to end (create + confirm) through keeld and keel-psp-sim");
  payments->add_option("--keeld", payments_options.keeld_path, "keeld binary to spawn")->required();
  payments->add_option("--psp-sim", payments_options.psp_sim_path, "keel-psp-sim binary to spawn")
      ->required();
  payments->add_option("--json", payments_json, "write the figures as JSON to this file");
  payments->add_option("--seconds", payments_options.seconds, "duration of the run")
      ->check(CLI::Range(0.1, 3600.0));
  payments
      ->add_option("--connections", payments_options.connections,
                   "client connections, each paying one payment after the other")
      ->check(CLI::Range(1, 1024));
  payments
      ->add_option("--faults", payments_options.faults,
                   "every cardco fault of the simulator at this rate (0.1: 10 % each)")
      ->check(CLI::Range(0.0, 1.0));
  payments
      ->add_option("--settle-wait-ms", payments_options.settle_wait_ms,
                   "how long a confirm waits for the PSP's outcome")
      ->check(CLI::Range(0, 600'000));
  payments->add_flag("!--no-keys", payments_options.keys,
                     "a keeld from before API keys: no [auth] config, no key");
  payments->add_flag("--routing", payments_options.routing,
                     "routing on: each confirm asks the router and journals its decision");
  payments->add_flag("--history-in-memory", payments_options.history_in_memory,
                     "keep every ledger transfer in memory (no history store)");
  payments->add_flag("--snapshot-restart", payments_options.snapshot_restart,
                     "after the run: time a snapshot and a restart of keeld");
  payments->add_option("--data", payments_options.data_dir,
                       "parent of the spawned keeld's data dir (a real disk)");
#endif

#ifdef KEEL_BENCH_CHAOS
  keel::bench::ChaosBenchOptions chaos_options;
  auto* chaos = app.add_subcommand(
      "chaos",
      "PSP faults under open-loop load: keeld with routing, three simulated PSPs and a canary");
  chaos->add_option("--keeld", chaos_options.keeld_path, "keeld binary to spawn")->required();
  chaos->add_option("--psp-sim", chaos_options.psp_sim_path, "keel-psp-sim binary to spawn")
      ->required();
  chaos->add_option("--scenario", chaos_options.scenario,
                    "one scenario (after the baseline) or all");
  chaos
      ->add_option("--rate", chaos_options.rate,
                   "payments/s offered (default: half the healthy capacity, measured first)")
      ->check(CLI::Range(0.0, 100'000.0));
  chaos
      ->add_option("--seconds", chaos_options.seconds,
                   "load per scenario (default: lead + fault + 30 s of recovery)")
      ->check(CLI::Range(0.0, 86'400.0));
  chaos
      ->add_option("--fault-seconds", chaos_options.fault_seconds,
                   "how long each fault lasts (primary_flaps: twice as long)")
      ->check(CLI::Range(1.0, 3'600.0));
  chaos->add_option("--lead-seconds", chaos_options.lead_seconds, "healthy load before the fault")
      ->check(CLI::Range(0.0, 3'600.0));
  chaos->add_option("--seed", chaos_options.seed, "simulator faults and keeld's routing");
  chaos->add_option("--json", chaos_options.json_path, "write the figures as JSON to this file");
  chaos->add_option("--data", chaos_options.data_dir,
                    "parent of the spawned keeld's data dirs (a real disk)");
#endif

  CLI11_PARSE(app, argc, argv);
  try {
    if (ledger->parsed()) {
      const auto rows = keel::bench::run_ledger_bench(ledger_options);
      keel::bench::report("keel-bench ledger", rows, ledger_json);
    } else if (store->parsed()) {
      const auto rows = keel::bench::run_store_bench(store_options);
      keel::bench::report("keel-bench store", rows, store_json);
#ifdef KEEL_BENCH_HTTP
    } else if (http->parsed()) {
      const auto rows = keel::bench::run_http_bench(http_options);
      keel::bench::report("keel-bench http", rows, http_json);
#endif
#ifdef KEEL_BENCH_PAYMENTS
    } else if (payments->parsed()) {
      const auto rows = keel::bench::run_payments_bench(payments_options);
      keel::bench::report("keel-bench payments (a payment: create + confirm)", rows, payments_json);
#endif
#ifdef KEEL_BENCH_CHAOS
    } else if (chaos->parsed()) {
      return keel::bench::run_chaos_bench(chaos_options);
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
