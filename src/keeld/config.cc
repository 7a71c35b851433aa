#include "keeld/config.h"
#include "connectors/psp_credentials.h"
#include "core/http_url.h"
#include "net/listen_address.h"

#include <toml++/toml.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <fstream>
#include <limits>
#include <sstream>

namespace keel::keeld {
namespace {

// Reads an integer setting into *out if present; false with *error set if it is not an integer
// in [min, max].
template <typename T>
bool read_int(const toml::table& table, std::string_view key, std::string_view where, T* out,
              int64_t min, std::string* error) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return true;
  const auto value = node->value_exact<int64_t>();
  const auto max = static_cast<uint64_t>(std::numeric_limits<T>::max());
  if (!value || *value < min || static_cast<uint64_t>(*value) > max) {
    *error = std::string(where) + std::string(key) + " must be an integer from " +
             std::to_string(min) + " to " + std::to_string(max);
    return false;
  }
  *out = static_cast<T>(*value);
  return true;
}

bool read_string(const toml::table& table, std::string_view key, std::string* out,
                 std::string* error) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return true;
  const auto value = node->value_exact<std::string>();
  if (!value) {
    *error = std::string(key) + " must be a string";
    return false;
  }
  *out = *value;
  return true;
}

// The first key of `table` not in `allowed`, as an error message.
std::string unknown_key(const toml::table& table, std::string_view where,
                        std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, node] : table) {
    if (std::find(allowed.begin(), allowed.end(), key.str()) == allowed.end()) {
      return "unknown setting " + std::string(where) + std::string(key.str());
    }
  }
  return {};
}

std::string apply_sections(const toml::table& doc, KeeldConfig* c) {
  std::string error;
  static const toml::table kEmpty;
  const toml::table* http = doc["http"].as_table();
  const toml::table* engine = doc["engine"].as_table();
  if (doc.contains("http") && http == nullptr) return "http must be a table";
  if (doc.contains("engine") && engine == nullptr) return "engine must be a table";
  const toml::table& h = http != nullptr ? *http : kEmpty;
  const toml::table& e = engine != nullptr ? *engine : kEmpty;
  error = unknown_key(h, "http.", {"body_bytes_max", "header_bytes_max", "idle_timeout_ms"});
  if (error.empty()) {
    error = unknown_key(
        e, "engine.",
        {"queue_capacity", "batch_events_max", "snapshot_interval_events", "segment_bytes_max",
         "tick_interval_ms", "history", "store_cache_mb", "archive_dir", "memory_max_mb"});
  }
  if (!error.empty()) return error;
  const bool ok =
      read_int(h, "body_bytes_max", "http.", &c->server.body_bytes_max, 1, &error) &&
      read_int(h, "header_bytes_max", "http.", &c->server.header_bytes_max, 1024, &error) &&
      read_int(h, "idle_timeout_ms", "http.", &c->server.idle_timeout_ms, 1, &error) &&
      read_int(e, "queue_capacity", "engine.", &c->engine.queue_capacity, 1, &error) &&
      read_int(e, "batch_events_max", "engine.", &c->engine.batch_events_max, 1, &error) &&
      read_int(e, "snapshot_interval_events", "engine.", &c->engine.snapshot_interval_events, 0,
               &error) &&
      read_int(e, "segment_bytes_max", "engine.", &c->engine.segment_bytes_max, 4096, &error) &&
      read_int(e, "tick_interval_ms", "engine.", &c->engine.tick_interval_ms, 1, &error) &&
      read_int(e, "store_cache_mb", "engine.", &c->engine.store_cache_mb, 1, &error);
  if (!ok) return error;
  std::string history = c->engine.history_in_memory ? "memory" : "store";
  if (!read_string(e, "history", &history, &error)) return error;
  if (history != "store" && history != "memory") {
    return "engine.history must be \"store\" (history on disk) or \"memory\"";
  }
  c->engine.history_in_memory = history == "memory";
  uint64_t memory_max_mb = c->engine.memory_max_bytes >> 20;
  if (!read_int(e, "memory_max_mb", "engine.", &memory_max_mb, 0, &error)) return error;
  if (memory_max_mb > (uint64_t{1} << 24)) return "engine.memory_max_mb must be at most 16777216";
  c->engine.memory_max_bytes = memory_max_mb << 20;
  std::string archive = c->engine.archive_dir.string();
  if (!read_string(e, "archive_dir", &archive, &error)) return error;
  c->engine.archive_dir = archive;
  return {};
}

