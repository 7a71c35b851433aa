#include "connectors/operation.h"

#include <array>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <utility>

namespace keel::connectors {
namespace {

namespace json = boost::json;

constexpr std::array<std::pair<OperationType, std::string_view>, 4> kTypeNames = {{
    {OperationType::authorization, "authorization"},
    {OperationType::refund, "refund"},
    {OperationType::payout, "payout"},
    {OperationType::topup, "topup"},
}};

constexpr std::array<std::pair<OperationStatus, std::string_view>, 8> kStatusNames = {{
    {OperationStatus::pending, "pending"},
    {OperationStatus::authorized, "authorized"},
    {OperationStatus::captured, "captured"},
    {OperationStatus::voided, "voided"},
    {OperationStatus::declined, "declined"},
    {OperationStatus::refunded, "refunded"},
    {OperationStatus::paid, "paid"},
    {OperationStatus::failed, "failed"},
}};

template <typename Enum, size_t N>
std::string_view name_of(const std::array<std::pair<Enum, std::string_view>, N>& names, Enum e) {
  for (const auto& [value, name] : names) {
    if (value == e) return name;
  }
  return "?";
}

template <typename Enum, size_t N>
std::optional<Enum> value_of(const std::array<std::pair<Enum, std::string_view>, N>& names,
                             std::string_view s) {
  for (const auto& [value, name] : names) {
    if (name == s) return value;
  }
  return std::nullopt;
}

// The string at `key`; nullopt if absent or not a string.
std::optional<std::string_view> string_at(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  const json::string& s = v->get_string();
  return std::string_view(s.data(), s.size());
}

// False if the field is present, not null, and not a non-negative integer.
bool read_amount(const json::object& o, std::string_view key, int64_t* out) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return true;
  if (v->is_int64() && v->get_int64() >= 0) {
    *out = v->get_int64();
    return true;
  }
  return false;
}

// False if the field is present, not null, and not a string.
bool read_optional_string(const json::object& o, std::string_view key, std::string* out) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return true;
  if (!v->is_string()) return false;
  *out = std::string(v->get_string());
  return true;
}

bool read_decline_type(const json::object& o, std::optional<DeclineType>* out) {
  const json::value* v = o.if_contains("decline_type");
  if (v == nullptr || v->is_null()) return true;
  if (!v->is_string()) return false;
  if (v->get_string() == "hard") {
    *out = DeclineType::hard;
  } else if (v->get_string() == "soft") {
    *out = DeclineType::soft;
  } else {
    return false;
  }
  return true;
}

bool read_required(const json::object& o, Operation* op) {
  const auto psp_reference = string_at(o, "psp_reference");
  const auto reference = string_at(o, "reference");
  const auto type = string_at(o, "type");
  const auto status = string_at(o, "status");
  const auto currency = string_at(o, "currency");
  const json::value* amount = o.if_contains("amount");
  if (!psp_reference || !reference || reference->empty() || !type || !status || !currency ||
      amount == nullptr || !amount->is_int64() || amount->get_int64() < 0) {
    return false;
  }
  const auto type_value = value_of(kTypeNames, *type);
  const auto status_value = value_of(kStatusNames, *status);
  if (!type_value || !status_value) return false;
  op->psp_reference = std::string(*psp_reference);
  op->reference = std::string(*reference);
  op->type = *type_value;
  op->status = *status_value;
  op->currency = std::string(*currency);
  op->amount_minor = amount->get_int64();
  return true;
}

}  // namespace

std::string_view operation_type_name(OperationType t) { return name_of(kTypeNames, t); }
std::string_view operation_status_name(OperationStatus s) { return name_of(kStatusNames, s); }
std::string_view decline_type_name(DeclineType t) {
  return t == DeclineType::hard ? "hard" : "soft";
}

std::optional<Operation> parse_operation(std::string_view text) {
  json::error_code ec;
  const json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec || !v.is_object()) return std::nullopt;
  const json::object& o = v.get_object();
  Operation op;
  if (!read_required(o, &op)) return std::nullopt;
  const bool optional_ok = read_amount(o, "captured_amount", &op.captured_amount_minor) &&
                           read_amount(o, "refunded_amount", &op.refunded_amount_minor) &&
                           read_amount(o, "fee", &op.fee_minor) &&
                           read_optional_string(o, "decline_code", &op.decline_code) &&
                           read_decline_type(o, &op.decline_type) &&
                           read_optional_string(o, "payment_reference", &op.payment_reference) &&
                           read_optional_string(o, "created_at", &op.created_at) &&
                           read_optional_string(o, "updated_at", &op.updated_at);
  if (!optional_ok) return std::nullopt;
  return op;
}

}  // namespace keel::connectors
