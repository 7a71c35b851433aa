// PspClient against a real keel-psp-sim process: every row of the normalization table that the
// simulator can produce (approved, declines, 503, black hole, lost response, reset), status
// queries that resolve them, and the connection pool under concurrency.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "connectors/psp_client.h"
#include "net/http_client.h"
#include "testing/keeld_process.h"
#include "testing/temp_dir.h"

extern char** environ;

namespace keel::connectors {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// One simulator for the whole suite (PSPs "acme": USD, EUR and "bank": EUR); each test sets
// acme's faults over admin and clears them afterwards. One io_context thread runs the clients.
class PspClientProcess : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    const auto config = dir_->path() / "psp.toml";
    std::ofstream(config) << "[psps.acme]\napi_key = \"sk_acme\"\nfee_fixed = 30\n"
                          << "fee_bps = 290\ncurrencies = [\"USD\", \"EUR\"]\n"
                          << "[psps.bank]\napi_key = \"sk_bank\"\ncurrencies = [\"EUR\"]\n";
    std::unique_ptr<testing::ServerProcess> sim;
    start_status_ = testing::start_psp_sim(config, 11, &sim);
    sim_ = sim.release();
  }
  static void TearDownTestSuite() {
    delete sim_;
    sim_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(sim_, nullptr) << "keel-psp-sim did not start: " << start_status_.message();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  void TearDown() override {
    if (sim_ != nullptr) {
      put_faults("acme", "{}");
      put_api_keys("acme", {"sk_acme"});
    }
    work_.reset();
    if (thread_.joinable()) thread_.join();
  }

  std::unique_ptr<PspClient> client(const std::string& psp, int64_t total_timeout_ms = 5'000,
                                    size_t connections_max = 4) {
    PspClientOptions o;
    o.port = sim_->port();
    o.psp = psp;
    o.api_key = psp == "acme" ? "sk_acme" : "sk_bank";
    o.total_timeout_ms = total_timeout_ms;
    o.connections_max = connections_max;
    return std::make_unique<PspClient>(ioc_.get_executor(), o);
  }

  // Runs one call and waits for its callback.
  template <typename Start>
  static PspResult wait(Start start) {
    auto done = std::make_shared<std::promise<PspResult>>();
    auto result = done->get_future();
    start([done](PspResult r) { done->set_value(std::move(r)); });
    return result.get();
  }

  static PspResult authorize(PspClient& c, const std::string& ref, const std::string& currency,
                             bool capture = false) {
    return wait([&](PspCallback cb) {
      c.authorize({ref, 1250, currency, "tok_visa", capture}, kTraceparent, std::move(cb));
    });
  }
  static PspResult query(PspClient& c, const std::string& ref) {
    return wait([&](PspCallback cb) { c.get_operation(ref, kTraceparent, std::move(cb)); });
  }

  static unsigned admin(std::string_view method, const std::string& target, const std::string& body,
                        json::value* out = nullptr) {
    net::HttpClientOptions o;
    o.endpoint = {"127.0.0.1", sim_->port()};
    net::HttpClient http(o);
    net::HttpResponse res;
    if (!http.request(method, target, body, {}, &res).is_ok()) return 0;
    if (out != nullptr) *out = json::parse(res.body);
    return res.status;
  }
  static void put_faults(const std::string& psp, const std::string& faults_json) {
    ASSERT_EQ(admin("PUT", "/admin/psps/" + psp + "/faults", faults_json), 200u);
  }
  // The API keys the simulated PSP accepts from now on.
  static void put_api_keys(const std::string& psp, const std::vector<std::string>& keys) {
    json::array list;
    for (const auto& k : keys) list.emplace_back(k);
    ASSERT_EQ(admin("PUT", "/admin/psps/" + psp + "/api_keys",
                    json::serialize(json::object{{"keys", std::move(list)}})),
              200u);
  }
  // The status of `reference` in the PSP's books; empty if the PSP does not have it.
  static std::string booked_status(const std::string& psp, const std::string& reference) {
    json::value v;
    EXPECT_EQ(admin("GET", "/admin/psps/" + psp + "/operations", "", &v), 200u);
    for (const json::value& op : v.at("operations").as_array()) {
      if (op.at("reference").as_string() == reference) {
        return std::string(op.at("status").as_string());
      }
    }
    return {};
  }

  static testing::TempDir* dir_;
  static testing::ServerProcess* sim_;
  static Status start_status_;
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{ioc_.get_executor()};
  std::thread thread_;
};

