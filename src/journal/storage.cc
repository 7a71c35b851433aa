#include "journal/storage.h"

#include <utility>

#include "core/assert.h"
#include "journal/format.h"

namespace keel::journal {

std::string& Storage::begin_record(uint16_t type, Timestamp timestamp) {
  KEEL_ASSERT(!read_only_);
  KEEL_ASSERT(record_at_ == kNoRecord);
  const uint64_t seq = next_seq();
  record_at_ = staging_.size();
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
  if (Status s = write_batch(staging_, last_seq_ + 1, staged_records_); !s.is_ok()) {
    return fail(std::move(s));
  }
  last_seq_ += staged_records_;
  staging_.clear();  // keeps its capacity: no allocation per batch once warmed
  staged_records_ = 0;
  return Status::ok();
}

Status Storage::fail(Status s) {
  failure_ = "journal refuses writes after an earlier I/O error: " + s.message();
  return s;
}

}  // namespace keel::journal
