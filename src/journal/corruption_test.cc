// Recovery from damaged journals: torn tails are truncated, everything else refuses to open
// with the file and the byte offset, and read-only mode never changes a byte.

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "core/crc32c.h"
#include "journal/format.h"
#include "journal/journal.h"
#include "journal/journal_test_util.h"

namespace keel::journal::testing {
namespace {

constexpr uint64_t kOneSegment = 1 << 20;
constexpr uint64_t kSmallSegment = 256;
const char* const kFirstSegment = "journal-00000000000000000001.seg";

// Byte offset of record `seq` in a segment that starts with record `first`.
uint64_t offset_of(uint64_t seq, uint64_t first = 1) {
  uint64_t off = 0;
  for (uint64_t s = first; s < seq; ++s) off += kRecordHeaderBytes + payload_for(s).size();
  return off;
}

class Corruption : public ::testing::Test {
 protected:
  // Writes records 1..count in batches of `batch` records.
  void write_journal(uint64_t count, uint64_t segment_bytes_max, size_t batch = 1) {
    options_ = options_for(tmp_.path(), segment_bytes_max, &warnings_);
    auto j = open_ok(options_);
    while (j->last_seq() < count) ASSERT_TRUE(append_batch(*j, batch).is_ok());
  }
  fs::path path(const std::string& name) const { return tmp_.path() / name; }
  void edit(const std::string& name, const std::function<void(std::string&)>& change) {
    std::string bytes = read_bytes(path(name));
    change(bytes);
    write_bytes(path(name), bytes);
  }
  // Reopens after a torn tail and checks the journal carries on from `last_good`.
  void expect_recovered(uint64_t last_good, uint64_t dropped) {
    OpenReport report;
    auto j = open_ok(options_, &report);
    ASSERT_NE(j, nullptr);
    EXPECT_EQ(report.torn_tail_bytes, dropped);
    EXPECT_EQ(report.torn_tail_at,
              path(kFirstSegment).string() + " offset " + std::to_string(offset_of(last_good + 1)));
    ASSERT_EQ(warnings_.size(), 1u);
    EXPECT_NE(warnings_[0].find(report.torn_tail_at), std::string::npos) << warnings_[0];
    EXPECT_EQ(fs::file_size(path(kFirstSegment)), offset_of(last_good + 1));
    EXPECT_EQ(j->next_seq(), last_good + 1);
    ASSERT_TRUE(append_batch(*j, 2).is_ok());
    j.reset();
    warnings_.clear();
    OpenReport clean;
    j = open_ok(options_, &clean);
    EXPECT_EQ(clean.torn_tail_bytes, 0u);
    EXPECT_TRUE(warnings_.empty());
    EXPECT_EQ(replay_ok(*j, 1), expected_range(1, last_good + 2));
  }

