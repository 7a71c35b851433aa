#include "psp_sim/webhook_sender.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <optional>
#include <vector>

#include "connectors/webhook_signature.h"
#include "core/hash.h"
#include "core/time.h"

namespace keel::psp_sim {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using beast::error_code;

}  // namespace

struct WebhookSender::Impl : std::enable_shared_from_this<WebhookSender::Impl> {
  Impl(asio::io_context& io, const SimConfig& c, WebhookSenderOptions o)
      : ioc(io), config(c), options(o), strand(asio::make_strand(io)) {
    held.resize(config.psps.size());
    for (size_t i = 0; i < config.psps.size(); ++i) {
      hold_timers.push_back(std::make_unique<asio::steady_timer>(strand));
    }
  }

  void schedule(OutgoingWebhook w);  // on strand
  void flush(size_t psp);            // on strand
  void start(const OutgoingWebhook& w);

  asio::io_context& ioc;
  const SimConfig& config;
  const WebhookSenderOptions options;
  asio::strand<asio::io_context::executor_type> strand;
  std::atomic<bool> stopping{false};
  std::atomic<size_t> in_flight{0};
  // Reorder: events held per PSP, and the timer that flushes them. Strand only.
  std::vector<std::vector<OutgoingWebhook>> held;
  std::vector<std::unique_ptr<asio::steady_timer>> hold_timers;
};

namespace {

// One delivery of one event: tries until a 2xx, the try limit, or stop().
class WebhookDelivery : public std::enable_shared_from_this<WebhookDelivery> {
 public:
  WebhookDelivery(std::shared_ptr<WebhookSender::Impl> sender, const OutgoingWebhook& w)
      : sender_(std::move(sender)),
        psp_(sender_->config.psps[w.psp]),
        event_id_(w.event_id),
        body_(w.body),
        executor_(asio::make_strand(sender_->ioc)),
        resolver_(executor_),
        timer_(executor_) {}

  void attempt();

 private:
  void on_resolved(error_code ec, const tcp::resolver::results_type& results);
  void on_connected(error_code ec);
  void on_written(error_code ec);
  void on_read(error_code ec);
  void retry(const std::string& why);
  void done() { sender_->in_flight.fetch_sub(1); }

  std::shared_ptr<WebhookSender::Impl> sender_;
  const PspConfig& psp_;
  std::string event_id_;
  std::string body_;
  asio::strand<asio::io_context::executor_type> executor_;
  tcp::resolver resolver_;
  asio::steady_timer timer_;
  std::optional<beast::tcp_stream> stream_;
  http::request<http::string_body> request_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
  int tries_ = 0;
};

void WebhookDelivery::attempt() {
  if (sender_->stopping.load()) return done();
  ++tries_;
  const WebhookUrl& url = *psp_.webhook;
  request_ = {};
  request_.method(http::verb::post);
  request_.target(url.target);
  request_.version(11);
  request_.set(http::field::host, url.host + ":" + std::to_string(url.port));
  request_.set(http::field::content_type, "application/json");
  request_.set("PSP-Signature",
               connectors::sign_webhook(psp_.webhook_secret,
                                        sender_->options.now() / kNanosPerSecond, body_));
  request_.keep_alive(false);
  request_.body() = body_;
  request_.prepare_payload();
  resolver_.async_resolve(
      url.host, std::to_string(url.port),
      [self = shared_from_this()](error_code ec, auto results) { self->on_resolved(ec, results); });
}

void WebhookDelivery::on_resolved(error_code ec, const tcp::resolver::results_type& results) {
  if (ec) return retry("resolve: " + ec.message());
  stream_.emplace(executor_);
  stream_->expires_after(std::chrono::milliseconds(sender_->options.connect_timeout_ms));
  stream_->async_connect(
      results, [self = shared_from_this()](error_code e, const auto&) { self->on_connected(e); });
}

void WebhookDelivery::on_connected(error_code ec) {
  if (ec) return retry("connect: " + ec.message());
  stream_->expires_after(std::chrono::milliseconds(sender_->options.io_timeout_ms));
  http::async_write(*stream_, request_,
                    [self = shared_from_this()](error_code e, size_t) { self->on_written(e); });
}

void WebhookDelivery::on_written(error_code ec) {
  if (ec) return retry("write: " + ec.message());
  buffer_.clear();
  parser_.emplace();
  parser_->body_limit(64 * 1024);
  http::async_read(*stream_, buffer_, *parser_,
                   [self = shared_from_this()](error_code e, size_t) { self->on_read(e); });
}

void WebhookDelivery::on_read(error_code ec) {
  if (ec) return retry("read: " + ec.message());
  const unsigned status = parser_->get().result_int();
  error_code ignored;
  stream_->socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_->close();
  if (status >= 200 && status < 300) return done();
  retry("status " + std::to_string(status));
}

void WebhookDelivery::retry(const std::string& why) {
  if (stream_) stream_->close();
  if (sender_->stopping.load()) return done();
  if (tries_ >= sender_->options.tries_max) {
    spdlog::warn("webhook {} to {}: giving up after {} tries ({})", event_id_, psp_.name, tries_,
                 why);
    return done();
  }
  const int64_t backoff_ms = sender_->options.first_backoff_ms << std::min(tries_ - 1, 20);
  spdlog::info("webhook {} to {}: try {} failed ({}), again in {} ms", event_id_, psp_.name, tries_,
               why, backoff_ms);
  timer_.expires_after(std::chrono::milliseconds(backoff_ms));
  timer_.async_wait([self = shared_from_this()](error_code e) {
    if (e) return self->done();
    self->attempt();
  });
}

}  // namespace

