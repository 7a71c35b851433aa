#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "core/status.h"
#include "core/time.h"

namespace keel {

// A wall clock tests can move forward, never back: the system's wall clock plus an offset
// (docs/testing.md, "A clock tests can move"). keeld and keel-psp-sim read it instead of the
// system's only when told to (keeld's `[testing] movable_clock = true`, keel-psp-sim's
// `--movable-clock`; never by default), and an admin route of each advances it, so a test can
// move both a week forward in a second: deadlines fall due, T+N days pass, quotes expire.
//
// With a file, the offset survives a restart: advance() writes it (whole, synced, renamed)
// before it takes effect, and open() reads it back. Without one it lives in memory.
//
// Thread: every method from any thread (advance() takes a mutex; now() reads an atomic).
class MovableClock {
 public:
  // The most one advance() may move (a year), and the most the offset may reach (ten years).
  static constexpr int64_t kAdvanceMaxNs = 366 * 24 * 3600 * kNanosPerSecond;
  static constexpr int64_t kOffsetMaxNs = 10 * kAdvanceMaxNs;

  MovableClock() = default;
  // A clock whose offset is kept in `path` (read now when the file exists). Fails on a file
  // that does not hold one offset in [0, kOffsetMaxNs].
  [[nodiscard]] static Status open(std::string path, MovableClock* out);

  [[nodiscard]] Timestamp now() const { return wall_clock_now() + offset_ns(); }
  [[nodiscard]] int64_t offset_ns() const { return offset_ns_.load(std::memory_order_acquire); }

  // Moves the clock `ns` forward. Fails, and nothing moves, when `ns` is outside
  // [1, kAdvanceMaxNs], when the offset would pass kOffsetMaxNs, or when its file cannot be
  // written.
  [[nodiscard]] Status advance(int64_t ns);

 private:
  std::string path_;
  std::mutex advance_mu_;
  std::atomic<int64_t> offset_ns_{0};
};

}  // namespace keel
