#include "engine/engine.h"

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>
#include <array>
#include <fstream>

#include <csignal>

#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "core/bytes.h"
#include "engine/records.h"
#include "journal/journal.h"
#include "journal/memory_storage.h"
#include "ledger/ledger_test_util.h"
#include "payments/payment_history.h"
#include "store/store.h"
#include "testing/file_size_limit.h"

namespace keel::engine {
namespace {

using namespace ledger::testing;  // NOLINT
using ledger::CreateTransferResult;
namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "keel-engine-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

class EngineTest : public ::testing::Test {
 protected:
  std::unique_ptr<Engine> open(EngineOptions o = {}) {
    o.data_dir = dir_.path();
    std::unique_ptr<Engine> e;
    const Status s = Engine::open(o, &e);
    EXPECT_TRUE(s.is_ok()) << s.message();
    return e;
  }
  static std::vector<ledger::CreateAccountResult> accounts(Engine& e,
                                                           std::vector<ledger::AccountEvent> ev) {
    auto o = wait_for<std::vector<ledger::CreateAccountResult>>(
        [&](auto cb) { e.create_accounts(std::move(ev), std::move(cb)); });
    EXPECT_EQ(o.error, EngineError::ok);
    return o.value;
  }
  static std::vector<CreateTransferResult> transfers(Engine& e,
                                                     std::vector<ledger::TransferEvent> ev) {
    auto o = wait_for<std::vector<CreateTransferResult>>(
        [&](auto cb) { e.create_transfers(std::move(ev), std::move(cb)); });
    EXPECT_EQ(o.error, EngineError::ok);
    return o.value;
  }
  static EngineStatus status(Engine& e) {
    return wait_for<EngineStatus>([&](auto cb) { e.get_status(true, std::move(cb)); }).value;
  }
  static std::optional<ledger::Transfer> transfer_of(Engine& e, std::string id) {
    return wait_for<std::optional<ledger::Transfer>>(
               [&](auto cb) { e.get_transfer(std::move(id), std::move(cb)); })
        .value;
  }

