// Tests for expr/expression: pytest's -k/-m match-expression language (parser, error messages and
// columns, kwargs values, three-valued evaluation) and the -k keyword rule.
//
// Every pytest behaviour below was produced by pytest 9.0.3 on CPython 3.11.7 and hard-coded, e.g.
//   python3 -c "from _pytest.mark.expression import Expression as E; E.compile('a(b=1,)')"
//     -> SyntaxError offset 7, msg 'expected identifier; got right parenthesis'
//   python3 -c "from _pytest.mark.expression import Expression as E
//   print(E.compile('a or b and c').evaluate(lambda n, **kw: n in {'a'}))"      -> True
//   python3 -c "print('k' in '\u212a'.lower())"                                  -> True
// The truth tables are over the name sets {}, {a}, {b}, {c}, {a,b}, {a,c}, {b,c}, {a,b,c}.

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "expr/expression.hpp"

namespace fastcollect {
namespace {

using namespace std::string_literals;

std::optional<Expression> compile_ok(std::string_view input) {
  ExprError error;
  auto e = Expression::compile(input, error);
  EXPECT_TRUE(e.has_value()) << "input: " << input << " -> column " << error.column << ": " << error.message;
  return e;
}

// Boolean matcher: an ident matches when it is in `names` (kwargs ignored).
ExprMatcher in_set(const std::vector<std::string>& names) {
  return [names](std::string_view ident, const Kwargs&) {
    for (const auto& n : names) {
      if (n == ident) return Tri::True;
    }
    return Tri::False;
  };
}

const std::vector<std::vector<std::string>> kNameSets = {{},         {"a"},      {"b"},      {"c"},
                                                         {"a", "b"}, {"a", "c"}, {"b", "c"}, {"a", "b", "c"}};

// ---------------------------------------------------------------------------------------------------
// Valid expressions

struct TruthCase {
  std::string input;
  std::string expected;  // one T/F per entry of kNameSets
};

TEST(ExprEval, TruthTablesMatchPytest) {
  const std::vector<TruthCase> cases = {
      {"a", "FTFFTTFT"},
      {"not a", "TFTTFFTF"},
      {"not not a", "FTFFTTFT"},
      {"not not not a", "TFTTFFTF"},
      {"a and b", "FFFFTFFT"},
      {"a or b", "FTTFTTTT"},
      {"a or b and c", "FTFFTTTT"},
      {"a and b or c", "FFFTTTTT"},
      {"(a or b) and c", "FFFFFTTT"},
      {"a or (b and c)", "FTFFTTTT"},
      {"not a and b", "FFTFFFTF"},
      {"not (a and b)", "TTTTFTTF"},
      {"not a or b", "TFTTTFTT"},
      {"a and not b", "FTFFFTFF"},
      {"a or not b", "TTFTTTFT"},
      {"not a and not b or c", "TFFTFTTT"},
      {"((a))", "FTFFTTFT"},
      {"(((a or b)))", "FTTFTTTT"},
      {"((a) and ((b)))", "FFFFTFFT"},
      {"a and b and c", "FFFFFFFT"},
      {"a or b or c", "FTTTTTTT"},
      {"a and (b or c)", "FFFFTTFT"},
      {"(a and b) or (a and c)", "FFFFTTFT"},
      {"not (a or b) and not c", "TFFFFFFF"},
      {"not(a)and(b)or(c)", "FFTTFTTT"},
      {"a or(b)and(c)", "FTFFTTTT"},
      {"(a)or(b)", "FTTFTTTT"},
      {"not(not(a))", "FTFFTTFT"},
      {"a and not not b", "FFFFTFFT"},
      {"not a or not b or not c", "TTTTTTTF"},
      {"a and b or b and c or a and c", "FFFFTTTT"},
      {" a  and\tb ", "FFFFTFFT"},
      {"\ta\t or \tc", "FTFTTTTT"},
      {"not (not (a or not b) and c)", "TTTTTTFT"},
      {"(a or b) and (b or c) and (a or c)", "FFFFTTTT"},
      {"a and a", "FTFFTTFT"},
      {"a or not a", "TTTTTTTT"},
  };
  for (const auto& c : cases) {
    auto e = compile_ok(c.input);
    if (!e) continue;
    ASSERT_EQ(c.expected.size(), kNameSets.size());
    for (std::size_t i = 0; i < kNameSets.size(); ++i) {
      const Tri want = c.expected[i] == 'T' ? Tri::True : Tri::False;
      EXPECT_EQ(e->evaluate(in_set(kNameSets[i])), want) << "input: '" << c.input << "' name set #" << i;
    }
  }
}

TEST(ExprParse, TreeShapeShowsPrecedenceAndAssociativity) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a", "a"},
      {"a or b and c", "or(a, and(b, c))"},
      {"a and b or c", "or(and(a, b), c)"},
      {"not a and b", "and(not(a), b)"},
      {"not a or b", "or(not(a), b)"},
      {"not (a and b)", "not(and(a, b))"},
      {"not not a", "not(not(a))"},
      {"a or b or c", "or(a, b, c)"},
      {"a and b and c and d", "and(a, b, c, d)"},
      {"(a or b) or c", "or(or(a, b), c)"},
      {"a or (b or c)", "or(a, or(b, c))"},
      {"((a))", "a"},
      {"(((a or b)))", "or(a, b)"},
      {"a and (b or c) and d", "and(a, or(b, c), d)"},
      {"a or b and c or d", "or(a, and(b, c), d)"},
      {"not(a)and(b)or(c)", "or(and(not(a), b), c)"},
      {"not a or not b and not c", "or(not(a), and(not(b), not(c)))"},
      {"m(a=1)", "m(a=1)"},
      {"m(a=1, b='x', c=True, d=None)", "m(a=1, b='x', c=True, d=None)"},
      {"m(a=\"it's\")", "m(a=\"it's\")"},
      {"not m(a=-0) or n", "or(not(m(a=0)), n)"},
      {"nota or orange and andy", "or(nota, and(orange, andy))"},
      {"True and False or None", "or(and(True, False), None)"},
  };
  for (const auto& [input, dump] : cases) {
    auto e = compile_ok(input);
    if (e) {
      EXPECT_EQ(e->dump(), dump) << "input: " << input;
    }
  }
}

