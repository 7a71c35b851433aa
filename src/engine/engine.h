#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/time.h"
#include "journal/journal.h"
#include "journal/storage.h"
#include "ledger/ledger.h"
#include "payments/core.h"
#include "routing/router.h"
#include "security/key_ring.h"
#include "store/store.h"

namespace keel::engine {

enum class LogLevel : uint8_t { info, warn, error };

// What the payments core asked for after a commit: PSP calls to make and attempts whose outcome
// is unknown (ask the PSP's status API). Handed to EngineOptions::on_payment_effects.
struct PaymentEffects {
  std::vector<payments::PspCall> calls;
  std::vector<payments::ResolveRequest> resolve;
  // Merchant webhooks to send; each one's end comes back as an outbox_attempt command. The
  // engine hands each out once per run (until that command), so none is sent twice at once.
  std::vector<payments::Delivery> deliveries;
};

// Opens the storage the engine journals to (journal/storage.h). `warn` is the engine's warning
// log, for what the backend reports (a torn tail dropped, a damaged snapshot skipped).
using StorageOpener = std::function<Status(std::function<void(std::string_view)> warn,
                                           std::unique_ptr<journal::Storage>* out)>;

// Opens the history store (store/store.h).
using StoreOpener = std::function<Status(std::unique_ptr<store::Store>* out)>;

struct EngineOptions {
  // Where the file journal lives (when open_storage is empty).
  std::filesystem::path data_dir = "./data";
  // Empty (keeld, the default): the file journal (journal::Journal) in data_dir, with
  // segment_bytes_max. Tests set it to open a journal::MemoryStorage over a MemoryDisk they keep,
  // to inject storage faults and to restart over exactly what was durable.
  StorageOpener open_storage;
  // The history store, where the ledger's final transfers go once committed so that memory holds
  // what is open (docs/storage.md, "Tiers"). Empty: RocksDB in data_dir/store with the file
  // journal (unless history_in_memory), none with open_storage (every transfer stays in memory,
  // as engine tests of other things expect). Tests set it to a store::MemoryStore.
  StoreOpener open_store;
  bool history_in_memory = false;  // keep every transfer in memory, open no store
  // The file journal's archive (journal::JournalOptions::archive_dir): segments past retention
  // move there, so `keel store rebuild` can rebuild the store. Empty: they are deleted.
  std::filesystem::path archive_dir;
  size_t store_cache_mb = 64;  // RocksDB's block cache
  // The memory budget ([engine] memory_max_mb; 0: none). While the process's resident memory
  // (RocksDB's block cache and memtables included) is above it, new work is refused with
  // EngineError::over_capacity: creating accounts, transfers, customers, merchants, payments,
  // refunds, top-ups, payouts and wallet transfers. Everything that finishes what is open goes
  // on (confirms, captures, cancels, PSP results, merchant webhooks, reads), and so does the
  // history tier, which is what brings memory down. It is taken again below 95 % of the budget.
  // Checked every tick_interval_ms; each crossing is logged.
  uint64_t memory_max_bytes = 0;
  // How resident memory is read (tests inject one); empty: /proc/self/statm.
  std::function<uint64_t()> resident_bytes;
  // Commands waiting for the writer; a submit beyond this is refused (HTTP 503).
  size_t queue_capacity = 16384;
  // Most ledger events (accounts + transfers) applied in one group commit.
  size_t batch_events_max = 65536;
  // A snapshot is taken after this many journaled events since the last one (0 = never,
  // except on demand).
  uint64_t snapshot_interval_events = 20'000'000;
  uint64_t segment_bytes_max = uint64_t{256} << 20;
  // The journal's audit chain (journal/audit_chain.h). keeld always writes it; only keel-bench
  // turns it off, to measure what it costs.
  bool audit_chain = true;
  // How often the writer checks for expired holds while idle.
  int64_t tick_interval_ms = 100;
  // The wall clock the engine stamps commands from and checks deadlines against (logical time
  // never goes back: a stamp is after the journal's last). Empty: wall_clock_now(). Tests that
  // replay an old data directory stop it (a clock at 0 lets no deadline pass), so the state they
  // check is the one replayed, whatever day they run.
  std::function<Timestamp()> wall_clock;
  // Where the engine logs: info (recovery, snapshots), warn (a torn tail cut, a damaged
  // snapshot skipped), error (journal or snapshot failure). May be empty.
  std::function<void(LogLevel, std::string_view)> log;
  payments::CoreOptions payments;
  // The merchant fee schedule keeld is configured with. When it differs from the one in force
  // (recovered from the journal), start-up journals a set_fees command, so replay applies each
  // schedule exactly where it took effect. nullopt: keep the one in force.
  std::optional<payments::FeeSchedule> fees;
  // The routing channels keeld is configured with: journaled at start-up (set_channels) when
  // they differ from those in force, like `fees`. nullopt: keep those in force. With no channel
  // in force the engine does no routing (commands carry the caller's channel, as before it).
  std::optional<std::vector<routing::ChannelDef>> channels;
  // The router's settings (not state: breakers restart from their last journaled transition,
  // statistics start empty). `routing.seed` seeds exploration and jitter.
  routing::RouterOptions routing;
  // Runs on the writer thread after each commit whose commands asked for PSP work (and once
  // after start-up with every attempt left open). Must be quick: hand the work to another
  // thread. May be empty (no PSP work is then done: tests of the engine alone).
  std::function<void(PaymentEffects)> on_payment_effects;
};

// Why a command got no answer from the state machine.
enum class EngineError : uint8_t {
  ok = 0,
  overloaded,     // the command queue is full; retry later (HTTP 503)
  unavailable,    // stopping, or the journal failed and the engine stopped writing (HTTP 503;
                  // see Engine::healthy)
  read_only,      // a ledger write while an operator holds keel in read-only mode (HTTP 503)
  over_capacity,  // new work while memory is above its budget (EngineOptions::memory_max_bytes;
                  // HTTP 503)
};

template <typename T>
struct Outcome {
  EngineError error = EngineError::ok;
  T value{};
};

template <typename T>
using Callback = std::function<void(Outcome<T>)>;

// Calls an engine method with a callback and blocks until it answers: for a program's set-up
// steps and for tests, never on the writer thread. `call` takes the Callback<T>.
template <typename T, typename Call>
Outcome<T> wait_for(Call&& call) {
  std::promise<Outcome<T>> p;
  auto f = p.get_future();
  call([&p](Outcome<T> o) { p.set_value(std::move(o)); });
  return f.get();
}

struct EngineStatus {
  uint64_t last_seq = 0;  // last durable journal record
  // The audit chain's last durable chain record (journal/audit_chain.h): what an operator
  // anchors outside keel. nullopt until the first commit of a directory written before the chain.
  std::optional<journal::ChainPoint> audit_head;
  Timestamp last_timestamp = 0;  // logical clock
  ledger::LedgerCounts counts;
  uint64_t state_hash = 0;           // only when requested (it is O(state))
  uint64_t ledger_memory_bytes = 0;  // only when requested
  bool invariants_ok = true;         // only when requested
  std::string invariant_problem;
  uint64_t queue_depth = 0;
  uint64_t batches_committed = 0;
  // The writer's longest stretch of work between two waits for commands since start (one batch
  // applied and made durable, with what follows it: history hand-over, ticks, a snapshot's
  // encoding, reads), and the longest snapshot encoding on its own. Measured, not state.
  uint64_t writer_longest_pause_ns = 0;
  uint64_t snapshot_encode_longest_ns = 0;
  uint64_t events_committed = 0;
  payments::PaymentsCore::Counts payments;
  uint64_t postings_rejected = 0;  // payment chains the ledger refused (a bug; alert on > 0)
  // PSP results (answers, status queries, webhooks) the payments core could not take and
  // flagged for review instead, since start (each one logged with its attempt and reason).
  uint64_t psp_results_rejected = 0;
  uint64_t events_dropped = 0;       // merchant events the outbox had no room for (each logged)
  uint64_t breaker_transitions = 0;  // journaled since start (each one logged)
  // The history tier (all zero without a store): transfers written to the store since start,
  // handed over and not yet written, failed store writes (each logged; retried), the journal
  // record the store has applied, and its size on disk.
  bool history_enabled = false;
  uint64_t history_moved = 0;
  uint64_t history_events_moved = 0;
  uint64_t history_keys_moved = 0;
  uint64_t history_payments_moved = 0;
  uint64_t history_flows_moved = 0;
  uint64_t history_superseded_deleted = 0;  // superseded record versions and markers deleted
  uint64_t history_events_deleted = 0;
  uint64_t history_queued = 0;
  uint64_t history_write_failures = 0;
  uint64_t history_applied_seq = 0;
  uint64_t history_disk_bytes = 0;
  // The memory budget (all zero without one): the resident memory last read, the budget,
  // whether new work is refused now, and how much was refused since start.
  uint64_t memory_resident_bytes = 0;
  uint64_t memory_max_bytes = 0;
  bool over_capacity = false;
  uint64_t refused_over_capacity = 0;
};

// A routing channel as GET /v1/channels shows it: definition, live state, and its breaker's
// last journaled transition.
struct ChannelStatus {
  routing::ChannelView live;
  std::string breaker_reason;  // empty: the breaker never changed state
  Timestamp breaker_changed_at = 0;
  uint64_t breaker_opened = 0;  // transitions to open since the channel was defined
};

// What Engine::backup wrote: a data directory that holds every record up to `seq`.
struct BackupResult {
  Status status;  // ok, or why no backup was made (the directory, a write, the store)
  uint64_t seq = 0;
  Timestamp timestamp = 0;
  uint64_t snapshot_bytes = 0;
  bool with_store = false;  // the history store's checkpoint is in DIR/store
};

struct AccountTransfersQuery {
  std::string account_id;
  size_t limit = 10;
  std::string starting_after;
};

// The single writer. Owns the ledger, the journal (the storage: options.open_storage) and the
// history tier (options.open_store: transfers move there after their commit, off this thread,
// and reads of them run on the tier's reader thread; answers are the same whatever the tier).
//
// Every method may be called from any thread. Each submits a command to a bounded queue and
// returns at once; `done` runs exactly once, on the writer thread (or, for a read of a transfer in
// the history store and for a backup, on the engine's thread that did the work), so it must be
// quick (post the result to another thread, do not block). A write's `done` runs only after its
// journal record is durable (fdatasync), so an answer is never given for a write that could be
// lost. A read sees only durable state.
//
// If the queue is full, `done` runs at once on the calling thread with EngineError::overloaded.
class Engine {
 public:
  // Opens the storage (options.open_storage, or the file journal in options.data_dir), recovers
  // state from it (newest snapshot + replay of the journal tail), checks the ledger invariants,
  // and starts the writer thread. Fails with an operator-facing message (the storage refused to
  // open; corrupt journal: file and offset; broken invariant).
  static Status open(EngineOptions options, std::unique_ptr<Engine>* out);
  // Stops: see stop().
  ~Engine();

