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
#include "vault/bin_table.h"
#include "vault/card.h"
#include "vault/keys.h"
#include "vault/sealed_secret.h"

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

// The card vault's parsers of outside text, by the input's first byte: a BIN range file, a
// master key file (or KEEL_VAULT_KEYS), a card as typed ("number|month|year|cvc"), and stored
// secret bytes to open.
void vault_text(std::string_view in) {
  if (in.empty()) return;
  const char kind = in[0];
  in.remove_prefix(1);
  switch (kind % 4) {
    case 0: {
      vault::BinTable t;
      if (!vault::BinTable::parse(in, &t).is_ok()) return;
      for (const std::string_view digits : {"4242424242424242", "5", "0000000000000", ""}) {
        const std::string c = t.country_of(digits);
        KEEL_ASSERT(c.empty() || (c.size() == 2 && c[0] >= 'A' && c[0] <= 'Z'));
      }
      return;
    }
    case 1: {
      vault::MasterKeys k;
      if (!vault::MasterKeys::parse(in, &k).is_ok()) return;
      const std::vector<uint32_t> v = k.versions();
      KEEL_ASSERT(!v.empty() && v.back() == k.active_version() && k.key(v.back()) != nullptr);
      return;
    }
    case 2: {
      std::string_view parts[4];
      for (size_t i = 0; i < 3; ++i) {
        const size_t bar = in.find('|');
        parts[i] = in.substr(0, bar);
        in = bar == std::string_view::npos ? std::string_view() : in.substr(bar + 1);
      }
      parts[3] = in;
      const auto number = [](std::string_view s) {
        int v = 0;
        for (const char c : s.substr(0, 5)) v = v * 10 + (c >= '0' && c <= '9' ? c - '0' : 0);
        return v;
      };
      const vault::CardCheck c = vault::check_card(parts[0], number(parts[1]), number(parts[2]),
                                                   parts[3], kNowS * 1'000'000'000);
      if (c.problem == vault::CardProblem::none) {
        KEEL_ASSERT(vault::luhn_valid(c.digits) && vault::brand_of(c.digits) == c.brand &&
                    vault::length_allowed(c.brand, c.digits.size()));
      }
      return;
    }
    default: {
      static const vault::MasterKeys keys = [] {
        vault::MasterKeys k;
        KEEL_ASSERT(
            vault::MasterKeys::parse(vault::new_key_file_text(vault::system_random), &k).is_ok());
        return k;
      }();
      std::string secret;
      const Status s = vault::open_secret(keys, "webhook_secret:mch_1", in, &secret);
      if (!vault::is_sealed_secret(in)) KEEL_ASSERT(s.is_ok() && secret == in);
      return;
    }
  }
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
    Target{"vault_text", vault_text},
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