// Each of these compiles to a single ident that reaches the matcher verbatim: keyword prefixes, the
// case-sensitivity of keywords, True/False/None (plain idents for pytest), every punctuation character
// the ident regex allows, digits, and Unicode \w.
TEST(ExprParse, IdentsReachTheMatcherVerbatim) {
  const std::vector<std::string> idents = {
      "nota",
      "notx",
      "orange",
      "andy",
      "or_",
      "not_",
      "and1",
      "Or",
      "AND",
      "NOT",
      "True",
      "False",
      "None",
      "ornot",
      "a:b",
      "a+b",
      "a-b",
      "a.b",
      "a[b]",
      "a\\b",
      "a/b",
      "tests/test_x.py::TestC::test_m[1-2]",
      "test_x[a.b-c+d]",
      "-",
      "+",
      "[",
      "]",
      ":",
      "::",
      ".",
      "/",
      "\\",
      "0",
      "007",
      "-1",
      "_",
      "é",
      "ﬁ",
      "Σσς",
      "²",
      "٣",
      "test_é[ü]",
  };
  for (const auto& ident : idents) {
    auto e = compile_ok(ident);
    if (!e) continue;
    EXPECT_EQ(e->dump(), ident);
    std::vector<std::string> seen;
    const Tri t = e->evaluate([&](std::string_view id, const Kwargs& kwargs) {
      seen.emplace_back(id);
      EXPECT_TRUE(kwargs.empty());
      return Tri::True;
    });
    EXPECT_EQ(t, Tri::True) << ident;
    EXPECT_EQ(seen, std::vector<std::string>{ident});
  }
}

TEST(ExprParse, KeywordsAreOnlyTheExactLowercaseWords) {
  // `nota`, `orange`, `andy` are idents even right next to keywords and parentheses.
  auto e = compile_ok("nota and not orange or(andy)");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->dump(), "or(and(nota, not(orange)), andy)");
  EXPECT_EQ(e->evaluate(in_set({"nota"})), Tri::True);
  EXPECT_EQ(e->evaluate(in_set({"nota", "orange"})), Tri::False);
  EXPECT_EQ(e->evaluate(in_set({"andy"})), Tri::True);
  // `Not`, `AND`, `OR` are idents, so these are "expected end of input" errors, not operators.
  ExprError error;
  EXPECT_FALSE(Expression::compile("a AND b", error));
  EXPECT_EQ(error.column, 3);
  EXPECT_EQ(error.message, "expected end of input; got identifier");
}

TEST(ExprParse, EmptyAndBlankExpressionsAreFalse) {
  for (const std::string input : {"", " ", "\t", " \t  \t"}) {
    auto e = compile_ok(input);
    if (!e) continue;
    EXPECT_EQ(e->source(), input);
    EXPECT_EQ(e->dump(), "<empty>");
    int calls = 0;
    EXPECT_EQ(e->evaluate([&](std::string_view, const Kwargs&) {
      ++calls;
      return Tri::True;
    }),
              Tri::False);
    EXPECT_EQ(calls, 0);
  }
}

TEST(ExprParse, SourceIsKeptVerbatim) {
  auto e = compile_ok("  not  a\tor b  ");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->source(), "  not  a\tor b  ");
  Expression copy = *e;  // copies stay valid on their own
  e.reset();
  EXPECT_EQ(copy.source(), "  not  a\tor b  ");
  EXPECT_EQ(copy.dump(), "or(not(a), b)");
  EXPECT_EQ(copy.evaluate(in_set({"a"})), Tri::False);
}

// ---------------------------------------------------------------------------------------------------
// Keyword arguments

struct KwargsCase {
  std::string input;
  std::string ident;  // of the first call
  Kwargs kwargs;
};

