// Tests for scan/scanner: Python source -> ModuleInfo (test functions, classes, marks, imports,
// certainty), is_valid_utf8 and the threaded scan_files.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "scan/scanner.hpp"

namespace fastcollect {
namespace {

namespace fs = std::filesystem;
using Names = std::vector<std::string>;

ModuleInfo scan(std::string_view src, NameRules rules = NameRules{}) {
  Scanner scanner(std::move(rules));
  return scanner.scan_source(src);
}

Names function_names(const std::vector<FunctionInfo>& fns) {
  Names out;
  for (const auto& f : fns) out.push_back(f.name);
  return out;
}

Names class_qualnames(const ModuleInfo& m) {
  Names out;
  for (const auto& c : m.classes) out.push_back(c.qualname);
  return out;
}

Names mark_names(const std::vector<MarkInfo>& marks) {
  Names out;
  for (const auto& mk : marks) out.push_back(mk.name);
  return out;
}

const FunctionInfo* find_function(const std::vector<FunctionInfo>& fns, const std::string& name) {
  for (const auto& f : fns)
    if (f.name == name) return &f;
  return nullptr;
}

const FunctionInfo& function(const ModuleInfo& m, const std::string& name) {
  const FunctionInfo* f = find_function(m.functions, name);
  if (f == nullptr) throw std::runtime_error("no module-level function " + name);
  return *f;
}

const ClassInfo& klass(const ModuleInfo& m, const std::string& qualname) {
  for (const auto& c : m.classes)
    if (c.qualname == qualname) return c;
  throw std::runtime_error("no class " + qualname);
}

bool has_reason_containing(const ModuleInfo& m, const std::string& needle) {
  for (const auto& r : m.uncertain_reasons)
    if (r.find(needle) != std::string::npos) return true;
  return false;
}

// All uncertainty reasons, for failure messages.
std::string reasons(const ModuleInfo& m) {
  std::string out;
  for (const auto& r : m.uncertain_reasons) out += (out.empty() ? "" : "; ") + r;
  return out.empty() ? "(no uncertain_reasons)" : out;
}

void expect_clean(const ModuleInfo& m) {
  EXPECT_TRUE(m.error.empty()) << m.error;
  EXPECT_FALSE(m.parse_error);
  EXPECT_TRUE(m.certain) << reasons(m);
  EXPECT_TRUE(m.uncertain_reasons.empty());
}

// ---------------------------------------------------------------------------------------------
// Functions

TEST(ScanFunctions, ModuleLevelTestFunctionsAreRecordedInSourceOrderWithLines) {
  ModuleInfo m = scan(
      "def test_a():\n"
      "    pass\n"
      "def helper():\n"
      "    pass\n"
      "\n"
      "def test_b(x):\n"
      "    return x\n"
      "def testing_too(): pass\n");
  expect_clean(m);
  EXPECT_EQ(m.path, "<string>");
  EXPECT_EQ(function_names(m.functions), (Names{"test_a", "test_b", "testing_too"}));
  EXPECT_EQ(function(m, "test_a").line, 1);
  EXPECT_EQ(function(m, "test_b").line, 6);
  for (const auto& f : m.functions) {
    EXPECT_TRUE(f.is_def) << f.name;
    EXPECT_FALSE(f.is_async) << f.name;
    EXPECT_FALSE(f.conditional) << f.name;
    EXPECT_TRUE(f.marks.empty()) << f.name;
    EXPECT_TRUE(f.other_decorators.empty()) << f.name;
  }
  EXPECT_EQ(m.lines, 8U);
}

TEST(ScanFunctions, PathIsCopiedIntoTheResult) {
  Scanner scanner(NameRules{});
  EXPECT_EQ(scanner.scan_source("x = 1\n", "/r/test_x.py").path, "/r/test_x.py");
}

TEST(ScanFunctions, AsyncDefIsMarkedAsync) {
  ModuleInfo m = scan(
      "async def test_async():\n"
      "    await x\n"
      "def test_sync(): pass\n");
  expect_clean(m);
  ASSERT_EQ(function_names(m.functions), (Names{"test_async", "test_sync"}));
  EXPECT_TRUE(function(m, "test_async").is_async);
  EXPECT_FALSE(function(m, "test_sync").is_async);
}

TEST(ScanFunctions, DefsUnderCompoundStatementsAreConditional) {
  ModuleInfo m = scan(R"py(
if X:
    def test_if(): pass
elif Y:
    def test_elif(): pass
else:
    def test_else(): pass
try:
    def test_try(): pass
except ImportError:
    def test_except(): pass
else:
    def test_try_else(): pass
finally:
    def test_finally(): pass
with ctx() as c:
    def test_with(): pass
for i in range(3):
    def test_for(): pass
while False:
    def test_while(): pass
if A:
    try:
        async def test_nested(): pass
    except Exception:
        pass
def test_plain(): pass
)py");
  expect_clean(m);
  EXPECT_EQ(function_names(m.functions),
            (Names{"test_if", "test_elif", "test_else", "test_try", "test_except", "test_try_else", "test_finally",
                   "test_with", "test_for", "test_while", "test_nested", "test_plain"}));
  for (const auto& f : m.functions) EXPECT_EQ(f.conditional, f.name != "test_plain") << f.name;
  EXPECT_TRUE(function(m, "test_nested").is_async);
}

TEST(ScanFunctions, DefsUnderMatchCaseAreConditional) {
  ModuleInfo m = scan(R"py(
match sys.platform:
    case "linux":
        def test_linux(): pass
    case _ if flag:
        class TestOther:
            def test_m(self): pass
)py");
  expect_clean(m);
  EXPECT_EQ(function_names(m.functions), (Names{"test_linux"}));
  ASSERT_EQ(m.functions.size(), 1U);
  EXPECT_TRUE(m.functions[0].conditional);
  ASSERT_EQ(class_qualnames(m), (Names{"TestOther"}));
  EXPECT_TRUE(m.classes[0].conditional);
}

TEST(ScanFunctions, FunctionsNestedInFunctionBodiesAreNotRecorded) {
  ModuleInfo m = scan(
      "def helper():\n"
      "    def test_inner(): pass\n"
      "    class TestInner: pass\n"
      "    return test_inner\n");
  expect_clean(m);
  EXPECT_TRUE(m.functions.empty());
  EXPECT_TRUE(m.classes.empty());
}

TEST(ScanFunctions, CustomPythonFunctionsPrefix) {
  NameRules rules;
  rules.python_functions = {"check"};
  ModuleInfo m = scan(
      "def check_a(): pass\n"
      "def test_b(): pass\n"
      "class TestC:\n"
      "    def check_m(self): pass\n"
      "    def test_m(self): pass\n",
      rules);
  EXPECT_EQ(function_names(m.functions), (Names{"check_a"}));
  EXPECT_EQ(function_names(klass(m, "TestC").methods), (Names{"check_m"}));
}

TEST(ScanFunctions, PythonFunctionsGlob) {
  NameRules rules;
  rules.python_functions = {"*_should_*"};
  ModuleInfo m = scan(
      "def login_should_work(): pass\n"
      "def test_b(): pass\n",
      rules);
  EXPECT_EQ(function_names(m.functions), (Names{"login_should_work"}));
}

// ---------------------------------------------------------------------------------------------
// Classes

TEST(ScanClasses, ClassesRecordBasesWithoutKeywordArguments) {
  ModuleInfo m = scan(R"py(
class TestA(Base, mod.Mixin, metaclass=Meta):
    pass

class Helper:
    pass

class TestGeneric(Generic[T]):
    pass
)py");
  expect_clean(m);
  ASSERT_EQ(class_qualnames(m), (Names{"TestA", "Helper", "TestGeneric"}));
  EXPECT_EQ(klass(m, "TestA").bases, (Names{"Base", "mod.Mixin"}));
  EXPECT_EQ(klass(m, "TestA").line, 2);
  EXPECT_TRUE(klass(m, "Helper").bases.empty());
  EXPECT_EQ(klass(m, "TestGeneric").bases, (Names{"Generic[T]"}));
  for (const auto& c : m.classes) {
    EXPECT_EQ(c.name, c.qualname);
    EXPECT_FALSE(c.conditional);
    EXPECT_EQ(c.test_attr, -1);
  }
}

TEST(ScanClasses, NestedClassesGetDottedQualnamesInSourceOrder) {
  ModuleInfo m = scan(R"py(
class TestOuter:
    def test_outer(self): pass
    class TestInner:
        def test_inner(self): pass
        class Deepest:
            pass
    def test_after(self): pass
class TestNext:
    pass
)py");
  expect_clean(m);
  EXPECT_EQ(class_qualnames(m), (Names{"TestOuter", "TestOuter.TestInner", "TestOuter.TestInner.Deepest", "TestNext"}));
  EXPECT_EQ(klass(m, "TestOuter.TestInner").name, "TestInner");
  EXPECT_EQ(function_names(klass(m, "TestOuter").methods), (Names{"test_outer", "test_after"}));
  EXPECT_EQ(function_names(klass(m, "TestOuter.TestInner").methods), (Names{"test_inner"}));
  EXPECT_TRUE(m.functions.empty());
}

TEST(ScanClasses, MethodsAreRecordedOnlyWhenPythonFunctionsMatches) {
  ModuleInfo m = scan(R"py(
class TestA:
    def setup_method(self): pass
    def test_one(self): pass
    def helper(self): pass
    async def test_two(self): pass
    @staticmethod
    def test_static(): pass
)py");
  expect_clean(m);
  const ClassInfo& c = klass(m, "TestA");
  ASSERT_EQ(function_names(c.methods), (Names{"test_one", "test_two", "test_static"}));
  EXPECT_TRUE(c.methods[1].is_async);
  EXPECT_EQ(c.methods[2].other_decorators, (Names{"staticmethod"}));
  EXPECT_TRUE(m.functions.empty());
}

TEST(ScanClasses, ClassesAreRecordedWhateverTheirName) {
  ModuleInfo m = scan("class Base:\n    def test_inherited(self): pass\n");
  ASSERT_EQ(class_qualnames(m), (Names{"Base"}));
  EXPECT_EQ(function_names(m.classes[0].methods), (Names{"test_inherited"}));
}

TEST(ScanClasses, ConditionalClassIsConditionalButItsMethodsAreNot) {
  ModuleInfo m = scan(R"py(
if sys.version_info >= (3, 8):
    class TestNew:
        def test_a(self): pass
)py");
  const ClassInfo& c = klass(m, "TestNew");
  EXPECT_TRUE(c.conditional);
  ASSERT_EQ(c.methods.size(), 1U);
  EXPECT_FALSE(c.methods[0].conditional);
}

TEST(ScanClasses, HasInitAndHasNew) {
  ModuleInfo m = scan(R"py(
class TestInit:
    def __init__(self): pass
    def test_a(self): pass
class TestNew:
    def __new__(cls): pass
class TestPlain:
    def test_b(self): pass
)py");
  EXPECT_TRUE(klass(m, "TestInit").has_init);
  EXPECT_FALSE(klass(m, "TestInit").has_new);
  EXPECT_TRUE(klass(m, "TestNew").has_new);
  EXPECT_FALSE(klass(m, "TestNew").has_init);
  EXPECT_FALSE(klass(m, "TestPlain").has_init);
  EXPECT_FALSE(klass(m, "TestPlain").has_new);
}

TEST(ScanClasses, CustomPythonClassesGlobAffectsTestCountNotRecording) {
  NameRules rules;
  rules.python_classes = {"*Suite"};
  ModuleInfo m = scan(R"py(
class LoginSuite:
    def test_a(self): pass
    def test_b(self): pass
class TestIgnored:
    def test_c(self): pass
)py",
                      rules);
  EXPECT_EQ(class_qualnames(m), (Names{"LoginSuite", "TestIgnored"}));
  EXPECT_EQ(m.test_count(rules.python_classes), 2U);
  EXPECT_EQ(m.test_count({"Test"}), 1U);
}

TEST(ScanClasses, DunderTestOnClassesAndModule) {
  ModuleInfo m = scan(R"py(
__test__ = False
class TestOff:
    __test__ = False
class TestOn:
    __test__ = True
class TestOther:
    __test__ = some_flag
class TestNumber:
    __test__ = 1
class TestAbsent:
    pass
)py");
  EXPECT_EQ(m.module_test_attr, 0);
  EXPECT_EQ(klass(m, "TestOff").test_attr, 0);
  EXPECT_EQ(klass(m, "TestOn").test_attr, 1);
  EXPECT_EQ(klass(m, "TestOther").test_attr, 2);
  EXPECT_EQ(klass(m, "TestNumber").test_attr, 2);
  EXPECT_EQ(klass(m, "TestAbsent").test_attr, -1);
}

TEST(ScanClasses, ModuleDunderTestTrueOtherAndAbsent) {
  EXPECT_EQ(scan("__test__ = True\n").module_test_attr, 1);
  EXPECT_EQ(scan("__test__ = bool(0)\n").module_test_attr, 2);
  EXPECT_EQ(scan("x = 1\n").module_test_attr, -1);
  // __test__ is not itself a test-shaped binding.
  EXPECT_TRUE(scan("__test__ = True\n").functions.empty());
}

// ---------------------------------------------------------------------------------------------
// Marks

TEST(ScanMarks, PytestMarkDecoratorsWithAndWithoutCall) {
  ModuleInfo m = scan(R"py(
import pytest

@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="posix only")
@pytest.mark.parametrize("x", [1, 2])
def test_a(x): pass
)py");
  expect_clean(m);
  const FunctionInfo& f = function(m, "test_a");
  ASSERT_EQ(mark_names(f.marks), (Names{"slow", "skipif", "parametrize"}));
  EXPECT_EQ(f.marks[0].source, "pytest.mark.slow");
  EXPECT_EQ(f.marks[0].line, 4);
  EXPECT_EQ(f.marks[1].source, "pytest.mark.skipif(sys.platform == \"win32\", reason=\"posix only\")");
  EXPECT_EQ(f.marks[1].line, 5);
  EXPECT_EQ(f.marks[2].line, 6);
  EXPECT_EQ(f.line, 7);
  EXPECT_TRUE(f.other_decorators.empty());
}