  void create_accounts(std::vector<ledger::AccountEvent> events,
                       Callback<std::vector<ledger::CreateAccountResult>> done);
  void create_transfers(std::vector<ledger::TransferEvent> events,
                        Callback<std::vector<ledger::CreateTransferResult>> done);
  void set_account_closed(std::string account_id, bool closed,
                          Callback<ledger::SetAccountClosedResult> done);

  void get_account(std::string id, Callback<std::optional<ledger::Account>> done);
  void get_transfer(std::string id, Callback<std::optional<ledger::Transfer>> done);
  void list_account_transfers(AccountTransfersQuery query,
                              Callback<ledger::AccountTransfersPage> done);
  // A payments command (payments/commands.h). `done` gets the reply after its record is durable.
  // When the reply waits on a PSP (a confirm, capture, cancel with an Idempotency-Key), `done`
  // runs when the outcome is settled or after `wait_ms`, whichever is first; in the second case
  // the reply is the object as it stands (not settled) and the key completes later.
  void payments_command(payments::Command command, int64_t wait_ms, Callback<payments::Reply> done);
  void payments_query(payments::Query query, Callback<payments::QueryResult> done);
  // An API key command (security/key_ring.h): create, revoke, note a use. `done` gets the key
  // ring's result once the record is durable (a refused command journals nothing); by then
  // keys() shows the change. Taken in read-only mode and above the memory budget too.
  void security_command(security::Command command, Callback<security::Result> done);
  // The keys as of the last durable change to one (the nonces of signed writes left out): an
  // immutable copy, for the API's authentication on its own threads. Thread-safe; never null.
  [[nodiscard]] std::shared_ptr<const security::KeyRing> keys() const;
  // Every routing channel with its live state, in configuration order (empty: no routing).
  void get_channels(Callback<std::vector<ChannelStatus>> done);

