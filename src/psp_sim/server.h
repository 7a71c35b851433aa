#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/movable_clock.h"
#include "core/status.h"
#include "net/tls_config.h"
#include "psp_sim/simulator.h"

namespace keel::psp_sim {

struct SimServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: the system picks one; see SimServer::port()
  size_t io_threads = 2;
  size_t body_bytes_max = size_t{1} << 20;
  int64_t idle_timeout_ms = 60'000;
  // A black-holed request's connection is held open this long at most (or until the client
  // closes it).
  int64_t black_hole_hold_ms = 120'000;
  // HTTPS on every listener (net/tls.h); nullopt: plain HTTP.
  std::optional<net::TlsServerConfig> tls;
  // --movable-clock (tests only): the simulator reads time from this clock, and
  // POST /admin/clock/advance {"seconds": N} moves it forward (GET /admin/clock shows it).
  // nullptr: the system's clock, and those routes answer 404. Outlives the server.
  MovableClock* clock = nullptr;
};

// The HTTP/1.1 front of the simulator (Boost.Beast): `io_threads` threads run one io_context,
// each connection on its own strand, keep-alive. Every request goes through
// Simulator::admit(), waits its latency on a timer (never blocking a thread), goes through
// Simulator::process(), and is answered, held (black hole) or dropped (lost response) as
// decided; refused requests get their connection reset without being processed. Asynchronous
// outcomes are settled on timers and webhooks go out through a WebhookSender.
//
// Listeners: the shared one (options.host:port) serves every PSP and /admin; each PSP with a
// `listen` address (PspConfig::listen) also gets one of its own, serving that PSP only. A PSP's
// own listener follows Simulator::listener_plan(): when it should not accept, its acceptor is
// closed (new connections are refused; connections the kernel had queued but the server had
// not taken are reset) and so are its connections waiting for a request or black-holed; a
// request being processed on it is answered, with `Connection: close`, and its connection
// closed. When it should accept again, it is reopened on the same port; if that fails (the port
// was taken meanwhile) it logs a warning and retries every 100 ms. The plan is applied before
// the answer to the admin request that changed it is sent (503 `listen_failed` if a reopen
// failed), and at the phase changes of the PSP's schedule (a timer).
//
// Thread: start and shutdown from one controlling thread. `sim` must outlive the server.
class SimServer {
 public:
  // Binds and listens on the shared address and every PSP's own; "listen HOST:PORT: <reason>"
  // (prefixed with "psps.NAME.listen: " for a PSP's own) on failure.
  static Status start(SimServerOptions options, Simulator* sim, std::unique_ptr<SimServer>* out);
  ~SimServer();  // shutdown()

  // The shared listener's port.
  [[nodiscard]] uint16_t port() const;
  // The port of PSP `psp`'s own listener (an index into sim->config().psps; the same while it
  // is down), 0 if the PSP has none.
  [[nodiscard]] uint16_t psp_port(size_t psp) const;
  // Stops accepting, stops sending webhooks, stops the I/O threads and closes every connection.
  // Requests in flight are dropped. Idempotent.
  void shutdown();

 private:
  SimServer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::psp_sim
