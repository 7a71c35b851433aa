#include "net/http_client.h"

#include <strings.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <chrono>

#include "core/http_url.h"
#include "net/tls.h"

namespace keel::net {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using beast::error_code;

}  // namespace

std::string_view HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  }
  return {};
}

std::optional<HttpEndpoint> parse_http_url(std::string_view url) {
  const auto u = parse_http_url_with_target(
      url, {.ip_literals = true, .path = false, .port_required = false, .https = true});
  if (!u) return std::nullopt;
  return HttpEndpoint{.host = u->host, .port = u->port, .tls = u->tls};  // IPv6 without brackets
}

struct HttpClient::Impl {
  HttpClientOptions options;
  asio::io_context ioc;
  std::shared_ptr<asio::ssl::context> tls_context;  // https: made at the first connect
  std::optional<MaybeTlsStream> stream;             // one per connection
  beast::flat_buffer buffer;
  bool connected = false;

  beast::tcp_stream& lowest() { return stream->lowest(); }

  // Runs the pending asynchronous operation to completion; the stream's timer bounds it.
  void run() {
    ioc.restart();
    ioc.run();
  }

  std::string where() const {
    return (options.endpoint.tls ? "https://" : "http://") + options.endpoint.host + ":" +
           std::to_string(options.endpoint.port);
  }
  Status handshake();

  Status connect();
  Status exchange(const http::request<http::string_body>& req, HttpResponse* out,
                  bool* nothing_read);
};

Status HttpClient::Impl::connect() {
  error_code ec;
  tcp::resolver resolver(ioc);
  const auto endpoints =
      resolver.resolve(options.endpoint.host, std::to_string(options.endpoint.port), ec);
  if (ec) return Status::error("resolve " + where() + ": " + ec.message());
  if (options.endpoint.tls && !tls_context) {
    if (Status s = make_client_context(options.tls, &tls_context); !s.is_ok()) return s;
  }
  stream.emplace(ioc.get_executor(), options.endpoint.tls ? tls_context.get() : nullptr);
  lowest().expires_after(std::chrono::milliseconds(options.connect_timeout_ms));
  lowest().async_connect(endpoints, [&](error_code e, const tcp::endpoint&) { ec = e; });
  run();
  if (ec) {
    lowest().close();
    return Status::error("connect " + where() + ": " + ec.message());
  }
  lowest().socket().set_option(tcp::no_delay(true), ec);
  if (stream->tls() != nullptr) {
    if (Status s = handshake(); !s.is_ok()) {
      lowest().close();
      return s;
    }
  }
  buffer.clear();
  connected = true;
  return Status::ok();
}

Status HttpClient::Impl::handshake() {
  MaybeTlsStream::Tls& tls = *stream->tls();
  if (Status s = set_client_host(tls.native_handle(), options.endpoint.host); !s.is_ok()) {
    return s;
  }
  error_code ec;
  lowest().expires_after(std::chrono::milliseconds(options.connect_timeout_ms));
  tls.async_handshake(asio::ssl::stream_base::client, [&](error_code e) { ec = e; });
  run();
  if (ec) {
    return Status::error("tls handshake with " + where() + ": " +
                         tls_error_text(ec, tls.native_handle()));
  }
  return Status::ok();
}

Status HttpClient::Impl::exchange(const http::request<http::string_body>& req, HttpResponse* out,
                                  bool* nothing_read) {
  *nothing_read = true;
  error_code ec;
  lowest().expires_after(std::chrono::milliseconds(options.io_timeout_ms));
  stream->with([&](auto& s) { http::async_write(s, req, [&](error_code e, size_t) { ec = e; }); });
  run();
  // A write can fail with a reset while the server already answered (413 before the whole
  // body was read); the answer is still worth reading.
  http::response_parser<http::string_body> parser;
  parser.body_limit(options.response_body_bytes_max);
  error_code read_ec;
  stream->with([&](auto& s) {
    http::async_read(s, buffer, parser, [&](error_code e, size_t) { read_ec = e; });
  });
  run();
  if (read_ec) {
    *nothing_read = parser.got_some() == false;
    connected = false;
    lowest().close();
    const error_code& shown = ec ? ec : read_ec;
    return Status::error("request to " + where() + ": " + shown.message());
  }
  auto& res = parser.get();
  out->status = res.result_int();
  out->headers.clear();
  for (const auto& field : res) {
    out->headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  out->body = std::move(res.body());
  if (!res.keep_alive()) {
    connected = false;
    lowest().close();
  }
  return Status::ok();
}

HttpClient::HttpClient(HttpClientOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
}

HttpClient::~HttpClient() { close(); }

void HttpClient::close() {
  if (!impl_->connected) return;
  error_code ec;
  impl_->lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
  impl_->lowest().close();
  impl_->connected = false;
}

Status HttpClient::request(std::string_view method, std::string_view target, std::string_view body,
                           const HttpHeaders& headers, HttpResponse* response) {
  http::request<http::string_body> req;
  req.method_string(beast::string_view(method.data(), method.size()));
  req.target(beast::string_view(target.data(), target.size()));
  req.version(11);
  req.set(http::field::host, impl_->options.endpoint.host);
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  if (!impl_->options.api_key.empty()) {
    req.set(http::field::authorization, "Bearer " + impl_->options.api_key);
  }
  for (const auto& [name, value] : headers) req.set(name, value);
  if (impl_->options.sign) {
    HttpHeaders signed_headers;
    impl_->options.sign(method, target, body, &signed_headers);
    for (const auto& [name, value] : signed_headers) req.set(name, value);
  }
  req.body() = std::string(body);
  req.prepare_payload();
  for (int attempt = 0;; ++attempt) {
    const bool reused = impl_->connected;
    if (!impl_->connected) {
      if (Status s = impl_->connect(); !s.is_ok()) return s;
    }
    bool nothing_read = false;
    Status s = impl_->exchange(req, response, &nothing_read);
    if (s.is_ok() || !reused || !nothing_read || attempt > 0) return s;
  }
}

}  // namespace keel::net
