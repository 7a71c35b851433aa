#include "payments/core.h"

#include <gtest/gtest.h>

#include "core/bytes.h"
#include "core/codec.h"
#include "core/json_writer.h"
#include "ledger/ledger.h"
#include "payments/codec.h"
#include "vault/envelope.h"
#include "vault/keys.h"
#include "vault/sealed_secret.h"

namespace keel::payments {
namespace {

constexpr Timestamp kT0 = 1'800'000'000 * kNanosPerSecond;
const Currency kUsd = *Currency::from_code("USD");
const std::string kFingerprintA(kFingerprintBytes, 'a');
const std::string kFingerprintB(kFingerprintBytes, 'b');

// A stored card as the API edge makes it (sealed under a fixed test key).
vault::PaymentMethod stored_card(std::string id, vault::OwnerKind owner_kind, std::string owner) {
  vault::MasterKeys keys;
  EXPECT_TRUE(vault::MasterKeys::parse(
                  "fingerprint " + std::string(64, 'a') + ";key 1 " + std::string(64, 'b'), &keys)
                  .is_ok());
  vault::PaymentMethod m;
  m.id = std::move(id);
  m.owner_kind = owner_kind;
  m.owner_id = std::move(owner);
  m.brand = vault::CardBrand::visa;
  m.country = "US";
  m.last4 = "4242";
  m.exp_month = 12;
  m.exp_year = 2030;
  m.fingerprint = vault::card_fingerprint(keys, "4242424242424242");
  m.created_at = kT0;
  m.sealed = vault::seal(keys, m.id, "4242424242424242", vault::system_random);
  return m;
}
const std::string kPmA = "pm_" + std::string(24, 'A');
const std::string kPmB = "pm_" + std::string(24, 'B');

// Drives a PaymentsCore with a real ledger, as the engine's writer does.
class CoreTest : public ::testing::Test {
 protected:
  ApplyOutcome apply(Command c) {
    now_ += kNanosPerSecond;
    Timestamp clock = now_;
    ApplyOutcome out = core_.apply(c, now_, ledger_, &clock);
    now_ = clock;
    EXPECT_EQ(out.postings_rejected, 0u);
    return out;
  }
  ApplyOutcome tick(Timestamp advance) {
    now_ += advance;
    Timestamp clock = now_;
    ApplyOutcome out = core_.tick(now_, ledger_, &clock);
    now_ = clock;
    return out;
  }
  void TearDown() override {
    const auto inv = ledger_.check_invariants();
    EXPECT_TRUE(inv.ok) << inv.problem;
  }

  static Command keyed(Command c, std::string key, const std::string& fingerprint) {
    c.idempotency = {"client", std::move(key), fingerprint};
    return c;
  }
  std::string merchant() {
    EXPECT_TRUE(apply(cmd::CreateMerchant{"mch_1", "shop", "", ""}).reply.ok());
    return "mch_1";
  }
  static Command payment(std::string id) {
    cmd::CreatePayment c;
    c.id = std::move(id);
    c.amount = 1250;
    c.currency = kUsd;
    c.merchant_id = "mch_1";
    c.instrument = "tok_visa";
    return c;
  }
  static Command confirm(std::string id) { return cmd::ConfirmPayment{std::move(id), "cardco"}; }
  static Command result(std::string attempt, AttemptStatus s) {
    cmd::AttemptResult c;
    c.attempt_id = std::move(attempt);
    c.result.status = s;
    c.result.psp_reference = "psp_1";
    c.result.latency_ms = 7;
    return c;
  }
  static Command op_status(std::string reference, OperationState s) {
    cmd::OperationStatus c;
    c.channel = "cardco";
    c.reference = std::move(reference);
    c.state = s;
    c.source = ResultSource::status_query;
    return c;
  }
  static Command customer(std::string id) { return cmd::CreateCustomer{std::move(id), ""}; }
  static cmd::CreateTopup topup(std::string id, std::string customer, int64_t amount) {
    return {{std::move(id), std::move(customer), amount, kUsd, "cardco", InstrumentKind::card_token,
             "tok_visa"}};
  }
  template <typename Body>
  static Body& body(Command& c) {
    return std::get<Body>(c.body);
  }
  int64_t credits_posted(const std::string& account) const {
    const auto a = ledger_.find_account(account);
    return a ? a->balances.credits_posted : -1;
  }
  std::string encoded() const {
    std::string s;
    core_.encode(&s);
    return s;
  }

  Timestamp now_ = kT0;
  ledger::Ledger ledger_;
  PaymentsCore core_;
};

TEST_F(CoreTest, KeyedConfirmWaitsForThePspAndCompletesTheKeyWithTheFinalPayment) {
  merchant();
  ASSERT_TRUE(apply(payment("pay_1")).reply.ok());
  const ApplyOutcome sent = apply(keyed(confirm("pay_1"), "k1", kFingerprintA));
  EXPECT_TRUE(sent.changed);
  EXPECT_FALSE(sent.reply.settled);
  ASSERT_EQ(sent.calls.size(), 1u);
  EXPECT_EQ(sent.calls[0].instrument, "tok_visa");
  EXPECT_TRUE(sent.completed.empty());

  // The same key again while the attempt is open: 409, nothing changes.
  const std::string before = encoded();
  const ApplyOutcome again = apply(keyed(confirm("pay_1"), "k1", kFingerprintA));
  EXPECT_EQ(again.reply.error, Error::idempotency_key_in_use);
  EXPECT_FALSE(again.changed);
  EXPECT_EQ(encoded(), before);

  const ApplyOutcome approved = apply(result(sent.calls[0].attempt_id, AttemptStatus::approved));
  EXPECT_TRUE(approved.changed);
  ASSERT_EQ(approved.completed.size(), 1u);
  EXPECT_EQ(approved.completed[0].key, "k1");
  EXPECT_NE(approved.completed[0].reply.body.find("\"status\":\"succeeded\""), std::string::npos);
  // The attempt keeps what the PSP's answer said and how long the call took.
  EXPECT_NE(approved.completed[0].reply.body.find("\"latency_ms\":7,\"psp_reference\":\"psp_1\""),
            std::string::npos)
      << approved.completed[0].reply.body;
  EXPECT_EQ(credits_posted("merchant:mch_1:USD"), 1250);

  const ApplyOutcome replay = apply(keyed(confirm("pay_1"), "k1", kFingerprintA));
  EXPECT_TRUE(replay.reply.replayed);
  EXPECT_EQ(replay.reply.body, approved.completed[0].reply.body);
  EXPECT_FALSE(replay.changed);
  EXPECT_EQ(apply(keyed(confirm("pay_1"), "k1", kFingerprintB)).reply.error,
            Error::idempotency_key_reused);
}

TEST_F(CoreTest, AFailedRequestReleasesItsKeySoACorrectedRetryRuns) {
  merchant();
  Command bad = payment("pay_1");
  body<cmd::CreatePayment>(bad).merchant_id = "mch_nope";
  const std::string before = encoded();
  const ApplyOutcome refused = apply(keyed(bad, "k1", kFingerprintA));
  EXPECT_EQ(refused.reply.error, Error::merchant_not_found);
  EXPECT_FALSE(refused.changed);
  EXPECT_EQ(encoded(), before);
  EXPECT_TRUE(apply(keyed(payment("pay_1"), "k1", kFingerprintB)).reply.ok());
}

TEST_F(CoreTest, LateAndDuplicateResultsChangeNothing) {
  merchant();
  apply(payment("pay_1"));
  const ApplyOutcome sent = apply(confirm("pay_1"));
  const std::string attempt = sent.calls.at(0).attempt_id;
  ASSERT_TRUE(apply(result(attempt, AttemptStatus::approved)).changed);
  const std::string after = encoded();
  for (const AttemptStatus s : {AttemptStatus::approved, AttemptStatus::declined_hard}) {
    const ApplyOutcome late = apply(result(attempt, s));
    EXPECT_FALSE(late.changed);
    EXPECT_EQ(late.reply.error, Error::stale_result);
  }
  EXPECT_FALSE(apply(op_status(attempt, OperationState::captured)).changed);
  EXPECT_EQ(encoded(), after);
  EXPECT_EQ(credits_posted("merchant:mch_1:USD"), 1250);
}

TEST_F(CoreTest, AnUnknownAttemptGoesToTheResolverAndAStatusQuerySettlesIt) {
  merchant();
  apply(payment("pay_1"));
  const std::string attempt = apply(confirm("pay_1")).calls.at(0).attempt_id;
  const ApplyOutcome unknown = apply(result(attempt, AttemptStatus::unknown));
  ASSERT_EQ(unknown.resolve.size(), 1u);
  EXPECT_EQ(unknown.resolve[0].reference, attempt);
  EXPECT_EQ(unknown.resolve[0].channel, "cardco");
  // The PSP still has it pending: no change; then captured: the payment succeeds, once.
  EXPECT_FALSE(apply(op_status(attempt, OperationState::pending)).changed);
  Command other_channel = op_status(attempt, OperationState::captured);
  body<cmd::OperationStatus>(other_channel).channel =
      "bankco";  // another PSP cannot settle cardco's attempt
  EXPECT_FALSE(apply(other_channel).changed);
  EXPECT_TRUE(apply(op_status(attempt, OperationState::captured)).changed);
  EXPECT_EQ(credits_posted("merchant:mch_1:USD"), 1250);
  EXPECT_TRUE(core_.outstanding_attempts().empty());
}

TEST_F(CoreTest, NeverReceivedMakesTheAttemptRetryableAndNothingMoves) {
  merchant();
  apply(payment("pay_1"));
  const std::string attempt = apply(confirm("pay_1")).calls.at(0).attempt_id;
  apply(result(attempt, AttemptStatus::unknown));
  EXPECT_TRUE(apply(op_status(attempt, OperationState::not_found)).changed);
  EXPECT_EQ(credits_posted("merchant:mch_1:USD"), -1);  // never credited
  const QueryResult q = core_.query({QueryKind::get_payment, "pay_1"}, ledger_);
  EXPECT_NE(q.body.find("\"status\":\"retryable\""), std::string::npos) << q.body;
}

TEST_F(CoreTest, CaptureAndVoidAttemptsAreResolvedThroughTheirAuthorization) {
  merchant();
  Command manual = payment("pay_1");
  body<cmd::CreatePayment>(manual).capture_manual = true;
  apply(manual);
  const std::string auth = apply(confirm("pay_1")).calls.at(0).attempt_id;
  apply(result(auth, AttemptStatus::approved));
  const ApplyOutcome captured = apply(cmd::CapturePayment{"pay_1", 0});
  ASSERT_EQ(captured.calls.size(), 1u);
  apply(result(captured.calls[0].attempt_id, AttemptStatus::unknown));
  const auto open = core_.outstanding_attempts();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].reference, auth);  // a status query asks about the authorization
  EXPECT_TRUE(apply(op_status(auth, OperationState::captured)).changed);
  EXPECT_EQ(credits_posted("merchant:mch_1:USD"), 1250);
}

