#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/time.h"
#include "journal/storage.h"

namespace keel::journal {

// The embedded journal: the durable log of input commands, plus snapshots of state.
//
// On disk, in one directory:
//   journal-<first seq, 20 digits>.seg   segment files of records, appended only
//   snapshot-<seq, 20 digits>.snap       the encoded state after applying record <seq>
// A record is a fixed header (magic, version, type, payload length, sequence number,
// timestamp, payload CRC-32C, header CRC-32C) followed by the payload. Sequence numbers start
// at 1 and have no gaps across segments. docs/journal.md describes the bytes.
//
// Thread: one thread at a time (the engine's writer thread; verify and tests own theirs).
// The file backend of the storage seam (storage.h): everything Storage promises holds here, and
// this header adds what is particular to files.

struct JournalOptions {
  std::filesystem::path dir;
  // A batch starts a new segment when the current one would pass this size.
  uint64_t segment_bytes_max = uint64_t{256} << 20;
  // Snapshots kept; segments older than the oldest kept snapshot are deleted, or moved to
  // archive_dir when it is set.
  uint32_t snapshots_kept = 2;
  // Where segments past retention go instead of being deleted (created if missing; may be on
  // another file system: then copied, synced, and removed here). With every segment since
  // record 1 kept here or in `dir`, `keel store rebuild` can rebuild the history store from the
  // journal alone (docs/storage.md). Empty: delete them.
  std::filesystem::path archive_dir;
  // Write the audit chain (audit_chain.h): keeld always does; see Storage::set_audit_chain.
  bool audit_chain = true;
  // Read-only: never create, truncate or delete anything (keel journal verify).
  bool read_only = false;
  // Where warnings go (a torn tail that was truncated, a bad snapshot skipped). May be empty.
  std::function<void(std::string_view)> warn;
};

// What open() found, for logs and `keel journal verify`.
struct OpenReport {
  uint64_t segments = 0;
  uint64_t records = 0;
  uint64_t first_seq = 0;  // 0 if there are no records
  uint64_t last_seq = 0;   // of the last record, 0 if none (Journal::last_seq counts snapshots)
  uint64_t torn_tail_bytes = 0;  // bytes truncated (or, read-only, that would be)
  std::string torn_tail_at;      // "file offset N" where the torn tail began, if any
};

class Journal final : public Storage {
 public:
  // Opens (creating if needed, unless read_only) the journal in options.dir and checks every
  // record. A torn tail (a partly written last batch: an invalid record in the last segment with
  // no valid record after it) is truncated and reported through options.warn. Any other invalid
  // record fails the open with a message naming the file and the byte offset: money is never
  // skipped silently. Also fails on a gap or overlap between segments, a record whose checksums
  // pass but whose seq is wrong, a snapshot newer than the last record of a non-empty journal,
  // bad options, or another writer holding the directory (writers take an exclusive flock on
  // it; read_only takes none and never creates, truncates or deletes anything).
  // `report` may be null. On failure *out is left untouched.
  static Status open(JournalOptions options, std::unique_ptr<Journal>* out, OpenReport* report);
  ~Journal() override;

  // Skipped bad snapshots are reported through options.warn.
  [[nodiscard]] std::optional<SnapshotData> load_newest_snapshot() const override;

  // Records are read through a read-only mmap and checked again (the files may have changed
  // since open): a record with seq >= from_seq missing (deleted segment) or failing its checksum
  // fails with the file and offset.
  Status replay(uint64_t from_seq, const ReplayFn& apply) const override;

  // commit() (storage.h) writes the batch with one pwrite and one fdatasync. A batch that would
  // push the current segment past segment_bytes_max first starts a new segment (its own one if
  // the batch alone is larger). A failed commit may leave part of the batch on disk; the next
  // open treats it as a torn tail, but keeps the batch's leading records that were written whole.

  // Writes `state` as the snapshot after record `seq` (write to a temporary file, fsync, rename,
  // fsync the directory), then deletes snapshots and segments no longer needed: it keeps the
  // newest snapshots_kept snapshots and every segment with a record after the oldest of them
  // (every segment while fewer snapshots exist), never the segment being appended to, and
  // removes stray temporary files. An error before the rename leaves the journal writable; a
  // failed rename or directory fsync is sticky like a failed commit; a failed deletion is only
  // warned about. REQUIRES: seq <= last_seq(), not read_only.
  Status write_snapshot(uint64_t seq, Timestamp timestamp, std::string_view state) override;

  // The two halves of write_snapshot, for writing the file off the writer thread:
  //   1. write_snapshot_file: tmp file, fsync, rename, fsync the directory. Touches no journal
  //      state, so any thread may run it while the writer commits. Nothing is sticky: an error
  //      leaves the segments as they were (no retention ran), so nothing is lost.
  //      snapshot_writer() returns it bound to dir().
  //   2. remove_unneeded (the journal's thread): the retention of write_snapshot. Run it
  //      only after a write_snapshot_file succeeded, and never while another one runs (it
  //      removes stray temporary files). REQUIRES: not read_only.
  //      `chain` is the audit chain point the snapshot records (Storage::chain_at).
  static Status write_snapshot_file(const std::filesystem::path& dir, uint64_t seq,
                                    Timestamp timestamp, std::string_view state,
                                    const std::optional<ChainPoint>& chain);
  [[nodiscard]] SnapshotWriteFn snapshot_writer() const override;
  uint64_t remove_unneeded() override;

  // The chain point of every snapshot in the directory whose header is sound (skipping those
  // written before the chain): the anchors verify_chain (audit_chain.h) checks the records
  // against. Unreadable files are skipped; load_newest_snapshot reports them.
  [[nodiscard]] std::vector<ChainAnchor> snapshot_anchors() const;

  // "journal in <dir>".
  [[nodiscard]] std::string describe() const override;
  [[nodiscard]] const std::filesystem::path& dir() const;

 private:
  Journal();
  Status write_batch(std::string_view batch, uint64_t first_seq, size_t records) override;

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::journal
