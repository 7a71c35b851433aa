#include "payments/core.h"

#include <algorithm>

#include "core/assert.h"
#include "core/bytes.h"
#include "core/codec.h"
#include "core/enum_name.h"
#include "core/ids.h"
#include "core/json_writer.h"
#include "core/overloaded.h"
#include "payments/render.h"
#include "vault/personal_data.h"

namespace keel::payments {
namespace {

constexpr uint32_t kEncodingVersion = 1;
// Customers carry erased_at. Written only while some customer is erased, so that a state
// without one encodes (and hashes) as before.
constexpr uint32_t kEncodingVersionWithErasures = 2;
constexpr size_t kIdLengthMax = 48;  // customers and merchants, like payments
constexpr size_t kNameBytesMax = 200;
constexpr size_t kUrlBytesMax = 2048;
constexpr size_t kSecretBytesMax = 256;

// The id of the object a client command creates or acts on (empty for the other kinds).
const std::string& subject_id(const CommandBody& body) {
  static const std::string kNone;
  return std::visit(
      [](const auto& b) -> const std::string& {
        if constexpr (requires { b.id; }) {
          return b.id;
        } else {
          return kNone;
        }
      },
      body);
}

// The answer to a vault step that changed `applied` records: {key: applied}, or `unchanged`
// (with `none`) when it changed none (then it is not journaled).
Reply count_reply(size_t applied, std::string_view key, std::string none) {
  if (applied == 0) return error_reply(Error::unchanged, std::move(none));
  JsonWriter w;
  w.begin_object();
  w.field(key, static_cast<int64_t>(applied));
  w.end_object();
  return Reply::success(w.take());
}

// A list answer: {"object": "list", "data": [bodies...], "has_more": ...}.
std::string render_list(const std::vector<std::string>& bodies, bool has_more) {
  JsonWriter w;
  w.begin_object();
  w.field("object", "list");
  w.key("data");
  w.begin_array();
  for (const std::string& body : bodies) w.raw(body);
  w.end_array();
  w.field("has_more", has_more);
  w.end_object();
  return w.take();
}

// How each PaymentResult reaches the API: the reason, a message, the parameter.
Reply payment_error(PaymentResult r, std::string_view id) {
  using R = PaymentResult;
  switch (r) {
    case R::id_invalid:
    case R::refund_id_invalid:
      return error_reply(Error::id_invalid, "the id is not valid", "id");
    case R::amount_invalid:
      return error_reply(Error::amount_invalid, "the amount must be a positive integer", "amount");
    case R::currency_invalid:
      return error_reply(Error::currency_invalid, "unknown currency", "currency");
    case R::merchant_id_invalid:
      return error_reply(Error::parameter_invalid, "the merchant id is not valid", "merchant");
    case R::channel_invalid:
      return error_reply(Error::parameter_invalid, "the channel is not valid", "channel");
    case R::payment_method_invalid:
      return error_reply(Error::parameter_invalid,
                         "a card payment needs a payment_method (card token); a wallet payment "
                         "takes none",
                         "payment_method");
    case R::customer_id_invalid:
      return error_reply(Error::parameter_invalid, "the customer is not valid", "customer");
    case R::capture_method_invalid:
      return error_reply(Error::parameter_invalid, "wallet payments capture automatically",
                         "capture_method");
    case R::source_invalid:
      return error_reply(Error::parameter_invalid, "source must be card or wallet", "source");
    case R::exists:
      return error_reply(Error::resource_exists,
                         "an object with id " + std::string(id) + " exists");
    case R::not_found:
      return error_reply(Error::resource_missing, "no payment with id " + std::string(id), "id");
    case R::invalid_state:
    case R::wrong_source:
      return error_reply(Error::payment_unexpected_state,
                         "the payment's status or source does not allow this");
    case R::attempt_outstanding:
      return error_reply(Error::attempt_outstanding,
                         "an attempt of this payment is still open at the PSP; wait for it");
    case R::capture_exceeds_authorized:
      return error_reply(Error::amount_too_large, "more than was authorized", "amount");
    case R::refund_exceeds_captured:
      return error_reply(Error::amount_too_large,
                         "refunds (pending and succeeded) would exceed the captured amount",
                         "amount");
    case R::too_many_attempts:
      return error_reply(Error::too_many_attempts, "the payment has reached its limit of attempts");
    case R::too_many_refunds:
      return error_reply(Error::too_many_refunds, "the payment has reached its limit of refunds");
    default:
      return error_reply(Error::internal_error,
                         "unexpected payment result " + std::string(result_name(r)));
  }
}

Reply flow_error(WalletFlowResult r, std::string_view id) {
  using R = WalletFlowResult;
  switch (r) {
    case R::id_invalid:
      return error_reply(Error::id_invalid, "the id is not valid", "id");
    case R::exists:
      return error_reply(Error::resource_exists,
                         "an object with id " + std::string(id) + " exists");
    case R::amount_invalid:
      return error_reply(Error::amount_invalid, "the amount must be a positive integer", "amount");
    case R::currency_invalid:
      return error_reply(Error::currency_invalid, "unknown currency", "currency");
    case R::customer_id_invalid:
      return error_reply(Error::parameter_invalid, "the customer is not valid", "customer");
    case R::channel_invalid:
      return error_reply(Error::parameter_invalid, "the channel is not valid", "channel");
    case R::instrument_invalid:
      return error_reply(Error::parameter_invalid, "the source or destination is not valid",
                         "source");
    case R::same_wallet:
      return error_reply(Error::parameter_invalid, "from and to are the same wallet", "to");
    default:
      return error_reply(Error::internal_error,
                         "unexpected wallet flow result " + std::string(result_name(r)));
  }
}

}  // namespace

std::string_view error_name(Error e) {
  using E = Error;
  switch (e) {
    KEEL_ENUM_CASE(E, id_invalid);
    KEEL_ENUM_CASE(E, parameter_invalid);
    KEEL_ENUM_CASE(E, amount_invalid);
    KEEL_ENUM_CASE(E, currency_invalid);
    KEEL_ENUM_CASE(E, amount_too_large);
    KEEL_ENUM_CASE(E, idempotency_key_invalid);
    KEEL_ENUM_CASE(E, merchant_not_found);
    KEEL_ENUM_CASE(E, customer_not_found);
    KEEL_ENUM_CASE(E, payment_not_found);
    KEEL_ENUM_CASE(E, resource_missing);
    KEEL_ENUM_CASE(E, resource_exists);
    KEEL_ENUM_CASE(E, payment_unexpected_state);
    KEEL_ENUM_CASE(E, attempt_outstanding);
    KEEL_ENUM_CASE(E, too_many_attempts);
    KEEL_ENUM_CASE(E, too_many_refunds);
    KEEL_ENUM_CASE(E, endpoints_full);
    KEEL_ENUM_CASE(E, idempotency_key_in_use);
    KEEL_ENUM_CASE(E, idempotency_key_reused);
    KEEL_ENUM_CASE(E, stale_result);
    KEEL_ENUM_CASE(E, stale_transition);
    KEEL_ENUM_CASE(E, stale_control);
    KEEL_ENUM_CASE(E, unchanged);
    KEEL_ENUM_CASE(E, psp_result_rejected);
    KEEL_ENUM_CASE(E, channel_ineligible);
    KEEL_ENUM_CASE(E, over_capacity);
    KEEL_ENUM_CASE(E, read_only);
    KEEL_ENUM_CASE(E, flow_disabled);
    KEEL_ENUM_CASE(E, no_channel_available);
    KEEL_ENUM_CASE(E, internal_error);
    KEEL_ENUM_CASE(E, webhook_endpoint_missing);
    KEEL_ENUM_CASE(E, payment_method_not_found);
    KEEL_ENUM_CASE(E, customer_erased);
  }
  return "unknown";
}

Reply error_reply(Error error, std::string message, std::string param) {
  Reply r;
  r.error = error;
  r.error_message = std::move(message);
  r.error_param = std::move(param);
  return r;
}

PaymentsCore::PaymentsCore(CoreOptions options)
    : options_(options),
      payments_(options.deadlines),
      flows_(options.flows),
      outbox_(options.outbox),
      idempotency_(options.idempotency_ttl_s) {}

ApplyOutcome PaymentsCore::apply(const Command& c, Timestamp now, ledger::Ledger& ledger,
                                 Timestamp* clock) {
  const IdempotencyScope& idem = c.idempotency;
  if (std::optional<Reply> refused = refused_by_controls(c)) {
    ApplyOutcome out;
    out.reply = std::move(*refused);
    // A retry of a request that finished before the refusal (read-only mode, a kill switch, a
    // full outbox) still gets its stored answer: it asks for nothing new.
    if (const StoredResponse* done =
            idem.key.empty()
                ? nullptr
                : idempotency_.completed(idem.client, idem.key, idem.fingerprint, now)) {
      out.reply = Reply::success(done->body);
      out.reply.replayed = true;
    }
    return out;  // nothing changed: not journaled, no key taken
  }
  if (idem.key.empty()) {
    ApplyOutcome out = run(c, now, ledger, clock);
    complete_waiters(now, &out);
    return out;
  }
  const IdempotencyOutcome begun = idempotency_.begin(idem.client, idem.key, idem.fingerprint, now);
  switch (begun.decision) {
    case IdempotencyDecision::replay: {
      ApplyOutcome out;
      out.reply.body = begun.response->body;
      out.reply.replayed = true;
      return out;
    }
    case IdempotencyDecision::in_flight: {
      ApplyOutcome out;
      const auto waiting = waiting_object_.find({idem.client, idem.key});
      if (waiting != waiting_object_.end() &&
          review_view(waiting->second).reason != ReviewReason::none) {
        // In review is not an outcome: the object as it stands, not stored; the key stays in
        // flight until the object is final.
        out.reply = Reply::success(render(waiting->second));
        return out;
      }
      out.reply = error_reply(Error::idempotency_key_in_use,
                              "a request with this Idempotency-Key is still being processed; "
                              "retry later");
      return out;
    }
    case IdempotencyDecision::mismatch: {
      ApplyOutcome out;
      out.reply = error_reply(Error::idempotency_key_reused,
                              "this Idempotency-Key was used with another request");
      return out;
    }
    case IdempotencyDecision::key_invalid: {
      ApplyOutcome out;
      out.reply = error_reply(Error::idempotency_key_invalid,
                              "Idempotency-Key must be 1-255 printable ASCII characters");
      return out;
    }
    case IdempotencyDecision::proceed:
      break;
  }
  ApplyOutcome out = run(c, now, ledger, clock);
  if (!out.reply.ok()) {
    // Nothing happened: forget the key so that a corrected retry runs (Stripe does the same).
    KEEL_ASSERT(!out.changed);
    KEEL_ASSERT(idempotency_.release(idem.client, idem.key));
    return out;
  }
  out.changed = true;  // the key is state
  if (out.reply.settled) {
    const auto r = idempotency_.complete(idem.client, idem.key, {out.reply.body}, now);
    KEEL_ASSERT(r == CompleteResult::ok || r == CompleteResult::body_too_large);
  } else {
    waiting_[out.object_id].insert({idem.client, idem.key});
    waiting_object_[{idem.client, idem.key}] = out.object_id;
  }
  complete_waiters(now, &out);
  return out;
}

std::string PaymentsCore::trace_of(std::string_view id) const {
  const auto it = traces_.find(id);
  return it == traces_.end() ? std::string() : it->second;
}

// The request's traceparent becomes its object's (refunds and flows: the new object's id; a
// payment step: the payment's), for the calls it makes now and later.
void PaymentsCore::note_trace(const Command& c) {
  if (c.traceparent.empty()) return;
  switch (c.kind()) {
    case CommandKind::create_payment:
    case CommandKind::confirm_payment:
    case CommandKind::capture_payment:
    case CommandKind::cancel_payment:
    case CommandKind::create_refund:
    case CommandKind::create_topup:
    case CommandKind::create_payout: {
      const std::string& id = subject_id(c.body);
      if (payments_.find(id) != nullptr || payments_.find_refund(id) != nullptr ||
          flows_.find(id) != nullptr) {
        traces_.insert_or_assign(id, c.traceparent);
      }
      return;
    }
    default:
      return;
  }
}

ApplyOutcome PaymentsCore::run(const Command& c, Timestamp now, ledger::Ledger& ledger,
                               Timestamp* clock) {
  fault_in(c);
  ApplyOutcome out;
  Effects effects;
  bool wallet_flow = false;
  const WalletFlows::IdTaken cold_flow_taken = [this](std::string_view id) {
    return cold_exists(id, payment_history::Kind::flow);
  };
  // Whether the command reports a PSP's word: its failures are still outcomes (a stale result
  // changes nothing; a rejected one flags its object), and its objects' changes come from the
  // PSP.
  bool from_psp = false;
  // The objects this command may change, with the status they showed before (merchant events).
  std::vector<std::pair<std::string, std::string>> touched;
  const auto touch = [&](std::string_view id) { touched.emplace_back(id, event_status(id)); };
  // A report on a settled attempt may flag its owner.
  const auto touch_settled = [&](const std::string& attempt_id) {
    if (open_attempts_.contains(attempt_id)) return;
    if (const std::string owner = attempt_owner(attempt_id); !owner.empty()) touch(owner);
  };
  // A top-up's or payout's channel: where routing said when it was asked (the command
  // journals the decision), else the one named. Null when no channel can take it (the reply
  // says why).
  const auto flow_channel = [&](const cmd::CreateFlow& b) -> const std::string* {
    if (!c.routed) return &b.channel;
    if (c.route.kind != routing::DecisionKind::none) return &c.route.channel;
    out.reply = no_channel(c.route, b.channel);
    return nullptr;
  };
  std::visit(
      Overloaded{
          [&](const cmd::CreateCustomer& b) { out.reply = create_customer(b, now); },
          [&](const cmd::CreateMerchant& b) { out.reply = create_merchant(b, now); },
          [&](const cmd::CreatePayment& b) {
            touch(b.id);
            out.reply = create_payment(b, now);
          },
          [&](const cmd::ConfirmPayment& b) {
            touch(b.id);
            out.reply = confirm_payment(c, b, now, ledger, &effects);
            out.object_id = b.id;
          },
          [&](const cmd::CapturePayment& b) {
            touch(b.id);
            out.reply = payment_done(b.id, payments_.capture(b.id, b.amount, now, &effects));
            out.object_id = b.id;
          },
          [&](const cmd::CancelPayment& b) {
            touch(b.id);
            out.reply = payment_done(b.id, payments_.cancel(b.id, now, &effects));
            out.object_id = b.id;
          },
          [&](const cmd::CreateRefund& b) {
            touch(b.id);
            out.reply = create_refund(b, now, &effects);
            out.object_id = b.id;
          },
          [&](const cmd::CreateTopup& b) {
            wallet_flow = true;
            out.object_id = b.id;
            if (std::optional<Reply> refused = refused_erased(b.customer_id, "customer")) {
              out.reply = *refused;
            } else if (b.instrument.starts_with(vault::kPaymentMethodPrefix)) {
              out.reply = error_reply(Error::parameter_invalid,
                                      "top-ups take a PSP's card token or a bank account; vault "
                                      "cards (pm_) pay card payments",
                                      "source");
            } else if (const std::string* channel = flow_channel(b)) {
              out.reply = create_flow(b.id, b.customer_id, "", [&] {
                return flows_.create_topup({b.id, b.customer_id, b.amount, b.currency, *channel,
                                            b.instrument_kind, b.instrument},
                                           now, &effects, &cold_flow_taken);
              });
            }
          },
          [&](const cmd::CreatePayout& b) {
            wallet_flow = true;
            out.object_id = b.id;
            if (std::optional<Reply> refused = refused_erased(b.customer_id, "customer")) {
              out.reply = *refused;
            } else if (const std::string* channel = flow_channel(b)) {
              out.reply = create_flow(b.id, b.customer_id, "", [&] {
                return flows_.create_payout(
                    {b.id, b.customer_id, b.amount, b.currency, *channel, b.instrument_kind,
                     b.instrument, available(b.customer_id, b.currency, ledger)},
                    now, &effects, &cold_flow_taken);
              });
            }
          },
          [&](const cmd::CreateWalletTransfer& b) {
            wallet_flow = true;
            out.reply = create_flow(b.id, b.customer_id, b.to_customer_id, [&] {
              return flows_.create_wallet_transfer(
                  {b.id, b.customer_id, b.to_customer_id, b.amount, b.currency,
                   available(b.customer_id, b.currency, ledger)},
                  now, &effects, &cold_flow_taken);
            });
            out.object_id = b.id;
          },
          [&](const cmd::AttemptResult& b) {
            from_psp = true;
            if (const auto open = open_attempts_.find(b.attempt_id); open != open_attempts_.end()) {
              touch(open->second.owner);
            }
            touch_settled(b.attempt_id);
            attempt_result(c, b, now, &effects, &out);
          },
          [&](const cmd::OperationStatus& b) {
            from_psp = true;
            for (const std::string& id : attempts_on(b.reference)) {
              const auto open = open_attempts_.find(id);
              KEEL_ASSERT(open != open_attempts_.end());
              touch(open->second.owner);
            }
            touch_settled(b.reference);
            operation_status(c, b, now, &effects, &out);
          },
          [&](const cmd::MarkPendingUnknown&) {
            std::vector<std::string> ids = payments_.mark_pending_unknown(now);
            for (std::string& id : flows_.mark_pending_unknown(now)) ids.push_back(std::move(id));
            for (const std::string& id : ids) {
              out.changed = true;
              const auto open = open_attempts_.find(id);
              KEEL_ASSERT(open != open_attempts_.end());  // the machines' open attempts are here
              out.resolve.push_back(
                  {id, open->second.channel, open->second.reference, trace_of(open->second.owner)});
            }
          },
          [&](const cmd::OutboxAttempt& b) { out.reply = outbox_attempt(b, now, &out); },
          [&](const cmd::SetFees& b) {
            if (payments_.set_fees(b.fees) != PaymentResult::ok) {
              out.reply =
                  error_reply(Error::parameter_invalid, "the fee schedule is not valid", "fees");
            }
          },
          [&](const cmd::SetChannels& b) { out.reply = set_channels(b); },
          [&](const cmd::ChannelEvent& b) {
            if (!channels_.record(b.transition)) {
              out.reply = error_reply(Error::stale_transition,
                                      "the breaker transition does not follow the recorded state");
            }
          },
          [&](const cmd::Control& b) { out.reply = runtime_control(b.control, now); },
          [&](const cmd::RotateWebhookSecret& b) { out.reply = rotate_webhook_secret(b, now); },
          [&](const cmd::StorePaymentMethod& b) {
            out.reply = store_payment_method(b);
            out.object_id = b.method.id;
          },
          [&](const cmd::ResealWebhookSecrets& b) {
            size_t applied = 0;
            for (const cmd::SecretReseal& r : b.reseals) {
              applied += outbox_.reseal_secret(r.merchant_id, r.from, r.to) ? 1 : 0;
            }
            out.reply = count_reply(applied, "resealed", "every secret was re-sealed already");
          },
          [&](const cmd::RewrapPaymentMethods& b) {
            out.reply = count_reply(payment_methods_.rewrap(b.rewraps), "rewrapped",
                                    "every data key was re-wrapped already");
          },
          [&](const cmd::DetachPaymentMethod& b) {
            out.reply = detach_payment_method(b, now);
            out.object_id = b.id;
          },
          [&](const cmd::EraseCustomer& b) { out.reply = erase_customer(b, now); },
      },
      c.body);
  const CommandKind kind = c.kind();
  if (!from_psp && kind != CommandKind::mark_pending_unknown &&
      kind != CommandKind::outbox_attempt) {
    out.changed = out.reply.ok();
  }
  if (!out.reply.ok() && !from_psp && kind != CommandKind::outbox_attempt) {
    KEEL_ASSERT(effects.postings.empty() && effects.calls.empty());
    return out;
  }
  note_trace(c);  // before carry_out: this command's calls carry it
  carry_out(effects, wallet_flow, ledger, clock, &out);
  for (const auto& [id, before] : touched) {
    note_change(id, before, now, &out);
    sync_review(id, from_psp ? "psp" : "api", now);
  }
  return out;
}

Reply PaymentsCore::create_customer(const cmd::CreateCustomer& c, Timestamp now) {
  if (!is_valid_reference(c.id, kIdLengthMax)) {
    return error_reply(Error::id_invalid, "bad customer id", "id");
  }
  // A name sealed at the API edge is longer than the name (vault/personal_data.h).
  const size_t name_max = vault::is_sealed_personal(c.name)
                              ? vault::sealed_personal_length(kNameBytesMax)
                              : kNameBytesMax;
  if (c.name.size() > name_max) {
    return error_reply(Error::parameter_invalid, "name is longer than 200 bytes", "name");
  }
  if (customers_.contains(c.id)) {
    return error_reply(Error::resource_exists, "a customer with id " + c.id + " exists");
  }
  customers_.emplace(c.id, Customer{c.id, c.name, now});
  return Reply::success(render(c.id));
}

Reply PaymentsCore::erase_customer(const cmd::EraseCustomer& c, Timestamp now) {
  const auto it = customers_.find(c.customer_id);
  if (it == customers_.end()) {
    return error_reply(Error::customer_not_found, "no customer with id " + c.customer_id);
  }
  Customer& customer = it->second;
  if (customer.erased_at == 0) {  // erasing again changes nothing and answers the same
    customer.erased_at = now;
    customer.name.clear();
    for (const std::string& id :
         payment_methods_.owned_by(vault::OwnerKind::customer, customer.id)) {
      const bool erased = payment_methods_.erase(id);
      KEEL_ASSERT(erased);
    }
  }
  KEEL_ASSERT(customer.erased_at != 0 && customer.name.empty());
  KEEL_ASSERT(payment_methods_.owned_by(vault::OwnerKind::customer, customer.id).empty());
  return Reply::success(render(customer.id));
}

std::optional<Reply> PaymentsCore::refused_erased(std::string_view customer_id,
                                                  std::string_view param) const {
  const auto it = customers_.find(customer_id);
  if (it == customers_.end() || it->second.erased_at == 0) return std::nullopt;
  return error_reply(Error::customer_erased, "customer " + std::string(customer_id) + " was erased",
                     std::string(param));
}

Reply PaymentsCore::create_merchant(const cmd::CreateMerchant& c, Timestamp now) {
  if (!is_valid_reference(c.id, kIdLengthMax)) {
    return error_reply(Error::id_invalid, "bad merchant id", "id");
  }
  if (c.name.size() > kNameBytesMax) {
    return error_reply(Error::parameter_invalid, "name is longer than 200 bytes", "name");
  }
  // A secret sealed by the vault is longer than the secret (is_valid_endpoint_secret bounds it).
  const size_t secret_max =
      kSecretBytesMax + (vault::is_sealed_secret(c.secret) ? vault::kSealedSecretOverhead : 0);
  if (c.url.size() > kUrlBytesMax || c.secret.size() > secret_max ||
      c.url.empty() != c.secret.empty()) {
    return error_reply(Error::parameter_invalid,
                       "webhook_url and webhook_secret go together (url <= 2048 bytes, secret "
                       "<= 256 bytes)",
                       "webhook_url");
  }
  if (merchants_.contains(c.id)) {
    return error_reply(Error::resource_exists, "a merchant with id " + c.id + " exists");
  }
  if (!c.url.empty()) {
    if (!is_valid_endpoint_url(c.url) || !is_valid_endpoint_secret(c.secret)) {
      return error_reply(Error::parameter_invalid,
                         "webhook_url must be http[s]://HOST[:PORT][/PATH] and webhook_secret "
                         "printable ASCII",
                         "webhook_url");
    }
    if (outbox_.set_endpoint(c.id, c.url, c.secret) != OutboxResult::ok) {
      return error_reply(Error::endpoints_full, "no room for another webhook endpoint");
    }
  }
  merchants_.emplace(c.id, Merchant{c.id, c.name, c.url, now});
  return Reply::success(render(c.id));
}

Reply PaymentsCore::rotate_webhook_secret(const cmd::RotateWebhookSecret& c, Timestamp now) {
  if (!merchants_.contains(c.merchant_id)) {
    return error_reply(Error::resource_missing, "no merchant with id " + c.merchant_id);
  }
  if (c.overlap_s < 0 || c.overlap_s > kWebhookSecretOverlapMaxS) {
    return error_reply(Error::parameter_invalid,
                       "overlap_seconds must be 0 to " + std::to_string(kWebhookSecretOverlapMaxS),
                       "overlap_seconds");
  }
  if (!is_valid_endpoint_secret(c.secret)) {
    return error_reply(Error::parameter_invalid, "secret must be 1 to 256 bytes of printable ASCII",
                       "secret");
  }
  const Timestamp until = c.overlap_s == 0 ? 0 : now + c.overlap_s * kNanosPerSecond;
  switch (outbox_.rotate_secret(c.merchant_id, c.secret, now, until)) {
    case OutboxResult::ok:
      break;
    case OutboxResult::endpoint_not_found:
      return error_reply(Error::webhook_endpoint_missing,
                         "merchant " + c.merchant_id + " has no webhook endpoint");
    case OutboxResult::secret_unchanged:
      return error_reply(Error::unchanged, "the new secret is the current one", "secret");
    default:
      return error_reply(Error::parameter_invalid, "the secret is not valid", "secret");
  }
  JsonWriter w;
  w.begin_object();
  w.field("object", "webhook_secret_rotation");
  w.field("merchant", c.merchant_id);
  // A sealed secret is not shown (the API edge, which sealed it, adds the clear one).
  if (!vault::is_sealed_secret(c.secret)) w.field("webhook_secret", c.secret);
  w.field("rotated_at", format_rfc3339(now));
  if (until != 0) {
    w.field("previous_secret_expires_at", format_rfc3339(until));
  } else {
    w.field_or_null("previous_secret_expires_at", "");
  }
  w.end_object();
  return Reply::success(w.take());
}

Reply PaymentsCore::create_payment(const cmd::CreatePayment& c, Timestamp now) {
  if (!merchants_.contains(c.merchant_id)) {
    return error_reply(Error::merchant_not_found, "no merchant with id " + c.merchant_id,
                       "merchant");
  }
  if (!c.customer_id.empty() && !customers_.contains(c.customer_id)) {
    return error_reply(Error::customer_not_found, "no customer with id " + c.customer_id,
                       "customer");
  }
  if (auto refused = payment_method_refused(c.instrument, c.merchant_id, c.customer_id)) {
    return *refused;
  }
  CreatePayment request;
  request.id = c.id;
  request.amount = c.amount;
  request.currency = c.currency;
  request.merchant_id = c.merchant_id;
  request.capture_method = c.capture_manual ? CaptureMethod::manual : CaptureMethod::automatic;
  request.source = c.source_wallet ? PaymentSource::wallet : PaymentSource::card;
  request.payment_method = c.instrument;
  request.customer_id = c.customer_id;
  if (flows_.find(c.id) != nullptr || cold_exists(c.id, payment_history::Kind::flow)) {
    return payment_error(PaymentResult::exists, c.id);
  }
  const PaymentMachine::IdTaken taken = [this](std::string_view id) {
    return cold_exists(id, payment_history::Kind::payment);
  };
  if (const PaymentResult r = payments_.create(request, now, &taken); r != PaymentResult::ok) {
    return payment_error(r, c.id);
  }
  return Reply::success(render(c.id));
}

Reply PaymentsCore::confirm_payment(const Command& c, const cmd::ConfirmPayment& b, Timestamp now,
                                    const ledger::Ledger& ledger, Effects* effects) {
  const Payment* p = payments_.find(b.id);
  if (p != nullptr && p->source == PaymentSource::wallet) {
    return payment_done(
        b.id, payments_.confirm_from_wallet(b.id, available(p->customer_id, p->currency, ledger),
                                            now, effects));
  }
  if (!c.routed) return payment_done(b.id, payments_.confirm(b.id, b.channel, now, effects));
  if (c.route.kind == routing::DecisionKind::none) return no_channel(c.route, b.channel);
  const size_t calls_before = effects->calls.size();
  const PaymentResult r = payments_.confirm(b.id, c.route.channel, now, effects);
  if (r == PaymentResult::ok) note_decision(*effects, calls_before, b.id, c.route);
  return payment_done(b.id, r);
}

Reply PaymentsCore::payment_done(const std::string& id, PaymentResult r) const {
  if (r != PaymentResult::ok) return payment_error(r, id);
  Reply reply = Reply::success(render(id));
  reply.settled = settled(id);
  return reply;
}

Reply PaymentsCore::create_refund(const cmd::CreateRefund& c, Timestamp now, Effects* effects) {
  if (payments_.find(c.payment_id) == nullptr) {
    return error_reply(Error::payment_not_found, "no payment with id " + c.payment_id, "payment");
  }
  if (flows_.find(c.id) != nullptr || cold_exists(c.id, payment_history::Kind::flow)) {
    return payment_error(PaymentResult::exists, c.id);
  }
  const PaymentMachine::IdTaken taken = [this](std::string_view id) {
    return cold_exists(id, payment_history::Kind::payment);
  };
  const PaymentResult r = payments_.refund(c.payment_id, c.id, c.amount, now, effects, &taken);
  if (r == PaymentResult::invalid_state || r == PaymentResult::wrong_source) {
    return error_reply(Error::payment_unexpected_state, "only a succeeded payment is refunded");
  }
  return payment_done(c.id, r);
}

Reply PaymentsCore::store_payment_method(const cmd::StorePaymentMethod& c) {
  const vault::PaymentMethod& m = c.method;
  const bool owner_known = m.owner_kind == vault::OwnerKind::merchant
                               ? merchants_.contains(m.owner_id)
                               : customers_.contains(m.owner_id);
  if (!owner_known) {
    return m.owner_kind == vault::OwnerKind::merchant
               ? error_reply(Error::merchant_not_found, "no merchant with id " + m.owner_id,
                             "merchant")
               : error_reply(Error::customer_not_found, "no customer with id " + m.owner_id,
                             "customer");
  }
  if (m.owner_kind == vault::OwnerKind::customer) {
    if (std::optional<Reply> refused = refused_erased(m.owner_id, "customer")) return *refused;
  }
  switch (payment_methods_.store(m)) {
    case vault::StoreResult::stored:
      return Reply::success(render_payment_method(m));
    case vault::StoreResult::exists:
      return error_reply(Error::resource_exists, "a payment method with id " + m.id + " exists");
    case vault::StoreResult::invalid:
      break;
  }
  return error_reply(Error::parameter_invalid, "the payment method is not well formed");
}

Reply PaymentsCore::detach_payment_method(const cmd::DetachPaymentMethod& c, Timestamp now) {
  const auto m = payment_methods_.find(c.id);
  const bool visible =
      m != nullptr &&
      (c.owner_id.empty() || (m->owner_kind == c.owner_kind && m->owner_id == c.owner_id));
  if (!visible) {
    return error_reply(Error::payment_method_not_found, "no payment method with id " + c.id);
  }
  Reply r = Reply::success(render_payment_method(*m, now));
  const bool erased = payment_methods_.erase(c.id);
  KEEL_ASSERT(erased);
  KEEL_ASSERT(payment_methods_.find(c.id) == nullptr);
  return r;
}

std::optional<Reply> PaymentsCore::payment_method_refused(std::string_view instrument,
                                                          std::string_view merchant_id,
                                                          std::string_view customer_id) const {
  if (!instrument.starts_with(vault::kPaymentMethodPrefix)) return std::nullopt;
  const auto m = payment_methods_.find(instrument);
  const bool owned = m != nullptr && !m->owner_id.empty() &&
                     (m->owner_kind == vault::OwnerKind::merchant ? m->owner_id == merchant_id
                                                                  : m->owner_id == customer_id);
  if (owned) return std::nullopt;
  return error_reply(Error::payment_method_not_found,
                     "no payment method with id " + std::string(instrument), "payment_method");
}

Reply PaymentsCore::create_flow(const std::string& id, const std::string& customer,
                                const std::string& to_customer,
                                const std::function<WalletFlowResult()>& create) {
  if (!customers_.contains(customer)) {
    return error_reply(Error::customer_not_found, "no customer with id " + customer, "customer");
  }
  if (!to_customer.empty() && !customers_.contains(to_customer)) {
    return error_reply(Error::customer_not_found, "no customer with id " + to_customer, "to");
  }
  if (payments_.find(id) != nullptr || payments_.find_refund(id) != nullptr ||
      cold_exists(id, payment_history::Kind::payment)) {
    return flow_error(WalletFlowResult::exists, id);
  }
  const WalletFlowResult r = create();
  if (r != WalletFlowResult::ok && r != WalletFlowResult::insufficient_funds) {
    return flow_error(r, id);
  }
  Reply reply = Reply::success(render(id));
  reply.settled = settled(id);
  return reply;
}

Reply PaymentsCore::outbox_attempt(const cmd::OutboxAttempt& c, Timestamp now, ApplyOutcome* out) {
  const AttemptRecordResult r = outbox_.record_attempt(c.event_id, c.delivered, now);
  if (r == AttemptRecordResult::not_found || r == AttemptRecordResult::not_pending) {
    return error_reply(Error::stale_result, "the event has no pending delivery");
  }
  out->changed = true;
  return {};
}

int64_t PaymentsCore::available(std::string_view customer, Currency currency,
                                const ledger::Ledger& ledger) const {
  const auto a = ledger.find_account(wallet_account(customer, currency));
  if (!a) return 0;
  return wallet_flow_available_minor(a->balances).value_or(0);
}

void PaymentsCore::attempt_result(const Command& c, const cmd::AttemptResult& b, Timestamp now,
                                  Effects* effects, ApplyOutcome* out) {
  const Report report{result_cause(ResultSource::psp_response), std::nullopt,
                      c.routed ? &c.route : nullptr};
  if (!open_attempts_.contains(b.attempt_id) ||
      settle(b.attempt_id, b.result, report, now, effects, out) == Settled::stale) {
    // A late or duplicate answer: nothing changes, nothing is journaled.
    out->reply = error_reply(Error::stale_result, "the attempt is not open; nothing changes");
  }
}

namespace {

// What a PSP's report of an operation means for an attempt of `kind` that refers to it; nullopt
// while the operation has no outcome yet for that attempt.
std::optional<AttemptResult> result_for(AttemptKind kind, const cmd::OperationStatus& c) {
  using O = OperationState;
  AttemptResult r;
  r.psp_reference = c.result.psp_reference;
  r.error_code = c.result.error_code;
  r.fee = c.result.fee;
  const O s = c.state;
  if (s == O::not_found) {
    r.status = AttemptStatus::retryable;  // never received: nothing happened
    r.error_code = "not_received";
    return r;
  }
  if (s == O::pending) return std::nullopt;
  switch (kind) {
    case AttemptKind::authorization:
      if (s == O::authorized || s == O::captured || s == O::voided) {
        r.status = AttemptStatus::approved;
        r.captured = s == O::captured;
      } else if (s == O::declined_hard || s == O::declined_soft) {
        r.status =
            s == O::declined_hard ? AttemptStatus::declined_hard : AttemptStatus::declined_soft;
      } else {
        return std::nullopt;
      }
      return r;
    case AttemptKind::capture:  // the authorization's state tells whether the step happened
    case AttemptKind::void_authorization: {
      const O done = kind == AttemptKind::capture ? O::captured : O::voided;
      r.status = s == done            ? AttemptStatus::approved
                 : s == O::authorized ? AttemptStatus::retryable
                                      : AttemptStatus::declined_hard;
      return r;
    }
    case AttemptKind::refund:
      if (s == O::refunded)
        r.status = AttemptStatus::approved;
      else if (s == O::declined_hard || s == O::declined_soft)
        r.status = AttemptStatus::declined_hard;
      else
        return std::nullopt;
      return r;
    case AttemptKind::payout:
    case AttemptKind::topup:
      if (s == O::paid)
        r.status = AttemptStatus::approved;
      else if (s == O::failed || s == O::declined_hard || s == O::declined_soft)
        r.status = AttemptStatus::declined_hard;
      else
        return std::nullopt;
      return r;
  }
  return std::nullopt;
}

// Whether a PSP's report `s` on the operation of a settled attempt of `kind` agrees with how
// keel settled it (`approved`) and, for an authorization, with the payment `p` as it stands.
// Older news (pending, authorized after a capture) agrees; money the PSP moved that keel did
// not book, or booked money the PSP says it did not move, does not.
bool report_agrees(AttemptKind kind, bool approved, OperationState s, const Payment* p) {
  using O = OperationState;
  if (s == O::pending) return true;
  switch (kind) {
    case AttemptKind::authorization: {
      const bool moved =
          s == O::authorized || s == O::captured || s == O::voided || s == O::refunded;
      if (!approved) return !moved;
      if (!moved || p == nullptr) return moved;
      const PaymentStatus st = p->status;
      if (s == O::captured || s == O::refunded) {
        return st == PaymentStatus::succeeded || st == PaymentStatus::processing;
      }
      if (s == O::voided) return st == PaymentStatus::canceled || st == PaymentStatus::processing;
      return true;  // authorized: older news of any later step
    }
    case AttemptKind::refund:
    case AttemptKind::payout:
    case AttemptKind::topup: {
      const O done = kind == AttemptKind::refund ? O::refunded : O::paid;
      return approved ? s == done : s != done;
    }
    case AttemptKind::capture:  // reported under their authorization's reference, never their own
    case AttemptKind::void_authorization:
      return true;
  }
  return true;
}

bool attempt_unknown(const Payment* p, std::string_view attempt_id) {
  if (p == nullptr) return false;
  for (const Attempt& a : p->attempts) {
    if (a.id == attempt_id) return a.status == AttemptStatus::unknown;
  }
  return false;
}

}  // namespace

void PaymentsCore::operation_status(const Command& command, const cmd::OperationStatus& c,
                                    Timestamp now, Effects* effects, ApplyOutcome* out) {
  const Report report{result_cause(c.source, c.webhook_event), c.state,
                      command.routed ? &command.route : nullptr};
  // Every open attempt of this channel that refers to the operation (an authorization may have
  // its own attempt and a capture or void attempt open at once).
  std::vector<std::pair<std::string, AttemptResult>> settle_now;
  std::vector<std::string> not_applicable;
  bool matched = false;  // some open attempt refers to the operation
  for (const std::string& id : attempts_on(c.reference)) {
    const auto it = open_attempts_.find(id);
    KEEL_ASSERT(it != open_attempts_.end());
    const OpenAttempt& open = it->second;
    if (open.channel != c.channel) continue;
    matched = true;
    // "Still authorized" says a capture or void did not happen only as the answer to the
    // resolver's own status query, asked after that call ended unknown. A webhook (late, out of
    // order) or a query sent before the call (resolving the authorization itself) may be older
    // than the capture or void: it must not settle it, or keel would forget a capture the PSP
    // made.
    const bool on_authorization =
        open.kind == AttemptKind::capture || open.kind == AttemptKind::void_authorization;
    if (on_authorization && c.state == OperationState::authorized &&
        !(c.source == ResultSource::status_query &&
          attempt_unknown(payments_.find(open.owner), id))) {
      continue;
    }
    if (c.state == OperationState::pending) continue;  // no outcome yet: the resolver asks on
    if (auto r = result_for(open.kind, c)) {
      settle_now.emplace_back(id, std::move(*r));
    } else {
      not_applicable.push_back(id);  // a state this kind of operation never reaches
    }
  }
  if (!matched) return check_settled(c, report, now, out);
  bool any = false;
  for (const auto& [id, r] : settle_now) {
    any = settle(id, r, report, now, effects, out) != Settled::stale || any;
  }
  for (const std::string& id : not_applicable) {
    AttemptResult reported = c.result;
    reported.status = AttemptStatus::unknown;
    reject_result(id, "state_not_applicable", report, reported, now, out);
    any = true;
  }
  if (!any) out->reply = error_reply(Error::stale_result, "no open attempt settles; no change");
}

std::optional<Reply> PaymentsCore::refused_by_controls(const Command& c) const {
  std::optional<FlowSwitch> flow;  // the flow a new request starts, if any
  switch (c.kind()) {
    case CommandKind::create_customer:
    case CommandKind::create_merchant:
    case CommandKind::store_payment_method:
    case CommandKind::detach_payment_method:
    case CommandKind::erase_customer:
    case CommandKind::capture_payment:  // finishes a payment already authorized
    case CommandKind::cancel_payment:
      break;
    case CommandKind::create_payment:
      flow = c.as<cmd::CreatePayment>()->source_wallet ? FlowSwitch::wallet_payments
                                                       : FlowSwitch::card_payments;
      break;
    case CommandKind::confirm_payment:
      if (const Payment* p = payments_.find(c.as<cmd::ConfirmPayment>()->id)) {
        flow = p->source == PaymentSource::wallet ? FlowSwitch::wallet_payments
                                                  : FlowSwitch::card_payments;
      }
      break;
    case CommandKind::create_refund:
      flow = FlowSwitch::refunds;
      break;
    case CommandKind::create_topup:
      flow = FlowSwitch::topups;
      break;
    case CommandKind::create_payout:
      flow = FlowSwitch::payouts;
      break;
    case CommandKind::create_wallet_transfer:
      flow = FlowSwitch::wallet_transfers;
      break;
    default:
      // PSP results, resolution, deadlines, merchant events, configuration and the controls
      // themselves finish work already started: never refused, or read-only mode would itself
      // strand payments.
      return std::nullopt;
  }
  if (read_only_) {
    return error_reply(Error::read_only,
                       "keel is in read-only mode: no new writes (reads and work already started "
                       "go on); retry later");
  }
  // New payments and refunds make merchant events; the last part of the outbox is kept for
  // the events of objects already started (their later steps and PSP results are never
  // refused).
  if ((c.kind() == CommandKind::create_payment || c.kind() == CommandKind::create_refund) &&
      !outbox_admits()) {
    return error_reply(Error::over_capacity,
                       "merchant events awaiting delivery fill " +
                           std::to_string(outbox_.in_memory()) + " of the outbox's " +
                           std::to_string(outbox_.options().events_max) +
                           " places: no new payments or refunds until it drains; retry later");
  }
  if (flow && (flows_disabled_ & (1U << static_cast<uint8_t>(*flow))) != 0) {
    return error_reply(Error::flow_disabled, "new " + std::string(flow_switch_name(*flow)) +
                                                 " are switched off by an operator; retry later");
  }
  return std::nullopt;
}

Reply PaymentsCore::runtime_control(const RuntimeControl& k, Timestamp now) {
  using K = ControlKind;
  if (k.reason.size() > kControlReasonLengthMax) {
    return error_reply(Error::parameter_invalid, "reason: at most 200 bytes", "reason");
  }
  switch (k.kind) {
    case K::channel_pause:
    case K::channel_resume:
    case K::channel_drain:
    case K::channel_canary:
    case K::canary_rollback: {
      if (channels_.find(k.target) == nullptr) {
        return error_reply(Error::resource_missing, "no channel " + k.target, "id");
      }
      routing::ChannelControl ctl = channels_.control(k.target);
      if (k.kind == K::channel_pause) ctl.paused = true;
      if (k.kind == K::channel_resume) ctl.paused = ctl.draining = false;
      if (k.kind == K::channel_drain) ctl.draining = true;
      if (k.kind == K::channel_canary) {
        if (k.share_pct > 100) {
          return error_reply(Error::parameter_invalid, "share must be from 0 to 100", "share");
        }
        if (k.share_pct == 0) {
          ctl.canary_to.clear();
          ctl.canary_share_pct = 0;
        } else {
          const routing::ChannelDef* canary = channels_.find(k.canary);
          if (canary == nullptr) {
            return error_reply(Error::resource_missing, "no channel " + k.canary, "to");
          }
          if (canary->canary_of != k.target) {
            return error_reply(
                Error::parameter_invalid,
                k.canary + " is not a canary of " + k.target + " (its canary_of in keeld.toml)",
                "to");
          }
          ctl.canary_to = k.canary;
          ctl.canary_share_pct = k.share_pct;
        }
      }
      if (k.kind == K::canary_rollback) {
        if (ctl.canary_to != k.canary || ctl.canary_share_pct == 0) {
          return error_reply(Error::stale_control, "that canary is not in force");
        }
        ctl.canary_to.clear();
        ctl.canary_share_pct = 0;
      }
      channels_.set_control(k.target, std::move(ctl));
      break;
    }
    case K::read_only_on:
    case K::read_only_off:
      read_only_ = k.kind == K::read_only_on;
      break;
    case K::flow_disable:
    case K::flow_enable: {
      const std::optional<FlowSwitch> f = flow_switch_from_name(k.target);
      if (!f) {
        return error_reply(Error::parameter_invalid,
                           "no flow " + k.target +
                               "; flows are card_payments, wallet_payments, topups, payouts, "
                               "refunds, wallet_transfers",
                           "flow");
      }
      const auto bit = static_cast<uint8_t>(1U << static_cast<uint8_t>(*f));
      flows_disabled_ = k.kind == K::flow_disable ? (flows_disabled_ | bit)
                                                  : static_cast<uint8_t>(flows_disabled_ & ~bit);
      break;
    }
  }
  control_log_.push_back({now, k});
  if (control_log_.size() > kControlLogMax) control_log_.pop_front();
  return Reply::success(render_controls());
}

std::string PaymentsCore::render_controls() const {
  JsonWriter w;
  w.begin_object();
  w.field("object", "controls");
  w.field("read_only", read_only_);
  w.key("flows_disabled");
  w.begin_array();
  for (uint8_t i = 0; i <= static_cast<uint8_t>(kFlowSwitchLast); ++i) {
    if ((flows_disabled_ & (1U << i)) != 0) w.string(flow_switch_name(static_cast<FlowSwitch>(i)));
  }
  w.end_array();
  w.key("channels");
  w.begin_array();
  for (const routing::ChannelDef& d : channels_.channels()) {
    const routing::ChannelControl ctl = channels_.control(d.name);
    w.begin_object();
    w.field("id", d.name);
    w.field("paused", ctl.paused);
    w.field("draining", ctl.draining);
    w.key("canary");
    if (ctl.canary_share_pct == 0) {
      w.null();
    } else {
      w.begin_object();
      w.field("to", ctl.canary_to);
      w.field("share", static_cast<int64_t>(ctl.canary_share_pct));
      w.end_object();
    }
    w.end_object();
  }
  w.end_array();
  w.key("changes");  // newest first
  w.begin_array();
  for (auto it = control_log_.rbegin(); it != control_log_.rend(); ++it) {
    w.begin_object();
    w.field("at", format_rfc3339(it->at));
    w.field("kind", control_kind_name(it->control.kind));
    w.field_or_null("target", it->control.target);
    w.field_or_null("canary", it->control.canary);
    w.field("share", static_cast<int64_t>(it->control.share_pct));
    w.field_or_null("reason", it->control.reason);
    w.end_object();
  }
  w.end_array();
  w.end_object();
  return w.take();
}

void PaymentsCore::encode_controls(std::string* out) const {
  ByteWriter w(out);
  write_bool(w, read_only_);
  w.u8(flows_disabled_);
  w.u32(static_cast<uint32_t>(control_log_.size()));
  for (const ControlRecord& r : control_log_) {
    w.i64(r.at);
    w.u8(static_cast<uint8_t>(r.control.kind));
    w.str16(r.control.target);
    w.str16(r.control.canary);
    w.u32(r.control.share_pct);
    w.str16(r.control.reason);
  }
}

std::optional<RouteAsk> PaymentsCore::route_request(const Command& c) const {
  if (const auto* b = c.as<cmd::ConfirmPayment>()) {
    const Payment* p = payments_.find(b->id);
    if (p == nullptr || p->source != PaymentSource::card ||
        p->status != PaymentStatus::requires_confirmation) {
      return std::nullopt;
    }
    return RouteAsk{routing::Flow::card_payment, p->currency, p->amount, b->channel, {}};
  }
  // A top-up or payout: its one PSP call goes where routing says (it never fails over: a
  // wallet flow's attempt that fails ends the flow). Requests the core refuses anyway (bad
  // amount or currency, unknown customer, an id in use) ask nothing, so they answer as before.
  const auto flow_ask = [&](const cmd::CreateFlow& b,
                            routing::Flow flow) -> std::optional<RouteAsk> {
    if (b.amount <= 0 || !b.currency.valid() || !customers_.contains(b.customer_id) ||
        flows_.find(b.id) != nullptr || payments_.find(b.id) != nullptr ||
        payments_.find_refund(b.id) != nullptr || cold_exists(b.id)) {
      return std::nullopt;
    }
    return RouteAsk{flow, b.currency, b.amount, b.channel, {}};
  };
  if (const auto* b = c.as<cmd::CreateTopup>()) return flow_ask(*b, routing::Flow::topup);
  if (const auto* b = c.as<cmd::CreatePayout>()) return flow_ask(*b, routing::Flow::payout);
  if (const auto* b = c.as<cmd::AttemptResult>()) {
    if (b->result.status != AttemptStatus::retryable &&
        b->result.status != AttemptStatus::declined_soft) {
      return std::nullopt;
    }
    return failover_ask(b->attempt_id);
  }
  if (const auto* b = c.as<cmd::OperationStatus>()) {
    if (b->state != OperationState::not_found && b->state != OperationState::declined_soft) {
      return std::nullopt;
    }
    for (const std::string& id : attempts_on(b->reference)) {
      const auto open = open_attempts_.find(id);
      KEEL_ASSERT(open != open_attempts_.end());
      if (open->second.channel == b->channel && open->second.kind == AttemptKind::authorization) {
        return failover_ask(id);
      }
    }
  }
  return std::nullopt;
}

std::optional<RouteAsk> PaymentsCore::failover_ask(std::string_view attempt_id) const {
  const auto open = open_attempts_.find(attempt_id);
  if (open == open_attempts_.end() || open->second.wallet_flow ||
      open->second.kind != AttemptKind::authorization) {
    return std::nullopt;
  }
  const Payment* p = payments_.find(open->second.owner);
  KEEL_ASSERT(p != nullptr);
  if (p->review != ReviewReason::none) return std::nullopt;  // it fails: nobody owns a new try
  RouteAsk ask{routing::Flow::card_payment, p->currency, p->amount, "", {}};
  for (const Attempt& a : p->attempts) {
    if (a.kind != AttemptKind::authorization) continue;
    if (ask.tried.empty()) {
      const auto first = decisions_.find(a.id);
      if (first != decisions_.end() && first->second.kind == routing::DecisionKind::pinned) {
        ask.pinned = a.channel;
      }
    }
    ask.tried.push_back(a.channel);
  }
  return ask;
}

// No channel can take the payment: 503 while some channel could later (paused, breaker open,
// full, over budget), 422 when none ever could (currency, amount, flow, unknown channel).
// Nothing changes; the payment still awaits confirmation.
Reply PaymentsCore::no_channel(const routing::Decision& d, std::string_view pinned) {
  std::string why;
  bool transient = false;
  for (const routing::Rejected& r : d.rejected) {
    transient = transient || routing::is_transient(r.reason);
    why += (why.empty() ? ": " : ", ") + r.channel + " " +
           std::string(routing::rejection_name(r.reason));
  }
  if (transient) {
    return error_reply(Error::no_channel_available,
                       "no channel can take this payment now" + why + "; retry later",
                       pinned.empty() ? "" : "channel");
  }
  return error_reply(Error::channel_ineligible, "no channel takes this payment" + why,
                     pinned.empty() ? "" : "channel");
}

void PaymentsCore::note_decision(const Effects& effects, size_t calls_before,
                                 std::string_view payment_id, const routing::Decision& d) {
  for (size_t i = calls_before; i < effects.calls.size(); ++i) {
    const PspCall& call = effects.calls[i];
    if (call.kind == AttemptKind::authorization && call.payment_id == payment_id) {
      KEEL_ASSERT(call.channel == d.channel);
      decisions_[call.attempt_id] = d;
    }
  }
}

Reply PaymentsCore::set_channels(const cmd::SetChannels& c) {
  if (std::string problem = routing::channels_problem(c.channels); !problem.empty()) {
    return error_reply(Error::parameter_invalid, problem, "channels");
  }
  if (c.channels == channels_.channels()) {
    return error_reply(Error::unchanged, "the channels are already these");
  }
  channels_.set_channels(c.channels);
  return Reply::success("");
}

Status PaymentsCore::check_decisions() const {
  for (const auto& [attempt, d] : decisions_) {
    const Attempt* a = payments_.find_attempt(attempt);
    if (a == nullptr || a->kind != AttemptKind::authorization || a->channel != d.channel) {
      return Status::error("payments: a routing decision without its attempt");
    }
  }
  return Status::ok();
}

void PaymentsCore::check_settled(const cmd::OperationStatus& c, const Report& report, Timestamp now,
                                 ApplyOutcome* out) {
  out->reply = error_reply(Error::stale_result, "no open attempt settles; no change");
  const Attempt* a = attempt_of(c.reference);
  if (a == nullptr || a->channel != c.channel || a->status == AttemptStatus::pending ||
      a->status == AttemptStatus::unknown) {
    return;  // not an operation of this channel's that keel settled
  }
  const Payment* p =
      payments_.find(payments_.attempt_owner(c.reference));  // null for refunds, flows
  if (report_agrees(a->kind, a->status == AttemptStatus::approved, c.state, p)) return;
  reject_result(c.reference, "contradicts_settled_attempt", report, c.result, now, out);
}

const Attempt* PaymentsCore::attempt_of(std::string_view attempt_id) const {
  if (const WalletFlow* f = flows_.find_by_attempt(attempt_id)) {
    for (const Attempt& a : f->attempts) {
      if (a.id == attempt_id) return &a;
    }
  }
  return payments_.find_attempt(attempt_id);
}

std::string PaymentsCore::attempt_owner(std::string_view attempt_id) const {
  if (const WalletFlow* f = flows_.find_by_attempt(attempt_id)) return f->id;
  return payments_.attempt_owner(attempt_id);
}

std::vector<std::string> PaymentsCore::attempts_on(std::string_view reference) const {
  std::vector<std::string> ids;
  const std::string key(reference);
  for (auto it = by_reference_.lower_bound({key, ""});
       it != by_reference_.end() && it->first == key; ++it) {
    ids.push_back(it->second);
  }
  return ids;
}

PaymentsCore::Settled PaymentsCore::settle(const std::string& attempt_id,
                                           const AttemptResult& result, const Report& report,
                                           Timestamp now, Effects* effects, ApplyOutcome* out) {
  const auto open = open_attempts_.find(attempt_id);
  KEEL_ASSERT(open != open_attempts_.end());
  bool invalid = false;
  bool applied = false;
  if (open->second.wallet_flow) {
    const WalletFlowResult r = flows_.apply_result(attempt_id, result, report.cause, now, effects);
    invalid = r == WalletFlowResult::result_invalid || r == WalletFlowResult::cause_invalid;
    applied = r == WalletFlowResult::ok;
  } else {
    // Routing's journaled word on what follows this authorization, if it was asked.
    std::optional<NextTry> next;
    if (report.route != nullptr && open->second.kind == AttemptKind::authorization) {
      next = NextTry{report.route->channel, report.route->delay_ms};
    }
    const size_t calls_before = effects->calls.size();
    const std::string owner = open->second.owner;
    const PaymentResult r = payments_.apply_result(attempt_id, result, report.cause, now, effects,
                                                   next ? &*next : nullptr);
    invalid = r == PaymentResult::result_invalid;
    applied = r == PaymentResult::ok;
    if (applied && next) note_decision(*effects, calls_before, owner, *report.route);
  }
  if (invalid) {
    // Never dropped: the attempt stays open, its owner goes to review with the PSP's words.
    const Attempt* a = attempt_of(attempt_id);
    KEEL_ASSERT(a != nullptr);
    std::string_view problem = result_problem(result, a->amount);
    reject_result(attempt_id, problem.empty() ? "cause_invalid" : problem, report, result, now,
                  out);
    return Settled::rejected;
  }
  if (!applied) return Settled::stale;
  out->changed = true;
  if (result.status == AttemptStatus::unknown) {
    out->resolve.push_back(
        {attempt_id, open->second.channel, open->second.reference, trace_of(open->second.owner)});
  } else {
    by_reference_.erase({open->second.reference, attempt_id});
    open_attempts_.erase(open);
  }
  return Settled::applied;
}

namespace {

std::string truncated(std::string_view s, size_t max) { return std::string(s.substr(0, max)); }

// The review item's evidence of a rejected PSP result: what keel had, what the PSP said.
std::string rejection_evidence(const Attempt& a, std::string_view problem, std::string_view cause,
                               std::optional<OperationState> state, const AttemptResult& reported) {
  constexpr size_t kTextMax = 256;  // escaped, the item stays within kEvidenceBytesMax
  JsonWriter w;
  w.begin_object();
  w.field("attempt", a.id);
  w.field("attempt_status", attempt_status_name(a.status));
  w.field("amount", a.amount);
  w.field("problem", problem);
  w.field("source", truncated(cause, kTextMax));
  w.key("reported");
  w.begin_object();
  if (state) {
    w.field("operation_status", operation_state_name(*state));
  } else {
    w.field("status", attempt_status_name(reported.status));
  }
  w.field("fee", reported.fee);
  w.field("psp_reference", truncated(reported.psp_reference, kTextMax));
  w.field("error_code", truncated(reported.error_code, kTextMax));
  w.end_object();
  w.end_object();
  return w.take();
}

}  // namespace

void PaymentsCore::reject_result(const std::string& attempt_id, std::string_view problem,
                                 const Report& report, const AttemptResult& reported, Timestamp now,
                                 ApplyOutcome* out) {
  out->rejected.push_back({attempt_id, std::string(problem)});
  out->reply = error_reply(Error::psp_result_rejected,
                           "the PSP's result for " + attempt_id + " cannot be taken (" +
                               std::string(problem) + "); its object is flagged for review");
  const Attempt* a = attempt_of(attempt_id);
  KEEL_ASSERT(a != nullptr);
  const std::string evidence =
      rejection_evidence(*a, problem, report.cause, report.state, reported);
  const std::string cause = "psp_result_rejected: " + std::string(problem);
  const bool flow = flows_.find_by_attempt(attempt_id) != nullptr;
  const std::string owner = attempt_owner(attempt_id);
  const bool flagged =
      flow ? flows_.flag_result_rejected(attempt_id, cause, now) == WalletFlowResult::ok
           : payments_.flag_result_rejected(attempt_id, cause, now) == PaymentResult::ok;
  if (!flagged) return;  // flagged for this already: the first evidence stands
  out->changed = true;
  const review::ReviewResult opened = reviews_.open(
      review_view(owner).type, owner, ReviewReason::psp_result_rejected, evidence, now);
  KEEL_ASSERT(opened == review::ReviewResult::ok || opened == review::ReviewResult::already_open);
}

PaymentsCore::ReviewView PaymentsCore::review_view(std::string_view object_id) const {
  if (const Payment* p = payments_.find(object_id)) {
    return {"payment", p->review, std::string(status_name(p->status)),
            p->attempts.empty() ? std::string() : p->attempts.back().id};
  }
  if (const Refund* r = payments_.find_refund(object_id)) {
    return {"refund", r->review, std::string(refund_status_name(r->status)),
            r->attempts.empty() ? std::string() : r->attempts.back().id};
  }
  if (const WalletFlow* f = flows_.find(object_id)) {
    return {wallet_flow_kind_name(f->kind), f->review,
            std::string(wallet_flow_status_name(f->status)),
            f->attempts.empty() ? std::string() : f->attempts.back().id};
  }
  return {};
}

void PaymentsCore::open_deadline_review(std::string_view object_id, Timestamp at) {
  const ReviewView v = review_view(object_id);
  if (v.reason != ReviewReason::deadline_unknown) return;
  JsonWriter w;
  w.begin_object();
  w.field("attempt", v.attempt);
  w.end_object();
  const review::ReviewResult opened =
      reviews_.open(v.type, object_id, ReviewReason::deadline_unknown, w.take(), at);
  KEEL_ASSERT(opened == review::ReviewResult::ok || opened == review::ReviewResult::already_open);
}

void PaymentsCore::sync_review(std::string_view object_id, std::string_view resolved_by,
                               Timestamp now) {
  if (!reviews_.has_open(object_id)) return;  // the common case: nothing to resolve
  const ReviewView v = review_view(object_id);
  if (v.type.empty() || v.reason != ReviewReason::none) return;
  const review::ReviewResult resolved =
      reviews_.resolve(object_id, resolved_by, "status: " + v.status, now);
  KEEL_ASSERT(resolved == review::ReviewResult::ok);
}

void PaymentsCore::carry_out(Effects& effects, bool wallet_flow, ledger::Ledger& ledger,
                             Timestamp* clock, ApplyOutcome* out) {
  if (!effects.postings.empty()) {
    ensure_accounts(effects.postings, ledger, clock, out);
    const auto results = ledger.create_transfers(effects.postings, *clock + 1);
    *clock += static_cast<Timestamp>(effects.postings.size());
    out->postings += effects.postings.size();
    for (const auto r : results) {
      if (r != ledger::CreateTransferResult::ok) {
        ++out->postings_rejected;
        break;
      }
    }
  }
  for (PspCall& call : effects.calls) {
    const bool on_authorization =
        call.kind == AttemptKind::capture || call.kind == AttemptKind::void_authorization;
    OpenAttempt open{
        call.channel, call.kind, on_authorization ? call.authorization_reference : call.attempt_id,
        call.kind == AttemptKind::refund ? call.refund_id : call.payment_id, wallet_flow};
    by_reference_.insert({open.reference, call.attempt_id});
    call.traceparent = trace_of(open.owner);
    if (call.kind == AttemptKind::authorization &&
        call.instrument.starts_with(vault::kPaymentMethodPrefix)) {
      // Null when the card was detached after its payment was created: the dispatcher then
      // declines the attempt (card_unavailable) without calling the PSP.
      call.card = payment_methods_.find(call.instrument);
    }
    const bool fresh = open_attempts_.emplace(call.attempt_id, std::move(open)).second;
    KEEL_ASSERT(fresh);  // attempt ids are never reused
    out->calls.push_back(std::move(call));
  }
}

void PaymentsCore::ensure_accounts(const std::vector<ledger::TransferEvent>& chain,
                                   ledger::Ledger& ledger, Timestamp* clock, ApplyOutcome* out) {
  std::vector<ledger::AccountEvent> missing;
  for (const ledger::TransferEvent& t : chain) {
    for (const std::string* id : {&t.debit_account_id, &t.credit_account_id}) {
      if (id->empty() || ledger.find_account(*id)) continue;
      bool listed = false;
      for (const auto& m : missing) listed = listed || m.id == *id;
      if (listed) continue;
      ledger::AccountEvent a;
      a.id = *id;
      a.currency = t.currency;
      if (id->starts_with("wallet:")) {
        a.flags = ledger::account_flags::kDebitsMustNotExceedCredits;
        note_wallet_currency(*id, t.currency);
      }
      missing.push_back(std::move(a));
    }
  }
  if (missing.empty()) return;
  const auto results = ledger.create_accounts(missing, *clock + 1);
  *clock += static_cast<Timestamp>(missing.size());
  for (const auto r : results) KEEL_ASSERT(r == ledger::CreateAccountResult::ok);
  out->postings += missing.size();
}

// "wallet:{customer}:{CUR}": the customer's wallet now has that currency.
void PaymentsCore::note_wallet_currency(std::string_view account_id, Currency currency) {
  const std::string_view rest = account_id.substr(std::string_view("wallet:").size());
  const std::string_view customer = rest.substr(0, rest.rfind(':'));
  const auto c = customers_.find(customer);
  KEEL_ASSERT(c != customers_.end());  // flows check the customer before they post
  c->second.currencies.insert(currency.index());
}

// Final: no longer waiting on a PSP. Review is not an outcome (a late answer may still come).
bool PaymentsCore::settled(std::string_view object_id) const {
  if (const Payment* p = payments_.find(object_id)) return p->status != PaymentStatus::processing;
  if (const Refund* r = payments_.find_refund(object_id)) return r->status != RefundStatus::pending;
  if (const WalletFlow* f = flows_.find(object_id)) {
    return f->status != WalletFlowStatus::processing;
  }
  return true;
}

std::string PaymentsCore::event_status(std::string_view object_id) const {
  if (const Payment* p = payments_.find(object_id)) {
    return p->review != ReviewReason::none ? "requires_review"
                                           : std::string(status_name(p->status));
  }
  if (const Refund* r = payments_.find_refund(object_id)) {
    return r->review != ReviewReason::none ? "requires_review"
                                           : std::string(refund_status_name(r->status));
  }
  return {};
}

// Merchant events: "payment.succeeded", "refund.failed", "payment.requires_review", ... for
// every change of what a merchant's payment or refund shows.
void PaymentsCore::note_change(std::string_view object_id, const std::string& before, Timestamp now,
                               ApplyOutcome* out) {
  const std::string after = event_status(object_id);
  if (after.empty() || after == before) return;
  const Payment* p = payments_.find(object_id);
  const Refund* r = p == nullptr ? payments_.find_refund(object_id) : nullptr;
  if (r != nullptr) p = payments_.find(r->payment_id);
  KEEL_ASSERT(p != nullptr);
  Event e;
  std::string seq = std::to_string(next_event_seq_++);
  e.id = "evt_" + std::string(16 - std::min<size_t>(16, seq.size()), '0') + seq;
  e.type = std::string(r != nullptr ? "refund." : "payment.") + after;
  e.merchant_id = p->merchant_id;
  e.object_id = std::string(object_id);
  e.created_at = now;
  e.data = render(object_id);
  // Admission (outbox_admits) keeps room for the objects already started; an event that still
  // finds no room is counted and logged by the engine, never lost without a word.
  if (const OutboxResult r = outbox_.add(std::move(e)); r != OutboxResult::ok) {
    out->events_dropped.push_back({std::string(object_id), std::string(outbox_result_name(r))});
  }
  for (std::string& merchant : outbox_.take_backlogs_started()) {
    out->backlogs_started.push_back(std::move(merchant));
  }
}

bool PaymentsCore::outbox_admits() const {
  const auto share = [](uint64_t limit) {  // kOutboxAdmissionPct % of limit, without overflow
    return limit / 100 * kOutboxAdmissionPct + limit % 100 * kOutboxAdmissionPct / 100;
  };
  const OutboxOptions& o = outbox_.options();
  return outbox_.in_memory() < share(o.events_max) &&
         outbox_.data_bytes() < share(o.event_data_bytes_max);
}

void PaymentsCore::complete_waiters(Timestamp now, ApplyOutcome* out) {
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (!settled(it->first)) {
      ++it;
      continue;
    }
    const std::string body = render(it->first);
    for (const KeyRef& k : it->second) {
      waiting_object_.erase(k);
      const auto r = idempotency_.complete(k.first, k.second, {body}, now);
      KEEL_ASSERT(r == CompleteResult::ok || r == CompleteResult::body_too_large);
      out->completed.push_back({k.first, k.second, Reply::success(body)});
    }
    out->changed = true;
    it = waiting_.erase(it);
  }
}

