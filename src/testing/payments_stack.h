#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "net/http_client.h"
#include "testing/keeld_process.h"
#include "testing/temp_dir.h"

namespace keel::testing {

// A JSON object's string field `key` (empty when absent or not a string) and integer field
// (-1 when absent or not an integer), for tests reading API answers.
[[nodiscard]] std::string str(const boost::json::value& v, std::string_view key);
[[nodiscard]] int64_t num(const boost::json::value& v, std::string_view key);

// keeld and keel-psp-sim wired together for end-to-end payment tests: the simulator serves the
// PSPs `cardco` and `bankco` (USD, EUR, GBP; fees 30 + 2.9% and 10 + 0.5%), or the PSPs named in
// PaymentsStackOptions::psps, keeld has a channel for each (the first the default) and the
// simulator sends its webhooks to keeld.
//
// The simulator must know keeld's port and keeld the simulator's: the simulator gets a port
// picked free beforehand (pick_free_port), keeld port 0. keeld may start before the simulator
// answers; its connector treats that as nothing sent.
// What one simulated PSP charges: fee = fixed + amount * bps / 10,000 (keel-psp-sim's rule).
struct SimPspFees {
  int64_t fixed = 0;
  int64_t bps = 0;
};

struct PaymentsStackOptions {
  uint64_t seed = 1;
  // The simulated PSPs, by name ([a-z0-9_-], 1 to 64 characters), each with a keeld channel of
  // the same name (api_key "sk_NAME", webhook_secret "whsec_NAME"), in this order; the first is
  // keeld's payments.default_channel.
  std::vector<std::string> psps = {"cardco", "bankco"};
  // The simulated PSPs' fees and the currencies all of them take. A PSP named in psp_fees takes
  // those fees; else cardco takes cardco_fees, bankco bankco_fees and any other PSP none.
  SimPspFees cardco_fees{30, 290};
  SimPspFees bankco_fees{10, 50};
  std::map<std::string, SimPspFees> psp_fees;
  std::vector<std::string> currencies = {"USD", "EUR", "GBP"};
  // Each PSP also gets a listener of its own in the simulator (its `listen`, on a port picked
  // free beforehand, see psp_port()), and keeld's channel for it points there instead of at the
  // shared port: taking that listener down (set_sim_listener(), or a schedule phase with
  // "accepting": false) then refuses keeld's connections before anything is sent. The shared
  // port still serves every PSP and /admin.
  bool own_listeners = false;
  // Extra TOML appended to each PSP's table in the simulator's config, e.g.
  // "[psps.cardco.faults]\nblack_hole_rate = 0.1\n" (the text is appended to the file as is).
  std::string sim_toml_extra;
  // Extra TOML for keeld's [payments] table, e.g. "processing_deadline_s = 5\n".
  std::string payments_toml_extra;
  // Faster resolution than production for tests: first status query after this, doubling to
  // resolve_max_ms.
  int64_t resolve_initial_ms = 200;
  int64_t resolve_max_ms = 2'000;
  // How long a status query's "never received" is not yet believed (keeld's
  // not_found_grace_ms): above the simulator's largest latency in these tests.
  int64_t not_found_grace_ms = 5'000;
  // The connector's bound on one PSP call (black holes end as unknown after it).
  int64_t total_timeout_ms = 2'000;
  // Added to keeld's command line.
  std::vector<std::string> keeld_args;
  // Extra TOML appended to each [channels.NAME] table of keeld's config, e.g.
  // "connections_max = 64\n".
  std::string channel_toml_extra;
  // Extra TOML for one channel's table only, by channel name (after channel_toml_extra), e.g.
  // {"bankco", "cost_bps = 50\n"}.
  std::map<std::string, std::string> channel_toml;
  // Channels whose API keys keeld reads from a file (api_key_file, read again while keeld
  // runs) instead of `api_key = "sk_NAME"`: channel name -> the file (the test writes it,
  // owner-only, before start).
  std::map<std::string, std::filesystem::path> api_key_files;
  // Routing: when set, keeld's config gets a [routing] table with these lines (routing on).
  std::optional<std::string> routing_toml;
  // Added to keel-psp-sim's command line (e.g. "--io-threads", "4").
  std::vector<std::string> sim_args;
  // Both keeld ([testing] movable_clock) and the simulator (--movable-clock) read time from a
  // clock advance_clocks() moves forward (docs/testing.md, "A clock tests can move").
  bool movable_clock = false;
  // The programs to run; empty: this build tree's (build_path(), from KEEL_BUILD_DIR).
  std::filesystem::path keeld_binary;
  std::filesystem::path sim_binary;
  // keeld's data directory; empty: "data" in the stack's temporary directory. Must not exist
  // yet or be empty; it is not removed at the end (the temporary directory is).
  std::filesystem::path data_dir;
  // keeld's [webhooks] table: merchant webhooks in tests go to receivers on 127.0.0.1, which the
  // SSRF guard refuses unless allowed. Empty: no table (the guard's default: global only).
  std::string webhooks_toml = "allow_networks = [\"127.0.0.0/8\"]";
  // Extra TOML appended at the end of keeld's config file (after every table), e.g. merchant
  // fees "[fees.default]\nbps = 100\nfixed = 20\n".
  std::string keeld_toml_extra;
  // keel-psp-sim serves HTTPS with a certificate for 127.0.0.1 from a CA made at start (in the
  // stack's temporary directory), and keeld's channels are https:// with that CA as ca_file.
  bool psp_tls = false;
  // With psp_tls: keeld trusts another CA than the simulator's (its handshakes must fail).
  bool psp_tls_foreign_ca = false;
  // Non-empty: keeld's log (stderr) is appended to this file, across restarts.
  std::filesystem::path keeld_log_file;
};

// TOML for PaymentsStackOptions::sim_toml_extra: every fault of keel-psp-sim on `psp` at `rate`
// (decline_rate with a hard and a soft code, error_5xx_rate, refuse_rate, black_hole_rate,
// response_lost_rate, async_rate, webhook_loss_rate, webhook_duplicate_rate), webhooks
// reordered, latency of `latency_ms_max` at most, async settlement within 10..300 ms and webhook
// delays within 0..100 ms. rate 0: no fault at all (and no latency).
[[nodiscard]] std::string all_faults_toml(std::string_view psp, double rate,
                                          int64_t latency_ms_max);

// An HTTP answer with its body parsed (null if the body is not JSON).
struct JsonResponse {
  unsigned status = 0;
  boost::json::value body;
  bool replayed = false;  // Idempotent-Replayed: true
  std::string text;
};

class PaymentsStack {
 public:
  static Status start(PaymentsStackOptions options, std::unique_ptr<PaymentsStack>* out);
  ~PaymentsStack();

