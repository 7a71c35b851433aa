#include "dispatch/psp_dispatcher.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <spdlog/spdlog.h>

#include "connectors/merchant_webhook_sender.h"
#include "connectors/psp_credentials.h"

namespace keel::dispatch {
namespace asio = boost::asio;
using connectors::AttemptOutcome;
using connectors::OperationStatus;
using payments::AttemptKind;
using payments::AttemptStatus;
using payments::OperationState;

OperationState operation_state(const connectors::Operation& op) {
  switch (op.status) {
    case OperationStatus::pending:
      return OperationState::pending;
    case OperationStatus::authorized:
      return OperationState::authorized;
    case OperationStatus::captured:
      return OperationState::captured;
    case OperationStatus::voided:
      return OperationState::voided;
    case OperationStatus::declined:
      return op.decline_type == connectors::DeclineType::soft ? OperationState::declined_soft
                                                              : OperationState::declined_hard;
    case OperationStatus::refunded:
      return OperationState::refunded;
    case OperationStatus::paid:
      return OperationState::paid;
    case OperationStatus::failed:
      return OperationState::failed;
  }
  return OperationState::pending;
}

payments::cmd::OperationStatus operation_status_command(std::string_view channel,
                                                        const connectors::Operation& op,
                                                        payments::ResultSource source,
                                                        std::string webhook_event) {
  payments::cmd::OperationStatus c;
  c.channel = std::string(channel);
  c.reference = op.reference;
  c.state = operation_state(op);
  c.result.psp_reference = op.psp_reference;
  c.result.error_code = op.decline_code;
  c.result.fee = op.fee_minor;
  c.source = source;
  c.webhook_event = std::move(webhook_event);
  return c;
}

int64_t jittered_ms(int64_t ms, std::mt19937_64& random) {
  std::uniform_int_distribution<int64_t> d(ms / 2, ms);
  return d(random);
}

int64_t next_resolve_delay_ms(int64_t delay_ms, int64_t max_ms) {
  return delay_ms > max_ms / 2 ? max_ms : std::min(delay_ms * 2, max_ms);
}

namespace {

// The attempt_result command for a PSP's direct answer to a call; nullopt when the answer is
// `pending` (the PSP has it and will decide later: resolve by status query).
std::optional<payments::cmd::AttemptResult> answer_command(const payments::PspCall& call,
                                                           const connectors::PspResult& r) {
  payments::cmd::AttemptResult c;
  c.attempt_id = call.attempt_id;
  c.result.error_code = r.error_code;
  c.result.latency_ms = std::max<int64_t>(r.latency_ms, 1);
  if (r.op) {
    c.result.psp_reference = r.op->psp_reference;
    c.result.fee = r.op->fee_minor;
    c.result.captured = r.op->status == OperationStatus::captured;
  }
  switch (r.outcome) {
    case AttemptOutcome::approved:
      c.result.status = AttemptStatus::approved;
      break;
    case AttemptOutcome::declined_hard:
      c.result.status = AttemptStatus::declined_hard;
      break;
    case AttemptOutcome::declined_soft:
      c.result.status = AttemptStatus::declined_soft;
      break;
    case AttemptOutcome::retryable:
      c.result.status = AttemptStatus::retryable;
      break;
    case AttemptOutcome::pending:
      return std::nullopt;
    case AttemptOutcome::not_found:
    case AttemptOutcome::unknown:
      c.result.status = AttemptStatus::unknown;
      break;
  }
  return c;
}

std::string_view currency_code(const payments::PspCall& call) { return call.currency.code(); }

}  // namespace

// Handlers capture a plain Impl*: the Impl outlives its I/O thread (stop() joins it before the
// Impl goes), and handlers still queued then are destroyed with the io_context, never run.
struct PspDispatcher::Impl {
  DispatcherOptions options;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  std::map<std::string, std::unique_ptr<connectors::PspClient>, std::less<>> clients;
  connectors::MerchantWebhookSender webhooks{
      io.get_executor(),
      {.destinations = options.webhook_destinations, .tls = options.webhook_tls}};
  std::thread thread;
  std::atomic<engine::Engine*> engine{nullptr};
  std::mt19937_64 random{options.jitter_seed};  // jitter only; I/O thread
  // When this run began to resolve each attempt (I/O thread only). After a restart the clock
  // starts again: the grace for "never received" only grows.
  std::map<std::string, std::chrono::steady_clock::time_point, std::less<>> resolving_since;
  std::atomic<uint64_t> calls{0}, status_queries{0}, results_submitted{0};
  std::atomic<uint64_t> credential_reloads{0};
  // Per channel with an api_key_file (I/O thread only): the keys the client has, and the last
  // problem reading the file (logged once).
  std::map<std::string, std::vector<std::string>, std::less<>> api_keys_in_use;
  std::map<std::string, std::string, std::less<>> last_key_problem;

