#include "journal/journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <utility>

#include "core/assert.h"
#include "core/crc32c.h"
#include "journal/file_io.h"
#include "journal/format.h"

namespace keel::journal {
namespace fs = std::filesystem;

namespace {

struct Segment {
  fs::path path;
  uint64_t first_seq = 0;  // from the file name
  uint64_t last_seq = 0;   // 0 while the segment holds no record
  uint64_t bytes = 0;      // bytes of valid records (a torn tail is not counted)

  [[nodiscard]] uint64_t next_seq() const { return last_seq == 0 ? first_seq : last_seq + 1; }
};

struct NamedFile {
  uint64_t seq = 0;
  fs::path path;
};

struct DirListing {
  std::vector<NamedFile> segments;   // ascending seq
  std::vector<NamedFile> snapshots;  // descending seq (newest first)
  std::vector<fs::path> tmp_files;
};

std::string range_text(uint64_t from, uint64_t to) {
  return from == to ? std::to_string(from) : std::to_string(from) + ".." + std::to_string(to);
}

// Sorts the journal's files by kind; warns about look-alike names only when `warn_unknown`.
Status list_dir(const JournalOptions& options, bool warn_unknown, DirListing* out) {
  std::error_code ec;
  for (fs::directory_iterator it(options.dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (auto seq = parse_file_name(name, kSegmentPrefix, kSegmentSuffix)) {
      out->segments.push_back({*seq, it->path()});
    } else if (auto snap = parse_file_name(name, kSnapshotPrefix, kSnapshotSuffix)) {
      out->snapshots.push_back({*snap, it->path()});
    } else if (name.starts_with(kSnapshotPrefix) && name.ends_with(kTmpSuffix)) {
      out->tmp_files.push_back(it->path());
    } else if ((name.starts_with(kSegmentPrefix) || name.starts_with(kSnapshotPrefix)) &&
               warn_unknown && options.warn) {
      options.warn("journal: ignoring " + it->path().string() + ": not a journal file name");
    }
  }
  if (ec) {
    return Status::error("list journal directory " + options.dir.string() + ": " + ec.message());
  }
  auto by_seq = [](const NamedFile& a, const NamedFile& b) { return a.seq < b.seq; };
  std::sort(out->segments.begin(), out->segments.end(), by_seq);
  std::sort(out->snapshots.rbegin(), out->snapshots.rend(), by_seq);
  return Status::ok();
}

// Opens a snapshot and checks its header against its name and its size. Leaves the fd open.
bool open_snapshot(const NamedFile& file, UniqueFd* fd, SnapshotHeader* header,
                   std::string* reason) {
  Status s = open_file(file.path, O_RDONLY, fd);
  struct stat st {};
  if (s.is_ok() && ::fstat(fd->get(), &st) != 0) {
    s = Status::error(errno_message("stat", file.path, errno));
  }
  std::string bytes;
  if (s.is_ok()) {
    const size_t n = std::min<uint64_t>(kSnapshotHeaderBytes, static_cast<uint64_t>(st.st_size));
    s = pread_exact(fd->get(), n, 0, file.path, &bytes);
  }
  if (!s.is_ok()) {
    *reason = s.message();
    return false;
  }
  auto h = decode_snapshot_header(bytes, reason);
  if (!h) return false;
  if (h->seq != file.seq) {
    *reason = "header says seq " + std::to_string(h->seq) + ", file name says " +
              std::to_string(file.seq);
  } else if (static_cast<uint64_t>(st.st_size) != h->header_bytes + h->payload_len) {
    *reason = "file is " + std::to_string(st.st_size) + " bytes, header says " +
              std::to_string(h->header_bytes + h->payload_len);
  } else {
    *header = *h;
    return true;
  }
  return false;
}

bool snapshot_header_ok(const NamedFile& file, SnapshotHeader* header = nullptr) {
  UniqueFd fd;
  SnapshotHeader h;
  std::string reason;
  const bool ok = open_snapshot(file, &fd, &h, &reason);
  if (ok && header != nullptr) *header = h;
  return ok;
}

bool load_snapshot(const NamedFile& file, SnapshotData* out, std::string* reason) {
  UniqueFd fd;
  SnapshotHeader h;
  if (!open_snapshot(file, &fd, &h, reason)) return false;
  std::string state;
  if (Status s = pread_exact(fd.get(), h.payload_len, h.header_bytes, file.path, &state);
      !s.is_ok()) {
    *reason = s.message();
    return false;
  }
  if (crc32c(state) != h.payload_crc) {
    *reason = "snapshot payload checksum mismatch";
    return false;
  }
  *out = SnapshotData{h.seq, h.timestamp, std::move(state), file.path, h.chain};
  return true;
}

// Where the scan of one segment stopped.
struct SegmentScan {
  uint64_t records = 0;
  std::optional<size_t> torn_at;  // offset of a torn tail, if any
  std::string torn_reason;
  uint64_t file_bytes = 0;
};

std::string corruption(const fs::path& path, size_t offset, std::string_view what) {
  return path.string() + " offset " + std::to_string(offset) + ": " + std::string(what);
}

std::string seq_problem(uint64_t seq, uint64_t expected) {
  if (seq < expected) {
    return "repeated sequence number " + std::to_string(seq) + " (expected " +
           std::to_string(expected) + ")";
  }
  return "sequence gap: record has seq " + std::to_string(seq) + ", expected " +
         std::to_string(expected) + " (records " + range_text(expected, seq - 1) + " missing)";
}

// Checks every record of `seg` (whose first seq is already checked), advancing seg->last_seq and
// seg->bytes. An invalid record is a torn tail only in the last segment with nothing valid after.
Status scan_segment(Segment* seg, bool is_last, SegmentScan* scan) {
  MappedFile map;
  if (Status s = MappedFile::open(seg->path, &map); !s.is_ok()) return s;
  const std::string_view bytes = map.bytes();
  scan->file_bytes = bytes.size();
  size_t off = 0;
  while (off < bytes.size()) {
    RecordCheck c = check_record(bytes, off);
    if (c.ok() && c.header.seq != seg->next_seq()) {
      // Checksums pass, so this is not a torn write: a wrong seq is always corruption.
      return Status::error(
          corruption(seg->path, off,
                     off == 0 ? "first record has seq " + std::to_string(c.header.seq) +
                                    " but the file name says " + std::to_string(seg->first_seq)
                              : seq_problem(c.header.seq, seg->next_seq())));
    }
    if (!c.ok()) {
      if (!is_last) {
        return Status::error(corruption(seg->path, off, c.reason) +
                             " (not the last segment, so not a torn write)");
      }
      if (auto next = find_plausible_record(bytes, off)) {
        return Status::error(corruption(seg->path, off, c.reason) + "; a valid record follows " +
                             "at offset " + std::to_string(*next) + ", so not a torn write");
      }
      scan->torn_at = off;
      scan->torn_reason = std::move(c.reason);
      break;
    }
    seg->last_seq = c.header.seq;
    ++scan->records;
    off += c.size();
  }
  seg->bytes = off;
  return Status::ok();
}

Status truncate_file(const fs::path& path, uint64_t size) {
  UniqueFd fd;
  if (Status s = open_file(path, O_WRONLY, &fd); !s.is_ok()) return s;
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return Status::error(errno_message("truncate", path, errno));
  }
  return fdatasync_file(fd.get(), path);
}

}  // namespace

struct Journal::Impl {
  JournalOptions options;
  UniqueFd dir_lock;  // the directory, flock()ed while a writer has it open
  std::vector<Segment> segments;
  UniqueFd active_fd;  // segments.back(), open for writing (writers only)

