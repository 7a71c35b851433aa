#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "net/tls_config.h"

// TLS for keel's servers and clients (OpenSSL through Asio): one policy, in one place. Heavy
// header: include it only from .cc files of api/, net/, connectors/ and the programs.
namespace keel::net {

// The policy, the same everywhere: TLS 1.2 at least (1.3 preferred), TLS 1.2 only with ECDHE
// key exchange and AEAD ciphers (AES-GCM, ChaCha20-Poly1305), no compression, no renegotiation.
inline constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// A context for serving. Fails with the file and OpenSSL's reason (unreadable, not PEM, a key
// that does not match the certificate, ...).
Status make_server_context(const TlsServerConfig& config,
                           std::shared_ptr<boost::asio::ssl::context>* out);
// A context for connecting: the server's certificate is verified against the CAs (peer
// verification always on); the host name is checked per connection (set_client_host).
Status make_client_context(const TlsClientConfig& config,
                           std::shared_ptr<boost::asio::ssl::context>* out);
// On a client stream's SSL handle before its handshake: sends `host` as SNI (not for an IP
// address) and makes the handshake fail unless the certificate is for `host` (a DNS name or an
// IP address in its subject alternative names).
Status set_client_host(SSL* ssl, const std::string& host);

// A connection's stream: plain TCP, or TLS over TCP when given a context. lowest() is the TCP
// stream under it all (timeouts, connect, close); with(f) runs f on the stream HTTP goes over.
class MaybeTlsStream {
 public:
  using Tls = boost::beast::ssl_stream<boost::beast::tcp_stream>;

  // A stream to connect (`Source`: an executor), or over an accepted socket; TLS when `tls`.
  template <class Source>
  MaybeTlsStream(Source&& source, boost::asio::ssl::context* tls) {
    if (tls != nullptr) {
      tls_.emplace(std::forward<Source>(source), *tls);
    } else {
      plain_.emplace(std::forward<Source>(source));
    }
  }

  boost::beast::tcp_stream& lowest() {
    return tls_ ? boost::beast::get_lowest_layer(*tls_) : *plain_;
  }
  [[nodiscard]] Tls* tls() { return tls_ ? &*tls_ : nullptr; }
  template <class F>
  void with(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(*plain_);
    }
  }

 private:
  std::optional<boost::beast::tcp_stream> plain_;
  std::optional<Tls> tls_;
};

// An error of a TLS operation in words, with OpenSSL's verification reason when the
// certificate was refused ("certificate verify failed: certificate has expired").
[[nodiscard]] std::string tls_error_text(const boost::system::error_code& ec, SSL* ssl = nullptr);

}  // namespace keel::net