TEST(ExprKwargs, ValuesArePytestsPythonValues) {
  const std::vector<KwargsCase> cases = {
      {"m(a=1)", "m", {{"a", KwValue::integer_decimal("1")}}},
      {"m(a=-1)", "m", {{"a", KwValue::integer_decimal("-1")}}},
      {"m(a=0)", "m", {{"a", KwValue::integer_decimal("0")}}},
      {"m(a=-0)", "m", {{"a", KwValue::integer_decimal("0")}}},
      {"m(a=007)", "m", {{"a", KwValue::integer_decimal("7")}}},
      {"m(a=-007)", "m", {{"a", KwValue::integer_decimal("-7")}}},
      {"m(a=00)", "m", {{"a", KwValue::integer_decimal("0")}}},
      {"m(a=٣)", "m", {{"a", KwValue::integer_decimal("3")}}},
      {"m(a=-٣٤)", "m", {{"a", KwValue::integer_decimal("-34")}}},
      {"m(a=1٣)", "m", {{"a", KwValue::integer_decimal("13")}}},
      {"m(a=𝟙𝟚)", "m", {{"a", KwValue::integer_decimal("12")}}},
      {"m(a=૧૨)", "m", {{"a", KwValue::integer_decimal("12")}}},
      {"m(a=9223372036854775807)", "m", {{"a", KwValue::integer_decimal("9223372036854775807")}}},
      {"m(a=-9223372036854775808)", "m", {{"a", KwValue::integer_decimal("-9223372036854775808")}}},
      {"m(a=9223372036854775808)", "m", {{"a", KwValue::integer_decimal("9223372036854775808")}}},
      {"m(a=123456789012345678901234567890)", "m", {{"a", KwValue::integer_decimal("123456789012345678901234567890")}}},
      {"m(a=\"x\")", "m", {{"a", KwValue::str("x")}}},
      {"m(a='x')", "m", {{"a", KwValue::str("x")}}},
      {"m(a=\"\")", "m", {{"a", KwValue::str("")}}},
      {"m(a='')", "m", {{"a", KwValue::str("")}}},
      {"m(a=\"x y\")", "m", {{"a", KwValue::str("x y")}}},
      {"m(a='it\"s')", "m", {{"a", KwValue::str("it\"s")}}},
      {"m(a=\"it's\")", "m", {{"a", KwValue::str("it's")}}},
      {"m(a=\"a=b, c\")", "m", {{"a", KwValue::str("a=b, c")}}},
      {"m(a=\"(or)\")", "m", {{"a", KwValue::str("(or)")}}},
      {"m(a=\"é€\")", "m", {{"a", KwValue::str("é€")}}},
      {"m(a=\"x\ny\")", "m", {{"a", KwValue::str("x\ny")}}},
      {"m(a=\"\t\")", "m", {{"a", KwValue::str("\t")}}},
      {"m(a=True)", "m", {{"a", KwValue::boolean(true)}}},
      {"m(a=False)", "m", {{"a", KwValue::boolean(false)}}},
      {"m(a=None)", "m", {{"a", KwValue::none()}}},
      {"m(a=\"x\", b=True)", "m", {{"a", KwValue::str("x")}, {"b", KwValue::boolean(true)}}},
      {"m(a=None, b=False, c=-5, d='s')",
       "m",
       {{"a", KwValue::none()},
        {"b", KwValue::boolean(false)},
        {"c", KwValue::integer_decimal("-5")},
        {"d", KwValue::str("s")}}},
      {"m(a=1,b=2)", "m", {{"a", KwValue::integer_decimal("1")}, {"b", KwValue::integer_decimal("2")}}},
      {"m(a=1 ,b=2)", "m", {{"a", KwValue::integer_decimal("1")}, {"b", KwValue::integer_decimal("2")}}},
      {"m(a=1 , b=2 )", "m", {{"a", KwValue::integer_decimal("1")}, {"b", KwValue::integer_decimal("2")}}},
      {"m( a = 1 )", "m", {{"a", KwValue::integer_decimal("1")}}},
      {"m (a=1)", "m", {{"a", KwValue::integer_decimal("1")}}},
      {"m(\ta\t=\t1\t)", "m", {{"a", KwValue::integer_decimal("1")}}},
      {"m(é=1)", "m", {{"é", KwValue::integer_decimal("1")}}},
      {"m(ﬁ=1)", "m", {{"ﬁ", KwValue::integer_decimal("1")}}},
      {"m(ℌ=1)", "m", {{"ℌ", KwValue::integer_decimal("1")}}},
      {"m(_=1)", "m", {{"_", KwValue::integer_decimal("1")}}},
      {"m(_1=1)", "m", {{"_1", KwValue::integer_decimal("1")}}},
      {"m(match=1)", "m", {{"match", KwValue::integer_decimal("1")}}},
      {"m(case=1)", "m", {{"case", KwValue::integer_decimal("1")}}},
      {"m(type=1)", "m", {{"type", KwValue::integer_decimal("1")}}},
      {"m(print=1)", "m", {{"print", KwValue::integer_decimal("1")}}},
      {"m(__debug=1)", "m", {{"__debug", KwValue::integer_decimal("1")}}},
      {"m(Σ=1)", "m", {{"Σ", KwValue::integer_decimal("1")}}},
      {"True(a=1)", "True", {{"a", KwValue::integer_decimal("1")}}},
      {"x-y(a=1)", "x-y", {{"a", KwValue::integer_decimal("1")}}},
      {"not m(a=1)", "m", {{"a", KwValue::integer_decimal("1")}}},
      {"m(a=1) and n(b='x') or o", "m", {{"a", KwValue::integer_decimal("1")}}},
  };
  for (const auto& c : cases) {
    auto e = compile_ok(c.input);
    if (!e) continue;
    bool first = true;
    e->evaluate([&](std::string_view ident, const Kwargs& kwargs) {
      if (first) {
        EXPECT_EQ(ident, c.ident) << c.input;
        EXPECT_EQ(kwargs, c.kwargs) << c.input;
        first = false;
      }
      return Tri::Unknown;
    });
    EXPECT_FALSE(first) << "matcher never called for " << c.input;
  }
}

TEST(ExprKwargs, BareIdentGetsNoKwargsAndCallsKeepSourceOrder) {
  auto e = compile_ok("m(b=1, a=2) or m or n(z='z')");
  ASSERT_TRUE(e);
  std::vector<std::pair<std::string, Kwargs>> calls;
  EXPECT_EQ(e->evaluate([&](std::string_view ident, const Kwargs& kwargs) {
    calls.emplace_back(std::string(ident), kwargs);
    return Tri::Unknown;
  }),
            Tri::Unknown);
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].first, "m");
  EXPECT_EQ(calls[0].second, (Kwargs{{"b", KwValue::integer(1)}, {"a", KwValue::integer(2)}}));
  EXPECT_EQ(calls[1].first, "m");
  EXPECT_TRUE(calls[1].second.empty());
  EXPECT_EQ(calls[2].first, "n");
  EXPECT_EQ(calls[2].second, (Kwargs{{"z", KwValue::str("z")}}));
}

TEST(ExprKwargs, KwValueAccessorsAndRepr) {
  EXPECT_EQ(KwValue::none().kind(), KwValue::Kind::kNone);
  EXPECT_TRUE(KwValue::none().is_none());
  EXPECT_EQ(KwValue::boolean(true).kind(), KwValue::Kind::kBool);
  EXPECT_TRUE(KwValue::boolean(true).as_bool());
  EXPECT_FALSE(KwValue::boolean(false).as_bool());
  EXPECT_EQ(KwValue::integer(-5).kind(), KwValue::Kind::kInt);
  EXPECT_EQ(KwValue::integer(-5).int_decimal(), "-5");
  EXPECT_EQ(KwValue::str("x").as_str(), "x");

  // Python's repr(), checked with python3 -c "print(repr(...))".
  EXPECT_EQ(KwValue::none().repr(), "None");
  EXPECT_EQ(KwValue::boolean(true).repr(), "True");
  EXPECT_EQ(KwValue::boolean(false).repr(), "False");
  EXPECT_EQ(KwValue::integer(0).repr(), "0");
  EXPECT_EQ(KwValue::integer(-12).repr(), "-12");
  EXPECT_EQ(KwValue::integer_decimal("123456789012345678901234567890").repr(), "123456789012345678901234567890");
  EXPECT_EQ(KwValue::str("x").repr(), "'x'");
  EXPECT_EQ(KwValue::str("").repr(), "''");
  EXPECT_EQ(KwValue::str("it's").repr(), "\"it's\"");
  EXPECT_EQ(KwValue::str("a\"b").repr(), "'a\"b'");
  EXPECT_EQ(KwValue::str("'\"").repr(), "'\\'\"'");
  EXPECT_EQ(KwValue::str("\n\t\r\x01\x7f").repr(), "'\\n\\t\\r\\x01\\x7f'");
  EXPECT_EQ(KwValue::str("\0"s).repr(), "'\\x00'");
  EXPECT_EQ(KwValue::str("a\\b").repr(), "'a\\\\b'");
  EXPECT_EQ(KwValue::str("é€").repr(), "'é€'");
  EXPECT_EQ(KwValue::str("\xff").repr(), "'\\udcff'");  // invalid UTF-8 byte, as surrogateescape shows it

  std::ostringstream os;
  os << KwValue::str("x") << ' ' << KwValue::integer(3) << ' ' << Tri::Unknown << ' ' << Tri::True << ' ' << Tri::False;
  EXPECT_EQ(os.str(), "'x' 3 Unknown True False");
}

