// SIGTERM: keeld stops cleanly under load. Every answer it gave before exiting is whole and
// durable, commands it refused while stopping were not applied, and once it is gone a request
// fails to connect rather than getting half an answer.

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "api/json_codec.h"
#include "durability_util.h"
#include "engine/engine.h"
#include "testing/temp_dir.h"

namespace keel::durability {
namespace {

namespace json = boost::json;
using ledger::TransferEvent;

constexpr int kClients = 4;
constexpr int kAccounts = 20;
// Bound on how long a client keeps sending (the stop comes long before).
constexpr auto kClientTimeMax = std::chrono::seconds(60);

std::vector<ledger::AccountEvent> plain_accounts(int n) {
  std::vector<ledger::AccountEvent> accounts;
  for (int i = 0; i < n; ++i) {
    ledger::AccountEvent a;
    a.id = "acct_" + std::to_string(i);
    a.currency = *Currency::from_code("USD");
    accounts.push_back(a);
  }
  return accounts;
}

struct Request {
  std::vector<TransferEvent> events;
  std::vector<std::string> ids;
  bool sent_after_stop = false;  // started after stop() had returned
  PostOutcome outcome;
};

// Sends single transfers and batches of 20-100 until a request sent after the stop fails.
void send_until_gone(int index, uint64_t seed, uint16_t port, const std::atomic<bool>& stopped,
                     std::vector<Request>* out) {
  std::mt19937_64 rng(seed);
  auto pick = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto client = make_client(port);
  const auto deadline = std::chrono::steady_clock::now() + kClientTimeMax;
  uint64_t seq = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    Request r;
    r.sent_after_stop = stopped.load();
    const int n = pick(0, 1) == 0 ? 1 : pick(20, 100);
    for (int i = 0; i < n; ++i) {
      TransferEvent e;
      e.id = "s" + std::to_string(index) + "n" + std::to_string(seq++);
      const int debit = pick(0, kAccounts - 1);
      e.debit_account_id = "acct_" + std::to_string(debit);
      e.credit_account_id = "acct_" + std::to_string((debit + pick(1, kAccounts - 1)) % kAccounts);
      e.amount = pick(1, 1000);
      e.currency = *Currency::from_code("USD");
      r.ids.push_back(e.id);
      r.events.push_back(std::move(e));
    }
    r.outcome = post_events(*client, "/v1/transfers", transfers_body(r.events), r.ids);
    const bool done = r.sent_after_stop && !r.outcome.answered;
    const bool refused = !r.outcome.answered || r.outcome.status == 503;
    out->push_back(std::move(r));
    if (done) return;
    if (refused) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

TEST(ShutdownTest, SigtermUnderLoadAnswersWholeAndDurablyOrNotAtAll) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (KEEL_TEST_SEED to replay)");
  std::printf("shutdown test seed: %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  testing::TempDir dir;
  const auto data_dir = dir.path() / "data";
  std::unique_ptr<testing::KeeldProcess> keeld;
  Status s = start_keeld(data_dir, "", &keeld);
  ASSERT_TRUE(s.is_ok()) << s.message();
  const uint16_t port = keeld->port();
  {
    auto client = make_client(port);
    s = create_accounts(*client, plain_accounts(kAccounts));
    ASSERT_TRUE(s.is_ok()) << s.message();
  }

  std::atomic<bool> stopped{false};
  std::vector<std::vector<Request>> sent(kClients);
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back(send_until_gone, c, rng(), port, std::cref(stopped), &sent[c]);
  }
  std::this_thread::sleep_for(
      std::chrono::milliseconds(std::uniform_int_distribution<int>(100, 400)(rng)));
  const auto stop_begin = std::chrono::steady_clock::now();
  const int code = keeld->stop();
  const auto stop_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - stop_begin)
                           .count();
  stopped.store(true);
  for (auto& t : threads) t.join();
  EXPECT_EQ(code, 0) << "keeld's exit code after SIGTERM";
  {
    auto late = make_client(port);
    net::HttpResponse r;
    EXPECT_FALSE(late->get("/healthz", &r).is_ok()) << "something answers after keeld exited";
  }

  // Whole answers only: 200 with one result per event (all ok: fresh ids, no limits) or 503.
  std::vector<std::string> ids;
  size_t answered_ok = 0;
  size_t refused = 0;
  size_t failed_before_stop = 0;
  for (const auto& requests : sent) {
    for (const Request& r : requests) {
      ids.insert(ids.end(), r.ids.begin(), r.ids.end());
      if (r.sent_after_stop) {
        EXPECT_FALSE(r.outcome.answered)
            << "a request sent after keeld exited got HTTP " << r.outcome.status;
      }
      if (!r.outcome.answered) {
        failed_before_stop += r.sent_after_stop ? 0 : 1;
        continue;
      }
      EXPECT_TRUE(r.outcome.status == 200 || r.outcome.status == 503)
          << "HTTP " << r.outcome.status << " for " << r.ids[0];
      if (r.outcome.status == 503) ++refused;
      if (r.outcome.status != 200) continue;
      ++answered_ok;
      EXPECT_EQ(r.outcome.problem, "");
      for (size_t i = 0; i < r.outcome.results.size(); ++i) {
        EXPECT_EQ(r.outcome.results[i], "ok") << r.ids[i];
      }
    }
  }
  EXPECT_GT(answered_ok, 0u);
  std::printf(
      "stop took %lld ms; %zu requests answered 200, %zu answered 503, %zu failed "
      "before the stop returned, %zu transfer ids sent\n",
      static_cast<long long>(stop_ms), answered_ok, refused, failed_before_stop, ids.size());

