// libFuzzer target: pytest's match-expression parser and evaluator on arbitrary bytes (expr/).
//
// Properties checked beyond "no crash, no sanitizer report": compile() either succeeds or fills an error
// with a column inside the input (1-based, at most one past the last code point); a compiled expression
// evaluates to the same value twice (it is pure), for a matcher that is true, false and unknown by name.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "expr/expression.hpp"

using fastcollect::Expression;
using fastcollect::ExprError;
using fastcollect::Kwargs;
using fastcollect::Tri;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  for (const bool anywhere : {true, false}) {
    ExprError error;
    const auto expr = Expression::compile(input, error, {anywhere});
    if (!expr) {
      if (error.column < 1 || static_cast<std::size_t>(error.column) > size + 1) std::abort();
      continue;
    }
    const auto matcher = [](std::string_view ident, const Kwargs& kwargs) {
      const auto h = (ident.size() + kwargs.size() + (ident.empty() ? 0U : static_cast<unsigned char>(ident[0]))) % 3;
      return h == 0 ? Tri::False : h == 1 ? Tri::True : Tri::Unknown;
    };
    if (expr->evaluate(matcher) != expr->evaluate(matcher)) std::abort();
  }
  return 0;
}
