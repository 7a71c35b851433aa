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
#include "security/request_signing.h"
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

// The admin listener (docs/security.md): a second port with mutual TLS where admin and auditor
// keys are taken, and only there; the operators' routes do not exist on the main port.
TEST(Tls, TheAdminListenerTakesOperatorKeysOverMutualTlsOnly) {
  TlsFixture f;
  TestPki clients, rogue;
  ASSERT_TRUE(TestPki::create(f.dir.path(), "clients", &clients).is_ok());
  ASSERT_TRUE(TestPki::create(f.dir.path(), "rogue", &rogue).is_ok());
  TestCertificate operator_cert, rogue_cert;
  ASSERT_TRUE(clients.issue_now("operator", {"ops.example"}, &operator_cert, 30, true).is_ok());
  ASSERT_TRUE(rogue.issue_now("intruder", {"ops.example"}, &rogue_cert, 30, true).is_ok());
  const auto config = f.dir.path() / "admin.toml";
  std::ofstream(config) << "[admin_listener]\nlisten = \"127.0.0.1:0\"\ncert_file = \""
                        << f.server.cert.string() << "\"\nkey_file = \"" << f.server.key.string()
                        << "\"\nclient_ca_file = \"" << clients.ca_cert().string() << "\"\n";
  std::unique_ptr<KeeldProcess> keeld;
  ASSERT_TRUE(KeeldProcess::start({.extra_args = {"--config", config.string()}}, &keeld).is_ok());
  const uint16_t admin_port = keeld->admin_port();
  ASSERT_NE(admin_port, 0);
  const std::string admin = keeld->admin_key();
  const std::string merchant = keeld->demo_merchant_key();
  ASSERT_FALSE(admin.empty());

  struct Seen {
    Status status = Status::ok();
    unsigned http = 0;
    std::string body;
  };
  const auto call = [&](net::HttpClientOptions o, const std::string& key,
                        const std::string& target) {
    o.api_key = key;
    if (key == admin) o.sign = security::request_signer<net::HttpHeaders>(key);
    net::HttpClient client(o);
    net::HttpResponse res;
    Seen seen;
    seen.status = client.get(target, &res);
    seen.http = res.status;
    seen.body = res.body;
    return seen;
  };
  const net::HttpClientOptions main_port{{"127.0.0.1", keeld->port()}};
  net::HttpClientOptions admin_tls = https_options(admin_port, f.pki.ca_cert().string());
  admin_tls.tls.cert_file = operator_cert.cert.string();
  admin_tls.tls.key_file = operator_cert.key.string();

  // The main port: the operators' routes are unknown, admin keys are refused elsewhere, and a
  // merchant works as before.
  Seen s = call(main_port, admin, "/v1/admin/status");
  EXPECT_EQ(s.http, 404u) << s.body;
  EXPECT_NE(s.body.find("route_not_found"), std::string::npos) << s.body;
  EXPECT_EQ(call(main_port, merchant, "/v1/admin/status").http, 404u);
  s = call(main_port, admin, "/v1/merchants/mch_demo");
  EXPECT_EQ(s.http, 403u) << s.body;
  EXPECT_NE(s.body.find("admin listener only"), std::string::npos) << s.body;
  EXPECT_EQ(call(main_port, merchant, "/v1/merchants/mch_demo").http, 200u);
  EXPECT_EQ(call(main_port, "", "/healthz").http, 200u);

  // The admin port: an operator's certificate and an admin key.
  s = call(admin_tls, admin, "/v1/admin/status");
  EXPECT_TRUE(s.status.is_ok()) << s.status.message();
  EXPECT_EQ(s.http, 200u) << s.body;
  s = call(admin_tls, admin, "/metrics");
  EXPECT_NE(s.body.find("certificate=\"admin_server\""), std::string::npos) << s.body;
  EXPECT_NE(s.body.find("certificate=\"admin_client_ca\""), std::string::npos) << s.body;
  s = call(admin_tls, merchant, "/v1/merchants/mch_demo");
  EXPECT_EQ(s.http, 403u) << s.body;
  EXPECT_NE(s.body.find("admin and auditor keys only"), std::string::npos) << s.body;
  // Without a client certificate, or with one of another CA, no request gets through.
  net::HttpClientOptions no_cert = https_options(admin_port, f.pki.ca_cert().string());
  s = call(no_cert, admin, "/v1/admin/status");
  EXPECT_FALSE(s.status.is_ok() && s.http == 200u) << s.http << " " << s.body;
  EXPECT_EQ(s.http, 0u);
  net::HttpClientOptions intruder = no_cert;
  intruder.tls.cert_file = rogue_cert.cert.string();
  intruder.tls.key_file = rogue_cert.key.string();
  s = call(intruder, admin, "/v1/admin/status");
  EXPECT_EQ(s.http, 0u) << s.body;
  EXPECT_FALSE(s.status.is_ok());
  // Plain HTTP on the admin port gets no answer either.
  EXPECT_EQ(call({{"127.0.0.1", admin_port}}, admin, "/v1/admin/status").http, 0u);
}

TEST(Tls, AnAdminListenerNeedsEveryKey) {
  TlsFixture f;
  const auto config = f.dir.path() / "partial.toml";
  std::ofstream(config) << "[admin_listener]\nlisten = \"127.0.0.1:0\"\ncert_file = \""
                        << f.server.cert.string() << "\"\nkey_file = \"" << f.server.key.string()
                        << "\"\n";  // no client_ca_file: it would be the main port again
  TempDir data;
  const ProgramResult r =
      run_program({build_path("src/keeld/keeld").string(), "--listen", "127.0.0.1:0", "--data",
                   (data.path() / "d").string(), "--config", config.string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("client_ca_file are all required"), std::string::npos)
      << r.out << r.err;
}

}  // namespace
}  // namespace keel::testing
