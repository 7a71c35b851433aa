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
#include "net/tls.h"

namespace keel::connectors {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using beast::error_code;
using Clock = std::chrono::steady_clock;
using Strand = asio::strand<asio::any_io_executor>;

enum class Phase : uint8_t { resolving, connecting, handshaking, writing, reading };

struct Try {
  explicit Try(const Strand& strand) : resolver(strand), timer(strand) {}
  std::optional<net::MaybeTlsStream> stream;  // made once the URL says http or https
  tcp::resolver resolver;
  asio::steady_timer timer;  // the total timeout
  HttpUrl target;
  std::vector<tcp::endpoint> endpoints;  // checked by the guard; tried in order
  size_t next_endpoint = 0;
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
      : strand(asio::make_strand(executor)), options(std::move(o)) {
    const Status made = net::make_client_context(options.tls, &tls_context);
    if (!made.is_ok()) tls_problem = made.message();
  }

  Strand strand;
  MerchantWebhookSenderOptions options;
  std::shared_ptr<asio::ssl::context> tls_context;  // https; null when it could not be made
  std::string tls_problem;                          // why not
  std::set<std::shared_ptr<Try>> live;              // strand only
  bool shut_down = false;                           // strand only
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> failed{0};

  void start(const std::shared_ptr<Try>& t, MerchantWebhook webhook);
  void resolve(const std::shared_ptr<Try>& t);
  void on_resolve(const std::shared_ptr<Try>& t, error_code ec,
                  const std::vector<asio::ip::address>& addresses);
  void connect_next(const std::shared_ptr<Try>& t);
  void on_connect(const std::shared_ptr<Try>& t, error_code ec);
  void on_handshake(const std::shared_ptr<Try>& t, error_code ec);
  void write(const std::shared_ptr<Try>& t);
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
  std::optional<HttpUrl> target = parse_http_url_with_target(w.url, {.https = true});
  if (!target) return fail(t, "url invalid");
  if (target->tls && !tls_context) return fail(t, "tls: " + tls_problem);
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
  t->stream.emplace(strand, target->tls ? tls_context.get() : nullptr);
  t->target = std::move(*target);
  resolve(t);
}

// An IP address in the URL is taken as is; a name goes to the resolver. Either way every
// address is judged by the guard before any connection.
void MerchantWebhookSender::Impl::resolve(const std::shared_ptr<Try>& t) {
  error_code ec;
  const auto literal = asio::ip::make_address(t->target.host, ec);
  if (!ec) return on_resolve(t, {}, {literal});
  auto done = [self = shared_from_this(), t](error_code e, std::vector<asio::ip::address> found) {
    asio::post(self->strand, [self, t, e, found = std::move(found)] {
      if (!t->finished) self->on_resolve(t, e, found);
    });
  };
  if (options.resolve) return options.resolve(t->target.host, std::move(done));
  t->resolver.async_resolve(
      t->target.host, std::to_string(t->target.port),
      [done = std::move(done)](error_code e, const tcp::resolver::results_type& results) {
        std::vector<asio::ip::address> found;
        for (const auto& r : results) found.push_back(r.endpoint().address());
        done(e, std::move(found));
      });
}

void MerchantWebhookSender::Impl::on_resolve(const std::shared_ptr<Try>& t, error_code ec,
                                             const std::vector<asio::ip::address>& addresses) {
  if (ec) return fail(t, "resolve: " + ec.message());
  if (addresses.empty()) return fail(t, "resolve: no address");
  for (const auto& address : addresses) {
    const auto ip = net::parse_ip_address(address.to_string());
    if (!ip) return fail(t, "destination refused: " + address.to_string() + " is not unicast");
    if (auto refused = net::refused_destination(options.destinations, *ip)) {
      return fail(t, std::move(*refused));
    }
    t->endpoints.emplace_back(address, t->target.port);
  }
  t->phase = Phase::connecting;
  t->stream->lowest().expires_after(std::chrono::milliseconds(options.connect_timeout_ms));
  connect_next(t);
}

// Tries the checked addresses in order: the first that accepts carries the request.
void MerchantWebhookSender::Impl::connect_next(const std::shared_ptr<Try>& t) {
  const tcp::endpoint endpoint = t->endpoints[t->next_endpoint++];
  auto done = [self = shared_from_this(), t](error_code e) {
    asio::post(self->strand, [self, t, e] {
      if (!t->finished) self->on_connect(t, e);
    });
  };
  if (options.connect) return options.connect(t->stream->lowest(), endpoint, std::move(done));
  t->stream->lowest().async_connect(endpoint, std::move(done));
}

void MerchantWebhookSender::Impl::on_connect(const std::shared_ptr<Try>& t, error_code ec) {
  if (ec && ec != beast::error::timeout && t->next_endpoint < t->endpoints.size()) {
    error_code ignored;
    t->stream->lowest().socket().close(ignored);
    return connect_next(t);
  }
  if (ec == asio::error::connection_refused) return fail(t, "connect refused");
  if (ec == beast::error::timeout) return fail(t, "connect timeout");
  if (ec) return fail(t, "connect: " + ec.message());
  error_code ignored;
  t->stream->lowest().socket().set_option(tcp::no_delay(true), ignored);
  net::MaybeTlsStream::Tls* tls = t->stream->tls();
  if (tls == nullptr) return write(t);
  t->phase = Phase::handshaking;
  const Status host = net::set_client_host(tls->native_handle(), t->target.host);
  if (!host.is_ok()) return fail(t, "tls: " + host.message());
  tls->async_handshake(asio::ssl::stream_base::client,
                       [self = shared_from_this(), t](error_code e) { self->on_handshake(t, e); });
}

void MerchantWebhookSender::Impl::on_handshake(const std::shared_ptr<Try>& t, error_code ec) {
  if (t->finished) return;
  if (ec) return fail(t, "tls: " + net::tls_error_text(ec, t->stream->tls()->native_handle()));
  write(t);
}

void MerchantWebhookSender::Impl::write(const std::shared_ptr<Try>& t) {
  t->phase = Phase::writing;
  t->stream->lowest().expires_never();  // the total timer bounds the rest
  t->stream->with([&](auto& s) {
    http::async_write(s, t->request, [self = shared_from_this(), t](error_code e, size_t) {
      self->on_write(t, e);
    });
  });
}

void MerchantWebhookSender::Impl::on_write(const std::shared_ptr<Try>& t, error_code ec) {
  if (t->finished) return;
  if (ec) return fail(t, "write: " + ec.message());
  t->phase = Phase::reading;
  t->stream->with([&](auto& s) {
    http::async_read_header(
        s, t->buffer, t->parser,
        [self = shared_from_this(), t](error_code e, size_t) { self->on_read(t, e); });
  });
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
    case Phase::handshaking:
      return fail(t, "tls: handshake timeout");
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
  if (t->stream) {
    error_code ignored;
    t->stream->lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    t->stream->lowest().close();
  }
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