// An array of strings at `key`, if present.
bool read_strings(const toml::table& table, std::string_view key, std::string_view where,
                  std::vector<std::string>* out, std::string* error) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return true;
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    *error = std::string(where) + std::string(key) + " must be an array of strings";
    return false;
  }
  out->clear();
  for (const toml::node& item : *array) {
    const auto value = item.value_exact<std::string>();
    if (!value) {
      *error = std::string(where) + std::string(key) + " must be an array of strings";
      return false;
    }
    out->push_back(*value);
  }
  return true;
}

// The routing side of a [channels.NAME] table.
std::string apply_channel_routing(const toml::table& t, const std::string& where,
                                  routing::ChannelDef* def) {
  std::string error;
  std::vector<std::string> currencies;
  std::vector<std::string> flows;
  if (!read_string(t, "canary_of", &def->canary_of, &error) ||
      !read_strings(t, "currencies", where, &currencies, &error) ||
      !read_strings(t, "flows", where, &flows, &error) ||
      !read_int(t, "min_amount", where, &def->min_amount, 1, &error) ||
      !read_int(t, "max_amount", where, &def->max_amount, 1, &error) ||
      !read_int(t, "cost_bps", where, &def->cost_bps, 0, &error) ||
      !read_int(t, "cost_fixed", where, &def->cost_fixed, 0, &error) ||
      !read_int(t, "concurrency_max", where, &def->concurrency_max, 1, &error)) {
    return error;
  }
  if (const toml::node* p = t.get("priority")) {
    const auto v = p->value_exact<int64_t>();
    if (!v || *v < -1000 || *v > 1000)
      return where + "priority must be an integer from -1000 to 1000";
    def->priority = static_cast<int32_t>(*v);
  }
  for (const std::string& code : currencies) {
    const auto currency = Currency::from_code(code);
    if (!currency) return where + "currencies: " + code + " is not an ISO 4217 code";
    def->currencies.push_back(*currency);
  }
  std::sort(def->currencies.begin(), def->currencies.end(),
            [](Currency a, Currency b) { return a.index() < b.index(); });
  if (t.contains("flows")) {
    def->flows = 0;
    for (const std::string& f : flows) {
      bool known = false;
      for (uint8_t i = 0; i <= static_cast<uint8_t>(routing::kFlowLast); ++i) {
        const auto flow = static_cast<routing::Flow>(i);
        if (routing::flow_name(flow) == f) {
          def->flows |= routing::flow_bit(flow);
          known = true;
        }
      }
      if (!known) return where + "flows: " + f + " is not card_payment, topup or payout";
    }
  }
  return routing::channel_problem(*def);
}

