// Decoding half of json_codec.h: strict JSON parsing and request bodies to ledger events.

#include <algorithm>
#include <array>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <limits>
#include <optional>

#include "api/json_codec.h"
#include "core/ids.h"
#include "core/metadata.h"

namespace keel::api {
namespace json = boost::json;

namespace {

// A basic_parser handler that only looks for objects with a duplicate key (Boost.JSON's value
// parser silently keeps the last one). Keys of each open object are collected and sorted when
// the object closes: O(n log n) per object, whatever a client sends.
class DuplicateKeyFinder {
 public:
  static constexpr size_t max_object_size = std::numeric_limits<size_t>::max();
  static constexpr size_t max_array_size = std::numeric_limits<size_t>::max();
  static constexpr size_t max_key_size = std::numeric_limits<size_t>::max();
  static constexpr size_t max_string_size = std::numeric_limits<size_t>::max();

  std::optional<std::string> duplicate;

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(size_t, json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    open_.emplace_back();
    return true;
  }
  bool on_object_end(size_t, json::error_code& ec) {
    auto& keys = open_.back();
    std::sort(keys.begin(), keys.end());
    const auto dup = std::adjacent_find(keys.begin(), keys.end());
    if (dup != keys.end()) {
      duplicate = *dup;
      ec = json::error::syntax;
      return false;
    }
    open_.pop_back();
    return true;
  }
  bool on_string_part(json::string_view, size_t, json::error_code&) { return true; }
  bool on_string(json::string_view, size_t, json::error_code&) { return true; }
  bool on_key_part(json::string_view s, size_t, json::error_code&) {
    key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, size_t, json::error_code&) {
    key_.append(s.data(), s.size());
    open_.back().push_back(std::move(key_));
    key_.clear();
    return true;
  }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(int64_t, json::string_view, json::error_code&) { return true; }
  bool on_uint64(uint64_t, json::string_view, json::error_code&) { return true; }
  bool on_double(double, json::string_view, json::error_code&) { return true; }
  bool on_bool(bool, json::error_code&) { return true; }
  bool on_null(json::error_code&) { return true; }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  std::vector<std::vector<std::string>> open_;
  std::string key_;
};

std::optional<std::string> find_duplicate_key(std::string_view text) {
  json::basic_parser<DuplicateKeyFinder> parser{json::parse_options{}};
  json::error_code ec;
  parser.write_some(false, text.data(), text.size(), ec);
  return parser.handler().duplicate;
}

template <typename T, typename U>
Parsed<T> fail(const Parsed<U>& p) {
  return Parsed<T>{T{}, p.error};
}

template <typename T>
Parsed<T> fail(ErrorCode code, std::string message, std::string param) {
  return Parsed<T>{T{}, make_error(code, std::move(message), std::move(param))};
}

std::string json_type_name(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
      return "an integer";
    case json::kind::double_:
      return "a number with a fraction or exponent";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "a value";
}

// Fields of one event object, with the parameter prefix for errors.
class EventFields {
 public:
  EventFields(const json::object& object, std::string_view prefix)
      : object_(object), prefix_(prefix) {}

  // The first field not in `allowed`, as an error.
  [[nodiscard]] std::optional<ApiError> unknown_field(
      std::span<const std::string_view> allowed) const {
    for (const auto& [key, value] : object_) {
      const std::string_view k(key.data(), key.size());
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
        return make_error(ErrorCode::parameter_unknown, "unknown field " + param(k), param(k));
      }
    }
    return std::nullopt;
  }
  // The field's value; nullptr if absent or null.
  [[nodiscard]] const json::value* find(std::string_view key) const {
    const json::value* v = object_.if_contains(json::string_view(key.data(), key.size()));
    return (v == nullptr || v->is_null()) ? nullptr : v;
  }
  [[nodiscard]] std::string param(std::string_view key) const {
    return std::string(prefix_).append(key);
  }
  template <typename T>
  [[nodiscard]] Parsed<T> missing(std::string_view key) const {
    return fail<T>(ErrorCode::parameter_missing, param(key) + " is required", param(key));
  }

