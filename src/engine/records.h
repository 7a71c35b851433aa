#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/time.h"
#include "journal/audit_chain.h"
#include "ledger/ledger.h"
#include "payments/core.h"
#include "security/key_ring.h"

namespace keel::engine {

// Journal record types. The journal stores input commands, never their results: replaying the
// records through the same state machine rebuilds the same state. Values are on disk: never
// renumber one.
enum class RecordType : uint16_t {
  create_accounts = 1,
  create_transfers = 2,
  set_account_closed = 3,
  tick = 4,      // advances logical time: expires holds and fires payment deadlines now due
  payments = 5,  // one payments::Command (payments/commands.h)
  security = 6,  // one security::Command (security/key_ring.h): API keys
  // Written by the storage, not the engine: the audit chain record ending every batch
  // (journal/audit_chain.h). Applying it changes nothing.
  audit_chain = journal::kChainRecordType,
};

// Everything the writer owns and the journal rebuilds.
struct State {
  ledger::Ledger ledger;
  payments::PaymentsCore payments;  // reads the history store it is given (set_history)
  security::KeyRing keys;
};

// What applying a payments record or a tick asks for after its commit (live writes only; replay
// ignores it: the engine hands every open attempt to the resolver once recovery is done).
using PaymentsOutcome = payments::ApplyOutcome;

// Payload encodings (little-endian, see docs/journal.md).
void encode_accounts(const std::vector<ledger::AccountEvent>& events, std::string* out);
void encode_transfers(const std::vector<ledger::TransferEvent>& events, std::string* out);
void encode_set_account_closed(std::string_view id, bool closed, std::string* out);

// Decoders check every length, count and enum; an error means the record is not one this
// version wrote (the checksum passed, so it is a bug or a version mismatch).
Status decode_accounts(std::string_view payload, std::vector<ledger::AccountEvent>* out);
Status decode_transfers(std::string_view payload, std::vector<ledger::TransferEvent>* out);
Status decode_set_account_closed(std::string_view payload, std::string* id, bool* closed);

// Applies one journal record to the state, as the writer did when it wrote it.
// `last_timestamp` is the logical clock: every record's timestamp must be greater, and it ends
// at the last timestamp the record used (a request of n events uses n). `events` (if given)
// grows by the number of account and transfer events the record carried.
// `payments` (if given) receives what a payments or tick record asked for.
Status apply_record(State& state, RecordType type, Timestamp timestamp, std::string_view payload,
                    Timestamp* last_timestamp, uint64_t* events = nullptr,
                    PaymentsOutcome* payments = nullptr);

// Hash of the whole state (ledger and payments, wherever each part is, memory or the history
// store): equal states, equal hashes. Fails when the history store fails or lacks a record.
[[nodiscard]] Status state_hash(const State& state, uint64_t* out);

// Snapshot contents: the ledger, the key ring and the payments core, each with its own canonical
// encoding.
void encode_state(const State& state, std::string* out);
// Also reads snapshots written before keys existed (no key ring: empty) and before payments
// existed (the ledger encoding alone). `cold` is
// the history store the ledger reads what it moved out of memory from (ledger.h; may be null
// when the snapshot holds every transfer).
Status decode_state(std::string_view bytes, SipKey index_key, const payments::CoreOptions& options,
                    const ledger::ColdTransfers* cold, State* out);

}  // namespace keel::engine