TEST_F(CoreTest, AfterARestartPendingAttemptsBecomeUnknownAndAreResolved) {
  merchant();
  apply(payment("pay_1"));
  const std::string attempt = apply(confirm("pay_1")).calls.at(0).attempt_id;
  const Command mark = cmd::MarkPendingUnknown{};
  const ApplyOutcome marked = apply(mark);
  EXPECT_TRUE(marked.changed);
  ASSERT_EQ(marked.resolve.size(), 1u);
  EXPECT_EQ(marked.resolve[0].attempt_id, attempt);
  EXPECT_FALSE(apply(mark).changed);  // nothing pending any more
}

TEST_F(CoreTest, MerchantEventsFollowEveryStatusTheMerchantSees) {
  ASSERT_TRUE(
      apply(cmd::CreateMerchant{"mch_1", "", "http://127.0.0.1:9/hooks", "whsec_1"}).reply.ok());
  apply(payment("pay_1"));
  const std::string attempt = apply(confirm("pay_1")).calls.at(0).attempt_id;
  apply(result(attempt, AttemptStatus::approved));
  Query q;
  q.kind = QueryKind::list_events;
  q.limit = 10;
  const std::string events = core_.query(q, ledger_).body;
  for (const char* type :
       {"payment.requires_confirmation", "payment.processing", "payment.succeeded"}) {
    EXPECT_NE(events.find(type), std::string::npos) << type << " in " << events;
  }
  const auto due = core_.due_deliveries(now_, 10, {});
  ASSERT_EQ(due.size(), 3u);
  EXPECT_EQ(due[0].url, "http://127.0.0.1:9/hooks");
  const Command delivered = cmd::OutboxAttempt{due[0].event_id, true};
  EXPECT_TRUE(apply(delivered).changed);
  EXPECT_FALSE(apply(delivered).changed);  // already delivered
  EXPECT_EQ(core_.due_deliveries(now_, 10, {}).size(), 2u);
}

// The outbox near its limit refuses new payments (503 over_capacity, nothing changes) and keeps
// the rest for the objects already started; an event that still finds no room is reported,
// never dropped without a word.
TEST_F(CoreTest, AFullOutboxPushesBackAndReportsWhatItCouldNotStore) {
  CoreOptions options;
  options.outbox.events_max = 10;  // admission stops at 9 stored events
  core_ = PaymentsCore(options);
  merchant();
  for (int i = 1; i <= 9; ++i) {  // one event each: payment.requires_confirmation
    ASSERT_TRUE(apply(payment("pay_" + std::to_string(i))).reply.ok()) << i;
  }
  const std::string before = encoded();
  const ApplyOutcome refused = apply(keyed(payment("pay_10"), "k10", kFingerprintA));
  EXPECT_EQ(refused.reply.error, Error::over_capacity);
  EXPECT_FALSE(refused.changed);
  EXPECT_EQ(encoded(), before);  // not even the key
  // What was started goes on: the confirm's event takes the 10th place...
  const ApplyOutcome confirmed = apply(confirm("pay_1"));
  ASSERT_TRUE(confirmed.reply.ok());
  EXPECT_TRUE(confirmed.events_dropped.empty());
  // ...and the success, with no place left, is reported rather than lost silently.
  const ApplyOutcome settled =
      apply(result(confirmed.calls.at(0).attempt_id, AttemptStatus::approved));
  EXPECT_TRUE(settled.changed);
  ASSERT_EQ(settled.events_dropped.size(), 1u);
  EXPECT_EQ(settled.events_dropped[0].object_id, "pay_1");
  EXPECT_EQ(settled.events_dropped[0].reason, "events_full");
  EXPECT_EQ(credits_posted("merchant:mch_1:USD"), 1250);  // the money is not held back
}

// Issue 8, defect 2: review is not an outcome. A key waiting on a PSP stays in flight while
// its payment is in review (a retry gets the payment as it stands, nothing stored); once the
// PSP answers, the key stores and replays the final payment, also after a restart.
TEST_F(CoreTest, AKeyWaitingThroughReviewStoresOnlyTheFinalPayment) {
  merchant();
  apply(payment("pay_1"));
  const Command confirm_k1 = keyed(confirm("pay_1"), "k1", kFingerprintA);
  const std::string attempt = apply(confirm_k1).calls.at(0).attempt_id;
  apply(result(attempt, AttemptStatus::unknown));
  ASSERT_TRUE(core_.next_deadline().has_value());
  const ApplyOutcome ticked = tick(31 * 60 * kNanosPerSecond);
  EXPECT_TRUE(ticked.changed);
  EXPECT_TRUE(ticked.completed.empty());  // in review: the key stays in flight
  EXPECT_EQ(core_.counts().in_review, 1u);
  EXPECT_EQ(core_.counts().review_open_deadline_unknown, 1u);

  // A retry while in review: the payment as it stands, not replayed, nothing stored.
  const std::string before = encoded();
  const ApplyOutcome during = apply(confirm_k1);
  EXPECT_TRUE(during.reply.ok());
  EXPECT_FALSE(during.reply.replayed);
  EXPECT_FALSE(during.changed);
  EXPECT_NE(during.reply.body.find("\"requires_review\":true"), std::string::npos);
  EXPECT_NE(during.reply.body.find("\"review_reason\":\"deadline_unknown\""), std::string::npos);
  EXPECT_EQ(encoded(), before);

  // The late answer settles it: the key completes with the final payment, the item resolves.
  const ApplyOutcome late = apply(op_status(attempt, OperationState::captured));
  EXPECT_TRUE(late.changed);
  ASSERT_EQ(late.completed.size(), 1u);
  EXPECT_NE(late.completed[0].reply.body.find("\"status\":\"succeeded\""), std::string::npos);
  EXPECT_EQ(core_.counts().in_review, 0u);
  EXPECT_EQ(core_.counts().review_open_deadline_unknown, 0u);
  EXPECT_EQ(credits_posted("merchant:mch_1:USD"), 1250);
  Query reviews;
  reviews.kind = QueryKind::list_reviews;
  const std::string items = core_.query(reviews, ledger_).body;
  EXPECT_NE(items.find("\"id\":\"rev_pay_1_1\""), std::string::npos) << items;
  EXPECT_NE(items.find("\"resolved_by\":\"psp\""), std::string::npos) << items;
  EXPECT_NE(items.find("\"resolution\":\"status: succeeded\""), std::string::npos) << items;

  const ApplyOutcome replay = apply(confirm_k1);
  EXPECT_TRUE(replay.reply.replayed);
  EXPECT_NE(replay.reply.body.find("\"status\":\"succeeded\""), std::string::npos);
  // After a restart (the state decoded from its snapshot) the key replays the same.
  PaymentsCore restarted;
  ASSERT_TRUE(PaymentsCore::decode(encoded(), {}, &restarted).is_ok());
  core_ = std::move(restarted);
  const ApplyOutcome after_restart = apply(confirm_k1);
  EXPECT_TRUE(after_restart.reply.replayed);
  EXPECT_EQ(after_restart.reply.body, replay.reply.body);
}

// Issue 8, defect 1: a fee above the amount (cardco's fixed 30 on a payment of 20) is keel's
// expense. The payment settles, the merchant gets 20, psp_fees 30, psp_clearing owes 10 less.
TEST_F(CoreTest, APspFeeAboveTheAmountIsBookedAndThePaymentSettles) {
  merchant();
  Command small = payment("pay_1");
  body<cmd::CreatePayment>(small).amount = 20;
  apply(small);
  const std::string attempt = apply(confirm("pay_1")).calls.at(0).attempt_id;
  Command answer = result(attempt, AttemptStatus::approved);
  body<cmd::AttemptResult>(answer).result.captured = true;
  body<cmd::AttemptResult>(answer).result.fee = 30;
  const ApplyOutcome settled = apply(answer);
  EXPECT_TRUE(settled.changed);
  EXPECT_TRUE(settled.rejected.empty());
  const QueryResult q = core_.query({QueryKind::get_payment, "pay_1"}, ledger_);
  EXPECT_NE(q.body.find("\"status\":\"succeeded\""), std::string::npos) << q.body;
  EXPECT_NE(q.body.find("\"psp_fee\":30"), std::string::npos) << q.body;
  EXPECT_EQ(credits_posted("merchant:mch_1:USD"), 20);
  EXPECT_EQ(credits_posted("psp_clearing:cardco:USD"), 30);  // the fee's credit
  const auto clearing = ledger_.find_account("psp_clearing:cardco:USD");
  ASSERT_TRUE(clearing);
  EXPECT_EQ(clearing->balances.debits_posted - clearing->balances.credits_posted, -10);
  // The snapshot with such a payment loads again.
  PaymentsCore decoded;
  EXPECT_TRUE(PaymentsCore::decode(encoded(), {}, &decoded).is_ok());
}