  void warn(const std::string& line) const {
    if (options.warn) options.warn(line);
  }

  Status prepare_dir();
  Status scan_segments(const DirListing& listing, OpenReport* report);
  Status handle_torn_tail(const Segment& seg, const SegmentScan& scan, OpenReport* report);
  Status check_snapshots(const DirListing& listing, uint64_t* last_seq,
                         std::optional<SnapshotHeader>* newest) const;
  Status start_segment(uint64_t first_seq);
  static Status write_snapshot_file(const fs::path& tmp, uint64_t seq, Timestamp timestamp,
                                    std::string_view state, const std::optional<ChainPoint>& chain);
  uint64_t apply_retention();
  Status archive(const fs::path& segment);
  Status replay_segment(const Segment& seg, uint64_t from_seq, const ReplayFn& apply) const;
};

Status Journal::Impl::prepare_dir() {
  std::error_code ec;
  if (!options.read_only) fs::create_directories(options.dir, ec);
  if (ec) {
    return Status::error("create journal directory " + options.dir.string() + ": " + ec.message());
  }
  if (!fs::is_directory(options.dir, ec)) {
    return Status::error("journal directory " + options.dir.string() + " does not exist");
  }
  if (options.read_only) return Status::ok();
  if (Status s = open_file(options.dir, O_RDONLY | O_DIRECTORY, &dir_lock); !s.is_ok()) return s;
  if (::flock(dir_lock.get(), LOCK_EX | LOCK_NB) != 0) {
    return Status::error(errno == EWOULDBLOCK ? "journal directory " + options.dir.string() +
                                                    " is in use by another process"
                                              : errno_message("lock", options.dir, errno));
  }
  return Status::ok();
}

Status Journal::Impl::scan_segments(const DirListing& listing, OpenReport* report) {
  for (size_t i = 0; i < listing.segments.size(); ++i) {
    const NamedFile& file = listing.segments[i];
    const bool is_last = i + 1 == listing.segments.size();
    if (file.seq == 0) return Status::error(file.path.string() + ": sequence numbers start at 1");
    if (!segments.empty()) {
      const Segment& prev = segments.back();
      if (prev.last_seq == 0) {
        return Status::error(prev.path.string() + " is empty but is not the last segment");
      }
      if (file.seq != prev.next_seq()) {
        return Status::error(file.seq > prev.next_seq()
                                 ? "records " + range_text(prev.next_seq(), file.seq - 1) +
                                       " are missing: " + prev.path.string() + " ends at seq " +
                                       std::to_string(prev.last_seq) + ", " + file.path.string() +
                                       " starts at seq " + std::to_string(file.seq)
                                 : file.path.string() + " starts at seq " +
                                       std::to_string(file.seq) + ", inside " + prev.path.string() +
                                       " (ends at seq " + std::to_string(prev.last_seq) + ")");
      }
    }
    Segment seg{file.path, file.seq, 0, 0};
    SegmentScan scan;
    if (Status s = scan_segment(&seg, is_last, &scan); !s.is_ok()) return s;
    if (scan.torn_at) {
      if (Status s = handle_torn_tail(seg, scan, report); !s.is_ok()) return s;
    }
    report->records += scan.records;
    segments.push_back(std::move(seg));
  }
  report->segments = segments.size();
  return Status::ok();
}

Status Journal::Impl::handle_torn_tail(const Segment& seg, const SegmentScan& scan,
                                       OpenReport* report) {
  report->torn_tail_bytes = scan.file_bytes - seg.bytes;
  report->torn_tail_at = seg.path.string() + " offset " + std::to_string(seg.bytes);
  if (!options.read_only) {
    if (Status s = truncate_file(seg.path, seg.bytes); !s.is_ok()) return s;
  }
  warn("journal: torn tail in " + report->torn_tail_at + " (" + scan.torn_reason +
       "): " + (options.read_only ? "would drop " : "dropped ") +
       std::to_string(report->torn_tail_bytes) + " bytes of an unfinished write");
  return Status::ok();
}

// Sets *last_seq from the segments and the newest snapshot whose header is sound. A snapshot past
// the end of a non-empty journal means acknowledged records are missing: refuse.
Status Journal::Impl::check_snapshots(const DirListing& listing, uint64_t* last_seq,
                                      std::optional<SnapshotHeader>* newest) const {
  const uint64_t journal_next = segments.empty() ? 1 : segments.back().next_seq();
  *last_seq = journal_next - 1;
  for (const NamedFile& snap : listing.snapshots) {
    SnapshotHeader header;
    if (!snapshot_header_ok(snap, &header)) continue;  // load_newest_snapshot reports why
    if (!segments.empty() && snap.seq >= journal_next) {
      return Status::error(snap.path.string() + " is at seq " + std::to_string(snap.seq) +
                           " but the journal ends at seq " + std::to_string(journal_next - 1) +
                           ": records " + range_text(journal_next, snap.seq) + " are missing");
    }
    *last_seq = std::max(*last_seq, snap.seq);
    *newest = header;
    break;
  }
  return Status::ok();
}

Status Journal::open(JournalOptions options, std::unique_ptr<Journal>* out, OpenReport* report) {
  KEEL_ASSERT(out != nullptr);
  OpenReport local_report;
  if (report == nullptr) report = &local_report;
  *report = OpenReport{};
  if (options.dir.empty()) return Status::error("journal directory not set");
  if (options.snapshots_kept == 0) return Status::error("journal: snapshots_kept must be >= 1");
  if (options.segment_bytes_max == 0) return Status::error("journal: segment_bytes_max is 0");

  std::unique_ptr<Journal> j(new Journal());
  Impl& impl = *j->impl_;
  impl.options = std::move(options);
  DirListing listing;
  Status s = impl.prepare_dir();
  if (s.is_ok()) s = list_dir(impl.options, /*warn_unknown=*/true, &listing);
  if (s.is_ok()) s = impl.scan_segments(listing, report);
  uint64_t last_seq = 0;
  std::optional<SnapshotHeader> newest;
  if (s.is_ok()) s = impl.check_snapshots(listing, &last_seq, &newest);
  if (s.is_ok() && !impl.options.read_only && !impl.segments.empty()) {
    s = open_file(impl.segments.back().path, O_WRONLY, &impl.active_fd);
  }
  if (s.is_ok()) {
    j->set_last_seq(last_seq);
    j->set_read_only(impl.options.read_only);
    j->set_audit_chain(impl.options.audit_chain);
    if (!impl.options.read_only) {
      s = j->resume_chain(newest ? newest->seq : 0,
                          newest ? newest->chain : std::optional<ChainPoint>());
    }
  }
  if (!s.is_ok()) {
    return Status::error(s.message() + " [journal start-up refused; see docs/journal.md]");
  }
  for (const Segment& seg : impl.segments) {
    if (seg.last_seq == 0) continue;
    if (report->first_seq == 0) report->first_seq = seg.first_seq;
    report->last_seq = seg.last_seq;
  }
  *out = std::move(j);
  return Status::ok();
}

Journal::Journal() : impl_(std::make_unique<Impl>()) {}
Journal::~Journal() = default;

std::optional<SnapshotData> Journal::load_newest_snapshot() const {
  DirListing listing;
  if (Status s = list_dir(impl_->options, false, &listing); !s.is_ok()) {
    impl_->warn("journal: no snapshot loaded: " + s.message());
    return std::nullopt;
  }
  for (const NamedFile& file : listing.snapshots) {
    SnapshotData data;
    std::string reason;
    if (load_snapshot(file, &data, &reason)) return data;
    impl_->warn("journal: skipping snapshot " + file.path.string() + ": " + reason);
  }
  return std::nullopt;
}

// Re-checks every record (the files may have changed since open) while handing them to `apply`.
Status Journal::Impl::replay_segment(const Segment& seg, uint64_t from_seq,
                                     const ReplayFn& apply) const {
  MappedFile map;
  if (Status s = MappedFile::open(seg.path, &map); !s.is_ok()) return s;
  if (map.bytes().size() < seg.bytes) {
    return Status::error(seg.path.string() + " shrank to " + std::to_string(map.bytes().size()) +
                         " bytes since open (" + std::to_string(seg.bytes) + " expected)");
  }
  const std::string_view bytes = map.bytes().substr(0, seg.bytes);
  uint64_t expected = seg.first_seq;
  for (size_t off = 0; off < bytes.size();) {
    RecordCheck c = check_record(bytes, off);
    if (c.ok() && c.header.seq != expected) c.reason = seq_problem(c.header.seq, expected);
    if (!c.ok()) return Status::error(corruption(seg.path, off, c.reason));
    if (c.header.seq >= from_seq) {
      const RecordView view{c.header.seq, c.header.type, c.header.timestamp, c.payload};
      if (Status s = apply(view); !s.is_ok()) {
        return Status::error("replay of record " + std::to_string(c.header.seq) + ": " +
                             s.message());
      }
    }
    ++expected;
    off += c.size();
  }
  return Status::ok();
}

Status Journal::replay(uint64_t from_seq, const ReplayFn& apply) const {
  const Impl& j = *impl_;
  const uint64_t last_seq = this->last_seq();
  from_seq = std::max<uint64_t>(from_seq, 1);
  const uint64_t first_available = j.segments.empty() ? last_seq + 1 : j.segments[0].first_seq;
  if (from_seq < first_available && from_seq <= last_seq) {
    return Status::error("journal records " +
                         range_text(from_seq, std::min(first_available - 1, last_seq)) +
                         " are not in " + j.options.dir.string() + " (first available: " +
                         std::to_string(first_available) + "); segments were deleted or lost");
  }
  for (const Segment& seg : j.segments) {
    if (seg.last_seq < from_seq) continue;  // also skips empty segments
    if (Status s = j.replay_segment(seg, from_seq, apply); !s.is_ok()) return s;
  }
  return Status::ok();
}

const fs::path& Journal::dir() const { return impl_->options.dir; }
std::string Journal::describe() const { return "journal in " + impl_->options.dir.string(); }

Status Journal::Impl::start_segment(uint64_t first_seq) {
  const fs::path path = options.dir / segment_file_name(first_seq);
  UniqueFd fd;
  if (Status s = open_file(path, O_WRONLY | O_CREAT | O_EXCL, &fd); !s.is_ok()) return s;
  if (Status s = fsync_dir(options.dir); !s.is_ok()) return s;
  active_fd = std::move(fd);
  segments.push_back(Segment{path, first_seq, 0, 0});
  return Status::ok();
}

// Storage::commit makes a failure here sticky.
Status Journal::write_batch(std::string_view batch, uint64_t first_seq, size_t records) {
  Impl& j = *impl_;
  const Segment* seg = j.segments.empty() ? nullptr : &j.segments.back();
  if (seg == nullptr || seg->next_seq() != first_seq ||
      (seg->bytes > 0 && seg->bytes + batch.size() > j.options.segment_bytes_max)) {
    if (Status s = j.start_segment(first_seq); !s.is_ok()) return s;
  }
  Segment& active = j.segments.back();
  Status s = pwrite_all(j.active_fd.get(), batch, active.bytes, active.path);
  if (s.is_ok()) s = fdatasync_file(j.active_fd.get(), active.path);
  if (!s.is_ok()) return s;
  active.bytes += batch.size();
  active.last_seq = first_seq + records - 1;
  return Status::ok();
}

Status Journal::Impl::write_snapshot_file(const fs::path& tmp, uint64_t seq, Timestamp timestamp,
                                          std::string_view state,
                                          const std::optional<ChainPoint>& chain) {
  UniqueFd fd;
  Status s = open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC, &fd);
  const std::string header = encode_snapshot_header(seq, timestamp, state, chain);
  if (s.is_ok()) s = pwrite_all(fd.get(), header, 0, tmp);
  if (s.is_ok()) s = pwrite_all(fd.get(), state, header.size(), tmp);
  if (s.is_ok()) s = fdatasync_file(fd.get(), tmp);
  if (!s.is_ok()) {
    std::error_code ec;
    fs::remove(tmp, ec);
  }
  return s;
}

