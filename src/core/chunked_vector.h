#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "core/assert.h"
#include "core/huge_page_allocator.h"

namespace keel {

// An append-only sequence stored in fixed-size chunks. Growing never moves existing elements
// (no reallocation spike on the writer thread, references stay valid) and wastes at most one
// partly filled chunk. pop_back exists for rolling back a failed linked chain.
template <typename T, size_t kChunkShift = 15>
class ChunkedVector {
 public:
  static constexpr size_t kChunkSize = size_t{1} << kChunkShift;

  [[nodiscard]] size_t size() const { return size_; }
  [[nodiscard]] bool empty() const { return size_ == 0; }

  T& operator[](size_t i) { return chunks_[i >> kChunkShift][i & (kChunkSize - 1)]; }
  const T& operator[](size_t i) const { return chunks_[i >> kChunkShift][i & (kChunkSize - 1)]; }
  T& back() { return (*this)[size_ - 1]; }

  T& push_back(T&& value) {
    if ((size_ >> kChunkShift) == chunks_.size()) {
      chunks_.emplace_back();
      chunks_.back().reserve(kChunkSize);
    }
    auto& chunk = chunks_[size_ >> kChunkShift];
    chunk.push_back(std::move(value));
    ++size_;
    return chunk.back();
  }

  void pop_back() {
    KEEL_ASSERT(size_ > 0);
    --size_;
    chunks_[size_ >> kChunkShift].pop_back();
    if ((size_ & (kChunkSize - 1)) == 0) chunks_.pop_back();
  }

  // Heap bytes held by the chunks (capacity, not size): for memory accounting.
  [[nodiscard]] size_t capacity_bytes() const { return chunks_.size() * kChunkSize * sizeof(T); }

 private:
  std::vector<std::vector<T, HugePageAllocator<T>>> chunks_;
  size_t size_ = 0;
};

}  // namespace keel
