#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "api/service.h"
#include "core/status.h"
#include "net/tls_config.h"

namespace keel::api {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: the system picks a free port; see Server::port()
  size_t io_threads = 2;
  size_t body_bytes_max = size_t{4} << 20;    // larger bodies: 413
  size_t header_bytes_max = size_t{8} << 10;  // larger headers: 431
  // A connection with no request (or an unfinished one) for this long is closed.
  int64_t idle_timeout_ms = 60'000;
  // HTTPS (net/tls.h: TLS 1.2 at least, modern ciphers; a client CA file asks every client for a
  // certificate). nullopt: plain HTTP.
  std::optional<net::TlsServerConfig> tls;
  // This is keeld's admin listener: its requests are marked so (RequestHeaders::admin_listener)
  // and the Service admits operator keys only (AuthOptions::admin_listener).
  bool admin_listener = false;
};

// The HTTP/1.1 server (Boost.Beast): `io_threads` threads run one io_context; each connection
// is served on its own strand, keep-alive, one request at a time. Every answer carries a
// Request-Id header and echoes a valid W3C traceparent. Parse failures are answered (400, 413,
// 431) and the connection is closed.
//
// Thread: start/stop_accepting/shutdown from one controlling thread.
class Server {
 public:
  // Binds and listens on options.host:options.port and starts the I/O threads. Fails with
  // "listen HOST:PORT: <reason>" (port in use, bad address), or the TLS files' problem. `service`
  // must outlive the Server.
  static Status start(ServerOptions options, Service* service, std::unique_ptr<Server>* out);
  // Calls shutdown(0).
  ~Server();

  // The port actually bound (the picked one when options.port was 0).
  [[nodiscard]] uint16_t port() const;

  // Closes the listening socket; answers still being computed are still written, and every
  // connection closes after its next answer. /readyz answers 503 from now on.
  void stop_accepting();
  // stop_accepting(), then waits up to `drain_timeout_ms` for every request already read to be
  // answered, then stops the I/O threads and closes all connections. Idempotent.
  // Call Engine::stop() first, so that every engine command was answered: an answer that
  // arrives later is dropped, and one that arrives after the Server is destroyed is undefined
  // behaviour (it posts to a destroyed io_context).
  void shutdown(int64_t drain_timeout_ms);

 private:
  Server();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::api