ApplyOutcome PaymentsCore::tick(Timestamp now, ledger::Ledger& ledger, Timestamp* clock) {
  ApplyOutcome out;
  Effects effects;
  const std::vector<std::string> changed = payments_.tick(now, &effects);
  if (!changed.empty()) out.changed = true;
  carry_out(effects, false, ledger, clock, &out);
  Effects flow_effects;
  const std::vector<std::string> flows_changed = flows_.tick(now, &flow_effects);
  if (!flows_changed.empty()) out.changed = true;
  carry_out(flow_effects, true, ledger, clock, &out);
  if (idempotency_.expire(now) > 0) out.changed = true;
  if (outbox_.expire(now) > 0) out.changed = true;
  for (const std::string& id : changed) note_change(id, {}, now, &out);
  for (const auto* ids : {&changed, &flows_changed}) {
    for (const std::string& id : *ids) {
      open_deadline_review(id, now);
      sync_review(id, "deadline", now);
    }
  }
  complete_waiters(now, &out);
  return out;
}

std::optional<Timestamp> PaymentsCore::next_deadline() const {
  std::optional<Timestamp> next = payments_.next_deadline();
  for (const auto t : {flows_.next_deadline(), idempotency_.next_expiry()}) {
    if (t && (!next || *t < *next)) next = t;
  }
  return next;
}