TEST(ExprKwargs, Int64View) {
  EXPECT_EQ(KwValue::integer_decimal("0").as_int64(), 0);
  EXPECT_EQ(KwValue::integer_decimal("-7").as_int64(), -7);
  EXPECT_EQ(KwValue::integer_decimal("9223372036854775807").as_int64(), INT64_MAX);
  EXPECT_EQ(KwValue::integer_decimal("-9223372036854775808").as_int64(), INT64_MIN);
  EXPECT_EQ(KwValue::integer_decimal("9223372036854775808").as_int64(), std::nullopt);
  EXPECT_EQ(KwValue::integer_decimal("-9223372036854775809").as_int64(), std::nullopt);
  EXPECT_EQ(KwValue::integer_decimal("123456789012345678901234567890").as_int64(), std::nullopt);
  EXPECT_EQ(KwValue::integer(INT64_MIN).int_decimal(), "-9223372036854775808");
  EXPECT_EQ(KwValue::str("1").as_int64(), std::nullopt);
  EXPECT_EQ(KwValue::boolean(true).as_int64(), std::nullopt);
}

TEST(ExprKwargs, PythonEquality) {
  // Python: True == 1, False == 0, 1 != '1', None != False.
  EXPECT_TRUE(python_equal(KwValue::boolean(true), KwValue::integer(1)));
  EXPECT_TRUE(python_equal(KwValue::integer(0), KwValue::boolean(false)));
  EXPECT_FALSE(python_equal(KwValue::boolean(true), KwValue::integer(2)));
  EXPECT_FALSE(python_equal(KwValue::boolean(true), KwValue::boolean(false)));
  EXPECT_FALSE(python_equal(KwValue::none(), KwValue::boolean(false)));
  EXPECT_FALSE(python_equal(KwValue::str("1"), KwValue::integer(1)));
  EXPECT_TRUE(python_equal(KwValue::str("x"), KwValue::str("x")));
  EXPECT_TRUE(python_equal(KwValue::none(), KwValue::none()));
  // operator== is structural.
  EXPECT_NE(KwValue::boolean(true), KwValue::integer(1));
  EXPECT_EQ(KwValue::integer(-3), KwValue::integer_decimal("-3"));
}

// pytest compiles `m(self=1)` but its evaluate() raises TypeError (MatcherNameAdapter.__call__ takes
// `self`); we pass the argument through. Documented deviation.
TEST(ExprKwargs, SelfIsAnOrdinaryName) {
  auto e = compile_ok("m(self=1)");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->dump(), "m(self=1)");
}

// ---------------------------------------------------------------------------------------------------
// Errors

struct ErrorCase {
  std::string input;
  int column;
  std::string message;
};

void expect_errors(const std::vector<ErrorCase>& cases) {
  for (const auto& c : cases) {
    ExprError error;
    auto e = Expression::compile(c.input, error);
    EXPECT_FALSE(e.has_value()) << "input '" << c.input << "' compiled to " << (e ? e->dump() : "");
    EXPECT_EQ(error.column, c.column) << "input '" << c.input << "'";
    EXPECT_EQ(error.message, c.message) << "input '" << c.input << "'";
  }
}

