#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/auth.h"
#include "api/errors.h"
#include "api/router.h"
#include "core/movable_clock.h"
#include "dispatch/psp_dispatcher.h"
#include "engine/engine.h"
#include "security/request_signing.h"

namespace keel::api {

// A finished answer, ready for an I/O thread to write.
struct HttpReply {
  unsigned status = 200;
  std::string body;                  // JSON
  std::string allow;                 // the Allow header, for 405
  uint32_t retry_after_s = 0;        // adds Retry-After: N (503: 1; 429: the bucket's wait)
  bool idempotent_replayed = false;  // adds Idempotent-Replayed: true
  std::string content_type;          // empty: application/json
};

// The request headers the routes read.
struct RequestHeaders {
  std::optional<std::string> idempotency_key;  // Idempotency-Key, when sent
  std::string psp_signature;                   // PSP-Signature (webhooks from PSPs)
  std::string traceparent;                     // valid W3C traceparent, or empty
  std::string authorization;                   // Authorization (API key), or empty
  std::string signature;                       // Keel-Signature (signed requests), or empty
  // Not a header: the request came through keeld's admin listener (set by the server).
  bool admin_listener = false;
};

struct Responder;  // service_internal.h

// How the API authenticates and limits callers (docs/security.md).
struct AuthOptions {
  RateLimits rate_limits = default_rate_limits();
  // Monotonic nanoseconds for the rate limiter, and the wall clock for a key's last use.
  // Empty: the system's. Tests inject them.
  std::function<int64_t()> monotonic_ns;
  std::function<Timestamp()> wall_now;
  // keeld serves an admin listener (mutual TLS; docs/security.md, "The admin listener"):
  // operator keys (admin, auditor) are taken there only and other keys only on the main
  // listener, and routes only operators may call answer 404 route_not_found on the main one.
  bool admin_listener = false;
};

// What the payment routes need beyond the engine.
struct PaymentsApiOptions {
  // Channels (PSPs) keeld is configured with; the first is the default for confirm and
  // top-ups. Webhooks are verified with their secrets.
  std::vector<std::string> channels;
  // channel -> its webhook secrets: the current one, then one still accepted while the PSP
  // rotates (a webhook verifies under any of them).
  std::map<std::string, std::vector<std::string>, std::less<>> webhook_secrets;
  // Routing on: a confirm, top-up or payout that names no channel lets the router choose; one
  // that names a channel pins it. Off: the default channel (the first) when none is named.
  bool routing = false;
  // Runtime controls (pause, drain, canary, read-only, kill switches, backup): served only when
  // true ([admin] controls = true in keeld.toml), and then to admin keys.
  bool admin_controls = false;
  // How long a confirm, capture or cancel waits for the PSP's outcome before it answers with
  // the payment still `processing`.
  int64_t settle_wait_ms = 15'000;
  // The PSP dispatcher's counters for /metrics (calls, status queries); unset: not shown.
  std::function<dispatch::PspDispatcher::Stats()> psp_stats;
  // The certificates keeld serves with or trusts, for /metrics: a name ("server", "client_ca")
  // and the Unix second each stops being valid.
  std::vector<std::pair<std::string, int64_t>> certificates;
  // The card vault (POST /v1/payment_methods, the vault's admin routes and metrics); nullptr:
  // those routes answer 503 vault_unavailable. Not owned; outlives the Service.
  vault::Vault* vault = nullptr;
  // The customers' personal data keys (docs/security.md, "Personal data and erasure"): names,
  // top-up sources and payout destinations are sealed with them before a command holds them,
  // and opened in answers. nullptr: they are kept as sent (tests of other parts), and
  // POST /v1/customers/{id}/erase answers 503 vault_unavailable. Not owned.
  vault::CustomerKeys* customer_keys = nullptr;
  // keeld's wall clock when it is movable ([testing] movable_clock; core/movable_clock.h): PSP
  // webhook signatures are checked against it, and GET /v1/admin/clock and
  // POST /v1/admin/clock/advance serve it. nullptr: the system's clock, and those routes answer
  // 404 route_not_found. Not owned.
  MovableClock* clock = nullptr;
};

// Runs a function on the I/O executor of the connection that sent the request.
using PostFn = std::function<void(std::function<void()>)>;
// Takes the answer to a request. Called exactly once, on that connection's I/O executor.
using ReplyFn = std::function<void(HttpReply)>;

// The error answer for `e`: its status from the error table, the JSON error body, Allow for 405
// and Retry-After for 503.
[[nodiscard]] HttpReply error_reply(const ApiError& e, std::string_view request_id,
                                    std::string allow = {});

// The HTTP API's routes: turns a parsed HTTP request into an engine call and the engine's
// outcome into an answer. Knows nothing of sockets; server.cc feeds it.
//
// Thread: handle() runs on an I/O thread and never blocks: requests that need no engine call
// (health, bad input) are answered inline; the others submit one engine command whose callback
// (on the engine's writer thread) only hands the outcome to `post`, and the JSON is built and
// serialized on the I/O thread. Bad input never reaches the engine.
//
// Every route but the public ones (health checks, PSP webhooks) needs an API key whose role the
// route table allows (router.h, route_access); then the caller's rate limit applies, and the
// route confines it to its own tenant's objects (another tenant's answer 404).
class Service {
 public:
  // `engine` must outlive the Service and every reply it has not yet delivered.
  explicit Service(engine::Engine* engine, PaymentsApiOptions payments = {}, AuthOptions auth = {});
  ~Service();

  void handle(std::string_view method, std::string_view target, const RequestHeaders& headers,
              std::string body, std::string request_id, PostFn post, ReplyFn reply);

  // From now on /readyz answers 503: the process is shutting down. Thread-safe.
  void set_draining() { draining_.store(true); }

 private:
  struct Admitted {
    Caller caller;
    std::optional<security::SignatureHeader> nonce;  // a signed write's, to take first
  };
  // The caller of a non-public route (its key, its signature, its role, its rate), or the answer
  // that refuses it (401, 403, 429).
  std::optional<HttpReply> admit(const RouteAccess& access, std::string_view method,
                                 std::string_view target, const RequestHeaders& headers,
                                 std::string_view body, std::string_view request_id, Admitted* out);
  // Runs the route (the caller admitted; null for a public route).
  void dispatch(const RouteMatch& m, const Caller* caller, std::string_view method,
                std::string_view target, const RequestHeaders& headers, std::string_view body,
                const std::shared_ptr<const Responder>& r);
  // Journals a use of the key (at most one in flight per key).
  void note_use(const std::string& key_id);

  engine::Engine* engine_;
  std::function<dispatch::PspDispatcher::Stats()> psp_stats_;
  std::vector<std::pair<std::string, int64_t>> certificates_;
  vault::Vault* vault_ = nullptr;
  vault::CustomerKeys* customer_keys_ = nullptr;
  std::function<Timestamp()> wall_now_;
  bool admin_listener_ = false;
  RateLimiter limiter_;
  std::atomic<bool> draining_{false};
  struct KeyUses;  // the keys with a use being journaled; shared with the engine's callbacks
  std::shared_ptr<KeyUses> key_uses_;
  std::unique_ptr<class PaymentRoutes> payments_;
  std::unique_ptr<class KeyRoutes> keys_;
};

}  // namespace keel::api
