// Google Benchmark micro benchmarks of the hot paths: ledger apply (no journal), journal record
// encoding, CRC-32C, a group commit with and without the audit chain, one routing decision, the id
// index growing to 50 million ids, API key authentication and the rate limiter. Run: keel-bench
// micro [--benchmark_filter=...].
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>

#include "api/auth.h"
#include "core/assert.h"
#include "core/crc32c.h"
#include "engine/records.h"
#include "journal/memory_storage.h"
#include "ledger/ledger.h"
#include "routing/router.h"
#include "security/api_key.h"
#include "security/key_ring.h"
#include "security/request_signing.h"
#include "vault/vault.h"

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

// One routing decision among `channels` eligible card channels with live statistics (a
// failover's shape: one channel already tried), the work the writer adds to every confirm.
void BM_RoutingDecision(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const Currency usd = *Currency::from_code("USD");
  std::vector<routing::ChannelDef> defs(n);
  for (size_t i = 0; i < n; ++i) {
    defs[i].name = numbered("ch", i);
    defs[i].psp = defs[i].name;
    defs[i].currencies = {usd};
    defs[i].cost_bps = 100 + static_cast<int64_t>(i) * 10;
    defs[i].cost_fixed = 25;
  }
  routing::RouterOptions options;
  options.seed = 42;
  routing::Router router(options, defs);
  Timestamp now = 1'800'000'000LL * 1'000'000'000LL;
  std::vector<routing::BreakerTransition> transitions;
  for (size_t i = 0; i < 10'000; ++i) {  // statistics to score on
    const std::string id = numbered("a", i);
    const std::string& ch = defs[i % n].name;
    router.call_started(id, ch, true, false, now);
    router.call_ended(id,
                      i % 17 == 0 ? routing::CallEnd::declined_soft : routing::CallEnd::approved,
                      static_cast<int64_t>(20 + i % 200), now, &transitions);
  }
  const std::vector<std::string> tried = {defs[0].name};
  int64_t amount = 1;
  for (auto _ : state) {
    amount = amount % 1'000'000 + 997;
    benchmark::DoNotOptimize(
        router.decide({routing::Flow::card_payment, usd, amount, "", tried}, now));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RoutingDecision)->Arg(3)->Arg(10)->Unit(benchmark::kNanosecond);

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

// What the audit chain costs a group commit: staging state.range(1) records of 200 bytes and
// committing them to the in-memory storage (no fsync, so the chain's share shows in full), with
// the chain off (range(0) = 0) and on (1): on adds one SHA-256 over the batch and one record.
void BM_StorageCommit(benchmark::State& state) {
  journal::MemoryStorageOptions o;
  o.audit_chain = state.range(0) != 0;
  const auto records = static_cast<size_t>(state.range(1));
  const std::string payload(200, 'p');
  uint64_t bytes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto disk = std::make_shared<journal::MemoryDisk>();
    std::unique_ptr<journal::MemoryStorage> s;
    KEEL_ASSERT(journal::MemoryStorage::open(disk, o, &s).is_ok());
    state.ResumeTiming();
    for (int batch = 0; batch < 16; ++batch) {
      for (size_t i = 0; i < records; ++i) {
        s->begin_record(2, static_cast<Timestamp>(s->next_seq())).append(payload);
        s->end_record();
      }
      bytes += s->staged_bytes();
      KEEL_ASSERT(s->commit().is_ok());
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 16 * records));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_StorageCommit)
    ->ArgsProduct({{0, 1}, {1, 100, 4096}})
    ->ArgNames({"chain", "records"})
    ->Unit(benchmark::kMicrosecond);

