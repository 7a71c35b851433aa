#include "keeld/vault_setup.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "engine/engine.h"

namespace keel::keeld {
namespace {

// Writes a new key file (owner-only); fails if one appeared meanwhile.
Status create_key_file(const std::string& path) {
  const std::string text = vault::new_key_file_text(vault::system_random);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Status::error("cannot create " + path + ": " + std::strerror(errno));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return Status::error("cannot write " + path + ": " + std::strerror(errno));
  return Status::ok();
}

}  // namespace

Status open_vault(const KeeldConfig& config, const std::string& data_dir,
                  std::unique_ptr<vault::Vault>* out) {
  vault::VaultOptions options;
  if (const char* env = std::getenv(kVaultKeysEnv); env != nullptr && *env != '\0') {
    if (Status s = vault::MasterKeys::parse(env, &options.keys); !s.is_ok()) {
      return Status::error(std::string(kVaultKeysEnv) + ": " + s.message());
    }
    spdlog::info("vault: master keys from {} (versions up to {})", kVaultKeysEnv,
                 options.keys.active_version());
  } else {
    std::string path = config.vault_key_file;
    if (path.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(data_dir, ec);
      path = (std::filesystem::path(data_dir) / kVaultKeyFile).string();
      if (!std::filesystem::exists(path)) {
        if (Status s = create_key_file(path); !s.is_ok()) return s;
        spdlog::warn(
            "vault: created master keys in {}; in production set [vault] key_file outside the "
            "data directory (its backups must not carry the keys) or {}",
            path, kVaultKeysEnv);
      }
    }
    if (Status s = vault::MasterKeys::load(path, &options.keys); !s.is_ok()) return s;
    options.key_file = path;
    spdlog::info("vault: master keys from {} (active version {})", path,
                 options.keys.active_version());
  }
  if (!config.vault_bin_file.empty()) {
    if (Status s = vault::BinTable::load(config.vault_bin_file, &options.bins); !s.is_ok()) {
      return s;
    }
    spdlog::info("vault: {} BIN ranges from {}", options.bins.size(), config.vault_bin_file);
  }
  *out = std::make_unique<vault::Vault>(std::move(options));
  return Status::ok();
}

Status check_vault_versions(engine::Engine& engine, const vault::Vault& vault) {
  payments::Query q;
  q.kind = payments::QueryKind::vault_key_versions;
  const auto r = engine::wait_for<payments::QueryResult>(
      [&](auto done) { engine.payments_query(q, std::move(done)); });
  if (r.error != engine::EngineError::ok) return Status::error("the engine did not answer");
  if (Status s = vault.check_versions(r.value.key_versions); !s.is_ok()) return s;
  return vault.check_secret_versions(r.value.secret_key_versions);
}

Status open_customer_keys(const std::string& data_dir, const vault::Vault& vault,
                          std::unique_ptr<vault::CustomerKeys>* out) {
  vault::CustomerKeysOptions options;
  options.dir = (std::filesystem::path(data_dir) / kCustomerKeysDir).string();
  return vault::CustomerKeys::open(std::move(options), &vault, out);
}

Status erase_erased_customer_keys(engine::Engine& engine, vault::CustomerKeys& keys) {
  payments::Query q;
  q.kind = payments::QueryKind::erased_customers;
  const auto r = engine::wait_for<payments::QueryResult>(
      [&](auto done) { engine.payments_query(q, std::move(done)); });
  if (r.error != engine::EngineError::ok) return Status::error("the engine did not answer");
  size_t deleted = 0;
  for (const std::string& customer : r.value.customers) {
    bool found_key = false;
    if (Status s = keys.erase(customer, &found_key); !s.is_ok()) return s;
    deleted += found_key ? 1 : 0;
  }
  if (deleted > 0) {
    spdlog::warn("personal data: deleted the keys of {} erased customer(s) that were still on disk",
                 deleted);
  }
  return Status::ok();
}

}  // namespace keel::keeld
