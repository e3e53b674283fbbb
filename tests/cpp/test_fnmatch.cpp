// Tests for walk/fnmatch: fnmatch (== Python's fnmatch.fnmatchcase), fnmatch_ex (== pytest's
// _pytest.pathlib.fnmatch_ex) and matches_prefix_or_glob (== pytest's _matches_prefix_or_glob_option).
//
// Every expected value below was produced by CPython 3.11 / pytest 9.0.3, e.g.
//   python3 -c "import fnmatch; print(fnmatch.fnmatchcase('a/c', 'a?c'))"
//   python3 -c "from _pytest.pathlib import fnmatch_ex; print(fnmatch_ex('tests/*.py', '/r/tests/a.py'))"
// and hard-coded here.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "walk/fnmatch.hpp"

namespace fastcollect {
namespace {

struct GlobCase {
  std::string name;
  std::string pattern;
  bool expected;
};

std::string describe(const GlobCase& c) { return "fnmatch(name='" + c.name + "', pattern='" + c.pattern + "')"; }

void expect_fnmatch_cases(const std::vector<GlobCase>& cases) {
  for (const auto& c : cases) EXPECT_EQ(fnmatch(c.name, c.pattern), c.expected) << describe(c);
}

TEST(Fnmatch, LiteralPatternsAreExactAndCaseSensitive) {
  expect_fnmatch_cases({
      {"", "", true},
      {"a", "", false},
      {"", "a", false},
      {"abc", "abc", true},
      {"abc", "ab", false},
      {"ab", "abc", false},
      {"ABC", "abc", false},
  });
}

TEST(Fnmatch, RegexMetacharactersAndBackslashAreLiteral) {
  expect_fnmatch_cases({
      {"a.b", "a.b", true},
      {"axb", "a.b", false},
      {"a+b", "a+b", true},
      {"(x)", "(x)", true},
      {"^$", "^$", true},
      {"a\\b", "a\\b", true},
  });
}

TEST(Fnmatch, StarMatchesAnyRunIncludingSlash) {
  expect_fnmatch_cases({
      {"test_foo.py", "test_*.py", true},
      {"test_foo.py", "*_test.py", false},
      {"foo_test.py", "*_test.py", true},
      {"a/b/test_x.py", "*test_x.py", true},
      {"a/b/c", "a*c", true},
      {"/r/x/y.py", "*/y.py", true},
      {"", "*", true},
      {"abc", "***", true},
      {"abc", "a**c", true},
      {"aXbXc", "a*b*c", true},
      {"aXbX", "a*b*c", false},
      {"mississippi", "*sip*", true},
      {"mississippi", "m*iss*ppi", true},
      {"mississippi", "m*x*i", false},
      {"abcd", "*d", true},
      {"abcdd", "*d*d", true},
  });
}

TEST(Fnmatch, ManyStarsBacktrackCorrectly) {
  expect_fnmatch_cases({
      {"aaaaaaaaaaaaaaaaaaaaaaaab", "*a*a*a*a*a*a*a*a*b", true},
      {"aaaaaaaaaaaaaaaaaaaaaaaa", "*a*a*a*a*a*a*a*a*b", false},
  });
}

TEST(Fnmatch, QuestionMarkMatchesExactlyOneCharacterIncludingSlashAndNewline) {
  expect_fnmatch_cases({
      {"abc", "a?c", true},
      {"ac", "a?c", false},
      {"abbc", "a?c", false},
      {"a/c", "a?c", true},
      {"a\nc", "a?c", true},
      {"abc", "*?*?*?*", true},
      {"ab", "*?*?*?*", false},
  });
}

TEST(Fnmatch, SetMatchesOneMember) {
  expect_fnmatch_cases({
      {"b", "[abc]", true},
      {"d", "[abc]", false},
      {"abc", "[a-c][a-c][a-c]", true},
      {"abd", "[a-c][a-c][a-c]", false},
      {"a*b", "a[*]b", true},
      {"axb", "a[*]b", false},
      {"a?b", "a[?]b", true},
      {"[", "[[]", true},
      {"[x]", "[[]x]", true},
      {"\\", "[\\]", true},
      {"\\", "[a\\]", true},
  });
}

TEST(Fnmatch, CaretInSetIsLiteralNotNegation) {
  expect_fnmatch_cases({
      {"^", "[^a]", true},
      {"a", "[^a]", true},
      {"b", "[^a]", false},
  });
}

TEST(Fnmatch, NegatedSetMatchesNonMembersIncludingSlash) {
  expect_fnmatch_cases({
      {"d", "[!abc]", true},
      {"a", "[!abc]", false},
      {"/", "[!a]", true},
      {"test_a.py", "test_[!_]*.py", true},
      {"test__a.py", "test_[!_]*.py", false},
  });
}

TEST(Fnmatch, RangesInSets) {
  expect_fnmatch_cases({
      {"m", "[a-z]", true},
      {"M", "[a-z]", false},
      {"5", "[0-9a-f]", true},
      {"g", "[0-9a-f]", false},
      // A hyphen first or last is a literal member.
      {"-", "[a-]", true},
      {"-", "[-a]", true},
      {"b", "[a-]", false},
      // "a-c-e": the range a-c, then a literal '-' and 'e'.
      {"b", "[a-c-e]", true},
      {"-", "[a-c-e]", true},
      {"e", "[a-c-e]", true},
      {"d", "[a-c-e]", false},
      // A range starting with '-'.
      {"-", "[--0]", true},
      {"/", "[--0]", true},
      {"0", "[--0]", true},
      {"1", "[--0]", false},
  });
}

TEST(Fnmatch, ReversedRangeIsEmptyAndItsNegationMatchesAnything) {
  expect_fnmatch_cases({
      {"b", "[z-a]", false},
      {"z", "[z-a]", false},
      {"b", "[!z-a]", true},
  });
}

TEST(Fnmatch, ClosingBracketFirstInSetIsAMember) {
  expect_fnmatch_cases({
      {"]", "[]]", true},
      {"]", "[]a]", true},
      {"a", "[]a]", true},
      {"b", "[]a]", false},
      {"]", "[!]]", false},
      {"x", "[!]]", true},
      {"x]", "[!]]", false},
      {"!", "[!]a]", true},
      {"b", "[!]a]", true},
      {"a", "[!]a]", false},
      {"ab]", "a[b]]", true},
      {"ab", "a[b]]", false},
  });
}

TEST(Fnmatch, UnclosedBracketIsLiteral) {
  expect_fnmatch_cases({
      {"[", "[", true},
      {"[abc", "[abc", true},
      {"[a", "[a", true},
      {"x", "[a", false},
      {"[]", "[]", true},
      {"[!]", "[!]", true},
      {"a[b", "a[b", true},
      {"a[!b", "a[!b", true},
      {"x", "a[!b", false},
  });
}

TEST(Fnmatch, MultiByteCharacterCountsAsSeveralBytesForQuestionMark) {
  // Documented deviation (fnmatch.hpp): Python matches "é" with "?", this byte matcher needs "??".
  EXPECT_FALSE(fnmatch("\xC3\xA9", "?"));
  EXPECT_TRUE(fnmatch("\xC3\xA9", "??"));
  EXPECT_TRUE(fnmatch("caf\xC3\xA9.py", "caf*.py"));
}

struct ExCase {
  std::string pattern;
  std::string path;
  bool expected;
};

void expect_fnmatch_ex_cases(const std::vector<ExCase>& cases) {
  for (const auto& c : cases)
    EXPECT_EQ(fnmatch_ex(c.pattern, c.path), c.expected)
        << "fnmatch_ex(pattern='" << c.pattern << "', path='" << c.path << "')";
}

TEST(FnmatchEx, PatternWithoutSlashMatchesTheBasename) {
  expect_fnmatch_ex_cases({
      {"test_*.py", "/r/a/test_x.py", true},
      {"test_*.py", "/r/test_dir/x.py", false},
      {"test_*.py", "test_x.py", true},
      {"*.py", "/r/a/b.py", true},
      {"a", "/r/a", true},
      {"*.egg", "/r/foo.egg", true},
      {".*", "/r/.git", true},
      {".*", "/r/a.git", false},
      {"build", "/r/build", true},
      {"build", "/r/build/x", false},
      {"build", "/r/rebuild", false},
  });
}

TEST(FnmatchEx, RelativePatternWithSlashGetsStarSlashPrefixForAbsolutePaths) {
  expect_fnmatch_ex_cases({
      {"tests/**/doc/test*.py", "/r/tests/foo/bar/doc/test_foo.py", true},
      {"tests/**/doc/test*.py", "/r/tests/doc/test_foo.py", false},
      {"tests/*/doc/test*.py", "/r/tests/doc/test_foo.py", false},
      {"tests/check_*.py", "/r/tests/check_a.py", true},
      {"tests/check_*.py", "/r/other/check_a.py", false},
      {"tests/check_*.py", "/r/mytests/check_a.py", false},
  });
}

TEST(FnmatchEx, RelativePatternWithSlashMatchesRelativePathsWholly) {
  expect_fnmatch_ex_cases({
      {"tests/**/doc/test*.py", "tests/foo/bar/doc/test_foo.py", true},
      {"tests/check_*.py", "tests/check_a.py", true},
      {"tests/check_*.py", "x/tests/check_a.py", false},
  });
}

TEST(FnmatchEx, AbsolutePatternIsMatchedAgainstTheWholePath) {
  expect_fnmatch_ex_cases({
      {"/r/tests/*.py", "/r/tests/a.py", true},
      {"/r/tests/*.py", "/other/r/tests/a.py", false},
      {"/r/*", "/r/a/b", true},
  });
}

TEST(MatchesPrefixOrGlob, PlainOptionIsAPrefix) {
  const std::vector<std::string> opts{"test"};
  EXPECT_TRUE(matches_prefix_or_glob("test", opts));
  EXPECT_TRUE(matches_prefix_or_glob("test_foo", opts));
  EXPECT_TRUE(matches_prefix_or_glob("testing", opts));
  EXPECT_FALSE(matches_prefix_or_glob("tes", opts));
  EXPECT_FALSE(matches_prefix_or_glob("a_test", opts));
  EXPECT_FALSE(matches_prefix_or_glob("Test_foo", opts));
}

TEST(MatchesPrefixOrGlob, PlainOptionIsNotUsedAsAGlob) {
  // "Test" is a prefix rule only: it does not match "MyTest" even though fnmatch("Test", "Test") would.
  EXPECT_FALSE(matches_prefix_or_glob("MyTest", {"Test"}));
}

TEST(MatchesPrefixOrGlob, OptionWithGlobCharactersIsAlsoMatchedAsAGlob) {
  EXPECT_TRUE(matches_prefix_or_glob("MySuite", {"*Suite"}));
  EXPECT_FALSE(matches_prefix_or_glob("MySuites", {"*Suite"}));
  EXPECT_TRUE(matches_prefix_or_glob("check_a", {"check_?"}));
  EXPECT_FALSE(matches_prefix_or_glob("check_ab", {"check_?"}));
  EXPECT_TRUE(matches_prefix_or_glob("Ab", {"[AB]b"}));
  EXPECT_FALSE(matches_prefix_or_glob("Cb", {"[AB]b"}));
}

TEST(MatchesPrefixOrGlob, GlobOptionIsAlsoALiteralPrefix) {
  // pytest checks name.startswith(option) first, even for a glob-looking option.
  EXPECT_TRUE(matches_prefix_or_glob("*Suite_extra", {"*Suite"}));
}

TEST(MatchesPrefixOrGlob, AnyOptionSufficesAndEmptyListMatchesNothing) {
  const std::vector<std::string> opts{"check", "*_spec", "Test"};
  EXPECT_TRUE(matches_prefix_or_glob("check_x", opts));
  EXPECT_TRUE(matches_prefix_or_glob("login_spec", opts));
  EXPECT_TRUE(matches_prefix_or_glob("TestX", opts));
  EXPECT_FALSE(matches_prefix_or_glob("test_x", opts));
  EXPECT_FALSE(matches_prefix_or_glob("test_x", {}));
}

TEST(MatchesPrefixOrGlob, EmptyOptionIsAPrefixOfEverything) {
  // "".startswith("") and "x".startswith("") are true in Python.
  EXPECT_TRUE(matches_prefix_or_glob("anything", {""}));
}

}  // namespace
}  // namespace fastcollect
