#include "connectors/psp_credentials.h"

#include <openssl/sha.h>

#include <algorithm>

#include "core/hex.h"
#include "core/secret_file.h"

namespace keel::connectors {

Status parse_api_keys(std::string_view text, std::vector<std::string>* out) {
  std::vector<std::string> keys;
  size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const size_t end = std::min(text.find('\n'), text.size());
    std::string_view line = text.substr(0, end);
    text.remove_prefix(std::min(end + 1, text.size()));
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    const auto where = "line " + std::to_string(line_number) + ": ";
    if (line.size() > kApiKeyBytesMax ||
        !std::all_of(line.begin(), line.end(), [](char c) { return c >= 0x21 && c <= 0x7E; })) {
      return Status::error(where + "a key is 1 to 256 printable ASCII characters without spaces");
    }
    if (std::find(keys.begin(), keys.end(), line) != keys.end()) {
      return Status::error(where + "the same key is given twice");
    }
    if (keys.size() == kApiKeysMax) return Status::error(where + "at most 4 keys");
    keys.emplace_back(line);
  }
  if (keys.empty()) return Status::error("no key");
  *out = std::move(keys);
  return Status::ok();
}

Status read_api_key_file(const std::string& path, std::vector<std::string>* out) {
  std::string text;
  if (Status s = read_secret_file(path, "the API key file", &text); !s.is_ok()) return s;
  if (Status s = parse_api_keys(text, out); !s.is_ok()) {
    return Status::error("the API key file " + path + ": " + s.message());
  }
  return Status::ok();
}

std::string api_key_label(std::string_view key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  return "key sha256:" + to_hex(digest, 4);
}

}  // namespace keel::connectors
