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
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/assert.h"
#include "core/time.h"
#include "net/tls.h"
#include "psp_sim/codec.h"
#include "psp_sim/webhook_sender.h"

namespace keel::psp_sim {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using beast::error_code;

namespace json = boost::json;
std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

// A PSP's own listener that could not be reopened tries again after this long.
constexpr int64_t kReopenRetryMs = 100;

}  // namespace

namespace {

class Listener;

// What the sessions, listeners and timers of one server share; outlives every handler that
// runs.
struct ServerCore {
  explicit ServerCore(size_t threads) : ioc(static_cast<int>(threads)) {}
  ~ServerCore();
  // Starts the timers and deliveries of `effects`. Any thread.
  void apply(Effects effects);
  // Makes PSP `psp`'s own listener follow the Simulator's plan after an admin request changed
  // it; replaces `reply` with a 503 if the listener could not be reopened. Any thread.
  void follow_plan(size_t psp, SimReply* reply);
  // The simulator's time: the movable clock's with --movable-clock, else the system's.
  [[nodiscard]] Timestamp now() const {
    return options.clock != nullptr ? options.clock->now() : wall_clock_now();
  }
  // GET /admin/clock and POST /admin/clock/advance, when `target` is one of them.
  [[nodiscard]] std::optional<SimReply> clock_route(std::string_view method,
                                                    std::string_view target, std::string_view body);

  SimServerOptions options;
  Simulator* sim = nullptr;
  std::shared_ptr<asio::ssl::context> tls;  // https (--tls-cert): every listener serves TLS
  asio::io_context ioc;
  std::unique_ptr<WebhookSender> webhooks;
  // Indexed like sim->config().psps; null for a PSP without a listener of its own. Filled at
  // start-up, before the I/O threads run.
  std::vector<std::unique_ptr<Listener>> psp_listeners;
};

// One connection: read a request, admit, wait, process, answer (or not), repeat.
class Session : public std::enable_shared_from_this<Session> {
 public:
  // `listener_psp`: the PSP whose own listener accepted the connection; nullopt: the shared one.
  Session(tcp::socket socket, ServerCore& server, std::optional<size_t> listener_psp)
      : stream_(std::move(socket), server.tls.get()),
        server_(server),
        listener_psp_(listener_psp),
        timer_(stream_.lowest().get_executor()) {}

  void start() {
    asio::dispatch(stream().get_executor(), [self = shared_from_this()] {
      if (self->stream_.tls() == nullptr) return self->read();
      self->stream().expires_after(
          std::chrono::milliseconds(self->server_.options.idle_timeout_ms));
      self->stream_.tls()->async_handshake(asio::ssl::stream_base::server, [self](error_code ec) {
        if (ec) return self->close();
        self->read();
      });
    });
  }

  // The listener went down: close now if waiting for a request (or black-holed), else after
  // answering the request in flight. Any thread.
  void stop_serving() {
    asio::post(stream().get_executor(), [self = shared_from_this()] {
      self->stop_serving_ = true;
      if (self->idle_) self->close();
    });
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
                      sv(request_[http::field::authorization]), request_.body(), listener_psp_};
  }

  beast::tcp_stream& stream() { return stream_.lowest(); }
  template <class F>
  void with(F&& f) {
    stream_.with(std::forward<F>(f));
  }

  net::MaybeTlsStream stream_;
  ServerCore& server_;
  const std::optional<size_t> listener_psp_;
  asio::steady_timer timer_;
  bool idle_ = false;          // waiting for a request, or black-holed
  bool stop_serving_ = false;  // its listener went down
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  Admission admission_;
  std::array<char, 4096> drain_{};
};

void Session::read() {
  if (stop_serving_) return close();
  idle_ = true;
  parser_.emplace();
  parser_->body_limit(server_.options.body_bytes_max);
  stream().expires_after(std::chrono::milliseconds(server_.options.idle_timeout_ms));
  with([&](auto& s) {
    http::async_read(s, buffer_, *parser_,
                     [self = shared_from_this()](error_code ec, size_t) { self->on_read(ec); });
  });
}