TEST(ScanMarks, MarkImportedFromPytest) {
  ModuleInfo m = scan(R"py(
from pytest import mark
from pytest import mark as m

@mark.slow
def test_a(): pass

@m.xfail(strict=True)
def test_b(): pass
)py");
  EXPECT_EQ(mark_names(function(m, "test_a").marks), (Names{"slow"}));
  ASSERT_EQ(mark_names(function(m, "test_b").marks), (Names{"xfail"}));
  EXPECT_EQ(function(m, "test_b").marks[0].source, "m.xfail(strict=True)");
}

TEST(ScanMarks, PytestImportedUnderAnAlias) {
  ModuleInfo m = scan(R"py(
import pytest as pt

@pt.mark.slow
def test_a(): pass
)py");
  EXPECT_EQ(mark_names(function(m, "test_a").marks), (Names{"slow"}));
}

TEST(ScanMarks, MarkWithoutItsImportIsNotAMark) {
  ModuleInfo m = scan(R"py(
@mark.slow
def test_a(): pass

@other.mark.slow
def test_b(): pass
)py");
  EXPECT_TRUE(function(m, "test_a").marks.empty());
  EXPECT_EQ(function(m, "test_a").other_decorators, (Names{"mark.slow"}));
  EXPECT_TRUE(function(m, "test_b").marks.empty());
  EXPECT_EQ(function(m, "test_b").other_decorators, (Names{"other.mark.slow"}));
}

