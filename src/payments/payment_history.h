#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "core/kv_reader.h"
#include "core/status.h"

namespace keel::payments::payment_history {

// Payments in the history store (docs/storage.md, "Layout"). Every record is versioned:
//
//   "py" + payment id + '\0' + version -> the payment (PaymentMachine::encode_payment)
//   "pr" + refund id  + '\0' + version -> the id of the refund's payment
//   "pd" + attempt id + '\0' + version -> routing's decision on that authorization attempt
//   "pt" + object id  + '\0' + version -> the traceparent of that payment or refund
//   "pw" + flow id    + '\0' + version -> a top-up, payout or wallet transfer at rest
//                                         (WalletFlows::encode_flow_record)
//
// A payment leaves memory once it is at rest, and comes back when a refund or a PSP report
// reaches it; at rest again, it is written again. The version is the journal record up to which
// the state it was taken from had applied, so the record with version v is the object as it
// stood after record v. A reader standing at journal position `horizon` reads, per id, the
// newest version at or below it: recovery replays the journal from a snapshot older than
// versions the store may already hold, and must see each payment as it stood then. Ids are
// [A-Za-z0-9_-], so '\0' ends an id and one id's versions sort together, oldest first.
//
// Thread: any (they read only the reader they are given).

enum class Kind : char { payment = 'y', refund = 'r', decision = 'd', trace = 't', flow = 'w' };
inline constexpr char kPrefix = 'p';
inline constexpr uint64_t kNewest = std::numeric_limits<uint64_t>::max();

[[nodiscard]] std::string key(Kind kind, std::string_view id, uint64_t version);

// The newest version of `id` at or below `horizon` (`*out` nullopt when there is none).
[[nodiscard]] Status read(const KvReader& store, Kind kind, std::string_view id, uint64_t horizon,
                          std::optional<std::string>* out);

// Calls fn(id, value) with the newest version at or below `horizon` of every id of `kind` after
// `after` (empty: from the first), in ascending id order, while fn returns true.
using RecordFn = std::function<bool(std::string_view id, std::string_view value)>;
[[nodiscard]] Status scan(const KvReader& store, Kind kind, std::string_view after,
                          uint64_t horizon, const RecordFn& fn);

// Walks `hot` (a std::map by id) and, when `store` is not null, the records of `kind` in it
// (newest at or below `horizon`), by id in one pass: on_hot(id, value) for each entry of `hot`,
// on_cold(id, record) for each record whose id `hot` lacks (an entry in memory stands for its
// record). Fails when the store does.
template <typename Map, typename OnHot, typename OnCold>
[[nodiscard]] Status merge_by_id(const Map& hot, const KvReader* store, Kind kind, uint64_t horizon,
                                 const OnHot& on_hot, const OnCold& on_cold) {
  auto h = hot.begin();
  if (store != nullptr) {
    Status s = scan(*store, kind, "", horizon, [&](std::string_view id, std::string_view record) {
      for (; h != hot.end() && h->first < id; ++h) on_hot(h->first, h->second);
      if (h != hot.end() && h->first == id) return true;
      on_cold(id, record);
      return true;
    });
    if (!s.is_ok()) return s;
  }
  for (; h != hot.end(); ++h) on_hot(h->first, h->second);
  return Status::ok();
}

// List indexes of payments at rest, by merchant and by customer (immutable, not versioned, so
// outside the "p" keys): "qm" + merchant id + '\0' + payment id and "qc" + customer id + '\0' +
// payment id -> empty. A filtered list scans one of them in payment id order.
[[nodiscard]] std::string merchant_index_prefix(std::string_view merchant_id);
[[nodiscard]] std::string customer_index_prefix(std::string_view customer_id);

// Superseded versions. An object written again (brought back into memory, or taken again before
// its first write was durable) gets, with each record of the new version, a marker
//   "s" + version (8 bytes) + kind + id -> empty
// saying that every older version of (kind, id) is superseded. No recovery reads them once it
// starts from a snapshot at or after `version`: then they and the marker can go.
// superseded_marker(): the marker for a versioned record's key (one key() returned).
[[nodiscard]] std::string superseded_marker(std::string_view versioned_key);
// Calls fn(key) for every marker at or below `seq` and every record such a marker supersedes.
[[nodiscard]] Status scan_superseded(const KvReader& store, uint64_t seq,
                                     const std::function<void(std::string_view key)>& fn);

// Calls fn(key) for every record of any kind whose version is above `seq`, and every marker of
// such a version (what a store copied after the snapshot it is restored with holds beyond that
// snapshot's journal).
[[nodiscard]] Status scan_newer(const KvReader& store, uint64_t seq,
                                const std::function<void(std::string_view key)>& fn);

}  // namespace keel::payments::payment_history
