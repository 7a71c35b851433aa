#include "cli/output.h"

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <cstdio>

#include "core/currency.h"

namespace keel::cli {
namespace json = boost::json;

void print_table(const Table& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

std::string cell(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "-";
    case json::kind::string:
      return std::string(v.get_string());
    case json::kind::array: {
      std::string out;
      for (const auto& item : v.get_array()) out += (out.empty() ? "" : ",") + cell(item);
      return out.empty() ? "-" : out;
    }
    default:
      return json::serialize(v);
  }
}

std::string format_amount(const json::value& minor, const json::value& currency) {
  const auto c = currency.is_string() ? Currency::from_code(std::string_view(currency.get_string()))
                                      : std::nullopt;
  if (!minor.is_int64() || !c || c->exponent() == 0) return cell(minor);
  if (minor.get_int64() < 0) return cell(minor);  // never for amounts and balances
  std::string digits = std::to_string(minor.get_int64());
  const auto exp = static_cast<size_t>(c->exponent());
  if (digits.size() <= exp) digits.insert(0, exp + 1 - digits.size(), '0');
  digits.insert(digits.size() - exp, ".");
  return digits;
}

void print_object(const json::object& o) {
  Table rows;
  for (const auto& [key, value] : o) {
    if (value.is_object()) {
      for (const auto& [k, v] : value.get_object()) {
        rows.push_back({std::string(key) + "." + std::string(k), cell(v)});
      }
      continue;
    }
    std::string text = cell(value);
    const bool is_money = key == "amount" || key.ends_with("_pending") || key.ends_with("_posted");
    if (is_money && o.contains("currency")) {
      text = format_amount(value, o.at("currency")) + " " + cell(o.at("currency"));
    }
    rows.push_back({std::string(key), text});
  }
  print_table(rows);
}

void print_results(const json::object& body) {
  Table rows = {{"INDEX", "ID", "RESULT"}};
  for (const auto& r : body.at("data").as_array()) {
    const auto& o = r.as_object();
    rows.push_back({cell(o.at("index")), cell(o.at("id")), cell(o.at("result"))});
  }
  print_table(rows);
}

void print_transfers(const json::object& body) {
  Table rows = {{"ID", "DEBIT", "CREDIT", "AMOUNT", "CURRENCY", "FLAGS", "STATE", "CREATED_AT"}};
  for (const auto& item : body.at("data").as_array()) {
    const auto& t = item.as_object();
    const json::value* state = t.if_contains("pending_state");
    rows.push_back(
        {cell(t.at("id")), cell(t.at("debit_account_id")), cell(t.at("credit_account_id")),
         format_amount(t.at("amount"), t.at("currency")), cell(t.at("currency")),
         cell(t.at("flags")), state != nullptr ? cell(*state) : "-", cell(t.at("created_at"))});
  }
  print_table(rows);
  if (body.at("has_more").as_bool())
    std::printf("(more: --starting-after %s)\n", rows.size() > 1 ? rows.back()[0].c_str() : "");
}

}  // namespace keel::cli
