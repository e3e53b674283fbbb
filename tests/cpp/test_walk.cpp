// Tests for walk/walk: the parallel directory walk with pytest's collection path rules
// (_pytest/main.py pytest_ignore_collect, _pytest/python.py pytest_collect_file / Package.collect).

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <system_error>
#include <vector>

#include "walk/walk.hpp"

namespace fastcollect {
namespace {

namespace fs = std::filesystem;
using Paths = std::vector<std::string>;

// A unique, canonical temporary folder per test, removed with everything in it afterwards.
class WalkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string base = ::testing::TempDir();
    if (base.empty() || base.back() != '/') base += '/';
    std::string tmpl = base + "fastcollect_walk_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << "mkdtemp failed for " << tmpl;
    root_ = fs::canonical(tmpl).string();
  }

  void TearDown() override {
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);  // does not follow symlinks
  }

  std::string path(const std::string& rel) const { return rel.empty() ? root_ : root_ + "/" + rel; }

  void make_file(const std::string& rel, const std::string& content = "") const {
    fs::path p = path(rel);
    fs::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary);
    out << content;
    ASSERT_TRUE(out.good()) << "cannot write " << p;
  }

  void make_files(const Paths& rels) const {
    for (const auto& r : rels) make_file(r);
  }

  // Creates the symlink `rel` pointing at `target` (used verbatim, may be relative).
  void make_symlink(const std::string& target, const std::string& rel) const {
    fs::path p = path(rel);
    fs::create_directories(p.parent_path());
    ASSERT_EQ(::symlink(target.c_str(), p.c_str()), 0) << "symlink " << p << " -> " << target;
  }

  WalkConfig config_for_root() const {
    WalkConfig c;
    c.roots = {root_};
    c.threads = 2;
    return c;
  }

  // Paths relative to the temp folder (absolute paths outside it are returned unchanged).
  Paths relative(const Paths& abs) const {
    Paths out;
    for (const auto& p : abs) {
      if (p.compare(0, root_.size() + 1, root_ + "/") == 0)
        out.push_back(p.substr(root_.size() + 1));
      else if (p == root_)
        out.push_back("");
      else
        out.push_back(p);
    }
    return out;
  }

  // Runs walk() on another thread. A walk still running after `limit` ends the test binary with a message
  // (a stuck thread cannot be cancelled), so a looping walker fails fast instead of hanging ctest.
  static WalkResult walk_with_deadline(const WalkConfig& c, std::chrono::seconds limit) {
    auto done = std::async(std::launch::async, [c] { return walk(c); });
    if (done.wait_for(limit) != std::future_status::ready) {
      std::fprintf(stderr, "FATAL: walk() still running after %lld s (symlink loop?)\n",
                   static_cast<long long>(limit.count()));
      std::fflush(stderr);
      std::_Exit(EXIT_FAILURE);
    }
    return done.get();
  }

  Paths walk_files(const WalkConfig& c) const {
    WalkResult r = walk(c);
    EXPECT_TRUE(r.errors.empty()) << "first error: " << (r.errors.empty() ? "" : r.errors.front());
    return relative(r.files);
  }

  std::string root_;
};

TEST_F(WalkTest, DefaultPythonFilesSelectTestPrefixAndTestSuffixModules) {
  make_files({"test_a.py", "a_test.py", "helper.py", "testing.py", "test_b.txt", "b_test.pyc", "test_.py"});
  EXPECT_EQ(walk_files(config_for_root()), (Paths{"a_test.py", "test_.py", "test_a.py"}));
}

TEST_F(WalkTest, FilesAndFoldersAreInterleavedByNameDepthFirst) {
  make_files({"test_z.py", "test_a.py", "test_m/test_x.py", "test_m/deep/test_deep.py", "test_m/test_b.py",
              "B_upper/test_up.py", "b_lower/test_low.py"});
  // Byte order: uppercase before lowercase; a folder's content is emitted where the folder sorts.
  EXPECT_EQ(walk_files(config_for_root()),
            (Paths{"B_upper/test_up.py", "b_lower/test_low.py", "test_a.py", "test_m/deep/test_deep.py",
                   "test_m/test_b.py", "test_m/test_x.py", "test_z.py"}));
}

