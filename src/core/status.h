#pragma once

#include <string>
#include <utility>

namespace keel {

// The result of an I/O-layer operation (journal, files, sockets): ok, or an error message meant
// for an operator ("journal-00000000000000000001.seg offset 4096: payload checksum mismatch").
// State machines do not use Status: they return result-code enums.
class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  static Status ok() { return Status(); }
  static Status error(std::string message) { return Status(std::move(message)); }

  [[nodiscard]] bool is_ok() const { return !failed_; }
  [[nodiscard]] const std::string& message() const { return message_; }

 private:
  explicit Status(std::string message) : failed_(true), message_(std::move(message)) {}
  bool failed_ = false;
  std::string message_;
};

}  // namespace keel
