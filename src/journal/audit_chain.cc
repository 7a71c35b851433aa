#include "journal/audit_chain.h"

#include <openssl/evp.h>

#include <map>
#include <utility>

#include "core/assert.h"
#include "core/bytes.h"
#include "core/hex.h"
#include "journal/format.h"
#include "journal/storage.h"

namespace keel::journal {
namespace {

constexpr uint8_t kChainRecordVersion = 1;
constexpr size_t kChainRecordBytes = 1 + 8 + 4 + 32 + 32;

std::string range_text(uint64_t first, uint64_t last) {
  return first == last ? "record " + std::to_string(first)
                       : "records " + std::to_string(first) + ".." + std::to_string(last);
}

}  // namespace

void encode_chain_record(const ChainRecord& record, std::string* out) {
  ByteWriter w(out);
  w.u8(kChainRecordVersion);
  w.u64(record.first_seq);
  w.u32(record.count);
  w.raw(record.prev.data(), record.prev.size());
  w.raw(record.head.data(), record.head.size());
}

std::optional<ChainRecord> decode_chain_record(std::string_view payload) {
  if (payload.size() != kChainRecordBytes) return std::nullopt;
  ByteReader r(payload);
  uint8_t version = 0;
  ChainRecord c;
  std::string_view prev, head;
  if (!r.u8(&version) || version != kChainRecordVersion || !r.u64(&c.first_seq) ||
      !r.u32(&c.count) || !r.raw(&prev, 32) || !r.raw(&head, 32) || !r.at_end()) {
    return std::nullopt;
  }
  std::copy(prev.begin(), prev.end(), c.prev.begin());
  std::copy(head.begin(), head.end(), c.head.begin());
  return c;
}

bool is_genesis(const ChainDigest& prev) { return prev == ChainDigest{}; }

std::string to_hex(const ChainDigest& d) { return keel::to_hex(d.data(), d.size()); }

std::optional<ChainDigest> digest_from_hex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  ChainDigest d{};
  for (size_t i = 0; i < d.size(); ++i) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    d[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return d;
}

struct ChainHasher::Ctx {
  EVP_MD_CTX* md = nullptr;
};

ChainHasher::ChainHasher(const ChainDigest& prev) : ctx_(new Ctx) {
  ctx_->md = EVP_MD_CTX_new();
  KEEL_ASSERT(ctx_->md != nullptr);
  reset(prev);
}

ChainHasher::~ChainHasher() {
  if (ctx_ != nullptr) EVP_MD_CTX_free(ctx_->md);
  delete ctx_;
}

ChainHasher::ChainHasher(ChainHasher&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)), scratch_(std::move(other.scratch_)) {}

ChainHasher& ChainHasher::operator=(ChainHasher&& other) noexcept {
  std::swap(ctx_, other.ctx_);
  std::swap(scratch_, other.scratch_);
  return *this;
}

void ChainHasher::reset(const ChainDigest& prev) {
  KEEL_ASSERT(ctx_ != nullptr);
  KEEL_ASSERT(EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) == 1);
  KEEL_ASSERT(EVP_DigestUpdate(ctx_->md, prev.data(), prev.size()) == 1);
}

void ChainHasher::add(std::string_view sealed_records) {
  KEEL_ASSERT(ctx_ != nullptr);
  KEEL_ASSERT(EVP_DigestUpdate(ctx_->md, sealed_records.data(), sealed_records.size()) == 1);
}

void ChainHasher::add_record(uint64_t seq, uint16_t type, int64_t timestamp,
                             std::string_view payload) {
  scratch_.clear();
  append_record_header(&scratch_, type, seq, timestamp);
  scratch_.append(payload);
  seal_record(&scratch_, 0);
  add(scratch_);
}

ChainDigest ChainHasher::head() const {
  KEEL_ASSERT(ctx_ != nullptr);
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  KEEL_ASSERT(copy != nullptr && EVP_MD_CTX_copy_ex(copy, ctx_->md) == 1);
  ChainDigest d{};
  unsigned int n = 0;
  KEEL_ASSERT(EVP_DigestFinal_ex(copy, d.data(), &n) == 1 && n == d.size());
  EVP_MD_CTX_free(copy);
  return d;
}