// A result the machines refuse is never dropped: its own code, counted, the payment flagged
// psp_result_rejected at once with the PSP's words as evidence; a later valid result settles it.
TEST_F(CoreTest, ARejectedResultFlagsThePaymentForReviewWithEvidence) {
  merchant();
  apply(payment("pay_1"));
  const Command confirm_k1 = keyed(confirm("pay_1"), "k1", kFingerprintA);
  const std::string attempt = apply(confirm_k1).calls.at(0).attempt_id;
  Command garbled = result(attempt, AttemptStatus::approved);
  body<cmd::AttemptResult>(garbled).result.fee = 1250 + kPspFeeAboveAmountMax + 1;
  const ApplyOutcome rejected = apply(garbled);
  EXPECT_TRUE(rejected.changed);  // journaled: the flag is state
  EXPECT_EQ(rejected.reply.error, Error::psp_result_rejected);
  ASSERT_EQ(rejected.rejected.size(), 1u);
  EXPECT_EQ(rejected.rejected[0].attempt_id, attempt);
  EXPECT_EQ(rejected.rejected[0].problem, "fee_out_of_range");
  EXPECT_TRUE(rejected.completed.empty());
  EXPECT_EQ(credits_posted("merchant:mch_1:USD"), -1);  // nothing booked on it
  const QueryResult p = core_.query({QueryKind::get_payment, "pay_1"}, ledger_);
  EXPECT_NE(p.body.find("\"status\":\"processing\""), std::string::npos) << p.body;
  EXPECT_NE(p.body.find("\"review_reason\":\"psp_result_rejected\""), std::string::npos);
  EXPECT_NE(p.body.find("\"cause\":\"psp_result_rejected: fee_out_of_range\""), std::string::npos);
  EXPECT_NE(p.body.find("\"deadline\":null"), std::string::npos);  // a person owns it now
  EXPECT_EQ(core_.counts().review_open_psp_result_rejected, 1u);
  Query reviews;
  reviews.kind = QueryKind::list_reviews;
  reviews.status = "open";
  const std::string items = core_.query(reviews, ledger_).body;
  EXPECT_NE(items.find("\"reason\":\"psp_result_rejected\""), std::string::npos) << items;
  EXPECT_NE(items.find("\"fee\":1001251"), std::string::npos) << items;
  EXPECT_NE(items.find("\"source\":\"psp_response\""), std::string::npos) << items;
  // The same again: counted, but the first evidence stands and nothing changes.
  const std::string before = encoded();
  const ApplyOutcome again = apply(garbled);
  EXPECT_FALSE(again.changed);
  EXPECT_EQ(again.rejected.size(), 1u);
  EXPECT_EQ(encoded(), before);
  // A valid answer still settles it; the item resolves, the key completes.
  const ApplyOutcome valid = apply(op_status(attempt, OperationState::captured));
  EXPECT_TRUE(valid.changed);
  EXPECT_EQ(valid.completed.size(), 1u);
  EXPECT_EQ(credits_posted("merchant:mch_1:USD"), 1250);
  EXPECT_EQ(core_.counts().in_review, 0u);
  EXPECT_EQ(core_.counts().review_open_psp_result_rejected, 0u);
}

// Every refusal path of a PSP report: a status meaningless for the attempt's kind, over-long
// fields, a too-long cause, and reports on settled attempts that contradict the books.
TEST_F(CoreTest, EveryRefusedReportGoesToReview) {
  merchant();
  // An authorization reported `paid` (a payout's state).
  apply(payment("pay_1"));
  const std::string a1 = apply(confirm("pay_1")).calls.at(0).attempt_id;
  const ApplyOutcome paid = apply(op_status(a1, OperationState::paid));
  ASSERT_EQ(paid.rejected.size(), 1u);
  EXPECT_EQ(paid.rejected[0].problem, "state_not_applicable");
  // Over-long reference and error code, and an over-long cause.
  apply(payment("pay_2"));
  const std::string a2 = apply(confirm("pay_2")).calls.at(0).attempt_id;
  Command long_reference = result(a2, AttemptStatus::declined_hard);
  body<cmd::AttemptResult>(long_reference).result.psp_reference =
      std::string(kPspReferenceLengthMax + 1, 'r');
  EXPECT_EQ(apply(long_reference).rejected.at(0).problem, "psp_reference_too_long");
  apply(payment("pay_3"));
  const std::string a3 = apply(confirm("pay_3")).calls.at(0).attempt_id;
  Command long_code = result(a3, AttemptStatus::declined_hard);
  body<cmd::AttemptResult>(long_code).result.error_code = std::string(kErrorCodeLengthMax + 1, 'c');
  EXPECT_EQ(apply(long_code).rejected.at(0).problem, "error_code_too_long");
  apply(payment("pay_4"));
  const std::string a4 = apply(confirm("pay_4")).calls.at(0).attempt_id;
  Command long_cause = op_status(a4, OperationState::captured);
  body<cmd::OperationStatus>(long_cause).source = ResultSource::webhook;
  body<cmd::OperationStatus>(long_cause).webhook_event = std::string(kCauseLengthMax, 'w');
  EXPECT_EQ(apply(long_cause).rejected.at(0).problem, "cause_invalid");
  Command pending = result(a4, AttemptStatus::pending);
  EXPECT_EQ(apply(pending).rejected.at(0).problem, "status_pending");
  EXPECT_EQ(core_.counts().in_review, 4u);

  // Contradictions: keel failed pay_5 on a hard decline; the PSP later says it captured.
  apply(payment("pay_5"));
  const std::string a5 = apply(confirm("pay_5")).calls.at(0).attempt_id;
  apply(result(a5, AttemptStatus::declined_hard));
  EXPECT_FALSE(apply(op_status(a5, OperationState::declined_hard)).changed);  // agrees: stale
  const ApplyOutcome captured = apply(op_status(a5, OperationState::captured));
  EXPECT_TRUE(captured.changed);
  ASSERT_EQ(captured.rejected.size(), 1u);
  EXPECT_EQ(captured.rejected[0].problem, "contradicts_settled_attempt");
  const QueryResult p5 = core_.query({QueryKind::get_payment, "pay_5"}, ledger_);
  EXPECT_NE(p5.body.find("\"status\":\"failed\""), std::string::npos) << p5.body;
  EXPECT_NE(p5.body.find("\"review_reason\":\"psp_result_rejected\""), std::string::npos);
  // keel captured pay_6; the PSP later says voided.
  apply(payment("pay_6"));
  const std::string a6 = apply(confirm("pay_6")).calls.at(0).attempt_id;
  Command approved = result(a6, AttemptStatus::approved);
  body<cmd::AttemptResult>(approved).result.captured = true;
  apply(approved);
  EXPECT_FALSE(apply(op_status(a6, OperationState::authorized)).changed);  // older news
  EXPECT_FALSE(apply(op_status(a6, OperationState::refunded)).changed);
  EXPECT_EQ(apply(op_status(a6, OperationState::voided)).rejected.size(), 1u);
  // A top-up keel failed on a decline, later reported paid: money keel never credited.
  ASSERT_TRUE(apply(customer("cus_1")).reply.ok());
  cmd::CreateTopup topup = CoreTest::topup("tu_1", "cus_1", 500);
  const std::string t1 = apply(topup).calls.at(0).attempt_id;
  apply(result(t1, AttemptStatus::declined_hard));
  EXPECT_FALSE(apply(op_status(t1, OperationState::failed)).changed);  // agrees
  const ApplyOutcome topup_paid = apply(op_status(t1, OperationState::paid));
  ASSERT_EQ(topup_paid.rejected.size(), 1u);
  EXPECT_EQ(topup_paid.rejected[0].problem, "contradicts_settled_attempt");
  EXPECT_EQ(credits_posted("wallet:cus_1:USD"), -1);  // nothing booked on a guess
  // A top-up still open reported `captured`: a state a top-up never reaches.
  topup.id = "tu_2";
  const std::string t2 = apply(topup).calls.at(0).attempt_id;
  EXPECT_EQ(apply(op_status(t2, OperationState::captured)).rejected.at(0).problem,
            "state_not_applicable");
  EXPECT_EQ(core_.counts().in_review, 8u);
  EXPECT_EQ(core_.counts().review_open_psp_result_rejected, 8u);
  // Each flagged payment decodes from a snapshot with its items.
  PaymentsCore decoded;
  const Status s = PaymentsCore::decode(encoded(), {}, &decoded);
  ASSERT_TRUE(s.is_ok()) << s.message();
  EXPECT_EQ(decoded.counts().review_open_psp_result_rejected, 8u);
}

// A report that contradicts the books keeps its flag through what a deadline does next: the PSP
// says it captured an authorization keel still holds; the authorization expires and keel voids
// it, and the payment stays in review (someone must reconcile the capture).
TEST_F(CoreTest, AContradictionStaysInReviewThroughLaterSteps) {
  merchant();
  Command manual = payment("pay_1");
  body<cmd::CreatePayment>(manual).capture_manual = true;
  apply(manual);
  const std::string attempt = apply(confirm("pay_1")).calls.at(0).attempt_id;
  apply(result(attempt, AttemptStatus::approved));
  const ApplyOutcome captured = apply(op_status(attempt, OperationState::captured));
  ASSERT_EQ(captured.rejected.size(), 1u);
  EXPECT_EQ(captured.rejected[0].problem, "contradicts_settled_attempt");
  tick(8 * 24 * 3600 * kNanosPerSecond);  // past the authorization's validity: voided
  const QueryResult p = core_.query({QueryKind::get_payment, "pay_1"}, ledger_);
  EXPECT_NE(p.body.find("\"status\":\"canceled\""), std::string::npos) << p.body;
  EXPECT_NE(p.body.find("\"review_reason\":\"psp_result_rejected\""), std::string::npos);
  EXPECT_EQ(core_.counts().review_open_psp_result_rejected, 1u);
  PaymentsCore decoded;
  const Status s = PaymentsCore::decode(encoded(), {}, &decoded);
  EXPECT_TRUE(s.is_ok()) << s.message();
}

