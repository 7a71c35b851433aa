#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "engine/engine.h"
#include "keeld/config.h"
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

}  // namespace keel::keeld
