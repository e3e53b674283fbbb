// The static model of one Python test file: what pytest could collect from it, as far as syntax tells.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fastcollect {

/// A mark read from a decorator or a `pytestmark` assignment.
struct MarkInfo {
  std::string name;    ///< mark name, e.g. "skipif", "parametrize", "slow"
  std::string source;  ///< the source text of the mark expression, e.g. `pytest.mark.slow(reason="x")`
  int line = 0;        ///< 1-based line of the expression
};

/// A test-shaped function or method (its name matches python_functions), or a module-level assignment
/// / import that binds such a name.
struct FunctionInfo {
  std::string name;
  int line = 0;                               ///< 1-based line of `def` (or of the assignment/import)
  bool is_async = false;                      ///< `async def`
  bool conditional = false;                   ///< defined under if/try/with/for/while: may or may not exist at import
  bool is_def = true;                         ///< false for `test_x = ...` or `from m import test_x` (shape unknown)
  std::vector<MarkInfo> marks;                ///< decorators recognised as marks, outermost first
  std::vector<std::string> other_decorators;  ///< decorators that are not marks (source text)
};

/// A class definition at any depth outside functions. Every class is recorded, test-shaped or not, because a
/// test class may inherit tests from it.
struct ClassInfo {
  std::string name;
  std::string qualname;  ///< dotted path of enclosing classes, e.g. "TestOuter.TestInner"
  int line = 0;
  bool conditional = false;
  bool has_init = false;  ///< defines __init__ (pytest refuses to collect it, with a warning)
  bool has_new = false;   ///< defines __new__ (likewise)
  int test_attr = -1;     ///< `__test__ = ...` in the body: 1 true literal, 0 false literal, 2 other, -1 absent
  std::vector<std::string> bases;  ///< source text of each base expression (keyword args excluded)
  std::vector<MarkInfo> marks;     ///< class decorators that are marks, then the class `pytestmark`
  std::vector<std::string> other_decorators;
  std::vector<FunctionInfo> methods;  ///< test-shaped methods (python_functions match), in source order
};

/// An import statement, for the import graph and for names bound by import.
struct ImportInfo {
  std::string module;  ///< dotted module text as written, without the leading dots ("" for `from . import x`)
  int level = 0;       ///< number of leading dots of a relative import
  std::vector<std::string> names;  ///< imported names for `from` imports (original names, not aliases)
  bool is_from = false;
  bool star = false;  ///< `from m import *`
  int line = 0;
};

/// Everything the scanner learned from one file. `certain` means the set of test-shaped names bound at
/// module and class level is fully visible in the syntax (inheritance from other files aside); when false,
/// `uncertain_reasons` says why and the file must be imported.
struct ModuleInfo {
  std::string path;
  std::string error;         ///< unreadable / not UTF-8 / too large; empty when the file was parsed
  bool parse_error = false;  ///< tree-sitter found a syntax error (pytest will report it: always import)
  bool certain = true;
  std::vector<std::string> uncertain_reasons;
  std::vector<FunctionInfo> functions;  ///< module-level test-shaped names (defs, assignments, imports)
  std::vector<ClassInfo> classes;       ///< all classes outside function bodies, in source order
  std::vector<MarkInfo> module_marks;   ///< module-level `pytestmark`
  int module_test_attr = -1;            ///< module `__test__` (same encoding as ClassInfo::test_attr)
  std::vector<ImportInfo> imports;      ///< every import statement, in source order, any depth
  std::vector<std::pair<std::string, std::string>> mark_aliases;  ///< `alias = pytest.mark.NAME`: (alias, NAME)
  bool defines_generate_tests = false;  ///< module defines pytest_generate_tests (parametrization unknown)
  bool defines_hooks = false;           ///< module defines other `pytest_*` functions
  std::uint32_t lines = 0;              ///< line count of the source

  /// A module that could not be scanned: `error` set, uncertain with `error` as the reason, so the file is
  /// always imported (and pytest reports whatever is wrong with it).
  static ModuleInfo failed(const std::string& path, const std::string& error) {
    ModuleInfo m;
    m.path = path;
    m.error = error;
    m.certain = false;
    m.uncertain_reasons.push_back(error);
    return m;
  }

  /// Number of test-shaped functions and methods (of classes matching python_classes), before
  /// parametrization: a static estimate for reports, never a substitute for collection.
  std::size_t test_count(const std::vector<std::string>& python_classes) const;
};

/// Name patterns from the ini, as pytest reads them (_pytest/python.py).
struct NameRules {
  std::vector<std::string> python_functions{"test"};
  std::vector<std::string> python_classes{"Test"};
};

}  // namespace fastcollect