  explicit Impl(DispatcherOptions o) : options(std::move(o)) {
    for (const ChannelConfig& ch : options.channels) {
      clients.emplace(ch.name,
                      std::make_unique<connectors::PspClient>(io.get_executor(), ch.client));
    }
  }

  connectors::PspClient* client(std::string_view channel) {
    const auto it = clients.find(channel);
    return it == clients.end() ? nullptr : it->second.get();
  }

  // Reads every channel's api_key_file again, and again after credentials_check_ms.
  void check_credentials() {
    for (const ChannelConfig& ch : options.channels) {
      if (ch.api_key_file.empty()) continue;
      std::vector<std::string> keys;
      const Status s = connectors::read_api_key_file(ch.api_key_file, &keys);
      auto& last = api_keys_in_use[ch.name];
      if (!s.is_ok()) {
        // Logged once per problem, not every few seconds.
        if (last_key_problem[ch.name] != s.message()) {
          spdlog::error("psp {}: keeping the API keys in use: {}", ch.name, s.message());
          last_key_problem[ch.name] = s.message();
        }
        continue;
      }
      last_key_problem.erase(ch.name);
      if (last.empty()) last = initial_keys(ch);
      if (keys == last) continue;
      std::string labels;
      for (const auto& k : keys)
        labels += (labels.empty() ? "" : ", ") + connectors::api_key_label(k);
      spdlog::info("psp {}: API keys reloaded from {}: {}", ch.name, ch.api_key_file, labels);
      client(ch.name)->set_api_keys(keys);
      last = std::move(keys);
      ++credential_reloads;
    }
    after(options.credentials_check_ms, [this] { check_credentials(); });
  }

  static std::vector<std::string> initial_keys(const ChannelConfig& ch) {
    std::vector<std::string> keys{ch.client.api_key};
    keys.insert(keys.end(), ch.client.fallback_api_keys.begin(), ch.client.fallback_api_keys.end());
    return keys;
  }

  void after(int64_t ms, std::function<void()> fn) {
    auto timer = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(ms));
    timer->async_wait([timer, fn = std::move(fn)](const boost::system::error_code& ec) {
      if (!ec) fn();
    });
  }

  // Offers a command to the engine until it takes it.
  void offer(payments::Command command) {
    engine::Engine* e = engine.load();
    Impl* self = this;
    e->payments_command(command, 0, [self, command](engine::Outcome<payments::Reply> out) {
      if (out.error == engine::EngineError::overloaded) {
        asio::post(self->io, [self, command] {
          self->after(self->options.resubmit_ms, [self, command] { self->offer(command); });
        });
        return;
      }
      ++self->results_submitted;
    });
  }

  void call(const payments::PspCall& c) {
    ++calls;
    connectors::PspClient* psp = client(c.channel);
    Impl* self = this;
    if (psp == nullptr) {
      // A channel missing from the config: nothing was sent, so the attempt may be retried.
      connectors::PspResult r;
      r.outcome = AttemptOutcome::retryable;
      r.error_code = "channel_not_configured";
      return on_answer(c, r);
    }
    auto done = [self, c](connectors::PspResult r) { self->on_answer(c, r); };
    switch (c.kind) {
      case AttemptKind::authorization: {
        connectors::AuthorizeRequest req;
        req.reference = c.attempt_id;
        req.amount_minor = c.amount;
        req.currency = std::string(currency_code(c));
        req.capture = c.capture_now;
        const bool vault_card = c.instrument.starts_with(vault::kPaymentMethodPrefix);
        if (!vault_card) {
          req.card_token = c.instrument;
          return psp->authorize(req, c.traceparent, done);
        }
        vault::OpenCard card;
        const Status opened =
            c.card == nullptr          ? Status::error("the card was detached from the vault")
            : options.vault == nullptr ? Status::error("keeld runs without a card vault")
                                       : options.vault->open(*c.card, wall_clock_now(), &card);
        if (!opened.is_ok()) {
          // Nothing was sent: the attempt fails for good, and a person reads why in the log.
          spdlog::error("vault: cannot open {} for attempt {}: {}", c.instrument, c.attempt_id,
                        opened.message());
          connectors::PspResult r;
          r.outcome = AttemptOutcome::declined_hard;
          r.error_code = "card_unavailable";
          return on_answer(c, r);
        }
        spdlog::info("vault: opened {} for attempt {} on {}{}", c.card->id, c.attempt_id, c.channel,
                     card.cvc.empty() ? "" : " (with its CVC)");
        req.card = connectors::CardData{std::move(card.number), card.exp_month, card.exp_year,
                                        std::move(card.cvc)};
        return psp->authorize(req, c.traceparent, done);
      }
      case AttemptKind::capture: {
        connectors::CaptureRequest req;
        req.reference = c.authorization_reference;
        req.amount_minor = c.amount;
        return psp->capture(req, c.traceparent, done);
      }
      case AttemptKind::void_authorization:
        return psp->void_authorization(c.authorization_reference, c.traceparent, done);
      case AttemptKind::refund: {
        connectors::RefundRequest req;
        req.reference = c.attempt_id;
        req.payment_reference = c.authorization_reference;
        req.amount_minor = c.amount;
        return psp->refund(req, c.traceparent, done);
      }
      case AttemptKind::payout: {
        connectors::PayoutRequest req;
        req.reference = c.attempt_id;
        req.amount_minor = c.amount;
        req.currency = std::string(currency_code(c));
        req.destination_kind = c.instrument_kind == payments::InstrumentKind::account
                                   ? connectors::PayoutDestinationKind::account
                                   : connectors::PayoutDestinationKind::iban;
        if (!open_instrument(c, vault::kPayoutDestinationField, &req.destination)) return;
        return psp->payout(req, c.traceparent, done);
      }
      case AttemptKind::topup: {
        connectors::TopupRequest req;
        req.reference = c.attempt_id;
        req.amount_minor = c.amount;
        req.currency = std::string(currency_code(c));
        req.source_kind = c.instrument_kind == payments::InstrumentKind::bank_account
                              ? connectors::TopupSourceKind::bank_account
                              : connectors::TopupSourceKind::card_token;
        if (!open_instrument(c, vault::kTopupSourceField, &req.source)) return;
        return psp->topup(req, c.traceparent, done);
      }
    }
  }

