#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/kv_reader.h"

namespace keel::payments {

// A history store in a map, for the state machines' tests (the engine's is store::Store).
class MapHistory final : public KvReader {
 public:
  Status get(std::string_view key, std::optional<std::string>* out) const override {
    const auto it = records.find(key);
    *out = it == records.end() ? std::nullopt : std::optional<std::string>(it->second);
    return Status::ok();
  }
  Status scan_range(std::string_view begin, std::string_view end, bool reverse,
                    const KvScanFn& fn) const override {
    if (begin >= end) return Status::ok();
    const auto first = records.lower_bound(begin);
    const auto last = records.lower_bound(end);
    if (!reverse) {
      for (auto it = first; it != last; ++it) {
        if (!fn(it->first, it->second)) break;
      }
      return Status::ok();
    }
    for (auto it = last; it != first;) {
      --it;
      if (!fn(it->first, it->second)) break;
    }
    return Status::ok();
  }

  std::map<std::string, std::string, std::less<>> records;
};

}  // namespace keel::payments
