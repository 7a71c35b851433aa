// keel-psp-sim: simulated PSPs and banks speaking docs/psp_protocol.md, with fault injection
// deterministic under --seed (docs/psp_sim.md). Prints `listening on http://HOST:PORT` on
// stdout once ready, then `psp NAME listening on http://HOST:PORT` for each PSP with a
// listener of its own, and stops cleanly on SIGTERM/SIGINT.
// Exit codes: 0 after a clean stop, 1 on a start-up error (one line on stderr).

#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "core/time.h"
#include "net/listen_address.h"
#include "net/stop_signals.h"
#include "psp_sim/config.h"
#include "psp_sim/server.h"
#include "psp_sim/simulator.h"

namespace {

using namespace keel;
using namespace keel::psp_sim;

constexpr int kExitStartupError = 1;

int fail_startup(const std::string& message) {
  std::fprintf(stderr, "keel-psp-sim: %s\n", message.c_str());
  return kExitStartupError;
}

// "HOST" as it goes in a URL: IPv6 hosts in brackets.
std::string url_host(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"keel-psp-sim: simulated PSPs and banks (docs/psp_sim.md)"};
  std::string listen = "127.0.0.1:9090";
  std::string config_path;
  uint64_t seed = 1;
  size_t io_threads = 2;
  std::string log_level = "info";
  app.add_option("--listen", listen, "HOST:PORT to listen on (port 0: any free port)");
  app.add_option("--config", config_path, "the TOML config of the simulated PSPs")->required();
  app.add_option("--seed", seed, "seed of every fault decision");
  app.add_option("--io-threads", io_threads, "I/O threads")->check(CLI::Range(1, 64));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  std::string tls_cert, tls_key;
  app.add_option("--tls-cert", tls_cert, "serve HTTPS with this certificate (PEM)");
  app.add_option("--tls-key", tls_key, "the certificate's private key (PEM)");
  bool movable_clock = false;
  app.add_flag("--movable-clock", movable_clock,
               "tests only: time from a clock POST /admin/clock/advance moves forward");
  CLI11_PARSE(app, argc, argv);

  auto logger = spdlog::stderr_color_mt("keel-psp-sim");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::from_str(log_level));
  spdlog::set_default_logger(logger);

  SimServerOptions options;
  options.io_threads = io_threads;
  if (tls_cert.empty() != tls_key.empty())
    return fail_startup("--tls-cert and --tls-key go together");
  if (!tls_cert.empty()) options.tls = net::TlsServerConfig{tls_cert, tls_key, ""};
  const char* scheme = options.tls ? "https" : "http";
  if (Status s = net::parse_listen(listen, &options.host, &options.port); !s.is_ok()) {
    return fail_startup(s.message());
  }
  SimConfig config;
  if (Status s = load_config(config_path, &config); !s.is_ok()) return fail_startup(s.message());

  MovableClock clock;
  if (movable_clock) {
    options.clock = &clock;
    spdlog::warn("the clock is movable (--movable-clock): for tests only");
  }
  const sigset_t signals = net::block_stop_signals();
  Simulator sim(std::move(config), seed, clock.now());
  std::unique_ptr<SimServer> server;
  if (Status s = SimServer::start(options, &sim, &server); !s.is_ok()) {
    return fail_startup(s.message());
  }
  const std::string host = url_host(options.host);
  std::printf("listening on %s://%s:%u\n", scheme, host.c_str(),
              static_cast<unsigned>(server->port()));
  const std::vector<PspConfig>& psps = sim.config().psps;
  for (size_t i = 0; i < psps.size(); ++i) {
    if (!psps[i].listen) continue;
    std::printf("psp %s listening on %s://%s:%u\n", psps[i].name.c_str(), scheme,
                url_host(psps[i].listen->host).c_str(), static_cast<unsigned>(server->psp_port(i)));
  }
  std::fflush(stdout);
  spdlog::info("listening on {}:{} with {} PSPs, seed {}", host, server->port(),
               sim.config().psps.size(), seed);
  int sig = 0;
  while (sigwait(&signals, &sig) != 0 || (sig != SIGTERM && sig != SIGINT)) {
  }
  spdlog::info("received {}, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  server->shutdown();
  return 0;
}
