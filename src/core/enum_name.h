#pragma once

// Inside a `switch` over an enum class, `KEEL_ENUM_CASE(Enum, value);` returns "value": the wire
// name of a result code or state is its identifier, spelled once.
#define KEEL_ENUM_CASE(e, v) \
  case e::v:                 \
    return #v
