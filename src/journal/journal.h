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
  std::filesystem::path path;
};

struct JournalOptions {
  std::filesystem::path dir;
  // A batch starts a new segment when the current one would pass this size.
  uint64_t segment_bytes_max = uint64_t{256} << 20;
  // Snapshots kept; segments older than the oldest kept snapshot are deleted.
  uint32_t snapshots_kept = 2;
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

class Journal {
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
  ~Journal();

  // The newest snapshot that passes its checksum, or nullopt if there is none. Skipped bad
  // snapshots are reported through options.warn.
  [[nodiscard]] std::optional<SnapshotData> load_newest_snapshot() const;

  // Calls `apply` for every durable record with seq >= from_seq, in order. Stops with an error
  // if a record with seq >= from_seq is missing (deleted segment), a record fails its checksum
  // (the files changed since open), or `apply` returns an error (its message is kept). from_seq
  // past last_seq() replays nothing. Records are read through a read-only mmap.
  Status replay(uint64_t from_seq, const std::function<Status(const RecordView&)>& apply) const;

  // Writing, one batch at a time (group commit): stage records, then commit() writes them with
  // one write and one fdatasync. REQUIRES: not read_only.
  // begin_record returns the staging buffer itself: only append the payload to it (at most
  // 64 MiB), never change or remove earlier bytes, and do not keep the reference past
  // end_record. end_record seals the record (length and both CRCs). REQUIRES: begin_record and
  // end_record alternate, and no record is open at commit(). The buffer is reused across
  // batches, so a warmed journal allocates nothing per record. Staged records not committed when
  // the journal is destroyed are dropped.
  std::string& begin_record(uint16_t type, Timestamp timestamp);
  void end_record();
  [[nodiscard]] size_t staged_records() const;
  [[nodiscard]] size_t staged_bytes() const;
  // Makes every staged record durable. On failure the journal refuses all further writes: the
  // caller must stop (an fdatasync error cannot be retried safely). A batch that would push the
  // current segment past segment_bytes_max first starts a new segment (its own one if the batch
  // alone is larger). A failed commit may leave part of the batch on disk; the next open treats
  // it as a torn tail, but keeps the batch's leading records that were written whole.
  Status commit();

  // The sequence number the next staged record gets; last_seq() is the last durable one, or the
  // newest snapshot's seq if that is greater (segments before it may have been deleted).
  [[nodiscard]] uint64_t next_seq() const;
  [[nodiscard]] uint64_t last_seq() const;

  // Writes `state` as the snapshot after record `seq` (write to a temporary file, fsync, rename,
  // fsync the directory), then deletes snapshots and segments no longer needed: it keeps the
  // newest snapshots_kept snapshots and every segment with a record after the oldest of them
  // (every segment while fewer snapshots exist), never the segment being appended to, and
  // removes stray temporary files. An error before the rename leaves the journal writable; a
  // failed rename or directory fsync is sticky like a failed commit; a failed deletion is only
  // warned about. REQUIRES: seq <= last_seq(), not read_only.
  Status write_snapshot(uint64_t seq, Timestamp timestamp, std::string_view state);

  // The two halves of write_snapshot, for writing the file off the writer thread:
  //   1. write_snapshot_file: tmp file, fsync, rename, fsync the directory. Touches no journal
  //      state, so any thread may run it while the writer commits. Nothing is sticky: an error
  //      leaves the segments as they were (no retention ran), so nothing is lost.
  //   2. remove_unneeded_files (the journal's thread): the retention of write_snapshot. Run it
  //      only after a write_snapshot_file succeeded, and never while another one runs (it
  //      removes stray temporary files).
  static Status write_snapshot_file(const std::filesystem::path& dir, uint64_t seq,
                                    Timestamp timestamp, std::string_view state);
  void remove_unneeded_files();

  [[nodiscard]] const std::filesystem::path& dir() const;

 private:
  Journal();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::journal
