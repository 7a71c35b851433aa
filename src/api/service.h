#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/errors.h"
#include "dispatch/psp_dispatcher.h"
#include "engine/engine.h"

namespace keel::api {

// A finished answer, ready for an I/O thread to write.
struct HttpReply {
  unsigned status = 200;
  std::string body;                  // JSON
  std::string allow;                 // the Allow header, for 405
  bool retry_after = false;          // adds Retry-After: 1 (503)
  bool idempotent_replayed = false;  // adds Idempotent-Replayed: true
  std::string content_type;          // empty: application/json
};

// The request headers the routes read.
struct RequestHeaders {
  std::optional<std::string> idempotency_key;  // Idempotency-Key, when sent
  std::string psp_signature;                   // PSP-Signature (webhooks from PSPs)
  std::string traceparent;                     // valid W3C traceparent, or empty
  bool loopback = false;                       // the client connected from a loopback address
};

// What the payment routes need beyond the engine.
struct PaymentsApiOptions {
  // Channels (PSPs) keeld is configured with; the first is the default for confirm and
  // top-ups. Webhooks are verified with their secrets.
  std::vector<std::string> channels;
  std::map<std::string, std::string, std::less<>> webhook_secrets;  // channel -> secret
  // Routing on: a confirm, top-up or payout that names no channel lets the router choose; one
  // that names a channel pins it. Off: the default channel (the first) when none is named.
  bool routing = false;
  // Runtime controls (pause, drain, canary, read-only, kill switches): served only when true
  // ([admin] controls = true in keeld.toml) and only to loopback clients, until API keys exist.
  bool admin_controls = false;
  // How long a confirm, capture or cancel waits for the PSP's outcome before it answers with
  // the payment still `processing`.
  int64_t settle_wait_ms = 15'000;
  // The API client requests are scoped to (idempotency keys). One client until API keys exist.
  std::string client = "default";
  // The PSP dispatcher's counters for /metrics (calls, status queries); unset: not shown.
  std::function<dispatch::PspDispatcher::Stats()> psp_stats;
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
class Service {
 public:
  // `engine` must outlive the Service and every reply it has not yet delivered.
  explicit Service(engine::Engine* engine, PaymentsApiOptions payments = {});
  ~Service();

  void handle(std::string_view method, std::string_view target, const RequestHeaders& headers,
              std::string body, std::string request_id, PostFn post, ReplyFn reply);

  // From now on /readyz answers 503: the process is shutting down. Thread-safe.
  void set_draining() { draining_.store(true); }

 private:
  engine::Engine* engine_;
  std::function<dispatch::PspDispatcher::Stats()> psp_stats_;
  std::atomic<bool> draining_{false};
  std::unique_ptr<class PaymentRoutes> payments_;
};

}  // namespace keel::api
