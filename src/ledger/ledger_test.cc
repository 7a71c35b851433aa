#include "ledger/ledger.h"

#include <gtest/gtest.h>

#include <limits>

#include "ledger/ledger_test_util.h"

namespace keel::ledger {
namespace {

using namespace testing;  // NOLINT
using R = CreateTransferResult;
using AR = CreateAccountResult;
namespace af = account_flags;
namespace tf = transfer_flags;

constexpr Timestamp kT0 = 1'700'000'000 * kNanosPerSecond;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

class LedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    accounts({account("a"), account("b"), account("c"), account("e1", 0, eur()),
              account("e2", 0, eur())});
  }
  std::vector<AR> accounts(std::vector<AccountEvent> events) {
    return ledger_.create_accounts(events, next());
  }
  std::vector<R> transfers(std::vector<TransferEvent> events) {
    return ledger_.create_transfers(events, next());
  }
  R one(TransferEvent e) { return transfers({std::move(e)}).at(0); }
  Balances balances(const std::string& id) { return ledger_.find_account(id)->balances; }
  Timestamp next() {
    now_ += kNanosPerSecond;
    return now_;
  }
  // Asserts the full invariant check and that nothing changed for a rejected event.
  void expect_rejected_without_change(TransferEvent e, R expected) {
    const uint64_t before = ledger_.state_hash();
    EXPECT_EQ(one(std::move(e)), expected);
    EXPECT_EQ(ledger_.state_hash(), before);
    EXPECT_TRUE(ledger_.check_invariants().ok);
  }
  void TearDown() override {
    const InvariantReport r = ledger_.check_invariants();
    EXPECT_TRUE(r.ok) << r.problem;
  }

  Ledger ledger_;
  Timestamp now_ = kT0;
};

TEST_F(LedgerTest, PlainTransferMovesPostedBalances) {
  EXPECT_EQ(one(transfer("t1", "a", "b", 1250)), R::ok);
  EXPECT_EQ(balances("a"), (Balances{0, 1250, 0, 0}));
  EXPECT_EQ(balances("b"), (Balances{0, 0, 0, 1250}));
  const Transfer t = *ledger_.find_transfer("t1");
  EXPECT_EQ(t.debit_account_id, "a");
  EXPECT_EQ(t.credit_account_id, "b");
  EXPECT_EQ(t.amount, 1250);
  EXPECT_EQ(t.currency, usd());
  EXPECT_EQ(t.pending_state, PendingState::none);
}

TEST_F(LedgerTest, IdenticalResubmissionIsExistsAndChangesNothing) {
  ASSERT_EQ(one(transfer("t1", "a", "b", 100)), R::ok);
  expect_rejected_without_change(transfer("t1", "a", "b", 100), R::exists);
}

TEST_F(LedgerTest, ExistsWithDifferentFields) {
  ASSERT_EQ(one(transfer("t1", "a", "b", 100)), R::ok);
  expect_rejected_without_change(transfer("t1", "a", "b", 100, tf::kPending),
                                 R::exists_with_different_flags);
  expect_rejected_without_change(transfer("t1", "c", "b", 100),
                                 R::exists_with_different_debit_account_id);
  expect_rejected_without_change(transfer("t1", "a", "c", 100),
                                 R::exists_with_different_credit_account_id);
  expect_rejected_without_change(transfer("t1", "a", "b", 101), R::exists_with_different_amount);
  expect_rejected_without_change(transfer("t1", "a", "b", 100, 0, eur()),
                                 R::exists_with_different_currency);
  TransferEvent meta = transfer("t1", "a", "b", 100);
  meta.metadata = {{"order", "42"}};
  expect_rejected_without_change(meta, R::exists_with_different_metadata);

  ASSERT_EQ(one(pending("p1", "a", "b", 10, 60)), R::ok);
  expect_rejected_without_change(pending("p1", "a", "b", 10, 61), R::exists_with_different_timeout);
  ASSERT_EQ(one(pending("p2", "a", "b", 10)), R::ok);
  ASSERT_EQ(one(post("x1", "p1", 5)), R::ok);
  expect_rejected_without_change(post("x1", "p2", 5), R::exists_with_different_pending_id);
  expect_rejected_without_change(post("x1", "p1", 6), R::exists_with_different_amount);
  expect_rejected_without_change(post("x1", "p1", 5), R::exists);
}

