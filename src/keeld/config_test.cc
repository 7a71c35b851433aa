#include "keeld/config.h"
#include "keeld/certificates.h"
#include "testing/temp_dir.h"
#include "testing/test_pki.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <algorithm>

namespace keel::keeld {
namespace {

TEST(ParseListen, HostAndPort) {
  api::ServerOptions s;
  ASSERT_TRUE(parse_listen("127.0.0.1:0", &s).is_ok());
  EXPECT_EQ(s.host, "127.0.0.1");
  EXPECT_EQ(s.port, 0);
  ASSERT_TRUE(parse_listen("[::1]:8080", &s).is_ok());
  EXPECT_EQ(s.host, "::1");
  EXPECT_EQ(s.port, 8080);
  EXPECT_EQ(base_url(s, 8081), "http://[::1]:8081");
  ASSERT_TRUE(parse_listen("localhost:65535", &s).is_ok());
  EXPECT_EQ(base_url(s, 1), "http://localhost:1");
  for (const char* bad :
       {"", "8080", ":8080", "host:", "host:65536", "host:-1", "host:80x", "[::1:80", "[]:80"}) {
    EXPECT_FALSE(parse_listen(bad, &s).is_ok()) << bad;
  }
}

TEST(ApplyToml, SetsEverySetting) {
  KeeldConfig c;
  const Status s = apply_toml(R"(
listen = "0.0.0.0:9000"
data = "/var/lib/keel"
io_threads = 4
log_level = "debug"
[http]
body_bytes_max = 1024
header_bytes_max = 4096
idle_timeout_ms = 500
[engine]
queue_capacity = 10
batch_events_max = 20
snapshot_interval_events = 0
segment_bytes_max = 1048576
tick_interval_ms = 5
history = "memory"
store_cache_mb = 16
archive_dir = "/var/lib/keel-archive"
)",
                              "keeld.toml", &c);
  ASSERT_TRUE(s.is_ok()) << s.message();
  EXPECT_EQ(c.server.host, "0.0.0.0");
  EXPECT_EQ(c.server.port, 9000);
  EXPECT_EQ(c.engine.data_dir, "/var/lib/keel");
  EXPECT_EQ(c.server.io_threads, 4u);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.server.body_bytes_max, 1024u);
  EXPECT_EQ(c.server.header_bytes_max, 4096u);
  EXPECT_EQ(c.server.idle_timeout_ms, 500);
  EXPECT_EQ(c.engine.queue_capacity, 10u);
  EXPECT_EQ(c.engine.batch_events_max, 20u);
  EXPECT_EQ(c.engine.snapshot_interval_events, 0u);
  EXPECT_EQ(c.engine.segment_bytes_max, 1048576u);
  EXPECT_EQ(c.engine.tick_interval_ms, 5);
  EXPECT_TRUE(c.engine.history_in_memory);
  EXPECT_EQ(c.engine.store_cache_mb, 16u);
  EXPECT_EQ(c.engine.archive_dir, "/var/lib/keel-archive");
}

TEST(ApplyToml, HistoryIsStoreOrMemory) {
  KeeldConfig c;
  EXPECT_FALSE(c.engine.history_in_memory);  // the store by default
  const Status s = apply_toml("[engine]\nhistory = \"disk\"\n", "keeld.toml", &c);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("engine.history"), std::string::npos) << s.message();
  EXPECT_FALSE(c.engine.history_in_memory);
  EXPECT_FALSE(apply_toml("[engine]\nstore_cache_mb = 0\n", "keeld.toml", &c).is_ok());
}

TEST(ApplyToml, MemoryMaxMbIsABudgetInMebibytesOrNone) {
  KeeldConfig c;
  EXPECT_EQ(c.engine.memory_max_bytes, 0u);  // no budget by default
  ASSERT_TRUE(apply_toml("[engine]\nmemory_max_mb = 512\n", "keeld.toml", &c).is_ok());
  EXPECT_EQ(c.engine.memory_max_bytes, uint64_t{512} << 20);
  for (const char* bad : {"-1", "16777217", "\"1G\"", "1.5"}) {
    const Status s =
        apply_toml(std::string("[engine]\nmemory_max_mb = ") + bad + "\n", "keeld.toml", &c);
    ASSERT_FALSE(s.is_ok()) << bad;
    EXPECT_NE(s.message().find("memory_max_mb"), std::string::npos) << s.message();
    EXPECT_EQ(c.engine.memory_max_bytes, uint64_t{512} << 20) << bad;  // unchanged
  }
}

