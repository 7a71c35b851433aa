// The card vault end to end (docs/security.md, "The card vault"): cards stored through the API
// pay through keel-psp-sim, their CVC goes with the first authorization only, bad cards change
// nothing, a master key rotation re-wraps every card while keeld serves, and nothing secret is
// written anywhere keel writes.

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "net/http_client.h"
#include "testing/keeld_process.h"
#include "testing/payments_stack.h"
#include "testing/temp_dir.h"
#include "testing/webhook_receiver.h"

namespace keel::testing {
namespace {
namespace json = boost::json;

std::string error_code(const JsonResponse& r) {
  const json::value* e = r.body.is_object() ? r.body.get_object().if_contains("error") : nullptr;
  return e != nullptr ? str(*e, "code") : std::string();
}

// `prefix` completed to `length` digits with zeros and a Luhn check digit.
std::string card_number(std::string prefix, size_t length) {
  prefix.resize(length - 1, '0');
  int sum = 0;
  for (size_t i = 0; i < prefix.size(); ++i) {
    int d = prefix[prefix.size() - 1 - i] - '0';
    if (i % 2 == 0) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return prefix + static_cast<char>('0' + (10 - sum % 10) % 10);
}

std::string card_json(std::string_view number, int month, int year, std::string_view cvc = {}) {
  std::string out = R"({"number": ")" + std::string(number) + R"(", "exp_month": )" +
                    std::to_string(month) + R"(, "exp_year": )" + std::to_string(year);
  if (!cvc.empty()) out += R"(, "cvc": ")" + std::string(cvc) + "\"";
  return out + "}";
}

class VaultE2E : public ::testing::Test {
 protected:
  void start(PaymentsStackOptions o = {}) {
    o.keeld_toml_extra += "[vault]\nbin_file = \"" + bin_file() + "\"\n";
    ASSERT_TRUE(PaymentsStack::start(o, &stack_).is_ok());
    merchant_ = stack_->create_merchant();
  }
  static std::string bin_file() {
    return (std::filesystem::path(KEEL_SOURCE_DIR) / "config" / "bin-ranges.csv").string();
  }
  JsonResponse store(std::string_view card, std::string owner = {}) {
    if (owner.empty()) owner = R"("merchant": ")" + merchant_ + "\"";
    return stack_->post("/v1/payment_methods",
                        "{" + owner + R"(, "card": )" + std::string(card) + "}");
  }
  // Creates and confirms a card payment of the merchant with `pm`; returns the settled payment.
  JsonResponse pay(const std::string& pm, int64_t amount = 1250, std::string extra = {}) {
    const JsonResponse created = stack_->post(
        "/v1/payments",
        R"({"amount": )" + std::to_string(amount) + R"(, "currency": "USD", "merchant": ")" +
            merchant_ + R"(", "payment_method": ")" + pm + "\"" + extra + "}",
        new_key());
    EXPECT_EQ(created.status, 200u) << created.text;
    const std::string id = str(created.body, "id");
    stack_->post("/v1/payments/" + id + "/confirm", "{}", new_key());
    return stack_->wait_settled("/v1/payments/" + id);
  }
  // What the simulator saw of the payment's first authorization's card.
  json::object sim_card(const JsonResponse& payment) {
    const std::string attempt = str(payment.body.at("attempts").as_array().at(0), "id");
    const auto ops = stack_->sim_operations("cardco");
    const auto it = ops.find(attempt);
    if (it == ops.end() || !it->second.contains("card")) return {};
    return it->second.at("card").as_object();
  }
  json::object vault_status() { return stack_->get("/v1/admin/vault").body.as_object(); }

  std::unique_ptr<PaymentsStack> stack_;
  std::string merchant_;
};

