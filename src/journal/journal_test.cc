#include "journal/journal.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstring>

#include "journal/format.h"
#include "journal/journal_test_util.h"
#include "testing/file_size_limit.h"

namespace keel::journal::testing {
namespace {

constexpr uint64_t kSmallSegment = 256;

TEST(Journal, EmptyDirectoryStartsAtSeqOne) {
  TempDir tmp;
  std::vector<std::string> warnings;
  const fs::path dir = tmp.path() / "data" / "journal";
  OpenReport report;
  auto j = open_ok(options_for(dir, kSmallSegment, &warnings), &report);
  ASSERT_NE(j, nullptr);
  EXPECT_TRUE(fs::is_directory(dir));
  EXPECT_EQ(j->next_seq(), 1u);
  EXPECT_EQ(j->last_seq(), 0u);
  EXPECT_EQ(report.records, 0u);
  EXPECT_EQ(report.first_seq, 0u);
  EXPECT_FALSE(j->load_newest_snapshot().has_value());
  EXPECT_TRUE(replay_ok(*j, 1).empty());
  EXPECT_TRUE(j->commit().is_ok());  // nothing staged: no segment is created
  EXPECT_TRUE(files_ending(dir, ".seg").empty());
  EXPECT_TRUE(warnings.empty());
}

TEST(Journal, RoundTripAcrossSegments) {
  TempDir tmp;
  std::vector<std::string> warnings;
  const auto options = options_for(tmp.path(), kSmallSegment, &warnings);
  {
    auto j = open_ok(options);
    for (size_t batch = 1; j->next_seq() <= 60; batch = batch % 5 + 1) {
      ASSERT_TRUE(append_batch(*j, batch).is_ok());
    }
    EXPECT_EQ(j->last_seq(), 60u);
    EXPECT_EQ(replay_ok(*j, 1), expected_range(1, 60));  // before reopening too
  }
  const auto segments = files_ending(tmp.path(), ".seg");
  ASSERT_GE(segments.size(), 4u);
  EXPECT_EQ(segments[0].filename(), "journal-00000000000000000001.seg");
  for (const auto& seg : segments) {
    const std::string bytes = read_bytes(seg);
    const uint64_t first = std::stoull(seg.filename().string().substr(8, 20));
    uint64_t seq_in_header = 0;
    std::memcpy(&seq_in_header, bytes.data() + 16, 8);
    EXPECT_EQ(seq_in_header, first) << seg;  // each name carries its first record's seq
  }
  OpenReport report;
  auto j = open_ok(options, &report);
  EXPECT_EQ(report.segments, segments.size());
  EXPECT_EQ(report.records, 60u);
  EXPECT_EQ(report.first_seq, 1u);
  EXPECT_EQ(report.last_seq, 60u);
  EXPECT_EQ(report.torn_tail_bytes, 0u);
  EXPECT_EQ(replay_ok(*j, 1), expected_range(1, 60));
  EXPECT_EQ(replay_ok(*j, 23), expected_range(23, 60));
  EXPECT_EQ(replay_ok(*j, 60), expected_range(60, 60));
  EXPECT_TRUE(replay_ok(*j, 61).empty());
  EXPECT_TRUE(warnings.empty());
}

TEST(Journal, SequenceContinuesAfterReopen) {
  TempDir tmp;
  std::vector<std::string> warnings;
  const auto options = options_for(tmp.path(), kSmallSegment, &warnings);
  {
    auto j = open_ok(options);
    ASSERT_TRUE(append_batch(*j, 3).is_ok());
  }
  {
    auto j = open_ok(options);
    EXPECT_EQ(j->last_seq(), 3u);
    EXPECT_EQ(j->next_seq(), 4u);
    ASSERT_TRUE(append_batch(*j, 2).is_ok());
    EXPECT_EQ(j->last_seq(), 5u);
  }
  auto j = open_ok(options);
  EXPECT_EQ(j->next_seq(), 6u);
  EXPECT_EQ(replay_ok(*j, 1), expected_range(1, 5));
}

TEST(Journal, StagingReusesOneBufferAndCountsRecords) {
  TempDir tmp;
  std::vector<std::string> warnings;
  auto j = open_ok(options_for(tmp.path(), 1 << 20, &warnings));
  std::string& buf = j->begin_record(1, 10);
  EXPECT_EQ(j->next_seq(), 2u);  // the open record already has seq 1
  buf.append("hello");
  j->end_record();
  EXPECT_EQ(j->staged_records(), 1u);
  EXPECT_EQ(j->staged_bytes(), kRecordHeaderBytes + 5);
  EXPECT_EQ(j->last_seq(), 0u);  // staged is not durable
  ASSERT_TRUE(j->commit().is_ok());
  EXPECT_EQ(j->staged_records(), 0u);
  EXPECT_EQ(j->staged_bytes(), 0u);

  // Once warmed, batches of the same size reuse the same memory.
  ASSERT_TRUE(append_batch(*j, 20).is_ok());
  const char* warmed = j->begin_record(1, 11).data();
  j->end_record();
  ASSERT_TRUE(j->commit().is_ok());
  for (int round = 0; round < 3; ++round) {
    std::string& again = j->begin_record(2, 12);
    EXPECT_EQ(&again, &buf);
    EXPECT_EQ(again.data(), warmed);
    again.append(100, 'x');
    j->end_record();
    ASSERT_TRUE(j->commit().is_ok());
  }
}

TEST(Journal, BatchLargerThanSegmentMaxGetsItsOwnSegment) {
  TempDir tmp;
  std::vector<std::string> warnings;
  const auto options = options_for(tmp.path(), kSmallSegment, &warnings);
  {
    auto j = open_ok(options);
    ASSERT_TRUE(append_batch(*j, 2).is_ok());   // seqs 1-2
    ASSERT_TRUE(append_batch(*j, 20).is_ok());  // seqs 3-22: far above 256 bytes
    ASSERT_TRUE(append_batch(*j, 1).is_ok());   // seq 23
  }
  const auto segments = files_ending(tmp.path(), ".seg");
  ASSERT_EQ(segments.size(), 3u);
  EXPECT_EQ(segments[1].filename(), "journal-00000000000000000003.seg");
  EXPECT_GT(fs::file_size(segments[1]), kSmallSegment);
  EXPECT_EQ(segments[2].filename(), "journal-00000000000000000023.seg");
  auto j = open_ok(options);
  EXPECT_EQ(replay_ok(*j, 1), expected_range(1, 23));
}

TEST(Journal, ReplayStopsOnApplyError) {
  TempDir tmp;
  std::vector<std::string> warnings;
  auto j = open_ok(options_for(tmp.path(), kSmallSegment, &warnings));
  ASSERT_TRUE(append_batch(*j, 5).is_ok());
  int calls = 0;
  Status s = j->replay(1, [&](const RecordView& r) {
    ++calls;
    return r.seq == 3 ? Status::error("ledger says no") : Status::ok();
  });
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("ledger says no"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("record 3"), std::string::npos) << s.message();
  EXPECT_EQ(calls, 3);
}

TEST(Journal, SnapshotWriteAndLoad) {
  TempDir tmp;
  std::vector<std::string> warnings;
  auto j = open_ok(options_for(tmp.path(), kSmallSegment, &warnings));
  ASSERT_TRUE(append_batch(*j, 7).is_ok());
  ASSERT_TRUE(j->write_snapshot(5, 555, "state after five").is_ok());
  EXPECT_TRUE(files_ending(tmp.path(), ".tmp").empty());
  auto snap = j->load_newest_snapshot();
  ASSERT_TRUE(snap.has_value());
  EXPECT_EQ(snap->seq, 5u);
  EXPECT_EQ(snap->timestamp, 555);
  EXPECT_EQ(snap->state, "state after five");
  EXPECT_EQ(snap->path, tmp.path() / "snapshot-00000000000000000005.snap");
  EXPECT_EQ(replay_ok(*j, snap->seq + 1), expected_range(6, 7));
  ASSERT_TRUE(j->write_snapshot(7, 777, std::string(100000, 's')).is_ok());
  EXPECT_EQ(j->load_newest_snapshot()->state, std::string(100000, 's'));
  EXPECT_TRUE(warnings.empty());
}

TEST(Journal, SnapshotRetentionDeletesOldSnapshotsSegmentsAndTmpFiles) {
  TempDir tmp;
  std::vector<std::string> warnings;
  const auto options = options_for(tmp.path(), kSmallSegment, &warnings);  // snapshots_kept 2
  auto j = open_ok(options);
  write_bytes(tmp.path() / "snapshot-00000000000000000003.snap.tmp", "left by a crash");
  for (uint64_t snap_seq : {10, 20, 30}) {
    while (j->last_seq() < snap_seq) ASSERT_TRUE(append_batch(*j, 1).is_ok());
    ASSERT_TRUE(j->write_snapshot(snap_seq, 0, std::to_string(snap_seq)).is_ok());
    if (snap_seq == 10) {  // one snapshot of two: the whole journal stays as its fallback
      EXPECT_TRUE(fs::exists(tmp.path() / "journal-00000000000000000001.seg"));
    }
  }
  ASSERT_TRUE(append_batch(*j, 2).is_ok());  // 31-32
  const auto snaps = files_ending(tmp.path(), ".snap");
  ASSERT_EQ(snaps.size(), 2u);
  EXPECT_EQ(snaps[0].filename(), "snapshot-00000000000000000020.snap");
  EXPECT_TRUE(files_ending(tmp.path(), ".tmp").empty());
  // Every remaining segment holds a record after seq 20, the oldest kept snapshot; the segment
  // holding 21 survives, everything before it is gone.
  Status s = Status::ok();
  const auto all = replay_from(*j, 1, &s);
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("records 1.."), std::string::npos) << s.message();
  EXPECT_EQ(replay_ok(*j, 21), expected_range(21, 32));
  const auto segments = files_ending(tmp.path(), ".seg");
  const uint64_t first_kept = std::stoull(segments[0].filename().string().substr(8, 20));
  EXPECT_GT(first_kept, 1u);
  EXPECT_LE(first_kept, 21u);
  j.reset();

