#pragma once

#include <functional>

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>

#include "core/time.h"
#include "psp_sim/config.h"
#include "psp_sim/simulator.h"

namespace keel::psp_sim {

struct WebhookSenderOptions {
  int tries_max = 10;              // docs/psp_protocol.md: at most 10 tries
  int64_t first_backoff_ms = 500;  // then doubling
  int64_t connect_timeout_ms = 5'000;
  int64_t io_timeout_ms = 10'000;  // writing the request and reading the whole answer
  size_t in_flight_max = 10'000;   // deliveries beyond it are dropped (and logged)
  size_t reorder_batch = 3;        // reorder: held events delivered shuffled in batches
  int64_t reorder_hold_ms = 200;   // ... or after this long, whatever is held
  // The clock the signatures' timestamps come from (the simulator's movable clock in tests).
  std::function<Timestamp()> now = wall_clock_now;
};

// Delivers webhooks at least once: POST to the PSP's webhook_url with Content-Type JSON and
// `PSP-Signature: t=...,v1=...` (signed at each try with the wall clock), a new connection per
// try, retries on connection errors, timeouts and any non-2xx with backoff. Applies delay,
// duplicate and reorder as OutgoingWebhook says (loss was applied before).
//
// Thread: send() from any thread; the work runs on `ioc`'s threads. stop() before the io_context
// stops; nothing is sent after it.
class WebhookSender {
 public:
  WebhookSender(boost::asio::io_context& ioc, const SimConfig& config,
                WebhookSenderOptions options = {});
  ~WebhookSender();
  WebhookSender(const WebhookSender&) = delete;
  WebhookSender& operator=(const WebhookSender&) = delete;

  void send(OutgoingWebhook webhook);
  void stop();

  // The state every delivery in flight shares (webhook_sender.cc); public only so that the
  // deliveries there can name it.
  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace keel::psp_sim
