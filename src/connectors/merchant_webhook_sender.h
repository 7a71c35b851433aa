#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "net/destination_guard.h"
#include "net/tls_config.h"

namespace keel::connectors {

// How a try finds the addresses of a URL's host: calls `done` once, from any thread (the sender
// takes the answer back onto its strand), with the addresses or an error. The default asks the
// system's resolver (getaddrinfo, asynchronously). Tests inject one that answers from a table,
// so no test ever resolves or reaches a name outside the machine.
using ResolveDone =
    std::function<void(boost::system::error_code, std::vector<boost::asio::ip::address>)>;
using Resolve = std::function<void(const std::string& host, ResolveDone done)>;
// How a try connects `stream` to one address the guard allowed: calls `done` once, from any
// thread. The default is stream.async_connect(endpoint). Tests inject one that records the
// address it was asked for and connects to a loopback server instead (or fails).
using ConnectDone = std::function<void(boost::system::error_code)>;
using Connect =
    std::function<void(boost::beast::tcp_stream& stream,
                       const boost::asio::ip::tcp::endpoint& endpoint, ConnectDone done)>;

struct MerchantWebhookSenderOptions {
  // Where a delivery may connect (net/destination_guard.h): global addresses, plus these
  // networks. Every address the host resolves to is checked; one refused address refuses the
  // try ("destination refused: 10.1.2.3 is private"), and the connection goes to an address
  // that was checked, never to a second lookup's answer.
  net::DestinationPolicy destinations;
  // https:// URLs: the server's certificate is verified against these CAs (empty: the system's)
  // for the URL's host; a client certificate when set. A context that cannot be made fails
  // every https try with its reason.
  net::TlsClientConfig tls;
  Resolve resolve;  // empty: the system's resolver
  Connect connect;  // empty: a TCP connect

  int64_t connect_timeout_ms = 2'000;
  // Bound on the whole try: resolving, connecting, writing, reading the answer's head.
  int64_t total_timeout_ms = 10'000;
  size_t in_flight_max = 1'024;  // tries at once; more fail at once ("too many in flight")
  uint64_t request_body_bytes_max = 64 * 1024;  // larger bodies fail without being sent
  // The answer's status line and headers are read (at most this many bytes); its body is not.
  uint32_t response_header_bytes_max = 8 * 1024;
  // Unix seconds for the signature's t=. Empty: the wall clock. Tests inject a fixed clock.
  std::function<int64_t()> clock_s;
};

// One try of one event's delivery (payments::Delivery, from the outbox).
struct MerchantWebhook {
  std::string url;       // http[s]://HOST[:PORT][/PATH][?QUERY] (payments::parse_endpoint_url)
  std::string body;      // the event JSON, sent as is
  std::string secret;    // HMAC key of Keel-Signature
  std::string event_id;  // Keel-Event-Id; id characters only (core/ids.h)
  // During a secret rotation's overlap, the secret before: Keel-Signature then carries a second
  // v1 under it (empty: none).
  std::string previous_secret;
};

// How one try ended. `delivered` is true exactly for a 2xx answer. Anything else (another
// status, a timeout, a refused or reset connection, a bad URL) is a failure with a short reason
// for logs and the dashboard: "http 500", "connect refused", "connect timeout", "timeout",
// "connection closed", "bad response", "url invalid", "destination refused: 10.1.2.3 is
// private", "tls: certificate verify failed: ...", ...
struct MerchantWebhookResult {
  bool delivered = false;
  unsigned http_status = 0;  // 0 when no answer was read
  std::string reason;        // empty when delivered
  int64_t latency_ms = 0;
};
using MerchantWebhookCallback = std::function<void(MerchantWebhookResult)>;

// Posts merchant webhooks (docs/webhooks.md) over HTTP/1.1 or HTTPS with Boost.Beast: one POST
// per send(), on a new connection closed afterwards (`Connection: close`). The host is resolved,
// every address it resolves to is checked against `destinations` (the SSRF guard), then the
// checked addresses are tried in order; for https, the TLS handshake verifies the certificate
// for the URL's host (SNI sent). Redirects are not followed (a 3xx fails the try). Deliveries are
// rare next to PSP calls and go to many different hosts, so a pool would rarely be reused; a new
// connection also means a half-dead keep-alive socket can never eat a delivery.
//
// The request carries Content-Type: application/json, User-Agent: keel, Keel-Event-Id:
// {event id}, and Keel-Signature: t={unix seconds},v1={hex HMAC-SHA256(secret, t + "." +
// body)} made by sign_webhook() (webhook_signature.h) when the try starts; during a secret
// rotation a second v1 under the previous secret follows.
//
// Thread: send() may be called from any thread; work runs on a strand of the executor given to
// the constructor (an io_context the caller owns and runs), and every callback runs on that
// strand, never inline from send(). Each callback runs exactly once, as long as the io_context
// runs. Never throws, never retries (the outbox schedules retries).
//
// Destruction closes every connection; tries in flight then fail with "shut down" (on the
// strand, after the destructor returned). REQUIRES: the io_context outlives those callbacks.
class MerchantWebhookSender {
 public:
  MerchantWebhookSender(boost::asio::any_io_executor executor,
                        MerchantWebhookSenderOptions options = {});
  ~MerchantWebhookSender();
  MerchantWebhookSender(const MerchantWebhookSender&) = delete;
  MerchantWebhookSender& operator=(const MerchantWebhookSender&) = delete;

  void send(MerchantWebhook webhook, MerchantWebhookCallback done);

  // Counters since construction; readable from any thread.
  struct Stats {
    uint64_t sent = 0;       // tries started (send() calls)
    uint64_t delivered = 0;  // 2xx answers
    uint64_t failed = 0;     // every other end
  };
  [[nodiscard]] Stats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace keel::connectors
