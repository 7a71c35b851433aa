#pragma once

#include <filesystem>
#include <string>

#include "core/status.h"
#include "engine/engine.h"

namespace keel::keeld {

// The file in the data directory that holds the keys keeld made itself: owner-only (0600),
// shell-sourceable (KEY=value lines). keeld never reads it; an operator deletes it once the keys
// are kept somewhere safe.
inline constexpr std::string_view kBootstrapKeysFile = "bootstrap-keys";
inline constexpr std::string_view kDemoMerchantId = "mch_demo";

struct BootstrapKeys {
  std::string admin_key;     // empty: none made
  std::string merchant_key;  // the demo merchant's key; empty: none made
};

// The keys keeld makes itself, so that a new install needs no default key compiled in:
//   - no key exists yet (a first start, or data from before keys): an admin key; and when the
//     data directory holds no account, customer or merchant, a demo merchant (kDemoMerchantId)
//     with a merchant key, for the README's tour;
//   - `new_admin_key` (keeld --new-admin-key): an admin key, whatever exists.
// Each key is written to DATA/bootstrap-keys (replacing it; written and synced before the key is
// journaled, so a crash in between leaves a file whose key never worked and the next start
// makes new ones) and then journaled. `out` gets the keys to print once.
// Runs on keeld's main thread before the server starts; waits for the engine.
Status bootstrap_keys(engine::Engine& engine, const std::filesystem::path& data_dir,
                      bool new_admin_key, BootstrapKeys* out);

}  // namespace keel::keeld
