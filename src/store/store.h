#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/kv_reader.h"
#include "core/status.h"

namespace keel::store {

// One durable write to the history store: records to put, keys to delete (history past its
// retention: keys, and ranges of keys), and the journal sequence the store reaches with them (every
// record moved out by commits up to `applied_seq` is in the store once the write succeeds). Puts of
// a key already stored carry the same bytes (history is immutable), so writing a batch again
// (replay after a crash) changes nothing; deleting a key that is absent is no error. Puts apply
// before deletes, and the whole batch is atomic.
struct WriteBatch {
  std::vector<std::pair<std::string, std::string>> puts;
  uint64_t applied_seq = 0;
  std::vector<std::string> deletes;
  std::vector<std::pair<std::string, std::string>> delete_ranges;  // [begin, end) each
};

using ScanFn = KvScanFn;

// The history store: an ordered key-value store on disk for what no longer changes (docs/
// storage.md). The engine writes it from one thread (its mover) and reads it from others.
//
// Thread: every method may be called from any thread at once.
// Failures: write() is durable when it returns ok (synced); a failed write may have stored any
// subset of the batch (the caller never counts on it, and a retry writes the same bytes). A read
// that fails returns an error Status with the store's message: the store is damaged or the disk
// failed; callers treat it as fatal for the read, never as "not found".
class Store : public KvReader {
 public:
  ~Store() override = default;

  virtual Status write(const WriteBatch& batch) = 0;
  // The highest applied_seq written (0 for a new store).
  [[nodiscard]] virtual uint64_t applied_seq() const = 0;
  // get() and scan_range() as KvReader says.
  // Calls `fn` for every key starting with `prefix`, in ascending key order, while it returns
  // true. Keys and values are valid only during the call.
  virtual Status scan(std::string_view prefix, const ScanFn& fn) const = 0;
  // Bytes on disk (0 for the memory store); for status and benchmarks.
  [[nodiscard]] virtual uint64_t disk_bytes() const = 0;
  // A consistent copy of the store as it is now (every write that returned), openable by
  // open_rocks_store, in `dir` (which must not exist). RocksDB hard-links its immutable files
  // where it can. Fails with the reason (the memory store has no files to copy).
  virtual Status checkpoint(const std::filesystem::path& dir) const = 0;
};

// RocksDB in `dir` (created if missing unless read_only): LZ4 compression, a 10-bit Bloom
// filter per table, synced writes, and `cache_mb` of block cache. Fails with the path and
// RocksDB's message (no such store in read-only mode, locked by another process, corrupt).
Status open_rocks_store(const std::filesystem::path& dir, bool read_only, size_t cache_mb,
                        std::unique_ptr<Store>* out);

// What a MemoryStore holds; outlives the stores opened over it, like a disk outlives a process
// (tests restart an engine over the same contents). Every successful write is durable at once.
struct MemoryStoreData {
  std::mutex mu;
  std::map<std::string, std::string, std::less<>> records;
  uint64_t applied_seq = 0;
  uint64_t writes = 0;
  bool fail_next_write = false;  // the next write stores nothing and fails
  bool fail_writes = false;      // every write stores nothing and fails while set
};

// The history store for tests: a map, with a failed write on demand.
class MemoryStore final : public Store {
 public:
  explicit MemoryStore(std::shared_ptr<MemoryStoreData> data) : data_(std::move(data)) {}

  Status write(const WriteBatch& batch) override;
  [[nodiscard]] uint64_t applied_seq() const override;
  Status get(std::string_view key, std::optional<std::string>* out) const override;
  Status scan(std::string_view prefix, const ScanFn& fn) const override;
  Status scan_range(std::string_view begin, std::string_view end, bool reverse,
                    const ScanFn& fn) const override;
  [[nodiscard]] uint64_t disk_bytes() const override { return 0; }
  Status checkpoint(const std::filesystem::path& dir) const override;

 private:
  Status visit(std::string from, bool reverse,
               const std::function<bool(std::string_view)>& in_range, const ScanFn& fn) const;

  std::shared_ptr<MemoryStoreData> data_;
};

}  // namespace keel::store