Status Journal::write_snapshot(uint64_t seq, Timestamp timestamp, std::string_view state) {
  Impl& j = *impl_;
  KEEL_ASSERT(!j.options.read_only);
  KEEL_ASSERT(seq <= last_seq());
  if (!failure().empty()) return Status::error(failure());
  const fs::path final_path = j.options.dir / snapshot_file_name(seq);
  fs::path tmp = final_path;
  tmp += kTmpSuffix;
  // A failure before the rename leaves the journal as it was: report it, keep writing.
  if (Status s = j.write_snapshot_file(tmp, seq, timestamp, state, chain_at(seq)); !s.is_ok()) {
    return s;
  }
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    return fail(Status::error(errno_message("rename to " + final_path.string(), tmp, errno)));
  }
  if (Status s = fsync_dir(j.options.dir); !s.is_ok()) return fail(std::move(s));
  (void)j.apply_retention();
  return Status::ok();
}

Status Journal::write_snapshot_file(const fs::path& dir, uint64_t seq, Timestamp timestamp,
                                    std::string_view state,
                                    const std::optional<ChainPoint>& chain) {
  const fs::path final_path = dir / snapshot_file_name(seq);
  fs::path tmp = final_path;
  tmp += kTmpSuffix;
  if (Status s = Impl::write_snapshot_file(tmp, seq, timestamp, state, chain); !s.is_ok()) {
    return s;
  }
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    return Status::error(errno_message("rename to " + final_path.string(), tmp, errno));
  }
  return fsync_dir(dir);
}