void Session::on_read(error_code ec) {
  idle_ = false;
  if (ec) return close();  // end of stream, timeout, malformed: nothing to answer
  stream().expires_never();
  request_ = parser_->release();
  if (!listener_psp_) {
    if (auto reply = server_.clock_route(sv(request_.method_string()), sv(request_.target()),
                                         request_.body())) {
      return write(std::move(*reply));
    }
  }
  admission_ = server_.sim->admit(sim_request(), server_.now());
  switch (admission_.kind) {
    case Admission::Kind::answer:
      if (admission_.listeners_changed) server_.follow_plan(admission_.psp, &admission_.reply);
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
  Processed p = server_.sim->process(sim_request(), admission_, server_.now());
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
  response_.keep_alive(request_.keep_alive() && !stop_serving_);
  response_.body() = std::move(reply.body);
  response_.prepare_payload();
  stream().expires_after(std::chrono::milliseconds(server_.options.idle_timeout_ms));
  with([&](auto& s) {
    http::async_write(s, response_, [self = shared_from_this()](error_code ec, size_t) {
      if (ec || !self->response_.keep_alive()) return self->close();
      self->read();
    });
  });
}

// Black hole: reads and discards until the client gives up or the hold time is over (the
// stream's expiry covers every read from here on).
void Session::hold_open() {
  idle_ = true;
  stream().expires_after(std::chrono::milliseconds(server_.options.black_hole_hold_ms));
  keep_draining();
}

void Session::keep_draining() {
  with([&](auto& s) {
    s.async_read_some(asio::buffer(drain_), [self = shared_from_this()](error_code ec, size_t) {
      if (ec) return self->close();
      self->keep_draining();
    });
  });
}

void Session::reset() {
  error_code ignored;
  stream().socket().set_option(asio::socket_base::linger(true, 0), ignored);
  stream().close();
}

void Session::close() {
  error_code ignored;
  stream().socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream().close();
}

// One listening socket: the shared one (every PSP, /admin) or a PSP's own (that PSP only, and
// it follows Simulator::listener_plan(); see SimServer).
//
// Thread: any thread; mu_ guards every member, the acceptor and the timer are used under it
// only. Lock order: mu_, then the Simulator's locks (it never calls back).
class Listener {
 public:
  Listener(ServerCore& core, std::optional<size_t> psp, std::string host)
      : core_(core), psp_(psp), host_(std::move(host)), acceptor_(core.ioc), timer_(core.ioc) {}

  // Binds `port` (0: a free one) and starts accepting. Start-up only.
  Status open(uint16_t port) {
    std::lock_guard lock(mu_);
    port_ = port;
    return open_locked();
  }
  // A PSP's own listener: opens or closes it as the plan says at the wall clock's now, and arms
  // the timer for the plan's next change (or a retry). The error of a failed reopen.
  Status follow_plan();
  // Closes the acceptor and stops the timer for good (shutdown).
  void stop() {
    std::lock_guard lock(mu_);
    stopped_ = true;
    error_code ignored;
    acceptor_.close(ignored);
    timer_.cancel();
    listening_ = false;
  }
  [[nodiscard]] uint16_t port() const {
    std::lock_guard lock(mu_);
    return port_;
  }

 private:
  Status open_locked();
  void close_locked();
  void accept_locked();
  void on_accept(uint64_t generation, error_code ec, tcp::socket socket);
  void arm_timer_locked(std::optional<int64_t> delay_ms);

  ServerCore& core_;
  const std::optional<size_t> psp_;
  const std::string host_;
  mutable std::mutex mu_;
  tcp::acceptor acceptor_;
  asio::steady_timer timer_;
  uint16_t port_ = 0;  // the bound port once open; a reopen binds it again
  bool listening_ = false;
  bool stopped_ = false;
  bool reopen_failing_ = false;  // warn once per run of failures
  // Bumped at each open and close: an accept handler of an earlier acceptor drops its socket.
  uint64_t generation_ = 0;
  // A PSP's own listener: the connections it accepted (closed when it goes down), pruned of
  // the finished ones when it reaches sessions_prune_at_.
  std::vector<std::weak_ptr<Session>> sessions_;
  size_t sessions_prune_at_ = 64;
};

Status Listener::open_locked() {
  const uint16_t wanted = port_;
  if (Status s = net::listen_on(core_.ioc, acceptor_, host_, wanted, &port_); !s.is_ok()) {
    error_code ignored;
    acceptor_.close(ignored);
    port_ = wanted;
    return s;
  }
  listening_ = true;
  ++generation_;
  accept_locked();
  return Status::ok();
}

void Listener::close_locked() {
  error_code ignored;
  acceptor_.close(ignored);
  listening_ = false;
  ++generation_;
  for (const std::weak_ptr<Session>& weak : sessions_) {
    if (const auto session = weak.lock()) session->stop_serving();
  }
  sessions_.clear();
}

void Listener::accept_locked() {
  acceptor_.async_accept(asio::make_strand(core_.ioc),
                         [this, generation = generation_](error_code ec, tcp::socket socket) {
                           on_accept(generation, ec, std::move(socket));
                         });
}

void Listener::on_accept(uint64_t generation, error_code ec, tcp::socket socket) {
  std::shared_ptr<Session> session;
  {
    std::lock_guard lock(mu_);
    // Closed since (down or stopped): the socket, if any, is closed as it goes.
    if (generation != generation_ || !listening_ || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of file descriptors and the like: the client sees a refused connection.
      spdlog::warn("accept on port {}: {}", port_, ec.message());
    } else {
      session = std::make_shared<Session>(std::move(socket), core_, psp_);
      if (psp_) {
        if (sessions_.size() >= sessions_prune_at_) {
          std::erase_if(sessions_, [](const std::weak_ptr<Session>& w) { return w.expired(); });
          sessions_prune_at_ = std::max<size_t>(64, 2 * sessions_.size());
        }
        sessions_.push_back(session);
      }
    }
    accept_locked();
  }
  if (session) session->start();
}

Status Listener::follow_plan() {
  KEEL_ASSERT(psp_.has_value());
  std::lock_guard lock(mu_);
  if (stopped_) return Status::ok();
  const std::string& name = core_.sim->config().psps[*psp_].name;
  const Timestamp now = core_.now();
  const ListenerPlan plan = core_.sim->listener_plan(*psp_, now);
  Status status;
  if (plan.accepting && !listening_) {
    status = open_locked();
    if (status.is_ok()) {
      spdlog::info("psp {}: listener up again on port {}", name, port_);
    } else if (!reopen_failing_) {
      spdlog::warn("psp {}: listener cannot reopen, retrying every {} ms: {}", name, kReopenRetryMs,
                   status.message());
    }
    reopen_failing_ = !status.is_ok();
  } else if (!plan.accepting) {
    if (listening_) {
      spdlog::info("psp {}: listener down (port {})", name, port_);
      close_locked();
    }
    reopen_failing_ = false;
  }
  core_.sim->note_listener(*psp_, port_, listening_);
  std::optional<int64_t> delay_ms;
  if (!status.is_ok()) delay_ms = kReopenRetryMs;
  if (plan.next_change_at) {
    constexpr int64_t kNanosPerMs = kNanosPerSecond / 1000;
    const int64_t until_ms =
        std::max<int64_t>(1, (*plan.next_change_at - now + kNanosPerMs - 1) / kNanosPerMs);
    delay_ms = std::min(delay_ms.value_or(until_ms), until_ms);
  }
  arm_timer_locked(delay_ms);
  return status;
}

void Listener::arm_timer_locked(std::optional<int64_t> delay_ms) {
  if (!delay_ms) {
    timer_.cancel();
    return;
  }
  timer_.expires_after(std::chrono::milliseconds(*delay_ms));
  timer_.async_wait([this](error_code ec) {
    if (ec) return;  // re-armed or stopped
    (void)follow_plan();
  });
}

ServerCore::~ServerCore() = default;

void ServerCore::follow_plan(size_t psp, SimReply* reply) {
  KEEL_ASSERT(psp < psp_listeners.size() && psp_listeners[psp] != nullptr);
  if (Status s = psp_listeners[psp]->follow_plan(); !s.is_ok()) {
    const std::string message = s.message() + " (the change is kept; the listener retries every " +
                                std::to_string(kReopenRetryMs) + " ms)";
    *reply = SimReply{503, error_body("listen_failed", message)};
  }
}

std::optional<SimReply> ServerCore::clock_route(std::string_view method, std::string_view target,
                                                std::string_view body) {
  const bool show = method == "GET" && target == "/admin/clock";
  const bool advance = method == "POST" && target == "/admin/clock/advance";
  if (!show && !advance) return std::nullopt;
  MovableClock* clock = options.clock;
  if (clock == nullptr) {
    return SimReply{404, error_body("not_found", "the clock moves only with --movable-clock")};
  }
  if (advance) {
    json::error_code ec;
    const json::value v = json::parse(body, ec);
    const json::value* seconds =
        !ec && v.is_object() ? v.get_object().if_contains("seconds") : nullptr;
    if (seconds == nullptr || !seconds->is_int64() || v.get_object().size() != 1) {
      return SimReply{400, error_body("invalid_request", "the body is {\"seconds\": N}")};
    }
    const int64_t n = seconds->get_int64();
    if (n < 1 || n > MovableClock::kAdvanceMaxNs / kNanosPerSecond) {
      return SimReply{400, error_body("invalid_request", "seconds: 1 to 31622400 (366 days)")};
    }
    if (Status s = clock->advance(n * kNanosPerSecond); !s.is_ok()) {
      return SimReply{400, error_body("invalid_request", s.message())};
    }
  }
  return SimReply{
      200, json::serialize(json::object{{"now", format_rfc3339(clock->now())},
                                        {"offset_seconds", clock->offset_ns() / kNanosPerSecond}})};
}

void ServerCore::apply(Effects effects) {
  for (OutgoingWebhook& w : effects.webhooks) webhooks->send(std::move(w));
  for (AsyncSettle& s : effects.settles) {
    auto timer = std::make_shared<asio::steady_timer>(ioc);
    timer->expires_after(std::chrono::milliseconds(s.delay_ms));
    timer->async_wait([this, timer, s = std::move(s)](error_code ec) {
      if (ec) return;
      apply(sim->settle(s.psp, s.reference, now()));
    });
  }
}

}  // namespace