  // A top-up's source or a payout's destination in clear for the call: opened under its
  // customer's key, or as stored when it was written before sealing. False when it does not
  // open (the customer erased, no key store, changed bytes): then nothing is sent and the
  // attempt fails as declined, which a payout's hold release follows.
  bool open_instrument(const payments::PspCall& c, std::string_view field, std::string* out) {
    if (!vault::is_sealed_personal(c.instrument)) {
      *out = c.instrument;
      return true;
    }
    using Found = vault::CustomerKeys::Found;
    Found found = Found::missing;
    const Status opened = options.customer_keys == nullptr
                              ? Status::error("keeld runs without customer keys")
                              : options.customer_keys->open(c.customer_id, field, c.payment_id,
                                                            c.instrument, out, &found);
    if (opened.is_ok() && found == Found::ok) return true;
    spdlog::error("personal data: cannot open the {} of {} for attempt {}: {}", field, c.payment_id,
                  c.attempt_id,
                  !opened.is_ok()          ? opened.message()
                  : found == Found::erased ? std::string("the customer was erased")
                                           : std::string("the customer has no key"));
    connectors::PspResult r;
    r.outcome = AttemptOutcome::declined_hard;
    r.error_code = "personal_data_unavailable";
    on_answer(c, r);
    return false;
  }

  void on_answer(const payments::PspCall& c, const connectors::PspResult& r) {
    // The PSP processed the card (not: nothing happened, or nobody knows): its CVC has served.
    const bool card_processed =
        r.outcome != AttemptOutcome::unknown && r.outcome != AttemptOutcome::retryable;
    if (c.card != nullptr && options.vault != nullptr && card_processed) {
      options.vault->forget_cvc(c.card->id);
    }
    if (auto command = answer_command(c, r)) {
      offer(std::move(*command));
      return;  // an unknown result comes back from the engine as a resolve request
    }
    const bool on_authorization =
        c.kind == AttemptKind::capture || c.kind == AttemptKind::void_authorization;
    resolve({c.attempt_id, c.channel, on_authorization ? c.authorization_reference : c.attempt_id,
             c.traceparent},
            options.resolve_initial_ms);
  }

