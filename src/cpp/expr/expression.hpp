// pytest's match expressions (the language of `-k` and `-m`): parser, three-valued evaluator and the
// `-k` keyword rule.
//
// Reference: pytest 9.0.3, src/_pytest/mark/expression.py (Scanner, expression/expr/and_expr/not_expr,
// single_kwarg, Expression.compile/evaluate) and src/_pytest/mark/__init__.py (KeywordMatcher,
// MarkMatcher, deselect_by_keyword, deselect_by_mark, _parse_expression), run on CPython 3.11.
// Every behaviour below was checked against `Expression.compile(...)`; the tests in
// tests/cpp/test_expr.cpp hard-code those results.
//
// Grammar (expression.py's docstring; `|` alternatives are tried in order):
//   expression: expr? EOF
//   expr:       and_expr ('or' and_expr)*
//   and_expr:   not_expr ('and' not_expr)*
//   not_expr:   'not' not_expr | '(' expr ')' | ident kwargs?
//   ident:      (\w|:|\+|-|\.|\[|\]|\\|/)+          \w is Python's Unicode \w: str.isalnum() or '_'
//   kwargs:     '(' name '=' value (',' name '=' value)* ')'
//   name:       an ident that is a Python identifier (str.isidentifier()) and not a keyword
//   value:      'string' | "string" | (-)?digits | True | False | None
//
// Lexing rules (Scanner.lex):
//   * Only ' ' and '\t' are whitespace; anything else that is not `( ) = ,`, a quote or an ident
//     character fails with `unexpected character "<c>"`. Tokens need no separating blanks:
//     `not(a)and(b)` is valid; `nota`, `orange`, `andy`, `True`, `False`, `None` are plain idents.
//     Only the exact words `or`, `and`, `not` are keywords.
//   * A string literal runs to the next identical quote; there are no escapes. An unterminated one fails
//     with `closing quote "<q>" is missing` at the opening quote. When a string literal is lexed and the
//     *whole input* contains a backslash anywhere (even outside any string), lexing fails with
//     `escaping with "\" not supported in marker expression` at the first backslash. A backslash in an
//     ident is otherwise fine (`a\b` is one ident).
//   * Tokens are produced lazily, one ahead of the parser, so the first error in reading order wins:
//     `a b "` reports `expected end of input; got identifier`, not the missing quote.
//
// Errors (ExprError): `message` is pytest's SyntaxError.msg and `column` its SyntaxError.offset, i.e.
// the 1-based index of the offending *code point* (pytest shows them as
// "Wrong expression passed to '-k': <input>: at column N: <message>"). The messages are
//   expected <A>[ OR <B>...]; got <C>      token names: left parenthesis, right parenthesis, or, and,
//                                          not, identifier, end of input, =, string literal, ,
//   unexpected character "<c>"
//   closing quote "<q>" is missing
//   escaping with "\" not supported in marker expression
//   not a valid python identifier <name>          (kwarg name)
//   unexpected reserved python keyword `<name>`   (kwarg name in keyword.kwlist: True, class, ...)
//   unexpected character/s "<value>"              (kwarg value that is no int/True/False/None)
// and, after a successful parse, the errors of CPython's compile() on the generated AST, both always at
// column 1 and reported in depth-first, left-to-right order of the calls:
//   keyword argument repeated: <name>             (`m(a=1, a=2)`)
//   cannot assign to __debug__                     (`m(__debug__=1)`)
// Within one call CPython checks argument i for __debug__, then for a later duplicate, then i+1.
//
// Deviations (pytest raises something other than SyntaxError; we report an ExprError instead):
//   * Integer values with a digit that is not a decimal digit (`m(a=²)`, str.isdigit() but not
//     str.isdecimal()): pytest crashes with ValueError; we report
//     `invalid literal for int() with base 10: '<value>'` at the value's column.
//   * Integer values with more than 4300 digits (CPython's default sys.get_int_max_str_digits()):
//     pytest crashes with ValueError; we report its text ("Exceeds the limit (4300 digits) ...") at the
//     value's column. We do not follow PYTHONINTMAXSTRDIGITS.
//   * Nesting: pytest hits RecursionError at a stack-dependent depth (observed: ~300-500 parentheses,
//     ~500-990 `not`, ~1000-term and/or chains). We accept and/or chains of any length (kept n-ary)
//     and up to kMaxNesting nested `(` / `not`; one more fails with `expression is nested too deeply`
//     at the column of that token. kMaxNesting (200) stays below the shallowest depth pytest fails at, so
//     an expression we accept pytest accepts too, and the recursive parser and evaluator stay far from the
//     stack's end in every build (a limit of 1000 overflowed the stack under AddressSanitizer, whose frames
//     are larger). A deeper expression only makes the plugin import every file (selection.py).
//   * `m(self=1)` compiles in pytest, but its evaluate() raises TypeError (MatcherNameAdapter.__call__
//     has a `self` parameter); we pass `self` to the matcher like any other name.
//
// Input is UTF-8. Columns count code points, like Python's str indices. A byte that is not part of a
// valid UTF-8 sequence counts as one code point (as Python's surrogateescape decoding of argv does)
// and is never an ident character; `unexpected character` then quotes the raw byte.
// Unicode properties (\w, identifier start/continue, decimal digits, lowercase mapping, Final_Sigma)
// come from tables generated from CPython 3.11.7 = Unicode 14.0.0 (see expression.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fastcollect {