TEST_F(WalkTest, DirsVisitedCountsEveryListedFolder) {
  make_files({"a/b/test_1.py", "c/test_2.py", "build/test_3.py"});
  WalkResult r = walk(config_for_root());
  EXPECT_EQ(r.dirs_visited, 4U);  // root, a, a/b, c (build is never listed)
}

TEST_F(WalkTest, InitPyIsNotListedUnlessItMatchesPythonFiles) {
  make_files({"pkg/__init__.py", "pkg/0_test.py", "pkg/test_z.py"});
  EXPECT_EQ(walk_files(config_for_root()), (Paths{"pkg/0_test.py", "pkg/test_z.py"}));
}

TEST_F(WalkTest, InitPyComesFirstInsideAPackage) {
  // "0_test.py" sorts before "__init__.py" by name; a package still yields __init__.py first.
  make_files({"pkg/__init__.py", "pkg/0_test.py", "pkg/test_z.py"});
  WalkConfig c = config_for_root();
  c.python_files = {"*.py"};
  EXPECT_EQ(walk_files(c), (Paths{"pkg/__init__.py", "pkg/0_test.py", "pkg/test_z.py"}));
}

TEST_F(WalkTest, FolderWithoutInitPyKeepsPlainNameOrder) {
  make_files({"plain/0_test.py", "plain/_x.py", "plain/test_z.py"});
  WalkConfig c = config_for_root();
  c.python_files = {"*.py"};
  EXPECT_EQ(walk_files(c), (Paths{"plain/0_test.py", "plain/_x.py", "plain/test_z.py"}));
}

TEST_F(WalkTest, InitPyFolderIsNotAPackageWhenItIsADirectory) {
  make_files({"odd/__init__.py/test_in.py", "odd/0_test.py"});
  EXPECT_EQ(walk_files(config_for_root()), (Paths{"odd/0_test.py", "odd/__init__.py/test_in.py"}));
}

TEST_F(WalkTest, DefaultNorecursedirsSkipHiddenBuildVenvEggAndFriends) {
  make_files({".hidden/test_a.py", "build/test_b.py", "venv/test_c.py", "foo.egg/test_d.py", "dist/test_e.py",
              "node_modules/test_f.py", "CVS/test_g.py", "_darcs/test_h.py", "{arch}/test_i.py",
              "builder/test_kept1.py", "kept/test_kept2.py", "kept/build/test_nested.py"});
  EXPECT_EQ(walk_files(config_for_root()), (Paths{"builder/test_kept1.py", "kept/test_kept2.py"}));
}

TEST_F(WalkTest, NorecursedirsAppliesToFoldersOnlyNotFiles) {
  make_files({"build_test.py"});
  WalkConfig c = config_for_root();
  c.norecursedirs = {"*_test.py"};
  EXPECT_EQ(walk_files(c), (Paths{"build_test.py"}));
}

TEST_F(WalkTest, CustomNorecursedirsReplaceTheDefaults) {
  make_files({".hidden/test_a.py", "build/test_b.py", "skipme/test_c.py", "skip2/test_d.py", "kept/test_e.py"});
  WalkConfig c = config_for_root();
  c.norecursedirs = {"skip*"};
  EXPECT_EQ(walk_files(c), (Paths{".hidden/test_a.py", "build/test_b.py", "kept/test_e.py"}));
}

TEST_F(WalkTest, VirtualenvFolderIsSkippedUnlessCollectInVirtualenv) {
  make_files({"env/pyvenv.cfg", "env/test_in_venv.py", "test_top.py"});
  WalkConfig c = config_for_root();
  EXPECT_EQ(walk_files(c), (Paths{"test_top.py"}));
  c.collect_in_virtualenv = true;
  EXPECT_EQ(walk_files(c), (Paths{"env/test_in_venv.py", "test_top.py"}));
}

