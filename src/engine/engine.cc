#include "engine/engine.h"

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <variant>

#include <fcntl.h>
#include <unistd.h>
#include "core/assert.h"

#include "engine/history.h"
#include "engine/records.h"
#include "journal/file_io.h"

namespace keel::engine {
namespace {

uint64_t nanos_since(std::chrono::steady_clock::time_point t) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t)
          .count());
}

struct CreateAccounts {
  std::vector<ledger::AccountEvent> events;
  Callback<std::vector<ledger::CreateAccountResult>> done;
};
struct CreateTransfers {
  std::vector<ledger::TransferEvent> events;
  Callback<std::vector<ledger::CreateTransferResult>> done;
};
struct SetAccountClosed {
  std::string id;
  bool closed = false;
  Callback<ledger::SetAccountClosedResult> done;
};
struct GetAccount {
  std::string id;
  Callback<std::optional<ledger::Account>> done;
};
struct GetTransfer {
  std::string id;
  Callback<std::optional<ledger::Transfer>> done;
};
struct ListAccountTransfers {
  AccountTransfersQuery query;
  Callback<ledger::AccountTransfersPage> done;
};
struct GetStatus {
  bool full = false;
  Callback<EngineStatus> done;
};
struct TakeSnapshot {
  Callback<Status> done;
};
struct PaymentsCommand {
  payments::Command command;
  int64_t wait_ms = 0;
  Callback<payments::Reply> done;
};
struct PaymentsQuery {
  payments::Query query;
  Callback<payments::QueryResult> done;
};
struct GetChannels {
  Callback<std::vector<ChannelStatus>> done;
};
struct Backup {
  std::filesystem::path dir;
  Callback<BackupResult> done;
};
struct SecurityCommand {
  security::Command command;
  Callback<security::Result> done;
};

using Command = std::variant<CreateAccounts, CreateTransfers, SetAccountClosed, GetAccount,
                             GetTransfer, ListAccountTransfers, GetStatus, TakeSnapshot,
                             PaymentsCommand, PaymentsQuery, GetChannels, Backup, SecurityCommand>;

routing::CallEnd call_end(payments::AttemptStatus s) {
  using S = payments::AttemptStatus;
  switch (s) {
    case S::approved:
      return routing::CallEnd::approved;
    case S::declined_hard:
      return routing::CallEnd::declined_hard;
    case S::declined_soft:
      return routing::CallEnd::declined_soft;
    case S::retryable:
      return routing::CallEnd::retryable;
    case S::pending:
    case S::unknown:
      return routing::CallEnd::unknown;
  }
  return routing::CallEnd::unknown;
}

size_t event_count(const Command& c) {
  if (const auto* a = std::get_if<CreateAccounts>(&c)) return std::max<size_t>(a->events.size(), 1);
  if (const auto* t = std::get_if<CreateTransfers>(&c))
    return std::max<size_t>(t->events.size(), 1);
  return 1;
}

bool is_write(const Command& c) {
  return std::holds_alternative<CreateAccounts>(c) || std::holds_alternative<CreateTransfers>(c) ||
         std::holds_alternative<SetAccountClosed>(c) ||
         std::holds_alternative<PaymentsCommand>(c) || std::holds_alternative<SecurityCommand>(c);
}

// What an engine whose journal failed still answers: reads of the acknowledged state. Not
// snapshots (the storage refuses them) nor channels (the router's live statistics saw the batch
// that was lost).
bool answered_after_failure(const Command& c) {
  return !is_write(c) && !std::holds_alternative<TakeSnapshot>(c) &&
         !std::holds_alternative<GetChannels>(c) && !std::holds_alternative<Backup>(c);
}

// New work, which the memory budget refuses (EngineOptions::memory_max_bytes): what creates an
// object. Whatever finishes an object already there goes on.
bool is_new_work(const Command& c) {
  if (std::holds_alternative<CreateAccounts>(c) || std::holds_alternative<CreateTransfers>(c)) {
    return true;
  }
  const auto* p = std::get_if<PaymentsCommand>(&c);
  if (p == nullptr) return false;
  switch (p->command.kind()) {
    case payments::CommandKind::create_customer:
    case payments::CommandKind::create_merchant:
    case payments::CommandKind::create_payment:
    case payments::CommandKind::create_refund:
    case payments::CommandKind::create_topup:
    case payments::CommandKind::create_payout:
    case payments::CommandKind::create_wallet_transfer:
    case payments::CommandKind::store_payment_method:
      return true;
    default:
      return false;
  }
}

// The process's resident memory, from /proc/self/statm (0 if it cannot be read).
uint64_t resident_bytes_of_process() {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0;
  uint64_t resident = 0;
  if (!(statm >> pages >> resident)) return 0;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

// Answers a command with an engine error and no value.
void fail(Command& c, EngineError error) {
  std::visit([error](auto& cmd) { cmd.done({error, {}}); }, c);
}

SipKey random_index_key() {
  std::random_device rd;
  return {(uint64_t{rd()} << 32) | rd(), (uint64_t{rd()} << 32) | rd()};
}

// What recover() rebuilt from.
struct Recovery {
  uint64_t snapshot_seq = 0;                            // 0: no snapshot
  payments::PaymentsCore::HistoryMarks snapshot_marks;  // the snapshot's state's
  uint64_t records_replayed = 0;
  uint64_t events_replayed = 0;  // account and transfer events in those records
};

// Rebuilds state from `journal`: newest snapshot, then every later record. `history`: the
// history tier (or null).
Status recover(const journal::Storage& journal, SipKey key, const payments::CoreOptions& options,
               const HistoryTier* history, State* state, Timestamp* last_timestamp, Recovery* out) {
  *out = {};
  *last_timestamp = 0;
  const ledger::ColdTransfers* cold = history;
  state->ledger = ledger::Ledger(key);
  state->ledger.set_cold_transfers(cold);
  state->keys = security::KeyRing();
  if (auto snapshot = journal.load_newest_snapshot()) {
    if (Status s = decode_state(snapshot->state, key, options, cold, state); !s.is_ok()) {
      const std::string where =
          snapshot->path.empty()
              ? journal.describe() + ", snapshot at record " + std::to_string(snapshot->seq)
              : snapshot->path.string();
      return Status::error(where + ": " + s.message());
    }
    if (history == nullptr && state->payments.counts_on_history()) {
      return Status::error("snapshot at record " + std::to_string(snapshot->seq) +
                           ": its payments state (events, idempotency records or payments) counts "
                           "on a history store, and there is none");
    }
    out->snapshot_seq = snapshot->seq;
    out->snapshot_marks = state->payments.history_marks(snapshot->timestamp);
    *last_timestamp = snapshot->timestamp;
  }
  state->payments.set_history(history != nullptr ? &history->store() : nullptr);
  // The store may hold payments written after the snapshot: each record replayed reads them as
  // they stood before it (payments/payment_history.h).
  Status replayed = journal.replay(out->snapshot_seq + 1, [&](const journal::RecordView& r) {
    state->payments.set_history_horizon(r.seq - 1);
    Status s = apply_record(*state, static_cast<RecordType>(r.type), r.timestamp, r.payload,
                            last_timestamp, &out->events_replayed);
    if (!s.is_ok()) return Status::error("record " + std::to_string(r.seq) + ": " + s.message());
    ++out->records_replayed;
    return Status::ok();
  });
  state->payments.set_history_horizon(payments::payment_history::kNewest);
  return replayed;
}

// Writes snapshot files on a thread of its own, one at a time: the writer pauses only to encode
// the state (a copy in memory), not for the file write and its fsync.
class SnapshotWriter {
 public:
  ~SnapshotWriter() { wait(); }

  [[nodiscard]] bool busy() const { return thread_.joinable(); }

  // REQUIRES: !busy().
  void start(journal::SnapshotWriteFn write, uint64_t seq, Timestamp timestamp, std::string state) {
    KEEL_ASSERT(!busy());
    seq_ = seq;
    done_.store(false);
    thread_ = std::thread([this, write = std::move(write), seq, timestamp, s = std::move(state)] {
      result_ = write(seq, timestamp, s);
      bytes_ = s.size();
      done_.store(true, std::memory_order_release);
    });
  }

  // The finished job's result (then !busy()); nullopt while it runs or if there is none.
  std::optional<Status> take_result() {
    if (!busy() || !done_.load(std::memory_order_acquire)) return std::nullopt;
    thread_.join();
    return std::move(result_);
  }

  void wait() {
    if (thread_.joinable()) thread_.join();
  }

  [[nodiscard]] uint64_t seq() const { return seq_; }
  [[nodiscard]] size_t bytes() const { return bytes_; }

 private:
  std::thread thread_;
  std::atomic<bool> done_{false};
  Status result_;
  uint64_t seq_ = 0;
  size_t bytes_ = 0;
};

}  // namespace

