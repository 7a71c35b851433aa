#include "bench/store_bench.h"

#include <lmdb.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace keel::bench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// splitmix64: the record order and the values, the same for both stores.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Record i's key: "pay_" and 16 hex digits of a permutation-like hash of i (distinct for
// distinct i, in no useful order).
std::string key_of(uint64_t i, uint64_t seed) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "pay_%016llx", static_cast<unsigned long long>(mix(i ^ seed)));
  return buf;
}

std::string value_of(uint64_t i, uint32_t bytes) {
  std::string v(bytes, '\0');
  uint64_t x = i;
  for (size_t j = 0; j < v.size(); ++j) {
    if (j % 8 == 0) x = mix(x);
    // JSON-like text compresses as keel's bodies would: a few distinct bytes.
    v[j] = "{}\":,abcdefgh0123456789_"[x % 24];
    x >>= 5;
  }
  return v;
}

uint64_t dir_bytes(const std::filesystem::path& dir) {
  uint64_t n = 0;
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir)) {
    if (f.is_regular_file()) n += f.file_size();
  }
  return n;
}

// One store behind the three operations measured.
class Store {
 public:
  virtual ~Store() = default;
  virtual void write_batch(const std::vector<std::pair<std::string, std::string>>& batch) = 0;
  // Returns the value's size (0: missing).
  virtual size_t get(const std::string& key) = 0;
  // Reads up to n records from the first key >= `from`; returns how many.
  virtual size_t scan(const std::string& from, size_t n) = 0;
  // Makes what was written take its resting size on disk (RocksDB: flush the memtable).
  virtual void settle() {}
};

class RocksStore final : public Store {
 public:
  explicit RocksStore(const std::filesystem::path& dir) {
    rocksdb::Options o;
    o.create_if_missing = true;
    o.compression = rocksdb::kLZ4Compression;
    rocksdb::BlockBasedTableOptions t;
    t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));  // point reads skip files
    o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
    rocksdb::DB* db = nullptr;
    const rocksdb::Status s = rocksdb::DB::Open(o, dir.string(), &db);
    if (!s.ok()) throw std::runtime_error("rocksdb open: " + s.ToString());
    db_.reset(db);
  }
  void write_batch(const std::vector<std::pair<std::string, std::string>>& batch) override {
    rocksdb::WriteBatch b;
    for (const auto& [k, v] : batch) b.Put(k, v);
    rocksdb::WriteOptions w;
    w.sync = true;  // durable before the next batch, as LMDB's commit
    const rocksdb::Status s = db_->Write(w, &b);
    if (!s.ok()) throw std::runtime_error("rocksdb write: " + s.ToString());
  }
  void settle() override {
    const rocksdb::Status s = db_->Flush(rocksdb::FlushOptions());
    if (!s.ok()) throw std::runtime_error("rocksdb flush: " + s.ToString());
  }
  size_t get(const std::string& key) override {
    std::string v;
    return db_->Get(rocksdb::ReadOptions(), key, &v).ok() ? v.size() : 0;
  }
  size_t scan(const std::string& from, size_t n) override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    size_t got = 0;
    for (it->Seek(from); it->Valid() && got < n; it->Next()) ++got;
    return got;
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
};

class LmdbStore final : public Store {
 public:
  explicit LmdbStore(const std::filesystem::path& dir, uint64_t map_bytes) {
    check(mdb_env_create(&env_), "env_create");
    check(mdb_env_set_mapsize(env_, map_bytes), "set_mapsize");
    check(mdb_env_open(env_, dir.c_str(), MDB_NORDAHEAD, 0644), "env_open");
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env_, nullptr, 0, &txn), "txn_begin");
    check(mdb_dbi_open(txn, nullptr, 0, &dbi_), "dbi_open");
    check(mdb_txn_commit(txn), "txn_commit");
  }
  ~LmdbStore() override { mdb_env_close(env_); }
  LmdbStore(const LmdbStore&) = delete;
  LmdbStore& operator=(const LmdbStore&) = delete;

  void write_batch(const std::vector<std::pair<std::string, std::string>>& batch) override {
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env_, nullptr, 0, &txn), "txn_begin");
    for (const auto& [k, v] : batch) {
      MDB_val key{k.size(), const_cast<char*>(k.data())};
      MDB_val val{v.size(), const_cast<char*>(v.data())};
      if (const int rc = mdb_put(txn, dbi_, &key, &val, 0); rc != 0) {
        mdb_txn_abort(txn);
        check(rc, "put");
      }
    }
    check(mdb_txn_commit(txn), "txn_commit");  // synced: LMDB's default
  }
  size_t get(const std::string& k) override {
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn), "txn_begin");
    MDB_val key{k.size(), const_cast<char*>(k.data())};
    MDB_val val{};
    const int rc = mdb_get(txn, dbi_, &key, &val);
    mdb_txn_abort(txn);
    return rc == 0 ? val.mv_size : 0;
  }
  size_t scan(const std::string& from, size_t n) override {
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn), "txn_begin");
    MDB_cursor* c = nullptr;
    check(mdb_cursor_open(txn, dbi_, &c), "cursor_open");
    MDB_val key{from.size(), const_cast<char*>(from.data())};
    MDB_val val{};
    size_t got = 0;
    for (int rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); rc == 0 && got < n;
         rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
      ++got;
    }
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return got;
  }

 private:
  static void check(int rc, const char* what) {
    if (rc != 0) throw std::runtime_error(std::string("lmdb ") + what + ": " + mdb_strerror(rc));
  }
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
};

