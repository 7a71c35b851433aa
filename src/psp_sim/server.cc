#include "psp_sim/server.h"
#include "net/listener.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

#include "core/time.h"
#include "psp_sim/webhook_sender.h"

namespace keel::psp_sim {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using beast::error_code;

std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

}  // namespace

namespace {

// What the sessions and timers of one server share; outlives every handler that runs.
struct ServerCore {
  explicit ServerCore(size_t threads) : ioc(static_cast<int>(threads)) {}
  // Starts the timers and deliveries of `effects`. Any thread.
  void apply(Effects effects);

  SimServerOptions options;
  Simulator* sim = nullptr;
  asio::io_context ioc;
  std::unique_ptr<WebhookSender> webhooks;
};

// One connection: read a request, admit, wait, process, answer (or not), repeat.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, ServerCore& server)
      : stream_(std::move(socket)), server_(server), timer_(stream_.get_executor()) {}

  void start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }

 private:
  void read();
  void on_read(error_code ec);
  void run_admitted();
  void write(SimReply reply);
  void hold_open();
  void keep_draining();
  void reset();
  void close();

  SimRequest sim_request() const {
    return SimRequest{sv(request_.method_string()), sv(request_.target()),
                      sv(request_[http::field::authorization]), request_.body()};
  }

  beast::tcp_stream stream_;
  ServerCore& server_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  Admission admission_;
  std::array<char, 4096> drain_{};
};

void Session::read() {
  parser_.emplace();
  parser_->body_limit(server_.options.body_bytes_max);
  stream_.expires_after(std::chrono::milliseconds(server_.options.idle_timeout_ms));
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](error_code ec, size_t) { self->on_read(ec); });
}

void Session::on_read(error_code ec) {
  if (ec) return close();  // end of stream, timeout, malformed: nothing to answer
  stream_.expires_never();
  request_ = parser_->release();
  admission_ = server_.sim->admit(sim_request());
  switch (admission_.kind) {
    case Admission::Kind::answer:
      return write(std::move(admission_.reply));
    case Admission::Kind::refuse:
      return reset();
    case Admission::Kind::process:
      break;
  }
  if (admission_.latency_ms <= 0) return run_admitted();
  timer_.expires_after(std::chrono::milliseconds(admission_.latency_ms));
  timer_.async_wait([self = shared_from_this()](error_code e) {
    if (e) return self->close();
    self->run_admitted();
  });
}

void Session::run_admitted() {
  Processed p = server_.sim->process(sim_request(), admission_, wall_clock_now());
  server_.apply(std::move(p.effects));
  switch (p.delivery) {
    case Delivery::answer:
      return write(std::move(p.reply));
    case Delivery::response_lost:
      return close();
    case Delivery::black_hole:
      return hold_open();
  }
}

void Session::write(SimReply reply) {
  response_ = {};
  response_.version(11);
  response_.result(reply.status);
  response_.set(http::field::content_type, reply.content_type);
  response_.keep_alive(request_.keep_alive());
  response_.body() = std::move(reply.body);
  response_.prepare_payload();
  stream_.expires_after(std::chrono::milliseconds(server_.options.idle_timeout_ms));
  http::async_write(stream_, response_, [self = shared_from_this()](error_code ec, size_t) {
    if (ec || !self->response_.keep_alive()) return self->close();
    self->read();
  });
}

// Black hole: reads and discards until the client gives up or the hold time is over (the
// stream's expiry covers every read from here on).
void Session::hold_open() {
  stream_.expires_after(std::chrono::milliseconds(server_.options.black_hole_hold_ms));
  keep_draining();
}

void Session::keep_draining() {
  stream_.async_read_some(asio::buffer(drain_), [self = shared_from_this()](error_code ec, size_t) {
    if (ec) return self->close();
    self->keep_draining();
  });
}

void Session::reset() {
  error_code ignored;
  stream_.socket().set_option(asio::socket_base::linger(true, 0), ignored);
  stream_.close();
}

void Session::close() {
  error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.close();
}

void ServerCore::apply(Effects effects) {
  for (OutgoingWebhook& w : effects.webhooks) webhooks->send(std::move(w));
  for (AsyncSettle& s : effects.settles) {
    auto timer = std::make_shared<asio::steady_timer>(ioc);
    timer->expires_after(std::chrono::milliseconds(s.delay_ms));
    timer->async_wait([this, timer, s = std::move(s)](error_code ec) {
      if (ec) return;
      apply(sim->settle(s.psp, s.reference, wall_clock_now()));
    });
  }
}

}  // namespace

struct SimServer::Impl {
  explicit Impl(size_t threads) : core(threads) {}

  Status listen();
  void accept();

  ServerCore core;
  SimServerOptions& options = core.options;
  asio::io_context& ioc = core.ioc;
  tcp::acceptor acceptor{asio::make_strand(core.ioc)};
  std::vector<std::thread> threads;
  uint16_t port = 0;
  bool shut_down = false;
};

Status SimServer::Impl::listen() {
  return net::listen_on(ioc, acceptor, options.host, options.port, &port);
}

void SimServer::Impl::accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      // Out of file descriptors and the like: the client sees a refused connection.
      spdlog::warn("accept: {}", ec.message());
    } else {
      std::make_shared<Session>(std::move(socket), core)->start();
    }
    accept();
  });
}

SimServer::SimServer() = default;

SimServer::~SimServer() { shutdown(); }

Status SimServer::start(SimServerOptions options, Simulator* sim, std::unique_ptr<SimServer>* out) {
  const size_t threads = std::max<size_t>(1, options.io_threads);
  std::unique_ptr<SimServer> server(new SimServer());
  server->impl_ = std::make_unique<Impl>(threads);
  Impl& impl = *server->impl_;
  impl.options = std::move(options);
  impl.core.sim = sim;
  impl.core.webhooks = std::make_unique<WebhookSender>(impl.ioc, sim->config());
  if (Status s = impl.listen(); !s.is_ok()) return s;
  impl.accept();
  for (size_t i = 0; i < threads; ++i) {
    impl.threads.emplace_back([&impl] { impl.ioc.run(); });
  }
  *out = std::move(server);
  return Status::ok();
}

uint16_t SimServer::port() const { return impl_->port; }

void SimServer::shutdown() {
  if (impl_ == nullptr || impl_->shut_down) return;
  impl_->shut_down = true;
  impl_->core.webhooks->stop();
  asio::dispatch(impl_->acceptor.get_executor(), [impl = impl_.get()] {
    error_code ignored;
    impl->acceptor.close(ignored);
  });
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  // The sender's I/O objects go before the io_context they belong to; handlers still queued
  // (and the sessions they own) are destroyed with the io_context.
  impl_->core.webhooks.reset();
}

}  // namespace keel::psp_sim
