#include "vault/card.h"

#include <ctime>

#include "core/assert.h"

namespace keel::vault {
namespace {

// The first `n` digits of `digits` as a number (n <= digits.size(), n <= 9).
int prefix(std::string_view digits, size_t n) {
  int v = 0;
  for (size_t i = 0; i < n; ++i) v = v * 10 + (digits[i] - '0');
  return v;
}

bool in(int v, int lo, int hi) { return v >= lo && v <= hi; }

}  // namespace

std::string_view card_brand_name(CardBrand b) {
  switch (b) {
    case CardBrand::visa:
      return "visa";
    case CardBrand::mastercard:
      return "mastercard";
    case CardBrand::amex:
      return "amex";
    case CardBrand::discover:
      return "discover";
    case CardBrand::jcb:
      return "jcb";
    case CardBrand::unionpay:
      return "unionpay";
    case CardBrand::diners:
      return "diners";
  }
  return "unknown";
}

std::string_view card_problem_text(CardProblem p) {
  switch (p) {
    case CardProblem::none:
      return "";
    case CardProblem::number_invalid:
      return "the card number must be 12 to 19 digits";
    case CardProblem::number_checksum:
      return "the card number's check digit is wrong";
    case CardProblem::brand_unsupported:
      return "the card number belongs to no supported scheme";
    case CardProblem::length_invalid:
      return "the card's scheme issues no numbers of this length";
    case CardProblem::expiry_invalid:
      return "exp_month must be 1 to 12 and exp_year 2000 to 2099";
    case CardProblem::expired:
      return "the card has expired";
    case CardProblem::cvc_invalid:
      return "the CVC must be 3 digits (4 for American Express)";
  }
  return "";
}

bool luhn_valid(std::string_view digits) {
  KEEL_ASSERT(digits.size() >= 2);
  int sum = 0;
  bool twice = false;
  for (size_t i = digits.size(); i-- > 0;) {
    KEEL_ASSERT(digits[i] >= '0' && digits[i] <= '9');
    int d = digits[i] - '0';
    if (twice) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

std::optional<CardBrand> brand_of(std::string_view digits) {
  if (digits.size() < 6) return std::nullopt;
  const int p1 = prefix(digits, 1);
  const int p2 = prefix(digits, 2);
  const int p3 = prefix(digits, 3);
  const int p4 = prefix(digits, 4);
  const int p6 = prefix(digits, 6);
  // Most specific first: 622126-622925 is Discover inside UnionPay's 62.
  if (p2 == 34 || p2 == 37) return CardBrand::amex;
  if (in(p4, 3528, 3589)) return CardBrand::jcb;
  if (p2 == 36 || p2 == 38 || p2 == 39 || in(p3, 300, 305)) return CardBrand::diners;
  if (p4 == 6011 || p2 == 65 || in(p3, 644, 649) || in(p6, 622126, 622925)) {
    return CardBrand::discover;
  }
  if (p2 == 62) return CardBrand::unionpay;
  if (in(p2, 51, 55) || in(p4, 2221, 2720)) return CardBrand::mastercard;
  if (p1 == 4) return CardBrand::visa;
  return std::nullopt;
}

bool length_allowed(CardBrand brand, size_t length) {
  switch (brand) {
    case CardBrand::visa:
      return length == 13 || length == 16 || length == 19;
    case CardBrand::mastercard:
      return length == 16;
    case CardBrand::amex:
      return length == 15;
    case CardBrand::discover:
    case CardBrand::jcb:
    case CardBrand::unionpay:
      return length >= 16 && length <= 19;
    case CardBrand::diners:
      return length >= 14 && length <= 19;
  }
  return false;
}

CardCheck check_card(std::string_view number, int exp_month, int exp_year, std::string_view cvc,
                     Timestamp now) {
  CardCheck out;
  std::string digits;
  for (size_t i = 0; i < number.size(); ++i) {
    const char c = number[i];
    if (c >= '0' && c <= '9') {
      digits.push_back(c);
      continue;
    }
    // A separator only between two digits.
    const bool between = (c == ' ' || c == '-') && i > 0 && i + 1 < number.size() &&
                         number[i - 1] >= '0' && number[i - 1] <= '9';
    if (!between) {
      out.problem = CardProblem::number_invalid;
      return out;
    }
  }
  if (digits.size() < 12 || digits.size() > 19) {
    out.problem = CardProblem::number_invalid;
    return out;
  }
  if (!luhn_valid(digits)) {
    out.problem = CardProblem::number_checksum;
    return out;
  }
  const std::optional<CardBrand> brand = brand_of(digits);
  if (!brand) {
    out.problem = CardProblem::brand_unsupported;
    return out;
  }
  if (!length_allowed(*brand, digits.size())) {
    out.problem = CardProblem::length_invalid;
    return out;
  }
  if (exp_month < 1 || exp_month > 12 || exp_year < 2000 || exp_year > 2099) {
    out.problem = CardProblem::expiry_invalid;
    return out;
  }
  const std::time_t secs = static_cast<std::time_t>(now / kNanosPerSecond);
  std::tm utc{};
  gmtime_r(&secs, &utc);
  const int this_month = (utc.tm_year + 1900) * 12 + utc.tm_mon;  // tm_mon: 0-11
  if (exp_year * 12 + (exp_month - 1) < this_month) {
    out.problem = CardProblem::expired;
    return out;
  }
  const size_t cvc_length = *brand == CardBrand::amex ? 4 : 3;
  bool cvc_ok = cvc.empty() || cvc.size() == cvc_length;
  for (const char c : cvc) cvc_ok = cvc_ok && c >= '0' && c <= '9';
  if (!cvc_ok) {
    out.problem = CardProblem::cvc_invalid;
    return out;
  }
  out.brand = *brand;
  out.digits = std::move(digits);
  return out;
}

}  // namespace keel::vault
