// Google Benchmark micro benchmarks of the hot paths: ledger apply (no journal), journal record
// encoding, CRC-32C. Run: keel-bench micro [--benchmark_filter=...].
#include <benchmark/benchmark.h>

#include "core/crc32c.h"
#include "engine/records.h"
#include "ledger/ledger.h"

namespace {

// Builds prefix + number without operator+ (GCC 12 -O3 raises a false -Wrestrict on it).
std::string numbered(const char* prefix, uint64_t n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

using namespace keel;  // NOLINT

std::vector<ledger::TransferEvent> make_transfers(size_t n, size_t accounts, uint64_t offset) {
  std::vector<ledger::TransferEvent> out(n);
  const Currency usd = *Currency::from_code("USD");
  for (size_t i = 0; i < n; ++i) {
    out[i].id = numbered("t", offset + i);
    out[i].debit_account_id = numbered("acct_", (i * 7919) % accounts);
    out[i].credit_account_id = numbered("acct_", (i * 7919 + 1) % accounts);
    out[i].amount = 1 + static_cast<int64_t>(i % 100);
    out[i].currency = usd;
  }
  return out;
}

void BM_LedgerApply(benchmark::State& state) {
  const size_t accounts = 10000;
  ledger::Ledger l;
  std::vector<ledger::AccountEvent> acc;
  for (size_t i = 0; i < accounts; ++i) {
    acc.push_back({numbered("acct_", i), *Currency::from_code("USD"), 0, {}});
    if (acc.size() == ledger::kEventsPerRequestMax || i + 1 == accounts) {
      l.create_accounts(acc, 1);
      acc.clear();
    }
  }
  uint64_t offset = 0;
  Timestamp now = 1'000'000;
  for (auto _ : state) {
    state.PauseTiming();
    auto batch = make_transfers(8190, accounts, offset);
    offset += batch.size();
    now += 10'000;
    state.ResumeTiming();
    benchmark::DoNotOptimize(l.create_transfers(batch, now));
  }
  state.SetItemsProcessed(static_cast<int64_t>(offset));
}
BENCHMARK(BM_LedgerApply)->Unit(benchmark::kMillisecond);

void BM_EncodeTransfers(benchmark::State& state) {
  const auto batch = make_transfers(8190, 10000, 0);
  std::string out;
  for (auto _ : state) {
    out.clear();
    engine::encode_transfers(batch, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch.size()));
}
BENCHMARK(BM_EncodeTransfers)->Unit(benchmark::kMicrosecond);

void BM_Crc32c(benchmark::State& state) {
  const std::string data(1 << 20, 'x');
  for (auto _ : state) benchmark::DoNotOptimize(crc32c(data));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_Crc32c);

}  // namespace