TEST(ApplyToml, RoutingChannelsAndSettings) {
  KeeldConfig c;
  const Status s = apply_toml(R"(
[channels.cardco]
url = "http://127.0.0.1:9090"
currencies = ["USD", "EUR"]
flows = ["card_payment", "topup"]
min_amount = 50
max_amount = 1000000
priority = -2
cost_bps = 290
cost_fixed = 30
concurrency_max = 64
total_timeout_ms = 2000
[channels.bankco]
url = "http://127.0.0.1:9091"
[routing]
max_tries = 4
retry_budget_pct = 10
seed = 99
breaker_min_calls = 5
breaker_slow_call_ms = 1000
)",
                              "keeld.toml", &c);
  ASSERT_TRUE(s.is_ok()) << s.message();
  finish_payments_config(&c);
  ASSERT_TRUE(c.engine.channels);
  ASSERT_EQ(c.engine.channels->size(), 2u);
  const routing::ChannelDef& bank = (*c.engine.channels)[0];  // by name
  EXPECT_EQ(bank.name, "bankco");
  EXPECT_EQ(bank.flows, routing::kAllFlows);
  EXPECT_TRUE(bank.currencies.empty());
  const routing::ChannelDef& card = (*c.engine.channels)[1];
  EXPECT_EQ(card.currencies.size(), 2u);
  EXPECT_EQ(card.flows, routing::flow_bit(routing::Flow::card_payment) |
                            routing::flow_bit(routing::Flow::topup));
  EXPECT_EQ(card.min_amount, 50);
  EXPECT_EQ(card.max_amount, 1'000'000);
  EXPECT_EQ(card.priority, -2);
  EXPECT_EQ(card.cost_bps, 290);
  EXPECT_EQ(card.cost_fixed, 30);
  EXPECT_EQ(card.concurrency_max, 64u);
  EXPECT_EQ(card.timeout_ms, 2000);
  EXPECT_EQ(c.engine.routing.max_tries, 4u);
  EXPECT_EQ(c.engine.routing.retry_budget_pct, 10u);
  EXPECT_EQ(c.engine.routing.seed, 99u);
  EXPECT_TRUE(c.routing_seed_set);
  EXPECT_EQ(c.engine.routing.breaker.min_calls, 5u);
  EXPECT_EQ(c.engine.routing.breaker.slow_call_ms, 1000);
  EXPECT_TRUE(c.payments.routing);
}

TEST(ApplyToml, WithoutARoutingTableRoutingIsOff) {
  KeeldConfig c;
  ASSERT_TRUE(
      apply_toml("[channels.cardco]\nurl = \"http://127.0.0.1:9090\"\ncost_bps = 5\n", "k", &c)
          .is_ok());
  finish_payments_config(&c);
  ASSERT_TRUE(c.engine.channels);
  EXPECT_TRUE(c.engine.channels->empty());
  EXPECT_FALSE(c.payments.routing);
}

TEST(ApplyToml, RejectsBadRoutingSettings) {
  const std::string channel = "[channels.cardco]\nurl = \"http://127.0.0.1:9090\"\n";
  for (const auto& [text, expected] : std::vector<std::pair<std::string, std::string>>{
           {channel + "currencies = [\"XYZ\"]\n", "currencies: XYZ"},
           {channel + "currencies = \"USD\"\n", "currencies must be an array"},
           {channel + "flows = [\"cards\"]\n", "flows: cards"},
           {channel + "flows = []\n", "flows must name"},
           {channel + "min_amount = 0\n", "min_amount"},
           {channel + "min_amount = 10\nmax_amount = 5\n", "max_amount"},
           {channel + "cost_bps = 10001\n", "cost_bps"},
           {channel + "priority = 5000\n", "priority"},
           {channel + "concurrency_max = 0\n", "concurrency_max"},
           {channel + "[routing]\nmax_tries = 0\n", "max_tries"},
           {channel + "[routing]\nmax_tries = 17\n", "max_tries"},
           {channel + "[routing]\nbreaker_failure_rate_pct = 101\n", "failure_rate_pct"},
           {channel + "[routing]\nbackoff_base_ms = 500\nbackoff_max_ms = 100\n", "backoff"},
           {channel + "[routing]\nexplore_permille = 1001\n", "explore_permille"},
           {channel + "[routing]\nsurprise = 1\n", "unknown setting routing.surprise"},
       }) {
    KeeldConfig c;
    const Status s = apply_toml(text, "k", &c);
    EXPECT_FALSE(s.is_ok()) << text;
    EXPECT_NE(s.message().find(expected), std::string::npos) << s.message();
  }
}

