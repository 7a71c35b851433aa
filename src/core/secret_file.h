#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace keel {

// Reads a file that holds secrets (the vault's master keys, a PSP's API keys): refuses one that
// anyone but its owner may read or write (mode & 077), since keel would otherwise keep using a
// secret that has already leaked to every account on the machine. `what` names the file in
// errors ("the vault key file"); errors never quote the content. Any thread.
Status read_secret_file(const std::string& path, std::string_view what, std::string* out);

// Replaces the file at `path` with `bytes`, owner-only (0600): written whole to `path`.tmp,
// synced, renamed over `path`, and the directory synced, so a crash leaves the old file or the
// new one, never a part. Any thread (callers serialize writes to one path).
Status write_secret_file(const std::string& path, std::string_view what, std::string_view bytes);

// Syncs a directory, so that a file created, renamed or removed in it stays so after a crash.
Status sync_directory(const std::string& dir);

}  // namespace keel
