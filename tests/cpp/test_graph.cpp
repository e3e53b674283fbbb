// Tests for graph/import_graph: module names from import roots, resolution of absolute, from and relative
// imports (importlib semantics), direct dependencies and the reverse-dependency closure.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "graph/import_graph.hpp"
#include "scan/scanner.hpp"

namespace fastcollect {
namespace {

namespace fs = std::filesystem;
using Paths = std::vector<std::string>;
using Files = std::vector<std::pair<std::string, std::string>>;  // (absolute path, source)

ImportGraph make_graph(const Files& files, const Paths& roots) {
  Scanner scanner{NameRules{}};
  Paths paths;
  std::vector<ModuleInfo> infos;
  for (const auto& [path, src] : files) {
    paths.push_back(path);
    infos.push_back(scanner.scan_source(src, path));
  }
  return ImportGraph(paths, infos, roots);
}

// ---------------------------------------------------------------------------------------------------------
// Module names

TEST(GraphNames, ModulesPackagesAndFilesOutsideRoots) {
  ImportGraph g = make_graph({{"/p/a/b/c.py", ""},
                              {"/p/a/b/__init__.py", ""},
                              {"/p/top.py", ""},
                              {"/p/__init__.py", ""},
                              {"/p/bad-name/x.py", ""},
                              {"/p/a/data.txt.py", ""},
                              {"/elsewhere/m.py", ""},
                              {"/pother/m.py", ""}},
                             {"/p/"});
  EXPECT_EQ(g.module_name("/p/a/b/c.py"), "a.b.c");
  EXPECT_EQ(g.module_name("/p/a/b/__init__.py"), "a.b");
  EXPECT_EQ(g.module_name("/p/top.py"), "top");
  EXPECT_EQ(g.module_name("/p/__init__.py"), "");
  EXPECT_EQ(g.module_name("/p/bad-name/x.py"), "");
  EXPECT_EQ(g.module_name("/p/a/data.txt.py"), "");
  EXPECT_EQ(g.module_name("/elsewhere/m.py"), "");
  EXPECT_EQ(g.module_name("/pother/m.py"), "");  // prefix of the string, not of the path
  EXPECT_EQ(g.module_name("/not/a/node.py"), "");
  EXPECT_TRUE(g.contains("/elsewhere/m.py"));
  EXPECT_EQ(g.size(), 8U);
}

TEST(GraphNames, FirstContainingRootNamesTheFile) {
  ImportGraph g = make_graph({{"/p/tests/test_a.py", ""}, {"/p/tests/helpers.py", ""}}, {"/p", "/p/tests"});
  EXPECT_EQ(g.module_name("/p/tests/test_a.py"), "tests.test_a");
  // Both names resolve: rootdir-based import modes put /p/tests on sys.path too.
  EXPECT_EQ(g.resolve("tests.helpers"), "/p/tests/helpers.py");
  EXPECT_EQ(g.resolve("helpers"), "/p/tests/helpers.py");
}

TEST(GraphNames, RootPriorityAndPackageOverModule) {
  ImportGraph g = make_graph(
      {{"/r2/util.py", ""}, {"/r1/util.py", ""}, {"/r1/pkg.py", ""}, {"/r1/pkg/__init__.py", ""}, {"/r2/only2.py", ""}},
      {"/r1", "/r2"});
  EXPECT_EQ(g.resolve("util"), "/r1/util.py");
  EXPECT_EQ(g.resolve("pkg"), "/r1/pkg/__init__.py");
  EXPECT_EQ(g.resolve("only2"), "/r2/only2.py");
  EXPECT_EQ(g.resolve("missing"), "");
  EXPECT_EQ(g.module_name("/r2/util.py"), "util");
}

TEST(GraphNames, MismatchedLengthsThrow) {
  EXPECT_THROW(ImportGraph(Paths{"/a.py"}, std::vector<ModuleInfo>{}, Paths{"/"}), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------------------
// Absolute and from-imports

TEST(GraphImports, AbsoluteDottedImportDependsOnEveryParentPackage) {
  ImportGraph g = make_graph({{"/p/t.py", "import a.b.c\n"},
                              {"/p/a/__init__.py", ""},
                              {"/p/a/b/__init__.py", ""},
                              {"/p/a/b/c.py", ""},
                              {"/p/a/b/d.py", ""}},
                             {"/p"});
  EXPECT_EQ(g.dependencies("/p/t.py"), (Paths{"/p/a/__init__.py", "/p/a/b/__init__.py", "/p/a/b/c.py"}));
}

TEST(GraphImports, AliasedAndMultipleImports) {
  ImportGraph g = make_graph({{"/p/t.py", "import a.x as y, b\nimport os, sys as system\n"},
                              {"/p/a/__init__.py", ""},
                              {"/p/a/x.py", ""},
                              {"/p/b.py", ""}},
                             {"/p"});
  EXPECT_EQ(g.dependencies("/p/t.py"), (Paths{"/p/a/__init__.py", "/p/a/x.py", "/p/b.py"}));
}

TEST(GraphImports, NamespacePackageParentsHaveNoFile) {
  ImportGraph g = make_graph({{"/p/t.py", "import ns.sub.mod\n"}, {"/p/ns/sub/mod.py", ""}}, {"/p"});
  EXPECT_EQ(g.dependencies("/p/t.py"), (Paths{"/p/ns/sub/mod.py"}));
}

TEST(GraphImports, FromImportOfSubmoduleVersusName) {
  ImportGraph g = make_graph({{"/p/t.py", "from a.b import c, helper as h\n"},
                              {"/p/a/__init__.py", ""},
                              {"/p/a/b/__init__.py", "helper = 1\n"},
                              {"/p/a/b/c.py", ""},
                              {"/p/a/b/unused.py", ""}},
                             {"/p"});
  EXPECT_EQ(g.dependencies("/p/t.py"), (Paths{"/p/a/__init__.py", "/p/a/b/__init__.py", "/p/a/b/c.py"}));
}

TEST(GraphImports, FromImportOfNameOnlyDependsOnTheModuleChain) {
  ImportGraph g =
      make_graph({{"/p/t.py", "from a.mod import thing\n"}, {"/p/a/__init__.py", ""}, {"/p/a/mod.py", ""}}, {"/p"});
  EXPECT_EQ(g.dependencies("/p/t.py"), (Paths{"/p/a/__init__.py", "/p/a/mod.py"}));
}

TEST(GraphImports, StarImportIsLikeAFromImport) {
  ImportGraph g = make_graph(
      {{"/p/t.py", "from a.b import *\n"}, {"/p/a/__init__.py", ""}, {"/p/a/b.py", ""}, {"/p/a/c.py", ""}}, {"/p"});
  EXPECT_EQ(g.dependencies("/p/t.py"), (Paths{"/p/a/__init__.py", "/p/a/b.py"}));
}

TEST(GraphImports, StdlibAndThirdPartyAreIgnored) {
  ImportGraph g = make_graph({{"/p/t.py",
                               "import os\nimport os.path\nfrom collections import abc\nimport numpy as np\n"
                               "from pytest import mark\n"},
                              {"/p/local.py", ""}},
                             {"/p"});
  EXPECT_TRUE(g.dependencies("/p/t.py").empty());
  EXPECT_EQ(g.edge_count(), 0U);
}

TEST(GraphImports, ImportsInsideFunctionsAndConditionsCount) {
  ImportGraph g =
      make_graph({{"/p/t.py", "def f():\n    import lazy\ntry:\n    import opt\nexcept ImportError:\n    pass\n"},
                  {"/p/lazy.py", ""},
                  {"/p/opt.py", ""}},
                 {"/p"});
  EXPECT_EQ(g.dependencies("/p/t.py"), (Paths{"/p/lazy.py", "/p/opt.py"}));
}

TEST(GraphImports, SelfImportIsNoEdge) {
  ImportGraph g = make_graph({{"/p/a/__init__.py", "from . import x\nimport a\n"}, {"/p/a/x.py", ""}}, {"/p"});
  EXPECT_EQ(g.dependencies("/p/a/__init__.py"), (Paths{"/p/a/x.py"}));
}

TEST(GraphImports, TwoRootsResolveByPriority) {
  ImportGraph g = make_graph({{"/src/app/t.py", "import util\nimport shared.mod\n"},
                              {"/src/util.py", ""},
                              {"/vendor/util.py", ""},
                              {"/vendor/shared/__init__.py", ""},
                              {"/vendor/shared/mod.py", ""}},
                             {"/src", "/vendor"});
  EXPECT_EQ(g.dependencies("/src/app/t.py"),
            (Paths{"/src/util.py", "/vendor/shared/__init__.py", "/vendor/shared/mod.py"}));
  EXPECT_EQ(g.dependents("/vendor/util.py"), Paths{});
}

TEST(GraphImports, FileOutsideRootsImportsButIsNeverImported) {
  ImportGraph g = make_graph({{"/out/script.py", "import lib\nfrom . import sibling\n"},
                              {"/out/sibling.py", ""},
                              {"/p/lib.py", "import script\n"}},
                             {"/p"});
  EXPECT_EQ(g.dependencies("/out/script.py"), (Paths{"/p/lib.py"}));
  EXPECT_TRUE(g.dependencies("/p/lib.py").empty());
}

TEST(GraphImports, DuplicatePathsAreMerged) {
  Scanner scanner{NameRules{}};
  std::vector<ModuleInfo> infos{scanner.scan_source("import a\n"), scanner.scan_source("import b\n"),
                                scanner.scan_source(""), scanner.scan_source("")};
  ImportGraph g(Paths{"/p/t.py", "/p/t.py", "/p/a.py", "/p/b.py"}, infos, Paths{"/p"});
  EXPECT_EQ(g.size(), 3U);
  EXPECT_EQ(g.dependencies("/p/t.py"), (Paths{"/p/a.py", "/p/b.py"}));
}

// ---------------------------------------------------------------------------------------------------------
// Relative imports (importlib.util.resolve_name)

Files relative_tree(const std::string& importer_path, const std::string& source) {
  Files files{{"/p/a/__init__.py", ""},     {"/p/a/top.py", ""},      {"/p/a/b/__init__.py", ""}, {"/p/a/b/mid.py", ""},
              {"/p/a/b/c/__init__.py", ""}, {"/p/a/b/c/leaf.py", ""}, {"/p/a/b/c/other.py", ""}};
  for (auto& f : files)
    if (f.first == importer_path) f.second = source;
  bool present = false;
  for (auto& f : files) present |= f.first == importer_path;
  if (!present) files.emplace_back(importer_path, source);
  return files;
}

TEST(GraphRelative, LevelOneFromAModule) {
  ImportGraph g = make_graph(relative_tree("/p/a/b/c/leaf.py", "from . import other\nfrom .other import x\n"), {"/p"});
  EXPECT_EQ(g.dependencies("/p/a/b/c/leaf.py"),
            (Paths{"/p/a/__init__.py", "/p/a/b/__init__.py", "/p/a/b/c/__init__.py", "/p/a/b/c/other.py"}));
}

TEST(GraphRelative, LevelTwoAndThreeFromAModule) {
  ImportGraph g2 = make_graph(relative_tree("/p/a/b/c/leaf.py", "from .. import mid\n"), {"/p"});
  EXPECT_EQ(g2.dependencies("/p/a/b/c/leaf.py"), (Paths{"/p/a/__init__.py", "/p/a/b/__init__.py", "/p/a/b/mid.py"}));
  ImportGraph g3 = make_graph(relative_tree("/p/a/b/c/leaf.py", "from ...top import f\n"), {"/p"});
  EXPECT_EQ(g3.dependencies("/p/a/b/c/leaf.py"), (Paths{"/p/a/__init__.py", "/p/a/top.py"}));
}

TEST(GraphRelative, FromInitIsRelativeToThePackageItself) {
  // a/b/c/__init__.py has __package__ "a.b.c": `.` is a.b.c, `..` is a.b, `...` is a.
  ImportGraph g1 = make_graph(relative_tree("/p/a/b/c/__init__.py", "from .leaf import x\n"), {"/p"});
  EXPECT_EQ(g1.dependencies("/p/a/b/c/__init__.py"),
            (Paths{"/p/a/__init__.py", "/p/a/b/__init__.py", "/p/a/b/c/leaf.py"}));
  ImportGraph g2 = make_graph(relative_tree("/p/a/b/c/__init__.py", "from .. import mid\n"), {"/p"});
  EXPECT_EQ(g2.dependencies("/p/a/b/c/__init__.py"),
            (Paths{"/p/a/__init__.py", "/p/a/b/__init__.py", "/p/a/b/mid.py"}));
  ImportGraph g3 = make_graph(relative_tree("/p/a/b/c/__init__.py", "from ... import top\n"), {"/p"});
  EXPECT_EQ(g3.dependencies("/p/a/b/c/__init__.py"), (Paths{"/p/a/__init__.py", "/p/a/top.py"}));
}

TEST(GraphRelative, BeyondTopLevelIsIgnored) {
  // leaf's package a.b.c has 3 components: level 4 is beyond the top; a/__init__.py's package "a": level 2 is.
  ImportGraph g = make_graph(relative_tree("/p/a/b/c/leaf.py", "from .... import top\n"), {"/p"});
  EXPECT_TRUE(g.dependencies("/p/a/b/c/leaf.py").empty());
  ImportGraph g2 = make_graph(relative_tree("/p/a/__init__.py", "from .. import top\nfrom . import top\n"), {"/p"});
  EXPECT_EQ(g2.dependencies("/p/a/__init__.py"), (Paths{"/p/a/top.py"}));
}

TEST(GraphRelative, TopLevelModuleHasNoPackage) {
  ImportGraph g = make_graph({{"/p/t.py", "from . import u\nfrom .u import x\n"}, {"/p/u.py", ""}}, {"/p"});
  EXPECT_TRUE(g.dependencies("/p/t.py").empty());
}

TEST(GraphRelative, RelativeImportOfSubpackageModule) {
  ImportGraph g = make_graph(relative_tree("/p/a/top.py", "from .b.c import leaf, missing\n"), {"/p"});
  EXPECT_EQ(g.dependencies("/p/a/top.py"),
            (Paths{"/p/a/__init__.py", "/p/a/b/__init__.py", "/p/a/b/c/__init__.py", "/p/a/b/c/leaf.py"}));
}

// ---------------------------------------------------------------------------------------------------------
// Reverse closure

TEST(GraphClosure, ChainDiamondAndUnrelated) {
  // t1 -> m1 -> base; t2 -> m2 -> base (diamond through d); t3 -> other.
  ImportGraph g = make_graph({{"/p/t1.py", "import m1\n"},
                              {"/p/t2.py", "import m2\n"},
                              {"/p/t3.py", "import other\n"},
                              {"/p/d.py", "import m1, m2\n"},
                              {"/p/m1.py", "import base\n"},
                              {"/p/m2.py", "from base import x\n"},
                              {"/p/base.py", ""},
                              {"/p/other.py", ""}},
                             {"/p"});
  EXPECT_EQ(g.dependents("/p/base.py"), (Paths{"/p/m1.py", "/p/m2.py"}));
  EXPECT_EQ(g.reverse_closure({"/p/base.py"}),
            (Paths{"/p/base.py", "/p/d.py", "/p/m1.py", "/p/m2.py", "/p/t1.py", "/p/t2.py"}));
  EXPECT_EQ(g.reverse_closure({"/p/m1.py"}), (Paths{"/p/d.py", "/p/m1.py", "/p/t1.py"}));
  EXPECT_EQ(g.reverse_closure({"/p/other.py", "/p/t1.py"}), (Paths{"/p/other.py", "/p/t1.py", "/p/t3.py"}));
  EXPECT_EQ(g.reverse_closure({"/p/t3.py"}), (Paths{"/p/t3.py"}));
  EXPECT_TRUE(g.reverse_closure({}).empty());
}

TEST(GraphClosure, CyclesTerminate) {
  ImportGraph g = make_graph({{"/p/a.py", "import b\n"},
                              {"/p/b.py", "import c\n"},
                              {"/p/c.py", "import a\n"},
                              {"/p/t.py", "from a import f\n"},
                              {"/p/z.py", ""}},
                             {"/p"});
  EXPECT_EQ(g.reverse_closure({"/p/b.py"}), (Paths{"/p/a.py", "/p/b.py", "/p/c.py", "/p/t.py"}));
  EXPECT_EQ(g.reverse_closure({"/p/c.py", "/p/a.py"}), (Paths{"/p/a.py", "/p/b.py", "/p/c.py", "/p/t.py"}));
}

TEST(GraphClosure, ChangedPathsNotInTheGraphAreKept) {
  ImportGraph g = make_graph({{"/p/a.py", ""}}, {"/p"});
  EXPECT_EQ(g.reverse_closure({"/p/new.py", "/p/a.py", "/p/new.py"}), (Paths{"/p/a.py", "/p/new.py"}));
}

TEST(GraphClosure, ParentPackageChangeReachesImporters) {
  ImportGraph g = make_graph({{"/p/t.py", "import pkg.sub.mod\n"},
                              {"/p/pkg/__init__.py", ""},
                              {"/p/pkg/sub/__init__.py", ""},
                              {"/p/pkg/sub/mod.py", ""}},
                             {"/p"});
  EXPECT_EQ(g.reverse_closure({"/p/pkg/__init__.py"}), (Paths{"/p/pkg/__init__.py", "/p/t.py"}));
}

TEST(GraphClosure, DeepChainHasNoRecursionLimit) {
  constexpr int kDepth = 50000;
  Paths paths;
  std::vector<std::vector<ImportInfo>> imports(kDepth);
  for (int i = 0; i < kDepth; ++i) {
    paths.push_back("/p/m" + std::to_string(i) + ".py");
    if (i + 1 < kDepth) {
      ImportInfo imp;
      imp.module = "m" + std::to_string(i + 1);
      imports[i].push_back(imp);
    }
  }
  ImportGraph g(paths, imports, Paths{"/p"});
  EXPECT_EQ(g.reverse_closure({"/p/m" + std::to_string(kDepth - 1) + ".py"}).size(), static_cast<std::size_t>(kDepth));
}

// pandas-sized: 1,500 package modules in 30 subpackages plus 1,000 test files, each with a dozen imports.
TEST(GraphPerformance, PandasSizedProjectBuildsQuickly) {
  Paths paths;
  std::vector<std::vector<ImportInfo>> imports;
  auto add = [&](std::string path, std::vector<ImportInfo> imps) {
    paths.push_back(std::move(path));
    imports.push_back(std::move(imps));
  };
  auto absolute = [](std::string module) {
    ImportInfo i;
    i.module = std::move(module);
    return i;
  };
  auto from = [](std::string module, std::vector<std::string> names, int level = 0) {
    ImportInfo i;
    i.module = std::move(module);
    i.names = std::move(names);
    i.is_from = true;
    i.level = level;
    return i;
  };
  add("/r/pk/__init__.py", {absolute("numpy"), from("pk.s0", {"m0"})});
  for (int s = 0; s < 30; ++s) {
    std::string sub = "s" + std::to_string(s);
    add("/r/pk/" + sub + "/__init__.py", {from(".m0", {"x"}, 1)});
    for (int m = 0; m < 50; ++m) {
      std::vector<ImportInfo> imps{absolute("numpy"), absolute("os"), from("typing", {"Any"})};
      for (int k = 1; k <= 4; ++k)
        imps.push_back(from("pk.s" + std::to_string((s + k) % 30), {"m" + std::to_string((m * 7 + k) % 50), "f"}));
      imps.push_back(from("", {"m" + std::to_string((m + 1) % 50)}, 1));
      add("/r/pk/" + sub + "/m" + std::to_string(m) + ".py", std::move(imps));
    }
  }
  for (int t = 0; t < 1000; ++t) {
    std::vector<ImportInfo> imps{absolute("pytest"), absolute("numpy"), absolute("pk")};
    for (int k = 0; k < 8; ++k)
      imps.push_back(from("pk.s" + std::to_string((t + k) % 30) + ".m" + std::to_string((t * 3 + k) % 50), {"a", "b"}));
    imps.push_back(absolute("pk.tests.helpers"));
    add("/r/pk/tests/t" + std::to_string(t / 100) + "/test_" + std::to_string(t) + ".py", std::move(imps));
  }
  add("/r/pk/tests/helpers.py", {});
  auto start = std::chrono::steady_clock::now();
  ImportGraph g(paths, imports, Paths{"/r"});
  auto built = std::chrono::steady_clock::now();
  auto closure = g.reverse_closure({"/r/pk/s3/m5.py"});
  auto done = std::chrono::steady_clock::now();
  double build_ms = std::chrono::duration<double, std::milli>(built - start).count();
  double closure_ms = std::chrono::duration<double, std::milli>(done - built).count();
  RecordProperty("build_ms", std::to_string(build_ms));
  std::printf("graph: %zu nodes, %zu edges, build %.2f ms, closure of %zu files %.2f ms\n", g.size(), g.edge_count(),
              build_ms, closure.size(), closure_ms);
  EXPECT_EQ(g.size(), 2532U);
  EXPECT_GT(closure.size(), 100U);
  EXPECT_LT(build_ms, 500.0);  // target is < 50 ms in release builds; loose bound against noisy CI machines
}

// ---------------------------------------------------------------------------------------------------------
// On disk: a temp tree scanned with scan_files

class GraphTempTree : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "fcgraph-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    root_ = fs::canonical(tmpl).string();
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  std::string write(const std::string& rel, const std::string& text) {
    fs::path p = fs::path(root_) / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  std::string root_;
};

TEST_F(GraphTempTree, ScannedProjectWithRootdirAndTestsRoots) {
  Paths files{write("src/lib/__init__.py", "from .core import run\n"),
              write("src/lib/core.py", "import os\nfrom lib import util\n"),
              write("src/lib/util.py", ""),
              write("tests/conftest.py", "import helpers\n"),
              write("tests/helpers.py", "import lib.util\n"),
              write("tests/test_run.py", "from lib import run\nfrom helpers import make\n"),
              write("tests/test_other.py", "import json\n")};
  auto infos = scan_files(files, NameRules{}, 2);
  ImportGraph g(files, infos, Paths{root_ + "/src", root_ + "/tests", root_});
  EXPECT_EQ(g.module_name(root_ + "/tests/test_run.py"), "test_run");
  EXPECT_EQ(g.module_name(root_ + "/src/lib/core.py"), "lib.core");
  EXPECT_EQ(g.dependencies(root_ + "/tests/test_run.py"),
            (Paths{root_ + "/src/lib/__init__.py", root_ + "/tests/helpers.py"}));
  EXPECT_EQ(g.reverse_closure({root_ + "/src/lib/util.py"}),
            (Paths{root_ + "/src/lib/__init__.py", root_ + "/src/lib/core.py", root_ + "/src/lib/util.py",
                   root_ + "/tests/conftest.py", root_ + "/tests/helpers.py", root_ + "/tests/test_run.py"}));
  EXPECT_EQ(g.reverse_closure({root_ + "/tests/test_other.py"}), (Paths{root_ + "/tests/test_other.py"}));
}

}  // namespace
}  // namespace fastcollect
