#include "connectors/webhook_signature.h"

#include <gtest/gtest.h>

namespace keel::connectors {
namespace {

constexpr int64_t kNow = 1'795'440'814;

TEST(WebhookSignature, KnownHmacVector) {
  // RFC 4231 test case 2.
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(WebhookSignature, SignedBodyVerifies) {
  const std::string body = R"({"id":"evt_1"})";
  const std::string header = sign_webhook("whsec", kNow, body);
  EXPECT_TRUE(header.starts_with("t=1795440814,v1="));
  EXPECT_EQ(verify_webhook("whsec", header, body, kNow), SignatureCheck::ok);
  EXPECT_EQ(verify_webhook("whsec", header, body, kNow + 300), SignatureCheck::ok);
}

TEST(WebhookSignature, RejectsChangedBodyWrongSecretAndAge) {
  const std::string body = R"({"amount":100})";
  const std::string header = sign_webhook("whsec", kNow, body);
  EXPECT_EQ(verify_webhook("whsec", header, R"({"amount":900})", kNow), SignatureCheck::mismatch);
  EXPECT_EQ(verify_webhook("other", header, body, kNow), SignatureCheck::mismatch);
  EXPECT_EQ(verify_webhook("whsec", header, body, kNow + 301), SignatureCheck::too_old);
  EXPECT_EQ(verify_webhook("whsec", header, body, kNow - 301), SignatureCheck::in_future);
}

TEST(WebhookSignature, AnyOfSeveralSignaturesMatches) {
  const std::string body = "{}";
  const std::string good = sign_webhook("new", kNow, body);
  const std::string header = "t=" + std::to_string(kNow) + ",v1=" + std::string(64, '0') + "," +
                             good.substr(good.find("v1="));
  EXPECT_EQ(verify_webhook("new", header, body, kNow), SignatureCheck::ok);
}

TEST(WebhookSignature, MalformedHeaders) {
  for (const char* h : {"", "t=", "v1=abc", "t=12x,v1=ab", "t=123", "garbage"}) {
    EXPECT_EQ(verify_webhook("s", h, "{}", kNow), SignatureCheck::malformed) << h;
  }
  EXPECT_EQ(verify_webhook("s", "t=" + std::to_string(kNow) + ",v1=short", "{}", kNow),
            SignatureCheck::mismatch);
}

}  // namespace
}  // namespace keel::connectors