Status verify_chain(const Storage& storage, uint64_t first_seq,
                    const std::vector<ChainAnchor>& anchors, ChainReport* out,
                    size_t problems_max) {
  KEEL_ASSERT(out != nullptr);
  *out = ChainReport{};
  ChainReport& report = *out;
  const auto problem = [&](std::string text) {
    if (report.problems.size() < problems_max) report.problems.push_back(std::move(text));
  };
  std::multimap<uint64_t, const ChainAnchor*> anchor_at;
  for (const ChainAnchor& a : anchors) anchor_at.emplace(a.point.seq, &a);

  // Pass 1: the first chain record says where coverage starts (records before it were written
  // before the chain existed, or belong to a batch retention cut).
  std::optional<ChainRecord> first_chain;
  bool stopped = false;
  Status s = storage.replay(first_seq, [&](const RecordView& r) {
    if (r.type != kChainRecordType) return Status::ok();
    first_chain = decode_chain_record(r.payload);
    stopped = true;
    return Status::error("stop");
  });
  if (!s.is_ok() && !stopped) return s;

  // Pass 2: recompute every batch's head and follow the links.
  uint64_t cover_from = first_chain ? first_chain->first_seq : UINT64_MAX;
  bool have_prev = false;  // `prev` is the head the next chain record must continue
  ChainDigest prev{};
  if (first_chain) {
    prev = first_chain->prev;
    have_prev = !is_genesis(prev);
    for (auto [it, end] = anchor_at.equal_range(cover_from - 1); it != end; ++it) {
      ++report.anchors_checked;
      if (it->second->point.head != prev) {
        problem("the chain record after record " + std::to_string(cover_from - 1) +
                " does not continue the head " + it->second->source + " holds for it");
      }
    }
  }
  ChainHasher hasher(prev);
  bool hashing = false;      // every record since batch_first went into `hasher`
  uint64_t batch_first = 0;  // first record after the last chain record
  uint64_t last_chain_seq = 0;
  uint64_t last_read = 0;
  uint64_t since_chain = 0;
  std::map<uint64_t, bool> anchored_chain_records;  // anchors met at a chain record
  s = storage.replay(first_seq, [&](const RecordView& r) {
    ++report.records;
    if (report.first_seq == 0) report.first_seq = r.seq;
    last_read = r.seq;
    if (r.type != kChainRecordType) {
      if (!hashing && last_chain_seq == 0 && r.seq == cover_from) {
        hashing = true;
        batch_first = r.seq;
      }
      if (hashing) {
        hasher.add_record(r.seq, r.type, r.timestamp, r.payload);
      } else if (last_chain_seq == 0) {
        ++report.uncovered_head;
      }
      ++since_chain;
      return Status::ok();
    }
    ++report.chain_records;
    since_chain = 0;
    const std::optional<ChainRecord> c = decode_chain_record(r.payload);
    if (!c) {
      problem("record " + std::to_string(r.seq) + " is a chain record that cannot be read");
      hashing = false;
      have_prev = false;
      last_chain_seq = r.seq;
      return Status::ok();
    }
    const uint64_t first = c->first_seq, last = r.seq - 1;
    const bool content_known = hashing && batch_first == first;
    if (c->first_seq + c->count != r.seq) {
      problem("record " + std::to_string(r.seq) + " is a chain record for " +
              range_text(c->first_seq, c->first_seq + c->count - 1) + ", not for the records " +
              "before it: records were inserted, dropped or renumbered");
    } else if (last_chain_seq != 0 && first != last_chain_seq + 1) {
      problem("record " + std::to_string(r.seq) + ": its chain record covers from record " +
              std::to_string(first) + ", but the previous chain record is record " +
              std::to_string(last_chain_seq));
    } else if (last_chain_seq != 0 && is_genesis(c->prev)) {
      problem("record " + std::to_string(r.seq) + ": the chain starts over after record " +
              std::to_string(last_chain_seq) + "; the records before may have been replaced");
    } else if (have_prev && c->prev != prev) {
      problem("record " + std::to_string(r.seq) +
              ": the chain is broken, its chain record does not continue the head of record " +
              std::to_string(last_chain_seq) + ": a batch before " + range_text(first, last) +
              " was dropped, inserted or replaced");
    } else if (content_known && hasher.head() != c->head) {
      problem(range_text(first, last) + " do not hash to the head their chain record (record " +
              std::to_string(r.seq) + ") holds: one of them was edited, dropped, inserted or " +
              "reordered");
    }
    for (auto [it, end] = anchor_at.equal_range(r.seq); it != end; ++it) {
      ++report.anchors_checked;
      anchored_chain_records[r.seq] = true;
      if (it->second->point.head != c->head) {
        problem("record " + std::to_string(r.seq) + ": its head differs from the one " +
                it->second->source + " holds for it");
      }
    }
    if (report.covered_from == 0) report.covered_from = content_known ? first : r.seq + 1;
    prev = c->head;
    have_prev = true;
    hasher.reset(prev);
    hashing = true;
    batch_first = r.seq + 1;
    last_chain_seq = r.seq;
    report.head = ChainPoint{r.seq, c->head};
    return Status::ok();
  });
  if (!s.is_ok()) return s;
  report.uncovered_tail = last_chain_seq == 0 ? 0 : since_chain;
  for (const auto& [seq, anchor] : anchor_at) {
    if (seq > last_read) {
      problem("the journal ends at record " + std::to_string(last_read) + ", before record " +
              std::to_string(seq) + " that " + anchor->source +
              " holds a head for: records were dropped from the end");
    } else if (seq >= report.first_seq && seq != cover_from - 1 &&
               !anchored_chain_records.contains(seq)) {
      problem("record " + std::to_string(seq) + " is not a chain record, yet " + anchor->source +
              " holds a head for it");
    }
  }
  return Status::ok();
}

}  // namespace keel::journal
