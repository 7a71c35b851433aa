#include "review/review.h"

#include <gtest/gtest.h>

namespace keel::review {
namespace {

constexpr std::string_view kEvidence = R"({"attempt":"pay_1_a1"})";

TEST(ReviewDesk, OpensOneItemPerObjectAndReasonAndResolvesThemAll) {
  ReviewDesk desk;
  EXPECT_EQ(desk.open("payment", "pay_1", ReviewReason::deadline_unknown, kEvidence, 10),
            ReviewResult::ok);
  EXPECT_EQ(desk.open("payment", "pay_1", ReviewReason::deadline_unknown, "{}", 11),
            ReviewResult::already_open);
  EXPECT_EQ(desk.open("payment", "pay_1", ReviewReason::psp_result_rejected, kEvidence, 12),
            ReviewResult::ok);
  EXPECT_EQ(desk.open_count(), 2u);
  EXPECT_EQ(desk.open_count(ReviewReason::psp_result_rejected), 1u);
  const ReviewItem* first = desk.find("rev_pay_1_1");
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->evidence, kEvidence);  // the first evidence is kept
  EXPECT_EQ(desk.resolve("pay_1", "psp", "settled: succeeded", 20), ReviewResult::ok);
  EXPECT_EQ(desk.open_count(), 0u);
  EXPECT_EQ(desk.find("rev_pay_1_2")->resolved_at, 20);
  EXPECT_EQ(desk.find("rev_pay_1_2")->resolution, "settled: succeeded");
  EXPECT_EQ(desk.resolve("pay_1", "psp", "again", 21), ReviewResult::not_open);
  // A new item for the same object takes the next number.
  EXPECT_EQ(desk.open("payment", "pay_1", ReviewReason::deadline_unknown, kEvidence, 30),
            ReviewResult::ok);
  EXPECT_NE(desk.find("rev_pay_1_3"), nullptr);
}

TEST(ReviewDesk, BadInputChangesNothing) {
  ReviewDesk desk;
  EXPECT_EQ(desk.open("payment", "pay_1", ReviewReason::none, kEvidence, 1),
            ReviewResult::reason_invalid);
  EXPECT_EQ(desk.open("payment", "pay_1", static_cast<ReviewReason>(9), kEvidence, 1),
            ReviewResult::reason_invalid);
  EXPECT_EQ(desk.open("", "pay_1", ReviewReason::deadline_unknown, kEvidence, 1),
            ReviewResult::object_invalid);
  EXPECT_EQ(desk.open("payment", std::string(kObjectIdLengthMax + 1, 'x'),
                      ReviewReason::deadline_unknown, kEvidence, 1),
            ReviewResult::object_invalid);
  EXPECT_EQ(desk.open("payment", "pay_1", ReviewReason::deadline_unknown, "", 1),
            ReviewResult::evidence_invalid);
  EXPECT_EQ(desk.open("payment", "pay_1", ReviewReason::deadline_unknown,
                      std::string(kEvidenceBytesMax + 1, 'x'), 1),
            ReviewResult::evidence_invalid);
  EXPECT_TRUE(desk.empty());
  ASSERT_EQ(desk.open("payment", "pay_1", ReviewReason::deadline_unknown, kEvidence, 1),
            ReviewResult::ok);
  EXPECT_EQ(desk.resolve("pay_1", "", "x", 2), ReviewResult::resolution_invalid);
  EXPECT_EQ(desk.resolve("pay_1", "psp", std::string(kResolutionBytesMax + 1, 'x'), 2),
            ReviewResult::resolution_invalid);
  EXPECT_EQ(desk.open_count(), 1u);
}

TEST(ReviewDesk, ListsOldestFirstWithFiltersAndCursors) {
  ReviewDesk desk;
  for (int i = 0; i < 5; ++i) {
    const std::string id = "pay_" + std::to_string(i);
    ASSERT_EQ(desk.open("payment", id, ReviewReason::deadline_unknown, kEvidence, 100 - i),
              ReviewResult::ok);
  }
  ASSERT_EQ(desk.resolve("pay_2", "psp", "settled: failed", 200), ReviewResult::ok);
  ReviewPage page = desk.list({}, 2, "");
  ASSERT_EQ(page.data.size(), 2u);
  EXPECT_EQ(page.data[0]->object_id, "pay_4");  // opened at 96
  EXPECT_EQ(page.data[1]->object_id, "pay_3");
  EXPECT_TRUE(page.has_more);
  page = desk.list({}, 10, page.data[1]->id);
  ASSERT_EQ(page.data.size(), 3u);
  EXPECT_FALSE(page.has_more);
  page = desk.list(ReviewFilter{true, std::nullopt, ""}, 10, "");
  EXPECT_EQ(page.data.size(), 4u);
  page = desk.list(ReviewFilter{false, std::nullopt, ""}, 10, "");
  ASSERT_EQ(page.data.size(), 1u);
  EXPECT_EQ(page.data[0]->object_id, "pay_2");
  page = desk.list(ReviewFilter{std::nullopt, ReviewReason::psp_result_rejected, ""}, 10, "");
  EXPECT_TRUE(page.data.empty());
  page = desk.list(ReviewFilter{std::nullopt, std::nullopt, "pay_1"}, 10, "");
  EXPECT_EQ(page.data.size(), 1u);
  EXPECT_EQ(desk.list({}, 10, "rev_nope_1").result, ReviewResult::cursor_not_found);
}

TEST(ReviewDesk, EncodingRoundTripsAndEveryTruncationOrFlipIsRefusedOrRoundTrips) {
  ReviewDesk desk;
  ASSERT_EQ(desk.open("payment", "pay_1", ReviewReason::deadline_unknown, kEvidence, 5),
            ReviewResult::ok);
  ASSERT_EQ(desk.open("topup", "tu_1", ReviewReason::psp_result_rejected, kEvidence, 6),
            ReviewResult::ok);
  ASSERT_EQ(desk.resolve("pay_1", "psp", "settled: succeeded", 7), ReviewResult::ok);
  std::string bytes;
  desk.encode(&bytes);
  ReviewDesk back;
  ASSERT_TRUE(ReviewDesk::decode(bytes, &back).is_ok());
  std::string again;
  back.encode(&again);
  EXPECT_EQ(again, bytes);
  EXPECT_EQ(back.open_count(), 1u);
  for (size_t n = 0; n < bytes.size(); ++n) {
    ReviewDesk cut;
    EXPECT_FALSE(ReviewDesk::decode(bytes.substr(0, n), &cut).is_ok()) << n;
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string flipped = bytes;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x41);
    ReviewDesk d;
    if (!ReviewDesk::decode(flipped, &d).is_ok()) continue;
    std::string re;
    d.encode(&re);
    EXPECT_EQ(re, flipped) << i;  // what decodes is a state the desk could hold
  }
}

TEST(ReviewReason, NamesRoundTrip) {
  EXPECT_EQ(reason_from_name("deadline_unknown"), ReviewReason::deadline_unknown);
  EXPECT_EQ(reason_from_name("psp_result_rejected"), ReviewReason::psp_result_rejected);
  EXPECT_EQ(reason_from_name("none"), std::nullopt);
  EXPECT_EQ(reason_from_name("other"), std::nullopt);
}

}  // namespace
}  // namespace keel::review