  // `full` adds the state hash and an invariant check (O(state); for tests and operators).
  void get_status(bool full, Callback<EngineStatus> done);
  // Writes a snapshot now.
  void take_snapshot(Callback<Status> done);
  // A consistent online copy of the state, as a data directory keeld can start on (`keel
  // backup`, docs/storage.md "Backups"): the state at the last durable record encoded on the
  // writer (its only pause, as for a snapshot), then, on a thread of its own, written to `dir`
  // as a snapshot file, and the history store checkpointed to dir/store. `dir` must be absent or
  // an empty directory. One backup at a time. `done` runs on the backup's thread.
  void backup(std::filesystem::path dir, Callback<BackupResult> done);

  // Stops taking commands (new ones get `unavailable`), finishes and syncs everything already
  // queued, answers it, and joins the writer. Idempotent.
  void stop();
  // False once a journal commit failed (journal/storage.h: sticky, nothing of the batch
  // acknowledged). The engine then rebuilds its state from the journal, so that reads
  // (get_account, get_transfer, list_account_transfers, payments_query, get_status) keep
  // answering, from exactly the acknowledged state; writes, take_snapshot and get_channels get
  // `unavailable` until a restart. If that rebuild fails, reads get `unavailable` too. The
  // process should exit non-zero (keeld does), and a restart recovers.
  [[nodiscard]] bool healthy() const;

