#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/server.h"
#include "api/service.h"
#include "core/status.h"
#include "dispatch/psp_dispatcher.h"
#include "engine/engine.h"

namespace keel::keeld {

// Everything keeld is started with. Defaults: listen on 127.0.0.1:8080, data in ./data.
struct KeeldConfig {
  api::ServerOptions server;
  // [admin_listener]: the operators' port (mutual TLS); nullopt: one listener for every key.
  std::optional<api::ServerOptions> admin_server;
  engine::EngineOptions engine;
  std::string log_level = "info";
  dispatch::DispatcherOptions psp;   // channels and the resolver's backoff
  api::PaymentsApiOptions payments;  // filled from `psp` and [payments]
  api::AuthOptions auth;             // [auth]
  // --new-admin-key: create an admin key at start and write it to DATA/bootstrap-keys (the
  // way back in when every admin key is lost: it needs the data directory, i.e. the machine).
  bool new_admin_key = false;
  std::string default_channel;
  // Routing is on when the config has a [routing] table: engine.channels then holds every
  // channel's definition; off, it holds none (confirms take the caller's or default channel).
  bool routing = false;
  bool routing_seed_set = false;  // [routing] seed given; else keeld draws one and logs it
  std::vector<routing::ChannelDef> channel_defs;  // of every [channels.NAME], in name order
  // [vault]: the master key file (empty: DATA/vault.keys, made at the first start) and the BIN
  // range file (empty: no issuing countries). KEEL_VAULT_KEYS in the environment, when set,
  // holds the keys instead of any file.
  std::string vault_key_file;
  std::string vault_bin_file;
  // [testing] movable_clock = true: keeld's wall clock is a MovableClock (core/movable_clock.h)
  // that POST /v1/admin/clock/advance moves forward, its offset kept in DATA/clock-offset. For
  // tests only; never on by default.
  bool movable_clock = false;
};

// Derives `payments` (channel list with the default first, webhook secrets) from `psp`;
// parse_command_line() calls it last.
void finish_payments_config(KeeldConfig* config);

// What parse_command_line() decided.
enum class ParseOutcome { run, exit_ok, exit_error };

// Reads `keeld --listen HOST:PORT --data DIR [--config FILE] [--io-threads N] [--log-level L]
// [--new-admin-key]`
// (CLI11). The TOML file, if given, sets the same settings and the engine's; flags override it:
//
//   listen = "127.0.0.1:8080"        data = "./data"        io_threads = 2
//   log_level = "info"
//   [http]    body_bytes_max, header_bytes_max, idle_timeout_ms
//   [engine]  queue_capacity, batch_events_max, snapshot_interval_events,
//             segment_bytes_max, tick_interval_ms, history = "store" (default: final
//             transfers in data/store) | "memory", store_cache_mb, archive_dir (journal
//             segments past retention move there instead of being deleted), memory_max_mb
//             (0: no budget; above it new work answers 503 over_capacity)
//   [payments] default_channel, settle_wait_ms, idempotency_ttl_s, confirmation_deadline_s,
//             processing_deadline_s, capture_deadline_s, resolve_initial_ms, resolve_max_ms,
//             credentials_check_ms (how often api_key_files are read again; default 5000)
//   [channels.NAME]  url = "http://HOST:PORT" or "https://HOST:PORT" (then ca_file: the CAs
//             its certificate must chain to, default the system's; client_cert_file and
//             client_key_file: mutual TLS), psp (default NAME), api_key or api_key_file
//             (owner-only, a key per line: read again while keeld runs), webhook_secret,
//             previous_webhook_secret (also accepted, while the PSP rotates its secret),
//             connections_max, connect_timeout_ms, total_timeout_ms, and for routing:
//             currencies = ["USD", ...] (default all), flows = ["card_payment", "topup",
//             "payout"] (default all), min_amount, max_amount, priority, cost_bps, cost_fixed,
//             concurrency_max
//   [routing] (routing on) max_tries, retry_budget_pct, retry_budget_min, backoff_base_ms,
//             backoff_max_ms, explore_permille, latency_penalty_ppm_per_s, stats_bucket_ms,
//             seed, breaker_window_ms, breaker_min_calls, breaker_failure_rate_pct,
//             breaker_slow_call_ms, breaker_slow_rate_pct, breaker_open_ms,
//             breaker_half_open_probes
//   [fees.default], [fees.NAME] (NAME a channel or "wallet"): bps, fixed (merchant fees)
//   [admin]   controls = true (serve the runtime-control routes, to admin keys)
//   [auth.rate_limits.ROLE] (ROLE admin, merchant, customer_app, auditor, ledger):
//             per_second, burst (requests per API key; per_second 0: no limit)
//   [tls]     cert_file, key_file (PEM: serve HTTPS), client_ca_file (mutual TLS: clients
//             must present a certificate from these CAs)
//   [admin_listener] listen = "HOST:PORT", cert_file, key_file, client_ca_file (all required):
//             a second port, mutual TLS, where admin and auditor keys are taken (and only
//             there), with the routes only they may call
//   [vault]   key_file (the card vault's master keys, owner-only; default DATA/vault.keys),
//             bin_file (BIN ranges: FIRST[-LAST],COUNTRY per line)
//   [webhooks] allow_networks = ["127.0.0.0/8", ...] (merchant webhooks may go to these
//             networks too; by default only to global addresses: docs/security.md),
//             ca_file (the CAs of https endpoints; default the system's)
//   [testing] movable_clock = true (tests only: a wall clock the admin route
//             POST /v1/admin/clock/advance moves forward; docs/testing.md)
//
// The default channel is `default_channel`, else the first channel by name.
// Unknown keys, wrong types and out-of-range values are errors. On --help prints the usage and
// returns exit_ok; on an error writes one line to `error` and returns exit_error.
ParseOutcome parse_command_line(int argc, const char* const* argv, KeeldConfig* config,
                                std::string* error);

// Applies a TOML document (the text of a config file) to `config`. `origin` names it in errors.
Status apply_toml(std::string_view toml_text, std::string_view origin, KeeldConfig* config);

// Splits "HOST:PORT" ("[::1]:8080" for IPv6); the port may be 0.
Status parse_listen(std::string_view listen, api::ServerOptions* server);

// "http://HOST:PORT" ("https://" with TLS) for the `listening on` line (IPv6 hosts in
// brackets).
std::string base_url(const api::ServerOptions& server, uint16_t port);

}  // namespace keel::keeld
