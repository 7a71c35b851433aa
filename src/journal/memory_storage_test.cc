#include "journal/memory_storage.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "journal/journal_test_util.h"

namespace keel::journal::testing {
namespace {

class MemoryStorageTest : public ::testing::Test {
 protected:
  std::unique_ptr<MemoryStorage> open(uint32_t snapshots_kept = 2) {
    MemoryStorageOptions o;
    o.audit_chain = false;  // these tests count records; audit_chain_test.cc tests the chain
    o.snapshots_kept = snapshots_kept;
    o.warn = [this](std::string_view line) { warnings_.emplace_back(line); };
    std::unique_ptr<MemoryStorage> s;
    const Status st = MemoryStorage::open(disk_, o, &s);
    if (!st.is_ok()) throw std::runtime_error("open failed: " + st.message());
    return s;
  }

  std::shared_ptr<MemoryDisk> disk_ = std::make_shared<MemoryDisk>();
  std::vector<std::string> warnings_;
};

TEST_F(MemoryStorageTest, CommittedRecordsSurviveReopenAndStagedOnesVanish) {
  {
    auto s = open();
    ASSERT_TRUE(append_batch(*s, 3).is_ok());
    ASSERT_TRUE(append_batch(*s, 2).is_ok());
    s->begin_record(type_for(6), time_for(6)).append(payload_for(6));
    s->end_record();
    EXPECT_EQ(s->staged_records(), 1u);
    EXPECT_EQ(s->next_seq(), 7u);
    EXPECT_EQ(replay_ok(*s, 2), expected_range(2, 5));
  }
  EXPECT_EQ(disk_->last_seq(), 5u);
  EXPECT_EQ(disk_->commits(), 2u);
  auto s = open();
  EXPECT_EQ(s->last_seq(), 5u);
  EXPECT_EQ(s->next_seq(), 6u);
  EXPECT_EQ(replay_ok(*s, 1), expected_range(1, 5));
  EXPECT_TRUE(warnings_.empty());
}

TEST_F(MemoryStorageTest, OneStorageAtATimePerDisk) {
  auto first = open();
  std::unique_ptr<MemoryStorage> second;
  const Status st = MemoryStorage::open(disk_, {}, &second);
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("in use"), std::string::npos) << st.message();
  EXPECT_EQ(second, nullptr);
  first.reset();
  EXPECT_NO_THROW(open());
}

TEST_F(MemoryStorageTest, AFailedWriteLosesTheBatchIsStickyAndReadsKeepWorking) {
  {
    auto s = open();
    ASSERT_TRUE(append_batch(*s, 2).is_ok());
    disk_->fail_next_write();
    const Status failed = append_batch(*s, 3);
    EXPECT_FALSE(failed.is_ok());
    EXPECT_NE(failed.message().find("write failure"), std::string::npos) << failed.message();
    EXPECT_EQ(s->last_seq(), 2u);
    // Sticky: the fault fired once, yet every later commit is refused without writing.
    const Status again = s->commit();
    EXPECT_FALSE(again.is_ok());
    EXPECT_NE(again.message().find("refuses writes"), std::string::npos) << again.message();
    EXPECT_FALSE(s->write_snapshot(2, time_for(2), "state").is_ok());
    EXPECT_EQ(replay_ok(*s, 1), expected_range(1, 2));
    EXPECT_EQ(disk_->failed_commits(), 1u);
  }
  EXPECT_EQ(disk_->last_seq(), 2u);
  auto s = open();  // a restart: writable again, nothing of the failed batch
  EXPECT_EQ(replay_ok(*s, 1), expected_range(1, 2));
  ASSERT_TRUE(append_batch(*s, 1).is_ok());
  EXPECT_EQ(replay_ok(*s, 1), expected_range(1, 3));
}

TEST_F(MemoryStorageTest, AFailedFsyncLosesTheBatchOrKeepsItAsTheTestChose) {
  for (const bool durable : {false, true}) {
    SCOPED_TRACE(durable ? "batch durable" : "batch lost");
    disk_ = std::make_shared<MemoryDisk>();
    {
      auto s = open();
      ASSERT_TRUE(append_batch(*s, 2).is_ok());
      disk_->fail_next_fsync(durable);
      const Status failed = append_batch(*s, 3);
      EXPECT_FALSE(failed.is_ok());
      EXPECT_NE(failed.message().find("fsync failure"), std::string::npos) << failed.message();
      EXPECT_FALSE(s->commit().is_ok());
      // This storage shows what it acknowledged, whatever reached the disk.
      EXPECT_EQ(s->last_seq(), 2u);
      EXPECT_EQ(replay_ok(*s, 1), expected_range(1, 2));
    }
    const uint64_t last = durable ? 5 : 2;
    EXPECT_EQ(disk_->last_seq(), last);
    auto s = open();
    EXPECT_EQ(s->last_seq(), last);
    EXPECT_EQ(replay_ok(*s, 1), expected_range(1, last));
  }
}

TEST_F(MemoryStorageTest, ATornWriteKeepsWholeLeadingRecordsAndReopenDropsThePartOne) {
  {
    auto s = open();
    ASSERT_TRUE(append_batch(*s, 2).is_ok());
    disk_->tear_next_write(1);
    const Status failed = append_batch(*s, 3);
    EXPECT_FALSE(failed.is_ok());
    EXPECT_NE(failed.message().find("1 of 3 records durable"), std::string::npos)
        << failed.message();
    EXPECT_FALSE(s->commit().is_ok());
    EXPECT_EQ(replay_ok(*s, 1), expected_range(1, 2));
  }
  EXPECT_EQ(disk_->last_seq(), 3u);
  EXPECT_GT(disk_->torn_tail_bytes(), 0u);
  auto s = open();
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find("torn tail"), std::string::npos) << warnings_[0];
  EXPECT_EQ(disk_->torn_tail_bytes(), 0u);
  EXPECT_EQ(s->last_seq(), 3u);
  EXPECT_EQ(replay_ok(*s, 1), expected_range(1, 3));
  ASSERT_TRUE(append_batch(*s, 2).is_ok());  // the cut tail leaves no gap
  EXPECT_EQ(replay_ok(*s, 1), expected_range(1, 5));
}

