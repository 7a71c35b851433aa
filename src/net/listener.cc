#include "net/listener.h"

namespace keel::net {

Status listen_on(boost::asio::io_context& ioc, boost::asio::ip::tcp::acceptor& acceptor,
                 const std::string& host, uint16_t port, uint16_t* bound_port) {
  namespace asio = boost::asio;
  using tcp = asio::ip::tcp;
  const std::string where = "listen " + host + ":" + std::to_string(port);
  boost::system::error_code ec;
  tcp::resolver resolver(ioc);
  const auto results = resolver.resolve(
      host, std::to_string(port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) return Status::error(where + ": " + ec.message());
  const tcp::endpoint endpoint = results.begin()->endpoint();
  if (acceptor.open(endpoint.protocol(), ec) ||
      acceptor.set_option(asio::socket_base::reuse_address(true), ec) ||
      acceptor.bind(endpoint, ec) ||
      acceptor.listen(asio::socket_base::max_listen_connections, ec)) {
    return Status::error(where + ": " + ec.message());
  }
  *bound_port = acceptor.local_endpoint(ec).port();
  if (ec) return Status::error(where + ": " + ec.message());
  return Status::ok();
}

}  // namespace keel::net
