#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "core/time.h"
#include "vault/bin_table.h"
#include "vault/card.h"
#include "vault/envelope.h"
#include "vault/keys.h"
#include "vault/payment_methods.h"
#include "vault/personal_data.h"
#include "vault/sealed_secret.h"
#include "vault/vault.h"

namespace keel::vault {
namespace {

// 2026-12-07T00:00:00Z.
const Timestamp kNow = *parse_rfc3339("2026-12-07T00:00:00Z");

// A counter for randomness: deterministic, and each call's bytes differ.
RandomFill counting_random() {
  auto next = std::make_shared<uint8_t>(0);
  return [next](uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) p[i] = (*next)++;
  };
}

MasterKeys keys_of(std::string_view text) {
  MasterKeys k;
  const Status s = MasterKeys::parse(text, &k);
  EXPECT_TRUE(s.is_ok()) << s.message();
  return k;
}

const std::string kHexA(64, 'a');
const std::string kHexB(64, 'b');
const std::string kHexC(64, 'c');

TEST(Card, LuhnAcceptsTheSchemesTestNumbersAndRejectsOneDigitOff) {
  for (const char* n : {"4242424242424242", "5555555555554444", "378282246310005",
                        "6011111111111117", "3566002020360505", "36227206271667",
                        "2223003122003222", "4222222222222", "6200000000000005"}) {
    EXPECT_TRUE(luhn_valid(n)) << n;
    std::string off = n;
    off.back() = off.back() == '9' ? '0' : static_cast<char>(off.back() + 1);
    EXPECT_FALSE(luhn_valid(off)) << off;
  }
}

TEST(Card, BrandsByPrefixWithTheirLengths) {
  const struct {
    const char* number;
    CardBrand brand;
  } cases[] = {
      {"4242424242424242", CardBrand::visa},       {"4222222222222", CardBrand::visa},
      {"5555555555554444", CardBrand::mastercard}, {"2223003122003222", CardBrand::mastercard},
      {"378282246310005", CardBrand::amex},        {"6011111111111117", CardBrand::discover},
      {"3566002020360505", CardBrand::jcb},        {"6200000000000005", CardBrand::unionpay},
      {"36227206271667", CardBrand::diners},       {"6221260000000000", CardBrand::discover},
  };
  for (const auto& c : cases) {
    ASSERT_EQ(brand_of(c.number), c.brand) << c.number;
    EXPECT_TRUE(length_allowed(c.brand, std::string_view(c.number).size())) << c.number;
  }
  EXPECT_EQ(brand_of("9999999999999995"), std::nullopt);
  EXPECT_EQ(brand_of("12345"), std::nullopt);
  EXPECT_FALSE(length_allowed(CardBrand::amex, 16));
  EXPECT_FALSE(length_allowed(CardBrand::visa, 15));
  EXPECT_FALSE(length_allowed(CardBrand::mastercard, 19));
}

TEST(Card, CheckNamesEachProblem) {
  const auto problem = [](std::string_view number, int m, int y, std::string_view cvc) {
    return check_card(number, m, y, cvc, kNow).problem;
  };
  EXPECT_EQ(problem("4242424242424242", 12, 2030, "123"), CardProblem::none);
  EXPECT_EQ(problem("4242 4242 4242 4242", 12, 2030, ""), CardProblem::none);
  EXPECT_EQ(problem("4242-4242-4242-4242", 12, 2030, "123"), CardProblem::none);
  EXPECT_EQ(check_card("4242 4242-4242 4242", 1, 2027, "", kNow).digits, "4242424242424242");
  EXPECT_EQ(problem("", 12, 2030, ""), CardProblem::number_invalid);
  EXPECT_EQ(problem(" 4242424242424242", 12, 2030, ""), CardProblem::number_invalid);
  EXPECT_EQ(problem("4242  4242424242424242", 12, 2030, ""), CardProblem::number_invalid);
  EXPECT_EQ(problem("4242424242424242-", 12, 2030, ""), CardProblem::number_invalid);
  EXPECT_EQ(problem("42424242424x4242", 12, 2030, ""), CardProblem::number_invalid);
  EXPECT_EQ(problem("42424242426", 12, 2030, ""), CardProblem::number_invalid);  // 11 digits
  EXPECT_EQ(problem("42424242424242424242", 12, 2030, ""), CardProblem::number_invalid);
  EXPECT_EQ(problem("4242424242424241", 12, 2030, ""), CardProblem::number_checksum);
  EXPECT_EQ(problem("9999999999999995", 12, 2030, ""), CardProblem::brand_unsupported);
  EXPECT_EQ(problem("424242424242424242", 12, 2030, ""), CardProblem::length_invalid);  // 18
  EXPECT_EQ(problem("4242424242424242", 0, 2030, ""), CardProblem::expiry_invalid);
  EXPECT_EQ(problem("4242424242424242", 13, 2030, ""), CardProblem::expiry_invalid);
  EXPECT_EQ(problem("4242424242424242", 1, 1999, ""), CardProblem::expiry_invalid);
  EXPECT_EQ(problem("4242424242424242", 1, 2100, ""), CardProblem::expiry_invalid);
  // Valid through the end of its month: December 2026 is still good on 7 December 2026.
  EXPECT_EQ(problem("4242424242424242", 12, 2026, ""), CardProblem::none);
  EXPECT_EQ(problem("4242424242424242", 11, 2026, ""), CardProblem::expired);
  EXPECT_EQ(problem("4242424242424242", 12, 2025, ""), CardProblem::expired);
  EXPECT_EQ(problem("4242424242424242", 12, 2030, "12"), CardProblem::cvc_invalid);
  EXPECT_EQ(problem("4242424242424242", 12, 2030, "1234"), CardProblem::cvc_invalid);
  EXPECT_EQ(problem("4242424242424242", 12, 2030, "12a"), CardProblem::cvc_invalid);
  EXPECT_EQ(problem("378282246310005", 12, 2030, "1234"), CardProblem::none);
  EXPECT_EQ(problem("378282246310005", 12, 2030, "123"), CardProblem::cvc_invalid);
  for (int p = 1; p <= static_cast<int>(CardProblem::cvc_invalid); ++p) {
    EXPECT_FALSE(card_problem_text(static_cast<CardProblem>(p)).empty()) << p;
  }
}

TEST(BinTable, LongestPrefixWinsAndUnknownIsEmpty) {
  BinTable t;
  ASSERT_TRUE(BinTable::parse("# sample\n4-4,US\n424242,GB\n42424243-42424299,DE\n\n"
                              "510000-559999,FR\r\n378282,US\n",
                              &t)
                  .is_ok());
  EXPECT_EQ(t.size(), 5u);
  EXPECT_EQ(t.country_of("4242424242424242"), "GB");
  EXPECT_EQ(t.country_of("4242424342424242"), "DE");
  EXPECT_EQ(t.country_of("4000056655665556"), "US");
  EXPECT_EQ(t.country_of("5555555555554444"), "FR");
  EXPECT_EQ(t.country_of("6011111111111117"), "");
  EXPECT_EQ(t.country_of("378282246310005"), "US");
}

TEST(BinTable, BadFilesFailNamingTheLine) {
  BinTable t;
  ASSERT_TRUE(BinTable::parse("4,US\n", &t).is_ok());
  for (const char* text : {"4\n", "4,usa\n", "4,us\n", "4-45,US\n", "5-4,US\n", "4a,US\n", ",US\n",
                           "123456789012,US\n"}) {
    const Status s = BinTable::parse(text, &t);
    EXPECT_FALSE(s.is_ok()) << text;
    EXPECT_NE(s.message().find("line 1"), std::string::npos) << s.message();
  }
  const Status overlap = BinTable::parse("400000-450000,US\n449999-460000,GB\n", &t);
  ASSERT_FALSE(overlap.is_ok());
  EXPECT_NE(overlap.message().find("overlap"), std::string::npos);
  EXPECT_EQ(t.size(), 1u) << "a failed parse leaves the table as it was";
}

TEST(MasterKeys, ParsesLinesOrSemicolonsAndTheHighestVersionIsActive) {
  const MasterKeys k =
      keys_of("# keys\nfingerprint " + kHexA + "\nkey 2 " + kHexB + "\nkey 7 " + kHexC + "\n");
  EXPECT_EQ(k.active_version(), 7u);
  EXPECT_EQ(k.versions(), (std::vector<uint32_t>{2, 7}));
  ASSERT_NE(k.key(2), nullptr);
  EXPECT_EQ((*k.key(2))[0], 0xbb);
  EXPECT_EQ(k.key(3), nullptr);
  const MasterKeys env = keys_of("fingerprint " + kHexA + ";key 1 " + kHexB);
  EXPECT_EQ(env.active_version(), 1u);
}

TEST(MasterKeys, RefusesMalformedEntries) {
  MasterKeys k;
  for (const std::string& text : {
           std::string("key 1 ") + kHexB,                                     // no fingerprint key
           "fingerprint " + kHexA,                                            // no key
           "fingerprint " + kHexA + "\nkey 0 " + kHexB,                       // version 0
           "fingerprint " + kHexA + "\nkey 1 " + kHexB + "\nkey 1 " + kHexC,  // twice
           "fingerprint " + kHexA + "\nkey 1 " + kHexB.substr(2),             // short key
           "fingerprint " + kHexA + "\nkey 1 " + kHexB + "zz",                // long key
           "fingerprint " + kHexA + "\nkey x " + kHexB,                       // bad version
           "fingerprint " + kHexA + "\nkey 4294967296 " + kHexB,              // too large
           "fingerprint " + kHexA + "\nfingerprint " + kHexA + "\nkey 1 " + kHexB,
           "fingerprint " + kHexA + "\nsecret 1 " + kHexB,
       }) {
    EXPECT_FALSE(MasterKeys::parse(text, &k).is_ok()) << text;
  }
}

TEST(MasterKeys, KeyFileMustBeOwnerOnlyAndRotationAddsAVersion) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("keel-vault-keys-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "vault.keys").string();
  { std::ofstream(path) << new_key_file_text(counting_random()); }
  MasterKeys k;
  ::chmod(path.c_str(), 0644);
  const Status open = MasterKeys::load(path, &k);
  ASSERT_FALSE(open.is_ok());
  EXPECT_NE(open.message().find("chmod 600"), std::string::npos);
  ::chmod(path.c_str(), 0600);
  const Status loaded = MasterKeys::load(path, &k);
  ASSERT_TRUE(loaded.is_ok()) << loaded.message();
  EXPECT_EQ(k.active_version(), 1u);
  uint32_t version = 0;
  ASSERT_TRUE(add_master_key(path, counting_random(), &version).is_ok());
  EXPECT_EQ(version, 2u);
  MasterKeys after;
  ASSERT_TRUE(MasterKeys::load(path, &after).is_ok()) << "the new file is owner-only too";
  EXPECT_EQ(after.versions(), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(*after.key(1), *k.key(1));
  EXPECT_EQ(after.fingerprint_key(), k.fingerprint_key());
  EXPECT_FALSE(MasterKeys::load((dir / "missing").string(), &k).is_ok());
  std::filesystem::remove_all(dir);
}

TEST(Envelope, OpensWhatItSealedAndNothingChanged) {
  const MasterKeys k = keys_of("fingerprint " + kHexA + "\nkey 1 " + kHexB);
  const RandomFill random = counting_random();
  const Envelope e = seal(k, "pm_1", "4242424242424242", random);
  EXPECT_EQ(e.key_version, 1u);
  EXPECT_EQ(e.ciphertext.find("4242"), std::string::npos);
  std::string plain;
  ASSERT_TRUE(open(k, "pm_1", e, &plain).is_ok());
  EXPECT_EQ(plain, "4242424242424242");
  // Every byte of both ciphertexts is covered: a flipped bit fails.
  for (std::string Envelope::*part : {&Envelope::wrapped_key, &Envelope::ciphertext}) {
    for (size_t i = 0; i < (e.*part).size(); ++i) {
      Envelope bad = e;
      (bad.*part)[i] = static_cast<char>((bad.*part)[i] ^ 0x01);
      EXPECT_FALSE(open(k, "pm_1", bad, &plain).is_ok()) << i;
    }
  }
  EXPECT_FALSE(open(k, "pm_2", e, &plain).is_ok()) << "bound to the record id";
  Envelope other_version = e;
  other_version.key_version = 2;
  EXPECT_FALSE(open(k, "pm_1", other_version, &plain).is_ok());
  Envelope truncated = e;
  truncated.ciphertext.resize(10);
  EXPECT_FALSE(open(k, "pm_1", truncated, &plain).is_ok());
  // Two seals of one number differ (fresh data key and nonces).
  EXPECT_NE(seal(k, "pm_1", "4242424242424242", random).ciphertext, e.ciphertext);
}

TEST(Envelope, RewrapMovesTheDataKeyToTheNewVersionAndFingerprintsStay) {
  const MasterKeys v1 = keys_of("fingerprint " + kHexA + "\nkey 1 " + kHexB);
  const MasterKeys v2 = keys_of("fingerprint " + kHexA + "\nkey 1 " + kHexB + "\nkey 2 " + kHexC);
  const MasterKeys only2 = keys_of("fingerprint " + kHexA + "\nkey 2 " + kHexC);
  const RandomFill random = counting_random();
  Envelope e = seal(v1, "pm_1", "5555555555554444", random);
  std::string wrapped;
  ASSERT_TRUE(rewrap(v2, "pm_1", e, 2, random, &wrapped).is_ok());
  EXPECT_FALSE(rewrap(v1, "pm_1", e, 2, random, &wrapped).is_ok()) << "no version 2 in v1";
  ASSERT_TRUE(rewrap(v2, "pm_1", e, 2, random, &wrapped).is_ok());
  std::string plain;
  EXPECT_FALSE(open(only2, "pm_1", e, &plain).is_ok()) << "still under version 1";
  e.key_version = 2;
  e.wrapped_key = wrapped;
  ASSERT_TRUE(open(only2, "pm_1", e, &plain).is_ok());
  EXPECT_EQ(plain, "5555555555554444");
  EXPECT_EQ(card_fingerprint(v1, "5555555555554444"), card_fingerprint(only2, "5555555555554444"));
  EXPECT_NE(card_fingerprint(v1, "5555555555554444"), card_fingerprint(v1, "4242424242424242"));
  EXPECT_EQ(card_fingerprint(v1, "1").size(), 35u);
}

PaymentMethod method(std::string id, const MasterKeys& k, const RandomFill& random) {
  PaymentMethod m;
  m.id = std::move(id);
  m.owner_kind = OwnerKind::merchant;
  m.owner_id = "mch_1";
  m.brand = CardBrand::visa;
  m.country = "US";
  m.last4 = "4242";
  m.exp_month = 12;
  m.exp_year = 2030;
  m.fingerprint = card_fingerprint(k, "4242424242424242");
  m.created_at = kNow;
  m.sealed = seal(k, m.id, "4242424242424242", random);
  return m;
}

TEST(PaymentMethods, StoreRewrapAndEncodeRoundTrip) {
  const MasterKeys k = keys_of("fingerprint " + kHexA + "\nkey 1 " + kHexB + "\nkey 2 " + kHexC);
  const MasterKeys v1 = keys_of("fingerprint " + kHexA + "\nkey 1 " + kHexB);
  const RandomFill random = counting_random();
  PaymentMethods pms;
  const std::string id_a = "pm_" + std::string(24, 'a');
  const std::string id_b = "pm_" + std::string(24, 'b');
  ASSERT_EQ(pms.store(method(id_a, v1, random)), StoreResult::stored);
  ASSERT_EQ(pms.store(method(id_b, k, random)), StoreResult::stored);
  EXPECT_EQ(pms.store(method(id_a, v1, random)), StoreResult::exists);
  PaymentMethod bad = method("pm_" + std::string(24, 'c'), k, random);
  bad.last4 = "42a2";
  EXPECT_EQ(pms.store(bad), StoreResult::invalid);
  bad = method("pay_" + std::string(23, 'c'), k, random);
  EXPECT_EQ(pms.store(bad), StoreResult::invalid);
  EXPECT_EQ(pms.size(), 2u);
  EXPECT_EQ(pms.by_key_version(), (std::map<uint32_t, uint64_t>{{1, 1}, {2, 1}}));

  const auto pending = pms.not_under(2, "", 10);
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0]->id, id_a);
  std::string wrapped;
  ASSERT_TRUE(rewrap(k, id_a, pending[0]->sealed, 2, random, &wrapped).is_ok());
  // A stale re-wrap (from the wrong version) and an unknown id change nothing.
  EXPECT_EQ(pms.rewrap({{id_a, 2, 2, wrapped}, {"pm_" + std::string(24, 'f'), 1, 2, wrapped}}), 0u);
  EXPECT_EQ(pms.rewrap({{id_a, 1, 2, wrapped}}), 1u);
  EXPECT_EQ(pms.rewrap({{id_a, 1, 2, wrapped}}), 0u) << "applied once";
  EXPECT_TRUE(pms.not_under(2, "", 10).empty());
  std::string plain;
  ASSERT_TRUE(open(k, id_a, pms.find(id_a)->sealed, &plain).is_ok());
  EXPECT_EQ(plain, "4242424242424242");

