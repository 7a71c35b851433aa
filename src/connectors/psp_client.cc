#include "connectors/psp_client.h"
#include "core/ids.h"

#include <sys/socket.h>

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
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cerrno>
#include <chrono>
#include <deque>
#include <vector>

#include <spdlog/spdlog.h>

#include "connectors/psp_credentials.h"
#include "core/assert.h"
#include "net/tls.h"

namespace keel::connectors {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using beast::error_code;
using Clock = std::chrono::steady_clock;
using Strand = asio::strand<asio::any_io_executor>;

constexpr size_t kReferenceBytesMax = 128;
constexpr size_t kTraceparentBytesMax = 128;

bool valid_reference(std::string_view r) { return is_valid_reference(r, kReferenceBytesMax); }

bool valid_traceparent(std::string_view t) {
  if (t.empty() || t.size() > kTraceparentBytesMax) return false;
  return std::all_of(t.begin(), t.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-';
  });
}

enum class Phase : uint8_t { queued, connecting, writing, reading, done };

// One connection to the PSP: plain, or TLS over TCP (PspClientOptions::tls).
struct Connection {
  Connection(const Strand& strand, asio::ssl::context* tls) : stream(strand, tls) {}
  net::MaybeTlsStream stream;
  beast::flat_buffer buffer;
  std::optional<http::response_parser<http::string_body>> parser;
  bool reused = false;  // completed at least one exchange
  Clock::time_point idle_since;
};

struct Call {
  Call(const Strand& strand, RequestKind k) : kind(k), queue_timer(strand) {}
  RequestKind kind;
  std::string reference;
  http::request<http::string_body> request;
  PspCallback done;
  Clock::time_point started = Clock::now();
  Clock::time_point deadline;
  Phase phase = Phase::queued;
  bool resent = false;
  size_t key = 0;         // index in Impl::keys of the key this try sends
  size_t keys_tried = 0;  // keys that got a 401 so far
  bool key_chosen = false;
  asio::steady_timer queue_timer;
};