  OpenReport report;
  j = open_ok(options, &report);
  EXPECT_EQ(report.first_seq, first_kept);
  EXPECT_EQ(j->next_seq(), 33u);
  EXPECT_EQ(j->load_newest_snapshot()->state, "30");
  EXPECT_EQ(replay_ok(*j, first_kept), expected_range(first_kept, 32));
  EXPECT_TRUE(warnings.empty());
}

// With an archive directory, segments past retention move there instead of being deleted; the
// archive and the live directory together hold every record since 1, as a journal of its own.
TEST(Journal, RetentionArchivesSegmentsWhenAnArchiveIsSet) {
  TempDir tmp;
  std::vector<std::string> warnings;
  auto options = options_for(tmp.path() / "data", kSmallSegment, &warnings);
  options.archive_dir = tmp.path() / "archive";
  auto j = open_ok(options);
  for (uint64_t snap_seq : {10, 20, 30}) {
    while (j->last_seq() < snap_seq) ASSERT_TRUE(append_batch(*j, 1).is_ok());
    ASSERT_TRUE(j->write_snapshot(snap_seq, 0, std::to_string(snap_seq)).is_ok());
  }
  j.reset();
  const auto archived = files_ending(options.archive_dir, ".seg");
  ASSERT_FALSE(archived.empty());
  EXPECT_EQ(archived[0].filename(), "journal-00000000000000000001.seg");
  EXPECT_FALSE(fs::exists(options.dir / "journal-00000000000000000001.seg"));
  EXPECT_TRUE(files_ending(options.archive_dir, ".tmp").empty());
  // Both directories' segments together replay from record 1.
  const fs::path joined = tmp.path() / "joined";
  fs::create_directories(joined);
  for (const fs::path& dir : {options.archive_dir, options.dir}) {
    for (const fs::path& seg : files_ending(dir, ".seg")) {
      fs::create_hard_link(seg, joined / seg.filename());
    }
  }
  auto all = open_ok(options_for(joined, kSmallSegment, &warnings));
  EXPECT_EQ(replay_ok(*all, 1), expected_range(1, 30));
  EXPECT_TRUE(warnings.empty());
}

TEST(Journal, RetentionNeverDeletesTheActiveSegment) {
  TempDir tmp;
  std::vector<std::string> warnings;
  auto options = options_for(tmp.path(), 1 << 20, &warnings);
  options.snapshots_kept = 1;
  auto j = open_ok(options);
  ASSERT_TRUE(append_batch(*j, 5).is_ok());
  ASSERT_TRUE(j->write_snapshot(5, 0, "five").is_ok());  // every record is covered
  EXPECT_EQ(files_ending(tmp.path(), ".seg").size(), 1u);
  ASSERT_TRUE(append_batch(*j, 1).is_ok());
  j.reset();
  j = open_ok(options);
  EXPECT_EQ(replay_ok(*j, 6), expected_range(6, 6));
}

TEST(Journal, NewestBadSnapshotFallsBackToOlderWithWarning) {
  TempDir tmp;
  std::vector<std::string> warnings;
  const auto options = options_for(tmp.path(), kSmallSegment, &warnings);
  {
    auto j = open_ok(options);
    ASSERT_TRUE(append_batch(*j, 20).is_ok());
    ASSERT_TRUE(j->write_snapshot(10, 0, "ten").is_ok());
    ASSERT_TRUE(j->write_snapshot(20, 0, "twenty").is_ok());
  }
  const fs::path newest = tmp.path() / "snapshot-00000000000000000020.snap";
  std::string bytes = read_bytes(newest);
  bytes.back() ^= 0x01;  // payload byte
  write_bytes(newest, bytes);
  auto j = open_ok(options);
  auto snap = j->load_newest_snapshot();
  ASSERT_TRUE(snap.has_value());
  EXPECT_EQ(snap->seq, 10u);
  EXPECT_EQ(snap->state, "ten");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("snapshot-00000000000000000020.snap"), std::string::npos);
  EXPECT_NE(warnings[0].find("checksum"), std::string::npos) << warnings[0];
  EXPECT_EQ(replay_ok(*j, 11), expected_range(11, 20));  // kept segments make this possible
}