testing::TempDir* PspClientProcess::dir_ = nullptr;
testing::ServerProcess* PspClientProcess::sim_ = nullptr;
Status PspClientProcess::start_status_;

TEST_F(PspClientProcess, AuthorizeCaptureRefundApproved) {
  auto c = client("acme");
  PspResult r = authorize(*c, "att_ok_1", "USD");
  EXPECT_EQ(r.outcome, AttemptOutcome::approved) << r.error_code;
  ASSERT_TRUE(r.op.has_value());
  EXPECT_EQ(r.op->status, OperationStatus::authorized);
  EXPECT_EQ(r.op->reference, "att_ok_1");
  EXPECT_EQ(r.op->amount_minor, 1250);
  EXPECT_GE(r.latency_ms, 0);

  r = wait([&](PspCallback cb) { c->capture({"att_ok_1", 1000}, kTraceparent, std::move(cb)); });
  EXPECT_EQ(r.outcome, AttemptOutcome::approved) << r.error_code;
  ASSERT_TRUE(r.op.has_value());
  EXPECT_EQ(r.op->status, OperationStatus::captured);
  EXPECT_EQ(r.op->captured_amount_minor, 1000);

  r = wait([&](PspCallback cb) { c->refund({"rfa_ok_1", "att_ok_1", 400}, "", std::move(cb)); });
  EXPECT_EQ(r.outcome, AttemptOutcome::approved) << r.error_code;
  ASSERT_TRUE(r.op.has_value());
  EXPECT_EQ(r.op->status, OperationStatus::refunded);
  EXPECT_EQ(r.op->payment_reference, "att_ok_1");

  // A refund above what is left is the PSP saying no: declined_hard, psp_rejected.
  r = wait([&](PspCallback cb) { c->refund({"rfa_ok_2", "att_ok_1", 5000}, "", std::move(cb)); });
  EXPECT_EQ(r.outcome, AttemptOutcome::declined_hard);
  EXPECT_EQ(r.error_code, error_codes::kPspRejected);
}

TEST_F(PspClientProcess, VoidPayoutTopup) {
  auto c = client("bank");
  EXPECT_EQ(authorize(*c, "att_void_1", "EUR").outcome, AttemptOutcome::approved);
  PspResult r =
      wait([&](PspCallback cb) { c->void_authorization("att_void_1", "", std::move(cb)); });
  EXPECT_EQ(r.outcome, AttemptOutcome::approved) << r.error_code;
  ASSERT_TRUE(r.op.has_value());
  EXPECT_EQ(r.op->status, OperationStatus::voided);

  r = wait([&](PspCallback cb) {
    c->payout({"poa_1", 700, "EUR", PayoutDestinationKind::iban, "DE89370400440532013000"}, "",
              std::move(cb));
  });
  EXPECT_EQ(r.outcome, AttemptOutcome::approved) << r.error_code;
  ASSERT_TRUE(r.op.has_value());
  EXPECT_EQ(r.op->type, OperationType::payout);
  EXPECT_EQ(r.op->status, OperationStatus::paid);

  r = wait([&](PspCallback cb) {
    c->topup({"top_1", 900, "EUR", TopupSourceKind::card_token, "tok_visa"}, "", std::move(cb));
  });
  EXPECT_EQ(r.outcome, AttemptOutcome::approved) << r.error_code;
  ASSERT_TRUE(r.op.has_value());
  EXPECT_EQ(r.op->type, OperationType::topup);
}

