#pragma once

// Helpers shared by the durability tests: keeld on a data directory that outlives the process,
// POSTs of event batches with their per-event results, transfers and balances as the server
// reports them, and what a test expects the server to have stored.

#include <boost/json/object.hpp>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "ledger/types.h"
#include "net/http_client.h"
#include "testing/keeld_process.h"

namespace keel::durability {

// The seed of a test's random source: $KEEL_TEST_SEED if set (to replay a failure), else a
// fresh random one. Printed by the caller.
[[nodiscard]] uint64_t test_seed();

// Starts keeld on `data_dir` (created if missing, kept after the process ends) with `config`
// (TOML, may be empty) written next to it as keeld.toml.
Status start_keeld(const std::filesystem::path& data_dir, const std::string& config,
                   std::unique_ptr<testing::KeeldProcess>* out);

// A keep-alive client of 127.0.0.1:port (connect timeout 5 s, I/O timeout 60 s).
[[nodiscard]] std::unique_ptr<net::HttpClient> make_client(uint16_t port);

// {"data": [...]} request bodies.
[[nodiscard]] std::string accounts_body(std::span<const ledger::AccountEvent> events);
[[nodiscard]] std::string transfers_body(std::span<const ledger::TransferEvent> events);

// The outcome of one POST of events.
struct PostOutcome {
  bool answered = false;  // a whole HTTP answer came back
  unsigned status = 0;
  std::vector<std::string> results;  // one result name per event, when status is 200
  std::string problem;  // transport error, or what is wrong with a 200 answer (empty if fine)
};

// POSTs `body` (the events whose ids are `ids`) to `target`. A 200 answer must hold one result
// per event, in order, with matching index and id; otherwise `problem` says what is wrong.
[[nodiscard]] PostOutcome post_events(net::HttpClient& client, std::string_view target,
                                      std::string_view body, std::span<const std::string> ids);

// Ok and exists both mean the event's effect is in the ledger.
[[nodiscard]] inline bool is_acknowledged(std::string_view result) {
  return result == "ok" || result == "exists";
}

// Creates `events` in one request; fails unless every result is ok.
Status create_accounts(net::HttpClient& client, const std::vector<ledger::AccountEvent>& events);
// Creates `events` in one request; fails unless every result is ok.
Status create_transfers(net::HttpClient& client, const std::vector<ledger::TransferEvent>& events);

// A transfer as GET /v1/transfers/{id} reports it: the fields the tests compare.
struct StoredTransfer {
  std::string id;
  std::string debit_account_id;
  std::string credit_account_id;
  int64_t amount = 0;
  std::string currency;
  uint16_t flags = 0;  // ledger::transfer_flags
  std::string pending_id;
  uint32_t timeout_s = 0;
  std::string pending_state;  // holds only: "pending", "posted", "voided" or "expired"
};

// GET /v1/transfers/{id}: *out is nullopt on 404; any other answer but 200 is an error.
Status get_transfer(net::HttpClient& client, const std::string& id,
                    std::optional<StoredTransfer>* out);
// GET /v1/accounts/{id}: the four balances; 404 is an error.
Status get_balances(net::HttpClient& client, const std::string& id, ledger::Balances* out);
// GET /v1/admin/status?full=true.
Status get_full_status(net::HttpClient& client, boost::json::object* out);

// Pages through GET /v1/accounts/{id}/transfers (newest first, 1000 a page) and adds the
// account's transfers to *out, newest first, up to (not including) the first one for which
// `seen` is true: transfers created since the last listing, when `seen` knows that listing.
Status list_new_transfers(net::HttpClient& client, const std::string& account_id,
                          const std::function<bool(const std::string&)>& seen,
                          std::vector<StoredTransfer>* out);

using TransferLookup = std::unordered_map<std::string, std::optional<StoredTransfer>>;
// GETs every id of `ids` over `connections` parallel connections to 127.0.0.1:port.
Status get_transfers(uint16_t port, const std::vector<std::string>& ids, size_t connections,
                     TransferLookup* out);

// What the server stores for `event` once it is applied. A post or void takes its accounts and
// currency from `hold` (the event that created the pending transfer); a post without an amount
// posts the whole hold, a void reports the amount it released. REQUIRES: `hold` for post/void.
[[nodiscard]] StoredTransfer expected_transfer(const ledger::TransferEvent& event,
                                               const ledger::TransferEvent* hold);
// Empty if `stored` equals `expected` in every field but pending_state; else what differs.
[[nodiscard]] std::string transfer_mismatch(const StoredTransfer& expected,
                                            const StoredTransfer& stored);

// Adds the effect of the existing transfer `t` on its two accounts' balances: a plain transfer
// and a post add to the posted sides, a hold still pending to the pending sides; a void, and a
// hold that was posted, voided or expired, leave nothing behind.
void add_effect(const StoredTransfer& t, std::map<std::string, ledger::Balances>* balances);

[[nodiscard]] std::string balances_text(const ledger::Balances& b);

// The chains of a request: runs of events joined by the linked flag (a lone event is a chain
// of one). Each chain is the list of its event indexes.
[[nodiscard]] std::vector<std::vector<size_t>> chains_of(
    std::span<const ledger::TransferEvent> events);

// The byte offsets at which the records of a journal segment start (framing only: the 40-byte
// header's payload length; stops at the first header that does not fit).
[[nodiscard]] std::vector<size_t> record_offsets(const std::string& segment_bytes);
// The journal segment files of `data_dir`, sorted by name (= by first sequence number).
[[nodiscard]] std::vector<std::filesystem::path> segment_files(
    const std::filesystem::path& data_dir);
[[nodiscard]] std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& bytes);

}  // namespace keel::durability