// Whether an idle pooled connection can take a request: the peer has not closed it and sent
// nothing unasked. A non-blocking peek; the connection's state is left as it was.
bool looks_alive(Connection& c) {
  if (!c.stream.lowest().socket().is_open() || c.buffer.size() != 0) return false;
  char byte = 0;
  const ssize_t n =
      ::recv(c.stream.lowest().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void close_connection(Connection& c) {
  error_code ignored;
  c.stream.lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
  c.stream.lowest().close();
}

}  // namespace

struct PspClient::Impl : std::enable_shared_from_this<PspClient::Impl> {
  Impl(asio::any_io_executor executor, PspClientOptions o)
      : strand(asio::make_strand(executor)), options(std::move(o)) {
    options.connections_max = std::max<size_t>(options.connections_max, 1);
    prefix = "/psp/" + options.psp + "/v1";
    keys.push_back(options.api_key);
    keys.insert(keys.end(), options.fallback_api_keys.begin(), options.fallback_api_keys.end());
    if (options.tls) {
      if (Status s = net::make_client_context(*options.tls, &tls); !s.is_ok()) {
        tls_problem = s.message();  // every call fails to connect, and says why in the log
      }
    }
  }

  Strand strand;
  PspClientOptions options;
  std::string prefix;
  std::shared_ptr<asio::ssl::context> tls;        // https
  std::string tls_problem;                        // why there is no context for https
  std::vector<std::shared_ptr<Connection>> open;  // every connection, busy or idle
  std::vector<std::shared_ptr<Connection>> idle;  // most recently used last
  std::deque<std::shared_ptr<Call>> queue;        // may hold finished calls (skipped)
  size_t queued_live = 0;
  bool shut_down = false;
  std::vector<std::string> keys;  // strand only; never empty
  size_t preferred_key = 0;       // sent first: the last that got past authentication
  std::atomic<uint64_t> connections_opened{0};
  std::atomic<uint64_t> resent{0};
  std::atomic<uint64_t> credential_fallbacks{0};

  void send(RequestKind kind, const std::string& reference, http::verb verb,
            const std::string& path, std::string body, std::string_view traceparent,
            PspCallback done);
  void submit(std::shared_ptr<Call> call);
  void start(std::shared_ptr<Call> call);
  void enqueue(std::shared_ptr<Call> call);
  void pump();
  std::shared_ptr<Connection> take_idle();
  void connect(std::shared_ptr<Call> call, std::shared_ptr<Connection> conn);
  void on_connect(std::shared_ptr<Call> call, std::shared_ptr<Connection> conn, error_code ec);
  void connect_failed(const std::shared_ptr<Call>& call, const std::shared_ptr<Connection>& conn,
                      TransportResult r);
  void write(std::shared_ptr<Call> call, std::shared_ptr<Connection> conn);
  void read(std::shared_ptr<Call> call, std::shared_ptr<Connection> conn);
  void on_read(std::shared_ptr<Call> call, std::shared_ptr<Connection> conn, error_code ec);
  bool try_next_key(const std::shared_ptr<Call>& call);
  void drop(const std::shared_ptr<Connection>& conn);
  void finish(const std::shared_ptr<Call>& call, const TransportSeen& seen);
  void shutdown();

  std::chrono::milliseconds remaining(const Call& call) const {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(call.deadline - Clock::now());
    return std::max(left, std::chrono::milliseconds(1));
  }
};

// Any thread: stamps the deadline and hands the call to the strand.
void PspClient::Impl::submit(std::shared_ptr<Call> call) {
  call->deadline = call->started + std::chrono::milliseconds(options.total_timeout_ms);
  asio::post(strand, [self = shared_from_this(), call = std::move(call)]() mutable {
    self->start(std::move(call));
  });
}

void PspClient::Impl::start(std::shared_ptr<Call> call) {
  if (shut_down || Clock::now() >= call->deadline) {
    return finish(call, {TransportResult::not_sent});
  }
  if (!valid_reference(call->reference)) return finish(call, {TransportResult::invalid_request});
  if (auto conn = take_idle()) return write(std::move(call), std::move(conn));
  if (open.size() < options.connections_max) {
    if (options.tls && !tls) {
      spdlog::warn("psp {}: {}", options.psp, tls_problem);
      return finish(call, {TransportResult::connect_failed});
    }
    auto conn = std::make_shared<Connection>(strand, tls.get());
    open.push_back(conn);
    return connect(std::move(call), std::move(conn));
  }
  enqueue(std::move(call));
}

void PspClient::Impl::enqueue(std::shared_ptr<Call> call) {
  if (queued_live >= options.queued_calls_max) return finish(call, {TransportResult::not_sent});
  ++queued_live;
  queue.push_back(call);
  call->queue_timer.expires_at(call->deadline);
  call->queue_timer.async_wait([self = shared_from_this(), call](error_code ec) {
    if (ec || call->phase != Phase::queued) return;
    --self->queued_live;
    self->finish(call, {TransportResult::not_sent});
  });
}

// A connection slot or an idle connection came free: start the oldest waiting call.
void PspClient::Impl::pump() {
  while (!queue.empty()) {
    std::shared_ptr<Call> call = std::move(queue.front());
    queue.pop_front();
    if (call->phase != Phase::queued) continue;  // timed out while waiting
    --queued_live;
    call->queue_timer.cancel();
    return start(std::move(call));
  }
}

std::shared_ptr<Connection> PspClient::Impl::take_idle() {
  while (!idle.empty()) {
    std::shared_ptr<Connection> conn = std::move(idle.back());
    idle.pop_back();
    const bool fresh =
        Clock::now() - conn->idle_since < std::chrono::milliseconds(options.idle_timeout_ms);
    if (fresh && looks_alive(*conn)) return conn;
    close_connection(*conn);
    std::erase(open, conn);
  }
  return nullptr;
}

void PspClient::Impl::connect(std::shared_ptr<Call> call, std::shared_ptr<Connection> conn) {
  call->phase = Phase::connecting;
  const auto connect_timeout =
      std::min(std::chrono::milliseconds(options.connect_timeout_ms), remaining(*call));
  error_code ec;
  const auto address = asio::ip::make_address(options.host, ec);
  if (!ec) {
    conn->stream.lowest().expires_after(connect_timeout);
    conn->stream.lowest().async_connect(
        tcp::endpoint(address, options.port),
        [self = shared_from_this(), call, conn](error_code e) { self->on_connect(call, conn, e); });
    return;
  }
  auto resolver = std::make_shared<tcp::resolver>(strand);
  resolver->async_resolve(options.host, std::to_string(options.port),
                          [self = shared_from_this(), call, conn, resolver, connect_timeout](
                              error_code e, const tcp::resolver::results_type& endpoints) {
                            if (e) return self->on_connect(call, conn, e);
                            conn->stream.lowest().expires_after(connect_timeout);
                            conn->stream.lowest().async_connect(
                                endpoints, [self, call, conn](error_code e2, const tcp::endpoint&) {
                                  self->on_connect(call, conn, e2);
                                });
                          });
}

void PspClient::Impl::on_connect(std::shared_ptr<Call> call, std::shared_ptr<Connection> conn,
                                 error_code ec) {
  if (ec) {
    TransportResult r = TransportResult::connect_failed;
    if (ec == asio::error::connection_refused) r = TransportResult::connect_refused;
    if (ec == beast::error::timeout) r = TransportResult::connect_timeout;
    return connect_failed(call, conn, r);
  }
  connections_opened.fetch_add(1, std::memory_order_relaxed);
  error_code ignored;
  conn->stream.lowest().socket().set_option(tcp::no_delay(true), ignored);
  if (conn->stream.tls() == nullptr) return write(std::move(call), std::move(conn));
  // https: the PSP's certificate must chain to the configured CAs and name options.host.
  if (Status s = net::set_client_host(conn->stream.tls()->native_handle(), options.host);
      !s.is_ok()) {
    spdlog::warn("psp {}: {}", options.psp, s.message());
    return connect_failed(call, conn, TransportResult::connect_failed);
  }
  conn->stream.lowest().expires_after(remaining(*call));
  conn->stream.tls()->async_handshake(asio::ssl::stream_base::client, [self = shared_from_this(),
                                                                       call, conn](error_code e) {
    if (!e) return self->write(call, conn);
    // Nothing was sent: the call fails like a refused connection, and the log says why.
    spdlog::warn("psp {}: tls handshake with {}:{}: {}", self->options.psp, self->options.host,
                 self->options.port, net::tls_error_text(e, conn->stream.tls()->native_handle()));
    self->connect_failed(call, conn,
                         e == beast::error::timeout ? TransportResult::connect_timeout
                                                    : TransportResult::connect_failed);
  });
}

void PspClient::Impl::connect_failed(const std::shared_ptr<Call>& call,
                                     const std::shared_ptr<Connection>& conn, TransportResult r) {
  drop(conn);
  finish(call, {r});
  pump();
}

void PspClient::Impl::write(std::shared_ptr<Call> call, std::shared_ptr<Connection> conn) {
  if (shut_down) {
    drop(conn);
    return finish(call, {TransportResult::not_sent});
  }
  call->phase = Phase::writing;
  if (!call->key_chosen || call->key >= keys.size()) {
    call->key = preferred_key < keys.size() ? preferred_key : 0;
    call->key_chosen = true;
  }
  call->request.set(http::field::authorization, "Bearer " + keys[call->key]);
  conn->stream.lowest().expires_after(remaining(*call));
  conn->stream.with([&](auto& stream) {
    http::async_write(
        stream, call->request,
        [self = shared_from_this(), call, conn](error_code ec, size_t written) {
          if (!ec) return self->read(call, conn);
          const bool nothing_sent = written == 0 && conn->reused;
          self->drop(conn);
          if (nothing_sent && !call->resent && !self->shut_down && ec != beast::error::timeout) {
            // A dead keep-alive connection: nothing reached the PSP.
            call->resent = true;
            self->resent.fetch_add(1, std::memory_order_relaxed);
            auto fresh = std::make_shared<Connection>(self->strand, self->tls.get());
            self->open.push_back(fresh);
            return self->connect(call, fresh);
          }
          self->finish(call, {TransportResult::send_failed});
          self->pump();
        });
  });
}

void PspClient::Impl::read(std::shared_ptr<Call> call, std::shared_ptr<Connection> conn) {
  call->phase = Phase::reading;
  conn->parser.emplace();
  conn->parser->body_limit(options.response_body_bytes_max);
  conn->stream.lowest().expires_after(remaining(*call));
  conn->stream.with([&](auto& stream) {
    http::async_read(stream, conn->buffer, *conn->parser,
                     [self = shared_from_this(), call, conn](error_code ec, size_t) {
                       self->on_read(call, conn, ec);
                     });
  });
}

void PspClient::Impl::on_read(std::shared_ptr<Call> call, std::shared_ptr<Connection> conn,
                              error_code ec) {
  if (ec) {
    drop(conn);
    TransportResult r = TransportResult::lost_after_send;
    if (ec == beast::error::timeout) {
      r = TransportResult::timeout_after_send;
    } else if (ec.category() == http::make_error_code(http::error::end_of_stream).category() &&
               ec != http::error::end_of_stream && ec != http::error::partial_message) {
      r = TransportResult::bad_http_after_send;
    }
    finish(call, {r});
    return pump();
  }
  http::response<http::string_body> response = conn->parser->release();
  conn->parser.reset();
  if (response.keep_alive() && !shut_down) {
    conn->stream.lowest().expires_never();
    conn->reused = true;
    conn->idle_since = Clock::now();
    idle.push_back(conn);
  } else {
    drop(conn);
  }
  if (response.result_int() == 401 && try_next_key(call)) return;
  if (response.result_int() != 401 && call->key != preferred_key && call->key < keys.size()) {
    preferred_key = call->key;
    spdlog::info("psp {}: the PSP takes {}; sending it first from now on", options.psp,
                 api_key_label(keys[preferred_key]));
  }
  finish(call, {TransportResult::response, response.result_int(), response.body()});
  pump();
}

// After a 401: sends the call again with the next key it has not tried, if there is one and
// time is left. The PSP did not authenticate the request, so it did not act on it.
bool PspClient::Impl::try_next_key(const std::shared_ptr<Call>& call) {
  ++call->keys_tried;
  if (call->keys_tried >= keys.size() || shut_down || Clock::now() >= call->deadline) return false;
  const size_t refused = call->key;
  call->key = (call->key + 1) % keys.size();
  credential_fallbacks.fetch_add(1, std::memory_order_relaxed);
  spdlog::warn("psp {}: 401 for {}; trying {}", options.psp, api_key_label(keys[refused]),
               api_key_label(keys[call->key]));
  call->phase = Phase::queued;
  start(call);
  pump();
  return true;
}

void PspClient::Impl::drop(const std::shared_ptr<Connection>& conn) {
  close_connection(*conn);
  std::erase(open, conn);
  std::erase(idle, conn);
}

void PspClient::Impl::finish(const std::shared_ptr<Call>& call, const TransportSeen& seen) {
  if (call->phase == Phase::done) return;
  call->phase = Phase::done;
  call->queue_timer.cancel();
  NormalizedAnswer answer = normalize_answer(call->kind, call->reference, seen);
  PspResult result;
  result.outcome = answer.outcome;
  result.error_code = std::move(answer.error_code);
  result.op = std::move(answer.op);
  result.latency_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - call->started).count();
  asio::post(strand, [done = std::move(call->done), result = std::move(result)]() mutable {
    if (done) done(std::move(result));
  });
}

