#include "payments/wallet_flows.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <random>

#include "ledger/ledger.h"

namespace keel::payments {
namespace {

using A = AttemptStatus;
using R = WalletFlowResult;
using S = WalletFlowStatus;
namespace tf = ledger::transfer_flags;

constexpr Timestamp kT0 = 1'800'000'000 * kNanosPerSecond;
constexpr Timestamp kMinute = 60 * kNanosPerSecond;
constexpr Timestamp kDay = 24 * 60 * kMinute;
const Currency kUsd = *Currency::from_code("USD");

std::string wallet(const std::string& c) { return wallet_account(c, kUsd); }
std::string clearing(const std::string& ch) { return psp_clearing_account(ch, kUsd); }
std::string psp_fees(const std::string& ch) { return psp_fees_account(ch, kUsd); }

AttemptResult answer(A status, int64_t fee = 0, std::string code = "") {
  AttemptResult r;
  r.status = status;
  r.psp_reference = "sim_1";
  r.error_code = std::move(code);
  r.fee = fee;
  return r;
}

void expect_transfer(const ledger::TransferEvent& e, std::string_view id, std::string_view debit,
                     std::string_view credit, int64_t amount, uint16_t flags) {
  EXPECT_EQ(e.id, id);
  EXPECT_EQ(e.debit_account_id, debit);
  EXPECT_EQ(e.credit_account_id, credit);
  EXPECT_EQ(e.amount, amount);
  EXPECT_EQ(e.currency, kUsd);
  EXPECT_EQ(e.flags, flags);
  EXPECT_TRUE(e.pending_id.empty());
  EXPECT_EQ(e.timeout_s, 0u);
}

void expect_post_or_void(const ledger::TransferEvent& e, std::string_view id,
                         std::string_view pending_id, int64_t amount, uint16_t flags) {
  EXPECT_EQ(e.id, id);
  EXPECT_EQ(e.pending_id, pending_id);
  EXPECT_EQ(e.amount, amount);
  EXPECT_EQ(e.flags, flags);
}

std::string encoded(const WalletFlows& flows) {
  std::string out;
  flows.encode(&out);
  return out;
}

// Drives WalletFlows and posts every Effects to a real ledger, as the engine will: accounts
// from wallet_flow_accounts() first, balances read back from the ledger for available_minor.
class WalletFlowsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    const auto inv = ledger_.check_invariants();
    EXPECT_TRUE(inv.ok) << inv.problem;
  }
  Timestamp next(Timestamp step = 1) { return now_ += step; }

  void provision(const std::string& id) {
    const auto accounts = wallet_flow_accounts(*flows_.find(id));
    for (auto r : ledger_.create_accounts(accounts, next())) {
      EXPECT_TRUE(r == ledger::CreateAccountResult::ok || r == ledger::CreateAccountResult::exists)
          << ledger::result_name(r);
    }
  }
  // Every event must be applied: a chain the ledger refuses (or an `exists`: a double posting)
  // fails the test.
  void post(const Effects& e) {
    last_ = e;
    if (!e.postings.empty()) {
      for (auto r : ledger_.create_transfers(e.postings, next())) {
        EXPECT_EQ(r, ledger::CreateTransferResult::ok) << ledger::result_name(r);
      }
    }
    calls_.insert(calls_.end(), e.calls.begin(), e.calls.end());
  }
  void created(const std::string& id, R r, const Effects& e) {
    if (r == R::ok || r == R::insufficient_funds) provision(id);
    post(e);
  }

  R topup(const std::string& id, const std::string& customer, int64_t amount,
          const std::string& channel = "acme") {
    Effects e;
    const R r = flows_.create_topup(
        {id, customer, amount, kUsd, channel, InstrumentKind::card_token, "tok_visa"}, next(), &e);
    created(id, r, e);
    return r;
  }
  R transfer(const std::string& id, const std::string& from, const std::string& to,
             int64_t amount) {
    Effects e;
    const R r =
        flows_.create_wallet_transfer({id, from, to, amount, kUsd, available(from)}, next(), &e);
    created(id, r, e);
    return r;
  }
  R payout(const std::string& id, const std::string& customer, int64_t amount,
           const std::string& channel = "acme") {
    Effects e;
    const R r = flows_.create_payout({id, customer, amount, kUsd, channel, InstrumentKind::iban,
                                      "DE89370400440532013000", available(customer)},
                                     next(), &e);
    created(id, r, e);
    return r;
  }
  R result(const std::string& attempt, const AttemptResult& a,
           const std::string& cause = "psp_response", Timestamp step = 1) {
    Effects e;
    const R r = flows_.apply_result(attempt, a, cause, next(step), &e);
    post(e);
    return r;
  }
  void fund(const std::string& customer, int64_t amount) {
    const std::string id = "fund_" + std::to_string(++funded_);
    ASSERT_EQ(topup(id, customer, amount), R::ok);
    ASSERT_EQ(result(id + "_a1", answer(A::approved)), R::ok);
  }

  ledger::Balances balances(const std::string& account) {
    const auto a = ledger_.find_account(account);
    return a ? a->balances : ledger::Balances{};
  }
  int64_t available(const std::string& customer) {
    return wallet_flow_available_minor(balances(wallet(customer))).value();
  }
  const WalletFlow& flow(const std::string& id) { return *flows_.find(id); }

  WalletFlows flows_;
  ledger::Ledger ledger_;
  Timestamp now_ = kT0;
  Effects last_;
  std::vector<PspCall> calls_;
  int funded_ = 0;
};

// Flow 1 -----------------------------------------------------------------------------------

TEST_F(WalletFlowsTest, TopupApprovedCreditsTheWalletAndBooksThePspFeeInOneChain) {
  const Timestamp created_at = now_ + 1;
  ASSERT_EQ(topup("tu_1", "cus_a", 10000), R::ok);
  EXPECT_TRUE(last_.postings.empty());  // nothing before the PSP confirms
  ASSERT_EQ(last_.calls.size(), 1u);
  const PspCall& call = last_.calls[0];
  EXPECT_EQ(call.kind, AttemptKind::topup);
  EXPECT_EQ(call.payment_id, "tu_1");
  EXPECT_EQ(call.attempt_id, "tu_1_a1");
  EXPECT_EQ(call.channel, "acme");
  EXPECT_EQ(call.amount, 10000);
  EXPECT_EQ(call.currency, kUsd);
  EXPECT_EQ(call.instrument_kind, InstrumentKind::card_token);
  EXPECT_EQ(call.instrument, "tok_visa");
  EXPECT_EQ(flow("tu_1").status, S::processing);
  EXPECT_EQ(flow("tu_1").attempts.at(0).status, A::pending);
  EXPECT_EQ(flow("tu_1").deadline, created_at + 30 * kMinute);
  EXPECT_EQ(flow("tu_1").timeline.at(0).cause, "api");
  EXPECT_EQ(flows_.outstanding_attempts(), std::vector<std::string>{"tu_1_a1"});
  EXPECT_EQ(flows_.find_by_attempt("tu_1_a1"), flows_.find("tu_1"));

  ASSERT_EQ(result("tu_1_a1", answer(A::approved, 290)), R::ok);
  ASSERT_EQ(last_.postings.size(), 2u);
  expect_transfer(last_.postings[0], "tu_1.topup", clearing("acme"), wallet("cus_a"), 10000,
                  tf::kLinked);
  expect_transfer(last_.postings[1], "tu_1.psp_fee", psp_fees("acme"), clearing("acme"), 290, 0);
  EXPECT_TRUE(last_.calls.empty());
  EXPECT_EQ(balances(wallet("cus_a")), (ledger::Balances{0, 0, 0, 10000}));
  EXPECT_EQ(balances(clearing("acme")), (ledger::Balances{0, 10000, 0, 290}));
  EXPECT_EQ(balances(psp_fees("acme")), (ledger::Balances{0, 290, 0, 0}));
  const WalletFlow& f = flow("tu_1");
  EXPECT_EQ(f.status, S::succeeded);
  EXPECT_EQ(f.fee, 290);
  EXPECT_EQ(f.deadline, 0);
  EXPECT_EQ(f.attempts[0].psp_reference, "sim_1");
  EXPECT_EQ(f.timeline.back().from, S::processing);
  EXPECT_EQ(f.timeline.back().to, S::succeeded);
  EXPECT_EQ(f.timeline.back().cause, "psp_response");
  EXPECT_TRUE(flows_.outstanding_attempts().empty());
  EXPECT_FALSE(flows_.next_deadline().has_value());
}