TEST(Journal, SnapshotWithoutSegmentsContinuesNumbering) {
  TempDir source, tmp;
  std::vector<std::string> warnings;
  {
    auto j = open_ok(options_for(source.path(), kSmallSegment, &warnings));
    ASSERT_TRUE(append_batch(*j, 5).is_ok());
    ASSERT_TRUE(j->write_snapshot(5, 50, "five").is_ok());
  }
  const std::string name = "snapshot-00000000000000000005.snap";
  fs::copy_file(source.path() / name, tmp.path() / name);
  const auto options = options_for(tmp.path(), kSmallSegment, &warnings);
  {
    auto j = open_ok(options);
    EXPECT_EQ(j->last_seq(), 5u);
    EXPECT_EQ(j->next_seq(), 6u);
    EXPECT_TRUE(replay_ok(*j, 6).empty());
    ASSERT_TRUE(append_batch(*j, 2).is_ok());
  }
  EXPECT_TRUE(fs::exists(tmp.path() / "journal-00000000000000000006.seg"));
  auto j = open_ok(options);
  EXPECT_EQ(j->next_seq(), 8u);
  EXPECT_EQ(replay_ok(*j, 6), expected_range(6, 7));
  Status s = Status::ok();
  replay_from(*j, 1, &s);
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("records 1..5"), std::string::npos) << s.message();
}