std::vector<ResolveRequest> PaymentsCore::outstanding_attempts() const {
  std::vector<ResolveRequest> out;
  for (const auto& [id, open] : open_attempts_) {
    out.push_back({id, open.channel, open.reference, trace_of(open.owner)});
  }
  return out;
}

std::string PaymentsCore::render(std::string_view object_id) const {
  if (const Payment* p = payments_.find(object_id)) return render_payment(*p);
  if (const Refund* r = payments_.find_refund(object_id)) return render_refund(*r);
  if (const WalletFlow* f = flows_.find(object_id)) return render_wallet_flow(*f);
  JsonWriter w;
  if (const auto c = customers_.find(object_id); c != customers_.end()) {
    w.begin_object();
    w.field("id", c->second.id);
    w.field("object", "customer");
    w.key("name");  // sealed: the API edge opens it; null once the customer is erased
    c->second.erased_at != 0 ? w.null() : w.string(c->second.name);
    w.field("wallet", c->second.id);
    w.field("created_at", format_rfc3339(c->second.created_at));
    if (c->second.erased_at != 0) w.field("erased_at", format_rfc3339(c->second.erased_at));
    w.end_object();
  } else if (const auto m = merchants_.find(object_id); m != merchants_.end()) {
    w.begin_object();
    w.field("id", m->second.id);
    w.field("object", "merchant");
    w.field("name", m->second.name);
    w.field_or_null("webhook_url", m->second.webhook_url);
    w.field("created_at", format_rfc3339(m->second.created_at));
    w.end_object();
  }
  return w.take();
}