std::string apply_channel(std::string_view name, const toml::table& t, KeeldConfig* c) {
  const std::string where = "channels." + std::string(name) + ".";
  std::string error = unknown_key(t, where,
                                  {"url",
                                   "psp",
                                   "api_key",
                                   "webhook_secret",
                                   "previous_webhook_secret",
                                   "ca_file",
                                   "client_cert_file",
                                   "client_key_file",
                                   "api_key_file",
                                   "connections_max",
                                   "connect_timeout_ms",
                                   "total_timeout_ms",
                                   "currencies",
                                   "flows",
                                   "min_amount",
                                   "max_amount",
                                   "priority",
                                   "cost_bps",
                                   "cost_fixed",
                                   "concurrency_max",
                                   "canary_of"});
  if (!error.empty()) return error;
  dispatch::ChannelConfig ch;
  ch.name = std::string(name);
  ch.client.psp = ch.name;
  std::string url;
  net::TlsClientConfig tls;
  const bool ok =
      read_string(t, "url", &url, &error) && read_string(t, "psp", &ch.client.psp, &error) &&
      read_string(t, "ca_file", &tls.ca_file, &error) &&
      read_string(t, "client_cert_file", &tls.cert_file, &error) &&
      read_string(t, "client_key_file", &tls.key_file, &error) &&
      read_string(t, "api_key", &ch.client.api_key, &error) &&
      read_string(t, "api_key_file", &ch.api_key_file, &error) &&
      read_string(t, "webhook_secret", &ch.webhook_secret, &error) &&
      read_string(t, "previous_webhook_secret", &ch.previous_webhook_secret, &error) &&
      read_int(t, "connections_max", where, &ch.client.connections_max, 1, &error) &&
      read_int(t, "connect_timeout_ms", where, &ch.client.connect_timeout_ms, 1, &error) &&
      read_int(t, "total_timeout_ms", where, &ch.client.total_timeout_ms, 1, &error);
  if (!ok) return error;
  // https://HOST:PORT: the PSP's certificate is verified against ca_file (else the system's
  // CAs), with a client certificate when given.
  const auto endpoint = parse_http_url_with_target(
      url, {.ip_literals = true, .path = false, .port_required = true, .https = true});
  if (!endpoint) return where + "url must be http://HOST:PORT or https://HOST:PORT";
  const bool https = endpoint->tls;
  ch.client.host = endpoint->host;
  ch.client.port = endpoint->port;
  if (!https && (!tls.ca_file.empty() || !tls.cert_file.empty() || !tls.key_file.empty())) {
    return where + "ca_file and client certificates need an https:// url";
  }
  if (https) {
    if (Status s = net::check_client_config(tls); !s.is_ok()) return where + s.message();
    ch.client.tls = std::move(tls);
  }
  if (name.empty() || name.size() > 40 ||
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string_view::npos) {
    return "channel names are 1 to 40 of [a-z0-9_-]: " + std::string(name);
  }
  // api_key_file: the PSP's keys, read again while keeld runs (a rotation without restart).
  if (!ch.api_key_file.empty()) {
    if (!ch.client.api_key.empty()) return where + "api_key and api_key_file exclude each other";
    std::vector<std::string> keys;
    if (Status s = connectors::read_api_key_file(ch.api_key_file, &keys); !s.is_ok()) {
      return where + s.message();
    }
    ch.client.api_key = keys.front();
    ch.client.fallback_api_keys.assign(keys.begin() + 1, keys.end());
  }
  routing::ChannelDef def;
  def.name = ch.name;
  def.psp = ch.client.psp;
  def.timeout_ms = ch.client.total_timeout_ms;
  error = apply_channel_routing(t, where, &def);
  if (!error.empty()) return error;
  c->psp.channels.push_back(std::move(ch));
  c->channel_defs.push_back(std::move(def));
  return {};
}

// The table `name` of `doc` with only `keys` in it: null when absent (or, with `*error` set,
// when it is not a table or holds another key).
const toml::table* section(const toml::table& doc, std::string_view name,
                           std::initializer_list<std::string_view> keys, std::string* error) {
  const toml::node* n = doc.get(name);
  if (n == nullptr) return nullptr;
  const toml::table* t = n->as_table();
  if (t == nullptr) {
    *error = std::string(name) + " must be a table";
    return nullptr;
  }
  *error = unknown_key(*t, std::string(name) + ".", keys);
  return error->empty() ? t : nullptr;
}

// [auth]: rate_limits.ROLE = {per_second, burst} for each role named.
std::string apply_auth(const toml::table& doc, KeeldConfig* c) {
  std::string section_error;
  const toml::table* t = section(doc, "auth", {"rate_limits"}, &section_error);
  if (t == nullptr) return section_error;
  const toml::node* limits = t->get("rate_limits");
  if (limits == nullptr) return {};
  if (limits->as_table() == nullptr) return "auth.rate_limits must be a table of roles";
  for (const auto& [key, node] : *limits->as_table()) {
    const auto role = security::role_from_name(key.str());
    if (!role) return "auth.rate_limits." + std::string(key.str()) + ": no such role";
    const toml::table* r = node.as_table();
    const std::string where = "auth.rate_limits." + std::string(key.str()) + ".";
    if (r == nullptr) return where + " must be a table";
    std::string error = unknown_key(*r, where, {"per_second", "burst"});
    if (!error.empty()) return error;
    uint32_t per_second = 0;
    uint32_t burst = 0;
    if (!read_int(*r, "per_second", where, &per_second, 0, &error) ||
        !read_int(*r, "burst", where, &burst, 0, &error)) {
      return error;
    }
    c->auth.rate_limits[static_cast<size_t>(*role)] = {static_cast<double>(per_second),
                                                       static_cast<double>(burst)};
  }
  return {};
}

