#include "core/movable_clock.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/assert.h"
#include "core/secret_file.h"

namespace keel {

Status MovableClock::open(std::string path, MovableClock* out) {
  KEEL_ASSERT(out->offset_ns() == 0 && out->path_.empty());
  out->path_ = std::move(path);
  if (!std::filesystem::exists(out->path_)) return Status::ok();
  std::ifstream in(out->path_);
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  int64_t offset = -1;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), offset);
  if (ec != std::errc() || end != s.data() + s.size() || offset < 0 || offset > kOffsetMaxNs) {
    return Status::error("the clock offset file " + out->path_ +
                         " does not hold an offset in nanoseconds");
  }
  out->offset_ns_.store(offset, std::memory_order_release);
  return Status::ok();
}

Status MovableClock::advance(int64_t ns) {
  if (ns < 1 || ns > kAdvanceMaxNs) {
    return Status::error("a clock moves forward by 1 ns to 366 days at a time");
  }
  std::lock_guard lock(advance_mu_);
  const int64_t before = offset_ns();
  const int64_t after = before + ns;  // no overflow: both are at most kOffsetMaxNs + a year
  if (after > kOffsetMaxNs) return Status::error("the clock would be more than ten years ahead");
  if (!path_.empty()) {
    if (Status s = write_secret_file(path_, "the clock offset file", std::to_string(after) + "\n");
        !s.is_ok()) {
      return s;
    }
  }
  offset_ns_.store(after, std::memory_order_release);
  KEEL_ASSERT(offset_ns() > before);
  return Status::ok();
}

}  // namespace keel