std::string PaymentsCore::render_wallet(const Customer& c, const ledger::Ledger& ledger) const {
  JsonWriter w;
  w.begin_object();
  w.field("id", c.id);
  w.field("object", "wallet");
  w.field("customer", c.id);
  w.key("balances");
  w.begin_array();
  for (const uint16_t index : c.currencies) {
    const Currency cur = *Currency::from_index(index);
    const auto a = ledger.find_account(wallet_account(c.id, cur));
    if (!a) continue;
    const ledger::Balances& b = a->balances;
    w.begin_object();
    w.field("currency", cur.code());
    w.field("available", b.credits_posted - b.debits_posted - b.debits_pending);
    w.field("pending_in", b.credits_pending);
    w.field("pending_out", b.debits_pending);
    w.field("ledger_account", a->id);
    w.end_object();
  }
  w.end_array();
  w.end_object();
  return w.take();
}

QueryResult PaymentsCore::render_payment_list(const Query& q) const {
  PaymentFilter filter;
  for (uint8_t i = 0; i <= static_cast<uint8_t>(PaymentStatus::canceled); ++i) {
    if (status_name(static_cast<PaymentStatus>(i)) == q.status) {
      filter.status = static_cast<PaymentStatus>(i);
    }
  }
  filter.merchant_id = q.merchant_id;
  filter.customer_id = q.customer_id;
  filter.created_gte = q.created_gte;
  filter.created_lt = q.created_lt;
  bool has_more = false;
  const auto page = payments_.list(filter, q.limit, q.starting_after, &has_more);
  if (cold_payments_ > 0) {
    PaymentReadInMemory read;
    read.kind = q.kind;
    read.filter = std::move(filter);
    read.limit = std::clamp<size_t>(q.limit, 1, kListLimitMax);
    read.starting_after = q.starting_after;
    read.hot_more = has_more;
    for (const Payment* p : page) read.hot.emplace_back(p->id, render_payment(*p));
    read.hot_ids = cold_and_hot_;
    return cold_read(std::move(read));
  }
  std::vector<std::string> bodies;
  for (const Payment* p : page) bodies.push_back(render_payment(*p));
  return {true, render_list(bodies, has_more)};
}