// A snapshot written before the review desk (no review section) with a payment in review: the
// decoder opens its deadline_unknown item as the tick that flagged it would have.
TEST_F(CoreTest, ASnapshotWithoutTheReviewDeskGetsItsItemsOnDecode) {
  merchant();
  apply(payment("pay_1"));
  const std::string attempt = apply(confirm("pay_1")).calls.at(0).attempt_id;
  apply(result(attempt, AttemptStatus::unknown));
  tick(31 * 60 * kNanosPerSecond);
  const std::string bytes = encoded();
  // The desk section is the tail: u64 length + the desk's encoding.
  std::string desk;
  {
    review::ReviewDesk d;
    ASSERT_EQ(d.open("payment", "pay_1", ReviewReason::deadline_unknown,
                     R"({"attempt":")" + attempt + R"("})", now_),
              review::ReviewResult::ok);
    d.encode(&desk);
  }
  ASSERT_GT(bytes.size(), desk.size() + 8);
  ASSERT_EQ(bytes.substr(bytes.size() - desk.size()), desk);
  const std::string old_format = bytes.substr(0, bytes.size() - desk.size() - 8);
  PaymentsCore migrated;
  const Status s = PaymentsCore::decode(old_format, {}, &migrated);
  ASSERT_TRUE(s.is_ok()) << s.message();
  std::string again;
  migrated.encode(&again);
  EXPECT_EQ(again, bytes);  // the same state as the journal's replay builds
}

TEST_F(CoreTest, WalletFlowsPostAndAnswerThroughTheCore) {
  for (const char* id : {"cus_a", "cus_b"}) ASSERT_TRUE(apply(customer(id)).reply.ok());
  const ApplyOutcome sent = apply(topup("tu_1", "cus_a", 5000));
  ASSERT_EQ(sent.calls.size(), 1u);
  EXPECT_EQ(credits_posted("wallet:cus_a:USD"), -1);  // nothing before the PSP confirms
  apply(result(sent.calls[0].attempt_id, AttemptStatus::approved));
  EXPECT_EQ(credits_posted("wallet:cus_a:USD"), 5000);

  cmd::CreateWalletTransfer transfer{"wt_1", "cus_a", "cus_b", 7000, kUsd};
  const ApplyOutcome short_of_funds = apply(transfer);
  EXPECT_TRUE(short_of_funds.reply.ok());
  EXPECT_NE(short_of_funds.reply.body.find("insufficient_funds"), std::string::npos);
  transfer.id = "wt_2";
  transfer.amount = 2000;
  apply(transfer);
  EXPECT_EQ(credits_posted("wallet:cus_b:USD"), 2000);
  const std::string wallet = core_.query({QueryKind::get_wallet, "cus_b"}, ledger_).body;
  EXPECT_NE(wallet.find("\"available\":2000"), std::string::npos) << wallet;
  // Ids are one space: a payment may not reuse a wallet transfer's id.
  merchant();
  EXPECT_EQ(apply(payment("wt_2")).reply.error, Error::resource_exists);
}

TEST_F(CoreTest, SetFeesChargesTheMerchantOnCapture) {
  merchant();
  cmd::SetFees fees;
  fees.fees.default_rate = {100, 10};  // 1% + 0.10
  ASSERT_TRUE(apply(fees).changed);
  EXPECT_EQ(core_.fees().default_rate.basis_points, 100);
  apply(payment("pay_1"));
  apply(result(apply(confirm("pay_1")).calls.at(0).attempt_id, AttemptStatus::approved));
  EXPECT_EQ(credits_posted("fees:USD"), 22);  // 12 + 10
}

TEST_F(CoreTest, EncodingRoundTripsAndTruncationsAreRefused) {
  merchant();
  apply(payment("pay_1"));
  apply(keyed(confirm("pay_1"), "k1", kFingerprintA));
  const std::string bytes = encoded();
  PaymentsCore decoded;
  ASSERT_TRUE(PaymentsCore::decode(bytes, {}, &decoded).is_ok());
  std::string again;
  decoded.encode(&again);
  EXPECT_EQ(again, bytes);
  for (size_t n = 0; n < bytes.size(); n += 7) {
    PaymentsCore d;
    EXPECT_FALSE(PaymentsCore::decode(bytes.substr(0, n), {}, &d).is_ok()) << n;
  }
}

// One command of every kind, each field away from its default.
std::vector<Command> every_kind() {
  const std::string trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  AttemptResult r{AttemptStatus::declined_soft, true, "psp_9", "do_not_honor", 3, 41};
  FeeSchedule fees;
  fees.channels.emplace("cardco", FeeRate{290, 30});
  routing::ChannelDef channel;
  channel.name = "cardco";
  channel.psp = "cardco";
  std::vector<Command> all = {
      cmd::CreateCustomer{"cus_1", "Ada"},
      cmd::CreateMerchant{"mch_1", "shop", "http://127.0.0.1:9/h", "whsec_1"},
      cmd::CreatePayment{"pay_1", 1, kUsd, "mch_1", "cus_1", "tok_visa", true, false},
      cmd::ConfirmPayment{"pay_1", "cardco"},
      cmd::CapturePayment{"pay_1", INT64_MAX},
      cmd::CancelPayment{"pay_1"},
      cmd::CreateRefund{"re_1", "pay_1", 7},
      cmd::CreateTopup{{"tu_1", "cus_1", 500, kUsd, "bankco", InstrumentKind::bank_account, "b"}},
      cmd::CreatePayout{{"po_1", "cus_1", 500, kUsd, "bankco", InstrumentKind::iban, "DE89"}},
      cmd::CreateWalletTransfer{"wt_1", "cus_1", "cus_2", 9, kUsd},
      cmd::AttemptResult{"pay_1_a1", r},
      cmd::MarkPendingUnknown{},
      cmd::OutboxAttempt{"evt_1", true},
      cmd::OperationStatus{"cardco", "pay_1_a1", OperationState::refunded, r, ResultSource::webhook,
                           "evt_psp_1"},
      cmd::SetFees{fees},
      cmd::SetChannels{{channel}},
      cmd::ChannelEvent{
          {"cardco", routing::BreakerState::open, routing::BreakerState::half_open, "waited", 9}},
      cmd::Control{{ControlKind::channel_canary, "cardco", "cardco_v2", 25, "new connector"}},
      cmd::RotateWebhookSecret{"mch_1", "whsec_2", 3600},
      cmd::StorePaymentMethod{stored_card(kPmA, vault::OwnerKind::customer, "cus_1")},
      cmd::RewrapPaymentMethods{{{kPmA, 1, 2, std::string(vault::kWrappedKeyBytes, 'w')},
                                 {kPmB, 3, 4, std::string(vault::kWrappedKeyBytes, 'v')}}},
      cmd::ResealWebhookSecrets{{{"mch_1", "whsec_1", std::string("\0KVS", 4) + "sealed"}}},
      cmd::DetachPaymentMethod{kPmA, vault::OwnerKind::customer, "cus_1"},
      cmd::EraseCustomer{"cus_1"},
  };
  all[3].routed = true;
  all[3].route.kind = routing::DecisionKind::routed;
  all[3].route.channel = "bankco";
  all[3].route.rejected = {{"cardco", routing::Rejection::already_tried}};
  all[3].traceparent = trace;
  all[2].idempotency = {"client", "key", kFingerprintA};
  return all;
}

TEST_F(CoreTest, StoredCardsPayOnlyForTheirOwnerAndTheCallCarriesTheSealedCard) {
  merchant();
  ASSERT_TRUE(apply(cmd::CreateMerchant{"mch_2", "other", "", ""}).reply.ok());
  ASSERT_TRUE(apply(customer("cus_1")).reply.ok());
  using vault::OwnerKind;
  // The owner must exist; an id is stored once; a malformed record is refused.
  EXPECT_EQ(
      apply(cmd::StorePaymentMethod{stored_card(kPmA, OwnerKind::merchant, "mch_9")}).reply.error,
      Error::merchant_not_found);
  EXPECT_EQ(
      apply(cmd::StorePaymentMethod{stored_card(kPmA, OwnerKind::customer, "cus_9")}).reply.error,
      Error::customer_not_found);
  const ApplyOutcome stored =
      apply(cmd::StorePaymentMethod{stored_card(kPmA, OwnerKind::merchant, "mch_1")});
  ASSERT_TRUE(stored.reply.ok());
  EXPECT_TRUE(stored.changed);
  EXPECT_NE(stored.reply.body.find(R"("last4":"4242")"), std::string::npos);
  EXPECT_EQ(stored.reply.body.find("sealed"), std::string::npos);
  EXPECT_EQ(
      apply(cmd::StorePaymentMethod{stored_card(kPmA, OwnerKind::merchant, "mch_1")}).reply.error,
      Error::resource_exists);
  vault::PaymentMethod bad = stored_card(kPmB, OwnerKind::merchant, "mch_1");
  bad.sealed.wrapped_key.pop_back();
  EXPECT_EQ(apply(cmd::StorePaymentMethod{bad}).reply.error, Error::parameter_invalid);
  ASSERT_TRUE(
      apply(cmd::StorePaymentMethod{stored_card(kPmB, OwnerKind::customer, "cus_1")}).reply.ok());

  // Another merchant's card, or an unknown pm_, is not found; nothing is created.
  Command other = payment("pay_x");
  body<cmd::CreatePayment>(other).merchant_id = "mch_2";
  body<cmd::CreatePayment>(other).instrument = kPmA;
  EXPECT_EQ(apply(other).reply.error, Error::payment_method_not_found);
  Command unknown = payment("pay_y");
  body<cmd::CreatePayment>(unknown).instrument = "pm_" + std::string(24, 'Z');
  EXPECT_EQ(apply(unknown).reply.error, Error::payment_method_not_found);
  // A customer's card pays only a payment of that customer.
  Command no_customer = payment("pay_z");
  body<cmd::CreatePayment>(no_customer).instrument = kPmB;
  EXPECT_EQ(apply(no_customer).reply.error, Error::payment_method_not_found);
  EXPECT_EQ(core_.counts().payments, 0u);
  Command with_customer = payment("pay_c");
  body<cmd::CreatePayment>(with_customer).instrument = kPmB;
  body<cmd::CreatePayment>(with_customer).customer_id = "cus_1";
  ASSERT_TRUE(apply(with_customer).reply.ok());
  // Top-ups do not take vault cards.
  cmd::CreateTopup t = topup("tu_1", "cus_1", 100);
  t.instrument = kPmB;
  EXPECT_EQ(apply(t).reply.error, Error::parameter_invalid);

  Command own = payment("pay_1");
  body<cmd::CreatePayment>(own).instrument = kPmA;
  ASSERT_TRUE(apply(own).reply.ok());
  const ApplyOutcome confirmed = apply(confirm("pay_1"));
  ASSERT_EQ(confirmed.calls.size(), 1u);
  ASSERT_NE(confirmed.calls[0].card, nullptr);
  EXPECT_EQ(*confirmed.calls[0].card, *core_.payment_methods().find(kPmA));
  // A token payment's call carries no card.
  ASSERT_TRUE(apply(payment("pay_2")).reply.ok());
  const ApplyOutcome token = apply(confirm("pay_2"));
  ASSERT_EQ(token.calls.size(), 1u);
  EXPECT_EQ(token.calls[0].card, nullptr);
}