void PspClient::Impl::shutdown() {
  shut_down = true;
  for (auto& call : queue) {
    if (call->phase != Phase::queued) continue;
    finish(call, {TransportResult::not_sent});
  }
  queue.clear();
  queued_live = 0;
  // Pending operations on these complete with operation_aborted and report their phase.
  const auto all = open;
  for (const auto& conn : all) close_connection(*conn);
  idle.clear();
}

namespace {

// The request every call sends; `body` empty: no body.
http::request<http::string_body> make_request(const PspClientOptions& o, http::verb verb,
                                              std::string target, std::string body,
                                              std::string_view traceparent) {
  http::request<http::string_body> req(verb, target, 11);
  req.set(http::field::host, o.host);
  req.set(http::field::accept, "application/json");  // Authorization: set by write()
  req.set(http::field::user_agent, "keel-connector");
  if (valid_traceparent(traceparent)) {
    req.set("traceparent", beast::string_view(traceparent.data(), traceparent.size()));
  }
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  req.keep_alive(true);
  req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

}  // namespace

// Any thread: builds the request and hands it to the strand.
void PspClient::Impl::send(RequestKind kind, const std::string& reference, http::verb verb,
                           const std::string& path, std::string body, std::string_view traceparent,
                           PspCallback done) {
  auto call = std::make_shared<Call>(strand, kind);
  call->reference = reference;
  // An invalid reference never reaches the path: start() answers invalid_request.
  const std::string target = prefix + (valid_reference(reference) ? path : "/");
  call->request = make_request(options, verb, target, std::move(body), traceparent);
  call->done = std::move(done);
  submit(std::move(call));
}

PspClient::PspClient(asio::any_io_executor executor, PspClientOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options))) {}

