#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/time.h"
#include "ledger/ledger.h"

namespace keel::engine {

// Journal record types. The journal stores input commands, never their results: replaying the
// records through the same state machine rebuilds the same state. Values are on disk: never
// renumber one.
enum class RecordType : uint16_t {
  create_accounts = 1,
  create_transfers = 2,
  set_account_closed = 3,
  tick = 4,  // advances logical time: expires holds whose deadline passed
};

// Payload encodings (little-endian, see docs/journal.md).
void encode_accounts(const std::vector<ledger::AccountEvent>& events, std::string* out);
void encode_transfers(const std::vector<ledger::TransferEvent>& events, std::string* out);
void encode_set_account_closed(std::string_view id, bool closed, std::string* out);

// Decoders check every length, count and enum; an error means the record is not one this
// version wrote (the checksum passed, so it is a bug or a version mismatch).
Status decode_accounts(std::string_view payload, std::vector<ledger::AccountEvent>* out);
Status decode_transfers(std::string_view payload, std::vector<ledger::TransferEvent>* out);
Status decode_set_account_closed(std::string_view payload, std::string* id, bool* closed);

// Applies one journal record to the ledger, as the writer did when it wrote it.
// `last_timestamp` is the logical clock: every record's timestamp must be greater, and it ends
// at the last timestamp the record used (a request of n events uses n). `events` (if given)
// grows by the number of account and transfer events the record carried.
Status apply_record(ledger::Ledger& ledger, RecordType type, Timestamp timestamp,
                    std::string_view payload, Timestamp* last_timestamp,
                    uint64_t* events = nullptr);

}  // namespace keel::engine
