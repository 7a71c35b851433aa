// The card vault's routes (docs/security.md, "The card vault"): a merchant or a customer's app
// stores a card and gets a pm_ to pay with; an admin reads the vault's state and rotates its
// master key. The card number is sealed here, at the edge, before any command exists: the
// engine, the journal and the snapshots only ever see ciphertext.

#include <algorithm>
#include <array>
#include <boost/json/object.hpp>
#include <iterator>
#include <memory>

#include "api/router.h"
#include "api/service_internal.h"
#include "core/json_writer.h"
#include "vault/personal_data.h"
#include "vault/vault.h"

namespace keel::api {
namespace {

namespace json = boost::json;

constexpr size_t kCardNumberBytesMax = 32;  // 19 digits with separators
constexpr size_t kRewrapPage = payments::cmd::kRewrapsPerCommandMax;

ApiError card_error(vault::CardProblem p) {
  const std::string text(vault::card_problem_text(p));
  switch (p) {
    case vault::CardProblem::number_invalid:
    case vault::CardProblem::number_checksum:
    case vault::CardProblem::length_invalid:
      return make_error(ErrorCode::card_number_invalid, text, "card.number");
    case vault::CardProblem::brand_unsupported:
      return make_error(ErrorCode::card_brand_unsupported, text, "card.number");
    case vault::CardProblem::expiry_invalid:
      return make_error(ErrorCode::card_expiry_invalid, text, "card.exp_month");
    case vault::CardProblem::expired:
      return make_error(ErrorCode::card_expired, text, "card.exp_year");
    case vault::CardProblem::cvc_invalid:
      return make_error(ErrorCode::card_cvc_invalid, text, "card.cvc");
    case vault::CardProblem::none:
      break;
  }
  return make_error(ErrorCode::internal_error, "a card problem without a code");
}

// A count in a successful reply's body ({"rewrapped": N}); 0 otherwise.
uint64_t count_of(const payments::Reply& reply, std::string_view key) {
  if (!reply.ok()) return 0;
  const auto doc = parse_json(reply.body);
  if (!doc.ok() || !doc.value.is_object()) return 0;
  const json::value* n = doc.value.get_object().if_contains(key);
  return n != nullptr && n->is_int64() ? static_cast<uint64_t>(n->get_int64()) : 0;
}

ApiError no_vault() {
  return make_error(ErrorCode::vault_unavailable, "keeld runs without a card vault");
}

// One rotation's walk over the stored cards: a page of those not under the target version,
// re-wrapped here and journaled as one command, then the next page, until none is left.
struct Rotation : std::enable_shared_from_this<Rotation> {
  engine::Engine* engine = nullptr;
  vault::Vault* vault = nullptr;
  ResponderPtr r;
  uint32_t from_version = 0;  // the active version before the rotation
  uint32_t to_version = 0;
  bool added = false;
  std::string after;  // the last id of the previous page
  uint64_t rewrapped = 0;
  std::vector<vault::SecretReseal> reseals;  // webhook secrets still to journal
  uint64_t resealed = 0;
  vault::CustomerKeys* customer_keys = nullptr;  // null: none to re-wrap

  void next_page() {
    payments::Query q;
    q.kind = payments::QueryKind::payment_methods_to_rewrap;
    q.key_version = to_version;
    q.starting_after = after;
    q.limit = kRewrapPage;
    auto self = shared_from_this();
    engine->payments_query(std::move(q),
                           on_io_thread<payments::QueryResult>(
                               r, [self](const Responder&, payments::QueryResult page) {
                                 self->rewrap(std::move(page.payment_methods));
                               }));
  }

  void rewrap(std::vector<std::shared_ptr<const vault::PaymentMethod>> page) {
    if (page.empty()) return reseal_secrets();
    after = page.back()->id;
    payments::cmd::RewrapPaymentMethods c;
    if (Status s = vault->rewrap(page, &c.rewraps); !s.is_ok()) {
      return r->fail(make_error(
          ErrorCode::vault_failed,
          "the rotation stopped after " + std::to_string(rewrapped) + " cards: " + s.message()));
    }
    journal_step(std::move(c), "rewrapped", &Rotation::rewrapped, &Rotation::next_page);
  }

