#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace keel::journal {

class Storage;

// The audit chain: a SHA-256 hash chain over every record the storage holds, so an edited,
// dropped, reordered or inserted record is detected, and said where, even when its checksums
// were recomputed to match. docs/security.md "The audit chain" says what it proves and what not.
//
// How: every committed batch ends with one record of type kChainRecordType (written by
// Storage::commit, never by the engine) that covers the records since the previous chain record:
//
//   head = SHA-256(prev || the covered records, each in the sealed record format (format.h))
//
// where prev is the previous chain record's head (32 zero bytes for the first chain record of a
// data directory: the genesis). The covered records are the batch's and, after a torn batch,
// the whole records it left durable. Each chain record carries prev and head, so a verifier
// names the batch whose content changed and the place where the chain breaks. Snapshots carry
// the chain point they continue from (format.h), so verification starts at a snapshot once
// retention deleted the records before it.
//
// Records written before the chain existed (data directories of earlier versions) are not
// covered: the genesis covers only its own batch, and verify_chain reports where coverage starts.

// Record type the storage reserves for chain records; an engine never writes it.
inline constexpr uint16_t kChainRecordType = 0xFFFF;

using ChainDigest = std::array<uint8_t, 32>;

// A chain record's position and head: the chain as it stood after record `seq`.
struct ChainPoint {
  uint64_t seq = 0;
  ChainDigest head{};
  friend bool operator==(const ChainPoint&, const ChainPoint&) = default;
};

// The payload of a chain record (version 1, 77 bytes): u8 version, u64 first_seq, u32 count,
// prev (32 bytes), head (32 bytes). It covers records first_seq .. first_seq + count - 1 and is
// itself record first_seq + count.
struct ChainRecord {
  uint64_t first_seq = 0;
  uint32_t count = 0;
  ChainDigest prev{};
  ChainDigest head{};
};
void encode_chain_record(const ChainRecord& record, std::string* out);
// nullopt for anything but a well-formed version 1 payload.
[[nodiscard]] std::optional<ChainRecord> decode_chain_record(std::string_view payload);

[[nodiscard]] bool is_genesis(const ChainDigest& prev);
[[nodiscard]] std::string to_hex(const ChainDigest& d);
// 64 lower- or upper-case hex digits; anything else is nullopt.
[[nodiscard]] std::optional<ChainDigest> digest_from_hex(std::string_view hex);

// SHA-256 of prev, then of every record added. Thread: one at a time. Nothing here throws.
class ChainHasher {
 public:
  explicit ChainHasher(const ChainDigest& prev = {});
  ~ChainHasher();
  ChainHasher(ChainHasher&& other) noexcept;
  ChainHasher& operator=(ChainHasher&& other) noexcept;
  ChainHasher(const ChainHasher&) = delete;
  ChainHasher& operator=(const ChainHasher&) = delete;

  // Adds sealed records (whole records in the journal format, back to back).
  void add(std::string_view sealed_records);
  // Adds one record given by its parts, sealed as Storage staged it.
  void add_record(uint64_t seq, uint16_t type, int64_t timestamp, std::string_view payload);
  // The head over everything added since construction or the last reset.
  [[nodiscard]] ChainDigest head() const;
  // Starts over from a new prev.
  void reset(const ChainDigest& prev);

 private:
  struct Ctx;
  Ctx* ctx_;
  std::string scratch_;  // add_record's sealed bytes, reused
};

// An outside statement of what the chain must contain: a snapshot's chain point, or a head an
// operator anchored outside keel (GET /v1/admin/audit/head, keel audit head).
struct ChainAnchor {
  ChainPoint point;
  std::string source;  // for messages: "snapshot-...snap", "--anchor"
};

// What verify_chain found. `problems` names each break by record number; empty means every
// covered record hashes to the chain and every anchor matches.
struct ChainReport {
  uint64_t records = 0;            // records read (chain records included)
  uint64_t chain_records = 0;      // chain records checked
  uint64_t first_seq = 0;          // first record read, 0 if none
  uint64_t covered_from = 0;       // first record whose content the chain proves, 0 if none
  uint64_t uncovered_head = 0;     // records before covered_from (pre-chain, or before retention)
  uint64_t uncovered_tail = 0;     // records after the last chain record (a torn batch's)
  std::optional<ChainPoint> head;  // the last chain record
  uint64_t anchors_checked = 0;
  std::vector<std::string> problems;
  [[nodiscard]] bool ok() const { return problems.empty(); }
};

// Walks every record `storage` holds from `first_seq` on and checks the chain and `anchors`
// against them. An anchor whose record is not held is a problem when it lies after the last
// record (records were dropped from the end) and is skipped when it lies before the first.
// Fails only when the records cannot be read (the message says why); breaks in the chain are
// problems in *out, at most `problems_max` of them, the first ones.
Status verify_chain(const Storage& storage, uint64_t first_seq,
                    const std::vector<ChainAnchor>& anchors, ChainReport* out,
                    size_t problems_max = 20);

}  // namespace keel::journal
