#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace keel::net {

// Parses a `--listen` value: "HOST:PORT", an IPv6 host in brackets ("[::1]:8080"), port 0 to
// 65535 (0 = pick a free one). The error names the flag and the bad value.
Status parse_listen(std::string_view listen, std::string* host, uint16_t* port);

}  // namespace keel::net