// Merchant webhooks handed out per loop of the writer (the rest go next loop).
constexpr size_t kDeliveriesPerBatch = 256;

struct Engine::Impl {
  EngineOptions options;
  std::unique_ptr<journal::Storage> journal;
  // The history tier (null without a store). Outlives the writer thread (stop() joins it first).
  std::unique_ptr<HistoryTier> history;
  SipKey index_key;
  State state;
  ledger::Ledger& ledger = state.ledger;
  Timestamp last_timestamp = 0;

  std::mutex mutex;
  std::condition_variable wake;
  std::deque<Command> queue;  // guarded by mutex
  bool stopping = false;      // guarded by mutex
  std::atomic<bool> healthy{true};
  // The key ring as of the last durable change (Engine::keys), and whether this batch changed it.
  mutable std::mutex keys_mutex;
  std::shared_ptr<const security::KeyRing> published_keys =
      std::make_shared<const security::KeyRing>();
  bool keys_changed = false;
  void publish_keys() {
    auto copy = std::make_shared<const security::KeyRing>(state.keys.keys_only());
    std::lock_guard lock(keys_mutex);
    published_keys = std::move(copy);
  }
  // The memory budget: set by the writer (check_memory), read by every submit.
  std::atomic<bool> over_capacity{false};
  std::atomic<uint64_t> refused_over_capacity{0};
  std::atomic<uint64_t> resident{0};  // last read
  std::chrono::steady_clock::time_point last_memory_check;
  std::thread writer;
  // Writer thread: after a journal failure, whether `state` was rebuilt from the storage (then
  // reads are answered from it) or not (then they are refused too).
  bool reads_ok_after_failure = false;

  // Writer-thread state.
  uint64_t events_since_snapshot = 0;
  SnapshotWriter snapshots;
  // Snapshot record -> what of the history store its state no longer needs, for the snapshots
  // written or loaded by this process: once the journal's oldest kept snapshot is one of them,
  // that part of the store is expired for every state recovery may reach.
  std::map<uint64_t, payments::PaymentsCore::HistoryMarks> snapshot_marks;
  payments::PaymentsCore::HistoryMarks snapshot_mark;  // of the snapshot being written
  std::thread backup_thread;                           // the backup being written (joined at stop)
  std::atomic<bool> backup_done{true};
  std::vector<Callback<Status>> snapshot_waiters;       // answered when the one in flight ends
  std::vector<Callback<Status>> next_snapshot_waiters;  // asked while one was in flight
  uint64_t batches_committed = 0;
  uint64_t writer_longest_pause_ns = 0;     // EngineStatus
  uint64_t snapshot_encode_longest_ns = 0;  // EngineStatus
  uint64_t events_committed = 0;
  // One per write of the batch being committed: answers with the result when `durable`, else
  // with EngineError::unavailable.
  std::vector<std::function<void(bool durable)>> replies;
  std::chrono::steady_clock::time_point last_tick_check;
  // Payments: what the batch's commands asked for, handed over after the commit.
  PaymentEffects pending_effects;
  uint64_t postings_rejected = 0;
  uint64_t psp_results_rejected = 0;
  uint64_t events_dropped = 0;
  uint64_t breaker_transitions = 0;
  // Routing (when channels are in force): live statistics, breakers, calls in flight. Its
  // decisions are journaled in the commands; its breaker transitions as channel_event commands.
  std::unique_ptr<routing::Router> router;
  // Requests waiting for their idempotency key to settle: (client, key) -> answer and deadline.
  struct Waiter {
    Callback<payments::Reply> done;
    std::chrono::steady_clock::time_point deadline;
    payments::Reply current;  // the answer when the request was applied
    std::string object_id;    // what it waits on: rendered again when the wait ends
  };
  std::map<std::pair<std::string, std::string>, Waiter> waiters;
  std::vector<payments::CompletedKey> completed_keys;       // this batch's, answered after commit
  std::set<std::string, std::less<>> deliveries_in_flight;  // merchant webhook event ids

  void log(LogLevel level, std::string_view line) const {
    if (options.log) options.log(level, line);
  }

  void submit(Command c) {
    {
      std::unique_lock lock(mutex);
      if (stopping || (!healthy.load() && !answered_after_failure(c))) {
        lock.unlock();
        fail(c, EngineError::unavailable);
        return;
      }
      if (queue.size() >= options.queue_capacity) {
        lock.unlock();
        fail(c, EngineError::overloaded);
        return;
      }
      if (over_capacity.load(std::memory_order_relaxed) && is_new_work(c)) {
        lock.unlock();
        refused_over_capacity.fetch_add(1, std::memory_order_relaxed);
        fail(c, EngineError::over_capacity);
        return;
      }
      queue.push_back(std::move(c));
    }
    wake.notify_one();
  }

  // Logical time for a command of n events: strictly after everything before it.
  Timestamp stamp(size_t n) {
    const Timestamp base = std::max(options.wall_clock(), last_timestamp + 1);
    last_timestamp = base + static_cast<Timestamp>(std::max<size_t>(n, 1) - 1);
    return base;
  }

  // options.open_storage, or the file journal in data_dir.
  Status open_storage();
  // options.open_store, or RocksDB in data_dir/store, or none (EngineOptions::open_store).
  Status open_history();
  // After a commit: hands the transfers and merchant events it made final to the history tier,
  // and drops from memory those the tier has written.
  void move_history();
  // After journal retention kept snapshots from record `oldest_kept` on: expires the history
  // store's events no state from there on holds.
  void expire_history(uint64_t oldest_kept);
  // Reads of transfers that may be in the store: answered here when in memory, else on the
  // history tier's reader thread.
  void get_transfer(GetTransfer& cmd);
  void list_transfers(ListAccountTransfers& cmd);
  void payments_query(PaymentsQuery& cmd);
  std::vector<Command> take_batch();
  void run();
  void apply_write(Command& c);
  void answer_read(Command& c);
  void maybe_tick();
  // Reads resident memory every tick_interval_ms and turns the refusal of new work on above the
  // budget, off below 95 % of it.
  void check_memory();
  void apply_payments(PaymentsCommand& c);
  void apply_security(SecurityCommand& c);
  // Routing around a payments command: the decision it needs before it is applied, then what
  // its PSP calls and answers teach the router (transitions journaled at once).
  void route(payments::Command& command, Timestamp now);
  void observe(const payments::Command& command, const payments::ApplyOutcome& out, Timestamp now);
  void journal_transitions(std::vector<routing::BreakerTransition>& transitions);
  // Applies and journals a command the engine makes itself (breaker transitions, canary
  // rollbacks) inside the current batch. False if the core refused it (nothing journaled).
  bool journal_internal(const payments::Command& c);
  // The router's channel controls from the journaled registry.
  void sync_controls();
  void start_router();
  std::vector<ChannelStatus> channel_statuses();
  void take_payments_outcome(payments::ApplyOutcome& out);
  void answer_waiters(bool durable);
  void expire_waiters();
  void hand_over_effects();
  // After recovery: attempts that may have reached a PSP become unknown (a journaled command),
  // and every open attempt goes to the resolver.
  Status resume_payments();
  Status apply_now(const payments::Command& command, payments::ApplyOutcome* out);
  bool commit_batch(std::vector<Command>& batch);
  // After a failed commit: `state` holds the batch that was never acknowledged. Rebuilds it from
  // the storage (whose reads keep working: journal/storage.h), so reads show exactly the
  // acknowledged state; sets reads_ok_after_failure.
  void rebuild_acknowledged_state();
  // After a failed commit, until stop(): answers reads (answered_after_failure) from the rebuilt
  // state and refuses everything else with `unavailable`.
  void answer_after_failure(Command& c);
  void serve_reads_until_stop();
  void start_backup(Backup& cmd);
  // Snapshots: start one (encode now, write in the background); notice when it is durable.
  void start_snapshot();
  void poll_snapshot();
  void request_snapshot(Callback<Status> done);
  void finish_snapshots();
};

