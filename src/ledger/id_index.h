#pragma once

#include <bit>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/assert.h"
#include "core/hash.h"
#include "core/huge_page_allocator.h"

namespace keel::ledger {

// An open-addressing hash index from a string id to a record index (uint32), 8 bytes a slot.
// The ids themselves live in the records: lookups take `get_id(index)`, which returns the id
// stored at a record index. Each slot keeps a 32-bit tag of the id's hash, and the home slot is
// derived from the tag alone, so growing and erasing never touch the records (no cache misses
// into them, no rehashing of ids). Linear probing, load factor at most 3/4, backward-shift
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
    const uint32_t tag = tag_of(h);
    for (size_t i = home(tag);; i = (i + 1) & mask_) {
      const uint64_t s = slots_[i];
      if (s == 0) return std::nullopt;
      if (static_cast<uint32_t>(s >> 32) == tag && get_id(index_of(s)) == id) return index_of(s);
    }
  }

  // Calls fn(index) for every record whose id hash shares the tag of hash `h` (the record with
  // that id, if any, and rare collisions): for callers that compare ids themselves.
  template <typename Fn>
  void for_each_candidate(uint64_t h, const Fn& fn) const {
    if (slots_.empty()) return;
    const uint32_t tag = tag_of(h);
    for (size_t i = home(tag);; i = (i + 1) & mask_) {
      const uint64_t s = slots_[i];
      if (s == 0) return;
      if (static_cast<uint32_t>(s >> 32) == tag) fn(index_of(s));
    }
  }

  // Hints the CPU to load the home slot of hash `h` (for batches: prefetch a few ahead).
  void prefetch(uint64_t h) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[home(tag_of(h))]);
  }

  // REQUIRES: the id is not in the index; h == hash(id).
  void insert_hashed(uint64_t h, uint32_t index) {
    KEEL_ASSERT(index < 0xFFFFFFFFu);
    if ((size_ + 1) * 4 > slots_.size() * 3) grow();
    place(tag_of(h), index);
    ++size_;
  }
  void insert(std::string_view id, uint32_t index) { insert_hashed(hash(id), index); }

  // REQUIRES: `id` is in the index.
  template <typename GetId>
  void erase(std::string_view id, const GetId& get_id) {
    const uint32_t tag = tag_of(hash(id));
    size_t i = home(tag);
    for (;; i = (i + 1) & mask_) {
      KEEL_ASSERT(slots_[i] != 0);
      if (static_cast<uint32_t>(slots_[i] >> 32) == tag && get_id(index_of(slots_[i])) == id) break;
    }
    // Backward-shift deletion: pull later members of the probe run into the hole.
    for (size_t j = (i + 1) & mask_; slots_[j] != 0; j = (j + 1) & mask_) {
      const size_t h = home(static_cast<uint32_t>(slots_[j] >> 32));
      // Move slot j into the hole at i when its home is not cyclically within (i, j].
      const bool home_between = (i <= j) ? (h > i && h <= j) : (h > i || h <= j);
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
  static uint32_t tag_of(uint64_t h) { return static_cast<uint32_t>(h >> 32); }
  static uint32_t index_of(uint64_t slot) { return static_cast<uint32_t>(slot) - 1; }
  // Fibonacci hashing of the tag onto the table: uses the tag's high bits.
  size_t home(uint32_t tag) const {
    return static_cast<size_t>((uint64_t{tag} * 0x9E3779B97F4A7C15ull) >> shift_) & mask_;
  }

  void place(uint32_t tag, uint32_t index) {
    size_t i = home(tag);
    while (slots_[i] != 0) i = (i + 1) & mask_;
    slots_[i] = (uint64_t{tag} << 32) | (uint64_t{index} + 1);
  }

  void grow() {
    std::vector<uint64_t, HugePageAllocator<uint64_t>> old;
    old.swap(slots_);
    const size_t capacity = old.empty() ? 1024 : old.size() * 2;
    slots_.assign(capacity, 0);
    mask_ = capacity - 1;
    shift_ = 64 - std::countr_zero(capacity);
    for (uint64_t s : old) {
      if (s != 0) place(static_cast<uint32_t>(s >> 32), index_of(s));
    }
  }

  SipKey key_;
  std::vector<uint64_t, HugePageAllocator<uint64_t>>
      slots_;  // 0 = empty; else (tag << 32) | (index + 1)
  size_t mask_ = 0;
  int shift_ = 64;
  size_t size_ = 0;
};

}  // namespace keel::ledger
