#include "store/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace keel::store {
namespace {

std::filesystem::path temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("keel-store-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

std::vector<std::string> keys_under(const Store& s, std::string_view prefix) {
  std::vector<std::string> keys;
  EXPECT_TRUE(s.scan(prefix, [&](std::string_view k, std::string_view) {
                 keys.emplace_back(k);
                 return true;
               }).is_ok());
  return keys;
}

// The contract every backend keeps: puts and the applied sequence land together, gets see them,
// scans are ordered and stay inside their prefix.
void check_contract(Store& s) {
  EXPECT_EQ(s.applied_seq(), 0u);
  ASSERT_TRUE(s.write({{{"t2", "two"}, {"t1", "one"}, {"u1", "other"}}, 7}).is_ok());
  EXPECT_EQ(s.applied_seq(), 7u);
  std::optional<std::string> v;
  ASSERT_TRUE(s.get("t1", &v).is_ok());
  EXPECT_EQ(v, "one");
  ASSERT_TRUE(s.get("t3", &v).is_ok());
  EXPECT_FALSE(v.has_value());
  EXPECT_EQ(keys_under(s, "t"), (std::vector<std::string>{"t1", "t2"}));
  // An older batch written again (replay after a crash) never moves the sequence back.
  ASSERT_TRUE(s.write({{{"t1", "one"}}, 3}).is_ok());
  EXPECT_EQ(s.applied_seq(), 7u);
  // Stopping a scan early.
  int seen = 0;
  ASSERT_TRUE(s.scan("", [&](std::string_view, std::string_view) { return ++seen < 2; }).is_ok());
  EXPECT_EQ(seen, 2);
  // Ranges: [begin, end), either way, stopping early; an empty or inverted range sees nothing.
  const auto range = [&](std::string_view begin, std::string_view end, bool reverse,
                         size_t max = 100) {
    std::vector<std::string> keys;
    EXPECT_TRUE(s.scan_range(begin, end, reverse, [&](std::string_view k, std::string_view) {
                   keys.emplace_back(k);
                   return keys.size() < max;
                 }).is_ok());
    return keys;
  };
  EXPECT_EQ(range("t1", "u1", false), (std::vector<std::string>{"t1", "t2"}));
  EXPECT_EQ(range("t1", "u1", true), (std::vector<std::string>{"t2", "t1"}));
  EXPECT_EQ(range("t2", "z", true), (std::vector<std::string>{"u1", "t2"}));
  EXPECT_EQ(range("t2", "z", true, 1), (std::vector<std::string>{"u1"}));
  EXPECT_TRUE(range("t2", "t2", false).empty());
  // A scan's callback may read the store.
  std::vector<std::string> read;
  ASSERT_TRUE(s.scan_range("t1", "u", true, [&](std::string_view k, std::string_view) {
                 std::optional<std::string> v;
                 EXPECT_TRUE(s.get(k, &v).is_ok());
                 read.push_back(v.value_or("?"));
                 return true;
               }).is_ok());
  EXPECT_EQ(read, (std::vector<std::string>{"two", "one"}));
  EXPECT_TRUE(range("u", "t", true).empty());
  // Deletes apply after the batch's puts, atomically with them; an absent key is no error.
  ASSERT_TRUE(s.write({{{"t3", "three"}}, 8, {"t1", "t3", "t9"}}).is_ok());
  EXPECT_EQ(keys_under(s, "t"), (std::vector<std::string>{"t2"}));
  EXPECT_EQ(s.applied_seq(), 8u);
  // Range deletions: [begin, end); an empty or inverted range deletes nothing.
  ASSERT_TRUE(s.write({{{"r1", "1"}, {"r2", "2"}, {"r3", "3"}}, 8}).is_ok());
  ASSERT_TRUE(s.write({{}, 8, {}, {{"r1", "r3"}, {"r3", "r3"}, {"z", "a"}}}).is_ok());
  EXPECT_EQ(keys_under(s, "r"), (std::vector<std::string>{"r3"}));
}

TEST(MemoryStore, KeepsTheContractAndFailsAWriteOnDemand) {
  auto data = std::make_shared<MemoryStoreData>();
  MemoryStore s(data);
  check_contract(s);
  data->fail_next_write = true;
  EXPECT_FALSE(s.write({{{"t9", "nine"}}, 9}).is_ok());
  std::optional<std::string> v;
  ASSERT_TRUE(s.get("t9", &v).is_ok());
  EXPECT_FALSE(v.has_value());
  EXPECT_EQ(s.applied_seq(), 8u);
  // Contents outlive the store object, like a disk.
  MemoryStore again(data);
  EXPECT_EQ(again.applied_seq(), 8u);
  EXPECT_FALSE(again.checkpoint(temp_dir("memory")).is_ok());
}

TEST(RocksStore, KeepsTheContractAndItsContentsAcrossAReopen) {
  const auto dir = temp_dir("rocks");
  {
    std::unique_ptr<Store> s;
    ASSERT_TRUE(open_rocks_store(dir, false, 8, &s).is_ok());
    check_contract(*s);
  }
  std::unique_ptr<Store> s;
  ASSERT_TRUE(open_rocks_store(dir, true, 8, &s).is_ok());
  EXPECT_EQ(s->applied_seq(), 8u);
  // A checkpoint is a store of its own with the same contents; an existing target is refused.
  const auto copy = temp_dir("checkpoint");
  ASSERT_TRUE(s->checkpoint(copy).is_ok());
  EXPECT_FALSE(s->checkpoint(copy).is_ok());
  {
    std::unique_ptr<Store> c;
    ASSERT_TRUE(open_rocks_store(copy, true, 8, &c).is_ok());
    EXPECT_EQ(c->applied_seq(), 8u);
    EXPECT_EQ(keys_under(*c, "t"), keys_under(*s, "t"));
  }
  std::filesystem::remove_all(copy);
  std::optional<std::string> v;
  ASSERT_TRUE(s->get("t2", &v).is_ok());
  EXPECT_EQ(v, "two");
  // The applied sequence is not a record.
  EXPECT_EQ(keys_under(*s, "t").size(), 1u);
  s.reset();
  std::filesystem::remove_all(dir);
}

TEST(RocksStore, ReadOnlyOpenOfAMissingStoreFailsWithItsPath) {
  const auto dir = temp_dir("missing");
  std::unique_ptr<Store> s;
  const Status st = open_rocks_store(dir, true, 8, &s);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find(dir.string()), std::string::npos) << st.message();
  EXPECT_FALSE(std::filesystem::exists(dir));
}

}  // namespace
}  // namespace keel::store
