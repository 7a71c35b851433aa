#include "payments/idempotency.h"

#include <gtest/gtest.h>

namespace keel::payments {
namespace {

constexpr Timestamp kT0 = 1'800'000'000 * kNanosPerSecond;
const std::string kBodyA(kFingerprintBytes, 'a');
const std::string kBodyB(kFingerprintBytes, 'b');

TEST(Idempotency, FirstRequestProceedsThenReplaysTheStoredAnswer) {
  IdempotencyStore s;
  EXPECT_EQ(s.begin("client_1", "key-1", kBodyA, kT0).decision, IdempotencyDecision::proceed);
  EXPECT_EQ(s.complete("client_1", "key-1", {R"({"id":"pay_1"})"}, kT0 + 1), CompleteResult::ok);
  const IdempotencyOutcome again = s.begin("client_1", "key-1", kBodyA, kT0 + 2);
  ASSERT_EQ(again.decision, IdempotencyDecision::replay);
  EXPECT_EQ(*again.response, (StoredResponse{R"({"id":"pay_1"})"}));
}

TEST(Idempotency, SameKeyWhileInFlightIsAConflict) {
  IdempotencyStore s;
  ASSERT_EQ(s.begin("c", "k", kBodyA, kT0).decision, IdempotencyDecision::proceed);
  EXPECT_EQ(s.begin("c", "k", kBodyA, kT0 + 1).decision, IdempotencyDecision::in_flight);
}

TEST(Idempotency, SameKeyOtherBodyIsAMismatchInFlightOrDone) {
  IdempotencyStore s;
  ASSERT_EQ(s.begin("c", "k", kBodyA, kT0).decision, IdempotencyDecision::proceed);
  EXPECT_EQ(s.begin("c", "k", kBodyB, kT0 + 1).decision, IdempotencyDecision::mismatch);
  ASSERT_EQ(s.complete("c", "k", {"{}"}, kT0 + 2), CompleteResult::ok);
  EXPECT_EQ(s.begin("c", "k", kBodyB, kT0 + 3).decision, IdempotencyDecision::mismatch);
}

TEST(Idempotency, KeysAreScopedPerClient) {
  IdempotencyStore s;
  ASSERT_EQ(s.begin("c1", "k", kBodyA, kT0).decision, IdempotencyDecision::proceed);
  EXPECT_EQ(s.begin("c2", "k", kBodyB, kT0).decision, IdempotencyDecision::proceed);
}

TEST(Idempotency, ReleasedRecordLetsARetryRunAgain) {
  IdempotencyStore s;
  ASSERT_EQ(s.begin("c", "k", kBodyA, kT0).decision, IdempotencyDecision::proceed);
  EXPECT_TRUE(s.release("c", "k"));
  EXPECT_FALSE(s.release("c", "k"));
  EXPECT_EQ(s.begin("c", "k", kBodyB, kT0 + 1).decision, IdempotencyDecision::proceed);
  ASSERT_EQ(s.complete("c", "k", {"{}"}, kT0 + 2), CompleteResult::ok);
  EXPECT_FALSE(s.release("c", "k"));  // a completed answer is never forgotten early
}

// completed() answers what begin() would replay, and changes nothing.
TEST(Idempotency, CompletedLooksWithoutChangingAnything) {
  IdempotencyStore s(10);
  EXPECT_EQ(s.completed("c", "k", kBodyA, kT0), nullptr);  // no record
  ASSERT_EQ(s.begin("c", "k", kBodyA, kT0).decision, IdempotencyDecision::proceed);
  EXPECT_EQ(s.completed("c", "k", kBodyA, kT0), nullptr);  // in flight
  ASSERT_EQ(s.complete("c", "k", {"{}"}, kT0), CompleteResult::ok);
  std::string before;
  s.encode(&before);
  ASSERT_NE(s.completed("c", "k", kBodyA, kT0 + 1), nullptr);
  EXPECT_EQ(s.completed("c", "k", kBodyA, kT0 + 1)->body, "{}");
  EXPECT_EQ(s.completed("c", "k", kBodyB, kT0 + 1), nullptr);                     // another request
  EXPECT_EQ(s.completed("c", "k", kBodyA, kT0 + 10 * kNanosPerSecond), nullptr);  // expired
  std::string after;
  s.encode(&after);
  EXPECT_EQ(after, before);
}

TEST(Idempotency, CompleteErrors) {
  IdempotencyStore s;
  EXPECT_EQ(s.complete("c", "absent", {""}, kT0), CompleteResult::not_found);
  ASSERT_EQ(s.begin("c", "k", kBodyA, kT0).decision, IdempotencyDecision::proceed);
  EXPECT_EQ(s.complete("c", "k", {std::string(kStoredBodyBytesMax + 1, 'x')}, kT0),
            CompleteResult::body_too_large);
  ASSERT_EQ(s.complete("c", "k", {"{}"}, kT0), CompleteResult::ok);
  EXPECT_EQ(s.complete("c", "k", {"[]"}, kT0), CompleteResult::not_in_flight);
  EXPECT_EQ(s.begin("c", "k", kBodyA, kT0).response->body, "{}");
}

TEST(Idempotency, InvalidKeysAreRefusedAndStoreNothing) {
  IdempotencyStore s;
  EXPECT_EQ(s.begin("c", "", kBodyA, kT0).decision, IdempotencyDecision::key_invalid);
  EXPECT_EQ(s.begin("c", "has space", kBodyA, kT0).decision, IdempotencyDecision::key_invalid);
  EXPECT_EQ(s.begin("c", std::string(256, 'k'), kBodyA, kT0).decision,
            IdempotencyDecision::key_invalid);
  EXPECT_TRUE(s.begin("c", std::string(255, 'k'), kBodyA, kT0).decision ==
              IdempotencyDecision::proceed);
  EXPECT_EQ(s.size(), 1u);
}

TEST(Idempotency, CompletedKeysAreKeptForTheTtlThenForgotten) {
  IdempotencyStore s(24 * 3600);
  ASSERT_EQ(s.begin("c", "k", kBodyA, kT0).decision, IdempotencyDecision::proceed);
  ASSERT_EQ(s.complete("c", "k", {"{}"}, kT0), CompleteResult::ok);
  const Timestamp day = 24 * 3600 * kNanosPerSecond;
  EXPECT_EQ(s.begin("c", "k", kBodyA, kT0 + day - 1).decision, IdempotencyDecision::replay);
  EXPECT_EQ(s.expire(kT0 + day), 1u);
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.begin("c", "k", kBodyB, kT0 + day + 1).decision, IdempotencyDecision::proceed);
}

TEST(Idempotency, InFlightRecordsDoNotExpire) {
  IdempotencyStore s(1);
  ASSERT_EQ(s.begin("c", "k", kBodyA, kT0).decision, IdempotencyDecision::proceed);
  EXPECT_EQ(s.expire(kT0 + 100 * kNanosPerSecond), 0u);
  EXPECT_EQ(s.begin("c", "k", kBodyA, kT0 + 100 * kNanosPerSecond).decision,
            IdempotencyDecision::in_flight);
}

TEST(Idempotency, EncodeDecodeRoundTripsAndRejectsCorruption) {
  IdempotencyStore s(3600);
  ASSERT_EQ(s.begin("c", "done", kBodyA, kT0).decision, IdempotencyDecision::proceed);
  ASSERT_EQ(s.complete("c", "done", {"{\"a\":1}"}, kT0), CompleteResult::ok);
  ASSERT_EQ(s.begin("c", "running", kBodyB, kT0).decision, IdempotencyDecision::proceed);
  std::string bytes;
  s.encode(&bytes);
  IdempotencyStore copy;
  ASSERT_TRUE(IdempotencyStore::decode(bytes, &copy).is_ok());
  std::string again;
  copy.encode(&again);
  EXPECT_EQ(again, bytes);
  EXPECT_EQ(copy.ttl_s(), 3600);
  EXPECT_EQ(copy.begin("c", "done", kBodyA, kT0 + 1).decision, IdempotencyDecision::replay);
  EXPECT_EQ(copy.begin("c", "running", kBodyB, kT0 + 1).decision, IdempotencyDecision::in_flight);
  EXPECT_EQ(copy.expire(kT0 + 3600 * kNanosPerSecond), 1u);  // the expiry index was rebuilt
  EXPECT_FALSE(IdempotencyStore::decode(bytes.substr(0, bytes.size() - 1), &copy).is_ok());
  EXPECT_FALSE(IdempotencyStore::decode(bytes + "x", &copy).is_ok());
}

}  // namespace
}  // namespace keel::payments
