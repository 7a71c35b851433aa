// Randomized property test: thousands of random batches, valid and invalid, with holds,
// posts, voids, expiries, linked chains and limit flags. After every batch the full invariant
// check must pass, and replaying the recorded commands into a new ledger must give the same
// state hash. Seeded, so a failure reproduces; set KEEL_PROPERTY_SEED to try other seeds.

#include <gtest/gtest.h>

#include <cstdlib>
#include <limits>
#include <map>
#include <random>
#include <variant>

#include "ledger/ledger.h"
#include "ledger/ledger_test_util.h"

namespace keel::ledger {
namespace {

using namespace testing;  // NOLINT

struct Command {
  Timestamp at = 0;
  std::variant<std::vector<AccountEvent>, std::vector<TransferEvent>, Timestamp> body;
};

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}

  std::vector<AccountEvent> accounts() {
    std::vector<AccountEvent> out;
    const size_t n = 1 + pick(8);
    for (size_t i = 0; i < n; ++i) {
      uint16_t flags = 0;
      if (pick(4) == 0) flags |= account_flags::kDebitsMustNotExceedCredits;
      if (pick(8) == 0) flags |= account_flags::kCreditsMustNotExceedDebits;  // may clash
      if (pick(6) == 0) flags |= account_flags::kLinked;
      out.push_back(account("acct_" + std::to_string(pick(60)), flags, pick(5) ? usd() : eur()));
    }
    return out;
  }

  std::vector<TransferEvent> transfers() {
    std::vector<TransferEvent> out;
    const size_t n = 1 + pick(40);
    for (size_t i = 0; i < n; ++i) out.push_back(transfer_event());
    return out;
  }

  uint64_t pick(uint64_t n) { return rng_() % n; }

 private:
  std::string any_account() { return "acct_" + std::to_string(pick(64)); }
  std::string transfer_id() { return "tr_" + std::to_string(pick(3000)); }

  int64_t amount() {
    switch (pick(10)) {
      case 0:
        return 0;
      case 1:
        return -static_cast<int64_t>(pick(100));
      case 2:
        return std::numeric_limits<int64_t>::max() - static_cast<int64_t>(pick(3));
      default:
        return 1 + static_cast<int64_t>(pick(5000));
    }
  }

  TransferEvent transfer_event() {
    TransferEvent e;
    switch (pick(10)) {
      case 0:
      case 1:
      case 2: {
        e = pending(transfer_id(), any_account(), any_account(), amount(),
                    pick(3) == 0 ? static_cast<uint32_t>(1 + pick(20)) : 0);
        break;
      }
      case 3:
      case 4:
        e = post(transfer_id(), transfer_id(), pick(3) == 0 ? 0 : amount());
        break;
      case 5:
        e = void_pending(transfer_id(), transfer_id());
        break;
      default:
        e = transfer(transfer_id(), any_account(), any_account(), amount(), 0,
                     pick(6) ? usd() : eur());
    }
    if (pick(5) == 0) e.flags |= transfer_flags::kLinked;
    if (pick(50) == 0) e.flags |= 1u << 7;  // invalid flag
    if (pick(50) == 0) e.id = "bad id";
    if (pick(20) == 0) e.metadata = {{"k", std::to_string(pick(3))}};
    return e;
  }

  std::mt19937_64 rng_;
};

uint64_t seed_from_env() {
  const char* s = std::getenv("KEEL_PROPERTY_SEED");
  return s ? std::strtoull(s, nullptr, 10) : 20261123;
}

void apply(Ledger& l, const Command& c) {
  if (const auto* a = std::get_if<std::vector<AccountEvent>>(&c.body)) {
    l.create_accounts(*a, c.at);
  } else if (const auto* t = std::get_if<std::vector<TransferEvent>>(&c.body)) {
    l.create_transfers(*t, c.at);
  } else {
    l.expire_pending(std::get<Timestamp>(c.body));
  }
}

