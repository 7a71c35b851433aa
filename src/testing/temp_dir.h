#pragma once

#include <filesystem>

namespace keel::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it by the destructor.
// Throws std::runtime_error if it cannot be created (tests only).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace keel::testing