TEST_F(MemoryStorageTest, AHeldCommitMakesNothingDurableUntilReleased) {
  auto s = open();
  ASSERT_TRUE(append_batch(*s, 1).is_ok());
  disk_->hold_commits();
  Status result = Status::error("not run");
  std::thread writer([&] { result = append_batch(*s, 2); });
  ASSERT_TRUE(disk_->wait_for_held_commit(10'000));
  EXPECT_EQ(disk_->last_seq(), 1u);
  disk_->release_commits();
  writer.join();
  EXPECT_TRUE(result.is_ok()) << result.message();
  EXPECT_EQ(disk_->last_seq(), 3u);
  EXPECT_EQ(replay_ok(*s, 1), expected_range(1, 3));
  EXPECT_FALSE(disk_->wait_for_held_commit(0));
}

TEST_F(MemoryStorageTest, SnapshotsFromAnotherThreadThenRetentionDropsWhatIsCovered) {
  auto s = open(/*snapshots_kept=*/2);
  ASSERT_TRUE(append_batch(*s, 3).is_ok());
  EXPECT_FALSE(s->load_newest_snapshot());
  const SnapshotWriteFn write = s->snapshot_writer();
  Status st = Status::error("not run");
  std::thread([&] { st = write(3, time_for(3), "state@3"); }).join();
  ASSERT_TRUE(st.is_ok()) << st.message();
  s->remove_unneeded();
  EXPECT_EQ(disk_->first_seq(), 1u);  // fewer than 2 snapshots: every record is kept
  ASSERT_TRUE(append_batch(*s, 2).is_ok());
  ASSERT_TRUE(s->write_snapshot(5, time_for(5), "state@5").is_ok());
  EXPECT_EQ(disk_->snapshots(), 2u);
  EXPECT_EQ(disk_->first_seq(), 4u);  // records up to the oldest kept snapshot are dropped
  Status replayed = Status::ok();
  replay_from(*s, 1, &replayed);
  EXPECT_FALSE(replayed.is_ok());
  EXPECT_EQ(replay_ok(*s, 4), expected_range(4, 5));
  // A failed snapshot write is reported and is not sticky.
  disk_->fail_next_snapshot();
  EXPECT_FALSE(s->write_snapshot(5, time_for(5), "again").is_ok());
  ASSERT_TRUE(append_batch(*s, 1).is_ok());
  const auto snap = s->load_newest_snapshot();
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->seq, 5u);
  EXPECT_EQ(snap->state, "state@5");
  EXPECT_EQ(snap->timestamp, time_for(5));
  s.reset();
  auto reopened = open();
  EXPECT_EQ(reopened->last_seq(), 6u);
  EXPECT_EQ(replay_ok(*reopened, 6), expected_range(6, 6));
}

}  // namespace
}  // namespace keel::journal::testing
