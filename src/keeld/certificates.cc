#include "keeld/certificates.h"

#include <spdlog/spdlog.h>

#include "core/time.h"
#include "net/tls_config.h"

namespace keel::keeld {
namespace {

std::string when(int64_t unix_s) { return format_rfc3339(unix_s * kNanosPerSecond); }

// Warns of each certificate of certs[from..] that expires within kCertificateWarnS.
void warn_expiring(const std::vector<std::pair<std::string, int64_t>>& certs, size_t from,
                   int64_t now_s) {
  for (size_t i = from; i < certs.size(); ++i) {
    const auto& [name, not_after] = certs[i];
    if (not_after - now_s < kCertificateWarnS) {
      spdlog::warn("tls: the {} certificate expires at {} ({} days from now): renew it", name,
                   when(not_after), (not_after - now_s) / 86400);
    }
  }
}

}  // namespace

Status watch_certificates(const net::TlsServerConfig& tls, std::string_view prefix,
                          std::vector<std::pair<std::string, int64_t>>* out, int64_t now_s) {
  const size_t first = out->size();
  const std::string p(prefix);
  std::vector<net::CertificateInfo> server;
  if (Status s = net::read_certificates(tls.cert_file, &server); !s.is_ok()) return s;
  const net::CertificateInfo& leaf = server.front();
  if (leaf.not_after_s <= now_s) {
    return Status::error("tls: the certificate in " + tls.cert_file + " (" + leaf.subject +
                         ") expired at " + when(leaf.not_after_s) +
                         "; renew it (docs/security.md \"TLS\")");
  }
  out->emplace_back(p + "server", leaf.not_after_s);
  if (!tls.client_ca_file.empty()) {
    std::vector<net::CertificateInfo> cas;
    if (Status s = net::read_certificates(tls.client_ca_file, &cas); !s.is_ok()) return s;
    for (size_t i = 0; i < cas.size(); ++i) {
      out->emplace_back(p + (i == 0 ? "client_ca" : "client_ca_" + std::to_string(i + 1)),
                        cas[i].not_after_s);
    }
  }
  warn_expiring(*out, first, now_s);
  return Status::ok();
}

void watch_trusted_cas(const std::vector<std::pair<std::string, std::string>>& ca_files,
                       std::vector<std::pair<std::string, int64_t>>* out, int64_t now_s) {
  const size_t first = out->size();
  for (const auto& [label, file] : ca_files) {
    std::vector<net::CertificateInfo> cas;
    if (!net::read_certificates(file, &cas).is_ok()) continue;
    for (size_t i = 0; i < cas.size(); ++i) {
      out->emplace_back(label + (i == 0 ? "" : ":" + std::to_string(i + 1)), cas[i].not_after_s);
    }
  }
  warn_expiring(*out, first, now_s);
}

}  // namespace keel::keeld
