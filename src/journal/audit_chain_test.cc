#include "journal/audit_chain.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/crc32c.h"
#include "journal/format.h"
#include "journal/journal.h"
#include "journal/journal_test_util.h"
#include "journal/memory_storage.h"

namespace keel::journal {
namespace {

using testing::append_batch;
using testing::files_ending;
using testing::Rec;
using testing::TempDir;

// Every record of `j` from `from` on, chain records included.
std::vector<Rec> all_records(const Storage& j, uint64_t from = 1) {
  return testing::replay_ok(j, from);
}

ChainReport verify(const Storage& j, uint64_t first_seq = 1,
                   const std::vector<ChainAnchor>& anchors = {}) {
  ChainReport report;
  const Status s = verify_chain(j, first_seq, anchors, &report);
  EXPECT_TRUE(s.is_ok()) << s.message();
  return report;
}

std::string problems_text(const ChainReport& r) {
  std::string out;
  for (const std::string& p : r.problems) out += p + "\n";
  return out;
}

std::unique_ptr<MemoryStorage> open_memory(std::shared_ptr<MemoryDisk> disk,
                                           std::vector<std::string>* warnings = nullptr) {
  MemoryStorageOptions o;
  if (warnings != nullptr) o.warn = [warnings](std::string_view l) { warnings->emplace_back(l); };
  std::unique_ptr<MemoryStorage> s;
  const Status st = MemoryStorage::open(std::move(disk), o, &s);
  if (!st.is_ok()) throw std::runtime_error("open failed: " + st.message());
  return s;
}

JournalOptions chained(const std::filesystem::path& dir, std::vector<std::string>* warnings) {
  JournalOptions o = testing::options_for(dir, 4096, warnings);
  o.audit_chain = true;
  return o;
}

std::unique_ptr<Journal> open_read_only(const std::filesystem::path& dir,
                                        OpenReport* report = nullptr) {
  JournalOptions o;
  o.dir = dir;
  o.read_only = true;
  return testing::open_ok(o, report);
}

TEST(AuditChain, TheRecordEncodingRoundTripsAndRefusesAnythingElse) {
  ChainRecord c;
  c.first_seq = 17;
  c.count = 3;
  c.prev[0] = 1;
  c.head[31] = 2;
  std::string bytes;
  encode_chain_record(c, &bytes);
  ASSERT_EQ(bytes.size(), 77u);
  const auto back = decode_chain_record(bytes);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->first_seq, 17u);
  EXPECT_EQ(back->count, 3u);
  EXPECT_EQ(back->prev, c.prev);
  EXPECT_EQ(back->head, c.head);
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_chain_record(bytes.substr(0, n)).has_value()) << n;
  }
  EXPECT_FALSE(decode_chain_record(bytes + "x").has_value());
  std::string v2 = bytes;
  v2[0] = 2;
  EXPECT_FALSE(decode_chain_record(v2).has_value());

  EXPECT_EQ(digest_from_hex(to_hex(c.head)), c.head);
  EXPECT_EQ(digest_from_hex(std::string(64, 'F')), digest_from_hex(std::string(64, 'f')));
  EXPECT_FALSE(digest_from_hex(std::string(63, 'a')).has_value());
  EXPECT_FALSE(digest_from_hex(std::string(63, 'a') + "g").has_value());
}

TEST(AuditChain, EveryBatchEndsWithAChainRecordLinkedToTheOneBefore) {
  auto disk = std::make_shared<MemoryDisk>();
  auto j = open_memory(disk);
  EXPECT_FALSE(j->chain_point().has_value());
  ASSERT_TRUE(append_batch(*j, 3).is_ok());  // records 1..3, chain record 4
  ASSERT_TRUE(append_batch(*j, 1).is_ok());  // 5, chain 6
  ASSERT_TRUE(append_batch(*j, 2).is_ok());  // 7..8, chain 9
  EXPECT_EQ(j->last_seq(), 9u);
  const std::vector<Rec> records = all_records(*j);
  ASSERT_EQ(records.size(), 9u);
  ChainDigest prev{};
  ChainHasher hasher;
  for (const Rec& r : records) {
    if (r.type != kChainRecordType) {
      hasher.add_record(r.seq, r.type, r.timestamp, r.payload);
      continue;
    }
    const auto c = decode_chain_record(r.payload);
    ASSERT_TRUE(c.has_value()) << r.seq;
    EXPECT_EQ(c->prev, prev) << r.seq;
    EXPECT_EQ(c->first_seq + c->count, r.seq);
    EXPECT_EQ(c->head, hasher.head()) << r.seq;            // SHA-256(prev || the sealed records)
    EXPECT_EQ(r.timestamp, records[r.seq - 2].timestamp);  // its batch's last record's
    prev = c->head;
    hasher.reset(prev);
  }
  EXPECT_EQ(records[3].type, kChainRecordType);
  EXPECT_EQ(records[5].type, kChainRecordType);
  ASSERT_TRUE(j->chain_point().has_value());
  EXPECT_EQ(*j->chain_point(), (ChainPoint{9, prev}));

  const ChainReport report = verify(*j);
  EXPECT_TRUE(report.ok()) << problems_text(report);
  EXPECT_EQ(report.records, 9u);
  EXPECT_EQ(report.chain_records, 3u);
  EXPECT_EQ(report.covered_from, 1u);
  EXPECT_EQ(report.uncovered_head, 0u);
  EXPECT_EQ(report.uncovered_tail, 0u);
  EXPECT_EQ(report.head, j->chain_point());
}

