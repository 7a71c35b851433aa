// keeld: the keel server. Opens the engine on the data directory, serves the HTTP API, prints
// `listening on http://HOST:PORT` on stdout once ready, and stops cleanly on SIGTERM/SIGINT.
// Exit codes: 0 after a clean stop, 1 on a start-up error (one line on stderr), 2 when the
// engine became unhealthy (journal failure) while running.

#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <random>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>

#include "api/server.h"
#include "api/service.h"
#include "core/movable_clock.h"
#include "dispatch/psp_dispatcher.h"
#include "engine/engine.h"
#include "keeld/bootstrap.h"
#include "keeld/certificates.h"
#include "keeld/config.h"
#include "keeld/vault_setup.h"
#include "net/stop_signals.h"

namespace {

using namespace keel;

constexpr int kExitStartupError = 1;
constexpr int kExitUnhealthy = 2;
constexpr int64_t kDrainTimeoutMs = 10'000;

int fail_startup(const std::string& message) {
  std::fprintf(stderr, "keeld: %s\n", message.c_str());
  return kExitStartupError;
}

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("keeld");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

// Waits for a stop signal or for the engine to fail. Returns the exit code.
int wait_for_stop(const sigset_t& signals, const engine::Engine& engine) {
  const timespec tick{0, 200'000'000};
  while (true) {
    const int sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::info("received {}, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      return 0;
    }
    if (!engine.healthy()) {
      spdlog::critical("the engine stopped writing (journal failure); exiting");
      return kExitUnhealthy;
    }
  }
}

int run(keeld::KeeldConfig config) {
  const sigset_t signals = net::block_stop_signals();
  config.engine.log = [](engine::LogLevel level, std::string_view line) {
    switch (level) {
      case engine::LogLevel::info:
        spdlog::info("engine: {}", line);
        break;
      case engine::LogLevel::warn:
        spdlog::warn("engine: {}", line);
        break;
      case engine::LogLevel::error:
        spdlog::error("engine: {}", line);
        break;
    }
  };
  const std::string data_dir = config.engine.data_dir.string();
  // The dispatcher outlives the engine: the engine's last callbacks may still reach it.
  // The one draw of ambient randomness for the dispatcher: logged, so a run's jitter replays.
  config.psp.jitter_seed = std::random_device{}();
  spdlog::info("dispatcher jitter seed {}", config.psp.jitter_seed);
  if (config.routing) {
    // Exploration and backoff jitter: from [routing] seed, else drawn once here and logged.
    if (!config.routing_seed_set) config.engine.routing.seed = std::random_device{}();
    spdlog::info("routing on: {} channel(s), seed {}", config.engine.channels->size(),
                 config.engine.routing.seed);
  }
  // The card vault outlives the dispatcher and the API, which both use it.
  std::unique_ptr<vault::Vault> card_vault;
  if (Status s = keeld::open_vault(config, data_dir, &card_vault); !s.is_ok()) {
    return fail_startup(s.message());
  }
  config.psp.vault = card_vault.get();
  config.payments.vault = card_vault.get();
  // [testing] movable_clock: the wall clock of the engine and of PSP webhooks' checks. API keys'
  // request signatures and certificate expiry stay on the system's: clients sign with it.
  std::unique_ptr<MovableClock> clock;
  if (config.movable_clock) {
    clock = std::make_unique<MovableClock>();
    const std::string file = (std::filesystem::path(data_dir) / "clock-offset").string();
    if (Status s = MovableClock::open(file, clock.get()); !s.is_ok()) {
      return fail_startup(s.message());
    }
    spdlog::warn(
        "the clock is movable ([testing] movable_clock): for tests only, never in "
        "production; it runs {} s ahead",
        clock->offset_ns() / kNanosPerSecond);
    config.engine.wall_clock = [c = clock.get()] { return c->now(); };
    config.payments.clock = clock.get();
  }
  // The customers' personal data keys, sealed under the vault's master keys.
  std::unique_ptr<vault::CustomerKeys> customer_keys;
  if (Status s = keeld::open_customer_keys(data_dir, *card_vault, &customer_keys); !s.is_ok()) {
    return fail_startup(s.message());
  }
  config.psp.customer_keys = customer_keys.get();
  config.payments.customer_keys = customer_keys.get();
  dispatch::PspDispatcher dispatcher(config.psp);
  config.engine.on_payment_effects = [&dispatcher](engine::PaymentEffects e) {
    dispatcher.submit(std::move(e));
  };
  std::unique_ptr<engine::Engine> engine;
  if (Status s = engine::Engine::open(std::move(config.engine), &engine); !s.is_ok()) {
    return fail_startup("cannot open " + data_dir + ": " + s.message());
  }
  if (Status s = keeld::check_vault_versions(*engine, *card_vault); !s.is_ok()) {
    engine->stop();
    return fail_startup(s.message());
  }
  if (Status s = keeld::erase_erased_customer_keys(*engine, *customer_keys); !s.is_ok()) {
    engine->stop();
    return fail_startup(s.message());
  }
  dispatcher.start(engine.get());
  config.payments.psp_stats = [&dispatcher] { return dispatcher.stats(); };
  api::ServerOptions* const admin_options = config.admin_server ? &*config.admin_server : nullptr;
  for (const auto& [options, prefix] :
       {std::pair{&config.server, ""}, std::pair{admin_options, "admin_"}}) {
    if (options == nullptr || !options->tls) continue;
    if (Status s = keeld::watch_certificates(*options->tls, prefix, &config.payments.certificates);
        !s.is_ok()) {
      engine->stop();
      return fail_startup(s.message());
    }
  }
  std::vector<std::pair<std::string, std::string>> trusted_cas;
  for (const dispatch::ChannelConfig& ch : config.psp.channels) {
    if (ch.client.tls && !ch.client.tls->ca_file.empty()) {
      trusted_cas.emplace_back("psp_ca:" + ch.name, ch.client.tls->ca_file);
    }
  }
  if (!config.psp.webhook_tls.ca_file.empty()) {
    trusted_cas.emplace_back("webhook_ca", config.psp.webhook_tls.ca_file);
  }
  keeld::watch_trusted_cas(trusted_cas, &config.payments.certificates);
  api::Service service(engine.get(), config.payments, config.auth);
  std::unique_ptr<api::Server> server;
  if (Status s = api::Server::start(config.server, &service, &server); !s.is_ok()) {
    engine->stop();
    return fail_startup(s.message());
  }
  std::unique_ptr<api::Server> admin_server;
  if (config.admin_server) {
    if (Status s = api::Server::start(*config.admin_server, &service, &admin_server); !s.is_ok()) {
      server->stop_accepting();
      dispatcher.stop();
      engine->stop();
      server->shutdown(kDrainTimeoutMs);
      return fail_startup("admin listener: " + s.message());
    }
  }
  // After the listener is bound (a start that fails makes no key), before `listening on`.
  keeld::BootstrapKeys made;
  if (Status s = keeld::bootstrap_keys(*engine, data_dir, config.new_admin_key, &made);
      !s.is_ok()) {
    server->stop_accepting();
    dispatcher.stop();
    engine->stop();
    server->shutdown(kDrainTimeoutMs);
    return fail_startup(s.message());
  }
  if (!made.admin_key.empty()) {
    // Shown once, on stdout (never in the log); also in DATA/bootstrap-keys (owner-only).
    std::printf("admin key: %s\n", made.admin_key.c_str());
    if (!made.merchant_key.empty()) {
      std::printf("demo merchant %s key: %s\n", std::string(keeld::kDemoMerchantId).c_str(),
                  made.merchant_key.c_str());
    }
    spdlog::warn(
        "created API keys; they are in {}/{} (owner-only): keep them safe, delete the file",
        data_dir, keeld::kBootstrapKeysFile);
  }
  if (admin_server) {
    // Before `listening on`: a test reads the admin port from this line.
    const std::string admin_url = keeld::base_url(*config.admin_server, admin_server->port());
    std::printf("admin listener on %s\n", admin_url.c_str());
    spdlog::info("admin listener on {} (mutual TLS; admin and auditor keys only)", admin_url);
  }
  const std::string url = keeld::base_url(config.server, server->port());
  std::printf("listening on %s\n", url.c_str());
  std::fflush(stdout);
  spdlog::info("listening on {} (data {}, {} I/O threads, {} PSP channel(s))", url, data_dir,
               config.server.io_threads, config.psp.channels.size());

  const int code = wait_for_stop(signals, *engine);
  // Stop taking requests, let the engine answer (and sync) everything it has, write those
  // answers, then close.
  server->stop_accepting();
  if (admin_server) admin_server->stop_accepting();
  dispatcher.stop();
  engine->stop();
  server->shutdown(kDrainTimeoutMs);
  if (admin_server) admin_server->shutdown(kDrainTimeoutMs);
  admin_server.reset();
  server.reset();
  engine.reset();
  spdlog::info("stopped");
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  keeld::KeeldConfig config;
  std::string error;
  switch (keeld::parse_command_line(argc, argv, &config, &error)) {
    case keeld::ParseOutcome::exit_ok:
      return 0;
    case keeld::ParseOutcome::exit_error:
      return fail_startup(error);
    case keeld::ParseOutcome::run:
      break;
  }
  setup_logging(config.log_level);
  try {
    return run(std::move(config));
  } catch (const std::exception& e) {
    return fail_startup(std::string("unexpected error: ") + e.what());
  }
}