  std::string bytes;
  ByteWriter w(&bytes);
  pms.encode(w);
  ByteReader r(bytes);
  PaymentMethods copy;
  ASSERT_TRUE(PaymentMethods::decode(r, &copy).is_ok());
  EXPECT_TRUE(r.at_end());
  ASSERT_EQ(copy.size(), 2u);
  EXPECT_EQ(*copy.find(id_a), *pms.find(id_a));
  EXPECT_EQ(*copy.find(id_b), *pms.find(id_b));
  // Every truncation fails.
  for (size_t n = 0; n < bytes.size(); n += 7) {
    ByteReader cut(std::string_view(bytes).substr(0, n));
    PaymentMethods x;
    EXPECT_FALSE(PaymentMethods::decode(cut, &x).is_ok() && cut.at_end()) << n;
  }
}

VaultOptions vault_options(std::string key_file = {}) {
  VaultOptions o;
  o.keys = keys_of("fingerprint " + kHexA + "\nkey 1 " + kHexB);
  EXPECT_TRUE(BinTable::parse("424242,GB\n", &o.bins).is_ok());
  o.key_file = std::move(key_file);
  o.random = counting_random();
  return o;
}

TEST(Vault, PreparedCardsOpenWithTheirCvcUntilTheFirstAuthorizationOrTheTtl) {
  Vault v(vault_options());
  const std::string id = "pm_" + std::string(24, '1');
  const Vault::Prepared bad =
      v.prepare(id, "4242424242424241", 12, 2030, OwnerKind::merchant, "mch_1", "123", kNow);
  EXPECT_EQ(bad.problem, CardProblem::number_checksum);
  EXPECT_EQ(v.stats().cards_stored_by_api, 0u);
  const Vault::Prepared p =
      v.prepare(id, "4242 4242 4242 4242", 12, 2030, OwnerKind::merchant, "mch_1", "123", kNow);
  ASSERT_EQ(p.problem, CardProblem::none);
  EXPECT_TRUE(well_formed(p.method));
  EXPECT_EQ(p.method.last4, "4242");
  EXPECT_EQ(p.method.country, "GB");
  EXPECT_EQ(p.method.brand, CardBrand::visa);
  v.hold_cvc(id, "123", kNow);
  OpenCard card;
  ASSERT_TRUE(v.open(p.method, kNow + kNanosPerSecond, &card).is_ok());
  EXPECT_EQ(card.number, "4242424242424242");
  EXPECT_EQ(card.cvc, "123");
  EXPECT_EQ(card.exp_month, 12);
  EXPECT_EQ(card.exp_year, 2030);
  v.forget_cvc(id);
  ASSERT_TRUE(v.open(p.method, kNow + kNanosPerSecond, &card).is_ok());
  EXPECT_EQ(card.cvc, "") << "forgotten after the first authorization settled";
  v.hold_cvc(id, "123", kNow);
  ASSERT_TRUE(v.open(p.method, kNow + 10 * 60 * kNanosPerSecond, &card).is_ok());
  EXPECT_EQ(card.cvc, "") << "ten minutes later the CVC is gone";
  EXPECT_EQ(v.stats().cvcs_held, 0u);
  EXPECT_EQ(v.stats().decryptions, 3u);
  PaymentMethod changed = p.method;
  changed.sealed.ciphertext[kNonceBytes] ^= 1;
  EXPECT_FALSE(v.open(changed, kNow, &card).is_ok());
  EXPECT_EQ(v.stats().decryption_failures, 1u);
  // A keyed digest, not a plain hash: another fingerprint key gives another digest.
  VaultOptions other = vault_options();
  other.keys = keys_of("fingerprint " + kHexC + "\nkey 1 " + kHexB);
  EXPECT_NE(v.keyed_digest("body"), Vault(std::move(other)).keyed_digest("body"));
  EXPECT_EQ(v.keyed_digest("body"), v.keyed_digest("body"));
}

