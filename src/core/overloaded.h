#pragma once

namespace keel {

// std::visit over a variant with one lambda per alternative:
//   std::visit(Overloaded{[](const A&) {...}, [](const B&) {...}}, v);
template <typename... F>
struct Overloaded : F... {
  using F::operator()...;
};

}  // namespace keel
