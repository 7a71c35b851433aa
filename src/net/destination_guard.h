#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

// Where keel may open a connection that someone outside keel chose: the SSRF guard of merchant
// webhooks (docs/security.md, "Merchant webhooks"). A merchant names a URL; without a guard, a
// URL (or a DNS name that resolves) to 127.0.0.1, 10.x, 169.254.169.254 or the like makes keeld
// post into the network it runs in: its own admin port, a database, the cloud's metadata
// service. The guard judges the *address* the connection goes to, after DNS, and the sender
// connects to exactly the address judged (no second lookup a DNS rebinding could answer
// differently).
//
// Pure and light (no Asio): addresses are bytes here. Callable from any thread.
namespace keel::net {

struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // IPv4: the first 4

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

// "a.b.c.d" (four decimal parts, no leading zeros) or an IPv6 address in its text forms
// (inet_pton's). nullopt for anything else, names included.
[[nodiscard]] std::optional<IpAddress> parse_ip_address(std::string_view text);
[[nodiscard]] std::string to_string(const IpAddress& address);

struct IpNetwork {
  IpAddress base;      // bits past the prefix are zero
  uint8_t prefix = 0;  // <= 32 for IPv4, <= 128 for IPv6
};
// "ADDRESS/PREFIX", or an address alone (one address: /32 or /128). Bits set past the prefix
// are refused ("10.0.0.1/8" is a typo for 10.0.0.0/8 or 10.0.0.1/32, not something to guess).
[[nodiscard]] std::optional<IpNetwork> parse_ip_network(std::string_view text);
// Whether `address` is in `network`. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is in an IPv4
// network when its IPv4 address is.
[[nodiscard]] bool contains(const IpNetwork& network, const IpAddress& address);

// What kind of address it is, after unwrapping the IPv6 forms that carry an IPv4 address
// (::ffff:0:0/96 mapped, 64:ff9b::/96 NAT64, 2002::/16 6to4): those are judged by the IPv4
// address they lead to.
enum class AddressScope : uint8_t {
  global,       // public unicast: the only scope allowed by default
  loopback,     // 127.0.0.0/8, ::1
  private_net,  // 10/8, 172.16/12, 192.168/16, fc00::/7 (unique local), fec0::/10
  shared,       // 100.64.0.0/10 (carrier-grade NAT)
  link_local,   // 169.254.0.0/16, fe80::/10
  metadata,     // cloud metadata services: 169.254.169.254, 169.254.170.2, 100.100.100.200,
                // fd00:ec2::254
  unspecified,  // 0.0.0.0/8, ::
  multicast,    // 224.0.0.0/4, ff00::/8
  reserved,     // documentation, benchmarking, 192.0.0.0/24, 240.0.0.0/4 (and broadcast),
                // IPv6 outside 2000::/3, 2001:db8::/32, 2001::/23, 100::/64
};
[[nodiscard]] AddressScope address_scope(const IpAddress& address);
[[nodiscard]] std::string_view scope_name(AddressScope scope);  // "loopback", "private", ...

// Which destinations are allowed: every global address, plus the networks listed (keeld's
// `[webhooks] allow_networks`; the tests list 127.0.0.0/8). Nothing else: loopback, private,
// link-local, metadata and the rest are refused unless a listed network holds the address.
struct DestinationPolicy {
  std::vector<IpNetwork> allowed_networks;
};

// Parses `allow_networks` entries; fails naming the first bad entry.
Status parse_destination_policy(const std::vector<std::string>& networks, DestinationPolicy* out);

// nullopt when `address` may be connected to; else why not, for logs and the delivery's
// failure reason: "destination refused: 10.1.2.3 is private".
[[nodiscard]] std::optional<std::string> refused_destination(const DestinationPolicy& policy,
                                                             const IpAddress& address);

}  // namespace keel::net
