#include "psp_sim/books.h"

#include <gtest/gtest.h>

namespace keel::psp_sim {
namespace {

constexpr Timestamp kDay = 86'400 * kNanosPerSecond;
// 2026-11-23T10:00:00Z
constexpr Timestamp kNow = 20'780 * kDay + 10 * 3'600 * kNanosPerSecond;

Currency usd() { return *Currency::from_code("USD"); }
Currency eur() { return *Currency::from_code("EUR"); }

Books make_books() {
  BooksOptions o;
  o.psp = "acme";
  o.key = SipKey{7, 9};
  o.fee_fixed = 30;
  o.fee_bps = 290;
  o.currencies = {usd(), eur()};
  return Books(o);
}

AuthorizeRequest auth(std::string ref, int64_t amount, bool capture = false) {
  return AuthorizeRequest{std::move(ref), amount, usd(), "tok_visa", capture};
}

// At its limit the books refuse a new operation and record nothing; replays of recorded ones
// still answer.
TEST(Books, FullBooksRefuseNewOperationsAndChangeNothing) {
  BooksOptions o;
  o.psp = "acme";
  o.key = SipKey{7, 9};
  o.currencies = {usd()};
  o.operations_max = 2;
  Books b(o);
  ASSERT_EQ(b.authorize(auth("att_1", 1000), {}, kNow).result, BookResult::ok);
  ASSERT_EQ(b.authorize(auth("att_2", kAmountMax), {}, kNow).result, BookResult::ok);
  const auto before = b.totals();
  EXPECT_EQ(b.authorize(auth("att_3", 1), {}, kNow).result, BookResult::books_full);
  EXPECT_EQ(b.find("att_3"), nullptr);
  EXPECT_EQ(b.authorize(auth("att_1", 1000), {}, kNow).result, BookResult::ok);  // a replay
  EXPECT_EQ(b.totals().size(), before.size());
  EXPECT_EQ(b.totals()[0].amount, before[0].amount);
}

TEST(Books, AuthorizeCaptureRefund) {
  Books b = make_books();
  Outcome a = b.authorize(auth("att_1", 1000), {}, kNow);
  ASSERT_EQ(a.result, BookResult::ok);
  EXPECT_FALSE(a.replayed);
  EXPECT_EQ(a.operation.status, OperationStatus::authorized);
  EXPECT_EQ(a.operation.psp_reference.rfind("sim_", 0), 0u);
  ASSERT_EQ(a.events.size(), 1u);
  EXPECT_EQ(a.events[0].operation.status, OperationStatus::authorized);

  Outcome c = b.capture("att_1", 800, kNow + 1);
  ASSERT_EQ(c.result, BookResult::ok);
  EXPECT_EQ(c.operation.status, OperationStatus::captured);
  EXPECT_EQ(c.operation.captured_amount, 800);
  EXPECT_EQ(c.operation.fee, 30 + 800 * 290 / 10'000);
  ASSERT_EQ(c.events.size(), 1u);
  EXPECT_NE(c.events[0].id, a.events[0].id);

  Outcome r = b.refund({"rfa_1", "att_1", 500}, kNow + 2);
  ASSERT_EQ(r.result, BookResult::ok);
  EXPECT_EQ(r.operation.type, OperationType::refund);
  EXPECT_EQ(r.operation.status, OperationStatus::refunded);
  EXPECT_EQ(b.find("att_1")->refunded_amount, 500);
  // Refunds are bounded by captured minus refunded.
  EXPECT_EQ(b.refund({"rfa_2", "att_1", 301}, kNow).result, BookResult::amount_exceeds);
  EXPECT_EQ(b.refund({"rfa_2", "att_1", 300}, kNow).result, BookResult::ok);
  EXPECT_EQ(b.refund({"rfa_3", "att_1", 1}, kNow).result, BookResult::amount_exceeds);
  EXPECT_EQ(b.find("rfa_3"), nullptr);
}

TEST(Books, CaptureRules) {
  Books b = make_books();
  ASSERT_EQ(b.authorize(auth("att_1", 1000), {}, kNow).result, BookResult::ok);
  EXPECT_EQ(b.capture("att_1", 1001, kNow).result, BookResult::amount_exceeds);
  EXPECT_EQ(b.find("att_1")->status, OperationStatus::authorized);
  EXPECT_EQ(b.capture("att_x", std::nullopt, kNow).result, BookResult::not_found);
  Outcome all = b.capture("att_1", std::nullopt, kNow);
  ASSERT_EQ(all.result, BookResult::ok);
  EXPECT_EQ(all.operation.captured_amount, 1000);
  // A retried capture is a replay; another amount is refused; no second settlement line.
  Outcome again = b.capture("att_1", 1000, kNow);
  EXPECT_EQ(again.result, BookResult::ok);
  EXPECT_TRUE(again.replayed);
  EXPECT_TRUE(again.events.empty());
  EXPECT_EQ(b.capture("att_1", 10, kNow).result, BookResult::invalid_state);
  EXPECT_EQ(b.void_authorization("att_1", kNow).result, BookResult::invalid_state);
  EXPECT_EQ(b.settlement_lines().size(), 1u);
}

TEST(Books, VoidAndDeclines) {
  Books b = make_books();
  ASSERT_EQ(b.authorize(auth("att_1", 1000), {}, kNow).result, BookResult::ok);
  Outcome v = b.void_authorization("att_1", kNow);
  ASSERT_EQ(v.result, BookResult::ok);
  EXPECT_EQ(v.operation.status, OperationStatus::voided);
  EXPECT_TRUE(b.void_authorization("att_1", kNow).replayed);
  EXPECT_EQ(b.capture("att_1", std::nullopt, kNow).result, BookResult::invalid_state);
  EXPECT_EQ(b.refund({"rfa_1", "att_1", 1}, kNow).result, BookResult::invalid_state);

  Decisions declined;
  declined.decline = Decline{"insufficient_funds", DeclineType::hard};
  Outcome d = b.authorize(auth("att_2", 1000), declined, kNow);
  ASSERT_EQ(d.result, BookResult::ok);
  EXPECT_EQ(d.operation.status, OperationStatus::declined);
  EXPECT_EQ(d.operation.decline->code, "insufficient_funds");
  EXPECT_EQ(d.operation.fee, 0);
  EXPECT_EQ(b.capture("att_2", std::nullopt, kNow).result, BookResult::invalid_state);
  Outcome p = b.payout({"poa_1", 500, usd(), "iban:DE89"}, declined, kNow);
  EXPECT_EQ(p.operation.status, OperationStatus::failed);
  EXPECT_TRUE(b.settlement_lines().empty());
}

TEST(Books, IdempotencyByReference) {
  Books b = make_books();
  Decisions declined;
  declined.decline = Decline{"do_not_honor", DeclineType::soft};
  ASSERT_EQ(b.authorize(auth("att_1", 1000, true), {}, kNow).result, BookResult::ok);
  // Same body: the operation as it stands, even if the decisions now say otherwise.
  Outcome same = b.authorize(auth("att_1", 1000, true), declined, kNow + 5);
  EXPECT_EQ(same.result, BookResult::ok);
  EXPECT_TRUE(same.replayed);
  EXPECT_EQ(same.operation.status, OperationStatus::captured);
  EXPECT_TRUE(same.events.empty());
  EXPECT_EQ(b.authorize(auth("att_1", 1001, true), {}, kNow).result, BookResult::reference_reused);
  EXPECT_EQ(b.authorize(auth("att_1", 1000, false), {}, kNow).result, BookResult::reference_reused);
  EXPECT_EQ(b.payout({"att_1", 1000, usd(), "iban:X"}, {}, kNow).result,
            BookResult::reference_reused);
  ASSERT_EQ(b.refund({"rfa_1", "att_1", 100}, kNow).result, BookResult::ok);
  EXPECT_TRUE(b.refund({"rfa_1", "att_1", 100}, kNow).replayed);
  EXPECT_EQ(b.refund({"rfa_1", "att_1", 200}, kNow).result, BookResult::reference_reused);
  EXPECT_EQ(b.find("att_1")->refunded_amount, 100);
  EXPECT_EQ(b.operations().size(), 2u);
  EXPECT_EQ(b.settlement_lines().size(), 2u);
}

TEST(Books, AsyncSettle) {
  Books b = make_books();
  Decisions async;
  async.async = true;
  Outcome a = b.authorize(auth("att_1", 1000, true), async, kNow);
  ASSERT_EQ(a.result, BookResult::ok);
  EXPECT_EQ(a.operation.status, OperationStatus::pending);
  EXPECT_EQ(b.capture("att_1", std::nullopt, kNow).result, BookResult::invalid_state);
  Outcome s = b.settle("att_1", kNow + kDay);
  ASSERT_EQ(s.result, BookResult::ok);
  EXPECT_EQ(s.operation.status, OperationStatus::captured);
  ASSERT_EQ(s.events.size(), 1u);
  EXPECT_TRUE(b.settle("att_1", kNow + kDay).replayed);
  // The capture is settled on the day it happened.
  EXPECT_EQ(b.settlement_lines().at(0).day, utc_day(kNow + kDay));

  async.decline = Decline{"issuer_unavailable", DeclineType::soft};
  ASSERT_EQ(b.topup({"top_1", 700, eur(), "card_token:tok"}, async, kNow).operation.status,
            OperationStatus::pending);
  Outcome f = b.settle("top_1", kNow);
  EXPECT_EQ(f.operation.status, OperationStatus::failed);
  EXPECT_EQ(f.operation.decline->type, DeclineType::soft);
  EXPECT_EQ(b.settle("nope", kNow).result, BookResult::not_found);
}

TEST(Books, CurrencyNotAccepted) {
  Books b = make_books();
  AuthorizeRequest r = auth("att_1", 100);
  r.currency = *Currency::from_code("JPY");
  EXPECT_EQ(b.authorize(r, {}, kNow).result, BookResult::currency_not_accepted);
  EXPECT_TRUE(b.operations().empty());
}

TEST(Books, TotalsAndSettlementCsv) {
  Books b = make_books();
  ASSERT_EQ(b.authorize(auth("att_1", 1000, true), {}, kNow).result, BookResult::ok);
  ASSERT_EQ(b.authorize(auth("att_2", 250), {}, kNow).result, BookResult::ok);
  ASSERT_EQ(b.authorize(auth("att_3", 50, true), {}, kNow + kDay).result, BookResult::ok);
  ASSERT_EQ(b.refund({"rfa_1", "att_1", 400}, kNow).result, BookResult::ok);
  ASSERT_EQ(b.payout({"poa_1", 900, eur(), "iban:DE89"}, {}, kNow).result, BookResult::ok);
  const auto totals = b.totals();
  ASSERT_EQ(totals.size(), 4u);
  // Ordered by status (enum order), then currency.
  EXPECT_EQ(totals[0].status, OperationStatus::authorized);
  EXPECT_EQ(totals[0].amount, 250);
  EXPECT_EQ(totals[1].status, OperationStatus::captured);
  EXPECT_EQ(totals[1].count, 2);
  EXPECT_EQ(totals[1].amount, 1050);
  EXPECT_EQ(totals[2].status, OperationStatus::refunded);
  EXPECT_EQ(totals[3].status, OperationStatus::paid);
  EXPECT_EQ(totals[3].currency, eur());

  const std::string psp1 = b.find("att_1")->psp_reference;
  const std::string rf1 = b.find("rfa_1")->psp_reference;
  const std::string po1 = b.find("poa_1")->psp_reference;
  EXPECT_EQ(b.settlement_csv(utc_day(kNow)),
            "date,psp_reference,reference,type,amount,currency,fee\n"
            "2026-11-23," +
                psp1 +
                ",att_1,capture,1000,USD,59\n"
                "2026-11-23," +
                rf1 +
                ",rfa_1,refund,400,USD,0\n"
                "2026-11-23," +
                po1 + ",poa_1,payout,900,EUR,56\n");
  EXPECT_NE(b.settlement_csv(utc_day(kNow) + 1).find(",att_3,capture,50,USD,31\n"),
            std::string::npos);
  EXPECT_EQ(b.settlement_csv(utc_day(kNow) + 2),
            "date,psp_reference,reference,type,amount,currency,fee\n");
}

TEST(Books, Days) {
  EXPECT_EQ(format_day(utc_day(kNow)), "2026-11-23");
  EXPECT_EQ(parse_day("2026-11-23"), utc_day(kNow));
  EXPECT_EQ(parse_day("1970-01-01"), 0);
  EXPECT_EQ(utc_day(-1), -1);
  EXPECT_FALSE(parse_day("2026-02-30"));
  EXPECT_FALSE(parse_day("2026-1-23"));
  EXPECT_FALSE(parse_day("2026-11-2x"));
}

}  // namespace
}  // namespace keel::psp_sim
