#include "connectors/psp_credentials.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace keel::connectors {
namespace {

TEST(ApiKeys, OnePerLineFirstSentFirstCommentsAndBlanksSkipped) {
  std::vector<std::string> keys;
  ASSERT_TRUE(parse_api_keys("# cardco, rotated 2026-12-07\nsk_new\r\n\nsk_old\n", &keys).is_ok());
  EXPECT_EQ(keys, (std::vector<std::string>{"sk_new", "sk_old"}));
  ASSERT_TRUE(parse_api_keys("sk_only", &keys).is_ok());
  EXPECT_EQ(keys, (std::vector<std::string>{"sk_only"}));
}

TEST(ApiKeys, BadFilesAreRefusedNamingTheLineNeverTheKey) {
  struct Case {
    std::string text;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {"", "no key"},
           {"# only a comment\n\n", "no key"},
           {"sk_a\nsk with space\n", "line 2: a key is 1 to 256 printable ASCII"},
           {"sk_a\tb\n", "line 1: a key is 1 to 256 printable ASCII"},
           {std::string(257, 'k') + "\n", "line 1: a key is 1 to 256"},
           {"sk_a\nsk_a\n", "line 2: the same key is given twice"},
           {"a\nb\nc\nd\ne\n", "line 5: at most 4 keys"},
       }) {
    std::vector<std::string> keys = {"untouched"};
    const Status s = parse_api_keys(c.text, &keys);
    ASSERT_FALSE(s.is_ok()) << c.text;
    EXPECT_TRUE(s.message().starts_with(c.error)) << s.message();
    EXPECT_EQ(s.message().find("sk_"), std::string::npos) << s.message();
    EXPECT_EQ(keys, std::vector<std::string>{"untouched"});
  }
  std::vector<std::string> keys;
  EXPECT_TRUE(parse_api_keys(std::string(256, 'k'), &keys).is_ok());
}

TEST(ApiKeys, TheFileMustBeTheOwnersAlone) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("keel-api-keys-" + std::to_string(::getpid()) + ".txt");
  std::ofstream(path) << "sk_live_1\n";
  ::chmod(path.c_str(), 0644);
  std::vector<std::string> keys;
  Status s = read_api_key_file(path.string(), &keys);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("chmod 600"), std::string::npos) << s.message();
  ::chmod(path.c_str(), 0600);
  s = read_api_key_file(path.string(), &keys);
  ASSERT_TRUE(s.is_ok()) << s.message();
  EXPECT_EQ(keys, std::vector<std::string>{"sk_live_1"});
  std::filesystem::remove(path);
  EXPECT_FALSE(read_api_key_file(path.string(), &keys).is_ok());
}

TEST(ApiKeys, ALabelNamesAKeyWithoutHoldingIt) {
  const std::string label = api_key_label("sk_live_secret");
  EXPECT_TRUE(label.starts_with("key sha256:")) << label;
  EXPECT_EQ(label.size(), std::string("key sha256:").size() + 8);
  EXPECT_EQ(label.find("secret"), std::string::npos);
  EXPECT_EQ(label, api_key_label("sk_live_secret"));
  EXPECT_NE(label, api_key_label("sk_live_other"));
}

}  // namespace
}  // namespace keel::connectors