TEST(ScanMarks, ModuleLevelMarkAliasIsRecognised) {
  ModuleInfo m = scan(R"py(
import pytest
slow = pytest.mark.slow
windows_only = pytest.mark.skipif(not WIN, reason="windows")

@slow
def test_a(): pass

@windows_only
class TestB:
    @slow
    def test_m(self): pass
)py");
  EXPECT_EQ(m.mark_aliases,
            (std::vector<std::pair<std::string, std::string>>{{"slow", "slow"}, {"windows_only", "skipif"}}));
  const FunctionInfo& a = function(m, "test_a");
  ASSERT_EQ(mark_names(a.marks), (Names{"slow"}));
  EXPECT_EQ(a.marks[0].source, "slow");
  EXPECT_EQ(mark_names(klass(m, "TestB").marks), (Names{"skipif"}));
  ASSERT_EQ(klass(m, "TestB").methods.size(), 1U);
  EXPECT_EQ(mark_names(klass(m, "TestB").methods[0].marks), (Names{"slow"}));
  EXPECT_TRUE(m.functions.size() == 1U) << "aliases are not test-shaped bindings";
}

TEST(ScanMarks, NonMarkDecoratorsGoToOtherDecorators) {
  ModuleInfo m = scan(R"py(
import pytest, functools

@pytest.fixture
@functools.lru_cache(maxsize=None)
@pytest.mark.slow
@my_decorator
def test_a(): pass
)py");
  const FunctionInfo& f = function(m, "test_a");
  EXPECT_EQ(mark_names(f.marks), (Names{"slow"}));
  EXPECT_EQ(f.other_decorators, (Names{"pytest.fixture", "functools.lru_cache(maxsize=None)", "my_decorator"}));
}

