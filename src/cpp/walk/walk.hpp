// Parallel directory walk that applies pytest's collection path rules as data.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace fastcollect {

/// The path rules of one pytest run, resolved by the plugin from its Config (all paths absolute, `/`-separated).
/// Sources: _pytest/main.py (pytest_ignore_collect, _in_venv, Dir.collect), _pytest/python.py
/// (pytest_collect_file, Package.collect, path_matches_patterns), _pytest/pathlib.py (fnmatch_ex, scandir).
struct WalkConfig {
  /// The run's initial paths (config.args resolved to files or folders). They bypass every ignore rule and,
  /// for files, the python_files patterns, as pytest's `Session.isinitpath` does.
  std::vector<std::string> roots;
  /// ini `python_files` (default `test_*.py *_test.py`), matched with fnmatch_ex.
  std::vector<std::string> python_files{"test_*.py", "*_test.py"};
  /// ini `norecursedirs`; the plugin passes pytest's own value (defaults or the ini override).
  std::vector<std::string> norecursedirs{"*.egg", ".*",           "_darcs", "build", "CVS",
                                         "dist",  "node_modules", "venv",   "{arch}"};
  /// `--ignore` paths (absolute), compared for equality with each entry.
  std::vector<std::string> ignore_paths;
  /// `--ignore-glob` patterns (absolute), matched with fnmatch against the whole path.
  std::vector<std::string> ignore_globs;
  /// `--collect-in-virtualenv`: when false, folders holding pyvenv.cfg or conda-meta/history are skipped.
  bool collect_in_virtualenv = false;
  /// Worker threads; 0 = hardware concurrency.
  unsigned threads = 0;
};

/// Outcome of walk(); `files` are in pytest's collection order: depth-first, entries of a folder sorted by
/// name (files and folders interleaved), `__init__.py` first inside a package.
struct WalkResult {
  std::vector<std::string> files;      ///< candidate test modules (python_files matches and root files)
  std::vector<std::string> conftests;  ///< every conftest.py in the visited folders, in walk order
  std::size_t dirs_visited = 0;        ///< folders listed
  std::vector<std::string> errors;     ///< unreadable folders, "path: message"; never thrown
};

/// Walks `config.roots` in parallel (one level of folders at a time across the thread pool), then orders
/// the result sequentially. Roots that do not exist are reported in `errors`. Symlinked folders are
/// followed, as os.DirEntry.is_dir() does, but each real folder is visited once.
WalkResult walk(const WalkConfig& config);

/// True if `path` (absolute) is a file pytest's python plugin would collect: `.py` suffix and a
/// python_files match (fnmatch_ex).
bool is_python_test_file(const std::string& path, const std::vector<std::string>& python_files);

}  // namespace fastcollect
