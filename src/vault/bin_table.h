#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace keel::vault {

// The issuing country of a card by its leading digits (its BIN), from a file the operator
// configures (`[vault] bin_file`; config/bin-ranges.csv is a small sample). Immutable once
// parsed: thread-safe to read.
//
// The file: one range per line, `FIRST[-LAST],CC`, where FIRST and LAST are digit prefixes of
// one length (1 to 11 digits; LAST >= FIRST; `FIRST` alone is the range of one prefix) and CC
// an ISO 3166 alpha-2 code in capitals. Blank lines and lines starting with '#' are skipped.
// Ranges of one length must not overlap; a card matches the range of the longest prefix that
// holds it (a 8-digit range inside a 6-digit one wins).
class BinTable {
 public:
  // Fails naming the line: a malformed range or country, an overlap. Replaces *out on success.
  [[nodiscard]] static Status parse(std::string_view text, BinTable* out);
  [[nodiscard]] static Status load(const std::string& path, BinTable* out);

  // The country of a digits-only card number ("" when no range holds it). O(lengths x log n).
  [[nodiscard]] std::string country_of(std::string_view digits) const;
  [[nodiscard]] size_t size() const;

 private:
  struct Range {
    uint64_t first = 0;
    uint64_t last = 0;
    char country[2] = {};
  };
  // by_length_[L - 1]: the ranges of L-digit prefixes, sorted by `first`, disjoint.
  std::vector<std::vector<Range>> by_length_;
};

}  // namespace keel::vault