 private:
  Engine();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Offline check of a data directory (`keel journal verify`): checks every record's checksum and
// the sequence, rebuilds the state from the newest snapshot, the history store (dir/store, read
// only, when it exists) and the journal tail without changing any file, and checks the ledger
// invariants over both tiers. A torn tail is reported, not repaired.
struct VerifyReport {
  journal::OpenReport journal;
  uint64_t snapshot_seq = 0;  // 0 when no snapshot was used
  uint64_t records_replayed = 0;
  Timestamp last_timestamp = 0;
  ledger::LedgerCounts counts;
  uint64_t state_hash = 0;
  ledger::InvariantReport invariants;
};
Status verify_data_dir(const std::filesystem::path& dir, VerifyReport* report);

// `keel audit verify DATA [--archive DIR] [--anchor SEQ:HEX]`: checks the audit chain
// (journal/audit_chain.h) of the journal in `data`, read only (keeld may be running), over the
// segments in `data` and, when given, those retention moved to `archive` (so verification can
// start at record 1), against the chain point of every snapshot in `data` and `anchors` (heads
// kept outside keel). Fails when the journal cannot be opened or read; a broken chain is not a
// failure but report->chain.problems, each naming the records.
struct AuditReport {
  journal::OpenReport journal;
  journal::ChainReport chain;
};
Status verify_audit(const std::filesystem::path& data, const std::filesystem::path& archive,
                    std::vector<journal::ChainAnchor> anchors, AuditReport* report);

// What rebuild_store did.
struct RebuildReport {
  uint64_t records_replayed = 0;
  uint64_t transfers_moved = 0;  // written to the new store
  uint64_t events_moved = 0;     // merchant events written to the new store
  uint64_t keys_moved = 0;       // completed idempotency records written to the new store
  uint64_t payments_moved = 0;   // payments at rest written to the new store
  uint64_t flows_moved = 0;      // top-ups, payouts and wallet transfers at rest, likewise
  uint64_t state_hash = 0;       // of the journal replayed from record 1
  std::string replaced_store;    // where the old store went (empty: there was none)
};

// `keel store rebuild DATA [--archive DIR]` (offline: keeld stopped): rebuilds DATA/store from
// the journal alone, replaying every record from 1 (segments in DATA and in `archive`, where
// journal retention moved them) with memory bounded as keeld's is: final transfers go to the new
// store as replay makes them. Fails, changing nothing, when the segments do not reach back to
// record 1 ("the archive is incomplete": name the first record found). Then the old store (if
// any) is renamed DATA/store.replaced-<unix seconds>, the new one takes its place, and DATA is
// verified: its state hash (snapshot + new store + tail) must equal the full replay's.
Status rebuild_store(const std::filesystem::path& data, const std::filesystem::path& archive,
                     RebuildReport* report);

// Whether `dir` is absent or an empty directory: where a backup or a restore may write.
[[nodiscard]] bool absent_or_empty_dir(const std::filesystem::path& dir);

// `keel restore BACKUP DATA`: checks the backup (verify_data_dir), then copies it into `data`
// (absent or an empty directory), every file and directory synced. keeld must not be running on
// `data`. `report` gets the backup's verification (its sequence and state hash).
Status restore_backup(const std::filesystem::path& backup, const std::filesystem::path& data,
                      VerifyReport* report);

}  // namespace keel::engine
