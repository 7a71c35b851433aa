#include "store/store.h"

namespace keel::store {

Status MemoryStore::write(const WriteBatch& batch) {
  std::lock_guard lock(data_->mu);
  if (data_->fail_next_write) {
    data_->fail_next_write = false;
    return Status::error("memory store: injected write failure");
  }
  for (const auto& [key, value] : batch.puts) data_->records.insert_or_assign(key, value);
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

Status MemoryStore::scan(std::string_view prefix, const ScanFn& fn) const {
  std::lock_guard lock(data_->mu);
  for (auto it = data_->records.lower_bound(prefix);
       it != data_->records.end() && it->first.starts_with(prefix); ++it) {
    if (!fn(it->first, it->second)) break;
  }
  return Status::ok();
}

Status MemoryStore::checkpoint(const std::filesystem::path& dir) const {
  return Status::error("memory store: no files to copy to " + dir.string());
}

}  // namespace keel::store