TEST_F(WalletFlowsTest, TopupWithoutFeePostsOneUnlinkedTransfer) {
  ASSERT_EQ(topup("tu_1", "cus_a", 700, "globex"), R::ok);
  ASSERT_EQ(result("tu_1_a1", answer(A::approved)), R::ok);
  ASSERT_EQ(last_.postings.size(), 1u);
  expect_transfer(last_.postings[0], "tu_1.topup", clearing("globex"), wallet("cus_a"), 700, 0);
  EXPECT_EQ(balances(psp_fees("globex")), ledger::Balances{});
}

TEST_F(WalletFlowsTest, TopupDeclinedOrRetryableFailsAndPostsNothing) {
  const std::pair<A, std::string> cases[] = {
      {A::declined_hard, "card_declined"}, {A::declined_soft, ""}, {A::retryable, ""}};
  int i = 0;
  for (const auto& [status, code] : cases) {
    const std::string id = "tu_" + std::to_string(++i);
    ASSERT_EQ(topup(id, "cus_a", 500), R::ok);
    ASSERT_EQ(result(id + "_a1", answer(status, 9, code)), R::ok);
    EXPECT_TRUE(last_.postings.empty());
    EXPECT_EQ(flow(id).status, S::failed);
    EXPECT_EQ(flow(id).fee, 0);  // a fee on a decline is ignored
    EXPECT_EQ(flow(id).error_code, code.empty() ? attempt_status_name(status) : code);
  }
  EXPECT_EQ(balances(wallet("cus_a")), ledger::Balances{});
  EXPECT_EQ(balances(clearing("acme")), ledger::Balances{});
}

TEST_F(WalletFlowsTest, TopupUnknownStaysProcessingAndCreditsExactlyOnce) {
  ASSERT_EQ(topup("tu_1", "cus_a", 1000), R::ok);
  ASSERT_EQ(result("tu_1_a1", answer(A::unknown)), R::ok);
  EXPECT_TRUE(last_.postings.empty());  // unknown is never success, never failure
  EXPECT_EQ(flow("tu_1").status, S::processing);
  EXPECT_EQ(flow("tu_1").attempts[0].status, A::unknown);
  EXPECT_EQ(flows_.outstanding_attempts(), std::vector<std::string>{"tu_1_a1"});
  ASSERT_EQ(result("tu_1_a1", answer(A::unknown), "status_query"), R::ok);  // still unknown
  // The webhook settles it; the status query's answer and a duplicate webhook are stale.
  ASSERT_EQ(result("tu_1_a1", answer(A::approved, 30), "webhook:evt_1"), R::ok);
  EXPECT_EQ(result("tu_1_a1", answer(A::approved, 30), "status_query"), R::stale_result);
  EXPECT_TRUE(last_.postings.empty());
  EXPECT_EQ(result("tu_1_a1", answer(A::declined_hard), "webhook:evt_2"), R::stale_result);
  EXPECT_EQ(flow("tu_1").status, S::succeeded);
  EXPECT_EQ(flow("tu_1").timeline.back().cause, "webhook:evt_1");
  EXPECT_EQ(balances(wallet("cus_a")), (ledger::Balances{0, 0, 0, 1000}));
  EXPECT_EQ(calls_.size(), 1u);  // one call ever reached the PSP
}

TEST_F(WalletFlowsTest, TopupPastItsDeadlineGoesToReviewAndALateWebhookStillCredits) {
  ASSERT_EQ(topup("tu_1", "cus_a", 1000), R::ok);
  const Timestamp created_at = flow("tu_1").created_at;
  ASSERT_EQ(result("tu_1_a1", answer(A::unknown)), R::ok);
  Effects e;
  EXPECT_TRUE(flows_.tick(created_at + 29 * kMinute, &e).empty());
  EXPECT_EQ(flows_.next_deadline(), created_at + 30 * kMinute);
  now_ = created_at + 30 * kMinute;
  EXPECT_EQ(flows_.tick(now_, &e), std::vector<std::string>{"tu_1"});
  EXPECT_TRUE(e.postings.empty() && e.calls.empty());
  EXPECT_EQ(flow("tu_1").review, ReviewReason::deadline_unknown);
  EXPECT_EQ(flow("tu_1").status, S::processing);
  EXPECT_EQ(flow("tu_1").timeline.back().cause, "deadline: review");
  EXPECT_TRUE(flows_.tick(now_ + kDay, &e).empty());  // flagged once
  ASSERT_EQ(result("tu_1_a1", answer(A::approved), "webhook:evt_9", kDay), R::ok);
  EXPECT_EQ(flow("tu_1").review, ReviewReason::none);
  EXPECT_EQ(flow("tu_1").status, S::succeeded);
  EXPECT_EQ(balances(wallet("cus_a")).credits_posted, 1000);
}

// Flow 4 -----------------------------------------------------------------------------------

TEST_F(WalletFlowsTest, WalletTransferMovesMoneyBetweenWallets) {
  fund("cus_a", 5000);
  ASSERT_EQ(transfer("tr_1", "cus_a", "cus_b", 1200), R::ok);
  ASSERT_EQ(last_.postings.size(), 1u);
  expect_transfer(last_.postings[0], "tr_1.transfer", wallet("cus_a"), wallet("cus_b"), 1200, 0);
  EXPECT_TRUE(last_.calls.empty());
  EXPECT_EQ(balances(wallet("cus_a")), (ledger::Balances{0, 1200, 0, 5000}));
  EXPECT_EQ(balances(wallet("cus_b")), (ledger::Balances{0, 0, 0, 1200}));
  const WalletFlow& f = flow("tr_1");
  EXPECT_EQ(f.status, S::succeeded);
  EXPECT_EQ(f.customer_id, "cus_a");
  EXPECT_EQ(f.to_customer_id, "cus_b");
  EXPECT_EQ(f.deadline, 0);
  EXPECT_TRUE(f.attempts.empty());
  ASSERT_EQ(f.timeline.size(), 1u);
  EXPECT_EQ(f.timeline[0].to, S::succeeded);
  ASSERT_EQ(transfer("tr_2", "cus_a", "cus_b", 3800), R::ok);  // all of it
  EXPECT_EQ(available("cus_a"), 0);
}

