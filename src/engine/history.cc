#include "engine/history.h"

#include <chrono>

#include "core/assert.h"
#include "payments/outbox.h"
#include "payments/payment_history.h"

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

Status HistoryTier::remove_payments_after(uint64_t seq, uint64_t* removed) {
  *removed = 0;
  if (store_->applied_seq() <= seq) return Status::ok();
  store::WriteBatch batch;
  batch.applied_seq = store_->applied_seq();
  if (Status s = payments::payment_history::scan_newer(
          *store_, seq, [&](std::string_view k) { batch.deletes.emplace_back(k); });
      !s.is_ok()) {
    return s;
  }
  if (batch.deletes.empty()) return Status::ok();
  *removed = batch.deletes.size();
  return store_->write(batch);
}

void HistoryTier::submit(uint64_t seq, HistoryBatch records) {
  if (records.empty()) return;
  {
    std::lock_guard lock(mu_);
    queued_ += records.transfers.size() + records.payments.puts.size();
    to_write_.push_back({seq, std::move(records), std::nullopt});
  }
  mover_wake_.notify_one();
}

void HistoryTier::expire(const payments::PaymentsCore::HistoryMarks& marks) {
  {
    std::lock_guard lock(mu_);
    to_write_.push_back({0, {}, marks});
  }
  mover_wake_.notify_one();
}

HistoryDurable HistoryTier::take_durable() {
  std::lock_guard lock(mu_);
  HistoryDurable out;
  std::swap(out, durable_);
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
    c.events_moved = events_moved_;
    c.events_deleted = events_deleted_;
    c.keys_moved = keys_moved_;
    c.payments_moved = payments_moved_;
    c.flows_moved = flows_moved_;
    c.superseded_deleted = superseded_deleted_;
    c.queued = queued_;
    c.write_failures = write_failures_;
  }
  c.applied_seq = store_->applied_seq();
  c.disk_bytes = store_->disk_bytes();
  return c;
}

bool HistoryTier::write_until_done(const store::WriteBatch& batch, std::string_view what) {
  for (;;) {
    const Status s = store_->write(batch);
    if (s.is_ok()) return true;
    bool stopping = false;
    {
      std::lock_guard lock(mu_);
      ++write_failures_;
      stopping = stopping_;
    }
    log_(true, "history store write failed (" + std::string(what) + "; retrying): " + s.message());
    // At stop the records are in the journal and the snapshot: nothing is lost by giving up.
    if (stopping) return false;
    std::unique_lock lock(mu_);
    mover_wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; });
  }
}

// Deletes the event records below outbox seq `below` and their index records, a bounded batch
// at a time. Each batch holds whole events (record and indexes), so a crash between batches
// leaves no index without its record; the next expiry finishes the work.
void HistoryTier::expire_events(uint64_t below) {
  constexpr size_t kEventsPerBatch = 4096;
  if (below <= expired_below_) return;
  for (;;) {
    store::WriteBatch batch;
    batch.applied_seq = store_->applied_seq();
    size_t events = 0;
    bool malformed = false;
    const Status s =
        store_->scan_range(payments::event_key(0), payments::event_key(below), false,
                           [&](std::string_view key, std::string_view value) {
                             uint64_t seq = 0;
                             payments::StoredEvent e;
                             if (!payments::decode_event_record(value, &seq, &e)) {
                               malformed = true;
                               return false;
                             }
                             batch.deletes.emplace_back(key);
                             for (std::string& k : payments::event_index_keys(seq, e.event)) {
                               batch.deletes.push_back(std::move(k));
                             }
                             return ++events < kEventsPerBatch;
                           });
    if (!s.is_ok() || malformed) {
      log_(true, "history store: expired events not deleted (they stay until the next try): " +
                     (malformed ? std::string("a malformed event record") : s.message()));
      return;
    }
    if (events == 0) break;
    if (!write_until_done(batch, "expired events stay until written")) return;
    std::lock_guard lock(mu_);
    events_deleted_ += events;
  }
  expired_below_ = below;
}

// Idempotency records sort by expiry: one range deletion.
void HistoryTier::expire_keys(Timestamp before) {
  store::WriteBatch batch;
  batch.applied_seq = store_->applied_seq();
  std::string end(payments::kIdempotencyRecordPrefix);
  append_be64(&end, static_cast<uint64_t>(before));
  batch.delete_ranges.emplace_back(std::string(payments::kIdempotencyRecordPrefix), end);
  (void)write_until_done(batch, "expired idempotency records stay until written");
}

// Versions of payments and wallet flows that no recovery reads any more, with their markers.
void HistoryTier::expire_superseded(uint64_t snapshot_seq) {
  if (snapshot_seq == 0) return;
  store::WriteBatch batch;
  batch.applied_seq = store_->applied_seq();
  if (Status s = payments::payment_history::scan_superseded(
          *store_, snapshot_seq, [&](std::string_view k) { batch.deletes.emplace_back(k); });
      !s.is_ok()) {
    log_(true, "history store: superseded versions not deleted (they stay until the next try): " +
                   s.message());
    return;
  }
  if (batch.deletes.empty()) return;
  const size_t n = batch.deletes.size();
  if (!write_until_done(batch, "superseded versions stay until written")) return;
  std::lock_guard lock(mu_);
  superseded_deleted_ += n;
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
    HistoryDurable written;
    std::optional<payments::PaymentsCore::HistoryMarks> expire;
    size_t records = 0;
    for (Batch& b : work) {
      if (b.expire) expire = b.expire;  // the latest marks cover the earlier ones
      batch.applied_seq = std::max(batch.applied_seq, b.seq);
      for (ledger::FinalTransfer& f : b.records.transfers) {
        written.transfers.push_back(f.index);
        batch.puts.emplace_back(key(f.index), std::move(f.value));
      }
      payments::PaymentsCore::HistoryRecords& p = b.records.payments;
      records += p.puts.size();
      for (auto& record : p.puts) batch.puts.push_back(std::move(record));
      auto& w = written.payments;
      w.events.insert(w.events.end(), p.events.begin(), p.events.end());
      for (std::string& k : p.keys) w.keys.push_back(std::move(k));
      for (auto& id : p.payments) w.payments.push_back(std::move(id));
      for (auto& id : p.flows) w.flows.push_back(std::move(id));
    }
    work.clear();
    if (!batch.puts.empty()) {
      if (!write_until_done(batch, "the records stay in memory")) return;
      std::lock_guard lock(mu_);
      moved_ += written.transfers.size();
      const auto& w = written.payments;
      events_moved_ += w.events.size();
      keys_moved_ += w.keys.size();
      payments_moved_ += w.payments.size();
      flows_moved_ += w.flows.size();
      queued_ -= written.transfers.size() + records;
      durable_.transfers.insert(durable_.transfers.end(), written.transfers.begin(),
                                written.transfers.end());
      auto& d = durable_.payments;
      d.events.insert(d.events.end(), w.events.begin(), w.events.end());
      d.keys.insert(d.keys.end(), std::make_move_iterator(written.payments.keys.begin()),
                    std::make_move_iterator(written.payments.keys.end()));
      d.payments.insert(d.payments.end(),
                        std::make_move_iterator(written.payments.payments.begin()),
                        std::make_move_iterator(written.payments.payments.end()));
      d.flows.insert(d.flows.end(), std::make_move_iterator(written.payments.flows.begin()),
                     std::make_move_iterator(written.payments.flows.end()));
    }
    // After the puts queued before it: what expired was written first.
    if (expire) {
      expire_events(expire->events_first_seq);
      expire_keys(expire->keys_expired_before);
      expire_superseded(expire->snapshot_seq);
    }
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
