#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/currency.h"
#include "core/status.h"
#include "payments/payment.h"
#include "routing/channel.h"
#include "routing/decision.h"

namespace keel::payments {

// The commands the payments core takes (PaymentsCore::apply), as they are journaled: the journal
// stores these inputs, never their results, and replaying them rebuilds the same state.
//
// One flat struct for every kind keeps the codec one function: each kind reads the fields its
// comment names and leaves the others empty. Values of CommandKind are on disk: never renumber.
enum class CommandKind : uint8_t {
  create_customer = 1,          // id, name
  create_merchant = 2,          // id, name, url (webhook endpoint, may be empty), secret
  create_payment = 3,           // id, amount, currency, merchant_id, customer_id (wallet source),
                                // instrument (card token), capture_manual, source_wallet
  confirm_payment = 4,          // id, channel (named by the caller: pinned), route
  capture_payment = 5,          // id, amount (0: all authorized)
  cancel_payment = 6,           // id
  create_refund = 7,            // id, payment_id, amount (0: all that is left)
  create_topup = 8,             // id, customer_id, amount, currency, channel, instrument_kind,
                                // instrument
  create_payout = 9,            // id, customer_id, amount, currency, channel, instrument_kind,
                                // instrument
  create_wallet_transfer = 10,  // id, customer_id (from), to_customer_id, amount, currency
  attempt_result = 11,          // id (attempt id), result, cause, event_id (webhook dedupe),
                                // route (what follows a retryable or soft-declined one)
  mark_pending_unknown = 12,    // (after a restart)
  outbox_attempt = 13,          // id (event id), delivered
  operation_status = 14,        // what a PSP says of an operation (status query or webhook):
                                // channel, id (the operation's reference), op_status, result
                                // (psp_reference, error_code, fee), cause, route
  set_fees = 15,                // fees (the merchant fee schedule from keeld's config)
  set_channels = 16,            // channels (the routing channels from keeld's config)
  channel_event = 17,           // transition (a circuit breaker changed state)
  runtime_control = 18,         // control (an operator's runtime control, or a canary rollback)
};

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
};

struct Command {
  CommandKind kind = CommandKind::create_customer;
  IdempotencyScope idempotency;
  std::string id;
  std::string name;
  std::string url;
  std::string secret;
  std::string merchant_id;
  std::string customer_id;
  std::string to_customer_id;
  std::string payment_id;
  std::string channel;
  int64_t amount = 0;
  Currency currency;
  InstrumentKind instrument_kind = InstrumentKind::none;
  std::string instrument;
  bool capture_manual = false;
  bool source_wallet = false;
  AttemptResult result;
  std::string cause;
  std::string event_id;
  bool delivered = false;
  OperationState op_state = OperationState::not_found;
  FeeSchedule fees;
  std::vector<routing::ChannelDef> channels;
  routing::BreakerTransition transition;
  // Routing's decision, made by the engine from live statistics before the command is applied
  // and journaled with it (replay never asks the statistics again). `routed` false: no routing
  // (commands from before it, tests of the core alone): the legacy behaviour of each kind.
  bool routed = false;
  routing::Decision route;
  RuntimeControl control;
  // The W3C traceparent of the API request (empty: none): its object's PSP calls, status
  // queries included, carry it, also after a restart.
  std::string traceparent;
};

inline constexpr size_t kTraceparentLength = 55;  // "00-" 32 hex "-" 16 hex "-" 2 hex

void encode_command(const Command& c, std::string* out);
// Fails on bytes this version did not write (unknown kind or enum value, bad lengths, trailing
// bytes).
Status decode_command(std::string_view bytes, Command* out);

[[nodiscard]] std::string_view command_kind_name(CommandKind k);
[[nodiscard]] std::string_view operation_state_name(OperationState s);

}  // namespace keel::payments