PspClient::~PspClient() {
  asio::post(impl_->strand, [impl = impl_] { impl->shutdown(); });
}

PspClient::Stats PspClient::stats() const {
  return {impl_->connections_opened.load(std::memory_order_relaxed),
          impl_->resent.load(std::memory_order_relaxed),
          impl_->credential_fallbacks.load(std::memory_order_relaxed)};
}

void PspClient::set_api_keys(std::vector<std::string> keys) {
  KEEL_ASSERT(!keys.empty());
  asio::post(impl_->strand, [impl = impl_, keys = std::move(keys)]() mutable {
    impl->keys = std::move(keys);
    impl->preferred_key = 0;
  });
}

void PspClient::authorize(const AuthorizeRequest& r, std::string_view traceparent,
                          PspCallback done) {
  json::object body = {{"reference", r.reference},
                       {"amount", r.amount_minor},
                       {"currency", r.currency},
                       {"capture", r.capture}};
  if (r.card) {
    json::object card = {{"number", r.card->number},
                         {"exp_month", r.card->exp_month},
                         {"exp_year", r.card->exp_year}};
    if (!r.card->cvc.empty()) card["cvc"] = r.card->cvc;
    body["card"] = std::move(card);
  } else {
    body["card_token"] = r.card_token;
  }
  std::string text = json::serialize(body);
  impl_->send(RequestKind::operation, r.reference, http::verb::post, "/authorizations",
              std::move(text), traceparent, std::move(done));
}