TEST(LedgerProperty, InvariantsHoldAndReplayReproducesTheStateHash) {
  const uint64_t seed = seed_from_env();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Generator gen(seed);
  Ledger live({seed, seed + 1});
  std::vector<Command> log;
  Timestamp now = 1'800'000'000 * kNanosPerSecond;
  std::vector<AccountEvent> seed_accounts;
  for (int i = 0; i < 64; ++i) seed_accounts.push_back(account("acct_" + std::to_string(i)));
  log.push_back({now, seed_accounts});
  apply(live, log.back());

  size_t ok_transfers = 0;
  for (int batch = 0; batch < 3000; ++batch) {
    now += static_cast<Timestamp>(1 + gen.pick(3)) * kNanosPerSecond / 2;
    Command c{now, {}};
    const uint64_t kind = gen.pick(20);
    if (kind == 0) {
      c.body = gen.accounts();
    } else if (kind == 1) {
      c.body = now;  // a tick
    } else {
      c.body = gen.transfers();
    }
    log.push_back(c);
    if (const auto* t = std::get_if<std::vector<TransferEvent>>(&c.body)) {
      for (const auto r : live.create_transfers(*t, c.at))
        ok_transfers += r == CreateTransferResult::ok;
    } else {
      apply(live, c);
    }
    const InvariantReport r = live.check_invariants();
    ASSERT_TRUE(r.ok) << "after batch " << batch << ": " << r.problem;
    now += 8190;  // leave room for per-event timestamps
  }
  EXPECT_GT(ok_transfers, 1000u) << "the generator should produce many valid transfers";

  Ledger replayed({99, 100});  // a different index key must not matter
  for (const Command& c : log) apply(replayed, c);
  EXPECT_EQ(replayed.state_hash(), live.state_hash());

  // Snapshot round trip mid-way: decode + replay of the tail gives the same hash too.
  Ledger half;
  for (size_t i = 0; i < log.size() / 2; ++i) apply(half, log[i]);
  std::string bytes;
  half.encode(&bytes);
  Ledger restored;
  ASSERT_TRUE(Ledger::decode(bytes, {5, 6}, nullptr, &restored).is_ok());
  for (size_t i = log.size() / 2; i < log.size(); ++i) apply(restored, log[i]);
  EXPECT_EQ(restored.state_hash(), live.state_hash());
}

// The history store of these tests: a map from transfer index to take_final()'s value.
class MapStore : public ColdTransfers {
 public:
  std::optional<std::string> read(uint32_t index) const override {
    ++reads;
    const auto it = values.find(index);
    if (it == values.end()) return std::nullopt;
    return it->second;
  }
  Status scan(uint32_t below,
              const std::function<Status(uint32_t, std::string_view)>& fn) const override {
    for (auto it = values.begin(); it != values.end() && it->first < below; ++it) {
      if (Status s = fn(it->first, it->second); !s.is_ok()) return s;
    }
    return Status::ok();
  }
  std::map<uint32_t, std::string> values;
  mutable uint64_t reads = 0;
};

// Moves what take_final() hands out into `store`, and a random share of what was handed out
// (now or earlier) out of memory, like the engine's mover that lags behind the writer.
void move_some(Ledger& l, MapStore& store, std::vector<uint32_t>& durable, Generator& gen,
               uint64_t* moved) {
  std::vector<FinalTransfer> final;
  l.take_final(&final);
  for (FinalTransfer& f : final) {
    store.values[f.index] = std::move(f.value);
    durable.push_back(f.index);
  }
  if (durable.empty() || gen.pick(3) == 0) return;
  l.make_cold(durable);
  *moved += durable.size();
  durable.clear();
}

std::vector<Transfer> resolve(const TieredTransfersPage& page, const MapStore& store) {
  std::vector<Transfer> out;
  for (size_t i = 0; i < page.data.size(); ++i) {
    if (page.data[i]) {
      out.push_back(*page.data[i]);
      continue;
    }
    Transfer t;
    EXPECT_TRUE(Ledger::decode_cold(*store.read(page.indexes[i]), &t).is_ok());
    out.push_back(t);
  }
  return out;
}

