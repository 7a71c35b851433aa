#include "testing/test_pki.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include <cstdio>
#include <ctime>
#include <memory>

namespace keel::testing {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(FILE* p) const { std::fclose(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Free>;
using Cert = std::unique_ptr<X509, Free>;

bool is_ip(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

Status write_pem(const std::filesystem::path& path, X509* cert, EVP_PKEY* key) {
  std::unique_ptr<FILE, Free> f(std::fopen(path.c_str(), "w"));
  if (!f) return Status::error("cannot write " + path.string());
  const bool ok = cert != nullptr ? PEM_write_X509(f.get(), cert) == 1
                                  : PEM_write_PrivateKey(f.get(), key, nullptr, nullptr, 0, nullptr,
                                                         nullptr) == 1;
  return ok ? Status::ok() : Status::error("cannot write PEM " + path.string());
}

Status read_pem(const TestCertificate& files, Cert* cert, Key* key) {
  std::unique_ptr<FILE, Free> c(std::fopen(files.cert.c_str(), "r"));
  std::unique_ptr<FILE, Free> k(std::fopen(files.key.c_str(), "r"));
  if (!c || !k) return Status::error("cannot read the CA files");
  cert->reset(PEM_read_X509(c.get(), nullptr, nullptr, nullptr));
  key->reset(PEM_read_PrivateKey(k.get(), nullptr, nullptr, nullptr));
  return *cert && *key ? Status::ok() : Status::error("cannot parse the CA files");
}

bool add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// A certificate for `cn` with `key`, valid from..to, issued by `issuer` (itself when null).
Cert make_cert(const std::string& cn, EVP_PKEY* key, int64_t from, int64_t to, X509* issuer,
               EVP_PKEY* issuer_key, long serial) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), static_cast<time_t>(from));
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(to));
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  (void)issuer_key;
  return cert;
}

}  // namespace

Status TestPki::create(const std::filesystem::path& dir, const std::string& name, TestPki* out) {
  Key key(EVP_EC_gen("P-256"));
  if (!key) return Status::error("cannot make a key");
  const int64_t now = std::time(nullptr);
  Cert cert = make_cert("keel test CA " + name, key.get(), now - 3600, now + 10 * 365 * 86400,
                        nullptr, key.get(), 1);
  if (!add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE") ||
      !add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !add_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash") ||
      X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    return Status::error("cannot sign the CA");
  }
  TestPki pki;
  pki.dir_ = dir;
  pki.ca_ = {dir / (name + "-ca.pem"), dir / (name + "-ca.key")};
  if (Status s = write_pem(pki.ca_.cert, cert.get(), nullptr); !s.is_ok()) return s;
  if (Status s = write_pem(pki.ca_.key, nullptr, key.get()); !s.is_ok()) return s;
  *out = std::move(pki);
  return Status::ok();
}

Status TestPki::issue(const std::string& name, const std::vector<std::string>& hosts,
                      int64_t not_before_s, int64_t not_after_s, TestCertificate* out,
                      bool client) const {
  Cert ca_cert;
  Key ca_key;
  if (Status s = read_pem(ca_, &ca_cert, &ca_key); !s.is_ok()) return s;
  Key key(EVP_EC_gen("P-256"));
  if (!key) return Status::error("cannot make a key");
  static long serial = 100;
  Cert cert = make_cert(hosts.empty() ? name : hosts.front(), key.get(), not_before_s, not_after_s,
                        ca_cert.get(), ca_key.get(), ++serial);
  std::string san;
  for (const std::string& h : hosts)
    san += (san.empty() ? "" : ",") + std::string(is_ip(h) ? "IP:" : "DNS:") + h;
  if ((!san.empty() && !add_extension(cert.get(), ca_cert.get(), NID_subject_alt_name, san)) ||
      !add_extension(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE") ||
      !add_extension(cert.get(), ca_cert.get(), NID_ext_key_usage,
                     client ? "clientAuth" : "serverAuth") ||
      X509_sign(cert.get(), ca_key.get(), EVP_sha256()) == 0) {
    return Status::error("cannot sign " + name);
  }
  const TestCertificate files{dir_ / (name + ".pem"), dir_ / (name + ".key")};
  if (Status s = write_pem(files.cert, cert.get(), nullptr); !s.is_ok()) return s;
  if (Status s = write_pem(files.key, nullptr, key.get()); !s.is_ok()) return s;
  *out = files;
  return Status::ok();
}

Status TestPki::issue_now(const std::string& name, const std::vector<std::string>& hosts,
                          TestCertificate* out, int64_t days, bool client) const {
  const int64_t now = std::time(nullptr);
  return issue(name, hosts, now - 3600, now + days * 86400, out, client);
}

}  // namespace keel::testing