// [tls]: cert_file and key_file serve HTTPS; client_ca_file asks clients for certificates.
std::string apply_tls(const toml::table& doc, KeeldConfig* c) {
  std::string error;
  const toml::table* t = section(doc, "tls", {"cert_file", "key_file", "client_ca_file"}, &error);
  if (t == nullptr) return error;
  net::TlsServerConfig tls;
  if (!read_string(*t, "cert_file", &tls.cert_file, &error) ||
      !read_string(*t, "key_file", &tls.key_file, &error) ||
      !read_string(*t, "client_ca_file", &tls.client_ca_file, &error)) {
    return "tls." + error;
  }
  if (tls.cert_file.empty() || tls.key_file.empty()) {
    return "tls: cert_file and key_file are both required";
  }
  c->server.tls = std::move(tls);
  return {};
}

// [admin_listener]: a second port for operator keys, with mutual TLS (docs/security.md, "The
// admin listener"). Every key is required: an admin port without client certificates would be
// the main port again.
std::string apply_admin_listener(const toml::table& doc, KeeldConfig* c) {
  std::string error;
  const toml::table* t =
      section(doc, "admin_listener", {"listen", "cert_file", "key_file", "client_ca_file"}, &error);
  if (t == nullptr) return error;
  std::string listen;
  net::TlsServerConfig tls;
  if (!read_string(*t, "listen", &listen, &error) ||
      !read_string(*t, "cert_file", &tls.cert_file, &error) ||
      !read_string(*t, "key_file", &tls.key_file, &error) ||
      !read_string(*t, "client_ca_file", &tls.client_ca_file, &error)) {
    return "admin_listener." + error;
  }
  if (listen.empty() || tls.cert_file.empty() || tls.key_file.empty() ||
      tls.client_ca_file.empty()) {
    return "admin_listener: listen, cert_file, key_file and client_ca_file are all required";
  }
  api::ServerOptions admin;
  if (Status s = net::parse_listen(listen, &admin.host, &admin.port); !s.is_ok()) {
    return "admin_listener." + s.message();
  }
  admin.io_threads = 1;
  admin.tls = std::move(tls);
  admin.admin_listener = true;
  c->admin_server = std::move(admin);
  c->auth.admin_listener = true;
  return {};
}

// [vault]: key_file and bin_file (docs/security.md, "The card vault").
std::string apply_vault(const toml::table& doc, KeeldConfig* c) {
  std::string error;
  const toml::table* t = section(doc, "vault", {"key_file", "bin_file"}, &error);
  if (t == nullptr) return error;
  if (!read_string(*t, "key_file", &c->vault_key_file, &error) ||
      !read_string(*t, "bin_file", &c->vault_bin_file, &error)) {
    return "vault." + error;
  }
  return {};
}

// [webhooks]: where merchant webhooks may go besides global addresses (the SSRF guard), and the
// CAs of https endpoints.
std::string apply_webhooks(const toml::table& doc, KeeldConfig* c) {
  std::string error;
  const toml::table* t = section(doc, "webhooks", {"allow_networks", "ca_file"}, &error);
  if (t == nullptr) return error;
  std::vector<std::string> networks;
  if (!read_strings(*t, "allow_networks", "", &networks, &error) ||
      !read_string(*t, "ca_file", &c->psp.webhook_tls.ca_file, &error)) {
    return "webhooks." + error;
  }
  if (Status s = net::parse_destination_policy(networks, &c->psp.webhook_destinations);
      !s.is_ok()) {
    return "webhooks.allow_networks: " + s.message();
  }
  if (Status s = net::check_client_config(c->psp.webhook_tls); !s.is_ok()) {
    return "webhooks: " + s.message();
  }
  return {};
}

// A table whose one key is a boolean: `[table] key = true|false` sets *out when present.
std::string apply_flag_table(const toml::table& doc, std::string_view table, std::string_view key,
                             bool* out) {
  std::string section_error;
  const toml::table* t = section(doc, table, {key}, &section_error);
  if (t == nullptr) return section_error;
  if (const toml::node* v = t->get(key)) {
    const auto b = v->value_exact<bool>();
    if (!b) return std::string(table) + "." + std::string(key) + " must be true or false";
    *out = *b;
  }
  return {};
}

// [admin]: controls = true serves the runtime-control routes (to admin keys).
std::string apply_admin(const toml::table& doc, KeeldConfig* c) {
  return apply_flag_table(doc, "admin", "controls", &c->payments.admin_controls);
}