// Tiering changes nothing: a ledger that moves its final transfers to a store after every batch
// answers every command, query, page, hash and snapshot exactly as one that keeps them all.
TEST(LedgerProperty, TransfersInTheStoreAnswerExactlyAsInMemory) {
  const uint64_t seed = seed_from_env() + 1;
  SCOPED_TRACE("seed " + std::to_string(seed));
  Generator gen(seed);
  Ledger plain({seed, seed + 1});
  MapStore store;
  Ledger tiered({seed + 2, seed + 3});
  tiered.set_cold_transfers(&store);
  std::vector<Command> log;
  std::vector<uint32_t> durable;
  uint64_t moved = 0;
  Timestamp now = 1'800'000'000 * kNanosPerSecond;
  std::vector<AccountEvent> seed_accounts;
  for (int i = 0; i < 64; ++i) seed_accounts.push_back(account("acct_" + std::to_string(i)));
  log.push_back({now, seed_accounts});
  apply(plain, log.back());
  apply(tiered, log.back());
  std::string snapshot;  // of `tiered` half-way, with the store as it was then
  size_t snapshot_at = 0;
  for (int batch = 0; batch < 3000; ++batch) {
    now += static_cast<Timestamp>(1 + gen.pick(3)) * kNanosPerSecond / 2;
    Command c{now, {}};
    const uint64_t kind = gen.pick(20);
    c.body = kind == 0 ? Command{now, gen.accounts()}.body
                       : (kind == 1 ? Command{now, now}.body : Command{now, gen.transfers()}.body);
    log.push_back(c);
    if (const auto* t = std::get_if<std::vector<TransferEvent>>(&c.body)) {
      ASSERT_EQ(tiered.create_transfers(*t, c.at), plain.create_transfers(*t, c.at))
          << "batch " << batch;
    } else {
      apply(plain, c);
      apply(tiered, c);
    }
    move_some(tiered, store, durable, gen, &moved);
    if (batch % 500 == 0) {
      ASSERT_EQ(tiered.state_hash(), plain.state_hash()) << "batch " << batch;
    }
    if (batch == 1500) {
      tiered.encode(&snapshot);
      snapshot_at = log.size();
    }
    now += 8190;
  }
  EXPECT_GT(moved, 1000u) << "most transfers should have moved to the store";
  EXPECT_LT(tiered.counts().transfers_in_memory, tiered.counts().transfers / 4);
  EXPECT_EQ(tiered.state_hash(), plain.state_hash());
  ASSERT_TRUE(tiered.check_invariants().ok);

  // Every transfer id the run used answers the same, through every read path.
  for (int i = 0; i < 3000; ++i) {
    const std::string id = "tr_" + std::to_string(i);
    const std::optional<Transfer> want = plain.find_transfer(id);
    EXPECT_EQ(tiered.find_transfer(id), want) << id;
    const TransferLookup lookup = tiered.lookup_transfer(id);
    std::optional<Transfer> got = lookup.hot;
    for (const uint32_t c : lookup.cold_candidates) {
      Transfer t;
      ASSERT_TRUE(Ledger::decode_cold(*store.read(c), &t).is_ok());
      if (t.id == id) got = t;
    }
    EXPECT_EQ(got, want) << id;
  }
  for (int a = 0; a < 64; ++a) {
    const std::string id = "acct_" + std::to_string(a);
    std::string cursor;
    for (int page = 0; page < 100; ++page) {
      const AccountTransfersPage want = plain.account_transfers(id, 7, cursor);
      EXPECT_EQ(tiered.account_transfers(id, 7, cursor).data, want.data);
      const TieredTransfersPage tp = tiered.account_transfers_tiered(id, 7, cursor);
      ASSERT_EQ(tp.result, want.result);
      EXPECT_EQ(resolve(tp, store), want.data);
      EXPECT_EQ(tp.has_more, want.has_more);
      if (!want.has_more || want.data.empty()) break;
      cursor = want.data.back().id;
    }
  }

  // A snapshot (version 2) decodes with the store, which has moved on since (it holds transfers
  // the snapshot kept in memory and ones created after it), and the tail replays to the same hash.
  ASSERT_FALSE(snapshot.empty());
  Ledger restored;
  ASSERT_TRUE(Ledger::decode(snapshot, {5, 6}, &store, &restored).is_ok());
  for (size_t i = snapshot_at; i < log.size(); ++i) apply(restored, log[i]);
  EXPECT_EQ(restored.state_hash(), plain.state_hash());
  // Without the store, or with one that lost a record, the snapshot is refused.
  EXPECT_FALSE(Ledger::decode(snapshot, {}, nullptr, &restored).is_ok());
  MapStore damaged = store;
  damaged.values.erase(damaged.values.begin());
  const Status s = Ledger::decode(snapshot, {}, &damaged, &restored);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("history store lacks transfer"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace keel::ledger