TEST_F(WalletFlowsTest, TransferWithInsufficientFundsIsStoredFailedAndMovesNothing) {
  fund("cus_a", 1000);
  const std::string before = encoded(flows_);
  ASSERT_EQ(transfer("tr_1", "cus_a", "cus_b", 1001), R::insufficient_funds);
  EXPECT_TRUE(last_.postings.empty() && last_.calls.empty());
  EXPECT_EQ(flow("tr_1").status, S::failed);
  EXPECT_EQ(flow("tr_1").error_code, "insufficient_funds");
  EXPECT_EQ(balances(wallet("cus_a")), (ledger::Balances{0, 0, 0, 1000}));
  EXPECT_EQ(balances(wallet("cus_b")), ledger::Balances{});
  EXPECT_EQ(transfer("tr_1", "cus_a", "cus_b", 10), R::exists);              // the id is taken
  EXPECT_EQ(transfer("tr_2", "nobody", "cus_b", 1), R::insufficient_funds);  // no wallet yet
  EXPECT_EQ(balances(wallet("cus_a")), (ledger::Balances{0, 0, 0, 1000}));
  EXPECT_NE(encoded(flows_), before);  // stored, so that GET shows it
}

TEST_F(WalletFlowsTest, TransferToTheSameWalletIsRefused) {
  fund("cus_a", 1000);
  const std::string before = encoded(flows_);
  Effects e;
  EXPECT_EQ(flows_.create_wallet_transfer({"tr_1", "cus_a", "cus_a", 10, kUsd, 1000}, next(), &e),
            R::same_wallet);
  EXPECT_TRUE(e.postings.empty());
  EXPECT_EQ(encoded(flows_), before);
}

// Flow 6 -----------------------------------------------------------------------------------

TEST_F(WalletFlowsTest, PayoutHoldsTheFundsThenPostsTheHoldAndTheFee) {
  fund("cus_a", 10000);
  const Timestamp created_at = now_ + 1;
  ASSERT_EQ(payout("po_1", "cus_a", 6000), R::ok);
  ASSERT_EQ(last_.postings.size(), 1u);
  expect_transfer(last_.postings[0], "po_1.hold", wallet("cus_a"), clearing("acme"), 6000,
                  tf::kPending);
  ASSERT_EQ(last_.calls.size(), 1u);
  EXPECT_EQ(last_.calls[0].kind, AttemptKind::payout);
  EXPECT_EQ(last_.calls[0].attempt_id, "po_1_a1");
  EXPECT_EQ(last_.calls[0].instrument_kind, InstrumentKind::iban);
  EXPECT_EQ(last_.calls[0].instrument, "DE89370400440532013000");
  EXPECT_EQ(flow("po_1").status, S::processing);
  EXPECT_EQ(flow("po_1").created_at, created_at);
  EXPECT_EQ(flow("po_1").deadline, created_at + 3 * kDay);
  EXPECT_EQ(balances(wallet("cus_a")), (ledger::Balances{6000, 0, 0, 10000}));
  EXPECT_EQ(available("cus_a"), 4000);  // held funds cannot be spent twice
  EXPECT_EQ(payout("po_2", "cus_a", 4001), R::insufficient_funds);
  EXPECT_EQ(transfer("tr_1", "cus_a", "cus_b", 4001), R::insufficient_funds);

  ASSERT_EQ(result("po_1_a1", answer(A::approved, 150)), R::ok);
  ASSERT_EQ(last_.postings.size(), 2u);
  expect_post_or_void(last_.postings[0], "po_1.post", "po_1.hold", 6000,
                      tf::kPostPending | tf::kLinked);
  expect_transfer(last_.postings[1], "po_1.psp_fee", psp_fees("acme"), clearing("acme"), 150, 0);
  EXPECT_EQ(balances(wallet("cus_a")), (ledger::Balances{0, 6000, 0, 10000}));
  EXPECT_EQ(balances(clearing("acme")), (ledger::Balances{0, 10000, 0, 6150}));
  EXPECT_EQ(balances(psp_fees("acme")), (ledger::Balances{0, 150, 0, 0}));
  EXPECT_EQ(ledger_.find_transfer("po_1.hold")->pending_state, ledger::PendingState::posted);
  EXPECT_EQ(flow("po_1").status, S::succeeded);
  EXPECT_EQ(flow("po_1").fee, 150);
}

TEST_F(WalletFlowsTest, PayoutFailureVoidsTheHold) {
  fund("cus_a", 10000);
  int i = 0;
  for (const A status : {A::declined_hard, A::declined_soft, A::retryable}) {
    const std::string id = "po_" + std::to_string(++i);
    ASSERT_EQ(payout(id, "cus_a", 2500), R::ok);
    EXPECT_EQ(available("cus_a"), 7500);
    ASSERT_EQ(result(id + "_a1", answer(status, 0, "account_closed")), R::ok);
    ASSERT_EQ(last_.postings.size(), 1u);
    expect_post_or_void(last_.postings[0], id + ".void", id + ".hold", 0, tf::kVoidPending);
    EXPECT_EQ(ledger_.find_transfer(id + ".hold")->pending_state, ledger::PendingState::voided);
    EXPECT_EQ(flow(id).status, S::failed);
    EXPECT_EQ(flow(id).error_code, "account_closed");
    EXPECT_EQ(balances(wallet("cus_a")), (ledger::Balances{0, 0, 0, 10000}));
  }
  EXPECT_EQ(balances(clearing("acme")), (ledger::Balances{0, 10000, 0, 0}));
}

TEST_F(WalletFlowsTest, PayoutWithInsufficientFundsIsStoredFailedWithoutHoldOrCall) {
  fund("cus_a", 999);
  ASSERT_EQ(payout("po_1", "cus_a", 1000), R::insufficient_funds);
  EXPECT_TRUE(last_.postings.empty());
  EXPECT_TRUE(last_.calls.empty());
  const WalletFlow& f = flow("po_1");
  EXPECT_EQ(f.status, S::failed);
  EXPECT_EQ(f.error_code, "insufficient_funds");
  EXPECT_TRUE(f.attempts.empty());
  EXPECT_EQ(f.deadline, 0);
  EXPECT_EQ(balances(wallet("cus_a")), (ledger::Balances{0, 0, 0, 999}));
  EXPECT_EQ(balances(clearing("acme")), (ledger::Balances{0, 999, 0, 0}));
  EXPECT_TRUE(flows_.outstanding_attempts().empty());
}