TEST(Vault, CvcsAreBoundedOldestFirst) {
  VaultOptions o = vault_options();
  o.cvcs_max = 2;
  Vault v(std::move(o));
  v.hold_cvc("pm_a", "111", kNow);
  v.hold_cvc("pm_b", "222", kNow + 1);
  v.hold_cvc("pm_c", "333", kNow + 2);
  EXPECT_EQ(v.stats().cvcs_held, 2u);
}

TEST(Vault, RotationAddsAKeyAndRewrapsOntoIt) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("keel-vault-rotate-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "vault.keys").string();
  { std::ofstream(path) << "fingerprint " << kHexA << "\nkey 1 " << kHexB << "\n"; }
  ::chmod(path.c_str(), 0600);
  Vault v(vault_options(path));
  const auto m = std::make_shared<const PaymentMethod>(
      v.prepare("pm_" + std::string(24, '2'), "5555555555554444", 1, 2031, OwnerKind::customer,
                "cus_1", "", kNow)
          .method);
  uint32_t version = 0;
  ASSERT_TRUE(v.add_key(&version).is_ok());
  EXPECT_EQ(version, 2u);
  EXPECT_EQ(v.active_version(), 2u);
  std::vector<Rewrap> rewraps;
  ASSERT_TRUE(v.rewrap({m}, &rewraps).is_ok());
  ASSERT_EQ(rewraps.size(), 1u);
  EXPECT_EQ(rewraps[0].from_version, 1u);
  EXPECT_EQ(rewraps[0].to_version, 2u);
  PaymentMethods pms;
  ASSERT_EQ(pms.store(*m), StoreResult::stored);
  ASSERT_EQ(pms.rewrap(rewraps), 1u);
  OpenCard card;
  ASSERT_TRUE(v.open(*pms.find(m->id), kNow, &card).is_ok());
  EXPECT_EQ(card.number, "5555555555554444");
  EXPECT_TRUE(v.check_versions(pms.by_key_version()).is_ok());
  const Status missing = v.check_versions({{1, 1}, {9, 3}});
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.message().find("version 9"), std::string::npos);
  Vault from_env(vault_options());
  EXPECT_FALSE(from_env.add_key(&version).is_ok());
  std::filesystem::remove_all(dir);
}

