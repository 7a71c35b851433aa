#include "net/listen_address.h"

#include <charconv>

namespace keel::net {

Status parse_listen(std::string_view listen, std::string* host_out, uint16_t* port_out) {
  const size_t colon = listen.rfind(':');
  const auto bad = [&] {
    return Status::error("--listen must be HOST:PORT (e.g. 127.0.0.1:8080), not \"" +
                         std::string(listen) + "\"");
  };
  if (colon == std::string_view::npos || colon == 0) return bad();
  std::string_view host = listen.substr(0, colon);
  const std::string_view port_text = listen.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return bad();
    host = host.substr(1, host.size() - 2);
  }
  unsigned port = 0;
  const char* end = port_text.data() + port_text.size();
  const auto [p, ec] = std::from_chars(port_text.data(), end, port);
  if (port_text.empty() || ec != std::errc() || p != end || port > 65535) return bad();
  *host_out = std::string(host);
  *port_out = static_cast<uint16_t>(port);
  return Status::ok();
}

}  // namespace keel::net
