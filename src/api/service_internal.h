#pragma once

// Pieces shared by the route files of the HTTP API (service.cc, payments_service.cc). Not a
// public interface: nothing outside src/api includes this.

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "api/errors.h"
#include "api/json_codec.h"
#include "api/router.h"
#include "api/service.h"
#include "engine/engine.h"
#include "payments/commands.h"

namespace keel::api {

// How one request is answered. Shared by the engine callback and the I/O-side continuation.
struct Responder {
  PostFn post;
  ReplyFn reply;
  std::string request_id;

  void ok(const boost::json::object& body) const {
    reply(HttpReply{200, boost::json::serialize(body)});
  }
  void fail(const ApiError& e) const { reply(error_reply(e, request_id)); }
};
using ResponderPtr = std::shared_ptr<const Responder>;

inline ApiError engine_error(engine::EngineError e) {
  if (e == engine::EngineError::overloaded) {
    return make_error(ErrorCode::overloaded, "the server is overloaded; retry later");
  }
  if (e == engine::EngineError::over_capacity) {
    return make_error(ErrorCode::over_capacity,
                      "keeld's memory is above its budget (memory_max_mb): no new work until "
                      "what is open drains to disk; retry later");
  }
  if (e == engine::EngineError::read_only) {
    return make_error(ErrorCode::read_only,
                      "keel is in read-only mode: no new writes (reads and work already started "
                      "go on); retry later");
  }
  return make_error(ErrorCode::unavailable,
                    "the server is not taking commands (shutting down or storage failed)");
}

// The engine callback for a request: on the writer thread it only posts the outcome to the
// connection's executor, where `on_value` builds the answer (or an engine error is answered).
template <typename T, typename F>
engine::Callback<T> on_io_thread(ResponderPtr r, F on_value) {
  return [r, on_value = std::move(on_value)](engine::Outcome<T> outcome) {
    r->post([r, on_value, outcome = std::move(outcome)]() mutable {
      if (outcome.error != engine::EngineError::ok) return r->fail(engine_error(outcome.error));
      on_value(*r, std::move(outcome.value));
    });
  };
}

inline ApiError not_found(std::string_view what, std::string_view id) {
  return make_error(ErrorCode::resource_missing,
                    "no " + std::string(what) + " with id " + std::string(id), "id");
}

// Parses ?limit=: digits only, 1..limit_max; 10 when absent.
// An answer's body with the personal data the core keeps sealed opened, or null where the
// customer was erased (vault_service.cc; docs/security.md, "Personal data and erasure").
[[nodiscard]] std::string reveal_personal_data(vault::CustomerKeys& keys, std::string body);

inline std::optional<size_t> parse_limit(const QueryParams& query,
                                         size_t limit_max = ledger::kPageLimitMax) {
  const auto text = query_value(query, "limit");
  if (!text) return 10;
  size_t limit = 0;
  const char* end = text->data() + text->size();
  const auto [p, ec] = std::from_chars(text->data(), end, limit);
  if (text->empty() || ec != std::errc() || p != end || limit < 1 || limit > limit_max) {
    return std::nullopt;
  }
  return limit;
}

// The answer to a ?limit= that parse_limit refused.
inline ApiError limit_error(size_t limit_max = ledger::kPageLimitMax) {
  return make_error(ErrorCode::limit_invalid,
                    "limit must be an integer from 1 to " + std::to_string(limit_max), "limit");
}

// Reads the fields of one request object strictly: every field must be one the route takes.
class Fields {
 public:
  explicit Fields(const boost::json::object* o) : o_(o) {}

  // The first field not in `allowed`, as an error.
  std::optional<ApiError> only(std::initializer_list<std::string_view> allowed) const {
    for (const auto& kv : *o_) {
      bool known = false;
      for (const std::string_view a : allowed) known = known || kv.key() == a;
      if (!known) {
        const std::string key(kv.key());
        return make_error(ErrorCode::parameter_unknown, "unknown field " + key, key);
      }
    }
    return std::nullopt;
  }

