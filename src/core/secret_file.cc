#include "core/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace keel {

Status read_secret_file(const std::string& path, std::string_view what, std::string* out) {
  const std::string named = std::string(what) + " " + path;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Status::error("cannot read " + named + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return Status::error(named + " is not a regular file");
  if ((st.st_mode & 077) != 0) {
    return Status::error(named + " may be read or written by others than its owner (chmod 600 it)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error("cannot read " + named);
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  return Status::ok();
}

Status write_secret_file(const std::string& path, std::string_view what, std::string_view bytes) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::error("cannot write " + tmp + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  const bool ok = done == bytes.size() && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return Status::error("cannot replace " + std::string(what) + " " + path + ": " + why);
  }
  return sync_directory(std::filesystem::path(path).parent_path().string());
}

Status sync_directory(const std::string& dir) {
  const std::string d = dir.empty() ? "." : dir;
  const int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::error("cannot open the directory " + d + ": " + std::strerror(errno));
  const bool ok = ::fsync(fd) == 0;
  const std::string why = ok ? "" : std::strerror(errno);
  ::close(fd);
  if (!ok) return Status::error("cannot sync the directory " + d + ": " + why);
  return Status::ok();
}

}  // namespace keel
