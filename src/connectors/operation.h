#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace keel::connectors {

// The operation object of docs/psp_protocol.md, as a PSP answers it (and as its webhooks carry
// it in `data`). Pure data; no I/O.

enum class OperationType : uint8_t { authorization, refund, payout, topup };

// Statuses across all types: authorization pending/authorized/captured/voided/declined; refund
// refunded/declined; payout and top-up pending/paid/failed.
enum class OperationStatus : uint8_t {
  pending,
  authorized,
  captured,
  voided,
  declined,
  refunded,
  paid,
  failed,
};

enum class DeclineType : uint8_t { hard, soft };

[[nodiscard]] std::string_view operation_type_name(OperationType t);
[[nodiscard]] std::string_view operation_status_name(OperationStatus s);
[[nodiscard]] std::string_view decline_type_name(DeclineType t);

struct Operation {
  std::string psp_reference;
  std::string reference;          // keel's attempt id (att_..., rfa_..., poa_...)
  std::string payment_reference;  // refunds only; empty otherwise
  OperationType type = OperationType::authorization;
  OperationStatus status = OperationStatus::pending;
  int64_t amount_minor = 0;
  std::string currency;  // ISO 4217 code as the PSP sent it
  int64_t captured_amount_minor = 0;
  int64_t refunded_amount_minor = 0;
  int64_t fee_minor = 0;
  std::string decline_code;                 // empty when the PSP sent null
  std::optional<DeclineType> decline_type;  // nullopt when the PSP sent null
  std::string created_at;                   // RFC 3339, as sent
  std::string updated_at;

  bool operator==(const Operation&) const = default;
};

// Parses one operation object from JSON text. nullopt if the text is not a JSON object, a
// required field (psp_reference, reference, type, status, amount, currency) is missing or of the
// wrong type, an enum value is unknown, or an amount is negative. Optional fields
// (captured_amount, refunded_amount, fee, decline_*, payment_reference, *_at) may be absent or
// null. Never throws; `json` is untrusted PSP input.
[[nodiscard]] std::optional<Operation> parse_operation(std::string_view json);

}  // namespace keel::connectors
