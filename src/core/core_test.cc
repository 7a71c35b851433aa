#include <gtest/gtest.h>
#include <unistd.h>
#include <filesystem>
#include <fstream>

#include <limits>
#include <string>

#include "core/bytes.h"
#include "core/checked.h"
#include "core/chunked_vector.h"
#include "core/crc32c.h"
#include "core/currency.h"
#include "core/hash.h"
#include "core/hex.h"
#include "core/http_url.h"
#include "core/ids.h"
#include "core/metadata.h"
#include "core/movable_clock.h"
#include "core/time.h"

namespace keel {
namespace {

TEST(Currency, KnownCodesAndExponents) {
  EXPECT_EQ(Currency::from_code("USD")->exponent(), 2);
  EXPECT_EQ(Currency::from_code("JPY")->exponent(), 0);
  EXPECT_EQ(Currency::from_code("KWD")->exponent(), 3);
  EXPECT_EQ(Currency::from_code("CLF")->exponent(), 4);
  EXPECT_EQ(Currency::from_code("EUR")->code(), "EUR");
}

TEST(Currency, RejectsUnknownAndMalformedCodes) {
  EXPECT_FALSE(Currency::from_code("usd"));
  EXPECT_FALSE(Currency::from_code("XXX"));
  EXPECT_FALSE(Currency::from_code("US"));
  EXPECT_FALSE(Currency::from_code("USDD"));
  EXPECT_FALSE(Currency::from_code(""));
  EXPECT_FALSE(Currency().valid());
  EXPECT_FALSE(Currency::from_index(Currency::kNone));
}

TEST(Currency, IndexRoundTrips) {
  const Currency usd = *Currency::from_code("USD");
  EXPECT_EQ(*Currency::from_index(usd.index()), usd);
}

TEST(Checked, DetectsOverflow) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(checked_add(1, 2), 3);
  EXPECT_FALSE(checked_add(kMax, 1));
  EXPECT_FALSE(checked_sub(std::numeric_limits<int64_t>::min(), 1));
  EXPECT_FALSE(checked_mul(kMax, 2));
  EXPECT_EQ(checked_mul(-3, 4), -12);
}

TEST(Ids, Syntax) {
  EXPECT_TRUE(is_valid_id("acct_1"));
  EXPECT_TRUE(is_valid_id("psp_clearing:stripe-usd.1"));
  EXPECT_FALSE(is_valid_id(""));
  EXPECT_FALSE(is_valid_id("has space"));
  EXPECT_FALSE(is_valid_id("semi;colon"));
  EXPECT_FALSE(is_valid_id(std::string(65, 'a')));
  EXPECT_TRUE(is_valid_id(std::string(64, 'a')));
}

TEST(Time, FormatsAndParsesRfc3339) {
  const Timestamp t = 1795440814123456789;  // 2026-11-23T13:33:34.123456789Z
  const std::string s = format_rfc3339(t);
  EXPECT_EQ(s, "2026-11-23T13:33:34.123456789Z");
  EXPECT_EQ(parse_rfc3339(s), t);
  EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_rfc3339("2000-02-29T00:00:01.5Z"), 951782401500000000);
  EXPECT_EQ(format_rfc3339(0), "1970-01-01T00:00:00.000000000Z");
}

TEST(Time, RejectsMalformedTimestamps) {
  EXPECT_FALSE(parse_rfc3339("2026-02-30T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2026-11-23T13:33:34+01:00"));
  EXPECT_FALSE(parse_rfc3339("2026-11-23 13:33:34Z"));
  EXPECT_FALSE(parse_rfc3339("2026-13-01T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2026-11-23T13:33:34.Z"));
  EXPECT_FALSE(parse_rfc3339(""));
}

TEST(Hex, RoundTripsEveryByteAndRefusesOddOrForeignDigits) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::string hex = to_hex(all);
  EXPECT_EQ(hex.substr(0, 6), "000102");
  EXPECT_EQ(from_hex(hex), all);
  EXPECT_EQ(from_hex("ABcd"), std::string("\xab\xcd"));
  EXPECT_EQ(from_hex(""), std::string());
  for (const char* bad : {"a", "abc", "0g", "zz", " 0", "0x"})
    EXPECT_EQ(from_hex(bad), std::nullopt) << bad;
}

