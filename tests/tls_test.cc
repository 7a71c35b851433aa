// keeld over HTTPS (docs/security.md "TLS"), end to end: certificates made by the test at run
// time (testing/test_pki.h), keeld started with [tls], clients that verify it. An expired
// certificate, one for another host and an old protocol version are refused with clear errors.

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <gtest/gtest.h>

#include <ctime>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "net/http_client.h"
#include "testing/keeld_process.h"
#include "testing/temp_dir.h"
#include "testing/test_pki.h"

namespace keel::testing {
namespace {

struct TlsFixture {
  TempDir dir;
  TestPki pki;
  TestCertificate server;

  TlsFixture() {
    EXPECT_TRUE(TestPki::create(dir.path(), "keel", &pki).is_ok());
    EXPECT_TRUE(pki.issue_now("server", {"localhost", "127.0.0.1"}, &server).is_ok());
  }
  // keeld's --config with [tls] for `cert`.
  std::string config(const TestCertificate& cert, const std::string& name = "keeld.toml") {
    const auto path = dir.path() / name;
    std::ofstream(path) << "[tls]\ncert_file = \"" << cert.cert.string() << "\"\nkey_file = \""
                        << cert.key.string() << "\"\n";
    return path.string();
  }
};

net::HttpClientOptions https_options(uint16_t port, const std::string& ca_file) {
  net::HttpClientOptions o;
  o.endpoint = {"127.0.0.1", port, true};
  o.tls.ca_file = ca_file;
  return o;
}

// A TLS handshake with 127.0.0.1:port from a client whose highest protocol is `max_version`
// (OpenSSL's own API: HttpClient only speaks keel's policy). True when it completes.
bool handshake_with_max_version(uint16_t port, int max_version, const std::string& ca_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_security_level(ctx, 0);  // let the client offer what the server must refuse
  SSL_CTX_set_min_proto_version(ctx, 0);
  SSL_CTX_set_max_proto_version(ctx, max_version);
  SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr);
  BIO* bio = BIO_new_ssl_connect(ctx);
  const std::string where = "127.0.0.1:" + std::to_string(port);
  BIO_set_conn_hostname(bio, where.c_str());
  const bool ok = BIO_do_handshake(bio) == 1;
  BIO_free_all(bio);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}

TEST(Tls, KeeldServesHttpsAndClientsVerifyItsCertificate) {
  TlsFixture f;
  std::unique_ptr<KeeldProcess> keeld;
  ASSERT_TRUE(
      KeeldProcess::start({.extra_args = {"--config", f.config(f.server)}}, &keeld).is_ok());
  ASSERT_TRUE(keeld->tls());
  EXPECT_TRUE(keeld->base_url().starts_with("https://"));

  net::HttpClientOptions o = https_options(keeld->port(), f.pki.ca_cert().string());
  {
    net::HttpClient client(o);
    net::HttpResponse res;
    ASSERT_TRUE(client.get("/healthz", &res).is_ok());
    EXPECT_EQ(res.status, 200u);
  }
  {
    use_admin_key(&o);  // signed, over TLS
    net::HttpClient client(o);
    net::HttpResponse res;
    ASSERT_TRUE(client.get("/metrics", &res).is_ok());
    ASSERT_EQ(res.status, 200u) << res.body;
    const std::string metric = "keel_tls_certificate_expiry_seconds{certificate=\"server\"} ";
    const size_t at = res.body.find(metric);
    ASSERT_NE(at, std::string::npos);
    const int64_t seconds = std::stoll(res.body.substr(at + metric.size()));
    EXPECT_GT(seconds, 364 * 86400);
    EXPECT_LE(seconds, 365 * 86400);
  }
  // Without keel's CA (the system's CAs only): the certificate is refused, and says why.
  {
    net::HttpClient client(https_options(keeld->port(), ""));
    net::HttpResponse res;
    const Status s = client.get("/healthz", &res);
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("certificate"), std::string::npos) << s.message();
  }
  // Plain HTTP to the TLS port gets no answer.
  {
    net::HttpClientOptions plain;
    plain.endpoint = {"127.0.0.1", keeld->port()};
    plain.io_timeout_ms = 5'000;
    net::HttpClient client(plain);
    net::HttpResponse res;
    EXPECT_FALSE(client.get("/healthz", &res).is_ok() && res.status == 200u);
  }
  // TLS 1.1 and older are refused; 1.2 is taken.
  EXPECT_FALSE(handshake_with_max_version(keeld->port(), TLS1_1_VERSION, f.pki.ca_cert()));
  EXPECT_TRUE(handshake_with_max_version(keeld->port(), TLS1_2_VERSION, f.pki.ca_cert()));
  // The CLI: --cacert.
  const ProgramResult r =
      run_program({build_path("src/cli/keel").string(), "--server", keeld->base_url(), "--cacert",
                   f.pki.ca_cert().string(), "--key", keeld->admin_key(), "status"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("last_seq"), std::string::npos) << r.out;
}

TEST(Tls, ACertificateForAnotherHostIsRefusedByTheClient) {
  TlsFixture f;
  TestCertificate other;
  ASSERT_TRUE(f.pki.issue_now("other", {"payments.example"}, &other).is_ok());
  std::unique_ptr<KeeldProcess> keeld;
  ASSERT_TRUE(KeeldProcess::start({.extra_args = {"--config", f.config(other)}}, &keeld).is_ok());
  net::HttpClient client(https_options(keeld->port(), f.pki.ca_cert().string()));
  net::HttpResponse res;
  const Status s = client.get("/healthz", &res);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("mismatch"), std::string::npos) << s.message();
}

