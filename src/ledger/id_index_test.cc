#include "ledger/id_index.h"
#include "ledger/tiered_vector.h"

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

struct Item {
  uint64_t value = 0;
  bool cold = false;
};

// Memory follows what is still held: chunks whose elements went cold are freed, the few left
// in one are relocated and still found, and positions never move.
TEST(TieredVector, FreesChunksAsElementsGoColdAndKeepsTheRestAddressable) {
  using V = TieredVector<Item, 8>;  // 256 a chunk
  V v;
  constexpr size_t kN = 100'000;
  for (size_t i = 0; i < kN; ++i) v.push_back(Item{i * 3});
  const size_t full = v.memory_bytes();
  for (size_t i = 0; i < kN; ++i) {
    if (i % 1000 != 7) v.make_cold(i);  // every thousandth stays (an open hold)
  }
  EXPECT_EQ(v.hot_count(), kN / 1000);
  EXPECT_LT(v.memory_bytes(), full / 20) << full;
  for (size_t i = 0; i < kN; ++i) {
    const Item* item = v.hot(i);
    if (i % 1000 == 7) {
      ASSERT_NE(item, nullptr) << i;
      EXPECT_EQ(item->value, i * 3);
    } else {
      EXPECT_EQ(item, nullptr) << i;
    }
  }
  // Relocated elements go cold too; the newest chunk takes pushes and pops as before.
  v.make_cold(7);
  EXPECT_EQ(v.hot(7), nullptr);
  v.push_back(Item{1});
  v.push_back(Item{2});
  v.pop_back();
  EXPECT_EQ(v.size(), kN + 1);
  EXPECT_EQ(v.hot(kN)->value, 1u);
}

}  // namespace
}  // namespace keel::ledger