TEST(ExprErrors, MessagesAndColumnsMatchPytest) {
  expect_errors({
      {"(", 2, "expected not OR left parenthesis OR identifier; got end of input"},
      {")", 1, "expected not OR left parenthesis OR identifier; got right parenthesis"},
      {"()", 2, "expected not OR left parenthesis OR identifier; got right parenthesis"},
      {"(()", 3, "expected not OR left parenthesis OR identifier; got right parenthesis"},
      {"())", 2, "expected not OR left parenthesis OR identifier; got right parenthesis"},
      {"((a)", 5, "expected right parenthesis; got end of input"},
      {"(a))", 4, "expected end of input; got right parenthesis"},
      {"a)", 2, "expected end of input; got right parenthesis"},
      {")a", 1, "expected not OR left parenthesis OR identifier; got right parenthesis"},
      {"a b", 3, "expected end of input; got identifier"},
      {"a (b)", 5, "expected =; got right parenthesis"},
      {"a not", 3, "expected end of input; got not"},
      {"a not b", 3, "expected end of input; got not"},
      {"not", 4, "expected not OR left parenthesis OR identifier; got end of input"},
      {"not not", 8, "expected not OR left parenthesis OR identifier; got end of input"},
      {"and", 1, "expected not OR left parenthesis OR identifier; got and"},
      {"or", 1, "expected not OR left parenthesis OR identifier; got or"},
      {"a and", 6, "expected not OR left parenthesis OR identifier; got end of input"},
      {"a or", 5, "expected not OR left parenthesis OR identifier; got end of input"},
      {"and a", 1, "expected not OR left parenthesis OR identifier; got and"},
      {"or a", 1, "expected not OR left parenthesis OR identifier; got or"},
      {"a and or b", 7, "expected not OR left parenthesis OR identifier; got or"},
      {"a or and b", 6, "expected not OR left parenthesis OR identifier; got and"},
      {"a and and b", 7, "expected not OR left parenthesis OR identifier; got and"},
      {"a not and b", 3, "expected end of input; got not"},
      {"a (", 4, "expected identifier; got end of input"},
      {"(a", 3, "expected right parenthesis; got end of input"},
      {"not (", 6, "expected not OR left parenthesis OR identifier; got end of input"},
      {"not )", 5, "expected not OR left parenthesis OR identifier; got right parenthesis"},
      {"(a or)", 6, "expected not OR left parenthesis OR identifier; got right parenthesis"},
      {"(and)", 2, "expected not OR left parenthesis OR identifier; got and"},
      {"a and ()", 8, "expected not OR left parenthesis OR identifier; got right parenthesis"},
      {"(a)b", 4, "expected end of input; got identifier"},
      {"(a)(b)", 4, "expected end of input; got left parenthesis"},
      {"(a)not b", 4, "expected end of input; got not"},
      {"a,b", 2, "expected end of input; got ,"},
      {"a=b", 2, "expected end of input; got ="},
      {",", 1, "expected not OR left parenthesis OR identifier; got ,"},
      {"=", 1, "expected not OR left parenthesis OR identifier; got ="},
      {"'x'", 1, "expected not OR left parenthesis OR identifier; got string literal"},
      {"\"x\"", 1, "expected not OR left parenthesis OR identifier; got string literal"},
      {"a 'x'", 3, "expected end of input; got string literal"},
      {"a == b", 3, "expected end of input; got ="},
      {"a && b", 3, "unexpected character \"&\""},
      {"a || b", 3, "unexpected character \"|\""},
      {"!a", 1, "unexpected character \"!\""},
      {"a!", 2, "unexpected character \"!\""},
      {"~a", 1, "unexpected character \"~\""},
      {"-k a", 4, "expected end of input; got identifier"},
      {"a;b", 2, "unexpected character \";\""},
      {"a$", 2, "unexpected character \"$\""},
      {"$", 1, "unexpected character \"$\""},
      {"#", 1, "unexpected character \"#\""},
      {"*", 1, "unexpected character \"*\""},
      {"?", 1, "unexpected character \"?\""},
      {"a*", 2, "unexpected character \"*\""},
      {"x?", 2, "unexpected character \"?\""},
      {"@m", 1, "unexpected character \"@\""},
      {"a%", 2, "unexpected character \"%\""},
      {"{a}", 1, "unexpected character \"{\""},
      {"<a>", 1, "unexpected character \"<\""},
      {"a`", 2, "unexpected character \"`\""},
      {"a\nb", 2, "unexpected character \"\n\""},
      {"a\rb", 2, "unexpected character \"\r\""},
      {"\n", 1, "unexpected character \"\n\""},
      {"a\013b", 2, "unexpected character \"\013\""},
      {"a\014b", 2, "unexpected character \"\014\""},
      {"a\u00a0b", 2, "unexpected character \"\u00a0\""},
      {"a\u3000b", 2, "unexpected character \"\u3000\""},
      {"€", 1, "unexpected character \"€\""},
      {"a €", 3, "unexpected character \"€\""},
      {"é€", 2, "unexpected character \"€\""},
      {"a·b", 2, "unexpected character \"·\""},
      {"\"", 1, "closing quote \"\"\" is missing"},
      {"'", 1, "closing quote \"'\" is missing"},
      {"a \"", 3, "closing quote \"\"\" is missing"},
      {"a '", 3, "closing quote \"'\" is missing"},
      {"a \"x", 3, "closing quote \"\"\" is missing"},
      {"a(b='x", 5, "closing quote \"'\" is missing"},
      {"a(b=\"x)", 5, "closing quote \"\"\" is missing"},
      {"a(b='x\")", 5, "closing quote \"'\" is missing"},
      {"a b \"", 3, "expected end of input; got identifier"},
      {"((\"", 3, "closing quote \"\"\" is missing"},
      {"not \"", 5, "closing quote \"\"\" is missing"},
      {"a(b=\"x\\y\")", 7, "escaping with \"\\\" not supported in marker expression"},
      {"a\\b and c(d=\"x\")", 2, "escaping with \"\\\" not supported in marker expression"},
      {"m(a=\"x\") and \\", 14, "escaping with \"\\\" not supported in marker expression"},
      {"a(b=\"x\") \\", 10, "escaping with \"\\\" not supported in marker expression"},
      {"a(b=\"\\\")", 6, "escaping with \"\\\" not supported in marker expression"},
      {"a(b='x') or c\\d", 14, "escaping with \"\\\" not supported in marker expression"},
      {"a(", 3, "expected identifier; got end of input"},
      {"a()", 3, "expected identifier; got right parenthesis"},
      {"a(b)", 4, "expected =; got right parenthesis"},
      {"a(b", 4, "expected =; got end of input"},
      {"a(b=", 5, "expected identifier; got end of input"},
      {"a(b=)", 5, "expected identifier; got right parenthesis"},
      {"a(=1)", 3, "expected identifier; got ="},
      {"a(b=1", 6, "expected right parenthesis; got end of input"},
      {"a(b=1,", 7, "expected identifier; got end of input"},
      {"a(b=1, ", 8, "expected identifier; got end of input"},
      {"a(b=1,)", 7, "expected identifier; got right parenthesis"},
      {"a(b=1, c", 9, "expected =; got end of input"},
      {"a(b=1, c=", 10, "expected identifier; got end of input"},
      {"a(b=1 c=2)", 7, "expected right parenthesis; got identifier"},
      {"a(b=1,,c=2)", 7, "expected identifier; got ,"},
      {"a(b=1)(c=2)", 7, "expected end of input; got left parenthesis"},
      {"a(b=1) c", 8, "expected end of input; got identifier"},
      {"a(b=1)b", 7, "expected end of input; got identifier"},
      {"a(b=c)", 5, "unexpected character/s \"c\""},
      {"a(b=x-y)", 5, "unexpected character/s \"x-y\""},
      {"a(b=+1)", 5, "unexpected character/s \"+1\""},
      {"a(b=--1)", 5, "unexpected character/s \"--1\""},
      {"a(b=-)", 5, "unexpected character/s \"-\""},
      {"a(b=1-2)", 5, "unexpected character/s \"1-2\""},
      {"a(b=-1-)", 5, "unexpected character/s \"-1-\""},
      {"a(b=1.5)", 5, "unexpected character/s \"1.5\""},
      {"a(b=1e3)", 5, "unexpected character/s \"1e3\""},
      {"a(b=0x10)", 5, "unexpected character/s \"0x10\""},
      {"a(b=1_000)", 5, "unexpected character/s \"1_000\""},
      {"a(b=true)", 5, "unexpected character/s \"true\""},
      {"a(b=TRUE)", 5, "unexpected character/s \"TRUE\""},
      {"a(b=none)", 5, "unexpected character/s \"none\""},
      {"a(b=null)", 5, "unexpected character/s \"null\""},
      {"a(b=not)", 5, "expected identifier; got not"},
      {"a(b=and)", 5, "expected identifier; got and"},
      {"a(b=or)", 5, "expected identifier; got or"},
      {"a(b=()", 5, "expected identifier; got left parenthesis"},
      {"a(b=(1))", 5, "expected identifier; got left parenthesis"},
      {"a(b=1:)", 5, "unexpected character/s \"1:\""},
      {"a(b=[1])", 5, "unexpected character/s \"[1]\""},
      {"a(b=='x')", 5, "expected identifier; got ="},
      {"a(b=\"x\"c=1)", 8, "expected right parenthesis; got identifier"},
      {"a(b=\"x\"\"y\")", 8, "expected right parenthesis; got string literal"},
      {"a(b=a(c=1))", 5, "unexpected character/s \"a\""},
      {"a(or=1)", 3, "expected identifier; got or"},
      {"a(and=1)", 3, "expected identifier; got and"},
      {"a(not=1)", 3, "expected identifier; got not"},
      {"a(True=1)", 3, "unexpected reserved python keyword `True`"},
      {"a(False=1)", 3, "unexpected reserved python keyword `False`"},
      {"a(None=1)", 3, "unexpected reserved python keyword `None`"},
      {"a(class=1)", 3, "unexpected reserved python keyword `class`"},
      {"a(if=1)", 3, "unexpected reserved python keyword `if`"},
      {"a(lambda=1)", 3, "unexpected reserved python keyword `lambda`"},
      {"a(async=1)", 3, "unexpected reserved python keyword `async`"},
      {"a(await=1)", 3, "unexpected reserved python keyword `await`"},
      {"a(yield=1)", 3, "unexpected reserved python keyword `yield`"},
      {"a(1b=1)", 3, "not a valid python identifier 1b"},
      {"a(1=1)", 3, "not a valid python identifier 1"},
      {"a(b-c=1)", 3, "not a valid python identifier b-c"},
      {"a(b.c=1)", 3, "not a valid python identifier b.c"},
      {"a(b:c=1)", 3, "not a valid python identifier b:c"},
      {"a([b]=1)", 3, "not a valid python identifier [b]"},
      {"a(-b=1)", 3, "not a valid python identifier -b"},
      {"a(²=1)", 3, "not a valid python identifier ²"},
      {"a(a²=1)", 3, "not a valid python identifier a²"},
      {"a(٣=1)", 3, "not a valid python identifier ٣"},
      {"a(b\\c=1)", 3, "not a valid python identifier b\\c"},
      {"a('b'=1)", 3, "expected identifier; got string literal"},
      {"a(\"b\"=1)", 3, "expected identifier; got string literal"},
      {"a(b=1, b=2)", 1, "keyword argument repeated: b"},
      {"a(b=1, c=2, b=3)", 1, "keyword argument repeated: b"},
      {"x or a(b=1, b=2)", 1, "keyword argument repeated: b"},
      {"a(x=1,y=1,y=2,x=2)", 1, "keyword argument repeated: x"},
      {"a(x=1,x=2) or b(y=1,y=2)", 1, "keyword argument repeated: x"},
      {"a(__debug__=1)", 1, "cannot assign to __debug__"},
      {"a(x=1, __debug__=1, x=2)", 1, "keyword argument repeated: x"},
      {"a(x=1, y=1, __debug__=1, y=2)", 1, "keyword argument repeated: y"},
      {"a(__debug__=1, x=1, x=2)", 1, "cannot assign to __debug__"},
      {"a(b=1) or a(__debug__=1) or c(d=1, d=2)", 1, "cannot assign to __debug__"},
      {"not a(b=1,b=1)", 1, "keyword argument repeated: b"},
      {"a(b=1, b=2) )", 13, "expected end of input; got right parenthesis"},
      {"a(b=1,b=2) and c(", 18, "expected identifier; got end of input"},
      {"  (", 4, "expected not OR left parenthesis OR identifier; got end of input"},
      {" a b", 4, "expected end of input; got identifier"},
      {"\t\t)", 3, "expected not OR left parenthesis OR identifier; got right parenthesis"},
      {"a   and", 8, "expected not OR left parenthesis OR identifier; got end of input"},
  });
}

