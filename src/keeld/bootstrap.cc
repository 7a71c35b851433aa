#include "keeld/bootstrap.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>

#include "core/time.h"
#include "payments/commands.h"
#include "security/api_key.h"
#include "security/key_ring.h"

namespace keel::keeld {
namespace {

Status errno_error(std::string what, const std::filesystem::path& path) {
  return Status::error(what + " " + path.string() + ": " + std::strerror(errno));
}

// Writes `text` to `path` with mode 0600, durably (temporary file, fsync, rename, fsync of the
// directory), so the file is either the old one or the whole new one.
Status write_private_file(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno_error("cannot create", tmp);
  bool ok = ::fchmod(fd, 0600) == 0;
  for (size_t done = 0; ok && done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const Status failed = ok ? Status::ok() : errno_error("cannot write", tmp);
  ::close(fd);
  if (!failed.is_ok()) return failed;
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errno_error("cannot rename to", path);
  const int dir = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return errno_error("cannot open", path.parent_path());
  const bool synced = ::fsync(dir) == 0;
  ::close(dir);
  return synced ? Status::ok() : errno_error("cannot sync", path.parent_path());
}

Status journal_key(engine::Engine& engine, const security::GeneratedKey& key, security::Role role,
                   std::string owner, std::string label) {
  const auto o = engine::wait_for<security::Result>([&](auto done) {
    engine.security_command(
        security::cmd::CreateKey{key.id, role, std::move(owner), key.hash, std::move(label)},
        std::move(done));
  });
  if (o.error != engine::EngineError::ok || o.value != security::Result::ok) {
    return Status::error("cannot journal the bootstrap key " + key.id + ": " +
                         std::string(security::result_name(o.value)));
  }
  return Status::ok();
}

}  // namespace

Status bootstrap_keys(engine::Engine& engine, const std::filesystem::path& data_dir,
                      bool new_admin_key, BootstrapKeys* out) {
  *out = {};
  const bool first = engine.keys()->empty();
  if (!first && !new_admin_key) return Status::ok();
  const auto status = engine::wait_for<engine::EngineStatus>(
      [&](auto done) { engine.get_status(false, std::move(done)); });
  if (status.error != engine::EngineError::ok) return Status::error("the engine did not answer");
  // A new data directory: nothing in it but, after a crash during a first start, the demo
  // merchant itself.
  const bool empty_data = status.value.counts.accounts == 0 &&
                          status.value.payments.customers == 0 &&
                          status.value.payments.merchants <= 1;
  bool demo = first && empty_data;
  if (demo) {
    const auto created = engine::wait_for<payments::Reply>([&](auto done) {
      engine.payments_command(
          payments::cmd::CreateMerchant{std::string(kDemoMerchantId), "Demo merchant", "", ""}, 0,
          std::move(done));
    });
    // A demo is a convenience: without it (memory above its budget, say) keeld still starts.
    demo = created.error == engine::EngineError::ok &&
           (created.value.ok() || created.value.error == payments::Error::resource_exists);
  }
  const security::GeneratedKey admin = security::generate_key();
  const security::GeneratedKey merchant = security::generate_key();
  std::string text =
      "# keel API keys keeld created at " + format_rfc3339(wall_clock_now()) +
      ". Each is shown only here:\n"
      "# keep them somewhere safe, then delete this file. keeld stores only their hashes.\n"
      "KEEL_ADMIN_KEY=" +
      admin.text + "\n";
  if (demo) {
    text += "KEEL_DEMO_MERCHANT=" + std::string(kDemoMerchantId) +
            "\nKEEL_DEMO_MERCHANT_KEY=" + merchant.text + "\n";
  }
  if (Status s = write_private_file(data_dir / kBootstrapKeysFile, text); !s.is_ok()) return s;
  if (Status s = journal_key(engine, admin, security::Role::admin, "",
                             first ? "bootstrap admin" : "keeld --new-admin-key");
      !s.is_ok()) {
    return s;
  }
  out->admin_key = admin.text;
  if (demo) {
    if (Status s = journal_key(engine, merchant, security::Role::merchant,
                               std::string(kDemoMerchantId), "demo merchant");
        !s.is_ok()) {
      return s;
    }
    out->merchant_key = merchant.text;
  }
  return Status::ok();
}

}  // namespace keel::keeld