TEST_F(LedgerTest, FieldValidation) {
  expect_rejected_without_change(transfer("", "a", "b", 1), R::id_invalid);
  expect_rejected_without_change(transfer("bad id", "a", "b", 1), R::id_invalid);
  expect_rejected_without_change(transfer("t", "a", "b", 1, 1u << 9), R::flags_invalid);
  expect_rejected_without_change(transfer("t", "a", "b", 1, tf::kPending | tf::kPostPending),
                                 R::flags_are_mutually_exclusive);
  TransferEvent meta = transfer("t", "a", "b", 1);
  meta.metadata = {{"b", "1"}, {"a", "2"}};  // not normalized
  expect_rejected_without_change(meta, R::metadata_invalid);
  expect_rejected_without_change(transfer("t", "", "b", 1), R::debit_account_id_invalid);
  expect_rejected_without_change(transfer("t", "a", "b b", 1), R::credit_account_id_invalid);
  expect_rejected_without_change(transfer("t", "a", "a", 1), R::accounts_must_be_different);
  TransferEvent with_pending_id = transfer("t", "a", "b", 1);
  with_pending_id.pending_id = "p";
  expect_rejected_without_change(with_pending_id, R::pending_id_must_be_empty);
  TransferEvent timeout = transfer("t", "a", "b", 1);
  timeout.timeout_s = 5;
  expect_rejected_without_change(timeout, R::timeout_reserved_for_pending_transfer);
  expect_rejected_without_change(transfer("t", "a", "b", 0), R::amount_must_be_positive);
  expect_rejected_without_change(transfer("t", "a", "b", -5), R::amount_must_be_positive);
  expect_rejected_without_change(transfer("t", "a", "b", 1, 0, Currency()), R::currency_invalid);
  expect_rejected_without_change(transfer("t", "a", "zz", 1), R::account_not_found);
  expect_rejected_without_change(transfer("t", "zz", "a", 1), R::account_not_found);
  expect_rejected_without_change(transfer("t", "a", "b", 1, 0, eur()), R::currency_mismatch);
  expect_rejected_without_change(transfer("t", "a", "e1", 1, 0, eur()), R::currency_mismatch);
}

TEST_F(LedgerTest, PostAndVoidFieldValidation) {
  ASSERT_EQ(one(pending("p", "a", "b", 10)), R::ok);
  expect_rejected_without_change(post("x", ""), R::pending_id_required);
  expect_rejected_without_change(post("x", "x"), R::pending_id_must_be_different);
  TransferEvent timeout = post("x", "p");
  timeout.timeout_s = 1;
  expect_rejected_without_change(timeout, R::timeout_reserved_for_pending_transfer);
  expect_rejected_without_change(post("x", "p", -1), R::amount_must_not_be_negative);
  expect_rejected_without_change(post("x", "nope"), R::pending_transfer_not_found);
  ASSERT_EQ(one(transfer("plain", "a", "b", 1)), R::ok);
  expect_rejected_without_change(post("x", "plain"), R::pending_transfer_not_pending);
  TransferEvent wrong_debit = post("x", "p");
  wrong_debit.debit_account_id = "c";
  expect_rejected_without_change(wrong_debit, R::pending_transfer_has_different_debit_account_id);
  TransferEvent wrong_credit = post("x", "p");
  wrong_credit.credit_account_id = "c";
  expect_rejected_without_change(wrong_credit, R::pending_transfer_has_different_credit_account_id);
  TransferEvent wrong_currency = post("x", "p");
  wrong_currency.currency = eur();
  expect_rejected_without_change(wrong_currency, R::pending_transfer_has_different_currency);
  expect_rejected_without_change(post("x", "p", 11), R::amount_exceeds_pending);
  TransferEvent void_amount = void_pending("x", "p");
  void_amount.amount = 3;
  expect_rejected_without_change(void_amount, R::void_amount_must_match_pending);
}