TEST_F(VaultE2E, AStoredCardPaysItsCvcGoesWithTheFirstAuthorizationOnlyAndItSurvivesAKill9) {
  start();
  const std::string number = "4000056655665556";
  const JsonResponse stored = store(card_json("4000 0566 5566 5556", 12, 2040, "739"));
  ASSERT_EQ(stored.status, 200u) << stored.text;
  const std::string pm = str(stored.body, "id");
  ASSERT_EQ(pm.rfind("pm_", 0), 0u) << stored.text;
  const json::object& card = stored.body.at("card").as_object();
  EXPECT_EQ(card.at("brand"), "visa");
  EXPECT_EQ(card.at("last4"), "5556");
  EXPECT_EQ(card.at("country"), "US") << "from the BIN file";
  EXPECT_EQ(card.at("exp_month"), 12);
  EXPECT_EQ(card.at("exp_year"), 2040);
  EXPECT_EQ(str(stored.body, "merchant"), merchant_);
  // Neither the number nor the CVC comes back (a bare "739" may well stand in the random id, the
  // fingerprint or the time's nanoseconds: a CVC would be a string of its own).
  EXPECT_EQ(stored.text.find(number), std::string::npos);
  EXPECT_EQ(stored.text.find("\"739\""), std::string::npos);
  EXPECT_FALSE(card.contains("cvc"));
  EXPECT_FALSE(card.contains("number"));

  const JsonResponse first = pay(pm);
  ASSERT_EQ(str(first.body, "status"), "succeeded") << first.text;
  EXPECT_EQ(sim_card(first), (json::object{{"last4", "5556"}, {"cvc_check", "pass"}}));
  const JsonResponse second = pay(pm, 77);
  ASSERT_EQ(str(second.body, "status"), "succeeded") << second.text;
  EXPECT_EQ(sim_card(second), (json::object{{"last4", "5556"}, {"cvc_check", "unavailable"}}))
      << "the CVC served the first authorization only";

  // The same card stored again: another payment method, the same fingerprint.
  const JsonResponse again = store(card_json(number, 12, 2040));
  ASSERT_EQ(again.status, 200u) << again.text;
  EXPECT_NE(str(again.body, "id"), pm);
  EXPECT_EQ(again.body.at("card").at("fingerprint"), card.at("fingerprint"));

  // A card stored with its CVC, then keeld killed before the card is charged: after the
  // restart the card is there and pays, without a CVC.
  const JsonResponse late = store(card_json("5555555555554444", 1, 2041, "246"));
  ASSERT_EQ(late.status, 200u) << late.text;
  ASSERT_TRUE(stack_->restart_keeld(true).is_ok());
  const JsonResponse read = stack_->get("/v1/payment_methods/" + pm);
  ASSERT_EQ(read.status, 200u) << read.text;
  EXPECT_EQ(read.body, stored.body);
  const JsonResponse after = pay(str(late.body, "id"), 5);
  ASSERT_EQ(str(after.body, "status"), "succeeded") << after.text;
  EXPECT_EQ(sim_card(after), (json::object{{"last4", "4444"}, {"cvc_check", "unavailable"}}));
  const json::object status = vault_status();
  EXPECT_EQ(status.at("payment_methods"), 3);
  EXPECT_EQ(status.at("decryptions"), 1) << "counted since the restart";
  const std::string metrics = stack_->get("/metrics").text;
  EXPECT_NE(metrics.find("keel_vault_decryptions_total 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("keel_vault_active_key_version 1\n"), std::string::npos);
}

TEST_F(VaultE2E, BadCardsAndForeignCardsAnswerTheirErrorAndChangeNothing) {
  start();
  const std::string other = stack_->create_merchant();
  const std::string good = card_json("4242424242424242", 12, 2040);
  const struct {
    std::string body;
    std::string code;
  } cases[] = {
      {card_json("4242424242424241", 12, 2040), "card_number_invalid"},
      {card_json("42424242", 12, 2040), "card_number_invalid"},
      {card_json("4242x42424242424", 12, 2040), "card_number_invalid"},
      {card_json(card_number("4242", 18), 12, 2040), "card_number_invalid"},  // visa: no 18
      {card_json(card_number("37", 16), 12, 2040), "card_number_invalid"},    // amex: 15
      {card_json(card_number("99", 16), 12, 2040), "card_brand_unsupported"},
      {card_json("4242424242424242", 13, 2040), "card_expiry_invalid"},
      {card_json("4242424242424242", 0, 2040), "card_expiry_invalid"},
      {card_json("4242424242424242", 12, 1999), "card_expiry_invalid"},
      {card_json("4242424242424242", 1, 2020), "card_expired"},
      {card_json("4242424242424242", 12, 2040, "12"), "card_cvc_invalid"},
      {card_json("378282246310005", 12, 2040, "123"), "card_cvc_invalid"},
      {R"({"number": 4242424242424242, "exp_month": 12, "exp_year": 2040})", "card_number_invalid"},
      {R"({"exp_month": 12, "exp_year": 2040})", "parameter_missing"},
      {R"({"number": "4242424242424242", "exp_year": 2040})", "parameter_missing"},
      {R"({"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "pin": "1"})",
       "parameter_unknown"},
      {R"("4242424242424242")", "parameter_invalid"},
  };
  for (const auto& c : cases) {
    const JsonResponse r = store(c.body);
    EXPECT_EQ(r.status, 400u) << c.body << " " << r.text;
    EXPECT_EQ(error_code(r), c.code) << c.body << " " << r.text;
  }
  // The owner: an admin names exactly one, and it must exist.
  EXPECT_EQ(error_code(store(good, R"("merchant": ")" + merchant_ + R"(", "customer": "cus_x")")),
            "parameter_invalid");
  EXPECT_EQ(error_code(stack_->post("/v1/payment_methods", R"({"card": )" + good + "}")),
            "parameter_invalid");
  EXPECT_EQ(error_code(store(good, R"("merchant": "mch_nobody")")), "merchant_not_found");
  EXPECT_EQ(error_code(store(good, R"("customer": "cus_nobody")")), "customer_not_found");
  EXPECT_EQ(vault_status().at("payment_methods"), 0) << "nothing was stored";

  // Another merchant's card, an unknown pm_: not found, and no payment exists.
  const JsonResponse foreign = store(good, R"("merchant": ")" + other + "\"");
  ASSERT_EQ(foreign.status, 200u) << foreign.text;
  for (const std::string& pm : {str(foreign.body, "id"), std::string("pm_nothere")}) {
    const JsonResponse r = stack_->post("/v1/payments",
                                        R"({"amount": 100, "currency": "USD", "merchant": ")" +
                                            merchant_ + R"(", "payment_method": ")" + pm + "\"}",
                                        new_key());
    EXPECT_EQ(r.status, 400u) << r.text;
    EXPECT_EQ(error_code(r), "payment_method_not_found") << r.text;
  }
  EXPECT_EQ(stack_->get("/v1/payments?merchant=" + merchant_).body.at("data").as_array().size(),
            0u);
  // Top-ups take no vault card.
  const std::string customer = stack_->create_customer();
  const JsonResponse customer_card = store(good, R"("customer": ")" + customer + "\"");
  ASSERT_EQ(customer_card.status, 200u) << customer_card.text;
  const JsonResponse topup = stack_->post(
      "/v1/topups",
      R"({"customer": ")" + customer + R"(", "amount": 100, "currency": "USD", "source": ")" +
          str(customer_card.body, "id") + "\"}",
      new_key());
  EXPECT_EQ(error_code(topup), "parameter_invalid") << topup.text;
  EXPECT_EQ(vault_status().at("payment_methods"), 2);
}