// [testing]: movable_clock = true makes keeld's wall clock one tests move (never by default).
std::string apply_testing(const toml::table& doc, KeeldConfig* c) {
  return apply_flag_table(doc, "testing", "movable_clock", &c->movable_clock);
}

// [routing]: its presence turns routing on.
std::string apply_routing(const toml::table& doc, KeeldConfig* c) {
  const toml::node* n = doc.get("routing");
  if (n == nullptr) return {};
  const toml::table* t = n->as_table();
  if (t == nullptr) return "routing must be a table";
  std::string error = unknown_key(
      *t, "routing.",
      {"max_tries", "retry_budget_pct", "retry_budget_min", "backoff_base_ms", "backoff_max_ms",
       "explore_permille", "latency_penalty_ppm_per_s", "stats_bucket_ms", "seed",
       "breaker_window_ms", "breaker_min_calls", "breaker_failure_rate_pct", "breaker_slow_call_ms",
       "breaker_slow_rate_pct", "breaker_open_ms", "breaker_half_open_probes", "canary_min_samples",
       "canary_margin_pct"});
  if (!error.empty()) return error;
  routing::RouterOptions& o = c->engine.routing;
  const std::string_view w = "routing.";
  const bool ok =
      read_int(*t, "max_tries", w, &o.max_tries, 1, &error) &&
      read_int(*t, "retry_budget_pct", w, &o.retry_budget_pct, 0, &error) &&
      read_int(*t, "retry_budget_min", w, &o.retry_budget_min, 0, &error) &&
      read_int(*t, "backoff_base_ms", w, &o.backoff_base_ms, 0, &error) &&
      read_int(*t, "backoff_max_ms", w, &o.backoff_max_ms, 0, &error) &&
      read_int(*t, "explore_permille", w, &o.explore_permille, 0, &error) &&
      read_int(*t, "latency_penalty_ppm_per_s", w, &o.latency_penalty_ppm_per_s, 0, &error) &&
      read_int(*t, "stats_bucket_ms", w, &o.stats_bucket_ms, 1, &error) &&
      read_int(*t, "seed", w, &o.seed, 0, &error) &&
      read_int(*t, "breaker_window_ms", w, &o.breaker.window_ms, 1, &error) &&
      read_int(*t, "breaker_min_calls", w, &o.breaker.min_calls, 1, &error) &&
      read_int(*t, "breaker_failure_rate_pct", w, &o.breaker.failure_rate_pct, 1, &error) &&
      read_int(*t, "breaker_slow_call_ms", w, &o.breaker.slow_call_ms, 1, &error) &&
      read_int(*t, "breaker_slow_rate_pct", w, &o.breaker.slow_rate_pct, 1, &error) &&
      read_int(*t, "breaker_open_ms", w, &o.breaker.open_ms, 1, &error) &&
      read_int(*t, "breaker_half_open_probes", w, &o.breaker.half_open_probes, 1, &error) &&
      read_int(*t, "canary_min_samples", w, &o.canary_min_samples, 1, &error) &&
      read_int(*t, "canary_margin_pct", w, &o.canary_margin_pct, 0, &error) &&
      read_int(*t, "success_band_ppm", w, &o.success_band_ppm, 0, &error) &&
      read_int(*t, "breaker_consecutive_failures", w, &o.breaker.consecutive_failures, 0, &error);
  if (!ok) return error;
  if (std::string p = routing::router_options_problem(o); !p.empty()) return "routing: " + p;
  c->routing = true;
  c->routing_seed_set = t->contains("seed");
  return {};
}

// [fees.default], [fees.NAME] (a channel, or "wallet"): bps and fixed (minor units).
std::string apply_fees(const toml::table& doc, KeeldConfig* c) {
  const toml::node* n = doc.get("fees");
  if (n == nullptr) return {};
  const toml::table* fees = n->as_table();
  if (fees == nullptr) return "fees must be a table of [fees.NAME] tables";
  payments::FeeSchedule schedule;
  for (const auto& [name, node] : *fees) {
    const std::string where = "fees." + std::string(name.str()) + ".";
    const toml::table* t = node.as_table();
    if (t == nullptr) return "fees." + std::string(name.str()) + " must be a table";
    std::string error = unknown_key(*t, where, {"bps", "fixed"});
    if (!error.empty()) return error;
    payments::FeeRate rate;
    if (!read_int(*t, "bps", where, &rate.basis_points, 0, &error) ||
        !read_int(*t, "fixed", where, &rate.fixed_minor, 0, &error)) {
      return error;
    }
    if (rate.basis_points > payments::kBasisPointsMax) return where + "bps must be <= 10000";
    if (name.str() == "default") {
      schedule.default_rate = rate;
    } else {
      schedule.channels.emplace(std::string(name.str()), rate);
    }
  }
  if (!payments::is_valid(schedule)) return "fees: channel names are [a-z0-9_-]";
  c->engine.fees = schedule;
  return {};
}