Status Engine::Impl::open_storage() {
  auto warn = [this](std::string_view line) { log(LogLevel::warn, line); };
  if (options.open_storage) {
    if (Status s = options.open_storage(warn, &journal); !s.is_ok()) return s;
    KEEL_ASSERT(journal != nullptr);
    return Status::ok();
  }
  journal::JournalOptions jo;
  jo.dir = options.data_dir;
  jo.segment_bytes_max = options.segment_bytes_max;
  jo.archive_dir = options.archive_dir;
  jo.audit_chain = options.audit_chain;
  jo.warn = warn;
  std::unique_ptr<journal::Journal> file;
  if (Status s = journal::Journal::open(jo, &file, nullptr); !s.is_ok()) return s;
  journal = std::move(file);
  return Status::ok();
}

Status Engine::Impl::open_history() {
  std::unique_ptr<store::Store> store;
  if (options.open_store) {
    if (Status s = options.open_store(&store); !s.is_ok()) return s;
  } else if (!options.open_storage && !options.history_in_memory) {
    if (Status s = store::open_rocks_store(options.data_dir / "store", false,
                                           options.store_cache_mb, &store);
        !s.is_ok()) {
      return s;
    }
  } else {
    return Status::ok();
  }
  history = std::make_unique<HistoryTier>(std::move(store), [this](bool error, std::string_view l) {
    log(error ? LogLevel::error : LogLevel::info, l);
  });
  return Status::ok();
}

void Engine::Impl::move_history() {
  if (!history) return;
  HistoryBatch moved;
  ledger.take_final(&moved.transfers);
  state.payments.take_final(&moved.payments, journal->last_seq());
  history->submit(journal->last_seq(), std::move(moved));
  const HistoryDurable durable = history->take_durable();
  ledger.make_cold(durable.transfers);
  state.payments.make_cold(durable.payments);
}

void Engine::Impl::expire_history(uint64_t oldest_kept) {
  const auto mark = snapshot_marks.find(oldest_kept);
  if (oldest_kept == 0 || mark == snapshot_marks.end()) return;
  if (history) {
    payments::PaymentsCore::HistoryMarks marks = mark->second;
    marks.snapshot_seq = oldest_kept;
    history->expire(marks);
  }
  snapshot_marks.erase(snapshot_marks.begin(), mark);
}

void Engine::Impl::get_transfer(GetTransfer& cmd) {
  if (!history) {
    cmd.done({EngineError::ok, ledger.find_transfer(cmd.id)});
    return;
  }
  ledger::TransferLookup found = ledger.lookup_transfer(cmd.id);
  if (found.cold_candidates.empty()) {
    cmd.done({EngineError::ok, std::move(found.hot)});
    return;
  }
  // In the store (written before it left memory, so the read cannot miss it).
  history->read_async([id = std::move(cmd.id), candidates = std::move(found.cold_candidates),
                       done = std::move(cmd.done)](const store::Store& store) {
    for (const uint32_t index : candidates) {
      ledger::Transfer t;
      if (!read_transfer(store, index, &t).is_ok()) {
        done({EngineError::unavailable, {}});
        return;
      }
      if (t.id == id) {
        done({EngineError::ok, std::move(t)});
        return;
      }
    }
    done({EngineError::ok, std::nullopt});
  });
}

void Engine::Impl::payments_query(PaymentsQuery& cmd) {
  payments::QueryResult r = state.payments.query(cmd.query, ledger);
  if (!r.needs_history()) {
    cmd.done({EngineError::ok, std::move(r)});
    return;
  }
  KEEL_ASSERT(history != nullptr);  // only the tier moves events and payments out of memory
  // Events and payments left memory only once durable in the store: a read there misses none.
  history->read_async(
      [r = std::move(r), done = std::move(cmd.done)](const store::Store& store) mutable {
        if (!payments::PaymentsCore::finish_query(store, &r).is_ok()) {
          done({EngineError::unavailable, {}});
          return;
        }
        done({EngineError::ok, std::move(r)});
      });
}

void Engine::Impl::list_transfers(ListAccountTransfers& cmd) {
  const AccountTransfersQuery& q = cmd.query;
  if (!history) {
    cmd.done({EngineError::ok, ledger.account_transfers(q.account_id, q.limit, q.starting_after)});
    return;
  }
  ledger::TieredTransfersPage page =
      ledger.account_transfers_tiered(q.account_id, q.limit, q.starting_after);
  const auto finish = [](ledger::TieredTransfersPage& p, const store::Store* store) {
    ledger::AccountTransfersPage out;
    out.result = p.result;
    out.has_more = p.has_more;
    out.data.reserve(p.data.size());
    for (size_t i = 0; i < p.data.size(); ++i) {
      if (p.data[i]) {
        out.data.push_back(std::move(*p.data[i]));
        continue;
      }
      ledger::Transfer t;
      if (store == nullptr || !read_transfer(*store, p.indexes[i], &t).is_ok()) {
        return std::optional<ledger::AccountTransfersPage>();
      }
      out.data.push_back(std::move(t));
    }
    return std::optional<ledger::AccountTransfersPage>(std::move(out));
  };
  const bool all_in_memory =
      std::all_of(page.data.begin(), page.data.end(), [](const auto& t) { return t.has_value(); });
  if (all_in_memory) {
    cmd.done({EngineError::ok, std::move(*finish(page, nullptr))});
    return;
  }
  history->read_async([page = std::move(page), done = std::move(cmd.done),
                       finish](const store::Store& store) mutable {
    std::optional<ledger::AccountTransfersPage> out = finish(page, &store);
    if (!out) {
      done({EngineError::unavailable, {}});
      return;
    }
    done({EngineError::ok, std::move(*out)});
  });
}

std::vector<Command> Engine::Impl::take_batch() {
  std::unique_lock lock(mutex);
  wake.wait_for(lock, std::chrono::milliseconds(options.tick_interval_ms),
                [this] { return !queue.empty() || stopping; });
  std::vector<Command> batch;
  size_t events = 0;
  while (!queue.empty()) {
    const size_t n = event_count(queue.front());
    if (!batch.empty() && events + n > options.batch_events_max) break;
    events += n;
    batch.push_back(std::move(queue.front()));
    queue.pop_front();
  }
  return batch;
}

void Engine::Impl::apply_security(SecurityCommand& c) {
  const Timestamp ts = stamp(1);
  const security::Result result = state.keys.apply(c.command, ts);
  if (result == security::Result::ok) {
    std::string& payload = journal->begin_record(static_cast<uint16_t>(RecordType::security), ts);
    security::encode_command(c.command, &payload);
    journal->end_record();
    ++events_since_snapshot;
    // A nonce changes no key: authentication reads nothing of it (the ring applies it).
    keys_changed = keys_changed || !std::holds_alternative<security::cmd::UseNonce>(c.command);
  }
  replies.push_back([done = std::move(c.done), result](bool durable) {
    durable ? done({EngineError::ok, result}) : done({EngineError::unavailable, {}});
  });
}

void Engine::Impl::apply_write(Command& c) {
  if (auto* k = std::get_if<SecurityCommand>(&c)) {
    // Keys are managed in read-only mode too: revoking a leaked key is what an incident needs.
    apply_security(*k);
    return;
  }
  if (state.payments.read_only() && !std::holds_alternative<PaymentsCommand>(c)) {
    // Ledger writes wait out read-only mode like the payments API's (which the core refuses).
    std::visit([](auto& cmd) { cmd.done({EngineError::read_only, {}}); }, c);
    return;
  }
  std::string* payload = nullptr;
  if (auto* a = std::get_if<CreateAccounts>(&c)) {
    const Timestamp ts = stamp(a->events.size());
    auto results = ledger.create_accounts(a->events, ts);
    payload = &journal->begin_record(static_cast<uint16_t>(RecordType::create_accounts), ts);
    encode_accounts(a->events, payload);
    events_since_snapshot += a->events.size();
    replies.push_back([done = std::move(a->done), r = std::move(results)](bool durable) mutable {
      durable ? done({EngineError::ok, std::move(r)}) : done({EngineError::unavailable, {}});
    });
  } else if (auto* t = std::get_if<CreateTransfers>(&c)) {
    const Timestamp ts = stamp(t->events.size());
    auto results = ledger.create_transfers(t->events, ts);
    payload = &journal->begin_record(static_cast<uint16_t>(RecordType::create_transfers), ts);
    encode_transfers(t->events, payload);
    events_since_snapshot += t->events.size();
    replies.push_back([done = std::move(t->done), r = std::move(results)](bool durable) mutable {
      durable ? done({EngineError::ok, std::move(r)}) : done({EngineError::unavailable, {}});
    });
  } else if (auto* p = std::get_if<PaymentsCommand>(&c)) {
    apply_payments(*p);
    return;
  } else if (auto* s = std::get_if<SetAccountClosed>(&c)) {
    const Timestamp ts = stamp(1);
    const auto result = ledger.set_account_closed(s->id, s->closed, ts);
    payload = &journal->begin_record(static_cast<uint16_t>(RecordType::set_account_closed), ts);
    encode_set_account_closed(s->id, s->closed, payload);
    replies.push_back([done = std::move(s->done), result](bool durable) {
      durable ? done({EngineError::ok, result}) : done({EngineError::unavailable, {}});
    });
  }
  KEEL_ASSERT(payload != nullptr);
  journal->end_record();
}

