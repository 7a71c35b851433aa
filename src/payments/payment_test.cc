#include "payments/payment.h"

#include <gtest/gtest.h>

#include <random>

#include "ledger/ledger.h"

namespace keel::payments {
namespace {

using S = PaymentStatus;
using A = AttemptStatus;
using R = PaymentResult;

constexpr Timestamp kT0 = 1'800'000'000 * kNanosPerSecond;
constexpr Timestamp kMinute = 60 * kNanosPerSecond;
const Currency kUsd = *Currency::from_code("USD");

// Drives a PaymentMachine and posts its effects to a real ledger, as the engine will.
class PaymentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<ledger::AccountEvent> accounts;
    for (const char* ch : {"acme", "globex"}) {
      accounts.push_back({psp_clearing_account(ch, kUsd), kUsd, 0, {}});
    }
    accounts.push_back({merchant_account("shop", kUsd), kUsd, 0, {}});
    for (auto r : ledger_.create_accounts(accounts, next()))
      ASSERT_EQ(r, ledger::CreateAccountResult::ok);
  }
  void TearDown() override {
    const auto inv = ledger_.check_invariants();
    EXPECT_TRUE(inv.ok) << inv.problem;
  }
  Timestamp next(Timestamp step = 1) { return now_ += step; }
  // Posts effects: every event must be applied (the chain never fails for valid flows).
  void post(Effects& e) {
    if (!e.postings.empty()) {
      for (auto r : ledger_.create_transfers(e.postings, next())) {
        EXPECT_EQ(r, ledger::CreateTransferResult::ok);
      }
    }
    calls_.insert(calls_.end(), e.calls.begin(), e.calls.end());
    e = {};
  }
  void create(std::string id, CaptureMethod m = CaptureMethod::automatic, int64_t amount = 1250) {
    ASSERT_EQ(machine_.create({id, amount, kUsd, "shop", m}, next()), R::ok);
  }
  R confirm(const std::string& id, const std::string& ch = "acme") {
    Effects e;
    const R r = machine_.confirm(id, ch, next(), &e);
    post(e);
    return r;
  }
  R result(const std::string& attempt, A status, bool captured = false, Timestamp step = 1) {
    Effects e;
    const R r = machine_.apply_result(attempt, {status, captured, "psp_1", ""}, "psp_response",
                                      next(step), &e);
    post(e);
    return r;
  }
  const Payment& pay(const std::string& id) { return *machine_.find(id); }
  ledger::Balances merchant() {
    return ledger_.find_account(merchant_account("shop", kUsd))->balances;
  }

  PaymentMachine machine_;
  ledger::Ledger ledger_;
  Timestamp now_ = kT0;
  std::vector<PspCall> calls_;
};

TEST_F(PaymentTest, AutoCaptureApprovedPostsHoldAndCaptureInOneChain) {
  create("pay_1");
  EXPECT_EQ(pay("pay_1").status, S::requires_confirmation);
  ASSERT_EQ(confirm("pay_1"), R::ok);
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].attempt_id, "pay_1_a1");
  EXPECT_TRUE(calls_[0].capture_now);
  EXPECT_EQ(pay("pay_1").status, S::processing);
  ASSERT_EQ(result("pay_1_a1", A::approved, true), R::ok);
  EXPECT_EQ(pay("pay_1").status, S::succeeded);
  EXPECT_EQ(pay("pay_1").captured_amount, 1250);
  EXPECT_EQ(merchant(), (ledger::Balances{0, 0, 0, 1250}));
  EXPECT_EQ(ledger_.find_transfer("pay_1.hold")->pending_state, ledger::PendingState::posted);
  EXPECT_EQ(pay("pay_1").timeline.back().to, S::succeeded);
}

TEST_F(PaymentTest, ManualCaptureHoldsThenPostsPartOfIt) {
  create("pay_1", CaptureMethod::manual);
  confirm("pay_1");
  ASSERT_EQ(result("pay_1_a1", A::approved), R::ok);
  EXPECT_EQ(pay("pay_1").status, S::requires_capture);
  EXPECT_EQ(merchant(), (ledger::Balances{0, 0, 1250, 0}));  // held, not yet the merchant's
  Effects e;
  EXPECT_EQ(machine_.capture("pay_1", 1300, next(), &e), R::capture_exceeds_authorized);
  ASSERT_EQ(machine_.capture("pay_1", 1000, next(), &e), R::ok);
  post(e);
  EXPECT_EQ(calls_.back().kind, AttemptKind::capture);
  EXPECT_EQ(calls_.back().authorization_reference, "pay_1_a1");
  ASSERT_EQ(result("pay_1_a2", A::approved), R::ok);
  EXPECT_EQ(pay("pay_1").status, S::succeeded);
  EXPECT_EQ(merchant(), (ledger::Balances{0, 0, 0, 1000}));  // the rest released
}