// Detaching a card (its owner, or an admin): it is gone for everyone, a payment made with it
// before still confirms but fails card_unavailable without reaching the PSP, and another
// merchant cannot detach it (404, as for a card that does not exist).
TEST_F(VaultE2E, ADetachedCardIsGoneAndAPaymentMadeBeforeFailsWithoutAPspCall) {
  start();
  const JsonResponse stored = store(card_json("5555555555554444", 12, 2040, "321"));
  ASSERT_EQ(stored.status, 200u) << stored.text;
  const std::string pm = str(stored.body, "id");
  const JsonResponse created =
      stack_->post("/v1/payments",
                   R"({"amount": 800, "currency": "USD", "merchant": ")" + merchant_ +
                       R"(", "payment_method": ")" + pm + "\"}",
                   new_key());
  ASSERT_EQ(created.status, 200u) << created.text;
  const std::string payment = str(created.body, "id");

  const std::string other = stack_->create_merchant();
  const JsonResponse other_key =
      stack_->post("/v1/admin/keys", R"({"role": "merchant", "merchant": ")" + other + "\"}");
  net::HttpClientOptions o;
  o.endpoint = {"127.0.0.1", stack_->keeld().port()};
  o.api_key = str(other_key.body, "key");
  net::HttpClient as_other(o);
  net::HttpResponse res;
  ASSERT_TRUE(as_other.post("/v1/payment_methods/" + pm + "/detach", "", &res).is_ok());
  EXPECT_EQ(res.status, 404u) << res.body;
  EXPECT_EQ(stack_->get("/v1/payment_methods/" + pm).status, 200u);  // still there

  const JsonResponse bad = stack_->post("/v1/payment_methods/" + pm + "/detach", R"({"x": 1})");
  EXPECT_EQ(bad.status, 400u) << bad.text;
  const JsonResponse detached = stack_->post("/v1/payment_methods/" + pm + "/detach", "");
  ASSERT_EQ(detached.status, 200u) << detached.text;
  EXPECT_EQ(str(detached.body, "id"), pm);
  EXPECT_FALSE(str(detached.body, "detached_at").empty()) << detached.text;
  EXPECT_EQ(stack_->get("/v1/payment_methods/" + pm).status, 404u);
  EXPECT_EQ(stack_->post("/v1/payment_methods/" + pm + "/detach", "").status, 404u);
  EXPECT_EQ(vault_status().at("payment_methods"), 0);

  stack_->post("/v1/payments/" + payment + "/confirm", "{}", new_key());
  const JsonResponse settled = stack_->wait_settled("/v1/payments/" + payment);
  EXPECT_EQ(str(settled.body, "status"), "failed") << settled.text;
  EXPECT_EQ(str(settled.body, "error_code"), "card_unavailable") << settled.text;
  EXPECT_TRUE(stack_->sim_operations("cardco").empty());  // the PSP never saw it
  const JsonResponse again = stack_->post("/v1/payments",
                                          R"({"amount": 800, "currency": "USD", "merchant": ")" +
                                              merchant_ + R"(", "payment_method": ")" + pm + "\"}",
                                          new_key());
  EXPECT_EQ(error_code(again), "payment_method_not_found") << again.text;
}

