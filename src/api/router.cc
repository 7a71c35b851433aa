#include "api/router.h"

#include <algorithm>
#include <array>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <random>

#include "core/ids.h"

namespace keel::api {
namespace {

using security::Role;

// Role sets of the route table: A admin, M merchant, C customer_app, U auditor, L ledger.
constexpr RoleSet A = role_bit(Role::admin);
constexpr RoleSet M = role_bit(Role::merchant);
constexpr RoleSet C = role_bit(Role::customer_app);
constexpr RoleSet U = role_bit(Role::auditor);
constexpr RoleSet L = role_bit(Role::ledger);
constexpr RoleSet kPublic = 0;

struct RouteSpec {
  std::string_view method;
  std::array<std::string_view, 5> segments;  // "{id}" matches any one segment; "" ends
  Route route;
  std::array<std::string_view, 7> query;  // the query parameters the route takes
  RoleSet roles = kPublic;                // who may call it (kPublic: no key needed)
};

constexpr std::array kRoutes = {
    RouteSpec{"POST", {"v1", "accounts"}, Route::create_accounts, {}, A | L},
    RouteSpec{"GET", {"v1", "accounts", "{id}"}, Route::get_account, {}, A | U | L},
    RouteSpec{"GET",
              {"v1", "accounts", "{id}", "transfers"},
              Route::list_account_transfers,
              {"limit", "starting_after"},
              A | U | L},
    RouteSpec{"POST", {"v1", "accounts", "{id}", "close"}, Route::close_account, {}, A | L},
    RouteSpec{"POST", {"v1", "accounts", "{id}", "reopen"}, Route::reopen_account, {}, A | L},
    RouteSpec{"POST", {"v1", "transfers"}, Route::create_transfers, {}, A | L},
    RouteSpec{"GET", {"v1", "transfers", "{id}"}, Route::get_transfer, {}, A | U | L},
    RouteSpec{"GET", {"v1", "admin", "status"}, Route::admin_status, {"full"}, A | U},
    RouteSpec{"POST", {"v1", "admin", "snapshot"}, Route::admin_snapshot, {}, A},
    RouteSpec{"GET", {"healthz"}, Route::healthz, {}, kPublic},
    RouteSpec{"GET", {"readyz"}, Route::readyz, {}, kPublic},
    RouteSpec{"GET", {"metrics"}, Route::metrics, {}, A | U},
    RouteSpec{"GET", {"v1", "channels"}, Route::list_channels, {}, A | U},
    RouteSpec{
        "POST", {"v1", "admin", "channels", "{id}", "pause"}, Route::admin_channel_pause, {}, A},
    RouteSpec{
        "POST", {"v1", "admin", "channels", "{id}", "resume"}, Route::admin_channel_resume, {}, A},
    RouteSpec{
        "POST", {"v1", "admin", "channels", "{id}", "drain"}, Route::admin_channel_drain, {}, A},
    RouteSpec{
        "POST", {"v1", "admin", "channels", "{id}", "canary"}, Route::admin_channel_canary, {}, A},
    RouteSpec{"POST", {"v1", "admin", "mode"}, Route::admin_mode, {}, A},
    RouteSpec{
        "POST", {"v1", "admin", "flows", "{id}", "disable"}, Route::admin_flow_disable, {}, A},
    RouteSpec{"POST", {"v1", "admin", "flows", "{id}", "enable"}, Route::admin_flow_enable, {}, A},
    RouteSpec{"GET", {"v1", "admin", "controls"}, Route::admin_controls, {}, A | U},
    RouteSpec{"GET", {"v1", "admin", "clock"}, Route::admin_clock, {}, A | U},
    RouteSpec{"POST", {"v1", "admin", "clock", "advance"}, Route::admin_clock_advance, {}, A},
    RouteSpec{"POST", {"v1", "admin", "backup"}, Route::admin_backup, {}, A},
    RouteSpec{"POST", {"v1", "customers"}, Route::create_customer, {}, A},
    RouteSpec{"GET", {"v1", "customers", "{id}"}, Route::get_customer, {}, A | U | C},
    RouteSpec{"POST", {"v1", "customers", "{id}", "erase"}, Route::erase_customer, {}, A},
    RouteSpec{"POST", {"v1", "merchants"}, Route::create_merchant, {}, A},
    RouteSpec{"GET", {"v1", "merchants", "{id}"}, Route::get_merchant, {}, A | U | M},
    RouteSpec{"POST",
              {"v1", "merchants", "{id}", "webhook_secret", "rotate"},
              Route::rotate_webhook_secret,
              {},
              A | M},
    RouteSpec{"GET", {"v1", "wallets", "{id}"}, Route::get_wallet, {}, A | U | C},
    RouteSpec{"POST", {"v1", "payments"}, Route::create_payment, {}, A | M},
    RouteSpec{
        "GET",
        {"v1", "payments"},
        Route::list_payments,
        {"limit", "starting_after", "status", "merchant", "customer", "created_gte", "created_lt"},
        A | U | M},
    RouteSpec{"GET", {"v1", "payments", "{id}"}, Route::get_payment, {}, A | U | M | C},
    RouteSpec{"POST", {"v1", "payments", "{id}", "confirm"}, Route::confirm_payment, {}, A | M | C},
    RouteSpec{"POST", {"v1", "payments", "{id}", "capture"}, Route::capture_payment, {}, A | M},
    RouteSpec{"POST", {"v1", "payments", "{id}", "cancel"}, Route::cancel_payment, {}, A | M},
    RouteSpec{"POST", {"v1", "webhooks", "{id}"}, Route::psp_webhook, {}, kPublic},
    RouteSpec{"POST", {"v1", "refunds"}, Route::create_refund, {}, A | M},
    RouteSpec{"GET", {"v1", "refunds", "{id}"}, Route::get_refund, {}, A | U | M},
    RouteSpec{"POST", {"v1", "topups"}, Route::create_topup, {}, A | C},
    RouteSpec{"GET", {"v1", "topups", "{id}"}, Route::get_topup, {}, A | U | C},
    RouteSpec{"POST", {"v1", "payouts"}, Route::create_payout, {}, A | C},
    RouteSpec{"GET", {"v1", "payouts", "{id}"}, Route::get_payout, {}, A | U | C},
    RouteSpec{"POST", {"v1", "wallet_transfers"}, Route::create_wallet_transfer, {}, A | C},
    RouteSpec{"GET", {"v1", "wallet_transfers", "{id}"}, Route::get_wallet_transfer, {}, A | U | C},
    RouteSpec{"GET",
              {"v1", "topups"},
              Route::list_topups,
              {"limit", "starting_after", "status", "customer", "created_gte", "created_lt"},
              A | U | C},
    RouteSpec{"GET",
              {"v1", "payouts"},
              Route::list_payouts,
              {"limit", "starting_after", "status", "customer", "created_gte", "created_lt"},
              A | U | C},
    RouteSpec{"GET",
              {"v1", "wallet_transfers"},
              Route::list_wallet_transfers,
              {"limit", "starting_after", "status", "customer", "created_gte", "created_lt"},
              A | U | C},
    RouteSpec{"GET",
              {"v1", "events"},
              Route::list_events,
              {"limit", "starting_after", "type", "object_id", "merchant"},
              A | U | M},
    RouteSpec{"GET",
              {"v1", "admin", "reviews"},
              Route::list_reviews,
              {"limit", "starting_after", "status", "reason", "object_id"},
              A | U},
    RouteSpec{"POST", {"v1", "payment_methods"}, Route::create_payment_method, {}, A | M | C},
    RouteSpec{
        "GET", {"v1", "payment_methods", "{id}"}, Route::get_payment_method, {}, A | U | M | C},
    RouteSpec{"POST",
              {"v1", "payment_methods", "{id}", "detach"},
              Route::detach_payment_method,
              {},
              A | M | C},
    RouteSpec{"GET", {"v1", "admin", "vault"}, Route::vault_status, {}, A | U},
    RouteSpec{"POST", {"v1", "admin", "vault", "rotate"}, Route::vault_rotate, {}, A},
    RouteSpec{"POST", {"v1", "admin", "keys"}, Route::create_key, {}, A},
    RouteSpec{"GET", {"v1", "admin", "keys"}, Route::list_keys, {"limit", "starting_after"}, A | U},
    RouteSpec{"GET", {"v1", "admin", "keys", "{id}"}, Route::get_key, {}, A | U},
    RouteSpec{"POST", {"v1", "admin", "keys", "{id}", "revoke"}, Route::revoke_key, {}, A},
    RouteSpec{"GET", {"v1", "admin", "audit", "head"}, Route::audit_head, {}, A | U},
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

namespace {

constexpr bool every_route_once() {
  for (uint8_t r = 0; r <= static_cast<uint8_t>(kRouteLast); ++r) {
    int n = 0;
    for (const RouteSpec& spec : kRoutes) n += spec.route == static_cast<Route>(r) ? 1 : 0;
    if (n != 1) return false;
  }
  return kRoutes.size() == static_cast<size_t>(kRouteLast) + 1;
}
static_assert(every_route_once(), "kRoutes must hold every Route exactly once");

const RouteSpec& spec_of(Route route) {
  for (const RouteSpec& spec : kRoutes) {
    if (spec.route == route) return spec;
  }
  __builtin_unreachable();  // every_route_once()
}

}  // namespace

RouteAccess route_access(Route route) {
  const RouteSpec& spec = spec_of(route);
  return RouteAccess{spec.roles == kPublic, spec.roles};
}

std::string route_pattern(Route route) {
  const RouteSpec& spec = spec_of(route);
  std::string out(spec.method);
  out += ' ';
  for (std::string_view segment : spec.segments) {
    if (segment.empty()) break;
    out += '/';
    out += segment;
  }
  return out;
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