TEST(ApplyToml, RejectsBadFiles) {
  for (const char* bad : {
           "listen = ",                    // syntax
           "lisen = \"127.0.0.1:1\"",      // unknown key
           "[engine]\nqueue_capacty = 1",  // unknown key in a section
           "io_threads = \"2\"",           // wrong type
           "io_threads = 0",               // out of range
           "io_threads = 2.5",             // not an integer
           "listen = \"nowhere\"",         // bad listen
           "log_level = \"loud\"",         // unknown level
           "http = 5",                     // not a table
           "[http]\nbody_bytes_max = -1",  // negative
       }) {
    KeeldConfig c;
    const Status s = apply_toml(bad, "k.toml", &c);
    EXPECT_FALSE(s.is_ok()) << bad;
    EXPECT_EQ(s.message().rfind("k.toml", 0), 0u) << s.message();
  }
}

TEST(ApplyToml, RateLimitsPerRoleAndTheirErrors) {
  KeeldConfig c;
  const api::RateLimits defaults = c.auth.rate_limits;
  const Status s = apply_toml(R"(
[auth.rate_limits.merchant]
per_second = 50
burst = 80
[auth.rate_limits.ledger]
per_second = 1000
)",
                              "k.toml", &c);
  ASSERT_TRUE(s.is_ok()) << s.message();
  const auto limit = [&c](security::Role r) { return c.auth.rate_limits[static_cast<size_t>(r)]; };
  EXPECT_EQ(limit(security::Role::merchant).per_second, 50);
  EXPECT_EQ(limit(security::Role::merchant).burst, 80);
  EXPECT_EQ(limit(security::Role::ledger).per_second, 1000);
  // Roles not named keep their defaults.
  EXPECT_EQ(limit(security::Role::customer_app).per_second,
            defaults[static_cast<size_t>(security::Role::customer_app)].per_second);
  for (const char* bad : {
           "auth = 1",                                       // not a table
           "[auth]\nlimits = 1",                             // unknown key
           "[auth]\nrate_limits = 5",                        // not a table of roles
           "[auth.rate_limits.root]\nper_second = 1",        // no such role
           "[auth.rate_limits.merchant]\nper_second = -1",   // negative
           "[auth.rate_limits.merchant]\nper_second = 1.5",  // not an integer
           "[auth.rate_limits.merchant]\nrate = 1",          // unknown key
           "[admin]\ncontrols = 1",                          // not a bool
           "[testing]\nmovable_clock = \"yes\"",             // not a bool
           "[testing]\nclock = true",                        // unknown key
       }) {
    KeeldConfig bad_config;
    const Status e = apply_toml(bad, "k.toml", &bad_config);
    EXPECT_FALSE(e.is_ok()) << bad;
    EXPECT_EQ(e.message().rfind("k.toml", 0), 0u) << e.message();
  }
}

TEST(ApplyToml, TheMovableClockIsOffUnlessTestingTurnsItOn) {
  KeeldConfig c;
  ASSERT_TRUE(apply_toml("[admin]\ncontrols = true\n", "k.toml", &c).is_ok());
  EXPECT_FALSE(c.movable_clock);
  EXPECT_TRUE(c.payments.admin_controls);
  ASSERT_TRUE(apply_toml("[testing]\nmovable_clock = true\n", "k.toml", &c).is_ok());
  EXPECT_TRUE(c.movable_clock);
}