TEST_F(VaultE2E, RotationRewrapsEveryCardWhileServingAndAMissingVersionStopsTheStart) {
  start();
  // More cards than one rotation page (256), every scheme and length, amounts at the edges.
  std::vector<std::string> pms;
  const std::vector<std::pair<std::string, size_t>> schemes = {
      {"4", 13},    {"4", 16},  {"4", 19},    {"51", 16}, {"2720", 16}, {"34", 15}, {"37", 15},
      {"6011", 16}, {"65", 19}, {"3528", 16}, {"62", 19}, {"36", 14},   {"300", 19}};
  for (size_t i = 0; i < 300; ++i) {
    const auto& [prefix, length] = schemes[i % schemes.size()];
    std::string digits = prefix + std::to_string(100000 + i);
    const JsonResponse r = store(card_json(card_number(digits, length), 1 + i % 12, 2030));
    ASSERT_EQ(r.status, 200u) << r.text;
    pms.push_back(str(r.body, "id"));
  }
  // A payment runs while the rotation walks the cards (on a connection of its own).
  JsonResponse rotated;
  std::thread rotation([&] { rotated = stack_->post_unshared("/v1/admin/vault/rotate", "{}"); });
  const JsonResponse during = pay(pms[7], 1);
  rotation.join();
  EXPECT_EQ(str(during.body, "status"), "succeeded") << during.text;
  ASSERT_EQ(rotated.status, 200u) << rotated.text;
  EXPECT_EQ(rotated.body.at("from_key_version"), 1);
  EXPECT_EQ(rotated.body.at("key_version"), 2);
  EXPECT_EQ(rotated.body.at("rewrapped"), 300);
  EXPECT_EQ(vault_status().at("payment_methods_by_key_version"), (json::object{{"2", 300}}));
  const JsonResponse finish = stack_->post("/v1/admin/vault/rotate", R"({"new_key": false})");
  EXPECT_EQ(finish.body.at("rewrapped"), 0) << finish.text;
  EXPECT_EQ(error_code(stack_->post("/v1/admin/vault/rotate", R"({"new_key": 1})")),
            "parameter_invalid");

  // Version 1 may go now: keeld restarts without it, and an old card pays.
  const auto key_file = stack_->data_dir() / "vault.keys";
  std::string text;
  {
    std::ifstream in(key_file);
    std::stringstream all;
    all << in.rdbuf();
    text = all.str();
  }
  const auto without = [&text](std::string_view version) {
    std::string out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("key " + std::string(version) + " ", 0) != 0) out += line + "\n";
    }
    return out;
  };
  const auto write_keys = [&key_file](const std::string& t) {
    std::ofstream(key_file, std::ios::trunc) << t;
  };
  write_keys(without("1"));
  ASSERT_TRUE(stack_->restart_keeld(false).is_ok());
  const JsonResponse paid = pay(pms[0], 9);
  EXPECT_EQ(str(paid.body, "status"), "succeeded") << paid.text;
  EXPECT_EQ(vault_status().at("key_versions"), (json::array{2}));

  // Without version 2, which every card needs, keeld refuses to start.
  write_keys(without("2"));
  stack_->keeld().stop();
  KeeldOptions alone;
  alone.data_dir = stack_->data_dir();
  std::unique_ptr<KeeldProcess> refused;
  EXPECT_FALSE(KeeldProcess::start(alone, &refused).is_ok());
  write_keys(text);
  ASSERT_TRUE(stack_->restart_keeld(false).is_ok());
  EXPECT_EQ(str(pay(pms[299], 3).body, "status"), "succeeded");
}

