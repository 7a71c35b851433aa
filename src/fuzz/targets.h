#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace keel::fuzz {

// The fuzz targets (docs/security.md, "Fuzzing"): each feeds one input to a decoder or parser
// that takes bytes from outside (a client, a PSP, the disk) and checks what must hold whatever
// the bytes: no crash, no sanitizer report, and a decode that succeeds re-encodes to input it
// decodes the same way. A broken property aborts (KEEL_ASSERT).
struct Target {
  std::string_view name;
  void (*run)(std::string_view input);
};

// Every target, by name. `make fuzz` builds one libFuzzer binary per target; keel-fuzz-replay
// runs a target over its kept corpus (tests/fuzz/corpus/NAME) in `make test`.
[[nodiscard]] std::span<const Target> targets();
[[nodiscard]] const Target* find_target(std::string_view name);

}  // namespace keel::fuzz