TEST_F(PaymentTest, UnknownOutcomeBlocksNewAttemptsUntilResolvedAndChargesOnce) {
  create("pay_1");
  confirm("pay_1");
  ASSERT_EQ(result("pay_1_a1", A::unknown), R::ok);
  EXPECT_EQ(pay("pay_1").status, S::processing);
  Effects e;
  EXPECT_EQ(machine_.retry("pay_1", "globex", next(), &e), R::attempt_outstanding);
  EXPECT_TRUE(e.calls.empty());
  EXPECT_EQ(merchant(), ledger::Balances{});  // unknown is never success
  // The status query and the webhook both say approved: the first settles, the second is stale.
  ASSERT_EQ(result("pay_1_a1", A::approved, true), R::ok);
  EXPECT_EQ(result("pay_1_a1", A::approved, true), R::stale_result);
  EXPECT_EQ(pay("pay_1").status, S::succeeded);
  EXPECT_EQ(merchant().credits_posted, 1250);
  EXPECT_EQ(calls_.size(), 1u);  // one attempt ever reached the PSP
}

TEST_F(PaymentTest, RetryableAndSoftDeclinesMayRetryHardDeclinesFail) {
  create("pay_1");
  confirm("pay_1");
  ASSERT_EQ(result("pay_1_a1", A::retryable), R::ok);
  Effects e;
  ASSERT_EQ(machine_.retry("pay_1", "acme", next(), &e), R::ok);
  post(e);
  ASSERT_EQ(result("pay_1_a2", A::declined_soft), R::ok);
  ASSERT_EQ(machine_.retry("pay_1", "globex", next(), &e), R::ok);
  post(e);
  EXPECT_EQ(calls_.back().channel, "globex");
  ASSERT_EQ(result("pay_1_a3", A::declined_hard), R::ok);
  EXPECT_EQ(pay("pay_1").status, S::failed);
  EXPECT_EQ(machine_.retry("pay_1", "acme", next(), &e), R::invalid_state);
  EXPECT_EQ(merchant(), ledger::Balances{});
}

TEST_F(PaymentTest, RetryOnlyAfterARetryableOrSoftOutcome) {
  create("pay_1", CaptureMethod::manual);
  Effects e;
  EXPECT_EQ(machine_.retry("pay_1", "acme", next(), &e), R::invalid_state);  // not confirmed
  confirm("pay_1");
  EXPECT_EQ(machine_.retry("pay_1", "acme", next(), &e), R::attempt_outstanding);  // pending
  result("pay_1_a1", A::approved);
  EXPECT_EQ(machine_.retry("pay_1", "acme", next(), &e), R::invalid_state);  // authorized
}

TEST_F(PaymentTest, ProcessingPastItsDeadlineGoesToReviewNeverSilently) {
  create("pay_1");
  confirm("pay_1");
  result("pay_1_a1", A::unknown);
  Effects e;
  EXPECT_TRUE(machine_.tick(now_ + 29 * kMinute, &e).empty());
  EXPECT_EQ(machine_.tick(now_ + 31 * kMinute, &e), std::vector<std::string>{"pay_1"});
  EXPECT_TRUE(pay("pay_1").in_review);
  EXPECT_EQ(pay("pay_1").status, S::processing);
  now_ += 31 * kMinute;
  ASSERT_EQ(result("pay_1_a1", A::approved, true), R::ok);  // a late webhook still settles it
  EXPECT_FALSE(pay("pay_1").in_review);
  EXPECT_EQ(merchant().credits_posted, 1250);
}

TEST_F(PaymentTest, DeadlinesWithoutAnOutstandingAttemptEndThePayment) {
  create("unconfirmed");
  create("gave_up");
  confirm("gave_up");
  result("gave_up_a1", A::retryable);
  create("authorized", CaptureMethod::manual);
  confirm("authorized");
  result("authorized_a1", A::approved);
  Effects e;
  machine_.tick(now_ + 31 * kMinute, &e);
  EXPECT_EQ(pay("gave_up").status, S::failed);
  EXPECT_EQ(pay("unconfirmed").status, S::requires_confirmation);
  machine_.tick(now_ + 25 * 3600 * kNanosPerSecond, &e);
  EXPECT_EQ(pay("unconfirmed").status, S::canceled);
  EXPECT_EQ(pay("authorized").status, S::requires_capture);
  now_ += 8 * 24 * 3600 * kNanosPerSecond;
  machine_.tick(now_, &e);
  post(e);
  EXPECT_EQ(pay("authorized").status, S::canceled);  // the authorization expired
  EXPECT_EQ(merchant(), ledger::Balances{});         // and its hold was released
}

TEST_F(PaymentTest, CancelBeforeConfirmOrVoidAnAuthorization) {
  create("pay_1");
  Effects e;
  ASSERT_EQ(machine_.cancel("pay_1", next(), &e), R::ok);
  EXPECT_EQ(pay("pay_1").status, S::canceled);
  EXPECT_EQ(machine_.cancel("pay_1", next(), &e), R::invalid_state);
  create("pay_2", CaptureMethod::manual);
  confirm("pay_2");
  result("pay_2_a1", A::approved);
  ASSERT_EQ(machine_.cancel("pay_2", next(), &e), R::ok);
  post(e);
  ASSERT_EQ(result("pay_2_a2", A::declined_soft), R::ok);  // the void failed: still authorized
  EXPECT_EQ(pay("pay_2").status, S::requires_capture);
  ASSERT_EQ(machine_.cancel("pay_2", next(), &e), R::ok);
  post(e);
  ASSERT_EQ(result("pay_2_a3", A::approved), R::ok);
  EXPECT_EQ(pay("pay_2").status, S::canceled);
  EXPECT_EQ(merchant(), ledger::Balances{});
}

