#include "psp_sim/faults.h"

#include <boost/json.hpp>

namespace keel::psp_sim {
namespace {

namespace json = boost::json;

std::string parse_rate(const json::value& v, std::string_view name, double* out) {
  double d = 0;
  if (v.is_double()) {
    d = v.get_double();
  } else if (v.is_int64()) {
    d = static_cast<double>(v.get_int64());
  } else if (v.is_uint64()) {
    d = static_cast<double>(v.get_uint64());
  } else {
    return std::string(name) + ": expected a number";
  }
  if (!(d >= 0.0 && d <= 1.0)) return std::string(name) + ": a rate must be within [0, 1]";
  *out = d;
  return {};
}

std::string parse_range(const json::value& v, std::string_view name, RangeMs* out) {
  const std::string where(name);
  if (!v.is_object()) return where + ": expected {min, max}";
  RangeMs r;
  for (const auto& [key, value] : v.get_object()) {
    if (!value.is_int64()) return where + "." + std::string(key) + ": expected an integer";
    if (key == "min") {
      r.min = value.get_int64();
    } else if (key == "max") {
      r.max = value.get_int64();
    } else {
      return where + ": unknown key " + std::string(key);
    }
  }
  if (r.min < 0 || r.min > r.max || r.max > kFaultDelayMsMax) {
    return where + ": need 0 <= min <= max <= " + std::to_string(kFaultDelayMsMax);
  }
  *out = r;
  return {};
}

std::string parse_decline_codes(const json::value& v, std::vector<Decline>* out) {
  if (!v.is_array()) return "decline_codes: expected an array";
  out->clear();
  for (const json::value& item : v.get_array()) {
    const json::object* o = item.if_object();
    const json::value* code = o ? o->if_contains("code") : nullptr;
    const json::value* type = o ? o->if_contains("type") : nullptr;
    if (o == nullptr || o->size() != 2 || code == nullptr || !code->is_string() ||
        code->get_string().empty() || type == nullptr || !type->is_string()) {
      return "decline_codes: each entry is {code = \"...\", type = \"hard\" | \"soft\"}";
    }
    Decline d;
    d.code = std::string(code->get_string());
    if (type->get_string() == "hard") {
      d.type = DeclineType::hard;
    } else if (type->get_string() == "soft") {
      d.type = DeclineType::soft;
    } else {
      return "decline_codes: type must be \"hard\" or \"soft\"";
    }
    out->push_back(std::move(d));
  }
  return {};
}

std::string parse_field(std::string_view key, const json::value& value, FaultConfig* f) {
  if (key == "latency_ms") return parse_range(value, key, &f->latency_ms);
  if (key == "async_delay_ms") return parse_range(value, key, &f->async_delay_ms);
  if (key == "webhook_delay_ms") return parse_range(value, key, &f->webhook_delay_ms);
  if (key == "decline_codes") return parse_decline_codes(value, &f->decline_codes);
  if (key == "webhook_reorder") {
    if (!value.is_bool()) return "webhook_reorder: expected true or false";
    f->webhook_reorder = value.get_bool();
    return {};
  }
  const std::pair<std::string_view, double FaultConfig::*> rates[] = {
      {"decline_rate", &FaultConfig::decline_rate},
      {"error_5xx_rate", &FaultConfig::error_5xx_rate},
      {"refuse_rate", &FaultConfig::refuse_rate},
      {"black_hole_rate", &FaultConfig::black_hole_rate},
      {"response_lost_rate", &FaultConfig::response_lost_rate},
      {"async_rate", &FaultConfig::async_rate},
      {"webhook_loss_rate", &FaultConfig::webhook_loss_rate},
      {"webhook_duplicate_rate", &FaultConfig::webhook_duplicate_rate},
  };
  for (const auto& [name, member] : rates) {
    if (key == name) return parse_rate(value, name, &(f->*member));
  }
  return "unknown fault " + std::string(key);
}

json::object range_to_json(RangeMs r) { return json::object{{"min", r.min}, {"max", r.max}}; }

}  // namespace

std::string parse_faults(const json::value& v, FaultConfig* out) {
  if (!v.is_object()) return "faults: expected an object";
  FaultConfig f;
  for (const auto& [key, value] : v.get_object()) {
    if (std::string err = parse_field(key, value, &f); !err.empty()) return err;
  }
  *out = std::move(f);
  return {};
}

json::object faults_to_json(const FaultConfig& f) {
  json::array codes;
  for (const Decline& d : f.decline_codes) {
    codes.emplace_back(json::object{{"code", d.code}, {"type", decline_type_name(d.type)}});
  }
  return json::object{
      {"latency_ms", range_to_json(f.latency_ms)},
      {"decline_rate", f.decline_rate},
      {"decline_codes", std::move(codes)},
      {"error_5xx_rate", f.error_5xx_rate},
      {"refuse_rate", f.refuse_rate},
      {"black_hole_rate", f.black_hole_rate},
      {"response_lost_rate", f.response_lost_rate},
      {"async_rate", f.async_rate},
      {"async_delay_ms", range_to_json(f.async_delay_ms)},
      {"webhook_loss_rate", f.webhook_loss_rate},
      {"webhook_duplicate_rate", f.webhook_duplicate_rate},
      {"webhook_delay_ms", range_to_json(f.webhook_delay_ms)},
      {"webhook_reorder", f.webhook_reorder},
  };
}

FaultDecider::FaultDecider(uint64_t seed, std::string psp)
    : key_{seed, 0x6b65656c2d707370ull /* "keel-psp" */}, psp_(std::move(psp)) {}

uint64_t FaultDecider::hash(std::string_view subject, std::string_view decision, uint64_t n) const {
  // Length-prefixed fields: no two different tuples hash the same bytes.
  std::string data;
  data.reserve(psp_.size() + subject.size() + decision.size() + 64);
  for (std::string_view part : {std::string_view(psp_), subject, decision}) {
    data += std::to_string(part.size());
    data += ':';
    data += part;
  }
  data += std::to_string(n);
  return siphash13(key_, data);
}

double FaultDecider::unit(std::string_view subject, std::string_view decision, uint64_t n) const {
  // The top 53 bits: exactly representable, uniform in [0, 1).
  return static_cast<double>(hash(subject, decision, n) >> 11) * 0x1.0p-53;
}

bool FaultDecider::happens(double rate, std::string_view subject, std::string_view decision,
                           uint64_t n) const {
  if (rate <= 0) return false;
  return unit(subject, decision, n) < rate;
}

int64_t FaultDecider::pick_ms(RangeMs range, std::string_view subject, std::string_view decision,
                              uint64_t n) const {
  if (range.max <= range.min) return range.min;
  const uint64_t span = static_cast<uint64_t>(range.max - range.min) + 1;
  return range.min + static_cast<int64_t>(hash(subject, decision, n) % span);
}

Decisions FaultDecider::operation_decisions(const FaultConfig& f,
                                            std::string_view reference) const {
  Decisions d;
  if (happens(f.decline_rate, reference, "decline")) {
    if (f.decline_codes.empty()) {
      d.decline = Decline{"do_not_honor", DeclineType::soft};
    } else {
      d.decline = f.decline_codes[hash(reference, "decline_code") % f.decline_codes.size()];
    }
  }
  d.async = happens(f.async_rate, reference, "async");
  return d;
}

}  // namespace keel::psp_sim