TEST(ScanMarks, ClassDecoratorMarksThenClassPytestmark) {
  ModuleInfo m = scan(R"py(
import pytest

@pytest.mark.first
@dataclass
class TestA:
    pytestmark = [pytest.mark.second, pytest.mark.third("x")]
    def test_m(self): pass
)py");
  const ClassInfo& c = klass(m, "TestA");
  ASSERT_EQ(mark_names(c.marks), (Names{"first", "second", "third"}));
  EXPECT_EQ(c.marks[2].source, "pytest.mark.third(\"x\")");
  EXPECT_EQ(c.other_decorators, (Names{"dataclass"}));
  EXPECT_TRUE(m.module_marks.empty());
  EXPECT_TRUE(c.methods.size() == 1U);
}

TEST(ScanMarks, ModulePytestmarkSingle) {
  ModuleInfo m = scan("import pytest\npytestmark = pytest.mark.slow\n");
  ASSERT_EQ(mark_names(m.module_marks), (Names{"slow"}));
  EXPECT_EQ(m.module_marks[0].source, "pytest.mark.slow");
  EXPECT_EQ(m.module_marks[0].line, 2);
  EXPECT_TRUE(m.functions.empty());
}

TEST(ScanMarks, ModulePytestmarkListAndTuple) {
  ModuleInfo list = scan(R"py(
import pytest
pytestmark = [
    pytest.mark.slow,  # a comment inside the list
    pytest.mark.filterwarnings("ignore"),
]
)py");
  ASSERT_EQ(mark_names(list.module_marks), (Names{"slow", "filterwarnings"}));
  EXPECT_EQ(list.module_marks[1].line, 5);
  ModuleInfo tuple = scan("import pytest\npytestmark = (pytest.mark.a, pytest.mark.b)\n");
  EXPECT_EQ(mark_names(tuple.module_marks), (Names{"a", "b"}));
}