TEST_F(WalkTest, PyvenvCfgMustBeAFile) {
  make_files({"env/pyvenv.cfg/placeholder", "env/test_in_env.py"});
  EXPECT_EQ(walk_files(config_for_root()), (Paths{"env/test_in_env.py"}));
}

TEST_F(WalkTest, CondaEnvironmentWithCondaMetaHistoryIsSkipped) {
  make_files({"conda/conda-meta/history", "conda/test_conda.py", "notconda/conda-meta/other", "notconda/test_kept.py"});
  WalkConfig c = config_for_root();
  EXPECT_EQ(walk_files(c), (Paths{"notconda/test_kept.py"}));
  c.collect_in_virtualenv = true;
  EXPECT_EQ(walk_files(c), (Paths{"conda/test_conda.py", "notconda/test_kept.py"}));
}

TEST_F(WalkTest, PycacheIsSkippedEvenWithEmptyNorecursedirs) {
  make_files({"__pycache__/test_cached.py", "sub/__pycache__/test_cached.py", "sub/test_real.py"});
  WalkConfig c = config_for_root();
  c.norecursedirs = {};
  EXPECT_EQ(walk_files(c), (Paths{"sub/test_real.py"}));
}

TEST_F(WalkTest, IgnorePathsAreComparedExactly) {
  make_files({"sub/test_a.py", "sub2/test_b.py", "test_c.py", "test_cd.py", "keep/test_e.py"});
  WalkConfig c = config_for_root();
  c.ignore_paths = {path("sub"), path("test_c.py"), path("keep") + "/"};
  EXPECT_EQ(walk_files(c), (Paths{"sub2/test_b.py", "test_cd.py"}));
}

TEST_F(WalkTest, IgnoreGlobsMatchTheWholePathWithStarCrossingSlash) {
  make_files({"a/test_skip_1.py", "a/b/test_skip_2.py", "test_skip_3.py", "a/test_keep.py", "gen_x/test_g.py",
              "other/test_o.py"});
  WalkConfig c = config_for_root();
  c.ignore_globs = {path("a") + "/*skip*", path("gen_*")};
  EXPECT_EQ(walk_files(c), (Paths{"a/test_keep.py", "other/test_o.py", "test_skip_3.py"}));
}

TEST_F(WalkTest, IgnoreGlobIsNotMatchedAgainstTheBasename) {
  make_files({"sub/test_a.py"});
  WalkConfig c = config_for_root();
  c.ignore_globs = {"test_a.py", "sub"};
  EXPECT_EQ(walk_files(c), (Paths{"sub/test_a.py"}));
}

TEST_F(WalkTest, RootFileIsListedWhateverItsName) {
  make_files({"helper.py", "notes.txt", "test_a.py"});
  WalkConfig c;
  c.roots = {path("helper.py"), path("notes.txt")};
  EXPECT_EQ(walk_files(c), (Paths{"helper.py", "notes.txt"}));
}

TEST_F(WalkTest, RootFileInsideAWalkedRootIsListedOnceInWalkOrder) {
  make_files({"helper.py", "test_a.py", "zzz.py"});
  WalkConfig c = config_for_root();
  c.roots = {root_, path("zzz.py"), path("helper.py")};
  EXPECT_EQ(walk_files(c), (Paths{"helper.py", "test_a.py", "zzz.py"}));
}

TEST_F(WalkTest, RootFileBypassesIgnoreRules) {
  make_files({"test_a.py"});
  WalkConfig c;
  c.roots = {path("test_a.py")};
  c.ignore_paths = {path("test_a.py")};
  c.ignore_globs = {path("*")};
  EXPECT_EQ(walk_files(c), (Paths{"test_a.py"}));
}