TEST(AuditChain, AReopenedJournalContinuesTheChain) {
  TempDir tmp;
  std::vector<std::string> warnings;
  ChainPoint before;
  JournalOptions o = chained(tmp.path(), &warnings);
  o.segment_bytes_max = 1024;
  {
    auto j = testing::open_ok(o);
    for (size_t n = 1; n <= 40; ++n) ASSERT_TRUE(append_batch(*j, n % 5 + 1).is_ok());
    before = *j->chain_point();
  }
  {
    auto j = testing::open_ok(o);
    ASSERT_TRUE(j->chain_point().has_value());
    EXPECT_EQ(*j->chain_point(), before);
    ASSERT_TRUE(append_batch(*j, 2).is_ok());
    const auto c = decode_chain_record(all_records(*j, j->last_seq()).at(0).payload);
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(c->prev, before.head);
    EXPECT_EQ(c->first_seq, before.seq + 1);
  }
  EXPECT_GT(files_ending(tmp.path(), ".seg").size(), 3u);  // the chain crosses segments
  auto ro = open_read_only(tmp.path());
  const ChainReport report = verify(*ro);
  EXPECT_TRUE(report.ok()) << problems_text(report);
  EXPECT_EQ(report.chain_records, 41u);
  EXPECT_EQ(report.covered_from, 1u);
}

TEST(AuditChain, ATornBatchsWholeRecordsAreCoveredByTheNextChainRecord) {
  auto disk = std::make_shared<MemoryDisk>();
  {
    auto j = open_memory(disk);
    ASSERT_TRUE(append_batch(*j, 2).is_ok());  // 1..2, chain 3
    disk->tear_next_write(2);                  // records 4 and 5 survive, 6 and the chain do not
    EXPECT_FALSE(append_batch(*j, 3).is_ok());
  }
  std::vector<std::string> warnings;
  auto j = open_memory(disk, &warnings);
  EXPECT_EQ(warnings.size(), 1u);  // the torn tail
  // Records 4 and 5 were never acknowledged but are durable: sealed at open by chain record 6.
  EXPECT_EQ(j->last_seq(), 6u);
  EXPECT_EQ(j->chain_point()->seq, 6u);
  const auto c = decode_chain_record(all_records(*j, 6).at(0).payload);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->first_seq, 4u);
  EXPECT_EQ(c->count, 2u);
  ASSERT_TRUE(append_batch(*j, 1).is_ok());  // 7, chain 8
  const ChainReport report = verify(*j);
  EXPECT_TRUE(report.ok()) << problems_text(report);
  EXPECT_EQ(report.covered_from, 1u);
  EXPECT_EQ(report.uncovered_tail, 0u);
}

// An attacker with write access to the data directory: rewrites the journal as one segment of
// `records`, each sealed afresh so that every CRC passes.
void rewrite_journal(const std::filesystem::path& dir, const std::vector<Rec>& records) {
  for (const auto& p : files_ending(dir, ".seg")) std::filesystem::remove(p);
  std::string bytes;
  for (const Rec& r : records) {
    const size_t at = bytes.size();
    append_record_header(&bytes, r.type, r.seq, r.timestamp);
    bytes += r.payload;
    seal_record(&bytes, at);
  }
  testing::write_bytes(dir / segment_file_name(records.front().seq), bytes);
}

// A careful attacker also renumbers the records and makes every chain record's range fit.
void renumber(std::vector<Rec>* records) {
  uint64_t last_chain = 0;
  for (size_t i = 0; i < records->size(); ++i) {
    Rec& r = (*records)[i];
    r.seq = (*records)[0].seq + i;
    if (r.type != kChainRecordType) continue;
    auto c = decode_chain_record(r.payload);
    ASSERT_TRUE(c.has_value());
    if (last_chain != 0) c->first_seq = last_chain + 1;
    c->count = static_cast<uint32_t>(r.seq - c->first_seq);
    r.payload.clear();
    encode_chain_record(*c, &r.payload);
    last_chain = r.seq;
  }
}

