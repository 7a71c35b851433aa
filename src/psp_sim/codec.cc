#include "psp_sim/codec.h"
#include "core/ids.h"

#include <algorithm>
#include <boost/json.hpp>

#include "vault/card.h"

namespace keel::psp_sim {
namespace {

namespace json = boost::json;

json::string_view jv(std::string_view s) { return json::string_view(s.data(), s.size()); }

// Parses `body` as a JSON object; "" or the error.
std::string parse_object(std::string_view body, json::object* out) {
  json::error_code ec;
  json::value v = json::parse(jv(body), ec);
  if (ec) return "the body is not valid JSON: " + ec.message();
  if (!v.is_object()) return "the body must be a JSON object";
  *out = std::move(v.get_object());
  return {};
}

std::string get_string(const json::object& o, std::string_view name, std::string* out) {
  const json::value* v = o.if_contains(jv(name));
  if (v == nullptr || !v->is_string() || v->get_string().empty()) {
    return std::string(name) + ": a non-empty string is required";
  }
  *out = std::string(v->get_string());
  return {};
}

std::string get_reference(const json::object& o, std::string_view name, std::string* out) {
  if (std::string err = get_string(o, name, out); !err.empty()) return err;
  if (!valid_reference(*out)) return std::string(name) + ": 1 to 128 of [A-Za-z0-9_-]";
  return {};
}

std::string get_amount(const json::object& o, int64_t* out) {
  const json::value* v = o.if_contains("amount");
  if (v == nullptr || !v->is_int64() || v->get_int64() <= 0 || v->get_int64() > kAmountMax) {
    return "amount: an integer in minor units within 1.." + std::to_string(kAmountMax);
  }
  *out = v->get_int64();
  return {};
}

std::string get_currency(const json::object& o, Currency* out) {
  std::string code;
  if (std::string err = get_string(o, "currency", &code); !err.empty()) return err;
  const auto c = Currency::from_code(code);
  if (!c) return "currency: not an ISO 4217 code";
  *out = *c;
  return {};
}

// The one of `names` present in `o` as a non-empty string, as "name:value".
std::string get_one_of(const json::object& o, std::string_view field,
                       std::initializer_list<std::string_view> names, std::string* out) {
  for (std::string_view name : names) {
    const json::value* v = o.if_contains(jv(name));
    if (v == nullptr) continue;
    if (!v->is_string() || v->get_string().empty()) return std::string(name) + ": a string";
    if (!out->empty()) return std::string(field) + ": exactly one source or destination";
    *out = std::string(name) + ":" + std::string(v->get_string());
  }
  if (out->empty()) return std::string(field) + ": required";
  return {};
}

std::string parse_transfer(std::string_view body, std::string_view counterparty_field,
                           std::initializer_list<std::string_view> names, TransferRequest* out) {
  json::object o;
  if (std::string err = parse_object(body, &o); !err.empty()) return err;
  TransferRequest r;
  if (std::string err = get_reference(o, "reference", &r.reference); !err.empty()) return err;
  if (std::string err = get_amount(o, &r.amount); !err.empty()) return err;
  if (std::string err = get_currency(o, &r.currency); !err.empty()) return err;
  const json::object* where = &o;
  if (!counterparty_field.empty()) {
    const json::value* d = o.if_contains(jv(counterparty_field));
    if (d == nullptr || !d->is_object()) {
      return std::string(counterparty_field) + ": an object is required";
    }
    where = &d->get_object();
  }
  const std::string_view field = counterparty_field.empty() ? "source" : counterparty_field;
  if (std::string err = get_one_of(*where, field, names, &r.counterparty); !err.empty()) {
    return err;
  }
  *out = std::move(r);
  return {};
}

}  // namespace

bool valid_reference(std::string_view s) { return is_valid_reference(s, 128); }

json::object operation_to_json(const Operation& op) {
  json::object o{
      {"psp_reference", op.psp_reference},
      {"reference", op.reference},
      {"type", jv(type_name(op.type))},
      {"status", jv(status_name(op.status))},
      {"amount", op.amount},
      {"currency", jv(op.currency.code())},
      {"captured_amount", op.captured_amount},
      {"refunded_amount", op.refunded_amount},
      {"fee", op.fee},
      {"decline_code", nullptr},
      {"decline_type", nullptr},
      {"created_at", format_rfc3339(op.created_at)},
      {"updated_at", format_rfc3339(op.updated_at)},
  };
  if (op.decline) {
    o["decline_code"] = op.decline->code;
    o["decline_type"] = jv(decline_type_name(op.decline->type));
  }
  if (op.type == OperationType::refund) o["payment_reference"] = op.payment_reference;
  if (!op.counterparty.empty()) o["counterparty"] = op.counterparty;
  if (!op.card_last4.empty()) {
    o["card"] = json::object{{"last4", op.card_last4},
                             {"cvc_check", op.cvc_provided ? "pass" : "unavailable"}};
  }
  return o;
}

std::string event_body(const Event& e) {
  return json::serialize(json::object{{"id", e.id},
                                      {"type", "operation.updated"},
                                      {"created_at", format_rfc3339(e.created_at)},
                                      {"data", operation_to_json(e.operation)}});
}

std::string error_body(std::string_view code, std::string_view message) {
  return json::serialize(
      json::object{{"error", json::object{{"code", jv(code)}, {"message", jv(message)}}}});
}

// A card in clear ({"number", "exp_month", "exp_year", "cvc"?}): checked as a PSP would, kept
// only as "card_" + its last 4 digits.
std::string parse_card(const json::value& v, AuthorizeRequest* r) {
  const json::object* card = v.if_object();
  if (card == nullptr) return "card: an object is required";
  const json::value* number = card->if_contains("number");
  if (number == nullptr || !number->is_string()) return "card.number: a string is required";
  const std::string_view digits = number->get_string();
  const bool digits_only =
      std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits_only || digits.size() < 12 || digits.size() > 19 || !vault::luhn_valid(digits)) {
    return "card.number: not a valid card number";
  }
  const json::value* month = card->if_contains("exp_month");
  const json::value* year = card->if_contains("exp_year");
  if (month == nullptr || !month->is_int64() || month->get_int64() < 1 || month->get_int64() > 12 ||
      year == nullptr || !year->is_int64() || year->get_int64() < 2000 ||
      year->get_int64() > 2099) {
    return "card.exp_month, card.exp_year: the expiry month and year are required";
  }
  if (const json::value* cvc = card->if_contains("cvc")) {
    const json::string* s = cvc->if_string();
    if (s == nullptr || s->size() < 3 || s->size() > 4) return "card.cvc: 3 or 4 digits";
    r->cvc_provided = true;
  }
  r->card_token = "card_" + std::string(digits.substr(digits.size() - 4));
  return {};
}

