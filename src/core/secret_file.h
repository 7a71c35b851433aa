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

}  // namespace keel