TEST(MovableClock, MovesForwardOnlyWithinItsBoundsAndKeepsItsOffsetInItsFile) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("keel-clock-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "clock-offset").string();
  MovableClock clock;
  ASSERT_TRUE(MovableClock::open(file, &clock).is_ok());
  EXPECT_EQ(clock.offset_ns(), 0);
  const Timestamp before = wall_clock_now();
  ASSERT_TRUE(clock.advance(7 * 24 * 3600 * kNanosPerSecond).is_ok());
  EXPECT_GE(clock.now(), before + 7 * 24 * 3600 * kNanosPerSecond);
  ASSERT_TRUE(clock.advance(1).is_ok());
  const int64_t offset = 7 * 24 * 3600 * kNanosPerSecond + 1;
  EXPECT_EQ(clock.offset_ns(), offset);
  for (const int64_t bad : {int64_t{0}, int64_t{-1}, MovableClock::kAdvanceMaxNs + 1}) {
    EXPECT_FALSE(clock.advance(bad).is_ok()) << bad;
  }
  EXPECT_EQ(clock.offset_ns(), offset) << "a refused move moves nothing";
  // The offset comes back from the file.
  MovableClock again;
  ASSERT_TRUE(MovableClock::open(file, &again).is_ok());
  EXPECT_EQ(again.offset_ns(), offset);
  // Not past ten years.
  while (again.advance(MovableClock::kAdvanceMaxNs).is_ok()) {
  }
  EXPECT_LE(again.offset_ns(), MovableClock::kOffsetMaxNs);
  EXPECT_GT(again.offset_ns(), MovableClock::kOffsetMaxNs - MovableClock::kAdvanceMaxNs);
  // A file that does not hold an offset stops the start.
  for (const char* text : {"", "-1\n", "12x\n", "999999999999999999999\n"}) {
    std::ofstream(file) << text;
    MovableClock broken;
    EXPECT_FALSE(MovableClock::open(file, &broken).is_ok()) << text;
  }
  std::filesystem::remove_all(dir);
}

TEST(Crc32c, KnownVectors) {
  // RFC 3720 B.4 test vectors.
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xFF')), 0x62A8AB43u);
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c("6789", crc32c("12345")), crc32c("123456789"));
}

TEST(Bytes, RoundTripAndBoundsChecks) {
  std::string buf;
  ByteWriter w(&buf);
  w.u8(7);
  w.u16(513);
  w.u32(70000);
  w.i64(-5);
  w.str16("hello");
  ByteReader r(buf);
  uint8_t a = 0;
  uint16_t b = 0;
  uint32_t c = 0;
  int64_t d = 0;
  std::string s;
  ASSERT_TRUE(r.u8(&a) && r.u16(&b) && r.u32(&c) && r.i64(&d) && r.str16(&s));
  EXPECT_EQ(a, 7);
  EXPECT_EQ(b, 513);
  EXPECT_EQ(c, 70000u);
  EXPECT_EQ(d, -5);
  EXPECT_EQ(s, "hello");
  EXPECT_TRUE(r.at_end());
  EXPECT_FALSE(r.u8(&a));
  // A length prefix that points past the end fails instead of reading out of bounds.
  ByteReader bad(std::string_view("\x10\x00ab", 4));
  EXPECT_FALSE(bad.str16(&s));
}

TEST(Metadata, NormalizesAndValidates) {
  Metadata m = {{"b", "2"}, {"a", "1"}};
  EXPECT_EQ(normalize_metadata(&m), MetadataError::ok);
  EXPECT_EQ(m.front().first, "a");
  Metadata dup = {{"a", "1"}, {"a", "2"}};
  EXPECT_EQ(normalize_metadata(&dup), MetadataError::duplicate_key);
  Metadata bad_key = {{"has space", "1"}};
  EXPECT_EQ(normalize_metadata(&bad_key), MetadataError::key_invalid);
  Metadata long_value = {{"k", std::string(257, 'x')}};
  EXPECT_EQ(normalize_metadata(&long_value), MetadataError::value_too_long);
  Metadata many;
  for (int i = 0; i < 17; ++i) many.emplace_back("k" + std::to_string(i), "v");
  EXPECT_EQ(normalize_metadata(&many), MetadataError::too_many_entries);
}

TEST(Hash, SipHashIsKeyedAndStable) {
  EXPECT_EQ(siphash13({1, 2}, "abc"), siphash13({1, 2}, "abc"));
  EXPECT_NE(siphash13({1, 2}, "abc"), siphash13({1, 3}, "abc"));
  EXPECT_NE(siphash13({1, 2}, "abc"), siphash13({1, 2}, "abd"));
  StateHasher a, b;
  a.bytes("state");
  b.bytes("statf");
  EXPECT_NE(a.finish(), b.finish());
}