TEST_F(WalletFlowsTest, PayoutHoldIsNeverReleasedByATimer) {
  fund("cus_a", 10000);
  ASSERT_EQ(payout("po_1", "cus_a", 6000), R::ok);
  ASSERT_EQ(result("po_1_a1", answer(A::unknown)), R::ok);
  const Timestamp deadline = flow("po_1").created_at + 3 * kDay;
  Effects e;
  EXPECT_TRUE(flows_.tick(deadline - 1, &e).empty());
  now_ = deadline;
  EXPECT_EQ(flows_.tick(now_, &e), std::vector<std::string>{"po_1"});
  EXPECT_TRUE(e.postings.empty() && e.calls.empty());  // review, never a release
  EXPECT_EQ(flow("po_1").review, ReviewReason::deadline_unknown);
  now_ += 365 * kDay;
  EXPECT_TRUE(flows_.tick(now_, &e).empty());
  EXPECT_EQ(ledger_.expire_pending(now_), 0u);  // the ledger has no timer on it either
  EXPECT_EQ(ledger_.find_transfer("po_1.hold")->pending_state, ledger::PendingState::pending);
  EXPECT_EQ(available("cus_a"), 4000);
  // The bank's late answer settles it, once.
  ASSERT_EQ(result("po_1_a1", answer(A::approved), "webhook:evt_1"), R::ok);
  EXPECT_EQ(flow("po_1").review, ReviewReason::none);
  EXPECT_EQ(flow("po_1").status, S::succeeded);
  EXPECT_EQ(balances(wallet("cus_a")), (ledger::Balances{0, 6000, 0, 10000}));
  EXPECT_EQ(result("po_1_a1", answer(A::declined_hard), "webhook:evt_2"), R::stale_result);
  EXPECT_EQ(balances(wallet("cus_a")), (ledger::Balances{0, 6000, 0, 10000}));
}

TEST_F(WalletFlowsTest, DeadlinesAreConfigurablePerFlow) {
  flows_ = WalletFlows({.topup_processing_s = 60, .payout_processing_s = 120});
  fund("cus_a", 100);
  ASSERT_EQ(topup("tu_1", "cus_a", 5), R::ok);
  ASSERT_EQ(payout("po_1", "cus_a", 5), R::ok);
  const Timestamp topup_at = flow("tu_1").created_at;
  const Timestamp payout_at = flow("po_1").created_at;
  EXPECT_EQ(flow("tu_1").deadline, topup_at + 60 * kNanosPerSecond);
  EXPECT_EQ(flow("po_1").deadline, payout_at + 120 * kNanosPerSecond);
  Effects e;
  EXPECT_EQ(flows_.tick(topup_at + 60 * kNanosPerSecond, &e), std::vector<std::string>{"tu_1"});
  EXPECT_EQ(flows_.next_deadline(), payout_at + 120 * kNanosPerSecond);
  EXPECT_EQ(flows_.tick(payout_at + 120 * kNanosPerSecond, &e), std::vector<std::string>{"po_1"});
  EXPECT_FALSE(wallet_flow_options_valid({.topup_processing_s = 0}));
  EXPECT_FALSE(
      wallet_flow_options_valid({.payout_processing_s = kWalletFlowDeadlineSecondsMax + 1}));
  EXPECT_TRUE(wallet_flow_options_valid({}));
}

TEST_F(WalletFlowsTest, AfterARestartPendingAttemptsBecomeUnknown) {
  fund("cus_a", 1000);
  ASSERT_EQ(topup("tu_1", "cus_a", 10), R::ok);
  ASSERT_EQ(topup("tu_2", "cus_a", 20), R::ok);
  ASSERT_EQ(payout("po_1", "cus_a", 30), R::ok);
  ASSERT_EQ(topup("tu_3", "cus_a", 40), R::ok);
  ASSERT_EQ(result("tu_3_a1", answer(A::unknown)), R::ok);
  const std::vector<std::string> pending{"po_1_a1", "tu_1_a1", "tu_2_a1"};
  EXPECT_EQ(flows_.mark_pending_unknown(next()), pending);
  for (const char* id : {"tu_1", "tu_2", "po_1"}) {
    EXPECT_EQ(flow(id).attempts[0].status, A::unknown);
    EXPECT_EQ(flow(id).updated_at, now_);
  }
  EXPECT_TRUE(flows_.mark_pending_unknown(next()).empty());
  const std::vector<std::string> outstanding{"po_1_a1", "tu_1_a1", "tu_2_a1", "tu_3_a1"};
  EXPECT_EQ(flows_.outstanding_attempts(), outstanding);
  ASSERT_EQ(result("tu_2_a1", answer(A::declined_hard)), R::ok);
  const std::vector<std::string> left{"po_1_a1", "tu_1_a1", "tu_3_a1"};
  EXPECT_EQ(flows_.outstanding_attempts(), left);
}

TEST_F(WalletFlowsTest, BadInputIsRefusedAndChangesNothing) {
  fund("cus_a", 1000);
  ASSERT_EQ(topup("tu_1", "cus_a", 100), R::ok);
  const std::string before = encoded(flows_);
  Effects e;
  const auto top = [&](TopupRequest r) { return flows_.create_topup(r, next(), &e); };
  const TopupRequest good{"tu_2", "cus_a", 5, kUsd, "acme", InstrumentKind::card_token, "tok"};
  const auto with = [&](auto change) {
    TopupRequest r = good;
    change(r);
    return top(r);
  };
  EXPECT_EQ(with([](auto& r) { r.id = ""; }), R::id_invalid);
  EXPECT_EQ(with([](auto& r) { r.id = std::string(49, 't'); }), R::id_invalid);
  EXPECT_EQ(with([](auto& r) { r.id = "tu.2"; }), R::id_invalid);
  EXPECT_EQ(with([](auto& r) { r.amount = 0; }), R::amount_invalid);
  EXPECT_EQ(with([](auto& r) { r.amount = -5; }), R::amount_invalid);
  EXPECT_EQ(with([](auto& r) { r.currency = Currency(); }), R::currency_invalid);
  EXPECT_EQ(with([](auto& r) { r.customer_id = "a:b"; }), R::customer_id_invalid);
  EXPECT_EQ(with([](auto& r) { r.customer_id = std::string(41, 'c'); }), R::customer_id_invalid);
  EXPECT_EQ(with([](auto& r) { r.channel = ""; }), R::channel_invalid);
  EXPECT_EQ(with([](auto& r) { r.source_kind = InstrumentKind::iban; }), R::instrument_invalid);
  EXPECT_EQ(with([](auto& r) { r.source_kind = InstrumentKind::none; }), R::instrument_invalid);
  EXPECT_EQ(with([](auto& r) { r.source = "tok visa"; }), R::instrument_invalid);
  EXPECT_EQ(with([](auto& r) { r.source = std::string(129, 'x'); }), R::instrument_invalid);
  EXPECT_EQ(with([](auto& r) { r.id = "tu_1"; }), R::exists);

  const PayoutRequest po{"po_1", "cus_a", 5, kUsd, "acme", InstrumentKind::card_token, "x", 1000};
  EXPECT_EQ(flows_.create_payout(po, next(), &e), R::instrument_invalid);
  EXPECT_EQ(flows_.create_payout(
                {"po_1", "cus_a", 5, kUsd, "acme", InstrumentKind::account, "", 1000}, next(), &e),
            R::instrument_invalid);
  EXPECT_EQ(flows_.create_payout(
                {"tu_1", "cus_a", 5, kUsd, "acme", InstrumentKind::account, "x", 1000}, next(), &e),
            R::exists);
  EXPECT_EQ(flows_.create_wallet_transfer({"tr_1", "cus_a", "", 5, kUsd, 1000}, next(), &e),
            R::customer_id_invalid);
  EXPECT_EQ(flows_.create_wallet_transfer({"tr_1", "cus_a", "cus_b", 0, kUsd, 1000}, next(), &e),
            R::amount_invalid);

  const auto apply = [&](std::string_view attempt, const AttemptResult& a,
                         std::string_view cause = "psp_response") {
    return flows_.apply_result(attempt, a, cause, next(), &e);
  };
  EXPECT_EQ(apply("tu_1_a1", answer(A::pending)), R::result_invalid);
  EXPECT_EQ(apply("tu_1_a1", answer(A::approved, -1)), R::result_invalid);
  EXPECT_EQ(apply("tu_1_a1", answer(A::approved, 100 + kPspFeeAboveAmountMax + 1)),
            R::result_invalid);
  EXPECT_EQ(apply("tu_1_a1", answer(A::declined_hard, 0, std::string(256, 'e'))),
            R::result_invalid);
  EXPECT_EQ(apply("tu_1_a1", answer(A::approved), ""), R::cause_invalid);
  EXPECT_EQ(apply("tu_1_a1", answer(A::approved), std::string(129, 'c')), R::cause_invalid);
  EXPECT_EQ(apply("nope_a1", answer(A::approved)), R::attempt_not_found);
  EXPECT_EQ(apply("tu_1", answer(A::approved)), R::attempt_not_found);  // a flow, not an attempt

  EXPECT_TRUE(e.postings.empty() && e.calls.empty());
  EXPECT_EQ(encoded(flows_), before);
  EXPECT_EQ(flows_.outstanding_attempts(), std::vector<std::string>{"tu_1_a1"});
  // A fee above the amount (a fixed fee on a small top-up) is keel's expense: booked.
  EXPECT_EQ(result("tu_1_a1", answer(A::approved, 101)), R::ok);
}

