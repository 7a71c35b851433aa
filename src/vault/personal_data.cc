#include "vault/personal_data.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/assert.h"
#include "core/hex.h"
#include "core/secret_file.h"
#include "vault/envelope.h"
#include "vault/vault.h"

namespace keel::vault {
namespace {

namespace fs = std::filesystem;

std::string personal_aad(std::string_view field, std::string_view record_id) {
  return "keel personal|" + std::string(field) + "|" + std::string(record_id);
}

// The record a customer's key is sealed for under the master keys.
std::string key_record(std::string_view customer_id) {
  return "customer_key:" + std::string(customer_id);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

bool is_sealed_personal(std::string_view text) { return text.starts_with(kSealedPersonalPrefix); }

std::string seal_personal(const Key& key, std::string_view field, std::string_view record_id,
                          std::string_view plaintext, const RandomFill& random) {
  const std::string sealed = gcm_encrypt(key, personal_aad(field, record_id), plaintext, random);
  std::string out = std::string(kSealedPersonalPrefix) + to_hex(sealed);
  KEEL_ASSERT(out.size() == sealed_personal_length(plaintext.size()));
  return out;
}

Status open_personal(const Key& key, std::string_view field, std::string_view record_id,
                     std::string_view text, std::string* plaintext) {
  if (!is_sealed_personal(text)) return Status::error("personal data: not sealed text");
  const std::optional<std::string> sealed = from_hex(text.substr(kSealedPersonalPrefix.size()));
  if (!sealed) return Status::error("personal data: malformed sealed text");
  if (!gcm_decrypt(key, personal_aad(field, record_id), *sealed, plaintext)) {
    return Status::error("personal data: does not open (another key, record or field, or changed)");
  }
  return Status::ok();
}

CustomerKeys::CustomerKeys(CustomerKeysOptions options, const Vault* vault)
    : options_(std::move(options)), vault_(vault) {}

Status CustomerKeys::open(CustomerKeysOptions options, const Vault* vault,
                          std::unique_ptr<CustomerKeys>* out) {
  KEEL_ASSERT(vault != nullptr && options.cache_max > 0);
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) return Status::error("cannot create " + options.dir + ": " + ec.message());
  fs::permissions(options.dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (ec) return Status::error("cannot restrict " + options.dir + ": " + ec.message());
  out->reset(new CustomerKeys(std::move(options), vault));
  return Status::ok();
}

std::string CustomerKeys::path(std::string_view customer_id, std::string_view ext) const {
  return (fs::path(options_.dir) / (std::string(customer_id) + std::string(ext))).string();
}

Status CustomerKeys::get(std::string_view customer_id, bool create, Key* key, Found* found) {
  std::lock_guard lock(mu_);
  return get_locked(customer_id, create, key, found);
}

Status CustomerKeys::get_locked(std::string_view customer_id, bool create, Key* key, Found* found) {
  if (!valid_customer_key_id(customer_id)) {
    return Status::error("personal data: bad customer id for a key");
  }
  if (const auto it = cache_.find(customer_id); it != cache_.end()) {
    *key = it->second;
    *found = Found::ok;
    return Status::ok();
  }
  if (exists(path(customer_id, ".erased"))) {
    *found = Found::erased;
    return Status::ok();
  }
  const std::string file = path(customer_id, ".key");
  std::string stored;
  if (exists(file)) {
    if (Status s = read_secret_file(file, "the customer key file", &stored); !s.is_ok()) return s;
    std::string raw;
    if (Status s = vault_->open_record(key_record(customer_id), stored, &raw); !s.is_ok()) {
      return Status::error("the customer key file " + file + " does not open: " + s.message());
    }
    if (raw.size() != kKeyBytes) return Status::error("the customer key file " + file + " is bad");
    std::memcpy(key->data(), raw.data(), kKeyBytes);
  } else if (!create) {
    *found = Found::missing;
    return Status::ok();
  } else {
    vault_->random()(key->data(), kKeyBytes);
    const std::string_view raw(reinterpret_cast<const char*>(key->data()), kKeyBytes);
    if (Status s = write_secret_file(file, "the customer key file",
                                     vault_->seal_record(key_record(customer_id), raw));
        !s.is_ok()) {
      return s;
    }
    ++stats_.keys_created;
  }
  if (cache_.size() >= options_.cache_max) cache_.clear();
  cache_.emplace(std::string(customer_id), *key);
  *found = Found::ok;
  return Status::ok();
}

Status CustomerKeys::seal(std::string_view customer_id, std::string_view field,
                          std::string_view record_id, std::string_view plaintext, std::string* out,
                          Found* found) {
  Key key{};
  if (Status s = get(customer_id, true, &key, found); !s.is_ok()) return s;
  if (*found != Found::ok) return Status::ok();
  *out = seal_personal(key, field, record_id, plaintext, vault_->random());
  return Status::ok();
}

Status CustomerKeys::open(std::string_view customer_id, std::string_view field,
                          std::string_view record_id, std::string_view stored, std::string* out,
                          Found* found) {
  out->clear();
  if (!is_sealed_personal(stored)) {  // written in clear, before sealing
    *out = std::string(stored);
    *found = Found::ok;
    return Status::ok();
  }
  Key key{};
  if (Status s = get(customer_id, false, &key, found); !s.is_ok()) return s;
  if (*found != Found::ok) return Status::ok();
  Status s = open_personal(key, field, record_id, stored, out);
  std::lock_guard lock(mu_);
  ++(s.is_ok() ? stats_.opened : stats_.open_failures);
  return s;
}

Status CustomerKeys::erase(std::string_view customer_id, bool* deleted) {
  if (deleted != nullptr) *deleted = false;
  if (!valid_customer_key_id(customer_id)) {
    return Status::error("personal data: bad customer id for a key");
  }
  std::lock_guard lock(mu_);
  cache_.erase(std::string(customer_id));
  // The tombstone first: from here on no key is made for the customer, whatever happens next.
  const std::string tombstone = path(customer_id, ".erased");
  if (!exists(tombstone)) {
    if (Status s = write_secret_file(tombstone, "the customer tombstone", ""); !s.is_ok()) {
      return s;
    }
  }
  const std::string file = path(customer_id, ".key");
  if (!exists(file)) return Status::ok();
  // Zeros over the sealed key before the unlink, for file systems that reuse blocks in place
  // (on copy-on-write or flash storage the old blocks may survive: the key in them is still
  // sealed under the master keys).
  if (const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC); fd >= 0) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      const std::string zeros(static_cast<size_t>(st.st_size), '\0');
      if (::pwrite(fd, zeros.data(), zeros.size(), 0) == st.st_size) (void)::fsync(fd);
    }
    ::close(fd);
  }
  if (::unlink(file.c_str()) != 0) {
    return Status::error("cannot delete " + file + ": " + std::strerror(errno));
  }
  if (Status s = sync_directory(options_.dir); !s.is_ok()) return s;
  ++stats_.keys_erased;
  if (deleted != nullptr) *deleted = true;
  return Status::ok();
}

bool CustomerKeys::erased(std::string_view customer_id) {
  return valid_customer_key_id(customer_id) && exists(path(customer_id, ".erased"));
}

Status CustomerKeys::rewrap(uint64_t* moved) {
  *moved = 0;
  std::lock_guard lock(mu_);
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(options_.dir, ec)) {
    const fs::path& p = e.path();
    if (p.extension() != ".key") continue;
    const std::string customer = p.stem().string();
    std::string stored;
    if (Status s = read_secret_file(p.string(), "the customer key file", &stored); !s.is_ok()) {
      return s;
    }
    std::string resealed;
    bool changed = false;
    if (Status s = vault_->reseal_record(key_record(customer), stored, &resealed, &changed);
        !s.is_ok()) {
      return Status::error("the customer key file " + p.string() + ": " + s.message());
    }
    if (!changed) continue;
    if (Status s = write_secret_file(p.string(), "the customer key file", resealed); !s.is_ok()) {
      return s;
    }
    ++*moved;
  }
  if (ec) return Status::error("cannot list " + options_.dir + ": " + ec.message());
  return Status::ok();
}

CustomerKeys::Stats CustomerKeys::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace keel::vault
