#include "api/server.h"
#include "net/listener.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <chrono>
#include <future>
#include <optional>
#include <thread>
#include <vector>

#include "api/router.h"
#include "net/tls.h"

namespace keel::api {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using beast::error_code;

// What every connection of one server shares. Outlives the io_context's handlers.
struct ServerState {
  ServerOptions options;
  std::shared_ptr<asio::ssl::context> tls;  // null: plain HTTP
  Service* service = nullptr;
  std::atomic<int64_t> in_flight{0};  // requests read and not yet answered
  std::atomic<bool> draining{false};
};

// Bytes read and thrown away after an error answer, so that a client still sending its body
// gets to read the answer instead of a connection reset.
constexpr size_t kDrainBytesMax = size_t{64} << 20;
constexpr auto kDrainTimeout = std::chrono::seconds(5);

std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

using TlsStream = beast::ssl_stream<beast::tcp_stream>;
constexpr bool is_tls(const beast::tcp_stream*) { return false; }
constexpr bool is_tls(const TlsStream*) { return true; }

// One connection: read a request, hand it to the Service, write its answer, repeat. `Stream`
// is a beast::tcp_stream (HTTP) or a TlsStream over one (HTTPS: a handshake first).
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(tcp::socket socket, ServerState& state) requires(!is_tls(static_cast<Stream*>(nullptr)))
      : stream_(std::move(socket)), state_(state) {}
  Session(tcp::socket socket, ServerState& state) requires(is_tls(static_cast<Stream*>(nullptr)))
      : stream_(std::move(socket), *state.tls), state_(state) {}

  void start() {
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (is_tls(static_cast<Stream*>(nullptr))) {
        self->lowest().expires_after(self->idle_timeout());
        self->stream_.async_handshake(asio::ssl::stream_base::server, [self](error_code ec) {
          if (ec) {
            spdlog::debug("tls handshake: {}",
                          net::tls_error_text(ec, self->stream_.native_handle()));
            return self->close();
          }
          self->read();
        });
      } else {
        self->read();
      }
    });
  }

 private:
  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }
  void read();
  void on_header(error_code ec);
  void read_body();
  void on_read(error_code ec);
  void answer_parse_error(error_code ec);
  void write(HttpReply reply);
  void on_write(error_code ec);
  void drain_and_close();
  void close();

  std::chrono::milliseconds idle_timeout() const {
    return std::chrono::milliseconds(state_.options.idle_timeout_ms);
  }

  Stream stream_;
  ServerState& state_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  std::string request_id_;
  std::string traceparent_;
  bool keep_alive_ = false;
  bool counted_ = false;  // this request is counted in state_.in_flight
  std::array<char, 16384> drain_buffer_{};
  size_t drained_bytes_ = 0;
};

template <class Stream>
void Session<Stream>::read() {
  parser_.emplace();
  parser_->body_limit(state_.options.body_bytes_max);
  parser_->header_limit(static_cast<uint32_t>(state_.options.header_bytes_max));
  lowest().expires_after(idle_timeout());
  http::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](error_code ec, size_t) { self->on_header(ec); });
}

template <class Stream>
void Session<Stream>::on_header(error_code ec) {
  if (ec) return on_read(ec);
  // curl and others wait for "100 Continue" before sending a large body.
  const auto expect = parser_->get()[http::field::expect];
  if (beast::iequals(expect, "100-continue") && !parser_->is_done()) {
    auto res = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
    return http::async_write(stream_, *res,
                             [self = shared_from_this(), res](error_code ec, size_t) {
                               if (ec) return self->close();
                               self->read_body();
                             });
  }
  read_body();
}

template <class Stream>
void Session<Stream>::read_body() {
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](error_code ec, size_t) { self->on_read(ec); });
}

template <class Stream>
void Session<Stream>::on_read(error_code ec) {
  if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
      ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
      ec == asio::error::eof) {
    return close();
  }
  request_id_ = new_request_id();
  traceparent_.clear();
  if (ec) return answer_parse_error(ec);
  state_.in_flight.fetch_add(1);
  counted_ = true;
  http::request<http::string_body> req = parser_->release();
  const auto traceparent = req["traceparent"];
  if (is_valid_traceparent(sv(traceparent))) traceparent_ = std::string(sv(traceparent));
  keep_alive_ = req.keep_alive();
  RequestHeaders headers;
  headers.traceparent = traceparent_;
  if (const auto it = req.find("Idempotency-Key"); it != req.end()) {
    headers.idempotency_key = std::string(sv(it->value()));
  }
  headers.psp_signature = std::string(sv(req["PSP-Signature"]));
  headers.authorization = std::string(sv(req[http::field::authorization]));
  headers.signature = std::string(sv(req["Keel-Signature"]));
  headers.admin_listener = state_.options.admin_listener;
  auto self = shared_from_this();
  state_.service->handle(
      sv(req.method_string()), sv(req.target()), headers, std::move(req.body()), request_id_,
      [self](std::function<void()> f) { asio::post(self->stream_.get_executor(), std::move(f)); },
      [self](HttpReply reply) { self->write(std::move(reply)); });
}

template <class Stream>
void Session<Stream>::answer_parse_error(error_code ec) {
  ApiError e;
  if (ec == http::error::body_limit) {
    e = make_error(
        ErrorCode::body_too_large,
        "the body is larger than " + std::to_string(state_.options.body_bytes_max) + " bytes");
  } else if (ec == http::error::header_limit) {
    e = make_error(ErrorCode::headers_too_large,
                   "the headers are larger than " +
                       std::to_string(state_.options.header_bytes_max) + " bytes");
  } else {
    e = make_error(ErrorCode::http_invalid, "malformed HTTP request: " + ec.message());
  }
  keep_alive_ = false;
  write(error_reply(e, request_id_));
}