// --- The leak scan --------------------------------------------------------------------------

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// A secret and the forms it could take where keel writes: as is, in hex, in UTF-16LE, and in
// base64 at each of the three alignments it can have inside a longer encoded string (the middle
// of each encoding, which does not depend on the bytes around it).
std::vector<std::string> encodings(std::string_view secret) {
  std::vector<std::string> out = {std::string(secret)};
  std::string hex;
  std::string utf16;
  for (const char c : secret) {
    static constexpr char kDigits[] = "0123456789abcdef";
    hex.push_back(kDigits[static_cast<unsigned char>(c) >> 4]);
    hex.push_back(kDigits[static_cast<unsigned char>(c) & 15]);
    utf16.push_back(c);
    utf16.push_back('\0');
  }
  out.push_back(hex);
  out.push_back(utf16);
  for (size_t pad = 0; pad < 3; ++pad) {
    const std::string b = base64(std::string(pad, 'x') + std::string(secret) + "xx");
    // Skip the characters that mix the padding in, and the tail.
    const size_t from = (pad * 4 + 2) / 3 + 1;
    const size_t length = secret.size() * 4 / 3 - 2;
    if (b.size() > from + length) out.push_back(b.substr(from, length));
  }
  return out;
}

std::string read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream all;
  all << in.rdbuf();
  return all.str();
}

// One secret to look for: its name (for the report), and its forms.
struct Needle {
  std::string name;
  std::vector<std::string> forms;
};

// A CVC is a few digits: as a string field of keel's binary encodings (str16: a 2-byte length
// first), in JSON, and after "cvc" in any text.
Needle cvc_needle(std::string_view cvc) {
  std::string str16 = {static_cast<char>(cvc.size()), '\0'};
  str16 += cvc;
  return {"CVC " + std::string(cvc),
          {str16, "\"" + std::string(cvc) + "\"", "cvc=" + std::string(cvc),
           "cvc\":\"" + std::string(cvc), "cvc\": \"" + std::string(cvc)}};
}

