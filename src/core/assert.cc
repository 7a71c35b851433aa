#include "core/assert.h"

#include <cstdio>
#include <cstdlib>

namespace keel {

void assert_fail(const char* expr, const char* file, int line, const char* func) {
  std::fprintf(stderr, "keel: invariant violated: %s at %s:%d in %s\n", expr, file, line, func);
  std::fflush(stderr);
  std::abort();
}

}  // namespace keel
