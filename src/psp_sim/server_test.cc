// SimServer in-process: a PSP's own listener taken down and up (by admin and by a schedule)
// while the shared port keeps serving.

#include "psp_sim/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <thread>

#include "core/time.h"
#include "net/http_client.h"

namespace keel::psp_sim {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kAuth =
    R"({"reference":"att_1","amount":1250,"currency":"USD","card_token":"tok","capture":false})";

// 0 if a TCP connection to 127.0.0.1:port is accepted, else the connect errno.
int connect_errno(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return errno;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int err = rc == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

// Waits up to 10 s for connect_errno(port) to be `expected`; the last errno seen.
int await_connect_errno(uint16_t port, int expected) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  int err = connect_errno(port);
  while (err != expected && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    err = connect_errno(port);
  }
  return err;
}

// True if the server closes `socket` within 10 s (end of stream or reset), nothing read first.
bool closed_by_server(tcp::socket& socket) {
  pollfd p{socket.native_handle(), POLLIN, 0};
  if (::poll(&p, 1, 10'000) <= 0) return false;
  char byte = 0;
  beast::error_code ec;
  const size_t n = socket.read_some(asio::buffer(&byte, 1), ec);
  return n == 0 && (ec == asio::error::eof || ec == asio::error::connection_reset);
}

class SimServerListener : public ::testing::Test {
 protected:
  // PSP "acme" with a listener of its own (and `acme_faults`, a schedule if given), PSP "bank"
  // without.
  void start(const FaultConfig& acme_faults = {},
             std::optional<FaultSchedule> acme_schedule = std::nullopt) {
    PspConfig acme;
    acme.name = "acme";
    acme.api_key = "sk";
    acme.currencies = {*Currency::from_code("USD")};
    acme.faults = acme_faults;
    acme.listen = ListenAddress{"127.0.0.1", 0};
    acme.schedule = std::move(acme_schedule);
    PspConfig bank;
    bank.name = "bank";
    bank.api_key = "sk_bank";
    bank.currencies = {*Currency::from_code("EUR")};
    SimConfig config;
    config.psps = {acme, bank};
    sim_ = std::make_unique<Simulator>(std::move(config), 1, wall_clock_now());
    SimServerOptions options;
    options.io_threads = 2;
    const Status s = SimServer::start(options, sim_.get(), &server_);
    ASSERT_TRUE(s.is_ok()) << s.message();
    acme_port_ = server_->psp_port(0);
    ASSERT_NE(acme_port_, 0);
    ASSERT_NE(acme_port_, server_->port());
    EXPECT_EQ(server_->psp_port(1), 0);
  }

  void TearDown() override {
    if (server_) server_->shutdown();
  }

  // One request on a new connection to `port`; the status (0 if no answer) and the JSON body.
  static unsigned call(uint16_t port, std::string_view method, std::string_view target,
                       std::string_view body, std::string_view key = "sk",
                       json::value* out = nullptr) {
    net::HttpClientOptions o;
    o.endpoint = {"127.0.0.1", port};
    net::HttpClient client(o);
    net::HttpResponse res;
    const Status s = client.request(method, target, body,
                                    {{"Authorization", "Bearer " + std::string(key)}}, &res);
    if (!s.is_ok()) return 0;
    if (out != nullptr) *out = json::parse(res.body);
    return res.status;
  }
  unsigned admin(std::string_view method, std::string_view target, std::string_view body,
                 json::value* out = nullptr) {
    return call(server_->port(), method, target, body, "", out);
  }

  // A keep-alive connection to acme's own port that has been answered once.
  void open_idle_connection(tcp::socket& socket) {
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), acme_port_));
    http::request<http::string_body> req(http::verb::get, "/psp/acme/v1/operations/att_0", 11);
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::authorization, "Bearer sk");
    http::write(socket, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    EXPECT_EQ(res.result_int(), 404u);
    EXPECT_TRUE(res.keep_alive());
  }

  std::unique_ptr<Simulator> sim_;
  std::unique_ptr<SimServer> server_;
  uint16_t acme_port_ = 0;
};