  [[nodiscard]] KeeldProcess& keeld() { return *keeld_; }
  [[nodiscard]] ServerProcess& sim() { return *sim_; }
  [[nodiscard]] const std::filesystem::path& data_dir() const { return data_dir_; }
  // The simulated PSPs (PaymentsStackOptions::psps).
  [[nodiscard]] const std::vector<std::string>& psps() const { return options_.psps; }
  // The port of `psp`'s own listener; 0 without own_listeners (or for an unknown PSP).
  [[nodiscard]] uint16_t psp_port(std::string_view psp) const;

  // Stops keeld (SIGTERM, or SIGKILL when `kill9`) and starts it again on the same data.
  Status restart_keeld(bool kill9);

  // Requests to keeld. `idempotency_key` empty: no Idempotency-Key header.
  JsonResponse post(std::string_view path, std::string_view body,
                    std::string_view idempotency_key = {});
  JsonResponse get(std::string_view path);
  // post() on a connection of its own, opened for this request: safe to call from several
  // threads at once (but not during restart_keeld()).
  JsonResponse post_unshared(std::string_view path, std::string_view body,
                             std::string_view idempotency_key = {});
  // POST /v1/webhooks/{channel} as the PSP would send it: `body` signed now with the channel's
  // secret (whsec_{channel}) in PSP-Signature.
  JsonResponse post_webhook(std::string_view channel, std::string_view body);
  // Requests to the simulator (admin routes).
  JsonResponse sim_request(std::string_view method, std::string_view path,
                           std::string_view body = {});

  // Creates a merchant (with a webhook endpoint when `webhook_url` is given) and returns its id.
  std::string create_merchant(std::string_view webhook_url = {},
                              std::string_view webhook_secret = {});
  std::string create_customer();

  // PUT /admin/psps/{psp}/faults on the simulator (`faults_json` replaces the PSP's faults;
  // "{}" clears them). True on 200.
  bool set_sim_faults(std::string_view psp, std::string_view faults_json);
  // Moves keeld's and the simulator's clocks `seconds` forward (REQUIRES: movable_clock). True
  // when both moved.
  bool advance_clocks(int64_t seconds);
  // PUT /admin/psps/{psp}/schedule (`schedule_json` as docs/psp_sim.md: {"phases": [...],
  // "repeat_ms": N}; its clock starts when the simulator receives it). True on 200.
  bool set_sim_schedule(std::string_view psp, std::string_view schedule_json);
  // DELETE /admin/psps/{psp}/schedule: the faults and listener state from before it are in
  // force again. True on 200.
  bool clear_sim_schedule(std::string_view psp);
  // PUT /admin/psps/{psp}/listener {"accepting": ...}: false refuses new connections to the
  // PSP's own listener and closes the open ones. REQUIRES: own_listeners. True on 200.
  bool set_sim_listener(std::string_view psp, bool accepting);
  // GET /v1/channels: each channel as keeld shows it (breaker, in_flight, window), by id; empty
  // on an error.
  std::map<std::string, boost::json::object> channels();
  // The simulator's books for `psp`: every operation by its reference (empty on an error).
  std::map<std::string, boost::json::object> sim_operations(std::string_view psp);
  // One field of a ledger account (GET /v1/accounts/{id}), e.g. "credits_posted"; -1 if the
  // account does not exist or the field is missing.
  int64_t account_balance(std::string_view account, std::string_view field);
  // GET /v1/admin/status?full=true.
  JsonResponse admin_status();

  // Polls GET `path` until its "status" is not `processing` (or `pending`) and it is not in
  // review, or `timeout_ms` passes. Returns the last answer.
  JsonResponse wait_settled(std::string_view path, int64_t timeout_ms = 30'000);

 private:
  PaymentsStack() = default;
  Status start_keeld();
  Status start_sim(const std::filesystem::path& config);

  PaymentsStackOptions options_;
  TempDir dir_;
  std::filesystem::path data_dir_;
  std::filesystem::path psp_ca_;        // psp_tls: the simulator's CA
  std::filesystem::path keeld_psp_ca_;  // psp_tls: the CA keeld's channels trust
  std::filesystem::path keeld_config_;
  uint16_t sim_port_ = 0;
  std::map<std::string, uint16_t, std::less<>> psp_ports_;  // own_listeners: by PSP
  std::unique_ptr<ServerProcess> sim_;
  std::unique_ptr<KeeldProcess> keeld_;
  std::unique_ptr<net::HttpClient> keeld_client_;
  std::unique_ptr<net::HttpClient> sim_client_;
};

// A unique Idempotency-Key for a test ("k-" and a counter).
[[nodiscard]] std::string new_key();

}  // namespace keel::testing
