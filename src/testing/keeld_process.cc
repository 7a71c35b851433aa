#include "testing/keeld_process.h"

#include "security/request_signing.h"

#include <fstream>
#include <map>
#include <mutex>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

extern char** environ;

namespace keel::testing {
namespace {

using Clock = std::chrono::steady_clock;

int64_t ms_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return std::max<int64_t>(0, left.count());
}

int decode_wait_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Waits up to timeout_ms for `pid`; its decoded status, or -2 if still running.
int wait_pid(pid_t pid, int64_t timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return decode_wait_status(status);
    if (r < 0 && errno != EINTR) return -1;
    if (Clock::now() >= deadline) return -2;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// Spawns argv with stdout (and stderr, if err_fd is not null) redirected to new pipes.
Status spawn(const std::vector<std::string>& argv, pid_t* pid, int* out_fd, int* err_fd,
             const std::string& stderr_path = {}) {
  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || (err_fd != nullptr && pipe2(err_pipe, O_CLOEXEC) != 0)) {
    return Status::error(std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  if (err_fd != nullptr) posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  if (err_fd == nullptr && !stderr_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0600);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const int rc = posix_spawn(pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  if (err_fd != nullptr) close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    if (err_fd != nullptr) close(err_pipe[0]);
    return Status::error("spawn " + argv[0] + ": " + std::strerror(rc));
  }
  *out_fd = out_pipe[0];
  if (err_fd != nullptr) *err_fd = err_pipe[0];
  return Status::ok();
}

// Reads one line from fd within the deadline. False on EOF, error or timeout.
bool read_line(int fd, Clock::time_point deadline, std::string* line) {
  line->clear();
  while (true) {
    pollfd p{fd, POLLIN, 0};
    const int n = poll(&p, 1, static_cast<int>(ms_until(deadline)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    char c = 0;
    const ssize_t r = read(fd, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    if (c == '\n') return true;
    line->push_back(c);
  }
}

}  // namespace

std::filesystem::path build_path(const std::string& relative) {
  const char* dir = std::getenv("KEEL_BUILD_DIR");
  if (dir == nullptr || *dir == '\0') return {};
  return std::filesystem::path(dir) / relative;
}

Status ServerProcess::start(const std::vector<std::string>& argv, int64_t start_timeout_ms,
                            std::unique_ptr<ServerProcess>* out) {
  std::unique_ptr<ServerProcess> p(new ServerProcess());
  if (Status s = p->launch(argv, start_timeout_ms); !s.is_ok()) return s;
  *out = std::move(p);
  return Status::ok();
}

Status ServerProcess::launch(const std::vector<std::string>& argv, int64_t start_timeout_ms,
                             const std::filesystem::path& stderr_file) {
  const std::string name = std::filesystem::path(argv.at(0)).filename().string();
  if (Status s = spawn(argv, &pid_, &stdout_fd_, nullptr, stderr_file.string()); !s.is_ok()) {
    return s;
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(start_timeout_ms);
  static constexpr std::string_view kPrefix = "listening on http://127.0.0.1:";
  static constexpr std::string_view kTlsPrefix = "listening on https://127.0.0.1:";
  // keeld prints the keys it made on its first start before it listens.
  static constexpr int kLinesBeforeMax = 8;
  std::string line;
  for (int n = 0;; ++n) {
    if (!read_line(stdout_fd_, deadline, &line)) {
      const int code = stop(5'000);
      return Status::error(name + " did not print its listening line (exit status " +
                           std::to_string(code) + ")");
    }
    if (line.rfind(kPrefix, 0) == 0) break;
    if (line.rfind(kTlsPrefix, 0) == 0) {
      tls_ = true;
      break;
    }
    if (n == kLinesBeforeMax) return Status::error("no listening line; the last was: " + line);
    lines_before_.push_back(line);
  }
  port_ =
      static_cast<uint16_t>(std::atoi(line.c_str() + (tls_ ? kTlsPrefix.size() : kPrefix.size())));
  if (port_ == 0) return Status::error("no port in: " + line);
  return Status::ok();
}

namespace {
std::mutex& admin_keys_mutex() {
  static std::mutex m;
  return m;
}
std::map<uint16_t, std::string>& admin_keys() {
  static std::map<uint16_t, std::string> keys;
  return keys;
}
}  // namespace

uint16_t KeeldProcess::admin_port() const {
  static constexpr std::string_view kPrefix = "admin listener on https://127.0.0.1:";
  for (const std::string& line : lines_before()) {
    if (line.starts_with(kPrefix)) {
      return static_cast<uint16_t>(std::atoi(line.c_str() + kPrefix.size()));
    }
  }
  return 0;
}

Status KeeldProcess::start(KeeldOptions options, std::unique_ptr<KeeldProcess>* out) {
  std::unique_ptr<KeeldProcess> p(new KeeldProcess());
  if (options.binary.empty()) options.binary = build_path("src/keeld/keeld");
  if (options.binary.empty()) return Status::error("KEEL_BUILD_DIR is not set");
  if (options.data_dir.empty()) {
    p->owned_dir_ = std::make_unique<TempDir>();
    options.data_dir = p->owned_dir_->path() / "data";
  }
  p->data_dir_ = options.data_dir;
  std::vector<std::string> argv = {options.binary.string(), "--listen", options.listen, "--data",
                                   options.data_dir.string()};
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  if (Status s = p->launch(argv, options.start_timeout_ms, options.log_file); !s.is_ok()) {
    return s;
  }
  {
    std::lock_guard lock(admin_keys_mutex());
    admin_keys()[p->port()] = p->admin_key();
  }
  *out = std::move(p);
  return Status::ok();
}

net::HttpClientOptions keeld_client_options(uint16_t port) {
  net::HttpClientOptions o;
  o.endpoint = {"127.0.0.1", port};
  use_admin_key(&o);
  return o;
}

void use_admin_key(net::HttpClientOptions* o) {
  o->api_key = keeld_admin_key(o->endpoint.port);
  o->sign = nullptr;
  if (!o->api_key.empty()) o->sign = security::request_signer<net::HttpHeaders>(o->api_key);
}

std::string keeld_admin_key(uint16_t port) {
  std::lock_guard lock(admin_keys_mutex());
  const auto it = admin_keys().find(port);
  return it == admin_keys().end() ? std::string() : it->second;
}

std::string bootstrap_key(const std::filesystem::path& data_dir, std::string_view name) {
  std::ifstream in(data_dir / "bootstrap-keys");
  const std::string prefix = std::string(name) + "=";
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(prefix)) return line.substr(prefix.size());
  }
  return {};
}

std::string KeeldProcess::admin_key() const { return bootstrap_key(data_dir_, "KEEL_ADMIN_KEY"); }

std::string KeeldProcess::demo_merchant_key() const {
  return bootstrap_key(data_dir_, "KEEL_DEMO_MERCHANT_KEY");
}

uint16_t pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

Status start_psp_sim(const std::filesystem::path& config, uint64_t seed,
                     std::unique_ptr<ServerProcess>* out, const std::string& listen) {
  const auto binary = build_path("src/psp_sim/keel-psp-sim");
  if (binary.empty()) return Status::error("KEEL_BUILD_DIR is not set");
  return ServerProcess::start({binary.string(), "--listen", listen, "--config", config.string(),
                               "--seed", std::to_string(seed)},
                              60'000, out);
}

ServerProcess::~ServerProcess() { stop(); }
KeeldProcess::~KeeldProcess() { stop(); }

std::string ServerProcess::base_url() const {
  return (tls_ ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port_);
}

int ServerProcess::reap(int64_t timeout_ms) {
  int code = wait_pid(pid_, timeout_ms);
  if (code == -2) {
    ::kill(pid_, SIGKILL);
    code = wait_pid(pid_, 60'000);
  }
  pid_ = -1;
  if (stdout_fd_ >= 0) close(stdout_fd_);
  stdout_fd_ = -1;
  return code;
}

int ServerProcess::stop(int64_t timeout_ms) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  return reap(timeout_ms);
}

int ServerProcess::kill9() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGKILL);
  return reap(60'000);
}

int ServerProcess::wait_exit(int64_t timeout_ms) {
  if (pid_ <= 0) return -1;
  const int code = wait_pid(pid_, timeout_ms);
  if (code == -2) return -2;
  pid_ = -1;
  if (stdout_fd_ >= 0) close(stdout_fd_);
  stdout_fd_ = -1;
  return code;
}

ProgramResult run_program(const std::vector<std::string>& argv, int64_t timeout_ms) {
  ProgramResult result;
  pid_t pid = -1;
  int out_fd = -1;
  int err_fd = -1;
  if (Status s = spawn(argv, &pid, &out_fd, &err_fd); !s.is_ok()) {
    result.err = s.message();
    return result;
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  while (open_fds > 0 && Clock::now() < deadline) {
    const int n = poll(fds, 2, static_cast<int>(ms_until(deadline)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t r = read(fds[i].fd, buf, sizeof buf);
      if (r > 0) {
        sinks[i]->append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (const pollfd& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  result.exit_code = wait_pid(pid, ms_until(deadline));
  if (result.exit_code == -2) {
    ::kill(pid, SIGKILL);
    wait_pid(pid, 60'000);
  }
  return result;
}

}  // namespace keel::testing
