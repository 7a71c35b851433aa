#include "engine/records.h"

#include "core/assert.h"
#include "core/bytes.h"
#include "core/codec.h"
#include "core/hash.h"

namespace keel::engine {
namespace {

void encode_metadata(ByteWriter& w, const Metadata& m) {
  w.u8(static_cast<uint8_t>(m.size()));
  for (const auto& [k, v] : m) {
    w.str16(k);
    w.str16(v);
  }
}

bool decode_metadata(ByteReader& r, Metadata* m) {
  uint8_t n = 0;
  if (!r.u8(&n) || n > kMetadataEntriesMax) return false;
  m->resize(n);
  for (auto& [k, v] : *m) {
    if (!r.str16(&k) || !r.str16(&v)) return false;
  }
  return true;
}

bool decode_count(ByteReader& r, uint32_t* n) {
  return r.u32(n) && *n <= ledger::kEventsPerRequestMax;
}

}  // namespace

void encode_accounts(const std::vector<ledger::AccountEvent>& events, std::string* out) {
  ByteWriter w(out);
  w.u32(static_cast<uint32_t>(events.size()));
  for (const auto& e : events) {
    w.str16(e.id);
    write_currency(w, e.currency);
    w.u16(e.flags);
    encode_metadata(w, e.metadata);
  }
}

void encode_transfers(const std::vector<ledger::TransferEvent>& events, std::string* out) {
  // Exact size first, then one resize and plain stores: this runs for every transfer.
  constexpr size_t kFixed = 3 * 2 + 8 + 2 + 2 + 2 + 4 + 1;  // lengths, amount, ..., metadata count
  size_t size = 4;
  for (const auto& e : events) {
    size += kFixed + e.id.size() + e.debit_account_id.size() + e.credit_account_id.size() +
            e.pending_id.size();
    for (const auto& [k, v] : e.metadata) size += 4 + k.size() + v.size();
  }
  const size_t start = out->size();
  out->resize(start + size);
  SpanWriter w(out->data() + start);
  w.u32(static_cast<uint32_t>(events.size()));
  for (const auto& e : events) {
    w.str16(e.id);
    w.str16(e.debit_account_id);
    w.str16(e.credit_account_id);
    w.i64(e.amount);
    w.u16(e.currency.index());
    w.u16(e.flags);
    w.str16(e.pending_id);
    w.u32(e.timeout_s);
    w.u8(static_cast<uint8_t>(e.metadata.size()));
    for (const auto& [k, v] : e.metadata) {
      w.str16(k);
      w.str16(v);
    }
  }
  KEEL_ASSERT(w.position() == out->data() + out->size());
}

void encode_set_account_closed(std::string_view id, bool closed, std::string* out) {
  ByteWriter w(out);
  w.str16(id);
  write_bool(w, closed);
}

Status decode_accounts(std::string_view payload, std::vector<ledger::AccountEvent>* out) {
  ByteReader r(payload);
  uint32_t n = 0;
  if (!decode_count(r, &n)) return Status::error("create_accounts: bad event count");
  out->resize(n);
  for (auto& e : *out) {
    if (!r.str16(&e.id) || !read_currency_or_none(r, &e.currency) || !r.u16(&e.flags) ||
        !decode_metadata(r, &e.metadata)) {
      return Status::error("create_accounts: malformed event");
    }
  }
  if (!r.at_end()) return Status::error("create_accounts: trailing bytes");
  return Status::ok();
}

Status decode_transfers(std::string_view payload, std::vector<ledger::TransferEvent>* out) {
  ByteReader r(payload);
  uint32_t n = 0;
  if (!decode_count(r, &n)) return Status::error("create_transfers: bad event count");
  out->resize(n);
  for (auto& e : *out) {
    if (!r.str16(&e.id) || !r.str16(&e.debit_account_id) || !r.str16(&e.credit_account_id) ||
        !r.i64(&e.amount) || !read_currency_or_none(r, &e.currency) || !r.u16(&e.flags) ||
        !r.str16(&e.pending_id) || !r.u32(&e.timeout_s) || !decode_metadata(r, &e.metadata)) {
      return Status::error("create_transfers: malformed event");
    }
  }
  if (!r.at_end()) return Status::error("create_transfers: trailing bytes");
  return Status::ok();
}

Status decode_set_account_closed(std::string_view payload, std::string* id, bool* closed) {
  ByteReader r(payload);
  if (!r.str16(id) || !read_bool(r, closed) || !r.at_end()) {
    return Status::error("set_account_closed: malformed record");
  }
  return Status::ok();
}

Status apply_record(State& state, RecordType type, Timestamp timestamp, std::string_view payload,
                    Timestamp* last_timestamp, uint64_t* events_out, PaymentsOutcome* payments) {
  // Its timestamp is its batch's last record's, so it is exempt from the clock's check too.
  if (type == RecordType::audit_chain) return Status::ok();
  if (timestamp <= *last_timestamp) return Status::error("timestamp does not increase");
  ledger::Ledger& ledger = state.ledger;
  switch (type) {
    case RecordType::create_accounts: {
      std::vector<ledger::AccountEvent> events;
      if (Status s = decode_accounts(payload, &events); !s.is_ok()) return s;
      ledger.create_accounts(events, timestamp);
      if (events_out) *events_out += events.size();
      *last_timestamp = timestamp + static_cast<Timestamp>(events.empty() ? 0 : events.size() - 1);
      return Status::ok();
    }
    case RecordType::create_transfers: {
      std::vector<ledger::TransferEvent> events;
      if (Status s = decode_transfers(payload, &events); !s.is_ok()) return s;
      ledger.create_transfers(events, timestamp);
      if (events_out) *events_out += events.size();
      *last_timestamp = timestamp + static_cast<Timestamp>(events.empty() ? 0 : events.size() - 1);
      return Status::ok();
    }
    case RecordType::set_account_closed: {
      std::string id;
      bool closed = false;
      if (Status s = decode_set_account_closed(payload, &id, &closed); !s.is_ok()) return s;
      (void)ledger.set_account_closed(id, closed, timestamp);
      *last_timestamp = timestamp;
      return Status::ok();
    }
    case RecordType::tick: {
      if (!payload.empty()) return Status::error("tick: unexpected payload");
      ledger.expire_pending(timestamp);
      Timestamp clock = timestamp;
      PaymentsOutcome out = state.payments.tick(timestamp, ledger, &clock);
      *last_timestamp = clock;
      if (payments) *payments = std::move(out);
      return Status::ok();
    }
    case RecordType::security: {
      security::Command command;
      if (Status s = security::decode_command(payload, &command); !s.is_ok()) return s;
      (void)state.keys.apply(command, timestamp);
      *last_timestamp = timestamp;
      return Status::ok();
    }
    case RecordType::payments: {
      payments::Command command;
      if (Status s = payments::decode_command(payload, &command); !s.is_ok()) return s;
      ledger.expire_pending(timestamp);
      Timestamp clock = timestamp;
      PaymentsOutcome out = state.payments.apply(command, timestamp, ledger, &clock);
      if (events_out) *events_out += 1 + out.postings;
      *last_timestamp = clock;
      if (payments) *payments = std::move(out);
      return Status::ok();
    }
    case RecordType::audit_chain:
      break;  // returned above
  }
  return Status::error("unknown record type " + std::to_string(static_cast<unsigned>(type)));
}

namespace {
// KEELSTATE1: ledger, payments. KEELSTATE2: ledger, key ring, payments.
constexpr std::string_view kStateMagic1 = "KEELSTATE1";
constexpr std::string_view kStateMagic = "KEELSTATE2";
static_assert(kStateMagic1.size() == kStateMagic.size());

void append_part(ByteWriter& w, std::string_view part) {
  w.u64(part.size());
  w.raw(part.data(), part.size());
}
}  // namespace

Status state_hash(const State& state, uint64_t* out) {
  // Hashed as it is written, part by part: the canonical encoding of the payments state (the
  // history store's records merged in) is never held whole.
  StateHasher h;
  h.u64(state.ledger.state_hash());
  // Mixed in only once a key exists, so that a state from before keys hashes as it did.
  if (!state.keys.empty()) h.u64(state.keys.state_hash());
  StateHashStream stream(&h);
  if (Status s = state.payments.encode_full([&](std::string_view piece) { stream.bytes(piece); });
      !s.is_ok()) {
    return s;
  }
  stream.finish();
  *out = h.finish();
  return Status::ok();
}

void encode_state(const State& state, std::string* out) {
  out->append(kStateMagic);
  std::string part;
  state.ledger.encode(&part);
  ByteWriter w(out);
  append_part(w, part);
  part.clear();
  state.keys.encode(&part);
  append_part(w, part);
  state.payments.encode(out);
}

Status decode_state(std::string_view bytes, SipKey index_key, const payments::CoreOptions& options,
                    const ledger::ColdTransfers* cold, State* out) {
  const bool with_keys = bytes.starts_with(kStateMagic);
  if (!with_keys && !bytes.starts_with(kStateMagic1)) {
    out->payments = payments::PaymentsCore(options);
    return ledger::Ledger::decode(bytes, index_key, cold, &out->ledger);
  }
  ByteReader r(bytes.substr(kStateMagic.size()));
  uint64_t n = 0;
  std::string_view ledger_bytes;
  if (!r.u64(&n) || !r.raw(&ledger_bytes, n)) return Status::error("snapshot: malformed ledger");
  if (Status s = ledger::Ledger::decode(ledger_bytes, index_key, cold, &out->ledger); !s.is_ok()) {
    return s;
  }
  out->keys = security::KeyRing();
  if (with_keys) {
    std::string_view keys_bytes;
    if (!r.u64(&n) || !r.raw(&keys_bytes, n)) return Status::error("snapshot: malformed keys");
    if (Status s = security::KeyRing::decode(keys_bytes, &out->keys); !s.is_ok()) return s;
  }
  std::string_view rest;
  if (!r.raw(&rest, r.remaining())) return Status::error("snapshot: malformed payments");
  return payments::PaymentsCore::decode(rest, options, &out->payments);
}

}  // namespace keel::engine