TEST(SealedSecret, OpensSealedAndClearSecretsAndReseals) {
  const MasterKeys v1 = keys_of("fingerprint " + kHexA + "\nkey 1 " + kHexB);
  const MasterKeys both = keys_of("fingerprint " + kHexA + "\nkey 1 " + kHexB + "\nkey 2 " + kHexC);
  const RandomFill random = counting_random();
  const std::string record = webhook_secret_record("mch_1");
  const std::string sealed = seal_secret(v1, record, "whsec_abc", random);
  EXPECT_TRUE(is_sealed_secret(sealed));
  EXPECT_EQ(sealed.size(), kSealedSecretOverhead + 9);
  EXPECT_EQ(sealed_secret_version(sealed), 1u);
  EXPECT_EQ(sealed.find("whsec_abc"), std::string::npos);
  std::string out;
  ASSERT_TRUE(open_secret(v1, record, sealed, &out).is_ok());
  EXPECT_EQ(out, "whsec_abc");
  EXPECT_FALSE(open_secret(v1, webhook_secret_record("mch_2"), sealed, &out).is_ok());
  for (size_t i = 4; i < sealed.size(); ++i) {
    std::string bad = sealed;
    bad[i] = static_cast<char>(bad[i] ^ 0x04);
    EXPECT_FALSE(open_secret(both, record, bad, &out).is_ok()) << i;
  }
  EXPECT_FALSE(open_secret(v1, record, sealed.substr(0, 20), &out).is_ok());
  // A secret in clear (data from before the vault) is itself, and not sealed.
  ASSERT_TRUE(open_secret(v1, record, "whsec_old", &out).is_ok());
  EXPECT_EQ(out, "whsec_old");
  EXPECT_FALSE(is_sealed_secret("whsec_old"));
  EXPECT_EQ(sealed_secret_version("whsec_old"), std::nullopt);
  // Re-sealed onto version 2: opens without version 1; a clear one is sealed.
  std::string moved;
  ASSERT_TRUE(reseal_secret(both, record, sealed, 2, random, &moved).is_ok());
  EXPECT_EQ(sealed_secret_version(moved), 2u);
  const MasterKeys only2 = keys_of("fingerprint " + kHexA + "\nkey 2 " + kHexC);
  ASSERT_TRUE(open_secret(only2, record, moved, &out).is_ok());
  EXPECT_EQ(out, "whsec_abc");
  std::string sealed_now;
  ASSERT_TRUE(reseal_secret(both, record, "whsec_old", 2, random, &sealed_now).is_ok());
  ASSERT_TRUE(open_secret(only2, record, sealed_now, &out).is_ok());
  EXPECT_EQ(out, "whsec_old");
  EXPECT_FALSE(reseal_secret(both, record, "whsec_old", 1, random, &sealed_now).is_ok())
      << "a clear secret is sealed under the active version only";
  // The vault's view: re-seals skip what is already under the active version.
  Vault v(vault_options());
  std::vector<SecretReseal> reseals;
  const std::string mine = v.seal_webhook_secret("mch_1", "whsec_new");
  ASSERT_TRUE(
      v.reseal_webhook_secrets({{"mch_1", mine}, {"mch_2", "whsec_clear"}}, &reseals).is_ok());
  ASSERT_EQ(reseals.size(), 1u);
  EXPECT_EQ(reseals[0].merchant_id, "mch_2");
  ASSERT_TRUE(v.open_webhook_secret("mch_2", reseals[0].to, &out).is_ok());
  EXPECT_EQ(out, "whsec_clear");
  EXPECT_EQ(v.stats().secrets_opened, 1u);
  EXPECT_TRUE(v.check_secret_versions({{0, 3}, {1, 1}}).is_ok());
  EXPECT_FALSE(v.check_secret_versions({{4, 1}}).is_ok());
}