TEST(Journal, SecondWriterIsRefusedButReadersAreNot) {
  TempDir tmp;
  std::vector<std::string> warnings;
  auto options = options_for(tmp.path(), kSmallSegment, &warnings);
  auto writer = open_ok(options);
  ASSERT_TRUE(append_batch(*writer, 3).is_ok());
  EXPECT_NE(open_error(options).find("in use"), std::string::npos);
  options.read_only = true;
  auto reader = open_ok(options);
  EXPECT_EQ(replay_ok(*reader, 1), expected_range(1, 3));
}

TEST(Journal, ReadOnlyNeverCreatesTheDirectory) {
  TempDir tmp;
  std::vector<std::string> warnings;
  auto options = options_for(tmp.path() / "absent", kSmallSegment, &warnings);
  options.read_only = true;
  EXPECT_NE(open_error(options).find("does not exist"), std::string::npos);
  EXPECT_FALSE(fs::exists(tmp.path() / "absent"));
}

TEST(Journal, BadOptionsAreRefused) {
  TempDir tmp;
  std::vector<std::string> warnings;
  auto options = options_for(tmp.path(), kSmallSegment, &warnings);
  options.snapshots_kept = 0;
  EXPECT_NE(open_error(options).find("snapshots_kept"), std::string::npos);
}

