// The normalization table of docs/payments.md ("Attempts"), one test per row, and the
// operation parser it relies on.

#include "connectors/outcome.h"

#include <gtest/gtest.h>

#include <string>

namespace keel::connectors {
namespace {

constexpr std::string_view kRef = "att_1";

std::string op_json(std::string_view status, std::string_view decline_code = "",
                    std::string_view decline_type = "", std::string_view reference = kRef) {
  const auto str_or_null = [](std::string_view v) {
    return v.empty() ? std::string("null") : "\"" + std::string(v) + "\"";
  };
  return R"({"psp_reference":"sim_abc","reference":")" + std::string(reference) +
         R"(","type":"authorization","status":")" + std::string(status) +
         R"(","amount":1250,"currency":"USD","captured_amount":0,"refunded_amount":0,"fee":0,)" +
         R"("decline_code":)" + str_or_null(decline_code) + R"(,"decline_type":)" +
         str_or_null(decline_type) +
         R"(,"created_at":"2026-11-23T10:00:00Z","updated_at":"2026-11-23T10:00:00Z"})";
}

NormalizedAnswer answer(unsigned status, const std::string& body,
                        RequestKind kind = RequestKind::operation) {
  return normalize_answer(kind, kRef, {TransportResult::response, status, body});
}

NormalizedAnswer transport(TransportResult r, RequestKind kind = RequestKind::operation) {
  return normalize_answer(kind, kRef, {r});
}

std::string error_body(std::string_view code) {
  return R"({"error":{"code":")" + std::string(code) + R"(","message":"m"}})";
}

TEST(Outcome, ApprovedStatuses) {
  for (const char* status : {"authorized", "captured", "voided", "refunded", "paid"}) {
    const NormalizedAnswer a = answer(200, op_json(status));
    EXPECT_EQ(a.outcome, AttemptOutcome::approved) << status;
    EXPECT_EQ(a.error_code, "") << status;
    ASSERT_TRUE(a.op.has_value()) << status;
    EXPECT_EQ(a.op->reference, kRef);
    EXPECT_EQ(a.op->amount_minor, 1250);
  }
  EXPECT_EQ(answer(201, op_json("authorized")).outcome, AttemptOutcome::approved);
}

TEST(Outcome, DeclinedHardAndSoftCarryTheDeclineCode) {
  NormalizedAnswer a = answer(200, op_json("declined", "insufficient_funds", "hard"));
  EXPECT_EQ(a.outcome, AttemptOutcome::declined_hard);
  EXPECT_EQ(a.error_code, "insufficient_funds");
  ASSERT_TRUE(a.op.has_value());
  EXPECT_EQ(a.op->decline_type, DeclineType::hard);
  a = answer(200, op_json("declined", "issuer_unavailable", "soft"));
  EXPECT_EQ(a.outcome, AttemptOutcome::declined_soft);
  EXPECT_EQ(a.error_code, "issuer_unavailable");
  a = answer(200, op_json("failed", "", "soft"));  // a payout or top-up that failed
  EXPECT_EQ(a.outcome, AttemptOutcome::declined_soft);
  EXPECT_EQ(a.error_code, error_codes::kDeclined);
}

TEST(Outcome, DeclineWithoutValidTypeIsMalformed) {
  for (const std::string& body :
       {op_json("declined", "do_not_honor", ""), op_json("declined", "x", "maybe")}) {
    const NormalizedAnswer a = answer(200, body);
    EXPECT_EQ(a.outcome, AttemptOutcome::unknown);
    EXPECT_EQ(a.error_code, error_codes::kMalformedResponse);
  }
}

TEST(Outcome, PendingIsPending) {
  const NormalizedAnswer a = answer(200, op_json("pending"));
  EXPECT_EQ(a.outcome, AttemptOutcome::pending);
  EXPECT_EQ(a.error_code, "");
  ASSERT_TRUE(a.op.has_value());
}

TEST(Outcome, NothingSentIsRetryable) {
  const std::pair<TransportResult, std::string_view> rows[] = {
      {TransportResult::connect_refused, error_codes::kConnectRefused},
      {TransportResult::connect_timeout, error_codes::kConnectTimeout},
      {TransportResult::connect_failed, error_codes::kConnectFailed},
      {TransportResult::send_failed, error_codes::kSendFailed},
      {TransportResult::not_sent, error_codes::kNotSent},
  };
  for (const auto& [r, code] : rows) {
    const NormalizedAnswer a = transport(r);
    EXPECT_EQ(a.outcome, AttemptOutcome::retryable) << code;
    EXPECT_EQ(a.error_code, code);
    EXPECT_FALSE(a.op.has_value());
  }
}

TEST(Outcome, SentWithoutWholeAnswerIsUnknown) {
  const std::pair<TransportResult, std::string_view> rows[] = {
      {TransportResult::timeout_after_send, error_codes::kTimeout},
      {TransportResult::lost_after_send, error_codes::kConnectionLost},
      {TransportResult::bad_http_after_send, error_codes::kMalformedResponse},
  };
  for (const auto& [r, code] : rows) {
    const NormalizedAnswer a = transport(r);
    EXPECT_EQ(a.outcome, AttemptOutcome::unknown) << code;
    EXPECT_EQ(a.error_code, code);
  }
}

TEST(Outcome, InvalidRequestIsDeclinedHard) {
  const NormalizedAnswer a = transport(TransportResult::invalid_request);
  EXPECT_EQ(a.outcome, AttemptOutcome::declined_hard);
  EXPECT_EQ(a.error_code, error_codes::kInvalidRequest);
}