TEST(ScanMarks, PytestmarkUnknownElementHasEmptyName) {
  ModuleInfo m = scan("import pytest\npytestmark = [pytest.mark.a, make_marks()]\n");
  ASSERT_EQ(m.module_marks.size(), 2U);
  EXPECT_EQ(m.module_marks[0].name, "a");
  EXPECT_EQ(m.module_marks[1].name, "");
  EXPECT_EQ(m.module_marks[1].source, "make_marks()");
}

TEST(ScanMarks, PytestmarkUsingAnAlias) {
  ModuleInfo m = scan("import pytest\nslow = pytest.mark.slow\npytestmark = slow\n");
  EXPECT_EQ(mark_names(m.module_marks), (Names{"slow"}));
}

// ---------------------------------------------------------------------------------------------
// Names bound by assignment and import

TEST(ScanBindings, TestShapedAssignmentIsABindingWithoutDef) {
  ModuleInfo m = scan(R"py(
test_x = make_test()
helper = 1
test_a = test_b = other()
test_c, not_a_test = pair()
TestAlias = Base
)py");
  expect_clean(m);
  EXPECT_EQ(function_names(m.functions), (Names{"test_x", "test_a", "test_b", "test_c", "TestAlias"}));
  for (const auto& f : m.functions) EXPECT_FALSE(f.is_def) << f.name;
  EXPECT_EQ(function(m, "test_x").line, 2);
  EXPECT_EQ(function(m, "test_c").line, 5);
}

TEST(ScanBindings, TestShapedImportBindsTheAliasName) {
  ModuleInfo m = scan(R"py(
from m import test_y as test_z
from m import test_plain
from m import helper as test_h
from m import test_q as helper
import test_module
)py");
  expect_clean(m);
  EXPECT_EQ(function_names(m.functions), (Names{"test_z", "test_plain", "test_h"}));
  const FunctionInfo& z = function(m, "test_z");
  EXPECT_FALSE(z.is_def);
  EXPECT_EQ(z.line, 2);
  EXPECT_FALSE(z.conditional);
}

TEST(ScanBindings, ConditionalImportBindingIsConditional) {
  ModuleInfo m = scan("try:\n    from fast import test_fast\nexcept ImportError:\n    test_fast = None\n");
  ASSERT_EQ(function_names(m.functions), (Names{"test_fast", "test_fast"}));
  EXPECT_TRUE(m.functions[0].conditional);
  EXPECT_TRUE(m.functions[1].conditional);
}

TEST(ScanBindings, ClassLevelAssignmentBindsAMethod) {
  ModuleInfo m = scan("class TestA:\n    test_alias = other_test\n    value = 3\n");
  const ClassInfo& c = klass(m, "TestA");
  ASSERT_EQ(function_names(c.methods), (Names{"test_alias"}));
  EXPECT_FALSE(c.methods[0].is_def);
  EXPECT_TRUE(m.functions.empty());
}

// ---------------------------------------------------------------------------------------------
// Imports

TEST(ScanImports, AbsoluteDottedAndAliasedImports) {
  ModuleInfo m = scan("import os\nimport a.b.c\nimport x.y as z, w\n");
  ASSERT_EQ(m.imports.size(), 4U);
  EXPECT_EQ(m.imports[0].module, "os");
  EXPECT_EQ(m.imports[1].module, "a.b.c");
  EXPECT_EQ(m.imports[1].line, 2);
  EXPECT_EQ(m.imports[2].module, "x.y");
  EXPECT_EQ(m.imports[3].module, "w");
  EXPECT_EQ(m.imports[3].line, 3);
  for (const auto& imp : m.imports) {
    EXPECT_FALSE(imp.is_from);
    EXPECT_FALSE(imp.star);
    EXPECT_EQ(imp.level, 0);
    EXPECT_TRUE(imp.names.empty());
  }
}

TEST(ScanImports, FromImportsRecordOriginalNames) {
  ModuleInfo m = scan("from pkg.mod import (a, b as c,\n    d)\n");
  ASSERT_EQ(m.imports.size(), 1U);
  const ImportInfo& imp = m.imports[0];
  EXPECT_TRUE(imp.is_from);
  EXPECT_EQ(imp.module, "pkg.mod");
  EXPECT_EQ(imp.level, 0);
  EXPECT_EQ(imp.names, (Names{"a", "b", "d"}));
  EXPECT_EQ(imp.line, 1);
}

TEST(ScanImports, RelativeImportsRecordLevelAndModule) {
  ModuleInfo m = scan("from . import sibling\nfrom .helpers import h\nfrom ...pkg.mod import x as y\n");
  ASSERT_EQ(m.imports.size(), 3U);
  EXPECT_EQ(m.imports[0].level, 1);
  EXPECT_EQ(m.imports[0].module, "");
  EXPECT_EQ(m.imports[0].names, (Names{"sibling"}));
  EXPECT_EQ(m.imports[1].level, 1);
  EXPECT_EQ(m.imports[1].module, "helpers");
  EXPECT_EQ(m.imports[2].level, 3);
  EXPECT_EQ(m.imports[2].module, "pkg.mod");
  EXPECT_EQ(m.imports[2].names, (Names{"x"}));
  for (const auto& imp : m.imports) EXPECT_TRUE(imp.is_from);
}