struct Tamper {
  std::string name;
  std::function<void(std::vector<Rec>*)> change;
  std::string expected;  // in the problem that names the place
};

TEST(AuditChain, EditedDroppedReorderedOrInsertedRecordsAreFoundAndNamed) {
  // Batches of 3 records: 1..3 chain 4, 5..7 chain 8, 9..11 chain 12, 13..15 chain 16.
  const std::vector<Tamper> tampers = {
      {"edit a payload", [](auto* r) { (*r)[5].payload = "changed"; }, "records 5..7 do not hash"},
      {"drop a record", [](auto* r) { r->erase(r->begin() + 5), renumber(r); },
       "records 5..6 do not hash"},
      {"swap two records",
       [](auto* r) {
         std::swap((*r)[4], (*r)[5]);
         renumber(r);
       },
       "records 5..7 do not hash"},
      {"insert a record",
       [](auto* r) {
         r->insert(r->begin() + 9, Rec{0, 2, (*r)[8].timestamp + 1, "forged"});
         renumber(r);
       },
       "records 9..12 do not hash"},
      {"change a record's type", [](auto* r) { (*r)[0].type = 5; }, "records 1..3 do not hash"},
      {"drop a whole batch with its chain record",
       [](auto* r) {
         r->erase(r->begin() + 4, r->begin() + 8);
         renumber(r);
       },
       "record 8: the chain is broken"},
      {"start the chain over",
       [](auto* r) {
         auto c = decode_chain_record((*r)[11].payload);
         c->prev = {};
         ChainHasher h;
         for (size_t i = 8; i < 11; ++i) {
           h.add_record((*r)[i].seq, (*r)[i].type, (*r)[i].timestamp, (*r)[i].payload);
         }
         c->head = h.head();
         (*r)[11].payload.clear();
         encode_chain_record(*c, &(*r)[11].payload);
       },
       "record 12: the chain starts over"},
      {"forge a chain record's range",
       [](auto* r) {
         auto c = decode_chain_record((*r)[7].payload);
         c->count = 2;
         (*r)[7].payload.clear();
         encode_chain_record(*c, &(*r)[7].payload);
       },
       "record 8 is a chain record for records 5..6"},
  };
  for (const Tamper& t : tampers) {
    SCOPED_TRACE(t.name);
    TempDir tmp;
    std::vector<std::string> warnings;
    {
      auto j = testing::open_ok(chained(tmp.path(), &warnings));
      for (int b = 0; b < 4; ++b) ASSERT_TRUE(append_batch(*j, 3).is_ok());
    }
    std::vector<Rec> records;
    {
      auto ro = open_read_only(tmp.path());
      records = all_records(*ro);
      ASSERT_EQ(records.size(), 16u);
      EXPECT_TRUE(verify(*ro).ok());
    }
    t.change(&records);
    rewrite_journal(tmp.path(), records);
    auto ro = open_read_only(tmp.path());  // every checksum passes: it opens
    const ChainReport report = verify(*ro);
    ASSERT_FALSE(report.ok());
    EXPECT_NE(problems_text(report).find(t.expected), std::string::npos) << problems_text(report);
  }
}

TEST(AuditChain, RecordsDroppedFromTheEndAreCaughtByAnAnchorKeptOutside) {
  TempDir tmp;
  std::vector<std::string> warnings;
  ChainPoint anchored;
  {
    auto j = testing::open_ok(chained(tmp.path(), &warnings));
    for (int b = 0; b < 3; ++b) ASSERT_TRUE(append_batch(*j, 2).is_ok());
    anchored = *j->chain_point();  // what an operator copied from GET /v1/admin/audit/head
  }
  std::vector<Rec> records;
  {
    auto ro = open_read_only(tmp.path());
    records = all_records(*ro);
    const ChainReport ok = verify(*ro, 1, {{anchored, "--anchor"}});
    EXPECT_TRUE(ok.ok()) << problems_text(ok);
    EXPECT_EQ(ok.anchors_checked, 1u);
  }
  records.resize(records.size() - 3);  // the last batch, chain record included
  rewrite_journal(tmp.path(), records);
  auto ro = open_read_only(tmp.path());
  EXPECT_TRUE(verify(*ro).ok());  // without the anchor the shorter journal is consistent
  const ChainReport report = verify(*ro, 1, {{anchored, "--anchor"}});
  ASSERT_FALSE(report.ok());
  EXPECT_NE(problems_text(report).find("records were dropped from the end"), std::string::npos)
      << problems_text(report);

  ChainPoint wrong = anchored;
  wrong.seq = 6;  // a chain record still there, with another head
  const ChainReport mismatch = verify(*ro, 1, {{wrong, "--anchor"}});
  EXPECT_NE(problems_text(mismatch).find("record 6: its head differs from the one --anchor"),
            std::string::npos)
      << problems_text(mismatch);
}