// Lists ------------------------------------------------------------------------------------

std::vector<std::string> ids(const WalletFlowPage& page) {
  std::vector<std::string> out;
  for (const WalletFlow& f : page.data) out.push_back(f.id);
  return out;
}

TEST_F(WalletFlowsTest, ListsPageNewestFirstWithFilters) {
  using V = std::vector<std::string>;
  fund("cus_a", 1000);  // fund_1
  const Timestamp t1 = now_ + 1;
  ASSERT_EQ(topup("tu_1", "cus_a", 10), R::ok);
  ASSERT_EQ(topup("tu_2", "cus_b", 10), R::ok);
  ASSERT_EQ(topup("tu_3", "cus_a", 10), R::ok);
  const Timestamp t4 = now_ + 1;
  ASSERT_EQ(topup("tu_4", "cus_b", 10), R::ok);
  ASSERT_EQ(result("tu_3_a1", answer(A::declined_hard)), R::ok);
  ASSERT_EQ(transfer("tr_1", "cus_a", "cus_b", 5), R::ok);
  ASSERT_EQ(transfer("tr_2", "cus_c", "cus_a", 5), R::insufficient_funds);
  const auto K = WalletFlowKind::topup;

  WalletFlowPage p = flows_.list(K, {}, 2, "");
  EXPECT_EQ(ids(p), (V{"tu_4", "tu_3"}));
  EXPECT_TRUE(p.has_more);
  p = flows_.list(K, {}, 2, "tu_3");
  EXPECT_EQ(ids(p), (V{"tu_2", "tu_1"}));
  EXPECT_TRUE(p.has_more);
  p = flows_.list(K, {}, 2, "tu_1");
  EXPECT_EQ(ids(p), (V{"fund_1"}));
  EXPECT_FALSE(p.has_more);

  EXPECT_EQ(ids(flows_.list(K, {.customer_id = "cus_a"}, 10, "")), (V{"tu_3", "tu_1", "fund_1"}));
  EXPECT_EQ(ids(flows_.list(K, {.customer_id = "cus_a"}, 10, "tu_2")), (V{"tu_1", "fund_1"}));
  EXPECT_EQ(ids(flows_.list(K, {.status = S::processing}, 10, "")), (V{"tu_4", "tu_2", "tu_1"}));
  EXPECT_EQ(ids(flows_.list(K, {.status = S::processing, .customer_id = "cus_b"}, 1, "")),
            (V{"tu_4"}));
  EXPECT_EQ(ids(flows_.list(K, {.created_gte = t1, .created_lt = t4}, 10, "")),
            (V{"tu_3", "tu_2", "tu_1"}));
  EXPECT_EQ(ids(flows_.list(K, {.created_gte = t4}, 10, "")), (V{"tu_4"}));
  EXPECT_TRUE(flows_.list(K, {.created_gte = t4, .created_lt = t4}, 10, "").data.empty());
  EXPECT_TRUE(flows_.list(K, {.customer_id = "cus_z"}, 10, "").data.empty());
  EXPECT_EQ(flows_.list(K, {}, 0, "").data.size(), 1u);  // limit clamps to [1, 100]

  const auto T = WalletFlowKind::transfer;
  EXPECT_EQ(ids(flows_.list(T, {}, 10, "")), (V{"tr_2", "tr_1"}));
  EXPECT_EQ(ids(flows_.list(T, {.customer_id = "cus_b"}, 10, "")), (V{"tr_1"}));
  EXPECT_EQ(ids(flows_.list(T, {.customer_id = "cus_a"}, 10, "")), (V{"tr_2", "tr_1"}));
  EXPECT_EQ(ids(flows_.list(T, {.status = S::failed}, 10, "")), (V{"tr_2"}));
  EXPECT_TRUE(flows_.list(WalletFlowKind::payout, {}, 10, "").data.empty());

  EXPECT_EQ(flows_.list(K, {}, 10, "tr_1").result, R::starting_after_not_found);
  EXPECT_EQ(flows_.list(K, {}, 10, "nope").result, R::starting_after_not_found);
  EXPECT_EQ(flows_.list(K, {.customer_id = "a:b"}, 10, "").result, R::customer_id_invalid);
}

TEST_F(WalletFlowsTest, ListLimitIsBounded) {
  for (int i = 0; i < 105; ++i) {
    ASSERT_EQ(topup("tu_" + std::to_string(i), "cus_a", 1), R::ok);
  }
  const WalletFlowPage p = flows_.list(WalletFlowKind::topup, {}, 1000, "");
  EXPECT_EQ(p.data.size(), kWalletFlowPageLimitMax);
  EXPECT_TRUE(p.has_more);
}

// Snapshots --------------------------------------------------------------------------------

