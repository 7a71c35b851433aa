#include "fuzz/targets.h"

#include <array>
#include <string>

#include "api/auth.h"
#include "api/json_codec.h"
#include "connectors/webhook_signature.h"
#include "core/assert.h"
#include "engine/records.h"
#include "journal/audit_chain.h"
#include "journal/format.h"
#include "payments/commands.h"
#include "security/key_ring.h"
#include "security/request_signing.h"

namespace keel::fuzz {
namespace {

constexpr int64_t kNowS = 1'800'000'000;

void json_accounts(std::string_view in) { (void)api::parse_account_events(in); }

void json_transfers(std::string_view in) { (void)api::parse_transfer_events(in); }

// A PSP's webhook: the header is the input's first line, the body the rest.
void psp_webhook_signature(std::string_view in) {
  const size_t nl = in.find('\n');
  const std::string_view header = in.substr(0, nl);
  const std::string_view body = nl == std::string_view::npos ? "" : in.substr(nl + 1);
  (void)connectors::verify_webhook("whsec_fuzz", header, body, kNowS);
}

// A request's Keel-Signature: parsed, and checked against a request whose body is the input.
void keel_signature(std::string_view in) {
  const auto h = security::parse_signature_header(in);
  if (h) KEEL_ASSERT(h->nonce.size() >= security::kNonceLengthMin && h->v1.size() == 64);
  static const security::GeneratedKey key = security::generate_key();
  (void)security::verify_request(key.hash, in, "POST", "/v1/accounts?b=1&a=2", in, kNowS);
}

// An Authorization header against a ring with one key of each role.
void authorization(std::string_view in) {
  static const security::KeyRing ring = [] {
    security::KeyRing r;
    Timestamp t = 1;
    for (uint8_t i = 0; i <= static_cast<uint8_t>(security::kRoleLast); ++i) {
      const auto role = static_cast<security::Role>(i);
      const security::GeneratedKey k = security::generate_key();
      (void)r.apply(
          security::cmd::CreateKey{k.id, role, security::role_has_owner(role) ? "mch_1" : "",
                                   k.hash, ""},
          t++);
    }
    return r;
  }();
  const api::Authenticated a = api::authenticate(in, ring, kNowS * 1'000'000'000);
  KEEL_ASSERT(a.caller.has_value() != a.error.has_value());
}

// What decodes re-encodes to bytes that decode to the same command.
template <typename Command, typename Decode, typename Encode>
void round_trip(std::string_view in, Decode decode, Encode encode) {
  Command c;
  if (!decode(in, &c).is_ok()) return;
  std::string again;
  encode(c, &again);
  Command back;
  KEEL_ASSERT(decode(again, &back).is_ok());
  KEEL_ASSERT(back == c);
}

// A payments command as journaled.
void payments_command(std::string_view in) {
  round_trip<payments::Command>(
      in, [](std::string_view b, payments::Command* c) { return payments::decode_command(b, c); },
      [](const payments::Command& c, std::string* out) { payments::encode_command(c, out); });
}

// A key ring command as journaled.
void security_command(std::string_view in) {
  round_trip<security::Command>(
      in, [](std::string_view b, security::Command* c) { return security::decode_command(b, c); },
      [](const security::Command& c, std::string* out) { security::encode_command(c, out); });
}

// A journal record of any type (the first byte), applied to an empty state: refused or applied,
// never a crash.
void journal_record(std::string_view in) {
  if (in.empty()) return;
  engine::State state;
  Timestamp last = 0;
  (void)engine::apply_record(state, static_cast<engine::RecordType>(in[0] % 8), 1'000'000,
                             in.substr(1), &last);
}

// Bytes of a journal file: a record's framing, a snapshot file's header, an audit chain
// record's payload. What decodes is consistent: a chain record re-encodes to the same bytes.
void journal_bytes(std::string_view in) {
  const journal::RecordCheck r = journal::check_record(in, 0);
  if (r.ok()) KEEL_ASSERT(r.size() <= in.size());
  std::string reason;
  if (const auto h = journal::decode_snapshot_header(in, &reason)) {
    KEEL_ASSERT(h->header_bytes <= in.size());
    KEEL_ASSERT(!h->chain || (h->chain->seq != 0 && h->chain->seq <= h->seq));
  } else {
    KEEL_ASSERT(!reason.empty());
  }
  if (const auto c = journal::decode_chain_record(in)) {
    std::string again;
    journal::encode_chain_record(*c, &again);
    KEEL_ASSERT(again == in);
  }
}

// A snapshot's state (no history store): refused or decoded, never a crash.
void snapshot(std::string_view in) {
  engine::State state;
  (void)engine::decode_state(in, SipKey{1, 2}, payments::CoreOptions{}, nullptr, &state);
}

constexpr std::array kTargets = {
    Target{"json_accounts", json_accounts},
    Target{"json_transfers", json_transfers},
    Target{"psp_webhook_signature", psp_webhook_signature},
    Target{"keel_signature", keel_signature},
    Target{"authorization", authorization},
    Target{"payments_command", payments_command},
    Target{"security_command", security_command},
    Target{"journal_record", journal_record},
    Target{"snapshot", snapshot},
    Target{"journal_bytes", journal_bytes},
};

}  // namespace

std::span<const Target> targets() { return kTargets; }

const Target* find_target(std::string_view name) {
  for (const Target& t : kTargets) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

}  // namespace keel::fuzz
