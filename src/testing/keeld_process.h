#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "testing/temp_dir.h"

namespace keel::testing {

// The path of a program built by this build tree: $KEEL_BUILD_DIR/<relative> (keel_add_test sets
// KEEL_BUILD_DIR for every test). Empty if the variable is not set.
[[nodiscard]] std::filesystem::path build_path(const std::string& relative);

struct KeeldOptions {
  // Empty: a fresh TempDir, owned by the KeeldProcess.
  std::filesystem::path data_dir;
  // Added after `--listen 127.0.0.1:0 --data DIR` (e.g. "--io-threads", "4").
  std::vector<std::string> extra_args;
  // Empty: build_path("src/keeld/keeld").
  std::filesystem::path binary;
  int64_t start_timeout_ms = 60'000;
};

// A keeld child process for process-level tests, listening on 127.0.0.1 on a port it picked.
// Its stderr (logs) goes to the test's stderr. The destructor always stops it (SIGTERM, then
// SIGKILL if it does not exit in time).
//
// Thread: one thread at a time.
class KeeldProcess {
 public:
  // Spawns keeld and waits for its `listening on http://HOST:PORT` line. Fails if the binary is
  // missing, the process exits first (with its exit status in the message) or the line does not
  // come within options.start_timeout_ms.
  static Status start(KeeldOptions options, std::unique_ptr<KeeldProcess>* out);
  ~KeeldProcess();
  KeeldProcess(const KeeldProcess&) = delete;
  KeeldProcess& operator=(const KeeldProcess&) = delete;

  [[nodiscard]] uint16_t port() const { return port_; }
  [[nodiscard]] std::string base_url() const;  // "http://127.0.0.1:PORT"
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] const std::filesystem::path& data_dir() const { return data_dir_; }
  [[nodiscard]] bool running() const { return pid_ > 0; }

  // Sends SIGTERM and waits up to `timeout_ms` (then SIGKILL). Returns the exit code, or
  // 128 + signal number if a signal ended it; -1 if it was not running.
  int stop(int64_t timeout_ms = 60'000);
  // Sends SIGKILL and waits. Returns as stop() does (137 normally).
  int kill9();
  // Waits up to `timeout_ms` for the process to exit on its own (e.g. after a journal
  // failure); returns as stop() does, or -2 if it is still running.
  int wait_exit(int64_t timeout_ms);

 private:
  KeeldProcess() = default;
  int reap(int64_t timeout_ms);

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  uint16_t port_ = 0;
  std::unique_ptr<TempDir> owned_dir_;
  std::filesystem::path data_dir_;
};

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