// Bytes that arrive in pieces hash as their concatenation does, however they are cut: the
// state hash of an encoding streamed part by part is the hash of the encoding.
TEST(Hash, AStreamOfPiecesHashesAsItsConcatenation) {
  std::string all;
  for (int i = 0; i < 300; ++i) all.push_back(static_cast<char>(i * 37 + 11));
  for (size_t length : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{64},
                        size_t{299}, size_t{300}}) {
    const std::string_view data(all.data(), length);
    StateHasher whole;
    whole.u64(42);
    whole.bytes(data);
    for (size_t cut = 1; cut <= 17; ++cut) {
      StateHasher pieces;
      pieces.u64(42);
      StateHashStream stream(&pieces);
      for (size_t at = 0; at < data.size(); at += cut) {
        stream.bytes(data.substr(at, std::min(cut, data.size() - at)));
        stream.bytes("");  // empty pieces change nothing
      }
      stream.finish();
      EXPECT_EQ(pieces.finish(), whole.finish()) << "length " << length << " cut " << cut;
    }
  }
}

TEST(ChunkedVector, GrowsWithoutMovingAndPops) {
  ChunkedVector<int, 2> v;  // chunks of 4
  int* first = &v.push_back(1);
  for (int i = 2; i <= 9; ++i) v.push_back(int{i});
  EXPECT_EQ(first, &v[0]);
  EXPECT_EQ(v.size(), 9u);
  EXPECT_EQ(v[8], 9);
  v.pop_back();
  v.pop_back();
  EXPECT_EQ(v.size(), 7u);
  EXPECT_EQ(v.back(), 7);
  v.push_back(42);
  EXPECT_EQ(v[7], 42);
}

// The one URL parser: keel's own endpoints take [IPv6] hosts and base URLs; merchant webhook
// URLs take neither IPv6 nor anything that could split a request.
TEST(HttpUrl, RulesForBaseUrlsIpLiteralsAndPorts) {
  const auto base = HttpUrlRules{.ip_literals = true, .path = false};
  auto u = parse_http_url_with_target("http://[::1]:8081", base);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 8081);
  u = parse_http_url_with_target("http://[::ffff:127.0.0.1]/", base);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->host, "::ffff:127.0.0.1");
  EXPECT_EQ(u->port, 80);
  u = parse_http_url_with_target("http://localhost:9090", base);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->host, "localhost");
  for (const char* bad :
       {"http://[::1]:8081/path", "http://h?q=1", "http://[::1", "http://[]:1", "http://[::1]x",
        "http://[g::1]:1", "http://[1.2.3.4]:1", "https://[::1]:1"}) {
    EXPECT_FALSE(parse_http_url_with_target(bad, base).has_value()) << bad;
  }
  EXPECT_FALSE(parse_http_url_with_target("http://[::1]:80/").has_value());  // not by default
  const auto with_port = HttpUrlRules{.ip_literals = true, .path = false, .port_required = true};
  EXPECT_FALSE(parse_http_url_with_target("http://a", with_port).has_value());
  EXPECT_FALSE(parse_http_url_with_target("http://[::1]", with_port).has_value());
  EXPECT_TRUE(parse_http_url_with_target("http://a:1", with_port).has_value());
  u = parse_http_url_with_target("http://[::1]:9/hooks?x=1", {.ip_literals = true});
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->target, "/hooks?x=1");
}

// https:// only where the caller takes it; its port is 443 when absent.
TEST(HttpUrl, HttpsByRuleWithItsOwnDefaultPort) {
  EXPECT_FALSE(parse_http_url_with_target("https://hooks.example.com/k").has_value());
  const HttpUrlRules https{.https = true};
  auto u = parse_http_url_with_target("https://hooks.example.com/k?v=2", https);
  ASSERT_TRUE(u.has_value());
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "hooks.example.com");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->target, "/k?v=2");
  u = parse_http_url_with_target("https://h:8443", https);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->port, 8443);
  u = parse_http_url_with_target("http://h", https);
  ASSERT_TRUE(u.has_value());
  EXPECT_FALSE(u->tls);
  EXPECT_EQ(u->port, 80);
  for (const char* bad : {"https:/h", "HTTPS://h", "https://", "https://u@h/", "ftp://h"}) {
    EXPECT_FALSE(parse_http_url_with_target(bad, https).has_value()) << bad;
  }
}

}  // namespace
}  // namespace keel
