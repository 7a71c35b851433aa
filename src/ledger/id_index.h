#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/assert.h"
#include "core/hash.h"

namespace keel::ledger {

// An open-addressing hash index from a string id to a record index (uint32), 8 bytes a slot.
// The ids themselves live in the records: every operation takes `get_id(index)`, which returns
// the id stored at a record index. Linear probing, load factor at most 3/4, backward-shift
// erase. Not thread-safe.
class IdIndex {
 public:
  explicit IdIndex(SipKey key = {}) : key_(key) {}

  [[nodiscard]] uint64_t hash(std::string_view id) const { return siphash13(key_, id); }

  template <typename GetId>
  [[nodiscard]] std::optional<uint32_t> find(std::string_view id, const GetId& get_id) const {
    return find(id, hash(id), get_id);
  }

  // As find(id), with `h` == hash(id) computed by the caller (to hash an id once).
  template <typename GetId>
  [[nodiscard]] std::optional<uint32_t> find(std::string_view id, uint64_t h,
                                             const GetId& get_id) const {
    if (slots_.empty()) return std::nullopt;
    const uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const uint64_t s = slots_[i];
      if (s == 0) return std::nullopt;
      const uint32_t index = static_cast<uint32_t>(s) - 1;
      if (static_cast<uint32_t>(s >> 32) == tag && get_id(index) == id) return index;
    }
  }

  // REQUIRES: `id` is not in the index and get_id(index) == id.
  template <typename GetId>
  void insert(std::string_view id, uint32_t index, const GetId& get_id) {
    insert_hashed(hash(id), index, get_id);
  }

  // As insert(), with `h` == hash(id).
  template <typename GetId>
  void insert_hashed(uint64_t h, uint32_t index, const GetId& get_id) {
    KEEL_ASSERT(index < 0xFFFFFFFFu);
    if ((size_ + 1) * 4 > slots_.size() * 3) grow(get_id);
    place(h, index);
    ++size_;
  }

  // REQUIRES: `id` is in the index.
  template <typename GetId>
  void erase(std::string_view id, const GetId& get_id) {
    const uint64_t h = siphash13(key_, id);
    size_t i = h & mask_;
    for (;; i = (i + 1) & mask_) {
      KEEL_ASSERT(slots_[i] != 0);
      if (get_id(static_cast<uint32_t>(slots_[i]) - 1) == id) break;
    }
    // Backward-shift deletion: pull later members of the probe run into the hole.
    for (size_t j = (i + 1) & mask_; slots_[j] != 0; j = (j + 1) & mask_) {
      const uint32_t index = static_cast<uint32_t>(slots_[j]) - 1;
      const size_t home = siphash13(key_, get_id(index)) & mask_;
      // Move slot j into the hole at i when its home is not cyclically within (i, j].
      const bool home_between = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
      if (!home_between) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = 0;
    --size_;
  }

  [[nodiscard]] size_t size() const { return size_; }
  [[nodiscard]] size_t memory_bytes() const { return slots_.capacity() * sizeof(uint64_t); }

 private:
  void place(uint64_t h, uint32_t index) {
    const uint64_t slot = (h & 0xFFFFFFFF00000000ull) | (static_cast<uint64_t>(index) + 1);
    size_t i = h & mask_;
    while (slots_[i] != 0) i = (i + 1) & mask_;
    slots_[i] = slot;
  }

  template <typename GetId>
  void grow(const GetId& get_id) {
    std::vector<uint64_t> old;
    old.swap(slots_);
    const size_t capacity = old.empty() ? 1024 : old.size() * 2;
    slots_.assign(capacity, 0);
    mask_ = capacity - 1;
    for (uint64_t s : old) {
      if (s == 0) continue;
      const uint32_t index = static_cast<uint32_t>(s) - 1;
      place(siphash13(key_, get_id(index)), index);
    }
  }

  SipKey key_;
  std::vector<uint64_t> slots_;  // 0 = empty; else (tag << 32) | (index + 1)
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace keel::ledger