std::string apply_payments(const toml::table& doc, KeeldConfig* c) {
  std::string error = apply_fees(doc, c);
  if (error.empty()) error = apply_routing(doc, c);
  if (error.empty()) error = apply_admin(doc, c);
  if (error.empty()) error = apply_auth(doc, c);
  if (error.empty()) error = apply_tls(doc, c);
  if (error.empty()) error = apply_admin_listener(doc, c);
  if (error.empty()) error = apply_vault(doc, c);
  if (error.empty()) error = apply_webhooks(doc, c);
  if (error.empty()) error = apply_testing(doc, c);
  if (!error.empty()) return error;
  if (const toml::node* n = doc.get("channels")) {
    const toml::table* channels = n->as_table();
    if (channels == nullptr) return "channels must be a table of [channels.NAME] tables";
    c->psp.channels.clear();
    c->channel_defs.clear();
    for (const auto& [name, node] : *channels) {
      if (node.as_table() == nullptr)
        return "channels." + std::string(name.str()) + " must be a table";
      error = apply_channel(name.str(), *node.as_table(), c);
      if (!error.empty()) return error;
    }
    if (std::string p = routing::channels_problem(c->channel_defs); !p.empty()) return p;
  }
  const toml::node* n = doc.get("payments");
  if (n == nullptr) return {};
  const toml::table* p = n->as_table();
  if (p == nullptr) return "payments must be a table";
  error = unknown_key(
      *p, "payments.",
      {"default_channel", "settle_wait_ms", "idempotency_ttl_s", "confirmation_deadline_s",
       "processing_deadline_s", "capture_deadline_s", "resolve_initial_ms", "resolve_max_ms",
       "not_found_grace_ms", "credentials_check_ms"});
  if (!error.empty()) return error;
  auto& d = c->engine.payments.deadlines;
  const bool ok =
      read_string(*p, "default_channel", &c->default_channel, &error) &&
      read_int(*p, "settle_wait_ms", "payments.", &c->payments.settle_wait_ms, 0, &error) &&
      read_int(*p, "idempotency_ttl_s", "payments.", &c->engine.payments.idempotency_ttl_s, 86400,
               &error) &&
      read_int(*p, "confirmation_deadline_s", "payments.", &d.confirmation_s, 1, &error) &&
      read_int(*p, "processing_deadline_s", "payments.", &d.processing_s, 1, &error) &&
      read_int(*p, "capture_deadline_s", "payments.", &d.capture_s, 1, &error) &&
      read_int(*p, "resolve_initial_ms", "payments.", &c->psp.resolve_initial_ms, 1, &error) &&
      read_int(*p, "resolve_max_ms", "payments.", &c->psp.resolve_max_ms, 1, &error) &&
      read_int(*p, "not_found_grace_ms", "payments.", &c->psp.not_found_grace_ms, 0, &error) &&
      read_int(*p, "credentials_check_ms", "payments.", &c->psp.credentials_check_ms, 100, &error);
  if (!ok) return error;
  // A refused call is believed "never received" only after the grace; if that comes after the
  // processing deadline, every such payment would go to review instead of being retried.
  if (c->psp.not_found_grace_ms >= d.processing_s * 1000) {
    return "payments.not_found_grace_ms must be below processing_deadline_s";
  }
  return {};
}

}  // namespace

void finish_payments_config(KeeldConfig* c) {
  // Routing on: the engine journals these definitions; off: none (so routing stops).
  c->engine.channels = c->routing ? c->channel_defs : std::vector<routing::ChannelDef>{};
  c->payments.routing = c->routing;
  c->payments.channels.clear();
  c->payments.webhook_secrets.clear();
  for (const dispatch::ChannelConfig& ch : c->psp.channels) {
    c->payments.channels.push_back(ch.name);
    if (ch.webhook_secret.empty()) continue;
    auto& secrets = c->payments.webhook_secrets[ch.name];
    secrets = {ch.webhook_secret};
    if (!ch.previous_webhook_secret.empty()) secrets.push_back(ch.previous_webhook_secret);
  }
  const auto it =
      std::find(c->payments.channels.begin(), c->payments.channels.end(), c->default_channel);
  if (it != c->payments.channels.end()) std::rotate(c->payments.channels.begin(), it, it + 1);
}

