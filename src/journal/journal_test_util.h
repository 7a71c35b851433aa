#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "journal/journal.h"

namespace keel::journal::testing {
namespace fs = std::filesystem;

// A fresh directory under /tmp, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/keel-journal-XXXXXX";
    if (::mkdtemp(name) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = name;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

inline std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Every regular file in `dir`, name -> contents.
inline std::map<std::string, std::string> dir_contents(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    out[e.path().filename().string()] = read_bytes(e.path());
  }
  return out;
}

// Files in `dir` whose names end with `suffix`, sorted by name (= by sequence number).
inline std::vector<fs::path> files_ending(const fs::path& dir, const std::string& suffix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().ends_with(suffix)) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The payload, type and timestamp the tests write for record `seq`: sizes vary with seq.
inline std::string payload_for(uint64_t seq) {
  return std::string(seq % 13 + 1, static_cast<char>('a' + seq % 26)) + "#" + std::to_string(seq);
}
inline uint16_t type_for(uint64_t seq) { return static_cast<uint16_t>(seq % 7 + 1); }
inline Timestamp time_for(uint64_t seq) { return 1'700'000'000'000'000'000 + int64_t(seq) * 1000; }

struct Rec {
  uint64_t seq = 0;
  uint16_t type = 0;
  Timestamp timestamp = 0;
  std::string payload;
  bool operator==(const Rec&) const = default;
};

inline void PrintTo(const Rec& r, std::ostream* os) {
  *os << "{seq " << r.seq << " type " << r.type << " ts " << r.timestamp << " \"" << r.payload
      << "\"}";
}

inline Rec expected_rec(uint64_t seq) {
  return {seq, type_for(seq), time_for(seq), payload_for(seq)};
}

inline std::vector<Rec> expected_range(uint64_t from, uint64_t to) {
  std::vector<Rec> out;
  for (uint64_t s = from; s <= to; ++s) out.push_back(expected_rec(s));
  return out;
}

// Stages `count` records with the standard contents and commits them as one batch (any backend).
inline Status append_batch(Storage& j, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    const uint64_t seq = j.next_seq();
    j.begin_record(type_for(seq), time_for(seq)).append(payload_for(seq));
    j.end_record();
  }
  return j.commit();
}

// Records with seq >= from, in replay order; *status gets replay's result.
inline std::vector<Rec> replay_from(const Storage& j, uint64_t from, Status* status) {
  std::vector<Rec> out;
  *status = j.replay(from, [&](const RecordView& r) {
    out.push_back({r.seq, r.type, r.timestamp, std::string(r.payload)});
    return Status::ok();
  });
  return out;
}

inline std::vector<Rec> replay_ok(const Storage& j, uint64_t from) {
  Status s = Status::ok();
  auto out = replay_from(j, from, &s);
  EXPECT_TRUE(s.is_ok()) << s.message();
  return out;
}

// Options writing into `warnings` (which must outlive the journal).
inline JournalOptions options_for(const fs::path& dir, uint64_t segment_bytes_max,
                                  std::vector<std::string>* warnings) {
  JournalOptions o;
  o.dir = dir;
  o.segment_bytes_max = segment_bytes_max;
  o.audit_chain = false;  // these tests count records; audit_chain_test.cc tests the chain
  o.warn = [warnings](std::string_view line) { warnings->emplace_back(line); };
  return o;
}

inline std::unique_ptr<Journal> open_ok(const JournalOptions& options,
                                        OpenReport* report = nullptr) {
  std::unique_ptr<Journal> j;
  Status s = Journal::open(options, &j, report);
  // Throwing fails just this test (gtest catches it) instead of crashing on a null journal.
  if (!s.is_ok()) throw std::runtime_error("open failed: " + s.message());
  return j;
}

inline std::string open_error(const JournalOptions& options) {
  std::unique_ptr<Journal> j;
  Status s = Journal::open(options, &j, nullptr);
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(j, nullptr);
  return s.message();
}

}  // namespace keel::journal::testing