void Engine::Impl::answer_read(Command& c) {
  std::visit(
      [this](auto& cmd) {
        using T = std::decay_t<decltype(cmd)>;
        if constexpr (std::is_same_v<T, GetAccount>) {
          cmd.done({EngineError::ok, ledger.find_account(cmd.id)});
        } else if constexpr (std::is_same_v<T, GetTransfer>) {
          get_transfer(cmd);
        } else if constexpr (std::is_same_v<T, ListAccountTransfers>) {
          list_transfers(cmd);
        } else if constexpr (std::is_same_v<T, GetStatus>) {
          EngineStatus s;
          s.last_seq = journal->last_seq();
          s.audit_head = journal->chain_point();
          s.last_timestamp = last_timestamp;
          s.counts = ledger.counts();
          s.batches_committed = batches_committed;
          s.writer_longest_pause_ns = writer_longest_pause_ns;
          s.snapshot_encode_longest_ns = snapshot_encode_longest_ns;
          s.events_committed = events_committed;
          s.payments = state.payments.counts();
          s.postings_rejected = postings_rejected;
          s.psp_results_rejected = psp_results_rejected;
          s.events_dropped = events_dropped;
          s.breaker_transitions = breaker_transitions;
          if (history) {
            const HistoryTier::Counters h = history->counters();
            s.history_enabled = true;
            s.history_moved = h.moved;
            s.history_events_moved = h.events_moved;
            s.history_keys_moved = h.keys_moved;
            s.history_payments_moved = h.payments_moved;
            s.history_flows_moved = h.flows_moved;
            s.history_superseded_deleted = h.superseded_deleted;
            s.history_events_deleted = h.events_deleted;
            s.history_queued = h.queued;
            s.history_write_failures = h.write_failures;
            s.history_applied_seq = h.applied_seq;
            s.history_disk_bytes = h.disk_bytes;
          }
          {
            std::lock_guard lock(mutex);
            s.queue_depth = queue.size();
          }
          if (options.memory_max_bytes > 0) {
            s.memory_resident_bytes = resident.load();
            s.memory_max_bytes = options.memory_max_bytes;
            s.over_capacity = over_capacity.load();
            s.refused_over_capacity = refused_over_capacity.load();
          }
          if (cmd.full) {
            s.ledger_memory_bytes = ledger.memory_bytes();
            const auto inv = ledger.check_invariants();
            s.invariants_ok = inv.ok;
            s.invariant_problem = inv.problem;
            // The hash reads every record of the history store: one it lacks is a broken state.
            if (Status h = state_hash(state, &s.state_hash); !h.is_ok() && s.invariants_ok) {
              s.invariants_ok = false;
              s.invariant_problem = "state hash: " + h.message();
            }
          }
          cmd.done({EngineError::ok, std::move(s)});
        } else if constexpr (std::is_same_v<T, TakeSnapshot>) {
          request_snapshot(std::move(cmd.done));
        } else if constexpr (std::is_same_v<T, PaymentsQuery>) {
          payments_query(cmd);
        } else if constexpr (std::is_same_v<T, GetChannels>) {
          cmd.done({EngineError::ok, channel_statuses()});
        } else if constexpr (std::is_same_v<T, Backup>) {
          start_backup(cmd);
        } else if constexpr (std::is_same_v<T, PaymentsCommand>) {
          KEEL_ASSERT(false);  // a write
        }
      },
      c);
}

void Engine::Impl::check_memory() {
  if (options.memory_max_bytes == 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_memory_check < std::chrono::milliseconds(options.tick_interval_ms)) return;
  last_memory_check = now;
  const uint64_t bytes =
      options.resident_bytes ? options.resident_bytes() : resident_bytes_of_process();
  resident.store(bytes, std::memory_order_relaxed);
  const uint64_t max = options.memory_max_bytes;
  const auto mib = [](uint64_t b) { return std::to_string(b >> 20) + " MiB"; };
  if (!over_capacity.load() && bytes > max) {
    over_capacity.store(true);
    log(LogLevel::warn, "memory budget: resident " + mib(bytes) + " is above memory_max_mb (" +
                            mib(max) +
                            "): new work is refused with over_capacity until it is "
                            "below 95 % of it");
  } else if (over_capacity.load() && bytes < max / 100 * 95) {
    over_capacity.store(false);
    log(LogLevel::info, "memory budget: resident " + mib(bytes) + " is below 95 % of " + mib(max) +
                            ": new work is taken again (" +
                            std::to_string(refused_over_capacity.load()) +
                            " requests refused since start)");
  }
}

// Journals a tick when a hold's deadline has passed and no command came to expire it.
void Engine::Impl::maybe_tick() {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_tick_check < std::chrono::milliseconds(options.tick_interval_ms)) return;
  last_tick_check = now;
  const Timestamp wall = options.wall_clock();
  if (router) {
    std::vector<routing::BreakerTransition> transitions;
    router->tick(std::max(wall, last_timestamp), &transitions);
    journal_transitions(transitions);
  }
  const auto hold = ledger.next_expiry();
  const auto payment = state.payments.next_deadline();
  if ((!hold || *hold > wall) && (!payment || *payment > wall)) return;
  const Timestamp ts = stamp(1);
  ledger.expire_pending(ts);
  Timestamp clock = ts;
  payments::ApplyOutcome out = state.payments.tick(ts, ledger, &clock);
  last_timestamp = clock;
  take_payments_outcome(out);
  journal->begin_record(static_cast<uint16_t>(RecordType::tick), ts);
  journal->end_record();
}

void Engine::Impl::apply_payments(PaymentsCommand& c) {
  if (const auto* attempt = c.command.as<payments::cmd::OutboxAttempt>()) {
    deliveries_in_flight.erase(attempt->event_id);
  }
  const Timestamp ts = stamp(1);
  ledger.expire_pending(ts);
  route(c.command, ts);
  Timestamp clock = ts;
  payments::ApplyOutcome out = state.payments.apply(c.command, ts, ledger, &clock);
  last_timestamp = clock;
  KEEL_ASSERT(out.changed || out.postings == 0);
  if (out.changed) {
    std::string& payload = journal->begin_record(static_cast<uint16_t>(RecordType::payments), ts);
    payments::encode_command(c.command, &payload);
    journal->end_record();
    ++events_since_snapshot;
  }
  observe(c.command, out, ts);
  const bool waits = !out.reply.settled && !c.command.idempotency.key.empty() && out.reply.ok();
  if (waits) {
    const auto key = std::make_pair(c.command.idempotency.client, c.command.idempotency.key);
    waiters[key] = Waiter{std::move(c.done),
                          std::chrono::steady_clock::now() + std::chrono::milliseconds(c.wait_ms),
                          out.reply, out.object_id};
  } else {
    replies.push_back([done = std::move(c.done), reply = out.reply](bool durable) mutable {
      durable ? done({EngineError::ok, std::move(reply)}) : done({EngineError::unavailable, {}});
    });
  }
  take_payments_outcome(out);
}

void Engine::Impl::route(payments::Command& command, Timestamp now) {
  if (!router) return;
  const std::optional<payments::RouteAsk> ask = state.payments.route_request(command);
  if (!ask) return;
  command.routed = true;
  command.route =
      router->decide({ask->flow, ask->currency, ask->amount, ask->pinned, ask->tried}, now);
}

