#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "net/tls_config.h"

namespace keel::keeld {

// How far ahead keeld warns of a certificate's expiry.
inline constexpr int64_t kCertificateWarnS = 30 * 86400;

// Reads the certificates keeld serves with and the client CAs it trusts, at start. Refuses a
// server certificate that has expired (every client would refuse it: better
// a start that fails, loudly, than a port that answers nothing); warns in the log of any
// certificate that expires within 30 days. `out` gets each certificate's name (`prefix` then
// "server", "client_ca", "client_ca_2", ...: prefix "admin_" for the admin listener's) and
// expiry (Unix seconds) for /metrics, appended.
Status watch_certificates(const net::TlsServerConfig& tls, std::string_view prefix,
                          std::vector<std::pair<std::string, int64_t>>* out,
                          int64_t now_s = static_cast<int64_t>(std::time(nullptr)));

// Adds the CAs keeld trusts as a client: `ca_files` holds (label, ca_file) pairs, e.g.
// ("psp_ca:cardco", an https channel's ca_file) or ("webhook_ca", [webhooks] ca_file); each
// certificate becomes LABEL ("LABEL:2", ... for more), with the same 30-day warning. A file that
// cannot be read is skipped here (the config's own check refused it).
void watch_trusted_cas(const std::vector<std::pair<std::string, std::string>>& ca_files,
                       std::vector<std::pair<std::string, int64_t>>* out,
                       int64_t now_s = static_cast<int64_t>(std::time(nullptr)));

}  // namespace keel::keeld