// --- Personal data under per-customer keys ---------------------------------------------------

TEST(PersonalData, SealedTextOpensOnlyUnderItsKeyForItsRecordAndField) {
  Key key{};
  Key other{};
  other[0] = 1;
  const RandomFill random = counting_random();
  const std::string iban = "FR7630006000011234567890189";
  const std::string sealed = seal_personal(key, kPayoutDestinationField, "po_1", iban, random);
  EXPECT_TRUE(is_sealed_personal(sealed));
  EXPECT_EQ(sealed.size(), sealed_personal_length(iban.size()));
  EXPECT_EQ(sealed.find(iban), std::string::npos);
  std::string out;
  ASSERT_TRUE(open_personal(key, kPayoutDestinationField, "po_1", sealed, &out).is_ok());
  EXPECT_EQ(out, iban);
  // The same value sealed twice differs (a fresh nonce each time).
  EXPECT_NE(seal_personal(key, kPayoutDestinationField, "po_1", iban, random), sealed);
  // Another record, another field, another key, a changed digit, a cut, no prefix: nothing.
  EXPECT_FALSE(open_personal(key, kPayoutDestinationField, "po_2", sealed, &out).is_ok());
  EXPECT_FALSE(open_personal(key, kTopupSourceField, "po_1", sealed, &out).is_ok());
  EXPECT_FALSE(open_personal(other, kPayoutDestinationField, "po_1", sealed, &out).is_ok());
  std::string changed = sealed;
  changed[changed.size() / 2] = changed[changed.size() / 2] == '0' ? '1' : '0';
  EXPECT_FALSE(open_personal(key, kPayoutDestinationField, "po_1", changed, &out).is_ok());
  EXPECT_FALSE(
      open_personal(key, kPayoutDestinationField, "po_1", sealed.substr(0, 40), &out).is_ok());
  EXPECT_FALSE(open_personal(key, kPayoutDestinationField, "po_1", "pd1.zz", &out).is_ok());
  EXPECT_FALSE(open_personal(key, kPayoutDestinationField, "po_1", iban, &out).is_ok());
  EXPECT_EQ(out, iban) << "a failed open leaves the output alone";
  // Empty and the longest values seal too.
  for (const size_t n : {size_t{0}, size_t{1}, size_t{1024}}) {
    const std::string v(n, 'x');
    const std::string s = seal_personal(key, kCustomerNameField, "cus_1", v, random);
    EXPECT_EQ(s.size(), sealed_personal_length(n));
    ASSERT_TRUE(open_personal(key, kCustomerNameField, "cus_1", s, &out).is_ok());
    EXPECT_EQ(out, v);
  }
}

class CustomerKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("keel-customer-keys-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    key_file_ = (dir_ / "vault.keys").string();
    { std::ofstream(key_file_) << "fingerprint " << kHexA << "\nkey 1 " << kHexB << "\n"; }
    ::chmod(key_file_.c_str(), 0600);
    vault_ = std::make_unique<Vault>(vault_options(key_file_));
    ASSERT_TRUE(open(&keys_).is_ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  Status open(std::unique_ptr<CustomerKeys>* out, const Vault* vault = nullptr) {
    CustomerKeysOptions o;
    o.dir = (dir_ / "customer-keys").string();
    o.cache_max = 2;
    return CustomerKeys::open(o, vault != nullptr ? vault : vault_.get(), out);
  }
  std::filesystem::path file(std::string_view customer, std::string_view ext) const {
    return dir_ / "customer-keys" / (std::string(customer) + std::string(ext));
  }

  std::filesystem::path dir_;
  std::string key_file_;
  std::unique_ptr<Vault> vault_;
  std::unique_ptr<CustomerKeys> keys_;
};

TEST_F(CustomerKeysTest, AKeyIsMadeOnceKeptSealedOwnerOnlyAndFoundAgainAfterAReopen) {
  using Found = CustomerKeys::Found;
  Key key{};
  Found found = Found::ok;
  ASSERT_TRUE(keys_->get("cus_1", false, &key, &found).is_ok());
  EXPECT_EQ(found, Found::missing);
  EXPECT_FALSE(std::filesystem::exists(file("cus_1", ".key")));
  ASSERT_TRUE(keys_->get("cus_1", true, &key, &found).is_ok());
  ASSERT_EQ(found, Found::ok);
  struct stat st {};
  ASSERT_EQ(::stat(file("cus_1", ".key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir_ / "customer-keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // The file holds the key sealed under the master keys, not the key.
  std::ifstream in(file("cus_1", ".key"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(is_sealed_secret(bytes));
  EXPECT_EQ(bytes.find(std::string(reinterpret_cast<const char*>(key.data()), key.size())),
            std::string::npos);
  std::string sealed;
  ASSERT_TRUE(
      keys_->seal("cus_1", kCustomerNameField, "cus_1", "Ada Lovelace", &sealed, &found).is_ok());
  // Past the cache's bound, and from a store opened again: the same key.
  for (const char* other : {"cus_2", "cus_3", "cus_4"}) {
    ASSERT_TRUE(keys_->get(other, true, &key, &found).is_ok());
  }
  std::unique_ptr<CustomerKeys> again;
  ASSERT_TRUE(open(&again).is_ok());
  std::string name;
  ASSERT_TRUE(again->open("cus_1", kCustomerNameField, "cus_1", sealed, &name, &found).is_ok());
  EXPECT_EQ(found, Found::ok);
  EXPECT_EQ(name, "Ada Lovelace");
  // A value written before sealing reads as it is; another customer's key opens nothing.
  ASSERT_TRUE(again->open("cus_9", kCustomerNameField, "cus_9", "Old Name", &name, &found).is_ok());
  EXPECT_EQ(name, "Old Name");
  EXPECT_FALSE(again->open("cus_2", kCustomerNameField, "cus_1", sealed, &name, &found).is_ok());
  EXPECT_EQ(again->stats().open_failures, 1u);
  // Under other master keys the key files do not open.
  VaultOptions foreign = vault_options();
  foreign.keys = keys_of("fingerprint " + kHexA + "\nkey 1 " + kHexC);
  const Vault other_vault(std::move(foreign));
  std::unique_ptr<CustomerKeys> stranger;
  ASSERT_TRUE(open(&stranger, &other_vault).is_ok());
  EXPECT_FALSE(stranger->get("cus_1", false, &key, &found).is_ok());
  // Ids that cannot be customers name no file.
  for (const char* bad : {"", "../cus_1", "cus_1.key", "cus 1", "a/b"}) {
    EXPECT_FALSE(keys_->get(bad, true, &key, &found).is_ok()) << bad;
    EXPECT_FALSE(keys_->erase(bad).is_ok()) << bad;
  }
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_ / "customer-keys"),
                          std::filesystem::directory_iterator()),
            4);
}

TEST_F(CustomerKeysTest, AnErasedCustomersKeyIsGoneForGoodAndNoNewOneIsMade) {
  using Found = CustomerKeys::Found;
  std::string sealed;
  Found found = Found::missing;
  ASSERT_TRUE(keys_
                  ->seal("cus_1", kPayoutDestinationField, "po_1", "DE89370400440532013000",
                         &sealed, &found)
                  .is_ok());
  ASSERT_EQ(found, Found::ok);
  EXPECT_FALSE(keys_->erased("cus_1"));
  ASSERT_TRUE(keys_->erase("cus_1").is_ok());
  EXPECT_TRUE(keys_->erased("cus_1"));
  EXPECT_FALSE(std::filesystem::exists(file("cus_1", ".key")));
  EXPECT_TRUE(std::filesystem::exists(file("cus_1", ".erased")));
  EXPECT_EQ(keys_->stats().keys_erased, 1u);
  std::string out = "untouched";
  ASSERT_TRUE(keys_->open("cus_1", kPayoutDestinationField, "po_1", sealed, &out, &found).is_ok());
  EXPECT_EQ(found, Found::erased);
  EXPECT_TRUE(out.empty());
  // No new key for them, from this store or one opened again.
  Key key{};
  ASSERT_TRUE(keys_->get("cus_1", true, &key, &found).is_ok());
  EXPECT_EQ(found, Found::erased);
  std::unique_ptr<CustomerKeys> again;
  ASSERT_TRUE(open(&again).is_ok());
  ASSERT_TRUE(again->seal("cus_1", kCustomerNameField, "cus_1", "Ada", &out, &found).is_ok());
  EXPECT_EQ(found, Found::erased);
  EXPECT_FALSE(std::filesystem::exists(file("cus_1", ".key")));
  // Erasing again, or a customer who never had a key, succeeds and changes nothing more.
  ASSERT_TRUE(again->erase("cus_1").is_ok());
  ASSERT_TRUE(again->erase("cus_never").is_ok());
  EXPECT_TRUE(again->erased("cus_never"));
  EXPECT_EQ(again->stats().keys_erased, 0u);
  // A key file put back (a restored backup of the directory) is deleted by the next erase.
  { std::ofstream(file("cus_1", ".key")) << "restored"; }
  ASSERT_TRUE(again->erase("cus_1").is_ok());
  EXPECT_FALSE(std::filesystem::exists(file("cus_1", ".key")));
}

TEST_F(CustomerKeysTest, RotationReWrapsEveryKeyFileOntoTheNewMasterKey) {
  using Found = CustomerKeys::Found;
  std::string sealed;
  Found found = Found::missing;
  ASSERT_TRUE(keys_->seal("cus_1", kCustomerNameField, "cus_1", "Ada", &sealed, &found).is_ok());
  Key key{};
  ASSERT_TRUE(keys_->get("cus_2", true, &key, &found).is_ok());
  ASSERT_TRUE(keys_->erase("cus_2").is_ok());
  uint32_t version = 0;
  ASSERT_TRUE(vault_->add_key(&version).is_ok());
  uint64_t moved = 0;
  ASSERT_TRUE(keys_->rewrap(&moved).is_ok());
  EXPECT_EQ(moved, 1u);  // the erased customer has no file left to move
  std::ifstream in(file("cus_1", ".key"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(sealed_secret_version(bytes), std::optional<uint32_t>(2));
  ASSERT_TRUE(keys_->rewrap(&moved).is_ok());
  EXPECT_EQ(moved, 0u);
  // With version 1 gone from the key file, the name still opens.
  std::ifstream keys_in(key_file_);
  std::string text;
  for (std::string line; std::getline(keys_in, line);) {
    if (!line.starts_with("key 1 ")) text += line + "\n";
  }
  VaultOptions only_v2 = vault_options();
  only_v2.keys = keys_of(text);
  ASSERT_EQ(only_v2.keys.versions(), std::vector<uint32_t>{2});
  const Vault v2(std::move(only_v2));
  std::unique_ptr<CustomerKeys> again;
  std::string name;
  ASSERT_TRUE(open(&again, &v2).is_ok());
  ASSERT_TRUE(again->open("cus_1", kCustomerNameField, "cus_1", sealed, &name, &found).is_ok());
  EXPECT_EQ(name, "Ada");
}

}  // namespace
}  // namespace keel::vault