  // A string field; nullopt value when absent or null.
  Parsed<std::optional<std::string>> text(std::string_view key, size_t max_bytes) const {
    const boost::json::value* v = o_->if_contains(key);
    if (v == nullptr || v->is_null()) return {};
    if (!v->is_string() || v->get_string().size() > max_bytes) {
      return {{},
              make_error(ErrorCode::parameter_invalid,
                         std::string(key) + " must be a string of at most " +
                             std::to_string(max_bytes) + " bytes",
                         std::string(key))};
    }
    return {std::string(v->get_string())};
  }

  Parsed<std::optional<int64_t>> amount(std::string_view key) const {
    const boost::json::value* v = o_->if_contains(key);
    if (v == nullptr || v->is_null()) return {};
    if (v->is_int64() && v->get_int64() > 0) return {v->get_int64()};
    if (v->is_uint64() && v->get_uint64() > 0 &&
        v->get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
      return {static_cast<int64_t>(v->get_uint64())};
    }
    return {{},
            make_error(ErrorCode::amount_invalid,
                       std::string(key) + " must be an integer from 1 to 2^63-1 (minor units)",
                       std::string(key))};
  }

  // An integer field from `min` to `max`; nullopt value when absent or null.
  Parsed<std::optional<int64_t>> integer(std::string_view key, int64_t min, int64_t max) const {
    const boost::json::value* v = o_->if_contains(key);
    if (v == nullptr || v->is_null()) return {};
    if (v->is_int64() && v->get_int64() >= min && v->get_int64() <= max) {
      return {v->get_int64()};
    }
    return {{},
            make_error(ErrorCode::parameter_invalid,
                       std::string(key) + " must be an integer from " + std::to_string(min) +
                           " to " + std::to_string(max),
                       std::string(key))};
  }

 private:
  const boost::json::object* o_;
};

// The request body as an object; an empty body is an empty object.
inline Parsed<boost::json::object> body_object(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return {boost::json::object{}};
  auto doc = parse_json(body);
  if (!doc.ok()) return {{}, doc.error};
  if (!doc.value.is_object()) {
    return {{}, make_error(ErrorCode::body_invalid, "the body must be a JSON object")};
  }
  return {std::move(doc.value.get_object())};
}

// A route that takes no fields: an empty body, `{}`, or the error for anything else.
inline std::optional<ApiError> no_fields(std::string_view body) {
  auto o = body_object(body);
  if (!o.ok()) return o.error;
  Fields f(&o.value);
  return f.only({});
}

// A new object id: `prefix` and 24 random characters of [0-9A-Za-z] (payments_service.cc).
[[nodiscard]] std::string new_object_id(std::string_view prefix);
// A string field of a JSON object ("" when absent or not a string; payments_service.cc).
[[nodiscard]] std::string_view string_field(const boost::json::object& o, std::string_view name);
// The HTTP answer for a payments command's reply (payments_service.cc).
[[nodiscard]] HttpReply to_http(const payments::Reply& r, std::string_view request_id);

inline ApiError missing(std::string_view key) {
  return make_error(ErrorCode::parameter_missing, std::string(key) + " is required",
                    std::string(key));
}

// The payment routes (payments_service.cc).
class PaymentRoutes {
 public:
  PaymentRoutes(engine::Engine* engine, PaymentsApiOptions options)
      : engine_(engine), options_(std::move(options)) {}

  // Answers `m` if it is a payment route; false otherwise (the caller answers it). `caller` is
  // the authenticated caller, null only for a public route.
  bool handle(const RouteMatch& m, const Caller* caller, std::string_view method,
              std::string_view target, const RequestHeaders& h, std::string_view body,
              const ResponderPtr& r);