 private:
  const json::object& object_;
  std::string_view prefix_;
};

Parsed<std::string> read_id(const EventFields& f, std::string_view key, ErrorCode code,
                            bool required) {
  const json::value* v = f.find(key);
  if (v == nullptr) return required ? f.missing<std::string>(key) : Parsed<std::string>{};
  if (!v->is_string() || !is_valid_id(std::string_view(v->get_string()))) {
    return fail<std::string>(
        code, f.param(key) + " must be a string of 1 to 64 characters from [A-Za-z0-9_-.:]",
        f.param(key));
  }
  return Parsed<std::string>{std::string(v->get_string())};
}

Parsed<Currency> read_currency(const EventFields& f, bool required) {
  const json::value* v = f.find("currency");
  if (v == nullptr) return required ? f.missing<Currency>("currency") : Parsed<Currency>{};
  std::optional<Currency> c;
  if (v->is_string()) c = Currency::from_code(std::string_view(v->get_string()));
  if (!c) {
    return fail<Currency>(ErrorCode::currency_invalid,
                          f.param("currency") + " must be an ISO 4217 currency code such as USD",
                          f.param("currency"));
  }
  return Parsed<Currency>{*c};
}

Parsed<uint16_t> read_flags(const EventFields& f, uint16_t (*from_name)(std::string_view)) {
  const json::value* v = f.find("flags");
  if (v == nullptr) return {};
  const std::string param = f.param("flags");
  if (!v->is_array()) {
    return fail<uint16_t>(ErrorCode::flags_invalid,
                          param + " must be an array of flag names, not " + json_type_name(*v),
                          param);
  }
  uint16_t flags = 0;
  for (size_t i = 0; i < v->get_array().size(); ++i) {
    const json::value& name = v->get_array()[i];
    const std::string item = param + "[" + std::to_string(i) + "]";
    const uint16_t bit = name.is_string() ? from_name(std::string_view(name.get_string())) : 0;
    if (bit == 0) {
      return fail<uint16_t>(ErrorCode::flags_invalid, item + " is not a known flag name", item);
    }
    if ((flags & bit) != 0) {
      return fail<uint16_t>(ErrorCode::flags_invalid, item + " repeats a flag", item);
    }
    flags |= bit;
  }
  return Parsed<uint16_t>{flags};
}

std::string metadata_problem(MetadataError e) {
  switch (e) {
    case MetadataError::too_many_entries:
      return "has more than " + std::to_string(kMetadataEntriesMax) + " entries";
    case MetadataError::key_invalid:
      return "has a key that is not 1 to 40 characters from [A-Za-z0-9_.-]";
    case MetadataError::value_too_long:
      return "has a value longer than " + std::to_string(kMetadataValueLengthMax) + " bytes";
    case MetadataError::duplicate_key:
      return "has a duplicate key";
    case MetadataError::ok:
      break;
  }
  return "is invalid";
}

Parsed<Metadata> read_metadata(const EventFields& f) {
  const json::value* v = f.find("metadata");
  if (v == nullptr) return {};
  const std::string param = f.param("metadata");
  if (!v->is_object()) {
    return fail<Metadata>(ErrorCode::metadata_invalid,
                          param + " must be an object of strings, not " + json_type_name(*v),
                          param);
  }
  if (v->get_object().size() > kMetadataEntriesMax) {
    return fail<Metadata>(ErrorCode::metadata_invalid,
                          param + " " + metadata_problem(MetadataError::too_many_entries), param);
  }
  Metadata m;
  for (const auto& [key, value] : v->get_object()) {
    const std::string item = param + "." + std::string(key);
    if (!value.is_string()) {
      return fail<Metadata>(ErrorCode::metadata_invalid,
                            item + " must be a string, not " + json_type_name(value), item);
    }
    m.emplace_back(std::string(key), std::string(value.get_string()));
  }
  const MetadataError e = normalize_metadata(&m);
  if (e != MetadataError::ok) {
    return fail<Metadata>(ErrorCode::metadata_invalid, param + " " + metadata_problem(e), param);
  }
  return Parsed<Metadata>{std::move(m)};
}

// A JSON integer in [min, max]; nullopt for any other value (strings, floats, bools).
std::optional<int64_t> integer_in(const json::value& v, int64_t min, int64_t max) {
  if (!v.is_int64()) return std::nullopt;  // uint64 only holds values above INT64_MAX
  const int64_t i = v.get_int64();
  if (i < min || i > max) return std::nullopt;
  return i;
}

Parsed<int64_t> read_amount(const EventFields& f, bool required) {
  const json::value* v = f.find("amount");
  if (v == nullptr) return required ? f.missing<int64_t>("amount") : Parsed<int64_t>{};
  const auto amount = integer_in(*v, 1, std::numeric_limits<int64_t>::max());
  if (!amount) {
    return fail<int64_t>(ErrorCode::amount_invalid,
                         f.param("amount") +
                             " must be a positive integer (minor units) of at "
                             "most 9223372036854775807",
                         f.param("amount"));
  }
  return Parsed<int64_t>{*amount};
}

Parsed<uint32_t> read_timeout(const EventFields& f) {
  const json::value* v = f.find("timeout_seconds");
  if (v == nullptr) return {};
  const auto t = integer_in(*v, 0, std::numeric_limits<uint32_t>::max());
  if (!t) {
    return fail<uint32_t>(ErrorCode::timeout_invalid,
                          f.param("timeout_seconds") + " must be an integer from 0 to 4294967295",
                          f.param("timeout_seconds"));
  }
  return Parsed<uint32_t>{static_cast<uint32_t>(*t)};
}

Parsed<const json::object*> as_event_object(const json::value& v, std::string_view prefix) {
  if (v.is_object()) return Parsed<const json::object*>{&v.get_object()};
  // "data[3]." names the event "data[3]"; a single event is the body itself.
  const std::string param(prefix.empty() ? prefix : prefix.substr(0, prefix.size() - 1));
  return fail<const json::object*>(
      ErrorCode::body_invalid,
      (param.empty() ? "the body" : param) + " must be a JSON object, not " + json_type_name(v),
      param);
}

}  // namespace

