// pybind11 module pytest_fastcollect._core: converts arguments and results, releases the GIL around the
// walk and the scan, holds no logic of its own.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "expr/expression.hpp"
#include "graph/import_graph.hpp"
#include "scan/scanner.hpp"
#include "store/discovery_cache.hpp"
#include "store/fingerprint.hpp"
#include "walk/fnmatch.hpp"
#include "walk/walk.hpp"

namespace py = pybind11;
using namespace fastcollect;

PYBIND11_MODULE(_core, m) {
  m.doc() = "pytest-fastcollect C++ core: pytest's path rules (walk), the tree-sitter scanner (scan).";
  m.attr("SCANNER_VERSION") = 1;

  py::class_<MarkInfo>(m, "MarkInfo", "A mark read from a decorator or pytestmark.")
      .def_readonly("name", &MarkInfo::name, "Mark name; '' when the expression is not a recognisable mark.")
      .def_readonly("source", &MarkInfo::source, "Source text of the mark expression.")
      .def_readonly("line", &MarkInfo::line, "1-based line.");

  py::class_<FunctionInfo>(m, "FunctionInfo", "A test-shaped function, method, or bound name.")
      .def_readonly("name", &FunctionInfo::name)
      .def_readonly("line", &FunctionInfo::line)
      .def_readonly("is_async", &FunctionInfo::is_async)
      .def_readonly("conditional", &FunctionInfo::conditional, "Defined under if/try/with/for/while.")
      .def_readonly("is_def", &FunctionInfo::is_def, "False for names bound by assignment or import.")
      .def_readonly("marks", &FunctionInfo::marks)
      .def_readonly("other_decorators", &FunctionInfo::other_decorators);

  py::class_<ClassInfo>(m, "ClassInfo", "A class outside function bodies (all classes are recorded).")
      .def_readonly("name", &ClassInfo::name)
      .def_readonly("qualname", &ClassInfo::qualname)
      .def_readonly("line", &ClassInfo::line)
      .def_readonly("conditional", &ClassInfo::conditional)
      .def_readonly("has_init", &ClassInfo::has_init)
      .def_readonly("has_new", &ClassInfo::has_new)
      .def_readonly("test_attr", &ClassInfo::test_attr, "__test__: 1 True, 0 False, 2 other, -1 absent.")
      .def_readonly("bases", &ClassInfo::bases)
      .def_readonly("marks", &ClassInfo::marks)
      .def_readonly("other_decorators", &ClassInfo::other_decorators)
      .def_readonly("methods", &ClassInfo::methods);

  py::class_<ImportInfo>(m, "ImportInfo", "One import statement.")
      .def_readonly("module", &ImportInfo::module)
      .def_readonly("level", &ImportInfo::level)
      .def_readonly("names", &ImportInfo::names)
      .def_readonly("is_from", &ImportInfo::is_from)
      .def_readonly("star", &ImportInfo::star)
      .def_readonly("line", &ImportInfo::line);

  py::class_<ModuleInfo>(m, "ModuleInfo", "The static model of one test file (see scan/module_info.hpp).")
      .def_readonly("path", &ModuleInfo::path)
      .def_readonly("error", &ModuleInfo::error)
      .def_readonly("parse_error", &ModuleInfo::parse_error)
      .def_readonly("certain", &ModuleInfo::certain)
      .def_readonly("uncertain_reasons", &ModuleInfo::uncertain_reasons)
      .def_readonly("functions", &ModuleInfo::functions)
      .def_readonly("classes", &ModuleInfo::classes)
      .def_readonly("module_marks", &ModuleInfo::module_marks)
      .def_readonly("module_test_attr", &ModuleInfo::module_test_attr)
      .def_readonly("imports", &ModuleInfo::imports)
      .def_readonly("mark_aliases", &ModuleInfo::mark_aliases)
      .def_readonly("defines_generate_tests", &ModuleInfo::defines_generate_tests)
      .def_readonly("defines_hooks", &ModuleInfo::defines_hooks)
      .def_readonly("lines", &ModuleInfo::lines)
      .def("test_count", &ModuleInfo::test_count, py::arg("python_classes"),
           "Static count of test-shaped functions and methods of python_classes-matching classes, before "
           "parametrization (an estimate for reports).");

  py::class_<WalkResult>(m, "WalkResult", "Result of walk(): files in pytest's collection order.")
      .def_readonly("files", &WalkResult::files)
      .def_readonly("conftests", &WalkResult::conftests)
      .def_readonly("dirs_visited", &WalkResult::dirs_visited)
      .def_readonly("errors", &WalkResult::errors);

  m.def(
      "walk",
      [](std::vector<std::string> roots, std::vector<std::string> python_files, std::vector<std::string> norecursedirs,
         std::vector<std::string> ignore_paths, std::vector<std::string> ignore_globs, bool collect_in_virtualenv,
         unsigned threads) {
        WalkConfig cfg;
        cfg.roots = std::move(roots);
        cfg.python_files = std::move(python_files);
        cfg.norecursedirs = std::move(norecursedirs);
        cfg.ignore_paths = std::move(ignore_paths);
        cfg.ignore_globs = std::move(ignore_globs);
        cfg.collect_in_virtualenv = collect_in_virtualenv;
        cfg.threads = threads;
        py::gil_scoped_release release;
        return walk(cfg);
      },
      py::arg("roots"), py::arg("python_files"), py::arg("norecursedirs"), py::arg("ignore_paths"),
      py::arg("ignore_globs"), py::arg("collect_in_virtualenv") = false, py::arg("threads") = 0,
      R"doc(Walk the run's initial paths with pytest's path rules (_pytest/main.py pytest_ignore_collect,
_pytest/python.py pytest_collect_file). All paths absolute str. Returns WalkResult; never raises for
missing or unreadable folders (they are listed in WalkResult.errors).)doc");

  m.def(
      "scan_files",
      [](std::vector<std::string> paths, std::vector<std::string> python_functions,
         std::vector<std::string> python_classes, unsigned threads) {
        NameRules rules{std::move(python_functions), std::move(python_classes)};
        py::gil_scoped_release release;
        return scan_files(paths, rules, threads);
      },
      py::arg("paths"), py::arg("python_functions"), py::arg("python_classes"), py::arg("threads") = 0,
      R"doc(Parse each file with tree-sitter-python on a thread pool (GIL released). Returns a list of
ModuleInfo, one per path, same order. Per-file problems (unreadable, not UTF-8, syntax error) are recorded
in ModuleInfo.error / parse_error, never raised.)doc");

  m.def(
      "scan_source",
      [](const std::string& source, std::vector<std::string> python_functions,
         std::vector<std::string> python_classes) {
        NameRules rules{std::move(python_functions), std::move(python_classes)};
        py::gil_scoped_release release;
        return Scanner(rules).scan_source(source);
      },
      py::arg("source"), py::arg("python_functions") = std::vector<std::string>{"test"},
      py::arg("python_classes") = std::vector<std::string>{"Test"}, "Scan one source text (str). Returns ModuleInfo.");

  py::class_<CacheStats>(m, "CacheStats", "What one cached scan did (counts are files).")
      .def_readonly("files", &CacheStats::files)
      .def_readonly("trusted", &CacheStats::trusted, "stat unchanged: row used without reading the file")
      .def_readonly("rehashed", &CacheStats::rehashed, "stat changed, xxh3 unchanged: row refreshed")
      .def_readonly("parsed", &CacheStats::parsed, "new or changed: parsed")
      .def_readonly("pruned", &CacheStats::pruned, "rows of vanished files deleted")
      .def_readonly("read_only", &CacheStats::read_only)
      .def_readonly("wrote", &CacheStats::wrote)
      .def_readonly("seconds", &CacheStats::seconds, "wall time of the cached scan, seconds")
      .def_readonly("warning", &CacheStats::warning, "one line when the cache was set aside/busy/unusable");

  py::class_<DiscoveryCache>(m, "DiscoveryCache", R"doc(The SQLite discovery cache of one rootdir.

DiscoveryCache(path: str, read_only: bool, busy_timeout_ms: int = 10000). Never raises for a bad file: a
corrupt or other-version database is set aside (path + '.corrupt') and rebuilt, unless read_only, which never
writes (mode=ro) and treats an unusable file as no cache. See store/discovery_cache.hpp for the lookup ladder.)doc")
      .def(py::init<std::string, bool, int>(), py::arg("path"), py::arg("read_only") = false,
           py::arg("busy_timeout_ms") = 10000, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("usable", &DiscoveryCache::usable)
      .def_property_readonly("open_warning", &DiscoveryCache::open_warning)
      .def("row_count", &DiscoveryCache::row_count, py::call_guard<py::gil_scoped_release>())
      .def(
          "scan",
          [](DiscoveryCache& self, const std::vector<std::string>& paths, std::vector<std::string> python_functions,
             std::vector<std::string> python_classes, unsigned threads) {
            NameRules rules{std::move(python_functions), std::move(python_classes)};
            CacheStats stats;
            std::vector<ModuleInfo> out;
            {
              py::gil_scoped_release release;
              out = self.scan(paths, rules, threads, stats);
            }
            return py::make_tuple(std::move(out), stats);
          },
          py::arg("paths"), py::arg("python_functions"), py::arg("python_classes"), py::arg("threads") = 0,
          "Cached scan (GIL released). Returns (list[ModuleInfo] in path order, CacheStats).")
      .def_static(
          "remove_files",
          [](const std::string& path) {
            std::string error;
            if (!DiscoveryCache::remove_files(path, error)) throw std::runtime_error(error);
          },
          py::arg("path"), "Delete the database and its -wal/-shm files (missing is fine). Raises RuntimeError.");
  py::class_<FileFingerprint>(m, "FileFingerprint", "A file's identity for freshness checks (store/fingerprint.hpp).")
      .def_property_readonly(
          "exists", [](const FileFingerprint& f) { return f.stat.ok; },
          "True for a regular file that stat(2) could read")
      .def_property_readonly("errno", [](const FileFingerprint& f) { return f.stat.err; })
      .def_property_readonly("mtime_ns", [](const FileFingerprint& f) { return f.stat.mtime_ns; })
      .def_property_readonly("ctime_ns", [](const FileFingerprint& f) { return f.stat.ctime_ns; })
      .def_property_readonly(
          "size", [](const FileFingerprint& f) { return f.stat.size; }, "bytes")
      .def_property_readonly("inode", [](const FileFingerprint& f) { return f.stat.inode; })
      .def_property_readonly(
          "xxh3",
          [](const FileFingerprint& f) -> py::object {
            if (!f.hashed) return py::none();
            return py::int_(f.xxh3);
          },
          "XXH3-64 of the bytes (signed 64-bit int), None when not asked for or unreadable");
  m.def("fingerprint_files", &fingerprint_files, py::arg("paths"), py::arg("with_hash") = true, py::arg("threads") = 1,
        py::call_guard<py::gil_scoped_release>(),
        "fingerprint_files(paths: list[str], with_hash=True, threads=1) -> list[FileFingerprint], same order. "
        "stat(2) follows symlinks; never raises for a missing or unreadable file. threads=0: one per core (the "
        "threads are joined before it returns, so a process may fork afterwards).");
  m.attr("CACHE_SCHEMA_VERSION") = DiscoveryCache::kSchemaVersion;

  py::class_<Expression>(m, "Expression", R"doc(A compiled -k/-m match expression (pytest's grammar,
_pytest/mark/expression.py), evaluated with three values.)doc")
      .def_property_readonly("source", &Expression::source)
      .def("dump", &Expression::dump, "The parse tree as text (for tests and debugging).")
      .def(
          "evaluate",
          [](const Expression& self, const py::function& matcher) -> py::object {
            Tri t = self.evaluate([&matcher](std::string_view ident, const Kwargs& kwargs) {
              py::dict kw;
              for (const auto& [k, v] : kwargs) {
                switch (v.kind()) {
                  case KwValue::Kind::kNone:
                    kw[py::str(k)] = py::none();
                    break;
                  case KwValue::Kind::kBool:
                    kw[py::str(k)] = py::bool_(v.as_bool());
                    break;
                  case KwValue::Kind::kInt:
                    kw[py::str(k)] = py::int_(py::str(v.int_decimal()));
                    break;
                  case KwValue::Kind::kStr:
                    kw[py::str(k)] = py::str(v.as_str());
                    break;
                }
              }
              py::object r = matcher(py::str(std::string(ident)), kw);
              if (r.is_none()) return Tri::Unknown;
              return r.cast<bool>() ? Tri::True : Tri::False;
            });
            if (t == Tri::Unknown) return py::none();
            return py::bool_(t == Tri::True);
          },
          py::arg("matcher"),
          "matcher(ident: str, kwargs: dict) -> True | False | None (unknown). Returns True, False or None "
          "(Kleene logic: unknown only where the known values do not decide).")
      .def(
          "evaluate_keywords",
          [](const Expression& self, const std::vector<std::string>& names) -> py::object {
            Tri t;
            {
              py::gil_scoped_release release;
              t = self.evaluate([&names](std::string_view ident, const Kwargs& kwargs) {
                // pytest raises a UsageError for `-k name(k=v)`: never decided here
                if (!kwargs.empty()) return Tri::Unknown;
                return keyword_matches(ident, names) ? Tri::True : Tri::False;
              });
            }
            if (t == Tri::Unknown) return py::none();
            return py::bool_(t == Tri::True);
          },
          py::arg("names"),
          "The expression as a -k expression over one item's names (list[str]; KeywordMatcher semantics, "
          "_pytest/mark/__init__.py: case-insensitive substring of any name), all in C++. Returns True, False "
          "or None (an ident with arguments is unknown).");

  m.def(
      "compile_expression",
      [](const std::string& text, bool backslash_anywhere) -> py::tuple {
        ExprError error;
        auto expr = Expression::compile(text, error, ExprDialect{backslash_anywhere});
        if (!expr) return py::make_tuple(py::none(), error.column, error.message);
        return py::make_tuple(std::move(*expr), 0, std::string());
      },
      py::arg("text"), py::arg("backslash_anywhere") = true,
      "Compile a -k/-m expression. Returns (Expression, 0, '') or (None, column, message) with pytest's "
      "1-based column and message for a malformed expression. backslash_anywhere: the installed pytest's "
      "dialect (pytest_fastcollect.expr.backslash_anywhere() probes it).");
  m.def("keyword_matches", &keyword_matches, py::arg("ident"), py::arg("names"),
        "pytest's -k rule for one ident (_pytest/mark/__init__.py KeywordMatcher): case-insensitive "
        "substring of any name.");

  py::class_<ImportGraph>(m, "ImportGraph",
                          "Import graph over project files (see graph/import_graph.hpp for the semantics).")
      .def(py::init([](const std::vector<std::string>& paths, const py::list& modules,
                       const std::vector<std::string>& roots) {
             if (paths.size() != modules.size())
               throw py::value_error("ImportGraph: paths and modules differ in length");
             std::vector<std::vector<ImportInfo>> imports;
             imports.reserve(modules.size());
             for (const auto& h : modules) imports.push_back(h.cast<const ModuleInfo&>().imports);
             py::gil_scoped_release release;
             return ImportGraph(paths, imports, roots);
           }),
           py::arg("paths"), py::arg("modules"), py::arg("roots"),
           "paths: list[str] (absolute), modules: list[ModuleInfo] (same order), roots: import roots in "
           "sys.path priority order. The graph is built with the GIL released.")
      .def("dependencies", &ImportGraph::dependencies, py::arg("path"), "Direct project imports of path, sorted.")
      .def("dependents", &ImportGraph::dependents, py::arg("path"), "Files importing path directly, sorted.")
      .def("reverse_closure", &ImportGraph::reverse_closure, py::arg("paths"), py::call_guard<py::gil_scoped_release>(),
           "All files that import any of paths transitively, plus paths themselves; sorted.")
      .def(
          "module_name",
          [](const ImportGraph& g, const std::string& path) -> py::object {
            std::string name = g.module_name(path);
            if (name.empty()) return py::none();
            return py::str(name);
          },
          py::arg("path"), "Dotted module name under the first import root holding path, or None.")
      .def("resolve", &ImportGraph::resolve, py::arg("name"), "Project file a dotted name resolves to, or ''.")
      .def("__contains__", &ImportGraph::contains)
      .def("__len__", &ImportGraph::size)
      .def_property_readonly("edge_count", &ImportGraph::edge_count);

  m.def("fnmatch_ex", &fnmatch_ex, py::arg("pattern"), py::arg("path"),
        "pytest's fnmatch_ex (_pytest/pathlib.py) on '/'-separated paths.");
}
