#include "payments/render.h"

namespace keel::payments {
namespace {

std::string_view attempt_kind_name(AttemptKind k) {
  switch (k) {
    case AttemptKind::authorization:
      return "authorization";
    case AttemptKind::capture:
      return "capture";
    case AttemptKind::void_authorization:
      return "void";
    case AttemptKind::refund:
      return "refund";
    case AttemptKind::payout:
      return "payout";
    case AttemptKind::topup:
      return "topup";
  }
  return "unknown";
}

// "requires_review", and "review_reason" while there is one (absent otherwise, so that objects
// never in review render as they did before review reasons existed).
void write_review(JsonWriter& w, ReviewReason r) {
  w.field("requires_review", r != ReviewReason::none);
  if (r != ReviewReason::none) w.field("review_reason", review::reason_name(r));
}

void write_attempt(JsonWriter& w, const Attempt& a) {
  w.begin_object();
  w.field("id", a.id);
  w.field("kind", attempt_kind_name(a.kind));
  w.field("channel", a.channel);
  w.field("status", attempt_status_name(a.status));
  w.field("amount", a.amount);
  w.field("fee", a.fee);
  w.key("latency_ms");
  a.latency_ms == 0 ? w.null() : w.number(a.latency_ms);
  w.field_or_null("psp_reference", a.psp_reference);
  w.field_or_null("error_code", a.error_code);
  w.field("created_at", format_rfc3339(a.created_at));
  w.field("updated_at", format_rfc3339(a.updated_at));
  w.end_object();
}

void write_attempts(JsonWriter& w, const std::vector<Attempt>& attempts) {
  w.key("attempts");
  w.begin_array();
  for (const Attempt& a : attempts) write_attempt(w, a);
  w.end_array();
}

// "timeline": [{"at", "from", "to", "cause"}, ...] of any object's status type.
template <typename Entry, typename StatusName>
void write_timeline(JsonWriter& w, const std::vector<Entry>& timeline, StatusName name) {
  w.key("timeline");
  w.begin_array();
  for (const Entry& t : timeline) {
    w.begin_object();
    w.field("at", format_rfc3339(t.at));
    w.field("from", name(t.from));
    w.field("to", name(t.to));
    w.field("cause", t.cause);
    w.end_object();
  }
  w.end_array();
}

}  // namespace

void write_time_or_null(JsonWriter& w, std::string_view key, Timestamp t) {
  w.key(key);
  t == 0 ? w.null() : w.string(format_rfc3339(t));
}

namespace {

void write_decision(JsonWriter& w, std::string_view attempt_id, const routing::Decision& d) {
  w.begin_object();
  w.field("attempt", attempt_id);
  w.field("kind", routing::decision_kind_name(d.kind));
  w.field("channel", d.channel);
  w.field("try", static_cast<int64_t>(d.try_number));
  w.field("delay_ms", d.delay_ms);
  w.field("explored", d.explored);
  w.field("canary", d.canary);
  w.key("candidates");
  w.begin_array();
  for (const routing::Candidate& c : d.candidates) {
    w.begin_object();
    w.field("channel", c.channel);
    w.field("score_ppm", static_cast<int64_t>(c.score_ppm));
    w.field("success_ppm", static_cast<int64_t>(c.success_ppm));
    w.field("cost_ppm", static_cast<int64_t>(c.cost_ppm));
    w.field("latency_p50_ms", static_cast<int64_t>(c.latency_p50_ms));
    w.field("samples", static_cast<int64_t>(c.samples));
    w.end_object();
  }
  w.end_array();
  w.key("rejected");
  w.begin_array();
  for (const routing::Rejected& r : d.rejected) {
    w.begin_object();
    w.field("channel", r.channel);
    w.field("reason", routing::rejection_name(r.reason));
    w.end_object();
  }
  w.end_array();
  w.end_object();
}

void write_payment_fields(JsonWriter& w, const Payment& p);

}  // namespace

std::string render_payment(const Payment& p) {
  JsonWriter w;
  w.begin_object();
  write_payment_fields(w, p);
  w.end_object();
  return w.take();
}

std::string render_payment_with_routing(const Payment& p, const DecisionOf& decision) {
  JsonWriter w;
  w.begin_object();
  write_payment_fields(w, p);
  w.key("routing");
  w.begin_array();
  for (const Attempt& a : p.attempts) {
    if (const routing::Decision* d = decision(a.id)) write_decision(w, a.id, *d);
  }
  w.end_array();
  w.end_object();
  return w.take();
}

namespace {

void write_payment_fields(JsonWriter& w, const Payment& p) {
  w.field("id", p.id);
  w.field("object", "payment");
  w.field("amount", p.amount);
  w.field("currency", p.currency.code());
  w.field("merchant", p.merchant_id);
  w.field("source", p.source == PaymentSource::card ? "card" : "wallet");
  w.field_or_null("customer", p.customer_id);
  w.field_or_null("payment_method", p.payment_method);
  w.field("capture_method", p.capture_method == CaptureMethod::automatic ? "automatic" : "manual");
  w.field("status", status_name(p.status));
  w.field("amount_authorized", p.authorized_amount);
  w.field("amount_captured", p.captured_amount);
  w.field("amount_refunded", p.refunded_amount);
  w.field("merchant_fee", p.merchant_fee);
  w.field("psp_fee", p.psp_fee);
  w.field_or_null("channel", p.channel);
  w.field_or_null("error_code", p.error_code);
  write_review(w, p.review);
  w.field("created_at", format_rfc3339(p.created_at));
  write_time_or_null(w, "deadline", p.deadline);
  write_time_or_null(w, "authorization_expires_at", p.authorization_expires_at);
  write_attempts(w, p.attempts);
  w.key("refunds");
  w.begin_array();
  for (const Refund& r : p.refunds) w.string(r.id);
  w.end_array();
  write_timeline(w, p.timeline, status_name);
}

}  // namespace

std::string render_refund(const Refund& r) {
  JsonWriter w;
  w.begin_object();
  w.field("id", r.id);
  w.field("object", "refund");
  w.field("payment", r.payment_id);
  w.field("amount", r.amount);
  w.field("status", refund_status_name(r.status));
  write_review(w, r.review);
  w.field("created_at", format_rfc3339(r.created_at));
  write_time_or_null(w, "deadline", r.deadline);
  write_attempts(w, r.attempts);
  write_timeline(w, r.timeline, refund_status_name);
  w.end_object();
  return w.take();
}

std::string render_wallet_flow(const WalletFlow& f) {
  JsonWriter w;
  w.begin_object();
  w.field("id", f.id);
  w.field("object", f.kind == WalletFlowKind::transfer ? std::string_view("wallet_transfer")
                                                       : wallet_flow_kind_name(f.kind));
  w.field("amount", f.amount);
  w.field("currency", f.currency.code());
  if (f.kind == WalletFlowKind::transfer) {
    w.field("from", f.customer_id);
    w.field("to", f.to_customer_id);
  } else {
    w.field("customer", f.customer_id);
    w.field("channel", f.channel);
    w.field(f.kind == WalletFlowKind::topup ? "source" : "destination", f.instrument);
    w.field("fee", f.fee);
  }
  w.field("status", wallet_flow_status_name(f.status));
  w.field_or_null("error_code", f.error_code);
  write_review(w, f.review);
  w.field("created_at", format_rfc3339(f.created_at));
  write_time_or_null(w, "deadline", f.deadline);
  write_attempts(w, f.attempts);
  write_timeline(w, f.timeline, wallet_flow_status_name);
  w.end_object();
  return w.take();
}

std::string render_payment_method(const vault::PaymentMethod& m, Timestamp detached_at) {
  JsonWriter w;
  w.begin_object();
  w.field("id", m.id);
  w.field("object", "payment_method");
  w.field("type", "card");
  w.key("card");
  w.begin_object();
  w.field("brand", vault::card_brand_name(m.brand));
  w.field_or_null("country", m.country);
  w.field("last4", m.last4);
  w.field("exp_month", static_cast<int64_t>(m.exp_month));
  w.field("exp_year", static_cast<int64_t>(m.exp_year));
  w.field("fingerprint", m.fingerprint);
  w.end_object();
  w.field(m.owner_kind == vault::OwnerKind::merchant ? "merchant" : "customer", m.owner_id);
  w.field("created_at", format_rfc3339(m.created_at));
  if (detached_at != 0) w.field("detached_at", format_rfc3339(detached_at));
  w.end_object();
  return w.take();
}

}  // namespace keel::payments
