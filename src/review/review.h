#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/time.h"

namespace keel::review {

// One model for everything a person must decide: an item names the object, why it needs a
// person (the reason), what keel saw (the evidence), when it opened, and when, by whom and how
// it was resolved. Payments open items today; risk and reconciliation add their reasons to the
// same desk, and operator actions on items (four eyes) come with the review issue.
//
// Pure and deterministic: no I/O, no clock (every call takes `now` from its journaled command).
// Thread: the engine's writer thread only. Never throws on bad input: calls return a
// ReviewResult and change nothing unless it is `ok`.

// Why a person must look at an object. The values are on disk (the review byte of payments,
// refunds and wallet flows, and every item): never renumber one.
enum class ReviewReason : uint8_t {
  none = 0,
  // Waiting on a PSP past its deadline with the outcome unknown: money may have moved there.
  deadline_unknown = 1,
  // A PSP answer, status-query result or webhook that keel could not take (out of range,
  // not meaningful for the attempt, or contradicting what keel booked). Nothing was booked on
  // it; the PSP's words are the evidence.
  psp_result_rejected = 2,
};
inline constexpr ReviewReason kReviewReasonLast = ReviewReason::psp_result_rejected;

[[nodiscard]] std::string_view reason_name(ReviewReason r);
// The reason named `name` (not `none`), if any.
[[nodiscard]] std::optional<ReviewReason> reason_from_name(std::string_view name);

inline constexpr size_t kObjectIdLengthMax = 64;
inline constexpr size_t kObjectTypeLengthMax = 32;
inline constexpr size_t kEvidenceBytesMax = 4096;
inline constexpr size_t kResolutionBytesMax = 256;
inline constexpr size_t kItemsPerObjectMax = 1000;
inline constexpr size_t kListLimitMax = 100;

struct ReviewItem {
  std::string id;           // "rev_{object_id}_{n}": the object's n-th item, the same on replay
  std::string object_type;  // "payment", "refund", "topup", "payout", ...
  std::string object_id;
  ReviewReason reason = ReviewReason::none;
  std::string evidence;  // a JSON object, as the opener rendered it
  Timestamp opened_at = 0;
  Timestamp resolved_at = 0;  // 0 while open
  std::string resolved_by;    // "psp" (a late answer settled the object), "operator:{id}", ...
  std::string resolution;     // what ended it, e.g. "settled: succeeded"
  [[nodiscard]] bool open() const { return resolved_at == 0; }
};

enum class ReviewResult : uint8_t {
  ok = 0,
  already_open,      // the object has an open item with this reason: nothing changed
  reason_invalid,    // `none` or out of range
  object_invalid,    // id or type empty or too long
  evidence_invalid,  // empty or above kEvidenceBytesMax
  resolution_invalid,
  not_open,          // resolve(): the object has no open item
  too_many_items,    // kItemsPerObjectMax reached for the object
  cursor_not_found,  // list(): starting_after names no item
};
[[nodiscard]] std::string_view result_name(ReviewResult r);

struct ReviewFilter {
  std::optional<bool> open;  // true: open items only; false: resolved only; empty: both
  std::optional<ReviewReason> reason;
  std::string object_id;  // empty: every object
};

struct ReviewPage {
  ReviewResult result = ReviewResult::ok;
  std::vector<const ReviewItem*> data;  // oldest first (opened_at, then id)
  bool has_more = false;
};

class ReviewDesk {
 public:
  // Opens an item. `already_open` if the object has an open item with this reason (the first
  // one's evidence is kept: a PSP that repeats itself does not grow the desk).
  ReviewResult open(std::string_view object_type, std::string_view object_id, ReviewReason reason,
                    std::string_view evidence, Timestamp now);
  // Resolves every open item of the object. `not_open` if it has none.
  ReviewResult resolve(std::string_view object_id, std::string_view resolved_by,
                       std::string_view resolution, Timestamp now);

  [[nodiscard]] const ReviewItem* find(std::string_view id) const;
  // The object's open item with `reason`, if any.
  [[nodiscard]] const ReviewItem* open_item(std::string_view object_id, ReviewReason reason) const;
  // Whether the object has any open item. O(log n).
  [[nodiscard]] bool has_open(std::string_view object_id) const;
  // The objects with an open item, each once, by id.
  [[nodiscard]] std::vector<std::string> objects_with_open_items() const;
  [[nodiscard]] size_t open_count() const { return open_.size(); }
  [[nodiscard]] size_t open_count(ReviewReason reason) const;
  [[nodiscard]] size_t size() const { return items_.size(); }
  [[nodiscard]] bool empty() const { return items_.empty(); }

  // One page of the items matching `filter`, oldest first, after the item `starting_after`
  // (empty: from the oldest). `limit` is clamped to [1, kListLimitMax].
  [[nodiscard]] ReviewPage list(const ReviewFilter& filter, size_t limit,
                                std::string_view starting_after) const;

  // Canonical encoding (u32 version, u64 count, items by id); decode() checks every field,
  // rebuilds the indexes, and leaves `*out` alone on failure.
  void encode(std::string* out) const;
  [[nodiscard]] static Status decode(std::string_view bytes, ReviewDesk* out);

 private:
  using OrderKey = std::pair<Timestamp, std::string>;  // (opened_at, id)
  void index(const ReviewItem& item);

  std::map<std::string, ReviewItem, std::less<>> items_;   // by id
  std::set<OrderKey> order_;                               // every item, oldest first
  std::set<std::pair<std::string, std::string>> open_;     // (object id, item id), open ones
  std::map<std::string, size_t, std::less<>> per_object_;  // items ever opened per object
};

}  // namespace keel::review