class WalletFlowsCodecTest : public WalletFlowsTest {
 protected:
  // Every state and shape a flow can be in.
  void rich_scenario() {
    fund("cus_a", 100000);
    ASSERT_EQ(topup("tu_ok", "cus_a", 500, "globex"), R::ok);
    ASSERT_EQ(result("tu_ok_a1", answer(A::approved, 12)), R::ok);
    ASSERT_EQ(topup("tu_declined", "cus_b", 500), R::ok);
    ASSERT_EQ(result("tu_declined_a1", answer(A::declined_hard, 0, "stolen_card")), R::ok);
    ASSERT_EQ(topup("tu_pending", "cus_b", 700), R::ok);
    ASSERT_EQ(topup("tu_unknown", "cus_c", 800), R::ok);
    ASSERT_EQ(result("tu_unknown_a1", answer(A::unknown)), R::ok);
    ASSERT_EQ(transfer("tr_ok", "cus_a", "cus_b", 300), R::ok);
    ASSERT_EQ(transfer("tr_poor", "cus_c", "cus_b", 300), R::insufficient_funds);
    ASSERT_EQ(payout("po_paid", "cus_a", 1000), R::ok);
    ASSERT_EQ(result("po_paid_a1", answer(A::approved, 25)), R::ok);
    ASSERT_EQ(payout("po_failed", "cus_a", 1000), R::ok);
    ASSERT_EQ(result("po_failed_a1", answer(A::retryable)), R::ok);
    ASSERT_EQ(payout("po_review", "cus_a", 2000), R::ok);
    ASSERT_EQ(result("po_review_a1", answer(A::unknown)), R::ok);
    ASSERT_EQ(payout("po_poor", "cus_c", 2000), R::insufficient_funds);
    Effects e;
    ASSERT_EQ(flows_.tick(now_ + 3 * kDay, &e).size(), 3u);  // the two top-ups and po_review
    now_ += 3 * kDay;
    ASSERT_EQ(payout("po_pending", "cus_a", 3000), R::ok);
  }
};

TEST_F(WalletFlowsCodecTest, RoundTripIsCanonicalAndRebuildsTheIndexes) {
  rich_scenario();
  const std::string bytes = encoded(flows_);
  WalletFlows copy;
  ASSERT_TRUE(WalletFlows::decode(bytes, flows_.options(), &copy).is_ok());
  EXPECT_EQ(encoded(copy), bytes);
  EXPECT_EQ(copy.size(), flows_.size());
  EXPECT_EQ(copy.outstanding_attempts(), flows_.outstanding_attempts());
  EXPECT_EQ(copy.next_deadline(), flows_.next_deadline());
  EXPECT_EQ(copy.find_by_attempt("po_review_a1")->id, "po_review");
  for (const auto kind :
       {WalletFlowKind::topup, WalletFlowKind::transfer, WalletFlowKind::payout}) {
    EXPECT_EQ(ids(copy.list(kind, {.customer_id = "cus_b"}, 100, "")),
              ids(flows_.list(kind, {.customer_id = "cus_b"}, 100, "")));
  }
  // Both answer the same commands with the same effects and end in the same state.
  for (WalletFlows* m : {&flows_, &copy}) {
    Effects e;
    EXPECT_EQ(
        m->apply_result("po_review_a1", answer(A::approved, 3), "webhook:evt_1", now_ + 1, &e),
        R::ok);
    EXPECT_EQ(m->apply_result("po_review_a1", answer(A::approved), "x", now_ + 2, &e),
              R::stale_result);
    EXPECT_EQ(m->tick(now_ + 4 * kDay, &e), std::vector<std::string>{"po_pending"});
    EXPECT_EQ(m->mark_pending_unknown(now_ + 5 * kDay),
              (std::vector<std::string>{"po_pending_a1", "tu_pending_a1"}));
    ASSERT_EQ(e.postings.size(), 2u);
    EXPECT_EQ(e.postings[0].id, "po_review.post");
  }
  EXPECT_EQ(encoded(copy), encoded(flows_));
}

TEST_F(WalletFlowsCodecTest, EveryTruncationAndCorruptionFailsCleanly) {
  rich_scenario();
  const std::string bytes = encoded(flows_);
  WalletFlows target;
  Effects e;
  ASSERT_EQ(target.create_topup({"keep", "cus_a", 1, kUsd, "acme", InstrumentKind::card_token, "t"},
                                now_, &e),
            R::ok);
  const std::string target_bytes = encoded(target);
  for (size_t n = 0; n < bytes.size(); ++n) {
    ASSERT_FALSE(WalletFlows::decode(bytes.substr(0, n), {}, &target).is_ok()) << n;
  }
  EXPECT_FALSE(WalletFlows::decode(bytes + '\0', {}, &target).is_ok());
  EXPECT_FALSE(WalletFlows::decode(bytes, {.topup_processing_s = 0}, &target).is_ok());
  EXPECT_EQ(encoded(target), target_bytes);  // untouched by every failure
  // A flipped byte never crashes; whatever decodes is consistent enough to round-trip.
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x5A);
    WalletFlows decoded;
    if (!WalletFlows::decode(bad, {}, &decoded).is_ok()) continue;
    WalletFlows again;
    ASSERT_TRUE(WalletFlows::decode(encoded(decoded), {}, &again).is_ok()) << i;
    EXPECT_EQ(encoded(again), encoded(decoded)) << i;
  }
}

TEST_F(WalletFlowsCodecTest, DecodeRefusesInconsistentFlows) {
  // A hand-made flow that says succeeded while its attempt is still pending.
  ASSERT_EQ(topup("tu_1", "cus_a", 100), R::ok);
  std::string bytes = encoded(flows_);
  WalletFlows ok;
  ASSERT_TRUE(WalletFlows::decode(bytes, {}, &ok).is_ok());
  // status byte: after the header (12), id, kind, customer, to_customer, amount, currency,
  // channel, instrument kind, instrument.
  const size_t status_at = 12 + (2 + 4) + 1 + (2 + 5) + 2 + 8 + 2 + (2 + 4) + 1 + (2 + 8);
  ASSERT_EQ(bytes[status_at], static_cast<char>(S::processing));
  bytes[status_at] = static_cast<char>(S::succeeded);
  WalletFlows bad;
  EXPECT_FALSE(WalletFlows::decode(bytes, {}, &bad).is_ok());
  bytes[status_at] = 3;  // out of range
  EXPECT_FALSE(WalletFlows::decode(bytes, {}, &bad).is_ok());
}

// Exactly once -----------------------------------------------------------------------------