template <class Stream>
void Session<Stream>::write(HttpReply reply) {
  if (state_.draining.load()) keep_alive_ = false;
  response_ = {};
  response_.version(11);
  response_.result(reply.status);
  response_.set(http::field::content_type,
                reply.content_type.empty() ? "application/json" : reply.content_type);
  response_.set("Request-Id", request_id_);
  if (!traceparent_.empty()) response_.set("traceparent", traceparent_);
  if (!reply.allow.empty()) response_.set(http::field::allow, reply.allow);
  // RFC 9110: a 401 names the scheme it takes.
  if (reply.status == 401) response_.set(http::field::www_authenticate, "Bearer realm=\"keel\"");
  if (reply.retry_after_s > 0) {
    response_.set(http::field::retry_after, std::to_string(reply.retry_after_s));
  }
  if (reply.idempotent_replayed) response_.set("Idempotent-Replayed", "true");
  response_.keep_alive(keep_alive_);
  response_.body() = std::move(reply.body);
  response_.prepare_payload();
  lowest().expires_after(idle_timeout());
  http::async_write(stream_, response_,
                    [self = shared_from_this()](error_code ec, size_t) { self->on_write(ec); });
}

template <class Stream>
void Session<Stream>::on_write(error_code ec) {
  if (counted_) {
    state_.in_flight.fetch_sub(1);
    counted_ = false;
  }
  if (ec) return close();
  if (!keep_alive_) return drain_and_close();
  read();
}

// Half-closes, then reads and discards what the client still sends (bounded in bytes and time)
// so that it sees the answer before the connection goes away.
template <class Stream>
void Session<Stream>::drain_and_close() {
  if constexpr (is_tls(static_cast<Stream*>(nullptr))) {
    // TLS: say close_notify (bounded in time), then close.
    lowest().expires_after(kDrainTimeout);
    return stream_.async_shutdown([self = shared_from_this()](error_code) { self->close(); });
  }
  error_code ignored;
  lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
  if (drained_bytes_ == 0) lowest().expires_after(kDrainTimeout);
  stream_.async_read_some(asio::buffer(drain_buffer_),
                          [self = shared_from_this()](error_code ec, size_t n) {
                            self->drained_bytes_ += n;
                            if (ec || self->drained_bytes_ > kDrainBytesMax) return self->close();
                            self->drain_and_close();
                          });
}

template <class Stream>
void Session<Stream>::close() {
  error_code ignored;
  lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
  lowest().close();
}

}  // namespace

struct Server::Impl {
  ServerState state;
  asio::io_context ioc;
  tcp::acceptor acceptor{asio::make_strand(ioc)};
  asio::steady_timer accept_retry{acceptor.get_executor()};
  std::vector<std::thread> threads;
  uint16_t port = 0;
  bool shut_down = false;

  explicit Impl(size_t threads_hint) : ioc(static_cast<int>(threads_hint)) {}

  Status listen();
  void accept();
};

Status Server::Impl::listen() {
  return keel::net::listen_on(ioc, acceptor, state.options.host, state.options.port, &port);
}

void Server::Impl::accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      // Out of file descriptors and the like: log, breathe, try again.
      spdlog::warn("accept: {}", ec.message());
      accept_retry.expires_after(std::chrono::milliseconds(50));
      accept_retry.async_wait([this](error_code wait_ec) {
        if (!wait_ec) accept();
      });
      return;
    }
    if (state.tls) {
      std::make_shared<Session<TlsStream>>(std::move(socket), state)->start();
    } else {
      std::make_shared<Session<beast::tcp_stream>>(std::move(socket), state)->start();
    }
    accept();
  });
}

Server::Server() = default;

Server::~Server() { shutdown(0); }

Status Server::start(ServerOptions options, Service* service, std::unique_ptr<Server>* out) {
  const size_t threads = std::max<size_t>(1, options.io_threads);
  std::unique_ptr<Server> server(new Server());
  server->impl_ = std::make_unique<Impl>(threads);
  Impl& impl = *server->impl_;
  impl.state.options = std::move(options);
  impl.state.service = service;
  if (impl.state.options.tls) {
    if (Status s = net::make_server_context(*impl.state.options.tls, &impl.state.tls); !s.is_ok()) {
      return s;
    }
  }
  if (Status s = impl.listen(); !s.is_ok()) return s;
  impl.accept();
  for (size_t i = 0; i < threads; ++i) {
    impl.threads.emplace_back([&impl] { impl.ioc.run(); });
  }
  *out = std::move(server);
  return Status::ok();
}

uint16_t Server::port() const { return impl_->port; }

void Server::stop_accepting() {
  if (impl_->state.draining.exchange(true)) return;
  impl_->state.service->set_draining();
  auto close = [impl = impl_.get()] {
    error_code ignored;
    impl->acceptor.close(ignored);
    impl->accept_retry.cancel();
  };
  if (impl_->threads.empty()) return close();
  // The acceptor belongs to its strand: close it there and wait.
  std::promise<void> closed;
  asio::dispatch(impl_->acceptor.get_executor(), [&] {
    close();
    closed.set_value();
  });
  closed.get_future().wait();
}

void Server::shutdown(int64_t drain_timeout_ms) {
  if (impl_ == nullptr || impl_->shut_down) return;
  impl_->shut_down = true;
  stop_accepting();
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(drain_timeout_ms);
  while (impl_->state.in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

}  // namespace keel::api
