// Import graph over a project's modules, and the reverse-dependency closure of a changed set (which cached
// records / warm modules a change makes stale).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "scan/module_info.hpp"

namespace fastcollect {

/// The static import graph of a set of project files. Nodes are files (absolute, `/`-separated paths, compared
/// as given: the caller normalises them); an edge A -> B means "importing A imports B". Only project files are
/// nodes: imports that resolve to no project file (stdlib, third party, names that are not modules) add no edge.
/// Built once, then read-only: the const methods are safe to call from several threads.
///
/// Semantics, with their sources:
/// - Module names (Python's path-based finder, importlib._bootstrap_external.FileFinder): a file under an import
///   root `R` is importable as its path relative to `R` with `/` -> `.`: `R/a/b/c.py` is `a.b.c`,
///   `R/a/b/__init__.py` is the package `a.b`. Every component must be an identifier (what `import` can spell)
///   and the file must end in `.py`; `R/__init__.py` has no name. A file gets one name per root that contains it
///   (roots may nest, e.g. rootdir and rootdir/tests); module_name() is the name under the first such root.
/// - Which file a name means (sys.path order, importlib.machinery.PathFinder): the candidate from the root that
///   comes first in `roots` wins; within one root the package `a/__init__.py` wins over the module `a.py`, as
///   FileFinder checks for a package directory before module files.
/// - `import a.b.c` (importlib._bootstrap._find_and_load imports parents first): depends on `a`, `a.b` and
///   `a.b.c`, each that is a project file (a package's `__init__.py`). The alias of `import x as y` is
///   irrelevant.
/// - `from a.b import c` (importlib._bootstrap._handle_fromlist): depends on `a`, `a.b`, and on `a.b.c` only if
///   that is a project module (`c` may be a plain name). `from a.b import *` depends on `a` and `a.b` (the
///   submodules `__all__` may name are not known statically).
/// - Relative imports, `level` dots (importlib.util.resolve_name / importlib._bootstrap._resolve_name): the
///   importing file's package is its module name minus the last component, or the name itself for an
///   `__init__.py`; the base is `package.rsplit('.', level - 1)[0]`. If the file has no package (a top-level
///   module, a file outside every root) or the package has fewer than `level` components ("attempted relative
///   import beyond top-level package"), the import is ignored. Then as an absolute import of `base.module`.
/// - Files outside every root are nodes (by path) with no module name: nothing can import them, their own
///   absolute imports still resolve.
/// Known approximations (each errs towards more edges, never fewer, except the first): a namespace package
/// spread over several roots is treated as one name space (a regular package in an earlier root does not hide
/// submodules under later roots); imports inside functions or under `if` count as always executed; a file
/// reachable under several names resolves its relative imports from its first name only; runtime sys.path
/// edits, `importlib.import_module(...)` and `__import__` are invisible.
class ImportGraph {
 public:
  /// `paths[i]` imports `imports[i]` (ImportInfo from the scanner). `roots` are the import roots in priority
  /// order (sys.path-like folders; a trailing `/` is ignored). Duplicate paths are merged. Throws
  /// std::invalid_argument if the two lists differ in length.
  ImportGraph(const std::vector<std::string>& paths, const std::vector<std::vector<ImportInfo>>& imports,
              const std::vector<std::string>& roots);
  /// Same, taking each file's ModuleInfo::imports (ModuleInfo::path is not used: `paths` names the files).
  ImportGraph(const std::vector<std::string>& paths, const std::vector<ModuleInfo>& modules,
              const std::vector<std::string>& roots);

  /// Direct dependencies of `path`: the project files its imports resolve to, sorted, without itself. Empty
  /// for a path that is not a node.
  std::vector<std::string> dependencies(const std::string& path) const;
  /// Direct dependents of `path`: the files that import it, sorted.
  std::vector<std::string> dependents(const std::string& path) const;
  /// Every file that imports any of `changed`, directly or transitively, plus the changed paths themselves
  /// (also those that are not nodes), sorted and unique. Iterative BFS: safe for cycles and deep chains.
  std::vector<std::string> reverse_closure(const std::vector<std::string>& changed) const;
  /// Module name of `path` under the first root that contains it; "" when it has none or is not a node.
  std::string module_name(const std::string& path) const;
  /// The project file `name` resolves to (dotted module name), "" if none.
  std::string resolve(const std::string& name) const;

  bool contains(const std::string& path) const { return index_.count(path) != 0; }
  std::size_t size() const { return nodes_.size(); }
  std::size_t edge_count() const;

 private:
  struct Node {
    std::string path;
    std::string name;      ///< name under the first root, "" if none
    bool is_init = false;  ///< `__init__.py`: its package is its own name
    std::vector<std::uint32_t> deps;
    std::vector<std::uint32_t> rdeps;
  };
  struct Candidate {
    std::uint32_t node;
    std::uint32_t rank;  ///< 2 * root index + (module ? 1 : 0); lower wins
  };

  void build(const std::vector<std::string>& paths, const std::vector<const std::vector<ImportInfo>*>& imports,
             const std::vector<std::string>& roots);
  long lookup(const std::string& name) const;
  void add_module_chain(const std::string& name, std::vector<std::uint32_t>& out) const;
  std::vector<std::string> to_paths(const std::vector<std::uint32_t>& ids) const;

  std::vector<Node> nodes_;
  std::unordered_map<std::string, std::uint32_t> index_;  ///< path -> node
  std::unordered_map<std::string, Candidate> names_;      ///< dotted name -> best file
};

}  // namespace fastcollect