// What authenticating one request costs the API thread: parse the Authorization header, hash the
// secret (SHA-256), find the key in a ring of state.range(0) keys, compare digests.
void BM_Authenticate(benchmark::State& state) {
  security::KeyRing ring;
  std::string header;
  for (int64_t i = 0; i < state.range(0); ++i) {
    const security::GeneratedKey k = security::generate_key();
    (void)ring.apply(
        security::cmd::CreateKey{k.id, security::Role::merchant,
                                 numbered("mch_", static_cast<uint64_t>(i)), k.hash, ""},
        1 + i);
    if (i == state.range(0) / 2) header = "Bearer " + k.text;
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(api::authenticate(header, ring, 1'000'000'000));
  }
}
BENCHMARK(BM_Authenticate)->Arg(10)->Arg(100'000)->Unit(benchmark::kNanosecond);

// What checking a request's Keel-Signature costs: SHA-256 of a body of state.range(0) bytes, the
// canonical request, one HMAC-SHA256 and a constant-time comparison.
void BM_VerifySignature(benchmark::State& state) {
  const security::GeneratedKey key = security::generate_key();
  const std::string body(static_cast<size_t>(state.range(0)), 'x');
  const std::string target = "/v1/transfers?b=2&a=1";
  const std::string header =
      security::sign_request(key.text, "POST", target, body, 1'800'000'000, security::new_nonce());
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        security::verify_request(key.hash, header, "POST", target, body, 1'800'000'000));
  }
}
BENCHMARK(BM_VerifySignature)->Arg(200)->Arg(64 << 10)->Unit(benchmark::kNanosecond);

// One token taken from a key's bucket (the mutex and the map lookup included).
void BM_RateLimiterTake(benchmark::State& state) {
  api::RateLimits limits{};
  limits[static_cast<size_t>(security::Role::merchant)] = {1e12, 1e12};
  int64_t now = 0;
  api::RateLimiter limiter(limits, [&now] { return ++now; });
  const api::Caller caller{"key_0123456789abcdef", security::Role::merchant, "mch_1"};
  for (auto _ : state) benchmark::DoNotOptimize(limiter.take(caller));
}
BENCHMARK(BM_RateLimiterTake);

// The card vault (docs/security.md): what storing a card costs the API thread (the checks, the
// BIN lookup, a fingerprint, a data key sealed and wrapped: two AES-256-GCM encryptions and an
// HMAC), and what opening it for a PSP call costs the dispatcher (two decryptions).
vault::Vault bench_vault() {
  vault::VaultOptions o;
  KEEL_ASSERT(
      vault::MasterKeys::parse(vault::new_key_file_text(vault::system_random), &o.keys).is_ok());
  KEEL_ASSERT(vault::BinTable::parse("4,US\n424242,GB\n51-55,US\n", &o.bins).is_ok());
  return vault::Vault(std::move(o));
}

void BM_VaultStoreCard(benchmark::State& state) {
  const vault::Vault v = bench_vault();
  const std::string id = "pm_" + std::string(24, 'a');
  for (auto _ : state) {
    benchmark::DoNotOptimize(v.prepare(id, "4242 4242 4242 4242", 12, 2040,
                                       vault::OwnerKind::merchant, "mch_1", "123",
                                       1'800'000'000 * kNanosPerSecond));
  }
}
BENCHMARK(BM_VaultStoreCard)->Unit(benchmark::kNanosecond);

void BM_VaultOpenCard(benchmark::State& state) {
  vault::Vault v = bench_vault();
  const vault::PaymentMethod m =
      v.prepare("pm_" + std::string(24, 'a'), "4242424242424242", 12, 2040,
                vault::OwnerKind::merchant, "mch_1", "", 1'800'000'000 * kNanosPerSecond)
          .method;
  vault::OpenCard card;
  for (auto _ : state) {
    KEEL_ASSERT(v.open(m, 1'800'000'000 * kNanosPerSecond, &card).is_ok());
    benchmark::DoNotOptimize(card.number.data());
  }
}
BENCHMARK(BM_VaultOpenCard)->Unit(benchmark::kNanosecond);

// The transfer id index as it grows to state.range(0) ids, with the existence check the ledger
// makes before each insert: time per insert and, as a counter, the longest single insert (the
// writer's pause when the index grows; incremental growth keeps it to milliseconds).
void BM_IdIndexGrowth(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  ledger::IdIndex probe_keys({1, 2});
  std::vector<uint64_t> hashes(n);
  for (size_t i = 0; i < n; ++i) hashes[i] = probe_keys.hash(numbered("t", i));
  const auto never = [](uint32_t) { return std::string_view("x"); };
  double longest_ms = 0;
  for (auto _ : state) {
    ledger::IdIndex index({1, 2});
    for (size_t i = 0; i < n; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      benchmark::DoNotOptimize(index.find("absent", hashes[i], never));
      index.insert_hashed(hashes[i], static_cast<uint32_t>(i));
      longest_ms = std::max(
          longest_ms,
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
  state.counters["longest_insert_ms"] = longest_ms;
}
BENCHMARK(BM_IdIndexGrowth)->Arg(50'000'000)->Iterations(1)->Unit(benchmark::kSecond);

}  // namespace
