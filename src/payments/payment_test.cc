#include "payments/payment.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>

#include "ledger/ledger.h"

namespace keel::payments {
namespace {

using S = PaymentStatus;
using A = AttemptStatus;
using R = PaymentResult;
using RS = RefundStatus;

constexpr Timestamp kT0 = 1'800'000'000 * kNanosPerSecond;
constexpr Timestamp kMinute = 60 * kNanosPerSecond;
constexpr Timestamp kDay = 24 * 3600 * kNanosPerSecond;
const Currency kUsd = *Currency::from_code("USD");
const std::string kToken = "tok_visa";

std::vector<std::string> ids_of(const std::vector<ledger::TransferEvent>& postings) {
  std::vector<std::string> ids;
  for (const auto& t : postings) ids.push_back(t.id);
  return ids;
}

// Drives a PaymentMachine and posts its effects to a real ledger, as the engine does.
class PaymentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<ledger::AccountEvent> accounts;
    for (const char* ch : {"acme", "globex"}) {
      accounts.push_back({psp_clearing_account(ch, kUsd), kUsd, 0, {}});
      accounts.push_back({psp_fees_account(ch, kUsd), kUsd, 0, {}});
    }
    accounts.push_back({merchant_account("shop", kUsd), kUsd, 0, {}});
    accounts.push_back({fees_account(kUsd), kUsd, 0, {}});
    accounts.push_back({"funding:USD", kUsd, 0, {}});
    accounts.push_back({wallet_account("alice", kUsd),
                        kUsd,
                        ledger::account_flags::kDebitsMustNotExceedCredits,
                        {}});
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
      const Timestamp base = next();
      now_ += static_cast<Timestamp>(e.postings.size());
      for (auto r : ledger_.create_transfers(e.postings, base)) {
        EXPECT_EQ(r, ledger::CreateTransferResult::ok) << ledger::result_name(r);
      }
    }
    last_postings_ = e.postings;
    calls_.insert(calls_.end(), e.calls.begin(), e.calls.end());
    e = {};
  }
  void create(std::string id, CaptureMethod m = CaptureMethod::automatic, int64_t amount = 1250) {
    ASSERT_EQ(machine_.create({id, amount, kUsd, "shop", m, kToken}, next()), R::ok);
  }
  void create_wallet(std::string id, int64_t amount = 1250) {
    CreatePayment c{id, amount, kUsd, "shop", CaptureMethod::automatic, ""};
    c.source = PaymentSource::wallet;
    c.customer_id = "alice";
    ASSERT_EQ(machine_.create(c, next()), R::ok);
  }
  R confirm(const std::string& id, const std::string& ch = "acme") {
    Effects e;
    const R r = machine_.confirm(id, ch, next(), &e);
    post(e);
    return r;
  }
  R confirm_wallet(const std::string& id) {
    Effects e;
    const R r = machine_.confirm_from_wallet(id, available("alice"), next(), &e);
    post(e);
    return r;
  }
  R result(const std::string& attempt, A status, bool captured = false, int64_t fee = 0) {
    Effects e;
    const R r = machine_.apply_result(attempt, {status, captured, "psp_1", "", fee}, "psp_response",
                                      next(), &e);
    post(e);
    return r;
  }
  R capture(const std::string& id, int64_t amount = 0) {
    Effects e;
    const R r = machine_.capture(id, amount, next(), &e);
    post(e);
    return r;
  }
  R refund(const std::string& pay, const std::string& refund_id, int64_t amount = 0) {
    Effects e;
    const R r = machine_.refund(pay, refund_id, amount, next(), &e);
    post(e);
    return r;
  }
  std::vector<std::string> tick(Timestamp at) {
    Effects e;
    now_ = std::max(now_, at);
    auto changed = machine_.tick(at, &e);
    post(e);
    return changed;
  }
  void fund(const std::string& customer, int64_t amount) {
    ledger::TransferEvent t;
    t.id = "fund_" + std::to_string(now_);
    t.debit_account_id = "funding:USD";
    t.credit_account_id = wallet_account(customer, kUsd);
    t.amount = amount;
    t.currency = kUsd;
    ASSERT_EQ(ledger_.create_transfers({&t, 1}, next())[0], ledger::CreateTransferResult::ok);
  }
  int64_t available(const std::string& customer) {
    const auto b = ledger_.find_account(wallet_account(customer, kUsd))->balances;
    return b.credits_posted - b.debits_posted - b.debits_pending;
  }
  const Payment& pay(const std::string& id) { return *machine_.find(id); }
  const Refund& ref(const std::string& id) { return *machine_.find_refund(id); }
  ledger::Balances balances(const std::string& account) {
    return ledger_.find_account(account)->balances;
  }
  ledger::Balances merchant() { return balances(merchant_account("shop", kUsd)); }
  void set_fees(FeeRate acme, FeeRate fallback = {}, FeeRate wallet = {}) {
    FeeSchedule f;
    f.default_rate = fallback;
    f.channels["acme"] = acme;
    f.channels[std::string(kWalletChannel)] = wallet;
    ASSERT_EQ(machine_.set_fees(f), R::ok);
  }
  // A machine holding every state: card payments in each status, refunds in each status (one in
  // review), a payment in review, wallet payments, fees booked, a non-default fee schedule.
  void build_rich_scenario();

  PaymentMachine machine_;
  ledger::Ledger ledger_;
  Timestamp now_ = kT0;
  std::vector<PspCall> calls_;
  std::vector<ledger::TransferEvent> last_postings_;
};

// ---- Card payments: authorize, capture, cancel, unknown outcomes ----------------------------

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
  EXPECT_EQ(capture("pay_1", 1300), R::capture_exceeds_authorized);
  ASSERT_EQ(capture("pay_1", 1000), R::ok);
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
  EXPECT_EQ(calls_.size(), 1u);               // no new attempt while the outcome is unknown
  EXPECT_EQ(merchant(), ledger::Balances{});  // unknown is never success
  // The status query and the webhook both say approved: the first settles, the second is stale.
  ASSERT_EQ(result("pay_1_a1", A::approved, true), R::ok);
  EXPECT_EQ(result("pay_1_a1", A::approved, true), R::stale_result);
  EXPECT_EQ(pay("pay_1").status, S::succeeded);
  EXPECT_EQ(merchant().credits_posted, 1250);
  EXPECT_EQ(calls_.size(), 1u);  // one attempt ever reached the PSP
}

