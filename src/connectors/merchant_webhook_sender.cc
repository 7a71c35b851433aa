#include "connectors/merchant_webhook_sender.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <optional>
#include <set>

#include "connectors/webhook_signature.h"
#include "core/http_url.h"
#include "core/ids.h"
#include "core/time.h"

namespace keel::connectors {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using beast::error_code;
using Clock = std::chrono::steady_clock;
using Strand = asio::strand<asio::any_io_executor>;

enum class Phase : uint8_t { resolving, connecting, writing, reading };

struct Try {
  explicit Try(const Strand& strand) : stream(strand), resolver(strand), timer(strand) {}
  beast::tcp_stream stream;
  tcp::resolver resolver;
  asio::steady_timer timer;  // the total timeout
  http::request<http::string_body> request;
  beast::flat_buffer buffer;
  http::response_parser<http::empty_body> parser;
  MerchantWebhookCallback done;
  Clock::time_point started = Clock::now();
  Phase phase = Phase::resolving;
  bool finished = false;
};

// The short reason for a failed read of the answer.
std::string read_failure(const error_code& ec) {
  if (ec == http::error::end_of_stream || ec == asio::error::eof) return "connection closed";
  if (ec == http::error::header_limit) return "response too large";
  if (ec == asio::error::connection_reset) return "connection reset";
  if (ec.category() == http::make_error_code(http::error::end_of_stream).category()) {
    return "bad response";
  }
  return "read: " + ec.message();
}

}  // namespace

struct MerchantWebhookSender::Impl : std::enable_shared_from_this<MerchantWebhookSender::Impl> {
  Impl(asio::any_io_executor executor, MerchantWebhookSenderOptions o)
      : strand(asio::make_strand(executor)), options(std::move(o)) {}

  Strand strand;
  MerchantWebhookSenderOptions options;
  std::set<std::shared_ptr<Try>> live;  // strand only
  bool shut_down = false;               // strand only
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> failed{0};

  void start(const std::shared_ptr<Try>& t, MerchantWebhook webhook);
  void connect(const std::shared_ptr<Try>& t, const HttpUrl& target);
  void on_connect(const std::shared_ptr<Try>& t, error_code ec);
  void on_write(const std::shared_ptr<Try>& t, error_code ec);
  void on_read(const std::shared_ptr<Try>& t, error_code ec);
  void on_timeout(const std::shared_ptr<Try>& t);
  void fail(const std::shared_ptr<Try>& t, std::string reason, unsigned status = 0);
  void finish(const std::shared_ptr<Try>& t, MerchantWebhookResult result);
  void shutdown();

  int64_t now_s() const {
    return options.clock_s ? options.clock_s() : wall_clock_now() / kNanosPerSecond;
  }
};

void MerchantWebhookSender::Impl::start(const std::shared_ptr<Try>& t, MerchantWebhook w) {
  if (shut_down) return fail(t, "shut down");
  if (live.size() >= options.in_flight_max) return fail(t, "too many in flight");
  const std::optional<HttpUrl> target = parse_http_url_with_target(w.url);
  if (!target) return fail(t, "url invalid");
  if (!is_valid_id(w.event_id)) return fail(t, "event id invalid");
  if (w.body.size() > options.request_body_bytes_max) return fail(t, "body too large");
  auto& req = t->request;
  req = {http::verb::post, target->target, 11};
  req.set(http::field::host, target->host + ":" + std::to_string(target->port));
  req.set(http::field::user_agent, "keel");
  req.set(http::field::content_type, "application/json");
  req.set("Keel-Event-Id", w.event_id);
  req.set("Keel-Signature", sign_webhook(w.secret, now_s(), w.body, w.previous_secret));
  req.keep_alive(false);
  req.body() = std::move(w.body);
  req.prepare_payload();
  t->parser.header_limit(options.response_header_bytes_max);
  live.insert(t);
  t->timer.expires_at(t->started + std::chrono::milliseconds(options.total_timeout_ms));
  t->timer.async_wait([self = shared_from_this(), t](error_code ec) {
    if (!ec) self->on_timeout(t);
  });
  connect(t, *target);
}