  // A clean stop leaves no torn tail.
  engine::VerifyReport report;
  s = engine::verify_data_dir(data_dir, &report);
  ASSERT_TRUE(s.is_ok()) << s.message();
  EXPECT_EQ(report.journal.torn_tail_bytes, 0u) << report.journal.torn_tail_at;

  s = start_keeld(data_dir, "", &keeld);
  ASSERT_TRUE(s.is_ok()) << s.message();
  TransferLookup found;
  s = get_transfers(keeld->port(), ids, 4, &found);
  ASSERT_TRUE(s.is_ok()) << s.message();
  std::map<std::string, ledger::Balances> expected;
  size_t existing = 0;
  for (const auto& requests : sent) {
    for (const Request& r : requests) {
      const bool acked = r.outcome.answered && r.outcome.status == 200;
      const bool refused_whole = r.outcome.answered && r.outcome.status == 503;
      for (size_t i = 0; i < r.ids.size(); ++i) {
        const auto& t = found.at(r.ids[i]);
        if (acked) {
          EXPECT_TRUE(t.has_value()) << "answered transfer " << r.ids[i] << " is lost";
        }
        if (refused_whole) {
          EXPECT_FALSE(t.has_value()) << "503 but " << r.ids[i] << " exists";
        }
        if (!t) continue;
        ++existing;
        EXPECT_EQ(transfer_mismatch(expected_transfer(r.events[i], nullptr), *t), "");
        add_effect(*t, &expected);
      }
    }
  }
  auto client = make_client(keeld->port());
  for (const auto& a : plain_accounts(kAccounts)) {
    ledger::Balances got;
    ASSERT_TRUE(get_balances(*client, a.id, &got).is_ok());
    EXPECT_EQ(got, expected[a.id])
        << a.id << ": " << balances_text(got) << " vs " << balances_text(expected[a.id]);
  }
  json::object status;
  ASSERT_TRUE(get_full_status(*client, &status).is_ok());
  EXPECT_TRUE(status.at("invariants_ok").as_bool()) << json::serialize(status);
  EXPECT_EQ(status.at("counts").at("transfers").to_number<uint64_t>(), existing);
  EXPECT_EQ(std::string(status.at("state_hash").as_string()), api::hash_to_hex(report.state_hash));
  client.reset();
  EXPECT_EQ(keeld->stop(), 0);
}

// An idle keeld with live holds stops on SIGTERM with exit code 0 and comes back with the same
// state, bit for bit.
TEST(ShutdownTest, SigtermKeepsExactState) {
  testing::TempDir dir;
  const auto data_dir = dir.path() / "data";
  std::unique_ptr<testing::KeeldProcess> keeld;
  Status s = start_keeld(data_dir, "", &keeld);
  ASSERT_TRUE(s.is_ok()) << s.message();
  auto client = make_client(keeld->port());
  ASSERT_TRUE(create_accounts(*client, plain_accounts(3)).is_ok());
  std::vector<TransferEvent> transfers;
  for (int i = 0; i < 6; ++i) {
    TransferEvent e;
    e.id = "t" + std::to_string(i);
    e.debit_account_id = "acct_" + std::to_string(i % 3);
    e.credit_account_id = "acct_" + std::to_string((i + 1) % 3);
    e.amount = 100 + i;
    e.currency = *Currency::from_code("USD");
    if (i % 2 == 1) e.flags = ledger::transfer_flags::kPending;
    if (i == 5) e.timeout_s = 3600;
    transfers.push_back(e);
  }
  s = create_transfers(*client, transfers);
  ASSERT_TRUE(s.is_ok()) << s.message();
  json::object before;
  ASSERT_TRUE(get_full_status(*client, &before).is_ok());
  client.reset();
  EXPECT_EQ(keeld->stop(), 0);

  s = start_keeld(data_dir, "", &keeld);
  ASSERT_TRUE(s.is_ok()) << s.message();
  client = make_client(keeld->port());
  json::object after;
  ASSERT_TRUE(get_full_status(*client, &after).is_ok());
  EXPECT_EQ(after.at("state_hash"), before.at("state_hash"));
  // The state's counts; how many transfers sit in memory rather than in the history store is
  // not state (the store's mover runs on its own time, and a restart replays the tail into
  // memory first), so it is left out.
  const auto state_counts = [](const json::object& status) {
    json::object counts = status.at("counts").as_object();
    counts.erase("transfers_in_memory");
    return counts;
  };
  EXPECT_EQ(state_counts(after), state_counts(before));
  EXPECT_TRUE(after.at("invariants_ok").as_bool());
  for (const TransferEvent& e : transfers) {
    std::optional<StoredTransfer> t;
    ASSERT_TRUE(get_transfer(*client, e.id, &t).is_ok());
    ASSERT_TRUE(t.has_value()) << e.id;
    EXPECT_EQ(transfer_mismatch(expected_transfer(e, nullptr), *t), "");
  }
  client.reset();
  EXPECT_EQ(keeld->stop(), 0);
}

}  // namespace
}  // namespace keel::durability
