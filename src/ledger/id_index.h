#pragma once

#include <sys/mman.h>

#include <bit>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "core/assert.h"
#include "core/hash.h"
#include "core/huge_page_allocator.h"

namespace keel::ledger {

// A table of zeroed 8-byte slots that costs no time to create: a large one is an anonymous
// mapping (the kernel zeroes each page on first touch, transparent huge pages asked for), a
// small one comes from calloc. Creating a 512 MB table by writing zeros would stall its caller
// for the better part of a second.
class SlotTable {
 public:
  SlotTable() = default;
  explicit SlotTable(size_t n) : n_(n) {
    const size_t bytes = n * sizeof(uint64_t);
    if (bytes >= HugePageAllocator<uint64_t>::kHugePage) {
      void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
      ::madvise(p, bytes, MADV_HUGEPAGE);
      p_ = static_cast<uint64_t*>(p);
      mapped_ = true;
    } else {
      p_ = static_cast<uint64_t*>(std::calloc(n, sizeof(uint64_t)));
      if (p_ == nullptr) throw std::bad_alloc();
    }
  }
  SlotTable(SlotTable&& o) noexcept { swap(o); }
  SlotTable& operator=(SlotTable&& o) noexcept {
    SlotTable(std::move(o)).swap(*this);
    return *this;
  }
  SlotTable(const SlotTable&) = delete;
  SlotTable& operator=(const SlotTable&) = delete;
  ~SlotTable() {
    if (mapped_) {
      ::munmap(p_, n_ * sizeof(uint64_t));
    } else {
      std::free(p_);
    }
  }
  void swap(SlotTable& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    std::swap(mapped_, o.mapped_);
  }

  uint64_t& operator[](size_t i) { return p_[i]; }
  const uint64_t& operator[](size_t i) const { return p_[i]; }
  [[nodiscard]] size_t size() const { return n_; }
  [[nodiscard]] bool empty() const { return n_ == 0; }