std::string parse_authorize(std::string_view body, AuthorizeRequest* out) {
  json::object o;
  if (std::string err = parse_object(body, &o); !err.empty()) return err;
  AuthorizeRequest r;
  if (std::string err = get_reference(o, "reference", &r.reference); !err.empty()) return err;
  if (std::string err = get_amount(o, &r.amount); !err.empty()) return err;
  if (std::string err = get_currency(o, &r.currency); !err.empty()) return err;
  if (const json::value* card = o.if_contains("card")) {
    if (std::string err = parse_card(*card, &r); !err.empty()) return err;
  } else if (std::string err = get_string(o, "card_token", &r.card_token); !err.empty()) {
    return err;
  }
  if (const json::value* c = o.if_contains("capture")) {
    if (!c->is_bool()) return "capture: true or false";
    r.capture = c->get_bool();
  }
  *out = std::move(r);
  return {};
}

std::string parse_capture(std::string_view body, std::optional<int64_t>* amount) {
  amount->reset();
  if (body.empty()) return {};
  json::object o;
  if (std::string err = parse_object(body, &o); !err.empty()) return err;
  if (!o.contains("amount")) return {};
  int64_t a = 0;
  if (std::string err = get_amount(o, &a); !err.empty()) return err;
  *amount = a;
  return {};
}

std::string parse_refund(std::string_view body, RefundRequest* out) {
  json::object o;
  if (std::string err = parse_object(body, &o); !err.empty()) return err;
  RefundRequest r;
  if (std::string err = get_reference(o, "reference", &r.reference); !err.empty()) return err;
  if (std::string err = get_reference(o, "payment_reference", &r.payment_reference); !err.empty()) {
    return err;
  }
  if (std::string err = get_amount(o, &r.amount); !err.empty()) return err;
  *out = std::move(r);
  return {};
}

std::string parse_payout(std::string_view body, TransferRequest* out) {
  return parse_transfer(body, "destination", {"iban", "account"}, out);
}

std::string parse_topup(std::string_view body, TransferRequest* out) {
  return parse_transfer(body, "", {"card_token", "bank_account"}, out);
}

}  // namespace keel::psp_sim
