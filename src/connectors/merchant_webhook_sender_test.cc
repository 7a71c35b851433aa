// MerchantWebhookSender against a small Beast server in the test, bound to 127.0.0.1 port 0
// (plain or TLS): what a 2xx, a non-2xx, a silent server, a closed connection and a refused
// port each give, that the signature verifies with verify_webhook(), and the SSRF guard. The
// guard's tests inject a resolver that answers from a table and a connector that records the
// address it was asked for and connects to the loopback server instead: no test resolves a
// name outside the machine or sends a byte to a non-loopback address.

#include "connectors/merchant_webhook_sender.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "connectors/webhook_signature.h"
#include "core/time.h"
#include "net/tls.h"
#include "testing/temp_dir.h"
#include "testing/test_pki.h"

namespace keel::connectors {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using beast::error_code;

constexpr int64_t kNowS = 1'800'000'000;
constexpr std::string_view kSecret = "whsec_test";
constexpr std::string_view kBody =
    R"({"id":"evt_1","type":"payment.succeeded","created_at":"2027-01-15T08:00:00.000000000Z",)"
    R"("data":{"amount":1250}})";

struct Received {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;
  std::string body;
};

// Accepts connections and, for each request, answers as `mode` says. Runs on the test's
// io_context thread; its handlers hold it alive until they finish.
class TestServer : public std::enable_shared_from_this<TestServer> {
 public:
  enum class Mode { answer, silent, close, huge_header };

  // `tls`: serve HTTPS with this context (the test keeps it alive).
  static std::shared_ptr<TestServer> start(asio::io_context& ioc, Mode mode, unsigned status = 200,
                                           asio::ssl::context* tls = nullptr) {
    auto s = std::shared_ptr<TestServer>(new TestServer(ioc, mode, status, tls));
    asio::post(ioc, [s] { s->accept(); });
    return s;
  }

  uint16_t port() const { return port_; }
  std::string url(std::string_view target = "/hooks") const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(target);
  }

  // Closes the acceptor and every connection; waits until that ran on the io_context.
  void stop() {
    std::promise<void> stopped;
    asio::post(ioc_, [self = shared_from_this(), &stopped] {
      error_code ignored;
      self->acceptor_.close(ignored);
      for (auto& c : self->connections_) c->stream.lowest().socket().close(ignored);
      self->connections_.clear();
      stopped.set_value();
    });
    stopped.get_future().wait();
  }

  std::vector<Received> received() const {
    std::lock_guard lock(mu_);
    return received_;
  }
  void wait_for_requests(size_t n) const {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return received_.size() >= n; });
  }

 private:
  struct Connection {
    Connection(tcp::socket s, asio::ssl::context* tls) : stream(std::move(s), tls) {}
    net::MaybeTlsStream stream;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    http::response<http::string_body> response;
    std::string raw;
  };

  TestServer(asio::io_context& ioc, Mode mode, unsigned status, asio::ssl::context* tls)
      : ioc_(ioc),
        acceptor_(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        mode_(mode),
        status_(status),
        tls_(tls) {
    port_ = acceptor_.local_endpoint().port();
  }

  void accept() {
    acceptor_.async_accept([self = shared_from_this()](error_code ec, tcp::socket socket) {
      if (ec) return;
      auto c = std::make_shared<Connection>(std::move(socket), self->tls_);
      self->connections_.push_back(c);
      if (auto* tls = c->stream.tls()) {
        tls->async_handshake(asio::ssl::stream_base::server, [self, c](error_code e) {
          if (!e) self->serve(c);
        });
      } else {
        self->serve(c);
      }
      self->accept();
    });
  }

  void serve(const std::shared_ptr<Connection>& c) {
    c->stream.with([&](auto& s) {
      http::async_read(s, c->buffer, c->request,
                       [self = shared_from_this(), c](error_code ec, size_t) {
                         if (ec) return;
                         self->record(c->request);
                         self->respond(c);
                       });
    });
  }

  void record(const http::request<http::string_body>& req) {
    Received r;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    for (const auto& field : req) {
      r.headers[std::string(field.name_string())] = std::string(field.value());
    }
    r.body = req.body();
    std::lock_guard lock(mu_);
    received_.push_back(std::move(r));
    cv_.notify_all();
  }

  void respond(const std::shared_ptr<Connection>& c) {
    error_code ignored;
    switch (mode_) {
      case Mode::silent:
        return;
      case Mode::close:
        c->stream.lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
        c->stream.lowest().socket().close(ignored);
        return;
      case Mode::huge_header:
        c->raw = "HTTP/1.1 200 OK\r\nX-Filler: " + std::string(16 * 1024, 'x') + "\r\n\r\n";
        c->stream.with([&](auto& s) {
          asio::async_write(s, asio::buffer(c->raw), [c](error_code, size_t) {});
        });
        return;
      case Mode::answer:
        c->response = {static_cast<http::status>(status_), 11};
        if (status_ != 204) c->response.body() = "ok";
        c->response.keep_alive(false);
        c->response.prepare_payload();
        c->stream.with([&](auto& s) {
          http::async_write(s, c->response, [c](error_code, size_t) {
            error_code ignored2;
            c->stream.lowest().socket().shutdown(tcp::socket::shutdown_send, ignored2);
          });
        });
        return;
    }
  }

  asio::io_context& ioc_;
  tcp::acceptor acceptor_;
  const Mode mode_;
  const unsigned status_;
  asio::ssl::context* const tls_;
  uint16_t port_ = 0;
  std::vector<std::shared_ptr<Connection>> connections_;  // io_context thread only
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<Received> received_;
};

class MerchantWebhookSenderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    thread_ = std::thread([this] { ioc_.run(); });
  }
  void TearDown() override {
    sender_.reset();
    for (auto& s : servers_) s->stop();
    servers_.clear();
    work_.reset();
    thread_.join();  // every pending handler ran: callbacks are all in
    EXPECT_EQ(callbacks_.load(), sends_.load());
  }

  // The tests' servers listen on loopback, which the guard refuses by default: `guard`
  // allow_loopback adds 127.0.0.0/8 and ::1 to the networks allowed.
  enum class Guard { allow_loopback, as_given };
  MerchantWebhookSender& sender(MerchantWebhookSenderOptions options = {},
                                Guard guard = Guard::allow_loopback) {
    if (guard == Guard::allow_loopback) {
      EXPECT_TRUE(
          net::parse_destination_policy({"127.0.0.0/8", "::1"}, &options.destinations).is_ok());
    }
    if (!options.clock_s) options.clock_s = [] { return kNowS; };
    sender_ = std::make_unique<MerchantWebhookSender>(ioc_.get_executor(), std::move(options));
    return *sender_;
  }

  std::shared_ptr<TestServer> server(TestServer::Mode mode, unsigned status = 200,
                                     asio::ssl::context* tls = nullptr) {
    servers_.push_back(TestServer::start(ioc_, mode, status, tls));
    return servers_.back();
  }

  static MerchantWebhook webhook(std::string url) {
    return {std::move(url), std::string(kBody), std::string(kSecret), "evt_1"};
  }

  // Sends one webhook and waits for its callback (which must come exactly once).
  std::future<MerchantWebhookResult> send(MerchantWebhook w) {
    auto promise = std::make_shared<std::promise<MerchantWebhookResult>>();
    auto result = promise->get_future();
    ++sends_;
    sender_->send(std::move(w), [this, promise](MerchantWebhookResult r) {
      ++callbacks_;
      promise->set_value(std::move(r));  // a second call would throw
    });
    return result;
  }
  MerchantWebhookResult send_and_wait(MerchantWebhook w) { return send(std::move(w)).get(); }

  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(ioc_);
  std::thread thread_;
  std::unique_ptr<MerchantWebhookSender> sender_;
  std::vector<std::shared_ptr<TestServer>> servers_;
  std::atomic<int> sends_{0};
  std::atomic<int> callbacks_{0};
};