std::vector<ChainAnchor> Journal::snapshot_anchors() const {
  std::vector<ChainAnchor> out;
  DirListing listing;
  if (!list_dir(impl_->options, false, &listing).is_ok()) return out;
  for (const NamedFile& file : listing.snapshots) {
    SnapshotHeader h;
    if (snapshot_header_ok(file, &h) && h.chain) {
      out.push_back({*h.chain, file.path.filename().string()});
    }
  }
  return out;
}

SnapshotWriteFn Journal::snapshot_writer() const {
  return [dir = impl_->options.dir, chain = chain_point()](uint64_t seq, Timestamp timestamp,
                                                           std::string_view state) {
    return write_snapshot_file(dir, seq, timestamp, state,
                               chain && chain->seq == seq ? chain : std::nullopt);
  };
}

uint64_t Journal::remove_unneeded() {
  KEEL_ASSERT(!impl_->options.read_only);
  return impl_->apply_retention();
}

// Keeps the newest `snapshots_kept` snapshots with a sound header, and the segments holding any
// record after the oldest of them (all segments while fewer snapshots exist, so a bad newest
// snapshot always has a fallback). Failures to delete are warned about, never fatal.
uint64_t Journal::Impl::apply_retention() {
  DirListing listing;
  if (Status s = list_dir(options, false, &listing); !s.is_ok()) {
    warn("journal: " + s.message());
    return 0;
  }
  std::vector<uint64_t> kept;
  for (const NamedFile& snap : listing.snapshots) {
    if (kept.size() < options.snapshots_kept && snapshot_header_ok(snap)) kept.push_back(snap.seq);
  }
  // Until snapshots_kept snapshots exist, the oldest kept "snapshot" is the empty state at 0.
  const uint64_t oldest_kept = kept.size() < options.snapshots_kept ? 0 : kept.back();
  std::vector<fs::path> doomed = listing.tmp_files;
  for (const NamedFile& snap : listing.snapshots) {
    if (snap.seq < oldest_kept) doomed.push_back(snap.path);
  }
  std::vector<fs::path> archived;
  while (segments.size() > 1 && segments.front().last_seq != 0 &&
         segments.front().last_seq <= oldest_kept) {
    const fs::path path = segments.front().path;
    if (options.archive_dir.empty()) {
      doomed.push_back(path);
    } else if (Status s = archive(path); !s.is_ok()) {
      // Kept in place (replay still finds it); archived at the next retention.
      warn("journal: " + s.message());
      break;
    } else {
      archived.push_back(path);
    }
    segments.erase(segments.begin());
  }
  for (const fs::path& path : doomed) {
    std::error_code ec;
    if (!fs::remove(path, ec) && ec)
      warn("journal: cannot delete " + path.string() + ": " + ec.message());
  }
  if (!archived.empty()) {
    if (Status s = fsync_dir(options.archive_dir); !s.is_ok()) warn("journal: " + s.message());
    if (Status s = fsync_dir(options.dir); !s.is_ok()) warn("journal: " + s.message());
  }
  return oldest_kept;
}