Parsed<json::value> parse_json(std::string_view text) {
  json::error_code ec;
  json::parse_options options;  // standard JSON, depth 32, valid UTF-8
  json::value v =
      json::parse(json::string_view(text.data(), text.size()), ec, json::storage_ptr(), options);
  if (ec) {
    return fail<json::value>(ErrorCode::json_invalid, "body is not valid JSON: " + ec.message(),
                             "");
  }
  if (auto dup = find_duplicate_key(text)) {
    return fail<json::value>(ErrorCode::json_invalid,
                             "body is not valid JSON: duplicate key \"" + *dup + "\"", "");
  }
  return Parsed<json::value>{std::move(v)};
}

Parsed<ledger::AccountEvent> account_event_from_json(const json::value& v,
                                                     std::string_view param_prefix) {
  using Event = ledger::AccountEvent;
  static constexpr std::array<std::string_view, 4> kFields = {"id", "currency", "flags",
                                                              "metadata"};
  const auto object = as_event_object(v, param_prefix);
  if (!object.ok()) return fail<Event>(object);
  const EventFields f(*object.value, param_prefix);
  if (auto e = f.unknown_field(kFields)) return Parsed<Event>{{}, std::move(e)};
  Event event;
  auto id = read_id(f, "id", ErrorCode::id_invalid, true);
  if (!id.ok()) return fail<Event>(id);
  auto currency = read_currency(f, true);
  if (!currency.ok()) return fail<Event>(currency);
  auto flags = read_flags(f, &ledger::account_flag_from_name);
  if (!flags.ok()) return fail<Event>(flags);
  auto metadata = read_metadata(f);
  if (!metadata.ok()) return fail<Event>(metadata);
  event.id = std::move(id.value);
  event.currency = currency.value;
  event.flags = flags.value;
  event.metadata = std::move(metadata.value);
  return Parsed<Event>{std::move(event)};
}

namespace {

// The account, amount and currency fields of a transfer; `required` for plain and pending ones.
std::optional<ApiError> read_transfer_movement(const EventFields& f, bool required,
                                               ledger::TransferEvent* event) {
  auto debit = read_id(f, "debit_account_id", ErrorCode::debit_account_id_invalid, required);
  if (!debit.ok()) return debit.error;
  auto credit = read_id(f, "credit_account_id", ErrorCode::credit_account_id_invalid, required);
  if (!credit.ok()) return credit.error;
  auto amount = read_amount(f, required);
  if (!amount.ok()) return amount.error;
  auto currency = read_currency(f, required);
  if (!currency.ok()) return currency.error;
  event->debit_account_id = std::move(debit.value);
  event->credit_account_id = std::move(credit.value);
  event->amount = amount.value;
  event->currency = currency.value;
  return std::nullopt;
}

}  // namespace