TEST(ScanImports, ImportsInsideFunctionBodiesAreRecordedButBindNothing) {
  ModuleInfo m = scan(R"py(
import os
def helper():
    from m import test_inner
    import json
class TestA:
    def test_m(self):
        from .local import test_local
)py");
  expect_clean(m);
  ASSERT_EQ(m.imports.size(), 4U);
  EXPECT_EQ(m.imports[0].module, "os");
  EXPECT_EQ(m.imports[1].module, "m");
  EXPECT_EQ(m.imports[1].names, (Names{"test_inner"}));
  EXPECT_EQ(m.imports[1].line, 4);
  EXPECT_EQ(m.imports[2].module, "json");
  EXPECT_EQ(m.imports[3].module, "local");
  EXPECT_EQ(m.imports[3].level, 1);
  EXPECT_TRUE(m.functions.empty());
  EXPECT_EQ(function_names(klass(m, "TestA").methods), (Names{"test_m"}));
}

TEST(ScanImports, FutureImportIsNotAnImportOfAModule) {
  ModuleInfo m = scan("from __future__ import annotations\nimport os\n");
  expect_clean(m);
  ASSERT_EQ(m.imports.size(), 1U);
  EXPECT_EQ(m.imports[0].module, "os");
}

// ---------------------------------------------------------------------------------------------
// Certainty

TEST(ScanCertainty, StarImportMakesTheModuleUncertain) {
  ModuleInfo m = scan("from helpers import *\ndef test_a(): pass\n");
  EXPECT_FALSE(m.certain);
  EXPECT_FALSE(m.parse_error);
  ASSERT_EQ(m.uncertain_reasons.size(), 1U);
  EXPECT_TRUE(has_reason_containing(m, "star import")) << reasons(m);
  EXPECT_TRUE(has_reason_containing(m, "helpers")) << reasons(m);
  ASSERT_EQ(m.imports.size(), 1U);
  EXPECT_TRUE(m.imports[0].star);
  EXPECT_TRUE(m.imports[0].is_from);
  EXPECT_EQ(function_names(m.functions), (Names{"test_a"}));
}

TEST(ScanCertainty, RelativeStarImportReasonShowsTheDots) {
  ModuleInfo m = scan("from ..common import *\n");
  EXPECT_FALSE(m.certain);
  EXPECT_TRUE(has_reason_containing(m, "..common")) << reasons(m);
}

TEST(ScanCertainty, DynamicBindingAtModuleLevelIsUncertain) {
  for (const char* src :
       {"globals()['test_x'] = f\n", "exec('def test_y(): pass')\n", "setattr(sys.modules[__name__], 'test_z', f)\n",
        "vars().update(tests)\n", "if True:\n    globals().update(tests)\n", "x = [exec(s) for s in srcs]\n"}) {
    ModuleInfo m = scan(src);
    EXPECT_FALSE(m.certain) << src;
    EXPECT_FALSE(m.uncertain_reasons.empty()) << src;
    EXPECT_FALSE(m.parse_error) << src;
  }
}

TEST(ScanCertainty, DynamicBindingReasonNamesTheCallAndLine) {
  ModuleInfo m = scan("x = 1\nsetattr(mod, 'test_a', f)\n");
  EXPECT_TRUE(has_reason_containing(m, "setattr()")) << reasons(m);
  EXPECT_TRUE(has_reason_containing(m, "line 2")) << reasons(m);
}

TEST(ScanCertainty, DynamicBindingInAClassBodyIsUncertain) {
  ModuleInfo m = scan("class TestA:\n    locals()['test_x'] = f\n");
  EXPECT_FALSE(m.certain);
  EXPECT_TRUE(has_reason_containing(m, "locals()"));
}

TEST(ScanCertainty, DynamicCallsInsideFunctionBodiesStayCertain) {
  ModuleInfo m = scan(R"py(
def helper():
    globals()['x'] = 1
    exec('y = 2')
    setattr(obj, 'a', 1)
class TestA:
    def test_m(self):
        setattr(self, 'x', 1)
f = lambda: exec('z')
)py");
  expect_clean(m);
}

TEST(ScanCertainty, SyntaxErrorSetsParseErrorAndUncertain) {
  ModuleInfo m = scan("def test_a(:\n    pass\n");
  EXPECT_TRUE(m.parse_error);
  EXPECT_FALSE(m.certain);
  EXPECT_TRUE(m.error.empty());
  EXPECT_TRUE(has_reason_containing(m, "syntax error"));
}