struct SimServer::Impl {
  explicit Impl(size_t threads) : core(threads) {}

  // Opens the shared listener and every PSP's own, and applies the PSPs' plans.
  Status listen(Simulator* sim);

  ServerCore core;
  SimServerOptions& options = core.options;
  asio::io_context& ioc = core.ioc;
  std::unique_ptr<Listener> shared;
  std::vector<std::thread> threads;
  bool shut_down = false;
};

Status SimServer::Impl::listen(Simulator* sim) {
  shared = std::make_unique<Listener>(core, std::nullopt, options.host);
  if (Status s = shared->open(options.port); !s.is_ok()) return s;
  const std::vector<PspConfig>& psps = sim->config().psps;
  core.psp_listeners.resize(psps.size());
  for (size_t i = 0; i < psps.size(); ++i) {
    if (!psps[i].listen) continue;
    auto listener = std::make_unique<Listener>(core, i, psps[i].listen->host);
    if (Status s = listener->open(psps[i].listen->port); !s.is_ok()) {
      return Status::error("psps." + psps[i].name + ".listen: " + s.message());
    }
    // A schedule in the config may want it down from the start.
    if (Status s = listener->follow_plan(); !s.is_ok()) return s;
    core.psp_listeners[i] = std::move(listener);
  }
  return Status::ok();
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
  if (impl.core.options.tls) {
    if (Status s = net::make_server_context(*impl.core.options.tls, &impl.core.tls); !s.is_ok()) {
      return s;
    }
  }
  WebhookSenderOptions webhook_options;
  webhook_options.now = [core = &impl.core] { return core->now(); };
  impl.core.webhooks = std::make_unique<WebhookSender>(impl.ioc, sim->config(), webhook_options);
  if (Status s = impl.listen(sim); !s.is_ok()) return s;
  for (size_t i = 0; i < threads; ++i) {
    impl.threads.emplace_back([&impl] { impl.ioc.run(); });
  }
  *out = std::move(server);
  return Status::ok();
}

uint16_t SimServer::port() const { return impl_->shared->port(); }

uint16_t SimServer::psp_port(size_t psp) const {
  const auto& listeners = impl_->core.psp_listeners;
  return psp < listeners.size() && listeners[psp] != nullptr ? listeners[psp]->port() : 0;
}

void SimServer::shutdown() {
  if (impl_ == nullptr || impl_->shut_down) return;
  impl_->shut_down = true;
  impl_->core.webhooks->stop();
  if (impl_->shared != nullptr) impl_->shared->stop();
  for (const auto& listener : impl_->core.psp_listeners) {
    if (listener != nullptr) listener->stop();
  }
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  // The sender's I/O objects go before the io_context they belong to; handlers still queued
  // (and the sessions they own) are destroyed with the io_context.
  impl_->core.webhooks.reset();
}

}  // namespace keel::psp_sim