TEST_F(LedgerTest, HoldThenFullPost) {
  ASSERT_EQ(one(pending("p", "a", "b", 500)), R::ok);
  EXPECT_EQ(balances("a"), (Balances{500, 0, 0, 0}));
  EXPECT_EQ(balances("b"), (Balances{0, 0, 500, 0}));
  ASSERT_EQ(one(post("x", "p")), R::ok);
  EXPECT_EQ(balances("a"), (Balances{0, 500, 0, 0}));
  EXPECT_EQ(balances("b"), (Balances{0, 0, 0, 500}));
  EXPECT_EQ(ledger_.find_transfer("p")->pending_state, PendingState::posted);
  EXPECT_EQ(ledger_.find_transfer("x")->amount, 500);
  EXPECT_EQ(ledger_.find_transfer("x")->pending_id, "p");
  expect_rejected_without_change(post("y", "p"), R::pending_transfer_already_posted);
  expect_rejected_without_change(void_pending("y", "p"), R::pending_transfer_already_posted);
}

TEST_F(LedgerTest, PartialPostReleasesTheRest) {
  ASSERT_EQ(one(pending("p", "a", "b", 500)), R::ok);
  ASSERT_EQ(one(post("x", "p", 200)), R::ok);
  EXPECT_EQ(balances("a"), (Balances{0, 200, 0, 0}));
  EXPECT_EQ(balances("b"), (Balances{0, 0, 0, 200}));
  expect_rejected_without_change(post("y", "p", 100), R::pending_transfer_already_posted);
}

TEST_F(LedgerTest, VoidReleasesTheHold) {
  ASSERT_EQ(one(pending("p", "a", "b", 500)), R::ok);
  ASSERT_EQ(one(void_pending("v", "p")), R::ok);
  EXPECT_EQ(balances("a"), Balances{});
  EXPECT_EQ(balances("b"), Balances{});
  EXPECT_EQ(ledger_.find_transfer("p")->pending_state, PendingState::voided);
  EXPECT_EQ(ledger_.find_transfer("v")->amount, 500);
  expect_rejected_without_change(post("y", "p"), R::pending_transfer_already_voided);
}

TEST_F(LedgerTest, HoldExpiresByLogicalTime) {
  ASSERT_EQ(one(pending("p", "a", "b", 500, 10)), R::ok);
  const Timestamp created = ledger_.find_transfer("p")->timestamp;
  EXPECT_EQ(ledger_.next_expiry(), created + 10 * kNanosPerSecond);
  EXPECT_EQ(ledger_.expire_pending(created + 10 * kNanosPerSecond - 1), 0u);
  EXPECT_EQ(balances("a").debits_pending, 500);
  EXPECT_EQ(ledger_.expire_pending(created + 10 * kNanosPerSecond), 1u);
  EXPECT_EQ(balances("a"), Balances{});
  EXPECT_EQ(balances("b"), Balances{});
  EXPECT_EQ(ledger_.find_transfer("p")->pending_state, PendingState::expired);
  EXPECT_FALSE(ledger_.next_expiry());
  now_ = created + 20 * kNanosPerSecond;
  expect_rejected_without_change(post("x", "p"), R::pending_transfer_expired);
}

TEST_F(LedgerTest, PostAfterDeadlineIsExpiredEvenBeforeTheSweep) {
  ASSERT_EQ(one(pending("p", "a", "b", 500, 1)), R::ok);
  // The next command comes 1 s later: its own start-of-command sweep expires the hold.
  EXPECT_EQ(one(post("x", "p")), R::pending_transfer_expired);
  EXPECT_EQ(balances("a"), Balances{});
}

TEST_F(LedgerTest, PostedHoldNeverExpires) {
  ASSERT_EQ(one(pending("p", "a", "b", 500, 5)), R::ok);
  ASSERT_EQ(one(post("x", "p")), R::ok);
  EXPECT_FALSE(ledger_.next_expiry());
  EXPECT_EQ(ledger_.expire_pending(now_ + 100 * kNanosPerSecond), 0u);
  EXPECT_EQ(balances("a"), (Balances{0, 500, 0, 0}));
}

TEST_F(LedgerTest, DebitsMustNotExceedCredits) {
  accounts({account("wallet", af::kDebitsMustNotExceedCredits)});
  expect_rejected_without_change(transfer("t", "wallet", "b", 1), R::exceeds_credits);
  ASSERT_EQ(one(transfer("fund", "a", "wallet", 100)), R::ok);
  ASSERT_EQ(one(pending("hold", "wallet", "b", 60)), R::ok);
  // 60 held: only 40 remain available.
  expect_rejected_without_change(transfer("t", "wallet", "b", 41), R::exceeds_credits);
  EXPECT_EQ(one(transfer("t", "wallet", "b", 40)), R::ok);
}