  // Journals one step, adds its reply's `key` count to this->*total, then runs `next`.
  // `unchanged` is no failure: everything in the step moved meanwhile (another rotation, or a
  // merchant's own secret rotation), and a later run takes what is left.
  void journal_step(payments::Command c, const char* key, uint64_t Rotation::*total,
                    void (Rotation::*next)()) {
    auto self = shared_from_this();
    engine->payments_command(
        std::move(c), 0,
        on_io_thread<payments::Reply>(r, [self, key, total, next](const Responder& r,
                                                                  payments::Reply reply) {
          if (!reply.ok() && reply.error != payments::Error::unchanged) {
            return r.fail(make_error(
                ErrorCode::vault_failed,
                "the rotation stopped after " + std::to_string(self->rewrapped) + " cards and " +
                    std::to_string(self->resealed) + " webhook secrets: " + reply.error_message));
          }
          (*self).*total += count_of(reply, key);
          ((*self).*next)();
        }));
  }

  // Then the merchants' webhook secrets: onto the active version, those in clear sealed.
  void reseal_secrets() {
    payments::Query q;
    q.kind = payments::QueryKind::webhook_secrets;
    auto self = shared_from_this();
    engine->payments_query(std::move(q), on_io_thread<payments::QueryResult>(
                                             r, [self](const Responder&, payments::QueryResult s) {
                                               self->start_reseals(s.secrets);
                                             }));
  }

  void start_reseals(const std::vector<std::pair<std::string, std::string>>& stored) {
    if (Status s = vault->reseal_webhook_secrets(stored, &reseals); !s.is_ok()) {
      return r->fail(make_error(ErrorCode::vault_failed,
                                "the rotation re-wrapped " + std::to_string(rewrapped) +
                                    " cards, then stopped at the webhook secrets: " + s.message()));
    }
    next_reseals();
  }

  void next_reseals() {
    if (reseals.empty()) return finish();
    payments::cmd::ResealWebhookSecrets c;
    const size_t n = std::min(reseals.size(), kRewrapPage);
    c.reseals.assign(std::make_move_iterator(reseals.end() - static_cast<ptrdiff_t>(n)),
                     std::make_move_iterator(reseals.end()));
    reseals.resize(reseals.size() - n);
    journal_step(std::move(c), "resealed", &Rotation::resealed, &Rotation::next_reseals);
  }