Parsed<ledger::TransferEvent> transfer_event_from_json(const json::value& v,
                                                       std::string_view param_prefix) {
  using Event = ledger::TransferEvent;
  static constexpr std::array<std::string_view, 9> kFields = {
      "id",    "debit_account_id", "credit_account_id", "amount",  "currency",
      "flags", "pending_id",       "timeout_seconds",   "metadata"};
  const auto object = as_event_object(v, param_prefix);
  if (!object.ok()) return fail<Event>(object);
  const EventFields f(*object.value, param_prefix);
  if (auto e = f.unknown_field(kFields)) return Parsed<Event>{{}, std::move(e)};
  Event event;
  auto id = read_id(f, "id", ErrorCode::id_invalid, true);
  if (!id.ok()) return fail<Event>(id);
  auto flags = read_flags(f, &ledger::transfer_flag_from_name);
  if (!flags.ok()) return fail<Event>(flags);
  const bool resolves_pending = (flags.value & (ledger::transfer_flags::kPostPending |
                                                ledger::transfer_flags::kVoidPending)) != 0;
  if (auto e = read_transfer_movement(f, !resolves_pending, &event)) {
    return Parsed<Event>{{}, std::move(e)};
  }
  auto pending_id = read_id(f, "pending_id", ErrorCode::pending_id_invalid, resolves_pending);
  if (!pending_id.ok()) return fail<Event>(pending_id);
  auto timeout = read_timeout(f);
  if (!timeout.ok()) return fail<Event>(timeout);
  auto metadata = read_metadata(f);
  if (!metadata.ok()) return fail<Event>(metadata);
  event.id = std::move(id.value);
  event.flags = flags.value;
  event.pending_id = std::move(pending_id.value);
  event.timeout_s = timeout.value;
  event.metadata = std::move(metadata.value);
  return Parsed<Event>{std::move(event)};
}

namespace {

// The event values of a create body: the body itself, or each element of its `data` array.
template <typename Event>
Parsed<std::vector<Event>> parse_events(std::string_view body,
                                        Parsed<Event> (*from_json)(const json::value&,
                                                                   std::string_view)) {
  using Events = std::vector<Event>;
  auto doc = parse_json(body);
  if (!doc.ok()) return fail<Events>(doc);
  if (!doc.value.is_object()) {
    return fail<Events>(ErrorCode::body_invalid,
                        "the body must be a JSON object, not " + json_type_name(doc.value), "");
  }
  const json::object& top = doc.value.get_object();
  if (!top.contains("data")) {
    auto one = from_json(doc.value, "");
    if (!one.ok()) return fail<Events>(one);
    Events events;
    events.push_back(std::move(one.value));
    return Parsed<Events>{std::move(events)};
  }
  const EventFields f(top, "");
  static constexpr std::array<std::string_view, 1> kFields = {"data"};
  if (auto e = f.unknown_field(kFields)) return Parsed<Events>{{}, std::move(e)};
  const json::value& data = top.at("data");
  if (!data.is_array()) {
    return fail<Events>(ErrorCode::body_invalid,
                        "data must be an array of events, not " + json_type_name(data), "data");
  }
  const json::array& items = data.get_array();
  if (items.empty()) {
    return fail<Events>(ErrorCode::data_empty, "data must hold at least one event", "data");
  }
  if (items.size() > ledger::kEventsPerRequestMax) {
    return fail<Events>(ErrorCode::too_many_events,
                        "data holds " + std::to_string(items.size()) + " events; at most " +
                            std::to_string(ledger::kEventsPerRequestMax) + " per request",
                        "data");
  }
  Events events;
  events.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    auto event = from_json(items[i], "data[" + std::to_string(i) + "].");
    if (!event.ok()) return fail<Events>(event);
    events.push_back(std::move(event.value));
  }
  return Parsed<Events>{std::move(events)};
}

}  // namespace

Parsed<std::vector<ledger::AccountEvent>> parse_account_events(std::string_view body) {
  return parse_events<ledger::AccountEvent>(body, &account_event_from_json);
}

Parsed<std::vector<ledger::TransferEvent>> parse_transfer_events(std::string_view body) {
  return parse_events<ledger::TransferEvent>(body, &transfer_event_from_json);
}

}  // namespace keel::api
