#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ledger/ledger.h"
#include "payments/core.h"
#include "store/store.h"

namespace keel::engine {

// The ledger's view of the transfers in a history store (key: HistoryTier::key), read on the
// calling thread. Used by the history tier and by offline tools (store rebuild).
class StoreColdTransfers final : public ledger::ColdTransfers {
 public:
  explicit StoreColdTransfers(const store::Store* store) : store_(store) {}
  [[nodiscard]] std::optional<std::string> read(uint32_t index) const override;
  Status scan(
      uint32_t below,
      const std::function<Status(uint32_t index, std::string_view value)>& fn) const override;

 private:
  const store::Store* store_;
};

// Reads transfer `index` from the store and decodes it as a query answers it. Fails when the store
// fails, lacks it, or holds bytes that do not decode.
Status read_transfer(const store::Store& store, uint32_t index, ledger::Transfer* out);

// What the commits up to one journal record move out of memory.
struct HistoryBatch {
  std::vector<ledger::FinalTransfer> transfers;
  // Merchant events whose delivery is final, completed idempotency records, payments at rest.
  payments::PaymentsCore::HistoryRecords payments;
  [[nodiscard]] bool empty() const { return transfers.empty() && payments.puts.empty(); }
};

// What became durable in the store since the last HistoryTier::take_durable().
struct HistoryDurable {
  std::vector<uint32_t> transfers;  // indexes (Ledger::make_cold)
  // Events, idempotency records and payments (PaymentsCore::make_cold; `puts` stays empty).
  payments::PaymentsCore::HistoryRecords payments;
};

// The history tier (docs/storage.md, "Tiers"): moves the ledger's final transfers and the
// merchant events whose delivery is final into the history store after their commit, on a
// mover thread of its own, deletes expired events from it, and runs reads of history on a
// reader thread, so the writer neither waits for the store's writes nor for its reads.
//
// Keys: "t" + the transfer index, 4 bytes big-endian (so a scan runs in index order); values:
// ledger::FinalTransfer::value. Events: "e..." as payments/outbox.h lays them out.
//
// Thread: submit() and take_durable() from the writer only; read() and scan() (ColdTransfers)
// from the ledger's thread (the writer, or a thread that owns a ledger offline); read_async()
// from any thread. A failed store write is logged and retried every second with the same bytes
// (the records stay in memory meanwhile, so nothing is lost and nothing is answered from a store
// that lacks it); a failed read on the writer is fatal (ledger/ledger.h, ColdTransfers).
class HistoryTier final : public ledger::ColdTransfers {
 public:
  using Log = std::function<void(bool error, std::string_view line)>;
  HistoryTier(std::unique_ptr<store::Store> store, Log log);
  // Writes what it was handed, then stops both threads.
  ~HistoryTier() override;

  [[nodiscard]] std::optional<std::string> read(uint32_t index) const override;
  Status scan(
      uint32_t below,
      const std::function<Status(uint32_t index, std::string_view value)>& fn) const override;

  // Deletes the payment records whose version is above journal record `seq`
  // (payments/payment_history.h), when the store has applied records the journal lacks: a
  // store copied after the snapshot a backup restores. Start-up only, before any submit().
  // Returns how many it deleted.
  Status remove_payments_after(uint64_t seq, uint64_t* removed);
  // Records moved out by the commits up to journal record `seq`, to write.
  void submit(uint64_t seq, HistoryBatch records);
  // What was written durably since the last call (memory may drop it: make_cold).
  HistoryDurable take_durable();
  // Deletes what no state recovery may start from holds (`marks`): the events below its first
  // seq with their index records, in batches, and the idempotency records that expired before
  // its time, after the writes submitted before.
  void expire(const payments::PaymentsCore::HistoryMarks& marks);
  // Runs `fn` on the reader thread, in submission order.
  void read_async(std::function<void(const store::Store&)> fn);

  struct Counters {
    uint64_t moved = 0;  // transfers written to the store
    uint64_t events_moved = 0;
    uint64_t events_deleted = 0;  // expired events deleted from the store
    uint64_t keys_moved = 0;      // completed idempotency records
    uint64_t payments_moved = 0;  // payment records (a payment at rest, each time it comes to rest)
    uint64_t flows_moved = 0;     // wallet flow records, likewise
    uint64_t superseded_deleted = 0;  // superseded versions and their markers deleted
    uint64_t queued = 0;              // handed over, not yet written
    uint64_t write_failures = 0;
    uint64_t applied_seq = 0;
    uint64_t disk_bytes = 0;
  };
  [[nodiscard]] Counters counters() const;
  [[nodiscard]] const store::Store& store() const { return *store_; }

  static std::string key(uint32_t index);

 private:
  struct Batch {
    uint64_t seq = 0;
    HistoryBatch records;
    std::optional<payments::PaymentsCore::HistoryMarks> expire;  // an expiry job (records empty)
  };
  void move_loop();
  // Writes `batch` until it succeeds (false: stopping, not written).
  bool write_until_done(const store::WriteBatch& batch, std::string_view what);
  void expire_events(uint64_t below);
  void expire_keys(Timestamp before);
  void expire_superseded(uint64_t snapshot_seq);
  void read_loop();

  std::unique_ptr<store::Store> store_;
  Log log_;

  mutable std::mutex mu_;
  std::condition_variable mover_wake_;
  std::condition_variable reader_wake_;
  std::deque<Batch> to_write_;                                  // guarded by mu_
  HistoryDurable durable_;                                      // guarded by mu_
  std::deque<std::function<void(const store::Store&)>> reads_;  // guarded by mu_
  bool stopping_ = false;                                       // guarded by mu_
  uint64_t moved_ = 0;                                          // guarded by mu_
  uint64_t events_moved_ = 0;                                   // guarded by mu_
  uint64_t events_deleted_ = 0;                                 // guarded by mu_
  uint64_t keys_moved_ = 0;                                     // guarded by mu_
  uint64_t payments_moved_ = 0;                                 // guarded by mu_
  uint64_t flows_moved_ = 0;                                    // guarded by mu_
  uint64_t superseded_deleted_ = 0;                             // guarded by mu_
  uint64_t expired_below_ = 0;   // the mover's own: events below it are deleted
  uint64_t queued_ = 0;          // guarded by mu_
  uint64_t write_failures_ = 0;  // guarded by mu_
  std::thread mover_;
  std::thread reader_;
};

}  // namespace keel::engine