  // Last, the customers' personal data keys: files, not journaled (they must stay deletable).
  void finish() {
    uint64_t customer_keys_moved = 0;
    if (customer_keys != nullptr) {
      if (Status s = customer_keys->rewrap(&customer_keys_moved); !s.is_ok()) {
        return r->fail(make_error(ErrorCode::vault_failed,
                                  "the rotation re-wrapped " + std::to_string(rewrapped) +
                                      " cards, then stopped at the customer keys: " + s.message()));
      }
    }
    r->ok(json::object{{"object", "vault_rotation"},
                       {"from_key_version", from_version},
                       {"key_version", to_version},
                       {"key_added", added},
                       {"rewrapped", rewrapped},
                       {"webhook_secrets_resealed", resealed},
                       {"customer_keys_rewrapped", customer_keys_moved}});
  }
};

}  // namespace

void PaymentRoutes::create_payment_method(const Caller& caller, const RequestHeaders& h,
                                          std::string_view method, std::string_view target,
                                          std::string_view body, const ResponderPtr& r) {
  vault::Vault* v = options_.vault;
  if (v == nullptr) return r->fail(no_vault());
  auto o = body_object(body);
  if (!o.ok()) return r->fail(*o.error);
  Fields f(&o.value);
  if (auto e = f.only({"card", "merchant", "customer"})) return r->fail(*e);
  const json::value* card_value = o.value.if_contains("card");
  if (card_value == nullptr || card_value->is_null()) return r->fail(missing("card"));
  if (!card_value->is_object()) {
    return r->fail(make_error(ErrorCode::parameter_invalid,
                              "card must be an object {number, exp_month, exp_year, cvc}", "card"));
  }
  Fields card(&card_value->get_object());
  if (auto e = card.only({"number", "exp_month", "exp_year", "cvc"})) return r->fail(*e);
  auto number = card.text("number", kCardNumberBytesMax);
  if (!number.ok())
    return r->fail(make_error(ErrorCode::card_number_invalid,
                              "the card number must be 12 to 19 digits", "card.number"));
  if (!number.value) return r->fail(missing("card.number"));
  auto month = card.integer("exp_month", 1, 12);
  auto year = card.integer("exp_year", 2000, 2099);
  if (!month.ok() || !year.ok()) {
    return r->fail(card_error(vault::CardProblem::expiry_invalid));
  }
  if (!month.value) return r->fail(missing("card.exp_month"));
  if (!year.value) return r->fail(missing("card.exp_year"));
  auto cvc = card.text("cvc", 4);
  if (!cvc.ok()) return r->fail(card_error(vault::CardProblem::cvc_invalid));
  auto merchant = f.text("merchant", 64);
  if (!merchant.ok()) return r->fail(*merchant.error);
  auto customer = f.text("customer", 64);
  if (!customer.ok()) return r->fail(*customer.error);
  // The owner: the caller's own tenant; an admin names exactly one.
  vault::OwnerKind owner_kind = vault::OwnerKind::merchant;
  std::string owner;
  if (caller.is_merchant() || caller.is_customer()) {
    const auto& named = caller.is_merchant() ? merchant.value : customer.value;
    const auto& other = caller.is_merchant() ? customer.value : merchant.value;
    if (other) {
      return r->fail(make_error(ErrorCode::parameter_invalid,
                                caller.is_merchant()
                                    ? "a merchant key stores cards for its merchant only"
                                    : "a customer key stores cards for its customer only",
                                caller.is_merchant() ? "customer" : "merchant"));
    }
    if (named && *named != caller.owner) {
      return r->fail(caller.is_merchant()
                         ? make_error(ErrorCode::merchant_not_found,
                                      "no merchant with id " + *named, "merchant")
                         : make_error(ErrorCode::customer_not_found,
                                      "no customer with id " + *named, "customer"));
    }
    owner_kind = caller.is_merchant() ? vault::OwnerKind::merchant : vault::OwnerKind::customer;
    owner = caller.owner;
  } else {
    if (merchant.value.has_value() == customer.value.has_value()) {
      return r->fail(make_error(ErrorCode::parameter_invalid,
                                "name the card's owner: merchant or customer (one of them)",
                                merchant.value ? "customer" : "merchant"));
    }
    owner_kind = merchant.value ? vault::OwnerKind::merchant : vault::OwnerKind::customer;
    owner = merchant.value ? *merchant.value : *customer.value;
  }
  // The request's idempotency fingerprint is kept (journaled): over a keyed digest of the body,
  // never a plain hash of a card number.
  payments::Command c;
  if (auto e = scope(caller, h, false, method, target, v->keyed_digest(body), &c)) {
    return r->fail(*e);
  }
  vault::Vault::Prepared p =
      v->prepare(new_object_id(vault::kPaymentMethodPrefix), *number.value,
                 static_cast<int>(*month.value), static_cast<int>(*year.value), owner_kind,
                 std::move(owner), cvc.value.value_or(""), wall_clock_now());
  if (p.problem != vault::CardProblem::none) return r->fail(card_error(p.problem));
  std::string held_cvc = cvc.value.value_or("");
  std::string id = p.method.id;
  c.body = payments::cmd::StorePaymentMethod{std::move(p.method)};
  engine_->payments_command(
      std::move(c), 0,
      on_io_thread<payments::Reply>(r, [v, id = std::move(id), held_cvc = std::move(held_cvc)](
                                           const Responder& r, payments::Reply reply) {
        // Durable now: its CVC waits in memory for the first authorization. (A replayed
        // answer names the card its key stored first, which is then the one held for.)
        if (reply.ok() && !held_cvc.empty()) {
          const auto doc = parse_json(reply.body);
          const std::string stored(doc.ok() && doc.value.is_object()
                                       ? string_field(doc.value.get_object(), "id")
                                       : std::string_view());
          v->hold_cvc(stored.empty() ? id : stored, held_cvc, wall_clock_now());
        }
        r.reply(to_http(reply, r.request_id));
      }));
}

// A card leaves the vault: its owner (or an admin) detaches it. Another tenant's card, or one
// already detached, answers 404 as one that never existed.
void PaymentRoutes::detach_payment_method(const Caller& caller, const RequestHeaders& h,
                                          std::string_view id, std::string_view method,
                                          std::string_view target, std::string_view body,
                                          const ResponderPtr& r) {
  vault::Vault* v = options_.vault;
  if (v == nullptr) return r->fail(no_vault());
  if (auto e = no_fields(body)) return r->fail(*e);
  payments::Command c;
  if (auto e = scope(caller, h, false, method, target, body, &c)) return r->fail(*e);
  payments::cmd::DetachPaymentMethod d;
  d.id = std::string(id);
  if (caller.is_merchant() || caller.is_customer()) {
    d.owner_kind = caller.is_merchant() ? vault::OwnerKind::merchant : vault::OwnerKind::customer;
    d.owner_id = caller.owner;
  }
  c.body = std::move(d);
  engine_->payments_command(
      std::move(c), 0,
      on_io_thread<payments::Reply>(
          r, [v, id = std::string(id)](const Responder& r, payments::Reply reply) {
            if (reply.error == payments::Error::payment_method_not_found) {
              return r.fail(not_found("payment method", id));
            }
            if (reply.ok()) v->forget_cvc(id);  // a CVC still held for it goes too
            r.reply(to_http(reply, r.request_id));
          }));
}

void PaymentRoutes::vault_status(const ResponderPtr& r) {
  vault::Vault* v = options_.vault;
  if (v == nullptr) return r->fail(no_vault());
  payments::Query q;
  q.kind = payments::QueryKind::vault_key_versions;
  engine_->payments_query(
      std::move(q),
      on_io_thread<payments::QueryResult>(r, [v](const Responder& r, payments::QueryResult result) {
        const vault::Vault::Stats s = v->stats();
        json::array versions;
        for (const uint32_t k : v->versions()) versions.push_back(k);
        json::object cards;
        uint64_t total = 0;
        for (const auto& [k, n] : result.key_versions) {
          cards[std::to_string(k)] = n;
          total += n;
        }
        json::object secrets;
        for (const auto& [k, n] : result.secret_key_versions) {
          secrets[k == 0 ? std::string("clear") : std::to_string(k)] = n;
        }
        r.ok(json::object{{"object", "vault"},
                          {"active_key_version", v->active_version()},
                          {"key_versions", std::move(versions)},
                          {"payment_methods", total},
                          {"payment_methods_by_key_version", std::move(cards)},
                          {"webhook_secrets_by_key_version", std::move(secrets)},
                          {"decryptions", s.decryptions},
                          {"decryption_failures", s.decryption_failures},
                          {"cvcs_held", s.cvcs_held},
                          {"webhook_secrets_opened", s.secrets_opened}});
      }));
}

void PaymentRoutes::vault_rotate(std::string_view body, const ResponderPtr& r) {
  vault::Vault* v = options_.vault;
  if (v == nullptr) return r->fail(no_vault());
  auto o = body_object(body);
  if (!o.ok()) return r->fail(*o.error);
  Fields f(&o.value);
  if (auto e = f.only({"new_key"})) return r->fail(*e);
  bool new_key = true;
  if (const json::value* k = o.value.if_contains("new_key")) {
    if (!k->is_bool()) {
      return r->fail(
          make_error(ErrorCode::parameter_invalid, "new_key must be true or false", "new_key"));
    }
    new_key = k->get_bool();
  }
  auto job = std::make_shared<Rotation>();
  job->engine = engine_;
  job->vault = v;
  job->customer_keys = options_.customer_keys;
  job->r = r;
  job->from_version = v->active_version();
  if (new_key) {
    uint32_t version = 0;
    if (Status s = v->add_key(&version); !s.is_ok()) {
      return r->fail(make_error(ErrorCode::vault_failed, s.message()));
    }
    job->added = true;
  }
  job->to_version = v->active_version();
  job->next_page();
}

// Personal data (docs/security.md, "Personal data and erasure"): what the core renders holds
// names, sources and destinations sealed; the answer shows them opened, or null once their
// customer is erased. Objects are found by their "object" and "id" wherever they sit (a page's
// data, a replayed answer).
namespace {

struct PersonalField {
  std::string_view object;     // the object kind
  std::string_view key;        // the field holding the sealed value
  std::string_view customer;   // the field naming its customer ("" : the object's own id)
  std::string_view aad_field;  // vault/personal_data.h
};
constexpr std::array kPersonalFields = {
    PersonalField{"customer", "name", "", vault::kCustomerNameField},
    PersonalField{"topup", "source", "customer", vault::kTopupSourceField},
    PersonalField{"payout", "destination", "customer", vault::kPayoutDestinationField},
};

std::string_view string_at(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
}

void reveal(vault::CustomerKeys& keys, json::value& v) {
  if (v.is_array()) {
    for (json::value& item : v.get_array()) reveal(keys, item);
    return;
  }
  if (!v.is_object()) return;
  json::object& o = v.get_object();
  for (auto& [k, child] : o) reveal(keys, child);
  const std::string_view kind = string_at(o, "object");
  for (const PersonalField& f : kPersonalFields) {
    if (kind != f.object) continue;
    const std::string id(string_at(o, "id"));
    json::value* sealed = o.if_contains(f.key);
    if (sealed == nullptr || !sealed->is_string() ||
        !vault::is_sealed_personal(sealed->get_string())) {
      continue;
    }
    const std::string customer(f.customer.empty() ? id : string_at(o, f.customer));
    std::string clear;
    vault::CustomerKeys::Found found = vault::CustomerKeys::Found::missing;
    const Status s = keys.open(customer, f.aad_field, id, sealed->get_string(), &clear, &found);
    if (s.is_ok() && found == vault::CustomerKeys::Found::ok) {
      *sealed = json::string(clear);
    } else {
      // Erased (or a key that does not open: logged by nobody here, counted by the key store).
      *sealed = nullptr;
    }
  }
}

}  // namespace

std::string reveal_personal_data(vault::CustomerKeys& keys, std::string body) {
  if (body.find(vault::kSealedPersonalPrefix) == std::string::npos) return body;
  auto doc = parse_json(body);
  if (!doc.ok()) return body;
  reveal(keys, doc.value);
  return json::serialize(doc.value);
}

// Erasure: the customer is marked erased in the journal first (an audited record that replay
// applies again), then their key is deleted. A crash between the two leaves the key; keeld
// deletes the keys of every erased customer when it starts (keeld/vault_setup.cc).
void PaymentRoutes::erase_customer(const std::string& id, std::string_view body,
                                   const ResponderPtr& r) {
  vault::CustomerKeys* keys = options_.customer_keys;
  if (keys == nullptr) return r->fail(no_vault());
  if (auto e = no_fields(body)) return r->fail(*e);
  payments::Command c;
  c.body = payments::cmd::EraseCustomer{id};
  engine_->payments_command(
      std::move(c), 0,
      on_io_thread<payments::Reply>(r, [keys, id](const Responder& r, payments::Reply reply) {
        if (reply.error == payments::Error::customer_not_found) {
          return r.fail(not_found("customer", id));
        }
        if (!reply.ok()) return r.reply(to_http(reply, r.request_id));
        if (Status s = keys->erase(id); !s.is_ok()) {
          return r.fail(make_error(ErrorCode::vault_failed,
                                   "the customer is erased in the journal, but their key is not "
                                   "deleted yet (keeld deletes it at its next start): " +
                                       s.message()));
        }
        r.reply(to_http(reply, r.request_id));
      }));
}

}  // namespace keel::api
