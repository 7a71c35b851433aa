#include "net/destination_guard.h"

#include <gtest/gtest.h>

#include <string>

namespace keel::net {
namespace {

AddressScope scope_of(const char* text) {
  const auto a = parse_ip_address(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a ? address_scope(*a) : AddressScope::global;
}

TEST(IpAddress, ParsesBothFamiliesAndNothingElse) {
  const auto a = parse_ip_address("10.1.2.3");
  ASSERT_TRUE(a.has_value());
  EXPECT_FALSE(a->v6);
  EXPECT_EQ(to_string(*a), "10.1.2.3");
  const auto b = parse_ip_address("FD00:EC2::254");
  ASSERT_TRUE(b.has_value());
  EXPECT_TRUE(b->v6);
  EXPECT_EQ(to_string(*b), "fd00:ec2::254");
  // Names and the odd IPv4 spellings a resolver would still take (octal, hex, one number):
  // an address here is only ever what inet_pton reads.
  for (const char* bad : {"", "localhost", "127.1", "0x7f000001", "2130706433", "010.0.0.1",
                          "1.2.3.4.5", "256.1.1.1", "1.2.3.4 ", "[::1]", "::1%eth0", ":::"}) {
    EXPECT_FALSE(parse_ip_address(bad).has_value()) << bad;
  }
}

TEST(IpNetwork, ParsesPrefixesAndRefusesBitsPastThem) {
  const auto n = parse_ip_network("127.0.0.0/8");
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->prefix, 8);
  EXPECT_TRUE(contains(*n, *parse_ip_address("127.9.8.7")));
  EXPECT_FALSE(contains(*n, *parse_ip_address("128.0.0.1")));
  // An IPv4 network holds the IPv4-mapped form of its addresses, not other IPv6 ones.
  EXPECT_TRUE(contains(*n, *parse_ip_address("::ffff:127.0.0.1")));
  EXPECT_FALSE(contains(*n, *parse_ip_address("::1")));
  EXPECT_EQ(parse_ip_network("10.1.2.3")->prefix, 32);
  EXPECT_EQ(parse_ip_network("::1")->prefix, 128);
  EXPECT_EQ(parse_ip_network("0.0.0.0/0")->prefix, 0);
  EXPECT_TRUE(contains(*parse_ip_network("fd00::/8"), *parse_ip_address("fdff::1")));
  EXPECT_TRUE(contains(*parse_ip_network("10.1.2.3/32"), *parse_ip_address("10.1.2.3")));
  EXPECT_FALSE(contains(*parse_ip_network("10.1.2.3/32"), *parse_ip_address("10.1.2.4")));
  for (const char* bad : {"10.0.0.1/8", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/a",
                          "10.0.0.0/-1", "/8", "10.0.0.0/0008", "fd00::1/8"}) {
    EXPECT_FALSE(parse_ip_network(bad).has_value()) << bad;
  }
}

TEST(AddressScope, KnowsEveryRangeAConnectionMustNotReachByDefault) {
  struct Case {
    const char* address;
    AddressScope scope;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"8.8.8.8", AddressScope::global},
           {"93.184.216.34", AddressScope::global},
           {"2606:4700::1111", AddressScope::global},
           {"127.0.0.1", AddressScope::loopback},
           {"127.255.255.254", AddressScope::loopback},
           {"::1", AddressScope::loopback},
           {"10.0.0.1", AddressScope::private_net},
           {"172.16.0.1", AddressScope::private_net},
           {"172.31.255.255", AddressScope::private_net},
           {"172.32.0.1", AddressScope::global},
           {"192.168.1.1", AddressScope::private_net},
           {"fd12:3456::1", AddressScope::private_net},
           {"fec0::1", AddressScope::private_net},
           {"100.64.0.1", AddressScope::shared},
           {"169.254.1.1", AddressScope::link_local},
           {"fe80::1", AddressScope::link_local},
           {"169.254.169.254", AddressScope::metadata},
           {"169.254.170.2", AddressScope::metadata},
           {"100.100.100.200", AddressScope::metadata},
           {"fd00:ec2::254", AddressScope::metadata},
           {"0.0.0.0", AddressScope::unspecified},
           {"0.1.2.3", AddressScope::unspecified},
           {"::", AddressScope::unspecified},
           {"224.0.0.1", AddressScope::multicast},
           {"ff02::1", AddressScope::multicast},
           {"255.255.255.255", AddressScope::reserved},
           {"240.0.0.1", AddressScope::reserved},
           {"192.0.2.1", AddressScope::reserved},
           {"198.18.0.1", AddressScope::reserved},
           {"2001:db8::1", AddressScope::reserved},
           {"2001::1", AddressScope::reserved},
           {"::2", AddressScope::reserved},
           // IPv6 forms that lead to an IPv4 address are judged by it.
           {"::ffff:127.0.0.1", AddressScope::loopback},
           {"::ffff:169.254.169.254", AddressScope::metadata},
           {"64:ff9b::a00:1", AddressScope::private_net},
           {"2002:a9fe:a9fe::1", AddressScope::metadata},
           {"2002:5db8:d822::1", AddressScope::global},
       }) {
    EXPECT_EQ(scope_of(c.address), c.scope) << c.address;
  }
}

TEST(DestinationPolicy, RefusesAllButGlobalUnlessANetworkIsAllowed) {
  DestinationPolicy none;
  ASSERT_TRUE(parse_destination_policy({}, &none).is_ok());
  EXPECT_FALSE(refused_destination(none, *parse_ip_address("93.184.216.34")).has_value());
  EXPECT_EQ(refused_destination(none, *parse_ip_address("10.1.2.3")).value_or(""),
            "destination refused: 10.1.2.3 is private");
  EXPECT_EQ(refused_destination(none, *parse_ip_address("169.254.169.254")).value_or(""),
            "destination refused: 169.254.169.254 is a cloud metadata service");

  DestinationPolicy loopback;
  ASSERT_TRUE(parse_destination_policy({"127.0.0.0/8", "::1"}, &loopback).is_ok());
  EXPECT_FALSE(refused_destination(loopback, *parse_ip_address("127.0.0.1")).has_value());
  EXPECT_FALSE(refused_destination(loopback, *parse_ip_address("::1")).has_value());
  EXPECT_FALSE(refused_destination(loopback, *parse_ip_address("::ffff:127.0.0.1")).has_value());
  EXPECT_TRUE(refused_destination(loopback, *parse_ip_address("10.0.0.1")).has_value());
  EXPECT_TRUE(refused_destination(loopback, *parse_ip_address("169.254.169.254")).has_value());

  DestinationPolicy bad;
  const Status s = parse_destination_policy({"127.0.0.0/8", "localhost"}, &bad);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("\"localhost\""), std::string::npos) << s.message();
}

}  // namespace
}  // namespace keel::net