TEST(ScanCertainty, InvalidUtf8SetsErrorAndUncertain) {
  ModuleInfo m = scan("def test_a(): pass\nx = '\xff'\n");
  EXPECT_FALSE(m.error.empty());
  EXPECT_FALSE(m.certain);
  EXPECT_FALSE(m.uncertain_reasons.empty());
  EXPECT_TRUE(m.functions.empty());
}

TEST(ScanCertainty, Utf8BomIsAccepted) {
  ModuleInfo m = scan(
      "\xEF\xBB\xBF"
      "def test_a(): pass\n");
  expect_clean(m);
  ASSERT_EQ(function_names(m.functions), (Names{"test_a"}));
  EXPECT_EQ(m.functions[0].line, 1);
}

TEST(ScanCertainty, NonAsciiIdentifiersAndStringsAreFine) {
  ModuleInfo m = scan("def test_caf\xC3\xA9():\n    assert '\xE2\x82\xAC' != '\xF0\x9F\x98\x80'\n");
  expect_clean(m);
  EXPECT_EQ(function_names(m.functions), (Names{"test_caf\xC3\xA9"}));
}

TEST(ScanCertainty, EmptySourceIsCertainAndEmpty) {
  ModuleInfo m = scan("");
  expect_clean(m);
  EXPECT_TRUE(m.functions.empty());
  EXPECT_TRUE(m.classes.empty());
  EXPECT_EQ(m.lines, 0U);
}

// ---------------------------------------------------------------------------------------------
// Hooks and counts

TEST(ScanHooks, PytestGenerateTestsIsDetected) {
  ModuleInfo m = scan("def pytest_generate_tests(metafunc): pass\ndef test_a(): pass\n");
  EXPECT_TRUE(m.defines_generate_tests);
  EXPECT_FALSE(m.defines_hooks);
  EXPECT_EQ(function_names(m.functions), (Names{"test_a"}));
}

TEST(ScanHooks, PytestGenerateTestsInATestClassIsDetected) {
  ModuleInfo m = scan("class TestA:\n    def pytest_generate_tests(self, metafunc): pass\n");
  EXPECT_TRUE(m.defines_generate_tests);
}

TEST(ScanHooks, OtherPytestHooksSetDefinesHooksOnly) {
  ModuleInfo m = scan("def pytest_configure(config): pass\n");
  EXPECT_TRUE(m.defines_hooks);
  EXPECT_FALSE(m.defines_generate_tests);
  ModuleInfo none = scan("def test_a(): pass\n");
  EXPECT_FALSE(none.defines_hooks);
  EXPECT_FALSE(none.defines_generate_tests);
}

TEST(ScanCounts, TestCountSkipsClassesPytestWouldNotCollect) {
  ModuleInfo m = scan(R"py(
def test_a(): pass
test_b = make()
class TestA:
    def test_m1(self): pass
    def test_m2(self): pass
    def helper(self): pass
class Helper:
    def test_h(self): pass
class TestInit:
    def __init__(self): pass
    def test_i(self): pass
class TestNew:
    def __new__(cls): pass
    def test_n(self): pass
class TestOff:
    __test__ = False
    def test_o(self): pass
class TestOn:
    __test__ = True
    def test_on(self): pass
)py");
  EXPECT_EQ(m.test_count({"Test"}), 2U + 2U + 1U);
  EXPECT_EQ(m.test_count({"Helper"}), 2U + 1U);
  EXPECT_EQ(m.test_count({}), 2U);
}

// ---------------------------------------------------------------------------------------------
// is_valid_utf8

TEST(IsValidUtf8, AcceptsWellFormedSequences) {
  for (std::string_view s :
       {std::string_view(""), std::string_view("abc"), std::string_view("a\0b", 3), std::string_view("\xC3\xA9"),
        std::string_view("\xE2\x82\xAC"), std::string_view("\xF0\x9F\x98\x80"), std::string_view("\xF4\x8F\xBF\xBF"),
        std::string_view("\xED\x9F\xBF"), std::string_view("\xEE\x80\x80")})
    EXPECT_TRUE(is_valid_utf8(s)) << testing::PrintToString(std::string(s));
}

TEST(IsValidUtf8, RejectsOverlongEncodings) {
  for (const char* s : {"\xC0\x80", "\xC1\xBF", "\xE0\x80\x80", "\xE0\x9F\xBF", "\xF0\x80\x80\x80", "\xF0\x8F\xBF\xBF"})
    EXPECT_FALSE(is_valid_utf8(s)) << testing::PrintToString(std::string(s));
}

TEST(IsValidUtf8, RejectsSurrogates) {
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));  // U+D800
  EXPECT_FALSE(is_valid_utf8("\xED\xBF\xBF"));  // U+DFFF
}

TEST(IsValidUtf8, RejectsTruncatedSequences) {
  for (const char* s : {"\xC3", "\xE2\x82", "\xF0\x9F\x98",
                        "a\xE2\x82"
                        "b",
                        "\xC3\x28"})
    EXPECT_FALSE(is_valid_utf8(s)) << testing::PrintToString(std::string(s));
}

