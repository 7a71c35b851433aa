// Start-up on damaged journals: a flipped byte in the middle of a segment is corruption and
// keeld refuses to start (naming the file and offset) without touching the file; garbage after
// the last record is a torn write, cut off at start-up with every earlier transfer kept.
// `keel journal verify` tells the two apart by its exit code.

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "durability_util.h"
#include "engine/engine.h"
#include "testing/temp_dir.h"

namespace keel::durability {
namespace {

namespace json = boost::json;
using ledger::TransferEvent;

constexpr int kTransfers = 40;

// A data directory whose journal holds 2 accounts and kTransfers transfers, each its own
// request (so its own record), written by a keeld that stopped cleanly.
class JournalOnDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = dir_.path() / "data";
    std::unique_ptr<testing::KeeldProcess> keeld;
    Status s = start_keeld(data_dir_, "", &keeld);
    ASSERT_TRUE(s.is_ok()) << s.message();
    auto client = make_client(keeld->port());
    std::vector<ledger::AccountEvent> accounts(2);
    accounts[0].id = "acct_a";
    accounts[1].id = "acct_b";
    accounts[0].currency = accounts[1].currency = *Currency::from_code("EUR");
    s = create_accounts(*client, accounts);
    ASSERT_TRUE(s.is_ok()) << s.message();
    for (int i = 0; i < kTransfers; ++i) {
      TransferEvent e;
      e.id = "t" + std::to_string(i);
      e.debit_account_id = i % 2 == 0 ? "acct_a" : "acct_b";
      e.credit_account_id = i % 2 == 0 ? "acct_b" : "acct_a";
      e.amount = 1000 + i;
      e.currency = *Currency::from_code("EUR");
      if (i % 5 == 4) e.flags = ledger::transfer_flags::kPending;
      s = create_transfers(*client, {e});
      ASSERT_TRUE(s.is_ok()) << s.message();
      transfers_.push_back(e);
    }
    ASSERT_TRUE(get_full_status(*client, &status_).is_ok());
    client.reset();
    ASSERT_EQ(keeld->stop(), 0);
    const auto segments = segment_files(data_dir_);
    ASSERT_FALSE(segments.empty());
    segment_ = segments.back();
  }

  // Starts keeld and checks it holds exactly the state it had when SetUp stopped it.
  void expect_intact_state() {
    std::unique_ptr<testing::KeeldProcess> keeld;
    const Status s = start_keeld(data_dir_, "", &keeld);
    ASSERT_TRUE(s.is_ok()) << s.message();
    auto client = make_client(keeld->port());
    for (const TransferEvent& e : transfers_) {
      std::optional<StoredTransfer> t;
      ASSERT_TRUE(get_transfer(*client, e.id, &t).is_ok());
      ASSERT_TRUE(t.has_value()) << "transfer " << e.id << " lost";
      EXPECT_EQ(transfer_mismatch(expected_transfer(e, nullptr), *t), "");
    }
    json::object status;
    ASSERT_TRUE(get_full_status(*client, &status).is_ok());
    EXPECT_EQ(status.at("state_hash"), status_.at("state_hash"));
    EXPECT_TRUE(status.at("invariants_ok").as_bool()) << json::serialize(status);
    client.reset();
    EXPECT_EQ(keeld->stop(), 0);
  }

  // Flips the byte in the middle of the last segment. Returns the offset of the record that
  // holds it: the offset a corruption message must name.
  size_t flip_middle_byte() {
    std::string bytes = read_file(segment_);
    const std::vector<size_t> records = record_offsets(bytes);
    EXPECT_GE(records.size(), static_cast<size_t>(kTransfers));
    const size_t middle = bytes.size() / 2;
    size_t record_at = 0;
    for (size_t off : records) {
      if (off <= middle) record_at = off;
    }
    bytes[middle] = static_cast<char>(bytes[middle] ^ 0x5A);
    write_file(segment_, bytes);
    return record_at;
  }

  testing::TempDir dir_;
  std::filesystem::path data_dir_;
  std::filesystem::path segment_;
  std::vector<TransferEvent> transfers_;
  json::object status_;
};

TEST_F(JournalOnDisk, FlippedMiddleByteRefusesToStartAndNamesFileAndOffset) {
  const size_t record_at = flip_middle_byte();
  const std::string corrupted = read_file(segment_);
  const std::string where = segment_.filename().string() + " offset " + std::to_string(record_at);

  const testing::ProgramResult r =
      testing::run_program({testing::build_path("src/keeld/keeld").string(), "--listen",
                            "127.0.0.1:0", "--data", data_dir_.string()},
                           30'000);
  EXPECT_EQ(r.exit_code, 1) << "stdout: " << r.out << "\nstderr: " << r.err;
  EXPECT_NE(r.err.find(where), std::string::npos) << "stderr does not name " << where << ":\n"
                                                  << r.err;
  EXPECT_EQ(r.out.find("listening"), std::string::npos) << r.out;
  EXPECT_EQ(read_file(segment_), corrupted) << "keeld changed a corrupt journal it refused";

  engine::VerifyReport report;
  const Status s = engine::verify_data_dir(data_dir_, &report);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find(where), std::string::npos) << s.message();
}

TEST_F(JournalOnDisk, TornTailIsCutAndEveryEarlierTransferStays) {
  const std::string clean = read_file(segment_);
  const std::vector<size_t> records = record_offsets(clean);
  ASSERT_FALSE(records.empty());
  std::mt19937_64 rng(7);
  std::string garbage(100, '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  // Half of a copy of the last record (a batch cut short by the crash), then random bytes.
  const size_t last = records.back();
  const std::string half_record = clean.substr(last, (clean.size() - last) / 2);
  for (const std::string& tail : {half_record, garbage}) {
    SCOPED_TRACE("tail of " + std::to_string(tail.size()) + " bytes");
    write_file(segment_, clean + tail);
    engine::VerifyReport report;
    const Status s = engine::verify_data_dir(data_dir_, &report);
    ASSERT_TRUE(s.is_ok()) << s.message();
    EXPECT_EQ(report.journal.torn_tail_bytes, tail.size());
    EXPECT_EQ(report.counts.transfers, static_cast<uint64_t>(kTransfers));
    ASSERT_NO_FATAL_FAILURE(expect_intact_state());
    EXPECT_EQ(read_file(segment_), clean) << "the torn tail was not cut off";
  }
}

TEST_F(JournalOnDisk, KeelJournalVerifyExitCodes) {
  const auto keel = testing::build_path("src/cli/keel");
  if (!std::filesystem::exists(keel)) GTEST_SKIP() << keel << " is not built";
  testing::ProgramResult r =
      testing::run_program({keel.string(), "journal", "verify", data_dir_.string()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  flip_middle_byte();
  r = testing::run_program({keel.string(), "journal", "verify", data_dir_.string()});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find(segment_.filename().string()), std::string::npos) << r.err;
}

}  // namespace
}  // namespace keel::durability