 private:
  uint64_t* p_ = nullptr;
  size_t n_ = 0;
  bool mapped_ = false;
};

// An open-addressing hash index from a string id to a record index (uint32), 8 bytes a slot.
// The ids themselves live in the records: lookups take `get_id(index)`, which returns the id
// stored at a record index. Each slot keeps a 32-bit tag of the id's hash, and the home slot is
// derived from the tag alone, so growing and erasing never touch the records (no cache misses
// into them, no rehashing of ids). Linear probing, load factor at most 3/4, backward-shift
// erase. Not thread-safe.
//
// Growing is incremental, so no insert pays for rehashing the whole table (at 50 million ids
// that is a 512 MB table and seconds on the writer): a full table becomes the "old" table, a
// twice larger one takes new inserts, and each insert moves kMigrateStep old slots over. Until
// the move ends, lookups probe the new table, then the old one from the first slot not yet
// moved (slots before it are moved: still occupied for probing, never a match); erasing an id
// still in the old table leaves a tombstone there.
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
    std::optional<uint32_t> found;
    for_each_candidate(h, [&](uint32_t index) {
      if (!found && get_id(index) == id) found = index;
    });
    return found;
  }

  // Calls fn(index) for every record whose id hash shares the tag of hash `h` (the record with
  // that id, if any, and rare collisions): for callers that compare ids themselves.
  template <typename Fn>
  void for_each_candidate(uint64_t h, const Fn& fn) const {
    const uint32_t tag = tag_of(h);
    probe(slots_, mask_, shift_, 0, tag, fn);
    if (!old_.empty()) probe(old_, old_mask_, old_shift_, migrated_, tag, fn);
  }

  // Hints the CPU to load the home slot of hash `h` (for batches: prefetch a few ahead).
  void prefetch(uint64_t h) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[home(tag_of(h), shift_, mask_)]);
  }

  // Sizes an empty index for `n` ids, so that inserting them (in any order) never grows it.
  // REQUIRES: the index is empty.
  void reserve(size_t n) {
    KEEL_ASSERT(size_ == 0 && old_.empty());
    size_t capacity = 1024;
    while (n * 4 > capacity * 3) capacity *= 2;
    if (capacity <= slots_.size()) return;
    slots_ = Slots(capacity);
    mask_ = capacity - 1;
    shift_ = 64 - std::countr_zero(capacity);
  }

  // REQUIRES: the id is not in the index; h == hash(id).
  void insert_hashed(uint64_t h, uint32_t index) {
    KEEL_ASSERT(index < 0xFFFFFFFFu);
    if (!old_.empty()) migrate(kMigrateStep);
    if ((size_ + 1) * 4 > slots_.size() * 3) grow();
    place(slots_, shift_, mask_, tag_of(h), index);
    ++size_;
  }
  void insert(std::string_view id, uint32_t index) { insert_hashed(hash(id), index); }

  // REQUIRES: `id` is in the index.
  template <typename GetId>
  void erase(std::string_view id, const GetId& get_id) {
    const uint32_t tag = tag_of(hash(id));
    if (erase_from_new(tag, id, get_id)) {
      --size_;
      return;
    }
    // Still in the old table, at or after the first slot not yet moved: a tombstone (a backward
    // shift there could pull a moved slot back into the part still to move).
    KEEL_ASSERT(!old_.empty());
    for (size_t i = home(tag, old_shift_, old_mask_);; i = (i + 1) & old_mask_) {
      const uint64_t s = old_[i];
      KEEL_ASSERT(s != 0);
      if (i >= migrated_ && s != kTombstone && static_cast<uint32_t>(s >> 32) == tag &&
          get_id(index_of(s)) == id) {
        old_[i] = kTombstone;
        --size_;
        return;
      }
    }
  }

  // Calls fn(tag) for every id in the index: the high 32 bits of its hash, all that
  // insert_hashed() keeps of it (so insert_hashed(uint64_t{tag} << 32, index) puts it back).
  // The tags come in home-slot order: inserted in that order into a table that grows from small,
  // they pile into its first part, one long probe run (100 times slower at 300,000); reserve()
  // the index for all of them first.
  template <typename Fn>
  void for_each_tag(const Fn& fn) const {
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i] != 0) fn(static_cast<uint32_t>(slots_[i] >> 32));
    }
    for (size_t i = migrated_; i < old_.size(); ++i) {
      if (old_[i] != 0 && old_[i] != kTombstone) fn(static_cast<uint32_t>(old_[i] >> 32));
    }
  }
  // Whether some id in the index has the tag of hash `h` (the id itself, or a rare collision).
  [[nodiscard]] bool may_contain(uint64_t h) const {
    bool found = false;
    for_each_candidate(h, [&](uint32_t) { found = true; });
    return found;
  }

  [[nodiscard]] size_t size() const { return size_; }
  [[nodiscard]] size_t memory_bytes() const {
    return (slots_.size() + old_.size()) * sizeof(uint64_t);
  }
  // Whether a move from an old table is under way (for tests).
  [[nodiscard]] bool growing() const { return !old_.empty(); }

 private:
  using Slots = SlotTable;
  // Old slots moved per insert while growing. The move ends within capacity/8 inserts after a
  // grow, long before the new table (then at most 3/8 full) fills to 3/4.
  static constexpr size_t kMigrateStep = 8;
  // A slot of the old table whose id was erased: occupied for probing, never a match.
  static constexpr uint64_t kTombstone = uint64_t{1} << 32;

  static uint32_t tag_of(uint64_t h) { return static_cast<uint32_t>(h >> 32); }
  static uint32_t index_of(uint64_t slot) { return static_cast<uint32_t>(slot) - 1; }
  // Fibonacci hashing of the tag onto the table: uses the tag's high bits.
  static size_t home(uint32_t tag, int shift, size_t mask) {
    return static_cast<size_t>((uint64_t{tag} * 0x9E3779B97F4A7C15ull) >> shift) & mask;
  }

  // Calls fn for each slot of `slots` tagged `tag` on the probe path from its home, skipping
  // slots before `first_live` (moved to the new table) and tombstones.
  template <typename Fn>
  static void probe(const Slots& slots, size_t mask, int shift, size_t first_live, uint32_t tag,
                    const Fn& fn) {
    if (slots.empty()) return;
    for (size_t i = home(tag, shift, mask);; i = (i + 1) & mask) {
      const uint64_t s = slots[i];
      if (s == 0) return;
      if (i >= first_live && s != kTombstone && static_cast<uint32_t>(s >> 32) == tag) {
        fn(index_of(s));
      }
    }
  }

  static void place(Slots& slots, int shift, size_t mask, uint32_t tag, uint32_t index) {
    size_t i = home(tag, shift, mask);
    while (slots[i] != 0) i = (i + 1) & mask;
    slots[i] = (uint64_t{tag} << 32) | (uint64_t{index} + 1);
  }

  template <typename GetId>
  bool erase_from_new(uint32_t tag, std::string_view id, const GetId& get_id) {
    if (slots_.empty()) return false;
    size_t i = home(tag, shift_, mask_);
    for (;; i = (i + 1) & mask_) {
      if (slots_[i] == 0) return false;
      if (static_cast<uint32_t>(slots_[i] >> 32) == tag && get_id(index_of(slots_[i])) == id) break;
    }
    // Backward-shift deletion: pull later members of the probe run into the hole.
    for (size_t j = (i + 1) & mask_; slots_[j] != 0; j = (j + 1) & mask_) {
      const size_t h = home(static_cast<uint32_t>(slots_[j] >> 32), shift_, mask_);
      // Move slot j into the hole at i when its home is not cyclically within (i, j].
      const bool home_between = (i <= j) ? (h > i && h <= j) : (h > i || h <= j);
      if (!home_between) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = 0;
    return true;
  }

  // Moves up to `n` slots of the old table into the new one; frees it after the last.
  void migrate(size_t n) {
    for (; n > 0 && migrated_ < old_.size(); --n, ++migrated_) {
      const uint64_t s = old_[migrated_];
      if (s != 0 && s != kTombstone) {
        place(slots_, shift_, mask_, static_cast<uint32_t>(s >> 32), index_of(s));
      }
    }
    if (migrated_ == old_.size()) {
      old_ = Slots();
      migrated_ = 0;
    }
  }

  void grow() {
    if (!old_.empty()) migrate(old_.size());  // never two moves at once (see kMigrateStep)
    const size_t capacity = slots_.empty() ? 1024 : slots_.size() * 2;
    old_ = std::move(slots_);
    old_mask_ = mask_;
    old_shift_ = shift_;
    migrated_ = 0;
    slots_ = Slots(capacity);
    mask_ = capacity - 1;
    shift_ = 64 - std::countr_zero(capacity);
    if (old_.size() <= 4096) migrate(old_.size());  // small tables move at once
  }

  SipKey key_;
  Slots slots_;  // 0 = empty; else (tag << 32) | (index + 1)
  size_t mask_ = 0;
  int shift_ = 64;
  size_t size_ = 0;  // ids in both tables
  // The table being moved out of while growing (empty otherwise), and its next slot to move.
  Slots old_;
  size_t old_mask_ = 0;
  int old_shift_ = 64;
  size_t migrated_ = 0;
};

}  // namespace keel::ledger
