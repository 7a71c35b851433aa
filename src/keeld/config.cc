#include "keeld/config.h"
#include "api/listen_address.h"

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
    error = unknown_key(e, "engine.",
                        {"queue_capacity", "batch_events_max", "snapshot_interval_events",
                         "segment_bytes_max", "tick_interval_ms"});
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
      read_int(e, "tick_interval_ms", "engine.", &c->engine.tick_interval_ms, 1, &error);
  return ok ? std::string() : error;
}

}  // namespace

Status parse_listen(std::string_view listen, api::ServerOptions* server) {
  return api::parse_listen(listen, &server->host, &server->port);
}

std::string base_url(const api::ServerOptions& server, uint16_t port) {
  const bool ipv6 = server.host.find(':') != std::string::npos;
  return "http://" + (ipv6 ? "[" + server.host + "]" : server.host) + ":" + std::to_string(port);
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
  std::string error =
      unknown_key(doc, "", {"listen", "data", "io_threads", "log_level", "http", "engine"});
  std::string listen;
  std::string data;
  if (error.empty() && read_string(doc, "listen", &listen, &error) &&
      read_string(doc, "data", &data, &error) &&
      read_string(doc, "log_level", &config->log_level, &error) &&
      read_int(doc, "io_threads", "", &config->server.io_threads, 1, &error)) {
    error = apply_sections(doc, config);
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
  return ParseOutcome::run;
}

}  // namespace keel::keeld