Status parse_listen(std::string_view listen, api::ServerOptions* server) {
  return net::parse_listen(listen, &server->host, &server->port);
}

std::string base_url(const api::ServerOptions& server, uint16_t port) {
  const bool ipv6 = server.host.find(':') != std::string::npos;
  return std::string(server.tls ? "https://" : "http://") +
         (ipv6 ? "[" + server.host + "]" : server.host) + ":" + std::to_string(port);
}

Status apply_toml(std::string_view toml_text, std::string_view origin, KeeldConfig* config) {
  toml::table doc;
  try {
    doc = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin;
    return Status::error(std::string(origin) + ":" + where.str() + ": " +
                         std::string(e.description()));
  }
  std::string error = unknown_key(doc, "",
                                  {"listen", "data", "io_threads", "log_level", "http", "engine",
                                   "payments", "channels", "fees", "routing", "admin", "auth",
                                   "tls", "vault", "webhooks", "admin_listener", "testing"});
  std::string listen;
  std::string data;
  if (error.empty() && read_string(doc, "listen", &listen, &error) &&
      read_string(doc, "data", &data, &error) &&
      read_string(doc, "log_level", &config->log_level, &error) &&
      read_int(doc, "io_threads", "", &config->server.io_threads, 1, &error)) {
    error = apply_sections(doc, config);
    if (error.empty()) error = apply_payments(doc, config);
  }
  if (error.empty() && !config->default_channel.empty()) {
    bool known = false;
    for (const auto& ch : config->psp.channels) known = known || ch.name == config->default_channel;
    if (!known) error = "payments.default_channel names no [channels.NAME]";
  }
  const auto levels = {"trace", "debug", "info", "warn", "error"};
  if (error.empty() && std::find(levels.begin(), levels.end(), config->log_level) == levels.end()) {
    error = "log_level must be one of trace, debug, info, warn, error";
  }
  if (error.empty() && !listen.empty()) {
    if (Status s = parse_listen(listen, &config->server); !s.is_ok()) error = s.message();
  }
  if (!data.empty()) config->engine.data_dir = data;
  if (!error.empty()) return Status::error(std::string(origin) + ": " + error);
  return Status::ok();
}

ParseOutcome parse_command_line(int argc, const char* const* argv, KeeldConfig* config,
                                std::string* error) {
  CLI::App app{"keeld: the keel payment core server"};
  std::string listen;
  std::string data;
  std::string config_path;
  size_t io_threads = 0;
  std::string log_level;
  app.add_option("--listen", listen, "HOST:PORT to listen on (port 0: pick a free one)");
  app.add_option("--data", data, "data directory (journal and snapshots)");
  app.add_option("--config", config_path, "TOML configuration file")->check(CLI::ExistingFile);
  app.add_option("--io-threads", io_threads, "HTTP I/O threads")->check(CLI::Range(1, 256));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_flag("--new-admin-key", config->new_admin_key,
               "create an admin key and write it to DATA/bootstrap-keys (lost admin keys)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    app.exit(e);
    return ParseOutcome::exit_ok;
  } catch (const CLI::ParseError& e) {
    *error = e.what();
    return ParseOutcome::exit_error;
  }
  if (!config_path.empty()) {
    std::ifstream in(config_path);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) {
      *error = "cannot read " + config_path;
      return ParseOutcome::exit_error;
    }
    if (Status s = apply_toml(text.str(), config_path, config); !s.is_ok()) {
      *error = s.message();
      return ParseOutcome::exit_error;
    }
  }
  if (!listen.empty()) {
    if (Status s = parse_listen(listen, &config->server); !s.is_ok()) {
      *error = s.message();
      return ParseOutcome::exit_error;
    }
  }
  if (!data.empty()) config->engine.data_dir = data;
  if (io_threads != 0) config->server.io_threads = io_threads;
  if (!log_level.empty()) config->log_level = log_level;
  finish_payments_config(config);
  return ParseOutcome::run;
}

}  // namespace keel::keeld