TEST_F(PaymentTest, RetryableTriesAgainAtOnceAndDeclinesFail) {
  create("pay_1");
  confirm("pay_1");
  // Nothing happened at the PSP: a new attempt (new reference) goes out on the same channel,
  // up to kAuthorizationTriesMax tries; then the payment fails rather than wait without owner.
  for (size_t n = 1; n < kAuthorizationTriesMax; ++n) {
    ASSERT_EQ(result("pay_1_a" + std::to_string(n), A::retryable), R::ok);
    ASSERT_EQ(calls_.size(), n + 1);
    EXPECT_EQ(calls_.back().attempt_id, "pay_1_a" + std::to_string(n + 1));
    EXPECT_EQ(calls_.back().channel, "acme");
    EXPECT_EQ(pay("pay_1").status, S::processing);
  }
  ASSERT_EQ(result("pay_1_a" + std::to_string(kAuthorizationTriesMax), A::retryable), R::ok);
  EXPECT_EQ(calls_.size(), kAuthorizationTriesMax);
  EXPECT_EQ(pay("pay_1").status, S::failed);
  EXPECT_EQ(pay("pay_1").error_code, "retryable");

  create("pay_2");
  confirm("pay_2");
  ASSERT_EQ(result("pay_2_a1", A::declined_soft), R::ok);  // no other channel here: it fails
  EXPECT_EQ(pay("pay_2").status, S::failed);

  create("pay_3");
  confirm("pay_3");
  Effects decline;
  ASSERT_EQ(machine_.apply_result("pay_3_a1", {A::declined_hard, false, "", "card_stolen"},
                                  "psp_response", next(), &decline),
            R::ok);
  EXPECT_EQ(pay("pay_3").status, S::failed);
  EXPECT_EQ(pay("pay_3").error_code, "card_stolen");
  EXPECT_EQ(merchant(), ledger::Balances{});
}

TEST_F(PaymentTest, AttemptsPerPaymentAreBounded) {
  create("pay_1", CaptureMethod::manual);
  confirm("pay_1");
  ASSERT_EQ(result("pay_1_a1", A::approved), R::ok);
  // Each capture the PSP did not take leaves the authorization standing; the merchant may try
  // again, but not for ever.
  for (size_t n = 2; n <= kAttemptsPerPaymentMax; ++n) {
    ASSERT_EQ(capture("pay_1"), R::ok) << n;
    ASSERT_EQ(result("pay_1_a" + std::to_string(n), A::retryable), R::ok);
    ASSERT_EQ(pay("pay_1").status, S::requires_capture);
  }
  EXPECT_EQ(capture("pay_1"), R::too_many_attempts);
  EXPECT_EQ(pay("pay_1").attempts.size(), kAttemptsPerPaymentMax);
}

TEST_F(PaymentTest, ProcessingPastItsDeadlineGoesToReviewNeverSilently) {
  create("pay_1");
  confirm("pay_1");
  result("pay_1_a1", A::unknown);
  Effects e;
  EXPECT_TRUE(machine_.tick(now_ + 29 * kMinute, &e).empty());
  EXPECT_EQ(machine_.tick(now_ + 31 * kMinute, &e), std::vector<std::string>{"pay_1"});
  EXPECT_EQ(pay("pay_1").review, ReviewReason::deadline_unknown);
  EXPECT_EQ(machine_.in_review_count(), 1u);
  EXPECT_EQ(pay("pay_1").status, S::processing);
  now_ += 31 * kMinute;
  ASSERT_EQ(result("pay_1_a1", A::approved, true), R::ok);  // a late webhook still settles it
  EXPECT_EQ(pay("pay_1").review, ReviewReason::none);
  EXPECT_EQ(machine_.in_review_count(), 0u);
  EXPECT_EQ(merchant().credits_posted, 1250);
}

// Before the fix, a late retryable answer left the payment processing with no deadline and no
// outstanding attempt: nobody owned it any more.
TEST_F(PaymentTest, ALateRetryableAnswerAfterReviewFailsThePaymentInsteadOfOrphaningIt) {
  create("pay_1");
  confirm("pay_1");
  result("pay_1_a1", A::unknown);
  tick(now_ + 31 * kMinute);
  ASSERT_EQ(pay("pay_1").review, ReviewReason::deadline_unknown);
  ASSERT_EQ(result("pay_1_a1", A::retryable), R::ok);  // the status query says: never received
  EXPECT_EQ(pay("pay_1").status, S::failed);
  EXPECT_EQ(pay("pay_1").review, ReviewReason::none);
  EXPECT_EQ(machine_.next_deadline(), std::nullopt);
  EXPECT_EQ(machine_.in_review_count(), 0u);
}

TEST_F(PaymentTest, DeadlinesWithoutAnOutstandingAttemptEndThePayment) {
  create("unconfirmed");
  create("authorized", CaptureMethod::manual);
  confirm("authorized");
  result("authorized_a1", A::approved);
  EXPECT_EQ(machine_.next_deadline(), pay("unconfirmed").deadline);
  Effects e;
  machine_.tick(now_ + 31 * kMinute, &e);
  EXPECT_EQ(pay("unconfirmed").status, S::requires_confirmation);
  machine_.tick(now_ + 25 * 3600 * kNanosPerSecond, &e);
  EXPECT_EQ(pay("unconfirmed").status, S::canceled);
  EXPECT_EQ(pay("authorized").status, S::requires_capture);
  EXPECT_EQ(machine_.next_deadline(), pay("authorized").authorization_expires_at);
  now_ += 8 * kDay;
  machine_.tick(now_, &e);
  post(e);
  EXPECT_EQ(pay("authorized").status, S::canceled);  // the authorization expired
  EXPECT_EQ(merchant(), ledger::Balances{});         // and its hold was released
  EXPECT_EQ(machine_.next_deadline(), std::nullopt);
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
  EXPECT_EQ(pay("pay_1").timeline.back().cause, "restart");
  EXPECT_EQ(capture("pay_1"), R::invalid_state);  // nothing new while the outcome is unknown
}