QueryResult PaymentsCore::query(const Query& q, const ledger::Ledger& ledger) const {
  switch (q.kind) {
    case QueryKind::get_payment:
      if (const Payment* p = payments_.find(q.id)) {
        if (!any_decision()) return {true, render_payment(*p)};
        return {true, render_payment_with_routing(*p, [this](std::string_view attempt) {
                  const auto d = decisions_.find(attempt);
                  return d == decisions_.end() ? nullptr : &d->second;
                })};
      }
      if (cold_ids_.may_contain(cold_ids_.hash(q.id))) {
        PaymentReadInMemory read;
        read.kind = q.kind;
        read.id = q.id;
        read.with_routing = any_decision();
        return cold_read(std::move(read));
      }
      return {};
    case QueryKind::get_customer:
      if (customers_.contains(q.id)) return {true, render(q.id)};
      return {};
    case QueryKind::get_merchant:
      if (merchants_.contains(q.id)) return {true, render(q.id)};
      return {};
    case QueryKind::get_wallet:
      if (const auto c = customers_.find(q.id); c != customers_.end()) {
        return {true, render_wallet(c->second, ledger)};
      }
      return {};
    case QueryKind::list_payments:
      return render_payment_list(q);
    case QueryKind::get_refund:
      if (const Refund* r = payments_.find_refund(q.id)) return {true, render_refund(*r)};
      if (cold_ids_.may_contain(cold_ids_.hash(q.id))) {
        PaymentReadInMemory read;
        read.kind = q.kind;
        read.id = q.id;
        return cold_read(std::move(read));
      }
      return {};
    case QueryKind::get_topup:
    case QueryKind::get_payout:
    case QueryKind::get_wallet_transfer: {
      const WalletFlowKind kind = q.kind == QueryKind::get_topup    ? WalletFlowKind::topup
                                  : q.kind == QueryKind::get_payout ? WalletFlowKind::payout
                                                                    : WalletFlowKind::transfer;
      const WalletFlow* f = flows_.find(q.id);
      if (f != nullptr && f->kind == kind) return {true, render_wallet_flow(*f)};
      if (f == nullptr && cold_flows_ > 0 && cold_ids_.may_contain(cold_ids_.hash(q.id))) {
        FlowReadInMemory read;
        read.kind = q.kind;
        read.flow_kind = kind;
        read.id = q.id;
        return cold_flow_read(std::move(read));
      }
      return {};
    }
    case QueryKind::list_events:
      return render_event_list(q);
    case QueryKind::list_topups:
    case QueryKind::list_payouts:
    case QueryKind::list_wallet_transfers:
      return render_flow_list(q);
    case QueryKind::get_controls:
      return {true, render_controls()};
    case QueryKind::get_payment_method:
      if (const auto m = payment_methods_.find(q.id)) return {true, render_payment_method(*m)};
      return {};
    case QueryKind::payment_methods_to_rewrap: {
      QueryResult r{true, ""};
      r.payment_methods = payment_methods_.not_under(q.key_version, q.starting_after, q.limit);
      return r;
    }
    case QueryKind::vault_key_versions: {
      QueryResult r{true, ""};
      r.key_versions = payment_methods_.by_key_version();
      for (const auto& [merchant, bytes] : outbox_.endpoint_secrets()) {
        // Secrets in clear (from before the vault) count as version 0.
        ++r.secret_key_versions[vault::sealed_secret_version(bytes).value_or(0)];
      }
      return r;
    }
    case QueryKind::webhook_secrets: {
      QueryResult r{true, ""};
      r.secrets = outbox_.endpoint_secrets();
      if (!q.merchant_id.empty()) {
        std::erase_if(r.secrets, [&q](const auto& s) { return s.first != q.merchant_id; });
      }
      return r;
    }
    case QueryKind::erased_customers: {
      QueryResult r{true, ""};
      for (const auto& [id, c] : customers_) {
        if (c.erased_at != 0) r.customers.push_back(id);
      }
      return r;
    }
    case QueryKind::list_reviews:
      return render_review_list(q);
  }
  return {};
}

QueryResult PaymentsCore::render_review_list(const Query& q) const {
  review::ReviewFilter filter;
  if (!q.status.empty()) filter.open = q.status == "open";
  if (!q.type.empty()) filter.reason = review::reason_from_name(q.type);
  filter.object_id = q.object_id;
  const review::ReviewPage page = reviews_.list(filter, q.limit, q.starting_after);
  if (page.result != review::ReviewResult::ok) return {};
  JsonWriter w;
  w.begin_object();
  w.field("object", "list");
  w.key("data");
  w.begin_array();
  for (const review::ReviewItem* item : page.data) {
    w.begin_object();
    w.field("id", item->id);
    w.field("object", "review_item");
    w.field("object_type", item->object_type);
    w.field("object_id", item->object_id);
    w.field("reason", review::reason_name(item->reason));
    w.field("status", item->open() ? "open" : "resolved");
    w.key("evidence");
    w.raw(item->evidence);
    w.field("opened_at", format_rfc3339(item->opened_at));
    write_time_or_null(w, "resolved_at", item->resolved_at);
    w.field_or_null("resolved_by", item->resolved_by);
    w.field_or_null("resolution", item->resolution);
    w.end_object();
  }
  w.end_array();
  w.field("has_more", page.has_more);
  w.end_object();
  return {true, w.take()};
}

namespace {

QueryResult render_events(const EventList& list) {
  if (list.result != OutboxResult::ok) return {};
  JsonWriter w;
  w.begin_object();
  w.field("object", "list");
  w.key("data");
  w.begin_array();
  for (const StoredEvent& e : list.data) {
    w.begin_object();
    w.field("id", e.event.id);
    w.field("type", e.event.type);
    w.field("created_at", format_rfc3339(e.event.created_at));
    w.key("data");
    w.raw(e.event.data);
    w.key("delivery");
    w.begin_object();
    w.field("state", delivery_state_name(e.delivery.state));
    w.field("attempts", static_cast<int64_t>(e.delivery.attempts));
    write_time_or_null(w, "next_attempt_at", e.delivery.next_attempt_at);
    w.end_object();
    w.end_object();
  }
  w.end_array();
  w.field("has_more", list.has_more);
  w.end_object();
  return {true, w.take()};
}

}  // namespace

