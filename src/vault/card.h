#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/time.h"

namespace keel::vault {

// Card numbers as a customer types them, checked before anything is stored (docs/security.md,
// "The card vault"). Pure functions: no state, no I/O, thread-safe.

// The card schemes keel recognizes by their number's prefix. Values are on disk (payment
// methods in the journal and snapshots): never renumber, only append.
enum class CardBrand : uint8_t {
  visa = 0,
  mastercard = 1,
  amex = 2,
  discover = 3,
  jcb = 4,
  unionpay = 5,
  diners = 6,
};
inline constexpr CardBrand kCardBrandLast = CardBrand::diners;
[[nodiscard]] std::string_view card_brand_name(CardBrand b);

// What is wrong with a card, each one its own 400 at the API.
enum class CardProblem : uint8_t {
  none = 0,
  number_invalid,     // not 12 to 19 digits (spaces and hyphens between them are dropped)
  number_checksum,    // the Luhn check digit is wrong
  brand_unsupported,  // no scheme above has the prefix
  length_invalid,     // the scheme does not issue numbers of this length
  expiry_invalid,     // month outside 1-12, or year outside 2000-2099
  expired,            // the month of expiry has ended
  cvc_invalid,        // not 3 digits (4 for amex); an empty CVC is allowed
};
[[nodiscard]] std::string_view card_problem_text(CardProblem p);

struct CardCheck {
  CardProblem problem = CardProblem::none;
  CardBrand brand = CardBrand::visa;  // when problem is none
  std::string digits;                 // the number without separators, when problem is none
};

// Checks a card's number, expiry and CVC as of `now` (a card is valid through the last
// instant of its expiry month, UTC).
[[nodiscard]] CardCheck check_card(std::string_view number, int exp_month, int exp_year,
                                   std::string_view cvc, Timestamp now);

// The Luhn (mod 10) check over a string of digits. REQUIRES: only digits, at least 2.
[[nodiscard]] bool luhn_valid(std::string_view digits);

// The scheme of a digits-only number by its prefix (nullopt: none keel knows), and whether the
// scheme issues numbers of its length.
[[nodiscard]] std::optional<CardBrand> brand_of(std::string_view digits);
[[nodiscard]] bool length_allowed(CardBrand brand, size_t length);

}  // namespace keel::vault