void Engine::Impl::observe(const payments::Command& command, const payments::ApplyOutcome& out,
                           Timestamp now) {
  if (!router) return;
  std::vector<routing::BreakerTransition> transitions;
  if (const auto* answer = command.as<payments::cmd::AttemptResult>()) {  // a call's own answer
    router->call_ended(answer->attempt_id, call_end(answer->result.status),
                       answer->result.latency_ms, now, &transitions);
  }
  if (command.kind() == payments::CommandKind::runtime_control && out.changed) sync_controls();
  for (const payments::PspCall& call : out.calls) {
    const bool authorization = call.kind == payments::AttemptKind::authorization;
    const bool retry =
        authorization && command.routed && command.route.kind == routing::DecisionKind::retry;
    // It leaves after its backoff: slow-call timing starts then.
    router->call_started(call.attempt_id, call.channel, authorization, retry,
                         now + call.delay_ms * routing::kNanosPerMilli);
  }
  journal_transitions(transitions);
  for (routing::CanaryRollback& rb : router->take_rollbacks()) {
    const payments::Command c =
        payments::cmd::Control{{payments::ControlKind::canary_rollback, rb.channel, rb.canary, 0,
                                rb.reason.substr(0, payments::kControlReasonLengthMax)}};
    const std::string line =
        "channel " + rb.channel + ": canary " + rb.canary + " rolled back (" + rb.reason + ")";
    if (journal_internal(c)) {
      log(LogLevel::warn, line);
    } else {
      log(LogLevel::error, "a canary rollback was refused (a bug): " + line);
    }
  }
}

bool Engine::Impl::journal_internal(const payments::Command& c) {
  const Timestamp ts = stamp(1);
  Timestamp clock = ts;
  payments::ApplyOutcome out = state.payments.apply(c, ts, ledger, &clock);
  last_timestamp = clock;
  if (!out.changed) return false;
  std::string& payload = journal->begin_record(static_cast<uint16_t>(RecordType::payments), ts);
  payments::encode_command(c, &payload);
  journal->end_record();
  ++events_since_snapshot;
  return true;
}

void Engine::Impl::sync_controls() {
  if (!router) return;
  const routing::ChannelRegistry& reg = state.payments.channels();
  for (const routing::ChannelDef& def : reg.channels()) {
    router->set_control(def.name, reg.control(def.name));
  }
}

void Engine::Impl::journal_transitions(std::vector<routing::BreakerTransition>& transitions) {
  for (routing::BreakerTransition& t : transitions) {
    const std::string line = "channel " + t.channel + ": breaker " +
                             std::string(routing::breaker_state_name(t.from)) + " -> " +
                             std::string(routing::breaker_state_name(t.to)) + " (" + t.reason + ")";
    const bool opened = t.to == routing::BreakerState::open;
    if (!journal_internal(payments::cmd::ChannelEvent{std::move(t)})) {
      log(LogLevel::error, "a breaker transition was refused (a bug): " + line);
      continue;
    }
    ++breaker_transitions;
    log(opened ? LogLevel::warn : LogLevel::info, line);
  }
  transitions.clear();
}

void Engine::Impl::start_router() {
  const routing::ChannelRegistry& reg = state.payments.channels();
  if (reg.channels().empty()) return;
  router = std::make_unique<routing::Router>(options.routing, reg.channels());
  for (const routing::ChannelDef& def : reg.channels()) {
    if (const auto* b = reg.breaker(def.name))
      router->restore_breaker(def.name, b->state, b->since);
  }
  sync_controls();
}

std::vector<ChannelStatus> Engine::Impl::channel_statuses() {
  std::vector<ChannelStatus> out;
  if (!router) return out;
  const routing::ChannelRegistry& reg = state.payments.channels();
  for (routing::ChannelView& v : router->view(std::max(options.wall_clock(), last_timestamp))) {
    ChannelStatus s;
    if (const auto* b = reg.breaker(v.def.name)) {
      s.breaker_reason = b->reason;
      s.breaker_changed_at = b->since;
      s.breaker_opened = b->opened;
    }
    s.live = std::move(v);
    out.push_back(std::move(s));
  }
  return out;
}

void Engine::Impl::take_payments_outcome(payments::ApplyOutcome& out) {
  if (out.postings_rejected > 0) {
    postings_rejected += out.postings_rejected;
    log(LogLevel::error, "the ledger refused a payment's postings (a bug): " +
                             std::to_string(out.postings_rejected) + " chain(s)");
  }
  for (const payments::DroppedEvent& d : out.events_dropped) {
    ++events_dropped;
    log(LogLevel::error, "a merchant event of " + d.object_id + " found no room in the outbox (" +
                             d.reason + "): not stored, the merchant will not receive it");
  }
  for (const std::string& merchant : out.backlogs_started) {
    log(LogLevel::warn, "merchant " + merchant +
                            "'s webhook deliveries are backing up (a tenth of the outbox pending "
                            "in memory): its later events wait deferred, in the history store "
                            "when there is one, and are sent in order as earlier ones end; other "
                            "merchants go on");
  }
  for (const payments::RejectedResult& r : out.rejected) {
    ++psp_results_rejected;
    log(LogLevel::warn, "a PSP result for attempt " + r.attempt_id + " could not be taken (" +
                            r.problem + "): flagged for review");
  }
  for (auto& call : out.calls) pending_effects.calls.push_back(std::move(call));
  for (auto& r : out.resolve) pending_effects.resolve.push_back(std::move(r));
  for (auto& k : out.completed) completed_keys.push_back(std::move(k));
}

// After a commit: requests whose idempotency key settled in it get their answer.
void Engine::Impl::answer_waiters(bool durable) {
  for (payments::CompletedKey& k : completed_keys) {
    const auto it = waiters.find({k.client, k.key});
    if (it == waiters.end()) continue;  // answered already at its deadline, or after a restart
    if (durable) {
      it->second.done({EngineError::ok, std::move(k.reply)});
    } else {
      it->second.done({EngineError::unavailable, {}});
    }
    waiters.erase(it);
  }
  completed_keys.clear();
}

// Requests that waited their `wait_ms` get the object as it stood (not settled).
void Engine::Impl::expire_waiters() {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = waiters.begin(); it != waiters.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    // The object as it stands now (durable: this runs after a commit), not as it stood when
    // the request came: a flag for review set meanwhile must show.
    payments::Reply reply = std::move(it->second.current);
    if (!it->second.object_id.empty()) reply.body = state.payments.render(it->second.object_id);
    it->second.done({EngineError::ok, std::move(reply)});
    it = waiters.erase(it);
  }
}

void Engine::Impl::hand_over_effects() {
  if (!options.on_payment_effects) {
    pending_effects = {};
    return;
  }
  const Timestamp wall = options.wall_clock();
  if (const auto next = state.payments.next_delivery_at(); next && *next <= wall) {
    const auto in_flight = [this](std::string_view id) {
      return deliveries_in_flight.contains(id);
    };
    for (payments::Delivery& d :
         state.payments.due_deliveries(wall, kDeliveriesPerBatch, in_flight)) {
      deliveries_in_flight.insert(d.event_id);
      pending_effects.deliveries.push_back(std::move(d));
    }
  }
  if (pending_effects.calls.empty() && pending_effects.resolve.empty() &&
      pending_effects.deliveries.empty()) {
    return;
  }
  options.on_payment_effects(std::move(pending_effects));
  pending_effects = {};
}

// Makes the staged records durable, then answers. False if the journal failed.
bool Engine::Impl::commit_batch(std::vector<Command>& batch) {
  if (journal->staged_records() > 0) {
    if (Status s = journal->commit(); !s.is_ok()) {
      log(LogLevel::error, "journal commit failed, the engine stops writing: " + s.message());
      healthy.store(false);
      keys_changed = false;  // the published ring stays the acknowledged one
      // Never answer ok for a write that may not be durable.
      for (auto& reply : replies) reply(false);
      replies.clear();
      answer_waiters(false);
      for (auto& [key, w] : waiters) w.done({EngineError::unavailable, {}});
      waiters.clear();
      pending_effects = {};
      rebuild_acknowledged_state();
      for (Command& c : batch) {
        if (!is_write(c)) answer_after_failure(c);
      }
      return false;
    }
    ++batches_committed;
  }
  if (keys_changed) {
    // Before the replies: a key created or revoked works (or stops working) once acknowledged.
    publish_keys();
    keys_changed = false;
  }
  for (auto& reply : replies) reply(true);
  replies.clear();
  answer_waiters(true);
  hand_over_effects();
  for (Command& c : batch) {
    if (!is_write(c)) answer_read(c);
  }
  return true;
}

