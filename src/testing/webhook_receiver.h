#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <ctime>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "connectors/webhook_signature.h"

namespace keel::testing {

// A merchant's webhook endpoint: one HTTP/1.1 request per connection (as keel sends them),
// answered 200 at once. Verifies each Keel-Signature with the merchant's secret and keeps the
// first delivery of each Keel-Event-Id (later ones are duplicates and only counted).
class WebhookReceiver {
 public:
  struct Received {
    std::string event_id;
    std::string body;
    bool signature_ok = false;
    std::string signature;  // the Keel-Signature header
  };

  explicit WebhookReceiver(std::string secret) : secret_(std::move(secret)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd_, 64) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~WebhookReceiver() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }

  [[nodiscard]] uint16_t port() const { return port_; }
  [[nodiscard]] std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/hooks";
  }
  // First delivery of each event id, in arrival order.
  [[nodiscard]] std::vector<Received> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  [[nodiscard]] size_t deliveries() const {
    std::lock_guard lock(mu_);
    return deliveries_;
  }
  [[nodiscard]] size_t bad_signatures() const {
    std::lock_guard lock(mu_);
    return bad_signatures_;
  }
  // The secret signatures are checked with from now on (a merchant switching after a rotation).
  void set_secret(std::string secret) {
    std::lock_guard lock(mu_);
    secret_ = std::move(secret);
  }

 private:
  void run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      handle(c);
      ::close(c);
    }
  }

  static std::string header(std::string_view head, std::string_view name) {
    size_t at = 0;
    while (at < head.size()) {
      const size_t end = head.find("\r\n", at);
      const std::string_view line = head.substr(at, end == std::string_view::npos ? end : end - at);
      const size_t colon = line.find(':');
      if (colon != std::string_view::npos && colon == name.size()) {
        bool same = true;
        for (size_t i = 0; i < colon; ++i) {
          same = same && std::tolower(static_cast<unsigned char>(line[i])) ==
                             std::tolower(static_cast<unsigned char>(name[i]));
        }
        if (same) {
          std::string_view v = line.substr(colon + 1);
          while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
          return std::string(v);
        }
      }
      if (end == std::string_view::npos) break;
      at = end + 2;
    }
    return {};
  }

  void handle(int c) {
    std::string in;
    char buf[4096];
    size_t head_end = std::string::npos;
    size_t want = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const ssize_t n = ::read(c, buf, sizeof(buf));
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
      if (head_end == std::string::npos) {
        head_end = in.find("\r\n\r\n");
        if (head_end == std::string::npos) continue;
        want = head_end + 4 + std::stoul("0" + header(in.substr(0, head_end), "Content-Length"));
      }
      if (in.size() >= want) break;
    }
    if (head_end == std::string::npos || in.size() < want) return;
    const std::string head = in.substr(0, head_end);
    const std::string body = in.substr(head_end + 4, want - head_end - 4);
    const std::string id = header(head, "Keel-Event-Id");
    const std::string signature = header(head, "Keel-Signature");
    constexpr std::string_view kAnswer =
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    (void)!::write(c, kAnswer.data(), kAnswer.size());  // acknowledge first, then record
    std::lock_guard lock(mu_);
    const bool ok = connectors::verify_webhook(secret_, signature, body,
                                               static_cast<int64_t>(std::time(nullptr))) ==
                    connectors::SignatureCheck::ok;
    ++deliveries_;
    if (!ok) {
      ++bad_signatures_;
      return;
    }
    if (seen_.insert(id).second) events_.push_back({id, body, ok, signature});
  }

  std::string secret_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::set<std::string> seen_;
  std::vector<Received> events_;
  size_t deliveries_ = 0;
  size_t bad_signatures_ = 0;
};

}  // namespace keel::testing
