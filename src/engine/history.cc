#include "engine/history.h"

#include <chrono>

#include "core/assert.h"

namespace keel::engine {

namespace {

constexpr char kTransferPrefix = 't';

bool parse_key(std::string_view key, uint32_t* index) {
  if (key.size() != 5 || key[0] != kTransferPrefix) return false;
  uint32_t v = 0;
  for (size_t i = 1; i < 5; ++i) v = (v << 8) | static_cast<uint8_t>(key[i]);
  *index = v;
  return true;
}

}  // namespace

std::string HistoryTier::key(uint32_t index) {
  std::string k(5, '\0');
  k[0] = kTransferPrefix;
  for (size_t i = 0; i < 4; ++i) k[4 - i] = static_cast<char>((index >> (8 * i)) & 0xFF);
  return k;
}

HistoryTier::HistoryTier(std::unique_ptr<store::Store> store, Log log)
    : store_(std::move(store)), log_(std::move(log)) {
  mover_ = std::thread([this] { move_loop(); });
  reader_ = std::thread([this] { read_loop(); });
}

HistoryTier::~HistoryTier() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  mover_wake_.notify_one();
  reader_wake_.notify_one();
  mover_.join();
  reader_.join();
}

Status read_transfer(const store::Store& store, uint32_t index, ledger::Transfer* out) {
  std::optional<std::string> value;
  if (Status s = store.get(HistoryTier::key(index), &value); !s.is_ok()) return s;
  if (!value) return Status::error("history store: transfer " + std::to_string(index) + " missing");
  return ledger::Ledger::decode_cold(*value, out);
}

std::optional<std::string> StoreColdTransfers::read(uint32_t index) const {
  std::optional<std::string> value;
  if (Status s = store_->get(HistoryTier::key(index), &value); !s.is_ok()) return std::nullopt;
  return value;
}

Status StoreColdTransfers::scan(uint32_t below,
                                const std::function<Status(uint32_t, std::string_view)>& fn) const {
  Status failed;
  Status s =
      store_->scan(std::string(1, kTransferPrefix), [&](std::string_view k, std::string_view v) {
        uint32_t index = 0;
        if (!parse_key(k, &index)) {
          failed = Status::error("history store: malformed transfer key");
          return false;
        }
        if (index >= below) return false;
        failed = fn(index, v);
        return failed.is_ok();
      });
  if (!s.is_ok()) return s;
  return failed;
}

std::optional<std::string> HistoryTier::read(uint32_t index) const {
  std::optional<std::string> value = StoreColdTransfers(store_.get()).read(index);
  // The ledger asks only for transfers it moved: absent means the store failed or lost it.
  if (!value) log_(true, "history store: transfer " + std::to_string(index) + " unreadable");
  return value;
}

Status HistoryTier::scan(uint32_t below,
                         const std::function<Status(uint32_t, std::string_view)>& fn) const {
  return StoreColdTransfers(store_.get()).scan(below, fn);
}

void HistoryTier::submit(uint64_t seq, std::vector<ledger::FinalTransfer> records) {
  if (records.empty()) return;
  {
    std::lock_guard lock(mu_);
    queued_ += records.size();
    to_write_.push_back({seq, std::move(records)});
  }
  mover_wake_.notify_one();
}

std::vector<uint32_t> HistoryTier::take_durable() {
  std::lock_guard lock(mu_);
  std::vector<uint32_t> out;
  out.swap(durable_);
  return out;
}

void HistoryTier::read_async(std::function<void(const store::Store&)> fn) {
  {
    std::lock_guard lock(mu_);
    reads_.push_back(std::move(fn));
  }
  reader_wake_.notify_one();
}

HistoryTier::Counters HistoryTier::counters() const {
  Counters c;
  {
    std::lock_guard lock(mu_);
    c.moved = moved_;
    c.queued = queued_;
    c.write_failures = write_failures_;
  }
  c.applied_seq = store_->applied_seq();
  c.disk_bytes = store_->disk_bytes();
  return c;
}

// Writes everything queued as one synced store batch; on failure keeps it and tries again.
void HistoryTier::move_loop() {
  std::vector<Batch> work;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      mover_wake_.wait(lock, [this] { return stopping_ || !to_write_.empty(); });
      if (to_write_.empty()) return;  // stopping, and everything is written
      while (!to_write_.empty()) {
        work.push_back(std::move(to_write_.front()));
        to_write_.pop_front();
      }
    }
    store::WriteBatch batch;
    std::vector<uint32_t> indexes;
    for (Batch& b : work) {
      batch.applied_seq = std::max(batch.applied_seq, b.seq);
      for (ledger::FinalTransfer& f : b.records) {
        indexes.push_back(f.index);
        batch.puts.emplace_back(key(f.index), std::move(f.value));
      }
    }
    work.clear();
    for (;;) {
      const Status s = store_->write(batch);
      if (s.is_ok()) break;
      bool stopping = false;
      {
        std::lock_guard lock(mu_);
        ++write_failures_;
        stopping = stopping_;
      }
      log_(true,
           "history store write failed (the transfers stay in memory; retrying): " + s.message());
      // At stop the records are in the journal and the snapshot: nothing is lost by giving up.
      if (stopping) return;
      std::unique_lock lock(mu_);
      mover_wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; });
    }
    std::lock_guard lock(mu_);
    moved_ += indexes.size();
    queued_ -= indexes.size();
    durable_.insert(durable_.end(), indexes.begin(), indexes.end());
  }
}

void HistoryTier::read_loop() {
  for (;;) {
    std::function<void(const store::Store&)> fn;
    {
      std::unique_lock lock(mu_);
      reader_wake_.wait(lock, [this] { return stopping_ || !reads_.empty(); });
      if (reads_.empty()) return;
      fn = std::move(reads_.front());
      reads_.pop_front();
    }
    fn(*store_);
  }
}

}  // namespace keel::engine