TEST_F(LedgerTest, CreditsMustNotExceedDebits) {
  accounts({account("limit", af::kCreditsMustNotExceedDebits)});
  expect_rejected_without_change(transfer("t", "a", "limit", 1), R::exceeds_debits);
  ASSERT_EQ(one(transfer("t1", "limit", "a", 30)), R::ok);
  EXPECT_EQ(one(transfer("t2", "a", "limit", 30)), R::ok);
  expect_rejected_without_change(pending("t3", "a", "limit", 1), R::exceeds_debits);
}

TEST_F(LedgerTest, Overflow) {
  ASSERT_EQ(one(transfer("big", "a", "b", kMax)), R::ok);
  expect_rejected_without_change(transfer("t", "a", "b", 1), R::overflow);
  expect_rejected_without_change(pending("p", "a", "b", 1), R::overflow);
  expect_rejected_without_change(transfer("t", "c", "b", 1), R::overflow);  // credits side
  EXPECT_EQ(one(transfer("back", "b", "a", kMax)), R::ok);
}

TEST_F(LedgerTest, ClosedAccounts) {
  ASSERT_EQ(one(pending("p", "a", "b", 10)), R::ok);
  ASSERT_EQ(one(pending("q", "a", "b", 10)), R::ok);
  EXPECT_EQ(ledger_.set_account_closed("b", true, next()), SetAccountClosedResult::ok);
  EXPECT_EQ(ledger_.set_account_closed("b", true, next()),
            SetAccountClosedResult::account_already_closed);
  EXPECT_EQ(ledger_.set_account_closed("zz", true, next()),
            SetAccountClosedResult::account_not_found);
  expect_rejected_without_change(transfer("t", "a", "b", 1), R::account_closed);
  expect_rejected_without_change(transfer("t", "b", "a", 1), R::account_closed);
  expect_rejected_without_change(post("x", "p"), R::account_closed);
  EXPECT_EQ(one(void_pending("v", "q")), R::ok);  // releasing a hold stays possible
  EXPECT_EQ(ledger_.set_account_closed("b", false, next()), SetAccountClosedResult::ok);
  EXPECT_EQ(ledger_.set_account_closed("b", false, next()),
            SetAccountClosedResult::account_not_closed);
  EXPECT_EQ(one(post("x", "p")), R::ok);
}

TEST_F(LedgerTest, AccountResults) {
  EXPECT_EQ(accounts({account("")})[0], AR::id_invalid);
  EXPECT_EQ(accounts({account("n", 1u << 10)})[0], AR::flags_invalid);
  EXPECT_EQ(accounts({account(
                "n", af::kDebitsMustNotExceedCredits | af::kCreditsMustNotExceedDebits)})[0],
            AR::flags_are_mutually_exclusive);
  EXPECT_EQ(accounts({account("n", 0, Currency())})[0], AR::currency_invalid);
  AccountEvent meta = account("n");
  meta.metadata = {{"bad key", "v"}};
  EXPECT_EQ(accounts({meta})[0], AR::metadata_invalid);
  EXPECT_EQ(accounts({account("a")})[0], AR::exists);
  EXPECT_EQ(accounts({account("a", 0, eur())})[0], AR::exists_with_different_currency);
  EXPECT_EQ(accounts({account("a", af::kDebitsMustNotExceedCredits)})[0],
            AR::exists_with_different_flags);
  AccountEvent other_meta = account("a");
  other_meta.metadata = {{"k", "v"}};
  EXPECT_EQ(accounts({other_meta})[0], AR::exists_with_different_metadata);
  EXPECT_FALSE(ledger_.find_account("n"));
}

TEST_F(LedgerTest, LinkedChainSucceedsWhole) {
  const auto r = transfers({pending("p", "a", "b", 10, 0), transfer("t", "b", "c", 5)});
  ASSERT_EQ(r, (std::vector<R>{R::ok, R::ok}));
  auto linked_a = transfer("l1", "a", "b", 1, tf::kLinked);
  auto linked_b = post("l2", "p");
  linked_b.flags |= tf::kLinked;
  auto tail = transfer("l3", "c", "a", 2);
  EXPECT_EQ(transfers({linked_a, linked_b, tail}), (std::vector<R>{R::ok, R::ok, R::ok}));
  EXPECT_EQ(ledger_.find_transfer("p")->pending_state, PendingState::posted);
}