  void deliver(const payments::Delivery& d) {
    Impl* self = this;
    // The secrets are stored sealed by the vault (or in clear, from before it): opened here, for
    // this delivery's signature only.
    std::string secret = d.secret;
    std::string previous = d.previous_secret;
    if (options.vault != nullptr) {
      Status s = options.vault->open_webhook_secret(d.merchant_id, d.secret, &secret);
      if (s.is_ok() && !d.previous_secret.empty()) {
        s = options.vault->open_webhook_secret(d.merchant_id, d.previous_secret, &previous);
      }
      if (!s.is_ok()) {
        spdlog::error("vault: cannot open the webhook secret of {} for event {}: {}", d.merchant_id,
                      d.event_id, s.message());
        return offer(payments::cmd::OutboxAttempt{d.event_id, false});
      }
    } else if (vault::is_sealed_secret(d.secret) || vault::is_sealed_secret(d.previous_secret)) {
      spdlog::error("webhook secret of {} is sealed and keeld runs without a vault", d.merchant_id);
      return offer(payments::cmd::OutboxAttempt{d.event_id, false});
    }
    webhooks.send(
        {d.url, d.body, std::move(secret), d.event_id, std::move(previous)},
        [self, id = d.event_id, merchant = d.merchant_id](connectors::MerchantWebhookResult r) {
          // The URL stays out of the log: merchants put tokens in query strings.
          if (!r.delivered) {
            spdlog::warn("webhook: event {} to merchant {} not delivered: {}", id, merchant,
                         r.reason);
          }
          self->offer(payments::cmd::OutboxAttempt{id, r.delivered});
        });
  }

  // Asks the PSP about `r.reference` after `delay_ms`, again with a doubled delay until it
  // answers with an outcome.
  void resolve(payments::ResolveRequest r, int64_t delay_ms) {
    resolving_since.try_emplace(r.attempt_id, std::chrono::steady_clock::now());
    Impl* self = this;
    after(jittered_ms(delay_ms, random), [self, r = std::move(r), delay_ms] {
      connectors::PspClient* psp = self->client(r.channel);
      if (psp == nullptr) return;  // no such channel: review at the deadline says so
      ++self->status_queries;
      psp->get_operation(r.reference, r.traceparent,
                         [self, r, delay_ms](connectors::PspResult result) {
                           self->on_status(r, result, delay_ms);
                         });
    });
  }

  void on_status(const payments::ResolveRequest& r, const connectors::PspResult& result,
                 int64_t delay_ms) {
    const int64_t next = next_resolve_delay_ms(delay_ms, options.resolve_max_ms);
    if (result.outcome == AttemptOutcome::not_found) {
      const auto since = resolving_since.find(r.attempt_id);
      if (since != resolving_since.end() &&
          std::chrono::steady_clock::now() - since->second <
              std::chrono::milliseconds(options.not_found_grace_ms)) {
        return resolve(r, next);  // maybe still on its way in: not yet "never received"
      }
      resolving_since.erase(r.attempt_id);
      connectors::Operation never;
      never.reference = r.reference;
      payments::cmd::OperationStatus c =
          operation_status_command(r.channel, never, payments::ResultSource::status_query);
      c.state = OperationState::not_found;
      offer(std::move(c));
      return;
    }
    if (!result.op) return resolve(r, next);  // no answer this time: ask again later
    if (result.op->status == OperationStatus::pending) return resolve(r, next);
    resolving_since.erase(r.attempt_id);
    offer(operation_status_command(r.channel, *result.op, payments::ResultSource::status_query));
  }
};

PspDispatcher::PspDispatcher(DispatcherOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

PspDispatcher::~PspDispatcher() { stop(); }

void PspDispatcher::start(engine::Engine* engine) {
  impl_->engine.store(engine);
  const bool any_key_file =
      std::any_of(impl_->options.channels.begin(), impl_->options.channels.end(),
                  [](const ChannelConfig& ch) { return !ch.api_key_file.empty(); });
  if (any_key_file) {
    Impl* impl = impl_.get();
    asio::post(impl->io, [impl] { impl->check_credentials(); });
  }
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

void PspDispatcher::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->guard.reset();
  impl_->io.stop();
  impl_->thread.join();
}

void PspDispatcher::submit(engine::PaymentEffects effects) {
  asio::post(impl_->io, [impl = impl_.get(), e = std::move(effects)] {
    for (const payments::PspCall& c : e.calls) {
      if (c.delay_ms > 0) {  // a retry's backoff, chosen (and journaled) by routing
        impl->after(c.delay_ms, [impl, c] { impl->call(c); });
      } else {
        impl->call(c);
      }
    }
    for (const payments::ResolveRequest& r : e.resolve) {
      impl->resolve(r, impl->options.resolve_initial_ms);
    }
    for (const payments::Delivery& d : e.deliveries) impl->deliver(d);
  });
}

const ChannelConfig* PspDispatcher::channel(std::string_view name) const {
  for (const ChannelConfig& c : impl_->options.channels) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

PspDispatcher::Stats PspDispatcher::stats() const {
  Stats s{impl_->calls.load(), impl_->status_queries.load(), impl_->results_submitted.load()};
  for (const auto& [name, client] : impl_->clients) {
    s.credential_fallbacks += client->stats().credential_fallbacks;
  }
  s.credential_reloads = impl_->credential_reloads.load();
  return s;
}

}  // namespace keel::dispatch
