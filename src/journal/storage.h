#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "core/time.h"
#include "journal/audit_chain.h"

namespace keel::journal {

// The storage seam: what the engine needs from durable storage, whatever holds the bytes.
// Backends: Journal (journal.h, segment files in a directory: keeld's default) and MemoryStorage
// (memory_storage.h, for tests, with fault injection). docs/journal.md, "The storage seam".
//
// What is stored: records (a sequence number, a type, a logical timestamp and a payload; sequence
// numbers start at 1 and have no gaps) and snapshots (the encoded state after a record). A batch
// of records is staged in the journal record format (format.h) by this class, the same for every
// backend; a backend only makes a sealed batch durable (write_batch) and reads it back.
//
// Thread: one thread at a time (the engine's writer thread), except the callable returned by
// snapshot_writer(), which any thread may run. Nothing here throws.
//
// Failures, for every backend:
//   - A failed commit is sticky: the storage refuses every later commit and write_snapshot with
//     the first error. Nothing of the batch may be acknowledged; the caller must stop writing.
//     It is never retried (after a failed fsync the kernel may have dropped the dirty pages, so a
//     retry could "succeed" without the data).
//   - A failed commit may leave any prefix of the batch durable (a torn batch): whole leading
//     records, then possibly part of one record. Reopening the storage keeps the whole records
//     and drops the partial one (a torn tail, reported as a warning). So after a restart the
//     state holds every acknowledged record and possibly some records that were never
//     acknowledged: callers answer `unavailable` (outcome unknown), never "failed".
//   - Reads (load_newest_snapshot, replay) keep working after a failed commit and see exactly
//     what was acknowledged: the records found at open plus every commit that succeeded. Records
//     of the failed batch that did reach the medium show only after a reopen.

struct RecordView {
  uint64_t seq = 0;
  uint16_t type = 0;
  Timestamp timestamp = 0;
  std::string_view payload;  // valid only during the callback that receives it
};

struct SnapshotData {
  uint64_t seq = 0;  // state includes every record up to and including seq
  Timestamp timestamp = 0;
  std::string state;
  std::filesystem::path path;  // the file it came from; empty for a backend without files
  // The audit chain as it stood at or before `seq` (audit_chain.h); nullopt in snapshots
  // written before the chain existed.
  std::optional<ChainPoint> chain;
};

using ReplayFn = std::function<Status(const RecordView&)>;
// Writes the snapshot of `state` after record `seq`. See Storage::snapshot_writer.
using SnapshotWriteFn =
    std::function<Status(uint64_t seq, Timestamp timestamp, std::string_view state)>;

class Storage {
 public:
  virtual ~Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  // The newest snapshot that passes its checksum, or nullopt if there is none. Damaged snapshots
  // are skipped (and reported through the backend's warning sink): an older one is used.
  [[nodiscard]] virtual std::optional<SnapshotData> load_newest_snapshot() const = 0;

  // Calls `apply` for every acknowledged record (found at open or committed since, see
  // "Failures") with seq >= from_seq, in order. Fails if a record with seq >= from_seq is no
  // longer stored (removed by retention or lost), a record fails its checksum, or `apply` returns
  // an error (its message is kept, with the record's seq). from_seq past last_seq() replays
  // nothing.
  virtual Status replay(uint64_t from_seq, const ReplayFn& apply) const = 0;

  // Writing, one batch at a time (group commit). Not virtual: the same code stages records for
  // every backend, so the hot path costs no virtual call per record.
  // begin_record returns the staging buffer itself: only append the payload to it (at most
  // 64 MiB), never change or remove earlier bytes, and do not keep the reference past
  // end_record. end_record seals the record (length and both CRCs). REQUIRES: not read-only,
  // begin_record and end_record alternate, and no record is open at commit(). The buffer is
  // reused across batches, so a warmed storage allocates nothing per record. Staged records not
  // committed when the storage is destroyed are dropped.
  std::string& begin_record(uint16_t type, Timestamp timestamp);
  void end_record();
  [[nodiscard]] size_t staged_records() const { return staged_records_; }
  [[nodiscard]] size_t staged_bytes() const { return staging_.size(); }

  // Makes every staged record durable (one virtual call: write_batch), after appending the
  // batch's audit chain record (type kChainRecordType, audit_chain.h), which takes the next
  // sequence number: a batch of n records advances last_seq() by n + 1. Nothing staged: ok, no
  // I/O. On failure, see "Failures" above: sticky, the batch is not acknowledged, and a prefix
  // of it may be durable. After a failure the staged records stay staged and are never written.
  Status commit();