TEST_F(PspClientProcess, DeclinesHardAndSoftWithCodes) {
  auto c = client("acme");
  put_faults("acme",
             R"({"decline_rate":1,"decline_codes":[{"code":"stolen_card","type":"hard"}]})");
  PspResult r = authorize(*c, "att_decl_h", "USD");
  EXPECT_EQ(r.outcome, AttemptOutcome::declined_hard);
  EXPECT_EQ(r.error_code, "stolen_card");
  ASSERT_TRUE(r.op.has_value());
  EXPECT_EQ(r.op->status, OperationStatus::declined);

  put_faults("acme",
             R"({"decline_rate":1,"decline_codes":[{"code":"issuer_unavailable","type":"soft"}]})");
  r = authorize(*c, "att_decl_s", "USD");
  EXPECT_EQ(r.outcome, AttemptOutcome::declined_soft);
  EXPECT_EQ(r.error_code, "issuer_unavailable");
}

TEST_F(PspClientProcess, Error503IsRetryableAndTheBooksShowNothing) {
  auto c = client("acme");
  put_faults("acme", R"({"error_5xx_rate":1})");
  const PspResult r = authorize(*c, "att_503", "USD");
  EXPECT_EQ(r.outcome, AttemptOutcome::retryable);
  EXPECT_EQ(r.error_code, error_codes::kPspUnavailable);
  EXPECT_EQ(booked_status("acme", "att_503"), "");
}

TEST_F(PspClientProcess, BlackHoleIsUnknownAndTheStatusQueryFindsIt) {
  auto c = client("acme", /*total_timeout_ms=*/300);
  put_faults("acme", R"({"black_hole_rate":1})");
  const PspResult r = authorize(*c, "att_hole", "USD");
  EXPECT_EQ(r.outcome, AttemptOutcome::unknown);
  EXPECT_EQ(r.error_code, error_codes::kTimeout);
  put_faults("acme", "{}");
  const PspResult q = query(*c, "att_hole");
  EXPECT_EQ(q.outcome, AttemptOutcome::approved) << q.error_code;
  ASSERT_TRUE(q.op.has_value());
  EXPECT_EQ(q.op->status, OperationStatus::authorized);
}

TEST_F(PspClientProcess, LostResponseIsUnknownAndTheStatusQueryResolvesIt) {
  auto c = client("acme");
  put_faults("acme", R"({"response_lost_rate":1})");
  const PspResult r = authorize(*c, "att_lost", "USD", /*capture=*/true);
  EXPECT_EQ(r.outcome, AttemptOutcome::unknown);
  EXPECT_EQ(r.error_code, error_codes::kConnectionLost);
  put_faults("acme", "{}");
  const PspResult q = query(*c, "att_lost");
  EXPECT_EQ(q.outcome, AttemptOutcome::approved) << q.error_code;
  ASSERT_TRUE(q.op.has_value());
  EXPECT_EQ(q.op->status, OperationStatus::captured);
}

// The simulator's refuse fault reads the request, then resets the connection: from the client
// that is a reset after sending, indistinguishable from a crash after processing, so it is
// unknown; the status query's 404 then proves nothing happened.
TEST_F(PspClientProcess, ResetAfterSendingIsUnknownUntilTheQuerySaysNotFound) {
  auto c = client("acme");
  put_faults("acme", R"({"refuse_rate":1})");
  const PspResult r = authorize(*c, "att_refused", "USD");
  EXPECT_EQ(r.outcome, AttemptOutcome::unknown);
  EXPECT_EQ(r.error_code, error_codes::kConnectionLost);
  put_faults("acme", "{}");
  const PspResult q = query(*c, "att_refused");
  EXPECT_EQ(q.outcome, AttemptOutcome::not_found);
  EXPECT_EQ(booked_status("acme", "att_refused"), "");
}

