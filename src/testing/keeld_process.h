#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "net/http_client.h"
#include "testing/temp_dir.h"

namespace keel::testing {

// The path of a program built by this build tree: $KEEL_BUILD_DIR/<relative> (keel_add_test sets
// KEEL_BUILD_DIR for every test). Empty if the variable is not set.
[[nodiscard]] std::filesystem::path build_path(const std::string& relative);

struct KeeldOptions {
  // Empty: a fresh TempDir, owned by the KeeldProcess.
  std::filesystem::path data_dir;
  std::string listen = "127.0.0.1:0";
  // Non-empty: keeld's stderr (its log) is appended to this file instead of going to the
  // test's stderr (tests that read what keeld logged).
  std::filesystem::path log_file;
  // Added after `--listen LISTEN --data DIR` (e.g. "--io-threads", "4").
  std::vector<std::string> extra_args;
  // Empty: build_path("src/keeld/keeld").
  std::filesystem::path binary;
  int64_t start_timeout_ms = 60'000;
};

// A keel server program (keeld, keel-psp-sim) as a child process of a test: spawned with
// `--listen 127.0.0.1:0`, ready once it printed `listening on http://127.0.0.1:PORT`. Its stderr
// goes to the test's stderr. The destructor always stops it (SIGTERM, then SIGKILL if it does
// not exit in time).
//
// Thread: one thread at a time.
class ServerProcess {
 public:
  // Spawns argv (argv[0] is the program's path) and waits for its listening line. Fails if the
  // binary is missing, the process exits first (with its exit status in the message) or the
  // line does not come within start_timeout_ms.
  static Status start(const std::vector<std::string>& argv, int64_t start_timeout_ms,
                      std::unique_ptr<ServerProcess>* out);
  virtual ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  [[nodiscard]] uint16_t port() const { return port_; }
  [[nodiscard]] std::string base_url() const;  // "http://127.0.0.1:PORT" (https: with TLS)
  [[nodiscard]] bool tls() const { return tls_; }
  // The lines it printed before its listening line (keeld: the keys of a first start, its
  // admin listener).
  [[nodiscard]] const std::vector<std::string>& lines_before() const { return lines_before_; }
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] bool running() const { return pid_ > 0; }

  // Sends SIGTERM and waits up to `timeout_ms` (then SIGKILL). Returns the exit code, or
  // 128 + signal number if a signal ended it; -1 if it was not running.
  int stop(int64_t timeout_ms = 60'000);
  // Sends SIGKILL and waits. Returns as stop() does (137 normally).
  int kill9();
  // Waits up to `timeout_ms` for the process to exit on its own (e.g. after a journal
  // failure); returns as stop() does, or -2 if it is still running.
  int wait_exit(int64_t timeout_ms);

 protected:
  ServerProcess() = default;
  // `stderr_file` non-empty: the process's stderr is appended to it.
  Status launch(const std::vector<std::string>& argv, int64_t start_timeout_ms,
                const std::filesystem::path& stderr_file = {});

 private:
  int reap(int64_t timeout_ms);

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  uint16_t port_ = 0;
  bool tls_ = false;  // it printed an https:// listening line
  std::vector<std::string> lines_before_;
};

// keeld with a data directory (a fresh TempDir unless one is given).
class KeeldProcess : public ServerProcess {
 public:
  static Status start(KeeldOptions options, std::unique_ptr<KeeldProcess>* out);
  ~KeeldProcess() override;  // stops keeld before its TempDir goes

  [[nodiscard]] const std::filesystem::path& data_dir() const { return data_dir_; }
  // The keys keeld made at its first start on this data directory (DATA/bootstrap-keys): the
  // admin key and the demo merchant's (mch_demo). Empty if there is none.
  [[nodiscard]] std::string admin_key() const;
  [[nodiscard]] std::string demo_merchant_key() const;
  // The port of keeld's admin listener ([admin_listener] in its config); 0 without one.
  [[nodiscard]] uint16_t admin_port() const;

 private:
  KeeldProcess() = default;

  std::unique_ptr<TempDir> owned_dir_;
  std::filesystem::path data_dir_;
};

// The admin key of the keeld this process started last on 127.0.0.1:`port` (KeeldProcess::start
// notes it), for helpers that know only the port; empty if none. Thread-safe.
[[nodiscard]] std::string keeld_admin_key(uint16_t port);

// Options for a client of that keeld on 127.0.0.1:`port`, sending its admin key and signing
// each request with it (admin keys must: docs/security.md).
[[nodiscard]] net::HttpClientOptions keeld_client_options(uint16_t port);
// Sets `o`'s key to the admin key of the keeld at o->endpoint.port, with its signer.
void use_admin_key(net::HttpClientOptions* o);

// The value of `name` ("KEEL_ADMIN_KEY") in DATA/bootstrap-keys; empty if absent.
[[nodiscard]] std::string bootstrap_key(const std::filesystem::path& data_dir,
                                        std::string_view name);

// keel-psp-sim from this build tree with `config` and `seed`, on `listen`.
Status start_psp_sim(const std::filesystem::path& config, uint64_t seed,
                     std::unique_ptr<ServerProcess>* out,
                     const std::string& listen = "127.0.0.1:0");

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed), for the
// rare program that must know another's port before that one starts. Another process may take
// it in between: callers retry on a start failure.
[[nodiscard]] uint16_t pick_free_port();

// The outcome of run_program().
struct ProgramResult {
  int exit_code = -1;  // as KeeldProcess::stop(); -2 if it timed out and was killed
  std::string out;
  std::string err;
};

// Runs `argv` (argv[0] is the program's path) to completion, capturing stdout and stderr;
// kills it after `timeout_ms`. For keeld start-up failures and the `keel` CLI.
[[nodiscard]] ProgramResult run_program(const std::vector<std::string>& argv,
                                        int64_t timeout_ms = 60'000);

}  // namespace keel::testing