TEST_F(MerchantWebhookSenderTest, A2xxIsDeliveredWithSignedHeaders) {
  sender();
  auto s = server(TestServer::Mode::answer, 200);
  const MerchantWebhookResult r = send_and_wait(webhook(s->url("/hooks/keel?v=1")));
  EXPECT_TRUE(r.delivered);
  EXPECT_EQ(r.http_status, 200u);
  EXPECT_EQ(r.reason, "");
  const std::vector<Received> got = s->received();
  ASSERT_EQ(got.size(), 1u);
  const Received& req = got[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/hooks/keel?v=1");
  EXPECT_EQ(req.body, kBody);
  EXPECT_EQ(req.headers.at("Content-Type"), "application/json");
  EXPECT_EQ(req.headers.at("User-Agent"), "keel");
  EXPECT_EQ(req.headers.at("Keel-Event-Id"), "evt_1");
  EXPECT_EQ(req.headers.at("Host"), "127.0.0.1:" + std::to_string(s->port()));
  EXPECT_EQ(req.headers.at("Connection"), "close");
  const std::string& signature = req.headers.at("Keel-Signature");
  EXPECT_EQ(signature, sign_webhook(kSecret, kNowS, kBody));
  // The worked example of docs/webhooks.md.
  EXPECT_EQ(signature,
            "t=1800000000,v1=e1cf50cef5fbf73eb58479d3a8de14454adb79b386511e80875361d4c656ff5a");
  EXPECT_TRUE(signature.starts_with("t=" + std::to_string(kNowS) + ",v1="));
  EXPECT_EQ(verify_webhook(kSecret, signature, req.body, kNowS), SignatureCheck::ok);
  EXPECT_EQ(verify_webhook("other", signature, req.body, kNowS), SignatureCheck::mismatch);
  EXPECT_EQ(verify_webhook(kSecret, signature, req.body + " ", kNowS), SignatureCheck::mismatch);
  const MerchantWebhookSender::Stats stats = sender_->stats();
  EXPECT_EQ(stats.sent, 1u);
  EXPECT_EQ(stats.delivered, 1u);
  EXPECT_EQ(stats.failed, 0u);
}

TEST_F(MerchantWebhookSenderTest, DuringARotationBothSecretsSign) {
  sender();
  auto s = server(TestServer::Mode::answer, 200);
  MerchantWebhook w = webhook(s->url("/hooks"));
  w.previous_secret = "whsec_before";
  ASSERT_TRUE(send_and_wait(std::move(w)).delivered);
  const std::vector<Received> got = s->received();
  ASSERT_EQ(got.size(), 1u);
  const std::string& signature = got[0].headers.at("Keel-Signature");
  EXPECT_EQ(signature, sign_webhook(kSecret, kNowS, kBody, "whsec_before"));
  EXPECT_EQ(signature,
            sign_webhook(kSecret, kNowS, kBody) + ",v1=" +
                hmac_sha256_hex("whsec_before", std::to_string(kNowS) + "." + std::string(kBody)));
  EXPECT_EQ(verify_webhook(kSecret, signature, kBody, kNowS), SignatureCheck::ok);
  EXPECT_EQ(verify_webhook("whsec_before", signature, kBody, kNowS), SignatureCheck::ok);
  EXPECT_EQ(verify_webhook("other", signature, kBody, kNowS), SignatureCheck::mismatch);
}

TEST_F(MerchantWebhookSenderTest, SignsWithTheWallClockByDefault) {
  MerchantWebhookSenderOptions o;
  ASSERT_TRUE(net::parse_destination_policy({"127.0.0.0/8"}, &o.destinations).is_ok());
  o.clock_s = nullptr;
  sender_ = std::make_unique<MerchantWebhookSender>(ioc_.get_executor(), o);
  auto s = server(TestServer::Mode::answer, 200);
  ASSERT_TRUE(send_and_wait(webhook(s->url())).delivered);
  const std::string signature = s->received().at(0).headers.at("Keel-Signature");
  EXPECT_EQ(verify_webhook(kSecret, signature, kBody, wall_clock_now() / kNanosPerSecond),
            SignatureCheck::ok);
}

TEST_F(MerchantWebhookSenderTest, Any2xxIsDelivered) {
  sender();
  for (unsigned status : {201u, 202u, 204u, 299u}) {
    auto s = server(TestServer::Mode::answer, status);
    const MerchantWebhookResult r = send_and_wait(webhook(s->url()));
    EXPECT_TRUE(r.delivered) << status;
    EXPECT_EQ(r.http_status, status);
  }
}

TEST_F(MerchantWebhookSenderTest, AnyOtherStatusFails) {
  sender();
  for (unsigned status : {500u, 503u, 404u, 400u, 301u, 302u}) {
    auto s = server(TestServer::Mode::answer, status);
    const MerchantWebhookResult r = send_and_wait(webhook(s->url()));
    EXPECT_FALSE(r.delivered) << status;
    EXPECT_EQ(r.http_status, status);
    EXPECT_EQ(r.reason, "http " + std::to_string(status));
  }
  EXPECT_EQ(sender_->stats().failed, 6u);
}

TEST_F(MerchantWebhookSenderTest, AServerThatNeverAnswersTimesOut) {
  MerchantWebhookSenderOptions o;
  o.total_timeout_ms = 200;
  sender(o);
  auto s = server(TestServer::Mode::silent);
  const MerchantWebhookResult r = send_and_wait(webhook(s->url()));
  EXPECT_FALSE(r.delivered);
  EXPECT_EQ(r.http_status, 0u);
  EXPECT_EQ(r.reason, "timeout");
  EXPECT_EQ(s->received().size(), 1u);  // it was sent, and may have been acted on
}

TEST_F(MerchantWebhookSenderTest, ARefusedPortFails) {
  sender();
  uint16_t port = 0;
  {
    tcp::acceptor closed(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = closed.local_endpoint().port();
  }
  const MerchantWebhookResult r =
      send_and_wait(webhook("http://127.0.0.1:" + std::to_string(port) + "/hooks"));
  EXPECT_FALSE(r.delivered);
  EXPECT_EQ(r.reason, "connect refused");
}

TEST_F(MerchantWebhookSenderTest, AConnectionClosedWithoutAnswerFails) {
  sender();
  auto s = server(TestServer::Mode::close);
  const MerchantWebhookResult r = send_and_wait(webhook(s->url()));
  EXPECT_FALSE(r.delivered);
  EXPECT_TRUE(r.reason == "connection closed" || r.reason == "connection reset") << r.reason;
}

TEST_F(MerchantWebhookSenderTest, AnOversizedAnswerHeadFails) {
  sender();
  auto s = server(TestServer::Mode::huge_header);
  const MerchantWebhookResult r = send_and_wait(webhook(s->url()));
  EXPECT_FALSE(r.delivered);
  EXPECT_EQ(r.reason, "response too large");
}

TEST_F(MerchantWebhookSenderTest, AHostNameIsResolved) {
  sender();
  auto s = server(TestServer::Mode::answer, 200);
  const MerchantWebhookResult r =
      send_and_wait(webhook("http://localhost:" + std::to_string(s->port()) + "/x"));
  EXPECT_TRUE(r.delivered) << r.reason;
}

TEST_F(MerchantWebhookSenderTest, BadInputFailsWithoutSending) {
  MerchantWebhookSenderOptions o;
  o.request_body_bytes_max = kBody.size();
  sender(o);
  auto s = server(TestServer::Mode::answer, 200);
  const auto reason = [&](MerchantWebhook w) { return send_and_wait(std::move(w)).reason; };
  EXPECT_EQ(reason(webhook("ftp://127.0.0.1/hooks")), "url invalid");
  EXPECT_EQ(reason(webhook("http://127.0.0.1:0/hooks")), "url invalid");
  EXPECT_EQ(reason(webhook(s->url("/a b"))), "url invalid");
  EXPECT_EQ(reason(webhook(s->url("/a\r\nX-Injected: 1"))), "url invalid");
  EXPECT_EQ(reason(webhook("http://u@h:1/")), "url invalid");
  MerchantWebhook bad_id = webhook(s->url());
  bad_id.event_id = "evt_1\r\nX-Injected: 1";
  EXPECT_EQ(reason(bad_id), "event id invalid");
  MerchantWebhook big = webhook(s->url());
  big.body += " ";
  EXPECT_EQ(reason(big), "body too large");
  EXPECT_TRUE(s->received().empty());
}

TEST_F(MerchantWebhookSenderTest, CallbacksNeverRunInline) {
  sender();
  // Started on the io_context thread, where an inline callback could run at once.
  std::promise<bool> inline_seen;
  asio::post(ioc_, [&] {
    auto returned = std::make_shared<bool>(false);
    ++sends_;
    sender_->send(webhook("not a url"), [&, returned](MerchantWebhookResult r) {
      ++callbacks_;
      EXPECT_EQ(r.reason, "url invalid");
      inline_seen.set_value(!*returned);
    });
    *returned = true;
  });
  EXPECT_FALSE(inline_seen.get_future().get());
}

TEST_F(MerchantWebhookSenderTest, DestructionFailsTriesInFlightOnce) {
  sender();
  auto s = server(TestServer::Mode::silent);
  auto pending = send(webhook(s->url()));
  s->wait_for_requests(1);
  sender_.reset();
  const MerchantWebhookResult r = pending.get();
  EXPECT_FALSE(r.delivered);
  EXPECT_EQ(r.reason, "shut down");
}

TEST_F(MerchantWebhookSenderTest, TriesInFlightAreBounded) {
  MerchantWebhookSenderOptions o;
  o.in_flight_max = 1;
  sender(o);
  auto s = server(TestServer::Mode::silent);
  auto first = send(webhook(s->url()));
  s->wait_for_requests(1);
  EXPECT_EQ(send_and_wait(webhook(s->url())).reason, "too many in flight");
  sender_.reset();
  EXPECT_EQ(first.get().reason, "shut down");
}

TEST_F(MerchantWebhookSenderTest, ManyDeliveriesAtOnce) {
  sender();
  auto ok = server(TestServer::Mode::answer, 200);
  auto bad = server(TestServer::Mode::answer, 500);
  std::vector<std::future<MerchantWebhookResult>> results;
  for (int i = 0; i < 40; ++i) results.push_back(send(webhook((i % 2 ? bad : ok)->url())));
  int delivered = 0;
  for (auto& f : results) delivered += f.get().delivered ? 1 : 0;
  EXPECT_EQ(delivered, 20);
  EXPECT_EQ(ok->received().size(), 20u);
  EXPECT_EQ(bad->received().size(), 20u);
}

// A network for the guard's tests: names resolve from a table, and a connection to a public
// address goes to a loopback port instead (or is refused). It records every name it was asked
// to resolve and every address it was asked to connect to.
class FakeNetwork {
 public:
  void name(std::string host, std::vector<std::string> addresses) {
    std::lock_guard lock(mu_);
    names_[std::move(host)] = std::move(addresses);
  }
  // A connection to `address` reaches 127.0.0.1:`port` (0: refused).
  void route(std::string address, uint16_t port) {
    std::lock_guard lock(mu_);
    routes_[std::move(address)] = port;
  }
  std::vector<std::string> resolved() const {
    std::lock_guard lock(mu_);
    return resolved_;
  }
  std::vector<std::string> connected() const {
    std::lock_guard lock(mu_);
    return connected_;
  }

  // Options whose resolver and connector are this network's.
  MerchantWebhookSenderOptions options() {
    MerchantWebhookSenderOptions o;
    o.resolve = [this](const std::string& host, ResolveDone done) {
      std::vector<asio::ip::address> found;
      {
        std::lock_guard lock(mu_);
        resolved_.push_back(host);
        const auto it = names_.find(host);
        if (it == names_.end()) return done(asio::error::host_not_found, {});
        for (const auto& a : it->second) found.push_back(asio::ip::make_address(a));
      }
      done({}, std::move(found));
    };
    o.connect = [this](beast::tcp_stream& stream, const tcp::endpoint& endpoint, ConnectDone done) {
      uint16_t port = 0;
      {
        std::lock_guard lock(mu_);
        connected_.push_back(endpoint.address().to_string() + ":" +
                             std::to_string(endpoint.port()));
        const auto it = routes_.find(endpoint.address().to_string());
        if (it != routes_.end()) port = it->second;
      }
      if (port == 0) return done(asio::error::connection_refused);
      stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                           [done](error_code ec) { done(ec); });
    };
    return o;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::vector<std::string>> names_;
  std::map<std::string, uint16_t> routes_;
  std::vector<std::string> resolved_;
  std::vector<std::string> connected_;
};

TEST_F(MerchantWebhookSenderTest, ByDefaultLoopbackIsRefusedBeforeAnyConnection) {
  FakeNetwork net;
  sender(net.options(), Guard::as_given);  // the guard as keeld's default has it
  auto s = server(TestServer::Mode::answer, 200);
  const MerchantWebhookResult r = send_and_wait(webhook(s->url()));
  EXPECT_FALSE(r.delivered);
  EXPECT_EQ(r.reason, "destination refused: 127.0.0.1 is loopback");
  EXPECT_TRUE(net.resolved().empty());  // an address in the URL is judged as it is
  EXPECT_TRUE(net.connected().empty());
  EXPECT_TRUE(s->received().empty());
}

TEST_F(MerchantWebhookSenderTest, EveryForbiddenRangeIsRefusedAfterResolution) {
  FakeNetwork net;
  sender(net.options(), Guard::as_given);  // the guard as keeld's default has it
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"10.0.0.7", "destination refused: 10.0.0.7 is private"},
      {"192.168.1.1", "destination refused: 192.168.1.1 is private"},
      {"169.254.169.254", "destination refused: 169.254.169.254 is a cloud metadata service"},
      {"fe80::1", "destination refused: fe80::1 is link-local"},
      {"::ffff:127.0.0.1", "destination refused: ::ffff:127.0.0.1 is loopback"},
      {"0.0.0.0", "destination refused: 0.0.0.0 is unspecified"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string host = "h" + std::to_string(i) + ".merchant.test";
    net.name(host, {cases[i].first});
    const MerchantWebhookResult r = send_and_wait(webhook("http://" + host + "/hooks"));
    EXPECT_FALSE(r.delivered);
    EXPECT_EQ(r.reason, cases[i].second) << cases[i].first;
  }
  // A literal address in the URL, the metadata service's own.
  EXPECT_EQ(send_and_wait(webhook("http://169.254.169.254/latest/meta-data")).reason,
            "destination refused: 169.254.169.254 is a cloud metadata service");
  EXPECT_EQ(net.resolved().size(), cases.size());
  EXPECT_TRUE(net.connected().empty());
}

// A name that resolves to a public and a private address (a rebinding trick, or a split
// horizon) is refused whole: no address of it is tried.
TEST_F(MerchantWebhookSenderTest, OneForbiddenAddressRefusesTheWholeDestination) {
  FakeNetwork net;
  sender(net.options(), Guard::as_given);  // the guard as keeld's default has it
  net.name("mixed.merchant.test", {"93.184.216.34", "10.0.0.7"});
  const MerchantWebhookResult r = send_and_wait(webhook("http://mixed.merchant.test/hooks"));
  EXPECT_EQ(r.reason, "destination refused: 10.0.0.7 is private");
  EXPECT_TRUE(net.connected().empty());
}

// The connection goes to the address the guard judged, with the URL's host in Host.
TEST_F(MerchantWebhookSenderTest, APublicAddressIsPinnedAndTriedInOrder) {
  FakeNetwork net;
  sender(net.options(), Guard::as_given);  // the guard as keeld's default has it
  auto s = server(TestServer::Mode::answer, 200);
  net.name("hooks.merchant.test", {"2606:4700::1111", "93.184.216.34"});
  net.route("93.184.216.34", s->port());  // the IPv6 address refuses
  const MerchantWebhookResult r =
      send_and_wait(webhook("http://hooks.merchant.test:8080/keel?x=1"));
  EXPECT_TRUE(r.delivered) << r.reason;
  EXPECT_EQ(net.connected(),
            (std::vector<std::string>{"2606:4700::1111:8080", "93.184.216.34:8080"}));
  ASSERT_EQ(s->received().size(), 1u);
  EXPECT_EQ(s->received()[0].headers["Host"], "hooks.merchant.test:8080");
  EXPECT_EQ(s->received()[0].target, "/keel?x=1");
}

TEST_F(MerchantWebhookSenderTest, AnAllowedNetworkOpensItsRangeOnly) {
  FakeNetwork net;
  MerchantWebhookSenderOptions o = net.options();
  ASSERT_TRUE(net::parse_destination_policy({"10.20.0.0/16"}, &o.destinations).is_ok());
  sender(o, Guard::as_given);
  auto s = server(TestServer::Mode::answer, 200);
  net.name("inside.corp.test", {"10.20.3.4"});
  net.name("outside.corp.test", {"10.21.0.1"});
  net.route("10.20.3.4", s->port());
  EXPECT_TRUE(send_and_wait(webhook("http://inside.corp.test/h")).delivered);
  EXPECT_EQ(send_and_wait(webhook("http://outside.corp.test/h")).reason,
            "destination refused: 10.21.0.1 is private");
}

TEST_F(MerchantWebhookSenderTest, AResolverFailureFails) {
  FakeNetwork net;
  sender(net.options(), Guard::as_given);  // the guard as keeld's default has it
  const MerchantWebhookResult r = send_and_wait(webhook("http://nowhere.merchant.test/h"));
  EXPECT_FALSE(r.delivered);
  EXPECT_TRUE(r.reason.starts_with("resolve: ")) << r.reason;
  EXPECT_TRUE(net.connected().empty());
}

// https: the certificate is verified for the URL's host (not the address), under the CAs given.
class MerchantWebhookHttpsTest : public MerchantWebhookSenderTest {
 protected:
  void SetUp() override {
    MerchantWebhookSenderTest::SetUp();
    ASSERT_TRUE(testing::TestPki::create(dir_.path(), "hooks", &pki_).is_ok());
  }
  // A TLS server whose certificate names `hosts`, reached for any public address in `net`.
  // `expired`: its certificate stopped being valid a day ago.
  std::shared_ptr<TestServer> tls_server(const std::vector<std::string>& hosts,
                                         const std::string& name, bool expired = false) {
    testing::TestCertificate cert;
    const int64_t now = wall_clock_now() / kNanosPerSecond;
    EXPECT_TRUE((expired ? pki_.issue(name, hosts, now - 30 * 86400, now - 86400, &cert)
                         : pki_.issue_now(name, hosts, &cert))
                    .is_ok());
    std::shared_ptr<asio::ssl::context> ctx;
    EXPECT_TRUE(
        net::make_server_context({cert.cert.string(), cert.key.string(), ""}, &ctx).is_ok());
    contexts_.push_back(ctx);
    return server(TestServer::Mode::answer, 200, ctx.get());
  }
  MerchantWebhookSenderOptions options(FakeNetwork* net, bool trust = true) {
    MerchantWebhookSenderOptions o = net->options();
    if (trust) o.tls.ca_file = pki_.ca_cert().string();
    return o;
  }

  testing::TempDir dir_;
  testing::TestPki pki_;
  std::vector<std::shared_ptr<asio::ssl::context>> contexts_;
};

TEST_F(MerchantWebhookHttpsTest, AVerifiedEndpointGetsTheSignedEvent) {
  FakeNetwork net;
  sender(options(&net), Guard::as_given);
  auto s = tls_server({"hooks.merchant.test"}, "good");
  net.name("hooks.merchant.test", {"93.184.216.34"});
  net.route("93.184.216.34", s->port());
  const MerchantWebhookResult r = send_and_wait(webhook("https://hooks.merchant.test/keel"));
  EXPECT_TRUE(r.delivered) << r.reason;
  ASSERT_EQ(s->received().size(), 1u);
  EXPECT_EQ(s->received()[0].body, kBody);
  EXPECT_EQ(verify_webhook(kSecret, s->received()[0].headers["Keel-Signature"], kBody, kNowS),
            SignatureCheck::ok);
}

TEST_F(MerchantWebhookHttpsTest, AnotherHostsOrAnExpiredOrAnUntrustedCertificateFails) {
  FakeNetwork net;
  sender(options(&net), Guard::as_given);
  auto other = tls_server({"elsewhere.test"}, "other");
  auto expired = tls_server({"expired.merchant.test"}, "expired", /*expired=*/true);
  net.name("wrong.merchant.test", {"93.184.216.34"});
  net.route("93.184.216.34", other->port());
  net.name("expired.merchant.test", {"93.184.216.35"});
  net.route("93.184.216.35", expired->port());
  MerchantWebhookResult r = send_and_wait(webhook("https://wrong.merchant.test/h"));
  EXPECT_FALSE(r.delivered);
  EXPECT_TRUE(r.reason.starts_with("tls: ")) << r.reason;
  r = send_and_wait(webhook("https://expired.merchant.test/h"));
  EXPECT_FALSE(r.delivered);
  EXPECT_NE(r.reason.find("expired"), std::string::npos) << r.reason;
  EXPECT_TRUE(other->received().empty());
  EXPECT_TRUE(expired->received().empty());
}

TEST_F(MerchantWebhookHttpsTest, AServerNotUnderTheConfiguredCasFails) {
  FakeNetwork net;
  sender(options(&net, /*trust=*/false), Guard::as_given);  // the system's CAs only
  auto s = tls_server({"hooks.merchant.test"}, "good");
  net.name("hooks.merchant.test", {"93.184.216.34"});
  net.route("93.184.216.34", s->port());
  const MerchantWebhookResult r = send_and_wait(webhook("https://hooks.merchant.test/h"));
  EXPECT_FALSE(r.delivered);
  EXPECT_NE(r.reason.find("certificate verify failed"), std::string::npos) << r.reason;
  EXPECT_TRUE(s->received().empty());
}

}  // namespace
}  // namespace keel::connectors