void Engine::Impl::rebuild_acknowledged_state() {
  router.reset();
  state.payments = payments::PaymentsCore(options.payments);
  state.keys = security::KeyRing();
  Recovery recovery;
  if (Status s = recover(*journal, index_key, options.payments, history.get(), &state,
                         &last_timestamp, &recovery);
      !s.is_ok()) {
    log(LogLevel::error,
        "cannot rebuild the acknowledged state, reads are refused: " + s.message());
    return;
  }
  reads_ok_after_failure = true;
  log(LogLevel::warn, "state rebuilt from the journal up to record " +
                          std::to_string(journal->last_seq()) +
                          ": reads are answered, writes refused until a restart");
}

void Engine::Impl::answer_after_failure(Command& c) {
  if (reads_ok_after_failure && answered_after_failure(c)) {
    answer_read(c);
  } else {
    fail(c, EngineError::unavailable);
  }
}

void Engine::Impl::serve_reads_until_stop() {
  for (;;) {
    std::vector<Command> batch = take_batch();
    for (Command& c : batch) answer_after_failure(c);
    if (batch.empty()) {
      std::lock_guard lock(mutex);
      if (stopping && queue.empty()) return;
    }
  }
}

void Engine::Impl::start_backup(Backup& cmd) {
  const auto refuse = [&cmd](std::string why) {
    BackupResult r;
    r.status = Status::error(std::move(why));
    cmd.done({EngineError::ok, std::move(r)});
  };
  if (!backup_done.load()) return refuse("a backup is already being written");
  if (backup_thread.joinable()) backup_thread.join();
  if (!cmd.dir.is_absolute()) return refuse("the backup directory must be an absolute path");
  if (!absent_or_empty_dir(cmd.dir)) {
    return refuse(cmd.dir.string() + " exists and is not an empty directory");
  }
  if (journal->last_seq() == 0) return refuse("nothing is journaled yet");
  // Every transfer the encoding leaves out is durable in the store already (it left memory only
  // then), so a checkpoint taken after it holds them all.
  auto state_bytes = std::make_shared<std::string>();
  encode_state(state, state_bytes.get());
  const uint64_t seq = journal->last_seq();
  const Timestamp ts = last_timestamp;
  const std::optional<journal::ChainPoint> chain = journal->chain_at(seq);
  backup_done.store(false);
  backup_thread = std::thread([this, dir = std::move(cmd.dir), done = std::move(cmd.done),
                               state_bytes, seq, ts, chain] {
    BackupResult r;
    r.seq = seq;
    r.timestamp = ts;
    r.snapshot_bytes = state_bytes->size();
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      r.status = Status::error(dir.string() + ": " + ec.message());
    } else {
      r.status = journal::Journal::write_snapshot_file(dir, seq, ts, *state_bytes, chain);
    }
    if (r.status.is_ok() && history) {
      r.status = history->store().checkpoint(dir / "store");
      r.with_store = r.status.is_ok();
    }
    log(r.status.is_ok() ? LogLevel::info : LogLevel::error,
        r.status.is_ok() ? "backup written to " + dir.string() + " at record " + std::to_string(seq)
                         : "backup to " + dir.string() + " failed: " + r.status.message());
    done({EngineError::ok, std::move(r)});
    backup_done.store(true);
  });
}

void Engine::Impl::start_snapshot() {
  const auto began = std::chrono::steady_clock::now();
  std::string bytes;
  encode_state(state, &bytes);
  snapshot_encode_longest_ns = std::max(snapshot_encode_longest_ns, nanos_since(began));
  snapshot_mark = state.payments.history_marks(last_timestamp);
  snapshots.start(journal->snapshot_writer(), journal->last_seq(), last_timestamp,
                  std::move(bytes));
  events_since_snapshot = 0;
}

void Engine::Impl::poll_snapshot() {
  std::optional<Status> result = snapshots.take_result();
  if (!result) return;
  if (result->is_ok()) {
    snapshot_marks[snapshots.seq()] = snapshot_mark;
    expire_history(journal->remove_unneeded());
    log(LogLevel::info, "snapshot written at record " + std::to_string(snapshots.seq()) + " (" +
                            std::to_string(snapshots.bytes()) + " bytes)");
  } else {
    log(LogLevel::error,
        "snapshot failed (the journal still holds everything): " + result->message());
  }
  for (auto& done : snapshot_waiters) done({EngineError::ok, *result});
  snapshot_waiters.clear();
  if (!next_snapshot_waiters.empty()) {
    snapshot_waiters.swap(next_snapshot_waiters);
    start_snapshot();
  }
}

// An on-demand snapshot covers the state at the request: if one is already being written (of an
// older state), the request waits for the next.
void Engine::Impl::request_snapshot(Callback<Status> done) {
  if (snapshots.busy()) {
    next_snapshot_waiters.push_back(std::move(done));
    return;
  }
  snapshot_waiters.push_back(std::move(done));
  start_snapshot();
}

// At stop: let the snapshot in flight (and one asked for meanwhile) finish and answer.
void Engine::Impl::finish_snapshots() {
  while (snapshots.busy()) {
    snapshots.wait();
    if (healthy.load()) {
      poll_snapshot();
    } else {
      (void)snapshots.take_result();
      for (auto* waiters : {&snapshot_waiters, &next_snapshot_waiters}) {
        for (auto& done : *waiters) done({EngineError::unavailable, {}});
        waiters->clear();
      }
    }
  }
}

// Applies a payments command outside any request (start-up) and commits it at once.
Status Engine::Impl::apply_now(const payments::Command& command, payments::ApplyOutcome* out) {
  const Timestamp ts = stamp(1);
  Timestamp clock = ts;
  *out = state.payments.apply(command, ts, ledger, &clock);
  last_timestamp = clock;
  if (!out->changed) return Status::ok();
  std::string& payload = journal->begin_record(static_cast<uint16_t>(RecordType::payments), ts);
  payments::encode_command(command, &payload);
  journal->end_record();
  return journal->commit();
}

Status Engine::Impl::resume_payments() {
  if (options.fees && *options.fees != state.payments.fees()) {
    payments::ApplyOutcome out;
    if (Status s = apply_now(payments::cmd::SetFees{*options.fees}, &out); !s.is_ok()) return s;
    if (!out.reply.ok()) return Status::error("fees: " + out.reply.error_message);
    log(LogLevel::info, "the merchant fee schedule changed (journaled)");
  }
  if (options.channels && *options.channels != state.payments.channels().channels()) {
    payments::ApplyOutcome out;
    if (Status s = apply_now(payments::cmd::SetChannels{*options.channels}, &out); !s.is_ok())
      return s;
    if (!out.reply.ok()) return Status::error("channels: " + out.reply.error_message);
    log(LogLevel::info, "the routing channels changed (journaled)");
  }
  if (std::string p = routing::router_options_problem(options.routing); !p.empty()) {
    return Status::error("routing: " + p);
  }
  start_router();
  payments::ApplyOutcome out;
  if (Status s = apply_now(payments::cmd::MarkPendingUnknown{}, &out); !s.is_ok()) return s;
  if (out.changed) {
    log(LogLevel::info, std::to_string(out.resolve.size()) +
                            " PSP attempt(s) were in flight at the last stop: now unknown");
  }
  pending_effects.resolve = state.payments.outstanding_attempts();
  if (!pending_effects.resolve.empty()) {
    log(LogLevel::info,
        "resolving " + std::to_string(pending_effects.resolve.size()) + " open PSP attempt(s)");
  }
  return Status::ok();
}

void Engine::Impl::run() {
  hand_over_effects();
  for (;;) {
    std::vector<Command> batch = take_batch();
    const auto began = std::chrono::steady_clock::now();
    for (Command& c : batch) {
      if (is_write(c)) {
        events_committed += event_count(c);
        apply_write(c);
      }
    }
    maybe_tick();
    check_memory();
    if (!commit_batch(batch)) {
      serve_reads_until_stop();
      break;
    }
    move_history();
    expire_waiters();
    poll_snapshot();
    if (options.snapshot_interval_events > 0 && !snapshots.busy() &&
        events_since_snapshot >= options.snapshot_interval_events) {
      start_snapshot();
    }
    writer_longest_pause_ns = std::max(writer_longest_pause_ns, nanos_since(began));
    if (batch.empty()) {
      std::lock_guard lock(mutex);
      if (stopping && queue.empty()) break;
    }
  }
  finish_snapshots();
  if (backup_thread.joinable()) backup_thread.join();
  for (auto& [key, w] : waiters) w.done({EngineError::ok, std::move(w.current)});
  waiters.clear();
  // After a journal failure: refuse whatever is still queued.
  std::deque<Command> rest;
  {
    std::lock_guard lock(mutex);
    rest.swap(queue);
  }
  for (Command& c : rest) fail(c, EngineError::unavailable);
}

