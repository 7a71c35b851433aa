#include "ledger/id_index.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <vector>

namespace keel::ledger {
namespace {

TEST(IdIndex, InsertFindEraseAgainstAReferenceSet) {
  std::vector<std::string> ids;
  std::set<std::string> live;
  IdIndex index({1, 2});
  const auto get_id = [&ids](uint32_t i) -> std::string_view { return ids[i]; };
  std::mt19937_64 rng(42);
  for (int step = 0; step < 20000; ++step) {
    if (!ids.empty() && rng() % 4 == 0) {
      // Erase the newest id (the ledger only ever erases the newest records).
      index.erase(ids.back(), get_id);
      live.erase(ids.back());
      ids.pop_back();
    } else {
      std::string id = "id_" + std::to_string(rng() % 1000000) + "_" + std::to_string(step);
      ids.push_back(id);
      index.insert(id, static_cast<uint32_t>(ids.size() - 1));
      live.insert(id);
    }
  }
  EXPECT_EQ(index.size(), live.size());
  for (uint32_t i = 0; i < ids.size(); ++i) EXPECT_EQ(index.find(ids[i], get_id), i);
  EXPECT_FALSE(index.find("absent", get_id));
}

}  // namespace
}  // namespace keel::ledger