void WebhookSender::Impl::start(const OutgoingWebhook& w) {
  const int copies = w.duplicate ? 2 : 1;
  for (int i = 0; i < copies; ++i) {
    if (in_flight.fetch_add(1) >= options.in_flight_max) {
      in_flight.fetch_sub(1);
      spdlog::warn("webhook {}: dropped, {} deliveries in flight", w.event_id,
                   options.in_flight_max);
      continue;
    }
    std::make_shared<WebhookDelivery>(shared_from_this(), w)->attempt();
  }
}

void WebhookSender::Impl::schedule(OutgoingWebhook w) {
  if (!w.reorder) return start(w);
  const size_t psp = w.psp;
  held[psp].push_back(std::move(w));
  if (held[psp].size() >= options.reorder_batch) return flush(psp);
  if (held[psp].size() > 1) return;  // the timer is armed by the first held event
  hold_timers[psp]->expires_after(std::chrono::milliseconds(options.reorder_hold_ms));
  hold_timers[psp]->async_wait([self = shared_from_this(), psp](error_code ec) {
    if (!ec) self->flush(psp);
  });
}

void WebhookSender::Impl::flush(size_t psp) {
  hold_timers[psp]->cancel();
  std::vector<OutgoingWebhook> batch = std::move(held[psp]);
  held[psp].clear();
  // A fixed shuffle: by a hash of the event id, so the same run delivers in the same order.
  const auto rank = [](const OutgoingWebhook& w) { return siphash13(SipKey{1, 2}, w.event_id); };
  std::sort(batch.begin(), batch.end(),
            [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  for (const OutgoingWebhook& w : batch) start(w);
}

WebhookSender::WebhookSender(asio::io_context& ioc, const SimConfig& config,
                             WebhookSenderOptions options)
    : impl_(std::make_shared<Impl>(ioc, config, options)) {}

WebhookSender::~WebhookSender() { stop(); }

void WebhookSender::stop() { impl_->stopping.store(true); }

void WebhookSender::send(OutgoingWebhook w) {
  if (impl_->stopping.load() || !impl_->config.psps[w.psp].webhook) return;
  auto impl = impl_;
  if (w.delay_ms <= 0) {
    asio::post(impl->strand, [impl, w = std::move(w)]() mutable { impl->schedule(std::move(w)); });
    return;
  }
  auto timer = std::make_shared<asio::steady_timer>(impl->strand);
  timer->expires_after(std::chrono::milliseconds(w.delay_ms));
  timer->async_wait([impl, timer, w = std::move(w)](error_code ec) mutable {
    if (!ec && !impl->stopping.load()) impl->schedule(std::move(w));
  });
}

}  // namespace keel::psp_sim