QueryResult PaymentsCore::render_event_list(const Query& q) const {
  const EventFilter filter{q.type, q.merchant_id, q.object_id};
  if (outbox_.in_history() == 0)
    return render_events(outbox_.list(q.limit, q.starting_after, filter));
  std::optional<EventList> done;
  EventPageInMemory page = outbox_.list_in_memory(q.limit, q.starting_after, filter, &done);
  if (done) return render_events(*done);
  QueryResult r;
  r.found = true;
  r.events_page = std::make_shared<const EventPageInMemory>(std::move(page));
  return r;
}

namespace {

using payment_history::Kind;

// A payment from the history store: newest version (readers off the writer stand after every
// version written). nullopt in `*out` when there is none.
Status read_cold_payment(const KvReader& history, std::string_view id,
                         std::optional<Payment>* out) {
  *out = std::nullopt;
  std::optional<std::string> record;
  if (Status s =
          payment_history::read(history, Kind::payment, id, payment_history::kNewest, &record);
      !s.is_ok() || !record) {
    return s;
  }
  Payment p;
  if (Status s = PaymentMachine::decode_payment(*record, &p); !s.is_ok()) return s;
  *out = std::move(p);
  return Status::ok();
}

Status finish_payment_read(const KvReader& history, const PaymentReadInMemory& read,
                           QueryResult* r) {
  *r = {};
  if (read.kind == QueryKind::list_payments) {
    // Merge by id: the page in memory, and the store's records after the cursor that match
    // (one the page holds stands in memory, and so does one brought back), up to one past the
    // limit.
    std::vector<std::pair<std::string, std::string>> merged;
    size_t h = 0;
    Status failed;
    const auto visit = [&](std::string_view id, std::string_view record) {
      for (; h < read.hot.size() && read.hot[h].first < id && merged.size() <= read.limit; ++h) {
        merged.push_back(read.hot[h]);
      }
      if (merged.size() > read.limit) return false;
      if ((h < read.hot.size() && read.hot[h].first == id) || read.hot_ids.contains(id)) {
        return true;
      }
      Payment p;
      if (failed = PaymentMachine::decode_payment(record, &p); !failed.is_ok()) return false;
      if (matches(read.filter, p)) merged.emplace_back(p.id, render_payment(p));
      return merged.size() <= read.limit;
    };
    // A list of one customer's or merchant's payments reads that index, in id order; any other
    // list reads the records.
    const PaymentFilter& f = read.filter;
    Status s;
    if (!f.customer_id.empty() || !f.merchant_id.empty()) {
      const std::string prefix = !f.customer_id.empty()
                                     ? payment_history::customer_index_prefix(f.customer_id)
                                     : payment_history::merchant_index_prefix(f.merchant_id);
      std::string begin = prefix + read.starting_after;
      if (!read.starting_after.empty()) begin.push_back('\0');  // after the cursor
      std::string end = prefix;
      end.back() = '\1';
      s = history.scan_range(begin, end, false, [&](std::string_view key, std::string_view) {
        const std::string_view id = key.substr(prefix.size());
        std::optional<std::string> record;
        if (failed = payment_history::read(history, Kind::payment, id, payment_history::kNewest,
                                           &record);
            !failed.is_ok()) {
          return false;
        }
        // No record: an index record a backup restore left from a journal it cut short.
        return !record || visit(id, *record);
      });
    } else {
      s = payment_history::scan(history, Kind::payment, read.starting_after,
                                payment_history::kNewest, visit);
    }
    if (!s.is_ok()) return s;
    if (!failed.is_ok()) return failed;
    for (; h < read.hot.size() && merged.size() <= read.limit; ++h) merged.push_back(read.hot[h]);
    const bool has_more = read.hot_more || merged.size() > read.limit;
    if (merged.size() > read.limit) merged.resize(read.limit);
    std::vector<std::string> bodies;
    for (auto& [id, body] : merged) bodies.push_back(std::move(body));
    *r = {true, render_list(bodies, has_more)};
    return Status::ok();
  }
  std::string payment_id = read.id;
  if (read.kind == QueryKind::get_refund) {
    std::optional<std::string> owner;
    if (Status s =
            payment_history::read(history, Kind::refund, read.id, payment_history::kNewest, &owner);
        !s.is_ok() || !owner) {
      return s;
    }
    payment_id = std::move(*owner);
  }
  std::optional<Payment> p;
  if (Status s = read_cold_payment(history, payment_id, &p); !s.is_ok() || !p) return s;
  if (read.kind == QueryKind::get_refund) {
    for (const Refund& refund : p->refunds) {
      if (refund.id == read.id) *r = {true, render_refund(refund)};
    }
    if (!r->found)
      return Status::error("the store's payment " + p->id + " lacks refund " + read.id);
    return Status::ok();
  }
  if (!read.with_routing) {
    *r = {true, render_payment(*p)};
    return Status::ok();
  }
  std::map<std::string, routing::Decision, std::less<>> decisions;
  for (const Attempt& a : p->attempts) {
    std::optional<std::string> bytes;
    if (Status s =
            payment_history::read(history, Kind::decision, a.id, payment_history::kNewest, &bytes);
        !s.is_ok()) {
      return s;
    }
    if (!bytes) continue;
    ByteReader br(*bytes);
    routing::Decision d;
    if (!routing::decode_decision(br, &d) || !br.at_end()) {
      return Status::error("malformed decision of attempt " + a.id + " in the store");
    }
    decisions.emplace(a.id, std::move(d));
  }
  *r = {true, render_payment_with_routing(*p, [&](std::string_view attempt) {
          const auto d = decisions.find(attempt);
          return d == decisions.end() ? nullptr : &d->second;
        })};
  return Status::ok();
}

// A flow from the history store: its newest version (nullopt in `*out` when there is none).
Status read_cold_flow(const KvReader& history, std::string_view id,
                      std::optional<WalletFlow>* out) {
  *out = std::nullopt;
  std::optional<std::string> record;
  if (Status s = payment_history::read(history, Kind::flow, id, payment_history::kNewest, &record);
      !s.is_ok() || !record) {
    return s;
  }
  WalletFlow f;
  if (Status s = WalletFlows::decode_flow_record(*record, &f); !s.is_ok()) return s;
  *out = std::move(f);
  return Status::ok();
}

Status finish_flow_read(const KvReader& history, const FlowReadInMemory& read, QueryResult* r) {
  *r = {};
  if (!read.id.empty()) {
    std::optional<WalletFlow> f;
    if (Status s = read_cold_flow(history, read.id, &f); !s.is_ok()) return s;
    if (f && f->kind == read.flow_kind) *r = {true, render_wallet_flow(*f)};
    return Status::ok();
  }
  // The bucket's index, newest first, in [low, high): high is the cursor, created_lt or the
  // bucket's end; up to one past the limit of records that match.
  const WalletFlowFilter& filter = read.filter;
  const std::string prefix = flow_list_prefix(read.flow_kind, filter.customer_id);
  const auto bound = [&](Timestamp t) {
    std::string k = prefix;
    append_be64(&k, static_cast<uint64_t>(std::max<Timestamp>(t, 0)));
    return k;
  };
  const std::string low = bound(filter.created_gte.value_or(0));
  std::string high = prefix;
  high.back() = '\1';  // past every key of the bucket
  if (filter.created_lt) high = std::min(high, bound(*filter.created_lt));
  if (read.before) {
    high = std::min(high, flow_list_key(read.flow_kind, filter.customer_id, *read.before));
  }
  std::vector<std::pair<ListPosition, std::string>> cold;
  Status failed;
  const Status scanned =
      history.scan_range(low, high, true, [&](std::string_view key, std::string_view) {
        ListPosition at;
        if (!parse_flow_list_key(key, prefix.size(), &at)) {
          failed = Status::error("the history store holds a malformed flow list key");
          return false;
        }
        if (read.hot_ids.contains(at.id)) return true;  // memory stands for it
        std::optional<WalletFlow> f;
        if (failed = read_cold_flow(history, at.id, &f); !failed.is_ok()) return false;
        // No record, or another flow under that id: an index record a backup restore left
        // from a journal it cut short.
        if (!f || f->kind != read.flow_kind || f->created_at != at.created_at) return true;
        if (WalletFlows::matches(filter, *f)) cold.emplace_back(at, render_wallet_flow(*f));
        return cold.size() <= read.limit;
      });
  if (!scanned.is_ok()) return scanned;
  if (!failed.is_ok()) return failed;
  // Merge, newest first.
  std::vector<std::string> bodies;
  auto h = read.hot.begin();
  auto c = cold.begin();
  while (bodies.size() <= read.limit && (h != read.hot.end() || c != cold.end())) {
    const bool take_hot = c == cold.end() || (h != read.hot.end() && c->first < h->first);
    bodies.push_back(take_hot ? (h++)->second : (c++)->second);
  }
  const bool has_more = read.hot_more || bodies.size() > read.limit;
  if (bodies.size() > read.limit) bodies.resize(read.limit);
  *r = {true, render_list(bodies, has_more)};
  return Status::ok();
}

// The entries of `hot` merged by id with the store's records of `kind` (`cold` null: none), as a
// section body: u64 count, then each entry as write_hot or write_cold puts it. Empty when there
// is no entry (the section is then left out).
template <typename Map, typename WriteHot, typename WriteCold>
Status merged_entries(const Map& hot, const KvReader* cold, Kind kind, uint64_t horizon,
                      const WriteHot& write_hot, const WriteCold& write_cold, std::string* out) {
  std::string entries;
  ByteWriter w(&entries);
  uint64_t count = 0;
  if (Status s = payment_history::merge_by_id(
          hot, cold, kind, horizon,
          [&](std::string_view id, const auto& value) {
            write_hot(w, id, value);
            ++count;
          },
          [&](std::string_view id, std::string_view record) {
            write_cold(w, id, record);
            ++count;
          });
      !s.is_ok()) {
    return s;
  }
  out->clear();
  if (count == 0) return Status::ok();
  ByteWriter(out).u64(count);
  *out += entries;
  return Status::ok();
}

}  // namespace

QueryResult PaymentsCore::cold_read(PaymentReadInMemory read) const {
  QueryResult r;
  r.found = true;
  r.payments_read = std::make_shared<const PaymentReadInMemory>(std::move(read));
  return r;
}

Status PaymentsCore::finish_query(const KvReader& history, QueryResult* r) {
  if (r->payments_read) {
    const std::shared_ptr<const PaymentReadInMemory> read = std::move(r->payments_read);
    return finish_payment_read(history, *read, r);
  }
  if (r->flows_read) {
    const std::shared_ptr<const FlowReadInMemory> read = std::move(r->flows_read);
    return finish_flow_read(history, *read, r);
  }
  if (!r->events_page) return Status::ok();
  EventList list;
  if (Status s = Outbox::finish_list(*r->events_page, history, &list); !s.is_ok()) return s;
  *r = render_events(list);
  return Status::ok();
}

// ---- Payments in the history store ------------------------------------------------------------

std::optional<std::string> PaymentsCore::read_cold(Kind kind, std::string_view id) const {
  KEEL_ASSERT(history_ != nullptr);
  std::optional<std::string> out;
  const Status s = payment_history::read(*history_, kind, id, history_horizon_, &out);
  KEEL_ASSERT(s.is_ok());  // the store is memory for what it holds
  return out;
}

bool PaymentsCore::cold_exists(std::string_view id) const {
  return cold_exists(id, payment_history::Kind::payment) || cold_exists(id, Kind::flow);
}

bool PaymentsCore::cold_exists(std::string_view id, Kind kind) const {
  if (!cold_ids_.may_contain(cold_ids_.hash(id))) return false;
  if (kind == Kind::flow) return cold_flows_ > 0 && read_cold(Kind::flow, id).has_value();
  return cold_payments_ > 0 &&
         (read_cold(Kind::payment, id).has_value() || read_cold(Kind::refund, id).has_value());
}

void PaymentsCore::fault_in(const Command& c) {
  if (cold_payments_ == 0 && cold_flows_ == 0) return;
  if (const auto* b = c.as<cmd::ConfirmPayment>()) fault_in_payment(b->id);
  if (const auto* b = c.as<cmd::CapturePayment>()) fault_in_payment(b->id);
  if (const auto* b = c.as<cmd::CancelPayment>()) fault_in_payment(b->id);
  if (const auto* b = c.as<cmd::CreateRefund>()) fault_in_payment(b->payment_id);
  if (const auto* b = c.as<cmd::AttemptResult>()) fault_in_attempt(b->attempt_id);
  if (const auto* b = c.as<cmd::OperationStatus>()) fault_in_attempt(b->reference);
}

void PaymentsCore::fault_in_attempt(std::string_view attempt_id) {
  if (attempt_of(attempt_id) != nullptr) return;
  // Attempt ids are `{owner}_a{n}` (payment.h): the owner is a payment or a refund.
  const size_t cut = attempt_id.rfind("_a");
  if (cut == std::string_view::npos || cut == 0) return;
  const std::string_view owner = attempt_id.substr(0, cut);
  if (payments_.find(owner) != nullptr || payments_.find_refund(owner) != nullptr) return;
  if (!cold_ids_.may_contain(cold_ids_.hash(owner)) || fault_in_payment(owner) ||
      fault_in_flow(owner)) {
    return;
  }
  if (const std::optional<std::string> payment = read_cold(Kind::refund, owner)) {
    fault_in_payment(*payment);
  }
}

bool PaymentsCore::fault_in_payment(std::string_view id) {
  if (payments_.find(id) != nullptr) return true;
  if (!cold_ids_.may_contain(cold_ids_.hash(id))) return false;
  const std::optional<std::string> record = read_cold(Kind::payment, id);
  if (!record) return false;
  Payment p;
  const Status decoded = PaymentMachine::decode_payment(*record, &p);
  KEEL_ASSERT(decoded.is_ok());  // the store holds what this core wrote
  for (const Attempt& a : p.attempts) {
    if (a.kind != AttemptKind::authorization) continue;
    if (const std::optional<std::string> bytes = read_cold(Kind::decision, a.id)) {
      ByteReader r(*bytes);
      routing::Decision d;
      KEEL_ASSERT(routing::decode_decision(r, &d) && r.at_end());
      decisions_.insert_or_assign(a.id, std::move(d));
    }
  }
  const auto trace = [&](const std::string& object) {
    if (std::optional<std::string> t = read_cold(Kind::trace, object)) {
      traces_.insert_or_assign(object, std::move(*t));
    }
  };
  trace(p.id);
  for (const Refund& r : p.refunds) trace(r.id);
  cold_and_hot_.emplace(p.id);
  const Status restored = payments_.restore(std::move(p));
  KEEL_ASSERT(restored.is_ok());  // not in memory: every id of it is free there
  return true;
}

bool PaymentsCore::fault_in_flow(std::string_view id) {
  if (flows_.find(id) != nullptr) return true;
  if (cold_flows_ == 0 || !cold_ids_.may_contain(cold_ids_.hash(id))) return false;
  const std::optional<std::string> record = read_cold(Kind::flow, id);
  if (!record) return false;
  WalletFlow f;
  const Status decoded = WalletFlows::decode_flow_record(*record, &f);
  KEEL_ASSERT(decoded.is_ok());  // the store holds what this core wrote
  if (std::optional<std::string> t = read_cold(Kind::trace, f.id)) {
    traces_.insert_or_assign(f.id, std::move(*t));
  }
  flows_cold_and_hot_.emplace(f.id);
  const Status restored = flows_.restore(std::move(f));
  KEEL_ASSERT(restored.is_ok());  // not in memory: its ids are free there
  return true;
}