void run_one(const std::string& name, Store& store, const std::filesystem::path& dir,
             const StoreBenchOptions& o, std::vector<Row>* rows) {
  // Writes, in durable batches; each batch's latency is a sample.
  std::vector<double> batch_ms;
  std::vector<std::pair<std::string, std::string>> batch;
  batch.reserve(o.batch);
  const auto t_write = Clock::now();
  for (uint64_t i = 0; i < o.records; ++i) {
    batch.emplace_back(key_of(i, o.seed), value_of(i, o.value_bytes));
    if (batch.size() == o.batch || i + 1 == o.records) {
      const auto t = Clock::now();
      store.write_batch(batch);
      batch_ms.push_back(seconds_since(t) * 1e3);
      batch.clear();
    }
  }
  const double write_s = seconds_since(t_write);
  store.settle();
  const uint64_t disk = dir_bytes(dir);
  Row w = timed_row(name + " write (batches of " + std::to_string(o.batch) + ", synced)", o.records,
                    write_s, batch_ms);
  w.extra = {
      {"bytes on disk per record", static_cast<double>(disk) / static_cast<double>(o.records)},
      {"value bytes", static_cast<double>(o.value_bytes)}};
  rows->push_back(std::move(w));

  // Point reads of existing ids, in random order.
  std::vector<double> read_ms;
  read_ms.reserve(o.reads);
  size_t missing = 0;
  const auto t_read = Clock::now();
  for (uint64_t r = 0; r < o.reads; ++r) {
    const uint64_t i = mix(r + o.seed * 7) % o.records;
    const auto t = Clock::now();
    if (store.get(key_of(i, o.seed)) != o.value_bytes) ++missing;
    read_ms.push_back(seconds_since(t) * 1e3);
  }
  const double read_s = seconds_since(t_read);
  if (missing > 0)
    throw std::runtime_error(name + ": " + std::to_string(missing) + " reads missed");
  rows->push_back(timed_row(name + " point read by id", o.reads, read_s, read_ms));

  // Ordered scans of 100 records from random points (a list page).
  const uint64_t scans = std::max<uint64_t>(1, o.reads / 100);
  std::vector<double> scan_ms;
  const auto t_scan = Clock::now();
  for (uint64_t s = 0; s < scans; ++s) {
    const auto t = Clock::now();
    (void)store.scan(key_of(mix(s + o.seed * 13), o.seed), 100);
    scan_ms.push_back(seconds_since(t) * 1e3);
  }
  const double scan_s = seconds_since(t_scan);
  rows->push_back(timed_row(name + " scan of 100", scans, scan_s, scan_ms));
}

}  // namespace

std::vector<Row> run_store_bench(const StoreBenchOptions& o) {
  if (o.records == 0 || o.batch == 0 || o.value_bytes == 0) {
    throw std::invalid_argument("store bench: records, batch and value bytes must be positive");
  }
  std::vector<Row> rows;
  for (const std::string name : {"rocksdb", "lmdb"}) {
    const std::filesystem::path dir = o.dir / name;
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    if (name == "rocksdb") {
      RocksStore store(dir);
      run_one(name, store, dir, o, &rows);
    } else {
      // Room for the records three times over (B-tree pages half full after random inserts).
      const uint64_t map =
          std::max<uint64_t>(uint64_t{1} << 30, o.records * (o.value_bytes + 64) * 3);
      LmdbStore store(dir, map);
      run_one(name, store, dir, o, &rows);
    }
    std::filesystem::remove_all(dir);
  }
  return rows;
}

}  // namespace keel::bench