TEST_F(LedgerTest, LinkedChainFailsWholeAndRollsBack) {
  ASSERT_EQ(one(pending("hold", "a", "b", 10, 30)), R::ok);
  const uint64_t before = ledger_.state_hash();
  auto e1 = transfer("l1", "a", "b", 1, tf::kLinked);
  auto e2 = post("l2", "hold");
  e2.flags |= tf::kLinked;
  auto e3 = pending("l3", "a", "c", 7, 10);
  e3.flags |= tf::kLinked;
  auto e4 = transfer("l4", "a", "zz", 1);  // fails: unknown account, closes the chain
  auto after = transfer("ok", "a", "b", 3);
  const auto r = transfers({e1, e2, e3, e4, after});
  EXPECT_EQ(r, (std::vector<R>{R::linked_event_failed, R::linked_event_failed,
                               R::linked_event_failed, R::account_not_found, R::ok}));
  EXPECT_FALSE(ledger_.find_transfer("l1"));
  EXPECT_FALSE(ledger_.find_transfer("l2"));
  EXPECT_FALSE(ledger_.find_transfer("l3"));
  EXPECT_EQ(ledger_.find_transfer("hold")->pending_state, PendingState::pending);
  EXPECT_EQ(ledger_.counts().pending_with_timeout, 1u);  // l3's deadline rolled back
  // Undo the independent transfer and the state is what it was before the chain.
  EXPECT_NE(ledger_.state_hash(), before);
  EXPECT_EQ(balances("a").debits_posted, 3);
  EXPECT_EQ(balances("a").debits_pending, 10);
}

TEST_F(LedgerTest, LinkedChainOpenAtEndOfRequest) {
  auto e1 = transfer("l1", "a", "b", 1, tf::kLinked);
  auto e2 = transfer("l2", "a", "b", 1, tf::kLinked);
  const uint64_t before = ledger_.state_hash();
  EXPECT_EQ(transfers({e1, e2}),
            (std::vector<R>{R::linked_event_failed, R::linked_event_chain_open}));
  EXPECT_EQ(ledger_.state_hash(), before);
}

TEST_F(LedgerTest, RetriedChainAnswersExistsEverywhere) {
  auto e1 = transfer("l1", "a", "b", 1, tf::kLinked);
  auto e2 = transfer("l2", "b", "c", 1);
  ASSERT_EQ(transfers({e1, e2}), (std::vector<R>{R::ok, R::ok}));
  const uint64_t before = ledger_.state_hash();
  EXPECT_EQ(transfers({e1, e2}), (std::vector<R>{R::exists, R::exists}));
  EXPECT_EQ(ledger_.state_hash(), before);
}

TEST_F(LedgerTest, DuplicateIdInsideOneRequest) {
  EXPECT_EQ(transfers({transfer("d", "a", "b", 1), transfer("d", "a", "b", 1)}),
            (std::vector<R>{R::ok, R::exists}));
  EXPECT_EQ(balances("a").debits_posted, 1);
}

TEST_F(LedgerTest, LinkedAccountsRollBack) {
  auto a1 = account("n1", af::kLinked);
  auto a2 = account("a", 0, eur());  // exists with different currency: chain fails
  EXPECT_EQ(accounts({a1, a2}),
            (std::vector<AR>{AR::linked_event_failed, AR::exists_with_different_currency}));
  EXPECT_FALSE(ledger_.find_account("n1"));
  EXPECT_EQ(accounts({account("n1")})[0], AR::ok);  // the id is free again
}

TEST_F(LedgerTest, EventTimestampsAreUniqueAndIncreasing) {
  const Timestamp base = next();
  ledger_.create_transfers(
      std::vector<TransferEvent>{transfer("t1", "a", "b", 1), transfer("t2", "a", "b", 1)}, base);
  EXPECT_EQ(ledger_.find_transfer("t1")->timestamp, base);
  EXPECT_EQ(ledger_.find_transfer("t2")->timestamp, base + 1);
}