TEST(ApplyToml, PaymentsChannelsAndFees) {
  KeeldConfig c;
  const Status s = apply_toml(R"(
[payments]
default_channel = "bankco"
settle_wait_ms = 500
processing_deadline_s = 60
resolve_initial_ms = 100
[channels.cardco]
url = "http://127.0.0.1:9090"
api_key = "sk_c"
webhook_secret = "whsec_c"
total_timeout_ms = 2000
[channels.bankco]
url = "http://127.0.0.1:9091"
psp = "bank"
[channels.altpay]
url = "http://127.0.0.1:9092"
webhook_secret = "whsec_new"
previous_webhook_secret = "whsec_old"
[fees.default]
bps = 100
fixed = 5
[fees.wallet]
bps = 0
)",
                              "k.toml", &c);
  ASSERT_TRUE(s.is_ok()) << s.message();
  finish_payments_config(&c);
  ASSERT_EQ(c.psp.channels.size(), 3u);
  EXPECT_EQ(c.payments.channels,
            (std::vector<std::string>{"bankco", "altpay", "cardco"}));  // default first
  EXPECT_EQ(c.payments.webhook_secrets.at("cardco"), std::vector<std::string>{"whsec_c"});
  // A secret being rotated: both are accepted, the current one first.
  EXPECT_EQ(c.payments.webhook_secrets.at("altpay"),
            (std::vector<std::string>{"whsec_new", "whsec_old"}));
  EXPECT_FALSE(c.payments.webhook_secrets.contains("bankco"));
  EXPECT_EQ(c.payments.settle_wait_ms, 500);
  EXPECT_EQ(c.engine.payments.deadlines.processing_s, 60);
  EXPECT_EQ(c.psp.resolve_initial_ms, 100);
  const dispatch::ChannelConfig& bank =
      *std::find_if(c.psp.channels.begin(), c.psp.channels.end(),
                    [](const dispatch::ChannelConfig& ch) { return ch.name == "bankco"; });
  EXPECT_EQ(bank.client.psp, "bank");
  EXPECT_EQ(bank.client.port, 9091);
  ASSERT_TRUE(c.engine.fees.has_value());
  EXPECT_EQ(c.engine.fees->default_rate.basis_points, 100);
  EXPECT_EQ(c.engine.fees->channels.at("wallet").basis_points, 0);

  for (const char* bad : {
           "[channels.x]\nurl = \"ftp://a:1\"",                                    // not http(s)
           "[channels.x]\nurl = \"http://a:1\"\nca_file = \"/c.pem\"",             // CA, no https
           "[channels.x]\nurl = \"https://a:1\"\nca_file = \"/nonexistent.pem\"",  // no CA file
           "[channels.x]\nurl = \"https://a:1\"\nclient_cert_file = \"/c.pem\"",   // no key
           "[channels.x]\nurl = \"http://a\"",                                     // no port
           "[channels.X]\nurl = \"http://a:1\"",                                   // bad name
           "[channels.x]\nurl = \"http://a:1\"\nfoo = 1",                          // unknown key
           "[payments]\ndefault_channel = \"nope\"",                            // no such channel
           "[fees.default]\nbps = 10001",                                       // above 100%
           "[fees.default]\nfixed = -1",                                        // negative
           "[payments]\nprocessing_deadline_s = 5\nnot_found_grace_ms = 5000",  // grace too long
       }) {
    KeeldConfig bad_config;
    EXPECT_FALSE(apply_toml(bad, "k.toml", &bad_config).is_ok()) << bad;
  }
}

TEST(ParseCommandLine, FlagsOverrideTheFile) {
  const std::string path = ::testing::TempDir() + "keeld_config_test.toml";
  {
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("listen = \"127.0.0.1:9000\"\ndata = \"/from/file\"\nio_threads = 3\n", f);
    std::fclose(f);
  }
  const char* argv[] = {"keeld",       "--config",     path.c_str(), "--listen",
                        "127.0.0.1:0", "--io-threads", "5"};
  KeeldConfig c;
  std::string error;
  ASSERT_EQ(parse_command_line(7, argv, &c, &error), ParseOutcome::run) << error;
  EXPECT_EQ(c.server.port, 0);
  EXPECT_EQ(c.server.io_threads, 5u);
  EXPECT_EQ(c.engine.data_dir, "/from/file");
  std::remove(path.c_str());
}

TEST(ParseCommandLine, Errors) {
  KeeldConfig c;
  std::string error;
  const char* unknown[] = {"keeld", "--lisen", "x"};
  EXPECT_EQ(parse_command_line(3, unknown, &c, &error), ParseOutcome::exit_error);
  EXPECT_FALSE(error.empty());
  const char* threads[] = {"keeld", "--io-threads", "0"};
  EXPECT_EQ(parse_command_line(3, threads, &c, &error), ParseOutcome::exit_error);
  const char* listen[] = {"keeld", "--listen", "127.0.0.1"};
  EXPECT_EQ(parse_command_line(3, listen, &c, &error), ParseOutcome::exit_error);
  const char* missing[] = {"keeld", "--config", "/nonexistent/keeld.toml"};
  EXPECT_EQ(parse_command_line(3, missing, &c, &error), ParseOutcome::exit_error);
}

}  // namespace
}  // namespace keel::keeld