TEST(Outcome, Status503IsRetryable) {
  const NormalizedAnswer a = answer(503, error_body("unavailable"));
  EXPECT_EQ(a.outcome, AttemptOutcome::retryable);
  EXPECT_EQ(a.error_code, error_codes::kPspUnavailable);
  EXPECT_EQ(answer(503, "").outcome, AttemptOutcome::retryable);
}

TEST(Outcome, ReferenceReusedIsItsOwnUnknown) {
  const NormalizedAnswer a = answer(409, error_body("reference_reused"));
  EXPECT_EQ(a.outcome, AttemptOutcome::unknown);
  EXPECT_EQ(a.error_code, error_codes::kReferenceReused);
}

TEST(Outcome, Other4xxIsDeclinedHardPspRejected) {
  for (unsigned status : {400u, 401u, 404u, 409u, 422u}) {
    const NormalizedAnswer a = answer(status, error_body("invalid_state"));
    EXPECT_EQ(a.outcome, AttemptOutcome::declined_hard) << status;
    EXPECT_EQ(a.error_code, error_codes::kPspRejected) << status;
  }
}

TEST(Outcome, Other5xxAndOddStatusesAreUnknown) {
  for (unsigned status : {500u, 502u, 504u}) {
    const NormalizedAnswer a = answer(status, error_body("internal"));
    EXPECT_EQ(a.outcome, AttemptOutcome::unknown) << status;
    EXPECT_EQ(a.error_code, error_codes::kPspError) << status;
  }
  for (unsigned status : {101u, 302u}) {
    const NormalizedAnswer a = answer(status, "");
    EXPECT_EQ(a.outcome, AttemptOutcome::unknown) << status;
    EXPECT_EQ(a.error_code, error_codes::kMalformedResponse) << status;
  }
}

TEST(Outcome, Malformed2xxBodyIsUnknown) {
  const std::string bodies[] = {
      "",
      "not json",
      "[]",
      R"({"reference":"att_1"})",
      op_json("exploded"),
      op_json("authorized", "", "", "att_other"),  // another reference
      R"({"psp_reference":"p","reference":"att_1","type":"authorization","status":"authorized",)"
      R"("amount":-5,"currency":"USD"})",
      R"({"psp_reference":"p","reference":"att_1","type":"authorization","status":"authorized",)"
      R"("amount":5,"currency":"USD","fee":"x"})",
  };
  for (const std::string& body : bodies) {
    const NormalizedAnswer a = answer(200, body);
    EXPECT_EQ(a.outcome, AttemptOutcome::unknown) << body;
    EXPECT_EQ(a.error_code, error_codes::kMalformedResponse) << body;
    EXPECT_FALSE(a.op.has_value()) << body;
  }
}

TEST(Outcome, StatusQuery404NotFoundIsNeverReceived) {
  const NormalizedAnswer a = answer(404, error_body("not_found"), RequestKind::status_query);
  EXPECT_EQ(a.outcome, AttemptOutcome::not_found);
  EXPECT_EQ(a.error_code, error_codes::kNotFound);
  // A 404 without the protocol's code proves nothing.
  EXPECT_EQ(answer(404, "gone", RequestKind::status_query).outcome, AttemptOutcome::unknown);
}

TEST(Outcome, StatusQueryAnswerMapsLikeAnOperation) {
  EXPECT_EQ(answer(200, op_json("authorized"), RequestKind::status_query).outcome,
            AttemptOutcome::approved);
  EXPECT_EQ(
      answer(200, op_json("declined", "stolen_card", "hard"), RequestKind::status_query).outcome,
      AttemptOutcome::declined_hard);
}

TEST(Outcome, FailedStatusQueryLeavesTheAttemptUnknown) {
  const NormalizedAnswer a = transport(TransportResult::connect_refused, RequestKind::status_query);
  EXPECT_EQ(a.outcome, AttemptOutcome::unknown);
  EXPECT_EQ(a.error_code, error_codes::kConnectRefused);
  const NormalizedAnswer b = answer(503, error_body("unavailable"), RequestKind::status_query);
  EXPECT_EQ(b.outcome, AttemptOutcome::unknown);
  EXPECT_EQ(b.error_code, error_codes::kPspUnavailable);
  EXPECT_EQ(answer(401, error_body("unauthorized"), RequestKind::status_query).outcome,
            AttemptOutcome::unknown);
}

TEST(Outcome, ParseOperationReadsEveryField) {
  const auto op = parse_operation(
      R"({"psp_reference":"sim_1","reference":"rfa_2","payment_reference":"att_1",)"
      R"("type":"refund","status":"refunded","amount":500,"currency":"EUR","captured_amount":0,)"
      R"("refunded_amount":500,"fee":0,"decline_code":null,"decline_type":null,)"
      R"("created_at":"2026-11-23T10:00:00Z","updated_at":"2026-11-23T10:00:01Z"})");
  ASSERT_TRUE(op.has_value());
  EXPECT_EQ(op->psp_reference, "sim_1");
  EXPECT_EQ(op->payment_reference, "att_1");
  EXPECT_EQ(op->type, OperationType::refund);
  EXPECT_EQ(op->status, OperationStatus::refunded);
  EXPECT_EQ(op->currency, "EUR");
  EXPECT_EQ(op->refunded_amount_minor, 500);
  EXPECT_FALSE(op->decline_type.has_value());
  EXPECT_EQ(op->updated_at, "2026-11-23T10:00:01Z");
}

TEST(Outcome, Names) {
  EXPECT_EQ(attempt_outcome_name(AttemptOutcome::declined_soft), "declined_soft");
  EXPECT_EQ(attempt_outcome_name(AttemptOutcome::not_found), "not_found");
  EXPECT_EQ(operation_status_name(OperationStatus::paid), "paid");
  EXPECT_EQ(operation_type_name(OperationType::topup), "topup");
}

}  // namespace
}  // namespace keel::connectors
