#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

// What TLS is configured with: plain structs and file checks, light to include (keeld's config,
// the servers' and clients' options; no Asio). net/tls.h makes contexts from them.
namespace keel::net {

struct TlsServerConfig {
  std::string cert_file;  // PEM: the certificate, then its chain
  std::string key_file;   // PEM: its private key
  // Mutual TLS: a client must present a certificate signed by a CA in this PEM file. Empty: no
  // client certificate is asked for.
  std::string client_ca_file;
};

struct TlsClientConfig {
  // PEM file of the CAs a server's certificate must chain to. Empty: the system's CAs.
  std::string ca_file;
  // A client certificate and key to present (mutual TLS). Both or neither.
  std::string cert_file;
  std::string key_file;
};

// One certificate of a PEM file: its subject and when it stops being valid.
struct CertificateInfo {
  std::string subject;
  int64_t not_after_s = 0;  // Unix seconds
};
// Every certificate in `pem_file`, in file order. Fails when the file cannot be read or holds
// no certificate.
Status read_certificates(const std::string& pem_file, std::vector<CertificateInfo>* out);

// Whether a client context can be made from `config` (its files exist and hold what they
// should): keeld checks a channel's TLS settings at start with it. net/tls.h makes the context.
Status check_client_config(const TlsClientConfig& config);

}  // namespace keel::net