TEST_F(WalkTest, RootFolderMatchingNorecursedirsIsStillWalked) {
  make_files({"build/test_b.py", "build/build/test_nested.py", ".hidden/test_h.py"});
  WalkConfig c;
  c.roots = {path("build"), path(".hidden")};
  EXPECT_EQ(walk_files(c), (Paths{"build/test_b.py", ".hidden/test_h.py"}));
}

TEST_F(WalkTest, RootFolderThatIsAVirtualenvIsStillWalked) {
  make_files({"env/pyvenv.cfg", "env/test_v.py"});
  WalkConfig c;
  c.roots = {path("env")};
  EXPECT_EQ(walk_files(c), (Paths{"env/test_v.py"}));
}

TEST_F(WalkTest, RootWithTrailingSlashIsNormalised) {
  make_files({"sub/test_a.py"});
  WalkConfig c;
  c.roots = {root_ + "/"};
  EXPECT_EQ(walk_files(c), (Paths{"sub/test_a.py"}));
}

TEST_F(WalkTest, ParentOfARootIsNeverIgnored) {
  make_files({"build/inner/test_in.py", "build/test_sibling.py", "build/.hidden/test_h.py", "test_top.py",
              "ignored/deep/test_d.py", "ignored/test_i.py"});
  WalkConfig c = config_for_root();
  c.roots = {root_, path("build/inner"), path("ignored/deep")};
  c.ignore_paths = {path("ignored")};
  // build/ and ignored/ lead to roots, so they are walked; their other children still obey the rules.
  EXPECT_EQ(walk_files(c), (Paths{"build/inner/test_in.py", "build/test_sibling.py", "ignored/deep/test_d.py",
                                  "ignored/test_i.py", "test_top.py"}));
}

TEST_F(WalkTest, PathPrefixOfARootNameIsNotItsParent) {
  // "build" is not a parent of the root "buildx/inner": only a real path-component prefix counts.
  make_files({"build/test_b.py", "buildx/inner/test_x.py"});
  WalkConfig c = config_for_root();
  c.roots = {root_, path("buildx/inner")};
  c.norecursedirs = {"build*"};
  EXPECT_EQ(walk_files(c), (Paths{"buildx/inner/test_x.py"}));
}

TEST_F(WalkTest, CustomPythonFilesWithAPathPattern) {
  make_files({"tests/check_a.py", "tests/test_b.py", "tests/check_c.txt", "tests/sub/check_d.py", "other/check_e.py",
              "mytests/check_f.py", "nested/tests/check_g.py"});
  WalkConfig c = config_for_root();
  c.python_files = {"tests/check_*.py"};
  EXPECT_EQ(walk_files(c), (Paths{"nested/tests/check_g.py", "tests/check_a.py"}));
}

TEST_F(WalkTest, IsPythonTestFileRequiresPySuffix) {
  EXPECT_TRUE(is_python_test_file("/r/test_a.py", {"test_*"}));
  EXPECT_FALSE(is_python_test_file("/r/test_a.txt", {"test_*"}));
  EXPECT_FALSE(is_python_test_file("/r/test_a.pyc", {"test_*"}));
  EXPECT_TRUE(is_python_test_file("/r/a_test.py", {"test_*.py", "*_test.py"}));
  EXPECT_FALSE(is_python_test_file("/r/a_test.py", {}));
}

TEST_F(WalkTest, MissingRootIsReportedInErrorsAndOtherRootsStillWalked) {
  make_files({"test_a.py"});
  WalkConfig c;
  c.roots = {path("does_not_exist"), root_};
  WalkResult r = walk(c);
  ASSERT_EQ(r.errors.size(), 1U);
  EXPECT_EQ(r.errors[0].rfind(path("does_not_exist") + ": ", 0), 0U) << r.errors[0];
  EXPECT_EQ(relative(r.files), (Paths{"test_a.py"}));
}