TEST(ExprErrors, NulIsAnUnexpectedCharacter) { expect_errors({{"a\0b"s, 2, "unexpected character \"\0\""s}}); }

// Columns count code points as Python's str indices do. A byte that is not valid UTF-8 is one column
// (Python sees argv through surrogateescape) and never an ident character.
TEST(ExprErrors, ColumnsCountCodePoints) {
  expect_errors({
      {"é b", 3, "expected end of input; got identifier"},
      {"\xF0\x9D\x9F\x99 )", 3, "expected end of input; got right parenthesis"},  // U+1D7D9, one column
      {"éé(ü=", 6, "expected identifier; got end of input"},
      {"m(a='€€') €", 11, "unexpected character \"€\""},
      {"a\xff", 2, "unexpected character \"\xff\""},
      {"é\xff", 2, "unexpected character \"\xff\""},
      {"\xe2\x82 b", 1, "unexpected character \"\xe2\""},  // truncated sequence: each byte on its own
      {"\xc3", 1, "unexpected character \"\xc3\""},
      {"\xed\xa0\x80", 1, "unexpected character \"\xed\""},  // encoded surrogate: invalid
      {"\xc0\xaf", 1, "unexpected character \"\xc0\""},      // overlong: invalid
      {"m(a=\"\xff\xfe\") b", 11, "expected end of input; got identifier"},
      {"m(a='é') \\", 10, "escaping with \"\\\" not supported in marker expression"},
  });
  // Invalid bytes inside a string literal are kept.
  auto e = compile_ok("m(a=\"\xff\")");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->dump(), "m(a='\\udcff')");
}