  // The sequence number the next staged record gets; last_seq() is the last durable one, or the
  // newest snapshot's seq if that is greater (records before it may have been removed).
  [[nodiscard]] uint64_t next_seq() const;
  [[nodiscard]] uint64_t last_seq() const { return last_seq_; }
  // The last chain record committed or found at open, or nullopt before the first commit of a
  // directory written before the chain existed. Snapshots record it (snapshot_writer).
  [[nodiscard]] const std::optional<ChainPoint>& chain_point() const { return chain_; }
  // The chain point a snapshot after record `seq` records: chain_point() when it is that record
  // (a snapshot taken right after a commit), else none (its head is not kept).
  [[nodiscard]] std::optional<ChainPoint> chain_at(uint64_t seq) const {
    return chain_ && chain_->seq == seq ? chain_ : std::nullopt;
  }
  // Empty until a commit (or a step of write_snapshot that is sticky) failed; then its message.
  [[nodiscard]] const std::string& failure() const { return failure_; }

  // Writes `state` as the snapshot after record `seq` and then applies retention (see
  // remove_unneeded). A failure is reported; whether it is sticky is the backend's to say.
  // REQUIRES: seq <= last_seq(), not read-only.
  virtual Status write_snapshot(uint64_t seq, Timestamp timestamp, std::string_view state) = 0;

  // write_snapshot in two halves, so the writer thread does not wait for the snapshot's I/O:
  //   1. snapshot_writer() (writer thread) returns a callable that writes one snapshot durably.
  //      It touches no state of this object, so any thread may run it while the writer commits;
  //      it may outlive this object. Its failure is never sticky: retention has not run, so the
  //      records it would have covered are still stored and nothing is lost.
  //   2. remove_unneeded (writer thread): the retention of write_snapshot. It drops snapshots
  //      and records no longer needed to recover (the backend says which). Run it only after a
  //      snapshot write succeeded and while none runs. Its failures are only warned about. It
  //      returns the record of the oldest snapshot it keeps (0 while it keeps fewer than it
  //      should, or cannot tell): recovery never needs a state older than that snapshot's, so
  //      history the state had dropped by then may go (the history store's expiry).
  [[nodiscard]] virtual SnapshotWriteFn snapshot_writer() const = 0;
  virtual uint64_t remove_unneeded() = 0;

  // One line for logs: what the storage is and where ("journal in ./data").
  [[nodiscard]] virtual std::string describe() const = 0;

 protected:
  Storage() = default;

  // Makes the sealed records `batch` (journal record format, seq first_seq.. first_seq+records-1,
  // back to back) durable. Only commit() calls it, with records > 0 and no earlier failure. On
  // success the records are durable (commit then advances last_seq); on failure commit makes the
  // storage sticky-failed, and any prefix of the batch may be durable (the contract above).
  virtual Status write_batch(std::string_view batch, uint64_t first_seq, size_t records) = 0;

  // For writing backends, once open set last_seq: finds where the audit chain stands (the last
  // chain record after `snapshot_seq`, else `snapshot_chain`, the newest snapshot's point) and
  // hashes the records durable after it (a torn batch's leading records). Without either, the
  // chain starts here (a genesis). If records after the chain's last record exist (those, or
  // the records of a directory written before the chain), it commits a chain record covering
  // them at once, so that chain_at(last_seq()) is set from then on. Fails when records cannot
  // be read or that commit fails.
  Status resume_chain(uint64_t snapshot_seq, const std::optional<ChainPoint>& snapshot_chain);
  // Off: commits write no chain records (the journal's own unit tests, which count records, and
  // the benchmark that measures what the chain costs). On by default, and always in keeld.
  void set_audit_chain(bool on) { chain_on_ = on; }

  // For backends: the last durable seq found at open, the read-only flag (staging asserts),
  // and a sticky failure outside commit (a failed snapshot rename, say). fail() returns `s`.
  void set_last_seq(uint64_t seq) { last_seq_ = seq; }
  void set_read_only(bool read_only) { read_only_ = read_only; }
  Status fail(Status s);

 private:
  static constexpr size_t kNoRecord = static_cast<size_t>(-1);

  Status write_staged();   // write_batch, then the bookkeeping of a durable batch
  Status write_chained();  // the chain record, then write_staged

  std::string staging_;           // the batch being built: whole records, back to back
  size_t staged_records_ = 0;     // sealed records in `staging_`
  size_t record_at_ = kNoRecord;  // offset in `staging_` of the record being built
  uint64_t last_seq_ = 0;
  bool read_only_ = false;
  bool chain_on_ = true;
  Timestamp last_staged_timestamp_ = 0;  // the chain record's timestamp: its batch's last
  std::optional<ChainPoint> chain_;      // the last durable chain record
  ChainHasher chain_hasher_;             // from chain_'s head over the records since it
  std::string failure_;                  // set once a write failed; every later write is refused
};

}  // namespace keel::journal
