#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/time.h"
#include "journal/audit_chain.h"

namespace keel::journal {

// The on-disk format of records, segments and snapshots (private to journal/; docs/journal.md
// is the byte-by-byte description). Every integer is little-endian.
//
// Record header, 40 bytes, then payload_len bytes of payload:
//   0 magic u32 "KJNL"   4 header_crc u32   8 version u16   10 type u16   12 payload_len u32
//   16 seq u64   24 timestamp i64   32 payload_crc u32   36 reserved u32 (0)
// header_crc is CRC-32C of bytes 8..40; payload_crc is CRC-32C of the payload.
//
// Snapshot file: a header, then payload_len bytes of state, nothing after. Version 2 (written
// since the audit chain, 80 bytes):
//   0 magic u32 "KSNP"   4 header_crc u32   8 version u16   10 reserved u16 (0)
//   12 payload_crc u32   16 seq u64   24 timestamp i64   32 payload_len u64
//   40 chain_seq u64 (0: no chain point)   48 chain head (32 bytes, zero without a point)
// header_crc is CRC-32C of bytes 8..80. Version 1 (read only) is the first 40 bytes, its
// header_crc over bytes 8..40.
//
// All functions here are pure: they never touch files, never throw, never assert on input.

inline constexpr size_t kRecordHeaderBytes = 40;
inline constexpr size_t kSnapshotHeaderBytes = 80;  // version 2, the one written
inline constexpr size_t kSnapshotHeaderBytesV1 = 40;
inline constexpr uint32_t kRecordMagic = 0x4C4E4A4B;    // bytes "KJNL"
inline constexpr uint32_t kSnapshotMagic = 0x504E534B;  // bytes "KSNP"
inline constexpr uint16_t kFormatVersion = 1;           // of records
inline constexpr uint16_t kSnapshotVersion = 2;
// A record payload above this is a bug when writing and corruption when reading.
inline constexpr uint32_t kRecordPayloadBytesMax = uint32_t{64} << 20;

struct RecordHeader {
  uint16_t type = 0;
  uint32_t payload_len = 0;
  uint64_t seq = 0;
  Timestamp timestamp = 0;
  uint32_t payload_crc = 0;
};

// Appends a record header with payload_len and both CRCs zero; seal_record fills them in.
void append_record_header(std::string* out, uint16_t type, uint64_t seq, Timestamp timestamp);
// Seals the record whose header starts at `header_at` in `buf`: its payload is everything from
// the end of the header to the end of `buf`. REQUIRES: payload at most kRecordPayloadBytesMax.
void seal_record(std::string* buf, size_t header_at);

// The outcome of checking the record at `offset` of a segment's bytes. On success `reason` is
// empty and `header`/`payload` describe the record (payload points into the input).
struct RecordCheck {
  RecordHeader header;
  std::string_view payload;
  std::string reason;  // why the record is invalid ("payload checksum mismatch"), or empty
  [[nodiscard]] bool ok() const { return reason.empty(); }
  [[nodiscard]] size_t size() const { return kRecordHeaderBytes + payload.size(); }
};
// Checks framing and both checksums (not the sequence number, which needs context).
[[nodiscard]] RecordCheck check_record(std::string_view segment, size_t offset);
// The first offset after `from` holding a record whose magic, header checksum and payload
// checksum pass (a "plausible" record), or nullopt. Decides torn tail vs. corruption.
[[nodiscard]] std::optional<size_t> find_plausible_record(std::string_view segment, size_t from);

struct SnapshotHeader {
  uint64_t seq = 0;
  Timestamp timestamp = 0;
  uint64_t payload_len = 0;
  uint32_t payload_crc = 0;
  size_t header_bytes = kSnapshotHeaderBytes;  // where the state starts: 80, or 40 (version 1)
  std::optional<ChainPoint> chain;
};
// A version 2 header. REQUIRES: chain->seq <= seq when there is a chain point.
[[nodiscard]] std::string encode_snapshot_header(uint64_t seq, Timestamp timestamp,
                                                 std::string_view state,
                                                 const std::optional<ChainPoint>& chain);
// Decodes and checks a header of either version from the file's first bytes (give it
// min(file size, kSnapshotHeaderBytes)); on failure returns nullopt and sets *reason.
[[nodiscard]] std::optional<SnapshotHeader> decode_snapshot_header(std::string_view bytes,
                                                                   std::string* reason);

// File names: "journal-00000000000000000001.seg", "snapshot-00000000000000000042.snap".
// The tmp name of a snapshot being written is its final name plus ".tmp".
[[nodiscard]] std::string segment_file_name(uint64_t first_seq);
[[nodiscard]] std::string snapshot_file_name(uint64_t seq);
inline constexpr std::string_view kTmpSuffix = ".tmp";
// The sequence number in a well-formed name with the given prefix and suffix, else nullopt.
[[nodiscard]] std::optional<uint64_t> parse_file_name(std::string_view name,
                                                      std::string_view prefix,
                                                      std::string_view suffix);
inline constexpr std::string_view kSegmentPrefix = "journal-";
inline constexpr std::string_view kSegmentSuffix = ".seg";
inline constexpr std::string_view kSnapshotPrefix = "snapshot-";
inline constexpr std::string_view kSnapshotSuffix = ".snap";

}  // namespace keel::journal
