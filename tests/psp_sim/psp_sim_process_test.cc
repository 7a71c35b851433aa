// keel-psp-sim as a process: HTTP round trips, idempotent retries, faults (503, refuse, lost
// response, black hole) against the books, signed webhooks at a receiver, settlement CSV.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "connectors/webhook_signature.h"
#include "core/time.h"
#include "net/http_client.h"
#include "psp_sim/books.h"
#include "testing/keeld_process.h"
#include "testing/temp_dir.h"

extern char** environ;

namespace keel::psp_sim {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kSecret = "whsec_test";

// A webhook receiver on 127.0.0.1:<picked port>: one thread, one request per connection,
// answers 500 to the first `fail_first` requests and 200 to the rest, records every request.
class WebhookReceiver {
 public:
  struct Received {
    std::string target;
    std::string signature;
    std::string body;
  };

  explicit WebhookReceiver(int fail_first) : fail_first_(fail_first) {
    acceptor_.open(tcp::v4());
    acceptor_.bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }
  ~WebhookReceiver() {
    stopping_ = true;
    // Wake the blocking accept with one last connection.
    asio::io_context ioc;
    tcp::socket s(ioc);
    beast::error_code ec;
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
    thread_.join();
  }

  uint16_t port() const { return port_; }
  int answered_500() const { return answered_500_.load(); }

