// One libFuzzer binary per target (`make fuzz`): KEEL_FUZZ_TARGET names it (targets.h).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/assert.h"
#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const keel::fuzz::Target* target = keel::fuzz::find_target(KEEL_FUZZ_TARGET);
  KEEL_ASSERT(target != nullptr);
  target->run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
