#include "bench/ledger_bench.h"

#include <malloc.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <future>
#include <mutex>
#include <random>
#include <semaphore>
#include <stdexcept>
#include <thread>

#include "engine/engine.h"

namespace keel::bench {
namespace {

// Builds prefix + number without operator+ (GCC 12 -O3 raises a false -Wrestrict on it).
std::string numbered(const char* prefix, uint64_t n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

// Chooses account indexes uniformly or with a Zipf(1) skew (a few hot accounts).
class AccountChooser {
 public:
  AccountChooser(size_t n, bool zipf, uint64_t seed) : n_(n), zipf_(zipf), rng_(seed) {
    if (!zipf) return;
    cdf_.resize(n);
    double sum = 0;
    for (size_t i = 0; i < n; ++i) cdf_[i] = (sum += 1.0 / static_cast<double>(i + 1));
    for (double& c : cdf_) c /= sum;
  }
  size_t next() {
    if (!zipf_) return rng_() % n_;
    const double u = std::uniform_real_distribution<double>(0, 1)(rng_);
    return std::min(
        n_ - 1, static_cast<size_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin()));
  }

 private:
  size_t n_;
  bool zipf_;
  std::mt19937_64 rng_;
  std::vector<double> cdf_;
};

// Makes the next batch of transfers, choosing accounts with `chooser`.
std::vector<ledger::TransferEvent> make_batch(const LedgerBenchOptions& o, AccountChooser& chooser,
                                              uint64_t* made) {
  const Currency usd = *Currency::from_code("USD");
  std::vector<ledger::TransferEvent> b;
  b.reserve(o.batch);
  for (size_t i = 0; i < o.batch && *made < o.transfers; ++i, ++*made) {
    ledger::TransferEvent e;
    e.id = numbered("t", *made);
    const size_t d = chooser.next();
    size_t c = chooser.next();
    if (c == d) c = (d + 1) % o.accounts;
    e.debit_account_id = numbered("acct_", d);
    e.credit_account_id = numbered("acct_", c);
    e.amount = 1 + static_cast<int64_t>(*made % 1000);
    e.currency = usd;
    b.push_back(std::move(e));
  }
  return b;
}

void create_accounts(engine::Engine& e, size_t n) {
  const Currency usd = *Currency::from_code("USD");
  for (size_t i = 0; i < n;) {
    std::vector<ledger::AccountEvent> events;
    for (; i < n && events.size() < ledger::kEventsPerRequestMax; ++i) {
      events.push_back({numbered("acct_", i), usd, 0, {}});
    }
    auto out = engine::wait_for<std::vector<ledger::CreateAccountResult>>(
        [&](auto cb) { e.create_accounts(std::move(events), std::move(cb)); });
    if (out.error != engine::EngineError::ok) throw std::runtime_error("account creation failed");
  }
}

// All batches are made before the clock starts, so the figure is the writer's alone (the
// producer would otherwise compete for the second core). At most `in_flight` requests wait.
Row run_scenario(const LedgerBenchOptions& o, bool zipf, bool audit_chain = true) {
  const fs::path dir = fs::path(o.data_dir) / (zipf ? "zipf" : "uniform");
  fs::remove_all(dir);
  malloc_trim(0);
  const uint64_t rss_before = resident_bytes();
  engine::EngineOptions eo;
  eo.data_dir = dir;
  eo.history_in_memory = o.history_in_memory;
  eo.audit_chain = audit_chain;
  std::unique_ptr<engine::Engine> engine;
  if (Status s = engine::Engine::open(eo, &engine); !s.is_ok())
    throw std::runtime_error(s.message());
  create_accounts(*engine, o.accounts);

  AccountChooser chooser(o.accounts, zipf, o.seed);
  std::vector<std::vector<ledger::TransferEvent>> batches;
  for (uint64_t made = 0; made < o.transfers;) batches.push_back(make_batch(o, chooser, &made));

  std::counting_semaphore<1 << 20> slots(static_cast<std::ptrdiff_t>(o.in_flight));
  std::mutex mu;
  std::vector<double> latencies_ms;
  uint64_t ok = 0;
  const auto start = Clock::now();
  for (auto& batch : batches) {
    slots.acquire();
    const auto sent = Clock::now();
    engine->create_transfers(std::move(batch), [&, sent](auto out) {
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - sent).count();
      {
        std::lock_guard lock(mu);
        latencies_ms.push_back(ms);
        for (auto r : out.value) ok += r == ledger::CreateTransferResult::ok;
      }
      slots.release();
    });
  }
  for (size_t i = 0; i < o.in_flight; ++i) slots.acquire();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  batches = {};

  // Memory is measured once the history tier has caught up (every transfer here is final).
  const auto moved_at = Clock::now();
  for (;;) {
    const auto s = engine::wait_for<engine::EngineStatus>(
        [&](auto cb) { engine->get_status(false, std::move(cb)); });
    if (!s.value.history_enabled ||
        (s.value.history_queued == 0 && s.value.counts.transfers_in_memory == 0)) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double catch_up_s = std::chrono::duration<double>(Clock::now() - moved_at).count();
  malloc_trim(0);
  const uint64_t rss_after = resident_bytes();
  const auto status = engine::wait_for<engine::EngineStatus>(
      [&](auto cb) { engine->get_status(true, std::move(cb)); });
  engine.reset();
  fs::remove_all(dir);

  Row row = timed_row(std::string("engine+journal, batch ") + std::to_string(o.batch) + ", " +
                          (zipf ? "zipf" : "uniform") +
                          (o.history_in_memory ? ", history in memory" : ", history store") +
                          (audit_chain ? "" : ", no audit chain"),
                      ok, seconds, latencies_ms);
  const double n = static_cast<double>(status.value.counts.transfers);
  row.extra = {
      {"group commits (fdatasync)", static_cast<double>(status.value.batches_committed)},
      {"ledger bytes per transfer", static_cast<double>(status.value.ledger_memory_bytes) / n},
      {"resident bytes per transfer", static_cast<double>(rss_after - rss_before) / n},
      {"invariants ok (1 = yes)", status.value.invariants_ok ? 1.0 : 0.0},
      {"transfers in memory at the end",
       static_cast<double>(status.value.counts.transfers_in_memory)},
      {"history store catch-up after the last answer, s", catch_up_s},
      {"history store bytes on disk per transfer",
       static_cast<double>(status.value.history_disk_bytes) / n},
  };
  return row;
}

}  // namespace

std::vector<Row> run_ledger_bench(const LedgerBenchOptions& options) {
  if (options.zipf_only) return {run_scenario(options, true)};
  if (options.audit_chain_ab) {
    return {run_scenario(options, false, false), run_scenario(options, false, true),
            run_scenario(options, false, false), run_scenario(options, false, true)};
  }
  return {run_scenario(options, false), run_scenario(options, true)};
}

}  // namespace keel::bench