Engine::Engine() : impl_(std::make_unique<Impl>()) {}
Engine::~Engine() { stop(); }

Status Engine::open(EngineOptions options, std::unique_ptr<Engine>* out) {
  std::unique_ptr<Engine> engine(new Engine());
  Impl& impl = *engine->impl_;
  impl.options = std::move(options);
  if (!impl.options.wall_clock) impl.options.wall_clock = wall_clock_now;
  if (Status s = impl.open_storage(); !s.is_ok()) return s;
  if (Status s = impl.open_history(); !s.is_ok()) return s;
  if (impl.history) {
    uint64_t removed = 0;
    if (Status s = impl.history->remove_payments_after(impl.journal->last_seq(), &removed);
        !s.is_ok()) {
      return Status::error("history store: " + s.message());
    }
    if (removed > 0) {
      impl.log(LogLevel::warn, "the history store held " + std::to_string(removed) +
                                   " payment record(s) written after journal record " +
                                   std::to_string(impl.journal->last_seq()) +
                                   " (a store copied after its snapshot): removed");
    }
  }
  const SipKey key = random_index_key();
  impl.index_key = key;
  impl.state.payments = payments::PaymentsCore(impl.options.payments);
  Recovery recovery;
  if (Status s = recover(*impl.journal, key, impl.options.payments, impl.history.get(), &impl.state,
                         &impl.last_timestamp, &recovery);
      !s.is_ok()) {
    return s;
  }
  // Events since the snapshot count toward the next one, however often keeld restarts.
  impl.events_since_snapshot = recovery.events_replayed;
  if (recovery.snapshot_seq > 0) {
    impl.snapshot_marks[recovery.snapshot_seq] = recovery.snapshot_marks;
  }
  // With history in the store, start-up checks what needs no transfer (O(accounts)); the full
  // check reads every transfer (`keel journal verify`, a full status).
  if (const auto inv = impl.history ? impl.ledger.check_accounts() : impl.ledger.check_invariants();
      !inv.ok) {
    return Status::error("recovered ledger breaks an invariant: " + inv.problem);
  }
  const auto counts = impl.ledger.counts();
  impl.log(LogLevel::info, "recovered " + std::to_string(counts.accounts) + " accounts and " +
                               std::to_string(counts.transfers) +
                               " transfers (snapshot at record " +
                               std::to_string(recovery.snapshot_seq) + ", " +
                               std::to_string(recovery.records_replayed) + " records replayed)");
  if (Status s = impl.resume_payments(); !s.is_ok()) return s;
  impl.publish_keys();
  impl.writer = std::thread([&impl] { impl.run(); });
  *out = std::move(engine);
  return Status::ok();
}

void Engine::stop() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_one();
  if (impl_->writer.joinable()) impl_->writer.join();
}

bool Engine::healthy() const { return impl_->healthy.load(); }

void Engine::create_accounts(std::vector<ledger::AccountEvent> events,
                             Callback<std::vector<ledger::CreateAccountResult>> done) {
  impl_->submit(CreateAccounts{std::move(events), std::move(done)});
}
void Engine::create_transfers(std::vector<ledger::TransferEvent> events,
                              Callback<std::vector<ledger::CreateTransferResult>> done) {
  impl_->submit(CreateTransfers{std::move(events), std::move(done)});
}
void Engine::set_account_closed(std::string account_id, bool closed,
                                Callback<ledger::SetAccountClosedResult> done) {
  impl_->submit(SetAccountClosed{std::move(account_id), closed, std::move(done)});
}
void Engine::get_account(std::string id, Callback<std::optional<ledger::Account>> done) {
  impl_->submit(GetAccount{std::move(id), std::move(done)});
}
void Engine::get_transfer(std::string id, Callback<std::optional<ledger::Transfer>> done) {
  impl_->submit(GetTransfer{std::move(id), std::move(done)});
}
void Engine::list_account_transfers(AccountTransfersQuery query,
                                    Callback<ledger::AccountTransfersPage> done) {
  impl_->submit(ListAccountTransfers{std::move(query), std::move(done)});
}
void Engine::get_status(bool full, Callback<EngineStatus> done) {
  impl_->submit(GetStatus{full, std::move(done)});
}
void Engine::take_snapshot(Callback<Status> done) { impl_->submit(TakeSnapshot{std::move(done)}); }
void Engine::backup(std::filesystem::path dir, Callback<BackupResult> done) {
  impl_->submit(Backup{std::move(dir), std::move(done)});
}
void Engine::payments_command(payments::Command command, int64_t wait_ms,
                              Callback<payments::Reply> done) {
  impl_->submit(PaymentsCommand{std::move(command), wait_ms, std::move(done)});
}
void Engine::security_command(security::Command command, Callback<security::Result> done) {
  impl_->submit(SecurityCommand{std::move(command), std::move(done)});
}
std::shared_ptr<const security::KeyRing> Engine::keys() const {
  std::lock_guard lock(impl_->keys_mutex);
  return impl_->published_keys;
}
void Engine::get_channels(Callback<std::vector<ChannelStatus>> done) {
  impl_->submit(GetChannels{std::move(done)});
}
void Engine::payments_query(payments::Query query, Callback<payments::QueryResult> done) {
  impl_->submit(PaymentsQuery{std::move(query), std::move(done)});
}

Status verify_data_dir(const std::filesystem::path& dir, VerifyReport* report) {
  if (!std::filesystem::is_directory(dir))
    return Status::error(dir.string() + ": no such directory");
  journal::JournalOptions jo;
  jo.dir = dir;
  jo.read_only = true;
  std::unique_ptr<journal::Journal> journal;
  if (Status s = journal::Journal::open(jo, &journal, &report->journal); !s.is_ok()) return s;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<HistoryTier> history;
  if (std::filesystem::exists(dir / "store")) {
    if (Status s = store::open_rocks_store(dir / "store", true, 64, &store); !s.is_ok()) return s;
    history = std::make_unique<HistoryTier>(std::move(store), [](bool, std::string_view) {});
  }
  State state;
  ledger::Ledger& ledger = state.ledger;
  Recovery recovery;
  if (Status s =
          recover(*journal, {}, {}, history.get(), &state, &report->last_timestamp, &recovery);
      !s.is_ok()) {
    return s;
  }
  report->snapshot_seq = recovery.snapshot_seq;
  report->records_replayed = recovery.records_replayed;
  report->counts = ledger.counts();
  if (Status s = state_hash(state, &report->state_hash); !s.is_ok()) return s;
  report->invariants = ledger.check_invariants();
  if (!report->invariants.ok)
    return Status::error("invariant broken: " + report->invariants.problem);
  return Status::ok();
}

namespace {

// Copies `from` into `to` (a new directory), syncing every file and directory written.
Status copy_synced(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::error_code ec;
  std::filesystem::create_directories(to, ec);
  if (ec) return Status::error(to.string() + ": " + ec.message());
  for (const auto& entry : std::filesystem::directory_iterator(from, ec)) {
    const std::filesystem::path target = to / entry.path().filename();
    if (entry.is_directory()) {
      if (Status s = copy_synced(entry.path(), target); !s.is_ok()) return s;
      continue;
    }
    std::filesystem::copy_file(entry.path(), target, ec);
    if (ec) return Status::error(target.string() + ": " + ec.message());
    journal::UniqueFd fd;
    if (Status s = journal::open_file(target, O_RDONLY, &fd); !s.is_ok()) return s;
    if (Status s = journal::fdatasync_file(fd.get(), target); !s.is_ok()) return s;
  }
  if (ec) return Status::error(from.string() + ": " + ec.message());
  return journal::fsync_dir(to);
}

}  // namespace

namespace {

// Links (or copies) every journal segment of `from` into `to`, skipping names already there.
Status link_segments(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(from, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("journal-") || !name.ends_with(".seg")) continue;
    const std::filesystem::path target = to / name;
    if (std::filesystem::exists(target)) continue;
    std::error_code link_ec;
    std::filesystem::create_hard_link(entry.path(), target, link_ec);
    if (link_ec) std::filesystem::copy_file(entry.path(), target, link_ec);
    if (link_ec) return Status::error(target.string() + ": " + link_ec.message());
  }
  if (ec) return Status::error(from.string() + ": " + ec.message());
  return Status::ok();
}