// A detach removes the card for its owner (or anyone, for an admin's empty owner); another
// owner's detach, or a second one, finds nothing and changes nothing. A payment made with the
// card before the detach still confirms, and its call carries no card: the dispatcher declines
// it without calling the PSP.
TEST_F(CoreTest, ADetachedCardIsGoneForItsOwnerAndPaysNoMore) {
  merchant();
  ASSERT_TRUE(apply(cmd::CreateMerchant{"mch_2", "other", "", ""}).reply.ok());
  using vault::OwnerKind;
  ASSERT_TRUE(
      apply(cmd::StorePaymentMethod{stored_card(kPmA, OwnerKind::merchant, "mch_1")}).reply.ok());
  ASSERT_TRUE(
      apply(cmd::StorePaymentMethod{stored_card(kPmB, OwnerKind::merchant, "mch_1")}).reply.ok());
  Command before = payment("pay_1");
  body<cmd::CreatePayment>(before).instrument = kPmA;
  ASSERT_TRUE(apply(before).reply.ok());

  const std::string state = encoded();
  for (const cmd::DetachPaymentMethod& refused :
       {cmd::DetachPaymentMethod{kPmA, OwnerKind::merchant, "mch_2"},
        cmd::DetachPaymentMethod{kPmA, OwnerKind::customer, "mch_1"},
        cmd::DetachPaymentMethod{"pm_" + std::string(24, 'Z'), OwnerKind::merchant, ""}}) {
    const ApplyOutcome o = apply(refused);
    EXPECT_EQ(o.reply.error, Error::payment_method_not_found) << refused.owner_id;
    EXPECT_FALSE(o.changed);
  }
  EXPECT_EQ(encoded(), state);

  const ApplyOutcome detached = apply(cmd::DetachPaymentMethod{kPmA, OwnerKind::merchant, "mch_1"});
  ASSERT_TRUE(detached.reply.ok());
  EXPECT_TRUE(detached.changed);
  EXPECT_NE(detached.reply.body.find(R"("detached_at":")"), std::string::npos);
  EXPECT_NE(detached.reply.body.find(kPmA), std::string::npos);
  EXPECT_EQ(core_.payment_methods().find(kPmA), nullptr);
  EXPECT_EQ(core_.payment_methods().size(), 1u);
  EXPECT_EQ(apply(cmd::DetachPaymentMethod{kPmA, OwnerKind::merchant, "mch_1"}).reply.error,
            Error::payment_method_not_found);
  // An admin (no owner) detaches any card.
  ASSERT_TRUE(apply(cmd::DetachPaymentMethod{kPmB, OwnerKind::merchant, ""}).reply.ok());
  EXPECT_TRUE(core_.payment_methods().empty());

  Command after = payment("pay_2");
  body<cmd::CreatePayment>(after).instrument = kPmA;
  EXPECT_EQ(apply(after).reply.error, Error::payment_method_not_found);
  const ApplyOutcome confirmed = apply(confirm("pay_1"));
  ASSERT_EQ(confirmed.calls.size(), 1u);
  EXPECT_EQ(confirmed.calls[0].instrument, kPmA);
  EXPECT_EQ(confirmed.calls[0].card, nullptr);
}

// Erasing a customer (keeld deletes their personal data key): the core forgets their name and
// stored cards, refuses new top-ups, payouts and cards for them, and keeps their wallet (a
// transfer out still moves money). Erasing again answers the same; an unknown customer is not
// found and changes nothing. A state with an erasure round-trips; one without any encodes as
// before (version 1), so data written before erasure existed hashes the same.
TEST_F(CoreTest, AnErasedCustomerKeepsTheirMoneyAndTakesNoNewPersonalData) {
  merchant();
  const std::string sealed_name = "pd1." + std::string(2 * (12 + 3 + 16), 'a');
  ASSERT_TRUE(apply(cmd::CreateCustomer{"cus_1", sealed_name}).reply.ok());
  ASSERT_TRUE(apply(customer("cus_2")).reply.ok());
  // A clear name longer than the bound is refused; sealed text of a name at the bound is not.
  EXPECT_EQ(apply(cmd::CreateCustomer{"cus_3", std::string(201, 'n')}).reply.error,
            Error::parameter_invalid);
  ASSERT_TRUE(apply(cmd::CreateCustomer{"cus_4", "pd1." + std::string(2 * (12 + 200 + 16), 'b')})
                  .reply.ok());
  const ApplyOutcome sent = apply(topup("tu_1", "cus_1", 500));
  ASSERT_EQ(sent.calls.size(), 1u);
  EXPECT_EQ(sent.calls[0].customer_id, "cus_1") << "the key that opens the source";
  apply(result(sent.calls[0].attempt_id, AttemptStatus::approved));
  ASSERT_EQ(credits_posted("wallet:cus_1:USD"), 500);
  using vault::OwnerKind;
  ASSERT_TRUE(
      apply(cmd::StorePaymentMethod{stored_card(kPmA, OwnerKind::customer, "cus_1")}).reply.ok());
  ASSERT_TRUE(
      apply(cmd::StorePaymentMethod{stored_card(kPmB, OwnerKind::merchant, "mch_1")}).reply.ok());
  const std::string state = encoded();
  ASSERT_EQ(state.substr(0, 4), std::string("\x01\0\0\0", 4)) << "no erasure: version 1";

  const ApplyOutcome unknown = apply(cmd::EraseCustomer{"cus_9"});
  EXPECT_EQ(unknown.reply.error, Error::customer_not_found);
  EXPECT_FALSE(unknown.changed);
  EXPECT_EQ(encoded(), state);

  const ApplyOutcome erased = apply(cmd::EraseCustomer{"cus_1"});
  ASSERT_TRUE(erased.reply.ok());
  EXPECT_TRUE(erased.changed);
  EXPECT_NE(erased.reply.body.find(R"("name":null)"), std::string::npos) << erased.reply.body;
  EXPECT_NE(erased.reply.body.find(R"("erased_at":")"), std::string::npos);
  EXPECT_EQ(erased.reply.body.find(sealed_name), std::string::npos);
  EXPECT_EQ(core_.payment_methods().find(kPmA), nullptr) << "the customer's card went";
  EXPECT_NE(core_.payment_methods().find(kPmB), nullptr) << "a merchant's card stays";
  const ApplyOutcome again = apply(cmd::EraseCustomer{"cus_1"});
  ASSERT_TRUE(again.reply.ok());
  EXPECT_EQ(again.reply.body, erased.reply.body);

  const std::string after = encoded();
  EXPECT_EQ(apply(topup("tu_2", "cus_1", 100)).reply.error, Error::customer_erased);
  EXPECT_EQ(apply(cmd::CreatePayout{{"po_1", "cus_1", 100, kUsd, "cardco", InstrumentKind::iban,
                                     "DE89370400440532013000"}})
                .reply.error,
            Error::customer_erased);
  EXPECT_EQ(
      apply(cmd::StorePaymentMethod{stored_card(kPmA, OwnerKind::customer, "cus_1")}).reply.error,
      Error::customer_erased);
  EXPECT_EQ(encoded(), after) << "refused: nothing changed";
  // The money stays the customer's: a wallet transfer out moves it.
  ASSERT_TRUE(apply(cmd::CreateWalletTransfer{"wt_1", "cus_1", "cus_2", 200, kUsd}).reply.ok());
  EXPECT_EQ(credits_posted("wallet:cus_2:USD"), 200);
  // Others are untouched.
  ASSERT_TRUE(apply(topup("tu_3", "cus_2", 100)).reply.ok());

  const std::string bytes = encoded();
  EXPECT_EQ(bytes.substr(0, 4), std::string("\x02\0\0\0", 4));
  PaymentsCore decoded;
  ASSERT_TRUE(PaymentsCore::decode(bytes, {}, &decoded).is_ok());
  std::string back;
  decoded.encode(&back);
  EXPECT_EQ(back, bytes);
  EXPECT_NE(decoded.render("cus_1").find(R"("erased_at":")"), std::string::npos);
}

TEST_F(CoreTest, RewrapsApplyOnceAndTheVaultSectionRoundTrips) {
  merchant();
  const std::string before = encoded();
  ASSERT_TRUE(apply(cmd::StorePaymentMethod{stored_card(kPmA, vault::OwnerKind::merchant, "mch_1")})
                  .reply.ok());
  const std::string wrapped(vault::kWrappedKeyBytes, 'w');
  const ApplyOutcome stale = apply(cmd::RewrapPaymentMethods{{{kPmA, 7, 8, wrapped}}});
  EXPECT_EQ(stale.reply.error, Error::unchanged);
  EXPECT_FALSE(stale.changed);
  const ApplyOutcome moved = apply(cmd::RewrapPaymentMethods{{{kPmA, 1, 2, wrapped}}});
  ASSERT_TRUE(moved.reply.ok());
  EXPECT_EQ(moved.reply.body, R"({"rewrapped":1})");
  EXPECT_EQ(core_.payment_methods().find(kPmA)->sealed.key_version, 2u);
  EXPECT_EQ(core_.payment_methods().find(kPmA)->sealed.wrapped_key, wrapped);
  EXPECT_EQ(apply(cmd::RewrapPaymentMethods{{{kPmA, 1, 2, wrapped}}}).reply.error,
            Error::unchanged);
  Query q;
  q.kind = QueryKind::vault_key_versions;
  EXPECT_EQ(core_.query(q, ledger_).key_versions, (std::map<uint32_t, uint64_t>{{2, 1}}));
  q.kind = QueryKind::payment_methods_to_rewrap;
  q.key_version = 2;
  q.limit = 10;
  EXPECT_TRUE(core_.query(q, ledger_).payment_methods.empty());
  q.key_version = 3;
  EXPECT_EQ(core_.query(q, ledger_).payment_methods.size(), 1u);

  const std::string bytes = encoded();
  EXPECT_NE(bytes, before);
  PaymentsCore decoded;
  ASSERT_TRUE(PaymentsCore::decode(bytes, {}, &decoded).is_ok());
  std::string again;
  decoded.encode(&again);
  EXPECT_EQ(again, bytes);
  EXPECT_EQ(*decoded.payment_methods().find(kPmA), *core_.payment_methods().find(kPmA));
  // Cut inside the trailing parts (cut before them, the bytes are a state without them).
  for (size_t n = before.size() + 1; n < bytes.size(); n += 5) {
    PaymentsCore d;
    EXPECT_FALSE(PaymentsCore::decode(bytes.substr(0, n), {}, &d).is_ok()) << n;
  }
}

TEST_F(CoreTest, ResealedWebhookSecretsReplaceTheStoredBytesOnce) {
  ASSERT_TRUE(
      apply(cmd::CreateMerchant{"mch_1", "shop", "http://127.0.0.1:9/h", "whsec_1"}).reply.ok());
  ASSERT_TRUE(apply(cmd::RotateWebhookSecret{"mch_1", "whsec_2", 3600}).reply.ok());
  const std::string sealed_1 =
      std::string(vault::kSealedSecretMagic) + std::string(vault::kSealedSecretOverhead, 'x') + "1";
  const std::string sealed_2 =
      std::string(vault::kSealedSecretMagic) + std::string(vault::kSealedSecretOverhead, 'y') + "2";
  Query q;
  q.kind = QueryKind::webhook_secrets;
  EXPECT_EQ(core_.query(q, ledger_).secrets, (std::vector<std::pair<std::string, std::string>>{
                                                 {"mch_1", "whsec_2"}, {"mch_1", "whsec_1"}}));
  // Bytes that are no longer stored, or a malformed new value, change nothing.
  EXPECT_EQ(apply(cmd::ResealWebhookSecrets{{{"mch_1", "whsec_9", sealed_1}}}).reply.error,
            Error::unchanged);
  EXPECT_EQ(apply(cmd::ResealWebhookSecrets{{{"mch_1", "whsec_1", "bad secret"}}}).reply.error,
            Error::unchanged);
  const ApplyOutcome both = apply(cmd::ResealWebhookSecrets{
      {{"mch_1", "whsec_1", sealed_1}, {"mch_1", "whsec_2", sealed_2}, {"mch_9", "x", sealed_1}}});
  ASSERT_TRUE(both.reply.ok());
  EXPECT_EQ(both.reply.body, R"({"resealed":2})");
  EXPECT_EQ(core_.outbox().endpoint("mch_1")->secret, sealed_2);
  EXPECT_EQ(core_.outbox().endpoint("mch_1")->previous_secret, sealed_1);
  q.kind = QueryKind::vault_key_versions;
  EXPECT_EQ(core_.query(q, ledger_).secret_key_versions.size(), 2u);  // two made-up versions
  EXPECT_EQ(apply(cmd::ResealWebhookSecrets{{{"mch_1", "whsec_1", sealed_1}}}).reply.error,
            Error::unchanged);
}

TEST_F(CoreTest, AWebhookSecretRotationIsCheckedThenBothSecretsSignDuringTheOverlap) {
  using Rotate = cmd::RotateWebhookSecret;
  const auto error_of = [this](Command c) { return apply(std::move(c)).reply.error; };
  ASSERT_TRUE(
      apply(cmd::CreateMerchant{"mch_1", "shop", "http://127.0.0.1:9/h", "whsec_1"}).reply.ok());
  ASSERT_TRUE(apply(cmd::CreateMerchant{"mch_2", "shop", "", ""}).reply.ok());
  std::string before;
  core_.encode(&before);
  EXPECT_EQ(error_of(Rotate{"mch_9", "whsec_2", 60}), Error::resource_missing);
  EXPECT_EQ(error_of(Rotate{"mch_2", "whsec_2", 60}), Error::webhook_endpoint_missing);
  EXPECT_EQ(error_of(Rotate{"mch_1", "whsec_1", 60}), Error::unchanged);
  EXPECT_EQ(error_of(Rotate{"mch_1", "", 60}), Error::parameter_invalid);
  EXPECT_EQ(error_of(Rotate{"mch_1", std::string(257, 'x'), 60}), Error::parameter_invalid);
  EXPECT_EQ(error_of(Rotate{"mch_1", "whsec_2", -1}), Error::parameter_invalid);
  EXPECT_EQ(error_of(Rotate{"mch_1", "whsec_2", kWebhookSecretOverlapMaxS + 1}),
            Error::parameter_invalid);
  std::string after_refusals;
  core_.encode(&after_refusals);
  EXPECT_EQ(after_refusals, before);  // refused: nothing changed

  const ApplyOutcome rotated = apply(Rotate{"mch_1", "whsec_2", 3600});
  ASSERT_TRUE(rotated.reply.ok());
  EXPECT_TRUE(rotated.changed);
  EXPECT_NE(rotated.reply.body.find(R"("webhook_secret":"whsec_2")"), std::string::npos);
  EXPECT_NE(rotated.reply.body.find(R"("previous_secret_expires_at":")"), std::string::npos);
  const WebhookEndpoint* ep = core_.outbox().endpoint("mch_1");
  ASSERT_NE(ep, nullptr);
  EXPECT_EQ(ep->secret, "whsec_2");
  EXPECT_EQ(ep->previous_secret, "whsec_1");
  EXPECT_EQ(ep->previous_until, now_ + 3600 * kNanosPerSecond);
  const ApplyOutcome at_once = apply(Rotate{"mch_1", "whsec_3", 0});
  ASSERT_TRUE(at_once.reply.ok());
  EXPECT_NE(at_once.reply.body.find(R"("previous_secret_expires_at":null)"), std::string::npos);
  EXPECT_EQ(core_.outbox().endpoint("mch_1")->previous_secret, "");
}

// No channels (routing turned off) is a command of its own, and decodes as it was written.
TEST(Commands, AnEmptyChannelListRoundTrips) {
  const Command off(cmd::SetChannels{});
  std::string bytes;
  encode_command(off, &bytes);
  Command back;
  ASSERT_TRUE(decode_command(bytes, &back).is_ok());
  EXPECT_EQ(back, off);
}

TEST(Commands, EveryKindRoundTripsAndMalformedBytesAreRefused) {
  const std::vector<Command> all = every_kind();
  ASSERT_EQ(all.size(), static_cast<size_t>(kCommandKindLast));
  for (size_t i = 0; i < all.size(); ++i) {
    const Command& c = all[i];
    EXPECT_EQ(c.kind(), static_cast<CommandKind>(i + 1));
    std::string bytes;
    encode_command(c, &bytes);
    Command d;
    ASSERT_TRUE(decode_command(bytes, &d).is_ok()) << command_kind_name(c.kind());
    EXPECT_EQ(d, c) << command_kind_name(c.kind());
    for (size_t n = 0; n < bytes.size(); ++n) {
      EXPECT_FALSE(decode_command(bytes.substr(0, n), &d).is_ok()) << n;
    }
    EXPECT_FALSE(decode_command(bytes + "x", &d).is_ok());
    std::string bad_kind = bytes;
    bad_kind[1] = 99;
    EXPECT_FALSE(decode_command(bad_kind, &d).is_ok());
  }
  // A webhook report names its event; a status query or a PSP's answer does not.
  Command webhook = all[13];
  std::get<cmd::OperationStatus>(webhook.body).webhook_event.clear();
  std::string bytes;
  encode_command(webhook, &bytes);
  Command d;
  EXPECT_FALSE(decode_command(bytes, &d).is_ok());
}

// Versions 3 and 4 wrote one flat record for every kind (encode_command before version 5).
std::string flat_record(uint8_t version, CommandKind kind, const std::vector<std::string>& strings,
                        int64_t amount, OperationState op_state, const AttemptResult& r,
                        bool capture_manual) {
  std::string out;
  ByteWriter w(&out);
  w.u8(version);
  w.u8(static_cast<uint8_t>(kind));
  // client, key, fingerprint, id, name, url, secret, merchant_id, customer_id,
  // to_customer_id, payment_id, channel, instrument, cause, event_id, psp_reference, error_code
  for (size_t i = 0; i < 17; ++i) {
    const std::string none;
    const std::string& v = i == 15              ? r.psp_reference
                           : i == 16            ? r.error_code
                           : i < strings.size() ? strings[i]
                                                : none;
    w.str16(v);
  }
  w.i64(amount);
  write_currency(w, kUsd);
  w.u8(static_cast<uint8_t>(InstrumentKind::none));
  write_bool(w, capture_manual);
  write_bool(w, false);
  w.u8(static_cast<uint8_t>(r.status));
  write_bool(w, r.captured);
  w.i64(r.fee);
  w.i64(r.latency_ms);
  write_bool(w, false);
  w.u8(static_cast<uint8_t>(op_state));
  encode_fees(w, FeeSchedule{});
  if (version == 4) w.u8(0);  // no optional parts
  return out;
}

TEST(Commands, FlatRecordsOfVersions3And4StillDecode) {
  const AttemptResult r{AttemptStatus::approved, true, "psp_1", "", 30, 12};
  const AttemptResult none;
  struct Case {
    std::string bytes;
    Command expected;
  };
  const std::string f(kFingerprintBytes, 'f');
  for (uint8_t version : {3, 4}) {
    for (const Case& k : std::vector<Case>{
             {flat_record(version, CommandKind::create_payment,
                          {"c", "k", f, "pay_1", "", "", "", "mch_1", "", "", "", "", "tok"}, 1250,
                          {}, none, true),
              Command(cmd::CreatePayment{"pay_1", 1250, kUsd, "mch_1", "", "tok", true, false})},
             {flat_record(version, CommandKind::confirm_payment,
                          {"", "", "", "pay_1", "", "", "", "", "", "", "", "cardco"}, 0, {}, none,
                          false),
              Command(cmd::ConfirmPayment{"pay_1", "cardco"})},
             {flat_record(
                  version, CommandKind::attempt_result,
                  {"", "", "", "pay_1_a1", "", "", "", "", "", "", "", "", "", "psp_response"}, 0,
                  {}, r, false),
              Command(cmd::AttemptResult{"pay_1_a1", r})},
             {flat_record(version, CommandKind::operation_status,
                          {"", "", "", "pay_1_a1", "", "", "", "", "", "", "", "cardco", "",
                           "webhook:evt_7"},
                          0, OperationState::captured, r, false),
              Command(cmd::OperationStatus{"cardco", "pay_1_a1", OperationState::captured, r,
                                           ResultSource::webhook, "evt_7"})},
             {flat_record(version, CommandKind::operation_status,
                          {"", "", "", "pay_1_a1", "", "", "", "", "", "", "", "cardco", "",
                           "status_query"},
                          0, OperationState::not_found, none, false),
              Command(cmd::OperationStatus{"cardco", "pay_1_a1", OperationState::not_found, none,
                                           ResultSource::status_query, ""})},
         }) {
      Command d;
      ASSERT_TRUE(decode_command(k.bytes, &d).is_ok()) << int{version};
      Command expected = k.expected;
      if (expected.kind() == CommandKind::create_payment) expected.idempotency = {"c", "k", f};
      EXPECT_EQ(d, expected) << int{version} << " " << command_kind_name(expected.kind());
    }
    // A part version 4 did not know, a cause keel never wrote: not guessed at.
    Command d;
    std::string bad_tail =
        flat_record(4, CommandKind::cancel_payment, {"", "", "", "pay_1"}, 0, {}, none, false);
    bad_tail.back() = static_cast<char>(0x80);
    EXPECT_FALSE(decode_command(bad_tail, &d).is_ok());
    EXPECT_FALSE(
        decode_command(flat_record(version, CommandKind::operation_status,
                                   {"", "", "", "a", "", "", "", "", "", "", "", "x", "", "gossip"},
                                   0, OperationState::captured, none, false),
                       &d)
            .is_ok());
  }
}

// --- routing ------------------------------------------------------------------------------

routing::Decision decision(routing::DecisionKind kind, std::string channel, int64_t delay_ms = 0) {
  routing::Decision d;
  d.kind = kind;
  d.channel = std::move(channel);
  d.delay_ms = delay_ms;
  if (!d.channel.empty()) d.candidates.push_back({d.channel, 900'000, 950'000, 50'000, 40, 12});
  return d;
}

Command routed(Command c, routing::Decision d) {
  c.routed = true;
  c.route = std::move(d);
  return c;
}

TEST_F(CoreTest, ARoutedConfirmUsesTheDecisionsChannelAndKeepsTheDecision) {
  merchant();
  ASSERT_TRUE(apply(payment("pay_1")).reply.ok());
  Command c = cmd::ConfirmPayment{"pay_1", ""};  // nobody pinned it
  const auto ask = core_.route_request(c);
  ASSERT_TRUE(ask);
  EXPECT_EQ(ask->amount, 1250);
  EXPECT_EQ(ask->currency, kUsd);
  EXPECT_TRUE(ask->pinned.empty());
  EXPECT_TRUE(ask->tried.empty());
  const ApplyOutcome out = apply(routed(c, decision(routing::DecisionKind::routed, "bankco")));
  ASSERT_TRUE(out.reply.ok());
  ASSERT_EQ(out.calls.size(), 1u);
  EXPECT_EQ(out.calls[0].channel, "bankco");
  Query q;
  q.kind = QueryKind::get_payment;
  q.id = "pay_1";
  const std::string body = core_.query(q, ledger_).body;
  EXPECT_NE(body.find(R"("routing":[{"attempt":"pay_1_a1","kind":"routed","channel":"bankco")"),
            std::string::npos)
      << body;
  // Stored bodies stay as render() makes them: no routing block.
  EXPECT_EQ(core_.render("pay_1").find("routing"), std::string::npos);
  // A payment already confirmed asks routing nothing.
  EXPECT_FALSE(core_.route_request(c));
}

TEST_F(CoreTest, NoChannelAnswersAndChangesNothing) {
  merchant();
  ASSERT_TRUE(apply(payment("pay_1")).reply.ok());
  const std::string before = encoded();
  routing::Decision none = decision(routing::DecisionKind::none, "");
  none.rejected = {{"cardco", routing::Rejection::breaker_open},
                   {"bankco", routing::Rejection::currency}};
  ApplyOutcome out = apply(routed(confirm("pay_1"), none));
  EXPECT_EQ(out.reply.error, Error::no_channel_available);
  EXPECT_NE(out.reply.error_message.find("cardco breaker_open, bankco currency"),
            std::string::npos);
  EXPECT_FALSE(out.changed);
  none.rejected = {{"bankco", routing::Rejection::currency}};
  out = apply(routed(confirm("pay_1"), none));
  EXPECT_EQ(out.reply.error, Error::channel_ineligible);
  EXPECT_EQ(encoded(), before);
}

TEST_F(CoreTest, ARetryableOrSoftDeclinedAuthorizationFailsOverWhereRoutingSays) {
  merchant();
  ASSERT_TRUE(apply(payment("pay_1")).reply.ok());
  ASSERT_TRUE(apply(routed(confirm("pay_1"), decision(routing::DecisionKind::routed, "cardco")))
                  .reply.ok());
  // Soft decline: routing is asked, with the channels tried so far.
  Command soft = result("pay_1_a1", AttemptStatus::declined_soft);
  const auto ask = core_.route_request(soft);
  ASSERT_TRUE(ask);
  EXPECT_EQ(ask->tried, std::vector<std::string>{"cardco"});
  ApplyOutcome out = apply(routed(soft, decision(routing::DecisionKind::failover, "bankco")));
  ASSERT_TRUE(out.changed);
  ASSERT_EQ(out.calls.size(), 1u);
  EXPECT_EQ(out.calls[0].attempt_id, "pay_1_a2");
  EXPECT_EQ(out.calls[0].channel, "bankco");
  EXPECT_EQ(out.calls[0].delay_ms, 0);
  // Retryable on bankco: a retry on cardco after a backoff.
  out = apply(routed(result("pay_1_a2", AttemptStatus::retryable),
                     decision(routing::DecisionKind::retry, "cardco", 180)));
  ASSERT_EQ(out.calls.size(), 1u);
  EXPECT_EQ(out.calls[0].channel, "cardco");
  EXPECT_EQ(out.calls[0].delay_ms, 180);
  // An `unknown` answer asks routing nothing: no failover until it is resolved.
  EXPECT_FALSE(core_.route_request(result("pay_1_a3", AttemptStatus::unknown)));
  ASSERT_TRUE(apply(result("pay_1_a3", AttemptStatus::unknown)).changed);
  // The resolver finds it never arrived: now routing may move it on; routing says stop.
  const Command never = op_status("pay_1_a3", OperationState::not_found);
  ASSERT_TRUE(core_.route_request(never));
  routing::Decision stop = decision(routing::DecisionKind::none, "");
  stop.tries_exhausted = true;
  out = apply(routed(never, stop));
  EXPECT_TRUE(out.calls.empty());
  Query q;
  q.kind = QueryKind::get_payment;
  q.id = "pay_1";
  const std::string body = core_.query(q, ledger_).body;
  EXPECT_NE(body.find(R"("status":"failed")"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("attempt":"pay_1_a2","kind":"failover")"), std::string::npos);
  EXPECT_NE(
      body.find(R"("attempt":"pay_1_a3","kind":"retry","channel":"cardco","try":1,"delay_ms":180)"),
      std::string::npos)
      << body;
  // The routing section survives a snapshot, and the state decodes to the same bytes.
  PaymentsCore back;
  ASSERT_TRUE(PaymentsCore::decode(encoded(), {}, &back).is_ok());
  std::string again;
  back.encode(&again);
  EXPECT_EQ(again, encoded());
  EXPECT_EQ(back.query(q, ledger_).body, body);
}

TEST_F(CoreTest, TopUpsAndPayoutsAskRoutingAndGoWhereItSays) {
  ASSERT_TRUE(apply(customer("cus_1")).reply.ok());
  cmd::CreateTopup topup = CoreTest::topup("tu_1", "cus_1", 500);
  topup.channel.clear();  // nobody pinned it
  auto ask = core_.route_request(topup);
  ASSERT_TRUE(ask);
  EXPECT_EQ(ask->flow, routing::Flow::topup);
  EXPECT_EQ(ask->amount, 500);
  EXPECT_TRUE(ask->pinned.empty());
  // No channel: a clear answer and nothing changes.
  const std::string before = encoded();
  routing::Decision none = decision(routing::DecisionKind::none, "");
  none.rejected = {{"bankco", routing::Rejection::paused}};
  const ApplyOutcome refused = apply(routed(topup, none));
  EXPECT_EQ(refused.reply.error, Error::no_channel_available);
  EXPECT_FALSE(refused.changed);
  EXPECT_EQ(encoded(), before);
  const ApplyOutcome sent = apply(routed(topup, decision(routing::DecisionKind::routed, "bankco")));
  ASSERT_TRUE(sent.reply.ok());
  ASSERT_EQ(sent.calls.size(), 1u);
  EXPECT_EQ(sent.calls[0].channel, "bankco");
  // A payout names its channel: pinned. Requests the core refuses anyway ask routing nothing.
  cmd::CreatePayout payout{{"po_1", "cus_1", 100, kUsd, "bankco", InstrumentKind::iban, "DE89"}};
  ask = core_.route_request(payout);
  ASSERT_TRUE(ask);
  EXPECT_EQ(ask->flow, routing::Flow::payout);
  EXPECT_EQ(ask->pinned, "bankco");
  for (cmd::CreateTopup bad :
       {CoreTest::topup("tu_2", "cus_1", 0), CoreTest::topup("tu_3", "cus_nobody", 500),
        CoreTest::topup("tu_1", "cus_1", 500)}) {
    EXPECT_FALSE(core_.route_request(bad)) << bad.id;
  }
}

TEST_F(CoreTest, APinnedPaymentStaysPinnedOnFailover) {
  merchant();
  ASSERT_TRUE(apply(payment("pay_1")).reply.ok());
  ASSERT_TRUE(apply(routed(confirm("pay_1"), decision(routing::DecisionKind::pinned, "cardco")))
                  .reply.ok());
  const auto ask = core_.route_request(result("pay_1_a1", AttemptStatus::retryable));
  ASSERT_TRUE(ask);
  EXPECT_EQ(ask->pinned, "cardco");
}

TEST_F(CoreTest, ChannelsAndBreakerTransitionsAreStateThatSnapshotsKeep) {
  const std::string empty = encoded();
  routing::ChannelDef a;
  a.name = "cardco";
  a.psp = "cardco";
  const cmd::SetChannels set{{a}};
  ASSERT_TRUE(apply(set).reply.ok());
  EXPECT_EQ(apply(set).reply.error, Error::unchanged);  // unchanged: nothing to journal
  cmd::SetChannels bad = set;
  bad.channels[0].min_amount = 0;
  EXPECT_EQ(apply(bad).reply.error, Error::parameter_invalid);
  const cmd::ChannelEvent event{{"cardco", routing::BreakerState::closed,
                                 routing::BreakerState::open, "failure rate 80% of 10 calls",
                                 now_}};
  ASSERT_TRUE(apply(event).changed);
  EXPECT_FALSE(apply(event).changed);  // from `closed` no more
  EXPECT_EQ(core_.channels().breaker("cardco")->state, routing::BreakerState::open);
  PaymentsCore back;
  ASSERT_TRUE(PaymentsCore::decode(encoded(), {}, &back).is_ok());
  EXPECT_EQ(back.channels(), core_.channels());
  EXPECT_NE(encoded(), empty);
  // A state without channels or decisions encodes as before routing existed (no section).
  PaymentsCore fresh;
  std::string fresh_bytes;
  fresh.encode(&fresh_bytes);
  EXPECT_EQ(fresh_bytes, empty);
}

Command control(ControlKind kind, std::string target = {}, std::string canary = {},
                uint32_t share = 0) {
  return cmd::Control{{kind, std::move(target), std::move(canary), share, "incident 42"}};
}

TEST_F(CoreTest, ReadOnlyRefusesClientWritesButNotTheWorkAlreadyStarted) {
  merchant();
  const ApplyOutcome first = apply(keyed(payment("pay_1"), "k1", kFingerprintA));
  ASSERT_TRUE(first.reply.ok());
  ASSERT_TRUE(apply(confirm("pay_1")).reply.ok());
  ASSERT_TRUE(apply(control(ControlKind::read_only_on)).reply.ok());
  // A retry of a request that finished before gets its stored answer (it asks nothing new);
  // the same key with another request is still refused.
  const ApplyOutcome retry = apply(keyed(payment("pay_1"), "k1", kFingerprintA));
  ASSERT_TRUE(retry.reply.ok());
  EXPECT_TRUE(retry.reply.replayed);
  EXPECT_EQ(retry.reply.body, first.reply.body);
  EXPECT_EQ(apply(keyed(payment("pay_1"), "k1", kFingerprintB)).reply.error, Error::read_only);
  EXPECT_TRUE(core_.read_only());
  const std::string before = encoded();
  for (Command c :
       {payment("pay_2"), confirm("pay_1"), keyed(payment("pay_3"), "k", kFingerprintA)}) {
    const ApplyOutcome out = apply(c);
    EXPECT_EQ(out.reply.error, Error::read_only);
    EXPECT_FALSE(out.changed);
  }
  EXPECT_EQ(encoded(), before);  // not even the key was taken
  // The PSP's answer still settles the payment: read-only mode strands nothing.
  const ApplyOutcome settled = apply(result("pay_1_a1", AttemptStatus::approved));
  EXPECT_TRUE(settled.changed);
  EXPECT_EQ(credits_posted("merchant:mch_1:USD"), 1250);
  ASSERT_TRUE(apply(control(ControlKind::read_only_off)).reply.ok());
  EXPECT_TRUE(apply(payment("pay_2")).reply.ok());
}

TEST_F(CoreTest, AKillSwitchStopsItsFlowOnly) {
  merchant();
  ASSERT_TRUE(apply(payment("pay_1")).reply.ok());
  const ApplyOutcome off = apply(control(ControlKind::flow_disable, "card_payments"));
  ASSERT_TRUE(off.reply.ok());
  EXPECT_NE(off.reply.body.find(R"("flows_disabled":["card_payments"])"), std::string::npos)
      << off.reply.body;
  ApplyOutcome out = apply(confirm("pay_1"));
  EXPECT_EQ(out.reply.error, Error::flow_disabled);
  EXPECT_EQ(apply(payment("pay_2")).reply.error, Error::flow_disabled);
  // Other flows go on.
  EXPECT_TRUE(apply(customer("cus_1")).reply.ok());
  ASSERT_TRUE(apply(control(ControlKind::flow_enable, "card_payments")).reply.ok());
  EXPECT_TRUE(apply(confirm("pay_1")).reply.ok());
}

TEST_F(CoreTest, BadControlsAnswerAClearErrorAndChangeNothing) {
  cmd::SetChannels set;
  routing::ChannelDef a;
  a.name = "cardco";
  a.psp = "cardco";
  routing::ChannelDef b = a;
  b.name = "bankco";
  b.psp = "bankco";
  routing::ChannelDef canary = a;
  canary.name = "cardco_v2";
  canary.canary_of = "cardco";
  set.channels = {a, b, canary};
  ASSERT_TRUE(apply(set).reply.ok());
  const std::string before = encoded();
  struct Case {
    Command c;
    Error error;
    std::string param;
  };
  Command long_reason = control(ControlKind::channel_pause, "cardco");
  std::get<cmd::Control>(long_reason.body).control.reason.assign(201, 'x');
  for (const Case& k : std::vector<Case>{
           {control(ControlKind::channel_pause, "nope"), Error::resource_missing, "id"},
           {control(ControlKind::channel_canary, "cardco", "cardco_v2", 101),
            Error::parameter_invalid, "share"},
           {control(ControlKind::channel_canary, "cardco", "nope", 10), Error::resource_missing,
            "to"},
           {control(ControlKind::channel_canary, "bankco", "cardco_v2", 10),
            Error::parameter_invalid, "to"},
           {control(ControlKind::canary_rollback, "cardco", "cardco_v2"), Error::stale_control, ""},
           {control(ControlKind::flow_disable, "cards"), Error::parameter_invalid, "flow"},
           {long_reason, Error::parameter_invalid, "reason"},
       }) {
    const ApplyOutcome out = apply(k.c);
    EXPECT_EQ(out.reply.error, k.error) << out.reply.error_message;
    EXPECT_EQ(out.reply.error_param, k.param) << out.reply.error_message;
    EXPECT_FALSE(out.changed);
  }
  EXPECT_EQ(encoded(), before);
  // Good ones are state, with their audit trail, and survive a snapshot.
  ASSERT_TRUE(apply(control(ControlKind::channel_pause, "bankco")).reply.ok());
  ASSERT_TRUE(apply(control(ControlKind::channel_canary, "cardco", "cardco_v2", 10)).reply.ok());
  ASSERT_TRUE(apply(control(ControlKind::canary_rollback, "cardco", "cardco_v2")).reply.ok());
  EXPECT_TRUE(core_.channels().control("bankco").paused);
  EXPECT_EQ(core_.channels().control("cardco").canary_share_pct, 0U);
  PaymentsCore back;
  ASSERT_TRUE(PaymentsCore::decode(encoded(), {}, &back).is_ok());
  std::string again;
  back.encode(&again);
  EXPECT_EQ(again, encoded());
  Query q;
  q.kind = QueryKind::get_controls;
  const std::string body = back.query(q, ledger_).body;
  EXPECT_NE(body.find(R"("changes":[{"at")"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("kind":"canary_rollback","target":"cardco","canary":"cardco_v2")"),
            std::string::npos)
      << body;
  EXPECT_NE(body.find(R"("reason":"incident 42")"), std::string::npos);
}

TEST_F(CoreTest, TheRequestsTraceparentGoesWithEveryPspCallOfItsObjectAfterARestartToo) {
  const std::string trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  merchant();
  Command create = payment("pay_1");
  create.traceparent = trace;
  ASSERT_TRUE(apply(create).reply.ok());
  // The confirm came without one: the payment's trace still goes with its call.
  ApplyOutcome out = apply(confirm("pay_1"));
  ASSERT_EQ(out.calls.size(), 1u);
  EXPECT_EQ(out.calls[0].traceparent, trace);
  ASSERT_TRUE(apply(result("pay_1_a1", AttemptStatus::unknown)).changed);
  // Status queries too, also from a decoded snapshot (after a restart).
  PaymentsCore back;
  ASSERT_TRUE(PaymentsCore::decode(encoded(), {}, &back).is_ok());
  const std::vector<ResolveRequest> open = back.outstanding_attempts();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].traceparent, trace);
  // The command codec keeps it; one of another length is not a traceparent.
  std::string bytes;
  encode_command(create, &bytes);
  Command d;
  ASSERT_TRUE(decode_command(bytes, &d).is_ok());
  EXPECT_EQ(d.traceparent, trace);
  create.traceparent = "00-short";
  bytes.clear();
  encode_command(create, &bytes);
  EXPECT_FALSE(decode_command(bytes, &d).is_ok());
}

TEST(JsonWriter, EscapesAndSeparates) {
  JsonWriter w;
  w.begin_object();
  w.field("a", "x\"y\\z\n\x01");
  w.key("list");
  w.begin_array();
  w.number(-1);
  w.boolean(true);
  w.null();
  w.raw("{}");
  w.end_array();
  w.field_or_null("empty", "");
  w.end_object();
  EXPECT_EQ(w.str(), R"({"a":"x\"y\\z\n\u0001","list":[-1,true,null,{}],"empty":null})");
}

}  // namespace
}  // namespace keel::payments