TEST_F(SimServerListener, OwnPortServesItsPspOnly) {
  start();
  json::value v;
  EXPECT_EQ(call(acme_port_, "POST", "/psp/acme/v1/authorizations", kAuth, "sk", &v), 200u);
  EXPECT_EQ(v.at("status"), "authorized");
  EXPECT_EQ(call(acme_port_, "GET", "/psp/bank/v1/operations/x", "", "sk_bank", &v), 404u);
  EXPECT_EQ(v.at("error").at("code"), "psp_not_found");
  EXPECT_EQ(call(acme_port_, "GET", "/admin/healthz", "", "", &v), 404u);
  // The shared port serves every PSP, acme's books included.
  EXPECT_EQ(call(server_->port(), "GET", "/psp/acme/v1/operations/att_1", "", "sk", &v), 200u);
  EXPECT_EQ(call(server_->port(), "GET", "/psp/bank/v1/operations/x", "", "sk_bank", &v), 404u);
  EXPECT_EQ(v.at("error").at("code"), "not_found");
  ASSERT_EQ(admin("GET", "/admin/psps/acme/listener", "", &v), 200u);
  EXPECT_EQ(v,
            (json::value{
                {"name", "acme"}, {"port", acme_port_}, {"accepting", true}, {"listening", true}}));
}

TEST_F(SimServerListener, DownRefusesConnectionsAndComesBackOnTheSamePort) {
  start();
  asio::io_context ioc;
  tcp::socket idle(ioc);
  open_idle_connection(idle);

  json::value v;
  ASSERT_EQ(admin("PUT", "/admin/psps/acme/listener", R"({"accepting": false})", &v), 200u);
  EXPECT_EQ(v.at("accepting"), false);
  EXPECT_EQ(v.at("listening"), false);
  // Refused before anything is sent; the idle keep-alive connection was closed.
  EXPECT_EQ(connect_errno(acme_port_), ECONNREFUSED);
  EXPECT_EQ(call(acme_port_, "GET", "/psp/acme/v1/operations/att_1", ""), 0u);
  EXPECT_TRUE(closed_by_server(idle));
  // The shared port still serves acme (and bank).
  EXPECT_EQ(call(server_->port(), "POST", "/psp/acme/v1/authorizations", kAuth, "sk", &v), 200u);
  EXPECT_EQ(call(server_->port(), "GET", "/psp/bank/v1/operations/x", "", "sk_bank"), 404u);
  ASSERT_EQ(admin("GET", "/admin/psps/acme/listener", "", &v), 200u);
  EXPECT_EQ(
      v, (json::value{
             {"name", "acme"}, {"port", acme_port_}, {"accepting", false}, {"listening", false}}));
  // Down twice is still down.
  ASSERT_EQ(admin("PUT", "/admin/psps/acme/listener", R"({"accepting": false})"), 200u);
  EXPECT_EQ(connect_errno(acme_port_), ECONNREFUSED);

  ASSERT_EQ(admin("PUT", "/admin/psps/acme/listener", R"({"accepting": true})", &v), 200u);
  EXPECT_EQ(v.at("listening"), true);
  EXPECT_EQ(server_->psp_port(0), acme_port_);
  EXPECT_EQ(connect_errno(acme_port_), 0);
  EXPECT_EQ(call(acme_port_, "GET", "/psp/acme/v1/operations/att_1", "", "sk", &v), 200u);
  EXPECT_EQ(v.at("status"), "authorized");
  ASSERT_EQ(admin("GET", "/admin/psps/acme/listener", "", &v), 200u);
  EXPECT_EQ(v.at("listening"), true);
}

// A request being processed when the listener goes down is answered (Connection: close), then
// its connection is closed.
TEST_F(SimServerListener, RequestInFlightIsAnsweredThenClosed) {
  FaultConfig slow;
  slow.latency_ms = {1'500, 1'500};
  start(slow);
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), acme_port_));
  http::request<http::string_body> req(http::verb::post, "/psp/acme/v1/authorizations", 11);
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::authorization, "Bearer sk");
  req.set(http::field::content_type, "application/json");
  req.body() = std::string(kAuth);
  req.prepare_payload();
  http::write(socket, req);
  // Let the server read it and start its 1.5 s wait.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(admin("PUT", "/admin/psps/acme/listener", R"({"accepting": false})"), 200u);
  EXPECT_EQ(connect_errno(acme_port_), ECONNREFUSED);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_FALSE(res.keep_alive());
  EXPECT_NE(res.body().find("\"authorized\""), std::string::npos);
  EXPECT_TRUE(closed_by_server(socket));
}