void MerchantWebhookSender::Impl::connect(const std::shared_ptr<Try>& t, const HttpUrl& target) {
  const auto connect_timeout = std::chrono::milliseconds(options.connect_timeout_ms);
  error_code ec;
  const auto address = asio::ip::make_address(target.host, ec);
  if (!ec) {
    t->phase = Phase::connecting;
    t->stream.expires_after(connect_timeout);
    t->stream.async_connect(
        tcp::endpoint(address, target.port),
        [self = shared_from_this(), t](error_code e) { self->on_connect(t, e); });
    return;
  }
  t->resolver.async_resolve(
      target.host, std::to_string(target.port),
      [self = shared_from_this(), t, connect_timeout](error_code e,
                                                      const tcp::resolver::results_type& results) {
        if (t->finished) return;
        if (e) return self->fail(t, "resolve: " + e.message());
        t->phase = Phase::connecting;
        t->stream.expires_after(connect_timeout);
        t->stream.async_connect(
            results, [self, t](error_code e2, const tcp::endpoint&) { self->on_connect(t, e2); });
      });
}

void MerchantWebhookSender::Impl::on_connect(const std::shared_ptr<Try>& t, error_code ec) {
  if (t->finished) return;
  if (ec == asio::error::connection_refused) return fail(t, "connect refused");
  if (ec == beast::error::timeout) return fail(t, "connect timeout");
  if (ec) return fail(t, "connect: " + ec.message());
  t->phase = Phase::writing;
  t->stream.expires_never();  // the total timer bounds the rest
  error_code ignored;
  t->stream.socket().set_option(tcp::no_delay(true), ignored);
  http::async_write(t->stream, t->request,
                    [self = shared_from_this(), t](error_code e, size_t) { self->on_write(t, e); });
}

void MerchantWebhookSender::Impl::on_write(const std::shared_ptr<Try>& t, error_code ec) {
  if (t->finished) return;
  if (ec) return fail(t, "write: " + ec.message());
  t->phase = Phase::reading;
  http::async_read_header(
      t->stream, t->buffer, t->parser,
      [self = shared_from_this(), t](error_code e, size_t) { self->on_read(t, e); });
}

void MerchantWebhookSender::Impl::on_read(const std::shared_ptr<Try>& t, error_code ec) {
  if (t->finished) return;
  if (ec) return fail(t, read_failure(ec));
  const unsigned status = t->parser.get().result_int();
  if (status >= 200 && status < 300) {
    MerchantWebhookResult r;
    r.delivered = true;
    r.http_status = status;
    return finish(t, std::move(r));
  }
  fail(t, "http " + std::to_string(status), status);
}

void MerchantWebhookSender::Impl::on_timeout(const std::shared_ptr<Try>& t) {
  if (t->finished) return;
  switch (t->phase) {
    case Phase::resolving:
      return fail(t, "resolve timeout");
    case Phase::connecting:
      return fail(t, "connect timeout");
    case Phase::writing:
    case Phase::reading:
      return fail(t, "timeout");
  }
}

void MerchantWebhookSender::Impl::fail(const std::shared_ptr<Try>& t, std::string reason,
                                       unsigned status) {
  MerchantWebhookResult r;
  r.http_status = status;
  r.reason = std::move(reason);
  finish(t, std::move(r));
}

// Ends a try once: closes what it holds, counts it and posts its callback.
void MerchantWebhookSender::Impl::finish(const std::shared_ptr<Try>& t,
                                         MerchantWebhookResult result) {
  if (t->finished) return;
  t->finished = true;
  t->timer.cancel();
  t->resolver.cancel();
  error_code ignored;
  t->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  t->stream.close();
  live.erase(t);
  (result.delivered ? delivered : failed).fetch_add(1, std::memory_order_relaxed);
  result.latency_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t->started).count();
  asio::post(strand, [done = std::move(t->done), result = std::move(result)]() mutable {
    if (done) done(std::move(result));
  });
}

void MerchantWebhookSender::Impl::shutdown() {
  shut_down = true;
  const auto all = live;  // finish() erases from `live`
  for (const auto& t : all) fail(t, "shut down");
}

MerchantWebhookSender::MerchantWebhookSender(asio::any_io_executor executor,
                                             MerchantWebhookSenderOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options))) {}

MerchantWebhookSender::~MerchantWebhookSender() {
  asio::post(impl_->strand, [impl = impl_] { impl->shutdown(); });
}

void MerchantWebhookSender::send(MerchantWebhook webhook, MerchantWebhookCallback done) {
  impl_->sent.fetch_add(1, std::memory_order_relaxed);
  auto t = std::make_shared<Try>(impl_->strand);
  t->done = std::move(done);
  asio::post(impl_->strand, [impl = impl_, t = std::move(t), w = std::move(webhook)]() mutable {
    impl->start(t, std::move(w));
  });
}

MerchantWebhookSender::Stats MerchantWebhookSender::stats() const {
  return {impl_->sent.load(std::memory_order_relaxed),
          impl_->delivered.load(std::memory_order_relaxed),
          impl_->failed.load(std::memory_order_relaxed)};
}

}  // namespace keel::connectors
