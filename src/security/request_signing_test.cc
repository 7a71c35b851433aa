#include "security/request_signing.h"

#include <gtest/gtest.h>

#include "security/api_key.h"
#include "security/key_ring.h"

namespace keel::security {
namespace {

constexpr int64_t kNow = 1'800'000'000;

TEST(RequestSigning, ASignedRequestVerifiesAndAnyChangeToItDoesNot) {
  const GeneratedKey key = generate_key();
  const std::string nonce = new_nonce();
  const std::string body = R"({"role": "ledger"})";
  const std::string header =
      sign_request(key.text, "POST", "/v1/admin/keys?b=2&a=1", body, kNow, nonce);
  SignatureHeader parsed;
  EXPECT_EQ(verify_request(key.hash, header, "POST", "/v1/admin/keys?b=2&a=1", body, kNow, &parsed),
            SignatureCheck::ok);
  EXPECT_EQ(parsed.nonce, nonce);
  EXPECT_EQ(parsed.t, kNow);
  // The query's order does not matter; everything else does.
  EXPECT_EQ(verify_request(key.hash, header, "POST", "/v1/admin/keys?a=1&b=2", body, kNow),
            SignatureCheck::ok);
  EXPECT_EQ(verify_request(key.hash, header, "GET", "/v1/admin/keys?a=1&b=2", body, kNow),
            SignatureCheck::mismatch);
  EXPECT_EQ(verify_request(key.hash, header, "POST", "/v1/admin/keys?a=1&b=3", body, kNow),
            SignatureCheck::mismatch);
  EXPECT_EQ(verify_request(key.hash, header, "POST", "/v1/admin/key?a=1&b=2", body, kNow),
            SignatureCheck::mismatch);
  EXPECT_EQ(verify_request(key.hash, header, "POST", "/v1/admin/keys?a=1&b=2", body + " ", kNow),
            SignatureCheck::mismatch);
  EXPECT_EQ(
      verify_request(generate_key().hash, header, "POST", "/v1/admin/keys?a=1&b=2", body, kNow),
      SignatureCheck::mismatch);
}

// The worked example of docs/security.md, computed there with Python's hashlib and hmac.
TEST(RequestSigning, TheDocumentedExampleSignsToTheDocumentedHeader) {
  std::string text = "keel_0f3a9c21d4e5b687_";
  for (int i = 0; i < 32; ++i) text += "5b";
  EXPECT_EQ(canonical_request("POST", "/v1/admin/keys", 1796644800, "3f2a9d8c1b7e4a6f",
                              R"({"role": "ledger"})"),
            "POST\n/v1/admin/keys\n\n1796644800\n3f2a9d8c1b7e4a6f\n"
            "11a37e26bcf20faed8dc25b0d3f8f78ade43103d040937a6c8b6550d32d536de");
  EXPECT_EQ(sign_request(text, "POST", "/v1/admin/keys", R"({"role": "ledger"})", 1796644800,
                         "3f2a9d8c1b7e4a6f"),
            "t=1796644800,n=3f2a9d8c1b7e4a6f,"
            "v1=53b6cdeedc0518c3c6c22602db53c4fba99414a184a1567906a81de9ecc9a87a");
}

TEST(RequestSigning, TheClockSkewIsFiveMinutesEitherWay) {
  const GeneratedKey key = generate_key();
  for (const int64_t skew : {-300, 0, 300}) {
    const std::string h = sign_request(key.text, "GET", "/x", "", kNow + skew, new_nonce());
    EXPECT_EQ(verify_request(key.hash, h, "GET", "/x", "", kNow), SignatureCheck::ok) << skew;
  }
  for (const int64_t skew : {-301, 301, -100'000}) {
    const std::string h = sign_request(key.text, "GET", "/x", "", kNow + skew, new_nonce());
    EXPECT_EQ(verify_request(key.hash, h, "GET", "/x", "", kNow),
              SignatureCheck::timestamp_out_of_range)
        << skew;
  }
}

TEST(RequestSigning, MalformedHeadersAreRefused) {
  const GeneratedKey key = generate_key();
  const std::string good = sign_request(key.text, "GET", "/x", "", kNow, new_nonce());
  const std::string v1 = good.substr(good.find("v1="));
  for (const std::string& h :
       {std::string(), std::string("t=1"),
        "n=" + new_nonce() + ",t=" + std::to_string(kNow) + "," + v1,
        "t=" + std::to_string(kNow) + ",n=short," + v1,
        "t=" + std::to_string(kNow) + ",n=" + std::string(65, 'a') + "," + v1,
        "t=x,n=" + new_nonce() + "," + v1, "t=-5,n=" + new_nonce() + "," + v1,
        good + ",v1=" + std::string(64, 'a'), good.substr(0, good.size() - 1),
        good.substr(0, good.size() - 1) + "G"}) {
    EXPECT_EQ(verify_request(key.hash, h, "GET", "/x", "", kNow), SignatureCheck::malformed) << h;
  }
  EXPECT_TRUE(sign_request("not a key", "GET", "/x", "", kNow, new_nonce()).empty());
}

TEST(KeyRingNonces, ANonceIsTakenOncePerKeyAndForgottenOnlyWhenNoSignatureCanUseItAgain) {
  KeyRing ring;
  const GeneratedKey a = generate_key();
  const GeneratedKey b = generate_key();
  const Timestamp t0 = kNow * 1'000'000'000;
  ASSERT_EQ(ring.apply(cmd::CreateKey{a.id, Role::admin, "", a.hash, ""}, t0), Result::ok);
  ASSERT_EQ(ring.apply(cmd::CreateKey{b.id, Role::admin, "", b.hash, ""}, t0 + 1), Result::ok);
  const std::string n = new_nonce();
  EXPECT_EQ(ring.apply(cmd::UseNonce{a.id, n, kNow}, t0 + 2), Result::ok);
  EXPECT_EQ(ring.apply(cmd::UseNonce{a.id, n, kNow}, t0 + 3), Result::nonce_reused);
  EXPECT_EQ(ring.apply(cmd::UseNonce{b.id, n, kNow}, t0 + 4), Result::ok);
  EXPECT_EQ(ring.apply(cmd::UseNonce{"key_0000000000000000", n, kNow}, t0 + 5),
            Result::key_not_found);
  EXPECT_EQ(ring.nonces(), 2u);
  // Kept across an encoding (a snapshot), so a restart reopens nothing.
  std::string bytes;
  ring.encode(&bytes);
  KeyRing back;
  ASSERT_TRUE(KeyRing::decode(bytes, &back).is_ok());
  EXPECT_EQ(back, ring);
  EXPECT_EQ(back.apply(cmd::UseNonce{a.id, n, kNow}, t0 + 6), Result::nonce_reused);
  // Still refused at the edge of what a signature could reach; forgotten after.
  const Timestamp edge = (kNow + kNonceKeepS) * 1'000'000'000;
  EXPECT_EQ(ring.apply(cmd::UseNonce{a.id, n, kNow}, edge), Result::nonce_reused);
  EXPECT_EQ(ring.apply(cmd::UseNonce{a.id, new_nonce(), kNow + 700}, edge + 1'000'000'000),
            Result::ok);
  EXPECT_EQ(ring.nonces(), 1u);
}

TEST(KeyRingNonces, AFullWindowRefusesNewNoncesUntilOldOnesExpire) {
  KeyRing ring;
  const GeneratedKey a = generate_key();
  const Timestamp t0 = kNow * 1'000'000'000;
  ASSERT_EQ(ring.apply(cmd::CreateKey{a.id, Role::admin, "", a.hash, ""}, t0), Result::ok);
  for (size_t i = 0; i < kNoncesMax; ++i) {
    ASSERT_EQ(ring.apply(cmd::UseNonce{a.id, "n" + std::to_string(i), kNow}, t0 + 1 + i),
              Result::ok);
  }
  EXPECT_EQ(ring.apply(cmd::UseNonce{a.id, "one-more", kNow}, t0 + 2 * kNoncesMax),
            Result::too_many_nonces);
  const Timestamp later = (kNow + kNonceKeepS + 1) * 1'000'000'000;
  EXPECT_EQ(ring.apply(cmd::UseNonce{a.id, "one-more", kNow + kNonceKeepS}, later), Result::ok);
  EXPECT_EQ(ring.nonces(), 1u);
}

}  // namespace
}  // namespace keel::security