// Top-ups, transfers and payouts with answers delivered out of order, duplicated, contradicted
// (the first settling answer wins), interleaved with deadlines, restarts and snapshot round
// trips. Every chain is accepted by the ledger (a double posting would be refused as `exists`),
// and what the ledger holds equals what the flows say, exactly.
TEST_F(WalletFlowsTest, RandomDuplicatedAndReorderedResultsMoveMoneyExactlyOnce) {
  std::mt19937_64 rng(20261123);
  const std::string customers[] = {"c0", "c1", "c2", "c3"};
  const std::string channels[] = {"acme", "globex"};
  const A outcomes[] = {A::approved,      A::approved,  A::declined_hard,
                        A::declined_soft, A::retryable, A::unknown};
  std::vector<std::string> created;
  std::vector<std::pair<std::string, AttemptResult>> inbox;
  std::map<std::string, int> settled;  // attempt id -> settling answers accepted
  const auto queue_answers = [&](const std::string& id) {
    const int64_t amount = flow(id).amount;
    for (int k = 1 + static_cast<int>(rng() % 3); k > 0; --k) {
      const A o = outcomes[rng() % 6];
      inbox.push_back({id + "_a1", answer(o, static_cast<int64_t>(rng() % (amount / 10 + 1)))});
    }
  };
  for (int step = 0; step < 5000; ++step) {
    const std::string& c = customers[rng() % 4];
    const std::string& ch = channels[rng() % 2];
    const std::string id = "f" + std::to_string(step);
    switch (rng() % 10) {
      case 0:
      case 1:
        ASSERT_EQ(topup(id, c, 1 + static_cast<int64_t>(rng() % 5000), ch), R::ok);
        created.push_back(id);
        queue_answers(id);
        break;
      case 2: {
        const std::string& to = customers[rng() % 4];
        if (to == c) break;
        const R r = transfer(id, c, to, 1 + static_cast<int64_t>(rng() % 3000));
        ASSERT_TRUE(r == R::ok || r == R::insufficient_funds) << result_name(r);
        created.push_back(id);
        break;
      }
      case 3: {
        const R r = payout(id, c, 1 + static_cast<int64_t>(rng() % 4000), ch);
        ASSERT_TRUE(r == R::ok || r == R::insufficient_funds) << result_name(r);
        created.push_back(id);
        if (r == R::ok) queue_answers(id);
        break;
      }
      case 4:
      case 5:
      case 6:
      case 7: {
        if (inbox.empty()) break;
        const size_t i = rng() % inbox.size();
        const auto [attempt, a] = inbox[i];
        if (rng() % 3 != 0) {  // else it stays queued: a duplicate delivery later
          inbox[i] = inbox.back();
          inbox.pop_back();
        }
        const R r = result(attempt, a, rng() % 2 ? "webhook:evt" : "status_query");
        ASSERT_TRUE(r == R::ok || r == R::stale_result) << result_name(r);
        if (r == R::ok && a.status != A::unknown) ++settled[attempt];
        if (r == R::stale_result) {
          EXPECT_TRUE(last_.postings.empty());
        }
        break;
      }
      case 8: {  // time passes: deadlines fire, and the ledger's own timers release nothing
        now_ += static_cast<Timestamp>(rng() % (2 * kDay));
        Effects e;
        flows_.tick(now_, &e);
        EXPECT_TRUE(e.postings.empty() && e.calls.empty());
        EXPECT_EQ(ledger_.expire_pending(now_), 0u);
        break;
      }
      case 9: {  // now and then a restart: snapshot, decode, pending attempts become unknown
        if (rng() % 10 != 0) break;
        const std::string bytes = encoded(flows_);
        WalletFlows restored;
        ASSERT_TRUE(WalletFlows::decode(bytes, flows_.options(), &restored).is_ok());
        ASSERT_EQ(encoded(restored), bytes);
        flows_ = std::move(restored);
        flows_.mark_pending_unknown(next());
        break;
      }
    }
  }
  for (const auto& [attempt, n] : settled) EXPECT_EQ(n, 1) << attempt;
  std::map<std::string, int> calls;
  for (const PspCall& call : calls_) ++calls[call.attempt_id];
  for (const auto& [attempt, n] : calls) EXPECT_EQ(n, 1) << attempt;

  // Rebuild every balance from the flows alone and compare with the ledger.
  std::map<std::string, ledger::Balances> want;
  int counts[3][3] = {};
  for (const std::string& id : created) {
    const WalletFlow& f = flow(id);
    ++counts[static_cast<int>(f.kind)][static_cast<int>(f.status)];
    auto& w = want[wallet(f.customer_id)];
    auto& clear = want[clearing(f.channel)];
    auto& fees = want[psp_fees(f.channel)];
    switch (f.kind) {
      case WalletFlowKind::topup:
        if (f.status != S::succeeded) break;
        w.credits_posted += f.amount;
        clear.debits_posted += f.amount;
        clear.credits_posted += f.fee;
        fees.debits_posted += f.fee;
        break;
      case WalletFlowKind::transfer:
        if (f.status != S::succeeded) break;
        w.debits_posted += f.amount;
        want[wallet(f.to_customer_id)].credits_posted += f.amount;
        break;
      case WalletFlowKind::payout:
        if (f.status == S::processing) {
          w.debits_pending += f.amount;
          clear.credits_pending += f.amount;
        } else if (f.status == S::succeeded) {
          w.debits_posted += f.amount;
          clear.credits_posted += f.amount + f.fee;
          fees.debits_posted += f.fee;
        }
        break;
    }
  }
  for (const auto& [account, b] : want) {
    if (account.find("::") != std::string::npos) continue;  // transfers have no channel
    EXPECT_EQ(balances(account), b) << account;
  }
  // Every kind reached every state it has, so the run exercised what it claims to.
  for (int s = 0; s < 3; ++s) {
    EXPECT_GT(counts[0][s], 0) << "topup " << s;
    EXPECT_GT(counts[2][s], 0) << "payout " << s;
  }
  EXPECT_GT(counts[1][0] + counts[1][1] + counts[1][2], 0);
  EXPECT_GT(counts[1][1], 0);
  EXPECT_GT(counts[1][2], 0);
}

// Names and helpers ------------------------------------------------------------------------

