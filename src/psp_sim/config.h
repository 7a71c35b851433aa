#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/currency.h"
#include "core/status.h"
#include "psp_sim/faults.h"
#include "psp_sim/schedule.h"

namespace keel::psp_sim {

// Where a PSP posts its webhooks: "http://HOST[:PORT][/PATH]".
struct WebhookUrl {
  std::string host;
  uint16_t port = 80;
  std::string target = "/";  // path and query
};
// nullopt for anything but a plain http URL (https, credentials, fragment, port 0).
[[nodiscard]] std::optional<WebhookUrl> parse_webhook_url(std::string_view url);

// A PSP's own listener: HOST and PORT as `--listen` takes them (port 0: a free one).
struct ListenAddress {
  std::string host;
  uint16_t port = 0;
};

struct PspConfig {
  std::string name;                   // [a-z0-9_-]{1,64}, the {psp} of every path
  std::string api_key;                // non-empty
  std::optional<WebhookUrl> webhook;  // webhook_url = "" (or none): no webhooks
  std::string webhook_secret;         // required when there is a webhook_url
  int64_t fee_fixed = 0;              // minor units, 0..kAmountMax
  int64_t fee_bps = 0;                // 0..10000
  std::vector<Currency> currencies;   // non-empty
  FaultConfig faults;
  // listen = "HOST:PORT": this PSP is also served on a listener of its own, which the admin API
  // can take down and up (docs/psp_sim.md). nullopt: only on the shared --listen port.
  std::optional<ListenAddress> listen;
  // [psps.NAME.schedule]: a fault schedule in force from start-up. A phase with
  // `accepting = false` requires `listen`.
  std::optional<FaultSchedule> schedule;
};

struct SimConfig {
  std::vector<PspConfig> psps;  // sorted by name, at least one
};

// Parses the simulator's TOML config (docs/psp_sim.md):
//   [psps.acme]
//   api_key = "sk_acme"
//   webhook_url = "http://127.0.0.1:8080/v1/webhooks/acme"
//   webhook_secret = "whsec_acme"
//   fee_fixed = 30
//   fee_bps = 290
//   currencies = ["USD", "EUR"]
//   listen = "127.0.0.1:0"
//   [psps.acme.faults]
//   decline_rate = 0.05
//   [psps.acme.schedule]
//   repeat_ms = 20000
//   [[psps.acme.schedule.phases]]
//   at_ms = 0
//   [[psps.acme.schedule.phases]]
//   at_ms = 10000
//   accepting = false
// Errors name the offending key ("psps.acme.fee_bps: must be within 0..10000"); unknown keys
// are errors too. Start-up only; never throws.
[[nodiscard]] Status parse_config(std::string_view toml_text, SimConfig* out);
// Reads and parses the file at `path` (errors start with the path).
[[nodiscard]] Status load_config(const std::string& path, SimConfig* out);

}  // namespace keel::psp_sim
