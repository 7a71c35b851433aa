#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/assert.h"

namespace keel::ledger {

// An append-only sequence whose elements can leave memory one by one ("go cold": moved to the
// history store by the caller) while their positions stay. Elements live in fixed chunks, so
// appending never moves one; when a chunk older than the newest has few elements left in memory,
// those are relocated to a side map and the chunk is freed, so memory follows the elements
// still held, not the length. `T` must be movable and default-constructible, with a `bool cold`
// member (false for every element pushed).
//
// Pointers returned by hot() stay valid until that element goes cold or is popped (relocation
// happens only in make_cold). Not thread-safe.
template <typename T, size_t kChunkShift = 12>
class TieredVector {
 public:
  static constexpr size_t kChunkSize = size_t{1} << kChunkShift;
  // A full chunk with at most this many elements in memory is freed (they are relocated).
  static constexpr uint32_t kRelocateMax = kChunkSize / 64;

  [[nodiscard]] size_t size() const { return size_; }
  // Elements still in memory.
  [[nodiscard]] size_t hot_count() const { return hot_; }

  // nullptr when element i went cold. REQUIRES: i < size().
  T* hot(size_t i) {
    KEEL_ASSERT(i < size_);
    Chunk* c = chunks_[i >> kChunkShift].get();
    if (c != nullptr) {
      T& t = c->items[i & kMask];
      return t.cold ? nullptr : &t;
    }
    const auto it = relocated_.find(i);
    return it == relocated_.end() ? nullptr : &it->second;
  }
  const T* hot(size_t i) const { return const_cast<TieredVector*>(this)->hot(i); }

  void push_back(T&& value) {
    KEEL_ASSERT(!value.cold);
    if ((size_ >> kChunkShift) == chunks_.size()) {
      chunks_.push_back(std::make_unique<Chunk>());
      chunks_.back()->items.reserve(kChunkSize);
      if (chunks_.size() > 1) maybe_free(chunks_.size() - 2);
    }
    Chunk& c = *chunks_[size_ >> kChunkShift];
    c.items.push_back(std::move(value));
    ++c.hot;
    ++size_;
    ++hot_;
  }

  // Removes the newest element (rolling back a failed chain). REQUIRES: it is in memory, in the
  // newest chunk (elements go cold only after their chain ended).
  void pop_back() {
    KEEL_ASSERT(size_ > 0);
    --size_;
    Chunk* c = chunks_[size_ >> kChunkShift].get();
    KEEL_ASSERT(c != nullptr && c->items.size() == (size_ & kMask) + 1 && !c->items.back().cold);
    c->items.pop_back();
    --c->hot;
    --hot_;
    if (c->items.empty()) chunks_.pop_back();
  }

  // Drops element i from memory. REQUIRES: it is in memory.
  void make_cold(size_t i) {
    const size_t ci = i >> kChunkShift;
    Chunk* c = chunks_[ci].get();
    --hot_;
    if (c == nullptr) {
      KEEL_ASSERT(relocated_.erase(i) == 1);
      return;
    }
    T& t = c->items[i & kMask];
    KEEL_ASSERT(!t.cold);
    t = T{};
    t.cold = true;
    --c->hot;
    maybe_free(ci);
  }

  // Heap bytes held: live chunks at full capacity, relocated elements with their hash-node cost.
  [[nodiscard]] size_t memory_bytes() const {
    size_t live = 0;
    for (const auto& c : chunks_) live += c ? 1 : 0;
    return live * kChunkSize * sizeof(T) + chunks_.capacity() * sizeof(void*) +
           relocated_.size() * (sizeof(T) + 32) + relocated_.bucket_count() * sizeof(void*);
  }

 private:
  static constexpr size_t kMask = kChunkSize - 1;

  // Frees chunk ci when it is full and not the newest (nothing will be pushed to or popped from
  // it) and few of its elements remain in memory: those move to the side map.
  void maybe_free(size_t ci) {
    Chunk* c = chunks_[ci].get();
    if (c == nullptr || c->hot > kRelocateMax || c->items.size() != kChunkSize ||
        ci + 1 >= chunks_.size()) {
      return;
    }
    for (size_t k = 0; k < kChunkSize; ++k) {
      if (!c->items[k].cold) relocated_.emplace((ci << kChunkShift) + k, std::move(c->items[k]));
    }
    chunks_[ci].reset();
  }
  struct Chunk {
    std::vector<T> items;
    uint32_t hot = 0;
  };
  std::vector<std::unique_ptr<Chunk>> chunks_;
  std::unordered_map<size_t, T> relocated_;
  size_t size_ = 0;
  size_t hot_ = 0;
};

}  // namespace keel::ledger
