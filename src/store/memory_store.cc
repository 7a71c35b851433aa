#include "store/store.h"

namespace keel::store {

Status MemoryStore::write(const WriteBatch& batch) {
  std::lock_guard lock(data_->mu);
  if (data_->fail_next_write || data_->fail_writes) {
    data_->fail_next_write = false;
    return Status::error("memory store: injected write failure");
  }
  for (const auto& [key, value] : batch.puts) data_->records.insert_or_assign(key, value);
  for (const std::string& key : batch.deletes) data_->records.erase(key);
  for (const auto& [begin, end] : batch.delete_ranges) {
    if (begin < end) {
      data_->records.erase(data_->records.lower_bound(begin), data_->records.lower_bound(end));
    }
  }
  if (batch.applied_seq > data_->applied_seq) data_->applied_seq = batch.applied_seq;
  ++data_->writes;
  return Status::ok();
}

uint64_t MemoryStore::applied_seq() const {
  std::lock_guard lock(data_->mu);
  return data_->applied_seq;
}

Status MemoryStore::get(std::string_view key, std::optional<std::string>* out) const {
  std::lock_guard lock(data_->mu);
  const auto it = data_->records.find(key);
  if (it == data_->records.end()) {
    out->reset();
  } else {
    *out = it->second;
  }
  return Status::ok();
}

// Scans copy a few records at a time and call `fn` without the lock, so that `fn` may read the
// store (as it may with RocksDB's iterators). From `from` (reverse: from the key below it) while
// `in_range` holds.
Status MemoryStore::visit(std::string from, bool reverse,
                          const std::function<bool(std::string_view)>& in_range,
                          const ScanFn& fn) const {
  constexpr size_t kChunk = 64;
  for (;;) {
    std::vector<std::pair<std::string, std::string>> chunk;
    {
      std::lock_guard lock(data_->mu);
      auto it = data_->records.lower_bound(from);
      while (chunk.size() < kChunk) {
        if (reverse) {
          if (it == data_->records.begin()) break;
          --it;
        } else if (it == data_->records.end()) {
          break;
        }
        if (!in_range(it->first)) break;
        chunk.emplace_back(it->first, it->second);
        if (!reverse) ++it;
      }
    }
    if (chunk.empty()) return Status::ok();
    for (const auto& [key, value] : chunk) {
      if (!fn(key, value)) return Status::ok();
    }
    from = chunk.back().first;
    if (!reverse) from.push_back('\0');  // the least key above it
  }
}

Status MemoryStore::scan(std::string_view prefix, const ScanFn& fn) const {
  return visit(
      std::string(prefix), false,
      [prefix](std::string_view key) { return key.starts_with(prefix); }, fn);
}

Status MemoryStore::scan_range(std::string_view begin, std::string_view end, bool reverse,
                               const ScanFn& fn) const {
  if (begin >= end) return Status::ok();
  return visit(
      std::string(reverse ? end : begin), reverse,
      [begin, end](std::string_view key) { return key >= begin && key < end; }, fn);
}

Status MemoryStore::checkpoint(const std::filesystem::path& dir) const {
  return Status::error("memory store: no files to copy to " + dir.string());
}

}  // namespace keel::store