  TempDir dir_;
};

TEST_F(EngineTest, WritesSurviveRestartWithTheSameStateHash) {
  uint64_t hash = 0;
  {
    auto e = open();
    ASSERT_EQ(accounts(*e, {account("a"), account("b")}).size(), 2u);
    EXPECT_EQ(
        transfers(*e, {transfer("t1", "a", "b", 10), pending("p1", "a", "b", 5)}),
        (std::vector<CreateTransferResult>{CreateTransferResult::ok, CreateTransferResult::ok}));
    EXPECT_EQ(transfers(*e, {post("x1", "p1", 2)})[0], CreateTransferResult::ok);
    const EngineStatus s = status(*e);
    EXPECT_TRUE(s.invariants_ok);
    EXPECT_EQ(s.counts.transfers, 3u);
    hash = s.state_hash;
  }
  auto e = open();
  EXPECT_EQ(status(*e).state_hash, hash);
  EXPECT_EQ(transfer_of(*e, "x1")->amount, 2);
  EXPECT_EQ(transfers(*e, {transfer("t1", "a", "b", 10)})[0], CreateTransferResult::exists);
}

TEST_F(EngineTest, SnapshotThenTailReplayGivesTheSameState) {
  uint64_t hash = 0;
  {
    auto e = open();
    accounts(*e, {account("a"), account("b")});
    transfers(*e, {transfer("t1", "a", "b", 10)});
    const auto snap = wait_for<Status>([&](auto cb) { e->take_snapshot(std::move(cb)); });
    ASSERT_EQ(snap.error, EngineError::ok);
    ASSERT_TRUE(snap.value.is_ok()) << snap.value.message();
    transfers(*e, {transfer("t2", "b", "a", 3)});
    hash = status(*e).state_hash;
  }
  bool found_snapshot = false;
  for (const auto& f : fs::directory_iterator(dir_.path())) {
    found_snapshot |= f.path().extension() == ".snap";
  }
  EXPECT_TRUE(found_snapshot);
  auto e = open();
  EXPECT_EQ(status(*e).state_hash, hash);
  EXPECT_TRUE(transfer_of(*e, "t2"));

  e->stop();
  VerifyReport report;
  const Status v = verify_data_dir(dir_.path(), &report);
  ASSERT_TRUE(v.is_ok()) << v.message();
  EXPECT_EQ(report.state_hash, hash);
  EXPECT_GT(report.snapshot_seq, 0u);
  EXPECT_EQ(report.records_replayed, 2u);  // t2's record and its batch's audit chain record
}

TEST_F(EngineTest, AutomaticSnapshotsByEventCount) {
  EngineOptions o;
  o.snapshot_interval_events = 3;
  auto e = open(o);
  accounts(*e, {account("a"), account("b")});
  for (int i = 0; i < 5; ++i) transfers(*e, {transfer("t" + std::to_string(i), "a", "b", 1)});
  const uint64_t hash = status(*e).state_hash;
  e.reset();
  auto again = open();
  EXPECT_EQ(status(*again).state_hash, hash);
}

TEST_F(EngineTest, EventsReplayedAtStartCountTowardTheNextSnapshot) {
  EngineOptions o;
  o.snapshot_interval_events = 6;
  const auto snapshots = [this] {
    int n = 0;
    for (const auto& f : fs::directory_iterator(dir_.path())) n += f.path().extension() == ".snap";
    return n;
  };
  {
    auto e = open(o);
    accounts(*e, {account("a"), account("b")});
    transfers(*e, {transfer("t1", "a", "b", 1), transfer("t2", "a", "b", 1)});
  }
  EXPECT_EQ(snapshots(), 0);  // 4 events: below the interval
  auto e = open(o);
  transfers(*e, {transfer("t3", "a", "b", 1), transfer("t4", "a", "b", 1)});
  // 4 replayed + 2 new: a keeld that restarts often must still snapshot. The file is written in
  // the background, so wait for it (bounded).
  for (int i = 0; i < 500 && snapshots() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(snapshots(), 1);
}

TEST_F(EngineTest, IdleEngineExpiresHoldsWithAJournaledTick) {
  EngineOptions o;
  o.tick_interval_ms = 20;
  uint64_t hash = 0;
  {
    auto e = open(o);
    accounts(*e, {account("a"), account("b")});
    transfers(*e, {pending("p", "a", "b", 5, 1)});
    // No command arrives; the writer's tick must expire the hold within a few seconds.
    for (int i = 0; i < 500; ++i) {
      if (transfer_of(*e, "p")->pending_state == ledger::PendingState::expired) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_EQ(transfer_of(*e, "p")->pending_state, ledger::PendingState::expired);
    hash = status(*e).state_hash;
  }
  auto e = open();  // the tick was journaled: replay expires it at the same logical time
  EXPECT_EQ(status(*e).state_hash, hash);
}

TEST_F(EngineTest, FullQueueAnswersOverloadedAndChangesNothing) {
  EngineOptions o;
  o.queue_capacity = 0;
  auto e = open(o);
  const auto out = wait_for<std::vector<ledger::CreateAccountResult>>(
      [&](auto cb) { e->create_accounts({account("a")}, std::move(cb)); });
  EXPECT_EQ(out.error, EngineError::overloaded);
  e.reset();
  auto again = open();
  EXPECT_EQ(status(*again).counts.accounts, 0u);
}

TEST_F(EngineTest, StopAnswersEverythingQueuedThenRefuses) {
  auto e = open();
  accounts(*e, {account("a"), account("b")});
  std::atomic<int> answered{0};
  for (int i = 0; i < 200; ++i) {
    e->create_transfers({transfer("t" + std::to_string(i), "a", "b", 1)},
                        [&answered](Outcome<std::vector<CreateTransferResult>> o) {
                          EXPECT_EQ(o.error, EngineError::ok);
                          ++answered;
                        });
  }
  e->stop();
  EXPECT_EQ(answered.load(), 200);
  const auto late = wait_for<std::vector<CreateTransferResult>>(
      [&](auto cb) { e->create_transfers({transfer("late", "a", "b", 1)}, std::move(cb)); });
  EXPECT_EQ(late.error, EngineError::unavailable);
  e.reset();
  auto again = open();
  EXPECT_EQ(status(*again).counts.transfers, 200u);
}

TEST_F(EngineTest, ConcurrentSubmittersAllAnsweredAndBooksBalance) {
  auto e = open();
  accounts(*e, {account("a"), account("b"), account("c")});
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 250; ++i) {
        const auto r = transfers(*e, {transfer("t" + std::to_string(t) + "_" + std::to_string(i),
                                               t % 2 ? "a" : "b", "c", 1 + i)});
        ok += r[0] == CreateTransferResult::ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 1000);
  const EngineStatus s = status(*e);
  EXPECT_TRUE(s.invariants_ok) << s.invariant_problem;
  EXPECT_GT(s.batches_committed, 0u);
}

using keel::testing::FileSizeLimit;

TEST_F(EngineTest, JournalFailureIsNeverAcknowledgedAndStopsAllWriting) {
  {
    auto e = open();
    accounts(*e, {account("a"), account("b")});
    ASSERT_EQ(transfers(*e, {transfer("before", "a", "b", 7)})[0], CreateTransferResult::ok);
    std::vector<ledger::TransferEvent> big;
    for (int i = 0; i < 2000; ++i) big.push_back(transfer("big" + std::to_string(i), "a", "b", 1));
    {
      uintmax_t segment_bytes = 0;
      for (const auto& f : fs::directory_iterator(dir_.path())) {
        if (f.path().extension() == ".seg") segment_bytes = std::max(segment_bytes, f.file_size());
      }
      ASSERT_GT(segment_bytes, 0u);
      FileSizeLimit limit(segment_bytes + 1000);
      const auto out = wait_for<std::vector<CreateTransferResult>>(
          [&](auto cb) { e->create_transfers(big, std::move(cb)); });
      EXPECT_EQ(out.error, EngineError::unavailable);  // applied in memory, never answered ok
    }
    EXPECT_FALSE(e->healthy());
    const auto after = wait_for<std::vector<CreateTransferResult>>(
        [&](auto cb) { e->create_transfers({transfer("after", "a", "b", 1)}, std::move(cb)); });
    EXPECT_EQ(after.error, EngineError::unavailable);
    // Reads keep working, on the acknowledged state only: never show what is not durable.
    const auto read = wait_for<std::optional<ledger::Transfer>>(
        [&](auto cb) { e->get_transfer("big0", std::move(cb)); });
    EXPECT_EQ(read.error, EngineError::ok);
    EXPECT_FALSE(read.value);
    EXPECT_TRUE(transfer_of(*e, "before"));
  }
  // The torn tail is cut on restart; what was acknowledged is there, the failed write is not.
  auto e = open();
  EXPECT_TRUE(transfer_of(*e, "before"));
  EXPECT_FALSE(transfer_of(*e, "big0"));
  EXPECT_FALSE(transfer_of(*e, "after"));
  EXPECT_TRUE(status(*e).invariants_ok);
}

// The engine over journal::MemoryStorage: storage failures the file system cannot be made to
// produce on demand. Opening again over the same disk is a restart.
class EngineOnMemoryTest : public EngineTest {
 protected:
  std::unique_ptr<Engine> open_on_disk(bool with_store = false) {
    return open(memory_options(with_store));
  }
  // Options for an engine over disk_ (and store_, with_store).
  EngineOptions memory_options(bool with_store) const {
    EngineOptions o;
    if (with_store) {
      o.open_store = [data = store_](std::unique_ptr<store::Store>* out) {
        *out = std::make_unique<store::MemoryStore>(data);
        return Status::ok();
      };
    }
    o.open_storage = [disk = disk_](std::function<void(std::string_view)> warn,
                                    std::unique_ptr<journal::Storage>* out) {
      journal::MemoryStorageOptions mo;
      mo.warn = std::move(warn);
      std::unique_ptr<journal::MemoryStorage> m;
      if (Status s = journal::MemoryStorage::open(disk, std::move(mo), &m); !s.is_ok()) return s;
      *out = std::move(m);
      return Status::ok();
    };
    o.data_dir = dir_.path();
    return o;
  }
  static Outcome<std::vector<CreateTransferResult>> try_transfer(Engine& e, std::string id,
                                                                 int64_t amount) {
    return wait_for<std::vector<CreateTransferResult>>([&](auto cb) {
      e.create_transfers({transfer(std::move(id), "a", "b", amount)}, std::move(cb));
    });
  }
  static std::optional<ledger::Account> account_of(Engine& e, std::string id) {
    const auto o = wait_for<std::optional<ledger::Account>>(
        [&](auto cb) { e.get_account(std::move(id), std::move(cb)); });
    EXPECT_EQ(o.error, EngineError::ok);
    return o.value;
  }

  std::shared_ptr<journal::MemoryDisk> disk_ = std::make_shared<journal::MemoryDisk>();
  std::shared_ptr<store::MemoryStoreData> store_ = std::make_shared<store::MemoryStoreData>();
};

TEST_F(EngineOnMemoryTest, AFailedFsyncIsNeverAcknowledgedReadsKeepWorkingARestartRecovers) {
  EngineStatus acknowledged;
  ledger::Balances balances_a;
  {
    auto e = open_on_disk();
    accounts(*e, {account("a"), account("b")});
    ASSERT_EQ(transfers(*e, {transfer("before", "a", "b", 7)})[0], CreateTransferResult::ok);
    acknowledged = status(*e);
    balances_a = account_of(*e, "a")->balances;
    disk_->fail_next_fsync(/*batch_durable=*/false);
    EXPECT_EQ(try_transfer(*e, "lost", 5).error, EngineError::unavailable);
    EXPECT_FALSE(e->healthy());
    EXPECT_EQ(try_transfer(*e, "after", 1).error, EngineError::unavailable);
    // Reads keep working and show exactly the acknowledged state.
    EXPECT_FALSE(transfer_of(*e, "lost"));
    EXPECT_TRUE(transfer_of(*e, "before"));
    EXPECT_EQ(account_of(*e, "a")->balances, balances_a);
    const EngineStatus s = status(*e);
    EXPECT_EQ(s.state_hash, acknowledged.state_hash);
    EXPECT_EQ(s.last_seq, acknowledged.last_seq);
    EXPECT_TRUE(s.invariants_ok) << s.invariant_problem;
    EXPECT_EQ(wait_for<Status>([&](auto cb) { e->take_snapshot(std::move(cb)); }).error,
              EngineError::unavailable);
  }
  EXPECT_EQ(disk_->failed_commits(), 1u);
  auto e = open_on_disk();  // a restart
  EXPECT_TRUE(e->healthy());
  EXPECT_EQ(status(*e).state_hash, acknowledged.state_hash);
  EXPECT_EQ(account_of(*e, "a")->balances, balances_a);
  EXPECT_FALSE(transfer_of(*e, "lost"));
  EXPECT_EQ(try_transfer(*e, "after", 1).value[0], CreateTransferResult::ok);
}

security::Result key_command(Engine& e, security::Command c) {
  const auto o =
      wait_for<security::Result>([&](auto cb) { e.security_command(std::move(c), std::move(cb)); });
  EXPECT_EQ(o.error, EngineError::ok);
  return o.value;
}

TEST_F(EngineOnMemoryTest, KeysAreJournaledPublishedWhenDurableAndSurviveSnapshotAndRestart) {
  const security::GeneratedKey admin = security::generate_key();
  const security::GeneratedKey merchant = security::generate_key();
  const security::GeneratedKey lost = security::generate_key();
  uint64_t hash = 0;
  security::KeyRing ring;
  const int64_t now_s = static_cast<int64_t>(std::time(nullptr));
  {
    auto e = open_on_disk();
    const uint64_t empty_hash = status(*e).state_hash;
    EXPECT_TRUE(e->keys()->empty());
    ASSERT_EQ(key_command(*e, security::cmd::CreateKey{admin.id, security::Role::admin, "",
                                                       admin.hash, "ops"}),
              security::Result::ok);
    // Published before the answer: the key works as soon as its creation is acknowledged.
    ASSERT_NE(e->keys()->find(admin.id), nullptr);
    EXPECT_NE(status(*e).state_hash, empty_hash);
    ASSERT_EQ(wait_for<Status>([&](auto cb) { e->take_snapshot(std::move(cb)); }).error,
              EngineError::ok);
    ASSERT_EQ(key_command(*e, security::cmd::CreateKey{merchant.id, security::Role::merchant,
                                                       "mch_1", merchant.hash, ""}),
              security::Result::ok);
    ASSERT_EQ(key_command(*e, security::cmd::RevokeKey{merchant.id, "leaked"}),
              security::Result::ok);
    ASSERT_EQ(key_command(*e, security::cmd::UseNonce{admin.id, "0123456789abcdef", now_s}),
              security::Result::ok);
    EXPECT_FALSE(e->keys()->find(merchant.id)->active());
    // A refused command journals nothing.
    const uint64_t seq = status(*e).last_seq;
    EXPECT_EQ(key_command(*e, security::cmd::RevokeKey{merchant.id, "again"}),
              security::Result::already_revoked);
    EXPECT_EQ(status(*e).last_seq, seq);
    // A failed commit publishes nothing: the revoked key stays revoked, a new key never appears.
    disk_->fail_next_fsync(/*batch_durable=*/false);
    const auto o = wait_for<security::Result>([&](auto cb) {
      e->security_command(
          security::cmd::CreateKey{lost.id, security::Role::ledger, "", lost.hash, ""},
          std::move(cb));
    });
    EXPECT_EQ(o.error, EngineError::unavailable);
    EXPECT_EQ(e->keys()->find(lost.id), nullptr);
    hash = status(*e).state_hash;
    ring = *e->keys();
  }
  auto e = open_on_disk();
  EXPECT_EQ(status(*e).state_hash, hash);
  const auto keys = e->keys();
  EXPECT_EQ(*keys, ring);  // last uses too, which the hash leaves out; the nonce below
  EXPECT_EQ(key_command(*e, security::cmd::UseNonce{admin.id, "0123456789abcdef", now_s}),
            security::Result::nonce_reused);
  ASSERT_NE(keys->find(admin.id), nullptr);
  EXPECT_TRUE(keys->find(admin.id)->active());
  EXPECT_EQ(keys->find(admin.id)->label, "ops");
  ASSERT_NE(keys->find(merchant.id), nullptr);
  EXPECT_FALSE(keys->find(merchant.id)->active());
  EXPECT_EQ(keys->find(merchant.id)->revoked_reason, "leaked");
  EXPECT_EQ(keys->find(lost.id), nullptr);
}

TEST_F(EngineOnMemoryTest, AFailedFsyncWhoseBatchReachedTheDiskShowsItOnlyAfterARestart) {
  {
    auto e = open_on_disk();
    accounts(*e, {account("a"), account("b")});
    disk_->fail_next_fsync(/*batch_durable=*/true);
    EXPECT_EQ(try_transfer(*e, "unknown", 5).error, EngineError::unavailable);
    EXPECT_FALSE(e->healthy());
    EXPECT_FALSE(transfer_of(*e, "unknown"));  // not acknowledged: not shown
  }
  // Its outcome was unknown, never "failed": the record is durable, the restart applies it.
  auto e = open_on_disk();
  EXPECT_TRUE(transfer_of(*e, "unknown"));
  EXPECT_TRUE(status(*e).invariants_ok);
  EXPECT_EQ(try_transfer(*e, "unknown", 5).value[0], CreateTransferResult::exists);
}

TEST_F(EngineOnMemoryTest, ATornWriteLosesOnlyUnacknowledgedRecords) {
  uint64_t acknowledged_hash = 0;
  {
    auto e = open_on_disk();
    accounts(*e, {account("a"), account("b")});
    // W0's commit is held while X1..X3 queue, so they commit as one batch of three records,
    // which the armed fault tears after its first record.
    disk_->hold_commits();
    std::promise<Outcome<std::vector<CreateTransferResult>>> w0;
    e->create_transfers({transfer("w0", "a", "b", 1)}, [&w0](auto o) { w0.set_value(o); });
    ASSERT_TRUE(disk_->wait_for_held_commit(60'000));
    disk_->tear_next_write(1);
    std::vector<std::promise<Outcome<std::vector<CreateTransferResult>>>> xs(3);
    for (size_t i = 0; i < xs.size(); ++i) {
      e->create_transfers({transfer("x" + std::to_string(i + 1), "a", "b", 10)},
                          [&xs, i](auto o) { xs[i].set_value(o); });
    }
    disk_->release_commits();
    EXPECT_EQ(w0.get_future().get().error, EngineError::ok);
    for (auto& x : xs) EXPECT_EQ(x.get_future().get().error, EngineError::unavailable);
    EXPECT_FALSE(e->healthy());
    EXPECT_TRUE(transfer_of(*e, "w0"));
    EXPECT_FALSE(transfer_of(*e, "x1"));
    acknowledged_hash = status(*e).state_hash;
  }
  EXPECT_GT(disk_->torn_tail_bytes(), 0u);
  auto e = open_on_disk();
  EXPECT_EQ(disk_->torn_tail_bytes(), 0u);  // the half record was dropped
  EXPECT_TRUE(transfer_of(*e, "w0"));       // everything acknowledged is there
  EXPECT_TRUE(transfer_of(*e, "x1"));       // the whole record before the tear (never acked)
  EXPECT_FALSE(transfer_of(*e, "x2"));
  EXPECT_FALSE(transfer_of(*e, "x3"));
  const EngineStatus s = status(*e);
  EXPECT_TRUE(s.invariants_ok) << s.invariant_problem;
  EXPECT_NE(s.state_hash, acknowledged_hash);  // x1 is in it
  EXPECT_EQ(account_of(*e, "b")->balances.credits_posted, 11);
}

TEST_F(EngineOnMemoryTest, ASlowCommitDelaysTheAnswerAndLosesNothing) {
  uint64_t hash = 0;
  {
    auto e = open_on_disk();
    accounts(*e, {account("a"), account("b")});
    disk_->hold_commits();
    std::promise<Outcome<std::vector<CreateTransferResult>>> answer;
    auto answered = answer.get_future();
    e->create_transfers({transfer("slow", "a", "b", 3)},
                        [&answer](auto o) { answer.set_value(o); });
    ASSERT_TRUE(disk_->wait_for_held_commit(60'000));
    const uint64_t durable_before = disk_->last_seq();
    EXPECT_EQ(answered.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
    disk_->release_commits();
    const auto o = answered.get();
    EXPECT_EQ(o.error, EngineError::ok);
    EXPECT_EQ(o.value[0], CreateTransferResult::ok);
    EXPECT_EQ(disk_->last_seq(), durable_before + 2);  // the record and its chain record
    EXPECT_TRUE(e->healthy());
    hash = status(*e).state_hash;
  }
  auto e = open_on_disk();
  EXPECT_EQ(status(*e).state_hash, hash);
  EXPECT_EQ(transfer_of(*e, "slow")->amount, 3);
}

TEST(Records, RoundTripAndRejectMalformedPayloads) {
  std::vector<ledger::TransferEvent> in = {transfer("t", "a", "b", 5), post("x", "p", 0)};
  in[0].metadata = {{"k", "v"}};
  std::string payload;
  encode_transfers(in, &payload);
  std::vector<ledger::TransferEvent> out;
  ASSERT_TRUE(decode_transfers(payload, &out).is_ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].metadata, in[0].metadata);
  EXPECT_FALSE(out[1].currency.valid());
  EXPECT_FALSE(decode_transfers(payload.substr(0, payload.size() - 1), &out).is_ok());
  EXPECT_FALSE(decode_transfers(payload + "z", &out).is_ok());
  std::string huge;
  ByteWriter(&huge).u32(ledger::kEventsPerRequestMax + 1);
  EXPECT_FALSE(decode_transfers(huge, &out).is_ok());
  State state;
  Timestamp last = 100;
  EXPECT_FALSE(apply_record(state, RecordType::tick, 100, "", &last).is_ok());  // not increasing
  EXPECT_FALSE(apply_record(state, static_cast<RecordType>(99), 200, "", &last).is_ok());
  EXPECT_FALSE(apply_record(state, RecordType::payments, 200, "garbage", &last).is_ok());
}

// ---- Payments through the engine -------------------------------------------------------------

payments::Reply pay_command(Engine& e, payments::Command c, int64_t wait_ms = 0) {
  auto o = wait_for<payments::Reply>(
      [&](auto cb) { e.payments_command(std::move(c), wait_ms, std::move(cb)); });
  EXPECT_EQ(o.error, EngineError::ok);
  return o.value;
}

std::string payment_json(Engine& e, std::string id) {
  payments::Query q;
  q.id = std::move(id);
  return wait_for<payments::QueryResult>(
             [&](auto cb) { e.payments_query(std::move(q), std::move(cb)); })
      .value.body;
}

payments::Command merchant_command() { return payments::cmd::CreateMerchant{"mch_1", "", "", ""}; }

payments::Command payment_command(std::string id) {
  payments::cmd::CreatePayment c;
  c.id = std::move(id);
  c.amount = 500;
  c.currency = *Currency::from_code("EUR");
  c.merchant_id = "mch_1";
  c.instrument = "tok_visa";
  return c;
}

// `channel` empty: the router chooses.
payments::Command confirm_command(std::string id, std::string key, std::string channel = "cardco") {
  payments::Command c = payments::cmd::ConfirmPayment{std::move(id), std::move(channel)};
  c.idempotency = {"client", std::move(key), std::string(payments::kFingerprintBytes, 'f')};
  return c;
}

payments::Command answer_command(std::string attempt, payments::AttemptStatus status,
                                 int64_t latency_ms = 0, int64_t fee = 0) {
  payments::cmd::AttemptResult c;
  c.attempt_id = std::move(attempt);
  c.result.status = status;
  c.result.latency_ms = latency_ms;
  c.result.fee = fee;
  return c;
}

// An event the outbox has no room for is counted and logged (and new payments were refused
// before that: over_capacity).
TEST_F(EngineTest, AMerchantEventWithNoRoomIsCountedAndLogged) {
  EngineOptions o;
  o.history_in_memory = true;        // no store: deferred events stay in memory too
  o.payments.outbox.events_max = 4;  // new payments stop at 3 events in memory
  std::vector<std::string> errors;
  std::mutex mu;
  o.log = [&](LogLevel level, std::string_view line) {
    std::lock_guard lock(mu);
    if (level == LogLevel::error) errors.emplace_back(line);
  };
  auto e = open(o);
  // Events awaiting delivery stay in memory (nothing delivers them here): they fill the outbox.
  ASSERT_TRUE(
      pay_command(*e, payments::cmd::CreateMerchant{"mch_1", "", "http://127.0.0.1:9/h", "s"})
          .ok());
  for (const std::string id : {"pay_1", "pay_2", "pay_3"}) {
    ASSERT_TRUE(pay_command(*e, payment_command(id)).ok());
  }
  EXPECT_EQ(pay_command(*e, payment_command("pay_4")).error, payments::Error::over_capacity);
  pay_command(*e, confirm_command("pay_1", "k1"), 1);  // the 4th event: processing
  pay_command(*e, answer_command("pay_1_a1", payments::AttemptStatus::approved, 5));
  EXPECT_EQ(status(*e).events_dropped, 1u);
  std::lock_guard lock(mu);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("pay_1 found no room in the outbox"), std::string::npos) << errors[0];
}

// The writer's pauses are measured (status and /metrics), not state: a restart starts again.
TEST_F(EngineTest, TheWritersLongestPauseAndSnapshotEncodingAreMeasured) {
  auto e = open();
  EXPECT_EQ(status(*e).snapshot_encode_longest_ns, 0u);
  accounts(*e, {account("a"), account("b")});
  EXPECT_EQ(transfers(*e, {transfer("t1", "a", "b", 1)})[0], CreateTransferResult::ok);
  ASSERT_EQ(wait_for<Status>([&](auto cb) { e->take_snapshot(std::move(cb)); }).error,
            EngineError::ok);
  const EngineStatus s = status(*e);
  EXPECT_GT(s.writer_longest_pause_ns, 0u);
  EXPECT_GT(s.snapshot_encode_longest_ns, 0u);
  EXPECT_LT(s.snapshot_encode_longest_ns, 60'000'000'000u);
}

TEST_F(EngineTest, PaymentsSurviveRestartAndSnapshotWithTheSameStateHash) {
  uint64_t hash = 0;
  std::string before;
  {
    auto e = open();
    ASSERT_TRUE(pay_command(*e, merchant_command()).ok());
    ASSERT_TRUE(pay_command(*e, payment_command("pay_1")).ok());
    ASSERT_TRUE(pay_command(*e, payment_command("pay_2")).ok());
    // No PSP here: the confirm waits its 50 ms and answers the payment still processing.
    const payments::Reply r = pay_command(*e, confirm_command("pay_1", "k1"), 50);
    EXPECT_FALSE(r.settled);
    EXPECT_NE(r.body.find("\"processing\""), std::string::npos);
    hash = status(*e).state_hash;
    before = payment_json(*e, "pay_1");
  }
  std::vector<payments::ResolveRequest> resolve;
  std::mutex mu;
  EngineOptions o;
  o.on_payment_effects = [&](PaymentEffects fx) {
    std::lock_guard lock(mu);
    for (auto& r : fx.resolve) resolve.push_back(r);
  };
  {
    auto e = open(o);
    // The attempt that may have reached the PSP is now unknown, and handed to the resolver.
    const std::string after = payment_json(*e, "pay_1");
    EXPECT_NE(after.find("\"unknown\""), std::string::npos) << after;
    EXPECT_NE(status(*e).state_hash, hash);  // the restart is a journaled transition
    hash = status(*e).state_hash;
    ASSERT_EQ(wait_for<Status>([&](auto cb) { e->take_snapshot(std::move(cb)); }).error,
              EngineError::ok);
  }
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(resolve.size(), 1u);
    EXPECT_EQ(resolve[0].attempt_id, "pay_1_a1");
    EXPECT_EQ(resolve[0].channel, "cardco");
  }
  auto e = open(o);  // from the snapshot: the same state
  EXPECT_EQ(status(*e).state_hash, hash);
  // The key is still in flight after the restart: the same request is 409 until it settles.
  EXPECT_EQ(pay_command(*e, confirm_command("pay_1", "k1")).error,
            payments::Error::idempotency_key_in_use);
  VerifyReport report;
  e.reset();
  ASSERT_TRUE(verify_data_dir(dir_.path(), &report).is_ok());
  EXPECT_EQ(report.state_hash, hash);
}

TEST_F(EngineTest, AChangedFeeScheduleIsJournaledOnce) {
  EngineOptions o;
  o.fees = payments::FeeSchedule{{100, 5}, {}};
  uint64_t seq = 0;
  {
    auto e = open(o);
    seq = status(*e).last_seq;
    EXPECT_EQ(seq, 2u);  // the set_fees record and its batch's audit chain record
  }
  auto e = open(o);
  EXPECT_EQ(status(*e).last_seq, seq);  // unchanged: nothing journaled again
}

// A PSP result the payments core refuses is logged with its attempt and reason, counted, and
// journaled as the flag it sets: after a restart the payment is still in review.
TEST_F(EngineTest, ARejectedPspResultIsLoggedCountedAndSurvivesARestart) {
  std::vector<std::string> warnings;
  std::mutex mu;
  EngineOptions o;
  o.log = [&](LogLevel level, std::string_view line) {
    std::lock_guard lock(mu);
    if (level == LogLevel::warn) warnings.emplace_back(line);
  };
  {
    auto e = open(o);
    ASSERT_TRUE(pay_command(*e, merchant_command()).ok());
    ASSERT_TRUE(pay_command(*e, payment_command("pay_1")).ok());
    pay_command(*e, confirm_command("pay_1", "k1"), 1);
    const payments::Reply r =
        pay_command(*e, answer_command("pay_1_a1", payments::AttemptStatus::approved, 0, -5));
    EXPECT_EQ(r.error, payments::Error::psp_result_rejected);
    const EngineStatus s = status(*e);
    EXPECT_EQ(s.psp_results_rejected, 1u);
    EXPECT_EQ(s.payments.in_review, 1u);
    EXPECT_EQ(s.payments.review_open_psp_result_rejected, 1u);
  }
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("pay_1_a1"), std::string::npos) << warnings[0];
    EXPECT_NE(warnings[0].find("fee_out_of_range"), std::string::npos) << warnings[0];
  }
  auto e = open();
  EXPECT_NE(payment_json(*e, "pay_1").find("\"review_reason\":\"psp_result_rejected\""),
            std::string::npos);
  EXPECT_EQ(status(*e).payments.review_open_psp_result_rejected, 1u);
}

// Routing: the engine decides before applying, journals the decision with the command and the
// breaker's transitions as their own records; a restart replays to the same state, the
// breaker starts where its last transition left it, and the channels are journaled once.
// Routing turned off after it was on: keeld starts with no channels, and the engine journals an
// empty set_channels. That command must replay: before, the decoder refused an empty list, so
// the second start after turning routing off could not read its own journal (found by the
// payments_command fuzz target).
TEST_F(EngineTest, RoutingTurnedOffJournalsNoChannelsAndTheJournalStillReplays) {
  EngineOptions o;
  routing::ChannelDef a;
  a.name = "cardco";
  a.psp = "cardco";
  o.channels = std::vector<routing::ChannelDef>{a};
  { auto e = open(o); }
  o.channels = std::vector<routing::ChannelDef>{};  // keeld.toml without [routing]
  uint64_t hash = 0;
  {
    auto e = open(o);
    EXPECT_TRUE(wait_for<std::vector<ChannelStatus>>([&](auto cb) {
                  e->get_channels(std::move(cb));
                }).value.empty());
    hash = status(*e).state_hash;
  }
  auto e = open(o);  // replays the empty set_channels
  EXPECT_EQ(status(*e).state_hash, hash);
  EXPECT_TRUE(status(*e).invariants_ok);
}

TEST_F(EngineTest, RoutingDecisionsAndBreakerTransitionsAreJournaledAndReplayExactly) {
  EngineOptions o;
  routing::ChannelDef a;
  a.name = "cardco";
  a.psp = "cardco";
  a.cost_bps = 9'000;  // cardco is dear: bankco keeps the traffic until its breaker opens
  routing::ChannelDef b;
  b.name = "bankco";
  b.psp = "bankco";
  o.channels = std::vector<routing::ChannelDef>{a, b};
  o.routing.explore_permille = 0;
  o.routing.breaker.min_calls = 2;
  o.routing.breaker.open_ms = 3'600'000;  // stays open for the test
  std::vector<std::string> warnings;
  std::mutex mu;
  o.log = [&](LogLevel level, std::string_view line) {
    std::lock_guard lock(mu);
    if (level == LogLevel::warn) warnings.emplace_back(line);
  };
  uint64_t hash = 0;
  std::string before;
  {
    auto e = open(o);
    EXPECT_EQ(status(*e).last_seq, 2u);  // set_channels and its batch's chain record
    ASSERT_TRUE(pay_command(*e, merchant_command()).ok());
    for (const std::string id : {"pay_1", "pay_2"}) {
      ASSERT_TRUE(pay_command(*e, payment_command(id)).ok());
      pay_command(*e, confirm_command(id, "k_" + id, ""), 1);
      // bankco refuses: nothing charged, so the payment fails over to cardco.
      pay_command(*e, answer_command(id + "_a1", payments::AttemptStatus::retryable, 3));
    }
    const std::string p2 = payment_json(*e, "pay_2");
    EXPECT_NE(p2.find(R"("attempt":"pay_2_a1","kind":"routed","channel":"bankco")"),
              std::string::npos)
        << p2;
    EXPECT_NE(p2.find(R"("attempt":"pay_2_a2","kind":"failover","channel":"cardco")"),
              std::string::npos)
        << p2;
    const EngineStatus s = status(*e);
    EXPECT_EQ(s.breaker_transitions, 1u);  // bankco: two calls, two failures
    const auto channels =
        wait_for<std::vector<ChannelStatus>>([&](auto cb) { e->get_channels(std::move(cb)); });
    ASSERT_EQ(channels.value.size(), 2u);
    EXPECT_EQ(channels.value[1].live.def.name, "bankco");
    EXPECT_EQ(channels.value[1].live.breaker, routing::BreakerState::open);
    EXPECT_EQ(channels.value[1].breaker_opened, 1u);
    hash = s.state_hash;
    before = p2;
  }
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("channel bankco: breaker closed -> open (failure rate 100% of 2"),
              std::string::npos)
        << warnings[0];
  }
  auto e = open(o);
  EXPECT_EQ(payment_json(*e, "pay_2").substr(0, 200), before.substr(0, 200));
  const auto channels =
      wait_for<std::vector<ChannelStatus>>([&](auto cb) { e->get_channels(std::move(cb)); });
  EXPECT_EQ(channels.value[1].live.breaker, routing::BreakerState::open);
  // A third payment goes to cardco at once: bankco's breaker is open.
  ASSERT_TRUE(pay_command(*e, payment_command("pay_3")).ok());
  pay_command(*e, confirm_command("pay_3", "k_pay_3", ""), 1);
  const std::string p3 = payment_json(*e, "pay_3");
  EXPECT_NE(p3.find(R"("rejected":[{"channel":"bankco","reason":"breaker_open"}])"),
            std::string::npos)
      << p3;
  // Replay alone (no live statistics) rebuilds exactly this state.
  hash = status(*e).state_hash;
  e.reset();
  VerifyReport report;
  ASSERT_TRUE(verify_data_dir(dir_.path(), &report).is_ok());
  EXPECT_EQ(report.state_hash, hash);
  EXPECT_TRUE(report.invariants.ok);
}

// A canary that does worse than its base is rolled back by the router; the rollback is a
// journaled control (with the router's reason), logged, and the share stays 0 after a restart.
TEST_F(EngineTest, AFailingCanaryIsRolledBackAndTheRollbackIsJournaled) {
  EngineOptions o;
  routing::ChannelDef base;
  base.name = "cardco";
  base.psp = "cardco";
  routing::ChannelDef canary = base;
  canary.name = "cardco_v2";
  canary.canary_of = "cardco";
  o.channels = std::vector<routing::ChannelDef>{base, canary};
  o.routing.explore_permille = 0;
  o.routing.canary_min_samples = 4;
  o.routing.breaker.min_calls = 1'000'000;
  std::vector<std::string> warnings;
  std::mutex mu;
  o.log = [&](LogLevel level, std::string_view line) {
    std::lock_guard lock(mu);
    if (level == LogLevel::warn) warnings.emplace_back(line);
  };
  uint64_t hash = 0;
  {
    auto e = open(o);
    ASSERT_TRUE(pay_command(*e, merchant_command()).ok());
    const payments::Command share = payments::cmd::Control{
        {payments::ControlKind::channel_canary, "cardco", "cardco_v2", 50, "v2"}};
    ASSERT_TRUE(pay_command(*e, share).ok());
    int to_canary = 0;
    for (int i = 0; i < 40; ++i) {
      const std::string id = "pay_" + std::to_string(i);
      ASSERT_TRUE(pay_command(*e, payment_command(id)).ok());
      pay_command(*e, confirm_command(id, "k_" + id, ""), 1);
      const std::string p = payment_json(*e, id);
      const bool on_canary =
          p.find(R"("channel":"cardco_v2","status":"pending")") != std::string::npos;
      to_canary += on_canary ? 1 : 0;
      pay_command(*e, answer_command(id + "_a1",
                                     on_canary ? payments::AttemptStatus::retryable
                                               : payments::AttemptStatus::approved,
                                     4));
    }
    EXPECT_EQ(to_canary, 4);  // then rolled back: nothing more went to it
    const payments::QueryResult controls =
        wait_for<payments::QueryResult>([&](auto cb) {
          e->payments_query({payments::QueryKind::get_controls, ""}, std::move(cb));
        }).value;
    EXPECT_NE(
        controls.body.find(R"("kind":"canary_rollback","target":"cardco","canary":"cardco_v2")"),
        std::string::npos)
        << controls.body;
    hash = status(*e).state_hash;
  }
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("canary cardco_v2 rolled back (canary approvals 0% of 4"),
              std::string::npos)
        << warnings[0];
  }
  VerifyReport report;
  ASSERT_TRUE(verify_data_dir(dir_.path(), &report).is_ok());
  EXPECT_EQ(report.state_hash, hash);
  auto e = open(o);
  const auto channels =
      wait_for<std::vector<ChannelStatus>>([&](auto cb) { e->get_channels(std::move(cb)); });
  EXPECT_EQ(channels.value[0].live.control.canary_share_pct, 0U);
}