  // Waits up to timeout_ms until `count` requests were answered 200; the 200 ones.
  std::vector<Received> wait_for(size_t count, int64_t timeout_ms) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (Clock::now() < deadline) {
      {
        std::lock_guard lock(mu_);
        if (accepted_.size() >= count) return accepted_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::lock_guard lock(mu_);
    return accepted_;
  }

 private:
  void serve() {
    while (!stopping_) {
      beast::error_code ec;
      tcp::socket socket(ioc_);
      acceptor_.accept(socket, ec);
      if (ec || stopping_) continue;
      beast::flat_buffer buffer;
      http::request<http::string_body> req;
      http::read(socket, buffer, req, ec);
      if (ec) continue;
      const bool fail = answered_500_.load() < fail_first_;
      http::response<http::string_body> res(
          fail ? http::status::internal_server_error : http::status::ok, 11);
      res.body() = "{}";
      res.prepare_payload();
      if (fail) {
        answered_500_.fetch_add(1);
      } else {
        std::lock_guard lock(mu_);
        accepted_.push_back(
            {std::string(req.target()), std::string(req["PSP-Signature"]), req.body()});
      }
      http::write(socket, res, ec);
    }
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_{ioc_};
  uint16_t port_ = 0;
  const int fail_first_;
  std::atomic<int> answered_500_{0};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::vector<Received> accepted_;
  std::thread thread_;
};

class PspSimProcess : public ::testing::Test {
 protected:
  // Starts the simulator with PSP "acme" (webhooks to `receiver` if given, with `faults` TOML
  // lines) and PSP "bank" (no webhooks).
  void start(const WebhookReceiver* receiver, const std::string& faults = "") {
    const auto path = dir_.path() / "psp.toml";
    std::ofstream(path) << "[psps.acme]\napi_key = \"sk_acme\"\nwebhook_url = \""
                        << (receiver ? "http://127.0.0.1:" + std::to_string(receiver->port()) +
                                           "/v1/webhooks/acme"
                                     : "")
                        << "\"\nwebhook_secret = \"" << kSecret
                        << "\"\nfee_fixed = 30\nfee_bps = 290\ncurrencies = [\"USD\", \"EUR\"]\n"
                        << "[psps.acme.faults]\n"
                        << faults << "\n[psps.bank]\napi_key = \"sk_bank\"\n"
                        << "currencies = [\"EUR\"]\n";
    const Status started = testing::start_psp_sim(path, 7, &sim_);
    ASSERT_TRUE(started.is_ok()) << started.message();
  }

  std::unique_ptr<net::HttpClient> client(int64_t io_timeout_ms = 10'000) {
    net::HttpClientOptions o;
    o.endpoint = {"127.0.0.1", sim_->port()};
    o.io_timeout_ms = io_timeout_ms;
    return std::make_unique<net::HttpClient>(o);
  }

  // A request with acme's key on a fresh connection; the status, 0 if no answer came.
  unsigned call(std::string_view method, const std::string& target, const std::string& body,
                json::value* out = nullptr, int64_t io_timeout_ms = 10'000) {
    net::HttpResponse res;
    const Status s =
        client(io_timeout_ms)
            ->request(method, target, body, {{"Authorization", "Bearer sk_acme"}}, &res);
    if (!s.is_ok()) return 0;
    if (out != nullptr)
      *out = res.body.empty() || res.body[0] != '{' ? json::value(res.body) : json::parse(res.body);
    return res.status;
  }

  void put_faults(const std::string& faults_json) {
    ASSERT_EQ(call("PUT", "/admin/psps/acme/faults", faults_json), 200u);
  }

  json::array operations() {
    json::value v;
    EXPECT_EQ(call("GET", "/admin/psps/acme/operations", "", &v), 200u);
    return v.at("operations").as_array();
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> sim_;
};

std::string authorization(const std::string& ref, int64_t amount, bool capture) {
  return R"({"reference":")" + ref + R"(","amount":)" + std::to_string(amount) +
         R"(,"currency":"USD","card_token":"tok_visa","capture":)" + (capture ? "true" : "false") +
         "}";
}

std::string today_csv_target() {
  return "/psp/acme/v1/settlements/" + format_day(utc_day(wall_clock_now())) + ".csv";
}

TEST_F(PspSimProcess, AuthorizeCaptureRefundAndSettlement) {
  start(nullptr);
  json::value v;
  ASSERT_EQ(call("POST", "/psp/acme/v1/authorizations", authorization("att_1", 1250, false), &v),
            200u);
  EXPECT_EQ(v.at("status"), "authorized");
  const std::string psp_ref(v.at("psp_reference").as_string());
  ASSERT_EQ(call("POST", "/psp/acme/v1/authorizations/att_1/capture", R"({"amount":1000})", &v),
            200u);
  EXPECT_EQ(v.at("status"), "captured");
  EXPECT_EQ(v.at("fee"), 30 + 1000 * 290 / 10'000);
  ASSERT_EQ(call("POST", "/psp/acme/v1/refunds",
                 R"({"reference":"rfa_1","payment_reference":"att_1","amount":400})", &v),
            200u);
  EXPECT_EQ(v.at("status"), "refunded");
  const std::string refund_ref(v.at("psp_reference").as_string());
  EXPECT_EQ(call("POST", "/psp/acme/v1/refunds",
                 R"({"reference":"rfa_2","payment_reference":"att_1","amount":601})"),
            422u);
  ASSERT_EQ(call("GET", "/psp/acme/v1/operations/att_1", "", &v), 200u);
  EXPECT_EQ(v.at("refunded_amount"), 400);
  EXPECT_EQ(call("GET", "/psp/acme/v1/operations/att_404", ""), 404u);
  net::HttpResponse res;
  ASSERT_TRUE(client()->request("GET", "/psp/acme/v1/operations/att_1", "", {}, &res).is_ok());
  EXPECT_EQ(res.status, 401u);

  ASSERT_EQ(call("GET", today_csv_target(), "", &v), 200u);
  const std::string day = format_day(utc_day(wall_clock_now()));
  EXPECT_EQ(std::string(v.as_string()), "date,psp_reference,reference,type,amount,currency,fee\n" +
                                            day + "," + psp_ref + ",att_1,capture,1000,USD,59\n" +
                                            day + "," + refund_ref + ",rfa_1,refund,400,USD,0\n");
  EXPECT_EQ(sim_->stop(), 0);
}

TEST_F(PspSimProcess, RetryWithSameReferenceChargesOnce) {
  start(nullptr);
  json::value first;
  json::value second;
  ASSERT_EQ(call("POST", "/psp/acme/v1/authorizations", authorization("att_1", 500, true), &first),
            200u);
  ASSERT_EQ(call("POST", "/psp/acme/v1/authorizations", authorization("att_1", 500, true), &second),
            200u);
  EXPECT_EQ(first.at("psp_reference"), second.at("psp_reference"));
  EXPECT_EQ(call("POST", "/psp/acme/v1/authorizations", authorization("att_1", 501, true)), 409u);
  EXPECT_EQ(operations().size(), 1u);
  json::value csv;
  ASSERT_EQ(call("GET", today_csv_target(), "", &csv), 200u);
  const std::string text(csv.as_string());
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);  // header and one capture
}

TEST_F(PspSimProcess, UnavailableAndRefusedChangeNothing) {
  start(nullptr, "error_5xx_rate = 1.0");
  json::value v;
  EXPECT_EQ(call("POST", "/psp/acme/v1/authorizations", authorization("att_1", 500, true), &v),
            503u);
  EXPECT_EQ(v.at("error").at("code"), "unavailable");
  put_faults(R"({"refuse_rate": 1.0})");
  EXPECT_EQ(call("POST", "/psp/acme/v1/authorizations", authorization("att_1", 500, true)), 0u);
  EXPECT_TRUE(operations().empty());
  put_faults("{}");
  EXPECT_EQ(call("GET", "/psp/acme/v1/operations/att_1", ""), 404u);
  EXPECT_EQ(call("POST", "/psp/acme/v1/authorizations", authorization("att_1", 500, true)), 200u);
  EXPECT_EQ(operations().size(), 1u);
}

TEST_F(PspSimProcess, LostResponseAndBlackHoleStillProcess) {
  start(nullptr);
  put_faults(R"({"response_lost_rate": 1.0})");
  EXPECT_EQ(call("POST", "/psp/acme/v1/authorizations", authorization("att_1", 500, false)), 0u);
  put_faults(R"({"black_hole_rate": 1.0})");
  const auto before = Clock::now();
  EXPECT_EQ(call("POST", "/psp/acme/v1/payouts",
                 R"({"reference":"poa_1","amount":70,"currency":"USD",)"
                 R"("destination":{"iban":"DE89370400440532013000"}})",
                 nullptr, 500),
            0u);
  EXPECT_GE(Clock::now() - before, std::chrono::milliseconds(450));  // held, not closed
  put_faults("{}");
  json::value v;
  ASSERT_EQ(call("GET", "/psp/acme/v1/operations/att_1", "", &v), 200u);
  EXPECT_EQ(v.at("status"), "authorized");
  ASSERT_EQ(call("GET", "/psp/acme/v1/operations/poa_1", "", &v), 200u);
  EXPECT_EQ(v.at("status"), "paid");
}

TEST_F(PspSimProcess, WebhooksArriveSignedRetriedAndDuplicated) {
  WebhookReceiver receiver(/*fail_first=*/1);
  start(&receiver, "webhook_duplicate_rate = 1.0");
  ASSERT_EQ(call("POST", "/psp/acme/v1/authorizations", authorization("att_1", 900, false)), 200u);
  ASSERT_EQ(call("POST", "/psp/acme/v1/authorizations/att_1/capture", ""), 200u);
  // Two events, each delivered twice; the first try of one was answered 500 and retried.
  const auto got = receiver.wait_for(4, 20'000);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(receiver.answered_500(), 1);
  std::map<std::string, int> ids;
  std::set<std::string> statuses;
  const int64_t now_s = wall_clock_now() / kNanosPerSecond;
  for (const auto& r : got) {
    EXPECT_EQ(r.target, "/v1/webhooks/acme");
    EXPECT_EQ(connectors::verify_webhook(kSecret, r.signature, r.body, now_s),
              connectors::SignatureCheck::ok)
        << r.signature;
    EXPECT_EQ(connectors::verify_webhook("wrong", r.signature, r.body, now_s),
              connectors::SignatureCheck::mismatch);
    const json::value event = json::parse(r.body);
    EXPECT_EQ(event.at("type"), "operation.updated");
    EXPECT_EQ(event.at("data").at("reference"), "att_1");
    ids[std::string(event.at("id").as_string())]++;
    statuses.insert(std::string(event.at("data").at("status").as_string()));
  }
  EXPECT_EQ(ids.size(), 2u);
  for (const auto& [id, n] : ids) EXPECT_EQ(n, 2) << id;
  EXPECT_EQ(statuses, (std::set<std::string>{"authorized", "captured"}));
}

TEST_F(PspSimProcess, AsyncAuthorizationSettlesByWebhook) {
  WebhookReceiver receiver(0);
  start(&receiver, "async_rate = 1.0\nasync_delay_ms = { min = 50, max = 100 }");
  json::value v;
  ASSERT_EQ(call("POST", "/psp/acme/v1/authorizations", authorization("att_1", 900, true), &v),
            200u);
  EXPECT_EQ(v.at("status"), "pending");
  const auto got = receiver.wait_for(2, 20'000);
  ASSERT_EQ(got.size(), 2u);
  std::set<std::string> statuses;
  for (const auto& r : got) {
    statuses.insert(std::string(json::parse(r.body).at("data").at("status").as_string()));
  }
  EXPECT_EQ(statuses, (std::set<std::string>{"pending", "captured"}));
  ASSERT_EQ(call("GET", "/psp/acme/v1/operations/att_1", "", &v), 200u);
  EXPECT_EQ(v.at("status"), "captured");
}

}  // namespace
}  // namespace keel::psp_sim