TEST(IsValidUtf8, RejectsOutOfRangeAndInvalidLeadBytes) {
  for (const char* s : {"\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xF8\x88\x80\x80\x80", "\x80", "\xFF", "\xFE"})
    EXPECT_FALSE(is_valid_utf8(s)) << testing::PrintToString(std::string(s));
}

// ---------------------------------------------------------------------------------------------
// scan_file / scan_files

class ScanFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string base = ::testing::TempDir();
    if (base.empty() || base.back() != '/') base += '/';
    std::string tmpl = base + "fastcollect_scan_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << "mkdtemp failed for " << tmpl;
    dir_ = tmpl;
  }

  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  std::string write(const std::string& name, const std::string& content) const {
    std::string p = dir_ + "/" + name;
    std::ofstream out(p, std::ios::binary);
    out << content;
    EXPECT_TRUE(out.good()) << "cannot write " << p;
    return p;
  }

  std::string dir_;
};

TEST_F(ScanFilesTest, ScanFileReadsAndScansAFile) {
  std::string p = write("test_one.py", "def test_a(): pass\n");
  Scanner scanner(NameRules{});
  ModuleInfo m = scanner.scan_file(p);
  expect_clean(m);
  EXPECT_EQ(m.path, p);
  EXPECT_EQ(function_names(m.functions), (Names{"test_a"}));
}

TEST_F(ScanFilesTest, ResultsAreInPathOrderWithTwoThreads) {
  std::vector<std::string> paths;
  for (int i = 0; i < 8; ++i) {
    std::string name = "test_f" + std::to_string(i);
    paths.push_back(write(name + ".py", "def " + name + "_a(): pass\ndef " + name + "_b(): pass\n"));
  }
  std::vector<ModuleInfo> out = scan_files(paths, NameRules{}, 2);
  ASSERT_EQ(out.size(), paths.size());
  for (std::size_t i = 0; i < paths.size(); ++i) {
    std::string name = "test_f" + std::to_string(i);
    EXPECT_EQ(out[i].path, paths[i]);
    EXPECT_TRUE(out[i].error.empty()) << out[i].error;
    EXPECT_EQ(function_names(out[i].functions), (Names{name + "_a", name + "_b"}));
  }
}

TEST_F(ScanFilesTest, NameRulesArePassedToEveryWorker) {
  std::vector<std::string> paths{write("a.py", "def check_a(): pass\ndef test_a(): pass\n"),
                                 write("b.py", "def check_b(): pass\n")};
  NameRules rules;
  rules.python_functions = {"check"};
  std::vector<ModuleInfo> out = scan_files(paths, rules, 2);
  ASSERT_EQ(out.size(), 2U);
  EXPECT_EQ(function_names(out[0].functions), (Names{"check_a"}));
  EXPECT_EQ(function_names(out[1].functions), (Names{"check_b"}));
}

TEST_F(ScanFilesTest, MissingPathYieldsAnErrorNotAnException) {
  std::string good = write("test_ok.py", "def test_ok(): pass\n");
  std::string missing = dir_ + "/does_not_exist.py";
  std::vector<ModuleInfo> out;
  ASSERT_NO_THROW(out = scan_files({missing, good}, NameRules{}, 2));
  ASSERT_EQ(out.size(), 2U);
  EXPECT_EQ(out[0].path, missing);
  EXPECT_FALSE(out[0].error.empty());
  EXPECT_FALSE(out[0].certain);
  EXPECT_FALSE(out[0].uncertain_reasons.empty());
  EXPECT_TRUE(out[0].functions.empty());
  EXPECT_TRUE(out[1].error.empty()) << out[1].error;
  EXPECT_EQ(function_names(out[1].functions), (Names{"test_ok"}));
}

TEST_F(ScanFilesTest, DirectoryPathYieldsAnErrorNotAnEmptyModule) {
  std::string sub = dir_ + "/test_dir.py";
  fs::create_directory(sub);
  std::vector<ModuleInfo> out;
  ASSERT_NO_THROW(out = scan_files({sub}, NameRules{}, 2));
  ASSERT_EQ(out.size(), 1U);
  EXPECT_FALSE(out[0].error.empty());
  EXPECT_FALSE(out[0].certain);
}

TEST_F(ScanFilesTest, InvalidUtf8FileYieldsAnError) {
  std::vector<ModuleInfo> out = scan_files({write("test_latin1.py", "x = '\xE9'\n")}, NameRules{}, 2);
  ASSERT_EQ(out.size(), 1U);
  EXPECT_FALSE(out[0].error.empty());
  EXPECT_FALSE(out[0].certain);
}

TEST_F(ScanFilesTest, EmptyPathListGivesEmptyResult) { EXPECT_TRUE(scan_files({}, NameRules{}, 2).empty()); }

}  // namespace
}  // namespace fastcollect
