#include "journal/memory_storage.h"

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "core/assert.h"
#include "journal/format.h"

namespace keel::journal {
namespace {

// Bytes of the first `records` records of `batch` (whole records, journal format).
size_t prefix_bytes(std::string_view batch, size_t records) {
  size_t off = 0;
  for (size_t i = 0; i < records && off < batch.size(); ++i) {
    const RecordCheck c = check_record(batch, off);
    KEEL_ASSERT(c.ok());  // staged by Storage: always whole and sound
    off += c.size();
  }
  return off;
}

Status injected(std::string_view what) {
  return Status::error("memory storage: injected " + std::string(what));
}

}  // namespace

void MemoryDisk::fail_next_write() {
  std::lock_guard lock(mutex_);
  fault_ = Fault::write;
}

void MemoryDisk::fail_next_fsync(bool batch_durable) {
  std::lock_guard lock(mutex_);
  fault_ = batch_durable ? Fault::fsync_durable : Fault::fsync_lost;
}

void MemoryDisk::tear_next_write(size_t records_kept) {
  std::lock_guard lock(mutex_);
  fault_ = Fault::torn;
  torn_records_kept_ = records_kept;
}

void MemoryDisk::fail_next_snapshot() {
  std::lock_guard lock(mutex_);
  fail_snapshot_ = true;
}

void MemoryDisk::hold_commits() {
  std::lock_guard lock(mutex_);
  hold_ = true;
}

void MemoryDisk::release_commits() {
  {
    std::lock_guard lock(mutex_);
    hold_ = false;
  }
  changed_.notify_all();
}

bool MemoryDisk::wait_for_held_commit(int64_t timeout_ms) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                           [this] { return commit_held_; });
}

uint64_t MemoryDisk::last_seq() const {
  std::lock_guard lock(mutex_);
  return last_seq_;
}

uint64_t MemoryDisk::first_seq() const {
  std::lock_guard lock(mutex_);
  return whole_bytes_ == 0 ? 0 : first_seq_;
}

uint64_t MemoryDisk::commits() const {
  std::lock_guard lock(mutex_);
  return commits_;
}

uint64_t MemoryDisk::failed_commits() const {
  std::lock_guard lock(mutex_);
  return failed_commits_;
}

size_t MemoryDisk::snapshots() const {
  std::lock_guard lock(mutex_);
  return snapshots_.size();
}

size_t MemoryDisk::torn_tail_bytes() const {
  std::lock_guard lock(mutex_);
  return log_.size() - whole_bytes_;
}

MemoryStorage::MemoryStorage(std::shared_ptr<MemoryDisk> disk, MemoryStorageOptions options)
    : disk_(std::move(disk)), options_(std::move(options)) {}

MemoryStorage::~MemoryStorage() {
  std::lock_guard lock(disk_->mutex_);
  disk_->in_use_ = false;
}

Status MemoryStorage::open(std::shared_ptr<MemoryDisk> disk, MemoryStorageOptions options,
                           std::unique_ptr<MemoryStorage>* out) {
  KEEL_ASSERT(disk != nullptr && out != nullptr);
  if (options.snapshots_kept == 0) return Status::error("memory storage: snapshots_kept is 0");
  MemoryDisk& d = *disk;
  std::string torn_warning;
  uint64_t last_seq = 0;
  {
    std::lock_guard lock(d.mutex_);
    if (d.in_use_) return Status::error("memory storage: the disk is in use by another storage");
    if (d.log_.size() > d.whole_bytes_) {
      torn_warning = "memory storage: dropped a torn tail of " +
                     std::to_string(d.log_.size() - d.whole_bytes_) + " bytes after record " +
                     std::to_string(d.last_seq_);
      d.log_.resize(d.whole_bytes_);
    }
    last_seq = d.last_seq_;
    if (!d.snapshots_.empty()) last_seq = std::max(last_seq, d.snapshots_.rbegin()->first);
    d.in_use_ = true;
  }
  std::unique_ptr<MemoryStorage> s(new MemoryStorage(std::move(disk), std::move(options)));
  s->set_last_seq(last_seq);
  s->set_audit_chain(s->options_.audit_chain);
  std::optional<SnapshotData> newest = s->load_newest_snapshot();
  if (Status c = s->resume_chain(newest ? newest->seq : 0, newest ? newest->chain : std::nullopt);
      !c.is_ok()) {
    return c;  // the destructor frees the disk again
  }
  if (!torn_warning.empty() && s->options_.warn) s->options_.warn(torn_warning);
  *out = std::move(s);
  return Status::ok();
}

std::optional<SnapshotData> MemoryStorage::load_newest_snapshot() const {
  std::lock_guard lock(disk_->mutex_);
  if (disk_->snapshots_.empty()) return std::nullopt;
  const auto& [seq, snap] = *disk_->snapshots_.rbegin();
  return SnapshotData{seq, snap.timestamp, snap.state, {}, snap.chain};
}

