#include "api/router.h"

#include <algorithm>
#include <array>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <random>

#include "core/ids.h"

namespace keel::api {
namespace {

struct RouteSpec {
  std::string_view method;
  std::array<std::string_view, 5> segments;  // "{id}" matches any one segment; "" ends
  Route route;
  std::array<std::string_view, 7> query;  // the query parameters the route takes
};

constexpr std::array kRoutes = {
    RouteSpec{"POST", {"v1", "accounts"}, Route::create_accounts, {}},
    RouteSpec{"GET", {"v1", "accounts", "{id}"}, Route::get_account, {}},
    RouteSpec{"GET",
              {"v1", "accounts", "{id}", "transfers"},
              Route::list_account_transfers,
              {"limit", "starting_after"}},
    RouteSpec{"POST", {"v1", "accounts", "{id}", "close"}, Route::close_account, {}},
    RouteSpec{"POST", {"v1", "accounts", "{id}", "reopen"}, Route::reopen_account, {}},
    RouteSpec{"POST", {"v1", "transfers"}, Route::create_transfers, {}},
    RouteSpec{"GET", {"v1", "transfers", "{id}"}, Route::get_transfer, {}},
    RouteSpec{"GET", {"v1", "admin", "status"}, Route::admin_status, {"full"}},
    RouteSpec{"POST", {"v1", "admin", "snapshot"}, Route::admin_snapshot, {}},
    RouteSpec{"GET", {"healthz"}, Route::healthz, {}},
    RouteSpec{"GET", {"readyz"}, Route::readyz, {}},
    RouteSpec{"GET", {"metrics"}, Route::metrics, {}},
    RouteSpec{"GET", {"v1", "channels"}, Route::list_channels, {}},
    RouteSpec{"POST", {"v1", "admin", "channels", "{id}", "pause"}, Route::admin_channel_pause, {}},
    RouteSpec{
        "POST", {"v1", "admin", "channels", "{id}", "resume"}, Route::admin_channel_resume, {}},
    RouteSpec{"POST", {"v1", "admin", "channels", "{id}", "drain"}, Route::admin_channel_drain, {}},
    RouteSpec{
        "POST", {"v1", "admin", "channels", "{id}", "canary"}, Route::admin_channel_canary, {}},
    RouteSpec{"POST", {"v1", "admin", "mode"}, Route::admin_mode, {}},
    RouteSpec{"POST", {"v1", "admin", "flows", "{id}", "disable"}, Route::admin_flow_disable, {}},
    RouteSpec{"POST", {"v1", "admin", "flows", "{id}", "enable"}, Route::admin_flow_enable, {}},
    RouteSpec{"GET", {"v1", "admin", "controls"}, Route::admin_controls, {}},
    RouteSpec{"POST", {"v1", "admin", "backup"}, Route::admin_backup, {}},
    RouteSpec{"POST", {"v1", "customers"}, Route::create_customer, {}},
    RouteSpec{"GET", {"v1", "customers", "{id}"}, Route::get_customer, {}},
    RouteSpec{"POST", {"v1", "merchants"}, Route::create_merchant, {}},
    RouteSpec{"GET", {"v1", "merchants", "{id}"}, Route::get_merchant, {}},
    RouteSpec{"GET", {"v1", "wallets", "{id}"}, Route::get_wallet, {}},
    RouteSpec{"POST", {"v1", "payments"}, Route::create_payment, {}},
    RouteSpec{
        "GET",
        {"v1", "payments"},
        Route::list_payments,
        {"limit", "starting_after", "status", "merchant", "customer", "created_gte", "created_lt"}},
    RouteSpec{"GET", {"v1", "payments", "{id}"}, Route::get_payment, {}},
    RouteSpec{"POST", {"v1", "payments", "{id}", "confirm"}, Route::confirm_payment, {}},
    RouteSpec{"POST", {"v1", "payments", "{id}", "capture"}, Route::capture_payment, {}},
    RouteSpec{"POST", {"v1", "payments", "{id}", "cancel"}, Route::cancel_payment, {}},
    RouteSpec{"POST", {"v1", "webhooks", "{id}"}, Route::psp_webhook, {}},
    RouteSpec{"POST", {"v1", "refunds"}, Route::create_refund, {}},
    RouteSpec{"GET", {"v1", "refunds", "{id}"}, Route::get_refund, {}},
    RouteSpec{"POST", {"v1", "topups"}, Route::create_topup, {}},
    RouteSpec{"GET", {"v1", "topups", "{id}"}, Route::get_topup, {}},
    RouteSpec{"POST", {"v1", "payouts"}, Route::create_payout, {}},
    RouteSpec{"GET", {"v1", "payouts", "{id}"}, Route::get_payout, {}},
    RouteSpec{"POST", {"v1", "wallet_transfers"}, Route::create_wallet_transfer, {}},
    RouteSpec{"GET", {"v1", "wallet_transfers", "{id}"}, Route::get_wallet_transfer, {}},
    RouteSpec{"GET",
              {"v1", "topups"},
              Route::list_topups,
              {"limit", "starting_after", "status", "customer", "created_gte", "created_lt"}},
    RouteSpec{"GET",
              {"v1", "payouts"},
              Route::list_payouts,
              {"limit", "starting_after", "status", "customer", "created_gte", "created_lt"}},
    RouteSpec{"GET",
              {"v1", "wallet_transfers"},
              Route::list_wallet_transfers,
              {"limit", "starting_after", "status", "customer", "created_gte", "created_lt"}},
    RouteSpec{"GET",
              {"v1", "events"},
              Route::list_events,
              {"limit", "starting_after", "type", "object_id", "merchant"}},
    RouteSpec{"GET",
              {"v1", "admin", "reviews"},
              Route::list_reviews,
              {"limit", "starting_after", "status", "reason", "object_id"}},
};

// Whether `path` fits `spec`; the {id} segment goes to *id.
bool path_matches(const RouteSpec& spec, const std::vector<std::string>& path, std::string* id) {
  size_t n = 0;
  while (n < spec.segments.size() && !spec.segments[n].empty()) ++n;
  if (path.size() != n) return false;
  for (size_t i = 0; i < n; ++i) {
    if (spec.segments[i] == "{id}") {
      *id = path[i];
    } else if (spec.segments[i] != path[i]) {
      return false;
    }
  }
  return true;
}

bool takes_id(const RouteSpec& spec) {
  return std::find(spec.segments.begin(), spec.segments.end(), "{id}") != spec.segments.end();
}

std::optional<ApiError> check_query(const RouteSpec& spec, const QueryParams& query) {
  for (size_t i = 0; i < query.size(); ++i) {
    const std::string& name = query[i].first;
    if (std::find(spec.query.begin(), spec.query.end(), name) == spec.query.end() || name.empty()) {
      return make_error(ErrorCode::parameter_unknown, "unknown query parameter " + name, name);
    }
    for (size_t j = 0; j < i; ++j) {
      if (query[j].first == name) {
        return make_error(ErrorCode::parameter_invalid, "query parameter " + name + " repeats",
                          name);
      }
    }
  }
  return std::nullopt;
}

RouteMatch route_error(ApiError error) {
  RouteMatch m;
  m.error = std::move(error);
  return m;
}

}  // namespace

RouteMatch match_route(std::string_view method, std::string_view target) {
  const auto url = boost::urls::parse_origin_form(target);
  if (!url) return route_error(make_error(ErrorCode::http_invalid, "malformed request target"));
  std::vector<std::string> path;
  for (const auto& segment : url->segments()) {
    if (path.size() == 8) break;  // longer than any route
    path.emplace_back(segment);
  }
  RouteMatch m;
  bool path_known = false;
  for (const RouteSpec& spec : kRoutes) {
    std::string id;
    if (!path_matches(spec, path, &id)) continue;
    if (spec.method != method) {
      if (!m.allow.empty()) m.allow += ", ";
      m.allow += spec.method;
      path_known = true;
      continue;
    }
    m.route = spec.route;
    m.id = std::move(id);
    for (const auto& param : url->params()) m.query.emplace_back(param.key, param.value);
    m.error = check_query(spec, m.query);
    if (!m.error && takes_id(spec) && !is_valid_id(m.id)) {
      m.error =
          make_error(ErrorCode::id_invalid,
                     "the id in the path must be 1 to 64 characters from [A-Za-z0-9_-.:]", "id");
    }
    m.allow.clear();
    return m;
  }
  if (!path_known) {
    return route_error(
        make_error(ErrorCode::route_not_found,
                   "no route for " + std::string(method) + " " + std::string(url->encoded_path())));
  }
  m.error = make_error(ErrorCode::method_not_allowed,
                       std::string(method) + " is not allowed here; allowed: " + m.allow);
  return m;
}

std::optional<std::string_view> query_value(const QueryParams& query, std::string_view name) {
  for (const auto& [k, v] : query) {
    if (k == name) return std::string_view(v);
  }
  return std::nullopt;
}

std::string new_request_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t r = rng();
  std::string id = "req_";
  for (int i = 0; i < 16; ++i, r >>= 4) id.push_back(kHex[r & 0xF]);
  return id;
}

namespace {

bool is_lower_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool all_zero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

}  // namespace

bool is_valid_traceparent(std::string_view v) {
  // version(2) - trace id(32) - parent id(16) - flags(2)
  if (v.size() < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-') return false;
  const std::string_view version = v.substr(0, 2);
  const std::string_view trace_id = v.substr(3, 32);
  const std::string_view parent_id = v.substr(36, 16);
  const std::string_view flags = v.substr(53, 2);
  if (!is_lower_hex(version) || !is_lower_hex(trace_id) || !is_lower_hex(parent_id) ||
      !is_lower_hex(flags)) {
    return false;
  }
  if (version == "ff" || all_zero(trace_id) || all_zero(parent_id)) return false;
  if (version == "00") return v.size() == 55;
  return v.size() == 55 || v[55] == '-';
}

}  // namespace keel::api
