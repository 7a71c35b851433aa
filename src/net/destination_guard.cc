#include "net/destination_guard.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cassert>
#include <charconv>

namespace keel::net {
namespace {

IpAddress v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  IpAddress out;
  out.bytes[0] = a;
  out.bytes[1] = b;
  out.bytes[2] = c;
  out.bytes[3] = d;
  return out;
}

// Whether the first `prefix` bits of `a` and `b` agree.
bool same_prefix(const uint8_t* a, const uint8_t* b, unsigned prefix) {
  const unsigned whole = prefix / 8;
  if (!std::equal(a, a + whole, b)) return false;
  const unsigned rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xFF << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

struct Range {
  IpAddress base;
  uint8_t prefix;
  AddressScope scope;
};

IpAddress v6(std::initializer_list<uint16_t> groups) {
  IpAddress out;
  out.v6 = true;
  size_t i = 0;
  for (const uint16_t g : groups) {
    out.bytes[i++] = static_cast<uint8_t>(g >> 8);
    out.bytes[i++] = static_cast<uint8_t>(g & 0xFF);
  }
  return out;
}

// Most specific first: the first range holding an address gives its scope.
const std::vector<Range>& v4_ranges() {
  static const std::vector<Range> ranges = {
      {v4(169, 254, 169, 254), 32, AddressScope::metadata},  // AWS, GCP, Azure, ...
      {v4(169, 254, 170, 2), 32, AddressScope::metadata},    // AWS ECS task metadata
      {v4(100, 100, 100, 200), 32, AddressScope::metadata},  // Alibaba Cloud
      {v4(0, 0, 0, 0), 8, AddressScope::unspecified},
      {v4(10, 0, 0, 0), 8, AddressScope::private_net},
      {v4(100, 64, 0, 0), 10, AddressScope::shared},
      {v4(127, 0, 0, 0), 8, AddressScope::loopback},
      {v4(169, 254, 0, 0), 16, AddressScope::link_local},
      {v4(172, 16, 0, 0), 12, AddressScope::private_net},
      {v4(192, 0, 0, 0), 24, AddressScope::reserved},    // IETF protocol assignments
      {v4(192, 0, 2, 0), 24, AddressScope::reserved},    // documentation
      {v4(192, 88, 99, 0), 24, AddressScope::reserved},  // 6to4 relay anycast
      {v4(192, 168, 0, 0), 16, AddressScope::private_net},
      {v4(198, 18, 0, 0), 15, AddressScope::reserved},    // benchmarking
      {v4(198, 51, 100, 0), 24, AddressScope::reserved},  // documentation
      {v4(203, 0, 113, 0), 24, AddressScope::reserved},   // documentation
      {v4(224, 0, 0, 0), 4, AddressScope::multicast},
      {v4(240, 0, 0, 0), 4, AddressScope::reserved},  // and 255.255.255.255
  };
  return ranges;
}

const std::vector<Range>& v6_ranges() {
  static const std::vector<Range> ranges = {
      {v6({0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254}), 128, AddressScope::metadata},  // AWS
      {v6({}), 128, AddressScope::unspecified},
      {v6({0, 0, 0, 0, 0, 0, 0, 1}), 128, AddressScope::loopback},
      {v6({0xfc00}), 7, AddressScope::private_net},
      {v6({0xfec0}), 10, AddressScope::private_net},  // site-local (deprecated)
      {v6({0xfe80}), 10, AddressScope::link_local},
      {v6({0xff00}), 8, AddressScope::multicast},
      {v6({0x2001, 0x0db8}), 32, AddressScope::reserved},  // documentation
      {v6({0x2001}), 23, AddressScope::reserved},          // IETF protocol assignments, Teredo
      {v6({0x0100}), 64, AddressScope::reserved},          // discard
      {v6({0x2000}), 3, AddressScope::global},             // global unicast
  };
  return ranges;
}

// The IPv4 address an IPv6 address leads to, for the forms that embed one.
std::optional<IpAddress> embedded_v4(const IpAddress& a) {
  const auto& b = a.bytes;
  static const IpAddress mapped = v6({0, 0, 0, 0, 0, 0xffff});
  static const IpAddress nat64 = v6({0x0064, 0xff9b});
  static const IpAddress six_to_four = v6({0x2002});
  if (same_prefix(b.data(), mapped.bytes.data(), 96) ||
      same_prefix(b.data(), nat64.bytes.data(), 96)) {
    return v4(b[12], b[13], b[14], b[15]);
  }
  if (same_prefix(b.data(), six_to_four.bytes.data(), 16)) return v4(b[2], b[3], b[4], b[5]);
  return std::nullopt;
}

}  // namespace

std::optional<IpAddress> parse_ip_address(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  const std::string s(text);
  IpAddress out;
  if (s.find(':') == std::string::npos) {
    // inet_pton takes exactly a.b.c.d in decimal (no octal, hex or shortened forms).
    if (inet_pton(AF_INET, s.c_str(), out.bytes.data()) != 1) return std::nullopt;
    return out;
  }
  if (inet_pton(AF_INET6, s.c_str(), out.bytes.data()) != 1) return std::nullopt;
  out.v6 = true;
  return out;
}

std::string to_string(const IpAddress& address) {
  char text[INET6_ADDRSTRLEN] = {};
  const char* ok =
      inet_ntop(address.v6 ? AF_INET6 : AF_INET, address.bytes.data(), text, sizeof(text));
  assert(ok != nullptr);
  return ok != nullptr ? std::string(text) : std::string();
}

std::optional<IpNetwork> parse_ip_network(std::string_view text) {
  const size_t slash = text.find('/');
  const std::optional<IpAddress> base = parse_ip_address(text.substr(0, slash));
  if (!base) return std::nullopt;
  const unsigned width = base->v6 ? 128 : 32;
  unsigned prefix = width;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const char* end = digits.data() + digits.size();
    if (digits.empty() || digits.size() > 3 ||
        std::from_chars(digits.data(), end, prefix).ptr != end || prefix > width) {
      return std::nullopt;
    }
  }
  // Bits past the prefix must be zero.
  for (unsigned bit = prefix; bit < width; ++bit) {
    if ((base->bytes[bit / 8] >> (7 - bit % 8)) & 1) return std::nullopt;
  }
  return IpNetwork{*base, static_cast<uint8_t>(prefix)};
}