TEST(LeakScan, NoCardNumberCvcOrSecretIsInAnythingAPaymentRunWrites) {
  TempDir scratch;
  PaymentsStackOptions o;
  o.keeld_log_file = scratch.path() / "keeld.log";
  o.keeld_toml_extra =
      "[vault]\nbin_file = \"" +
      (std::filesystem::path(KEEL_SOURCE_DIR) / "config" / "bin-ranges.csv").string() + "\"\n";
  std::unique_ptr<PaymentsStack> stack;
  ASSERT_TRUE(PaymentsStack::start(o, &stack).is_ok());
  const std::string webhook_secret = "whsec_leakscan_7f3a9c1e5b2d4086a1c3e5f7";
  WebhookReceiver receiver(webhook_secret);
  const std::string merchant = stack->create_merchant(receiver.url(), webhook_secret);
  ASSERT_FALSE(merchant.empty());
  // A merchant key: its secret is in the answer that created it, and must be nowhere else.
  const JsonResponse key =
      stack->post("/v1/admin/keys", R"({"role": "merchant", "merchant": ")" + merchant + "\"}");
  const std::string merchant_key = str(key.body, "key");
  ASSERT_FALSE(merchant_key.empty()) << key.text;
  net::HttpClientOptions mo;
  mo.endpoint = {"127.0.0.1", stack->keeld().port()};
  mo.api_key = merchant_key;
  net::HttpClient as_merchant(mo);

  std::vector<std::string> written;  // every answer and webhook body
  const auto call = [&](std::string_view method, const std::string& target, const std::string& body,
                        bool keyed) {
    net::HttpHeaders headers;
    if (keyed) headers.emplace_back("Idempotency-Key", new_key());
    net::HttpResponse res;
    EXPECT_TRUE(as_merchant.request(method, target, body, headers, &res).is_ok());
    written.push_back(res.body);
    json::error_code ec;
    json::value v = json::parse(res.body, ec);
    return ec ? json::value() : v;
  };
  const struct {
    std::string typed;  // as the customer typed it
    std::string number;
    std::string cvc;
  } cards[] = {{"3782 822463 10005", "378282246310005", "7319"},
               {"4000-0566-5566-5556", "4000056655665556", "739"},
               {"5555555555554444", "5555555555554444", ""}};
  std::vector<std::string> payments;
  for (const auto& c : cards) {
    const json::value pm = call("POST", "/v1/payment_methods",
                                R"({"card": )" + card_json(c.typed, 11, 2035, c.cvc) + "}", true);
    ASSERT_FALSE(str(pm, "id").empty()) << json::serialize(pm);
    for (const bool manual : {false, true}) {
      const json::value p =
          call("POST", "/v1/payments",
               R"({"amount": 4321, "currency": "EUR", "payment_method": ")" + str(pm, "id") +
                   (manual ? R"(", "capture_method": "manual"})" : "\"}"),
               true);
      const std::string id = str(p, "id");
      ASSERT_FALSE(id.empty()) << json::serialize(p);
      call("POST", "/v1/payments/" + id + "/confirm", "{}", true);
      written.push_back(stack->wait_settled("/v1/payments/" + id).text);
      if (manual) call("POST", "/v1/payments/" + id + "/capture", "{}", true);
      payments.push_back(id);
    }
  }
  call("POST", "/v1/refunds", R"({"payment": ")" + payments[0] + R"(", "amount": 21})", true);
  // The merchant's secret rotated (its answer shows the new secret, once: not scanned); both
  // sign during the overlap.
  const std::string rotated_secret = "whsec_leakscan_rotated_2b4d6f8a0c1e3a5c7e9f";
  ASSERT_EQ(stack
                ->post("/v1/merchants/" + merchant + "/webhook_secret/rotate",
                       R"({"secret": ")" + rotated_secret + R"(", "overlap_seconds": 600})")
                .status,
            200u);
  const JsonResponse late = stack->post("/v1/payments",
                                        R"({"amount": 99, "currency": "EUR", "merchant": ")" +
                                            merchant + R"(", "payment_method": "tok_visa"})",
                                        new_key());
  stack->post("/v1/payments/" + str(late.body, "id") + "/confirm", "{}", new_key());
  payments.push_back(str(late.body, "id"));
  // Bad input is answered without echoing the card.
  call("POST", "/v1/payment_methods",
       R"({"card": )" + card_json("4000056655665557", 11, 2035, "739") + "}", true);
  call("POST", "/v1/payment_methods",
       R"({"card": )" + card_json("4000056655665556", 11, 2035, "73x") + "}", true);
  for (const std::string& id : payments) call("GET", "/v1/payments/" + id, "", false);
  call("GET", "/v1/events?limit=100", "", false);
  written.push_back(stack->get("/metrics").text);
  written.push_back(stack->get("/v1/admin/vault").text);
  ASSERT_EQ(stack->post("/v1/admin/snapshot", "{}").status, 200u);
  // The merchant's webhooks: every payment's events delivered.
  stack->wait_settled("/v1/payments/" + payments.back());
  const size_t events =
      stack->get("/v1/events?limit=100&merchant=" + merchant).body.at("data").as_array().size();
  ASSERT_GE(events, 2 * payments.size());
  for (int i = 0; i < 200 && receiver.events().size() < events; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(receiver.events().size(), events);
  EXPECT_EQ(receiver.bad_signatures(), 0u) << "signed with the secrets the vault opened";
  for (const auto& e : receiver.events()) written.push_back(e.body);
  // A clean stop (everything synced and logged), then a restart on the same data: recovery
  // reads the snapshot and replays, and logs what it did.
  ASSERT_TRUE(stack->restart_keeld(false).is_ok());
  stack->keeld().stop();

  std::vector<Needle> needles;
  for (const auto& c : cards) needles.push_back({"card " + c.number, encodings(c.number)});
  for (const auto& c : cards) {
    needles.push_back({"typed card " + c.typed, encodings(c.typed)});
    if (!c.cvc.empty()) needles.push_back(cvc_needle(c.cvc));
  }
  const std::string admin_key = stack->keeld().admin_key();
  for (const std::string& k : {admin_key, merchant_key}) {
    needles.push_back({"API key " + k.substr(0, 21), encodings(k)});
    needles.push_back({"API key secret " + k.substr(0, 21), encodings(k.substr(22))});
    needles.push_back({"API key as Basic " + k.substr(0, 21), {base64(k + ":")}});
  }
  needles.push_back({"merchant webhook secret", encodings(webhook_secret)});
  needles.push_back({"rotated webhook secret", encodings(rotated_secret)});

  // Everything keel wrote: the data directory (journal, snapshots, the history store), the log,
  // and what went over the wire. Left out: the two files whose whole point is a secret,
  // DATA/bootstrap-keys (the keys of the first start, owner-only, to be deleted) and
  // DATA/vault.keys (the master keys).
  struct Place {
    std::string where;
    std::string bytes;
  };
  std::vector<Place> places;
  for (const auto& e : std::filesystem::recursive_directory_iterator(stack->data_dir())) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name == "bootstrap-keys" || name == "vault.keys") continue;
    places.push_back({e.path().string(), read_all(e.path())});
  }
  ASSERT_GT(places.size(), 3u);
  places.push_back({"keeld's log", read_all(o.keeld_log_file)});
  ASSERT_NE(places.back().bytes.find("vault: opened"), std::string::npos)
      << "the log is keeld's, and decryptions are logged";
  for (size_t i = 0; i < written.size(); ++i) {
    places.push_back({"answer or webhook " + std::to_string(i), written[i]});
  }
  size_t hits = 0;
  for (const Place& p : places) {
    for (const Needle& n : needles) {
      for (const std::string& form : n.forms) {
        if (p.bytes.find(form) != std::string::npos) {
          ++hits;
          ADD_FAILURE() << n.name << " (as " << json::serialize(json::value(form)) << ") in "
                        << p.where;
        }
      }
    }
  }
  EXPECT_EQ(hits, 0u);
}