// ---- On-disk formats written by earlier versions ---------------------------------------------

// ---- the history tier ----------------------------------------------------------------------

// Polls `pred` (status of `e`) for up to ten seconds.
bool wait_until(Engine& e, const std::function<bool(const EngineStatus&)>& pred) {
  for (int i = 0; i < 1000; ++i) {
    const EngineStatus s =
        wait_for<EngineStatus>([&](auto cb) { e.get_status(false, std::move(cb)); }).value;
    if (pred(s)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// Every answer a run's transfers give: each by id, and every page of each account's history.
struct TransferReads {
  std::vector<std::optional<ledger::Transfer>> by_id;
  std::vector<ledger::AccountTransfersPage> pages;
  friend bool operator==(const TransferReads& a, const TransferReads& b) {
    if (a.by_id != b.by_id || a.pages.size() != b.pages.size()) return false;
    for (size_t i = 0; i < a.pages.size(); ++i) {
      if (a.pages[i].result != b.pages[i].result || a.pages[i].data != b.pages[i].data ||
          a.pages[i].has_more != b.pages[i].has_more) {
        return false;
      }
    }
    return true;
  }
};

// Above its memory budget the engine refuses new work (never an out-of-memory kill), lets what
// is open finish, says so in a log line and its status, and takes new work again once memory is
// below 95 % of the budget.
TEST_F(EngineTest, AboveTheMemoryBudgetNewWorkIsRefusedAndOpenWorkFinishes) {
  std::atomic<uint64_t> resident{100};
  std::vector<std::string> lines;
  std::mutex mu;
  EngineOptions o;
  o.memory_max_bytes = 1000;
  o.resident_bytes = [&resident] { return resident.load(); };
  o.tick_interval_ms = 5;
  o.log = [&](LogLevel, std::string_view line) {
    std::lock_guard lock(mu);
    if (line.find("memory budget") != std::string::npos) lines.emplace_back(line);
  };
  auto e = open(o);
  accounts(*e, {account("a"), account("b")});
  ASSERT_TRUE(pay_command(*e, merchant_command()).ok());
  ASSERT_TRUE(pay_command(*e, payment_command("pay_open")).ok());
  resident = 1001;
  ASSERT_TRUE(wait_until(*e, [](const EngineStatus& s) { return s.over_capacity; }));
  const auto refused = [&](auto call) {
    return wait_for<std::vector<CreateTransferResult>>(call).error == EngineError::over_capacity;
  };
  EXPECT_TRUE(refused([&](auto cb) { e->create_transfers({transfer("t1", "a", "b", 1)}, cb); }));
  const auto new_account = wait_for<std::vector<ledger::CreateAccountResult>>(
      [&](auto cb) { e->create_accounts({account("c")}, std::move(cb)); });
  EXPECT_EQ(new_account.error, EngineError::over_capacity);
  const auto new_payment = wait_for<payments::Reply>(
      [&](auto cb) { e->payments_command(payment_command("pay_new"), 0, std::move(cb)); });
  EXPECT_EQ(new_payment.error, EngineError::over_capacity);
  // What is open goes on: the payment created before is confirmed and answered.
  EXPECT_TRUE(pay_command(*e, confirm_command("pay_open", "k1"), 1).ok());
  EXPECT_TRUE(
      pay_command(*e, answer_command("pay_open_a1", payments::AttemptStatus::approved, 5)).ok());
  EXPECT_NE(payment_json(*e, "pay_open").find(R"("status":"succeeded")"), std::string::npos);
  EngineStatus s = status(*e);
  EXPECT_TRUE(s.over_capacity);
  EXPECT_EQ(s.memory_max_bytes, 1000u);
  EXPECT_EQ(s.memory_resident_bytes, 1001u);
  EXPECT_EQ(s.refused_over_capacity, 3u);
  EXPECT_FALSE(transfer_of(*e, "t1"));
  // Below the budget but above 95 % of it: still refused (no flapping at the line).
  resident = 960;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(status(*e).over_capacity);
  resident = 949;
  ASSERT_TRUE(wait_until(*e, [](const EngineStatus& st) { return !st.over_capacity; }));
  EXPECT_EQ(transfers(*e, {transfer("t1", "a", "b", 1)})[0], CreateTransferResult::ok);
  std::lock_guard lock(mu);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("above memory_max_mb"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("new work is taken again (3 requests refused"), std::string::npos)
      << lines[1];
}

class HistoryTest : public EngineOnMemoryTest {
 protected:
  // Every page of list query `q` (its limit aside) for a few page sizes, following cursors (the
  // id of a page's last object, which starts with `id_prefix`; or, when `object` is given, the
  // id of the last object of that type), appended to `out`.
  static void all_pages(Engine& e, const payments::Query& q, std::string_view id_prefix,
                        std::vector<std::string>* out, std::string_view object = {}) {
    for (const size_t limit : {1, 4, 100}) {
      std::string cursor;
      for (int page = 0; page < 100; ++page) {
        payments::Query paged = q;
        paged.limit = limit;
        paged.starting_after = cursor;
        const auto r = wait_for<payments::QueryResult>(
            [&](auto cb) { e.payments_query(std::move(paged), std::move(cb)); });
        EXPECT_EQ(r.error, EngineError::ok);
        EXPECT_TRUE(r.value.found) << static_cast<int>(q.kind) << " " << q.status << " "
                                   << q.customer_id << " after " << cursor;
        EXPECT_FALSE(r.value.needs_history());
        const std::string& body = r.value.body;
        out->push_back(body);
        size_t last = body.rfind(R"({"id":")" + std::string(id_prefix));
        if (!object.empty()) {
          const size_t type = body.rfind(R"(","object":")" + std::string(object) + '"');
          last = type == std::string::npos ? type : body.rfind(R"({"id":")", type);
        }
        if (body.find(R"("has_more":true)") == std::string::npos || last == std::string::npos) {
          break;
        }
        cursor = body.substr(last + 7, body.find('"', last + 7) - last - 7);
      }
    }
  }

  // Every page of the merchant events for a few filters and page sizes.
  static std::vector<std::string> event_pages(Engine& e) {
    std::vector<std::string> out;
    const std::vector<std::array<std::string, 3>> filters = {
        {"", "", ""},      {"", "mch_1", ""},
        {"", "mch_2", ""}, {"payment.succeeded", "", ""},
        {"", "", "pay_3"}, {"payment.processing", "mch_2", ""}};
    for (const auto& [type, merchant, object] : filters) {
      payments::Query q;
      q.kind = payments::QueryKind::list_events;
      q.type = type;
      q.merchant_id = merchant;
      q.object_id = object;
      all_pages(e, q, "evt_", &out);
    }
    return out;
  }

  // A retry of every confirm (same key, same request): each one's stored answer.
  static std::vector<std::string> replays(Engine& e) {
    std::vector<std::string> out;
    for (int i = 0; i < 12; i += 2) {
      const std::string id = "pay_" + std::to_string(i);
      const payments::Reply r = pay_command(e, confirm_command(id, "k" + id));
      EXPECT_TRUE(r.replayed) << id;
      out.push_back(r.body);
    }
    return out;
  }

  // Payments of mch_1 (no webhook endpoint: its events are final at once) and mch_2 (an
  // endpoint nobody delivers to here: its events stay pending, in memory); some confirmed and
  // answered, so their events go processing -> succeeded or failed.
  static void write_payments(Engine& e) {
    ASSERT_TRUE(pay_command(e, merchant_command()).ok());
    ASSERT_TRUE(
        pay_command(e, payments::cmd::CreateMerchant{"mch_2", "", "http://127.0.0.1:9/h", "s"})
            .ok());
    for (int i = 0; i < 12; ++i) {
      const std::string id = "pay_" + std::to_string(i);
      payments::Command c = payment_command(id);
      if (i % 3 == 0) std::get<payments::cmd::CreatePayment>(c.body).merchant_id = "mch_2";
      ASSERT_TRUE(pay_command(e, c).ok());
      if (i % 2 == 1) continue;
      pay_command(e, confirm_command(id, "k" + id));
      pay_command(e,
                  answer_command(id + "_a1", i % 4 == 0 ? payments::AttemptStatus::approved
                                                        : payments::AttemptStatus::declined_hard));
      if (i % 4 == 0) pay_command(e, answer_command(id + "_a2", payments::AttemptStatus::approved));
    }
    // A refund of a succeeded payment (at rest again once the PSP approved it).
    ASSERT_TRUE(pay_command(e, payments::cmd::CreateRefund{"re_4", "pay_4", 0}).ok());
    pay_command(e, answer_command("re_4_a1", payments::AttemptStatus::approved));
    // Wallet flows: top-ups approved, declined and one left processing (its outcome unknown: a
    // restart journals nothing for it); a wallet transfer and one refused for its balance; a
    // payout paid and one left processing.
    for (const char* c : {"cus_1", "cus_2"}) {
      ASSERT_TRUE(pay_command(e, payments::cmd::CreateCustomer{c, ""}).ok());
    }
    const auto flow = [](const char* id, const char* customer, bool topup) {
      return payments::cmd::CreateFlow{
          id,
          customer,
          5000,
          *Currency::from_code("EUR"),
          "cardco",
          topup ? payments::InstrumentKind::card_token : payments::InstrumentKind::iban,
          topup ? "tok_visa" : "DE89370400440532013000"};
    };
    for (int i = 0; i < 5; ++i) {
      const std::string id = "tu_" + std::to_string(i);
      ASSERT_TRUE(pay_command(e, payments::cmd::CreateTopup{flow(id.c_str(),
                                                                 i % 2 ? "cus_2" : "cus_1", true)})
                      .ok());
      pay_command(e, answer_command(id + "_a1", i == 3   ? payments::AttemptStatus::declined_hard
                                                : i == 4 ? payments::AttemptStatus::unknown
                                                         : payments::AttemptStatus::approved));
    }
    const Currency eur = *Currency::from_code("EUR");
    ASSERT_TRUE(
        pay_command(e, payments::cmd::CreateWalletTransfer{"tr_0", "cus_1", "cus_2", 100, eur})
            .ok());
    ASSERT_TRUE(pay_command(e, payments::cmd::CreateWalletTransfer{"tr_1", "cus_2", "cus_1",
                                                                   1'000'000, eur})
                    .ok());  // insufficient funds: stored as failed
    ASSERT_TRUE(pay_command(e, payments::cmd::CreatePayout{flow("po_0", "cus_1", false)}).ok());
    ASSERT_TRUE(pay_command(e, payments::cmd::CreatePayout{flow("po_1", "cus_2", false)}).ok());
    pay_command(e, answer_command("po_0_a1", payments::AttemptStatus::approved));
    pay_command(e, answer_command("po_1_a1", payments::AttemptStatus::unknown));
  }
  // At rest after write_payments(): succeeded or failed (the even ones); the odd ones wait
  // for a confirmation.
  static constexpr uint64_t kPaymentsAtRest = 6;
  // Wallet flows at rest after write_payments(): all but tu_4 and po_1.
  static constexpr uint64_t kFlowsAtRest = 7;

  // GET of every payment and of the refund (and of ids that do not exist), and every page of
  // payment lists for a few filters and page sizes, following cursors.
  static std::vector<std::string> payment_reads(Engine& e) {
    std::vector<std::string> out;
    const auto read = [&](payments::Query q) {
      const auto r = wait_for<payments::QueryResult>(
          [&](auto cb) { e.payments_query(std::move(q), std::move(cb)); });
      EXPECT_EQ(r.error, EngineError::ok);
      EXPECT_FALSE(r.value.needs_history());
      out.push_back(r.value.found ? r.value.body : "<not found>");
    };
    for (int i = 0; i < 13; ++i) {
      payments::Query q;
      q.id = "pay_" + std::to_string(i);
      read(q);
    }
    for (const char* id : {"re_4", "re_5", "pay_4"}) {
      payments::Query q;
      q.kind = payments::QueryKind::get_refund;
      q.id = id;
      read(q);
    }
    for (const char* status : {"", "succeeded", "failed", "requires_confirmation"}) {
      payments::Query q;
      q.kind = payments::QueryKind::list_payments;
      q.status = status;
      all_pages(e, q, "pay_", &out);
    }
    using payments::QueryKind;
    const std::tuple<QueryKind, QueryKind, const char*> kFlows[] = {
        {QueryKind::get_topup, QueryKind::list_topups, "topup"},
        {QueryKind::get_payout, QueryKind::list_payouts, "payout"},
        {QueryKind::get_wallet_transfer, QueryKind::list_wallet_transfers, "wallet_transfer"}};
    for (const auto& [get, list, object] : kFlows) {
      for (const char* id : {"tu_0", "tu_3", "tu_4", "tr_0", "tr_1", "po_0", "po_1", "tu_9"}) {
        payments::Query q;
        q.kind = get;
        q.id = id;
        read(q);
      }
      for (const char* status : {"", "processing", "succeeded", "failed"}) {
        for (const char* customer : {"", "cus_1", "cus_2"}) {
          payments::Query q;
          q.kind = list;
          q.status = status;
          q.customer_id = customer;
          all_pages(e, q, "", &out, object);
        }
      }
    }
    return out;
  }

  static constexpr int kTransfers = 120;

  // Plain transfers, holds posted in part, holds voided, holds left open (with and without a
  // deadline), metadata: every kind of final transfer, and some that stay in memory.
  void write_history(Engine& e) {
    accounts(e, {account("a"), account("b"), account("c")});
    for (int i = 0; i < kTransfers; ++i) {
      const std::string n = std::to_string(i);
      std::vector<ledger::TransferEvent> ev;
      switch (i % 4) {
        case 0:
          ev = {transfer("t" + n, "a", "b", 1 + i)};
          ev[0].metadata = {{"order", n}};
          break;
        case 1:
          ev = {pending("t" + n, "b", "c", 10 + i), post("x" + n, "t" + n, 5)};
          break;
        case 2:
          ev = {pending("t" + n, "c", "a", 3), void_pending("x" + n, "t" + n)};
          break;
        default:
          ev = {pending("t" + n, "a", "c", 2, i % 8 == 3 ? 3600 : 0)};
      }
      for (const CreateTransferResult r : transfers(e, ev)) ASSERT_EQ(r, CreateTransferResult::ok);
    }
  }

  static TransferReads read_all(Engine& e) {
    TransferReads out;
    for (int i = 0; i < kTransfers; ++i) {
      for (const char* prefix : {"t", "x"}) {
        const auto o = wait_for<std::optional<ledger::Transfer>>(
            [&](auto cb) { e.get_transfer(prefix + std::to_string(i), std::move(cb)); });
        EXPECT_EQ(o.error, EngineError::ok);
        out.by_id.push_back(o.value);
      }
    }
    for (const char* account_id : {"a", "b", "c", "nobody"}) {
      std::string cursor;
      for (;;) {
        const auto o = wait_for<ledger::AccountTransfersPage>([&](auto cb) {
          e.list_account_transfers({account_id, 7, cursor}, std::move(cb));
        });
        EXPECT_EQ(o.error, EngineError::ok);
        out.pages.push_back(o.value);
        if (!o.value.has_more || o.value.data.empty()) break;
        cursor = o.value.data.back().id;
      }
    }
    return out;
  }

  // Waits until the writer dropped every final transfer from memory: only open holds remain.
  static void wait_moved(Engine& e) {
    const size_t open_holds = kTransfers / 4;
    ASSERT_TRUE(wait_until(e, [&](const EngineStatus& s) {
      return s.history_queued == 0 && s.counts.transfers_in_memory == open_holds;
    }));
  }
};

TEST_F(HistoryTest, FinalTransfersMoveToTheStoreAndEveryReadAnswersTheSame) {
  TransferReads before;
  EngineStatus hot;
  {
    auto e = open_on_disk(/*with_store=*/true);
    write_history(*e);
    before = read_all(*e);
    wait_moved(*e);
    const EngineStatus s = status(*e);
    EXPECT_TRUE(s.history_enabled);
    EXPECT_EQ(s.history_moved, s.counts.transfers - kTransfers / 4);
    EXPECT_GT(s.history_applied_seq, 0u);
    EXPECT_TRUE(s.invariants_ok) << s.invariant_problem;
    EXPECT_EQ(read_all(*e), before);
    // Commands that meet a transfer in the store: a retry answers exists, a second post of a
    // hold already posted is refused, as they would be in memory.
    ledger::TransferEvent retry = transfer("t0", "a", "b", 1);
    retry.metadata = {{"order", "0"}};
    EXPECT_EQ(transfers(*e, {retry})[0], CreateTransferResult::exists);
    retry.amount = 2;
    EXPECT_EQ(transfers(*e, {retry})[0], CreateTransferResult::exists_with_different_amount);
    EXPECT_EQ(transfers(*e, {post("y1", "t1", 1)})[0],
              CreateTransferResult::pending_transfer_already_posted);
    EXPECT_EQ(transfers(*e, {void_pending("y2", "t2")})[0],
              CreateTransferResult::pending_transfer_already_voided);
    hot = status(*e);
  }
  // The same journal replayed with every transfer in memory has the same state hash.
  {
    auto e = open_on_disk(/*with_store=*/false);
    EXPECT_EQ(status(*e).state_hash, hot.state_hash);
    EXPECT_EQ(read_all(*e), before);
  }
  // A snapshot keeps only what memory holds; a restart reads the rest from the store.
  {
    auto e = open_on_disk(true);
    wait_moved(*e);
    const auto snap = wait_for<Status>([&](auto cb) { e->take_snapshot(std::move(cb)); });
    ASSERT_TRUE(snap.value.is_ok()) << snap.value.message();
  }
  auto e = open_on_disk(true);
  const EngineStatus s = status(*e);
  EXPECT_EQ(s.state_hash, hot.state_hash);
  EXPECT_EQ(s.counts.transfers_in_memory, kTransfers / 4u);
  EXPECT_TRUE(s.invariants_ok) << s.invariant_problem;
  EXPECT_EQ(read_all(*e), before);
}

TEST_F(HistoryTest,
       EventsAndSettledKeysMoveToTheStoreAndAnswerTheSameBeforeAfterAndAcrossRestarts) {
  store_->fail_writes = true;  // until the pages in memory are read
  std::vector<std::string> pages;
  std::vector<std::string> answers;
  std::vector<std::string> reads;
  uint64_t hash = 0;
  uint64_t pending = 0;
  {
    auto e = open_on_disk(/*with_store=*/true);
    write_payments(*e);
    const EngineStatus s = status(*e);
    EXPECT_EQ(s.payments.events_in_memory, s.payments.events);
    EXPECT_EQ(s.payments.idempotency_keys_in_memory, s.payments.idempotency_keys);
    answers = replays(*e);
    reads = payment_reads(*e);
    EXPECT_EQ(s.payments.payments_in_memory, s.payments.payments);
    pending = s.payments.deliveries_pending;
    ASSERT_GT(pending, 0u);
    ASSERT_LT(pending, s.payments.events);
    pages = event_pages(*e);
    hash = s.state_hash;
    store_->fail_writes = false;
    // Every event whose delivery is final leaves memory; those pending stay.
    ASSERT_TRUE(wait_until(*e, [&](const EngineStatus& st) {
      return st.history_queued == 0 && st.payments.events_in_memory == pending &&
             st.payments.idempotency_keys_in_memory == 0 &&
             st.payments.payments_in_memory == st.payments.payments - kPaymentsAtRest &&
             st.payments.wallet_flows_in_memory == st.payments.wallet_flows - kFlowsAtRest;
    }));
    const EngineStatus moved = status(*e);
    EXPECT_GE(moved.history_payments_moved, kPaymentsAtRest);
    EXPECT_EQ(moved.history_flows_moved, kFlowsAtRest);
    EXPECT_EQ(payment_reads(*e), reads);
    EXPECT_EQ(moved.history_events_moved, s.payments.events - pending);
    EXPECT_EQ(moved.history_keys_moved, s.payments.idempotency_keys);
    EXPECT_EQ(moved.state_hash, hash);
    EXPECT_TRUE(moved.invariants_ok) << moved.invariant_problem;
    EXPECT_EQ(event_pages(*e), pages);
    EXPECT_EQ(replays(*e), answers);  // read from the store, byte for byte
    // A refund of a payment in the store brings it back into memory; at rest again, it goes
    // back to the store.
    const uint64_t moved_before = moved.history_payments_moved;
    ASSERT_TRUE(pay_command(*e, payments::cmd::CreateRefund{"re_8", "pay_8", 100}).ok());
    pay_command(*e, answer_command("re_8_a1", payments::AttemptStatus::approved));
    ASSERT_TRUE(wait_until(*e, [&](const EngineStatus& st) {
      return st.history_queued == 0 && st.history_payments_moved > moved_before &&
             st.payments.payments_in_memory == st.payments.payments - kPaymentsAtRest;
    }));
    const EngineStatus refunded = status(*e);
    EXPECT_TRUE(refunded.invariants_ok) << refunded.invariant_problem;
    hash = refunded.state_hash;
    pages = event_pages(*e);
    reads = payment_reads(*e);
  }
  // The same journal replayed with everything in memory: the same pages and state.
  {
    auto e = open_on_disk(/*with_store=*/false);
    EXPECT_EQ(status(*e).state_hash, hash);
    EXPECT_EQ(event_pages(*e), pages);
    EXPECT_EQ(replays(*e), answers);
    EXPECT_EQ(payment_reads(*e), reads);
  }
  // A snapshot holds only the events in memory; a restart reads the rest from the store.
  {
    auto e = open_on_disk(true);
    ASSERT_TRUE(wait_until(*e, [&](const EngineStatus& st) {
      return st.history_queued == 0 && st.payments.events_in_memory == pending;
    }));
    ASSERT_TRUE(wait_for<Status>([&](auto cb) { e->take_snapshot(std::move(cb)); }).value.is_ok());
  }
  {
    auto e = open_on_disk(true);
    const EngineStatus s = status(*e);
    EXPECT_EQ(s.payments.events_in_memory, pending);
    EXPECT_EQ(s.payments.idempotency_keys_in_memory, 0u);
    EXPECT_EQ(s.payments.payments_in_memory, s.payments.payments - kPaymentsAtRest);
    EXPECT_EQ(s.payments.wallet_flows_in_memory, s.payments.wallet_flows - kFlowsAtRest);
    EXPECT_EQ(s.state_hash, hash);
    EXPECT_EQ(event_pages(*e), pages);
    EXPECT_EQ(replays(*e), answers);
    EXPECT_EQ(payment_reads(*e), reads);
  }
  std::unique_ptr<Engine> e;
  const Status refused = Engine::open(memory_options(/*with_store=*/false), &e);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.message().find("on a history store"), std::string::npos) << refused.message();
}

// A store copied after the snapshot it is restored with (a backup) holds payment records the
// journal never reached: start-up removes them, so no read and no state hash sees a payment as
// a timeline that did not happen left it.
TEST_F(HistoryTest, PaymentRecordsNewerThanTheJournalAreRemovedAtStartUp) {
  uint64_t hash = 0;
  std::vector<std::string> reads;
  uint64_t last = 0;
  {
    auto e = open_on_disk(/*with_store=*/true);
    write_payments(*e);
    ASSERT_TRUE(wait_until(*e, [&](const EngineStatus& st) {
      return st.history_queued == 0 &&
             st.payments.payments_in_memory == st.payments.payments - kPaymentsAtRest;
    }));
    const EngineStatus s = status(*e);
    hash = s.state_hash;
    last = s.last_seq;
    reads = payment_reads(*e);
  }
  std::string future;
  {
    std::lock_guard lock(store_->mu);
    // pay_2 failed and is in the store; a later version of it, and a payment of its own.
    const std::string key = payments::payment_history::key(payments::payment_history::Kind::payment,
                                                           "pay_2", last + 50);
    auto older = store_->records.lower_bound(std::string("py") + "pay_2");
    ASSERT_NE(older, store_->records.end());
    ASSERT_TRUE(older->first.starts_with(std::string("py") + "pay_2"));
    future = older->second;
    store_->records[key] = "not a payment";
    // Its marker: it would delete the version the journal does hold.
    store_->records[payments::payment_history::superseded_marker(key)] = "";
    store_->records[payments::payment_history::key(payments::payment_history::Kind::payment,
                                                   "pay_99", last + 60)] = future;
    store_->applied_seq = last + 60;
  }
  auto e = open_on_disk(true);
  const EngineStatus s = status(*e);
  EXPECT_EQ(s.state_hash, hash);
  EXPECT_EQ(s.payments.payments, 12u);
  EXPECT_EQ(payment_reads(*e), reads);
  std::lock_guard lock(store_->mu);
  for (const auto& [k, v] : store_->records) {
    if (k.starts_with("p")) {
      EXPECT_LE(read_be64_suffix(k), s.last_seq) << k;
    }
    if (k.starts_with("s")) {  // no marker of a version the journal never reached
      EXPECT_LE(read_be64_suffix(k.substr(0, 9)), s.last_seq) << k;
    }
  }
}

// One merchant's dead endpoint holds at most a tenth of the outbox in pending deliveries: its
// later events wait deferred in the store, other merchants go on paying (never over_capacity),
// and once the endpoint answers, every event reaches it once, in order, across a restart.
TEST_F(HistoryTest, ADeadEndpointQueuesItsEventsInTheStoreWhileOtherMerchantsGoOnPaying) {
  constexpr size_t kDeadPayments = 80;  // twice the outbox: without backlogs, admission stops
  constexpr size_t kLivePayments = 20;
  EngineOptions o = memory_options(/*with_store=*/true);
  o.payments.outbox.events_max = 40;  // 4 pending deliveries per merchant
  std::mutex mu;
  std::vector<payments::Delivery> handed;
  std::vector<std::string> warnings;
  o.on_payment_effects = [&](PaymentEffects fx) {
    std::lock_guard lock(mu);
    for (auto& d : fx.deliveries) handed.push_back(std::move(d));
  };
  o.log = [&](LogLevel level, std::string_view line) {
    std::lock_guard lock(mu);
    if (level == LogLevel::warn) warnings.emplace_back(line);
  };
  const auto create = [](std::string id, std::string merchant) {
    payments::cmd::CreatePayment c =
        std::get<payments::cmd::CreatePayment>(payment_command(std::move(id)).body);
    c.merchant_id = std::move(merchant);
    return payments::Command(std::move(c));
  };
  // Answers the deliveries handed out so far: mch_live's delivered, mch_dead's as `dead_up`
  // says. Returns how many were answered; `received` gets the delivered ids per merchant.
  std::map<std::string, std::vector<std::string>> received;
  const auto answer = [&](Engine& e, bool dead_up) {
    std::vector<payments::Delivery> now;
    {
      std::lock_guard lock(mu);
      std::swap(now, handed);
    }
    for (const payments::Delivery& d : now) {
      const bool up = d.merchant_id == "mch_live" || dead_up;
      pay_command(e, payments::cmd::OutboxAttempt{d.event_id, up});
      if (up) received[d.merchant_id].push_back(d.event_id);
    }
    return now.size();
  };
  uint64_t hash = 0;
  {
    auto e = open(o);
    for (const char* m : {"mch_dead", "mch_live"}) {
      ASSERT_TRUE(
          pay_command(*e, payments::cmd::CreateMerchant{m, "", "http://127.0.0.1:9/h", "s"}).ok());
    }
    for (size_t i = 0; i < kDeadPayments; ++i) {
      ASSERT_TRUE(pay_command(*e, create("pay_d" + std::to_string(i), "mch_dead")).ok()) << i;
      if (i % 4 == 0) {
        ASSERT_TRUE(pay_command(*e, create("pay_l" + std::to_string(i), "mch_live")).ok()) << i;
      }
      answer(*e, /*dead_up=*/false);
    }
    ASSERT_TRUE(wait_until(*e, [&](const EngineStatus& st) {
      return st.history_queued == 0 && st.payments.events_in_memory < 20;
    }));
    const EngineStatus st = status(*e);
    EXPECT_GE(st.payments.merchants_backlogged, 1u);
    EXPECT_GE(st.payments.deliveries_deferred, kDeadPayments - 4u);
    EXPECT_GE(st.history_events_moved, kDeadPayments - 4u);
    {
      std::lock_guard lock(mu);
      const auto said = std::count_if(warnings.begin(), warnings.end(), [](const std::string& w) {
        return w.find("merchant mch_dead's webhook deliveries are backing up") != std::string::npos;
      });
      EXPECT_EQ(said, 1);
    }
    // The endpoint comes back: half its events arrive, then keeld restarts.
    while (received["mch_dead"].size() < kDeadPayments / 2) {
      if (answer(*e, /*dead_up=*/true) == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    // The restart starts from a snapshot that holds the backlog (outbox encoding version 3).
    ASSERT_TRUE(status(*e).payments.merchants_backlogged > 0);
    ASSERT_EQ(wait_for<Status>([&](auto cb) { e->take_snapshot(std::move(cb)); }).error,
              EngineError::ok);
    hash = status(*e).state_hash;
  }
  {
    std::lock_guard lock(mu);
    handed.clear();  // a restart forgets what was in flight; due deliveries are handed again
  }
  auto e = open(o);
  EXPECT_EQ(status(*e).state_hash, hash);
  const auto drained = [](const EngineStatus& st) {
    return st.payments.merchants_backlogged == 0 && st.payments.deliveries_pending == 0;
  };
  for (int round = 0; round < 4000 && !drained(status(*e)); ++round) {
    if (answer(*e, /*dead_up=*/true) == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const EngineStatus st = status(*e);
  ASSERT_TRUE(drained(st));
  // Every event reached its merchant once; mch_dead's deferred ones (all after its first four,
  // which were retried) in the order of creation (event ids grow with it).
  for (const auto& [merchant, want] :
       {std::pair{"mch_dead", kDeadPayments}, std::pair{"mch_live", kLivePayments}}) {
    std::vector<std::string>& got = received[merchant];
    std::vector<std::string> sorted = got;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end()) << merchant;
    EXPECT_EQ(got.size(), want) << merchant;
  }
  std::vector<std::string> deferred = received["mch_dead"];
  std::vector<std::string> first = deferred;
  std::sort(first.begin(), first.end());
  first.resize(4);  // pending from the start: retried on their own schedules
  std::erase_if(deferred, [&](const std::string& id) {
    return std::find(first.begin(), first.end(), id) != first.end();
  });
  EXPECT_TRUE(std::is_sorted(deferred.begin(), deferred.end()));
  EXPECT_TRUE(st.invariants_ok) << st.invariant_problem;
  e.reset();
  VerifyReport report;
  ASSERT_TRUE(verify_data_dir(dir_.path(), &report).is_ok());
}

// A payment at rest that came back (a refund) is written again under a newer version; the
// older versions go once no kept snapshot could need them, and nothing reads differently.
TEST_F(HistoryTest, SupersededVersionsLeaveTheStoreOnceNoKeptSnapshotNeedsThem) {
  const auto versions = [&](const std::string& prefix) {
    std::lock_guard lock(store_->mu);
    size_t n = 0;
    for (auto it = store_->records.lower_bound(prefix);
         it != store_->records.end() && it->first.starts_with(prefix); ++it) {
      ++n;
    }
    return n;
  };
  const std::string pay_8 = std::string("py") + "pay_8" + '\0';
  std::vector<std::string> reads;
  uint64_t hash = 0;
  {
    auto e = open_on_disk(/*with_store=*/true);
    write_payments(*e);
    ASSERT_TRUE(wait_until(*e, [&](const EngineStatus& st) {
      return st.history_queued == 0 &&
             st.payments.payments_in_memory == st.payments.payments - kPaymentsAtRest;
    }));
    ASSERT_EQ(versions(pay_8), 1u);
    ASSERT_TRUE(pay_command(*e, payments::cmd::CreateRefund{"re_8", "pay_8", 100}).ok());
    pay_command(*e, answer_command("re_8_a1", payments::AttemptStatus::approved));
    ASSERT_TRUE(wait_until(*e, [&](const EngineStatus& st) {
      return st.history_queued == 0 && versions(pay_8) == 2 &&
             st.payments.payments_in_memory == st.payments.payments - kPaymentsAtRest;
    }));
    EXPECT_GE(versions("s"), 1u);  // the marker: pay_8's older version is superseded
    reads = payment_reads(*e);
    // The oldest kept snapshot must be at or after the newer version: two snapshots later.
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(
          pay_command(*e, payments::cmd::CreateCustomer{"cus_s" + std::to_string(i), ""}).ok());
      ASSERT_TRUE(
          wait_for<Status>([&](auto cb) { e->take_snapshot(std::move(cb)); }).value.is_ok());
    }
    ASSERT_TRUE(wait_until(*e, [&](const EngineStatus& st) {
      return st.history_superseded_deleted > 0 && versions(pay_8) == 1;
    }));
    EXPECT_EQ(versions("s"), 0u);
    EXPECT_EQ(payment_reads(*e), reads);
    hash = status(*e).state_hash;
  }
  auto e = open_on_disk(true);
  EXPECT_EQ(status(*e).state_hash, hash);
  EXPECT_EQ(payment_reads(*e), reads);
  EXPECT_TRUE(status(*e).invariants_ok);
}

// Expired events leave the store only once no kept snapshot holds them: their records and
// index records both, so nothing expired lingers on disk and nothing a recovery needs goes.
TEST_F(HistoryTest, ExpiredEventsAndKeysLeaveTheStoreOnceNoKeptSnapshotHoldsThem) {
  EngineOptions o = memory_options(/*with_store=*/true);
  o.payments.outbox.delivery_window_s = 1;
  o.payments.outbox.retention_s = 1;
  o.payments.idempotency_ttl_s = 1;
  auto e = open(o);
  ASSERT_TRUE(pay_command(*e, merchant_command()).ok());
  const auto keyed = [](std::string id) {
    payments::Command c = payment_command(id);
    c.idempotency = {"client", "k" + id, std::string(payments::kFingerprintBytes, 'f')};
    return c;
  };
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(pay_command(*e, keyed("old_" + std::to_string(i))).ok());
  ASSERT_TRUE(wait_until(*e, [](const EngineStatus& s) {
    return s.history_events_moved == 5 && s.payments.events_in_memory == 0 &&
           s.history_keys_moved == 5;
  }));
  const auto store_keys = [&](std::string_view prefix) {
    std::lock_guard lock(store_->mu);
    size_t n = 0;
    for (const auto& [k, v] : store_->records) n += k.starts_with(prefix) ? 1 : 0;
    return n;
  };
  EXPECT_EQ(store_keys("e"), 5u * 5);  // each event: its record and four index records
  EXPECT_EQ(store_keys("ik"), 5u);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  // Its event expires the old events, its key the old keys.
  ASSERT_TRUE(pay_command(*e, keyed("new")).ok());
  EXPECT_EQ(status(*e).payments.events, 1u);
  EXPECT_EQ(status(*e).payments.idempotency_keys, 1u);
  const auto snapshot = [&] {
    ASSERT_TRUE(wait_for<Status>([&](auto cb) { e->take_snapshot(std::move(cb)); }).value.is_ok());
  };
  snapshot();  // the newest holds no old event, but the one kept before it may still
  EXPECT_EQ(status(*e).history_events_deleted, 0u);
  ASSERT_TRUE(pay_command(*e, payment_command("newer")).ok());
  snapshot();  // now every kept snapshot is past them
  ASSERT_TRUE(wait_until(*e, [](const EngineStatus& s) { return s.history_events_deleted == 5; }));
  ASSERT_TRUE(
      wait_until(*e, [](const EngineStatus& s) { return s.payments.events_in_memory == 0; }));
  EXPECT_EQ(store_keys("e"), 2u * 5);  // the new events'
  ASSERT_TRUE(wait_until(
      *e, [](const EngineStatus& s) { return s.payments.idempotency_keys_in_memory == 0; }));
  EXPECT_EQ(store_keys("ik"), 1u);  // the new key's
  const EngineStatus before = status(*e);
  EXPECT_TRUE(before.invariants_ok) << before.invariant_problem;
  const std::vector<std::string> pages = event_pages(*e);
  e.reset();
  e = open(o);
  EXPECT_EQ(status(*e).state_hash, before.state_hash);
  EXPECT_EQ(event_pages(*e), pages);
}

TEST_F(HistoryTest, ASnapshotThatCountsOnTheStoreIsRefusedWithoutIt) {
  {
    auto e = open_on_disk(true);
    write_history(*e);
    wait_moved(*e);
    ASSERT_TRUE(wait_for<Status>([&](auto cb) { e->take_snapshot(std::move(cb)); }).value.is_ok());
  }
  EngineOptions o = memory_options(/*with_store=*/false);
  std::unique_ptr<Engine> e;
  Status s = Engine::open(o, &e);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("counts on a history store"), std::string::npos) << s.message();
  // A store that lost a record (restored from an older copy) is refused too, naming it.
  store_->records.erase(store_->records.begin());
  s = Engine::open(memory_options(/*with_store=*/true), &e);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("history store lacks transfer 0"), std::string::npos) << s.message();
}

TEST_F(HistoryTest, AFailedStoreWriteKeepsTransfersInMemoryUntilARetryWritesThem) {
  store_->fail_next_write = true;
  auto e = open_on_disk(true);
  write_history(*e);
  const TransferReads before = read_all(*e);
  ASSERT_TRUE(wait_until(*e, [](const EngineStatus& s) { return s.history_write_failures == 1; }));
  EXPECT_EQ(read_all(*e), before);  // nothing left memory while the store refused it
  wait_moved(*e);                   // the retry, a second later
  EXPECT_EQ(read_all(*e), before);
  EXPECT_TRUE(status(*e).invariants_ok);
}

// A backup taken while transfers keep coming holds exactly the state at its record: its hash is
// that of the journal replayed up to that record, every transfer acknowledged before it was
// asked for is in it, and a restore starts an engine on it that goes on from there.
TEST_F(EngineTest, ABackupUnderLoadRestoresToTheStateAtItsRecord) {
  auto e = open();
  accounts(*e, {account("a"), account("b")});
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::string> acknowledged;  // in order of their answers
  std::thread load([&] {
    for (int i = 0; !stop.load(); ++i) {
      const std::string id = "t" + std::to_string(i);
      const auto r = wait_for<std::vector<CreateTransferResult>>([&](auto cb) {
        std::vector<ledger::TransferEvent> ev = {i % 5 == 0 ? pending(id, "a", "b", 1 + i % 7)
                                                            : transfer(id, "a", "b", 1 + i % 7)};
        e->create_transfers(std::move(ev), std::move(cb));
      });
      if (r.error == EngineError::ok && r.value[0] == CreateTransferResult::ok) {
        std::lock_guard lock(mu);
        acknowledged.push_back(id);
      }
    }
  });
  while (true) {  // let some history reach the store first
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (status(*e).history_moved > 200) break;
  }
  size_t acknowledged_before = 0;
  {
    std::lock_guard lock(mu);
    acknowledged_before = acknowledged.size();
  }
  const TempDir backups;
  const fs::path backup = backups.path() / "b1";
  const BackupResult result =
      wait_for<BackupResult>([&](auto cb) { e->backup(backup, std::move(cb)); }).value;
  ASSERT_TRUE(result.status.is_ok()) << result.status.message();
  EXPECT_TRUE(result.with_store);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  stop.store(true);
  load.join();
  // A second backup into the same (now full) directory, and a relative path, are refused.
  EXPECT_FALSE(wait_for<BackupResult>([&](auto cb) {
                 e->backup(backup, std::move(cb));
               }).value.status.is_ok());
  EXPECT_FALSE(wait_for<BackupResult>([&](auto cb) {
                 e->backup("rel", std::move(cb));
               }).value.status.is_ok());
  e->stop();

  // The state at the backup's record, from the original journal.
  journal::JournalOptions jo;
  jo.dir = dir_.path();
  jo.read_only = true;
  std::unique_ptr<journal::Journal> j;
  ASSERT_TRUE(journal::Journal::open(jo, &j, nullptr).is_ok());
  State at_backup;
  Timestamp clock = 0;
  ASSERT_TRUE(j->replay(1, [&](const journal::RecordView& r) {
                 if (r.seq > result.seq) return Status::ok();
                 return apply_record(at_backup, static_cast<RecordType>(r.type), r.timestamp,
                                     r.payload, &clock);
               }).is_ok());
  uint64_t expected = 0;
  ASSERT_TRUE(state_hash(at_backup, &expected).is_ok());

  VerifyReport report;
  const fs::path data = backups.path() / "restored";
  const Status restored = restore_backup(backup, data, &report);
  ASSERT_TRUE(restored.is_ok()) << restored.message();
  EXPECT_EQ(report.snapshot_seq, result.seq);
  EXPECT_EQ(report.state_hash, expected);
  EXPECT_TRUE(report.invariants.ok);
  // Restoring over a directory that holds something is refused.
  EXPECT_FALSE(restore_backup(backup, data, &report).is_ok());

  EngineOptions o;
  o.data_dir = data;
  std::unique_ptr<Engine> r;
  ASSERT_TRUE(Engine::open(o, &r).is_ok());
  const EngineStatus s = status(*r);
  EXPECT_EQ(s.state_hash, expected);
  EXPECT_EQ(s.last_seq, result.seq);
  EXPECT_LT(s.counts.transfers_in_memory, s.counts.transfers);  // history stayed in the store
  for (size_t i = 0; i < acknowledged_before; ++i) {
    EXPECT_TRUE(transfer_of(*r, acknowledged[i])) << acknowledged[i];
  }
  // It goes on from the backup's record.
  EXPECT_EQ(transfers(*r, {transfer("after", "a", "b", 1)})[0], CreateTransferResult::ok);
  EXPECT_EQ(status(*r).last_seq, result.seq + 2);  // its record and its chain record
}

// A lost history store comes back from the journal: with archiving on, retention moves old
// segments to the archive, and `keel store rebuild` replays every record from 1 into a new store
// that gives the same state. Without the archive it says the journal is incomplete and changes
// nothing.
TEST_F(EngineTest, ALostStoreIsRebuiltFromTheJournalAndItsArchive) {
  const TempDir archive;
  EngineOptions o;
  o.segment_bytes_max = 4096;
  o.archive_dir = archive.path();
  uint64_t hash = 0;
  {
    auto e = open(o);
    accounts(*e, {account("a"), account("b")});
    for (int round = 0; round < 3; ++round) {
      for (int i = 0; i < 40; ++i) {
        const std::string id = "t" + std::to_string(round) + "_" + std::to_string(i);
        ASSERT_EQ(transfers(*e, {transfer(id, "a", "b", 1 + i)})[0], CreateTransferResult::ok);
      }
      ASSERT_TRUE(wait_until(*e, [](const EngineStatus& s) {
        return s.history_queued == 0 && s.counts.transfers_in_memory == 0;
      }));
      ASSERT_TRUE(
          wait_for<Status>([&](auto cb) { e->take_snapshot(std::move(cb)); }).value.is_ok());
    }
    hash = status(*e).state_hash;
  }
  size_t archived = 0;
  for (const auto& f : fs::directory_iterator(archive.path()))
    archived += f.path().extension() == ".seg";
  ASSERT_GT(archived, 0u);

  // The audit chain verifies from the retained snapshots, and from record 1 with the archive.
  AuditReport audit;
  Status a = verify_audit(dir_.path(), "", {}, &audit);
  ASSERT_TRUE(a.is_ok()) << a.message();
  EXPECT_TRUE(audit.chain.ok()) << audit.chain.problems.front();
  EXPECT_GT(audit.chain.first_seq, 1u);
  EXPECT_GE(audit.chain.anchors_checked, 1u);  // a snapshot's point
  const std::optional<journal::ChainPoint> head = audit.chain.head;
  ASSERT_TRUE(head.has_value());
  a = verify_audit(dir_.path(), archive.path(), {{*head, "--anchor"}}, &audit);
  ASSERT_TRUE(a.is_ok()) << a.message();
  EXPECT_TRUE(audit.chain.ok()) << audit.chain.problems.front();
  EXPECT_EQ(audit.chain.first_seq, 1u);
  EXPECT_EQ(audit.chain.covered_from, 1u);
  EXPECT_EQ(audit.chain.head, head);

  fs::remove_all(dir_.path() / "store");  // the store is lost
  {
    std::unique_ptr<Engine> e;
    o.data_dir = dir_.path();
    const Status s = Engine::open(o, &e);
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("history store lacks transfer"), std::string::npos) << s.message();
  }
  RebuildReport report;
  Status s = rebuild_store(dir_.path(), "", &report);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("the archive is incomplete"), std::string::npos) << s.message();
  s = rebuild_store(dir_.path(), archive.path(), &report);
  ASSERT_TRUE(s.is_ok()) << s.message();
  EXPECT_EQ(report.state_hash, hash);
  EXPECT_EQ(report.transfers_moved, 120u);
  EXPECT_FALSE(report.replaced_store.empty());  // the empty store the failed start created

  auto e = open(o);
  EXPECT_EQ(status(*e).state_hash, hash);
  EXPECT_EQ(transfer_of(*e, "t0_7")->amount, 8);
  EXPECT_EQ(transfers(*e, {transfer("t1_3", "a", "b", 4)})[0], CreateTransferResult::exists);
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Replays tests/fixtures/{name} (written by make_fixture.sh) from its snapshot and from its
// journal alone to the hash its writer reported, then opens a copy with the engine.
// Returns the engine's body of the runtime controls (empty where they did not exist yet).
std::string expect_fixture_replays(const std::string& name, uint64_t payments = 4) {
  SCOPED_TRACE(name);
  const fs::path fixture = fs::path(KEEL_SOURCE_DIR) / "tests/fixtures" / name;
  std::ifstream in(fixture / "expected_state_hash");
  std::string expected;
  in >> expected;
  EXPECT_EQ(expected.size(), 16u);

  VerifyReport report;
  Status v = verify_data_dir(fixture / "data", &report);
  EXPECT_TRUE(v.is_ok()) << v.message();
  EXPECT_GT(report.snapshot_seq, 0u);
  EXPECT_GT(report.records_replayed, 0u);
  EXPECT_TRUE(report.invariants.ok) << report.invariants.problem;
  EXPECT_EQ(hex(report.state_hash), expected);

  TempDir journal_only;
  for (const auto& f : fs::directory_iterator(fixture / "data")) {
    if (f.path().extension() != ".snap")
      fs::copy(f.path(), journal_only.path() / f.path().filename());
  }
  VerifyReport replayed;
  v = verify_data_dir(journal_only.path(), &replayed);
  EXPECT_TRUE(v.is_ok()) << v.message();
  EXPECT_EQ(replayed.snapshot_seq, 0u);
  EXPECT_EQ(hex(replayed.state_hash), expected);

  // The lists of payments, top-ups, payouts and wallet transfers.
  const auto payment_list = [](Engine& e) {
    std::string out;
    for (const payments::QueryKind kind :
         {payments::QueryKind::list_payments, payments::QueryKind::list_topups,
          payments::QueryKind::list_payouts, payments::QueryKind::list_wallet_transfers}) {
      payments::Query q;
      q.kind = kind;
      q.limit = 100;
      out += wait_for<payments::QueryResult>([&](auto cb) {
               e.payments_query(std::move(q), std::move(cb));
             }).value.body;
    }
    return out;
  };
  // Its payments as keeld shows them with every payment in memory.
  std::string payments_in_memory;
  {
    TempDir copy;
    fs::copy(fixture / "data", copy.path(), fs::copy_options::recursive);
    EngineOptions o;
    o.data_dir = copy.path();
    o.history_in_memory = true;
    std::unique_ptr<Engine> e;
    if (const Status opened = Engine::open(o, &e); opened.is_ok()) {
      payments_in_memory = payment_list(*e);
    } else if (opened.message().find("history store") == std::string::npos) {
      ADD_FAILURE() << opened.message();  // only a fixture whose state counts on a store
    }
  }

  // keeld opens it (a copy: opening writes), and the payments it holds read as before.
  TempDir copy;
  fs::copy(fixture / "data", copy.path(), fs::copy_options::recursive);
  EngineOptions o;
  o.data_dir = copy.path();
  // Time stands still at the fixture's last record: no deadline written into it (idempotency
  // keys kept a day, authorizations expiring) passes however old the fixture is.
  o.wall_clock = [] { return Timestamp{0}; };
  std::unique_ptr<Engine> e;
  const Status opened = Engine::open(o, &e);
  if (!opened.is_ok()) {
    ADD_FAILURE() << opened.message();
    return {};
  }
  EngineStatus s =
      wait_for<EngineStatus>([&](auto cb) { e->get_status(true, std::move(cb)); }).value;
  EXPECT_TRUE(s.invariants_ok);
  EXPECT_EQ(hex(s.state_hash), expected);
  // Its history (transfers, and merchant events: the fixture's merchant has no endpoint) moves
  // to the store, and a restart from a snapshot that counts on the store gives the same hash.
  EXPECT_TRUE(wait_until(*e, [](const EngineStatus& st) {
    return st.history_moved > 0 && st.history_queued == 0 &&
           st.counts.transfers_in_memory < st.counts.transfers &&
           st.payments.events_in_memory == 0 && st.payments.events > 0 &&
           st.payments.payments_in_memory == 0 && st.payments.wallet_flows_in_memory == 0;
  }));
  const std::string payments_moved = payment_list(*e);
  if (!payments_in_memory.empty()) {
    EXPECT_EQ(payments_moved, payments_in_memory);
  }
  EXPECT_TRUE(wait_for<Status>([&](auto cb) { e->take_snapshot(std::move(cb)); }).value.is_ok());
  e.reset();
  if (Status again = Engine::open(o, &e); !again.is_ok()) {
    ADD_FAILURE() << again.message();
    return {};
  }
  s = wait_for<EngineStatus>([&](auto cb) { e->get_status(true, std::move(cb)); }).value;
  EXPECT_EQ(hex(s.state_hash), expected);
  EXPECT_LT(s.counts.transfers_in_memory, s.counts.transfers);
  EXPECT_EQ(s.payments.events_in_memory, 0u);        // every event read from the store
  EXPECT_EQ(s.payments.payments_in_memory, 0u);      // every payment too
  EXPECT_EQ(s.payments.wallet_flows_in_memory, 0u);  // and every top-up, payout and transfer
  EXPECT_EQ(payment_list(*e), payments_moved);
  EXPECT_EQ(s.payments.payments, payments);
  EXPECT_EQ(s.payments.wallet_flows, 3u);
  EXPECT_EQ(s.payments.in_review, 0u);
  return wait_for<payments::QueryResult>([&](auto cb) {
           e->payments_query({payments::QueryKind::get_controls, ""}, std::move(cb));
         })
      .value.body;
}

// data-v1: written before issue 8 (review reasons, the review desk section).
TEST(FormatCompatibility, DataDirectoryV1ReplaysToTheHashItsWriterComputed) {
  expect_fixture_replays("data-v1");
}

// data-v2: written before issue 9 (payments commands v4 with their tail of optional parts;
// tagged snapshot sections for channels, decisions, controls and traces).
TEST(FormatCompatibility, DataDirectoryV2ReplaysToTheHashItsWriterComputed) {
  expect_fixture_replays("data-v2");
}

// data-v3: written before payments commands v5 (an envelope and one body per kind) by the main
// of issue 9's routing: routed and pinned decisions, a traceparent, runtime controls.
TEST(FormatCompatibility, DataDirectoryV3ReplaysToTheHashItsWriterComputed) {
  const std::string controls = expect_fixture_replays("data-v3");
  for (const char* kind : {"channel_pause", "channel_resume", "flow_disable", "flow_enable"}) {
    const std::string field = std::string(R"("kind":")") + kind + R"(")";
    EXPECT_NE(controls.find(field), std::string::npos) << kind << " in " << controls;
  }
}

// data-v4: written by the main of issue 10's ledger tier (commit 848137a): a history store with
// the ledger's final transfers, a snapshot that counts on it, merchant events in memory (outbox
// encoding 1).
TEST(FormatCompatibility, DataDirectoryV4ReplaysToTheHashItsWriterComputed) {
  expect_fixture_replays("data-v4");
}

TEST(FormatCompatibility, DataDirectoryV5ReplaysToTheHashItsWriterComputed) {
  expect_fixture_replays("data-v5");
}

// data-v6: payments at rest in the history store (versioned py/pr/pd/pt records) and the
// `history` section of payments snapshots (ids of payments in the store as 32-bit tags).
TEST(FormatCompatibility, DataDirectoryV6ReplaysToTheHashItsWriterComputed) {
  expect_fixture_replays("data-v6");
}

// data-v7: wallet flows at rest in the history store (pw records, fl list index records, a
// flow_history snapshot section) and the payments' qm/qc list indexes.
TEST(FormatCompatibility, DataDirectoryV7ReplaysToTheHashItsWriterComputed) {
  expect_fixture_replays("data-v7");
}

// data-v8: API keys (record type 6: keys created, used, revoked; nonces of signed writes) and the
// KEELSTATE2 snapshot with its key ring part.
TEST(FormatCompatibility, DataDirectoryV8ReplaysToTheHashItsWriterComputed) {
  expect_fixture_replays("data-v8");
}

// data-v9: the audit chain (a chain record ending every batch, snapshot header version 2),
// merchant webhook secret rotations (payments command 19) and an outbox mid-rotation
// (encodings 4 to 6) in the snapshot.
TEST(FormatCompatibility, DataDirectoryV9ReplaysToTheHashItsWriterComputed) {
  expect_fixture_replays("data-v9");
}

// data-v10: the card vault: a stored card paid with (payments command 20, the vault section of
// the snapshot), a master key rotation after the snapshot (commands 21 and 22), merchant webhook
// secrets sealed.
TEST(FormatCompatibility, DataDirectoryV10ReplaysToTheHashItsWriterComputed) {
  expect_fixture_replays("data-v10", /*payments=*/5);  // the fifth paid with the stored card
}

// data-v11: the flows of data-v10, written by main just before personal data was sealed: its
// customer names, top-up source and payout destination are in clear and must still read back.
TEST(FormatCompatibility, DataDirectoryV11ReplaysToTheHashItsWriterComputed) {
  expect_fixture_replays("data-v11", /*payments=*/5);
}

}  // namespace
}  // namespace keel::engine
