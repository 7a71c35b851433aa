#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "engine/engine.h"
#include "keeld/config.h"
#include "vault/personal_data.h"
#include "vault/vault.h"

namespace keel::keeld {

// The environment variable that, when set, holds the vault's master keys (the key file's text,
// entries separated by newlines or ';') instead of any file.
inline constexpr const char* kVaultKeysEnv = "KEEL_VAULT_KEYS";
inline constexpr const char* kVaultKeyFile = "vault.keys";

// Opens keeld's card vault (docs/security.md, "The card vault"): master keys from
// KEEL_VAULT_KEYS, else from [vault] key_file, else from DATA/vault.keys, which the first start
// creates (owner-only, with a warning that production keeps it outside the data directory's
// backups); the BIN table from [vault] bin_file when set. Fails on a key or BIN file that does
// not parse, or a key file others may read.
[[nodiscard]] Status open_vault(const KeeldConfig& config, const std::string& data_dir,
                                std::unique_ptr<vault::Vault>* out);

// Fails when some stored card's master key version is missing from the vault's keys (asks the
// engine, after it opened).
[[nodiscard]] Status check_vault_versions(engine::Engine& engine, const vault::Vault& vault);

// Opens the customers' personal data keys in DATA/customer-keys (docs/security.md, "Personal
// data and erasure"), sealed under `vault`'s master keys.
inline constexpr const char* kCustomerKeysDir = "customer-keys";
[[nodiscard]] Status open_customer_keys(const std::string& data_dir, const vault::Vault& vault,
                                        std::unique_ptr<vault::CustomerKeys>* out);

// Deletes the key of every customer the journal says was erased (asks the engine, after it
// opened): an erase journaled just before a crash, or keys restored from an old backup of the
// key directory, are gone again before keeld serves.
[[nodiscard]] Status erase_erased_customer_keys(engine::Engine& engine, vault::CustomerKeys& keys);

}  // namespace keel::keeld