// A directory of its own under the system's temporary directory, removed with its contents.
class TempDirectory {
 public:
  TempDirectory() = default;
  ~TempDirectory() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDirectory(const TempDirectory&) = delete;
  TempDirectory& operator=(const TempDirectory&) = delete;

  Status create() {
    std::error_code ec;
    std::string name = (std::filesystem::temp_directory_path(ec) / "keel-audit-XXXXXX").string();
    if (ec) return Status::error("temporary directory: " + ec.message());
    if (::mkdtemp(name.data()) == nullptr) {
      return Status::error("mkdtemp " + name + ": " + std::strerror(errno));
    }
    path_ = name;
    return Status::ok();
  }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Replays the journal in `journal_dir` from record 1 into a new store at `store_dir`, moving
// final transfers into it as they come (memory stays bounded as keeld's does).
Status replay_into_store(const std::filesystem::path& journal_dir,
                         const std::filesystem::path& store_dir, RebuildReport* report) {
  journal::JournalOptions jo;
  jo.dir = journal_dir;
  jo.read_only = true;
  std::unique_ptr<journal::Journal> journal;
  journal::OpenReport opened;
  if (Status s = journal::Journal::open(jo, &journal, &opened); !s.is_ok()) {
    return Status::error("the segments do not form one journal: " + s.message());
  }
  if (opened.first_seq > 1) {
    return Status::error("the archive is incomplete: the oldest record found is " +
                         std::to_string(opened.first_seq) + " (records 1.." +
                         std::to_string(opened.first_seq - 1) +
                         " were deleted before archiving was on); restore a backup instead");
  }
  std::unique_ptr<store::Store> store;
  if (Status s = store::open_rocks_store(store_dir, false, 64, &store); !s.is_ok()) return s;
  StoreColdTransfers cold(store.get());
  State state;
  state.ledger.set_cold_transfers(&cold);
  state.payments.set_history(store.get());
  Timestamp clock = 0;
  store::WriteBatch batch;
  std::vector<uint32_t> indexes;
  payments::PaymentsCore::HistoryRecords records;
  std::vector<ledger::FinalTransfer> final;
  const auto flush = [&](uint64_t seq) -> Status {
    batch.applied_seq = seq;
    if (Status s = store->write(batch); !s.is_ok()) return s;
    state.ledger.make_cold(indexes);
    state.payments.make_cold(records);
    report->transfers_moved += indexes.size();
    report->events_moved += records.events.size();
    report->keys_moved += records.keys.size();
    report->payments_moved += records.payments.size();
    report->flows_moved += records.flows.size();
    batch.puts.clear();
    indexes.clear();
    records = {};
    return Status::ok();
  };
  uint64_t last = 0;
  Status s = journal->replay(1, [&](const journal::RecordView& r) {
    if (Status a =
            apply_record(state, static_cast<RecordType>(r.type), r.timestamp, r.payload, &clock);
        !a.is_ok()) {
      return Status::error("record " + std::to_string(r.seq) + ": " + a.message());
    }
    ++report->records_replayed;
    last = r.seq;
    state.ledger.take_final(&final);
    for (ledger::FinalTransfer& f : final) {
      indexes.push_back(f.index);
      batch.puts.emplace_back(HistoryTier::key(f.index), std::move(f.value));
    }
    final.clear();
    state.payments.take_final(&records, r.seq);
    for (auto& put : records.puts) batch.puts.push_back(std::move(put));
    records.puts.clear();
    return batch.puts.size() >= 65536 ? flush(r.seq) : Status::ok();
  });
  if (s.is_ok()) s = flush(last);
  if (!s.is_ok()) return s;
  if (Status h = state_hash(state, &report->state_hash); !h.is_ok()) return h;
  return Status::ok();
}

}  // namespace

Status verify_audit(const std::filesystem::path& data, const std::filesystem::path& archive,
                    std::vector<journal::ChainAnchor> anchors, AuditReport* report) {
  namespace fs = std::filesystem;
  *report = {};
  if (!fs::is_directory(data)) return Status::error(data.string() + ": no such directory");
  journal::JournalOptions jo;
  jo.dir = data;
  jo.read_only = true;
  std::unique_ptr<journal::Journal> journal;
  if (Status s = journal::Journal::open(jo, &journal, &report->journal); !s.is_ok()) return s;
  for (journal::ChainAnchor& a : journal->snapshot_anchors()) anchors.push_back(std::move(a));
  // With an archive: the segments of both, side by side in a directory of links.
  std::optional<TempDirectory> joined;
  if (!archive.empty()) {
    if (!fs::is_directory(archive)) return Status::error(archive.string() + ": no such directory");
    joined.emplace();
    if (Status s = joined->create(); !s.is_ok()) return s;
    Status s = link_segments(data, joined->path());
    if (s.is_ok()) s = link_segments(archive, joined->path());
    if (!s.is_ok()) return s;
    jo.dir = joined->path();
    journal.reset();
    if (Status o = journal::Journal::open(jo, &journal, &report->journal); !o.is_ok()) return o;
  }
  const uint64_t first = report->journal.first_seq == 0 ? 1 : report->journal.first_seq;
  return journal::verify_chain(*journal, first, anchors, &report->chain);
}

Status rebuild_store(const std::filesystem::path& data, const std::filesystem::path& archive,
                     RebuildReport* report) {
  namespace fs = std::filesystem;
  *report = {};
  if (!fs::is_directory(data)) return Status::error(data.string() + ": no such directory");
  const fs::path live = data / "store";
  if (fs::exists(live)) {  // RocksDB's lock: refuses while keeld runs on `data`
    std::unique_ptr<store::Store> probe;
    if (Status s = store::open_rocks_store(live, false, 1, &probe); !s.is_ok()) {
      return Status::error("the current store cannot be opened (is keeld running?): " +
                           s.message());
    }
  }
  const fs::path work = data / "store-rebuild";
  std::error_code ec;
  fs::remove_all(work, ec);
  fs::create_directories(work / "journal", ec);
  if (ec) return Status::error(work.string() + ": " + ec.message());
  Status s = link_segments(data, work / "journal");
  if (s.is_ok() && !archive.empty()) s = link_segments(archive, work / "journal");
  if (s.is_ok()) s = replay_into_store(work / "journal", work / "store", report);
  if (!s.is_ok()) {
    fs::remove_all(work, ec);
    return s;
  }
  if (fs::exists(live)) {
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    const fs::path replaced =
        data / ("store.replaced-" +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now).count()));
    fs::rename(live, replaced, ec);
    if (ec) return Status::error("move the old store aside: " + ec.message());
    report->replaced_store = replaced.string();
  }
  fs::rename(work / "store", live, ec);
  if (ec) return Status::error("put the new store in place: " + ec.message());
  fs::remove_all(work, ec);
  if (Status f = journal::fsync_dir(data); !f.is_ok()) return f;
  VerifyReport verified;
  if (Status v = verify_data_dir(data, &verified); !v.is_ok()) {
    return Status::error("the data directory does not verify with the rebuilt store: " +
                         v.message());
  }
  if (verified.state_hash != report->state_hash) {
    return Status::error(
        "the rebuilt store gives another state than the journal replayed from "
        "record 1 (a bug: the old store is kept at " +
        report->replaced_store + ")");
  }
  return Status::ok();
}

bool absent_or_empty_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return !ec;
  return std::filesystem::is_directory(dir, ec) && std::filesystem::is_empty(dir, ec);
}

Status restore_backup(const std::filesystem::path& backup, const std::filesystem::path& data,
                      VerifyReport* report) {
  if (!absent_or_empty_dir(data)) {
    return Status::error(data.string() +
                         " exists and is not an empty directory: restore into a new one");
  }
  if (Status s = verify_data_dir(backup, report); !s.is_ok()) {
    return Status::error("the backup does not verify: " + s.message());
  }
  if (report->snapshot_seq == 0) {
    return Status::error(backup.string() + " holds no snapshot: not a keel backup");
  }
  if (Status s = copy_synced(backup, data); !s.is_ok()) return s;
  return journal::fsync_dir(data.parent_path().empty() ? "." : data.parent_path());
}

}  // namespace keel::engine
