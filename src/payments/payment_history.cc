#include "payments/payment_history.h"

#include "core/assert.h"

namespace keel::payments::payment_history {
namespace {

constexpr size_t kVersionBytes = 8;
constexpr char kSupersededPrefix = 's';

std::string prefix(Kind kind) { return {kPrefix, static_cast<char>(kind)}; }

// The id in a key of `kind`'s prefix (REQUIRES: such a key).
std::string_view id_of(std::string_view key) {
  KEEL_ASSERT(key.size() >= 2 + 1 + kVersionBytes);
  return key.substr(2, key.size() - 2 - 1 - kVersionBytes);
}

}  // namespace

std::string merchant_index_prefix(std::string_view merchant_id) {
  std::string k = "qm";
  k.append(merchant_id);
  k.push_back('\0');
  return k;
}

std::string customer_index_prefix(std::string_view customer_id) {
  std::string k = "qc";
  k.append(customer_id);
  k.push_back('\0');
  return k;
}

std::string key(Kind kind, std::string_view id, uint64_t version) {
  std::string k = prefix(kind);
  k.append(id);
  k.push_back('\0');
  append_be64(&k, version);
  return k;
}

Status read(const KvReader& store, Kind kind, std::string_view id, uint64_t horizon,
            std::optional<std::string>* out) {
  *out = std::nullopt;
  std::string begin = prefix(kind);
  begin.append(id);
  std::string end = begin;
  begin.push_back('\0');
  if (horizon == kNewest) {
    end.push_back('\1');
  } else {
    end.push_back('\0');
    append_be64(&end, horizon + 1);
  }
  return store.scan_range(begin, end, true, [&](std::string_view, std::string_view value) {
    *out = std::string(value);
    return false;
  });
}

Status scan(const KvReader& store, Kind kind, std::string_view after, uint64_t horizon,
            const RecordFn& fn) {
  std::string begin = prefix(kind);
  if (!after.empty()) {
    begin.append(after);
    begin.push_back('\1');  // past every version of `after`
  }
  std::string end = {kPrefix, static_cast<char>(static_cast<char>(kind) + 1)};
  // One id's versions arrive together, oldest first: the last one at or below the horizon is
  // passed on when the next id starts.
  std::string id;
  std::optional<std::string> value;
  bool go_on = true;
  const auto flush = [&] {
    if (value) go_on = fn(id, *value);
    value.reset();
  };
  Status s = store.scan_range(begin, end, false, [&](std::string_view k, std::string_view v) {
    const std::string_view this_id = id_of(k);
    if (this_id != id) {
      flush();
      if (!go_on) return false;
      id.assign(this_id);
    }
    if (read_be64_suffix(k) <= horizon) value = std::string(v);
    return true;
  });
  if (!s.is_ok()) return s;
  if (go_on) flush();
  return Status::ok();
}

Status scan_newer(const KvReader& store, uint64_t seq,
                  const std::function<void(std::string_view key)>& fn) {
  const std::string begin(1, kPrefix);
  const std::string end(1, static_cast<char>(kPrefix + 1));
  if (Status s =
          store.scan_range(begin, end, false,
                           [&](std::string_view k, std::string_view) {
                             if (k.size() >= 2 + 1 + kVersionBytes && read_be64_suffix(k) > seq) {
                               fn(k);
                             }
                             return true;
                           });
      !s.is_ok()) {
    return s;
  }
  if (seq == kNewest) return Status::ok();
  std::string markers(1, kSupersededPrefix);
  append_be64(&markers, seq + 1);
  return store.scan_range(markers, std::string(1, kSupersededPrefix + 1), false,
                          [&](std::string_view k, std::string_view) {
                            fn(k);
                            return true;
                          });
}

std::string superseded_marker(std::string_view versioned_key) {
  KEEL_ASSERT(versioned_key.size() >= 2 + 1 + kVersionBytes && versioned_key[0] == kPrefix);
  std::string m(1, kSupersededPrefix);
  m.append(versioned_key.substr(versioned_key.size() - kVersionBytes));  // the version
  m.push_back(versioned_key[1]);                                         // the kind
  m.append(id_of(versioned_key));
  return m;
}

Status scan_superseded(const KvReader& store, uint64_t seq,
                       const std::function<void(std::string_view key)>& fn) {
  std::string end(1, kSupersededPrefix);
  append_be64(&end, seq == kNewest ? seq : seq + 1);
  Status inner;
  const Status s = store.scan_range(
      std::string(1, kSupersededPrefix), end, false, [&](std::string_view m, std::string_view) {
        if (m.size() < 1 + kVersionBytes + 2) return true;  // not a marker this code writes
        const uint64_t version = read_be64_suffix(m.substr(0, 1 + kVersionBytes));
        const auto kind = static_cast<Kind>(m[1 + kVersionBytes]);
        const std::string_view id = m.substr(2 + kVersionBytes);
        inner = store.scan_range(key(kind, id, 0), key(kind, id, version), false,
                                 [&](std::string_view k, std::string_view) {
                                   fn(k);
                                   return true;
                                 });
        if (!inner.is_ok()) return false;
        fn(m);
        return true;
      });
  return s.is_ok() ? inner : s;
}

}  // namespace keel::payments::payment_history