TEST_F(LedgerTest, AccountTransfersNewestFirstWithCursor) {
  for (int i = 0; i < 25; ++i) {
    ASSERT_EQ(one(transfer("t" + std::to_string(i), i % 2 ? "a" : "b", i % 2 ? "b" : "a", 1)),
              R::ok);
  }
  ASSERT_EQ(one(transfer("other", "b", "c", 1)), R::ok);
  auto page = ledger_.account_transfers("a", 10, "");
  ASSERT_EQ(page.result, PageResult::ok);
  ASSERT_EQ(page.data.size(), 10u);
  EXPECT_EQ(page.data.front().id, "t24");
  EXPECT_EQ(page.data.back().id, "t15");
  EXPECT_TRUE(page.has_more);
  page = ledger_.account_transfers("a", 10, "t15");
  EXPECT_EQ(page.data.front().id, "t14");
  page = ledger_.account_transfers("a", 10, "t5");
  ASSERT_EQ(page.data.size(), 5u);
  EXPECT_EQ(page.data.back().id, "t0");
  EXPECT_FALSE(page.has_more);
  EXPECT_EQ(ledger_.account_transfers("zz", 10, "").result, PageResult::account_not_found);
  EXPECT_EQ(ledger_.account_transfers("zz", 10, "t1").result, PageResult::account_not_found);
  EXPECT_EQ(ledger_.account_transfers("a", 10, "other").result,  // not this account's
            PageResult::starting_after_not_found);
  EXPECT_EQ(ledger_.account_transfers("a", 10, "missing").result,
            PageResult::starting_after_not_found);
}

TEST_F(LedgerTest, EncodeDecodeRoundTrip) {
  ASSERT_EQ(one(transfer("t1", "a", "b", 100)), R::ok);
  TransferEvent meta = pending("p1", "b", "c", 30, 60);
  meta.metadata = {{"order", "42"}};
  ASSERT_EQ(one(meta), R::ok);
  ASSERT_EQ(one(pending("p2", "a", "c", 5)), R::ok);
  ASSERT_EQ(one(post("x2", "p2", 3)), R::ok);
  std::string bytes;
  ledger_.encode(&bytes);
  Ledger copy({7, 9});  // another index key: same state
  ASSERT_TRUE(Ledger::decode(bytes, {7, 9}, nullptr, &copy).is_ok());
  EXPECT_EQ(copy.state_hash(), ledger_.state_hash());
  EXPECT_EQ(copy.next_expiry(), ledger_.next_expiry());
  EXPECT_EQ(copy.find_transfer("p1")->metadata, meta.metadata);
  EXPECT_EQ(copy.account_transfers("c", 10, "").data.size(), 3u);  // p1, p2, x2
}

TEST_F(LedgerTest, DecodeRejectsCorruptBytes) {
  ASSERT_EQ(one(transfer("t1", "a", "b", 100)), R::ok);
  std::string bytes;
  ledger_.encode(&bytes);
  Ledger copy;
  EXPECT_FALSE(Ledger::decode(bytes.substr(0, bytes.size() - 3), {}, nullptr, &copy).is_ok());
  EXPECT_FALSE(Ledger::decode(bytes + "x", {}, nullptr, &copy).is_ok());
  std::string bad_balance = bytes;
  // The first account's debits_posted sits after version(4) count(8) id(2+1) cur(2) flags(2)
  // ts(8) debits_pending(8).
  bad_balance[4 + 8 + 3 + 2 + 2 + 8 + 8] ^= 1;
  const Status s = Ledger::decode(bad_balance, {}, nullptr, &copy);
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("invariant"), std::string::npos) << s.message();
}

TEST(LedgerStateHash, DependsOnEveryField) {
  Ledger a;
  Ledger b;
  const std::vector<AccountEvent> accts = {account("x"), account("y")};
  a.create_accounts(accts, kT0);
  b.create_accounts(accts, kT0);
  EXPECT_EQ(a.state_hash(), b.state_hash());
  a.create_transfers(std::vector<TransferEvent>{transfer("t", "x", "y", 5)}, kT0 + 10);
  b.create_transfers(std::vector<TransferEvent>{transfer("t", "x", "y", 6)}, kT0 + 10);
  EXPECT_NE(a.state_hash(), b.state_hash());
}

}  // namespace
}  // namespace keel::ledger