 private:
  bool channel_known(std::string_view channel) const;
  void submit(payments::Command c, int64_t wait_ms, const ResponderPtr& r);
  void query(payments::Query q, std::string what, const ResponderPtr& r);
  // Reads an object and runs `then` with it if `owns` says it is the caller's; otherwise answers
  // 404 as for an object that does not exist (tenant isolation: never 403, never its data).
  void read_owned(payments::Query q, std::string what, const ResponderPtr& r,
                  std::function<bool(const boost::json::object&)> owns,
                  std::function<void(const boost::json::object&)> then);
  // query() for callers who see everything, read_owned() answering the object for the others.
  void query_owned(payments::Query q, std::string what, const Caller& caller, const ResponderPtr& r,
                   std::function<bool(const boost::json::object&)> owns);
  // Fills the command's idempotency scope (the caller's); money-moving routes require a key.
  std::optional<ApiError> scope(const Caller& caller, const RequestHeaders& h, bool required,
                                std::string_view method, std::string_view target,
                                std::string_view body, payments::Command* c) const;
  void create_customer(std::string_view body, payments::Command c, const ResponderPtr& r);
  void create_merchant(std::string_view body, payments::Command c, const ResponderPtr& r);
  void rotate_webhook_secret(std::string_view merchant_id, std::string_view body,
                             const ResponderPtr& r);
  void create_payment(const Caller& caller, std::string_view body, payments::Command c,
                      const ResponderPtr& r);
  void payment_step(const Caller& caller, const RouteMatch& m, std::string_view body,
                    payments::Command c, const ResponderPtr& r);
  void list_objects(const Caller& caller, const RouteMatch& m, const ResponderPtr& r);
  void list_events(const Caller& caller, const RouteMatch& m, const ResponderPtr& r);
  void list_reviews(const RouteMatch& m, const ResponderPtr& r);
  // Runs a list query; a cursor the list does not hold is starting_after_invalid.
  void list_query(payments::Query q, const ResponderPtr& r);
  void create_refund(const Caller& caller, std::string_view body, payments::Command c,
                     const ResponderPtr& r);
  void get_refund(const Caller& caller, const std::string& id, const ResponderPtr& r);
  void create_flow(const Caller& caller, Route route, std::string_view body, payments::Command c,
                   const ResponderPtr& r);
  // The channel named in a request, or the default; nullopt (and an answer sent) if unknown.
  std::optional<std::string> pick_channel(const std::optional<std::string>& named,
                                          const ResponderPtr& r) const;
  void webhook(const RouteMatch& m, const RequestHeaders& h, std::string_view body,
               const ResponderPtr& r);
  // The runtime-control routes (admin_channel_* .. admin_backup).
  void control(const RouteMatch& m, std::string_view body, const ResponderPtr& r);
  void clock_route(bool advance, std::string_view body, const ResponderPtr& r);
  // POST /v1/admin/backup: a consistent online copy into a directory on keeld's machine.
  void backup(std::string_view body, const ResponderPtr& r);
  // The card vault's routes (vault_service.cc).
  void create_payment_method(const Caller& caller, const RequestHeaders& h, std::string_view method,
                             std::string_view target, std::string_view body, const ResponderPtr& r);
  void detach_payment_method(const Caller& caller, const RequestHeaders& h, std::string_view id,
                             std::string_view method, std::string_view target,
                             std::string_view body, const ResponderPtr& r);
  void vault_status(const ResponderPtr& r);
  void erase_customer(const std::string& id, std::string_view body, const ResponderPtr& r);
  [[nodiscard]] std::optional<ApiError> seal_personal(const std::string& customer_id,
                                                      std::string_view field,
                                                      const std::string& record_id,
                                                      std::string* value) const;
  void vault_rotate(std::string_view body, const ResponderPtr& r);

  engine::Engine* engine_;
  PaymentsApiOptions options_;
  std::mutex mutex_;  // guards the webhook event ids below
  std::set<std::string, std::less<>> webhook_events_;
  std::deque<std::string> webhook_order_;
};

// The API key routes (keys_service.cc): create, list, get, revoke. Admin keys only (auditors
// read), per the route table.
class KeyRoutes {
 public:
  explicit KeyRoutes(engine::Engine* engine) : engine_(engine) {}
  // Answers `m` if it is a key route; false otherwise.
  bool handle(const RouteMatch& m, std::string_view body, const ResponderPtr& r);

 private:
  void create(std::string_view body, const ResponderPtr& r);
  void list(const RouteMatch& m, const ResponderPtr& r);
  void revoke(const std::string& id, std::string_view body, const ResponderPtr& r);

  engine::Engine* engine_;
};

}  // namespace keel::api