  TempDir tmp_;
  std::vector<std::string> warnings_;
  JournalOptions options_;
};

TEST_F(Corruption, TornTailCutMidHeader) {
  write_journal(5, kOneSegment);
  fs::resize_file(path(kFirstSegment), offset_of(5) + 17);
  expect_recovered(4, 17);
}

TEST_F(Corruption, TornTailCutMidPayload) {
  write_journal(5, kOneSegment);
  fs::resize_file(path(kFirstSegment), offset_of(5) + kRecordHeaderBytes + 3);
  expect_recovered(4, kRecordHeaderBytes + 3);
}

TEST_F(Corruption, TornTailGarbageAppended) {
  write_journal(5, kOneSegment);
  std::mt19937 random(42);
  std::string garbage;
  for (int i = 0; i < 61; ++i) garbage.push_back(static_cast<char>(random()));
  edit(kFirstSegment, [&](std::string& b) { b += garbage; });
  expect_recovered(5, garbage.size());
}

TEST_F(Corruption, TornTailZerosAppended) {
  write_journal(5, kOneSegment);
  edit(kFirstSegment, [](std::string& b) { b.append(4096, '\0'); });
  expect_recovered(5, 4096);
}

TEST_F(Corruption, TornTailWholeLastRecordOfABatchKeepsTheCompleteOnes) {
  write_journal(6, kOneSegment, 3);  // batches 1-3 and 4-6; the second is cut inside record 6
  fs::resize_file(path(kFirstSegment), offset_of(6) + kRecordHeaderBytes + 1);
  expect_recovered(5, kRecordHeaderBytes + 1);
}

TEST_F(Corruption, TornTailInANewSegmentLeavesItEmpty) {
  write_journal(30, kSmallSegment);
  const auto segments = files_ending(tmp_.path(), ".seg");
  ASSERT_GE(segments.size(), 2u);
  fs::resize_file(segments.back(), 10);  // the first record of the last segment was cut
  const uint64_t first = std::stoull(segments.back().filename().string().substr(8, 20));
  OpenReport report;
  auto j = open_ok(options_, &report);
  EXPECT_EQ(report.torn_tail_bytes, 10u);
  EXPECT_EQ(fs::file_size(segments.back()), 0u);
  EXPECT_EQ(j->next_seq(), first);
  ASSERT_TRUE(append_batch(*j, 1).is_ok());
  j.reset();
  j = open_ok(options_);
  EXPECT_EQ(replay_ok(*j, 1), expected_range(1, first));
}

TEST_F(Corruption, EmptyLastSegmentIsFine) {
  write_journal(3, kOneSegment);
  write_bytes(path("journal-00000000000000000004.seg"), "");
  auto j = open_ok(options_);
  EXPECT_EQ(j->next_seq(), 4u);
  ASSERT_TRUE(append_batch(*j, 1).is_ok());
  j.reset();
  j = open_ok(options_);
  EXPECT_EQ(replay_ok(*j, 1), expected_range(1, 4));
  EXPECT_TRUE(warnings_.empty());
}

// A flipped byte anywhere before the last record is followed by a valid record: corruption.
TEST_F(Corruption, FlippedPayloadByteInMiddleRecordFailsWithFileAndOffset) {
  write_journal(10, kOneSegment);
  const std::string before = read_bytes(path(kFirstSegment));
  edit(kFirstSegment, [](std::string& b) { b[offset_of(5) + kRecordHeaderBytes + 1] ^= 0x20; });
  const std::string message = open_error(options_);
  EXPECT_NE(message.find(kFirstSegment), std::string::npos) << message;
  EXPECT_NE(message.find("offset " + std::to_string(offset_of(5)) + ":"), std::string::npos)
      << message;
  EXPECT_NE(message.find("payload checksum"), std::string::npos) << message;
  EXPECT_NE(message.find("offset " + std::to_string(offset_of(6))), std::string::npos) << message;
  EXPECT_EQ(read_bytes(path(kFirstSegment)).size(), before.size());  // nothing truncated
}

TEST_F(Corruption, FlippedHeaderByteInMiddleRecordFails) {
  write_journal(10, kOneSegment);
  edit(kFirstSegment, [](std::string& b) { b[offset_of(3) + 25] ^= 0x01; });  // timestamp
  const std::string message = open_error(options_);
  EXPECT_NE(message.find(std::string(kFirstSegment) + " offset " + std::to_string(offset_of(3))),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("header checksum"), std::string::npos) << message;
}

TEST_F(Corruption, FlippedByteInLastRecordOfNonLastSegmentFails) {
  write_journal(30, kSmallSegment);
  const auto segments = files_ending(tmp_.path(), ".seg");
  ASSERT_GE(segments.size(), 3u);
  std::string bytes = read_bytes(segments[0]);
  bytes[bytes.size() - 1] ^= 0x01;  // the last record of the segment: nothing valid after it
  write_bytes(segments[0], bytes);
  const std::string message = open_error(options_);
  EXPECT_NE(message.find(segments[0].string()), std::string::npos) << message;
  EXPECT_NE(message.find("not the last segment"), std::string::npos) << message;
}

TEST_F(Corruption, CutNonLastSegmentFails) {
  write_journal(30, kSmallSegment);
  const auto segments = files_ending(tmp_.path(), ".seg");
  fs::resize_file(segments[1], fs::file_size(segments[1]) - 1);
  const std::string message = open_error(options_);
  EXPECT_NE(message.find(segments[1].string()), std::string::npos) << message;
}

TEST_F(Corruption, MissingMiddleSegmentFails) {
  write_journal(30, kSmallSegment);
  const auto segments = files_ending(tmp_.path(), ".seg");
  ASSERT_GE(segments.size(), 3u);
  const uint64_t missing_first = std::stoull(segments[1].filename().string().substr(8, 20));
  const uint64_t next_first = std::stoull(segments[2].filename().string().substr(8, 20));
  fs::remove(segments[1]);
  const std::string message = open_error(options_);
  EXPECT_NE(message.find("records " + std::to_string(missing_first) + ".." +
                         std::to_string(next_first - 1) + " are missing"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find(segments[2].string()), std::string::npos) << message;
}

TEST_F(Corruption, RenamedSegmentFails) {
  write_journal(3, kOneSegment);
  fs::rename(path(kFirstSegment), path("journal-00000000000000000002.seg"));
  const std::string message = open_error(options_);
  EXPECT_NE(message.find("journal-00000000000000000002.seg offset 0"), std::string::npos)
      << message;
  EXPECT_NE(message.find("first record has seq 1 but the file name says 2"), std::string::npos)
      << message;
}

// A checksum-valid record with the wrong seq was written whole: it is not a torn write.
TEST_F(Corruption, RepeatedRecordAtTheEndFails) {
  write_journal(4, kOneSegment);
  edit(kFirstSegment, [](std::string& b) { b += b.substr(offset_of(4)); });
  const std::string message = open_error(options_);
  EXPECT_NE(message.find("offset " + std::to_string(offset_of(5))), std::string::npos) << message;
  EXPECT_NE(message.find("repeated sequence number 4"), std::string::npos) << message;
}

TEST_F(Corruption, OversizedPayloadLengthFails) {
  write_journal(4, kOneSegment);
  edit(kFirstSegment, [](std::string& b) {
    const size_t at = offset_of(2);
    const uint32_t len = kRecordPayloadBytesMax + 1;
    std::memcpy(b.data() + at + 12, &len, 4);
    const uint32_t crc = crc32c(std::string_view(b).substr(at + 8, kRecordHeaderBytes - 8));
    std::memcpy(b.data() + at + 4, &crc, 4);
  });
  const std::string message = open_error(options_);
  EXPECT_NE(message.find("offset " + std::to_string(offset_of(2))), std::string::npos) << message;
  EXPECT_NE(message.find("above the limit"), std::string::npos) << message;
}

TEST_F(Corruption, SnapshotAheadOfTheJournalFails) {
  write_journal(5, kOneSegment);
  {
    auto j = open_ok(options_);
    ASSERT_TRUE(j->write_snapshot(5, 0, "five").is_ok());
  }
  fs::resize_file(path(kFirstSegment), offset_of(4));  // records 4 and 5 lost, torn-tail style
  const std::string message = open_error(options_);
  EXPECT_NE(message.find("records 4..5 are missing"), std::string::npos) << message;
}

TEST_F(Corruption, TruncatedSnapshotIsSkippedWithWarning) {
  write_journal(5, kOneSegment);
  {
    auto j = open_ok(options_);
    ASSERT_TRUE(j->write_snapshot(2, 0, "two").is_ok());
    ASSERT_TRUE(j->write_snapshot(4, 0, "four").is_ok());
  }
  const std::string name = "snapshot-00000000000000000004.snap";
  fs::resize_file(path(name), 20);
  auto j = open_ok(options_);
  EXPECT_EQ(j->last_seq(), 5u);
  auto snap = j->load_newest_snapshot();
  ASSERT_TRUE(snap.has_value());
  EXPECT_EQ(snap->state, "two");
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find(name), std::string::npos) << warnings_[0];
}

TEST_F(Corruption, ReadOnlyChangesNoBytes) {
  write_journal(30, kSmallSegment);
  {
    auto j = open_ok(options_);
    ASSERT_TRUE(j->write_snapshot(10, 0, "ten").is_ok());
  }
  write_bytes(path("snapshot-00000000000000000011.snap.tmp"), "stray");
  const auto last = files_ending(tmp_.path(), ".seg").back();
  std::string tail = read_bytes(last);
  tail.append("torn!");
  write_bytes(last, tail);
  const auto before = dir_contents(tmp_.path());

  options_.read_only = true;
  OpenReport report;
  auto j = open_ok(options_, &report);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(report.torn_tail_bytes, 5u);
  EXPECT_NE(report.torn_tail_at.find(last.string()), std::string::npos);
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find("would drop 5 bytes"), std::string::npos) << warnings_[0];
  EXPECT_EQ(replay_ok(*j, 1), expected_range(1, 30));
  EXPECT_EQ(j->load_newest_snapshot()->state, "ten");
  j.reset();
  EXPECT_EQ(dir_contents(tmp_.path()), before);
}

// Every single-byte flip in the last segment either fails the open naming the file, or (in the
// last record) is a torn tail: what replays is then always an exact prefix of what was written.
TEST_F(Corruption, EverySingleByteFlipIsDetected) {
  write_journal(4, kOneSegment);
  const std::string original = read_bytes(path(kFirstSegment));
  for (size_t at = 0; at < original.size(); ++at) {
    std::string bytes = original;
    bytes[at] ^= 0x40;
    write_bytes(path(kFirstSegment), bytes);
    warnings_.clear();
    std::unique_ptr<Journal> j;
    Status s = Journal::open(options_, &j, nullptr);
    if (!s.is_ok()) {
      EXPECT_NE(s.message().find(kFirstSegment), std::string::npos) << at << ": " << s.message();
      EXPECT_LT(at, offset_of(4)) << "a flip in the last record is a torn tail";
      continue;
    }
    EXPECT_GE(at, offset_of(4)) << "a flip before the last record must fail the open";
    EXPECT_EQ(replay_ok(*j, 1), expected_range(1, 3)) << at;
  }
}

}  // namespace
}  // namespace keel::journal::testing