void PspClient::capture(const CaptureRequest& r, std::string_view traceparent, PspCallback done) {
  json::object body;
  if (r.amount_minor) body["amount"] = *r.amount_minor;
  impl_->send(RequestKind::operation, r.reference, http::verb::post,
              "/authorizations/" + r.reference + "/capture", json::serialize(body), traceparent,
              std::move(done));
}

void PspClient::void_authorization(std::string_view reference, std::string_view traceparent,
                                   PspCallback done) {
  const std::string ref(reference);
  impl_->send(RequestKind::operation, ref, http::verb::post, "/authorizations/" + ref + "/void", {},
              traceparent, std::move(done));
}

void PspClient::refund(const RefundRequest& r, std::string_view traceparent, PspCallback done) {
  const json::object body = {{"reference", r.reference},
                             {"payment_reference", r.payment_reference},
                             {"amount", r.amount_minor}};
  impl_->send(RequestKind::operation, r.reference, http::verb::post, "/refunds",
              json::serialize(body), traceparent, std::move(done));
}

void PspClient::payout(const PayoutRequest& r, std::string_view traceparent, PspCallback done) {
  const char* kind = r.destination_kind == PayoutDestinationKind::iban ? "iban" : "account";
  const json::object body = {{"reference", r.reference},
                             {"amount", r.amount_minor},
                             {"currency", r.currency},
                             {"destination", json::object{{kind, r.destination}}}};
  impl_->send(RequestKind::operation, r.reference, http::verb::post, "/payouts",
              json::serialize(body), traceparent, std::move(done));
}

void PspClient::topup(const TopupRequest& r, std::string_view traceparent, PspCallback done) {
  const char* kind = r.source_kind == TopupSourceKind::card_token ? "card_token" : "bank_account";
  const json::object body = {{"reference", r.reference},
                             {"amount", r.amount_minor},
                             {"currency", r.currency},
                             {kind, r.source}};
  impl_->send(RequestKind::operation, r.reference, http::verb::post, "/topups",
              json::serialize(body), traceparent, std::move(done));
}

void PspClient::get_operation(std::string_view reference, std::string_view traceparent,
                              PspCallback done) {
  const std::string ref(reference);
  impl_->send(RequestKind::status_query, ref, http::verb::get, "/operations/" + ref, {},
              traceparent, std::move(done));
}

}  // namespace keel::connectors