namespace keel::keeld {
namespace {

TEST(ApplyToml, TlsTakesACertificateAndKeyAndOptionallyClientCas) {
  KeeldConfig c;
  ASSERT_TRUE(
      apply_toml("[tls]\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\n", "t", &c).is_ok());
  ASSERT_TRUE(c.server.tls.has_value());
  EXPECT_EQ(c.server.tls->cert_file, "/c.pem");
  EXPECT_EQ(c.server.tls->client_ca_file, "");
  EXPECT_EQ(base_url(c.server, 8443), "https://127.0.0.1:8443");
  KeeldConfig plain;
  EXPECT_FALSE(plain.server.tls.has_value());
  EXPECT_EQ(base_url(plain.server, 8080), "http://127.0.0.1:8080");
  for (const char* bad :
       {"[tls]\ncert_file = \"/c.pem\"\n", "[tls]\nkey_file = \"/k.pem\"\n",
        "[tls]\ncert_file = 1\nkey_file = \"/k\"\n",
        "[tls]\ncert_file = \"/c\"\nkey_file = \"/k\"\nciphers = \"x\"\n", "tls = 3\n"}) {
    KeeldConfig d;
    const Status s = apply_toml(bad, "t", &d);
    EXPECT_FALSE(s.is_ok()) << bad;
    EXPECT_NE(s.message().find("tls"), std::string::npos) << s.message();
  }
}

TEST(ApplyToml, AnHttpsChannelTrustsItsCaFile) {
  testing::TempDir dir;
  testing::TestPki pki;
  ASSERT_TRUE(testing::TestPki::create(dir.path(), "psp", &pki).is_ok());
  KeeldConfig c;
  const std::string toml = "[channels.cardco]\nurl = \"https://psp.example:8443\"\nca_file = \"" +
                           pki.ca_cert().string() + "\"\n";
  const Status s = apply_toml(toml, "t", &c);
  ASSERT_TRUE(s.is_ok()) << s.message();
  const auto& client = c.psp.channels.at(0).client;
  EXPECT_EQ(client.host, "psp.example");
  EXPECT_EQ(client.port, 8443);
  ASSERT_TRUE(client.tls.has_value());
  EXPECT_EQ(client.tls->ca_file, pki.ca_cert().string());
  KeeldConfig plain;
  ASSERT_TRUE(apply_toml("[channels.cardco]\nurl = \"http://a:1\"\n", "t", &plain).is_ok());
  EXPECT_FALSE(plain.psp.channels.at(0).client.tls.has_value());
}

TEST(ApplyToml, AnApiKeyFileGivesTheKeysInOrder) {
  testing::TempDir dir;
  const auto file = dir.path() / "cardco.keys";
  std::ofstream(file) << "# rotating\nsk_new\nsk_old\n";
  std::filesystem::permissions(
      file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  KeeldConfig c;
  const std::string toml =
      "[channels.cardco]\nurl = \"http://a:1\"\napi_key_file = \"" + file.string() + "\"\n";
  const Status s = apply_toml(toml, "t", &c);
  ASSERT_TRUE(s.is_ok()) << s.message();
  const dispatch::ChannelConfig& ch = c.psp.channels.at(0);
  EXPECT_EQ(ch.api_key_file, file.string());
  EXPECT_EQ(ch.client.api_key, "sk_new");
  EXPECT_EQ(ch.client.fallback_api_keys, std::vector<std::string>{"sk_old"});

  KeeldConfig both;
  const Status e = apply_toml(toml + "api_key = \"sk_x\"\n", "t", &both);
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.message().find("exclude each other"), std::string::npos) << e.message();
  std::filesystem::permissions(file, std::filesystem::perms::group_read,
                               std::filesystem::perm_options::add);
  KeeldConfig shared;
  const Status g = apply_toml(toml, "t", &shared);
  ASSERT_FALSE(g.is_ok());
  EXPECT_NE(g.message().find("chmod 600"), std::string::npos) << g.message();
  EXPECT_EQ(g.message().find("sk_"), std::string::npos) << g.message();
}

TEST(ApplyToml, WebhooksAllowNetworksAndTrustACaFile) {
  testing::TempDir dir;
  testing::TestPki pki;
  ASSERT_TRUE(testing::TestPki::create(dir.path(), "hooks", &pki).is_ok());
  KeeldConfig plain;
  ASSERT_TRUE(apply_toml("", "t", &plain).is_ok());
  EXPECT_TRUE(plain.psp.webhook_destinations.allowed_networks.empty());  // global only
  EXPECT_EQ(plain.psp.webhook_tls.ca_file, "");
  KeeldConfig c;
  const std::string toml =
      "[webhooks]\nallow_networks = [\"127.0.0.0/8\", \"fd00::/8\"]\n"
      "ca_file = \"" +
      pki.ca_cert().string() + "\"\n";
  const Status s = apply_toml(toml, "t", &c);
  ASSERT_TRUE(s.is_ok()) << s.message();
  ASSERT_EQ(c.psp.webhook_destinations.allowed_networks.size(), 2u);
  EXPECT_EQ(c.psp.webhook_destinations.allowed_networks[0].prefix, 8);
  EXPECT_EQ(c.psp.webhook_tls.ca_file, pki.ca_cert().string());
  for (const char* bad :
       {"[webhooks]\nallow_networks = [\"localhost\"]\n",
        "[webhooks]\nallow_networks = [\"10.0.0.1/8\"]\n",
        "[webhooks]\nallow_networks = \"127.0.0.0/8\"\n", "[webhooks]\nallow_networks = [1]\n",
        "[webhooks]\nca_file = \"/nonexistent/ca.pem\"\n", "[webhooks]\nfollow_redirects = true\n",
        "webhooks = 1\n"}) {
    KeeldConfig d;
    const Status e = apply_toml(bad, "t", &d);
    EXPECT_FALSE(e.is_ok()) << bad;
    EXPECT_NE(e.message().find("webhooks"), std::string::npos) << e.message();
  }
}

TEST(WatchCertificates, AnExpiredServerCertificateIsRefusedAndEveryExpiryIsListed) {
  testing::TempDir dir;
  testing::TestPki pki;
  ASSERT_TRUE(testing::TestPki::create(dir.path(), "t", &pki).is_ok());
  const int64_t now = 1'900'000'000;
  testing::TestCertificate valid, expired, soon;
  ASSERT_TRUE(pki.issue("valid", {"localhost"}, now - 86400, now + 90 * 86400, &valid).is_ok());
  ASSERT_TRUE(pki.issue("expired", {"localhost"}, now - 90 * 86400, now - 1, &expired).is_ok());
  ASSERT_TRUE(pki.issue("soon", {"localhost"}, now - 86400, now + 86400, &soon).is_ok());
  std::vector<std::pair<std::string, int64_t>> out;
  net::TlsServerConfig tls{valid.cert.string(), valid.key.string(), pki.ca_cert().string()};
  ASSERT_TRUE(watch_certificates(tls, "", &out, now).is_ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], (std::pair<std::string, int64_t>{"server", now + 90 * 86400}));
  EXPECT_EQ(out[1].first, "client_ca");
  ASSERT_TRUE(watch_certificates(tls, "admin_", &out, now).is_ok());  // appended, named
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[2].first, "admin_server");
  EXPECT_EQ(out[3].first, "admin_client_ca");
  tls.cert_file = soon.cert.string();
  EXPECT_TRUE(watch_certificates(tls, "", &out, now).is_ok());  // a warning, not a refusal
  tls.cert_file = expired.cert.string();
  const Status s = watch_certificates(tls, "", &out, now);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("expired at"), std::string::npos) << s.message();
  std::vector<std::pair<std::string, int64_t>> cas;
  watch_trusted_cas({{"psp_ca:cardco", pki.ca_cert().string()},
                     {"psp_ca:gone", "/nonexistent.pem"},
                     {"webhook_ca", pki.ca_cert().string()}},
                    &cas, now);
  ASSERT_EQ(cas.size(), 2u);
  EXPECT_EQ(cas[0].first, "psp_ca:cardco");
  EXPECT_EQ(cas[1].first, "webhook_ca");
  tls.cert_file = (dir.path() / "missing.pem").string();
  EXPECT_FALSE(watch_certificates(tls, "", &out, now).is_ok());
  tls.cert_file = valid.key.string();  // a key, no certificate
  EXPECT_FALSE(watch_certificates(tls, "", &out, now).is_ok());
}

}  // namespace
}  // namespace keel::keeld