TEST(Tls, KeeldRefusesToStartWithAnExpiredCertificateOrABadKey) {
  TlsFixture f;
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  TestCertificate expired;
  ASSERT_TRUE(f.pki.issue("expired", {"127.0.0.1"}, now - 90 * 86400, now - 60, &expired).is_ok());
  std::unique_ptr<KeeldProcess> keeld;
  TempDir data;
  ProgramResult r =
      run_program({build_path("src/keeld/keeld").string(), "--listen", "127.0.0.1:0", "--data",
                   (data.path() / "d").string(), "--config", f.config(expired)});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("expired at"), std::string::npos) << r.out << r.err;
  // A key that is not the certificate's.
  TestCertificate second;
  ASSERT_TRUE(f.pki.issue_now("second", {"127.0.0.1"}, &second).is_ok());
  const TestCertificate mixed{f.server.cert, second.key};
  r = run_program({build_path("src/keeld/keeld").string(), "--listen", "127.0.0.1:0", "--data",
                   (data.path() / "d").string(), "--config", f.config(mixed, "mixed.toml")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("mismatch"), std::string::npos) << r.out << r.err;
}

// The client side of an expired certificate: a test server presents one (keeld would refuse to
// start with it), and HttpClient names the reason.
TEST(Tls, AnExpiredServerCertificateIsRefusedByTheClient) {
  TlsFixture f;
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  TestCertificate expired;
  ASSERT_TRUE(f.pki.issue("expired", {"127.0.0.1"}, now - 90 * 86400, now - 60, &expired).is_ok());
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  ASSERT_EQ(SSL_CTX_use_certificate_file(ctx, expired.cert.c_str(), SSL_FILETYPE_PEM), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey_file(ctx, expired.key.c_str(), SSL_FILETYPE_PEM), 1);
  BIO* accept = BIO_new_accept("127.0.0.1:0");
  ASSERT_EQ(BIO_do_accept(accept), 1);  // binds and listens
  const uint16_t port =
      static_cast<uint16_t>(std::atoi(BIO_get_accept_port(accept)));  // the port picked
  std::thread server([&] {
    if (BIO_do_accept(accept) != 1) return;  // one connection
    BIO* conn = BIO_pop(accept);
    SSL* ssl = SSL_new(ctx);
    SSL_set_bio(ssl, conn, conn);
    (void)SSL_accept(ssl);  // the client aborts the handshake
    SSL_free(ssl);
  });
  net::HttpClient client(https_options(port, f.pki.ca_cert().string()));
  net::HttpResponse res;
  const Status s = client.get("/healthz", &res);
  server.join();
  BIO_free_all(accept);
  SSL_CTX_free(ctx);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("certificate has expired"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace keel::testing
