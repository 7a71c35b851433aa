#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/status.h"

namespace keel::testing {

// Certificates made at run time for TLS tests (OpenSSL, P-256 keys, SHA-256 signatures): a CA
// and leaves it signs, written as PEM files into a directory the test owns. Nothing is kept in
// the repository and nothing ever expires under a test's feet.
struct TestCertificate {
  std::filesystem::path cert;  // PEM certificate
  std::filesystem::path key;   // PEM private key
};

class TestPki {
 public:
  // A new CA ("keel test CA <name>") in `dir`: dir/NAME-ca.pem and dir/NAME-ca.key.
  static Status create(const std::filesystem::path& dir, const std::string& name, TestPki* out);

  // A leaf certificate for `hosts` (DNS names or IP addresses, in its subject alternative
  // names), valid from not_before_s to not_after_s (Unix seconds), signed by this CA:
  // dir/NAME.pem and dir/NAME.key. `client`: for client authentication, else for a server.
  Status issue(const std::string& name, const std::vector<std::string>& hosts, int64_t not_before_s,
               int64_t not_after_s, TestCertificate* out, bool client = false) const;
  // Valid from an hour ago for `days` days.
  Status issue_now(const std::string& name, const std::vector<std::string>& hosts,
                   TestCertificate* out, int64_t days = 365, bool client = false) const;

  [[nodiscard]] const std::filesystem::path& ca_cert() const { return ca_.cert; }

 private:
  std::filesystem::path dir_;
  TestCertificate ca_;
};

}  // namespace keel::testing