void PaymentsCore::put_flow(const WalletFlow& f, uint64_t version, HistoryRecords* out) const {
  std::string record;
  WalletFlows::encode_flow_record(f, &record);
  out->puts.emplace_back(payment_history::key(Kind::flow, f.id, version), std::move(record));
  if (const auto t = traces_.find(f.id); t != traces_.end()) {
    out->puts.emplace_back(payment_history::key(Kind::trace, f.id, version), t->second);
  }
  for (const std::string& bucket : wallet_flow_buckets(f)) {
    out->puts.emplace_back(flow_list_key(f.kind, bucket, {f.created_at, f.id}), "");
  }
}

void PaymentsCore::put_payment(const Payment& p, uint64_t version, HistoryRecords* out) const {
  using payment_history::key;
  std::string record;
  PaymentMachine::encode_payment(p, &record);
  out->puts.emplace_back(key(Kind::payment, p.id, version), std::move(record));
  out->puts.emplace_back(payment_history::merchant_index_prefix(p.merchant_id) + p.id, "");
  if (!p.customer_id.empty()) {
    out->puts.emplace_back(payment_history::customer_index_prefix(p.customer_id) + p.id, "");
  }
  const auto trace = [&](const std::string& object) {
    if (const auto t = traces_.find(object); t != traces_.end()) {
      out->puts.emplace_back(key(Kind::trace, object, version), t->second);
    }
  };
  trace(p.id);
  for (const Attempt& a : p.attempts) {
    if (const auto d = decisions_.find(a.id); d != decisions_.end()) {
      std::string bytes;
      ByteWriter w(&bytes);
      routing::encode_decision(w, d->second);
      out->puts.emplace_back(key(Kind::decision, a.id, version), std::move(bytes));
    }
  }
  for (const Refund& r : p.refunds) {
    out->puts.emplace_back(key(Kind::refund, r.id, version), p.id);
    trace(r.id);
  }
}

namespace {

// Adds a superseded marker (payment_history.h) for each versioned record among out->puts from
// `first` on.
void mark_superseded(size_t first, PaymentsCore::HistoryRecords* out) {
  const size_t end = out->puts.size();
  for (size_t i = first; i < end; ++i) {
    const std::string& key = out->puts[i].first;
    if (key.starts_with(payment_history::kPrefix)) {
      out->puts.emplace_back(payment_history::superseded_marker(key), "");
    }
  }
}

// Hands the history tier every object of `machine` (PaymentMachine, WalletFlows) a command
// reached that is at rest: put() appends its records at `version`, and its (id, version) goes to
// *ids. `taken`: the latest take of each not yet durable; `cold_and_hot`: those with a record in
// the store already.
template <typename Machine, typename Put>
void take_at_rest(Machine& machine, uint64_t version,
                  const std::set<std::string, std::less<>>& cold_and_hot,
                  std::map<std::string, uint64_t, std::less<>>* taken,
                  std::vector<std::pair<std::string, uint64_t>>* ids,
                  PaymentsCore::HistoryRecords* out, const Put& put) {
  for (std::string& id : machine.take_changed()) {
    const auto* object = machine.find(id);
    if (object == nullptr || !Machine::at_rest(*object)) {
      taken->erase(id);  // a take on its way no longer stands for it
      continue;
    }
    // Reached by a command that changed nothing (not journaled, so the version is the same):
    // the take on its way stands for it.
    if (const auto t = taken->find(id); t != taken->end() && t->second == version) continue;
    const size_t first = out->puts.size();
    put(*object);
    // Written before (it came back, or a take is on its way): the older versions are
    // superseded.
    if (cold_and_hot.contains(id) || taken->contains(id)) mark_superseded(first, out);
    ids->emplace_back(id, version);
    taken->insert_or_assign(std::move(id), version);
  }
}

}  // namespace

void PaymentsCore::take_final(HistoryRecords* out, uint64_t version) {
  outbox_.take_final(&out->puts, &out->events);
  idempotency_.take_final(&out->puts, &out->keys);
  if (history_ == nullptr) return;
  // At rest is settled: its waiters are answered.
  take_at_rest(payments_, version, cold_and_hot_, &taken_, &out->payments, out,
               [&](const Payment& p) {
                 KEEL_ASSERT(!waiting_.contains(p.id));
                 put_payment(p, version, out);
               });
  take_at_rest(flows_, version, flows_cold_and_hot_, &flows_taken_, &out->flows, out,
               [&](const WalletFlow& f) {
                 KEEL_ASSERT(!waiting_.contains(f.id));
                 put_flow(f, version, out);
               });
}

void PaymentsCore::note_cold_id(std::string_view id) {
  const uint64_t h = cold_ids_.hash(id);
  if (!cold_ids_.may_contain(h)) cold_ids_.insert_hashed(h, 0);
}

void PaymentsCore::note_cold_ids(const Payment& p) {
  note_cold_id(p.id);
  for (const Refund& r : p.refunds) note_cold_id(r.id);
}

void PaymentsCore::drop_payment(std::string_view id) {
  const Payment p = payments_.remove(id);
  for (const Attempt& a : p.attempts) {
    if (decisions_.erase(a.id) > 0) cold_decisions_ = true;
  }
  traces_.erase(p.id);
  for (const Refund& r : p.refunds) traces_.erase(r.id);
}

namespace {

// A take of object `id` at `version` is durable: the object has a record in the store now
// (counted once in *cold, and kept in *both while memory holds it too). Whether memory may drop
// it: that take is its latest (else it changed, or was taken again) and nothing reached it
// since (`changed`).
bool take_durable(const std::string& id, uint64_t version, bool changed, uint64_t* cold,
                  std::set<std::string, std::less<>>* both,
                  std::map<std::string, uint64_t, std::less<>>* taken) {
  if (both->insert(id).second) ++*cold;
  const auto t = taken->find(id);
  if (t == taken->end() || t->second != version) return false;
  taken->erase(t);
  if (changed) return false;
  both->erase(id);
  return true;
}

}  // namespace

void PaymentsCore::make_cold(const HistoryRecords& durable) {
  outbox_.make_cold(durable.events);
  idempotency_.make_cold(durable.keys);
  for (const auto& [id, version] : durable.payments) {
    const Payment* p = payments_.find(id);
    KEEL_ASSERT(p != nullptr || !taken_.contains(id));  // only make_cold drops a payment
    if (p == nullptr) continue;                         // a version already dropped it
    note_cold_ids(*p);
    if (take_durable(id, version, payments_.changed_since_take(id), &cold_payments_, &cold_and_hot_,
                     &taken_)) {
      drop_payment(id);
    }
  }
  for (const auto& [id, version] : durable.flows) {
    KEEL_ASSERT(flows_.find(id) != nullptr || !flows_taken_.contains(id));
    if (flows_.find(id) == nullptr) continue;
    note_cold_id(id);
    if (take_durable(id, version, flows_.changed_since_take(id), &cold_flows_, &flows_cold_and_hot_,
                     &flows_taken_)) {
      traces_.erase(id);
      (void)flows_.remove(id);
    }
  }
}

QueryResult PaymentsCore::render_flow_list(const Query& q) const {
  const WalletFlowKind kind = q.kind == QueryKind::list_topups    ? WalletFlowKind::topup
                              : q.kind == QueryKind::list_payouts ? WalletFlowKind::payout
                                                                  : WalletFlowKind::transfer;
  WalletFlowFilter filter;
  for (const auto s :
       {WalletFlowStatus::processing, WalletFlowStatus::succeeded, WalletFlowStatus::failed}) {
    if (wallet_flow_status_name(s) == q.status) filter.status = s;
  }
  filter.customer_id = q.customer_id;
  if (q.created_gte != 0) filter.created_gte = q.created_gte;
  if (q.created_lt != 0) filter.created_lt = q.created_lt;
  if (cold_flows_ == 0) {
    const WalletFlowPage page = flows_.list(kind, filter, q.limit, q.starting_after);
    if (page.result != WalletFlowResult::ok) return {};
    std::vector<std::string> bodies;
    for (const WalletFlow& f : page.data) bodies.push_back(render_wallet_flow(f));
    return {true, render_list(bodies, page.has_more)};
  }
  // Some flows are in the store: the page in memory here, the rest from the store's list
  // index off the writer (finish_query).
  FlowReadInMemory read;
  read.kind = q.kind;
  read.flow_kind = kind;
  read.limit = std::clamp<size_t>(q.limit, 1, kWalletFlowPageLimitMax);
  if (!q.starting_after.empty()) {
    read.before = flow_position(kind, q.starting_after);
    if (!read.before) return {};
  }
  const WalletFlowPage page =
      flows_.list_below(kind, filter, read.limit, read.before ? &*read.before : nullptr);
  if (page.result != WalletFlowResult::ok) return {};
  read.filter = std::move(filter);
  read.hot_more = page.has_more;
  for (const WalletFlow& f : page.data) {
    read.hot.emplace_back(ListPosition{f.created_at, f.id}, render_wallet_flow(f));
  }
  // Memory stands for every flow it holds that may have a record in the store: those brought
  // back, and those handed to the store's writer and not yet made cold (their records may land
  // while this read runs off the writer, and would be listed beside the page's own).
  read.hot_ids = flows_cold_and_hot_;
  for (const auto& [id, version] : flows_taken_) read.hot_ids.insert(id);
  return cold_flow_read(std::move(read));
}

std::optional<ListPosition> PaymentsCore::flow_position(WalletFlowKind kind,
                                                        std::string_view id) const {
  if (const WalletFlow* f = flows_.find(id)) {
    if (f->kind != kind) return std::nullopt;
    return ListPosition{f->created_at, f->id};
  }
  if (cold_flows_ == 0 || !cold_ids_.may_contain(cold_ids_.hash(id))) return std::nullopt;
  // A cursor that left memory: one point read of the store on the writer.
  const std::optional<std::string> record = read_cold(Kind::flow, id);
  if (!record) return std::nullopt;
  WalletFlow f;
  const Status decoded = WalletFlows::decode_flow_record(*record, &f);
  KEEL_ASSERT(decoded.is_ok());  // the store holds what this core wrote
  if (f.kind != kind) return std::nullopt;
  return ListPosition{f.created_at, f.id};
}

QueryResult PaymentsCore::cold_flow_read(FlowReadInMemory read) const {
  QueryResult r;
  r.found = true;
  r.flows_read = std::make_shared<const FlowReadInMemory>(std::move(read));
  return r;
}

std::vector<Delivery> PaymentsCore::due_deliveries(
    Timestamp now, size_t limit, const std::function<bool(std::string_view)>& in_flight) const {
  return outbox_.due(now, limit, in_flight);
}

std::optional<Timestamp> PaymentsCore::next_delivery_at() const {
  return outbox_.next_attempt_at();
}

PaymentsCore::Counts PaymentsCore::counts() const {
  Counts c;
  c.customers = customers_.size();
  c.merchants = merchants_.size();
  c.payments = payments_.size() + cold_payments_ - cold_and_hot_.size();
  c.payments_in_memory = payments_.size();
  c.in_review = payments_.in_review_count() + flows_.in_review_count();
  c.review_open_deadline_unknown = reviews_.open_count(ReviewReason::deadline_unknown);
  c.review_open_psp_result_rejected = reviews_.open_count(ReviewReason::psp_result_rejected);
  c.wallet_flows = flows_.size() + cold_flows_ - flows_cold_and_hot_.size();
  c.wallet_flows_in_memory = flows_.size();
  c.idempotency_keys = idempotency_.size();
  c.events = outbox_.size();
  c.events_in_memory = outbox_.in_memory();
  c.merchants_backlogged = outbox_.backlogged_merchants();
  c.deliveries_deferred = outbox_.deferred_since_start();
  c.deliveries_refilled = outbox_.refilled_since_start();
  c.idempotency_keys_in_memory = idempotency_.in_memory();
  c.deliveries_pending = outbox_.pending();
  return c;
}

void PaymentsCore::encode(std::string* out) const {
  const Status s = encode_parts(out, false, nullptr);
  KEEL_ASSERT(s.is_ok());  // nothing to read
}

Status PaymentsCore::encode_full(std::string* out) const {
  return encode_parts(out, true, nullptr);
}

Status PaymentsCore::encode_full(const EncodingSink& sink) const {
  std::string piece;
  return encode_parts(&piece, true, &sink);
}

Status PaymentsCore::encode_parts(std::string* out, bool full, const EncodingSink* sink) const {
  // With a sink, what is written so far goes to it after each part (the whole never held).
  const auto spill = [&] {
    if (sink == nullptr) return;
    (*sink)(*out);
    out->clear();
  };
  ByteWriter w(out);
  const bool erasures =
      std::ranges::any_of(customers_, [](const auto& c) { return c.second.erased_at != 0; });
  w.u32(erasures ? kEncodingVersionWithErasures : kEncodingVersion);
  w.u64(customers_.size());
  for (const auto& [id, c] : customers_) {
    w.str16(c.id);
    w.str16(c.name);
    w.i64(c.created_at);
    w.u64(c.currencies.size());
    for (const uint16_t index : c.currencies) w.u16(index);
    if (erasures) w.i64(c.erased_at);
  }
  w.u64(merchants_.size());
  for (const auto& [id, m] : merchants_) {
    w.str16(m.id);
    w.str16(m.name);
    w.str16(m.webhook_url);
    w.i64(m.created_at);
  }
  w.u64(open_attempts_.size());
  for (const auto& [attempt, open] : open_attempts_) {
    w.str16(attempt);
    w.str16(open.channel);
    w.u8(static_cast<uint8_t>(open.kind));
    w.str16(open.reference);
    w.str16(open.owner);
    w.u8(open.wallet_flow ? 1 : 0);
  }
  w.u64(next_event_seq_);
  w.u64(waiting_.size());
  for (const auto& [object, keys] : waiting_) {
    w.str16(object);
    w.u64(keys.size());
    for (const auto& [client, key] : keys) {
      w.str16(client);
      w.str16(key);
    }
  }
  // The full encoding merges what the history store holds (the state hash covers both tiers
  // and reads the same whatever tier each object is in); a snapshot leaves it out.
  const bool some_cold = cold_payments_ > 0 || cold_flows_ > 0;
  const KvReader* cold = full && some_cold ? history_ : nullptr;
  if (full && some_cold && history_ == nullptr) {
    return Status::error("payments: the history store holds payments, and none is set");
  }
  std::string part;
  if (cold != nullptr) {
    if (Status s = payments_.encode_merged(&part, *cold, history_horizon_); !s.is_ok()) return s;
  } else {
    payments_.encode(&part);
  }
  w.u64(part.size());
  w.raw(part.data(), part.size());
  spill();
  part.clear();
  if (cold != nullptr) {
    if (Status s = flows_.encode_merged(&part, *cold, history_horizon_); !s.is_ok()) return s;
  } else {
    flows_.encode(&part);
  }
  w.u64(part.size());
  w.raw(part.data(), part.size());
  spill();
  part.clear();
  if (full) {
    if (Status s = outbox_.encode_full(&part, history_); !s.is_ok()) return s;
  } else {
    outbox_.encode(&part);
  }
  w.u64(part.size());
  w.raw(part.data(), part.size());
  spill();
  part.clear();
  if (full) {
    if (Status s = idempotency_.encode_full(&part); !s.is_ok()) return s;
  } else {
    idempotency_.encode(&part);
  }
  w.u64(part.size());
  w.raw(part.data(), part.size());
  spill();
  // Trailing parts, each present only once it holds something, so that a state that never had
  // one encodes (and hashes) exactly as before it existed. First the review desk (untagged: the
  // first trailing part ever written); then tagged sections (u8 tag, u64 length, bytes) in tag
  // order. Any tagged section makes the review section present, maybe empty.
  std::vector<std::pair<SectionTag, std::string>> sections;
  if (!channels_.empty()) {
    channels_.encode(&sections.emplace_back(SectionTag::channels, "").second);
  }
  std::string merged;
  if (Status s = merged_entries(
          decisions_, cold, Kind::decision, history_horizon_,
          [](ByteWriter& w, std::string_view attempt, const routing::Decision& decision) {
            w.str16(attempt);
            routing::encode_decision(w, decision);
          },
          [](ByteWriter& w, std::string_view attempt, std::string_view record) {
            w.str16(attempt);
            w.raw(record.data(), record.size());
          },
          &merged);
      !s.is_ok()) {
    return s;
  }
  if (!merged.empty()) sections.emplace_back(SectionTag::decisions, std::move(merged));
  if (read_only_ || flows_disabled_ != 0 || !control_log_.empty()) {
    encode_controls(&sections.emplace_back(SectionTag::controls, "").second);
  }
  const auto write_trace = [](ByteWriter& w, std::string_view id, std::string_view trace) {
    w.str16(id);
    w.str16(trace);
  };
  merged.clear();
  if (Status s = merged_entries(traces_, cold, Kind::trace, history_horizon_, write_trace,
                                write_trace, &merged);
      !s.is_ok()) {
    return s;
  }
  if (!merged.empty()) sections.emplace_back(SectionTag::traces, std::move(merged));
  if (!full && (cold_payments_ > 0 || cold_decisions_ || cold_flows_ > 0)) {
    encode_history(&sections.emplace_back(SectionTag::history, "").second);
  }
  if (!full && cold_flows_ > 0) {
    ByteWriter fw(&sections.emplace_back(SectionTag::flow_history, "").second);
    fw.u64(cold_flows_);
    fw.u64(flows_cold_and_hot_.size());
    for (const std::string& id : flows_cold_and_hot_) fw.str16(id);
  }
  if (!payment_methods_.empty()) {
    ByteWriter vw(&sections.emplace_back(SectionTag::vault, "").second);
    payment_methods_.encode(vw);
  }
  if (!reviews_.empty() || !sections.empty()) {
    part.clear();
    reviews_.encode(&part);
    w.u64(part.size());
    w.raw(part.data(), part.size());
    spill();
  }
  for (const auto& [tag, bytes] : sections) {
    w.u8(static_cast<uint8_t>(tag));
    w.u64(bytes.size());
    w.raw(bytes.data(), bytes.size());
    spill();
  }
  spill();
  return Status::ok();
}

