// The API key routes (docs/security.md, "Keys"): an admin creates a key (its secret is in that
// answer and nowhere else), lists and reads keys (never a secret, never a digest) and revokes
// one, effective for the next request.

#include <boost/json/object.hpp>

#include "api/router.h"
#include "api/service_internal.h"
#include "core/json_writer.h"
#include "payments/render.h"
#include "security/api_key.h"
#include "security/key_ring.h"

namespace keel::api {
namespace {

constexpr size_t kKeyListLimitMax = 100;

// A key as the API shows it. `secret`: the key itself, only in the answer that created it.
std::string key_to_json(const security::ApiKey& k, std::string_view secret = {}) {
  JsonWriter w;
  w.begin_object();
  w.field("id", k.id);
  w.field("object", "api_key");
  if (!secret.empty()) w.field("key", secret);
  w.field("role", security::role_name(k.role));
  w.field_or_null("merchant", k.role == security::Role::merchant ? k.owner : std::string());
  w.field_or_null("customer", k.role == security::Role::customer_app ? k.owner : std::string());
  w.field_or_null("label", k.label);
  payments::write_time_or_null(w, "created_at", k.created);
  payments::write_time_or_null(w, "last_used_at", k.last_used);
  payments::write_time_or_null(w, "revoked_at", k.revoked);
  w.field_or_null("revoked_reason", k.revoked_reason);
  w.end_object();
  return w.take();
}

ApiError key_error(security::Result result, std::string_view id) {
  switch (result) {
    case security::Result::key_not_found:
      return not_found("API key", id);
    case security::Result::already_revoked:
      return make_error(ErrorCode::already_revoked,
                        "API key " + std::string(id) + " was revoked before");
    case security::Result::too_many_keys:
      return make_error(ErrorCode::too_many_keys,
                        "keeld holds " + std::to_string(security::kKeysMax) +
                            " API keys (revoked ones included): no more can be created");
    case security::Result::key_exists:
      return make_error(ErrorCode::resource_exists, "API key " + std::string(id) + " exists");
    case security::Result::key_invalid:
      return make_error(ErrorCode::parameter_invalid, "the API key's fields are not valid");
    case security::Result::ok:
    case security::Result::nonce_reused:  // not answers of the key routes
    case security::Result::too_many_nonces:
      break;
  }
  return make_error(ErrorCode::internal_error, "unexpected key ring result");
}

}  // namespace

bool KeyRoutes::handle(const RouteMatch& m, std::string_view body, const ResponderPtr& r) {
  switch (m.route) {
    case Route::create_key:
      create(body, r);
      return true;
    case Route::list_keys:
      list(m, r);
      return true;
    case Route::get_key: {
      const auto keys = engine_->keys();
      const security::ApiKey* k = keys->find(m.id);
      if (k == nullptr) {
        r->fail(not_found("API key", m.id));
      } else {
        r->reply(HttpReply{200, key_to_json(*k)});
      }
      return true;
    }
    case Route::revoke_key:
      revoke(m.id, body, r);
      return true;
    default:
      return false;
  }
}

void KeyRoutes::create(std::string_view body, const ResponderPtr& r) {
  auto o = body_object(body);
  if (!o.ok()) return r->fail(*o.error);
  Fields f(&o.value);
  if (auto e = f.only({"role", "merchant", "customer", "label"})) return r->fail(*e);
  auto role_text = f.text("role", 20);
  auto merchant = f.text("merchant", 40);
  auto customer = f.text("customer", 40);
  auto label = f.text("label", security::kKeyLabelLengthMax);
  for (const auto* p : {&role_text, &merchant, &customer, &label}) {
    if (!p->ok()) return r->fail(*p->error);
  }
  if (!role_text.value) return r->fail(missing("role"));
  const auto role = security::role_from_name(*role_text.value);
  if (!role) {
    return r->fail(make_error(ErrorCode::parameter_invalid,
                              "role must be admin, merchant, customer_app, auditor or ledger",
                              "role"));
  }
  const bool for_merchant = *role == security::Role::merchant;
  const bool for_customer = *role == security::Role::customer_app;
  if (for_merchant != merchant.value.has_value()) {
    return r->fail(for_merchant ? missing("merchant")
                                : make_error(ErrorCode::parameter_invalid,
                                             "only a merchant key names a merchant", "merchant"));
  }
  if (for_customer != customer.value.has_value()) {
    return r->fail(for_customer
                       ? missing("customer")
                       : make_error(ErrorCode::parameter_invalid,
                                    "only a customer_app key names a customer", "customer"));
  }
  security::GeneratedKey generated = security::generate_key();
  security::cmd::CreateKey command{generated.id, *role,
                                   merchant.value.value_or(customer.value.value_or("")),
                                   generated.hash, label.value.value_or("")};
  const auto submit = [engine = engine_, r,
                       text = std::move(generated.text)](security::cmd::CreateKey command) {
    const std::string id = command.id;
    engine->security_command(
        std::move(command),
        on_io_thread<security::Result>(
            r, [engine, id, text](const Responder& r, security::Result result) {
              if (result != security::Result::ok) return r.fail(key_error(result, id));
              const auto keys = engine->keys();
              const security::ApiKey* k = keys->find(id);
              if (k == nullptr) return r.fail(make_error(ErrorCode::internal_error, "key lost"));
              r.reply(HttpReply{200, key_to_json(*k, text)});
            }));
  };
  if (!for_merchant && !for_customer) return submit(std::move(command));
  // The owner must exist (merchants and customers are never deleted, so the check holds).
  payments::Query q{
      for_merchant ? payments::QueryKind::get_merchant : payments::QueryKind::get_customer,
      command.owner};
  engine_->payments_query(
      std::move(q),
      on_io_thread<payments::QueryResult>(
          r, [submit, for_merchant, command = std::move(command)](
                 const Responder& r, payments::QueryResult result) mutable {
            if (!result.found) {
              return r.fail(make_error(
                  for_merchant ? ErrorCode::merchant_not_found : ErrorCode::customer_not_found,
                  std::string(for_merchant ? "no merchant" : "no customer") + " with id " +
                      command.owner,
                  for_merchant ? "merchant" : "customer"));
            }
            submit(std::move(command));
          }));
}

void KeyRoutes::list(const RouteMatch& m, const ResponderPtr& r) {
  const auto limit = parse_limit(m.query, kKeyListLimitMax);
  if (!limit) return r->fail(limit_error(kKeyListLimitMax));
  const std::string after(query_value(m.query, "starting_after").value_or(""));
  const auto keys = engine_->keys();
  auto it = keys->keys().begin();
  if (!after.empty()) {
    it = keys->keys().find(after);
    if (it == keys->keys().end()) {
      return r->fail(make_error(ErrorCode::starting_after_invalid,
                                "starting_after is not an API key", "starting_after"));
    }
    ++it;
  }
  JsonWriter w;
  w.begin_object();
  w.field("object", "list");
  w.key("data");
  w.begin_array();
  size_t n = 0;
  for (; it != keys->keys().end() && n < *limit; ++it, ++n) w.raw(key_to_json(it->second));
  w.end_array();
  w.field("has_more", it != keys->keys().end());
  w.end_object();
  r->reply(HttpReply{200, w.take()});
}

void KeyRoutes::revoke(const std::string& id, std::string_view body, const ResponderPtr& r) {
  auto o = body_object(body);
  if (!o.ok()) return r->fail(*o.error);
  Fields f(&o.value);
  if (auto e = f.only({"reason"})) return r->fail(*e);
  auto reason = f.text("reason", security::kRevokeReasonLengthMax);
  if (!reason.ok()) return r->fail(*reason.error);
  engine_->security_command(
      security::cmd::RevokeKey{id, reason.value.value_or("")},
      on_io_thread<security::Result>(
          r, [engine = engine_, id](const Responder& r, security::Result result) {
            if (result != security::Result::ok) return r.fail(key_error(result, id));
            const auto keys = engine->keys();
            r.reply(HttpReply{200, key_to_json(*keys->find(id))});
          }));
}

}  // namespace keel::api