TEST_F(PspClientProcess, ConnectionRefusedIsRetryable) {
  // A port nobody listens on: bind one, then close it.
  asio::io_context ioc;
  asio::ip::tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  PspClientOptions o;
  o.port = a.local_endpoint().port();
  o.psp = "acme";
  o.api_key = "sk_acme";
  a.close();
  PspClient c(ioc_.get_executor(), o);
  const PspResult r = authorize(c, "att_no_server", "USD");
  EXPECT_EQ(r.outcome, AttemptOutcome::retryable);
  EXPECT_EQ(r.error_code, error_codes::kConnectRefused);
}

TEST_F(PspClientProcess, StatusQueryOfANeverSentReferenceIsNotFound) {
  auto c = client("bank");
  const PspResult r = query(*c, "att_never_sent");
  EXPECT_EQ(r.outcome, AttemptOutcome::not_found);
  EXPECT_EQ(r.error_code, error_codes::kNotFound);
  EXPECT_FALSE(r.op.has_value());
}

TEST_F(PspClientProcess, PoolReusesConnectionsUnder50ConcurrentCalls) {
  constexpr int kCalls = 50;
  constexpr size_t kConnections = 4;
  auto c = client("bank", 10'000, kConnections);
  std::mutex mu;
  std::vector<PspResult> results;
  std::promise<void> all_done;
  for (int i = 0; i < kCalls; ++i) {
    c->authorize({"att_pool_" + std::to_string(i), 100 + i, "EUR", "tok_visa", false}, kTraceparent,
                 [&](PspResult r) {
                   std::lock_guard lock(mu);
                   results.push_back(std::move(r));
                   if (results.size() == kCalls) all_done.set_value();
                 });
  }
  all_done.get_future().wait();
  for (const PspResult& r : results) {
    EXPECT_EQ(r.outcome, AttemptOutcome::approved) << r.error_code;
  }
  const PspClient::Stats s = c->stats();
  EXPECT_GE(s.connections_opened, 1u);
  EXPECT_LE(s.connections_opened, kConnections);
  EXPECT_EQ(booked_status("bank", "att_pool_49"), "authorized");
  // The pooled connections still serve a later call.
  EXPECT_EQ(query(*c, "att_pool_0").outcome, AttemptOutcome::approved);
  EXPECT_LE(c->stats().connections_opened, kConnections);
}

// With its one connection held by a black hole and no queue, the next call is refused at once
// and reported as never sent.
TEST_F(PspClientProcess, CallBeyondPoolAndQueueIsNotSent) {
  PspClientOptions o;
  o.port = sim_->port();
  o.psp = "acme";
  o.api_key = "sk_acme";
  o.total_timeout_ms = 300;
  o.connections_max = 1;
  o.queued_calls_max = 0;
  PspClient c(ioc_.get_executor(), o);
  put_faults("acme", R"({"black_hole_rate":1})");
  std::promise<PspResult> first;
  std::promise<PspResult> second;
  c.authorize({"att_q_1", 100, "USD", "tok_visa", false}, "",
              [&](PspResult r) { first.set_value(std::move(r)); });
  c.authorize({"att_q_2", 100, "USD", "tok_visa", false}, "",
              [&](PspResult r) { second.set_value(std::move(r)); });
  const PspResult r2 = second.get_future().get();
  const PspResult r1 = first.get_future().get();
  EXPECT_EQ(r1.outcome, AttemptOutcome::unknown);
  EXPECT_EQ(r1.error_code, error_codes::kTimeout);
  EXPECT_EQ(r2.outcome, AttemptOutcome::retryable);
  EXPECT_EQ(r2.error_code, error_codes::kNotSent);
  put_faults("acme", "{}");
  EXPECT_EQ(booked_status("acme", "att_q_2"), "");
}

// Destroying the client closes its connections; a call waiting for its answer then reports
// unknown (it was sent), through its callback.
TEST_F(PspClientProcess, DestroyingTheClientCompletesCallsInFlight) {
  auto c = client("acme", /*total_timeout_ms=*/30'000);
  put_faults("acme", R"({"black_hole_rate":1})");
  std::promise<PspResult> done;
  c->authorize({"att_destroyed", 100, "USD", "tok_visa", false}, "",
               [&](PspResult r) { done.set_value(std::move(r)); });
  // Wait until the simulator has the operation, so the call is surely reading.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (booked_status("acme", "att_destroyed").empty() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  c.reset();
  const PspResult r = done.get_future().get();
  EXPECT_EQ(r.outcome, AttemptOutcome::unknown);
  EXPECT_EQ(r.error_code, error_codes::kConnectionLost);
}

TEST_F(PspClientProcess, InvalidReferenceIsNeverSent) {
  auto c = client("bank");
  const PspResult r = authorize(*c, "att/../x", "EUR");
  EXPECT_EQ(r.outcome, AttemptOutcome::declined_hard);
  EXPECT_EQ(r.error_code, error_codes::kInvalidRequest);
  EXPECT_EQ(c->stats().connections_opened, 0u);
}

}  // namespace
}  // namespace keel::connectors

