#pragma once

#include <functional>
#include <iterator>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace keel::payments {

// The ids of the objects a state machine's calls reached to change since the last take(), for
// the history tier (docs/storage.md, "Tiers"): PaymentMachine's payments, WalletFlows' flows.
// Off, it notes nothing. Not state: after a restart everything in memory is noted again.
//
// Thread: its machine's (the engine's writer).
class ChangeTracker {
 public:
  // Turns noting on or off; on, every key of `objects` (a map by id) is noted (one at rest
  // already must be taken too).
  template <typename Map>
  void start(bool on, const Map& objects) {
    on_ = on;
    ids_.clear();
    if (!on) return;
    for (const auto& entry : objects) ids_.insert(entry.first);
  }
  void note(std::string_view id) {
    if (on_ && !ids_.contains(id)) ids_.emplace(id);
  }
  // The ids noted, ascending; forgets them.
  [[nodiscard]] std::vector<std::string> take() {
    std::vector<std::string> out(std::make_move_iterator(ids_.begin()),
                                 std::make_move_iterator(ids_.end()));
    ids_.clear();
    return out;
  }
  [[nodiscard]] bool noted(std::string_view id) const { return ids_.contains(id); }

 private:
  bool on_ = false;
  std::set<std::string, std::less<>> ids_;
};

}  // namespace keel::payments