// pytest raises ValueError (not SyntaxError) from int() for these; we report int()'s message at the
// value's column. Documented deviation.
TEST(ExprErrors, IntConversionFailures) {
  expect_errors({
      {"m(a=²)", 5, "invalid literal for int() with base 10: '²'"},
      {"m(a=-¹)", 5, "invalid literal for int() with base 10: '-¹'"},
      {"m(a=1¹)", 5, "invalid literal for int() with base 10: '1¹'"},
      {"x and m(a=①)", 11, "invalid literal for int() with base 10: '①'"},
  });
  const std::string max_digits(4300, '1');
  auto ok = compile_ok("m(a=-" + max_digits + ")");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->dump(), "m(a=-" + max_digits + ")");
  const std::string limit_message =
      "Exceeds the limit (4300 digits) for integer string conversion: value has 4301 digits; use "
      "sys.set_int_max_str_digits() to increase the limit";
  expect_errors({
      {"m(a=" + max_digits + "1)", 5, limit_message},
      {"m(a=" + std::string(4301, '0') + ")", 5, limit_message},  // leading zeros count
      {"m(a=-" + max_digits + "2)", 5, limit_message},
  });
}

TEST(ExprErrors, NestingLimit) {
  const int n = Expression::kMaxNesting;
  const auto parens = [](int k) { return std::string(k, '(') + "a" + std::string(k, ')'); };
  std::string nots;
  for (int i = 0; i < n; ++i) nots += "not ";
  auto deep = compile_ok(parens(n));
  ASSERT_TRUE(deep);
  EXPECT_EQ(deep->evaluate(in_set({"a"})), Tri::True);
  auto negated = compile_ok(nots + "a");
  ASSERT_TRUE(negated);
  EXPECT_EQ(negated->evaluate(in_set({"a"})), n % 2 == 0 ? Tri::True : Tri::False);
  expect_errors({
      {parens(n + 1), n + 1, "expression is nested too deeply"},
      {nots + "not a", 4 * n + 1, "expression is nested too deeply"},
      {"(" + nots + "a)", 4 * n - 2, "expression is nested too deeply"},
  });
  // and/or chains are flat: no limit.
  std::string chain = "a";
  for (int i = 0; i < 20000; ++i) chain += i % 2 ? " and a" : " or a";
  auto flat = compile_ok(chain);
  ASSERT_TRUE(flat);
  EXPECT_EQ(flat->evaluate(in_set({"a"})), Tri::True);
}

// ---------------------------------------------------------------------------------------------------
// Three-valued evaluation

constexpr Tri F = Tri::False;
constexpr Tri T = Tri::True;
constexpr Tri U = Tri::Unknown;
constexpr Tri kAll[] = {F, T, U};

// Independent Kleene oracle (no short-circuit).
Tri k_not(Tri a) { return a == U ? U : a == T ? F : T; }
Tri k_and(Tri a, Tri b) { return a == F || b == F ? F : a == T && b == T ? T : U; }
Tri k_or(Tri a, Tri b) { return a == T || b == T ? T : a == F && b == F ? F : U; }

ExprMatcher assign(Tri a, Tri b, Tri c) {
  return [=](std::string_view ident, const Kwargs&) {
    return ident == "a" ? a : ident == "b" ? b : ident == "c" ? c : U;
  };
}

TEST(ExprTri, OperatorTables) {
  auto e_not = compile_ok("not a");
  auto e_and = compile_ok("a and b");
  auto e_or = compile_ok("a or b");
  ASSERT_TRUE(e_not && e_and && e_or);
  EXPECT_EQ(e_not->evaluate(assign(F, U, U)), T);
  EXPECT_EQ(e_not->evaluate(assign(T, U, U)), F);
  EXPECT_EQ(e_not->evaluate(assign(U, U, U)), U);
  // Rows a = F, T, U; columns b = F, T, U.
  const Tri and_table[3][3] = {{F, F, F}, {F, T, U}, {F, U, U}};
  const Tri or_table[3][3] = {{F, T, U}, {T, T, T}, {U, T, U}};
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      EXPECT_EQ(e_and->evaluate(assign(kAll[i], kAll[j], U)), and_table[i][j]) << kAll[i] << " and " << kAll[j];
      EXPECT_EQ(e_or->evaluate(assign(kAll[i], kAll[j], U)), or_table[i][j]) << kAll[i] << " or " << kAll[j];
    }
  }
}

TEST(ExprTri, CompoundExpressionsAgreeWithTheOracleOnAll27Assignments) {
  struct Case {
    std::string input;
    Tri (*oracle)(Tri, Tri, Tri);
  };
  const std::vector<Case> cases = {
      {"a or b and c", [](Tri a, Tri b, Tri c) { return k_or(a, k_and(b, c)); }},
      {"a and b or c", [](Tri a, Tri b, Tri c) { return k_or(k_and(a, b), c); }},
      {"not a and b", [](Tri a, Tri b, Tri) { return k_and(k_not(a), b); }},
      {"not (a or b) and not c", [](Tri a, Tri b, Tri c) { return k_and(k_not(k_or(a, b)), k_not(c)); }},
      {"a and b and c", [](Tri a, Tri b, Tri c) { return k_and(k_and(a, b), c); }},
      {"a or b or c", [](Tri a, Tri b, Tri c) { return k_or(k_or(a, b), c); }},
      {"c or a and not b or not c", [](Tri a, Tri b, Tri c) { return k_or(k_or(c, k_and(a, k_not(b))), k_not(c)); }},
      {"not not (a and (b or not c))", [](Tri a, Tri b, Tri c) { return k_not(k_not(k_and(a, k_or(b, k_not(c))))); }},
      {"a or not a", [](Tri a, Tri, Tri) { return k_or(a, k_not(a)); }},  // U for a = U (Kleene, not classical)
      {"(a and b) or (a and c) or (b and c)",
       [](Tri a, Tri b, Tri c) { return k_or(k_or(k_and(a, b), k_and(a, c)), k_and(b, c)); }},
  };
  for (const auto& c : cases) {
    auto e = compile_ok(c.input);
    if (!e) continue;
    for (Tri a : kAll) {
      for (Tri b : kAll) {
        for (Tri cc : kAll) {
          EXPECT_EQ(e->evaluate(assign(a, b, cc)), c.oracle(a, b, cc))
              << c.input << " with a=" << a << " b=" << b << " c=" << cc;
        }
      }
    }
  }
}

