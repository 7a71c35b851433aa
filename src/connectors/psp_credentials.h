#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

// A PSP's API keys as keeld reads them from a channel's `api_key_file` (docs/security.md,
// "Rotating a PSP's credential"). Pure and light; any thread.
namespace keel::connectors {

inline constexpr size_t kApiKeysMax = 4;
inline constexpr size_t kApiKeyBytesMax = 256;

// Parses the text of an API key file: one key per line, the key to send first on the first
// line, then keys to try after a 401 (during a rotation, the other one of the pair). Blank
// lines and lines starting with '#' are skipped; a trailing "\r" is dropped. Each key is 1 to
// 256 printable ASCII characters without spaces; 1 to 4 keys; no key twice. Errors name the
// line, never its content.
Status parse_api_keys(std::string_view text, std::vector<std::string>* out);

// Reads and parses an API key file (owner-only, like every file of secrets).
Status read_api_key_file(const std::string& path, std::vector<std::string>* out);

// A key's name for logs: "key sha256:1a2b3c4d" (the first 8 hex digits of its SHA-256), so an
// operator can tell which key is in use without the log holding it.
[[nodiscard]] std::string api_key_label(std::string_view key);

}  // namespace keel::connectors
