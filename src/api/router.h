#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/errors.h"
#include "security/api_key.h"

namespace keel::api {

// Every route of the HTTP API.
enum class Route : uint8_t {
  create_accounts,         // POST /v1/accounts
  get_account,             // GET  /v1/accounts/{id}
  list_account_transfers,  // GET  /v1/accounts/{id}/transfers?limit=&starting_after=
  close_account,           // POST /v1/accounts/{id}/close
  reopen_account,          // POST /v1/accounts/{id}/reopen
  create_transfers,        // POST /v1/transfers
  get_transfer,            // GET  /v1/transfers/{id}
  admin_status,            // GET  /v1/admin/status?full=
  admin_snapshot,          // POST /v1/admin/snapshot
  healthz,                 // GET  /healthz
  readyz,                  // GET  /readyz
  // Payments (issue 4).
  create_customer,         // POST /v1/customers
  get_customer,            // GET  /v1/customers/{id}
  erase_customer,          // POST /v1/customers/{id}/erase (crypto-shredding; docs/security.md)
  create_merchant,         // POST /v1/merchants
  get_merchant,            // GET  /v1/merchants/{id}
  rotate_webhook_secret,   // POST /v1/merchants/{id}/webhook_secret/rotate {secret?,
                           // overlap_seconds?}
  get_wallet,              // GET  /v1/wallets/{id} (the customer's id)
  create_payment,          // POST /v1/payments
  list_payments,           // GET  /v1/payments?limit=&starting_after=&status=&merchant=&...
  get_payment,             // GET  /v1/payments/{id}
  confirm_payment,         // POST /v1/payments/{id}/confirm
  capture_payment,         // POST /v1/payments/{id}/capture
  cancel_payment,          // POST /v1/payments/{id}/cancel
  psp_webhook,             // POST /v1/webhooks/{id} (the channel's name)
  create_refund,           // POST /v1/refunds
  get_refund,              // GET  /v1/refunds/{id}
  create_topup,            // POST /v1/topups
  get_topup,               // GET  /v1/topups/{id}
  create_payout,           // POST /v1/payouts
  get_payout,              // GET  /v1/payouts/{id}
  create_wallet_transfer,  // POST /v1/wallet_transfers
  get_wallet_transfer,     // GET  /v1/wallet_transfers/{id}
  list_events,             // GET  /v1/events?limit=&starting_after=&type=&object_id=&merchant=
  list_topups,             // GET  /v1/topups?status=&customer=&created_gte=&created_lt=&...
  list_payouts,            // GET  /v1/payouts?(the same)
  list_wallet_transfers,   // GET  /v1/wallet_transfers?(the same; customer: either side)
  list_reviews,            // GET  /v1/admin/reviews?status=&reason=&object_id=&limit=&...
  metrics,                 // GET  /metrics (Prometheus text format)
  list_channels,           // GET  /v1/channels (routing channels with their live state)
  // Runtime controls (docs/routing.md): served only when [admin] controls = true, to loopback.
  admin_channel_pause,   // POST /v1/admin/channels/{id}/pause   {reason?}
  admin_channel_resume,  // POST /v1/admin/channels/{id}/resume  {reason?}
  admin_channel_drain,   // POST /v1/admin/channels/{id}/drain   {reason?}
  admin_channel_canary,  // POST /v1/admin/channels/{id}/canary  {to, share, reason?}
  admin_mode,            // POST /v1/admin/mode                  {read_only, reason?}
  admin_flow_disable,    // POST /v1/admin/flows/{id}/disable    {reason?}
  admin_flow_enable,     // POST /v1/admin/flows/{id}/enable     {reason?}
  admin_controls,        // GET  /v1/admin/controls
  admin_clock,           // GET  /v1/admin/clock (served with [testing] movable_clock only)
  admin_clock_advance,   // POST /v1/admin/clock/advance         {seconds}
  admin_backup,          // POST /v1/admin/backup                {dir} (served like the controls)
  // API keys (docs/security.md).
  create_key,  // POST /v1/admin/keys               {role, merchant?, customer?, label?}
  list_keys,   // GET  /v1/admin/keys?limit=&starting_after=
  get_key,     // GET  /v1/admin/keys/{id}
  revoke_key,  // POST /v1/admin/keys/{id}/revoke   {reason?}
  // The audit chain (docs/security.md).
  audit_head,  // GET  /v1/admin/audit/head
  // The card vault (docs/security.md).
  create_payment_method,  // POST /v1/payment_methods {card: {number, exp_month, exp_year,
                          // cvc?}, merchant? | customer?}
  get_payment_method,     // GET  /v1/payment_methods/{id}
  detach_payment_method,  // POST /v1/payment_methods/{id}/detach
  vault_status,           // GET  /v1/admin/vault
  vault_rotate,           // POST /v1/admin/vault/rotate {new_key?}
};
inline constexpr Route kRouteLast = Route::vault_rotate;

// The roles that may call a route: bit (1 << Role). Empty for a public route.
using RoleSet = uint8_t;
[[nodiscard]] constexpr RoleSet role_bit(security::Role r) {
  return static_cast<RoleSet>(1u << static_cast<unsigned>(r));
}
// The operators' roles: with an admin listener, their keys (and routes only they may call)
// live there.
inline constexpr RoleSet kOperatorRoles =
    static_cast<RoleSet>(role_bit(security::Role::admin) | role_bit(security::Role::auditor));
[[nodiscard]] constexpr bool role_in(RoleSet set, security::Role r) {
  return (set & role_bit(r)) != 0;
}

// Who may call a route, from the route table (router.cc): `public_route` takes no API key
// (health checks; PSP webhooks, which their signature authenticates); otherwise the caller's key
// must have one of `roles`. Which objects the caller then sees is the route's own business
// (tenant isolation: docs/security.md).
struct RouteAccess {
  bool public_route = false;
  RoleSet roles = 0;
};
[[nodiscard]] RouteAccess route_access(Route route);
// The route's method and path pattern ("GET /v1/payments/{id}"), for tests and docs.
[[nodiscard]] std::string route_pattern(Route route);

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// A request target resolved to a route. On error, `error` is set (route_not_found,
// method_not_allowed with `allow` listing the route's methods, http_invalid for a target that is
// not an origin-form URL, id_invalid for a bad {id}, parameter_unknown or parameter_invalid for
// query parameters the route does not take or that repeat).
struct RouteMatch {
  Route route = Route::healthz;
  std::string id;     // the {id} path segment, percent-decoded and valid (core/ids.h)
  QueryParams query;  // percent-decoded, only names the route takes, each at most once
  std::optional<ApiError> error;
  std::string allow;  // "GET" or "POST", for method_not_allowed
};

// Matches `method` ("GET") and `target` ("/v1/accounts/acct_1?x=y") against the route table.
// Pure; callable from any thread.
[[nodiscard]] RouteMatch match_route(std::string_view method, std::string_view target);

// The value of a query parameter, if present.
[[nodiscard]] std::optional<std::string_view> query_value(const QueryParams& query,
                                                          std::string_view name);

// A new request id: "req_" and 16 random hex digits. Thread-safe.
[[nodiscard]] std::string new_request_id();

// Whether `value` is a valid W3C trace context `traceparent` header (version 00 format:
// "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", lower-case, ids not all zero;
// a future version may add fields after the flags).
[[nodiscard]] bool is_valid_traceparent(std::string_view value);

}  // namespace keel::api