TEST(ExprTri, UnknownPropagation) {
  struct Case {
    std::string input;
    Tri a, b, c, expected;
  };
  const std::vector<Case> cases = {
      {"not not not a", U, F, F, U}, {"a and b", U, T, F, U},        {"a and b", U, F, F, F},
      {"a or b", U, T, F, T},        {"a or b", U, F, F, U},         {"not (a and b)", U, F, F, T},
      {"not (a or b)", U, T, F, F},  {"(a or b) and c", U, F, T, U}, {"(a or b) and c", U, F, F, F},
      {"a and b and c", U, U, F, F}, {"a or b or c", U, U, T, T},    {"a or b or c", U, U, F, U},
  };
  for (const auto& c : cases) {
    auto e = compile_ok(c.input);
    if (e) {
      EXPECT_EQ(e->evaluate(assign(c.a, c.b, c.c)), c.expected) << c.input;
    }
  }
}

// `and` stops at the first False, `or` at the first True; Unknown never stops either.
TEST(ExprTri, ShortCircuitCalls) {
  struct Case {
    std::string input;
    Tri a, b, c;
    std::string calls;
    Tri expected;
  };
  const std::vector<Case> cases = {
      {"a and b", F, T, T, "a", F},        {"a and b", U, F, T, "ab", F},        {"a and b", T, U, T, "ab", U},
      {"a or b", T, F, F, "a", T},         {"a or b", U, T, F, "ab", T},         {"a or b", F, U, F, "ab", U},
      {"a and b and c", U, F, T, "ab", F}, {"a or b and c", F, F, T, "ab", F},   {"a or b and c", U, T, U, "abc", U},
      {"not a or b", F, F, F, "a", T},     {"(a or b) and c", T, T, F, "ac", F},
  };
  for (const auto& c : cases) {
    auto e = compile_ok(c.input);
    if (!e) continue;
    std::string calls;
    const auto inner = assign(c.a, c.b, c.c);
    EXPECT_EQ(e->evaluate([&](std::string_view ident, const Kwargs& kwargs) {
      calls += std::string(ident);
      return inner(ident, kwargs);
    }),
              c.expected)
        << c.input;
    EXPECT_EQ(calls, c.calls) << c.input;
  }
}

TEST(ExprTri, AllUnknownCallsEveryIdentOnceInSourceOrder) {
  auto e = compile_ok("not (x or y(a=1)) and (z or not x) or w");
  ASSERT_TRUE(e);
  std::string calls;
  EXPECT_EQ(e->evaluate([&](std::string_view ident, const Kwargs&) {
    calls += std::string(ident);
    return U;
  }),
            U);
  EXPECT_EQ(calls, "xyzxw");
}

// ---------------------------------------------------------------------------------------------------
// -k keyword rule

TEST(ExprKeyword, CaseInsensitiveSubstringOfAnyName) {
  struct Case {
    std::string ident;
    std::vector<std::string> names;
    bool expected;
  };
  // Expected values: any(ident.lower() in name.lower() for name in names) in CPython 3.11.
  const std::vector<Case> cases = {
      {"a", {"abc"}, true},
      {"ABC", {"xabcx"}, true},
      {"abc", {"XABCX"}, true},
      {"d", {"abc"}, false},
      {"a", {}, false},
      {"", {"x"}, true},
      {"", {""}, true},
      {"", {}, false},
      {"test_foo", {"TestFoo"}, false},
      {"slow", {"test_a", "TestSlow"}, true},
      {"x", {"a", "b", "X"}, true},
      {"TEST_A[1-2]", {"test_a[1-2]"}, true},
      {"é", {"É"}, true},
      {"É", {"xé"}, true},
      {"ǅ", {"ǆ"}, true},                                // titlecase digraph
      {"\xF0\x90\x90\x80", {"\xF0\x90\x90\xA8"}, true},  // Deseret U+10400 / U+10428
      {"k", {"\u212a"}, true},                           // KELVIN SIGN lowers to ASCII k
      {"\u212a", {"K"}, true},
      {"i", {"İ"}, true},  // U+0130 lowers to "i\u0307"
      {"i\u0307", {"İ"}, true},
      {"İ", {"i"}, false},
      {"ß", {"SS"}, false},  // lower(), not casefold()
      {"ss", {"ß"}, false},
      {"ς", {"ΟΔΟΣ"}, true},  // final sigma at the end of a word
      {"σ", {"ΟΔΟΣ"}, false},
      {"ΟΣ", {"οσα"}, false},
      {"ΟΣ", {"ος"}, true},
      {"Σ", {"σ"}, true},  // no cased letter before: not final
      {"AΣ", {"aς"}, true},
      {"ΑΣ'Σ", {"ας'ς"}, false},  // ' is case-ignorable: the first Σ is followed by a cased letter
      {"ΑΣ'Σ", {"ασ'ς"}, true},
      {"\xff",
       {"a\xff"
        "b"},
       true},                         // invalid bytes compare as themselves
      {"\x80", {"\xc3\x80"}, false},  // ... and never as part of a valid character
  };
  for (const auto& c : cases) {
    EXPECT_EQ(keyword_matches(c.ident, c.names), c.expected) << "ident '" << c.ident << "'";
  }
}

TEST(ExprKeyword, WithExpression) {
  // pytest -k semantics: each ident is a keyword_matches() test against the item's names.
  const std::vector<std::string> names = {"test_login_slow", "TestAuth", "tests/test_auth.py"};
  const auto matcher = [&](std::string_view ident, const Kwargs&) {
    return keyword_matches(ident, names) ? Tri::True : Tri::False;
  };
  const std::vector<std::pair<std::string, Tri>> cases = {
      {"login", T},  {"LOGIN and not fast", T},  {"auth and not slow", F}, {"test_auth.py", T},
      {"tests/", T}, {"TestAuth or nothing", T}, {"not testauth", F},      {"py and (slow or fast)", T},
  };
  for (const auto& [input, expected] : cases) {
    auto e = compile_ok(input);
    if (e) {
      EXPECT_EQ(e->evaluate(matcher), expected) << input;
    }
  }
}

}  // namespace
}  // namespace fastcollect
