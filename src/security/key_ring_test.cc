#include "security/key_ring.h"

#include <gtest/gtest.h>

#include <set>

#include "security/api_key.h"

namespace keel::security {
namespace {

cmd::CreateKey create(const GeneratedKey& g, Role role, std::string owner = {}) {
  return cmd::CreateKey{g.id, role, std::move(owner), g.hash, "test"};
}

TEST(ApiKey, GeneratedKeysParseBackToTheirIdAndDigestAndAreUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const GeneratedKey g = generate_key();
    ASSERT_TRUE(seen.insert(g.text).second);
    const auto p = parse_key(g.text);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->id, g.id);
    EXPECT_TRUE(digest_equal(p->hash, g.hash));
    EXPECT_TRUE(is_valid_key_id(g.id));
  }
}

TEST(ApiKey, MalformedKeysDoNotParse) {
  const std::string good = generate_key().text;
  EXPECT_FALSE(parse_key(""));
  EXPECT_FALSE(parse_key(good.substr(1)));
  EXPECT_FALSE(parse_key(good + "0"));
  std::string upper = good;
  upper.back() = 'A';
  EXPECT_FALSE(parse_key(upper));
  std::string no_separator = good;
  no_separator[21] = 'x';
  EXPECT_FALSE(parse_key(no_separator));
  EXPECT_FALSE(parse_key("sk_" + good.substr(3)));
  // A changed secret parses, to another digest.
  std::string other = good;
  other.back() = other.back() == '0' ? '1' : '0';
  EXPECT_FALSE(digest_equal(parse_key(other)->hash, parse_key(good)->hash));
}

TEST(ApiKey, RoleNamesRoundTrip) {
  for (uint8_t i = 0; i <= static_cast<uint8_t>(kRoleLast); ++i) {
    const auto r = static_cast<Role>(i);
    EXPECT_EQ(role_from_name(role_name(r)), r);
  }
  EXPECT_FALSE(role_from_name("root"));
  EXPECT_TRUE(role_has_owner(Role::merchant));
  EXPECT_TRUE(role_has_owner(Role::customer_app));
  EXPECT_FALSE(role_has_owner(Role::admin));
}

TEST(KeyRing, CreateRevokeAndUseFollowTheirRules) {
  KeyRing ring;
  const GeneratedKey a = generate_key();
  const GeneratedKey m = generate_key();
  ASSERT_EQ(ring.apply(create(a, Role::admin), 10), Result::ok);
  ASSERT_EQ(ring.apply(create(m, Role::merchant, "mch_1"), 11), Result::ok);
  EXPECT_EQ(ring.apply(create(a, Role::admin), 12), Result::key_exists);
  const ApiKey* key = ring.find(m.id);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(key->role, Role::merchant);
  EXPECT_EQ(key->owner, "mch_1");
  EXPECT_EQ(key->created, 11);
  EXPECT_TRUE(key->active());

  EXPECT_EQ(ring.apply(cmd::KeyUsed{m.id}, 20), Result::ok);
  EXPECT_EQ(ring.find(m.id)->last_used, 20);
  EXPECT_EQ(ring.apply(cmd::KeyUsed{"key_0000000000000000"}, 21), Result::key_not_found);

  EXPECT_EQ(ring.apply(cmd::RevokeKey{m.id, "rotated"}, 30), Result::ok);
  EXPECT_FALSE(ring.find(m.id)->active());
  EXPECT_EQ(ring.find(m.id)->revoked, 30);
  EXPECT_EQ(ring.find(m.id)->revoked_reason, "rotated");
  EXPECT_EQ(ring.apply(cmd::RevokeKey{m.id, "again"}, 31), Result::already_revoked);
  EXPECT_EQ(ring.find(m.id)->revoked, 30);
  EXPECT_EQ(ring.apply(cmd::RevokeKey{"key_0000000000000000", ""}, 32), Result::key_not_found);
}

