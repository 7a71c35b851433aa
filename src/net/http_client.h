#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "net/tls_config.h"

namespace keel::net {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  unsigned status = 0;
  HttpHeaders headers;
  std::string body;

  // The value of the first header named `name` (case-insensitive); empty if there is none.
  [[nodiscard]] std::string_view header(std::string_view name) const;
};

struct HttpEndpoint {
  std::string host;
  uint16_t port = 0;
  bool tls = false;  // https: TLS (net/tls.h), the server's certificate verified for `host`
};

// Splits "http://HOST[:PORT][/]" (port 80 by default) or "https://HOST[:PORT][/]" (443).
// nullopt for anything else (a path, credentials).
[[nodiscard]] std::optional<HttpEndpoint> parse_http_url(std::string_view url);

struct HttpClientOptions {
  HttpEndpoint endpoint;
  // For https: the CAs the server's certificate must chain to (empty: the system's), and a
  // client certificate (mutual TLS).
  TlsClientConfig tls;
  int64_t connect_timeout_ms = 5'000;
  // Bound on writing one request and on reading its whole response.
  int64_t io_timeout_ms = 30'000;
  uint64_t response_body_bytes_max = uint64_t{64} << 20;
  // An API key sent as `Authorization: Bearer KEY` with every request that does not set its own
  // Authorization header. Empty: none.
  std::string api_key;
  // Adds headers computed from the request itself (a signature: security/request_signing.h)
  // to every request. Empty: none.
  std::function<void(std::string_view method, std::string_view target, std::string_view body,
                     HttpHeaders* headers)>
      sign;
};

// A synchronous HTTP/1.1 client over one keep-alive connection (Boost.Beast), for the CLI,
// process tests and the benchmark. Connects lazily; reconnects when the server closed the
// connection. A request that fails on a reused connection before any byte of the answer is
// retried once on a new one (keel's writes are idempotent by id).
//
// Thread: one thread at a time. Never throws.
class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request and reads its answer into *response. Fails (with a message naming the
  // endpoint) on connect errors, a TLS handshake that fails (with the certificate's problem:
  // "certificate has expired", "hostname mismatch", ...), timeouts and malformed answers; any
  // HTTP status is a success.
  // `body` non-empty: sent with Content-Type: application/json unless `headers` name another.
  Status request(std::string_view method, std::string_view target, std::string_view body,
                 const HttpHeaders& headers, HttpResponse* response);
  Status get(std::string_view target, HttpResponse* response) {
    return request("GET", target, {}, {}, response);
  }
  Status post(std::string_view target, std::string_view body, HttpResponse* response) {
    return request("POST", target, body, {}, response);
  }

  // Closes the connection (the next request opens a new one).
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::net