TEST_F(PaymentTest, BadInputIsRefusedAndChangesNothing) {
  Effects e;
  EXPECT_EQ(machine_.create({"bad id", 5, kUsd, "shop", {}, kToken}, next()), R::id_invalid);
  EXPECT_EQ(machine_.create({std::string(49, 'p'), 5, kUsd, "shop", {}, kToken}, next()),
            R::id_invalid);
  EXPECT_EQ(machine_.create({"p", 0, kUsd, "shop", {}, kToken}, next()), R::amount_invalid);
  EXPECT_EQ(machine_.create({"p", -5, kUsd, "shop", {}, kToken}, next()), R::amount_invalid);
  EXPECT_EQ(machine_.create({"p", 5, Currency(), "shop", {}, kToken}, next()), R::currency_invalid);
  EXPECT_EQ(machine_.create({"p", 5, kUsd, "", {}, kToken}, next()), R::merchant_id_invalid);
  CreatePayment bad_source{"p", 5, kUsd, "shop", {}, kToken};
  bad_source.source = static_cast<PaymentSource>(7);
  EXPECT_EQ(machine_.create(bad_source, next()), R::source_invalid);
  EXPECT_EQ(machine_.size(), 0u);
  create("pay_1");
  EXPECT_EQ(machine_.create({"pay_1", 5, kUsd, "shop", {}, kToken}, next()), R::exists);
  EXPECT_EQ(machine_.confirm("nope", "acme", next(), &e), R::not_found);
  EXPECT_EQ(machine_.confirm("pay_1", "bad channel", next(), &e), R::channel_invalid);
  EXPECT_EQ(machine_.confirm("pay_1", kWalletChannel, next(), &e), R::channel_invalid);
  EXPECT_EQ(machine_.capture("pay_1", 5, next(), &e), R::invalid_state);
  EXPECT_EQ(machine_.apply_result("nope_a1", {A::approved}, "x", next(), &e), R::attempt_not_found);
  confirm("pay_1");
  EXPECT_EQ(machine_.apply_result("pay_1_a1", {A::pending}, "x", next(), &e), R::result_invalid);
  EXPECT_EQ(machine_.apply_result("pay_1_a1", {A::approved, true, "", "", -1}, "x", next(), &e),
            R::result_invalid);
  EXPECT_EQ(machine_.apply_result("pay_1_a1",
                                  {A::approved, true, "", "", 1250 + kPspFeeAboveAmountMax + 1},
                                  "x", next(), &e),
            R::result_invalid);
  EXPECT_EQ(machine_.apply_result("pay_1_a1", {A::approved, true, std::string(256, 'r'), ""}, "x",
                                  next(), &e),
            R::result_invalid);
  EXPECT_EQ(machine_.apply_result("pay_1_a1", {A::approved, true, "", std::string(65, 'c')}, "x",
                                  next(), &e),
            R::result_invalid);
  EXPECT_EQ(machine_.apply_result("pay_1_a1", {A::approved, true},
                                  std::string(kCauseLengthMax + 1, 'c'), next(), &e),
            R::result_invalid);
  EXPECT_TRUE(e.postings.empty() && e.calls.empty());
  EXPECT_EQ(pay("pay_1").status, S::processing);
  EXPECT_EQ(pay("pay_1").attempts[0].status, A::pending);
}

// ---- Task 1: ids in the PSP reference alphabet, card tokens ---------------------------------

TEST_F(PaymentTest, PaymentIdsAndCardTokensUseThePspReferenceAlphabet) {
  for (const char* id : {"pay.1", "pay:1", "pay/1", "pay 1", ""}) {
    EXPECT_EQ(machine_.create({id, 5, kUsd, "shop", {}, kToken}, next()), R::id_invalid) << id;
  }
  EXPECT_EQ(machine_.create({std::string(48, 'P'), 5, kUsd, "shop", {}, kToken}, next()), R::ok);
  EXPECT_EQ(machine_.create({"Pay-9_z", 5, kUsd, "shop", {}, kToken}, next()), R::ok);
  for (const std::string& token : {std::string(), std::string("tok.1"), std::string(65, 't')}) {
    EXPECT_EQ(machine_.create({"pay_t", 5, kUsd, "shop", {}, token}, next()),
              R::payment_method_invalid);
  }
  EXPECT_EQ(machine_.create({"pay_t", 5, kUsd, "shop", {}, std::string(64, 't')}, next()), R::ok);
  EXPECT_EQ(pay("pay_t").payment_method, std::string(64, 't'));
  EXPECT_FALSE(is_valid_reference("a", 0));
  EXPECT_TRUE(is_valid_reference("a-Z_0", 5));
}

TEST_F(PaymentTest, AuthorizationCallsCarryTheCardToken) {
  create("pay_1");
  confirm("pay_1");
  result("pay_1_a1", A::retryable);  // tries again at once
  ASSERT_EQ(calls_.size(), 2u);
  for (const PspCall& c : calls_) {
    EXPECT_EQ(c.instrument_kind, InstrumentKind::card_token);
    EXPECT_EQ(c.instrument, kToken);
  }
}

// ---- Task 2: fees ---------------------------------------------------------------------------

TEST_F(PaymentTest, CaptureBooksTheMerchantAndPspFeesInTheSameChain) {
  set_fees({290, 30});
  create("pay_1");
  confirm("pay_1");
  ASSERT_EQ(result("pay_1_a1", A::approved, true, 40), R::ok);
  EXPECT_EQ(ids_of(last_postings_), (std::vector<std::string>{"pay_1.hold", "pay_1.capture",
                                                              "pay_1.fee", "pay_1.psp_fee"}));
  for (size_t i = 0; i + 1 < last_postings_.size(); ++i) {
    EXPECT_TRUE(last_postings_[i].flags & ledger::transfer_flags::kLinked);
  }
  EXPECT_FALSE(last_postings_.back().flags & ledger::transfer_flags::kLinked);
  // 1250 * 2.90 % = 36.25, rounded down, plus 30.
  EXPECT_EQ(pay("pay_1").merchant_fee, 66);
  EXPECT_EQ(pay("pay_1").psp_fee, 40);
  EXPECT_EQ(merchant(), (ledger::Balances{0, 66, 0, 1250}));
  EXPECT_EQ(balances(fees_account(kUsd)), (ledger::Balances{0, 0, 0, 66}));
  EXPECT_EQ(balances(psp_fees_account("acme", kUsd)), (ledger::Balances{0, 40, 0, 0}));
  EXPECT_EQ(balances(psp_clearing_account("acme", kUsd)), (ledger::Balances{0, 1250, 0, 40}));
}

TEST_F(PaymentTest, ManualCaptureChargesFeesOnTheCapturedAmountOnly) {
  set_fees({290, 30});
  create("pay_1", CaptureMethod::manual);
  confirm("pay_1");
  ASSERT_EQ(result("pay_1_a1", A::approved, false, 10), R::ok);  // not a capture: not booked
  EXPECT_EQ(ids_of(last_postings_), std::vector<std::string>{"pay_1.hold"});
  EXPECT_EQ(pay("pay_1").psp_fee, 0);
  ASSERT_EQ(capture("pay_1", 1000), R::ok);
  ASSERT_EQ(result("pay_1_a2", A::approved, false, 25), R::ok);
  EXPECT_EQ(ids_of(last_postings_),
            (std::vector<std::string>{"pay_1.capture", "pay_1.fee", "pay_1.psp_fee"}));
  EXPECT_EQ(pay("pay_1").merchant_fee, 29 + 30);
  EXPECT_EQ(pay("pay_1").psp_fee, 25);
  EXPECT_EQ(merchant(), (ledger::Balances{0, 59, 0, 1000}));
  EXPECT_EQ(balances(psp_fees_account("acme", kUsd)).debits_posted, 25);
}

