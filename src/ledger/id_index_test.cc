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
  bool saw_growing = false;
  for (int step = 0; step < 20000; ++step) {
    // Every id answers, also while a grow is moving slots from the old table.
    saw_growing |= index.growing();
    if (index.growing() || step % 997 == 0) {
      for (uint32_t i = 0; i < ids.size(); i += 1 + ids.size() / 64) {
        ASSERT_EQ(index.find(ids[i], get_id), i) << "step " << step;
      }
    }
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
  EXPECT_TRUE(saw_growing);
  EXPECT_EQ(index.size(), live.size());
  for (uint32_t i = 0; i < ids.size(); ++i) EXPECT_EQ(index.find(ids[i], get_id), i);
  EXPECT_FALSE(index.find("absent", get_id));
}

// A grow moves the old table a few slots per insert: erasing ids still in the old table (the
// ledger's rollback of a chain that straddles a grow) and inserting meanwhile keep every answer.
TEST(IdIndex, ErasesAndInsertsWhileAGrowMovesSlots) {
  std::vector<std::string> ids;
  IdIndex index({3, 4});
  const auto get_id = [&ids](uint32_t i) -> std::string_view { return ids[i]; };
  const auto add = [&](const std::string& id) {
    ids.push_back(id);
    index.insert(id, static_cast<uint32_t>(ids.size() - 1));
  };
  // Fill to just below a grow of a table large enough to move incrementally.
  for (int i = 0; !index.growing(); ++i) add("a" + std::to_string(i));
  ASSERT_TRUE(index.growing());
  // The newest ids are still in the old table: erase them (rollback), then go on inserting.
  for (int k = 0; k < 10; ++k) {
    index.erase(ids.back(), get_id);
    ids.pop_back();
  }
  for (uint32_t i = 0; i < ids.size(); ++i) ASSERT_EQ(index.find(ids[i], get_id), i);
  for (int i = 0; index.growing(); ++i) add("b" + std::to_string(i));
  EXPECT_EQ(index.size(), ids.size());
  for (uint32_t i = 0; i < ids.size(); ++i) ASSERT_EQ(index.find(ids[i], get_id), i);
  int candidates = 0;
  index.for_each_candidate(index.hash(ids[5]), [&](uint32_t i) { candidates += i == 5; });
  EXPECT_EQ(candidates, 1);
}

struct Item {
  uint64_t value = 0;
  bool cold = false;
};

// Memory follows what is still held: chunks whose elements went cold are freed, the few left
// in one are relocated and still found, and positions never move.
// Tags handed out by for_each_tag() come back, into a reserved index that never grows while it
// takes them (in their home-slot order, which a growing table would pile into one probe run).
TEST(IdIndex, TagsComeBackIntoAReservedIndexWithoutGrowing) {
  IdIndex original({3, 4});
  std::mt19937_64 rng(7);
  std::vector<uint64_t> hashes;
  for (int i = 0; i < 50'000; ++i) {
    hashes.push_back(rng());
    original.insert_hashed(hashes.back(), 0);
  }
  std::vector<uint32_t> tags;
  original.for_each_tag([&](uint32_t tag) { tags.push_back(tag); });
  ASSERT_EQ(tags.size(), hashes.size());

  IdIndex copy({3, 4});
  copy.reserve(tags.size());
  const size_t reserved = copy.memory_bytes();
  EXPECT_GE(reserved * 3, tags.size() * sizeof(uint64_t) * 4);  // room at a load of 3/4
  for (const uint32_t tag : tags) copy.insert_hashed(uint64_t{tag} << 32, 0);
  EXPECT_EQ(copy.memory_bytes(), reserved);
  EXPECT_FALSE(copy.growing());
  EXPECT_EQ(copy.size(), hashes.size());
  for (const uint64_t h : hashes) EXPECT_TRUE(copy.may_contain(h));
  size_t strangers = 0;
  for (int i = 0; i < 10'000; ++i) strangers += copy.may_contain(rng()) ? 1 : 0;
  EXPECT_LT(strangers, 10u);  // a 32-bit tag: about 50,000 / 2^32 of them collide
}

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
