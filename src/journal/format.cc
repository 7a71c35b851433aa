#include "journal/format.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "core/assert.h"
#include "core/bytes.h"
#include "core/crc32c.h"

namespace keel::journal {
namespace {

constexpr size_t kCrcFrom = 8;  // both header CRCs cover bytes 8..40
constexpr int kSeqDigits = 20;

void put_u32(std::string* buf, size_t at, uint32_t v) { std::memcpy(buf->data() + at, &v, 4); }

uint32_t header_crc(std::string_view header) {
  return crc32c(header.substr(kCrcFrom, kRecordHeaderBytes - kCrcFrom));
}

std::string hex32(uint32_t v) {
  char buf[16];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, 16);
  (void)ec;
  return "0x" + std::string(buf, end);
}

std::string numbered_name(std::string_view prefix, uint64_t seq, std::string_view suffix) {
  std::string digits = std::to_string(seq);
  std::string name(prefix);
  name.append(kSeqDigits - digits.size(), '0');
  return name.append(digits).append(suffix);
}

}  // namespace

void append_record_header(std::string* out, uint16_t type, uint64_t seq, Timestamp timestamp) {
  ByteWriter w(out);
  w.u32(kRecordMagic);
  w.u32(0);  // header_crc
  w.u16(kFormatVersion);
  w.u16(type);
  w.u32(0);  // payload_len
  w.u64(seq);
  w.i64(timestamp);
  w.u32(0);  // payload_crc
  w.u32(0);  // reserved
}

void seal_record(std::string* buf, size_t header_at) {
  KEEL_ASSERT(buf->size() >= header_at + kRecordHeaderBytes);
  const size_t payload_at = header_at + kRecordHeaderBytes;
  const size_t payload_len = buf->size() - payload_at;
  KEEL_ASSERT(payload_len <= kRecordPayloadBytesMax);
  put_u32(buf, header_at + 12, static_cast<uint32_t>(payload_len));
  put_u32(buf, header_at + 32, crc32c(std::string_view(*buf).substr(payload_at)));
  put_u32(buf, header_at + 4,
          header_crc(std::string_view(*buf).substr(header_at, kRecordHeaderBytes)));
}

RecordCheck check_record(std::string_view segment, size_t offset) {
  RecordCheck c;
  const std::string_view rest = segment.substr(offset);
  if (rest.size() < kRecordHeaderBytes) {
    c.reason = "record header cut short (" + std::to_string(rest.size()) + " of " +
               std::to_string(kRecordHeaderBytes) + " bytes)";
    return c;
  }
  ByteReader r(rest.substr(0, kRecordHeaderBytes));
  uint32_t magic = 0, crc = 0, reserved = 0;
  uint16_t version = 0;
  RecordHeader& h = c.header;
  r.u32(&magic), r.u32(&crc), r.u16(&version), r.u16(&h.type), r.u32(&h.payload_len);
  r.u64(&h.seq), r.i64(&h.timestamp), r.u32(&h.payload_crc), r.u32(&reserved);
  if (magic != kRecordMagic) {
    c.reason = "bad record magic " + hex32(magic) + " (expected " + hex32(kRecordMagic) + ")";
  } else if (crc != header_crc(rest)) {
    c.reason = "record header checksum mismatch";
  } else if (version != kFormatVersion) {
    c.reason = "unsupported record version " + std::to_string(version);
  } else if (reserved != 0) {
    c.reason = "reserved header field is not zero";
  } else if (h.payload_len > kRecordPayloadBytesMax) {
    c.reason = "payload length " + std::to_string(h.payload_len) + " above the limit " +
               std::to_string(kRecordPayloadBytesMax);
  } else if (rest.size() - kRecordHeaderBytes < h.payload_len) {
    c.reason = "payload of " + std::to_string(h.payload_len) + " bytes runs past the end of the " +
               "file (" + std::to_string(rest.size() - kRecordHeaderBytes) + " bytes left)";
  } else {
    c.payload = rest.substr(kRecordHeaderBytes, h.payload_len);
    if (crc32c(c.payload) != h.payload_crc) {
      c.reason = "payload checksum mismatch";
      c.payload = {};
    }
  }
  return c;
}

