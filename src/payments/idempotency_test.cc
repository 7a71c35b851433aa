#include "payments/idempotency.h"

#include <gtest/gtest.h>

#include <random>

#include "payments/map_history_test_util.h"

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

namespace keel::payments {
namespace {

// The same requests against a store whose completed records move to a history store at random
// moments and one that keeps everything in memory: every answer, count, expiry and canonical
// encoding is the same, also after a snapshot (encoding 2) decoded over the same history.
TEST(IdempotencyHistory, EveryAnswerIsTheSameWhereverTheRecordsAre) {
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    std::mt19937 rng(seed);
    MapHistory history;
    IdempotencyStore a(60);
    a.set_history(&history);
    IdempotencyStore b(60);
    std::vector<std::string> handed;
    size_t most_in_history = 0;
    Timestamp now = kT0;
    const std::vector<std::string> clients = {"c1", "c2", std::string(200, 'x')};
    for (int step = 0; step < 400; ++step) {
      now += (1 + rng() % 3000) * (kNanosPerSecond / 1000) * (rng() % 10 == 0 ? 40 : 1);
      const std::string& client = clients[rng() % clients.size()];
      const std::string key = "k" + std::to_string(rng() % 12);
      const std::string fp(kFingerprintBytes, static_cast<char>('a' + rng() % 2));
      switch (rng() % 4) {
        case 0:
        case 1: {
          const IdempotencyOutcome x = a.begin(client, key, fp, now);
          const IdempotencyOutcome y = b.begin(client, key, fp, now);
          ASSERT_EQ(x.decision, y.decision) << seed << " " << step;
          ASSERT_EQ(x.response == nullptr, y.response == nullptr);
          if (x.response != nullptr) {
            ASSERT_EQ(*x.response, *y.response);
          }
          break;
        }
        case 2: {
          const StoredResponse body{R"({"step":)" + std::to_string(step) + "}"};
          ASSERT_EQ(a.complete(client, key, body, now), b.complete(client, key, body, now));
          break;
        }
        default: {
          const StoredResponse* x = a.completed(client, key, fp, now);
          const StoredResponse* y = b.completed(client, key, fp, now);
          ASSERT_EQ(x == nullptr, y == nullptr) << seed << " " << step;
          if (x != nullptr) {
            ASSERT_EQ(*x, *y);
          }
          if (rng() % 3 == 0) {
            ASSERT_EQ(a.release(client, key), b.release(client, key));
          }
        }
      }
      ASSERT_EQ(a.size(), b.size());
      ASSERT_EQ(a.next_expiry(), b.next_expiry());
      // The engine's rhythm: hand out what completed, make some of it cold.
      std::vector<std::pair<std::string, std::string>> puts;
      a.take_final(&puts, &handed);
      for (auto& [k, v] : puts) history.records[k] = v;
      std::vector<std::string> cold;
      std::vector<std::string> rest;
      for (std::string& k : handed) (rng() % 3 != 0 ? cold : rest).push_back(std::move(k));
      a.make_cold(cold);
      handed = std::move(rest);
      most_in_history = std::max(most_in_history, a.in_history());
      // Nothing the state holds expires before the mark; nothing later than now.
      ASSERT_LE(a.expired_before(now), now);
      if (a.next_expiry()) {
        ASSERT_LE(a.expired_before(now), *a.next_expiry());
      }
      if (step % 50 == 49) {
        std::string full_a;
        ASSERT_TRUE(a.encode_full(&full_a).is_ok());
        std::string enc_b;
        b.encode(&enc_b);
        ASSERT_EQ(full_a, enc_b) << seed << " " << step;
        // A snapshot and a restart: the history is read through the decoded store.
        std::string snapshot;
        a.encode(&snapshot);
        IdempotencyStore c;
        ASSERT_TRUE(IdempotencyStore::decode(snapshot, &c).is_ok());
        c.set_history(&history);
        std::string again;
        c.encode(&again);
        ASSERT_EQ(again, snapshot);
        a = std::move(c);
        handed.clear();  // handed out again by take_final
      }
    }
    EXPECT_GT(most_in_history, 5u) << seed;  // the history was used, not only memory
  }
}

TEST(IdempotencyHistory, AStoreThatLacksARecordIsAnErrorNeverAGap) {
  MapHistory history;
  IdempotencyStore s(3600);
  ASSERT_EQ(s.begin("c", "k", kBodyA, kT0).decision, IdempotencyDecision::proceed);
  ASSERT_EQ(s.complete("c", "k", {"{}"}, kT0), CompleteResult::ok);
  std::vector<std::pair<std::string, std::string>> puts;
  std::vector<std::string> keys;
  s.take_final(&puts, &keys);
  EXPECT_TRUE(keys.empty());  // nothing is collected without a history store
  s.set_history(&history);    // every completed record is due now
  s.take_final(&puts, &keys);
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0], idempotency_record_key(kT0 + 3600 * kNanosPerSecond, "c", "k"));
  EXPECT_EQ(puts[0].second, kBodyA + "{}");  // the fingerprint, then the body
  s.make_cold(keys);
  EXPECT_EQ(s.in_memory(), 0u);
  EXPECT_EQ(s.in_history(), 1u);
  std::string out;
  EXPECT_FALSE(s.encode_full(&out).is_ok());  // the store has nothing yet
  history.records[puts[0].first] = puts[0].second;
  EXPECT_TRUE(s.encode_full(&out).is_ok());
  const IdempotencyOutcome replay = s.begin("c", "k", kBodyA, kT0 + 1);
  ASSERT_EQ(replay.decision, IdempotencyDecision::replay);
  EXPECT_EQ(replay.response->body, "{}");
  EXPECT_EQ(s.begin("c", "k", kBodyB, kT0 + 1).decision, IdempotencyDecision::mismatch);
  // Expired: forgotten from the index; the store's record is garbage for the next deletion.
  EXPECT_EQ(s.expire(kT0 + 3600 * kNanosPerSecond), 1u);
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.begin("c", "k", kBodyB, kT0 + 3600 * kNanosPerSecond).decision,
            IdempotencyDecision::proceed);
}

}  // namespace
}  // namespace keel::payments
