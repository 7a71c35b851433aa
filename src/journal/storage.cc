#include "journal/storage.h"

#include <utility>

#include "core/assert.h"
#include "journal/audit_chain.h"
#include "journal/format.h"

namespace keel::journal {

std::string& Storage::begin_record(uint16_t type, Timestamp timestamp) {
  KEEL_ASSERT(!read_only_);
  KEEL_ASSERT(record_at_ == kNoRecord);
  const uint64_t seq = next_seq();
  record_at_ = staging_.size();
  last_staged_timestamp_ = timestamp;
  append_record_header(&staging_, type, seq, timestamp);
  return staging_;
}

void Storage::end_record() {
  KEEL_ASSERT(record_at_ != kNoRecord);
  seal_record(&staging_, record_at_);
  record_at_ = kNoRecord;
  ++staged_records_;
}

uint64_t Storage::next_seq() const {
  return last_seq_ + staged_records_ + (record_at_ == kNoRecord ? 0 : 1) + 1;
}

Status Storage::commit() {
  KEEL_ASSERT(!read_only_);
  KEEL_ASSERT(record_at_ == kNoRecord);
  if (!failure_.empty()) return Status::error(failure_);
  if (staged_records_ == 0) return Status::ok();
  if (!chain_on_) return write_staged();
  return write_chained();
}

// Appends the chain record covering the records since the last one (those durable before this
// storage opened, already in the hasher, and the staged ones), then writes the batch.
Status Storage::write_chained() {
  const uint64_t first_covered = chain_ ? chain_->seq + 1 : last_seq_ + 1;
  chain_hasher_.add(staging_);
  ChainRecord link;
  link.first_seq = first_covered;
  link.count = static_cast<uint32_t>(next_seq() - first_covered);
  link.prev = chain_ ? chain_->head : ChainDigest{};
  link.head = chain_hasher_.head();
  KEEL_ASSERT(link.first_seq + link.count == next_seq());
  encode_chain_record(link, &begin_record(kChainRecordType, last_staged_timestamp_));
  end_record();
  const ChainPoint point{last_seq_ + staged_records_, link.head};
  if (Status s = write_staged(); !s.is_ok()) return s;
  KEEL_ASSERT(point.seq == last_seq_);
  chain_ = point;
  chain_hasher_.reset(point.head);
  return Status::ok();
}

Status Storage::write_staged() {
  if (Status s = write_batch(staging_, last_seq_ + 1, staged_records_); !s.is_ok()) {
    return fail(std::move(s));
  }
  last_seq_ += staged_records_;
  staging_.clear();  // keeps its capacity: no allocation per batch once warmed
  staged_records_ = 0;
  return Status::ok();
}

Status Storage::resume_chain(uint64_t snapshot_seq,
                             const std::optional<ChainPoint>& snapshot_chain) {
  KEEL_ASSERT(!read_only_ && staged_records_ == 0);
  if (!chain_on_) return Status::ok();
  // Records up to the snapshot may be gone, so its point serves only when it is the snapshot's
  // own record (always so for the engine's snapshots, taken right after a commit).
  const uint64_t from = snapshot_seq + 1;
  std::optional<ChainPoint> found;
  if (snapshot_chain && snapshot_chain->seq == snapshot_seq) found = snapshot_chain;
  ChainHasher hasher(found ? found->head : ChainDigest{});
  Status s = replay(from, [&](const RecordView& r) {
    if (r.type != kChainRecordType) {
      hasher.add_record(r.seq, r.type, r.timestamp, r.payload);
      return Status::ok();
    }
    const std::optional<ChainRecord> c = decode_chain_record(r.payload);
    if (!c) return Status::error("record " + std::to_string(r.seq) + ": bad chain record");
    found = ChainPoint{r.seq, c->head};
    hasher.reset(c->head);
    return Status::ok();
  });
  if (!s.is_ok()) return Status::error("audit chain: " + s.message());
  chain_ = found;
  if (found) {
    chain_hasher_ = std::move(hasher);
  } else {
    chain_hasher_.reset(ChainDigest{});  // a genesis: it covers nothing before it
  }
  // Seal what the chain does not cover yet (a torn batch's records; or, in a directory written
  // before the chain, mark where it starts): from here on chain_at(last_seq()) always has the
  // point, so every snapshot carries one.
  if (last_seq_ > (chain_ ? chain_->seq : 0)) return write_chained();
  return Status::ok();
}

Status Storage::fail(Status s) {
  failure_ = "journal refuses writes after an earlier I/O error: " + s.message();
  return s;
}

}  // namespace keel::journal
