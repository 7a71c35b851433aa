#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace keel {

// An http:// or https:// URL split for a request: host, port (80, or 443 for https, when
// absent) and target (path and query, "/" when absent).
struct HttpUrl {
  std::string host;
  uint16_t port = 80;
  std::string target = "/";
  bool tls = false;  // https://
};

// What a caller accepts beyond the plain rule below.
struct HttpUrlRules {
  bool ip_literals = false;    // `[IPv6]` hosts (keel's own endpoints; merchant URLs take none)
  bool path = true;            // false: a base URL, nothing after the authority but "/"
  bool port_required = false;  // false: 80 (443 for https) when absent
  bool https = false;          // also `https://...` (then `tls` is set)
};

// The one URL parser of keel. Parses `http://HOST[:PORT][/PATH][?QUERY]`: a DNS name or IPv4
// address of [A-Za-z0-9.-] (at most 253 characters, not starting or ending with '.' or '-'), or
// with `rules.ip_literals` an IPv6 address in brackets (returned without them); a port 1-65535;
// and a path and query of RFC 3986 characters with valid percent-escapes. No user info or
// fragment; with `rules.https` also the same after `https://`. nullopt otherwise; nothing that
// could split a request line or a header gets through. Pure; callable from any thread.
[[nodiscard]] std::optional<HttpUrl> parse_http_url_with_target(std::string_view url,
                                                                HttpUrlRules rules = {});

}  // namespace keel