/// Three-valued truth. Unknown is for matchers that cannot decide statically.
enum class Tri : std::uint8_t { False, True, Unknown };

/// Prints "False" / "True" / "Unknown".
std::ostream& operator<<(std::ostream& os, Tri t);

/// A syntax error as pytest reports it: 1-based code point column and pytest's exact message.
struct ExprError {
  int column = 0;
  std::string message;
};

/// A keyword argument value of `name(key=value)`, exactly as pytest's single_kwarg() builds it:
///   'x' / "x"      -> kStr, the text between the quotes, verbatim (UTF-8; may contain the other quote
///                     kind, newlines, anything but the delimiting quote and a backslash)
///   123 / -0012    -> kInt, Python int (unbounded): kept as canonical decimal text ("-12", "0" for -0;
///                     decimal digits of every script are converted, `m(a=٣)` is 3)
///   True / False   -> kBool
///   None           -> kNone
/// repr() / operator<< print it like Python's repr(): 'x' (or "it's" when the text holds a ' but no "),
/// with \t \n \r and other ASCII control characters escaped; non-ASCII text is copied verbatim (Python
/// would escape the non-printable ones, e.g. U+00A0 as \xa0) except invalid UTF-8 bytes, shown as
/// Python shows their surrogateescape code points (\udcff). Ints print as their decimal text,
/// booleans as True/False, None as None.
class KwValue {
 public:
  enum class Kind : std::uint8_t { kNone, kBool, kInt, kStr };

  static KwValue none() { return KwValue(Kind::kNone, false, {}); }
  static KwValue boolean(bool b) { return KwValue(Kind::kBool, b, {}); }
  static KwValue integer(std::int64_t v);
  /// `decimal` must be canonical: optional '-', then ASCII digits without leading zeros ("0" for zero).
  static KwValue integer_decimal(std::string decimal) { return KwValue(Kind::kInt, false, std::move(decimal)); }
  static KwValue str(std::string s) { return KwValue(Kind::kStr, false, std::move(s)); }

