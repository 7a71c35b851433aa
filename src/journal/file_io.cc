#include "journal/file_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace keel::journal {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = other.release();
  }
  return *this;
}

int UniqueFd::release() { return std::exchange(fd_, -1); }

void UniqueFd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    this->~MappedFile();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<char*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

Status MappedFile::open(const std::filesystem::path& path, MappedFile* out) {
  UniqueFd fd;
  if (Status s = open_file(path, O_RDONLY, &fd); !s.is_ok()) return s;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::error(errno_message("stat", path, errno));
  MappedFile m;
  if (st.st_size > 0) {
    void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (p == MAP_FAILED) return Status::error(errno_message("mmap", path, errno));
    m.data_ = static_cast<const char*>(p);
    m.size_ = static_cast<size_t>(st.st_size);
  }
  *out = std::move(m);
  return Status::ok();
}

std::string errno_message(std::string_view what, const std::filesystem::path& path, int err) {
  return std::string(what) + " " + path.string() + ": " + std::strerror(err);
}

Status open_file(const std::filesystem::path& path, int flags, UniqueFd* out) {
  int fd = -1;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return Status::error(errno_message("open", path, errno));
  *out = UniqueFd(fd);
  return Status::ok();
}

Status pwrite_all(int fd, std::string_view data, uint64_t offset,
                  const std::filesystem::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::error(errno_message("write", path, errno));
    if (n == 0) return Status::error("write " + path.string() + ": wrote 0 bytes");
    data.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return Status::ok();
}

Status fdatasync_file(int fd, const std::filesystem::path& path) {
  // No retry on EINTR or anything else: after a failed sync the page cache may have dropped the
  // dirty pages, so a second call could report success for data that never reached the disk.
  if (::fdatasync(fd) != 0) return Status::error(errno_message("fdatasync", path, errno));
  return Status::ok();
}

Status fsync_dir(const std::filesystem::path& dir) {
  UniqueFd fd;
  if (Status s = open_file(dir, O_RDONLY | O_DIRECTORY, &fd); !s.is_ok()) return s;
  if (::fsync(fd.get()) != 0) return Status::error(errno_message("fsync", dir, errno));
  return Status::ok();
}

Status pread_exact(int fd, size_t n, uint64_t offset, const std::filesystem::path& path,
                   std::string* out) {
  out->resize(n);
  size_t done = 0;
  while (done < n) {
    const ssize_t got =
        ::pread(fd, out->data() + done, n - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Status::error(errno_message("read", path, errno));
    if (got == 0) {
      return Status::error("read " + path.string() + ": file ends after " +
                           std::to_string(offset + done) + " bytes");
    }
    done += static_cast<size_t>(got);
  }
  return Status::ok();
}

}  // namespace keel::journal