// The history section (snapshots only): u64 cold payments, u8 cold decisions, u64 count x
// str16 payment id in memory and in the store, u64 count x u32 tag of an id in the store.
void PaymentsCore::encode_history(std::string* out) const {
  ByteWriter w(out);
  w.u64(cold_payments_);
  w.u8(cold_decisions_ ? 1 : 0);
  w.u64(cold_and_hot_.size());
  for (const std::string& id : cold_and_hot_) w.str16(id);
  w.u64(cold_ids_.size());
  cold_ids_.for_each_tag([&](uint32_t tag) { w.u32(tag); });
}

Status PaymentsCore::decode_history(std::string_view bytes) {
  ByteReader r(bytes);
  uint8_t decisions = 0;
  uint64_t n = 0;
  if (!r.u64(&cold_payments_) || !r.u8(&decisions) || decisions > 1 || !r.u64(&n) ||
      n > r.remaining()) {
    return Status::error("payments: malformed history section");
  }
  cold_decisions_ = decisions == 1;
  for (uint64_t i = 0; i < n; ++i) {
    std::string id;
    if (!r.str16(&id) || payments_.find(id) == nullptr || !cold_and_hot_.insert(id).second) {
      return Status::error("payments: malformed history section (payments in memory)");
    }
  }
  if (!r.u64(&n) || n > r.remaining() / 4 || cold_payments_ < cold_and_hot_.size()) {
    return Status::error("payments: malformed history section (ids)");
  }
  // Sized first: the tags come in home-slot order (IdIndex::for_each_tag).
  cold_ids_.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t tag = 0;
    if (!r.u32(&tag)) return Status::error("payments: malformed history section (ids)");
    cold_ids_.insert_hashed(uint64_t{tag} << 32, 0);
  }
  if (!r.at_end()) return Status::error("payments: malformed history section (trailing bytes)");
  return Status::ok();
}

Status PaymentsCore::decode_section(SectionTag tag, std::string_view bytes) {
  switch (tag) {
    case SectionTag::vault: {
      ByteReader r(bytes);
      if (Status s = vault::PaymentMethods::decode(r, &payment_methods_); !s.is_ok()) return s;
      if (!r.at_end() || payment_methods_.empty()) {
        return Status::error("payments: malformed vault section");
      }
      return Status::ok();
    }
    case SectionTag::history:
      return decode_history(bytes);
    case SectionTag::flow_history: {
      // u64 flows in the store, u64 count x str16 id of those in memory too.
      ByteReader r(bytes);
      uint64_t n = 0;
      if (!r.u64(&cold_flows_) || cold_flows_ == 0 || !r.u64(&n) || n > cold_flows_ ||
          n > r.remaining()) {
        return Status::error("payments: malformed flow history section");
      }
      for (uint64_t i = 0; i < n; ++i) {
        std::string id;
        if (!r.str16(&id) || flows_.find(id) == nullptr ||
            !flows_cold_and_hot_.insert(std::move(id)).second) {
          return Status::error("payments: malformed flow history section (flows in memory)");
        }
      }
      if (!r.at_end()) return Status::error("payments: malformed flow history section");
      return Status::ok();
    }
    case SectionTag::channels:
      if (!routing::ChannelRegistry::decode(bytes, &channels_) || channels_.empty()) {
        return Status::error("payments: malformed channels");
      }
      return Status::ok();
    case SectionTag::decisions: {
      ByteReader r(bytes);
      uint64_t n = 0;
      if (!r.u64(&n) || n == 0 || n > r.remaining()) {
        return Status::error("payments: malformed decisions");
      }
      for (uint64_t i = 0; i < n; ++i) {
        std::string attempt;
        routing::Decision d;
        if (!r.str16(&attempt) || !routing::decode_decision(r, &d) ||
            d.kind == routing::DecisionKind::none ||
            !decisions_.emplace(std::move(attempt), std::move(d)).second) {
          return Status::error("payments: malformed decision");
        }
      }
      if (!r.at_end()) return Status::error("payments: malformed decisions");
      return Status::ok();
    }
    case SectionTag::controls: {
      ByteReader r(bytes);
      uint32_t n = 0;
      constexpr uint8_t kFlowBits = (1U << (static_cast<uint8_t>(kFlowSwitchLast) + 1)) - 1;
      if (!read_bool(r, &read_only_) || !r.u8(&flows_disabled_) ||
          (flows_disabled_ & ~kFlowBits) != 0 || !r.u32(&n) || n > kControlLogMax) {
        return Status::error("payments: malformed controls");
      }
      for (uint32_t i = 0; i < n; ++i) {
        ControlRecord rec;
        if (!r.i64(&rec.at) || !read_enum(r, kControlKindLast, &rec.control.kind) ||
            !r.str16(&rec.control.target) || !r.str16(&rec.control.canary) ||
            !r.u32(&rec.control.share_pct) || !r.str16(&rec.control.reason)) {
          return Status::error("payments: malformed control record");
        }
        control_log_.push_back(std::move(rec));
      }
      if (!r.at_end() || (!read_only_ && flows_disabled_ == 0 && control_log_.empty())) {
        return Status::error("payments: malformed controls");
      }
      return Status::ok();
    }
    case SectionTag::traces: {
      ByteReader r(bytes);
      uint64_t n = 0;
      if (!r.u64(&n) || n == 0 || n > r.remaining()) {
        return Status::error("payments: malformed traces");
      }
      for (uint64_t i = 0; i < n; ++i) {
        std::string id;
        std::string trace;
        if (!r.str16(&id) || !r.str16(&trace) || trace.size() != kTraceparentLength ||
            !traces_.emplace(std::move(id), std::move(trace)).second) {
          return Status::error("payments: malformed trace");
        }
      }
      if (!r.at_end()) return Status::error("payments: malformed traces");
      return Status::ok();
    }
  }
  return Status::error("payments: unknown section");
}

namespace {

// The last kDeadlineReviewCause of a timeline: when the deadline flagged the object.
template <typename Entry>
std::optional<Timestamp> flagged_at(const std::vector<Entry>& timeline) {
  for (auto it = timeline.rbegin(); it != timeline.rend(); ++it) {
    if (it->cause == kDeadlineReviewCause) return it->at;
  }
  return std::nullopt;
}

}  // namespace

std::vector<PaymentsCore::Flagged> PaymentsCore::flagged_objects() const {
  std::vector<Flagged> out;
  const auto note = [&](const std::string& id, ReviewReason reason, const auto& timeline) {
    if (reason != ReviewReason::none) out.push_back({id, reason, flagged_at(timeline)});
  };
  for (const Payment* p : payments_.all()) {
    note(p->id, p->review, p->timeline);
    for (const Refund& r : p->refunds) note(r.id, r.review, r.timeline);
  }
  for (const WalletFlow* f : flows_.all()) note(f->id, f->review, f->timeline);
  return out;
}

Status PaymentsCore::migrate_reviews() {
  const std::vector<Flagged> flagged = flagged_objects();
  for (const Flagged& f : flagged) {
    if (f.reason != ReviewReason::deadline_unknown || !f.deadline_at) {
      return Status::error("payments: a review flag without its deadline in the timeline");
    }
  }
  for (const Flagged& f : flagged) open_deadline_review(f.id, *f.deadline_at);
  return Status::ok();
}

// Every flagged object has an open item of its reason; no other object has an open item.
Status PaymentsCore::check_reviews() const {
  bool ok = true;
  for (const Flagged& f : flagged_objects()) ok = ok && reviews_.open_item(f.id, f.reason);
  for (const std::string& id : reviews_.objects_with_open_items()) {
    ok = ok && review_view(id).reason != ReviewReason::none;
  }
  if (!ok) return Status::error("payments: review flags and open review items disagree");
  return Status::ok();
}

Status PaymentsCore::decode(std::string_view bytes, CoreOptions options, PaymentsCore* out) {
  ByteReader r(bytes);
  PaymentsCore core(options);
  uint32_t version = 0;
  uint64_t n = 0;
  if (!r.u32(&version) ||
      (version != kEncodingVersion && version != kEncodingVersionWithErasures) || !r.u64(&n)) {
    return Status::error("payments: bad header");
  }
  for (uint64_t i = 0; i < n; ++i) {
    Customer c;
    uint64_t currencies = 0;
    if (!r.str16(&c.id) || !r.str16(&c.name) || !r.i64(&c.created_at) || !r.u64(&currencies) ||
        currencies > r.remaining()) {
      return Status::error("payments: malformed customer");
    }
    for (uint64_t j = 0; j < currencies; ++j) {
      uint16_t index = 0;
      if (!r.u16(&index) || !Currency::from_index(index)) {
        return Status::error("payments: malformed customer currency");
      }
      c.currencies.insert(index);
    }
    if (version == kEncodingVersionWithErasures && (!r.i64(&c.erased_at) || c.erased_at < 0)) {
      return Status::error("payments: malformed customer erasure");
    }
    core.customers_.emplace(c.id, std::move(c));
  }
  if (!r.u64(&n)) return Status::error("payments: malformed merchants");
  for (uint64_t i = 0; i < n; ++i) {
    Merchant m;
    if (!r.str16(&m.id) || !r.str16(&m.name) || !r.str16(&m.webhook_url) || !r.i64(&m.created_at)) {
      return Status::error("payments: malformed merchant");
    }
    core.merchants_.emplace(m.id, std::move(m));
  }
  if (!r.u64(&n)) return Status::error("payments: malformed attempts");
  for (uint64_t i = 0; i < n; ++i) {
    std::string attempt;
    OpenAttempt open;
    uint8_t kind = 0;
    uint8_t wallet_flow = 0;
    if (!r.str16(&attempt) || !r.str16(&open.channel) || !r.u8(&kind) ||
        kind > static_cast<uint8_t>(AttemptKind::topup) || !r.str16(&open.reference) ||
        !r.str16(&open.owner) || !r.u8(&wallet_flow) || wallet_flow > 1) {
      return Status::error("payments: bad attempt");
    }
    open.wallet_flow = wallet_flow == 1;
    open.kind = static_cast<AttemptKind>(kind);
    core.by_reference_.insert({open.reference, attempt});
    if (!core.open_attempts_.emplace(std::move(attempt), std::move(open)).second) {
      return Status::error("payments: an open attempt twice");
    }
  }
  if (!r.u64(&core.next_event_seq_)) return Status::error("payments: malformed event sequence");
  if (!r.u64(&n)) return Status::error("payments: malformed waiters");
  for (uint64_t i = 0; i < n; ++i) {
    std::string object;
    uint64_t k = 0;
    if (!r.str16(&object) || !r.u64(&k) || k > r.remaining()) {
      return Status::error("payments: malformed waiter");
    }
    auto& keys = core.waiting_[object];
    for (uint64_t j = 0; j < k; ++j) {
      KeyRef key;
      if (!r.str16(&key.first) || !r.str16(&key.second)) {
        return Status::error("payments: malformed waiter key");
      }
      keys.insert(std::move(key));
    }
  }
  std::string_view part;
  if (!r.u64(&n) || !r.raw(&part, n)) return Status::error("payments: malformed payments");
  if (Status s = PaymentMachine::decode(part, options.deadlines, &core.payments_); !s.is_ok()) {
    return s;
  }
  if (!r.u64(&n) || !r.raw(&part, n)) return Status::error("payments: malformed flows");
  if (Status s = WalletFlows::decode(part, options.flows, &core.flows_); !s.is_ok()) return s;
  if (!r.u64(&n) || !r.raw(&part, n)) return Status::error("payments: malformed outbox");
  if (Status s = Outbox::decode(part, &core.outbox_); !s.is_ok()) return s;
  if (!r.u64(&n) || !r.raw(&part, n)) return Status::error("payments: malformed keys");
  if (Status s = IdempotencyStore::decode(part, &core.idempotency_); !s.is_ok()) return s;
  if (r.at_end()) {
    if (Status s = core.migrate_reviews(); !s.is_ok()) return s;
  } else {
    if (!r.u64(&n) || !r.raw(&part, n)) return Status::error("payments: malformed reviews");
    if (Status s = review::ReviewDesk::decode(part, &core.reviews_); !s.is_ok()) return s;
    if (core.reviews_.empty() && r.at_end()) {
      return Status::error("payments: an empty review section");
    }
  }
  uint8_t last_tag = 0;
  while (!r.at_end()) {
    uint8_t tag = 0;
    if (!r.u8(&tag) || tag <= last_tag || tag > static_cast<uint8_t>(kSectionTagLast) ||
        !r.u64(&n) || !r.raw(&part, n)) {
      return Status::error("payments: malformed section");
    }
    last_tag = tag;
    if (Status s = core.decode_section(static_cast<SectionTag>(tag), part); !s.is_ok()) return s;
  }
  if (Status s = core.check_reviews(); !s.is_ok()) return s;
  if (Status s = core.check_decisions(); !s.is_ok()) return s;
  for (const auto& [object, keys] : core.waiting_) {
    for (const KeyRef& key : keys) core.waiting_object_[key] = object;
  }
  *out = std::move(core);
  return Status::ok();
}

}  // namespace keel::payments
