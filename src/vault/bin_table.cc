#include "vault/bin_table.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace keel::vault {
namespace {

constexpr size_t kPrefixDigitsMax = 11;

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

uint64_t number(std::string_view digits) {
  uint64_t v = 0;
  for (const char c : digits) v = v * 10 + static_cast<uint64_t>(c - '0');
  return v;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

Status BinTable::parse(std::string_view text, BinTable* out) {
  BinTable t;
  t.by_length_.resize(kPrefixDigitsMax);
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const std::string_view line = trim(text.substr(0, end));
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    ++line_no;
    if (line.empty() || line.front() == '#') continue;
    const auto fail = [&](std::string_view why) {
      return Status::error("bin file line " + std::to_string(line_no) + ": " + std::string(why));
    };
    const size_t comma = line.find(',');
    if (comma == std::string_view::npos) return fail("want FIRST[-LAST],COUNTRY");
    const std::string_view range = trim(line.substr(0, comma));
    const std::string_view country = trim(line.substr(comma + 1));
    const size_t dash = range.find('-');
    const std::string_view first = range.substr(0, dash);
    const std::string_view last = dash == std::string_view::npos ? first : range.substr(dash + 1);
    if (!all_digits(first) || !all_digits(last) || first.size() != last.size() ||
        first.size() > kPrefixDigitsMax) {
      return fail("FIRST and LAST must be digit prefixes of one length, 1 to 11 digits");
    }
    if (number(last) < number(first)) return fail("LAST is below FIRST");
    if (country.size() != 2 || country[0] < 'A' || country[0] > 'Z' || country[1] < 'A' ||
        country[1] > 'Z') {
      return fail("the country must be two capital letters (ISO 3166 alpha-2)");
    }
    Range r;
    r.first = number(first);
    r.last = number(last);
    r.country[0] = country[0];
    r.country[1] = country[1];
    t.by_length_[first.size() - 1].push_back(r);
  }
  for (size_t i = 0; i < t.by_length_.size(); ++i) {
    auto& ranges = t.by_length_[i];
    std::sort(ranges.begin(), ranges.end(),
              [](const Range& a, const Range& b) { return a.first < b.first; });
    for (size_t j = 1; j < ranges.size(); ++j) {
      if (ranges[j].first <= ranges[j - 1].last) {
        return Status::error("bin file: two ranges of " + std::to_string(i + 1) +
                             "-digit prefixes overlap at " + std::to_string(ranges[j].first));
      }
    }
  }
  *out = std::move(t);
  return Status::ok();
}

Status BinTable::load(const std::string& path, BinTable* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error("cannot read the bin file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  if (Status s = parse(text.str(), out); !s.is_ok()) {
    return Status::error(path + ": " + s.message());
  }
  return Status::ok();
}

std::string BinTable::country_of(std::string_view digits) const {
  for (size_t length = std::min(by_length_.size(), digits.size()); length > 0; --length) {
    const auto& ranges = by_length_[length - 1];
    if (ranges.empty()) continue;
    const uint64_t p = number(digits.substr(0, length));
    // The last range starting at or below p.
    auto it = std::upper_bound(ranges.begin(), ranges.end(), p,
                               [](uint64_t v, const Range& r) { return v < r.first; });
    if (it == ranges.begin()) continue;
    --it;
    if (p <= it->last) return std::string(it->country, 2);
  }
  return "";
}

size_t BinTable::size() const {
  size_t n = 0;
  for (const auto& ranges : by_length_) n += ranges.size();
  return n;
}

}  // namespace keel::vault