TEST(KeyRing, InvalidKeysAreRefusedAndChangeNothing) {
  KeyRing ring;
  const GeneratedKey g = generate_key();
  const KeyRing before = ring;
  EXPECT_EQ(ring.apply(create(g, Role::merchant), 1), Result::key_invalid);        // no owner
  EXPECT_EQ(ring.apply(create(g, Role::admin, "mch_1"), 1), Result::key_invalid);  // an owner
  EXPECT_EQ(ring.apply(create(g, Role::customer_app, "cus:1"), 1), Result::key_invalid);
  EXPECT_EQ(ring.apply(create(g, Role::merchant, std::string(41, 'm')), 1), Result::key_invalid);
  cmd::CreateKey bad_id = create(g, Role::ledger);
  bad_id.id = "key_XYZ";
  EXPECT_EQ(ring.apply(bad_id, 1), Result::key_invalid);
  cmd::CreateKey long_label = create(g, Role::ledger);
  long_label.label = std::string(kKeyLabelLengthMax + 1, 'x');
  EXPECT_EQ(ring.apply(long_label, 1), Result::key_invalid);
  cmd::CreateKey control = create(g, Role::ledger);
  control.label = "a\nb";
  EXPECT_EQ(ring.apply(control, 1), Result::key_invalid);
  EXPECT_EQ(ring, before);
}

TEST(KeyRing, EncodingRoundTripsAndTheHashFollowsTheState) {
  KeyRing ring;
  const uint64_t empty_hash = ring.state_hash();
  const GeneratedKey a = generate_key();
  const GeneratedKey c = generate_key();
  ASSERT_EQ(ring.apply(create(a, Role::auditor), 5), Result::ok);
  ASSERT_EQ(ring.apply(create(c, Role::customer_app, "cus_9"), 6), Result::ok);
  ASSERT_EQ(ring.apply(cmd::RevokeKey{a.id, "left"}, 7), Result::ok);
  EXPECT_NE(ring.state_hash(), empty_hash);
  // A use and a nonce are not in the hash; a revocation is.
  const uint64_t hash = ring.state_hash();
  KeyRing used = ring;
  ASSERT_EQ(used.apply(cmd::KeyUsed{c.id}, 8), Result::ok);
  ASSERT_EQ(used.apply(cmd::UseNonce{c.id, "0123456789abcdef", 1}, 9), Result::ok);
  EXPECT_EQ(used.state_hash(), hash);
  EXPECT_NE(used, ring);
  EXPECT_EQ(used.keys_only().nonces(), 0u);
  EXPECT_EQ(used.keys_only().keys(), used.keys());
  ASSERT_EQ(used.apply(cmd::RevokeKey{c.id, ""}, 10), Result::ok);
  EXPECT_NE(used.state_hash(), hash);
  std::string bytes;
  ring.encode(&bytes);
  KeyRing back;
  ASSERT_TRUE(KeyRing::decode(bytes, &back).is_ok());
  EXPECT_EQ(back, ring);
  EXPECT_EQ(back.state_hash(), ring.state_hash());
  // Every truncation, and a byte more, is refused.
  for (size_t n = 0; n < bytes.size(); ++n) {
    KeyRing cut;
    EXPECT_FALSE(KeyRing::decode(std::string_view(bytes).substr(0, n), &cut).is_ok()) << n;
  }
  KeyRing longer;
  EXPECT_FALSE(KeyRing::decode(bytes + "x", &longer).is_ok());
}

TEST(KeyRing, CommandsRoundTripAndGarbageIsRefused) {
  const GeneratedKey g = generate_key();
  const std::vector<Command> commands = {create(g, Role::merchant, "mch_7"),
                                         cmd::RevokeKey{g.id, "compromised"}, cmd::KeyUsed{g.id}};
  for (const Command& c : commands) {
    std::string bytes;
    encode_command(c, &bytes);
    Command back;
    ASSERT_TRUE(decode_command(bytes, &back).is_ok());
    EXPECT_EQ(back, c);
    for (size_t n = 0; n < bytes.size(); ++n) {
      Command cut;
      EXPECT_FALSE(decode_command(std::string_view(bytes).substr(0, n), &cut).is_ok());
    }
    std::string unknown = bytes;
    unknown[1] = 9;
    EXPECT_FALSE(decode_command(unknown, &back).is_ok());
  }
}

}  // namespace
}  // namespace keel::security
