#include "core/secret_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
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

}  // namespace keel