namespace keel::connectors {
namespace {

// A credential rotation, keel's side first: keel has the new key first before the PSP takes
// it. Each call is answered 401 for the new key and sent again with the old one, once: the
// old key then goes first until the PSP stops taking it, when the new one takes over. No call
// fails at any step, and nothing is booked twice.
TEST_F(PspClientProcess, ARotationWorksWhicheverSideMovesFirst) {
  PspClientOptions o;
  o.port = sim_->port();
  o.psp = "acme";
  o.api_key = "sk_acme_new";
  o.fallback_api_keys = {"sk_acme"};
  PspClient c(ioc_.get_executor(), o);
  PspResult r = authorize(c, "att_rot_1", "USD");
  EXPECT_EQ(r.outcome, AttemptOutcome::approved) << r.error_code;
  EXPECT_EQ(c.stats().credential_fallbacks, 1u);
  r = authorize(c, "att_rot_2", "USD");  // the old key goes first now: no second 401
  EXPECT_EQ(r.outcome, AttemptOutcome::approved) << r.error_code;
  EXPECT_EQ(c.stats().credential_fallbacks, 1u);
  put_api_keys("acme", {"sk_acme_new", "sk_acme"});  // the PSP's overlap
  EXPECT_EQ(authorize(c, "att_rot_3", "USD").outcome, AttemptOutcome::approved);
  put_api_keys("acme", {"sk_acme_new"});  // the PSP retires the old key
  r = authorize(c, "att_rot_4", "USD");
  EXPECT_EQ(r.outcome, AttemptOutcome::approved) << r.error_code;
  EXPECT_EQ(c.stats().credential_fallbacks, 2u);
  EXPECT_EQ(query(c, "att_rot_4").outcome, AttemptOutcome::approved);  // new key first
  EXPECT_EQ(c.stats().credential_fallbacks, 2u);
  for (const char* ref : {"att_rot_1", "att_rot_2", "att_rot_3", "att_rot_4"}) {
    EXPECT_EQ(booked_status("acme", ref), "authorized") << ref;
  }
}

// set_api_keys() replaces the keys at run time; with no key the PSP takes, a call is the PSP's
// refusal (declined_hard psp_rejected) after each key was tried once, and nothing is booked.
TEST_F(PspClientProcess, KeysSetAtRunTimeAndNoKeyThePspTakesIsARefusal) {
  auto c = client("acme");
  c->set_api_keys({"sk_wrong_1", "sk_wrong_2"});
  PspResult r = authorize(*c, "att_keys_1", "USD");
  EXPECT_EQ(r.outcome, AttemptOutcome::declined_hard);
  EXPECT_EQ(r.error_code, error_codes::kPspRejected);
  EXPECT_EQ(c->stats().credential_fallbacks, 1u);  // the second key, once
  EXPECT_EQ(booked_status("acme", "att_keys_1"), "");
  c->set_api_keys({"sk_acme"});
  EXPECT_EQ(authorize(*c, "att_keys_2", "USD").outcome, AttemptOutcome::approved);
  EXPECT_EQ(c->stats().credential_fallbacks, 1u);
}

}  // namespace
}  // namespace keel::connectors
