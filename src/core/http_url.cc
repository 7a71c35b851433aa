#include "core/http_url.h"

#include <algorithm>

namespace keel {
namespace {

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-';
}

// RFC 3986 characters of a path and query: unreserved, sub-delims, ':', '@', '/', '?', and '%'
// (checked as a percent-escape by the caller).
bool is_target_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("-._~!$&'()*+,;=:@/?%").find(c) != std::string_view::npos;
}

std::optional<uint16_t> parse_port(std::string_view digits) {
  if (digits.empty() || digits.size() > 5) return std::nullopt;
  uint32_t port = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port == 0 || port > 65535) return std::nullopt;
  return static_cast<uint16_t>(port);
}

bool valid_target(std::string_view target) {
  for (size_t i = 0; i < target.size(); ++i) {
    if (!is_target_char(target[i])) return false;
    if (target[i] == '%' &&
        (i + 2 >= target.size() || !is_hex(target[i + 1]) || !is_hex(target[i + 2]))) {
      return false;
    }
  }
  return true;
}

bool valid_name_host(std::string_view host) {
  return !host.empty() && host.size() <= 253 &&
         std::all_of(host.begin(), host.end(), is_host_char) && host.front() != '.' &&
         host.front() != '-' && host.back() != '.' && host.back() != '-';
}

// The inside of `[...]`: hex digits, ':' and '.' (an IPv4 tail), with at least two ':'.
bool valid_ipv6_literal(std::string_view host) {
  const auto colons = std::count(host.begin(), host.end(), ':');
  return host.size() >= 2 && host.size() <= 45 && colons >= 2 &&
         std::all_of(host.begin(), host.end(),
                     [](char c) { return is_hex(c) || c == ':' || c == '.'; });
}

}  // namespace

std::optional<HttpUrl> parse_http_url_with_target(std::string_view url, HttpUrlRules rules) {
  constexpr std::string_view kHttp = "http://";
  constexpr std::string_view kHttps = "https://";
  const bool tls = rules.https && url.starts_with(kHttps);
  if (!tls && !url.starts_with(kHttp)) return std::nullopt;
  const std::string_view rest = url.substr(tls ? kHttps.size() : kHttp.size());
  const size_t authority_end = std::min(rest.find_first_of("/?#"), rest.size());
  const std::string_view authority = rest.substr(0, authority_end);
  std::string_view host;
  size_t colon = std::string_view::npos;  // before the port, in `authority`
  if (rules.ip_literals && authority.starts_with('[')) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(1, close - 1);
    if (!valid_ipv6_literal(host)) return std::nullopt;
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return std::nullopt;
      colon = close + 1;
    }
  } else {
    colon = authority.find(':');
    host = authority.substr(0, colon);
    if (!valid_name_host(host)) return std::nullopt;
  }
  if (rules.port_required && colon == std::string_view::npos) return std::nullopt;
  HttpUrl out;
  out.host = std::string(host);
  out.tls = tls;
  if (tls) out.port = 443;
  if (colon != std::string_view::npos) {
    const std::optional<uint16_t> port = parse_port(authority.substr(colon + 1));
    if (!port) return std::nullopt;
    out.port = *port;
  }
  const std::string_view target = rest.substr(authority_end);
  if (!valid_target(target)) return std::nullopt;  // also refuses a fragment ('#')
  if (!rules.path && !target.empty() && target != "/") return std::nullopt;
  if (!target.empty()) {
    out.target = target.front() == '/' ? std::string(target) : "/" + std::string(target);
  }
  return out;
}

}  // namespace keel