// Moves a segment past retention into options.archive_dir: a rename, or (across file systems)
// a synced copy then the removal of the original. On failure the segment stays where it is.
Status Journal::Impl::archive(const fs::path& segment) {
  std::error_code ec;
  fs::create_directories(options.archive_dir, ec);
  if (ec) return Status::error("create " + options.archive_dir.string() + ": " + ec.message());
  const fs::path target = options.archive_dir / segment.filename();
  fs::rename(segment, target, ec);
  if (!ec) return Status::ok();
  if (ec != std::errc::cross_device_link) {
    return Status::error("archive " + segment.string() + ": " + ec.message());
  }
  const fs::path tmp = target.string() + ".tmp";
  fs::copy_file(segment, tmp, fs::copy_options::overwrite_existing, ec);
  if (ec) return Status::error("archive " + segment.string() + ": " + ec.message());
  UniqueFd fd;
  if (Status s = open_file(tmp, O_RDONLY, &fd); !s.is_ok()) return s;
  if (Status s = fdatasync_file(fd.get(), tmp); !s.is_ok()) return s;
  fs::rename(tmp, target, ec);
  if (ec) return Status::error("archive " + segment.string() + ": " + ec.message());
  if (Status s = fsync_dir(options.archive_dir); !s.is_ok()) return s;
  fs::remove(segment, ec);
  if (ec) return Status::error("archive " + segment.string() + ": " + ec.message());
  return Status::ok();
}

}  // namespace keel::journal
