#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "core/time.h"
#include "journal/storage.h"

namespace keel::journal {

// The in-memory backend of the storage seam, for tests: storage failures on demand that a real
// file system cannot be made to produce (a failed fsync, a torn write), deterministically.
// Modelled on LevelDB's fault-injection Env (db/fault_injection_test.cc).
//
// Two objects:
//   MemoryDisk     the durable state: committed records and snapshots. It outlives the
//                  storages opened over it, so a test "restarts" by destroying the engine (and
//                  its MemoryStorage) and opening a new MemoryStorage over the same disk: only
//                  what was durably committed survives; staged records vanish.
//   MemoryStorage  a Storage (storage.h) over a MemoryDisk; at most one open at a time per disk
//                  (like the file journal's flock).
//
// Faults are armed on the disk by the test and fire once, on the next commit that writes
// (a commit with nothing staged does no I/O and fires nothing) and starts after the arming: a
// commit blocked by hold_commits() has started, so a fault armed meanwhile hits the one after it.
// Every fault makes that commit fail, which Storage::commit makes sticky:
//   fail_next_write()          nothing of the batch becomes durable ("write failed").
//   fail_next_fsync(durable)   the write "happened" but its fsync reports an error: with
//                              durable = true every record of the batch is durable anyway
//                              (the kernel wrote the pages before reporting), with false none
//                              is. Both are possible on Linux; callers must treat either as
//                              unknown, which is why the batch is never acknowledged.
//   tear_next_write(kept)      the first min(kept, batch size) records become durable, then half
//                              of the next record's bytes (if one remains): a torn tail that the
//                              next open drops with a warning, like the file journal's.
// And one that delays without failing:
//   hold_commits() / release_commits()   a commit that writes blocks (before anything becomes
//                              durable) until released; wait_for_held_commit() lets the test
//                              know one is blocked. The deterministic form of a slow fsync.
//
// Thread: every MemoryDisk method may be called from any thread (one mutex inside). A
// MemoryStorage is used like any Storage: one thread, except its snapshot_writer() callable.
class MemoryDisk {
 public:
  MemoryDisk() = default;
  MemoryDisk(const MemoryDisk&) = delete;
  MemoryDisk& operator=(const MemoryDisk&) = delete;

  // Fault injection (see above). Arming a fault replaces one armed earlier and not yet fired.
  void fail_next_write();
  void fail_next_fsync(bool batch_durable);
  void tear_next_write(size_t records_kept);
  // The next snapshot written (through any path) fails and nothing of it is stored.
  void fail_next_snapshot();

  void hold_commits();
  // Lets a held commit (and every later one) through.
  void release_commits();
  // True once a commit is blocked by hold_commits(), false if none blocks within timeout_ms.
  [[nodiscard]] bool wait_for_held_commit(int64_t timeout_ms);

  // What is durable, for assertions.
  [[nodiscard]] uint64_t last_seq() const;        // of the last whole durable record, 0 if none
  [[nodiscard]] uint64_t first_seq() const;       // of the first record still kept, 0 if none
  [[nodiscard]] uint64_t commits() const;         // commits that wrote and succeeded
  [[nodiscard]] uint64_t failed_commits() const;  // commits a fault failed
  [[nodiscard]] size_t snapshots() const;
  [[nodiscard]] size_t torn_tail_bytes() const;  // bytes of a partial record at the end

 private:
  friend class MemoryStorage;
  enum class Fault : uint8_t { none, write, fsync_lost, fsync_durable, torn };
  struct Snapshot {
    Timestamp timestamp = 0;
    std::string state;
    std::optional<ChainPoint> chain;
  };

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  // Durable records in the journal record format, back to back, from first_seq_ on; possibly
  // followed by a torn tail (a partial record).
  std::string log_;
  uint64_t first_seq_ = 1;  // of the first record in log_
  uint64_t last_seq_ = 0;   // of the last whole record in log_ (first_seq_ - 1 if none)
  size_t whole_bytes_ = 0;  // bytes of whole records in log_
  std::map<uint64_t, Snapshot> snapshots_;  // by seq
  bool in_use_ = false;                     // a MemoryStorage is open over it

  Fault fault_ = Fault::none;
  size_t torn_records_kept_ = 0;
  bool fail_snapshot_ = false;
  bool hold_ = false;
  bool commit_held_ = false;  // a commit waits in hold
  uint64_t commits_ = 0;
  uint64_t failed_commits_ = 0;
};

struct MemoryStorageOptions {
  // Snapshots kept; records up to the oldest kept snapshot are dropped (as the file journal
  // drops segments), once this many exist.
  uint32_t snapshots_kept = 2;
  // Where warnings go (a torn tail dropped at open). May be empty.
  std::function<void(std::string_view)> warn;
  // See Storage::set_audit_chain.
  bool audit_chain = true;
};

class MemoryStorage final : public Storage {
 public:
  // Opens a storage over `disk`: drops a torn tail (warning through options.warn, as the file
  // journal does) and sets last_seq from the records and the newest snapshot. Fails if another
  // MemoryStorage is open over the disk, or snapshots_kept is 0. On failure *out is untouched.
  static Status open(std::shared_ptr<MemoryDisk> disk, MemoryStorageOptions options,
                     std::unique_ptr<MemoryStorage>* out);
  ~MemoryStorage() override;

  [[nodiscard]] std::optional<SnapshotData> load_newest_snapshot() const override;
  // Fails if a record >= from_seq was dropped by retention.
  Status replay(uint64_t from_seq, const ReplayFn& apply) const override;
  // Stores the snapshot, then remove_unneeded(). A failure (fail_next_snapshot) is not sticky.
  Status write_snapshot(uint64_t seq, Timestamp timestamp, std::string_view state) override;
  // The callable holds the disk (shared), not this object.
  [[nodiscard]] SnapshotWriteFn snapshot_writer() const override;
  uint64_t remove_unneeded() override;
  // "memory storage".
  [[nodiscard]] std::string describe() const override;

 private:
  MemoryStorage(std::shared_ptr<MemoryDisk> disk, MemoryStorageOptions options);
  Status write_batch(std::string_view batch, uint64_t first_seq, size_t records) override;

  std::shared_ptr<MemoryDisk> disk_;
  MemoryStorageOptions options_;
};

}  // namespace keel::journal
