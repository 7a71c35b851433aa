#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/operation.h"
#include "connectors/psp_client.h"
#include "engine/engine.h"
#include "net/destination_guard.h"
#include "net/tls_config.h"
#include "payments/commands.h"
#include "vault/personal_data.h"
#include "vault/vault.h"

namespace keel::dispatch {

// One PSP channel keeld can route attempts to: the connector's endpoint and the secret its
// webhooks are signed with. The channel name is what payments record and what the webhook path
// /v1/webhooks/{channel} names.
struct ChannelConfig {
  std::string name;
  connectors::PspClientOptions client;
  std::string webhook_secret;
  // Also accepted while a PSP rotates its webhook secret (empty: none): docs/security.md.
  std::string previous_webhook_secret;
  // Where the channel's API keys come from (empty: client.api_key, fixed). keeld reads it at
  // start into client.api_key and client.fallback_api_keys; the dispatcher reads it again every
  // `credentials_check_ms` and gives a changed, valid content to the client at once. A file
  // that became unreadable or invalid is logged and the keys in use stay.
  std::string api_key_file;
};

struct DispatcherOptions {
  std::vector<ChannelConfig> channels;
  // Status queries of an unknown attempt: first after `resolve_initial_ms`, then doubling up to
  // `resolve_max_ms`, each with up to 50% random jitter (so a PSP outage does not end in a
  // synchronized storm of queries).
  int64_t resolve_initial_ms = 1'000;
  int64_t resolve_max_ms = 60'000;
  // A status query's "never received" (404) is believed only this long after keel began to
  // resolve the attempt: a call that timed out may still be on its way into the PSP, and
  // concluding "never received" too early would let a retry charge twice. Before that, the
  // resolver asks again later. Keep it above the PSP's worst processing delay.
  int64_t not_found_grace_ms = 30'000;
  // A result the engine could not take (queue full) is offered again after this long.
  int64_t resubmit_ms = 200;
  // Seeds the jitter of status queries (never drawn inside: keeld draws it at start and logs
  // it, tests fix it), so a run can be replayed.
  uint64_t jitter_seed = 1;
  // Opens vault cards (PspCall::card) just before their authorization is sent, and drops a
  // card's CVC once its first authorization has an outcome. nullptr: a call with a vault card
  // fails as declined (card_unavailable) without reaching the PSP. Not owned; outlives stop().
  vault::Vault* vault = nullptr;
  // Opens a top-up's source and a payout's destination sealed under their customer's key
  // (PspCall::customer_id) just before the call. nullptr, or the customer erased: a call with a
  // sealed one fails as declined (personal_data_unavailable) without reaching the PSP. Not
  // owned; outlives stop().
  vault::CustomerKeys* customer_keys = nullptr;
  // Merchant webhooks: where they may go besides global addresses (the SSRF guard; keeld's
  // `[webhooks] allow_networks`), and the CAs that verify https endpoints (empty: the
  // system's). connectors::MerchantWebhookSender documents both.
  net::DestinationPolicy webhook_destinations;
  net::TlsClientConfig webhook_tls;
  // How often channels' api_key_files are read again (a credential rotation without restart).
  int64_t credentials_check_ms = 5'000;
};

// A delay of `ms` with up to 50% jitter: uniform in [ms / 2, ms], drawn from `random`.
[[nodiscard]] int64_t jittered_ms(int64_t ms, std::mt19937_64& random);
// The next delay between status queries of one attempt: doubled, at most `max_ms`.
[[nodiscard]] int64_t next_resolve_delay_ms(int64_t delay_ms, int64_t max_ms);

// What a PSP's operation object says, in the payments core's terms.
[[nodiscard]] payments::OperationState operation_state(const connectors::Operation& op);
// The operation_status command for a PSP's report of `op`: from a status query, or from the
// webhook event `webhook_event`.
[[nodiscard]] payments::cmd::OperationStatus operation_status_command(
    std::string_view channel, const connectors::Operation& op, payments::ResultSource source,
    std::string webhook_event = {});

// Carries out the payments core's PSP work after each commit: makes the calls, turns their
// answers into attempt_result commands, and resolves unknown attempts by status queries with
// backoff until the PSP gives an outcome. Nothing here decides money: every answer goes back
// to the engine as a journaled command, and the payments core decides.
//
// Thread: submit() may be called from any thread (the engine calls it from its writer thread);
// the work runs on the dispatcher's own I/O thread. Results are offered to the engine until it
// takes them (a full queue is retried), so an answer is never dropped while keeld runs; if it
// stops first, the attempt stays open in the journal and is resolved after the restart.
class PspDispatcher {
 public:
  explicit PspDispatcher(DispatcherOptions options);
  ~PspDispatcher();
  PspDispatcher(const PspDispatcher&) = delete;
  PspDispatcher& operator=(const PspDispatcher&) = delete;

  // Starts the I/O thread; work submitted before waits for it. REQUIRES: `engine` outlives
  // stop().
  void start(engine::Engine* engine);
  // Stops the I/O thread; calls in flight are abandoned (their attempts stay open). Idempotent.
  void stop();

  void submit(engine::PaymentEffects effects);

  [[nodiscard]] const ChannelConfig* channel(std::string_view name) const;

  struct Stats {
    uint64_t calls = 0;
    uint64_t status_queries = 0;
    uint64_t results_submitted = 0;
    uint64_t credential_fallbacks = 0;  // PSP calls sent again with another key after a 401
    uint64_t credential_reloads = 0;    // api_key_file contents taken since start
  };
  [[nodiscard]] Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::dispatch
