#pragma once

// Network helper shared by keel's HTTP servers (keeld, keel-psp-sim). Includes Boost.Asio: only
// for src/api, src/psp_sim and programs.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace keel::net {

// Resolves host:port (numeric), opens, binds (SO_REUSEADDR) and listens `acceptor`; port 0 picks
// a free one. On success *bound_port is the real port. Errors name what failed:
// "listen 127.0.0.1:8080: Address already in use".
Status listen_on(boost::asio::io_context& ioc, boost::asio::ip::tcp::acceptor& acceptor,
                 const std::string& host, uint16_t port, uint16_t* bound_port);

}  // namespace keel::net
