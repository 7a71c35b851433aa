#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace keel {

// An ISO 4217 currency (active codes, no precious metals or test codes).
// A Currency is a 16-bit index into a fixed, sorted table, so it is cheap to copy, compare and
// store. A default-constructed Currency is `none`: valid() is false and code() is empty.
class Currency {
 public:
  constexpr Currency() = default;

  // The currency for an upper-case three-letter code, or nullopt if it is not in the table.
  [[nodiscard]] static std::optional<Currency> from_code(std::string_view code);
  // The currency at a table index read back from a journal or snapshot; nullopt if out of range.
  [[nodiscard]] static std::optional<Currency> from_index(uint16_t index);

  [[nodiscard]] constexpr bool valid() const { return index_ != kNone; }
  [[nodiscard]] constexpr uint16_t index() const { return index_; }
  [[nodiscard]] std::string_view code() const;
  // Number of minor-unit digits: 2 for USD, 0 for JPY, 3 for KWD.
  [[nodiscard]] int exponent() const;

  friend constexpr bool operator==(Currency a, Currency b) = default;

  static constexpr uint16_t kNone = 0xFFFF;

 private:
  constexpr explicit Currency(uint16_t index) : index_(index) {}
  uint16_t index_ = kNone;
};

}  // namespace keel