// --- Personal data and erasure ---------------------------------------------------------------

// A customer's name, a top-up's source and a payout's destination are sealed under the
// customer's own key before any command holds them: nothing keel writes has them in clear,
// answers show them opened, and the PSP gets them in clear. Erasing the customer deletes the
// key: the name and the accounts read null everywhere, then and after a restart (even with the
// key file put back, as a restored backup or a crash before the delete would leave it), the
// wallet keeps its money, and new top-ups and payouts for them answer 409 customer_erased.
TEST(PersonalData, SealedUnderTheCustomersKeyAndShreddedByErasure) {
  TempDir scratch;
  PaymentsStackOptions o;
  o.keeld_log_file = scratch.path() / "keeld.log";
  std::unique_ptr<PaymentsStack> stack;
  ASSERT_TRUE(PaymentsStack::start(o, &stack).is_ok());
  const std::string name = "Zelda Quxworth-Erasable";
  const std::string bank = "GB33BUKB20201555555555";
  const std::string iban = "FR7630006000011234567890189";
  const JsonResponse created = stack->post("/v1/customers", R"({"name": ")" + name + "\"}");
  ASSERT_EQ(created.status, 200u) << created.text;
  const std::string c = str(created.body, "id");
  EXPECT_EQ(str(created.body, "name"), name);
  const auto flow = [&](std::string_view path, int64_t amount, const std::string& fields) {
    return stack->post(path,
                       R"({"customer": ")" + c + R"(", "amount": )" + std::to_string(amount) +
                           R"(, "currency": "EUR", )" + fields + "}",
                       new_key());
  };
  const auto topup = [&] {
    return flow("/v1/topups", 5000,
                R"("source": ")" + bank + R"(", "source_type": "bank_account")");
  };
  const auto payout = [&] {
    return flow("/v1/payouts", 2000,
                R"("destination": ")" + iban + R"(", "destination_type": "iban")");
  };
  const JsonResponse topped = topup();
  ASSERT_EQ(str(topped.body, "status"), "succeeded") << topped.text;
  EXPECT_EQ(str(topped.body, "source"), bank);
  const JsonResponse paid = payout();
  ASSERT_EQ(str(paid.body, "status"), "succeeded") << paid.text;
  EXPECT_EQ(str(paid.body, "destination"), iban);
  const std::string tu = str(topped.body, "id");
  const std::string po = str(paid.body, "id");
  // The PSP got them in clear: the connector opened them for the call.
  const auto ops = stack->sim_operations("cardco");
  const auto attempt = [](const JsonResponse& r) { return str(r.body.at("attempts").at(0), "id"); };
  ASSERT_TRUE(ops.contains(attempt(paid)) && ops.contains(attempt(topped)));
  EXPECT_EQ(str(ops.at(attempt(paid)), "counterparty"), "iban:" + iban);
  EXPECT_EQ(str(ops.at(attempt(topped)), "counterparty"), "bank_account:" + bank);
  const auto listed_destination = [&] {
    const JsonResponse list = stack->get("/v1/payouts?customer=" + c);
    EXPECT_EQ(list.body.at("data").as_array().size(), 1u) << list.text;
    return list.body.at("data").at(0).at("destination");
  };
  EXPECT_EQ(listed_destination(), json::value(iban));

  // Nothing keel wrote holds them in clear: the journal, a snapshot, the history store, the
  // customer key files, the log.
  ASSERT_EQ(stack->post("/v1/admin/snapshot", "{}").status, 200u);
  const std::vector<Needle> needles = {
      {"name", encodings(name)}, {"bank account", encodings(bank)}, {"IBAN", encodings(iban)}};
  const auto scan = [&] {
    size_t places = 0;
    std::vector<std::filesystem::path> files = {o.keeld_log_file};
    for (const auto& e : std::filesystem::recursive_directory_iterator(stack->data_dir())) {
      if (e.is_regular_file()) files.push_back(e.path());
    }
    for (const auto& f : files) {
      const std::string bytes = read_all(f);
      ++places;
      for (const Needle& n : needles) {
        for (const std::string& form : n.forms) {
          EXPECT_EQ(bytes.find(form), std::string::npos) << n.name << " in " << f;
        }
      }
    }
    return places;
  };
  EXPECT_GT(scan(), 4u);

  const std::string wallet = stack->get("/v1/wallets/" + c).text;
  const std::filesystem::path key_file = stack->data_dir() / "customer-keys" / (c + ".key");
  ASSERT_TRUE(std::filesystem::exists(key_file));
  const std::filesystem::path kept = scratch.path() / "kept.key";
  std::filesystem::copy_file(key_file, kept);

  EXPECT_EQ(stack->post("/v1/customers/cus_nobody/erase", "").status, 404u);
  const JsonResponse erased = stack->post("/v1/customers/" + c + "/erase", "");
  ASSERT_EQ(erased.status, 200u) << erased.text;
  EXPECT_TRUE(erased.body.at("name").is_null());
  EXPECT_FALSE(str(erased.body, "erased_at").empty());
  EXPECT_FALSE(std::filesystem::exists(key_file));
  EXPECT_NE(stack->get("/metrics").text.find("keel_personal_data_keys_erased_total 1\n"),
            std::string::npos);
  const auto shredded = [&] {
    EXPECT_TRUE(stack->get("/v1/customers/" + c).body.at("name").is_null());
    EXPECT_TRUE(stack->get("/v1/topups/" + tu).body.at("source").is_null());
    EXPECT_TRUE(stack->get("/v1/payouts/" + po).body.at("destination").is_null());
    EXPECT_TRUE(listed_destination().is_null());
    EXPECT_EQ(stack->get("/v1/wallets/" + c).text, wallet) << "the money stays";
    for (const JsonResponse& refused : {topup(), payout()}) {
      EXPECT_EQ(refused.status, 409u) << refused.text;
      EXPECT_EQ(error_code(refused), "customer_erased");
    }
  };
  shredded();
  EXPECT_EQ(stack->post("/v1/customers/" + c + "/erase", "").status, 200u) << "again: the same";

  // The key file back, as a restored backup of the directory would bring it: the next start
  // deletes it again before serving.
  std::filesystem::copy_file(kept, key_file);
  ASSERT_TRUE(stack->restart_keeld(false).is_ok());
  EXPECT_FALSE(std::filesystem::exists(key_file));
  shredded();
  EXPECT_NE(read_all(o.keeld_log_file).find("deleted the keys of 1 erased customer"),
            std::string::npos);
  std::filesystem::remove(kept);
  scan();
}

}  // namespace
}  // namespace keel::testing
