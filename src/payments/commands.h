#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "core/currency.h"
#include "core/status.h"
#include "payments/payment.h"
#include "routing/channel.h"
#include "routing/decision.h"
#include "vault/payment_methods.h"
#include "vault/sealed_secret.h"

namespace keel::payments {

// The commands the payments core takes (PaymentsCore::apply), as they are journaled: the journal
// stores these inputs, never their results, and replaying them rebuilds the same state.
//
// A Command is an envelope (idempotency scope, trace, routing's decision) around one body per
// kind (namespace cmd below). Values of CommandKind are on disk and are the body's index + 1:
// never renumber, only append.
enum class CommandKind : uint8_t {
  create_customer = 1,
  create_merchant = 2,
  create_payment = 3,
  confirm_payment = 4,
  capture_payment = 5,
  cancel_payment = 6,
  create_refund = 7,
  create_topup = 8,
  create_payout = 9,
  create_wallet_transfer = 10,
  attempt_result = 11,
  mark_pending_unknown = 12,
  outbox_attempt = 13,
  operation_status = 14,
  set_fees = 15,
  set_channels = 16,
  channel_event = 17,
  runtime_control = 18,
  rotate_webhook_secret = 19,
  store_payment_method = 20,
  rewrap_payment_methods = 21,
  reseal_webhook_secrets = 22,
  detach_payment_method = 23,
  erase_customer = 24,
};
inline constexpr CommandKind kCommandKindLast = CommandKind::erase_customer;

// The longest overlap of a webhook secret rotation (cmd::RotateWebhookSecret): a week.
inline constexpr int64_t kWebhookSecretOverlapMaxS = 7 * 24 * 3600;

// Runtime controls (docs/routing.md): values are on disk, never renumber.
enum class ControlKind : uint8_t {
  channel_pause = 0,    // target: a channel
  channel_resume = 1,   // target: a channel (clears paused and draining)
  channel_drain = 2,    // target: a channel
  channel_canary = 3,   // target: the base channel; canary, share_pct (0: stop)
  canary_rollback = 4,  // target, canary: routing found the canary worse than its base
  read_only_on = 5,     // every client write answers 503 read_only
  read_only_off = 6,
  flow_disable = 7,  // target: a flow (flow_switch_name); its new requests answer flow_disabled
  flow_enable = 8,
};
inline constexpr ControlKind kControlKindLast = ControlKind::flow_enable;
[[nodiscard]] std::string_view control_kind_name(ControlKind k);

// The flows a kill switch can stop. Values are bits on disk: never renumber.
enum class FlowSwitch : uint8_t {
  card_payments = 0,
  wallet_payments = 1,
  topups = 2,
  payouts = 3,
  refunds = 4,
  wallet_transfers = 5,
};
inline constexpr FlowSwitch kFlowSwitchLast = FlowSwitch::wallet_transfers;
[[nodiscard]] std::string_view flow_switch_name(FlowSwitch f);
[[nodiscard]] std::optional<FlowSwitch> flow_switch_from_name(std::string_view name);

inline constexpr size_t kControlReasonLengthMax = 200;

struct RuntimeControl {
  ControlKind kind = ControlKind::channel_pause;
  std::string target;  // a channel or a flow name
  std::string canary;  // channel_canary, canary_rollback: the canary channel
  uint32_t share_pct = 0;
  std::string reason;  // free text from the operator (at most kControlReasonLengthMax bytes)
  friend bool operator==(const RuntimeControl&, const RuntimeControl&) = default;
};

// An operation's status as a PSP reports it (docs/psp_protocol.md), in the payments' own terms.
// Values are on disk: never renumber.
enum class OperationState : uint8_t {
  not_found = 0,  // the PSP never received the reference
  pending,
  authorized,
  captured,
  voided,
  declined_hard,
  declined_soft,
  refunded,
  paid,
  failed,
};

// Stripe-style idempotency of an API request: the key as the client sent it, scoped by the API
// client, with a fingerprint (SHA-256 of method, path and body). Empty key: none.
struct IdempotencyScope {
  std::string client;
  std::string key;
  std::string fingerprint;
  friend bool operator==(const IdempotencyScope&, const IdempotencyScope&) = default;
};

// Who reported a PSP result: the answer to keel's own call, the resolver's status query, or a
// PSP webhook. Values are on disk: never renumber.
enum class ResultSource : uint8_t {
  psp_response = 0,
  status_query = 1,
  webhook = 2,
};
inline constexpr ResultSource kResultSourceLast = ResultSource::webhook;
inline constexpr size_t kWebhookEventLengthMax = 100;

// The bodies, one per CommandKind, in its order.
namespace cmd {

struct CreateCustomer {
  std::string id;
  std::string name;
  friend bool operator==(const CreateCustomer&, const CreateCustomer&) = default;
};

struct CreateMerchant {
  std::string id;
  std::string name;
  std::string url;  // webhook endpoint (empty: none), with its secret
  std::string secret;
  friend bool operator==(const CreateMerchant&, const CreateMerchant&) = default;
};

struct CreatePayment {
  std::string id;
  int64_t amount = 0;
  Currency currency;
  std::string merchant_id;
  std::string customer_id;  // required for a wallet payment (its source)
  std::string instrument;   // card token (card payments)
  bool capture_manual = false;
  bool source_wallet = false;
  friend bool operator==(const CreatePayment&, const CreatePayment&) = default;
};

struct ConfirmPayment {
  std::string id;
  std::string channel;  // named by the caller (pinned); empty: routing chooses
  friend bool operator==(const ConfirmPayment&, const ConfirmPayment&) = default;
};

struct CapturePayment {
  std::string id;
  int64_t amount = 0;  // 0: all authorized
  friend bool operator==(const CapturePayment&, const CapturePayment&) = default;
};

struct CancelPayment {
  std::string id;
  friend bool operator==(const CancelPayment&, const CancelPayment&) = default;
};

struct CreateRefund {
  std::string id;
  std::string payment_id;
  int64_t amount = 0;  // 0: all that is left
  friend bool operator==(const CreateRefund&, const CreateRefund&) = default;
};

// A top-up (money in from a card or bank account) or a payout (out to an IBAN or account).
struct CreateFlow {
  std::string id;
  std::string customer_id;
  int64_t amount = 0;
  Currency currency;
  std::string channel;
  InstrumentKind instrument_kind = InstrumentKind::none;
  std::string instrument;
  friend bool operator==(const CreateFlow&, const CreateFlow&) = default;
};
struct CreateTopup : CreateFlow {
  friend bool operator==(const CreateTopup&, const CreateTopup&) = default;
};
struct CreatePayout : CreateFlow {
  friend bool operator==(const CreatePayout&, const CreatePayout&) = default;
};

struct CreateWalletTransfer {
  std::string id;
  std::string customer_id;  // from
  std::string to_customer_id;
  int64_t amount = 0;
  Currency currency;
  friend bool operator==(const CreateWalletTransfer&, const CreateWalletTransfer&) = default;
};

// A PSP's direct answer to keel's call.
struct AttemptResult {
  std::string attempt_id;
  payments::AttemptResult result;
  friend bool operator==(const AttemptResult&, const AttemptResult&) = default;
};

// After a restart: every attempt that was in flight becomes unknown and is resolved.
struct MarkPendingUnknown {
  friend bool operator==(const MarkPendingUnknown&, const MarkPendingUnknown&) = default;
};

// One delivery try of a merchant event.
struct OutboxAttempt {
  std::string event_id;
  bool delivered = false;
  friend bool operator==(const OutboxAttempt&, const OutboxAttempt&) = default;
};

// What a PSP says of an operation (status query or webhook).
struct OperationStatus {
  std::string channel;
  std::string reference;  // the operation's reference (an attempt id)
  OperationState state = OperationState::not_found;
  payments::AttemptResult result;  // psp_reference, error_code, fee
  ResultSource source = ResultSource::status_query;
  std::string webhook_event;  // source webhook: the PSP's event id (1..kWebhookEventLengthMax)
  friend bool operator==(const OperationStatus&, const OperationStatus&) = default;
};

struct SetFees {
  FeeSchedule fees;  // the merchant fee schedule from keeld's config
  friend bool operator==(const SetFees&, const SetFees&) = default;
};

struct SetChannels {
  std::vector<routing::ChannelDef> channels;  // the routing channels from keeld's config
  friend bool operator==(const SetChannels&, const SetChannels&) = default;
};

// A circuit breaker changed state.
struct ChannelEvent {
  routing::BreakerTransition transition;
  friend bool operator==(const ChannelEvent&, const ChannelEvent&) = default;
};

// An operator's runtime control, or a canary rollback.
struct Control {
  RuntimeControl control;
  friend bool operator==(const Control&, const Control&) = default;
};

// A merchant's new webhook signing secret. The secret it replaces keeps signing deliveries for
// overlap_s seconds from the command's time (0: stops at once): Outbox::rotate_secret.
struct RotateWebhookSecret {
  std::string merchant_id;
  std::string secret;
  int64_t overlap_s = 0;
  friend bool operator==(const RotateWebhookSecret&, const RotateWebhookSecret&) = default;
};

// A card stored in the vault: the API edge checked the card and encrypted its number; the
// command carries only the ciphertext and what may be shown (docs/security.md, "The card
// vault").
struct StorePaymentMethod {
  vault::PaymentMethod method;
  friend bool operator==(const StorePaymentMethod&, const StorePaymentMethod&) = default;
};

// Data keys moved to another master key version (a step of `keel vault rotate`): each applies
// only while its method is still under its from_version.
inline constexpr size_t kRewrapsPerCommandMax = 256;
struct RewrapPaymentMethods {
  std::vector<vault::Rewrap> rewraps;
  friend bool operator==(const RewrapPaymentMethods&, const RewrapPaymentMethods&) = default;
};

// Merchant webhook secrets re-sealed by the vault (a step of `keel vault rotate`): the same
// secret under the active master key version, or sealed for the first time when it was stored
// in clear. Each replaces the endpoint's current or previous secret whose bytes are `from`.
using SecretReseal = vault::SecretReseal;
struct ResealWebhookSecrets {
  std::vector<SecretReseal> reseals;  // 1 to kRewrapsPerCommandMax
  friend bool operator==(const ResealWebhookSecrets&, const ResealWebhookSecrets&) = default;
};

// A stored card removed (POST /v1/payment_methods/{id}/detach): its record, ciphertext
// included, leaves the vault's state. `owner_id` empty: any owner (an admin); otherwise only a
// card of that merchant or customer is found.
struct DetachPaymentMethod {
  std::string id;
  vault::OwnerKind owner_kind = vault::OwnerKind::merchant;
  std::string owner_id;
  friend bool operator==(const DetachPaymentMethod&, const DetachPaymentMethod&) = default;
};

// A customer erased (POST /v1/customers/{id}/erase, docs/security.md "Personal data and
// erasure"): keeld deleted, or is about to delete, the customer's personal data key; the core
// marks the customer erased, forgets their name and their stored cards, and refuses their new
// top-ups, payouts and cards. Their wallet, balances and ledger history stay.
struct EraseCustomer {
  std::string customer_id;
  friend bool operator==(const EraseCustomer&, const EraseCustomer&) = default;
};

}  // namespace cmd

using CommandBody =
    std::variant<cmd::CreateCustomer, cmd::CreateMerchant, cmd::CreatePayment, cmd::ConfirmPayment,
                 cmd::CapturePayment, cmd::CancelPayment, cmd::CreateRefund, cmd::CreateTopup,
                 cmd::CreatePayout, cmd::CreateWalletTransfer, cmd::AttemptResult,
                 cmd::MarkPendingUnknown, cmd::OutboxAttempt, cmd::OperationStatus, cmd::SetFees,
                 cmd::SetChannels, cmd::ChannelEvent, cmd::Control, cmd::RotateWebhookSecret,
                 cmd::StorePaymentMethod, cmd::RewrapPaymentMethods, cmd::ResealWebhookSecrets,
                 cmd::DetachPaymentMethod, cmd::EraseCustomer>;
static_assert(std::variant_size_v<CommandBody> == static_cast<size_t>(kCommandKindLast));

struct Command {
  IdempotencyScope idempotency;
  // The W3C traceparent of the API request (empty: none): its object's PSP calls, status
  // queries included, carry it, also after a restart.
  std::string traceparent;
  // Routing's decision, made by the engine from live statistics before the command is applied
  // and journaled with it (replay never asks the statistics again). `routed` false: no routing
  // (commands from before it, tests of the core alone): the legacy behaviour of each kind.
  bool routed = false;
  routing::Decision route;
  CommandBody body;

