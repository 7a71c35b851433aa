#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/status.h"

namespace keel::journal {

// Thin POSIX file helpers for the journal (private to journal/). Every failure comes back as a
// Status naming the path and the errno text; nothing throws.

// Owns a file descriptor; closes it on destruction (close errors are ignored: durability comes
// from the explicit fdatasync calls, never from close).
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  int release();
  void reset();

 private:
  int fd_ = -1;
};

// A read-only private mapping of a whole file; bytes() is empty for an empty file.
// The file must not shrink while mapped (the journal owns its directory; see docs/journal.md).
class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  static Status open(const std::filesystem::path& path, MappedFile* out);
  [[nodiscard]] std::string_view bytes() const { return {data_, size_}; }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
};

// "<what> <path>: <strerror(err)>".
[[nodiscard]] std::string errno_message(std::string_view what, const std::filesystem::path& path,
                                        int err);

// open(2) with O_CLOEXEC added.
Status open_file(const std::filesystem::path& path, int flags, UniqueFd* out);
// Writes all of `data` at `offset`, looping on short writes and EINTR.
Status pwrite_all(int fd, std::string_view data, uint64_t offset,
                  const std::filesystem::path& path);
Status fdatasync_file(int fd, const std::filesystem::path& path);
// Makes creations, renames and deletions in `dir` durable.
Status fsync_dir(const std::filesystem::path& dir);
// Reads exactly `n` bytes at `offset` into `out` (resized to n); fails on a short file.
Status pread_exact(int fd, size_t n, uint64_t offset, const std::filesystem::path& path,
                   std::string* out);

}  // namespace keel::journal