Status MemoryStorage::replay(uint64_t from_seq, const ReplayFn& apply) const {
  const MemoryDisk& d = *disk_;
  std::lock_guard lock(d.mutex_);  // `apply` must not call into the disk
  from_seq = std::max<uint64_t>(from_seq, 1);
  if (from_seq < d.first_seq_ && from_seq <= last_seq()) {
    return Status::error("memory storage: records " + std::to_string(from_seq) + ".." +
                         std::to_string(d.first_seq_ - 1) + " were dropped by retention");
  }
  const std::string_view bytes = std::string_view(d.log_).substr(0, d.whole_bytes_);
  uint64_t expected = d.first_seq_;
  for (size_t off = 0; off < bytes.size(); ++expected) {
    const RecordCheck c = check_record(bytes, off);
    if (c.ok() && c.header.seq > last_seq()) break;  // durable, but not committed by this storage
    if (!c.ok() || c.header.seq != expected) {
      return Status::error("memory storage: record " + std::to_string(expected) + " is damaged");
    }
    if (c.header.seq >= from_seq) {
      if (Status s = apply({c.header.seq, c.header.type, c.header.timestamp, c.payload});
          !s.is_ok()) {
        return Status::error("replay of record " + std::to_string(c.header.seq) + ": " +
                             s.message());
      }
    }
    off += c.size();
  }
  return Status::ok();
}

// Storage::commit makes a failure here sticky.
Status MemoryStorage::write_batch(std::string_view batch, uint64_t first_seq, size_t records) {
  MemoryDisk& d = *disk_;
  std::unique_lock lock(d.mutex_);
  // Taken on entry: a fault armed while this commit is held applies to the next one.
  const MemoryDisk::Fault fault = std::exchange(d.fault_, MemoryDisk::Fault::none);
  if (d.hold_) {
    d.commit_held_ = true;
    d.changed_.notify_all();
    d.changed_.wait(lock, [&d] { return !d.hold_; });
    d.commit_held_ = false;
  }
  KEEL_ASSERT(first_seq == d.last_seq_ + 1);
  KEEL_ASSERT(d.log_.size() == d.whole_bytes_);  // a torn tail is dropped at open
  size_t kept = records;
  switch (fault) {
    case MemoryDisk::Fault::write:
    case MemoryDisk::Fault::fsync_lost:
      kept = 0;
      break;
    case MemoryDisk::Fault::torn:
      kept = std::min(d.torn_records_kept_, records);
      break;
    case MemoryDisk::Fault::none:
    case MemoryDisk::Fault::fsync_durable:
      break;
  }
  const size_t whole = prefix_bytes(batch, kept);
  d.log_.append(batch.substr(0, whole));
  d.whole_bytes_ += whole;
  d.last_seq_ += kept;
  if (fault == MemoryDisk::Fault::torn && kept < records) {
    const size_t next = prefix_bytes(batch.substr(whole), 1);
    d.log_.append(batch.substr(whole, next / 2));  // half a record: a torn tail
  }
  if (fault == MemoryDisk::Fault::none) {
    ++d.commits_;
    return Status::ok();
  }
  ++d.failed_commits_;
  switch (fault) {
    case MemoryDisk::Fault::write:
      return injected("write failure: nothing of the batch is durable");
    case MemoryDisk::Fault::fsync_lost:
      return injected("fsync failure: the batch is lost");
    case MemoryDisk::Fault::fsync_durable:
      return injected("fsync failure: the batch is durable all the same");
    default:
      return injected("torn write: " + std::to_string(kept) + " of " + std::to_string(records) +
                      " records durable, then part of one");
  }
}

SnapshotWriteFn MemoryStorage::snapshot_writer() const {
  return [disk = disk_, chain = chain_point()](uint64_t seq, Timestamp timestamp,
                                               std::string_view state) {
    std::lock_guard lock(disk->mutex_);
    if (std::exchange(disk->fail_snapshot_, false)) return injected("snapshot write failure");
    disk->snapshots_[seq] = MemoryDisk::Snapshot{timestamp, std::string(state),
                                                 chain && chain->seq == seq ? chain : std::nullopt};
    return Status::ok();
  };
}

Status MemoryStorage::write_snapshot(uint64_t seq, Timestamp timestamp, std::string_view state) {
  KEEL_ASSERT(seq <= last_seq());
  if (!failure().empty()) return Status::error(failure());
  if (Status s = snapshot_writer()(seq, timestamp, state); !s.is_ok()) return s;
  remove_unneeded();
  return Status::ok();
}

// Keeps the newest snapshots_kept snapshots and the records after the oldest of them (every
// record while fewer exist).
uint64_t MemoryStorage::remove_unneeded() {
  MemoryDisk& d = *disk_;
  std::lock_guard lock(d.mutex_);
  if (d.snapshots_.size() < options_.snapshots_kept) return 0;
  auto oldest_kept = d.snapshots_.rbegin();
  std::advance(oldest_kept, options_.snapshots_kept - 1);
  const uint64_t keep_after = oldest_kept->first;
  d.snapshots_.erase(d.snapshots_.begin(), d.snapshots_.find(keep_after));
  if (keep_after < d.first_seq_ || d.last_seq_ < d.first_seq_) return keep_after;
  const uint64_t dropped = std::min(keep_after, d.last_seq_) - d.first_seq_ + 1;
  const size_t bytes = prefix_bytes(std::string_view(d.log_).substr(0, d.whole_bytes_), dropped);
  d.log_.erase(0, bytes);
  d.whole_bytes_ -= bytes;
  d.first_seq_ += dropped;
  return keep_after;
}

std::string MemoryStorage::describe() const { return "memory storage"; }

}  // namespace keel::journal