TEST_F(WalkTest, UnreadableFolderIsReportedInErrors) {
  if (::geteuid() == 0) GTEST_SKIP() << "root can read any folder";
  make_files({"locked/test_a.py", "test_b.py"});
  ::chmod(path("locked").c_str(), 0);
  WalkResult r = walk(config_for_root());
  ::chmod(path("locked").c_str(), 0755);
  ASSERT_EQ(r.errors.size(), 1U);
  EXPECT_EQ(r.errors[0].rfind(path("locked") + ": ", 0), 0U) << r.errors[0];
  EXPECT_EQ(relative(r.files), (Paths{"test_b.py"}));
}

TEST_F(WalkTest, ConftestsAreListedInConftestsNotFiles) {
  make_files(
      {"conftest.py", "sub/conftest.py", "sub/test_a.py", "build/conftest.py", "other/conftest.py", "test_top.py"});
  WalkResult r = walk(config_for_root());
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(relative(r.conftests), (Paths{"conftest.py", "other/conftest.py", "sub/conftest.py"}));
  EXPECT_EQ(relative(r.files), (Paths{"sub/test_a.py", "test_top.py"}));
}

TEST_F(WalkTest, SymlinkedFolderIsFollowed) {
  make_files({"real/test_r.py"});
  make_symlink(path("real"), "tests/linked");
  WalkConfig c;
  c.roots = {path("tests")};
  EXPECT_EQ(walk_files(c), (Paths{"tests/linked/test_r.py"}));
}

TEST_F(WalkTest, BrokenSymlinkIsSkipped) {
  make_files({"test_a.py"});
  make_symlink(path("nowhere"), "test_broken.py");
  make_symlink(path("nowhere_dir"), "broken_dir");
  EXPECT_EQ(walk_files(config_for_root()), (Paths{"test_a.py"}));
}

TEST_F(WalkTest, SymlinkLoopsTerminateAndEachRealFolderIsVisitedOnce) {
  make_files({"test_root.py", "a/test_a.py", "a/b/test_b.py"});
  make_symlink("..", "a/b/up");     // -> a
  make_symlink(root_, "sub/loop");  // -> the root itself
  make_symlink(".", "self");        // -> the root itself
  WalkResult r = walk_with_deadline(config_for_root(), std::chrono::seconds(60));
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(relative(r.files), (Paths{"a/b/test_b.py", "a/test_a.py", "test_root.py"}));
  EXPECT_EQ(r.dirs_visited, 4U);  // root, a, a/b, sub
}

TEST_F(WalkTest, OneThreadAndFourThreadsGiveIdenticalResults) {
  // A tree wide and deep enough for the levels to be split across workers.
  for (int i = 0; i < 6; ++i) {
    std::string d = "d" + std::to_string(i);
    make_file(d + "/test_" + std::to_string(i) + ".py");
    make_file(d + "/conftest.py");
    for (int j = 0; j < 5; ++j) {
      std::string e = d + "/e" + std::to_string(j);
      make_file(e + "/test_x.py");
      make_file(e + "/helper.py");
      make_file(e + "/build/test_skipped.py");
      for (int k = 0; k < 3; ++k) make_file(e + "/f" + std::to_string(k) + "/x_test.py");
    }
  }
  make_symlink("../d3", "d0/alias");  // the same real folder reachable twice
  WalkConfig one = config_for_root();
  one.threads = 1;
  WalkConfig four = config_for_root();
  four.threads = 4;
  WalkResult a = walk(one);
  WalkResult b = walk(four);
  EXPECT_EQ(a.files.size(), 6U * (1 + 5 * (1 + 3)));
  EXPECT_EQ(a.conftests.size(), 6U);
  EXPECT_EQ(a.files, b.files);
  EXPECT_EQ(a.conftests, b.conftests);
  EXPECT_EQ(a.dirs_visited, b.dirs_visited);
  EXPECT_EQ(a.errors, b.errors);
  ASSERT_FALSE(a.files.empty());
  EXPECT_EQ(relative(a.files).front(), "d0/e0/f0/x_test.py");
  EXPECT_EQ(relative(a.files).back(), "d5/test_5.py");
}

}  // namespace
}  // namespace fastcollect