bool contains(const IpNetwork& network, const IpAddress& address) {
  if (network.base.v6 == address.v6) {
    return same_prefix(network.base.bytes.data(), address.bytes.data(), network.prefix);
  }
  if (!network.base.v6 && address.v6) {
    static const IpAddress mapped = v6({0, 0, 0, 0, 0, 0xffff});
    if (!same_prefix(address.bytes.data(), mapped.bytes.data(), 96)) return false;
    return same_prefix(network.base.bytes.data(), address.bytes.data() + 12, network.prefix);
  }
  return false;
}

AddressScope address_scope(const IpAddress& address) {
  if (address.v6) {
    if (const auto inner = embedded_v4(address)) return address_scope(*inner);
    for (const Range& r : v6_ranges()) {
      if (contains(IpNetwork{r.base, r.prefix}, address)) return r.scope;
    }
    return AddressScope::reserved;  // outside 2000::/3: not allocated for unicast
  }
  for (const Range& r : v4_ranges()) {
    if (contains(IpNetwork{r.base, r.prefix}, address)) return r.scope;
  }
  return AddressScope::global;
}

std::string_view scope_name(AddressScope scope) {
  switch (scope) {
    case AddressScope::global:
      return "global";
    case AddressScope::loopback:
      return "loopback";
    case AddressScope::private_net:
      return "private";
    case AddressScope::shared:
      return "shared (carrier-grade NAT)";
    case AddressScope::link_local:
      return "link-local";
    case AddressScope::metadata:
      return "a cloud metadata service";
    case AddressScope::unspecified:
      return "unspecified";
    case AddressScope::multicast:
      return "multicast";
    case AddressScope::reserved:
      return "reserved";
  }
  return "reserved";
}

Status parse_destination_policy(const std::vector<std::string>& networks, DestinationPolicy* out) {
  DestinationPolicy policy;
  for (const std::string& text : networks) {
    const auto network = parse_ip_network(text);
    if (!network) {
      return Status::error(
          "\"" + text + "\" is not an address or network (e.g. 127.0.0.0/8, 10.1.2.3, fd00::/8)");
    }
    policy.allowed_networks.push_back(*network);
  }
  *out = std::move(policy);
  return Status::ok();
}

std::optional<std::string> refused_destination(const DestinationPolicy& policy,
                                               const IpAddress& address) {
  for (const IpNetwork& n : policy.allowed_networks) {
    if (contains(n, address)) return std::nullopt;
  }
  const AddressScope scope = address_scope(address);
  if (scope == AddressScope::global) return std::nullopt;
  return "destination refused: " + to_string(address) + " is " + std::string(scope_name(scope));
}

}  // namespace keel::net
