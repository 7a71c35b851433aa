#include "psp_sim/config.h"

#include <algorithm>
#include <boost/json.hpp>
#include <fstream>
#include <sstream>
// Errors as values: the config parser never throws.
#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include "core/http_url.h"
#include "net/listen_address.h"
#include "psp_sim/books.h"

namespace keel::psp_sim {
namespace {

namespace json = boost::json;

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

// The faults and schedule tables in the JSON shape parse_faults() and parse_schedule() read.
json::value toml_to_json(const toml::node& node) {
  if (const auto* t = node.as_table()) {
    json::object o;
    for (const auto& [k, v] : *t) o[std::string(k.str())] = toml_to_json(v);
    return o;
  }
  if (const auto* a = node.as_array()) {
    json::array arr;
    for (const auto& v : *a) arr.push_back(toml_to_json(v));
    return arr;
  }
  if (const auto* i = node.as_integer()) return json::value(i->get());
  if (const auto* f = node.as_floating_point()) return json::value(f->get());
  if (const auto* b = node.as_boolean()) return json::value(b->get());
  if (const auto* s = node.as_string()) return json::value(s->get());
  return json::value(nullptr);  // dates and times: rejected by the JSON parsers
}

Status field_error(const std::string& where, std::string_view what) {
  return Status::error(where + ": " + std::string(what));
}

Status parse_integer(const toml::node& v, const std::string& where, int64_t max, int64_t* out) {
  const auto* i = v.as_integer();
  if (i == nullptr) return field_error(where, "expected an integer");
  if (i->get() < 0 || i->get() > max) {
    return field_error(where, "must be within 0.." + std::to_string(max));
  }
  *out = i->get();
  return Status::ok();
}

Status parse_string(const toml::node& v, const std::string& where, std::string* out) {
  const auto* s = v.as_string();
  if (s == nullptr) return field_error(where, "expected a string");
  *out = s->get();
  return Status::ok();
}

Status parse_currencies(const toml::node& v, const std::string& where, PspConfig* psp) {
  const auto* a = v.as_array();
  if (a == nullptr || a->empty()) return field_error(where, "expected a non-empty array");
  for (const auto& item : *a) {
    const auto* s = item.as_string();
    const auto c = s ? Currency::from_code(s->get()) : std::nullopt;
    if (!c) return field_error(where, "not an ISO 4217 currency code");
    psp->currencies.push_back(*c);
  }
  return Status::ok();
}

Status parse_listen_field(const toml::node& v, const std::string& where, PspConfig* psp) {
  std::string text;
  if (Status s = parse_string(v, where, &text); !s.is_ok()) return s;
  ListenAddress address;
  if (!net::parse_listen(text, &address.host, &address.port).is_ok()) {
    return field_error(where, "expected HOST:PORT, e.g. \"127.0.0.1:0\"");
  }
  psp->listen = std::move(address);
  return Status::ok();
}

Status parse_schedule_field(const toml::node& v, const std::string& where, PspConfig* psp) {
  if (!v.is_table()) return field_error(where, "expected a table");
  FaultSchedule schedule;
  if (std::string err = parse_schedule(toml_to_json(v), &schedule); !err.empty()) {
    return field_error(where, err);
  }
  psp->schedule = std::move(schedule);
  return Status::ok();
}

Status parse_psp_field(std::string_view key, const toml::node& v, const std::string& where,
                       PspConfig* psp, std::string* url) {
  if (key == "api_key") return parse_string(v, where, &psp->api_key);
  if (key == "webhook_url") return parse_string(v, where, url);
  if (key == "webhook_secret") return parse_string(v, where, &psp->webhook_secret);
  if (key == "fee_fixed") return parse_integer(v, where, kAmountMax, &psp->fee_fixed);
  if (key == "fee_bps") return parse_integer(v, where, 10'000, &psp->fee_bps);
  if (key == "currencies") return parse_currencies(v, where, psp);
  if (key == "listen") return parse_listen_field(v, where, psp);
  if (key == "schedule") return parse_schedule_field(v, where, psp);
  if (key == "faults") {
    if (!v.is_table()) return field_error(where, "expected a table");
    if (std::string err = parse_faults(toml_to_json(v), &psp->faults); !err.empty()) {
      return field_error(where, err);
    }
    return Status::ok();
  }
  return field_error(where, "unknown key");
}

Status parse_psp(std::string_view name, const toml::table& table, PspConfig* psp) {
  const std::string prefix = "psps." + std::string(name);
  if (!valid_name(name)) return field_error(prefix, "a PSP name is 1 to 64 of [a-z0-9_-]");
  psp->name = std::string(name);
  std::string url;
  for (const auto& [k, v] : table) {
    const std::string where = prefix + "." + std::string(k.str());
    if (Status s = parse_psp_field(k.str(), v, where, psp, &url); !s.is_ok()) return s;
  }
  if (psp->api_key.empty()) return field_error(prefix + ".api_key", "required, non-empty");
  if (psp->currencies.empty()) return field_error(prefix + ".currencies", "required");
  if (!url.empty()) {
    psp->webhook = parse_webhook_url(url);
    if (!psp->webhook)
      return field_error(prefix + ".webhook_url", "expected http://HOST:PORT/PATH");
    if (psp->webhook_secret.empty()) {
      return field_error(prefix + ".webhook_secret", "required with a webhook_url");
    }
  }
  if (psp->schedule) {
    const std::string err = check_accepting(*psp->schedule, psp->listen.has_value());
    if (!err.empty()) return field_error(prefix + ".schedule", err);
  }
  return Status::ok();
}

}  // namespace

std::optional<WebhookUrl> parse_webhook_url(std::string_view url) {
  const auto u = parse_http_url_with_target(url, {.ip_literals = true});
  if (!u) return std::nullopt;
  return WebhookUrl{u->host, u->port, u->target};
}

Status parse_config(std::string_view toml_text, SimConfig* out) {
  toml::parse_result parsed = toml::parse(toml_text);
  if (!parsed) {
    std::ostringstream msg;
    msg << "line " << parsed.error().source().begin.line << ": " << parsed.error().description();
    return Status::error(msg.str());
  }
  const toml::table& root = parsed.table();
  SimConfig config;
  for (const auto& [k, v] : root) {
    if (k.str() != "psps") return field_error(std::string(k.str()), "unknown key");
  }
  const toml::table* psps = root["psps"].as_table();
  if (psps == nullptr || psps->empty()) return Status::error("psps: at least one [psps.NAME]");
  for (const auto& [name, v] : *psps) {
    const toml::table* t = v.as_table();
    if (t == nullptr) return field_error("psps." + std::string(name.str()), "expected a table");
    PspConfig psp;
    if (Status s = parse_psp(name.str(), *t, &psp); !s.is_ok()) return s;
    config.psps.push_back(std::move(psp));
  }
  std::sort(config.psps.begin(), config.psps.end(),
            [](const PspConfig& a, const PspConfig& b) { return a.name < b.name; });
  *out = std::move(config);
  return Status::ok();
}

Status load_config(const std::string& path, SimConfig* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error(path + ": cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  if (Status s = parse_config(text.str(), out); !s.is_ok()) {
    return Status::error(path + ": " + s.message());
  }
  return Status::ok();
}

}  // namespace keel::psp_sim
