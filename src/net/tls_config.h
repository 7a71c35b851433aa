#pragma once

#include <string>

// What TLS is configured with: plain structs, light to include (keeld's config, the servers'
// and clients' options). net/tls.h makes contexts from them.
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

}  // namespace keel::net
