#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

#include "core/assert.h"
#include "core/time.h"

namespace keel::routing {

inline constexpr int64_t kNanosPerMilli = 1'000'000;

// A sliding window of N buckets of `bucket_ms` each, over time the caller gives (the engine's
// logical timestamps), with a running total: add() and total() cost O(1) plus the buckets that
// fell out since the last call. Memory is (N + 1) * sizeof(T), whatever the traffic. Time that
// goes backwards counts in the newest bucket seen.
//
// T needs: T{} is empty, `T& operator+=(const T&)` and `T& operator-=(const T&)`.
template <typename T, size_t N>
class RollingWindow {
 public:
  explicit RollingWindow(int64_t bucket_ms = 1'000) : bucket_ns_(bucket_ms * kNanosPerMilli) {
    KEEL_ASSERT(bucket_ms > 0);
  }

  void add(Timestamp now, const T& delta) {
    advance(now);
    slots_[static_cast<size_t>(latest_) % N] += delta;
    total_ += delta;
  }

  // The sum of the buckets within the window that ends at `now`.
  const T& total(Timestamp now) {
    advance(now);
    return total_;
  }

  void clear() {
    slots_ = {};
    total_ = T{};
  }
  [[nodiscard]] int64_t span_ms() const {
    return static_cast<int64_t>(N) * bucket_ns_ / kNanosPerMilli;
  }

 private:
  // Moves the newest bucket to `now`'s, emptying the buckets it passes over.
  void advance(Timestamp now) {
    const int64_t index = now < 0 ? 0 : now / bucket_ns_;
    if (index <= latest_) return;
    const int64_t passed = std::min<int64_t>(index - latest_, static_cast<int64_t>(N));
    for (int64_t i = 1; i <= passed; ++i) {
      T& slot = slots_[static_cast<size_t>(latest_ + i) % N];
      total_ -= slot;
      slot = T{};
    }
    latest_ = index;
  }

  int64_t bucket_ns_;
  int64_t latest_ = 0;
  std::array<T, N> slots_{};
  T total_{};
};

}  // namespace keel::routing
