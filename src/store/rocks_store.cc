#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <atomic>

#include "core/bytes.h"
#include "store/store.h"

namespace keel::store {
namespace {

// The key under which the store keeps its applied sequence (outside every record prefix: record
// keys start with a lower-case letter).
constexpr std::string_view kAppliedSeqKey = "!applied_seq";

std::string encode_seq(uint64_t seq) {
  std::string out;
  ByteWriter w(&out);
  w.u64(seq);
  return out;
}

class RocksStore final : public Store {
 public:
  RocksStore(std::unique_ptr<rocksdb::DB> db, std::filesystem::path dir, uint64_t applied)
      : db_(std::move(db)), dir_(std::move(dir)), applied_(applied) {}

  Status write(const WriteBatch& batch) override {
    rocksdb::WriteBatch b;
    for (const auto& [key, value] : batch.puts) b.Put(key, value);
    for (const std::string& key : batch.deletes) b.Delete(key);
    for (const auto& [begin, end] : batch.delete_ranges) {
      if (begin < end) b.DeleteRange(begin, end);
    }
    const uint64_t applied = std::max(batch.applied_seq, applied_.load());
    b.Put(kAppliedSeqKey, encode_seq(applied));
    rocksdb::WriteOptions w;
    w.sync = true;
    const rocksdb::Status s = db_->Write(w, &b);
    if (!s.ok()) return error("write", s);
    applied_.store(applied);
    return Status::ok();
  }

  [[nodiscard]] uint64_t applied_seq() const override { return applied_.load(); }

  Status get(std::string_view key, std::optional<std::string>* out) const override {
    std::string value;
    const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), rocksdb::Slice(key), &value);
    if (s.IsNotFound()) {
      out->reset();
      return Status::ok();
    }
    if (!s.ok()) return error("read", s);
    *out = std::move(value);
    return Status::ok();
  }

  Status scan(std::string_view prefix, const ScanFn& fn) const override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(rocksdb::Slice(prefix)); it->Valid(); it->Next()) {
      const rocksdb::Slice k = it->key();
      const std::string_view key(k.data(), k.size());
      if (!key.starts_with(prefix)) break;
      const rocksdb::Slice v = it->value();
      if (!fn(key, std::string_view(v.data(), v.size()))) break;
    }
    if (!it->status().ok()) return error("scan", it->status());
    return Status::ok();
  }

  Status scan_range(std::string_view begin, std::string_view end, bool reverse,
                    const ScanFn& fn) const override {
    if (begin >= end) return Status::ok();
    rocksdb::ReadOptions ro;
    const rocksdb::Slice lower(begin);
    const rocksdb::Slice upper(end);
    ro.iterate_lower_bound = &lower;
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    if (reverse) {
      it->SeekToLast();
    } else {
      it->SeekToFirst();
    }
    for (; it->Valid(); reverse ? it->Prev() : it->Next()) {
      const rocksdb::Slice k = it->key();
      const rocksdb::Slice v = it->value();
      if (!fn(std::string_view(k.data(), k.size()), std::string_view(v.data(), v.size()))) break;
    }
    if (!it->status().ok()) return error("scan", it->status());
    return Status::ok();
  }

  [[nodiscard]] uint64_t disk_bytes() const override {
    uint64_t bytes = 0;
    if (!db_->GetIntProperty(rocksdb::DB::Properties::kTotalSstFilesSize, &bytes)) return 0;
    return bytes;
  }

  Status checkpoint(const std::filesystem::path& dir) const override {
    rocksdb::Checkpoint* raw = nullptr;
    rocksdb::Status s = rocksdb::Checkpoint::Create(db_.get(), &raw);
    if (!s.ok()) return error("checkpoint", s);
    std::unique_ptr<rocksdb::Checkpoint> cp(raw);
    s = cp->CreateCheckpoint(dir.string());
    if (!s.ok()) return error("checkpoint to " + dir.string(), s);
    return Status::ok();
  }

 private:
  Status error(std::string_view what, const rocksdb::Status& s) const {
    return Status::error("history store " + dir_.string() + ": " + std::string(what) + ": " +
                         s.ToString());
  }

  std::unique_ptr<rocksdb::DB> db_;
  std::filesystem::path dir_;
  std::atomic<uint64_t> applied_;
};

}  // namespace

Status open_rocks_store(const std::filesystem::path& dir, bool read_only, size_t cache_mb,
                        std::unique_ptr<Store>* out) {
  rocksdb::Options o;
  o.create_if_missing = !read_only;
  o.compression = rocksdb::kLZ4Compression;
  // Small write buffers: the history tier's memory is part of keeld's budget.
  o.write_buffer_size = size_t{16} << 20;
  o.max_write_buffer_number = 2;
  o.keep_log_file_num = 4;
  rocksdb::BlockBasedTableOptions t;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  t.block_cache = rocksdb::NewLRUCache(std::max<size_t>(cache_mb, 1) << 20);
  // Index and filter blocks stay with their table, outside the cache: a filter is 1.25 bytes a
  // record and a large table's filter block does not fit a cache shard (it would be read from
  // disk on every lookup).
  t.cache_index_and_filter_blocks = false;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status s = read_only ? rocksdb::DB::OpenForReadOnly(o, dir.string(), &raw)
                                      : rocksdb::DB::Open(o, dir.string(), &raw);
  if (!s.ok()) return Status::error("history store " + dir.string() + ": " + s.ToString());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string value;
  uint64_t applied = 0;
  const rocksdb::Status g = db->Get(rocksdb::ReadOptions(), kAppliedSeqKey, &value);
  if (g.ok()) {
    ByteReader r(value);
    if (!r.u64(&applied) || !r.at_end()) {
      return Status::error("history store " + dir.string() + ": malformed applied sequence");
    }
  } else if (!g.IsNotFound()) {
    return Status::error("history store " + dir.string() + ": " + g.ToString());
  }
  *out = std::make_unique<RocksStore>(std::move(db), dir, applied);
  return Status::ok();
}

}  // namespace keel::store
