#include "net/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>

namespace keel::net {
namespace {

namespace ssl = boost::asio::ssl;
using boost::system::error_code;

// What OpenSSL's error queue says, emptied; `fallback` when it says nothing.
std::string openssl_reason(const std::string& fallback) {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return fallback;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

Status file_error(std::string_view what, const std::string& file, const error_code& ec) {
  return Status::error("tls: " + std::string(what) + " " + file + ": " +
                       openssl_reason(ec.message()));
}

// The policy shared by both sides (tls.h).
Status apply_policy(ssl::context& ctx) {
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                  ssl::context::single_dh_use | SSL_OP_NO_RENEGOTIATION |
                  SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(ctx.native_handle(), kTls12Ciphers) != 1) {
    return Status::error("tls: " + openssl_reason("cannot set the protocol policy"));
  }
  return Status::ok();
}

bool is_ip_address(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

Status make_server_context(const TlsServerConfig& config, std::shared_ptr<ssl::context>* out) {
  if (config.cert_file.empty() || config.key_file.empty()) {
    return Status::error("tls: cert_file and key_file are both required");
  }
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  if (Status s = apply_policy(*ctx); !s.is_ok()) return s;
  error_code ec;
  ctx->use_certificate_chain_file(config.cert_file, ec);
  if (ec) return file_error("certificate", config.cert_file, ec);
  ctx->use_private_key_file(config.key_file, ssl::context::pem, ec);
  if (ec) return file_error("private key (of " + config.cert_file + ")", config.key_file, ec);
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return Status::error("tls: the private key " + config.key_file +
                         " does not match the certificate " + config.cert_file);
  }
  if (!config.client_ca_file.empty()) {
    ctx->load_verify_file(config.client_ca_file, ec);
    if (ec) return file_error("client CA file", config.client_ca_file, ec);
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  *out = std::move(ctx);
  return Status::ok();
}

Status make_client_context(const TlsClientConfig& config, std::shared_ptr<ssl::context>* out) {
  if (config.cert_file.empty() != config.key_file.empty()) {
    return Status::error("tls: a client certificate and its key go together");
  }
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  if (Status s = apply_policy(*ctx); !s.is_ok()) return s;
  error_code ec;
  if (config.ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
    if (ec) return Status::error("tls: the system's CAs: " + openssl_reason(ec.message()));
  } else {
    ctx->load_verify_file(config.ca_file, ec);
    if (ec) return file_error("CA file", config.ca_file, ec);
  }
  ctx->set_verify_mode(ssl::verify_peer);
  if (!config.cert_file.empty()) {
    ctx->use_certificate_chain_file(config.cert_file, ec);
    if (ec) return file_error("client certificate", config.cert_file, ec);
    ctx->use_private_key_file(config.key_file, ssl::context::pem, ec);
    if (ec) return file_error("client key", config.key_file, ec);
    if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
      return Status::error("tls: the client key does not match the client certificate");
    }
  }
  *out = std::move(ctx);
  return Status::ok();
}

Status check_client_config(const TlsClientConfig& config) {
  std::shared_ptr<ssl::context> ctx;
  return make_client_context(config, &ctx);
}

Status set_client_host(SSL* ssl, const std::string& host) {
  if (is_ip_address(host)) {
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) != 1) {
      return Status::error("tls: cannot verify the address " + host);
    }
    return Status::ok();
  }
  if (SSL_set_tlsext_host_name(ssl, host.c_str()) != 1 || SSL_set1_host(ssl, host.c_str()) != 1) {
    return Status::error("tls: cannot verify the host name " + host);
  }
  return Status::ok();
}

std::string tls_error_text(const error_code& ec, SSL* ssl) {
  std::string text = ec.message();
  if (ssl != nullptr) {
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      text += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
    }
  }
  return text;
}

Status read_certificates(const std::string& pem_file, std::vector<CertificateInfo>* out) {
  out->clear();
  BIO* bio = BIO_new_file(pem_file.c_str(), "r");
  if (bio == nullptr) {
    return Status::error("tls: cannot read " + pem_file + ": " + openssl_reason("open failed"));
  }
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    CertificateInfo info;
    char name[512];
    X509_NAME_oneline(X509_get_subject_name(cert), name, sizeof name);
    info.subject = name;
    std::tm tm{};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) info.not_after_s = timegm(&tm);
    out->push_back(std::move(info));
    X509_free(cert);
  }
  ERR_clear_error();  // the end of the file reads as an error
  BIO_free(bio);
  if (out->empty()) return Status::error("tls: " + pem_file + " holds no PEM certificate");
  return Status::ok();
}

}  // namespace keel::net
