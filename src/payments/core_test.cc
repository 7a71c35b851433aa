#include "payments/core.h"

#include <gtest/gtest.h>

#include "core/json_writer.h"
#include "ledger/ledger.h"

namespace keel::payments {
namespace {

constexpr Timestamp kT0 = 1'800'000'000 * kNanosPerSecond;
const Currency kUsd = *Currency::from_code("USD");
const std::string kFingerprintA(kFingerprintBytes, 'a');
const std::string kFingerprintB(kFingerprintBytes, 'b');

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
    Command c;
    c.kind = CommandKind::create_merchant;
    c.id = "mch_1";
    c.name = "shop";
    EXPECT_EQ(apply(c).reply.status, 200);
    return c.id;
  }
  Command payment(std::string id) {
    Command c;
    c.kind = CommandKind::create_payment;
    c.id = std::move(id);
    c.amount = 1250;
    c.currency = kUsd;
    c.merchant_id = "mch_1";
    c.instrument_kind = InstrumentKind::card_token;
    c.instrument = "tok_visa";
    return c;
  }
  static Command confirm(std::string id) {
    Command c;
    c.kind = CommandKind::confirm_payment;
    c.id = std::move(id);
    c.channel = "cardco";
    return c;
  }
  static Command result(std::string attempt, AttemptStatus s) {
    Command c;
    c.kind = CommandKind::attempt_result;
    c.id = std::move(attempt);
    c.result.status = s;
    c.result.psp_reference = "psp_1";
    c.result.latency_ms = 7;
    c.cause = "psp_response";
    return c;
  }
  static Command op_status(std::string reference, OperationState s) {
    Command c;
    c.kind = CommandKind::operation_status;
    c.channel = "cardco";
    c.id = std::move(reference);
    c.op_state = s;
    c.cause = "status_query";
    return c;
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
  ASSERT_EQ(apply(payment("pay_1")).reply.status, 200);
  const ApplyOutcome sent = apply(keyed(confirm("pay_1"), "k1", kFingerprintA));
  EXPECT_TRUE(sent.changed);
  EXPECT_FALSE(sent.reply.settled);
  ASSERT_EQ(sent.calls.size(), 1u);
  EXPECT_EQ(sent.calls[0].instrument, "tok_visa");
  EXPECT_TRUE(sent.completed.empty());

  // The same key again while the attempt is open: 409, nothing changes.
  const std::string before = encoded();
  const ApplyOutcome again = apply(keyed(confirm("pay_1"), "k1", kFingerprintA));
  EXPECT_EQ(again.reply.status, 409);
  EXPECT_EQ(again.reply.error_code, "idempotency_key_in_use");
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
  EXPECT_EQ(apply(keyed(confirm("pay_1"), "k1", kFingerprintB)).reply.status, 422);
}

TEST_F(CoreTest, AFailedRequestReleasesItsKeySoACorrectedRetryRuns) {
  merchant();
  Command bad = payment("pay_1");
  bad.merchant_id = "mch_nope";
  const std::string before = encoded();
  const ApplyOutcome refused = apply(keyed(bad, "k1", kFingerprintA));
  EXPECT_EQ(refused.reply.status, 400);
  EXPECT_EQ(refused.reply.error_code, "merchant_not_found");
  EXPECT_FALSE(refused.changed);
  EXPECT_EQ(encoded(), before);
  EXPECT_EQ(apply(keyed(payment("pay_1"), "k1", kFingerprintB)).reply.status, 200);
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
    EXPECT_EQ(late.reply.error_code, "stale_result");
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
  other_channel.channel = "bankco";  // another PSP cannot settle cardco's attempt
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
  manual.capture_manual = true;
  apply(manual);
  const std::string auth = apply(confirm("pay_1")).calls.at(0).attempt_id;
  apply(result(auth, AttemptStatus::approved));
  Command capture;
  capture.kind = CommandKind::capture_payment;
  capture.id = "pay_1";
  const ApplyOutcome captured = apply(capture);
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
  Command mark;
  mark.kind = CommandKind::mark_pending_unknown;
  const ApplyOutcome marked = apply(mark);
  EXPECT_TRUE(marked.changed);
  ASSERT_EQ(marked.resolve.size(), 1u);
  EXPECT_EQ(marked.resolve[0].attempt_id, attempt);
  EXPECT_FALSE(apply(mark).changed);  // nothing pending any more
}

TEST_F(CoreTest, MerchantEventsFollowEveryStatusTheMerchantSees) {
  Command m;
  m.kind = CommandKind::create_merchant;
  m.id = "mch_1";
  m.url = "http://127.0.0.1:9/hooks";
  m.secret = "whsec_1";
  ASSERT_EQ(apply(m).reply.status, 200);
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
  Command delivered;
  delivered.kind = CommandKind::outbox_attempt;
  delivered.id = due[0].event_id;
  delivered.delivered = true;
  EXPECT_TRUE(apply(delivered).changed);
  EXPECT_FALSE(apply(delivered).changed);  // already delivered
  EXPECT_EQ(core_.due_deliveries(now_, 10, {}).size(), 2u);
}

TEST_F(CoreTest, AProcessingPaymentPastItsDeadlineIsFlaggedForReviewAndAnswered) {
  merchant();
  apply(payment("pay_1"));
  const std::string attempt =
      apply(keyed(confirm("pay_1"), "k1", kFingerprintA)).calls.at(0).attempt_id;
  apply(result(attempt, AttemptStatus::unknown));
  ASSERT_TRUE(core_.next_deadline().has_value());
  const ApplyOutcome ticked = tick(31 * 60 * kNanosPerSecond);
  EXPECT_TRUE(ticked.changed);
  ASSERT_EQ(ticked.completed.size(), 1u);  // the waiting key completes with the review state
  EXPECT_NE(ticked.completed[0].reply.body.find("\"requires_review\":true"), std::string::npos);
  EXPECT_EQ(core_.counts().in_review, 1u);
  // A late answer still settles it.
  EXPECT_TRUE(apply(op_status(attempt, OperationState::captured)).changed);
  EXPECT_EQ(core_.counts().in_review, 0u);
  EXPECT_EQ(credits_posted("merchant:mch_1:USD"), 1250);
}

TEST_F(CoreTest, WalletFlowsPostAndAnswerThroughTheCore) {
  Command customer;
  customer.kind = CommandKind::create_customer;
  for (const char* id : {"cus_a", "cus_b"}) {
    customer.id = id;
    ASSERT_EQ(apply(customer).reply.status, 200);
  }
  Command topup;
  topup.kind = CommandKind::create_topup;
  topup.id = "tu_1";
  topup.customer_id = "cus_a";
  topup.amount = 5000;
  topup.currency = kUsd;
  topup.channel = "cardco";
  topup.instrument_kind = InstrumentKind::card_token;
  topup.instrument = "tok_visa";
  const ApplyOutcome sent = apply(topup);
  ASSERT_EQ(sent.calls.size(), 1u);
  EXPECT_EQ(credits_posted("wallet:cus_a:USD"), -1);  // nothing before the PSP confirms
  apply(result(sent.calls[0].attempt_id, AttemptStatus::approved));
  EXPECT_EQ(credits_posted("wallet:cus_a:USD"), 5000);

  Command transfer;
  transfer.kind = CommandKind::create_wallet_transfer;
  transfer.id = "wt_1";
  transfer.customer_id = "cus_a";
  transfer.to_customer_id = "cus_b";
  transfer.amount = 7000;
  transfer.currency = kUsd;
  const ApplyOutcome short_of_funds = apply(transfer);
  EXPECT_EQ(short_of_funds.reply.status, 200);
  EXPECT_NE(short_of_funds.reply.body.find("insufficient_funds"), std::string::npos);
  transfer.id = "wt_2";
  transfer.amount = 2000;
  apply(transfer);
  EXPECT_EQ(credits_posted("wallet:cus_b:USD"), 2000);
  const std::string wallet = core_.query({QueryKind::get_wallet, "cus_b"}, ledger_).body;
  EXPECT_NE(wallet.find("\"available\":2000"), std::string::npos) << wallet;
  // Ids are one space: a payment may not reuse a wallet transfer's id.
  merchant();
  EXPECT_EQ(apply(payment("wt_2")).reply.status, 409);
}

TEST_F(CoreTest, SetFeesChargesTheMerchantOnCapture) {
  merchant();
  Command fees;
  fees.kind = CommandKind::set_fees;
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

TEST(Commands, RoundTripAndRefuseMalformedBytes) {
  Command c;
  c.kind = CommandKind::operation_status;
  c.idempotency = {"client", "key", kFingerprintA};
  c.id = "pay_1_a1";
  c.channel = "cardco";
  c.amount = 42;
  c.currency = kUsd;
  c.op_state = OperationState::declined_soft;
  c.result.fee = 3;
  c.fees.channels.emplace("cardco", FeeRate{290, 30});
  std::string bytes;
  encode_command(c, &bytes);
  Command d;
  ASSERT_TRUE(decode_command(bytes, &d).is_ok());
  std::string again;
  encode_command(d, &again);
  EXPECT_EQ(again, bytes);
  EXPECT_EQ(d.op_state, OperationState::declined_soft);
  EXPECT_EQ(d.fees.channels.at("cardco").basis_points, 290);
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_command(bytes.substr(0, n), &d).is_ok()) << n;
  }
  EXPECT_FALSE(decode_command(bytes + "x", &d).is_ok());
  std::string bad_kind = bytes;
  bad_kind[1] = 99;
  EXPECT_FALSE(decode_command(bad_kind, &d).is_ok());
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
