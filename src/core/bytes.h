#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace keel {

// Little-endian binary encoding for journal records and snapshots.
// ByteWriter appends to a std::string it does not own. ByteReader never reads past its end:
// every read returns false (and leaves its output untouched) once the input is exhausted or
// malformed, so a corrupt record cannot crash the reader.
class ByteWriter {
 public:
  explicit ByteWriter(std::string* out) : out_(out) {}

  void u8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void u16(uint16_t v) { raw(&v, sizeof v); }
  void u32(uint32_t v) { raw(&v, sizeof v); }
  void u64(uint64_t v) { raw(&v, sizeof v); }
  void i64(int64_t v) { raw(&v, sizeof v); }
  // A string of at most 65,535 bytes, prefixed by its 16-bit length.
  void str16(std::string_view s) {
    u16(static_cast<uint16_t>(s.size()));
    out_->append(s.data(), s.size());
  }
  void raw(const void* p, size_t n) { out_->append(static_cast<const char*>(p), n); }
  [[nodiscard]] size_t size() const { return out_->size(); }

 private:
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "keel's formats are little-endian");
  std::string* out_;
};

// Writes into bytes already reserved (a span of a std::string resized to the exact encoded
// size): fixed-size fields become plain moves instead of library calls. The caller computes the
// size first; KEEL_ASSERT-free because overrunning is a bug caught by `done()` in tests.
class SpanWriter {
 public:
  explicit SpanWriter(char* begin) : p_(begin) {}
  void u8(uint8_t v) { *p_++ = static_cast<char>(v); }
  void u16(uint16_t v) { fixed(v); }
  void u32(uint32_t v) { fixed(v); }
  void i64(int64_t v) { fixed(v); }
  void str16(std::string_view s) {
    u16(static_cast<uint16_t>(s.size()));
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  [[nodiscard]] const char* position() const { return p_; }

 private:
  template <typename T>
  void fixed(T v) {
    std::memcpy(p_, &v, sizeof v);
    p_ += sizeof v;
  }
  char* p_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}

  bool u8(uint8_t* v) { return fixed(v); }
  bool u16(uint16_t* v) { return fixed(v); }
  bool u32(uint32_t* v) { return fixed(v); }
  bool u64(uint64_t* v) { return fixed(v); }
  bool i64(int64_t* v) { return fixed(v); }
  bool str16(std::string* s) {
    uint16_t n = 0;
    if (!u16(&n) || in_.size() - pos_ < n) return false;
    s->assign(in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool raw(std::string_view* s, size_t n) {
    if (in_.size() - pos_ < n) return false;
    *s = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  [[nodiscard]] bool at_end() const { return pos_ == in_.size(); }
  [[nodiscard]] size_t remaining() const { return in_.size() - pos_; }
  [[nodiscard]] size_t position() const { return pos_; }

 private:
  template <typename T>
  bool fixed(T* v) {
    if (in_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace keel