TEST(AuditChain, SnapshotsCarryTheChainPointAndAnchorVerificationAfterRetention) {
  TempDir tmp;
  std::vector<std::string> warnings;
  JournalOptions o = chained(tmp.path(), &warnings);
  o.snapshots_kept = 1;
  o.segment_bytes_max = 256;
  ChainPoint at_snapshot;
  {
    auto j = testing::open_ok(o);
    for (int b = 0; b < 12; ++b) ASSERT_TRUE(append_batch(*j, 3).is_ok());
    at_snapshot = *j->chain_point();
    ASSERT_TRUE(j->write_snapshot(j->last_seq(), 1, "state").is_ok());
    const auto snap = j->load_newest_snapshot();
    ASSERT_TRUE(snap.has_value());
    EXPECT_EQ(snap->chain, at_snapshot);
    for (int b = 0; b < 3; ++b) ASSERT_TRUE(append_batch(*j, 2).is_ok());
  }
  {
    // Reopened from the snapshot, the chain goes on from its point.
    auto j = testing::open_ok(o);
    ASSERT_TRUE(append_batch(*j, 1).is_ok());
  }
  OpenReport opened;
  auto ro = open_read_only(tmp.path(), &opened);
  const uint64_t first = opened.first_seq;
  EXPECT_GT(first, 1u);  // retention removed the segments before the snapshot
  const std::vector<ChainAnchor> anchors = ro->snapshot_anchors();
  ASSERT_EQ(anchors.size(), 1u);
  EXPECT_EQ(anchors[0].point, at_snapshot);
  const ChainReport report = verify(*ro, first, anchors);
  EXPECT_TRUE(report.ok()) << problems_text(report);
  EXPECT_EQ(report.anchors_checked, 1u);

  // A snapshot whose point was rewritten (checksums fixed) no longer matches the chain.
  const auto snap_path = files_ending(tmp.path(), ".snap").at(0);
  std::string bytes = testing::read_bytes(snap_path);
  ChainPoint forged = at_snapshot;
  forged.head[0] ^= 1;
  const std::string state = bytes.substr(kSnapshotHeaderBytes);
  testing::write_bytes(snap_path,
                       encode_snapshot_header(at_snapshot.seq, 1, state, forged) + state);
  auto forged_ro = open_read_only(tmp.path());
  const ChainReport broken = verify(*forged_ro, first, forged_ro->snapshot_anchors());
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(problems_text(broken).find(snap_path.filename().string()), std::string::npos)
      << problems_text(broken);
}

TEST(AuditChain, ADirectoryFromBeforeTheChainGetsItsGenesisAtOpen) {
  TempDir tmp;
  std::vector<std::string> warnings;
  {
    auto j = testing::open_ok(testing::options_for(tmp.path(), 4096, &warnings));  // no chain
    ASSERT_TRUE(append_batch(*j, 2).is_ok());
  }
  // The 40-byte version 1 snapshot header, as main wrote it before the chain.
  std::string header = encode_snapshot_header(2, 7, "old state", std::nullopt).substr(0, 40);
  header[8] = 1;  // version
  const uint32_t crc = crc32c(std::string_view(header).substr(8, 32));
  std::memcpy(header.data() + 4, &crc, 4);
  testing::write_bytes(tmp.path() / snapshot_file_name(2), header + "old state");
  {
    auto j = testing::open_ok(chained(tmp.path(), &warnings));
    const auto snap = j->load_newest_snapshot();
    ASSERT_TRUE(snap.has_value());
    EXPECT_EQ(snap->state, "old state");
    EXPECT_FALSE(snap->chain.has_value());
    // Sealed at open: a genesis chain record covering nothing, so that a snapshot taken now
    // has a point.
    EXPECT_EQ(j->last_seq(), 3u);
    ASSERT_TRUE(j->chain_at(3).has_value());
    ASSERT_TRUE(append_batch(*j, 1).is_ok());
  }
  auto ro = open_read_only(tmp.path());
  const ChainReport report = verify(*ro);
  EXPECT_TRUE(report.ok()) << problems_text(report);
  EXPECT_EQ(report.uncovered_head, 2u);
  EXPECT_EQ(report.covered_from, 4u);
  EXPECT_EQ(report.chain_records, 2u);
}

}  // namespace
}  // namespace keel::journal