std::optional<size_t> find_plausible_record(std::string_view segment, size_t from) {
  const std::string_view magic("KJNL", 4);
  for (size_t pos = segment.find(magic, from); pos != std::string_view::npos;
       pos = segment.find(magic, pos + 1)) {
    if (pos > from && check_record(segment, pos).ok()) return pos;
  }
  return std::nullopt;
}

std::string encode_snapshot_header(uint64_t seq, Timestamp timestamp, std::string_view state,
                                   const std::optional<ChainPoint>& chain) {
  KEEL_ASSERT(!chain || (chain->seq != 0 && chain->seq <= seq));
  std::string out;
  ByteWriter w(&out);
  w.u32(kSnapshotMagic);
  w.u32(0);  // header_crc
  w.u16(kSnapshotVersion);
  w.u16(0);  // reserved
  w.u32(crc32c(state));
  w.u64(seq);
  w.i64(timestamp);
  w.u64(state.size());
  const ChainPoint point = chain.value_or(ChainPoint{});
  w.u64(point.seq);
  w.raw(point.head.data(), point.head.size());
  KEEL_ASSERT(out.size() == kSnapshotHeaderBytes);
  put_u32(&out, 4, crc32c(std::string_view(out).substr(kCrcFrom)));
  return out;
}

std::optional<SnapshotHeader> decode_snapshot_header(std::string_view bytes, std::string* reason) {
  if (bytes.size() < kSnapshotHeaderBytesV1) {
    *reason = "snapshot header cut short (" + std::to_string(bytes.size()) + " bytes)";
    return std::nullopt;
  }
  ByteReader r(bytes);
  uint32_t magic = 0, crc = 0;
  uint16_t version = 0, reserved = 0;
  SnapshotHeader h;
  r.u32(&magic), r.u32(&crc), r.u16(&version), r.u16(&reserved), r.u32(&h.payload_crc);
  r.u64(&h.seq), r.i64(&h.timestamp), r.u64(&h.payload_len);
  h.header_bytes = version == 1 ? kSnapshotHeaderBytesV1 : kSnapshotHeaderBytes;
  if (magic != kSnapshotMagic) {
    *reason = "bad snapshot magic " + hex32(magic);
    return std::nullopt;
  }
  if ((version != 1 && version != kSnapshotVersion) || reserved != 0) {
    *reason = "unsupported snapshot version " + std::to_string(version);
    return std::nullopt;
  }
  if (bytes.size() < h.header_bytes) {
    *reason = "snapshot header cut short (" + std::to_string(bytes.size()) + " bytes)";
    return std::nullopt;
  }
  if (crc != crc32c(bytes.substr(kCrcFrom, h.header_bytes - kCrcFrom))) {
    *reason = "snapshot header checksum mismatch";
    return std::nullopt;
  }
  if (version == kSnapshotVersion) {
    ChainPoint point;
    std::string_view head;
    r.u64(&point.seq), r.raw(&head, point.head.size());
    std::copy(head.begin(), head.end(), point.head.begin());
    if (point.seq > h.seq || (point.seq == 0 && point.head != ChainDigest{})) {
      *reason = "snapshot chain point at record " + std::to_string(point.seq) +
                " does not fit a snapshot at record " + std::to_string(h.seq);
      return std::nullopt;
    }
    if (point.seq != 0) h.chain = point;
  }
  return h;
}

std::string segment_file_name(uint64_t first_seq) {
  return numbered_name(kSegmentPrefix, first_seq, kSegmentSuffix);
}

std::string snapshot_file_name(uint64_t seq) {
  return numbered_name(kSnapshotPrefix, seq, kSnapshotSuffix);
}

std::optional<uint64_t> parse_file_name(std::string_view name, std::string_view prefix,
                                        std::string_view suffix) {
  if (name.size() != prefix.size() + kSeqDigits + suffix.size() || !name.starts_with(prefix) ||
      !name.ends_with(suffix)) {
    return std::nullopt;
  }
  const std::string_view digits = name.substr(prefix.size(), kSeqDigits);
  uint64_t seq = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), seq);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return seq;
}

}  // namespace keel::journal
