#pragma once

// KEEL_ASSERT(cond) stays on in every build type. It guards invariants that only a bug can
// break (never input from a client or a PSP): a broken money invariant stops the process
// before anything is journaled or acknowledged.

namespace keel {
[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const char* func);
}  // namespace keel

#define KEEL_ASSERT(cond) \
  ((cond) ? static_cast<void>(0) : ::keel::assert_fail(#cond, __FILE__, __LINE__, __func__))
