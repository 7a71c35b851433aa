#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace keel {

// Builds JSON text by appending, for answers that state machines render themselves (the stored
// responses of idempotency keys and outbox events must be byte-for-byte the same on replay, so
// they cannot depend on a library's formatting choices). Output is compact, keys in the order
// written, strings escaped per RFC 8259 (control characters as \u00XX; other bytes as they are,
// so the caller passes UTF-8).
//
// Usage: JsonWriter w; w.begin_object(); w.key("id"); w.string("pay_1"); w.end_object();
// The writer tracks commas; nesting mistakes are the caller's bug (checked in tests, not here).
class JsonWriter {
 public:
  void begin_object() {
    separate();
    out_.push_back('{');
    first_.push_back(true);
  }
  void end_object() {
    out_.push_back('}');
    first_.pop_back();
  }
  void begin_array() {
    separate();
    out_.push_back('[');
    first_.push_back(true);
  }
  void end_array() {
    out_.push_back(']');
    first_.pop_back();
  }
  void key(std::string_view k) {
    separate();
    quote(k);
    out_.push_back(':');
    after_key_ = true;
  }
  void string(std::string_view s) {
    separate();
    quote(s);
  }
  void number(int64_t v) {
    separate();
    out_ += std::to_string(v);
  }
  void boolean(bool v) {
    separate();
    out_ += v ? "true" : "false";
  }
  void null() {
    separate();
    out_ += "null";
  }
  // A value that is already JSON text (REQUIRES: valid JSON).
  void raw(std::string_view json) {
    separate();
    out_.append(json);
  }
  // Shorthands for "key": value.
  void field(std::string_view k, std::string_view v) {
    key(k);
    string(v);
  }
  void field(std::string_view k, const char* v) { field(k, std::string_view(v)); }
  void field(std::string_view k, int64_t v) {
    key(k);
    number(v);
  }
  void field(std::string_view k, bool v) {
    key(k);
    boolean(v);
  }
  // "key": "v", or "key": null when v is empty.
  void field_or_null(std::string_view k, std::string_view v) {
    key(k);
    v.empty() ? null() : string(v);
  }

  [[nodiscard]] const std::string& str() const { return out_; }
  [[nodiscard]] std::string take() { return std::move(out_); }

 private:
  void separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (first_.empty()) return;
    if (!first_.back()) out_.push_back(',');
    first_.back() = false;
  }
  void quote(std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    out_.push_back('"');
    for (const char c : s) {
      const auto u = static_cast<unsigned char>(c);
      switch (c) {
        case '"':
          out_ += "\\\"";
          break;
        case '\\':
          out_ += "\\\\";
          break;
        case '\n':
          out_ += "\\n";
          break;
        case '\r':
          out_ += "\\r";
          break;
        case '\t':
          out_ += "\\t";
          break;
        default:
          if (u < 0x20) {
            out_ += "\\u00";
            out_.push_back(kHex[u >> 4]);
            out_.push_back(kHex[u & 0xf]);
          } else {
            out_.push_back(c);
          }
      }
    }
    out_.push_back('"');
  }

  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

}  // namespace keel