using keel::testing::FileSizeLimit;

TEST(Journal, WriteErrorIsStickyAndLeavesATornTail) {
  TempDir tmp;
  std::vector<std::string> warnings;
  const auto options = options_for(tmp.path(), 1 << 20, &warnings);
  auto j = open_ok(options);
  ASSERT_TRUE(append_batch(*j, 3).is_ok());
  const fs::path seg = files_ending(tmp.path(), ".seg").at(0);
  const uint64_t good_bytes = fs::file_size(seg);
  {
    FileSizeLimit limit(good_bytes + 20);  // inside the header of record 4
    Status s = append_batch(*j, 10);
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find(seg.filename().string()), std::string::npos) << s.message();
  }
  EXPECT_EQ(fs::file_size(seg), good_bytes + 20);  // the short write landed
  EXPECT_EQ(j->last_seq(), 3u);
  Status again = j->commit();  // the limit is gone, but the journal must not retry
  EXPECT_FALSE(again.is_ok());
  EXPECT_NE(again.message().find("refuses writes"), std::string::npos) << again.message();
  EXPECT_FALSE(j->write_snapshot(3, 0, "x").is_ok());
  j.reset();

  OpenReport report;
  j = open_ok(options, &report);
  EXPECT_EQ(report.torn_tail_bytes, 20u);
  EXPECT_EQ(fs::file_size(seg), good_bytes);
  EXPECT_EQ(j->next_seq(), 4u);
  ASSERT_TRUE(append_batch(*j, 2).is_ok());
  EXPECT_EQ(replay_ok(*j, 1), expected_range(1, 5));
}

TEST(Journal, SegmentCreationErrorIsSticky) {
  TempDir tmp;
  std::vector<std::string> warnings;
  const fs::path dir = tmp.path() / "j";
  auto j = open_ok(options_for(dir, kSmallSegment, &warnings));
  ASSERT_TRUE(append_batch(*j, 20).is_ok());  // fills the first segment
  fs::remove_all(dir);
  EXPECT_FALSE(append_batch(*j, 1).is_ok());  // needs a new segment in a missing directory
  fs::create_directories(dir);
  EXPECT_FALSE(j->commit().is_ok());
  EXPECT_EQ(j->last_seq(), 20u);
}

}  // namespace
}  // namespace keel::journal::testing