TEST_F(SimServerListener, ScheduleTakesItDownAndBackUp) {
  start();
  json::value v;
  ASSERT_EQ(admin("PUT", "/admin/psps/acme/schedule",
                  R"({"phases": [{"at_ms": 0, "accepting": false}, {"at_ms": 300}]})", &v),
            200u);
  EXPECT_EQ(v.at("phase"), 0);
  // Applied before the answer: refused at once.
  EXPECT_EQ(connect_errno(acme_port_), ECONNREFUSED);
  EXPECT_EQ(call(server_->port(), "GET", "/psp/acme/v1/operations/att_1", "", "sk"), 404u);
  // The phase change at 300 ms reopens it, on the same port.
  EXPECT_EQ(await_connect_errno(acme_port_, 0), 0);
  EXPECT_EQ(server_->psp_port(0), acme_port_);
  ASSERT_EQ(admin("GET", "/admin/psps/acme/schedule", "", &v), 200u);
  EXPECT_EQ(v.at("phase"), 1);
  EXPECT_EQ(v.at("next_change_in_ms"), nullptr);
  ASSERT_EQ(admin("GET", "/admin/psps/acme/listener", "", &v), 200u);
  EXPECT_EQ(v.at("listening"), true);
  EXPECT_EQ(admin("PUT", "/admin/psps/acme/listener", R"({"accepting": false})"), 409u);

  // DELETE brings back the state from before the schedule (accepting); a schedule that keeps
  // it down for good, deleted, reopens it.
  ASSERT_EQ(admin("PUT", "/admin/psps/acme/schedule",
                  R"({"phases": [{"at_ms": 0, "faults": {}, "accepting": false}]})"),
            200u);
  EXPECT_EQ(connect_errno(acme_port_), ECONNREFUSED);
  ASSERT_EQ(admin("DELETE", "/admin/psps/acme/schedule", "", &v), 200u);
  EXPECT_EQ(v.at("schedule"), nullptr);
  EXPECT_EQ(connect_errno(acme_port_), 0);
}

// Degraded: the port was taken while the listener was down. The PUT answers 503 and keeps the
// change; the listener retries until the port is free again.
TEST_F(SimServerListener, ReopenOnATakenPortAnswers503AndRetries) {
  start();
  ASSERT_EQ(admin("PUT", "/admin/psps/acme/listener", R"({"accepting": false})"), 200u);
  asio::io_context ioc;
  auto squatter = std::make_unique<tcp::acceptor>(
      ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), acme_port_));
  json::value v;
  ASSERT_EQ(admin("PUT", "/admin/psps/acme/listener", R"({"accepting": true})", &v), 503u);
  EXPECT_EQ(v.at("error").at("code"), "listen_failed");
  ASSERT_EQ(admin("GET", "/admin/psps/acme/listener", "", &v), 200u);
  EXPECT_EQ(v.at("accepting"), true);
  EXPECT_EQ(v.at("listening"), false);
  squatter.reset();
  EXPECT_EQ(await_connect_errno(acme_port_, 0), 0);
  EXPECT_EQ(call(acme_port_, "GET", "/psp/acme/v1/operations/att_1", "", "sk", &v), 404u);
  EXPECT_EQ(v.at("error").at("code"), "not_found");
  ASSERT_EQ(admin("GET", "/admin/psps/acme/listener", "", &v), 200u);
  EXPECT_EQ(v.at("listening"), true);
}

TEST_F(SimServerListener, ScheduleFromTheConfigAppliesAtStart) {
  FaultSchedule down_first;
  ASSERT_EQ(
      parse_schedule(json::parse(R"({"phases": [{"at_ms": 0, "accepting": false}]})"), &down_first),
      "");
  start({}, down_first);
  EXPECT_EQ(connect_errno(acme_port_), ECONNREFUSED);
  EXPECT_EQ(call(server_->port(), "GET", "/admin/healthz", "", ""), 200u);
  json::value v;
  ASSERT_EQ(admin("GET", "/admin/psps/acme/listener", "", &v), 200u);
  EXPECT_EQ(v.at("port"), acme_port_);
  EXPECT_EQ(v.at("listening"), false);
}

TEST(SimServer, OwnListenerOnATakenPortFailsToStart) {
  asio::io_context ioc;
  tcp::acceptor taken(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  PspConfig acme;
  acme.name = "acme";
  acme.api_key = "sk";
  acme.currencies = {*Currency::from_code("USD")};
  acme.listen = ListenAddress{"127.0.0.1", taken.local_endpoint().port()};
  SimConfig config;
  config.psps = {acme};
  Simulator sim(std::move(config), 1, wall_clock_now());
  std::unique_ptr<SimServer> server;
  const Status s = SimServer::start(SimServerOptions{}, &sim, &server);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.message().rfind("psps.acme.listen: listen 127.0.0.1:", 0), 0u) << s.message();
  EXPECT_EQ(server, nullptr);
}

}  // namespace
}  // namespace keel::psp_sim
