#include "vault/keys.h"

#include <openssl/rand.h>

#include <cstring>

#include "core/assert.h"
#include "core/hex.h"
#include "core/secret_file.h"

namespace keel::vault {
namespace {

bool parse_key(std::string_view hex, Key* out) {
  if (hex.size() != 2 * kKeyBytes) return false;
  const auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < kKeyBytes; ++i) {
    const int hi = digit(hex[2 * i]);
    const int lo = digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return true;
}

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

std::string key_hex(const Key& k) { return to_hex(k.data(), k.size()); }

Key random_key(const RandomFill& random) {
  Key k{};
  random(k.data(), k.size());
  return k;
}

}  // namespace

void system_random(uint8_t* p, size_t n) {
  const bool ok = RAND_bytes(p, static_cast<int>(n)) == 1;
  KEEL_ASSERT(ok);
}

Status MasterKeys::parse(std::string_view text, MasterKeys* out) {
  MasterKeys ring;
  bool have_fingerprint = false;
  size_t line_no = 0;
  bool comment = false;  // the rest of the line is a comment (';' included)
  while (!text.empty()) {
    const size_t end = text.find_first_of(comment ? "\n" : "\n;");
    const std::string_view line = text.substr(0, end);
    const bool line_ends = end == std::string_view::npos || text[end] == '\n';
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    if (comment) {
      comment = !line_ends;
      continue;
    }
    ++line_no;
    const std::vector<std::string_view> w = words(line);
    if (!w.empty() && w[0].front() == '#') comment = !line_ends;
    if (w.empty() || w[0].front() == '#') continue;
    const auto fail = [&](std::string_view why) {
      return Status::error("vault keys entry " + std::to_string(line_no) + ": " + std::string(why));
    };
    if (w[0] == "fingerprint") {
      if (w.size() != 2 || !parse_key(w[1], &ring.fingerprint_)) {
        return fail("want `fingerprint <64 hex digits>`");
      }
      if (have_fingerprint) return fail("a second fingerprint key");
      have_fingerprint = true;
      continue;
    }
    if (w[0] != "key" || w.size() != 3) return fail("want `key <version> <64 hex digits>`");
    uint64_t version = 0;
    for (const char c : w[1]) {
      if (c < '0' || c > '9' || version > UINT32_MAX) return fail("bad version");
      version = version * 10 + static_cast<uint64_t>(c - '0');
    }
    if (version == 0 || version > UINT32_MAX) return fail("the version must be 1 to 4294967295");
    Key k{};
    if (!parse_key(w[2], &k)) return fail("want `key <version> <64 hex digits>`");
    if (!ring.keys_.emplace(static_cast<uint32_t>(version), k).second) {
      return fail("version " + std::to_string(version) + " given twice");
    }
  }
  if (!have_fingerprint) return Status::error("vault keys: no fingerprint key");
  if (ring.keys_.empty()) return Status::error("vault keys: no master key");
  *out = std::move(ring);
  return Status::ok();
}

Status MasterKeys::load(const std::string& path, MasterKeys* out) {
  std::string text;
  if (Status s = read_secret_file(path, "the vault key file", &text); !s.is_ok()) return s;
  if (Status s = parse(text, out); !s.is_ok()) return Status::error(path + ": " + s.message());
  return Status::ok();
}

const Key* MasterKeys::key(uint32_t version) const {
  const auto it = keys_.find(version);
  return it == keys_.end() ? nullptr : &it->second;
}

std::vector<uint32_t> MasterKeys::versions() const {
  std::vector<uint32_t> out;
  for (const auto& [v, k] : keys_) out.push_back(v);
  return out;
}

std::string new_key_file_text(const RandomFill& random) {
  return "# keel vault master keys: keep this file outside backups of the data directory.\n"
         "# The highest `key` version wraps new cards; `keel vault rotate` adds one.\n"
         "fingerprint " +
         key_hex(random_key(random)) + "\nkey 1 " + key_hex(random_key(random)) + "\n";
}

Status add_master_key(const std::string& path, const RandomFill& random, uint32_t* version) {
  std::string text;
  if (Status s = read_secret_file(path, "the vault key file", &text); !s.is_ok()) return s;
  MasterKeys ring;
  if (Status s = MasterKeys::parse(text, &ring); !s.is_ok()) {
    return Status::error(path + ": " + s.message());
  }
  const uint32_t next = ring.active_version() + 1;
  if (next == 0) return Status::error(path + ": no version left after 4294967295");
  if (!text.empty() && text.back() != '\n') text.push_back('\n');
  text += "key " + std::to_string(next) + " " + key_hex(random_key(random)) + "\n";
  if (Status s = write_secret_file(path, "the vault key file", text); !s.is_ok()) return s;
  *version = next;
  return Status::ok();
}

}  // namespace keel::vault