  Command() = default;
  template <typename Body>
  requires std::is_constructible_v<CommandBody, Body&&> &&
      (!std::is_same_v<std::remove_cvref_t<Body>, Command>)Command(Body&& b)
      : body(std::forward<Body>(b)) {}  // NOLINT: a body is a command

  [[nodiscard]] CommandKind kind() const { return static_cast<CommandKind>(body.index() + 1); }
  template <typename Body>
  [[nodiscard]] const Body* as() const {
    return std::get_if<Body>(&body);
  }
  template <typename Body>
  [[nodiscard]] Body* as() {
    return std::get_if<Body>(&body);
  }
  friend bool operator==(const Command&, const Command&) = default;
};

// The timeline's words for who reported a result: "psp_response", "status_query",
// "webhook:{event}".
[[nodiscard]] std::string result_cause(ResultSource source, std::string_view webhook_event = {});

inline constexpr size_t kTraceparentLength = 55;  // "00-" 32 hex "-" 16 hex "-" 2 hex

void encode_command(const Command& c, std::string* out);
// Fails on bytes this version did not write (unknown kind or enum value, bad lengths, trailing
// bytes). Versions 3 and 4 (one flat record for every kind) still decode.
Status decode_command(std::string_view bytes, Command* out);

[[nodiscard]] std::string_view command_kind_name(CommandKind k);
[[nodiscard]] std::string_view operation_state_name(OperationState s);

}  // namespace keel::payments