TEST_F(PaymentTest, AfterARestartPendingAttemptsAreUnknown) {
  create("pay_1");
  confirm("pay_1");
  create("pay_2");
  EXPECT_EQ(machine_.mark_pending_unknown(next()), std::vector<std::string>{"pay_1_a1"});
  EXPECT_EQ(pay("pay_1").attempts[0].status, A::unknown);
  Effects e;
  EXPECT_EQ(machine_.retry("pay_1", "acme", next(), &e), R::attempt_outstanding);
}

TEST_F(PaymentTest, BadInputIsRefusedAndChangesNothing) {
  Effects e;
  EXPECT_EQ(machine_.create({"bad id", 5, kUsd, "shop", {}}, next()), R::id_invalid);
  EXPECT_EQ(machine_.create({std::string(49, 'p'), 5, kUsd, "shop", {}}, next()), R::id_invalid);
  EXPECT_EQ(machine_.create({"p", 0, kUsd, "shop", {}}, next()), R::amount_invalid);
  EXPECT_EQ(machine_.create({"p", -5, kUsd, "shop", {}}, next()), R::amount_invalid);
  EXPECT_EQ(machine_.create({"p", 5, Currency(), "shop", {}}, next()), R::currency_invalid);
  EXPECT_EQ(machine_.create({"p", 5, kUsd, "", {}}, next()), R::merchant_id_invalid);
  EXPECT_EQ(machine_.size(), 0u);
  create("pay_1");
  EXPECT_EQ(machine_.create({"pay_1", 5, kUsd, "shop", {}}, next()), R::exists);
  EXPECT_EQ(machine_.confirm("nope", "acme", next(), &e), R::not_found);
  EXPECT_EQ(machine_.confirm("pay_1", "bad channel", next(), &e), R::channel_invalid);
  EXPECT_EQ(machine_.capture("pay_1", 5, next(), &e), R::invalid_state);
  EXPECT_EQ(machine_.apply_result("nope_a1", {A::approved}, "x", next(), &e), R::attempt_not_found);
  confirm("pay_1");
  EXPECT_EQ(machine_.apply_result("pay_1_a1", {A::pending}, "x", next(), &e), R::result_invalid);
  EXPECT_TRUE(e.postings.empty() && e.calls.empty());
  EXPECT_EQ(pay("pay_1").status, S::processing);
  EXPECT_EQ(pay("pay_1").attempts[0].status, A::pending);
}

// Many payments, answers in random order with duplicates, unknowns and late webhooks: what the
// ledger holds for each payment equals the machine's captured amount, exactly once.
TEST_F(PaymentTest, RandomAnswerOrdersChargeExactlyOnce) {
  std::mt19937_64 rng(7);
  constexpr int kPayments = 300;
  for (int i = 0; i < kPayments; ++i) {
    const std::string id = "p" + std::to_string(i);
    create(id, rng() % 2 ? CaptureMethod::manual : CaptureMethod::automatic, 100 + i);
    confirm(id);
  }
  const A outcomes[] = {A::approved, A::declined_hard, A::declined_soft, A::retryable, A::unknown};
  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i < kPayments; ++i) {
      const std::string id = "p" + std::to_string(i);
      const Payment& p = pay(id);
      const Attempt& last = p.attempts.back();
      Effects e;
      if (p.status == S::processing && !(last.status == A::pending || last.status == A::unknown)) {
        ASSERT_EQ(machine_.retry(id, rng() % 2 ? "acme" : "globex", next(), &e), R::ok);
        post(e);
      } else if (p.status == S::requires_capture && rng() % 2) {
        ASSERT_EQ(machine_.capture(id, 0, next(), &e), R::ok);
        post(e);
      }
      const Attempt& target = pay(id).attempts.back();
      const A o = outcomes[rng() % 5];
      result(target.id, o, true);
      if (o != A::unknown && rng() % 3 == 0) {
        EXPECT_EQ(result(target.id, A::approved, true), R::stale_result);  // duplicate webhook
      }
    }
  }
  int64_t captured = 0;
  for (int i = 0; i < kPayments; ++i) captured += pay("p" + std::to_string(i)).captured_amount;
  EXPECT_GT(captured, 0);
  EXPECT_EQ(merchant().credits_posted, captured);
  int64_t held = 0;
  for (int i = 0; i < kPayments; ++i) {
    const Payment& p = pay("p" + std::to_string(i));
    if (p.status == S::requires_capture || (p.status == S::processing && p.authorized_amount > 0)) {
      held += p.authorized_amount;
    }
  }
  EXPECT_EQ(merchant().credits_pending, held);
}

}  // namespace
}  // namespace keel::payments