TEST_F(PaymentTest, APspThatCapturesAtOnceGetsTheFeesBookedToo) {
  set_fees({100, 0});
  create("pay_1", CaptureMethod::manual);
  confirm("pay_1");
  ASSERT_EQ(result("pay_1_a1", A::approved, true, 7), R::ok);
  EXPECT_EQ(pay("pay_1").status, S::succeeded);
  EXPECT_EQ(ids_of(last_postings_), (std::vector<std::string>{"pay_1.hold", "pay_1.capture",
                                                              "pay_1.fee", "pay_1.psp_fee"}));
  EXPECT_EQ(merchant(), (ledger::Balances{0, 12, 0, 1250}));
}

TEST_F(PaymentTest, NoFeePostingWhenAFeeIsZero) {
  create("pay_1");  // default schedule: no merchant fee
  confirm("pay_1");
  ASSERT_EQ(result("pay_1_a1", A::approved, true, 0), R::ok);
  EXPECT_EQ(ids_of(last_postings_), (std::vector<std::string>{"pay_1.hold", "pay_1.capture"}));
  EXPECT_EQ(pay("pay_1").merchant_fee, 0);
}

TEST_F(PaymentTest, MerchantFeeRoundsDownAndNeverPassesTheCapturedAmount) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(merchant_fee({290, 30}, 1250), 66);
  EXPECT_EQ(merchant_fee({1, 0}, 9999), 0);
  EXPECT_EQ(merchant_fee({1, 0}, 10000), 1);
  EXPECT_EQ(merchant_fee({0, 30}, 10), 10);
  EXPECT_EQ(merchant_fee({10'000, 1}, 5), 5);
  EXPECT_EQ(merchant_fee({5'000, 0}, kMax), kMax / 2);
  EXPECT_EQ(merchant_fee({10'000, 0}, kMax), kMax);
  EXPECT_EQ(merchant_fee({1, kMax}, kMax), kMax);  // the sum would overflow
  EXPECT_EQ(merchant_fee({0, 0}, 0), 0);
  // A fixed fee above a small payment takes all of it, and no more.
  set_fees({0, 500});
  create("pay_1", CaptureMethod::automatic, 300);
  confirm("pay_1");
  result("pay_1_a1", A::approved, true);
  EXPECT_EQ(pay("pay_1").merchant_fee, 300);
  EXPECT_EQ(merchant(), (ledger::Balances{0, 300, 0, 300}));
}

TEST_F(PaymentTest, TheFeeScheduleIsPerChannelWithADefaultAndReplaceable) {
  set_fees({100, 0}, {200, 0});
  create("on_acme");
  confirm("on_acme", "acme");
  result("on_acme_a1", A::approved, true);
  create("on_globex");
  confirm("on_globex", "globex");
  result("on_globex_a1", A::approved, true);
  EXPECT_EQ(pay("on_acme").merchant_fee, 12);
  EXPECT_EQ(pay("on_globex").merchant_fee, 25);  // the default rate
  FeeSchedule bad;
  bad.default_rate = {10'001, 0};
  EXPECT_EQ(machine_.set_fees(bad), R::fees_invalid);
  bad.default_rate = {0, -1};
  EXPECT_EQ(machine_.set_fees(bad), R::fees_invalid);
  bad.default_rate = {};
  bad.channels["bad channel"] = {};
  EXPECT_EQ(machine_.set_fees(bad), R::fees_invalid);
  EXPECT_EQ(machine_.fees().rate_for("globex"), (FeeRate{200, 0}));  // unchanged
  set_fees({0, 0}, {0, 1});
  create("later");
  confirm("later", "globex");
  result("later_a1", A::approved, true);
  EXPECT_EQ(pay("later").merchant_fee, 1);
  EXPECT_EQ(pay("on_globex").merchant_fee, 25);  // booked fees stay
}

TEST_F(PaymentTest, TheCaptureChainIsAllOrNothing) {
  // No fees account in EUR: the ledger refuses the fee line, so the hold's post must not land.
  const Currency eur = *Currency::from_code("EUR");
  std::vector<ledger::AccountEvent> accounts = {{psp_clearing_account("acme", eur), eur, 0, {}},
                                                {merchant_account("shop", eur), eur, 0, {}}};
  for (auto r : ledger_.create_accounts(accounts, next()))
    ASSERT_EQ(r, ledger::CreateAccountResult::ok);
  set_fees({100, 0});
  ASSERT_EQ(machine_.create({"pay_eur", 1000, eur, "shop", CaptureMethod::manual, kToken}, next()),
            R::ok);
  confirm("pay_eur");
  result("pay_eur_a1", A::approved);
  Effects e;
  ASSERT_EQ(machine_.capture("pay_eur", 0, next(), &e), R::ok);
  post(e);
  ASSERT_EQ(machine_.apply_result("pay_eur_a2", {A::approved}, "psp_response", next(), &e), R::ok);
  const auto results = ledger_.create_transfers(e.postings, next());
  now_ += 4;
  EXPECT_EQ(results[0], ledger::CreateTransferResult::linked_event_failed);
  EXPECT_EQ(results[1], ledger::CreateTransferResult::account_not_found);
  EXPECT_EQ(ledger_.find_transfer("pay_eur.hold")->pending_state, ledger::PendingState::pending);
}

// ---- Task 3: refunds ------------------------------------------------------------------------

TEST_F(PaymentTest, PartialRefundsNeverExceedTheCapturedAmount) {
  set_fees({100, 0});
  create("pay_1");
  confirm("pay_1");
  result("pay_1_a1", A::approved, true);
  ASSERT_EQ(refund("pay_1", "re_1", 500), R::ok);
  const PspCall& call = calls_.back();
  EXPECT_EQ(call.kind, AttemptKind::refund);
  EXPECT_EQ(call.attempt_id, "re_1_a1");
  EXPECT_EQ(call.refund_id, "re_1");
  EXPECT_EQ(call.payment_id, "pay_1");
  EXPECT_EQ(call.authorization_reference, "pay_1_a1");
  EXPECT_EQ(call.channel, "acme");
  EXPECT_EQ(call.amount, 500);
  EXPECT_EQ(ref("re_1").status, RS::pending);
  EXPECT_EQ(refund("pay_1", "re_2", 751), R::refund_exceeds_captured);  // 500 is pending
  ASSERT_EQ(refund("pay_1", "re_2", 0), R::ok);                         // all that remains
  EXPECT_EQ(ref("re_2").amount, 750);
  EXPECT_EQ(refund("pay_1", "re_3", 0), R::refund_exceeds_captured);  // nothing remains
  EXPECT_EQ(refund("pay_1", "re_3", 1), R::refund_exceeds_captured);
  EXPECT_EQ(merchant().debits_posted, 12);  // nothing refunded before the PSP confirms
  ASSERT_EQ(result("re_1_a1", A::approved), R::ok);
  EXPECT_EQ(ids_of(last_postings_), std::vector<std::string>{"re_1.refund"});
  EXPECT_EQ(ref("re_1").status, RS::succeeded);
  EXPECT_EQ(pay("pay_1").refunded_amount, 500);
  ASSERT_EQ(result("re_2_a1", A::approved), R::ok);
  EXPECT_EQ(pay("pay_1").refunded_amount, 1250);
  EXPECT_EQ(merchant(), (ledger::Balances{0, 12 + 1250, 0, 1250}));  // fees are not returned
  EXPECT_EQ(balances(psp_clearing_account("acme", kUsd)), (ledger::Balances{0, 1250, 0, 1250}));
  ASSERT_EQ(pay("pay_1").refunds.size(), 2u);
  EXPECT_EQ(pay("pay_1").refunds[0].id, "re_1");
  EXPECT_EQ(pay("pay_1").refunds[1].id, "re_2");
  EXPECT_EQ(pay("pay_1").status, S::succeeded);
}

TEST_F(PaymentTest, ADeclinedOrRetryableRefundFailsAndFreesItsAmount) {
  create("pay_1");
  confirm("pay_1");
  result("pay_1_a1", A::approved, true);
  ASSERT_EQ(refund("pay_1", "re_1"), R::ok);
  ASSERT_EQ(result("re_1_a1", A::declined_soft), R::ok);
  EXPECT_EQ(ref("re_1").status, RS::failed);
  ASSERT_EQ(refund("pay_1", "re_2"), R::ok);
  EXPECT_EQ(ref("re_2").amount, 1250);
  ASSERT_EQ(result("re_2_a1", A::retryable), R::ok);
  ASSERT_EQ(refund("pay_1", "re_3"), R::ok);
  ASSERT_EQ(result("re_3_a1", A::declined_hard), R::ok);
  EXPECT_EQ(ref("re_3").status, RS::failed);
  EXPECT_EQ(result("re_3_a1", A::approved), R::stale_result);  // a late duplicate changes nothing
  EXPECT_EQ(ref("re_3").status, RS::failed);
  EXPECT_EQ(pay("pay_1").refunded_amount, 0);
  EXPECT_EQ(merchant(), (ledger::Balances{0, 0, 0, 1250}));
}

TEST_F(PaymentTest, AnUnknownRefundGoesToReviewAtItsDeadlineAndALateAnswerSettlesIt) {
  create("pay_1");
  confirm("pay_1");
  result("pay_1_a1", A::approved, true);
  ASSERT_EQ(refund("pay_1", "re_1", 300), R::ok);
  ASSERT_EQ(result("re_1_a1", A::unknown), R::ok);
  EXPECT_EQ(ref("re_1").status, RS::pending);
  EXPECT_EQ(refund("pay_1", "re_2", 951), R::refund_exceeds_captured);  // unknown still counts
  EXPECT_TRUE(tick(now_ + 29 * kMinute).empty());
  EXPECT_EQ(tick(now_ + 2 * kMinute), std::vector<std::string>{"re_1"});
  EXPECT_EQ(ref("re_1").review, ReviewReason::deadline_unknown);
  EXPECT_EQ(ref("re_1").timeline.back().cause, "deadline: review");
  EXPECT_EQ(machine_.in_review_count(), 1u);
  EXPECT_EQ(ref("re_1").status, RS::pending);  // review never moves money by itself
  EXPECT_EQ(merchant().debits_posted, 0);
  ASSERT_EQ(result("re_1_a1", A::approved), R::ok);
  EXPECT_EQ(ref("re_1").status, RS::succeeded);
  EXPECT_EQ(ref("re_1").review, ReviewReason::none);
  EXPECT_EQ(machine_.in_review_count(), 0u);
  EXPECT_EQ(result("re_1_a1", A::approved), R::stale_result);
  EXPECT_EQ(merchant().debits_posted, 300);
  EXPECT_EQ(ref("re_1").timeline.back().to, RS::succeeded);
}

TEST_F(PaymentTest, RefundBadInputIsRefusedAndChangesNothing) {
  create("pay_1", CaptureMethod::manual, 200);
  EXPECT_EQ(refund("nope", "re_1"), R::not_found);
  EXPECT_EQ(refund("pay_1", "re_1"), R::invalid_state);  // not confirmed
  confirm("pay_1");
  EXPECT_EQ(refund("pay_1", "re_1"), R::invalid_state);  // processing
  result("pay_1_a1", A::approved);
  EXPECT_EQ(refund("pay_1", "re_1"), R::invalid_state);  // authorized, not captured
  capture("pay_1");
  result("pay_1_a2", A::approved);
  EXPECT_EQ(refund("pay_1", "re.1"), R::refund_id_invalid);
  EXPECT_EQ(refund("pay_1", std::string(49, 'r')), R::refund_id_invalid);
  EXPECT_EQ(refund("pay_1", "re_1", -1), R::amount_invalid);
  EXPECT_EQ(refund("pay_1", "re_1", 201), R::refund_exceeds_captured);
  EXPECT_EQ(refund("pay_1", "pay_1", 1), R::exists);  // a refund may not take a payment's id
  ASSERT_EQ(refund("pay_1", "re_1", 1), R::ok);
  EXPECT_EQ(refund("pay_1", "re_1", 1), R::exists);
  // ... nor a payment a refund's: their attempt ids would collide.
  EXPECT_EQ(machine_.create({"re_1", 5, kUsd, "shop", {}, kToken}, next()), R::exists);
  EXPECT_EQ(machine_.find_refund("nope"), nullptr);
  EXPECT_EQ(pay("pay_1").refunds.size(), 1u);
  EXPECT_EQ(calls_.size(), 3u);  // authorization, capture, re_1
}

TEST_F(PaymentTest, RefundsPerPaymentAreBounded) {
  create("pay_1", CaptureMethod::automatic, 1000);
  confirm("pay_1");
  result("pay_1_a1", A::approved, true);
  for (size_t i = 0; i < kRefundsPerPaymentMax; ++i) {
    ASSERT_EQ(refund("pay_1", "re_" + std::to_string(i), 1), R::ok);
  }
  EXPECT_EQ(refund("pay_1", "re_last", 1), R::too_many_refunds);
}

// ---- Task 4: wallet-funded payments ---------------------------------------------------------

TEST_F(PaymentTest, AWalletPaymentPostsAtOnceWithItsFeeAndNoPspCall) {
  set_fees({0, 0}, {0, 0}, {100, 5});
  fund("alice", 5000);
  create_wallet("pay_w");
  Effects e;
  EXPECT_EQ(machine_.confirm("pay_w", "acme", next(), &e), R::wrong_source);
  ASSERT_EQ(confirm_wallet("pay_w"), R::ok);
  EXPECT_TRUE(calls_.empty());
  EXPECT_EQ(pay("pay_w").status, S::succeeded);
  EXPECT_EQ(pay("pay_w").channel, kWalletChannel);
  EXPECT_EQ(pay("pay_w").captured_amount, 1250);
  EXPECT_EQ(pay("pay_w").merchant_fee, 12 + 5);
  EXPECT_EQ(ids_of(last_postings_), (std::vector<std::string>{"pay_w.charge", "pay_w.fee"}));
  EXPECT_TRUE(last_postings_[0].flags & ledger::transfer_flags::kLinked);
  EXPECT_EQ(available("alice"), 5000 - 1250);
  EXPECT_EQ(merchant(), (ledger::Balances{0, 17, 0, 1250}));
  EXPECT_EQ(balances(fees_account(kUsd)).credits_posted, 17);
  EXPECT_EQ(confirm_wallet("pay_w"), R::invalid_state);
}

TEST_F(PaymentTest, AWalletPaymentWithoutEnoughFundsFailsAndMovesNothing) {
  fund("alice", 1000);
  create_wallet("pay_w");
  ASSERT_EQ(confirm_wallet("pay_w"), R::ok);
  EXPECT_EQ(pay("pay_w").status, S::failed);
  EXPECT_EQ(pay("pay_w").error_code, "insufficient_funds");
  EXPECT_TRUE(last_postings_.empty());
  EXPECT_EQ(available("alice"), 1000);
  EXPECT_EQ(merchant(), ledger::Balances{});
  EXPECT_EQ(refund("pay_w", "re_w"), R::invalid_state);
}

TEST_F(PaymentTest, AWalletRefundIsImmediate) {
  fund("alice", 5000);
  create_wallet("pay_w");
  confirm_wallet("pay_w");
  ASSERT_EQ(refund("pay_w", "re_w", 500), R::ok);
  EXPECT_TRUE(calls_.empty());
  EXPECT_EQ(ref("re_w").status, RS::succeeded);
  EXPECT_TRUE(ref("re_w").attempts.empty());
  EXPECT_EQ(ref("re_w").deadline, 0);
  EXPECT_EQ(ids_of(last_postings_), std::vector<std::string>{"re_w.refund"});
  EXPECT_EQ(available("alice"), 5000 - 1250 + 500);
  EXPECT_EQ(pay("pay_w").refunded_amount, 500);
  ASSERT_EQ(refund("pay_w", "re_w2"), R::ok);
  EXPECT_EQ(available("alice"), 5000);
  EXPECT_EQ(merchant(), (ledger::Balances{0, 1250, 0, 1250}));
  EXPECT_EQ(machine_.next_deadline(), std::nullopt);
}

TEST_F(PaymentTest, WalletPaymentRequestsAreChecked) {
  CreatePayment c{"pay_w", 100, kUsd, "shop", CaptureMethod::automatic, ""};
  c.source = PaymentSource::wallet;
  EXPECT_EQ(machine_.create(c, next()), R::customer_id_invalid);  // whose wallet?
  c.customer_id = "bad customer";
  EXPECT_EQ(machine_.create(c, next()), R::customer_id_invalid);
  c.customer_id = "alice";
  c.payment_method = kToken;
  EXPECT_EQ(machine_.create(c, next()), R::payment_method_invalid);
  c.payment_method = "";
  c.capture_method = CaptureMethod::manual;
  EXPECT_EQ(machine_.create(c, next()), R::capture_method_invalid);
  EXPECT_EQ(machine_.size(), 0u);
  create("pay_c");
  Effects e;
  EXPECT_EQ(machine_.confirm_from_wallet("pay_c", 1'000'000, next(), &e), R::wrong_source);
  EXPECT_EQ(machine_.confirm_from_wallet("nope", 1'000'000, next(), &e), R::not_found);
  EXPECT_TRUE(e.postings.empty());
}

// ---- Task 6: the resolver's work list, restarts, listing ------------------------------------

TEST_F(PaymentTest, OutstandingAttemptsAndRestartsCoverRefundAttempts) {
  create("pay_a");
  confirm("pay_a");
  result("pay_a_a1", A::approved, true);
  ASSERT_EQ(refund("pay_a", "re_1", 100), R::ok);
  ASSERT_EQ(refund("pay_a", "re_2", 100), R::ok);
  result("re_2_a1", A::unknown);
  create("pay_b");
  confirm("pay_b");
  create("pay_c");
  EXPECT_EQ(machine_.outstanding_attempts(),
            (std::vector<std::string>{"re_1_a1", "re_2_a1", "pay_b_a1"}));
  EXPECT_EQ(machine_.mark_pending_unknown(next()),
            (std::vector<std::string>{"re_1_a1", "pay_b_a1"}));
  EXPECT_EQ(ref("re_1").attempts[0].status, A::unknown);
  EXPECT_EQ(ref("re_1").timeline.back().cause, "restart");
  EXPECT_EQ(machine_.outstanding_attempts(),
            (std::vector<std::string>{"re_1_a1", "re_2_a1", "pay_b_a1"}));
  ASSERT_EQ(result("re_1_a1", A::approved), R::ok);
  EXPECT_EQ(machine_.outstanding_attempts(), (std::vector<std::string>{"re_2_a1", "pay_b_a1"}));
}

TEST_F(PaymentTest, ListPagesByIdWithFilters) {
  fund("alice", 100'000);
  for (int i = 0; i < 7; ++i) create("card_" + std::to_string(i));
  const Timestamp middle = next();
  for (int i = 0; i < 5; ++i) create_wallet("wal_" + std::to_string(i));
  confirm_wallet("wal_1");
  confirm_wallet("wal_3");
  bool more = false;
  std::vector<std::string> seen;
  std::string after;
  do {
    for (const Payment* p : machine_.list({}, 5, after, &more)) seen.push_back(p->id);
    after = seen.back();
  } while (more);
  ASSERT_EQ(seen.size(), 12u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  PaymentFilter by_customer;
  by_customer.customer_id = "alice";
  EXPECT_EQ(machine_.list(by_customer, 100, "", &more).size(), 5u);
  EXPECT_FALSE(more);
  PaymentFilter succeeded_wallets = by_customer;
  succeeded_wallets.status = S::succeeded;
  const auto page = machine_.list(succeeded_wallets, 1, "", &more);
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0]->id, "wal_1");
  EXPECT_TRUE(more);
  EXPECT_EQ(machine_.list(succeeded_wallets, 1, "wal_1", &more)[0]->id, "wal_3");
  EXPECT_FALSE(more);
  PaymentFilter before;
  before.created_lt = middle;
  EXPECT_EQ(machine_.list(before, 0, "", &more).size(), 1u);  // limit clamped to at least 1
  EXPECT_TRUE(more);
  EXPECT_EQ(machine_.list(before, 1000, "", nullptr).size(), 7u);
  PaymentFilter after_middle;
  after_middle.created_gte = middle;
  after_middle.merchant_id = "shop";
  EXPECT_EQ(machine_.list(after_middle, 100, "card_zzz", &more).size(), 5u);  // need not exist
  after_middle.merchant_id = "other";
  EXPECT_TRUE(machine_.list(after_middle, 100, "", &more).empty());
  EXPECT_FALSE(more);
}

// ---- Money invariants under random answer orders --------------------------------------------

// Many payments, answers in random order with duplicates, unknowns and late webhooks, then
// refunds the same way: what the ledger holds for each payment equals the machine's captured,
// fee and refunded amounts, exactly once.
TEST_F(PaymentTest, RandomAnswerOrdersChargeAndRefundExactlyOnce) {
  set_fees({175, 10}, {250, 0});
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
      // A processing payment always has an open attempt: retries go out by themselves.
      ASSERT_TRUE(p.status != S::processing || last.status == A::pending ||
                  last.status == A::unknown);
      if (p.status == S::requires_capture && rng() % 2) {
        ASSERT_EQ(capture(id, 0), R::ok);
      } else if (p.status == S::succeeded && rng() % 2) {
        const R r = refund(id, id + "_r" + std::to_string(round), 1 + rng() % 80);
        ASSERT_TRUE(r == R::ok || r == R::refund_exceeds_captured) << result_name(r);
      }
      for (const std::string& attempt : machine_.outstanding_attempts()) {
        if (rng() % 4 != 0) continue;
        const A o = outcomes[rng() % 5];
        ASSERT_EQ(result(attempt, o, true, static_cast<int64_t>(rng() % 2)), R::ok);
        if (o != A::unknown && rng() % 3 == 0) {
          EXPECT_EQ(result(attempt, A::approved, true), R::stale_result);  // duplicate webhook
        }
      }
    }
  }
  int64_t captured = 0, fees = 0, refunded = 0, held = 0;
  for (int i = 0; i < kPayments; ++i) {
    const Payment& p = pay("p" + std::to_string(i));
    captured += p.captured_amount;
    fees += p.merchant_fee;
    refunded += p.refunded_amount;
    int64_t refunds_succeeded = 0;
    for (const Refund& r : p.refunds) refunds_succeeded += r.status == RS::succeeded ? r.amount : 0;
    EXPECT_EQ(p.refunded_amount, refunds_succeeded);
    EXPECT_LE(p.refunded_amount, p.captured_amount);
    if (p.status == S::requires_capture || (p.status == S::processing && p.authorized_amount > 0)) {
      held += p.authorized_amount;
    }
  }
  EXPECT_GT(captured, 0);
  EXPECT_GT(refunded, 0);
  EXPECT_EQ(merchant().credits_posted, captured);
  EXPECT_EQ(merchant().debits_posted, fees + refunded);
  EXPECT_EQ(balances(fees_account(kUsd)).credits_posted, fees);
  EXPECT_EQ(merchant().credits_pending, held);
}

// ---- Task 5: snapshots ----------------------------------------------------------------------

void PaymentTest::build_rich_scenario() {
  set_fees({290, 30}, {150, 0}, {100, 5});
  fund("alice", 10'000);
  create("c_unconfirmed");
  create("c_processing");
  confirm("c_processing");
  create("c_review");
  confirm("c_review", "globex");
  result("c_review_a1", A::unknown);
  create("c_soft");
  confirm("c_soft");
  result("c_soft_a1", A::declined_soft);
  create("c_authorized", CaptureMethod::manual);
  confirm("c_authorized");
  result("c_authorized_a1", A::approved, false, 3);
  create("c_capturing", CaptureMethod::manual);
  confirm("c_capturing");
  result("c_capturing_a1", A::approved);
  capture("c_capturing", 700);
  create("c_failed");
  confirm("c_failed");
  result("c_failed_a1", A::declined_hard);
  create("c_canceled");
  Effects e;
  machine_.cancel("c_canceled", next(), &e);
  create("c_paid", CaptureMethod::automatic, 5000);
  confirm("c_paid");
  result("c_paid_a1", A::approved, true, 45);
  refund("c_paid", "r_ok", 1000);
  result("r_ok_a1", A::approved);
  refund("c_paid", "r_failed", 500);
  result("r_failed_a1", A::declined_hard);
  refund("c_paid", "r_review", 400);
  result("r_review_a1", A::unknown);
  tick(now_ + 31 * kMinute);  // c_processing, c_review, c_soft and r_review reach their deadline
  refund("c_paid", "r_pending", 100);
  create_wallet("w_paid");
  confirm_wallet("w_paid");
  refund("w_paid", "r_wallet", 250);
  create_wallet("w_poor", 1'000'000);
  confirm_wallet("w_poor");
  create_wallet("w_waiting");
}

TEST_F(PaymentTest, ASnapshotRoundTripIsCanonical) {
  build_rich_scenario();
  ASSERT_EQ(pay("c_review").review, ReviewReason::deadline_unknown);
  ASSERT_EQ(ref("r_review").review, ReviewReason::deadline_unknown);
  ASSERT_EQ(pay("c_soft").status, S::failed);
  std::string bytes;
  machine_.encode(&bytes);
  PaymentMachine copy;
  const Status s = PaymentMachine::decode(bytes, PaymentDeadlines{}, &copy);
  ASSERT_TRUE(s.is_ok()) << s.message();
  std::string again;
  copy.encode(&again);
  EXPECT_EQ(again, bytes);
  EXPECT_EQ(copy.size(), machine_.size());
  EXPECT_EQ(copy.fees(), machine_.fees());
  EXPECT_EQ(copy.next_deadline(), machine_.next_deadline());
  EXPECT_EQ(copy.in_review_count(), 4u);  // c_processing, c_review, c_capturing, r_review
  EXPECT_EQ(copy.in_review_count(), machine_.in_review_count());
  EXPECT_EQ(copy.outstanding_attempts(), machine_.outstanding_attempts());
  EXPECT_EQ(copy.find_refund("r_review")->payment_id, "c_paid");
  EXPECT_EQ(copy.find("c_paid")->timeline.size(), pay("c_paid").timeline.size());
  PaymentMachine untouched;
  EXPECT_FALSE(PaymentMachine::decode(bytes, PaymentDeadlines{0, 1, 1}, &untouched).is_ok());
}

// What the decoded machine does next equals what the original does: same results, same effects,
// same state after. The indexes (attempt owners, due deadlines) come back with it.
TEST_F(PaymentTest, ADecodedMachineCarriesOnExactlyLikeTheOriginal) {
  build_rich_scenario();
  std::string bytes;
  machine_.encode(&bytes);
  PaymentMachine copy;
  ASSERT_TRUE(PaymentMachine::decode(bytes, PaymentDeadlines{}, &copy).is_ok());
  const auto carry_on = [&](PaymentMachine& m) {
    std::vector<std::string> trace;
    Effects e;
    Timestamp t = now_;
    for (const std::string& id : m.outstanding_attempts()) {
      trace.push_back(std::string(result_name(
          m.apply_result(id, {A::approved, true, "x", "", 1}, "webhook:evt", ++t, &e))));
    }
    trace.push_back(std::string(result_name(m.refund("c_paid", "r_more", 0, ++t, &e))));
    trace.push_back(std::string(result_name(m.capture("c_authorized", 0, ++t, &e))));
    for (const std::string& id : m.tick(t + 30 * kDay, &e)) trace.push_back(id);
    for (const std::string& id : ids_of(e.postings)) trace.push_back(id);
    for (const PspCall& c : e.calls) trace.push_back(c.attempt_id);
    std::string state;
    m.encode(&state);
    trace.push_back(state);
    return trace;
  };
  const auto expected = carry_on(machine_);
  EXPECT_EQ(carry_on(copy), expected);
  EXPECT_GT(expected.size(), 10u);
}

TEST_F(PaymentTest, EveryTruncationOfASnapshotFailsCleanly) {
  build_rich_scenario();
  std::string bytes;
  machine_.encode(&bytes);
  PaymentMachine out;
  create("sentinel");  // `out` must stay as it was: compare its encoding before and after
  std::string before;
  out.encode(&before);
  for (size_t n = 0; n < bytes.size(); ++n) {
    ASSERT_FALSE(PaymentMachine::decode(std::string_view(bytes).substr(0, n), {}, &out).is_ok())
        << n;
  }
  std::string after;
  out.encode(&after);
  EXPECT_EQ(after, before);
  EXPECT_FALSE(PaymentMachine::decode(bytes + "x", {}, &out).is_ok());  // trailing bytes
}

// Corruption of any one byte either fails cleanly or yields a machine this code could have
// built, which then runs every call without tripping an assertion.
TEST_F(PaymentTest, CorruptSnapshotsFailCleanlyOrDecodeToAWorkingMachine) {
  build_rich_scenario();
  std::string bytes;
  machine_.encode(&bytes);
  size_t accepted = 0;
  constexpr uint8_t kMasks[] = {0x01, 0x80, 0xFF};  // one per byte, in turn: low, high, all bits
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(static_cast<uint8_t>(bad[i]) ^ kMasks[i % 3]);
    PaymentMachine m;
    if (!PaymentMachine::decode(bad, {}, &m).is_ok()) continue;
    ++accepted;
    Effects e;
    for (const std::string& id : m.outstanding_attempts()) {
      (void)m.apply_result(id, {A::approved, true}, "x", kT0 + 100 * kDay, &e);
    }
    (void)m.tick(kT0 + 400 * kDay, &e);
    (void)m.mark_pending_unknown(kT0 + 401 * kDay);
    std::string re;
    m.encode(&re);
    PaymentMachine again;
    ASSERT_TRUE(PaymentMachine::decode(re, {}, &again).is_ok()) << i;
  }
  EXPECT_GT(accepted, 0u);  // timestamps and codes carry no invariant: some flips are legal
}

TEST_F(PaymentTest, InconsistentSnapshotsAreRefused) {
  // Well-formed bytes describing states no call sequence reaches must be refused, not trusted:
  // the machine would assert on them later.
  create("pay_1", CaptureMethod::manual);
  confirm("pay_1");
  result("pay_1_a1", A::approved);
  std::string good;
  machine_.encode(&good);
  const auto decodes = [](const std::string& b) {
    PaymentMachine m;
    return PaymentMachine::decode(b, {}, &m).is_ok();
  };
  ASSERT_TRUE(decodes(good));
  // Offsets from the layout in payment.cc: header (version, default rate, channel count,
  // payment count), then id "pay_1", amount, currency, merchant "shop", source, capture method,
  // token "tok_visa", customer "", status; then five amounts, channel "acme", error code "",
  // three timestamps, in_review.
  const size_t status_at = (4 + 16 + 4 + 8) + (2 + 5) + 8 + 2 + (2 + 4) + 1 + 1 + (2 + 8) + 2;
  const size_t review_at = status_at + 1 + 5 * 8 + (2 + 4) + 2 + 3 * 8;
  ASSERT_EQ(good[status_at], static_cast<char>(S::requires_capture));
  ASSERT_EQ(good[review_at], 0);
  const auto with = [&](size_t at, char value) {
    std::string b = good;
    b[at] = value;
    return b;
  };
  EXPECT_FALSE(decodes(with(status_at, static_cast<char>(S::succeeded))));  // nothing captured
  EXPECT_FALSE(decodes(with(status_at, static_cast<char>(S::requires_confirmation))));
  EXPECT_FALSE(decodes(with(status_at, static_cast<char>(S::requires_action))));
  EXPECT_FALSE(decodes(with(status_at, static_cast<char>(S::failed))));  // terminal, deadline
  EXPECT_FALSE(decodes(with(review_at, 1)));  // review outside processing
  std::string renamed = good;
  renamed[renamed.find("pay_1_a1") + 7] = '2';  // the attempt id must be {payment id}_a{n}
  EXPECT_FALSE(decodes(renamed));
}

}  // namespace
}  // namespace keel::payments