// History (docs/storage.md, "Tiers"): which flows are at rest, and taking one out of memory
// and back changes nothing a reader or the encoding sees.
TEST_F(WalletFlowsTest, OnlyFlowsThatNothingCanChangeAreAtRestAndLeaveAndComeBackUnchanged) {
  flows_.track_changes(true);
  fund("cus_a", 5'000);                                 // fund_1: succeeded
  ASSERT_EQ(topup("tu_open", "cus_a", 100), R::ok);     // processing
  ASSERT_EQ(topup("tu_unknown", "cus_a", 100), R::ok);  // processing, outcome unknown
  ASSERT_EQ(result("tu_unknown_a1", answer(A::unknown)), R::ok);
  ASSERT_EQ(transfer("tr_1", "cus_a", "cus_b", 700), R::ok);  // succeeded at once
  ASSERT_EQ(transfer("tr_2", "cus_b", "cus_a", 9'999), R::insufficient_funds);
  ASSERT_EQ(payout("po_1", "cus_a", 200), R::ok);  // processing, its hold open
  ASSERT_EQ(flows_.take_changed(),
            (std::vector<std::string>{"fund_1", "po_1", "tr_1", "tr_2", "tu_open", "tu_unknown"}));
  EXPECT_TRUE(flows_.take_changed().empty());
  for (const char* id : {"fund_1", "tr_1", "tr_2"}) EXPECT_TRUE(WalletFlows::at_rest(flow(id)));
  for (const char* id : {"tu_open", "tu_unknown", "po_1"}) {
    EXPECT_FALSE(WalletFlows::at_rest(flow(id))) << id;
  }
  // Flagged for review: not at rest, though settled.
  ASSERT_EQ(flows_.flag_result_rejected("fund_1_a1", "psp_result_rejected: contradicts", next()),
            R::ok);
  EXPECT_FALSE(WalletFlows::at_rest(flow("fund_1")));
  EXPECT_EQ(flows_.take_changed(), std::vector<std::string>{"fund_1"});

  const std::string before = encoded(flows_);
  const WalletFlowPage page = flows_.list(WalletFlowKind::transfer, {}, 10, "");
  std::string record;
  WalletFlows::encode_flow_record(flow("tr_1"), &record);
  const WalletFlow tr_1 = flows_.remove("tr_1");
  EXPECT_EQ(flows_.find("tr_1"), nullptr);
  EXPECT_EQ(flows_.list(WalletFlowKind::transfer, {}, 10, "").data.size(), 1u);
  EXPECT_EQ(flows_.list(WalletFlowKind::transfer, {}, 10, "tr_1").result,
            R::starting_after_not_found);
  WalletFlow back;
  ASSERT_TRUE(WalletFlows::decode_flow_record(record, &back).is_ok());
  EXPECT_TRUE(flows_.restore(back).is_ok());
  EXPECT_EQ(flows_.take_changed(), std::vector<std::string>{"tr_1"});
  EXPECT_EQ(encoded(flows_), before);
  EXPECT_EQ(flows_.list(WalletFlowKind::transfer, {}, 10, "").data.size(), page.data.size());
  // Restoring what is in memory, or a damaged record, is refused and changes nothing.
  EXPECT_FALSE(flows_.restore(back).is_ok());
  WalletFlow bad = tr_1;
  bad.amount = 0;
  EXPECT_FALSE(flows_.restore(bad).is_ok());
  EXPECT_FALSE(WalletFlows::decode_flow_record(record.substr(1), &back).is_ok());
  EXPECT_EQ(encoded(flows_), before);
}

TEST_F(WalletFlowsTest, AnIdTakenOutsideMemoryExistsAfterTheRequestIsChecked) {
  const WalletFlows::IdTaken taken = [](std::string_view id) { return id == "tu_cold"; };
  Effects e;
  EXPECT_EQ(flows_.create_topup(
                {"tu_cold", "cus_a", 0, kUsd, "acme", InstrumentKind::card_token, "tok_visa"},
                next(), &e, &taken),
            R::amount_invalid);  // the request's own problem first, as for an id in memory
  EXPECT_EQ(flows_.create_topup(
                {"tu_cold", "cus_a", 10, kUsd, "acme", InstrumentKind::card_token, "tok_visa"},
                next(), &e, &taken),
            R::exists);
  EXPECT_EQ(
      flows_.create_wallet_transfer({"tu_cold", "cus_a", "cus_a", 10, kUsd, 0}, next(), &e, &taken),
      R::same_wallet);
  EXPECT_EQ(
      flows_.create_wallet_transfer({"tu_cold", "cus_a", "cus_b", 10, kUsd, 0}, next(), &e, &taken),
      R::exists);
  EXPECT_EQ(flows_.create_payout({"tu_cold", "cus_a", 10, kUsd, "acme", InstrumentKind::iban,
                                  "DE89370400440532013000", 100},
                                 next(), &e, &taken),
            R::exists);
  EXPECT_EQ(flows_.size(), 0u);
  EXPECT_TRUE(e.postings.empty() && e.calls.empty());
}

TEST(WalletFlowListKeys, SortByPositionWithinABucketAndReadBack) {
  const std::string a = flow_list_key(WalletFlowKind::topup, "cus_1", {kT0, "tu_b"});
  const std::string b = flow_list_key(WalletFlowKind::topup, "cus_1", {kT0 + 1, "tu_a"});
  const std::string c = flow_list_key(WalletFlowKind::topup, "cus_1", {kT0, "tu_c"});
  EXPECT_LT(a, c);
  EXPECT_LT(c, b);
  const std::string prefix = flow_list_prefix(WalletFlowKind::topup, "cus_1");
  EXPECT_TRUE(a.starts_with(prefix));
  // Buckets and kinds never interleave: "cus_1" and "cus_10", top-ups and payouts.
  EXPECT_FALSE(flow_list_key(WalletFlowKind::topup, "cus_10", {kT0, "x"}).starts_with(prefix));
  EXPECT_FALSE(flow_list_key(WalletFlowKind::payout, "cus_1", {kT0, "x"}).starts_with(prefix));
  EXPECT_TRUE(flow_list_key(WalletFlowKind::topup, "", {kT0, "x"}) <
              flow_list_prefix(WalletFlowKind::topup, "\x01"));
  ListPosition at;
  ASSERT_TRUE(parse_flow_list_key(b, prefix.size(), &at));
  EXPECT_EQ(at, (ListPosition{kT0 + 1, "tu_a"}));
  EXPECT_FALSE(parse_flow_list_key(prefix + "1234567", prefix.size(), &at));
}

TEST(WalletFlowNames, AreTheIdentifiers) {
  EXPECT_EQ(result_name(R::ok), "ok");
  EXPECT_EQ(result_name(R::insufficient_funds), "insufficient_funds");
  EXPECT_EQ(result_name(R::starting_after_not_found), "starting_after_not_found");
  for (int r = 0; r <= static_cast<int>(R::starting_after_not_found); ++r) {
    EXPECT_NE(result_name(static_cast<R>(r)), "unknown") << r;
  }
  EXPECT_EQ(wallet_flow_status_name(S::processing), "processing");
  EXPECT_EQ(wallet_flow_status_name(S::succeeded), status_name(PaymentStatus::succeeded));
  EXPECT_EQ(wallet_flow_status_name(S::failed), status_name(PaymentStatus::failed));
  EXPECT_EQ(wallet_flow_kind_name(WalletFlowKind::transfer), "transfer");
}

TEST(WalletFlowHelpers, AccountsAndAvailableBalance) {
  WalletFlows flows;
  Effects e;
  ASSERT_EQ(flows.create_wallet_transfer({"tr_1", "a", "b", 5, kUsd, 5}, 1, &e), R::ok);
  ASSERT_EQ(
      flows.create_topup({"tu_1", "a", 5, kUsd, "acme", InstrumentKind::bank_account, "x"}, 2, &e),
      R::ok);
  const auto t = wallet_flow_accounts(*flows.find("tr_1"));
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].id, "wallet:a:USD");
  EXPECT_EQ(t[1].id, "wallet:b:USD");
  EXPECT_EQ(t[1].flags, ledger::account_flags::kDebitsMustNotExceedCredits);
  const auto u = wallet_flow_accounts(*flows.find("tu_1"));
  ASSERT_EQ(u.size(), 3u);
  EXPECT_EQ(u[1].id, "psp_clearing:acme:USD");
  EXPECT_EQ(u[2].id, "psp_fees:acme:USD");
  EXPECT_EQ(u[2].flags, 0);
  EXPECT_EQ(wallet_flow_available_minor({10, 20, 0, 100}), 70);
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(wallet_flow_available_minor({kMax, 1, 0, 0}), std::nullopt);
  EXPECT_EQ(wallet_flow_available_minor({0, 1, 0, std::numeric_limits<int64_t>::min()}),
            std::nullopt);
}

}  // namespace
}  // namespace keel::payments