  Kind kind() const { return kind_; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool as_bool() const { return bool_; }                    // kBool only
  const std::string& as_str() const { return text_; }       // kStr only
  const std::string& int_decimal() const { return text_; }  // kInt only
  std::optional<std::int64_t> as_int64() const;             // kInt that fits, else nullopt
  std::string repr() const;

  /// Same kind and same payload. Python's == also has True == 1 and False == 0: see python_equal.
  friend bool operator==(const KwValue& a, const KwValue& b) {
    return a.kind_ == b.kind_ && a.bool_ == b.bool_ && a.text_ == b.text_;
  }
  friend bool operator!=(const KwValue& a, const KwValue& b) { return !(a == b); }

 private:
  KwValue(Kind kind, bool b, std::string text) : kind_(kind), bool_(b), text_(std::move(text)) {}
  Kind kind_;
  bool bool_;
  std::string text_;
};

/// Python's `a == b` for these values (what MarkMatcher uses): operator== plus bool/int cross-equality.
bool python_equal(const KwValue& a, const KwValue& b);

std::ostream& operator<<(std::ostream& os, const KwValue& v);

/// Keyword arguments in source order (pytest passes them as **kwargs; names are unique after compile).
using Kwargs = std::vector<std::pair<std::string, KwValue>>;
/// matcher(ident, kwargs): kwargs is empty for a bare `ident` (pytest cannot tell `m` from `m()`, and
/// `m()` is a syntax error anyway). `ident` is the token text verbatim (UTF-8).
using ExprMatcher = std::function<Tri(std::string_view ident, const Kwargs& kwargs)>;

/// Behaviours that differ between pytest releases, chosen by the caller for the installed pytest.
struct ExprDialect {
  /// A string literal fails if a backslash appears anywhere in the input (pytest <= 9.0: Scanner.lex
  /// searches `input`); when false, only backslashes inside the literal fail (pytest >= 9.1 searches `value`).
  bool backslash_anywhere = true;
};

class Expression {
 public:
  /// Deepest accepted nesting of `(` and `not` (see Deviations above).
  static constexpr int kMaxNesting = 200;

  /// Parses `input`. On a syntax error returns std::nullopt and fills `error`. Callers implementing `-k`
  /// must first strip leading whitespace as pytest does (`config.option.keyword.lstrip()`, Python's
  /// Unicode whitespace) and treat an empty result as "no filter"; `-m` skips filtering only for the
  /// exact empty string (`-m " "` compiles to an always-False expression and deselects everything).
  static std::optional<Expression> compile(std::string_view input, ExprError& error, ExprDialect dialect = {});

  /// Kleene logic: not U = U; F and U = F; T and U = U; T or U = T; F or U = U. `and` stops at the first
  /// False operand and `or` at the first True one (pytest's short-circuit; the matcher is not called for
  /// the rest), which never changes the result. The empty expression is False without calling the
  /// matcher (pytest: "Empty expression evaluates to False").
  Tri evaluate(const ExprMatcher& matcher) const;

  /// The input, unchanged.
  const std::string& source() const { return source_; }

  /// Debug form of the tree: `a`, `m(a=1, b='x')`, `not(x)`, `and(x, y, ...)`, `or(x, y, ...)`, or
  /// `<empty>`. and/or chains are n-ary: `a or b or c` is `or(a, b, c)`.
  std::string dump() const;

 private:
  friend class ExprParser;
  enum class NodeKind : std::uint8_t { kIdent, kNot, kAnd, kOr };
  struct Node {
    NodeKind kind;
    std::uint32_t a;      // kIdent: byte offset of the ident in source_; kNot: operand; kAnd/kOr: first child
    std::uint32_t b;      // kIdent: byte length; kAnd/kOr: child count (>= 2) in children_
    std::int32_t kwargs;  // kIdent: index into kwargs_ or -1 for a bare ident
  };

  Expression() = default;
  Tri eval_node(std::uint32_t index, const ExprMatcher& matcher) const;
  void dump_node(std::uint32_t index, std::string& out) const;

  std::string source_;
  std::vector<Node> nodes_;              // children precede parents; the root is nodes_.back()
  std::vector<std::uint32_t> children_;  // operands of kAnd/kOr nodes, contiguous per node
  std::vector<Kwargs> kwargs_;           // argument lists of `name(...)` idents
};

/// pytest's KeywordMatcher rule for one `-k` ident: true if `ident.lower()` is a substring of
/// `name.lower()` for some name. Lowercasing is Python's str.lower(): full Unicode mapping of
/// CPython 3.11 / Unicode 14 (U+0130 becomes "i\u0307", U+212A KELVIN SIGN becomes 'k', a capital sigma
/// becomes final sigma at the end of a word); the search is by code point. (pytest rejects
/// `-k "name(a=1)"` with UsageError "Keyword expressions do not support call parameters." -- that is the
/// caller's job.)
bool keyword_matches(std::string_view ident, const std::vector<std::string>& names);

}  // namespace fastcollect
