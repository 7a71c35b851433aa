#include "review/review.h"

#include <algorithm>

#include "core/assert.h"
#include "core/bytes.h"
#include "core/codec.h"
#include "core/enum_name.h"

namespace keel::review {
namespace {

constexpr uint32_t kEncodingVersion = 1;

bool valid_reason(ReviewReason r) {
  return r != ReviewReason::none &&
         static_cast<uint8_t>(r) <= static_cast<uint8_t>(kReviewReasonLast);
}

bool valid_object(std::string_view type, std::string_view id) {
  return !type.empty() && type.size() <= kObjectTypeLengthMax && !id.empty() &&
         id.size() <= kObjectIdLengthMax;
}

std::string item_id(std::string_view object_id, size_t n) {
  return "rev_" + std::string(object_id) + "_" + std::to_string(n);
}

bool matches(const ReviewFilter& f, const ReviewItem& item) {
  if (f.open.has_value() && item.open() != *f.open) return false;
  if (f.reason.has_value() && item.reason != *f.reason) return false;
  return f.object_id.empty() || item.object_id == f.object_id;
}

// What decode() requires of a stored item: what open() and resolve() could have produced.
bool consistent(const ReviewItem& item) {
  if (!valid_object(item.object_type, item.object_id) || !valid_reason(item.reason)) return false;
  if (item.evidence.empty() || item.evidence.size() > kEvidenceBytesMax) return false;
  if (!item.id.starts_with("rev_" + item.object_id + "_")) return false;
  if (item.open()) return item.resolved_by.empty() && item.resolution.empty();
  return item.resolved_at >= item.opened_at && !item.resolved_by.empty() &&
         item.resolved_by.size() <= kResolutionBytesMax && !item.resolution.empty() &&
         item.resolution.size() <= kResolutionBytesMax;
}

}  // namespace

std::string_view reason_name(ReviewReason r) {
  using R = ReviewReason;
  switch (r) {
    KEEL_ENUM_CASE(R, none);
    KEEL_ENUM_CASE(R, deadline_unknown);
    KEEL_ENUM_CASE(R, psp_result_rejected);
  }
  return "unknown";
}

std::optional<ReviewReason> reason_from_name(std::string_view name) {
  for (uint8_t i = 1; i <= static_cast<uint8_t>(kReviewReasonLast); ++i) {
    if (reason_name(static_cast<ReviewReason>(i)) == name) return static_cast<ReviewReason>(i);
  }
  return std::nullopt;
}

std::string_view result_name(ReviewResult r) {
  using R = ReviewResult;
  switch (r) {
    KEEL_ENUM_CASE(R, ok);
    KEEL_ENUM_CASE(R, already_open);
    KEEL_ENUM_CASE(R, reason_invalid);
    KEEL_ENUM_CASE(R, object_invalid);
    KEEL_ENUM_CASE(R, evidence_invalid);
    KEEL_ENUM_CASE(R, resolution_invalid);
    KEEL_ENUM_CASE(R, not_open);
    KEEL_ENUM_CASE(R, too_many_items);
    KEEL_ENUM_CASE(R, cursor_not_found);
  }
  return "unknown";
}

void ReviewDesk::index(const ReviewItem& item) {
  order_.insert({item.opened_at, item.id});
  if (item.open()) open_.insert({item.object_id, item.id});
  ++per_object_[item.object_id];
}

ReviewResult ReviewDesk::open(std::string_view object_type, std::string_view object_id,
                              ReviewReason reason, std::string_view evidence, Timestamp now) {
  if (!valid_reason(reason)) return ReviewResult::reason_invalid;
  if (!valid_object(object_type, object_id)) return ReviewResult::object_invalid;
  if (evidence.empty() || evidence.size() > kEvidenceBytesMax) {
    return ReviewResult::evidence_invalid;
  }
  if (open_item(object_id, reason) != nullptr) return ReviewResult::already_open;
  const auto count = per_object_.find(object_id);
  const size_t n = count == per_object_.end() ? 0 : count->second;
  if (n >= kItemsPerObjectMax) return ReviewResult::too_many_items;
  ReviewItem item;
  item.id = item_id(object_id, n + 1);
  item.object_type = std::string(object_type);
  item.object_id = std::string(object_id);
  item.reason = reason;
  item.evidence = std::string(evidence);
  item.opened_at = now;
  KEEL_ASSERT(consistent(item));
  index(item);
  const bool fresh = items_.emplace(item.id, std::move(item)).second;
  KEEL_ASSERT(fresh);  // ids count per object: the n-th is never taken
  return ReviewResult::ok;
}

ReviewResult ReviewDesk::resolve(std::string_view object_id, std::string_view resolved_by,
                                 std::string_view resolution, Timestamp now) {
  if (resolved_by.empty() || resolved_by.size() > kResolutionBytesMax || resolution.empty() ||
      resolution.size() > kResolutionBytesMax) {
    return ReviewResult::resolution_invalid;
  }
  const std::string key(object_id);
  auto it = open_.lower_bound({key, ""});
  if (it == open_.end() || it->first != key) return ReviewResult::not_open;
  while (it != open_.end() && it->first == key) {
    ReviewItem& item = items_.find(it->second)->second;
    KEEL_ASSERT(item.open() && now >= item.opened_at);
    item.resolved_at = std::max<Timestamp>(now, 1);
    item.resolved_by = std::string(resolved_by);
    item.resolution = std::string(resolution);
    KEEL_ASSERT(consistent(item));
    it = open_.erase(it);
  }
  return ReviewResult::ok;
}

const ReviewItem* ReviewDesk::find(std::string_view id) const {
  const auto it = items_.find(id);
  return it == items_.end() ? nullptr : &it->second;
}

const ReviewItem* ReviewDesk::open_item(std::string_view object_id, ReviewReason reason) const {
  const std::string key(object_id);
  for (auto it = open_.lower_bound({key, ""}); it != open_.end() && it->first == key; ++it) {
    const ReviewItem* item = find(it->second);
    KEEL_ASSERT(item != nullptr);
    if (item->reason == reason) return item;
  }
  return nullptr;
}

bool ReviewDesk::has_open(std::string_view object_id) const {
  const std::string key(object_id);
  const auto it = open_.lower_bound({key, ""});
  return it != open_.end() && it->first == key;
}

std::vector<std::string> ReviewDesk::objects_with_open_items() const {
  std::vector<std::string> out;
  for (const auto& [object, item] : open_) {
    if (out.empty() || out.back() != object) out.push_back(object);
  }
  return out;
}

size_t ReviewDesk::open_count(ReviewReason reason) const {
  return static_cast<size_t>(std::count_if(open_.begin(), open_.end(), [&](const auto& entry) {
    return find(entry.second)->reason == reason;
  }));
}

ReviewPage ReviewDesk::list(const ReviewFilter& filter, size_t limit,
                            std::string_view starting_after) const {
  ReviewPage page;
  auto it = order_.begin();
  if (!starting_after.empty()) {
    const ReviewItem* cursor = find(starting_after);
    if (cursor == nullptr) {
      page.result = ReviewResult::cursor_not_found;
      return page;
    }
    it = order_.upper_bound({cursor->opened_at, cursor->id});
  }
  limit = std::clamp<size_t>(limit, 1, kListLimitMax);
  for (; it != order_.end(); ++it) {
    const ReviewItem& item = items_.find(it->second)->second;
    if (!matches(filter, item)) continue;
    if (page.data.size() == limit) {
      page.has_more = true;
      break;
    }
    page.data.push_back(&item);
  }
  return page;
}

void ReviewDesk::encode(std::string* out) const {
  ByteWriter w(out);
  w.u32(kEncodingVersion);
  w.u64(items_.size());
  for (const auto& [id, item] : items_) {
    w.str16(item.id);
    w.str16(item.object_type);
    w.str16(item.object_id);
    w.u8(static_cast<uint8_t>(item.reason));
    w.str16(item.evidence);
    w.i64(item.opened_at);
    w.i64(item.resolved_at);
    w.str16(item.resolved_by);
    w.str16(item.resolution);
  }
}

Status ReviewDesk::decode(std::string_view bytes, ReviewDesk* out) {
  ByteReader r(bytes);
  uint32_t version = 0;
  uint64_t n = 0;
  if (!r.u32(&version) || version != kEncodingVersion || !r.u64(&n)) {
    return Status::error("review: bad header");
  }
  ReviewDesk desk;
  for (uint64_t i = 0; i < n; ++i) {
    ReviewItem item;
    const bool read = r.str16(&item.id) && r.str16(&item.object_type) && r.str16(&item.object_id) &&
                      read_enum(r, kReviewReasonLast, &item.reason) && r.str16(&item.evidence) &&
                      r.i64(&item.opened_at) && r.i64(&item.resolved_at) &&
                      r.str16(&item.resolved_by) && r.str16(&item.resolution);
    if (!read || !consistent(item)) {
      return Status::error("review: item " + std::to_string(i) + " malformed");
    }
    if (item.open() && desk.open_item(item.object_id, item.reason) != nullptr) {
      return Status::error("review: two open items for " + item.object_id);
    }
    if (desk.items_.contains(item.id)) return Status::error("review: item " + item.id + " twice");
    desk.index(item);
    std::string id = item.id;
    desk.items_.emplace(std::move(id), std::move(item));
  }
  for (const auto& [object, count] : desk.per_object_) {
    if (count > kItemsPerObjectMax || !desk.items_.contains(item_id(object, count))) {
      return Status::error("review: the items of " + object + " are not numbered 1..n");
    }
  }
  if (!r.at_end()) return Status::error("review: trailing bytes");
  *out = std::move(desk);
  return Status::ok();
}

}  // namespace keel::review
