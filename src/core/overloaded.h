#pragma once

namespace keel {

// std::visit over a variant with one lambda per alternative:
//   std::visit(Overloaded{[](const A&) {...}, [](const B&) {...}}, v);
template <typename... F>
struct Overloaded : F... {
  using F::operator()...;
};
// C++20 deduces it on its own; clang 14 (the fuzz build) still needs the guide.
template <typename... F>
Overloaded(F...) -> Overloaded<F...>;

}  // namespace keel
