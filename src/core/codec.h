#pragma once

#include <cstdint>
#include <optional>

#include "core/bytes.h"
#include "core/currency.h"

namespace keel {

// Field codecs shared by the journal record and snapshot formats (core/bytes.h underneath).
// Every read returns false on short or out-of-range input and then leaves `*out` untouched, so a
// corrupt record is refused, never half-applied. None of them throws.

// One byte for an enum whose values run 0..`last` (the caller names the last enumerator, so a
// value added after it is refused until the format says otherwise).
template <typename E>
[[nodiscard]] bool read_enum(ByteReader& r, E last, E* out) {
  uint8_t v = 0;
  if (!r.u8(&v) || v > static_cast<uint8_t>(last)) return false;
  *out = static_cast<E>(v);
  return true;
}

inline void write_bool(ByteWriter& w, bool b) { w.u8(b ? 1 : 0); }

// One byte, 0 or 1; any other value is refused.
[[nodiscard]] inline bool read_bool(ByteReader& r, bool* out) {
  uint8_t v = 0;
  if (!r.u8(&v) || v > 1) return false;
  *out = v == 1;
  return true;
}

// A currency is its u16 table index; Currency() (none) is written as Currency::kNone.
inline void write_currency(ByteWriter& w, Currency c) { w.u16(c.index()); }

namespace codec_internal {
inline bool read_currency(ByteReader& r, bool none_allowed, Currency* out) {
  uint16_t index = 0;
  if (!r.u16(&index)) return false;
  if (none_allowed && index == Currency::kNone) {
    *out = Currency();
    return true;
  }
  const std::optional<Currency> c = Currency::from_index(index);
  if (!c) return false;
  *out = *c;
  return true;
}
}  // namespace codec_internal

// A currency from the table; refuses Currency::kNone and any index outside the table.
[[nodiscard]] inline bool read_currency(ByteReader& r, Currency* out) {
  return codec_internal::read_currency(r, false, out);
}

// As read_currency, but Currency::kNone reads as Currency(): for fields where "no currency" is
// a value the state machine judges itself (a command before validation, a ledger event).
[[nodiscard]] inline bool read_currency_or_none(ByteReader& r, Currency* out) {
  return codec_internal::read_currency(r, true, out);
}

}  // namespace keel
